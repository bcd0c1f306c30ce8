"""Read a run's result files into tables for the report; nothing here recomputes a metric.

The layout mirrors the workflow's outputs (``workflow/rules/common.smk``). Every loader takes the runs the
configuration asked for and records the files it could not find in ``Missing`` instead of failing, so a
report can be built from any subset of results and say what is absent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mednca.data.preprocess import most_foreground_slice


@dataclass(frozen=True, order=True)
class Run:
    """One trained model: a dataset, a model name (``{model}_from_{source}`` when fine-tuned) and a seed."""

    dataset: str
    model: str
    seed: int


@dataclass
class Missing:
    """Result files the report expected but did not find, as paths relative to the results folder."""

    paths: list[str] = field(default_factory=list)

    def add(self, path: Path, results_dir: Path) -> None:
        """Record ``path`` (shown relative to ``results_dir``)."""
        self.paths.append(
            str(Path(path).relative_to(results_dir)) if path.is_relative_to(results_dir) else str(path)
        )


@dataclass(frozen=True)
class ResultsLayout:
    """Where the workflow writes each result under ``results_dir``."""

    results_dir: Path

    def run_dir(self, kind: str, run: Run) -> Path:
        """Folder of one run's outputs of a kind: models, metrics, predictions or robustness."""
        return self.results_dir / kind / run.dataset / run.model / f"seed{run.seed}"

    def data_dir(self, dataset: str) -> Path:
        """Folder of a dataset's data-stage outputs (manifest, slices, source.json)."""
        return self.results_dir / "data" / dataset


RUN_COLUMNS = ["dataset", "model", "seed"]


def _read_csv(path: Path, missing: Missing, layout: ResultsLayout) -> pd.DataFrame | None:
    """A CSV as a table, or None (recorded as missing) when the file does not exist."""
    if not path.exists():
        missing.add(path, layout.results_dir)
        return None
    return pd.read_csv(path)


def _read_json(path: Path, missing: Missing, layout: ResultsLayout) -> dict | None:
    """A JSON file as a dict, or None (recorded as missing) when the file does not exist."""
    if not path.exists():
        missing.add(path, layout.results_dir)
        return None
    return json.loads(path.read_text())


def _tag(table: pd.DataFrame, run: Run) -> pd.DataFrame:
    """``table`` with the run's dataset, model and seed as its first columns."""
    return table.assign(dataset=run.dataset, model=run.model, seed=run.seed)[[*RUN_COLUMNS, *table.columns]]


def _concat(tables: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Concatenated tables, or an empty table with ``columns`` when there are none."""
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def first_seeds(runs: list[Run]) -> list[Run]:
    """The first run listed for each (dataset, model), in the order they first appear."""
    first: dict[tuple[str, str], Run] = {}
    for run in runs:
        first.setdefault((run.dataset, run.model), run)
    return list(first.values())


def rows_of(table: pd.DataFrame, run: Run) -> pd.DataFrame:
    """The rows of a table (with the run columns) that belong to one run."""
    return table[
        (table["dataset"] == run.dataset) & (table["model"] == run.model) & (table["seed"] == run.seed)
    ]


def _load_run_tables(
    layout: ResultsLayout, runs: list[Run], kind: str, name: str, columns: list[str], missing: Missing
) -> pd.DataFrame:
    """``{kind}/{dataset}/{model}/seed{seed}/{name}`` of every run, tagged with the run columns."""
    tables = []
    for run in runs:
        table = _read_csv(layout.run_dir(kind, run) / name, missing, layout)
        if table is not None:
            tables.append(_tag(table, run))
    return _concat(tables, [*RUN_COLUMNS, *columns])


def load_per_case(layout: ResultsLayout, runs: list[Run], missing: Missing) -> pd.DataFrame:
    """Per-case test metrics of every run: run columns, case_id, dice, hd95, nqm, inference_seconds, ..."""
    columns = ["case_id", "dice", "hd95", "nqm", "inference_seconds"]
    return _load_run_tables(layout, runs, "metrics", "per_case.csv", columns, missing)


def load_learning_curves(layout: ResultsLayout, runs: list[Run], missing: Missing) -> pd.DataFrame:
    """Learning curves of every run: run columns, epoch, iterations, train_seconds, dice_mean, ..."""
    columns = ["epoch", "iterations", "train_seconds", "cases", "dice_mean", "dice_std", "hd95_mean"]
    return _load_run_tables(layout, runs, "metrics", "learning_curve.csv", columns, missing)


def load_summaries(layout: ResultsLayout, runs: list[Run], missing: Missing) -> pd.DataFrame:
    """One row per run from its ``summary.json`` (parameters, timings, peak memory, device, ...)."""
    rows = []
    for run in runs:
        summary = _read_json(layout.run_dir("metrics", run) / "summary.json", missing, layout)
        if summary is not None:
            rows.append({**summary, "dataset": run.dataset, "model": run.model, "seed": run.seed})
    return pd.DataFrame(rows, columns=None if rows else RUN_COLUMNS)


def load_training(layout: ResultsLayout, runs: list[Run], missing: Missing) -> pd.DataFrame:
    """Training log of every run: run columns, epoch, loss, lr, seconds."""
    columns = ["epoch", "loss", "lr", "seconds"]
    return _load_run_tables(layout, runs, "models", "train_log.csv", columns, missing)


def load_robustness(
    layout: ResultsLayout, runs: list[Run], studies: list[str], missing: Missing
) -> pd.DataFrame:
    """Every robustness row: run columns, case_id, study, severity, value, dice, hd95, nqm, parameters."""
    columns = ["case_id", "study", "severity", "value", "dice", "hd95", "nqm"]
    tables = [
        _load_run_tables(layout, runs, "robustness", f"{study}.csv", columns, missing) for study in studies
    ]
    tables = [table for table in tables if not table.empty]
    return _concat(tables, [*RUN_COLUMNS, *columns])


def load_quality(layout: ResultsLayout, runs: list[Run], missing: Missing) -> dict[Run, dict]:
    """NQM failure-detection summary of every run that has one."""
    found = {}
    for run in runs:
        quality = _read_json(
            layout.run_dir("robustness", run) / "nqm_failure_detection.json", missing, layout
        )
        if quality is not None:
            found[run] = quality
    return found


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an NPZ file, or None when it does not exist."""
    if not path.exists():
        return None
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def load_gallery(layout: ResultsLayout, run: Run, study: str) -> dict[str, np.ndarray] | None:
    """The arrays of a run's gallery for one study, or None when there is none."""
    return _read_npz(layout.run_dir("robustness", run) / "gallery" / f"{study}.npz")


def load_trajectory(layout: ResultsLayout, run: Run) -> dict[str, np.ndarray] | None:
    """The NCA trajectory arrays of a run (see ``mednca.evaluate.trajectory``), or None."""
    return _read_npz(layout.run_dir("metrics", run) / "nca_trajectory.npz")


def load_benchmarks(layout: ResultsLayout) -> pd.DataFrame:
    """Wall time and peak memory of every job that has a Snakemake benchmark file.

    Columns: stage (the rule), job (the wildcards, as the file's path below the rule), seconds, max_rss_mb.
    """
    rows = []
    for path in sorted((layout.results_dir / "benchmarks").glob("*/**/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rule_dir = path.relative_to(layout.results_dir / "benchmarks").parts[0]
        job = str(path.relative_to(layout.results_dir / "benchmarks" / rule_dir).with_suffix(""))
        max_rss = pd.to_numeric(table.get("max_rss", pd.Series([np.nan])), errors="coerce")
        rows.append(
            {
                "stage": rule_dir,
                "job": job,
                "seconds": float(table["s"].iloc[-1]),
                "max_rss_mb": float(max_rss.iloc[-1]),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "job", "seconds", "max_rss_mb"])


def dataset_digest(manifest: pd.DataFrame) -> str:
    """SHA-256 over the sorted (case, image hash, label hash) lines of a manifest: one hash per dataset."""
    lines = sorted(
        f"{row.case_id} {row.image_sha256} {row.label_sha256}" for row in manifest.itertuples(index=False)
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _dimension_range(values: pd.Series) -> str:
    """'35x51x35' strings -> their per-axis range, e.g. '31-43 x 40-59 x 24-47'."""
    axes = np.array([[float(part) for part in value.split("x")] for value in values])
    low, high = axes.min(axis=0), axes.max(axis=0)

    def axis_range(a: float, b: float) -> str:
        return f"{a:g}" if a == b else f"{a:g}-{b:g}"

    return " x ".join(axis_range(a, b) for a, b in zip(low, high, strict=True))


def dataset_overview(layout: ResultsLayout, datasets: list[str], missing: Missing) -> pd.DataFrame:
    """One row per dataset: cases per split, image size and spacing ranges, channels, dataset hash."""
    rows = []
    for dataset in datasets:
        manifest = _read_csv(layout.data_dir(dataset) / "manifest.csv", missing, layout)
        if manifest is None:
            continue
        splits = manifest["split"].value_counts()
        rows.append(
            {
                "dataset": dataset,
                "train_cases": int(splits.get("train", 0)),
                "test_cases": int(splits.get("test", 0)),
                "shape": _dimension_range(manifest["shape"]),
                "spacing_mm": _dimension_range(manifest["spacing"]),
                "channels": int(manifest["channels"].max()),
                "sha256": dataset_digest(manifest),
            }
        )
    return pd.DataFrame(
        rows, columns=["dataset", "train_cases", "test_cases", "shape", "spacing_mm", "channels", "sha256"]
    )


def example_slice(layout: ResultsLayout, dataset: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(case id, (H, W) image, (H, W) label) of the most-foreground training slice of the first case."""
    manifest_path = layout.data_dir(dataset) / "manifest.csv"
    if not manifest_path.exists():
        return None
    manifest = pd.read_csv(manifest_path)
    for case_id in manifest.loc[manifest["split"] == "train", "case_id"].sort_values():
        path = layout.data_dir(dataset) / "slices" / f"{case_id}.npz"
        if path.exists():
            with np.load(path) as slices:
                index = most_foreground_slice(slices["label"], 0)
                return case_id, slices["image"][index, 0], slices["label"][index]
    return None
