"""The data-efficiency study's table: one row per run (model, k training cases, seed) with its test score.

Each run is a model trained on k cases of the train split with the study's budget of optimiser steps
(``train_stage``'s ``training.json``) and scored on the whole test split by the learning-curve code (its
``score.csv``: one point, the trained model). Nothing is recomputed here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mednca.errors import DataError
from mednca.evaluate.columns import CURVE_COLUMNS, EFFICIENCY_COLUMNS
from mednca.io import check_output, write_csv

log = logging.getLogger(__name__)


def _training_record(path: Path) -> dict[str, Any]:
    """The parts of a ``training.json`` the table needs; a DataError names a missing or damaged file."""
    try:
        record = json.loads(Path(path).read_text())
        return {
            "train_cases": int(record["train_cases"]),
            "iterations": int(record["iterations"]),
            "batch_size": int(record["settings"]["batch_size"]),
            "train_seconds": float(record["train_seconds"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a readable training summary ({error})") from error


def _score(path: Path) -> dict[str, float]:
    """The single point of a run's ``score.csv``; a DataError names a file that is not one."""
    try:
        score = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: cannot read the score ({error})") from error
    missing = [column for column in CURVE_COLUMNS if column not in score.columns]
    if missing or len(score) != 1:
        raise DataError(
            f"{path}: not the score of one trained model (needs one row of {', '.join(CURVE_COLUMNS)})"
        )
    point = score.iloc[0]
    return {
        "test_cases": int(point["cases"]),
        **{key: float(point[key]) for key in ("dice_mean", "dice_std", "hd95_mean", "hd95_std")},
    }


def efficiency_table(
    dataset: str, runs: Sequence[Sequence[Any]], scores: Sequence[Path], trainings: Sequence[Path]
) -> pd.DataFrame:
    """``EFFICIENCY_COLUMNS`` of every run; ``runs`` are (model, cases, seed), ``scores`` and ``trainings``
    their files in the same order."""
    if not len(runs) == len(scores) == len(trainings):
        raise ValueError(f"{len(runs)} runs but {len(scores)} scores and {len(trainings)} training summaries")
    rows = []
    for (model, cases, seed), score, training in zip(runs, scores, trainings, strict=True):
        record = _training_record(Path(training))
        if cases != "all" and record["train_cases"] < int(cases):
            log.warning(
                "%s: asked for %s training cases, the train split has %d",
                training,
                cases,
                record["train_cases"],
            )
        rows.append(
            {"dataset": dataset, "model": model, "cases": str(cases), "seed": int(seed)}
            | record
            | _score(Path(score))
        )
    return pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS)


def efficiency_table_stage(
    dataset: str,
    runs: Sequence[Sequence[Any]],
    scores: Sequence[Path],
    trainings: Sequence[Path],
    table_csv: Path,
) -> pd.DataFrame:
    """Write ``efficiency_table`` to ``table_csv`` (never over one of its inputs) and return it."""
    check_output(Path(table_csv), [*scores, *trainings])
    table = efficiency_table(dataset, runs, scores, trainings)
    write_csv(Path(table_csv), table)
    log.info("%d data-efficiency runs of %s in %s", len(table), dataset, table_csv)
    return table
