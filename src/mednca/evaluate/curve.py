"""The learning curve of one trained model: Dice and HD95 of its snapshots and of the final model on the
test split (description) or the validation split (what the training length is judged on).

Each point is a model file with its place in training (epoch, optimiser steps, training seconds so far):
the snapshots the training stage wrote every ``snapshot_every`` epochs, then the trained model itself. Every
point segments the whole test split exactly as the evaluation stage does, with one run per case for a
stochastic model (the evaluation's ``nca_runs`` average makes its final value differ slightly).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from mednca.errors import DataError
from mednca.evaluate.columns import CURVE_COLUMNS
from mednca.evaluate.evaluation import held_out_cases, load_segmenter, score_cases, summarise
from mednca.io import check_output, write_csv
from mednca.train.checkpoint import load
from mednca.train.loop import snapshot_paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurvePoint:
    """A model file and how far training had gone when it was written."""

    path: Path
    epoch: int
    iterations: int
    train_seconds: float


def _count(path: Path, training: dict, key: str) -> float:
    """``training[key]`` as a finite, non-negative number; anything else is a DataError naming the file."""
    value = training.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise DataError(f"{path}: its training record has no valid '{key}' (found {value!r})")
    return value


def curve_point(path: Path) -> CurvePoint:
    """Where in training the model file ``path`` was written (its ``training`` record)."""
    payload = load(path)
    training = payload.get("training") if isinstance(payload, dict) else None
    if not isinstance(training, dict):
        raise DataError(f"{path}: not a trained model file (it has no training record)")
    epoch = _count(path, training, "epoch" if "epoch" in training else "epochs")
    return CurvePoint(
        Path(path),
        int(epoch),
        int(_count(path, training, "iterations")),
        float(_count(path, training, "train_seconds")),
    )


def curve_points(model_path: Path, snapshots_dir: Path) -> list[CurvePoint]:
    """The snapshots in ``snapshots_dir`` by epoch, then the trained model (a snapshot of the last epoch
    is the trained model, so it is left out)."""
    final = curve_point(Path(model_path))
    snapshots = [curve_point(path) for path in snapshot_paths(Path(snapshots_dir))]
    return [point for point in snapshots if point.epoch < final.epoch] + [final]


def learning_curve_stage(
    model_path: Path,
    snapshots_dir: Path,
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    curve_csv: Path,
    seed: int,
    device_name: str,
    batch_size: int,
    split: str = "test",
) -> pd.DataFrame:
    """Score every point of a run's learning curve on ``split`` (test or validation); write and return
    ``CURVE_COLUMNS``."""
    check_output(Path(curve_csv), [model_path, manifest_csv, cases_csv, source_json])
    points = curve_points(Path(model_path), Path(snapshots_dir))
    rows = []
    with tqdm(total=len(points), desc="learning curve", unit="model") as bar:
        for point in points:
            segmenter = load_segmenter(point.path, device_name, 1, batch_size)
            cases = held_out_cases(manifest_csv, cases_csv, source_json, segmenter, split)
            per_case = pd.DataFrame([scored.row for scored in score_cases(segmenter, cases, seed)])
            summary = summarise(per_case)
            rows.append(
                {
                    "epoch": point.epoch,
                    "iterations": point.iterations,
                    "train_seconds": point.train_seconds,
                    **{key: summary[key] for key in CURVE_COLUMNS[3:]},
                }
            )
            log.info(
                "epoch %d (%.0f s of training): Dice %.3f over %d %s cases",
                point.epoch, point.train_seconds, summary["dice_mean"], summary["cases"], split,
            )  # fmt: skip
            bar.update()
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    write_csv(Path(curve_csv), curve)
    return curve
