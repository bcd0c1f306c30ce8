"""One training loop for every model: seeded, resumable, logged per epoch (CSV and TensorBoard).

Randomness comes from explicit generators seeded from the training seed: one for shuffling, one on the
device for the models' own draws (NCA fire masks and patches). Model initialisation uses torch's global
generator inside ``torch.random.fork_rng``, so it is seeded without changing the caller's random state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from mednca.errors import DataError
from mednca.io import check_free_space, write_csv
from mednca.train import checkpoint
from mednca.train.losses import build_loss

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.csv"
SNAPSHOTS_NAME = "checkpoint_snapshots"
"""Folder beside the checkpoint with ``epoch{E:04d}.pt`` snapshots: ``epoch``, ``iterations``,
``train_seconds`` (training time so far) and ``state_dict``. Like the checkpoint it is resume state, which
outlives a killed job (the workflow removes a job's declared outputs before it runs); it only ever holds
snapshots of the run in progress: a fresh start empties it, a resumed run drops snapshots past its epoch."""


@dataclass(frozen=True)
class TrainingSettings:
    """Optimisation settings of one model (Med-NCA defaults: Adam 1.6e-3, betas (0.5, 0.5), decay 0.9999).

    The recipe options are off by default (the paper's training): ``schedule`` ``exponential``
    (``lr_gamma`` per step) or ``cosine`` (linear warm-up over ``warmup_iterations``, at most a fifth of the
    run, then cosine decay to 0 at the last iteration); ``dice_weight`` and ``bce_weight`` weigh the two
    terms of ``dice_bce``; ``grad_clip`` > 0 clips the gradients' total norm; ``ema_decay`` > 0 keeps an
    exponential moving average of the weights (``WeightAverage``, its decay warmed up), which is what the
    trained model holds. ``snapshot_every`` > 0 saves the trained model's weights every so many epochs
    (``SNAPSHOTS_NAME``), for learning curves; saving draws no random numbers. ``iterations`` > 0 fixes the
    budget in optimiser steps instead of ``epochs``: training runs as many epochs as that takes and stops
    inside the last one, so runs on different amounts of data get the same budget.
    """

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    lr: float = 1.6e-3
    betas: tuple[float, float] = (0.5, 0.5)
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_gamma: float = 0.9999
    schedule: str = "exponential"
    warmup_iterations: int = 0
    loss: str = "dice_bce"
    dice_weight: float = 1.0
    bce_weight: float = 1.0
    pos_weight: float = 25.0
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    checkpoint_every: int = 10
    snapshot_every: int = 0
    iterations: int = 0

    @classmethod
    def from_config(cls, training: dict[str, Any]) -> TrainingSettings:
        """The settings of a (validated, defaults filled) ``model_settings.<model>.training`` block."""
        return cls(**{**training, "betas": tuple(training["betas"])})


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator inside the block and restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    """Adam (with the configured betas) or SGD with momentum."""
    if settings.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(),
            lr=settings.lr,
            betas=tuple(settings.betas),
            weight_decay=settings.weight_decay,
        )
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    raise ValueError(f"unknown optimizer '{settings.optimizer}' (expected 'adam' or 'sgd')")


MAX_WARMUP_SHARE = 5
"""The cosine schedule's warm-up takes at most 1/MAX_WARMUP_SHARE of the run's optimiser steps."""


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainingSettings, iterations: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule over a run of ``iterations`` optimiser steps (stepped after each one)."""
    if settings.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=settings.lr_gamma)
    if settings.schedule != "cosine":
        raise ValueError(f"unknown schedule '{settings.schedule}' (expected 'exponential' or 'cosine')")
    # A warm-up sized for a long run would fill a short one (a data-efficiency budget) and leave no decay.
    warmup = min(settings.warmup_iterations, iterations // MAX_WARMUP_SHARE)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        decay = max(iterations - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, decay) / decay))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightAverage:
    """Exponential moving average of a model's weights: after optimiser step n (from 1) each floating-point
    parameter and buffer moves ``1 - decay_at(n)`` of the way to the model's (integer buffers are copied).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))``, so the random initial weights do not linger
    in a short run (at 0.99, 13% of them would remain after 200 steps); after a few thousand steps the
    average is the same as without the warm-up.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {name: value.detach().clone() for name, value in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1 - self.decay_at(step)
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.state[name].lerp_(value, weight)
            else:
                self.state[name].copy_(value)


def fingerprint(settings: TrainingSettings, **context: Any) -> str:
    """Hash of everything a checkpoint depends on except the epoch count, so training can be extended
    (with the cosine schedule, which depends on the run's length, the epoch count too), and the snapshot
    interval, which does not change the run."""
    fields = dataclasses.asdict(settings)
    fields.pop("snapshot_every")
    if settings.schedule == "exponential" or settings.iterations > 0:
        fields.pop("epochs")
    if settings.schedule == "exponential":
        fields.pop("iterations")
    text = json.dumps({"settings": fields, **context}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def reseeded_draws(seed: int, epoch: int) -> int:
    """The seed of the model's draws when a run resumes at ``epoch`` on another kind of device, whose
    generator cannot take the saved state (a CPU generator is a Mersenne twister, a CUDA one Philox)."""
    return seed + 1 + 1_000_003 * epoch


@dataclass
class TrainingState:
    """Everything that changes during training; saved in checkpoints to resume bit for bit.

    ``seed`` is the run's training seed, used only to reseed the draws when a checkpoint written on another
    kind of device is resumed (see ``reseeded_draws``).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    shuffle: torch.Generator
    draws: torch.Generator
    seed: int = 0
    average: WeightAverage | None = None
    epoch: int = 0
    iterations: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def trained_weights(self) -> dict[str, Tensor]:
        """The weights that training produces: the moving average where one is kept, else the model's."""
        return self.model.state_dict() if self.average is None else self.average.state

    def trained_model(self) -> nn.Module:
        """The model with ``trained_weights`` loaded."""
        self.model.load_state_dict(self.trained_weights())
        return self.model

    def snapshot(self, folder: Path) -> Path:
        """Save the trained weights at this epoch to ``folder/epoch{E:04d}.pt`` and return the path."""
        path = Path(folder) / f"epoch{self.epoch:04d}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = sum(row["seconds"] for row in self.history)
        payload = {"epoch": self.epoch, "iterations": self.iterations, "train_seconds": seconds}
        checkpoint.save(path, {**payload, "state_dict": self.trained_weights()})
        return path

    def payload(self, key: str) -> dict[str, Any]:
        """The checkpoint content."""
        return {
            "fingerprint": key,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "shuffle": self.shuffle.get_state(),
            "draws": self.draws.get_state(),
            "draws_device": self.draws.device.type,
            "iterations": self.iterations,
            "average": None if self.average is None else self.average.state,
            "history": self.history,
        }

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint's content into this state (weights and optimiser moments onto the model's
        device, whichever device wrote them)."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.shuffle.set_state(payload["shuffle"])
        self.epoch = int(payload["epoch"])
        self.iterations = int(payload.get("iterations", 0))
        if self.average is not None:
            saved = payload.get("average") or {}
            self.average.state = {
                name: saved[name].to(value.device) for name, value in self.average.state.items()
            }
        self.history = list(payload["history"])
        written_on = payload.get("draws_device", "cpu")
        if written_on == self.draws.device.type:
            self.draws.set_state(payload["draws"])
            return
        self.draws.manual_seed(reseeded_draws(self.seed, self.epoch))
        log.warning(
            "the checkpoint was written on %s and training resumes on %s: the fire masks and patches go on "
            "from a new seed, so the result will not be bit-identical to an uninterrupted run",
            written_on,
            self.draws.device.type,
        )


CHECKPOINT_KEYS = frozenset(
    ("fingerprint", "epoch", "model", "optimizer", "scheduler", "shuffle", "draws", "history")
)


def _set_aside(path: Path, problem: str) -> Path:
    """Rename a damaged checkpoint to ``checkpoint.pt.damaged-<UTC time>`` beside it and say so."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    path.rename(target)
    log.warning("%s; moved it aside to %s and training from the start", problem, target.name)
    return target


def snapshot_paths(folder: Path) -> list[Path]:
    """The ``epoch{E:04d}.pt`` snapshots in ``folder`` (none if it does not exist), in epoch order."""
    return sorted(Path(folder).glob("epoch[0-9]*.pt")) if Path(folder).is_dir() else []


def _drop_snapshots_after(folder: Path, epoch: int) -> None:
    """Delete the snapshots in ``folder`` taken after ``epoch``: they belong to another run."""
    for path in snapshot_paths(folder):
        if int(path.stem.removeprefix("epoch")) > epoch:
            path.unlink()


def _resume(state: TrainingState, path: Path, key: str, epochs: int) -> None:
    """Continue from ``path`` if it belongs to this run and is not finished; otherwise start afresh.

    A checkpoint that cannot be read (truncated by a crash or a full disk, or not a training checkpoint)
    is moved aside (see ``_set_aside``) and training starts from epoch 0. Either way the snapshots beside
    it are cut back to the epoch training continues from.
    """
    _load_checkpoint(state, path, key, epochs)
    _drop_snapshots_after(path.parent / SNAPSHOTS_NAME, state.epoch)


def _load_checkpoint(state: TrainingState, path: Path, key: str, epochs: int) -> None:
    """``state.restore`` from ``path`` if it holds an unfinished run with fingerprint ``key``."""
    if not path.exists():
        return
    try:
        payload = checkpoint.load(path)
    except DataError as error:
        _set_aside(path, str(error))
        return
    if not isinstance(payload, dict) or not set(payload) >= CHECKPOINT_KEYS:
        _set_aside(path, f"{path}: not a training checkpoint")
        return
    if payload.get("fingerprint") != key:
        log.info("ignoring %s: it was written with other settings", path)
    elif payload["epoch"] >= epochs:
        log.info("ignoring %s: it holds a finished run (%d epochs); training again", path, payload["epoch"])
    else:
        state.restore(payload)
        log.info("resuming from %s at epoch %d of %d", path, state.epoch, epochs)


def _run_epoch(
    state: TrainingState,
    loss_fn: nn.Module,
    images: Tensor,
    labels: Tensor,
    settings: TrainingSettings,
    bar: tqdm,
    budget: int,
) -> float:
    """One pass over the (N, C, H, W) images in shuffled batches, stopping early once ``state.iterations``
    reaches ``budget``; returns the mean loss over the images it trained on."""
    device = next(state.model.parameters()).device
    order = torch.randperm(len(images), generator=state.shuffle)
    state.model.train()
    total, seen = 0.0, 0
    for start in range(0, len(images), settings.batch_size):
        if state.iterations >= budget:
            break
        batch = order[start : start + settings.batch_size]
        x, y = images[batch].to(device), labels[batch].to(device)
        logits, target = state.model.training_forward(x, y, generator=state.draws)
        loss = loss_fn(logits, target)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), settings.grad_clip)
        state.optimizer.step()
        state.scheduler.step()
        state.iterations += 1
        if state.average is not None:
            state.average.update(state.model, state.iterations)
        value = float(loss.detach())
        total += value * len(batch)
        seen += len(batch)
        bar.update(len(batch))
        bar.set_postfix(loss=f"{value:.4f}")
    return total / max(seen, 1)


def planned_length(settings: TrainingSettings, images: int) -> tuple[int, int]:
    """(optimiser steps, epochs) of a run on ``images`` slices: ``settings.iterations`` steps in as many
    epochs as they take, or ``settings.epochs`` whole epochs."""
    batches = math.ceil(images / settings.batch_size)
    if settings.iterations > 0:
        return settings.iterations, math.ceil(settings.iterations / batches)
    return settings.epochs * batches, settings.epochs


def fit_model(
    build: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    settings: TrainingSettings,
    seed: int,
    out_dir: Path,
    device: torch.device,
    context: dict[str, Any] | None = None,
    progress: bool = True,
    history_csv: Path | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train ``build()`` on (N, C, H, W) images and (N, 1, H, W) {0, 1} labels; resume if interrupted.

    ``out_dir`` holds the run's resume state: ``checkpoint.pt`` (every ``checkpoint_every`` epochs and at
    the end), its snapshots and TensorBoard events. The per-epoch history is rewritten to ``history_csv``
    (default ``out_dir/train_log.csv``) after every epoch, from the state a resumed run restores.
    ``context`` (model name, arguments, data description) goes into the
    checkpoint fingerprint. Returns the trained model (with the weights' moving average where
    ``settings.ema_decay`` > 0) and the per-epoch history (``epoch``, ``iterations`` so far, ``loss``, ``lr``,
    ``seconds``).
    """
    from torch.utils.tensorboard import SummaryWriter

    if len(images) == 0:
        raise ValueError("no training images")
    out_dir = Path(out_dir)
    history_csv = out_dir / LOG_NAME if history_csv is None else Path(history_csv)
    with seeded(seed):
        model = build().to(device)
    optimizer = build_optimizer(model, settings)
    iterations, epochs = planned_length(settings, len(images))
    state = TrainingState(
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, settings, iterations),
        shuffle=torch.Generator().manual_seed(seed),
        draws=torch.Generator(device=device).manual_seed(seed + 1),
        seed=seed,
        average=WeightAverage(model, settings.ema_decay) if settings.ema_decay > 0 else None,
    )
    key = fingerprint(settings, seed=seed, **(context or {}))
    _resume(state, out_dir / CHECKPOINT_NAME, key, epochs)
    loss_fn = build_loss(settings.loss, settings.pos_weight, settings.dice_weight, settings.bce_weight).to(
        device
    )
    check_free_space(out_dir, "the training's logs and checkpoints")
    try:
        writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"), purge_step=state.epoch + 1)
    except OSError as error:
        raise DataError(f"{out_dir / 'tensorboard'}: cannot write TensorBoard events ({error})") from error
    try:
        while state.epoch < epochs:
            started = time.perf_counter()
            description = f"epoch {state.epoch + 1}/{epochs}"
            with tqdm(
                total=len(images), desc=description, unit="img", disable=not progress, leave=False
            ) as bar:
                loss = _run_epoch(state, loss_fn, images, labels, settings, bar, iterations)
            state.epoch += 1
            row = {
                "epoch": state.epoch,
                "iterations": state.iterations,
                "loss": loss,
                "lr": state.scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - started,
            }
            state.history.append(row)
            log.info("epoch %d/%d loss %.4f (%.1f s)", state.epoch, epochs, loss, row["seconds"])
            check_free_space(out_dir, f"epoch {state.epoch}'s log and checkpoint")  # before any writer fails
            writer.add_scalar("loss/train", loss, state.epoch)
            writer.add_scalar("lr", row["lr"], state.epoch)
            write_csv(history_csv, pd.DataFrame(state.history))
            if settings.snapshot_every > 0 and state.epoch % settings.snapshot_every == 0:
                state.snapshot(out_dir / SNAPSHOTS_NAME)
            if state.epoch % settings.checkpoint_every == 0 or state.epoch == epochs:
                checkpoint.save(out_dir / CHECKPOINT_NAME, state.payload(key))
    finally:
        writer.close()
    return state.trained_model(), state.history
