"""Read a run's result files into tables for the report; nothing here recomputes a metric.

The files come from the workflow, which defines where each result lives (``workflow/rules/common.smk``):
``run_files`` maps its input lists to runs, and nothing here builds a path of its own except inside a
declared folder. Every loader records the files it could not find in ``Missing`` instead of failing, so a
report can be built from any subset of results and say what is absent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mednca.data.preprocess import most_foreground_slice
from mednca.errors import DataError
from mednca.io import read_json
from mednca.names import is_nca


@dataclass(frozen=True, order=True)
class Run:
    """One trained model: a dataset, a model name (``{model}_from_{source}`` when fine-tuned) and a seed."""

    dataset: str
    model: str
    seed: int


@dataclass
class Missing:
    """Result files the report expected but did not find."""

    paths: list[str] = field(default_factory=list)

    def add(self, path: Path) -> None:
        """Record ``path`` as missing."""
        self.paths.append(str(path))


@dataclass(frozen=True)
class RunFiles:
    """The result files of one run that the report and the run summary read; None where it has none.

    ``robustness`` maps each study to its table; ``gallery`` is the folder of ``{study}.npz`` galleries.
    """

    per_case: Path | None = None
    summary: Path | None = None
    train_log: Path | None = None
    learning_curve: Path | None = None
    test_slices: Path | None = None
    robustness: dict[str, Path] = field(default_factory=dict)
    quality: Path | None = None
    gallery: Path | None = None
    trajectory: Path | None = None
    record: Path | None = None


@dataclass(frozen=True)
class DatasetFiles:
    """A dataset's data-stage outputs the report reads: its manifest and folder of preprocessed slices."""

    manifest: Path
    slices: Path


@dataclass(frozen=True)
class Benchmark:
    """A Snakemake benchmark file of one job: its stage (the rule) and job (its wildcards, joined by /)."""

    stage: str
    job: str
    path: Path


def _by_run(runs: list[Run], paths: list, per_run: int, what: str) -> dict[Run, list[Path]]:
    """``paths`` cut into ``per_run`` files for each of ``runs``, in order; a count mismatch is a bug."""
    if len(paths) != per_run * len(runs):
        raise ValueError(f"{len(paths)} {what} for {len(runs)} run(s), expected {per_run} per run")
    return {run: [Path(p) for p in paths[i * per_run : (i + 1) * per_run]] for i, run in enumerate(runs)}


def run_files(
    runs: list[Run],
    studies: list[str],
    *,
    per_case: list | None = None,
    summaries: list | None = None,
    train_logs: list | None = None,
    learning_curves: list | None = None,
    test_slices: list | None = None,
    robustness: list | None = None,
    quality: list | None = None,
    galleries: list | None = None,
    trajectories: list | None = None,
    records: list | None = None,
) -> dict[Run, RunFiles]:
    """The RunFiles of each run from the workflow's input lists.

    Each list holds one file per run in the order of ``runs`` (``robustness`` one per run and study, the
    studies inner; ``trajectories`` one per NCA run); a list left out or empty gives no file of that kind.
    """

    def single(paths: list | None, selected: list[Run], what: str) -> dict[Run, Path]:
        if not paths:  # none declared (e.g. no robustness study configured)
            return {}
        return {run: files[0] for run, files in _by_run(selected, paths, 1, what).items()}

    nca_runs = [run for run in runs if is_nca(run.model)]
    tables = _by_run(runs, robustness, len(studies), "robustness tables") if robustness and studies else {}
    kinds = {
        "per_case": single(per_case, runs, "per-case tables"),
        "summary": single(summaries, runs, "summaries"),
        "train_log": single(train_logs, runs, "training logs"),
        "learning_curve": single(learning_curves, runs, "learning curves"),
        "test_slices": single(test_slices, runs, "test-slice files"),
        "quality": single(quality, runs, "quality summaries"),
        "gallery": single(galleries, runs, "gallery folders"),
        "trajectory": single(trajectories, nca_runs, "trajectories"),
        "record": single(records, runs, "run records"),
    }
    return {
        run: RunFiles(
            **{kind: found.get(run) for kind, found in kinds.items()},
            robustness=dict(zip(studies, tables.get(run, []), strict=False)),
        )
        for run in runs
    }


RUN_COLUMNS = ["dataset", "model", "seed"]


def _read_csv(path: Path | None, missing: Missing) -> pd.DataFrame | None:
    """A CSV as a table, or None (recorded as missing when a path was given) when there is none."""
    if path is None or not Path(path).exists():
        if path is not None:
            missing.add(path)
        return None
    return pd.read_csv(path)


def _read_json(path: Path | None, missing: Missing) -> dict | None:
    """A JSON file as a dict, or None (recorded as missing when a path was given) when there is none."""
    if path is None or not Path(path).exists():
        if path is not None:
            missing.add(path)
        return None
    return json.loads(Path(path).read_text())


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


def _load_run_tables(paths: dict[Run, Path | None], columns: list[str], missing: Missing) -> pd.DataFrame:
    """The CSV of every run in ``paths``, tagged with the run columns."""
    tables = []
    for run, path in paths.items():
        table = _read_csv(path, missing)
        if table is not None:
            tables.append(_tag(table, run))
    return _concat(tables, [*RUN_COLUMNS, *columns])


def load_per_case(files: dict[Run, RunFiles], missing: Missing) -> pd.DataFrame:
    """Per-case test metrics of every run: run columns, case_id, dice, hd95, nqm, inference_seconds, ..."""
    columns = ["case_id", "dice", "hd95", "nqm", "inference_seconds"]
    return _load_run_tables({run: f.per_case for run, f in files.items()}, columns, missing)


def load_learning_curves(files: dict[Run, RunFiles], missing: Missing) -> pd.DataFrame:
    """Learning curves of every run: run columns, epoch, iterations, train_seconds, dice_mean, ..."""
    columns = ["epoch", "iterations", "train_seconds", "cases", "dice_mean", "dice_std", "hd95_mean"]
    return _load_run_tables({run: f.learning_curve for run, f in files.items()}, columns, missing)


def load_summaries(files: dict[Run, RunFiles], missing: Missing) -> pd.DataFrame:
    """One row per run from its ``summary.json`` (parameters, timings, peak memory, device, ...)."""
    rows = []
    for run, run_files in files.items():
        summary = _read_json(run_files.summary, missing)
        if summary is not None:
            rows.append({**summary, "dataset": run.dataset, "model": run.model, "seed": run.seed})
    return pd.DataFrame(rows, columns=None if rows else RUN_COLUMNS)


def load_training(files: dict[Run, RunFiles], missing: Missing) -> pd.DataFrame:
    """Training log of every run: run columns, epoch, loss, lr, seconds."""
    columns = ["epoch", "loss", "lr", "seconds"]
    return _load_run_tables({run: f.train_log for run, f in files.items()}, columns, missing)


def load_robustness(files: dict[Run, RunFiles], studies: list[str], missing: Missing) -> pd.DataFrame:
    """Every robustness row: run columns, case_id, study, severity, value, dice, hd95, nqm, parameters."""
    columns = ["case_id", "study", "severity", "value", "dice", "hd95", "nqm"]
    tables = [
        _load_run_tables({run: f.robustness.get(study) for run, f in files.items()}, columns, missing)
        for study in studies
    ]
    tables = [table for table in tables if not table.empty]
    return _concat(tables, [*RUN_COLUMNS, *columns])


def load_quality(files: dict[Run, RunFiles], missing: Missing) -> dict[Run, dict]:
    """NQM failure-detection summary of every run that has one."""
    found = {}
    for run, run_files in files.items():
        quality = _read_json(run_files.quality, missing)
        if quality is not None:
            found[run] = quality
    return found


def _read_npz(path: Path | None) -> dict[str, np.ndarray] | None:
    """The arrays of an NPZ file, or None when there is none."""
    if path is None or not Path(path).exists():
        return None
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def load_gallery(run_files: RunFiles, study: str) -> dict[str, np.ndarray] | None:
    """The arrays of a run's gallery for one study, or None when there is none."""
    return None if run_files.gallery is None else _read_npz(Path(run_files.gallery) / f"{study}.npz")


def load_trajectory(run_files: RunFiles) -> dict[str, np.ndarray] | None:
    """The NCA trajectory arrays of a run (see ``mednca.evaluate.trajectory``), or None."""
    return _read_npz(run_files.trajectory)


def load_benchmarks(benchmarks: list[Benchmark]) -> pd.DataFrame:
    """Wall time and peak memory of every job whose Snakemake benchmark file exists.

    Columns: stage (the rule), job (its wildcards), seconds, max_rss_mb.
    """
    rows = []
    for benchmark in benchmarks:
        if not Path(benchmark.path).exists():
            continue
        table = pd.read_csv(benchmark.path, sep="\t")
        max_rss = pd.to_numeric(table.get("max_rss", pd.Series([np.nan])), errors="coerce")
        rows.append(
            {
                "stage": benchmark.stage,
                "job": benchmark.job,
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


def dataset_overview(datasets: dict[str, DatasetFiles], missing: Missing) -> pd.DataFrame:
    """One row per dataset: cases per split, image size and spacing ranges, channels, dataset hash."""
    rows = []
    for dataset, files in datasets.items():
        manifest = _read_csv(files.manifest, missing)
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


def example_slice(files: DatasetFiles) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(case id, (H, W) image, (H, W) label) of the most-foreground training slice of the first case."""
    if not Path(files.manifest).exists():
        return None
    manifest = pd.read_csv(files.manifest)
    for case_id in manifest.loc[manifest["split"] == "train", "case_id"].sort_values():
        path = Path(files.slices) / f"{case_id}.npz"
        if path.exists():
            with np.load(path) as slices:
                index = most_foreground_slice(slices["label"], 0)
                return case_id, slices["image"][index, 0], slices["label"][index]
    return None


@dataclass(frozen=True)
class ReportFiles:
    """Everything a report reads: each run's result files, each dataset's data files, the benchmarks."""

    runs: dict[Run, RunFiles]
    datasets: dict[str, DatasetFiles]
    benchmarks: list[Benchmark] = field(default_factory=list)


RUN_FILE_INPUTS = (
    "per_case",
    "summaries",
    "train_logs",
    "learning_curves",
    "test_slices",
    "robustness",
    "quality",
    "galleries",
    "trajectories",
    "records",
)
"""The named input lists of the report and summary rules that ``run_files`` maps to runs."""


def runs_of(rows: Iterable[Sequence]) -> list[Run]:
    """Runs from the workflow's [dataset, model, seed] rows."""
    return [Run(str(dataset), str(model), int(seed)) for dataset, model, seed in rows]


def _paths(value: Any) -> list[str]:
    """A named input as a list of paths (a single path when the list held one file)."""
    return [value] if isinstance(value, str | Path) else [str(item) for item in value]


def run_files_from_inputs(runs: list[Run], studies: list[str], inputs: Any) -> dict[Run, RunFiles]:
    """``run_files`` from a rule's named inputs (those of ``RUN_FILE_INPUTS`` it declares)."""
    names = set(inputs.keys())
    lists = {name: _paths(inputs[name]) for name in RUN_FILE_INPUTS if name in names}
    return run_files(runs, studies, **lists)


def report_files(
    runs: list[Run], studies: list[str], inputs: Any, datasets: list[str], benchmark_jobs: list
) -> ReportFiles:
    """The ReportFiles of the report rule's named inputs: the run lists, ``manifests`` and ``slices`` (one
    per dataset of ``datasets``) and ``benchmarks`` (one per (stage, job) of ``benchmark_jobs``)."""
    manifests, slices = _paths(inputs["manifests"]), _paths(inputs["slices"])
    benchmarks = _paths(inputs["benchmarks"])
    return ReportFiles(
        runs=run_files_from_inputs(runs, studies, inputs),
        datasets={
            dataset: DatasetFiles(Path(manifest), Path(folder))
            for dataset, manifest, folder in zip(datasets, manifests, slices, strict=True)
        },
        benchmarks=[
            Benchmark(str(stage), str(job), Path(path))
            for (stage, job), path in zip(benchmark_jobs, benchmarks, strict=True)
        ],
    )


EDGE_ROW_KEYS = ("runtime", "threads", "workload", "median_s", "peak_rss_mb", "repeats")
"""What the report reads of each row of an edge-profile record (``benchmarks/edge.py``)."""


def load_edge_record(path: Path) -> dict:
    """An edge-profile record; a DataError names a file that is not one."""
    record = read_json(path, "edge-profile record")
    rows = record.get("rows") if isinstance(record, dict) else None
    machine = record.get("machine") if isinstance(record, dict) else None
    usable = isinstance(rows, list) and all(
        isinstance(row, dict) and all(key in row for key in EDGE_ROW_KEYS) for row in rows
    )
    if not usable or not isinstance(machine, dict) or "cpu" not in machine:
        keys = ", ".join(EDGE_ROW_KEYS)
        raise DataError(f"{path}: not an edge-profile record (needs machine.cpu and rows with {keys})")
    return record
