"""A run's record and its model card: what was run, on which data, code and machine, and what it measured.

The record is a small JSON file per (dataset, model, seed): the configuration's hash and the settings that
made the run, the commits of training and evaluation, the split sizes with a hash of each case list, the
machine and software, times and peak memory, and the metrics on the validation and test splits (with the
NQM threshold and where it was fitted, the learning curve and the robustness means where the run has
them). Records are what the project's documents quote: ``mednca records`` collects them into the committed
``records/`` folder and renders the documents from there. The model card is the same facts for a reader
of one model, written beside its ``model.pt``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mednca import provenance
from mednca.config import canonical
from mednca.data.split import SPLITS
from mednca.io import read_json
from mednca.names import display_name, is_nca

RECORD_VERSION = 1
LOCAL_KEYS = ("data_dir", "results_dir", "report_html", "device", "memory_limit_gb")
"""Configuration keys that say where or how a run is computed, not what it is: left out of its hash."""

METRIC_KEYS = (
    "cases",
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "hd95_std",
    "nqm_mean",
    "inference_seconds_mean",
)
TRAINING_KEYS = (
    "parameters",
    "epochs",
    "iterations",
    "train_seconds",
    "peak_memory_mb",
    "final_loss",
    "formulation",
    "device",
)
HD95_RULE = (
    "MONAI compute_hausdorff_distance, 95th percentile, in mm with each volume's voxel spacing, in the "
    "volume's own grid; both masks empty: 0 mm; one empty: the volume's diagonal in mm"
)
DICE_RULE = "per volume in its own grid; both masks empty: 1; one empty: 0"


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the configuration without its local keys (paths, device)."""
    identity = {key: value for key, value in config.items() if key not in LOCAL_KEYS}
    text = json.dumps(canonical(identity), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_facts(manifest_csv: Path) -> dict[str, dict[str, Any]]:
    """{split: {cases, sha256}} of the manifest's train, validation and test case lists."""
    manifest = pd.read_csv(manifest_csv, dtype={"case_id": str})
    facts = {}
    for split in SPLITS:
        ids = manifest.loc[manifest["split"] == split, "case_id"].tolist()
        facts[split] = {"cases": len(ids), "sha256": provenance.case_list_hash(ids) if ids else None}
    return facts


def _metrics(summary_json: Path | None) -> dict[str, Any] | None:
    if summary_json is None:
        return None
    summary = read_json(Path(summary_json), "evaluation summary")
    return {key: summary.get(key) for key in METRIC_KEYS}


def _learning_curve(curve_csv: Path | None) -> list[dict[str, Any]] | None:
    if curve_csv is None:
        return None
    curve = pd.read_csv(curve_csv)
    columns = [column for column in ("epoch", "iterations", "train_seconds", "dice_mean") if column in curve]
    return curve[columns].to_dict("records")


def _robustness(tables: Mapping[str, Path]) -> dict[str, list[dict[str, float]]]:
    """{study: [{value, dice_mean, cases}, ...] per severity} of a run's robustness tables."""
    means = {}
    for study, path in tables.items():
        table = pd.read_csv(path)
        grouped = table.groupby(["severity", "value"])["dice"].agg(["mean", "count"]).reset_index()
        means[study] = [
            {"value": float(row.value), "dice_mean": float(row.mean), "cases": int(row.count)}
            for row in grouped.itertuples(index=False)
        ]
    return means


def run_record(
    dataset: str,
    model: str,
    seed: int,
    training_json: Path,
    manifest_csv: Path,
    settings: Mapping[str, Any],
    config_files: list[str],
    config_sha256: str,
    test_summary: Path | None = None,
    validation_summary: Path | None = None,
    quality_json: Path | None = None,
    learning_curve_csv: Path | None = None,
    validation_curve_csv: Path | None = None,
    robustness_tables: Mapping[str, Path] | None = None,
    train_log_csv: Path | None = None,
) -> dict[str, Any]:
    """The record of one run from its result files (the optional ones where the run has them).

    ``settings`` are the configuration blocks that made the run (dataset, model, evaluation, ...).
    """
    training = read_json(Path(training_json), "training summary")
    record: dict[str, Any] = {
        "record_version": RECORD_VERSION,
        "run": {"dataset": dataset, "model": model, "seed": seed},
        "config": {
            "files": list(config_files),
            "sha256": config_sha256,
            "settings": canonical(dict(settings)),
        },
        "code": {"training": training.get("commit"), "evaluation": provenance.git_state()},
        "split": split_facts(manifest_csv),
        "machine": training.get("machine"),
        "versions": training.get("versions"),
        "training": {key: training.get(key) for key in TRAINING_KEYS},
        "metrics": {"validation": _metrics(validation_summary), "test": _metrics(test_summary)},
        "rules": {"dice": DICE_RULE, "hd95": HD95_RULE},
    }
    record["training"]["train_cases_sha256"] = training.get("train_cases_sha256")
    if train_log_csv is not None:
        # The median epoch is what the run costs on a free machine: a paused or shared epoch inflates the sum.
        seconds = pd.read_csv(train_log_csv)["seconds"]
        record["training"]["epoch_seconds_median"] = float(seconds.median()) if len(seconds) else None
        record["training"]["epoch_seconds_min"] = float(seconds.min()) if len(seconds) else None
    if quality_json is not None:
        record["nqm"] = read_json(Path(quality_json), "NQM failure detection")
    if learning_curve_csv is not None:
        record["learning_curve"] = _learning_curve(Path(learning_curve_csv))
    if validation_curve_csv is not None:
        record["validation_curve"] = _learning_curve(Path(validation_curve_csv))
    if robustness_tables:
        record["robustness"] = _robustness(robustness_tables)
    return record


def _format(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _formulation_lines(formulation: Mapping[str, Any] | None) -> list[str]:
    """The model card's line on how an NCA's rule was computed (none for other models or old records)."""
    if not formulation:
        return []
    training, inference = formulation["training"], formulation["inference"]
    return [
        f"- NCA rule computed as: {training['cell_rule']} ({training['dtype']}) in training, "
        f"{inference['cell_rule']} ({inference['dtype']}) in inference (stored in the model file, which "
        "computes this way wherever it is loaded)"
    ]


def model_card(record: Mapping[str, Any]) -> str:
    """A Markdown model card of one run, from its record."""
    run, training, split = record["run"], record["training"], record["split"]
    settings = record["config"]["settings"]
    machine = record.get("machine") or {}
    name = display_name(run["model"])
    lines = [
        f"# {name} on {run['dataset']} (seed {run['seed']})",
        "",
        f"A {name} of {training['parameters']:,} parameters, trained by the mednca workflow. Research use "
        "only: not a medical device.",
        "",
        "## Data and split",
        "",
        "| split | patients | case list (SHA-256, first 16 hex digits) |",
        "|---|---|---|",
        *(f"| {s} | {split[s]['cases']} | {split[s]['sha256'] or '-'} |" for s in SPLITS),
        "",
        "Patient-level split, seeded; the validation split made every choice, the test split was scored "
        "once. The data's licence and citation are in the dataset's own `dataset.json` or documentation.",
        "",
        "## Preprocessing, architecture and recipe",
        "",
        "```json",
        json.dumps(settings, indent=2, sort_keys=True),
        "```",
        "",
        "## Metrics",
        "",
        "| split | cases | Dice (mean ± sd) | HD95 mm (mean ± sd) |",
        "|---|---|---|---|",
    ]
    for split_name in ("validation", "test"):
        metrics = record["metrics"].get(split_name)
        if metrics:
            lines.append(
                f"| {split_name} | {metrics['cases']} | {_format(metrics['dice_mean'])} ± "
                f"{_format(metrics['dice_std'])} | {_format(metrics['hd95_mean'], 2)} ± "
                f"{_format(metrics['hd95_std'], 2)} |"
            )
    lines += [
        "",
        f"Dice: {record['rules']['dice']}. HD95: {record['rules']['hd95']}.",
    ]
    if is_nca(run["model"]):
        lines += ["Each case is segmented as the mean of several stochastic runs; NQM is their spread."]
    lines += [
        "",
        "## Compute and software",
        "",
        f"- Training: {_format(training['train_seconds'] / 60, 1)} min, {training['epochs']} epochs "
        f"(median epoch {_format(training.get('epoch_seconds_median'), 1)} s), "
        f"{training['iterations']} iterations, peak memory {_format(training['peak_memory_mb'], 0)} MB",
        f"- Machine: {machine.get('cpu', 'unknown')} ({', '.join(machine.get('isa') or []) or 'no flags'}), "
        f"{machine.get('threads', '?')} threads on {machine.get('cpus', '?')} logical CPUs",
        *_formulation_lines(training.get("formulation")),
        f"- Code: training at {record['code']['training']}, evaluation at {record['code']['evaluation']}",
        f"- Configuration: {', '.join(record['config']['files']) or 'defaults'} "
        f"(hash {record['config']['sha256']})",
        "- Software: "
        + ", ".join(f"{package} {version}" for package, version in (record.get("versions") or {}).items()),
        "",
    ]
    return "\n".join(lines)
