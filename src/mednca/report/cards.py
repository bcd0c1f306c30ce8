"""The report's model cards and reproducibility checklist, from the runs' records (``mednca.records``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mednca.data.split import SPLITS
from mednca.names import base_model, display_name, is_nca
from mednca.report.collect import Missing, Run, RunFiles


def load_records(runs: Mapping[Run, RunFiles], missing: Missing) -> dict[Run, dict[str, Any]]:
    """Each run's record (runs without one are left out; a declared but absent file is listed as missing)."""
    records = {}
    for run, files in runs.items():
        if files.record is None:
            continue
        if not Path(files.record).exists():
            missing.add(files.record)
            continue
        records[run] = json.loads(Path(files.record).read_text())
    return records


def _metric(record: dict, split: str, key: str) -> float | None:
    return (record["metrics"].get(split) or {}).get(key)


def card_table(records: Mapping[Run, dict[str, Any]]) -> pd.DataFrame:
    """One row per run: split sizes and case-list hashes, size, compute, validation and test Dice, NQM."""
    rows = []
    for run, record in sorted(records.items()):
        split, training, machine = record["split"], record["training"], record.get("machine") or {}
        nqm = record.get("nqm") or {}
        rows.append(
            {
                "dataset": run.dataset,
                "model": run.model,
                "seed": run.seed,
                "patients": " / ".join(str(split[name]["cases"]) for name in SPLITS),
                "case_lists": " / ".join((split[name]["sha256"] or "–")[:8] for name in SPLITS),
                "parameters": training.get("parameters"),
                "train_seconds": training.get("train_seconds"),
                "epochs": training.get("epochs"),
                "peak_mb": training.get("peak_memory_mb"),
                "machine": f"{machine.get('cpu', '?')} ({', '.join(machine.get('isa') or [])}), "
                f"{machine.get('threads', '?')} threads",
                "validation_dice": _metric(record, "validation", "dice_mean"),
                "validation_std": _metric(record, "validation", "dice_std"),
                "test_dice": _metric(record, "test", "dice_mean"),
                "test_std": _metric(record, "test", "dice_std"),
                "nqm_threshold": nqm.get("nqm_threshold"),
                "threshold_on": nqm.get("threshold_fitted_on"),
                "commit": (record["code"].get("training") or "unknown")[:10],
            }
        )
    return pd.DataFrame(rows)


def paper_settings(repository: Path | None) -> dict[str, Any]:
    """The paper's model settings (``config/config.yaml`` of the repository), or {} when unavailable."""
    path = None if repository is None else Path(repository) / "config" / "config.yaml"
    if path is None or not path.exists():
        return {}
    return (yaml.safe_load(path.read_text()) or {}).get("model_settings", {})


def _differences(ours: Mapping[str, Any], paper: Mapping[str, Any], prefix: str = "") -> list[str]:
    """'key: ours (paper: theirs)' for every setting the paper's block gives a different value."""
    found = []
    for key in sorted(set(ours) | set(paper)):
        mine, theirs = ours.get(key), paper.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            found += _differences(mine, theirs, f"{prefix}{key}.")
        elif key in paper and mine != theirs:
            found.append(f"{prefix}{key} {mine} (paper: {theirs})")
    return found


def checklist(
    records: Mapping[Run, dict[str, Any]],
    config: Mapping[str, Any],
    paper: Mapping[str, Any],
    ablation_shown: bool,
) -> list[str]:
    """The reproducibility checklist: what was chosen on which split, seeds and runs, compute, and what
    differs from the paper's settings."""
    items = []
    datasets = config.get("dataset_settings", {})
    validated = sorted(
        name
        for name in config.get("datasets", [])
        if datasets.get(name, {}).get("validation_fraction", 0) > 0
    )
    if validated:
        items.append(
            f"Validation split held out of training on {', '.join(validated)}: every choice made in this run "
            "(the NQM failure threshold) was made on it; the test split was scored once per final model."
        )
    else:
        items.append(
            "No validation split (as in the paper): nothing in this run was chosen on held-out data, and an "
            "NQM threshold is fitted on the test cases it is judged on (the NQM section says so)."
        )
    items.append(
        "Training recipe: chosen on the validation split by the recipe ablation shown above."
        if ablation_shown
        else "Training recipe: taken from the configuration; no ablation is part of this report."
    )
    items.append(
        "Learning curves score snapshots on the test split to describe training; no epoch was chosen "
        "from them."
    )
    seeds = config.get("seeds", [])
    runs = config.get("evaluation", {}).get("nca_runs")
    items.append(f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}); NCA predictions average {runs} runs.")
    if records:
        minutes = sum(record["training"].get("train_seconds") or 0 for record in records.values()) / 60
        machines = sorted(
            {(record.get("machine") or {}).get("cpu", "unknown") for record in records.values()}
        )
        items.append(
            f"Compute: {minutes:.1f} min of training over {len(records)} run(s), on {', '.join(machines)}."
        )
    for model in sorted({base_model(run.model) for run in records} | set(config.get("models", []))):
        ours = config.get("model_settings", {}).get(model, {})
        differences = _differences(ours, paper.get(model, {}))
        if differences:
            items.append(
                f"{display_name(model)} differs from the paper's settings: {'; '.join(differences)}."
            )
    nca = [run for run in records if is_nca(run.model) and records[run].get("nqm")]
    for run in nca:
        fitted = records[run]["nqm"].get("threshold_fitted_on")
        if fitted:
            items.append(
                f"{display_name(run.model)} on {run.dataset} (seed {run.seed}): NQM threshold fitted on "
                f"{fitted}."
            )
    return items
