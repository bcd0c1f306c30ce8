"""The report's tables, aggregated from the per-case metrics and run summaries.

Aggregation only: a dataset x model row pools the per-case Dice of all its seeds (mean and population
standard deviation over cases, as in each run's ``summary.json``) and adds the spread of the per-seed means
when there are several seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mednca.errors import DataError
from mednca.evaluate.columns import EFFICIENCY_COLUMNS

MAIN_COLUMNS = [
    "dataset",
    "model",
    "seeds",
    "cases",
    "dice_mean",
    "dice_std",
    "dice_seed_std",
    "hd95_mean",
    "hd95_std",
    "parameters",
    "train_seconds",
    "inference_seconds",
    "train_peak_mb",
    "inference_peak_mb",
    "nqm_mean",
    "paper_dice",
    "paper_dice_std",
    "dice_vs_paper",
]


def _population_std(values: pd.Series) -> float:
    """Standard deviation with ddof=0 over the non-missing values (NaN when there are none)."""
    values = values.dropna()
    return float(values.std(ddof=0)) if len(values) else float("nan")


def _summary_value(summaries: pd.DataFrame, column: str, how: str) -> float:
    """``how`` ('mean' or 'max') of a summary column, NaN when the column is absent or empty."""
    if column not in summaries or summaries[column].isna().all():
        return float("nan")
    values = pd.to_numeric(summaries[column], errors="coerce")
    return float(values.max() if how == "max" else values.mean())


def _paper_value(paper: dict, dataset: str, model: str, key: str) -> float:
    """A published value from the config's ``paper_results`` (NaN when the paper has none)."""
    return float(paper.get(dataset, {}).get(model, {}).get(key, np.nan))


def main_table(per_case: pd.DataFrame, summaries: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """One row per dataset x model with the columns of ``MAIN_COLUMNS`` (the paper's Table 1 and costs)."""
    rows = []
    for (dataset, model), cases in per_case.groupby(["dataset", "model"], sort=True):
        runs = summaries[(summaries["dataset"] == dataset) & (summaries["model"] == model)]
        seed_means = cases.groupby("seed")["dice"].mean()
        paper_dice = _paper_value(paper, dataset, model, "dice")
        dice_mean = float(cases["dice"].mean())
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "seeds": int(cases["seed"].nunique()),
                "cases": int(cases.groupby("seed")["case_id"].nunique().max()),
                "dice_mean": dice_mean,
                "dice_std": _population_std(cases["dice"]),
                "dice_seed_std": _population_std(seed_means) if len(seed_means) > 1 else float("nan"),
                "hd95_mean": float(cases["hd95"].mean()),
                "hd95_std": _population_std(cases["hd95"]),
                "parameters": _summary_value(runs, "parameters", "max"),
                "train_seconds": _summary_value(runs, "train_seconds", "mean"),
                "inference_seconds": _summary_value(runs, "inference_seconds_mean", "mean"),
                "train_peak_mb": _summary_value(runs, "train_peak_memory_mb", "max"),
                "inference_peak_mb": _summary_value(runs, "inference_peak_memory_mb", "max"),
                "nqm_mean": float(cases["nqm"].mean()) if "nqm" in cases else float("nan"),
                "paper_dice": paper_dice,
                "paper_dice_std": _paper_value(paper, dataset, model, "dice_std"),
                "dice_vs_paper": dice_mean - paper_dice,
            }
        )
    return pd.DataFrame(rows, columns=MAIN_COLUMNS)


def small_split_volumes(per_case: pd.DataFrame, fewer_than: int) -> pd.DataFrame:
    """Every test volume of the datasets whose test split has fewer than ``fewer_than`` volumes.

    Columns dataset, case_id, model, seed, dice, hd95, label_voxels, predicted_voxels, nqm; sorted by
    dataset, case, model and seed. Such a split's mean is a check rather than an estimate, so the report
    shows its volumes one by one.
    """
    columns = [
        "dataset",
        "case_id",
        "model",
        "seed",
        "dice",
        "hd95",
        "label_voxels",
        "predicted_voxels",
        "nqm",
    ]
    if per_case.empty:
        return pd.DataFrame(columns=columns)
    volumes = per_case.groupby("dataset")["case_id"].nunique()
    small = volumes.index[volumes < fewer_than]
    rows = per_case[per_case["dataset"].isin(small)].reindex(columns=columns)
    return rows.sort_values(["dataset", "case_id", "model", "seed"]).reset_index(drop=True)


def severity_means(robustness: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean Dice over the rows of each ``keys`` group and severity, with the study's value at that severity.

    Columns: ``keys``, severity, value, dice.
    """
    return (
        robustness.groupby([*keys, "severity"], sort=True)
        .agg(value=("value", "first"), dice=("dice", "mean"))
        .reset_index()
    )


def robustness_summary(robustness: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice per dataset, study, model and severity (over cases and seeds), with the study's value.

    Columns: dataset, study, model, severity, value, dice, drop (clean Dice minus this severity's Dice).
    """
    columns = ["dataset", "study", "model", "severity", "value", "dice", "drop"]
    if robustness.empty:
        return pd.DataFrame(columns=columns)
    means = severity_means(robustness, ["dataset", "study", "model"])
    clean = means[means["severity"] == 0].set_index(["dataset", "study", "model"])["dice"]
    keys = pd.MultiIndex.from_frame(means[["dataset", "study", "model"]])
    means["drop"] = clean.reindex(keys).to_numpy() - means["dice"].to_numpy()
    return means[columns]


def stage_times(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Total wall time, job count and largest peak memory per stage, slowest first."""
    if benchmarks.empty:
        return pd.DataFrame(columns=["stage", "jobs", "seconds", "max_rss_mb"])
    table = benchmarks.groupby("stage").agg(
        jobs=("job", "count"), seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max")
    )
    return table.sort_values("seconds", ascending=False).reset_index()


def robustness_wide(summary: pd.DataFrame) -> pd.DataFrame:
    """``robustness_summary`` with one row per dataset, study and model and one column pair per severity.

    Columns: dataset, study, model, then ``dice_{s}`` and ``value_{s}`` for every severity s (NaN where a
    study has fewer levels).
    """
    if summary.empty:
        return pd.DataFrame(columns=["dataset", "study", "model"])
    wide = summary.pivot_table(
        index=["dataset", "study", "model"], columns="severity", values=["dice", "value"], aggfunc="first"
    )
    wide.columns = [f"{name}_{int(severity)}" for name, severity in wide.columns]
    return wide.reset_index()


def ablation_summary(runs: pd.DataFrame, reference: str = "paper") -> pd.DataFrame:
    """Per variant (in first-seen order): seeds, epochs, mean training minutes, mean Dice over seeds (on the
    split the runs were scored on), the seeds' lowest and highest Dice, mean HD95 and the Dice difference to
    the ``reference`` variant."""
    grouped = runs.groupby("variant", sort=False)
    table = pd.DataFrame(
        {
            "seeds": grouped["seed"].count(),
            "epochs": grouped["epochs"].first(),
            "train_minutes": grouped["train_minutes"].mean(),
            "dice": grouped["dice_mean"].mean(),
            "dice_seed_min": grouped["dice_mean"].min(),
            "dice_seed_max": grouped["dice_mean"].max(),
            "hd95": grouped["hd95_mean"].mean() if "hd95_mean" in runs else float("nan"),
        }
    )
    baseline = table["dice"].get(reference, float("nan"))
    return table.assign(dice_vs_reference=table["dice"] - baseline).reset_index()


def ablation_verdict(summary: pd.DataFrame) -> str:
    """The variant of an ``ablation_summary`` with the highest mean Dice and the variants its seeds cannot
    separate from it (their ranges of seed Dice meet its range)."""
    table = summary.set_index("variant")
    best = table["dice"].idxmax()
    overlapping = [
        str(variant)
        for variant, row in table.iterrows()
        if variant != best and row.dice_seed_max >= table.at[best, "dice_seed_min"]
    ]
    separable = (
        f"not separable from it at these seeds (their ranges of seeds meet): {', '.join(overlapping)}"
        if overlapping
        else "no other variant's range of seeds reaches it"
    )
    return f"Highest mean Dice: {best} ({table.at[best, 'dice']:.3f}); {separable}."


def read_efficiency(path: Path) -> pd.DataFrame:
    """A data-efficiency table (``EFFICIENCY_COLUMNS``, one row per run); a DataError names a bad file."""
    return _read_runs(path, EFFICIENCY_COLUMNS, "data-efficiency table", dtype={"cases": str})


def _read_runs(path: Path, columns: list[str], what: str, dtype: dict | None = None) -> pd.DataFrame:
    """A CSV table of one row per run with at least ``columns``; a DataError names a bad or empty file."""
    try:
        runs = pd.read_csv(path, dtype=dtype)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: cannot read the {what} ({error})") from error
    missing = [column for column in columns if column not in runs.columns]
    if missing:
        article = "an" if what[0] in "aeiou" else "a"
        raise DataError(f"{path}: not {article} {what} (lacks {', '.join(missing)})")
    if runs.empty:
        raise DataError(f"{path}: the {what} has no runs")
    return runs


def efficiency_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and k (in first-seen order): training cases, seeds, mean training minutes and optimiser
    steps, mean test Dice over seeds with the seeds' lowest and highest, and mean HD95."""
    grouped = runs.groupby(["model", "cases"], sort=False)
    table = pd.DataFrame(
        {
            "train_cases": grouped["train_cases"].first(),
            "seeds": grouped["seed"].count(),
            "iterations": grouped["iterations"].first(),
            "train_minutes": grouped["train_seconds"].mean() / 60,
            "dice": grouped["dice_mean"].mean(),
            "dice_seed_min": grouped["dice_mean"].min(),
            "dice_seed_max": grouped["dice_mean"].max(),
            "hd95": grouped["hd95_mean"].mean(),
        }
    )
    return table.reset_index()
