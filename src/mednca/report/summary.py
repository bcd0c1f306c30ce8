"""Run-level summary files for comparing runs with DVC (``dvc metrics diff``, ``dvc plots diff``).

``metrics.json`` nests the headline numbers of every run as {dataset: {model: {seedN: {...}}}};
``training.csv``, ``learning_curve.csv`` and ``robustness.csv`` are long tables with a ``series`` column
naming each curve, drawn by the ``series`` plot template in ``.dvc/plots``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mednca.io import write_csv, write_json
from mednca.report.collect import (
    Missing,
    Run,
    RunFiles,
    load_learning_curves,
    load_robustness,
    load_summaries,
    load_training,
)
from mednca.report.tables import severity_means

METRIC_KEYS = (
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "nqm_mean",
    "parameters",
    "train_seconds",
    "inference_seconds_mean",
)


def run_metrics(summaries: pd.DataFrame) -> dict:
    """{dataset: {model: {"seed<N>": {key: value}}}} of the ``METRIC_KEYS`` present (NaN left out)."""
    nested: dict = {}
    for row in summaries.to_dict("records"):
        values = {
            key: float(row[key])
            for key in METRIC_KEYS
            if key in row and row[key] is not None and not math.isnan(float(row[key]))
        }
        nested.setdefault(row["dataset"], {}).setdefault(row["model"], {})[f"seed{row['seed']}"] = values
    return nested


def _series(table: pd.DataFrame) -> pd.Series:
    """'dataset/model/seedN' (or 'dataset/study/model/seedN' when the table has a study) per row."""
    names = table["dataset"] + "/" + (table["study"] + "/" if "study" in table else "") + table["model"]
    return names + "/seed" + table["seed"].astype(str)


def training_series(training: pd.DataFrame) -> pd.DataFrame:
    """Columns series ('dataset/model/seedN'), epoch, loss."""
    return pd.DataFrame({"series": _series(training), "epoch": training["epoch"], "loss": training["loss"]})


def learning_curve_series(curves: pd.DataFrame) -> pd.DataFrame:
    """Columns series ('dataset/model/seedN'), epoch, iterations, train_seconds, dice_mean, hd95_mean."""
    columns = ["epoch", "iterations", "train_seconds", "dice_mean", "hd95_mean"]
    if curves.empty:
        return pd.DataFrame(columns=["series", *columns])
    return curves.assign(series=_series(curves))[["series", *columns]]


def robustness_series(robustness: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice over cases per severity: series ('dataset/study/model/seedN'), severity, value, dice."""
    columns = ["series", "severity", "value", "dice"]
    if robustness.empty:
        return pd.DataFrame(columns=columns)
    means = severity_means(robustness, ["dataset", "study", "model", "seed"])
    return means.assign(series=_series(means))[columns]


def summary_stage(
    files: dict[Run, RunFiles],
    studies: list[str],
    metrics_json: Path,
    training_csv: Path,
    learning_curve_csv: Path,
    robustness_csv: Path,
) -> None:
    """Write the four summary files from the result files of each run (missing ones are skipped)."""
    missing = Missing()
    write_json(metrics_json, run_metrics(load_summaries(files, missing)))
    write_csv(training_csv, training_series(load_training(files, missing)))
    write_csv(learning_curve_csv, learning_curve_series(load_learning_curves(files, missing)))
    write_csv(robustness_csv, robustness_series(load_robustness(files, studies, missing)))
