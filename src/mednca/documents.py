"""The committed records of runs, and the documents rendered from them.

``records/<collection>/...json`` holds one record per run (``mednca.records``): the workflow's runs of a
configuration (collected from a results folder by ``collect_records``) and the recipe ablation's runs (written
by ``benchmarks/recipe_ablation.py``, labelled with their variant). ``docs/results.md`` and the summary table
of the README are rendered from them by ``render_documents``; a test fails when a committed document differs
from its rendering, so no result number in them is typed by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mednca import provenance
from mednca.data.split import SPLITS
from mednca.errors import DataError
from mednca.names import display_name
from mednca.report.tables import ablation_summary, ablation_verdict, efficiency_summary

RECORDS_DIR, RESULTS_DOC, README = Path("records"), Path("docs/results.md"), Path("README.md")
PERFORMANCE_DOC = Path("docs/performance.md")
BENCHMARKS = "benchmarks"
"""The folder under ``records/`` of benchmark records (``records/benchmarks/<name>/<cpu>.json``), which are
not run records."""
EDGE_START, EDGE_END = "<!-- edge-table:start -->", "<!-- edge-table:end -->"
PROFILE_START, PROFILE_END = "<!-- profile-table:start -->", "<!-- profile-table:end -->"
SPEED_START, SPEED_END = "<!-- speed-table:start -->", "<!-- speed-table:end -->"
PHASES, STAGES = ("draws", "gathers", "products", "other"), ("forward", "backward")
EDGE_TARGETS = {"volume_seconds": 1.0, "onnxruntime_mb": 300.0}
"""The edge profile's targets: a hippocampus volume in at most 1 s at one thread and with at most 300 MB
peak memory with ONNX Runtime."""
SUPERSEDED_ABLATION = RECORDS_DIR / "superseded" / "recipe_ablation_test_split.csv"
"""The first recipe ablation, scored on the test split before the project had a validation split: kept as
the record of how the recipe was first chosen, shown as superseded."""
TABLE_START, TABLE_END = "<!-- results-table:start -->", "<!-- results-table:end -->"
INTRODUCTION = (
    "Rendered by `mednca records render` from the records under `records/`: do not edit by hand (a test "
    "fails when this file differs from its rendering). Each record holds the run's configuration files and "
    "hash, the commits that trained and evaluated it, the split sizes with a hash of each case list, the CPU "
    "and threads, times, peak memory and metrics. **Validation** numbers are what choices were made with; "
    "**test** numbers were scored once per final model and chose nothing. Dice and HD95 are per volume in "
    "its own voxel grid; ± is the standard deviation over cases; (n) the number of cases."
)
ABLATION_INTRODUCTION = (
    "Med-NCA variants of `config/hippocampus_cpu.yaml` (`benchmarks/{collection}.yaml`), trained on the "
    "train split and scored on the validation patients only; the test split is never evaluated for them."
)
ABLATION_STUDIES = {
    "recipe_ablation": ("Recipe ablation", "paper"),
    "time_to_accuracy": ("Time to accuracy", "recipe"),
}
"""Per collection of variant records: its title and the variant the others are compared with."""
EFFICIENCY_TABLE = "data_efficiency.csv"
"""The data-efficiency study's table (one row per run), collected beside a run's records."""


@dataclass(frozen=True)
class Record:
    """One committed record: its collection (the folder under ``records/``), its file and content."""

    collection: str
    path: Path
    data: dict[str, Any]
    root: Path = RECORDS_DIR
    """The ``records/`` folder the record was loaded from."""

    @property
    def label(self) -> str:
        """The run as readers name it: the ablation variant, or 'Med-NCA, seed 0'."""
        run = self.data["run"]
        return self.data.get("label") or f"{display_name(run['model'])}, seed {run['seed']}"


def collect_records(results_dir: Path, collection: str, records_dir: Path = RECORDS_DIR) -> list[Path]:
    """Copy every record of a results folder (``results/records/**.json``) into ``records_dir/collection``.

    Replaces the collection's earlier records of the same runs (git keeps their history).
    """
    source = Path(results_dir) / "records"
    found = sorted(source.rglob("*.json"))
    if not found:
        raise DataError(f"{source}: holds no run records; run the workflow to the end first")
    if not collection.replace("_", "").replace("-", "").isalnum():
        raise DataError(f"collection name '{collection}': use letters, digits, '_' and '-' only")
    written = []
    for path in found:
        target = Path(records_dir) / collection / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    study = Path(results_dir) / "efficiency" / EFFICIENCY_TABLE
    if study.exists():
        target = Path(records_dir) / collection / EFFICIENCY_TABLE
        shutil.copyfile(study, target)
        written.append(target)
    return written


def load_records(records_dir: Path = RECORDS_DIR) -> list[Record]:
    """Every record under ``records_dir``, sorted by collection and path; a DataError names a bad file."""
    records = []
    for path in sorted(Path(records_dir).rglob("*.json")):
        if path.relative_to(records_dir).parts[0] == BENCHMARKS:
            continue
        try:
            data = json.loads(path.read_text())
            collection = path.relative_to(records_dir).parts[0]
            data["run"], data["metrics"]  # noqa: B018 - every record has both
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a run record ({error})") from error
        records.append(Record(collection, path, data, Path(records_dir)))
    return records


def _number(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and pd.isna(value)) else f"{value:.{digits}f}"


def _dice(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return f"{_number(metrics['dice_mean'])} ± {_number(metrics['dice_std'])} ({metrics['cases']})"


def _cpu(record: Record) -> str:
    return machine_text(record.data.get("machine") or {})


def machine_text(machine: dict[str, Any]) -> str:
    """'AMD EPYC (AVX2/AVX512F), 2 threads', with the kernels' instruction-set limit where one was set."""
    flags = "/".join(flag.upper() for flag in machine.get("isa") or []) or "no SIMD flags"
    limited = provenance.isa_limit_name(machine)
    limit = f", kernels limited to {limited}" if limited else ""
    return f"{machine.get('cpu', 'unknown')} ({flags}), {machine.get('threads', '?')} threads{limit}"


def _minutes(record: Record) -> str:
    """Training minutes, with the median epoch (what an undisturbed epoch costs) where recorded."""
    seconds = record.data["training"].get("train_seconds")
    median = record.data["training"].get("epoch_seconds_median")
    text = "n/a" if seconds is None else f"{seconds / 60:.1f} min"
    return text if median is None else f"{text} (median epoch {median:.0f} s)"


def _commit(value: str | None) -> str:
    if not value:
        return "unknown"
    return value[:10] + (" (uncommitted changes)" if "uncommitted" in value else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def runs_table(records: list[Record]) -> list[str]:
    """One row per run: model, seed, size, training, CPU, validation and test Dice (cases), HD95."""
    rows = []
    for record in records:
        data, run = record.data, record.data["run"]
        split = data["split"]
        test = data["metrics"].get("test") or {}
        rows.append(
            [
                run["dataset"],
                display_name(run["model"]),
                str(run["seed"]),
                f"{data['training']['parameters']:,}",
                f"{_minutes(record)}, {data['training']['epochs']} epochs",
                _cpu(record),
                "/".join(str(split[name]["cases"]) for name in ("train", "validation", "test")),
                _dice(data["metrics"].get("validation")),
                _dice(test),
                _number(test.get("hd95_mean"), 2),
            ]
        )
    header = ["dataset", "model", "seed", "parameters", "training", "CPU", "patients train/val/test"]
    return _table([*header, "validation Dice (cases)", "test Dice (cases)", "test HD95 (mm)"], rows)


def provenance_table(records: list[Record]) -> list[str]:
    """One row per run: configuration files and hash, commits of training and evaluation, case-list hashes."""
    rows = [
        [
            record.label,
            ", ".join(record.data["config"]["files"]) or "defaults",
            record.data["config"]["sha256"],
            _commit(record.data["code"]["training"]),
            _commit(record.data["code"]["evaluation"]),
            " / ".join(record.data["split"][name]["sha256"] or "-" for name in SPLITS),
        ]
        for record in records
    ]
    header = ["run", "config files", "config hash", "trained at", "evaluated at", "case lists train/val/test"]
    return _table(header, rows)


def nqm_table(records: list[Record]) -> list[str]:
    """NQM failure detection of the NCA runs: threshold, where it was fitted, what it caught on test."""
    rows = []
    for record in records:
        nqm = record.data.get("nqm")
        if not nqm:
            continue
        rows.append(
            [
                record.label,
                _number(nqm.get("nqm_threshold")),
                str(nqm.get("threshold_fitted_on") or "-"),
                str(nqm["cases"]),
                str(nqm["failures"]),
                str(nqm.get("failures_caught", "-")),
                str(nqm.get("successes_flagged", "-")),
            ]
        )
    header = ["run", "NQM threshold", "fitted on", "test cases", "failures (Dice < 0.8)", "caught"]
    return _table([*header, "successes flagged"], rows) if rows else []


def learning_curve_table(
    records: list[Record], key: str = "learning_curve", split: str = "test"
) -> list[str]:
    """Dice on ``split`` of each snapshot of each run: the test curve (``learning_curve``, descriptive) or the
    validation curve (``validation_curve``, on which a training length is judged)."""
    rows = [
        [
            record.label,
            str(point.get("epoch", "-")),
            _number(point["train_seconds"] / 60, 1),
            _number(point["dice_mean"]),
        ]
        for record in records
        for point in record.data.get(key) or []
    ]
    return _table(["run", "epoch", "training (min)", f"{split} Dice"], rows) if rows else []


def robustness_table(records: list[Record]) -> list[str]:
    """Mean test Dice at each level of each robustness study, per run."""
    rows = [
        [
            record.label,
            study,
            ", ".join(f"{level['value']:g}: {_number(level['dice_mean'])}" for level in levels),
            str(levels[0]["cases"]),
        ]
        for record in records
        for study, levels in (record.data.get("robustness") or {}).items()
    ]
    return _table(["run", "study", "level: mean Dice", "cases"], rows) if rows else []


def _undisturbed_minutes(training: dict[str, Any], epochs: float | None = None) -> float:
    """Training minutes of the first ``epochs`` (default: all) as epochs x the fastest epoch where it is
    recorded (a run paused or sharing its cores has epochs many times longer, which the sum and even the
    median would count; on a free machine the epochs of one run differ by a few per cent), else the recorded
    total (scaled to ``epochs``)."""
    epochs = training["epochs"] if epochs is None else epochs
    fastest = training.get("epoch_seconds_min")
    if fastest is None:
        return training["train_seconds"] * epochs / max(training["epochs"], 1) / 60
    return epochs * fastest / 60


def undisturbed_curve(record: Record) -> list[dict[str, Any]]:
    """The record's validation curve with each point's ``minutes`` of training by ``_undisturbed_minutes``
    (its recorded wall time where the point has no epoch)."""
    training = record.data["training"]
    return [
        {
            **point,
            "minutes": _undisturbed_minutes(training, point["epoch"])
            if point.get("epoch") is not None
            else point["train_seconds"] / 60,
        }
        for point in record.data.get("validation_curve") or []
    ]


def ablation_frame(records: list[Record]) -> pd.DataFrame:
    """One row per ablation run: variant, seed, epochs, iterations, training minutes, validation Dice (mean
    and std over cases), HD95 and CPU."""
    rows = []
    for record in records:
        validation = record.data["metrics"].get("validation") or {}
        training = record.data["training"]
        rows.append(
            {
                "variant": record.data["label"],
                "seed": record.data["run"]["seed"],
                "epochs": training["epochs"],
                "iterations": training["iterations"],
                "train_minutes": _undisturbed_minutes(training),
                "dice_mean": validation.get("dice_mean"),
                "dice_std": validation.get("dice_std"),
                "hd95_mean": validation.get("hd95_mean"),
                "cpu": _cpu(record),
            }
        )
    return pd.DataFrame(rows)


def ablation_records(folder: Path) -> pd.DataFrame:
    """The ablation runs of one collection folder (e.g. ``records/recipe_ablation``) as ``ablation_frame``;
    a DataError names a folder that holds no ablation record."""
    folder = Path(folder)
    found = [r for r in load_records(folder.parent) if r.collection == folder.name and r.data.get("label")]
    if not found:
        raise DataError(
            f"{folder}: holds no recipe-ablation record (benchmarks/recipe_ablation.py writes them)"
        )
    return ablation_frame(found)


def ablation_table(records: list[Record], reference: str = "paper") -> list[str]:
    """Per variant: seeds, epochs, training minutes, mean validation Dice over seeds, range, and the
    difference to the ``reference`` variant (no such column when the reference has no record)."""
    runs = ablation_frame(records)
    summary = ablation_summary(runs, reference)
    compared = bool(summary["dice_vs_reference"].notna().any())
    header = [
        "variant",
        "seeds",
        "epochs",
        "training (min)¹",
        "validation Dice (mean over seeds)",
        "seeds' range",
    ]
    rows = []
    for row in summary.itertuples():
        cells = [
            str(row.variant),
            str(int(row.seeds)),
            str(int(row.epochs)),
            _number(row.train_minutes, 1),
            _number(row.dice),
            f"{_number(row.dice_seed_min)}-{_number(row.dice_seed_max)}",
        ]
        if compared:
            cells.append(f"{row.dice_vs_reference:+.3f}" if pd.notna(row.dice_vs_reference) else "n/a")
        rows.append(cells)
    lines = _table(header + [f"vs {reference}"] * compared, rows)
    cpus = ", ".join(sorted(runs["cpu"].unique()))
    verdict = f"{ablation_verdict(summary)} CPU: {cpus}."
    note = "¹ epochs x the fastest epoch where the record has it (what the run costs on a free machine)."
    return [*lines, "", verdict, "", note]


TIME_TO_ACCURACY_TARGETS = (0.87, 0.88, 0.89)
"""Validation Dice levels whose first crossing the time-to-accuracy table reports."""


TIME_TO_ACCURACY_FIGURE = Path("docs/time_to_accuracy.svg")
"""Validation Dice against training minutes of the variants with validation curves (``render_documents``)."""


def validation_curve_points(records: list[Record]) -> pd.DataFrame:
    """Every validation-curve point of the records that have one: variant, seed, minutes, dice_mean."""
    rows = [
        {"variant": record.data["label"], "seed": record.data["run"]["seed"], **point}
        for record in records
        for point in undisturbed_curve(record)
    ]
    return pd.DataFrame(rows, columns=["variant", "seed", "minutes", "dice_mean"])


def time_to_accuracy_figure(records: list[Record]) -> str | None:
    """The SVG of ``figures.validation_curves`` for the labelled records with validation curves, or None."""
    points = validation_curve_points([record for record in records if record.data.get("label")])
    if points.empty:
        return None
    from mednca.report import figures  # matplotlib: only when there is a figure to draw

    return figures.to_svg(figures.validation_curves(points, TIME_TO_ACCURACY_TARGETS))


def minutes_to(curve: list[dict[str, Any]], target: float) -> float | None:
    """Minutes of the first point of an ``undisturbed_curve`` at or above ``target`` Dice, or None."""
    for point in curve:
        if point["dice_mean"] is not None and point["dice_mean"] >= target:
            return point["minutes"]
    return None


def time_to_accuracy_table(records: list[Record]) -> list[str]:
    """Per variant and seed with a validation learning curve: minutes of training until the curve first
    reaches each target Dice, the final validation Dice, the total and the median epoch's time, the CPU."""
    rows = []
    for record in sorted(records, key=lambda r: (r.data["label"], r.data["run"]["seed"])):
        curve = undisturbed_curve(record)
        if not curve:
            continue
        training = record.data["training"]
        reached = [minutes_to(curve, target) for target in TIME_TO_ACCURACY_TARGETS]
        rows.append(
            [
                record.data["label"],
                str(record.data["run"]["seed"]),
                *("not reached" if minutes is None else _number(minutes, 1) for minutes in reached),
                _number(curve[-1]["dice_mean"]),
                _number(_undisturbed_minutes(training), 1),
                " / ".join(
                    _number(training.get(key), 0) for key in ("epoch_seconds_min", "epoch_seconds_median")
                ),
                _cpu(record),
            ]
        )
    if not rows:
        return []
    targets = [f"min to validation Dice {target:g}" for target in TIME_TO_ACCURACY_TARGETS]
    header = [
        "variant",
        "seed",
        *targets,
        "final validation Dice",
        "training (min)¹",
        "fastest / median epoch (s)",
        "CPU",
    ]
    note = (
        "¹ epochs x the fastest epoch, as in the ablation; the minutes to a Dice likewise, up to the first "
        "snapshot that reaches it."
    )
    return [*_table(header, rows), "", note]


def superseded_ablation_table(path: Path) -> list[str]:
    """The first ablation's table (test split, superseded): per variant, seeds and mean test Dice."""
    if not Path(path).exists():
        return []
    runs = pd.read_csv(path)
    table = runs.groupby("variant", sort=False)["dice_mean"].agg(["count", "mean", "min", "max"])
    rows = [
        [
            str(variant),
            str(int(row["count"])),
            _number(row["mean"]),
            f"{_number(row['min'])}-{_number(row['max'])}",
        ]
        for variant, row in table.iterrows()
    ]
    note = (
        "The first ablation of the recipe scored each variant on the **test** split, the split the final "
        "models are then reported on; it is kept as the record of how the recipe was first chosen, not as "
        "evidence. The choice is made again on the validation split (`benchmarks/recipe_ablation.py`)."
    )
    return [
        *textwrap.wrap(note, 110),
        "",
        *_table(["variant", "seeds", "test Dice (mean over seeds)", "range"], rows),
    ]


def efficiency_table(path: Path) -> list[str]:
    """The data-efficiency study of a collection: per model and k, mean test Dice over seeds and range."""
    if not Path(path).exists():
        return []
    table = efficiency_summary(pd.read_csv(path, dtype={"cases": str}))
    rows = [
        [
            display_name(row.model),
            str(row.cases),
            str(int(row.train_cases)),
            str(int(row.seeds)),
            f"{int(row.iterations):,}",
            _number(row.train_minutes, 1),
            _number(row.dice),
            f"{_number(row.dice_seed_min)}-{_number(row.dice_seed_max)}",
        ]
        for row in table.itertuples(index=False)
    ]
    header = ["model", "k", "training cases", "seeds", "optimiser steps", "training (min)"]
    return _table([*header, "test Dice (mean over seeds)", "seeds' range"], rows)


def render_results(records: list[Record], superseded: Path | None = None) -> str:
    """The Markdown of ``docs/results.md`` (with the superseded test-split ablation of ``superseded``)."""
    lines = ["# Results", "", *textwrap.wrap(INTRODUCTION, 110)]
    ablation = [record for record in records if record.data.get("label")]
    collections = sorted({record.collection for record in records if not record.data.get("label")})
    if not records:
        lines += ["", "No records have been committed yet."]
    for collection in collections:
        runs = [r for r in records if r.collection == collection and not r.data.get("label")]
        lines += ["", f"## {collection}", "", *runs_table(runs)]
        for title, table in (
            ("Provenance", provenance_table(runs)),
            ("NQM as a failure detector (threshold fitted on validation, judged on test)", nqm_table(runs)),
            (
                "Learning curves (validation split: the training length is judged on them)",
                learning_curve_table(runs, "validation_curve", "validation"),
            ),
            ("Learning curves (test split, descriptive: nothing chosen)", learning_curve_table(runs)),
            ("Robustness (test split)", robustness_table(runs)),
            (
                "Data efficiency (test split; every run with the same budget of optimiser steps)",
                efficiency_table(runs[0].root / collection / EFFICIENCY_TABLE),
            ),
        ):
            if table:
                lines += ["", f"### {title}", "", *table]
    for collection in sorted({record.collection for record in ablation}):
        variants = [record for record in ablation if record.collection == collection]
        title, reference = ABLATION_STUDIES.get(collection, (f"Variants: {collection}", "paper"))
        lines += [
            "",
            f"## {title} (validation split)",
            "",
            *textwrap.wrap(ABLATION_INTRODUCTION.format(collection=collection), 110),
            "",
            *ablation_table(variants, reference),
        ]
        timed = time_to_accuracy_table(variants)
        if timed:
            figure = f"![Validation Dice against training minutes]({TIME_TO_ACCURACY_FIGURE.name})"
            lines += ["", "### Time to accuracy (validation learning curves)", "", *timed, "", figure]
    old = superseded_ablation_table(superseded) if superseded is not None else []
    if old:
        lines += ["", "## Superseded: the first recipe ablation, scored on the test split", "", *old]
    return "\n".join(lines) + "\n"


def summary_table(records: list[Record]) -> str:
    """The README's table: one row per committed run (not the ablation), with a link to the results."""
    runs = [record for record in records if not record.data.get("label")]
    if not runs:
        return "No run has been recorded yet; see [docs/results.md](docs/results.md).\n"
    rows = [
        [
            record.collection,
            display_name(record.data["run"]["model"]),
            f"{record.data['training']['parameters']:,}",
            _dice(record.data["metrics"].get("validation")),
            _dice(record.data["metrics"].get("test")),
            _minutes(record),
            _cpu(record),
        ]
        for record in runs
    ]
    header = ["run", "model", "parameters", "validation Dice", "test Dice", "training", "CPU"]
    lines = _table(header, rows)
    link = "Details, provenance and the recipe ablation: [docs/results.md](docs/results.md)."
    return "\n".join(lines) + f"\n\n{link}\n"


def between_markers(text: str, table: str, start_marker: str, end_marker: str, document: Path) -> str:
    """``text`` with what lies between its two markers replaced by ``table``."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise DataError(f"{document}: lacks the markers {start_marker} ... {end_marker}")
    return text[: start + len(start_marker)] + "\n" + table + text[end:]


def with_summary_table(readme: str, table: str) -> str:
    """``readme`` with the text between its table markers replaced by ``table``."""
    return between_markers(readme, table, TABLE_START, TABLE_END, README)


def save_benchmark_record(
    record: dict[str, Any], records_dir: Path, name: str, label: str, target: Path | None = None
) -> Path:
    """Write a benchmark's record to ``target``, or to ``records/benchmarks/<name>/<label>.json`` with the
    label (the CPU and the settings) as a file name; returns the path."""
    if target is None:
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        target = Path(records_dir) / BENCHMARKS / name / f"{slug}.json"
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return Path(target)


def benchmark_records(records_dir: Path, name: str) -> list[dict[str, Any]]:
    """The records of one benchmark (``records/benchmarks/<name>/*.json``), sorted by file name."""
    records = []
    for path in sorted((Path(records_dir) / BENCHMARKS / name).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()) | {"file": path.name})
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: not a benchmark record ({error})") from error
    return records


def edge_table(records: list[dict[str, Any]]) -> str:
    """The edge profile's Markdown: per record its CPU, model and volume, a table of latency and peak memory
    per workload, runtime and threads, and whether the targets are met."""
    if not records:
        return "No edge profile has been recorded yet: run `python benchmarks/edge.py --volume CASE`.\n"
    lines = []
    for record in records:
        machine, volume, versions = record["machine"], record["volume"], record["versions"]
        isa = ", ".join(machine["isa"]) or "no AVX"
        slices = volume["slices"]
        lines += [
            f"**{machine['cpu']}** ({isa}; {machine['cpus']} logical CPUs), {record['date']}, commit "
            f"{_commit(record['commit'])}, torch {versions.get('torch')}, onnxruntime "
            f"{versions.get('onnxruntime')}. Model: {record['model']} ({record['parameters']:,} parameters, "
            f"{record['model_bytes'] / 1024:.0f} kB; ONNX {record['onnx_bytes'] / 1024:.0f} kB); volume: "
            f"{volume['file']} ({'x'.join(map(str, volume['shape']))} voxels, {slices[0]} slices of "
            f"{slices[2]}x{slices[3]}); {record['rows'][0]['repeats']} timed repeats after one warm-up, "
            f"{record['rows'][0].get('batch', 'all')} slices per forward pass.",
            "",
        ]
        rows = [
            [
                row["workload"], row["runtime"], str(row["threads"]), f"{row['median_s']:.3f}",
                f"{row['p90_s']:.3f}", f"{row['peak_rss_mb']:.0f}", "yes" if row["torch_imported"] else "no",
            ]
            for row in record["rows"]
        ]  # fmt: skip
        header = [
            "workload",
            "runtime",
            "threads",
            "median (s)",
            "90th pct (s)",
            "peak memory (MB)",
            "PyTorch",
        ]
        lines += [*_table(header, rows), "", _edge_verdict(record["rows"]), ""]
    return "\n".join(lines)


def profile_table(records: list[dict[str, Any]]) -> str:
    """Seconds of one training iteration per phase, forward and backward, one row per record."""
    if not records:
        return "No iteration profile has been recorded yet: run `python benchmarks/iteration_profile.py`.\n"
    rows = []
    for record in records:
        arguments, machine = record["arguments"], record["machine"]
        training = record["formulation"]["training"]
        phases = record["phases"]
        cells = [
            f"{phases.get(stage, {}).get(phase, 0.0):.3f}"
            for stage in ("forward", "backward")
            for phase in PHASES
        ]
        rows.append(
            [
                machine_text(machine),
                f"{training['cell_rule']} {training['dtype']}, batch {record['batch']}, "
                f"{arguments['steps']} steps",
                *cells,
                f"{record['wall_seconds']:.3f}",
                _commit(record["commit"]),
            ]
        )
    header = ["CPU", "formulation", *(f"{stage} {phase}" for stage in ("fwd", "bwd") for phase in PHASES)]
    return "\n".join(_table([*header, "iteration (s)", "commit"], rows)) + "\n"


def _speed_label(row: dict[str, Any]) -> str:
    """How a speed-benchmark row's Med-NCA is computed: the library's formulation, or the original."""
    per_slice = " slice by slice" if row["task"] == "infer" and row["slices_per_forward"] == 1 else ""
    if row["implementation"] == "original":
        return f"original code (M3D-NCA){per_slice}"
    if row["implementation"] == "reference":
        return f"original rule (library copy){per_slice}"
    checkpointed = ", checkpointed" if row["arguments"].get("checkpoint_steps") else ""
    chosen = "" if "cell_rule" in row["arguments"] else " (cell_rule auto)"
    return f"{row['cell_rule']} {row['compute']}{checkpointed}{chosen}"


def _speedup(row: dict[str, Any], rows: list[dict[str, Any]], implementation: str) -> str:
    """How many times faster ``row`` is than the fastest ``implementation`` row of its task and width."""
    others = [
        other["seconds"]
        for other in rows
        if other["implementation"] == implementation
        and (other["task"], other["arguments"]["channels"]) == (row["task"], row["arguments"]["channels"])
    ]
    return f"{min(others) / row['seconds']:.1f}x" if others and row["implementation"] == "ours" else "–"


def speed_table(records: list[dict[str, Any]]) -> str:
    """Per speed-benchmark record: its CPU and settings, then one row per Med-NCA case (task, channels,
    formulation, seconds, peak memory) with its speed-up over the original code and the original rule."""
    if not records:
        return "No speed benchmark has been recorded yet: run `python benchmarks/speed.py --record`.\n"
    lines = []
    for record in records:
        machine = record["machine"]
        lines += [
            f"{machine['cpu']} ({', '.join(machine['isa']) or 'no AVX'}), {machine['threads']} threads, "
            f"PyTorch {record['torch']}, {record['steps']} steps per level, "
            f"commit {_commit(record['commit'])}, {record['date']}"
            + (f", beside {record['competing_threads']} busy threads" if record["competing_threads"] else "")
            + ":",
            "",
        ]
        rows = [row for row in record["cases"] if row["model"] == "med_nca"]
        table = [
            [
                "training iteration" if row["task"] == "train" else "volume inference",
                str(row["arguments"]["channels"]),
                _speed_label(row),
                f"{row['seconds']:.3f}",
                f"{row['peak_memory_mb']:.0f}",
                _speedup(row, rows, "original"),
                _speedup(row, rows, "reference"),
            ]
            for row in sorted(
                rows, key=lambda r: (r["task"] != "train", r["arguments"]["channels"], r["seconds"])
            )
        ]
        header = ["work", "channels", "computed by", "seconds", "peak memory (MB)", "vs original code"]
        lines += [*_table([*header, "vs original rule"], table), ""]
    return "\n".join(lines)


def _edge_verdict(rows: list[dict[str, Any]]) -> str:
    """Whether the fastest one-thread volume latency and ONNX Runtime's peak memory on a volume meet the
    targets."""
    volume = [row for row in rows if row["workload"] == "volume" and row["threads"] == 1]
    onnx = [
        row["peak_rss_mb"] for row in rows if row["runtime"] == "onnxruntime" and row["workload"] == "volume"
    ]
    parts = []
    if volume:
        fastest = min(volume, key=lambda row: row["median_s"])
        met = "met" if fastest["median_s"] <= EDGE_TARGETS["volume_seconds"] else "not met"
        parts.append(
            f"Target of a volume in at most {EDGE_TARGETS['volume_seconds']:g} s at one thread: {met} "
            f"({fastest['runtime']}, median {fastest['median_s']:.3f} s)."
        )
    if onnx:
        met = "met" if max(onnx) <= EDGE_TARGETS["onnxruntime_mb"] else "not met"
        parts.append(
            f"Target of at most {EDGE_TARGETS['onnxruntime_mb']:g} MB for a volume with ONNX Runtime: {met} "
            f"(largest peak {max(onnx):.0f} MB)."
        )
    return " ".join(parts)


def render_documents(root: Path) -> dict[Path, str]:
    """{path: content} of every document rendered from ``root/records`` (paths relative to ``root``)."""
    records = load_records(root / RECORDS_DIR)
    readme = (root / README).read_text()
    performance = (root / PERFORMANCE_DOC).read_text()
    edge = edge_table(benchmark_records(root / RECORDS_DIR, "edge"))
    performance = between_markers(performance, edge, EDGE_START, EDGE_END, PERFORMANCE_DOC)
    speed = speed_table(benchmark_records(root / RECORDS_DIR, "speed"))
    performance = between_markers(performance, speed, SPEED_START, SPEED_END, PERFORMANCE_DOC)
    profile = profile_table(benchmark_records(root / RECORDS_DIR, "iteration_profile"))
    documents = {
        RESULTS_DOC: render_results(records, root / SUPERSEDED_ABLATION),
        README: with_summary_table(readme, summary_table(records)),
        PERFORMANCE_DOC: between_markers(performance, profile, PROFILE_START, PROFILE_END, PERFORMANCE_DOC),
    }
    figure = time_to_accuracy_figure(records)
    return documents if figure is None else {**documents, TIME_TO_ACCURACY_FIGURE: figure}


def stale_documents(root: Path) -> list[Path]:
    """The rendered documents whose committed text differs from their rendering."""
    return [
        path
        for path, text in render_documents(root).items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]
