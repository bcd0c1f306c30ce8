"""The report stage: every result of a run in one self-contained ``report.html``.

Reads the CSV/JSON/NPZ outputs of the workflow (``collect``), aggregates them (``tables``), states the
paper's claims against them (``findings``), draws the figures (``figures``) and renders the page
(``render``). The raw test images are read only to show the predictions over them.
"""

from __future__ import annotations

import datetime
import logging
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mednca.data.preprocess import most_foreground_slice
from mednca.data.stages import dataset_folder
from mednca.data.volumes import read_nifti, read_voxels
from mednca.evaluate.evaluation import held_out_cases, load_test_case
from mednca.evaluate.quality import quality_population
from mednca.io import atomic_path
from mednca.names import display_name, is_nca
from mednca.report import figures
from mednca.report.collect import (
    Missing,
    ResultsLayout,
    Run,
    dataset_overview,
    example_slice,
    first_seeds,
    load_benchmarks,
    load_gallery,
    load_learning_curves,
    load_per_case,
    load_quality,
    load_robustness,
    load_summaries,
    load_training,
    load_trajectory,
    rows_of,
)
from mednca.report.findings import (
    dice_findings,
    equal_time_findings,
    quality_findings,
    robustness_findings,
)
from mednca.report.render import (
    Column,
    FigureItem,
    count,
    html_table,
    is_missing,
    mean_std,
    number,
    render_report,
    seconds,
)
from mednca.report.tables import (
    ablation_summary,
    main_table,
    read_ablation,
    robustness_summary,
    robustness_wide,
    stage_times,
)

log = logging.getLogger(__name__)

PACKAGES = (
    "mednca",
    "torch",
    "monai",
    "torchio",
    "nibabel",
    "numpy",
    "pandas",
    "seaborn",
    "snakemake",
    "dvc",
)


def git_state(directory: Path) -> str:
    """'<commit>' or '<commit> (uncommitted changes)', or a note when ``directory`` is not a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (uncommitted changes)" if status.strip() else commit


def package_versions() -> pd.DataFrame:
    """Installed version of each package the pipeline relies on (columns package, version)."""
    rows = []
    for package in PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": package, "version": version})
    return pd.DataFrame(rows)


MAIN_TABLE_COLUMNS = [
    Column("dataset", "Dataset", lambda r: r["dataset"], numeric=False),
    Column("model", "Model", lambda r: display_name(r["model"]), numeric=False),
    Column("seeds", "Seeds", lambda r: count(r["seeds"])),
    Column("cases", "Test cases", lambda r: count(r["cases"])),
    Column("dice_mean", "Dice", lambda r: mean_std(r["dice_mean"], r["dice_std"])),
    Column("paper_dice", "Paper Dice", lambda r: mean_std(r["paper_dice"], r["paper_dice_std"])),
    Column("dice_vs_paper", "Ours − paper", lambda r: number(r["dice_vs_paper"])),
    Column("dice_seed_std", "Dice seed std", lambda r: number(r["dice_seed_std"])),
    Column("hd95_mean", "HD95 (mm)", lambda r: mean_std(r["hd95_mean"], r["hd95_std"], 2)),
    Column("parameters", "Parameters", lambda r: count(r["parameters"])),
    Column("train_seconds", "Training time", lambda r: seconds(r["train_seconds"])),
    Column("inference_seconds", "Inference per volume", lambda r: seconds(r["inference_seconds"])),
    Column("train_peak_mb", "Training peak MB", lambda r: count(r["train_peak_mb"])),
    Column("inference_peak_mb", "Inference peak MB", lambda r: count(r["inference_peak_mb"])),
    Column("nqm_mean", "Mean NQM", lambda r: number(r["nqm_mean"])),
]
ABLATION_COLUMNS = [
    Column("variant", "Variant", lambda r: r["variant"], numeric=False),
    Column("seeds", "Seeds", lambda r: count(r["seeds"])),
    Column("epochs", "Epochs", lambda r: count(r["epochs"])),
    Column("train_minutes", "Training time", lambda r: seconds(60 * r["train_minutes"])),
    Column("dice", "Test Dice (mean over seeds)", lambda r: number(r["dice"])),
    Column("dice_seed_min", "Seeds' range", lambda r: f"{number(r.dice_seed_min)}–{number(r.dice_seed_max)}"),
    Column("hd95", "HD95 (mm)", lambda r: number(r["hd95"], 2)),
    Column("dice_vs_reference", "Dice − paper recipe", lambda r: number(r["dice_vs_reference"])),
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


GALLERY_DPI = 60
"""Galleries are many small images; a lower resolution keeps the page a few MB."""


def _item(title: str, caption: str, figure, dpi: int = figures.DPI) -> FigureItem:
    """A FigureItem from a matplotlib figure (closed after encoding)."""
    return FigureItem(title, caption, figures.to_data_uri(figure, dpi))


def _quality_points(robustness: pd.DataFrame, run: Run) -> pd.DataFrame:
    """NQM and Dice of a run's robustness cases, clean and perturbed, as its failure detection saw them."""
    return quality_population(rows_of(robustness, run))[["dataset", "model", "source", "dice", "nqm"]]


def _chosen_cases(per_case: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(kind, case id, mean Dice over models) of the best, median and worst test case of one dataset."""
    ranked = per_case.groupby("case_id")["dice"].mean().sort_values(ascending=False)
    if ranked.empty:
        return []
    positions = {"best": 0, "median": len(ranked) // 2, "worst": len(ranked) - 1}
    chosen, seen = [], set()
    for kind, position in positions.items():
        case_id = ranked.index[position]
        if case_id not in seen:
            seen.add(case_id)
            chosen.append((kind, case_id, float(ranked.iloc[position])))
    return chosen


def overlay_figure(
    layout: ResultsLayout, dataset: str, per_case: pd.DataFrame, seed: int, settings: dict
) -> FigureItem | None:
    """Best, median and worst test case of a dataset with every model's prediction (seed ``seed``)."""
    cases_of_seed = per_case[(per_case["dataset"] == dataset) & (per_case["seed"] == seed)]
    chosen = _chosen_cases(cases_of_seed)
    data_dir = layout.data_dir(dataset)
    if (
        not chosen
        or not (data_dir / "source.json").exists()
        or not dataset_folder(data_dir / "source.json").exists()
    ):
        return None
    cases = {
        c.case_id: c
        for c in held_out_cases(data_dir / "manifest.csv", data_dir / "cases.csv", data_dir / "source.json")
    }
    axis, models = settings["slice_axis"], sorted(cases_of_seed["model"].unique())
    rows = []
    for kind, case_id, mean_dice in chosen:
        volume, truth = load_test_case(cases[case_id], tuple(settings["foreground_labels"]))
        index = most_foreground_slice(truth, axis)
        predictions, dice = {}, {}
        for model in models:
            path = layout.run_dir("predictions", Run(dataset, model, seed)) / f"{case_id}.nii.gz"
            if path.exists():
                predictions[model] = np.take(read_voxels(read_nifti(path), path), index, axis=axis)
            scores = cases_of_seed[(cases_of_seed["model"] == model) & (cases_of_seed["case_id"] == case_id)]
            if not scores.empty:
                dice[model] = float(scores["dice"].iloc[0])
        rows.append(
            figures.OverlayRow(
                title=f"{kind}: {case_id} (mean Dice {mean_dice:.3f})",
                image=np.take(volume.image[0], index, axis=axis),
                label=np.take(truth, index, axis=axis),
                predictions=predictions,
                dice=dice,
            )
        )
    caption = (
        "Best, median and worst test case by mean Dice over the models; the slice with the most ground-truth "
        f"foreground, raw intensities. Seed {seed}."
    )
    return _item(f"{dataset}: predictions", caption, figures.overlay_grid(rows, models))


def trajectory_figures(layout: ResultsLayout, runs: list[Run]) -> list[FigureItem]:
    """The NCA's probability over its steps, for the first seed of every NCA run that recorded one."""
    items = []
    for run in first_seeds(runs):
        arrays = load_trajectory(layout, run) if is_nca(run.model) else None
        if arrays is None:
            continue
        figure = figures.nca_trajectory(
            arrays["steps"], arrays["levels"], arrays["probabilities"].astype(float), arrays["image"]
        )
        caption = (
            f"Foreground probability of {display_name(run.model)} as its cells update, on slice "
            f"{int(arrays['slice_index'])} of {arrays['case_id']} (one run, seed {run.seed})."
        )
        items.append(_item(f"{run.dataset}: {display_name(run.model)} steps", caption, figure))
    return items


def gallery_figures(
    layout: ResultsLayout, runs: list[Run], datasets: list[str], studies: list[str]
) -> list[FigureItem]:
    """One gallery per dataset and study (first seed of each model): perturbed input, label, predictions."""
    items = []
    for dataset in datasets:
        dataset_runs = [run for run in first_seeds(runs) if run.dataset == dataset]
        for study in studies:
            galleries = {
                display_name(run.model): gallery
                for run in dataset_runs
                if (gallery := load_gallery(layout, run, study)) is not None
            }
            if not galleries:
                continue
            case_id = next(iter(galleries.values()))["case_id"]
            title = f"{dataset}: {study}"
            caption = (
                f"Case {case_id}, one slice per severity; green: ground truth, red: each model's prediction."
            )
            items.append(
                _item(title, caption, figures.perturbation_gallery(galleries, title), dpi=GALLERY_DPI)
            )
    return items


def quality_figures(robustness: pd.DataFrame, quality: dict[Run, dict]) -> list[FigureItem]:
    """NQM against Dice for every NCA run with a failure-detection summary."""
    items = []
    for run, summary in sorted(quality.items()):
        if not is_nca(run.model):
            continue
        points = _quality_points(robustness, run)
        figure = figures.nqm_vs_dice(points, summary.get("nqm_threshold"), summary["failure_dice"])
        caption = (
            f"{len(points)} cases: each robustness test case once clean and at every perturbed level, seed "
            f"{run.seed}; "
            f"Spearman correlation {number(summary.get('spearman_nqm_dice') or float('nan'), 2)}."
        )
        items.append(_item(f"{run.dataset}: {display_name(run.model)} NQM against Dice", caption, figure))
    return items


def _findings(
    table: pd.DataFrame,
    robust: pd.DataFrame,
    quality: dict[Run, dict],
    paper_parameters: dict,
    curves: pd.DataFrame,
    paper_dice: dict[str, dict[str, float]],
) -> list[dict]:
    """The findings sections, each with a title, its sentences and what to say when it has none."""
    quality_by_key = {
        (run.dataset, run.model, run.seed): summary for run, summary in quality.items() if is_nca(run.model)
    }
    return [
        {
            "title": "Accuracy, size and speed",
            "sentences": dice_findings(table, paper_parameters) if not table.empty else [],
            "empty": "No evaluation results.",
        },
        {
            "title": "Accuracy against training time",
            "sentences": equal_time_findings(curves, paper_dice) if not curves.empty else [],
            "empty": "No learning curves.",
        },
        {
            "title": "Robustness",
            "sentences": robustness_findings(robust) if not robust.empty else [],
            "empty": "No robustness results.",
        },
        {
            "title": "NCA quality estimate",
            "sentences": quality_findings(quality_by_key),
            "empty": "No NCA run with repeated runs and varying Dice.",
        },
    ]


def build_report(
    results_dir: Path,
    out_html: Path,
    runs: list[Run],
    datasets: list[str],
    studies: list[str],
    dataset_settings: dict[str, dict],
    paper_results: dict,
    paper_parameters: dict,
    config: dict,
    nca_runs: int,
    repository: Path | None = None,
    ablation_csv: Path | None = None,
) -> None:
    """Write ``out_html`` from the results of ``runs`` under ``results_dir`` (missing files are listed),
    with the recipe ablation of ``ablation_csv`` (``benchmarks/recipe_ablation.py``) when given."""
    layout, missing = ResultsLayout(Path(results_dir)), Missing()
    per_case = load_per_case(layout, runs, missing)
    summaries = load_summaries(layout, runs, missing)
    training = load_training(layout, runs, missing)
    curves = load_learning_curves(layout, runs, missing)
    paper_dice = {
        dataset: {model: values.get("dice") for model, values in models.items()}
        for dataset, models in paper_results.items()
    }
    robustness = load_robustness(layout, runs, studies, missing)
    quality = load_quality(layout, runs, missing) if studies else {}
    overview = dataset_overview(layout, datasets, missing)
    table = main_table(per_case, summaries, paper_results)
    robust = robustness_summary(robustness)
    log.info(
        "report: %d runs, %d per-case rows, %d robustness rows", len(runs), len(per_case), len(robustness)
    )

    examples = [figures.DatasetExample(d, *found) for d in datasets if (found := example_slice(layout, d))]
    first_seed = min((run.seed for run in runs), default=0)
    context = {
        "title": "Med-NCA reproduction report",
        "info": _run_info(layout, config, summaries, overview, repository, nca_runs),
        "missing": missing.paths,
        "findings": _findings(table, robust, quality, paper_parameters, curves, paper_dice),
        "tables": {
            "main": html_table(table, MAIN_TABLE_COLUMNS, "main-results"),
            "datasets": html_table(overview, DATASET_COLUMNS, "datasets"),
            "stages": html_table(stage_times(load_benchmarks(layout)), STAGE_COLUMNS, "stage-times"),
            "robustness": html_table(wide := robustness_wide(robust), robustness_columns(wide), "robustness"),
            "versions": html_table(package_versions(), VERSION_COLUMNS, "versions"),
            "ablation": None if ablation_csv is None else ablation_table(Path(ablation_csv)),
        },
        "figures": {
            "examples": _item(
                "Example training slices",
                "Preprocessed model input with the label outline.",
                figures.dataset_examples(examples),
            )
            if examples
            else None,
            "dice_distribution": _item(
                "Test Dice per case",
                "One point per test case and seed; boxes show quartiles.",
                figures.dice_distribution(per_case),
            ),
            "dice_vs_cost": _item(
                "Dice against size and compute",
                "Mean test Dice (± std over cases) against parameters and inference time per volume (log "
                "scales). An NCA has few parameters but runs its rule many times per image.",
                figures.dice_vs_cost(table),
            ),
            "learning": _item(
                "Learning curves",
                "Mean test Dice of the snapshots saved during training and of the trained model, against "
                "training time and optimiser steps; dotted lines are the paper's values. Each point segments "
                "the whole test split with one run per case.",
                figures.learning_curves(curves, paper_dice),
            ),
            "training": _item(
                "Training curves", "Training loss per epoch.", figures.training_curves(training)
            ),
            "trajectories": trajectory_figures(layout, runs),
            "robustness": [
                _item(
                    f"{dataset}: Dice under perturbation",
                    "Mean Dice over test cases against the perturbation strength, 95 % bootstrap bands "
                    "over cases and seeds.",
                    figures.robustness_curves(robustness, dataset),
                )
                for dataset in sorted(robustness["dataset"].unique())
            ],
            "galleries": gallery_figures(layout, runs, datasets, studies),
            "quality": quality_figures(robustness, quality),
            "overlays": [
                item
                for dataset in datasets
                if (item := overlay_figure(layout, dataset, per_case, first_seed, dataset_settings[dataset]))
            ],
        },
    }
    with atomic_path(Path(out_html)) as temporary:
        temporary.write_text(render_report(context), encoding="utf-8")


def ablation_table(ablation_csv: Path) -> str:
    """The HTML table of a recipe ablation, one row per variant."""
    return html_table(ablation_summary(read_ablation(ablation_csv)), ABLATION_COLUMNS, "ablation")


def _run_info(
    layout: ResultsLayout,
    config: dict,
    summaries: pd.DataFrame,
    overview: pd.DataFrame,
    repository: Path | None,
    nca_runs: int,
) -> dict:
    """The run summary: date, commit, device, datasets and configuration."""
    devices = sorted(summaries["device"].dropna().unique()) if "device" in summaries else []
    items = [
        ("Generated (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")),
        ("Git commit", git_state(repository) if repository else "not recorded"),
        ("Device", ", ".join(devices) or "unknown"),
        ("Datasets", ", ".join(overview["dataset"]) or "none"),
        ("Models", ", ".join(display_name(m) for m in sorted(set(summaries.get("model", [])))) or "none"),
        ("Seeds", ", ".join(str(s) for s in config.get("seeds", []))),
    ]
    return {
        "generated": items[0][1],
        "results_dir": layout.results_dir.name,
        "items_shown": items,
        "config_yaml": yaml.safe_dump(config, sort_keys=True),
        "nca_runs": nca_runs,
    }
