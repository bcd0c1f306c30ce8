"""The report's figures and findings sections, each from the tables and files of the runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mednca.evaluate.overlays import read_case_slices
from mednca.evaluate.quality import quality_population
from mednca.names import display_name, is_nca
from mednca.report import figures
from mednca.report.claims import SECTIONS, Evidence
from mednca.report.collect import Run, RunFiles, first_seeds, load_gallery, load_trajectory, rows_of
from mednca.report.findings import (
    dice_findings,
    efficiency_findings,
    equal_time_findings,
    quality_findings,
    robustness_findings,
)
from mednca.report.render import FigureItem, number

GALLERY_DPI = 60
"""Galleries are many small images; a lower resolution keeps the page a few MB."""


def figure_item(title: str, caption: str, figure, dpi: int = figures.DPI) -> FigureItem:
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
    dataset: str, files: dict[Run, RunFiles], per_case: pd.DataFrame, seed: int
) -> FigureItem | None:
    """Best, median and worst test case of a dataset with every model's prediction (seed ``seed``).

    The slices are those the evaluation wrote (``test_slices.npz``), so the raw data is not read here.
    """
    cases_of_seed = per_case[(per_case["dataset"] == dataset) & (per_case["seed"] == seed)]
    slices = {
        run.model: read_case_slices(run_files.test_slices)
        for run, run_files in files.items()
        if run.dataset == dataset and run.seed == seed
        and run_files.test_slices is not None and Path(run_files.test_slices).exists()
    }  # fmt: skip
    chosen = _chosen_cases(cases_of_seed[cases_of_seed["model"].isin(list(slices))])
    if not chosen:
        return None
    models = sorted(slices)
    rows = []
    for kind, case_id, mean_dice in chosen:
        shown = {model: by_case[case_id] for model, by_case in slices.items() if case_id in by_case}
        first = next(iter(shown.values()))
        scores = cases_of_seed[cases_of_seed["case_id"] == case_id].set_index("model")["dice"]
        rows.append(
            figures.OverlayRow(
                title=f"{kind}: {case_id} (mean Dice {mean_dice:.3f})",
                image=first.image,
                label=first.label,
                predictions={model: item.prediction for model, item in shown.items()},
                dice={model: float(scores[model]) for model in shown if model in scores.index},
            )
        )
    caption = (
        "Best, median and worst test case by mean Dice over the models; the slice with the most ground-truth "
        f"foreground, raw intensities. Seed {seed}."
    )
    return figure_item(f"{dataset}: predictions", caption, figures.overlay_grid(rows, models))


def trajectory_figures(files: dict[Run, RunFiles]) -> list[FigureItem]:
    """The NCA's probability over its steps, for the first seed of every NCA run that recorded one."""
    items = []
    for run in first_seeds(list(files)):
        arrays = load_trajectory(files[run]) if is_nca(run.model) else None
        if arrays is None:
            continue
        figure = figures.nca_trajectory(
            arrays["steps"], arrays["levels"], arrays["probabilities"].astype(float), arrays["image"]
        )
        caption = (
            f"Foreground probability of {display_name(run.model)} as its cells update, on slice "
            f"{int(arrays['slice_index'])} of {arrays['case_id']} (one run, seed {run.seed})."
        )
        items.append(figure_item(f"{run.dataset}: {display_name(run.model)} steps", caption, figure))
    return items


def gallery_figures(files: dict[Run, RunFiles], datasets: list[str], studies: list[str]) -> list[FigureItem]:
    """One gallery per dataset and study (first seed of each model): perturbed input, label, predictions."""
    items = []
    for dataset in datasets:
        dataset_runs = [run for run in first_seeds(list(files)) if run.dataset == dataset]
        for study in studies:
            galleries = {
                display_name(run.model): gallery
                for run in dataset_runs
                if (gallery := load_gallery(files[run], study)) is not None
            }
            if not galleries:
                continue
            case_id = next(iter(galleries.values()))["case_id"]
            title = f"{dataset}: {study}"
            caption = (
                f"Case {case_id}, one slice per severity; green: ground truth, red: each model's prediction."
            )
            items.append(
                figure_item(title, caption, figures.perturbation_gallery(galleries, title), dpi=GALLERY_DPI)
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
        fitted_on = summary.get("threshold_fitted_on")
        threshold = (
            "no threshold"
            if summary.get("nqm_threshold") is None
            else "threshold fitted on these same cases (no validation split)"
            if fitted_on in (None, "same cases")
            else f"threshold fitted on the {fitted_on} split"
        )
        caption = (
            f"{len(points)} cases: each robustness test case once clean and at every perturbed level, seed "
            f"{run.seed}; "
            f"Spearman correlation {number(summary.get('spearman_nqm_dice') or float('nan'), 2)}; "
            f"{threshold}."
        )
        title = f"{run.dataset}: {display_name(run.model)} NQM against Dice"
        items.append(figure_item(title, caption, figure))
    return items


def findings_sections(evidence: Evidence) -> list[dict]:
    """The findings sections, each with an anchor (``claims.SECTIONS``, where the claims table links), a
    title, its sentences and what to say when it has none (the data-efficiency section has sentences only
    when the run has the study).

    They read the same ``evidence`` as the claims table: the verdicts pair per-case results (the Dice, the
    robustness drops) and, for pre-training, the data-efficiency runs by seed.
    """
    table, robust, curves = evidence.table, evidence.robust, evidence.curves
    efficiency = evidence.efficiency
    quality_by_key = {
        (run.dataset, run.model, run.seed): summary
        for run, summary in evidence.quality.items()
        if is_nca(run.model)
    }
    return [
        {
            "id": SECTIONS["accuracy"],
            "title": "Accuracy, size and speed",
            "sentences": dice_findings(table, evidence.paper_parameters, evidence.per_case)
            if not table.empty
            else [],
            "empty": "No evaluation results.",
        },
        {
            "id": SECTIONS["time"],
            "title": "Accuracy against training time",
            "sentences": equal_time_findings(curves, evidence.paper_dice) if not curves.empty else [],
            "empty": "No learning curves.",
        },
        {
            "id": SECTIONS["robustness"],
            "title": "Robustness: shifts, scale and MRI artefacts",
            "sentences": robustness_findings(robust, evidence.robustness) if not robust.empty else [],
            "empty": "No robustness results.",
        },
        {
            "id": SECTIONS["quality"],
            "title": "NCA quality estimate",
            "sentences": quality_findings(quality_by_key),
            "empty": "No NCA run with repeated runs and varying Dice.",
        },
        {
            "id": SECTIONS["efficiency"],
            "title": "How much data each model needs (transfer)",
            "sentences": []
            if efficiency is None
            else efficiency_findings(efficiency, evidence.efficiency_runs),
            "empty": "No data-efficiency study in this run.",
        },
    ]
