"""What each HTML table of the report shows: its columns, their headers and how each cell is formatted."""

from __future__ import annotations

import pandas as pd

from mednca.names import display_name, is_nca
from mednca.report.render import Column, count, is_missing, mean_std, number, seconds

MAIN_TABLE_COLUMNS = [
    Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
    Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
    Column("seeds", "Seeds", lambda r: count(r["seeds"])),
    Column("cases", "Test cases", lambda r: count(r["cases"])),
    Column("dice_mean", "Test Dice", lambda r: mean_std(r["dice_mean"], r["dice_std"])),
    Column("paper_dice", "Paper Dice", lambda r: mean_std(r["paper_dice"], r["paper_dice_std"])),
    Column("dice_vs_paper", "Ours − paper", lambda r: number(r["dice_vs_paper"])),
    Column("dice_seed_std", "Dice seed std", lambda r: number(r["dice_seed_std"])),
    Column("hd95_mean", "Test HD95 (mm)", lambda r: mean_std(r["hd95_mean"], r["hd95_std"], 2)),
    Column("parameters", "Parameters", lambda r: count(r["parameters"])),
    Column("train_seconds", "Training time", lambda r: seconds(r["train_seconds"])),
    Column("inference_seconds", "Inference per volume", lambda r: seconds(r["inference_seconds"])),
    Column("train_peak_mb", "Training peak MB", lambda r: count(r["train_peak_mb"])),
    Column("inference_peak_mb", "Inference peak MB", lambda r: count(r["inference_peak_mb"])),
    Column("nqm_mean", "Mean NQM", lambda r: number(r["nqm_mean"])),
]


def seed_spread_columns(split: str) -> list[Column]:
    """Training time, and Dice on ``split`` over seeds with their range, of a table with one row per
    setting."""
    return [
        Column("train_minutes", "Training time", lambda r: seconds(60 * r["train_minutes"])),
        Column("dice", f"{split.capitalize()} Dice (mean over seeds)", lambda r: number(r["dice"])),
        Column(
            "dice_seed_min", "Seeds' range", lambda r: f"{number(r.dice_seed_min)}–{number(r.dice_seed_max)}"
        ),
        Column("hd95", f"{split.capitalize()} HD95 (mm)", lambda r: number(r["hd95"], 2)),
    ]


CARD_COLUMNS = [
    Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
    Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
    Column("seed", "Seed", lambda r: count(r["seed"])),
    Column("patients", "Patients train / val / test", lambda r: r["patients"], numeric=False),
    Column("case_lists", "Case lists (SHA-256)", lambda r: r["case_lists"], numeric=False),
    Column("parameters", "Parameters", lambda r: count(r["parameters"])),
    Column(
        "train_seconds", "Training", lambda r: f"{seconds(r['train_seconds'])}, {count(r['epochs'])} epochs"
    ),
    Column("peak_mb", "Training peak MB", lambda r: count(r["peak_mb"])),
    Column("machine", "CPU, threads", lambda r: r["machine"], numeric=False),
    Column(
        "validation_dice", "Validation Dice", lambda r: mean_std(r["validation_dice"], r["validation_std"])
    ),
    Column("test_dice", "Test Dice", lambda r: mean_std(r["test_dice"], r["test_std"])),
    Column("nqm_threshold", "NQM threshold (fitted on)", lambda r: nqm_threshold(r), numeric=False),
    Column("commit", "Trained at", lambda r: r["commit"], numeric=False),
]
"""The model cards in brief: one row per run, from its record."""


def nqm_threshold(row: pd.Series) -> str:
    """'0.042 (validation)', or an en dash for a run without an NQM threshold."""
    if is_missing(row["nqm_threshold"]):
        return "–"
    return f"{number(row['nqm_threshold'])} ({row['threshold_on']})"


ABLATION_COLUMNS = [
    Column("variant", "Variant", lambda r: r["variant"], numeric=False),
    Column("seeds", "Seeds", lambda r: count(r["seeds"])),
    Column("epochs", "Epochs", lambda r: count(r["epochs"])),
    *seed_spread_columns("validation"),
    Column("dice_vs_reference", "Dice − paper recipe", lambda r: number(r["dice_vs_reference"])),
]
EFFICIENCY_TABLE_COLUMNS = [
    Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
    Column("cases", "k", lambda r: r["cases"], numeric=False),
    Column("train_cases", "Training cases", lambda r: count(r["train_cases"])),
    Column("seeds", "Seeds", lambda r: count(r["seeds"])),
    Column("iterations", "Optimiser steps", lambda r: count(r["iterations"])),
    *seed_spread_columns("test"),
]
PER_VOLUME_COLUMNS = [
    Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
    Column("case_id", "Test case", lambda r: r["case_id"], numeric=False),
    Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
    Column("seed", "Seed", lambda r: count(r["seed"])),
    Column("dice", "Dice", lambda r: number(r["dice"])),
    Column("hd95", "HD95 (mm)", lambda r: number(r["hd95"], 2)),
    Column("label_voxels", "Label voxels", lambda r: count(r["label_voxels"])),
    Column("predicted_voxels", "Predicted voxels", lambda r: count(r["predicted_voxels"])),
    Column("nqm", "NQM", lambda r: number(r["nqm"]) if is_nca(r["model"]) else "–"),
]
DATASET_COLUMNS = [
    Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
    Column("train_cases", "Train cases", lambda r: count(r["train_cases"])),
    Column("test_cases", "Test cases", lambda r: count(r["test_cases"])),
    Column("shape", "Image size (voxels)", lambda r: r["shape"], numeric=False),
    Column("spacing_mm", "Spacing (mm)", lambda r: r["spacing_mm"], numeric=False),
    Column("channels", "Channels", lambda r: count(r["channels"])),
    Column("sha256", "Data hash (SHA-256)", lambda r: r["sha256"][:16] + "…", numeric=False),
]
STAGE_COLUMNS = [
    Column("stage", "Stage (rule)", lambda r: r["stage"], numeric=False),
    Column("jobs", "Jobs", lambda r: count(r["jobs"])),
    Column("seconds", "Wall time (sum of jobs)", lambda r: seconds(r["seconds"])),
    Column("max_rss_mb", "Largest peak memory (MB)", lambda r: count(r["max_rss_mb"])),
]


def robustness_columns(wide: pd.DataFrame) -> list[Column]:
    """Dataset, study, model, then one 'mean Dice (value)' column per severity of ``robustness_wide``."""
    severities = sorted(int(key.split("_")[1]) for key in wide.columns if key.startswith("dice_"))

    def level(severity: int) -> Column:
        def show(row: pd.Series) -> str:
            value = row.get(f"value_{severity}")
            if is_missing(value):
                return "–"
            return f"{number(row[f'dice_{severity}'])} ({value:g})"

        return Column(f"dice_{severity}", "Clean" if severity == 0 else f"Severity {severity}", show)

    return [
        Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
        Column("study", "Study", lambda r: r["study"], numeric=False),
        Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
        *(level(severity) for severity in severities),
    ]


VERSION_COLUMNS = [
    Column("package", "Package", lambda r: r["package"], numeric=False),
    Column("version", "Version", lambda r: r["version"], numeric=False),
]

EDGE_COLUMNS = [
    Column("workload", "Workload", lambda r: r["workload"], numeric=False),
    Column("runtime", "Runtime", lambda r: r["runtime"], numeric=False),
    Column("threads", "Threads", lambda r: count(r["threads"])),
    Column("batch", "Batch (slices)", lambda r: count(r.get("batch"))),
    Column("median_s", "Median", lambda r: seconds(r["median_s"])),
    Column("p90_s", "90th percentile", lambda r: seconds(r.get("p90_s"))),
    Column("peak_rss_mb", "Peak MB", lambda r: count(r["peak_rss_mb"])),
    Column("repeats", "Repeats", lambda r: count(r["repeats"])),
]
