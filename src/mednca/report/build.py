"""The report stage: every result of a run in one self-contained ``report.html``.

Reads the CSV/JSON/NPZ result files it is given (``collect``), aggregates them (``tables``), states the
paper's claims against them (``findings``, ``sections``), draws the figures (``figures``, ``sections``) and
renders the page (``render``). Nothing is read but the files named in its ``ReportFiles``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mednca.documents import ablation_records
from mednca.io import atomic_path
from mednca.names import display_name
from mednca.report import figures
from mednca.report.cards import card_table, checklist, load_records, paper_settings
from mednca.report.claims import Evidence, claim_rows
from mednca.report.collect import (
    Missing,
    ReportFiles,
    dataset_overview,
    example_slice,
    load_benchmarks,
    load_edge_record,
    load_learning_curves,
    load_per_case,
    load_quality,
    load_robustness,
    load_summaries,
    load_training,
)
from mednca.report.columns import (
    ABLATION_COLUMNS,
    CARD_COLUMNS,
    DATASET_COLUMNS,
    EDGE_COLUMNS,
    EFFICIENCY_TABLE_COLUMNS,
    MAIN_TABLE_COLUMNS,
    PER_VOLUME_COLUMNS,
    STAGE_COLUMNS,
    VERSION_COLUMNS,
    robustness_columns,
)
from mednca.report.findings import FEW_TEST_CASES
from mednca.report.provenance import package_versions, run_info
from mednca.report.render import FigureItem, html_table, render_report
from mednca.report.sections import (
    figure_item,
    findings_sections,
    gallery_figures,
    overlay_figure,
    quality_figures,
    trajectory_figures,
)
from mednca.report.tables import (
    ablation_summary,
    ablation_verdict,
    efficiency_summary,
    main_table,
    read_efficiency,
    robustness_summary,
    robustness_wide,
    small_split_volumes,
    stage_times,
)

log = logging.getLogger(__name__)


def report_stage(
    files: ReportFiles,
    out_html: Path,
    studies: list[str],
    paper_results: dict,
    paper_parameters: dict,
    config: dict,
    nca_runs: int,
    repository: Path | None = None,
    ablation_records: Path | None = None,
    efficiency_csv: Path | None = None,
    edge_record: Path | None = None,
) -> None:
    """Write ``out_html`` from the result files of ``files`` (missing ones are listed on the page), with
    the recipe ablation of the records in ``ablation_records`` (``benchmarks/recipe_ablation.py``, scored
    on the validation split), the data-efficiency study of ``efficiency_csv`` (``mednca.evaluate.efficiency``)
    and the edge profile of ``edge_record`` (``benchmarks/edge.py``) when given."""
    runs, datasets, missing = files.runs, list(files.datasets), Missing()
    per_case = load_per_case(runs, missing)
    summaries = load_summaries(runs, missing)
    training = load_training(runs, missing)
    curves = load_learning_curves(runs, missing)
    robustness = load_robustness(runs, studies, missing)
    quality = load_quality(runs, missing) if studies else {}
    overview = dataset_overview(files.datasets, missing)
    table = main_table(per_case, summaries, paper_results)
    robust = robustness_summary(robustness)
    log.info(
        "report: %d runs, %d per-case rows, %d robustness rows", len(runs), len(per_case), len(robustness)
    )

    examples = [
        figures.DatasetExample(dataset, *found)
        for dataset, dataset_files in files.datasets.items()
        if (found := example_slice(dataset_files))
    ]
    first_seed = min((run.seed for run in runs), default=0)
    stages = stage_times(load_benchmarks(files.benchmarks))
    efficiency = None if efficiency_csv is None else read_efficiency(Path(efficiency_csv))
    efficiency_rows = None if efficiency is None else efficiency_summary(efficiency)
    volumes = small_split_volumes(per_case, FEW_TEST_CASES)
    edge = None if edge_record is None else load_edge_record(Path(edge_record))
    evidence = Evidence(
        datasets=datasets,
        table=table,
        per_case=per_case,
        robust=robust,
        robustness=robustness,
        quality=quality,
        curves=curves,
        paper_results=paper_results,
        paper_parameters=paper_parameters,
        efficiency=efficiency_rows,
        efficiency_runs=efficiency,
        edge=edge,
    )
    records = load_records(runs, missing)
    ablation, ablation_verdict = (
        (None, None) if ablation_records is None else ablation_table(Path(ablation_records))
    )
    context = {
        "ablation_verdict": ablation_verdict,
        "title": "Med-NCA reproduction report",
        "info": run_info(config, summaries, overview, repository, nca_runs),
        "edge_machine": None if edge is None else edge["machine"]["cpu"],
        "missing": missing.paths,
        "few_test_cases": FEW_TEST_CASES,
        "claims": claim_rows(evidence),
        "checklist": checklist(records, config, paper_settings(repository), ablation_records is not None),
        "findings": findings_sections(evidence),
        "tables": {
            "main": html_table(table, MAIN_TABLE_COLUMNS, "main-results"),
            "per_volume": None if volumes.empty else html_table(volumes, PER_VOLUME_COLUMNS, "per-volume"),
            "datasets": html_table(overview, DATASET_COLUMNS, "datasets"),
            "stages": html_table(stages, STAGE_COLUMNS, "stage-times"),
            "robustness": html_table(wide := robustness_wide(robust), robustness_columns(wide), "robustness"),
            "versions": html_table(package_versions(), VERSION_COLUMNS, "versions"),
            "cards": None if not records else html_table(card_table(records), CARD_COLUMNS, "model-cards"),
            "ablation": ablation,
            "edge": None if edge is None else html_table(edge_rows(edge), EDGE_COLUMNS, "edge-profile"),
            "efficiency": None
            if efficiency_rows is None
            else html_table(efficiency_rows, EFFICIENCY_TABLE_COLUMNS, "efficiency"),
        },
        "figures": {
            "examples": figure_item(
                "Example training slices",
                "Preprocessed model input with the label outline.",
                figures.dataset_examples(examples),
            )
            if examples
            else None,
            "dice_distribution": figure_item(
                "Test Dice per case",
                "One point per test case and seed; boxes show quartiles.",
                figures.dice_distribution(per_case),
            ),
            "dice_vs_cost": figure_item(
                "Dice against size and compute",
                "Mean test Dice (± std over cases) against parameters and inference time per volume (log "
                "scales). An NCA has few parameters but runs its rule many times per image.",
                figures.dice_vs_cost(table),
            ),
            "learning": figure_item(
                "Learning curves",
                "Mean test Dice of the snapshots saved during training and of the trained model, against "
                "training time and optimiser steps; dotted lines are the paper's values. Each point segments "
                "the whole test split with one run per case.",
                figures.learning_curves(curves, evidence.paper_dice),
            ),
            "training": figure_item(
                "Training curves", "Training loss per epoch.", figures.training_curves(training)
            ),
            "trajectories": trajectory_figures(runs),
            "efficiency": None if efficiency is None else efficiency_figure(efficiency),
            "robustness": [
                figure_item(
                    f"{dataset}: Dice under perturbation",
                    "Mean Dice over test cases against the perturbation strength, 95 % bootstrap bands "
                    "over cases and seeds.",
                    figures.robustness_curves(robustness, dataset),
                )
                for dataset in sorted(robustness["dataset"].unique())
            ],
            "galleries": gallery_figures(runs, datasets, studies),
            "quality": quality_figures(robustness, quality),
            "overlays": [
                item for dataset in datasets if (item := overlay_figure(dataset, runs, per_case, first_seed))
            ],
        },
    }
    with atomic_path(Path(out_html)) as temporary:
        temporary.write_text(render_report(context), encoding="utf-8")


def efficiency_figure(efficiency: pd.DataFrame) -> FigureItem:
    """The data-efficiency figure, its caption stating each model's budget."""
    budgets = efficiency.groupby("model", sort=False)[["iterations", "batch_size"]].first()
    stated = "; ".join(
        f"{display_name(model)} {row.iterations:,} steps of batch {row.batch_size}"
        for model, row in budgets.iterrows()
    )
    return figure_item(
        "Data efficiency",
        "Mean test Dice on the whole test split against the number of training cases, each run with the "
        f"same budget whatever the cases ({stated}). Lines join the means over seeds, bars span the "
        "seeds' lowest and highest Dice, dots are single runs.",
        figures.data_efficiency(efficiency),
    )


def ablation_table(folder: Path) -> tuple[str, str]:
    """The HTML table of a recipe ablation's records, one row per variant (validation Dice), and its
    verdict sentence (``ablation_verdict``)."""
    summary = ablation_summary(ablation_records(folder))
    return html_table(summary, ABLATION_COLUMNS, "ablation"), ablation_verdict(summary)


def edge_rows(edge: dict) -> pd.DataFrame:
    """The rows of an edge-profile record, one per workload, runtime and thread count."""
    return pd.DataFrame(edge["rows"]).sort_values(["workload", "threads", "runtime"], kind="stable")
