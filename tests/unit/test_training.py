"""The training loop: seeded, resumable after a kill, checkpoints that round-trip."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import PREPROCESSING

from mednca.models import build_model
from mednca.models.formulations import resolve_formulation
from mednca.models.nca import nca_rules
from mednca.train import checkpoint, loop
from mednca.train.loop import TrainingSettings, fit_model
from mednca.train.stages import outputs_beside, train_stage

NCA = {"channels": 8, "hidden_size": 16, "steps": 4, "downscale": 2}
SETTINGS = TrainingSettings(epochs=3, batch_size=4, checkpoint_every=1)


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(10, 1, 8, 8, generator=generator)
    return images, (images > 0.6).float()


def _train(out_dir: Path, seed: int = 0, settings: TrainingSettings = SETTINGS, name: str = "med_nca"):
    arguments = NCA if name == "med_nca" else {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    images, labels = _data()

    def build() -> torch.nn.Module:
        return build_model(name, 1, **arguments)

    return fit_model(build, images, labels, settings, seed, out_dir, torch.device("cpu"), progress=False)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", ["med_nca", "unet"])
def test_same_seed_gives_identical_weights_and_losses(tmp_path: Path, name: str) -> None:
    first, first_history = _train(tmp_path / "a", name=name)
    second, second_history = _train(tmp_path / "b", name=name)
    assert _same_weights(first, second)
    assert [r["loss"] for r in first_history] == [r["loss"] for r in second_history]
    other, _ = _train(tmp_path / "c", seed=1, name=name)
    assert not _same_weights(first, other)


def test_training_does_not_touch_the_global_random_state(tmp_path: Path) -> None:
    state = torch.random.get_rng_state()
    _train(tmp_path)
    assert torch.equal(state, torch.random.get_rng_state())


def _killed_in_second_epoch(out_dir: Path, settings: TrainingSettings, monkeypatch) -> None:
    """Train into ``out_dir`` and interrupt the run as its second epoch starts, as a kill would."""
    run_epoch, calls = loop._run_epoch, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_epoch(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "_run_epoch", killed)
        with pytest.raises(KeyboardInterrupt):
            _train(out_dir, settings=settings)


def test_killed_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path: Path, monkeypatch) -> None:
    straight, straight_history = _train(tmp_path / "straight")
    _killed_in_second_epoch(tmp_path / "resumed", SETTINGS, monkeypatch)
    assert checkpoint.load(tmp_path / "resumed" / loop.CHECKPOINT_NAME)["epoch"] == 1
    resumed, resumed_history = _train(tmp_path / "resumed")
    assert _same_weights(straight, resumed)
    assert [r["loss"] for r in resumed_history] == [r["loss"] for r in straight_history]
    assert (tmp_path / "resumed" / loop.LOG_NAME).read_text().count("\n") == 4


def test_checkpoint_from_another_kind_of_device_resumes_with_reseeded_draws(tmp_path: Path, caplog) -> None:
    """A run started on a GPU resumes on a CPU (and back): weights, optimiser and shuffling continue; the
    draws, whose generator state does not fit another device's generator, go on from a seed derived from
    the run's seed and epoch, the same on every resume."""
    settings = TrainingSettings(epochs=1, batch_size=4, checkpoint_every=1)
    _train(tmp_path / "first", settings=settings)
    path = tmp_path / "first" / loop.CHECKPOINT_NAME
    payload = checkpoint.load(path)
    assert payload["draws_device"] == "cpu"
    payload |= {"draws_device": "cuda", "draws": torch.zeros(16, dtype=torch.uint8)}  # a Philox state
    longer = TrainingSettings(epochs=2, batch_size=4, checkpoint_every=1)
    resumed = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        checkpoint.save(tmp_path / name / loop.CHECKPOINT_NAME, payload)
        with caplog.at_level("WARNING", logger="mednca.train.loop"):
            resumed.append(_train(tmp_path / name, settings=longer))
    assert "written on cuda and training resumes on cpu" in caplog.text
    (model_a, history_a), (model_b, history_b) = resumed
    assert len(history_a) == 2 and history_a[0] == payload["history"][0]
    assert _same_weights(model_a, model_b)
    assert [row["loss"] for row in history_a] == [row["loss"] for row in history_b]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _foreign(path: Path) -> None:
    torch.save({"epoch": 1, "weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("damage", [_truncate, _zero_bytes, _foreign], ids=["truncated", "empty", "foreign"])
def test_damaged_checkpoint_is_moved_aside_and_training_restarts(
    tmp_path: Path, monkeypatch, caplog, damage
) -> None:
    straight, straight_history = _train(tmp_path / "straight")
    run_epoch = loop._run_epoch
    calls = []

    def killed_in_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", killed_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "damaged")
    monkeypatch.setattr(loop, "_run_epoch", run_epoch)
    path = tmp_path / "damaged" / loop.CHECKPOINT_NAME
    damage(path)
    damaged_bytes = path.read_bytes()

    with caplog.at_level("WARNING", logger="mednca.train.loop"):
        restarted, history = _train(tmp_path / "damaged")

    aside = list(path.parent.glob(f"{loop.CHECKPOINT_NAME}.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged_bytes
    assert aside[0].name in caplog.text and "training from the start" in caplog.text
    assert checkpoint.load(path)["epoch"] == 3
    assert _same_weights(straight, restarted)
    assert [r["loss"] for r in history] == [r["loss"] for r in straight_history]
    assert (tmp_path / "damaged" / loop.LOG_NAME).read_text().count("\n") == 4


def test_checkpoint_of_other_settings_is_ignored(tmp_path: Path) -> None:
    _train(tmp_path, settings=TrainingSettings(epochs=1, batch_size=4, lr=0.1))
    _, history = _train(tmp_path)
    assert len(history) == 3
    assert history[0]["lr"] < 1.6e-3


def test_model_file_round_trip(tmp_path: Path) -> None:
    preprocessing = PREPROCESSING.repeated(2)
    model = build_model("med_nca", 2, **NCA)
    torch.nn.init.normal_(model.level2.fc1.weight)
    checkpoint.save(tmp_path / "model.pt", checkpoint.model_payload("med_nca", 2, NCA, model, preprocessing))
    loaded, payload = checkpoint.load_model(tmp_path / "model.pt")
    images = torch.rand(2, 2, 8, 8)
    expected = model.eval()(images, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loaded(images, generator=torch.Generator().manual_seed(3)), expected)
    assert payload["preprocessing"] == preprocessing  # typed again, repeated channels included
    stored = torch.load(tmp_path / "model.pt", weights_only=True)["preprocessing"]
    assert stored == preprocessing.as_mapping() and stored["image_size"] == [16, 16]


def test_damaged_model_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="model.pt: cannot load model checkpoint"):
        checkpoint.load_model(tmp_path / "model.pt")


def test_train_stage_then_fine_tune_with_repeated_channels(prepared_phantom: Path, tmp_path: Path) -> None:
    settings = TrainingSettings(epochs=1, batch_size=8)
    preprocessing = PREPROCESSING
    common = {"slices_dir": prepared_phantom / "slices", "manifest_csv": prepared_phantom / "manifest.csv"}
    train_stage(**common, model_path=tmp_path / "a" / "model.pt", model_name="med_nca", arguments=NCA,
                settings=settings, seed=0, preprocessing=preprocessing, device_name="cpu",
                **outputs_beside(tmp_path / "a" / "model.pt"))  # fmt: skip
    payload = checkpoint.load(tmp_path / "a" / "model.pt")
    assert payload["training"]["train_cases"] == 3 and payload["training"]["parameters"] > 0
    assert (tmp_path / "a" / "training.json").exists() and (tmp_path / "a" / "train_log.csv").exists()
    # The formulation the rule resolved to is recorded, and a loaded model computes that way on any device.
    recorded = json.loads((tmp_path / "a" / "training.json").read_text())["formulation"]
    expected = resolve_formulation(
        NCA.get("cell_rule", "auto"), NCA.get("precision", "fp32"), torch.device("cpu"), False
    )
    assert recorded["inference"] == payload["formulation"] == expected.describe()
    loaded, _ = checkpoint.load_model(tmp_path / "a" / "model.pt")
    assert {rule.formulation(torch.device("cuda")).describe()["cell_rule"] for rule in nca_rules(loaded)} == {
        payload["formulation"]["cell_rule"]
    }

    three_channels = dict(payload, in_channels=3, state_dict=build_model("med_nca", 3, **NCA).state_dict())
    three_channels["preprocessing"] = dict(payload["preprocessing"], modalities=[0, 1, 2])
    checkpoint.save(tmp_path / "source.pt", three_channels)
    train_stage(**common, model_path=tmp_path / "b" / "model.pt", model_name="med_nca", arguments=NCA,
                settings=settings, seed=0, preprocessing=preprocessing, device_name="cpu", max_cases=2,
                init_model=tmp_path / "source.pt", **outputs_beside(tmp_path / "b" / "model.pt"))  # fmt: skip
    tuned = checkpoint.load(tmp_path / "b" / "model.pt")
    assert tuned["in_channels"] == 3 and tuned["preprocessing"]["repeat_channels"] == 3
    assert tuned["training"]["train_cases"] == 2


def _rates(settings: TrainingSettings, iterations: int) -> list[float]:
    """The learning rate of every optimiser step of a run of ``iterations`` steps at lr 0.1."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = loop.build_scheduler(optimizer, settings, iterations=iterations)
    rates = []
    for _ in range(iterations):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    return rates


def test_cosine_schedule_warms_up_then_decays_to_zero_at_the_last_iteration() -> None:
    settings = TrainingSettings(epochs=1, batch_size=1, schedule="cosine", warmup_iterations=4)
    rates = _rates(settings, iterations=40)
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert max(rates) == pytest.approx(0.1) and rates[4] == pytest.approx(0.1)
    assert all(later <= earlier for earlier, later in zip(rates[4:], rates[5:], strict=False))
    # In a run of 10 steps the warm-up takes a fifth of it, not 4 steps.
    short = _rates(settings, iterations=10)
    assert short[:4] == pytest.approx([0.05, 0.1, 0.1, 0.05 * (1 + math.cos(math.pi / 8))])


def test_only_the_cosine_schedule_ties_a_checkpoint_to_the_epoch_count_and_snapshots_never() -> None:
    for schedule, tied in (("exponential", False), ("cosine", True)):
        short, long = (TrainingSettings(epochs=epochs, batch_size=4, schedule=schedule) for epochs in (3, 6))
        assert (loop.fingerprint(short, seed=0) != loop.fingerprint(long, seed=0)) == tied
    plain = TrainingSettings(epochs=3, batch_size=4)
    with_snapshots = TrainingSettings(epochs=3, batch_size=4, snapshot_every=1)
    assert loop.fingerprint(plain, seed=0) == loop.fingerprint(with_snapshots, seed=0)


def test_weight_average_follows_the_weights_with_its_decay() -> None:
    model = torch.nn.Linear(2, 1)
    average = loop.WeightAverage(model, decay=0.75)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(4.0)
    average.update(model, step=100)
    torch.testing.assert_close(average.state["weight"], start + 1.0)
    # Early steps use the warmed-up decay (1 + n) / (10 + n): at step 1, 2/11 instead of 0.75.
    assert average.decay_at(1) == pytest.approx(2 / 11) and average.decay_at(100) == 0.75
    with torch.no_grad():
        model.weight.copy_(start)
    average.update(model, step=1)
    torch.testing.assert_close(average.state["weight"], start + 1.0 * 2 / 11)


def test_recipe_options_change_training_and_resume_bit_for_bit(tmp_path: Path, monkeypatch) -> None:
    """EMA (the trained model holds the average), gradient clipping, the loss weights and the cosine
    schedule each change the result; a killed run with all of them resumes to the same weights."""
    recipe = TrainingSettings(
        epochs=3,
        batch_size=4,
        checkpoint_every=1,
        schedule="cosine",
        warmup_iterations=2,
        dice_weight=1.2,
        bce_weight=0.8,
        grad_clip=0.5,
        ema_decay=0.9,
    )
    plain, plain_history = _train(tmp_path / "plain")
    straight, history = _train(tmp_path / "recipe", settings=recipe)
    assert not _same_weights(plain, straight)
    assert [row["iterations"] for row in history] == [3, 6, 9]  # 10 slices in batches of 4
    raw = checkpoint.load(tmp_path / "recipe" / loop.CHECKPOINT_NAME)["model"]
    assert not all(torch.equal(raw[name], value) for name, value in straight.state_dict().items())
    _killed_in_second_epoch(tmp_path / "resumed", recipe, monkeypatch)
    resumed, _ = _train(tmp_path / "resumed", settings=recipe)
    assert _same_weights(straight, resumed)


def test_snapshots_hold_the_trained_weights_and_leave_the_run_unchanged(tmp_path: Path) -> None:
    """Snapshots every 2 epochs hold what the trained model would be then (the moving average with
    ``ema_decay``), with the iterations and training time so far; the run's result is unchanged."""
    settings = TrainingSettings(epochs=4, batch_size=4, ema_decay=0.5)
    plain, _ = _train(tmp_path / "plain", settings=settings)
    with_snapshots = TrainingSettings(epochs=4, batch_size=4, ema_decay=0.5, snapshot_every=2)
    model, history = _train(tmp_path / "snapshots", settings=with_snapshots)
    assert _same_weights(plain, model)
    folder = tmp_path / "snapshots" / loop.SNAPSHOTS_NAME
    assert sorted(path.name for path in folder.iterdir()) == ["epoch0002.pt", "epoch0004.pt"]
    last, middle = (checkpoint.load(folder / name) for name in ("epoch0004.pt", "epoch0002.pt"))
    assert all(torch.equal(last["state_dict"][name], value) for name, value in model.state_dict().items())
    assert (middle["epoch"], middle["iterations"]) == (2, 6)
    assert middle["train_seconds"] == pytest.approx(sum(row["seconds"] for row in history[:2]))
    assert not all(torch.equal(middle["state_dict"][k], v) for k, v in last["state_dict"].items())


def test_the_snapshot_store_only_holds_the_run_in_progress(tmp_path: Path, monkeypatch) -> None:
    """A resumed run keeps the snapshots taken before its checkpoint and drops later ones (left by another
    run); a fresh start (other settings) empties the store, so no stale snapshot is published."""
    settings = TrainingSettings(epochs=3, batch_size=4, checkpoint_every=1, snapshot_every=1)
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    _train(straight_dir, settings=settings)
    _killed_in_second_epoch(resumed_dir, settings, monkeypatch)
    store = resumed_dir / loop.SNAPSHOTS_NAME
    stale = checkpoint.load(straight_dir / loop.SNAPSHOTS_NAME / "epoch0003.pt")
    checkpoint.save(store / "epoch0003.pt", {**stale, "train_seconds": -1.0})
    checkpoint.save(store / "epoch0007.pt", stale)
    _train(resumed_dir, settings=settings)
    names = [path.name for path in loop.snapshot_paths(store)]
    assert names == ["epoch0001.pt", "epoch0002.pt", "epoch0003.pt"]
    for name in names:
        ours, theirs = (
            checkpoint.load(folder / loop.SNAPSHOTS_NAME / name) for folder in (resumed_dir, straight_dir)
        )
        assert ours["iterations"] == theirs["iterations"] and ours["train_seconds"] > 0
        assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())
    _train(resumed_dir, settings=dataclasses.replace(settings, lr=1e-3, snapshot_every=2))
    assert [path.name for path in loop.snapshot_paths(store)] == ["epoch0002.pt"]


def test_an_iteration_budget_stops_inside_the_last_epoch_and_resumes_bit_for_bit(
    tmp_path: Path, monkeypatch
) -> None:
    """``iterations`` fixes the optimiser steps whatever the data size: 7 steps of batch 4 on 10 slices
    are 3 epochs, the last one cut after 1 batch; the cosine schedule reaches 0 at the 7th step."""
    budget = TrainingSettings(
        epochs=1, batch_size=4, checkpoint_every=1, iterations=7, schedule="cosine", warmup_iterations=2
    )
    straight, history = _train(tmp_path / "straight", settings=budget)
    assert [row["iterations"] for row in history] == [3, 6, 7]
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert loop.planned_length(budget, images=5) == (7, 4)
    assert loop.planned_length(dataclasses.replace(budget, iterations=0, epochs=2), images=10) == (6, 2)
    _killed_in_second_epoch(tmp_path / "resumed", budget, monkeypatch)
    resumed, resumed_history = _train(tmp_path / "resumed", settings=budget)
    assert _same_weights(straight, resumed)
    assert [row["loss"] for row in resumed_history] == [row["loss"] for row in history]
    longer = dataclasses.replace(budget, iterations=9)
    assert loop.fingerprint(budget, seed=0) != loop.fingerprint(longer, seed=0)
    assert loop.fingerprint(budget, seed=0) == loop.fingerprint(dataclasses.replace(budget, epochs=5), seed=0)
