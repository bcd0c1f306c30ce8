"""The training stage as the workflow runs it: data of the train split in, ``model.pt`` out."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mednca import provenance
from mednca.data.preprocess import load_profile
from mednca.data.preprocessing import Preprocessing
from mednca.data.ranges import training_ranges
from mednca.device import peak_memory_mb, resolve_device
from mednca.errors import ConfigError, DataError
from mednca.io import write_json
from mednca.models import build_model, count_parameters
from mednca.models.nca import resolved_formulations
from mednca.models.registry import image_size_problem
from mednca.train import checkpoint
from mednca.train.data import choose_cases, load_training_slices, repeat_channels, split_case_ids
from mednca.train.loop import LOG_NAME, SNAPSHOTS_NAME, TrainingSettings, fit_model, snapshot_paths

SUMMARY_NAME = "training.json"
PUBLISHED_SNAPSHOTS = "snapshots"

log = logging.getLogger(__name__)


def _transfer_source(init_model: Path, model_name: str, data_channels: int) -> tuple[dict[str, Any], int]:
    """The source model file's payload and how often to repeat the target's channels to match its input."""
    _, payload = checkpoint.load_model(init_model)  # checks every part of the file
    if payload.get("model") != model_name:
        raise DataError(f"{init_model}: holds a '{payload.get('model')}' model, not '{model_name}'")
    source_channels = int(payload["in_channels"])
    if source_channels == data_channels:
        return payload, 1
    if data_channels == 1:
        return payload, source_channels
    raise DataError(
        f"{init_model}: the source model takes {source_channels} input channels but the target data has "
        f"{data_channels}; fine-tuning needs equal channels or single-channel target data"
    )


def train_stage(
    slices_dir: Path,
    manifest_csv: Path,
    model_path: Path,
    model_name: str,
    arguments: dict[str, Any],
    settings: TrainingSettings,
    seed: int,
    preprocessing: Preprocessing,
    device_name: str,
    summary_json: Path,
    history_csv: Path,
    snapshots_dir: Path,
    max_cases: int | None = None,
    init_model: Path | None = None,
) -> None:
    """Train ``model_name`` on the train split (or ``max_cases`` of it); fine-tune ``init_model`` if given.

    Writes ``model_path`` (weights, architecture, preprocessing, training summary), the summary again as
    ``summary_json``, the per-epoch ``history_csv`` and the run's snapshots (``settings.snapshot_every``) as
    model files ``snapshots_dir/epoch{E:04d}.pt``. The resume state (checkpoint, its snapshots, TensorBoard
    events) lives beside ``model_path``: it is not an output, so that a re-run finds it.
    """
    out_dir = Path(model_path).parent
    case_ids = choose_cases(split_case_ids(manifest_csv, "train"), max_cases, seed)
    images, labels = load_training_slices(slices_dir, case_ids)
    source, repeat = (None, 1)
    if init_model is not None:
        source, repeat = _transfer_source(Path(init_model), model_name, images.shape[1])
        images = repeat_channels(images, repeat)
    in_channels = images.shape[1]
    size = tuple(images.shape[-2:])
    problem = image_size_problem(model_name, arguments, size)
    if problem is not None:
        raise ConfigError(f"model '{model_name}' cannot take the {size} slices in {slices_dir}; {problem}")

    def build() -> nn.Module:
        model = build_model(model_name, in_channels, **arguments)
        if source is not None:
            model.load_state_dict(source["state_dict"])
        return model

    device = resolve_device(device_name)
    log.info(
        "training %s (seed %d) on %d slices of %d case(s), %s, device %s",
        model_name, seed, len(images), len(case_ids), tuple(images.shape[1:]), device,
    )  # fmt: skip
    started = time.perf_counter()
    context = {"model": model_name, "arguments": arguments, "cases": case_ids, "init": str(init_model)}
    model, history = fit_model(
        build, images, labels, settings, seed, out_dir, device, context, history_csv=history_csv
    )
    summary = {
        "model": model_name,
        "seed": seed,
        "parameters": count_parameters(model),
        "train_cases": len(case_ids),
        "train_cases_sha256": provenance.case_list_hash(case_ids),
        "train_slices": len(images),
        "epochs": len(history),
        "iterations": history[-1]["iterations"],
        "final_loss": history[-1]["loss"],
        "train_seconds": sum(row["seconds"] for row in history),
        "session_seconds": time.perf_counter() - started,
        "peak_memory_mb": peak_memory_mb(device),
        "device": str(device),
        "formulation": resolved_formulations(model, device),
        "settings": dataclasses.asdict(settings),
        "init_model": None if init_model is None else str(init_model),
        "commit": provenance.git_state(),
        "machine": provenance.machine(torch.get_num_threads()),
        "versions": provenance.package_versions(),
    }
    ranges = training_ranges([load_profile(Path(slices_dir) / f"{case}.npz") for case in case_ids])
    payload = checkpoint.model_payload(
        model_name, in_channels, arguments, model.cpu(), preprocessing.repeated(repeat), ranges
    )
    if summary["formulation"] is not None:
        payload["formulation"] = summary["formulation"]["inference"]
    publish_snapshots(out_dir / SNAPSHOTS_NAME, Path(snapshots_dir), payload)
    checkpoint.save(model_path, {**payload, "training": summary})
    write_json(summary_json, summary)


def outputs_beside(model_path: Path) -> dict[str, Path]:
    """``train_stage``'s other outputs in the model's folder, as the command line writes them."""
    folder = Path(model_path).parent
    return {
        "summary_json": folder / SUMMARY_NAME,
        "history_csv": folder / LOG_NAME,
        "snapshots_dir": folder / PUBLISHED_SNAPSHOTS,
    }


SNAPSHOT_KEYS = ("epoch", "iterations", "train_seconds")
"""What a snapshot model file records of its point in training, under ``training``."""


def publish_snapshots(store: Path, snapshots_dir: Path, payload: dict[str, Any]) -> list[Path]:
    """Write each weight snapshot in ``store`` as a model file in ``snapshots_dir`` (created, maybe empty).

    ``payload`` is the trained model's file content; each snapshot file is that with the snapshot's
    weights and ``training`` = its epoch, iterations and training seconds, so ``mednca predict`` and the
    learning curve read it like any model file.
    """
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in snapshot_paths(store):
        snapshot = checkpoint.load(path)
        target = snapshots_dir / path.name
        training = {key: snapshot[key] for key in SNAPSHOT_KEYS}
        checkpoint.save(target, {**payload, "state_dict": snapshot["state_dict"], "training": training})
        written.append(target)
    return written
