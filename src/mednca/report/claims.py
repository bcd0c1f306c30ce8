"""The claims table: one row per claim of the source works, this run's evidence beside the paper's figure.

The claims are Med-NCA's (Kalkhof et al., IPMI 2023): better Dice than a UNet (+2 % hippocampus, +3 %
prostate) about 500x smaller, only slight degradation under strong shifts, invariance to scale, robustness to
MRI artefacts, inference on a Raspberry Pi; M3D-NCA's NQM that flags failed segmentations; and MRISeg's aim of
a model that transfers to related tasks with little data. Every verdict follows the same rule as the findings
(``statistics.verdict``: the 95 % interval of a paired difference against the claim's boundary) and uses the
same differences (``findings``); a claim the run cannot test is a row that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mednca.documents import EDGE_TARGETS
from mednca.evaluate.quality import quality_population
from mednca.names import BASELINE, display_name
from mednca.names import PAPER_MODEL as NCA
from mednca.report.collect import Run, rows_of
from mednca.report.findings import (
    SLIGHT_DROP,
    artefact_difference,
    dice_difference,
    drop_difference,
    equal_time_difference,
    fewest_cases,
    largest_drop,
    pretraining_difference,
)
from mednca.report.statistics import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTED,
    PairedDifference,
    clustered_correlation,
    interval_text,
    sample_size,
    signed,
    verdict,
)
from mednca.studies import ARTEFACT_STUDIES

SCALE_STUDIES = ("scale_resize", "scale_fixed")
"""The robustness studies that test the scale-invariance claim."""
PARAMETER_RATIO_FACTOR = 2.0
"""'About 500x fewer parameters' holds when this run's ratio is at least the paper's divided by this."""

SECTIONS = {
    "accuracy": "findings-accuracy",
    "time": "findings-time",
    "robustness": "findings-robustness",
    "quality": "findings-quality",
    "efficiency": "findings-efficiency",
    "edge": "edge",
}
"""The anchor of each findings group, where a claim's evidence is detailed."""


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table; ``section`` is the anchor of its evidence."""

    claim: str
    paper: str
    measured: str
    sample: str
    verdict: str
    section: str


@dataclass(frozen=True)
class Evidence:
    """What the claims table and the findings judge the claims from, as the report loads it.

    table: ``main_table``; per_case: ``load_per_case``; robust: ``robustness_summary``; robustness:
    ``load_robustness``; quality: NQM summaries per run (``load_quality``); curves:
    ``load_learning_curves``; efficiency and efficiency_runs: ``efficiency_summary`` and
    ``read_efficiency`` (None without the study); edge: an edge-profile record (None without one).
    """

    datasets: list[str]
    table: pd.DataFrame
    per_case: pd.DataFrame
    robust: pd.DataFrame
    robustness: pd.DataFrame
    quality: dict[Run, dict]
    curves: pd.DataFrame
    paper_results: dict
    paper_parameters: dict
    efficiency: pd.DataFrame | None = None
    efficiency_runs: pd.DataFrame | None = None
    edge: dict | None = None

    @property
    def paper_dice(self) -> dict[str, dict[str, float]]:
        """The paper's Dice per dataset and model (from ``paper_results``)."""
        return {
            dataset: {model: values.get("dice") for model, values in models.items()}
            for dataset, models in self.paper_results.items()
        }


def _judged(
    claim: str,
    paper: str,
    measured: str,
    difference: PairedDifference,
    section: str,
    direction: int = 1,
    margin: float = 0.0,
) -> ClaimRow:
    """A row whose verdict follows ``difference`` against ``margin`` on the side of ``direction``
    (``statistics.verdict``); ``measured`` names the difference, its value and interval follow."""
    outcome = verdict(difference, direction, margin)
    return ClaimRow(
        claim, paper, f"{measured}: {interval_text(difference)}", sample_size(difference), outcome, section
    )


def _untested(claim: str, paper: str, why: str, section: str) -> ClaimRow:
    """A row for a claim the run cannot test, saying why."""
    return ClaimRow(claim, paper, why, "–", NOT_TESTED, section)


def _has(table: pd.DataFrame, dataset: str, model: str) -> bool:
    """Whether the main table has a row of ``model`` on ``dataset``."""
    return (
        bool(((table["dataset"] == dataset) & (table["model"] == model)).any()) if not table.empty else False
    )


def _paper_dice(paper_results: dict, dataset: str) -> str:
    """'+0.028 (0.886 vs 0.858)', or that the paper has no value for the dataset."""
    published = paper_results.get(dataset, {})
    nca, unet = (published.get(model, {}).get("dice") for model in (NCA, BASELINE))
    if nca is None or unet is None:
        return "no published value"
    return f"{signed(nca - unet)} ({nca:.3f} vs {unet:.3f})"


def nca_datasets(inputs: Evidence) -> list[str]:
    """The run's datasets on which it trains Med-NCA: those its claims can be tested on."""
    return [dataset for dataset in inputs.datasets if _has(inputs.table, dataset, NCA)]


def _datasets(inputs: Evidence) -> list[str]:
    """The datasets the run trains Med-NCA on, then the paper's other datasets (their rows: not tested)."""
    tested = nca_datasets(inputs)
    return tested + [name for name in inputs.paper_results if name not in tested]


def dice_rows(inputs: Evidence) -> list[ClaimRow]:
    """Per dataset: Med-NCA's test Dice above the UNet's, paired by case and seed."""
    rows = []
    for dataset in _datasets(inputs):
        claim, paper = (
            f"{dataset}: Med-NCA's Dice beats the UNet's",
            _paper_dice(inputs.paper_results, dataset),
        )
        if dataset not in inputs.datasets:
            rows.append(_untested(claim, paper, f"the run has no {dataset} dataset", SECTIONS["accuracy"]))
        elif not (_has(inputs.table, dataset, NCA) and _has(inputs.table, dataset, BASELINE)):
            why = "the run does not train both Med-NCA and the UNet on it"
            rows.append(_untested(claim, paper, why, SECTIONS["accuracy"]))
        else:
            difference = dice_difference(inputs.per_case, dataset)
            rows.append(_judged(claim, paper, "Med-NCA − UNet", difference, SECTIONS["accuracy"]))
    return rows


def equal_time_rows(inputs: Evidence) -> list[ClaimRow]:
    """Per dataset with both learning curves: Med-NCA's Dice above the UNet's at equal training time."""
    rows, paper = [], "not reported (both trained 1000 epochs)"
    for dataset in nca_datasets(inputs):
        claim = f"{dataset}: Med-NCA beats the UNet at equal training time"
        curves = (
            inputs.curves[inputs.curves["dataset"] == dataset] if not inputs.curves.empty else inputs.curves
        )
        nca, unet = (curves[curves["model"] == model] for model in (NCA, BASELINE))
        if nca.empty or unet.empty:
            why = "needs the learning curves of Med-NCA and the UNet"
            rows.append(_untested(claim, paper, why, SECTIONS["time"]))
            continue
        budget, difference = equal_time_difference(nca, unet)
        measured = f"Med-NCA − UNet test Dice after {budget / 60:.1f} min"
        rows.append(_judged(claim, paper, measured, difference, SECTIONS["time"]))
    return rows


def parameter_row(inputs: Evidence) -> ClaimRow:
    """Med-NCA about 500x smaller than the UNet: held when this run's ratio is at least the paper's over
    ``PARAMETER_RATIO_FACTOR``."""
    claim = "Med-NCA has about 500x fewer parameters than the UNet"
    paper_nca, paper_unet = (inputs.paper_parameters.get(model) for model in (NCA, BASELINE))
    paper = (
        f"{paper_nca:,.0f} vs {paper_unet:,.0f} ({paper_unet / paper_nca:.0f}x)"
        if paper_nca and paper_unet
        else "–"
    )
    both = (
        inputs.table[inputs.table["model"].isin([NCA, BASELINE])] if not inputs.table.empty else inputs.table
    )
    counts = both.groupby("model")["parameters"].first() if not both.empty else pd.Series(dtype=float)
    if NCA not in counts or BASELINE not in counts or not paper_nca or not paper_unet:
        return _untested(claim, paper, "needs Med-NCA, the UNet and the paper's counts", SECTIONS["accuracy"])
    ratio, paper_ratio = counts[BASELINE] / counts[NCA], paper_unet / paper_nca
    outcome = HELD if ratio >= paper_ratio / PARAMETER_RATIO_FACTOR else NOT_HELD
    measured = f"{counts[NCA]:,.0f} vs {counts[BASELINE]:,.0f} ({ratio:.0f}x)"
    return ClaimRow(claim, paper, measured, "parameter counts", outcome, SECTIONS["accuracy"])


def _worst_drop_row(
    inputs: Evidence, dataset: str, studies: tuple[str, ...], claim: str, paper: str
) -> ClaimRow:
    """Med-NCA's clean − perturbed Dice at its largest mean drop among ``studies``, judged against a slight
    drop (at most ``SLIGHT_DROP``)."""
    section = SECTIONS["robustness"]
    drops = [
        (study, row)
        for study in studies
        if not inputs.robust.empty and (row := largest_drop(inputs.robust, dataset, study, NCA)) is not None
    ]
    if not drops:
        return _untested(claim, paper, f"the run has no {' or '.join(studies)} study of Med-NCA", section)
    study, worst = max(drops, key=lambda pair: pair[1]["drop"])
    cases = inputs.robustness[inputs.robustness["dataset"] == dataset]
    difference = drop_difference(cases, study, NCA, int(worst["severity"]))
    measured = f"clean − perturbed Dice, {study} at {worst['value']:g}"
    return _judged(claim, paper, measured, difference, section, -1, SLIGHT_DROP)


def robustness_rows(inputs: Evidence) -> list[ClaimRow]:
    """Per dataset: slight degradation under strong shifts, scale invariance and robustness to artefacts."""
    rows = []
    for dataset in nca_datasets(inputs):
        rows.append(
            _worst_drop_row(
                inputs,
                dataset,
                ("shift",),
                f"{dataset}: only slight degradation of Med-NCA under strong shifts (drop ≤ {SLIGHT_DROP})",
                "slight degradation (no figure)",
            )
        )
        rows.append(
            _worst_drop_row(
                inputs,
                dataset,
                SCALE_STUDIES,
                f"{dataset}: Med-NCA invariant to image scale (drop ≤ {SLIGHT_DROP})",
                "invariant by design (no figure)",
            )
        )
        rows.append(artefact_row(inputs, dataset))
    return rows


def artefact_row(inputs: Evidence, dataset: str) -> ClaimRow:
    """Med-NCA loses less Dice than the UNet under MRI artefacts: one verdict per study, the row's verdict
    the worst of them, its figure the study where Med-NCA compared worst."""
    claim, paper = f"{dataset}: Med-NCA more robust to MRI artefacts than the UNet", "robust (no figure)"
    section = SECTIONS["robustness"]
    cases = (
        inputs.robustness[inputs.robustness["dataset"] == dataset] if not inputs.robustness.empty else None
    )
    differences = {}
    for study in ARTEFACT_STUDIES:
        if inputs.robust.empty or cases is None:
            break
        nca, unet = (largest_drop(inputs.robust, dataset, study, model) for model in (NCA, BASELINE))
        if nca is not None and unet is not None:
            differences[study] = artefact_difference(cases, study, nca, unet)
    if not differences:
        return _untested(claim, paper, "needs artefact studies of Med-NCA and the UNet", section)
    outcomes = {study: verdict(difference) for study, difference in differences.items()}
    counts = {outcome: list(outcomes.values()).count(outcome) for outcome in (HELD, NOT_HELD, INCONCLUSIVE)}
    overall = NOT_HELD if counts[NOT_HELD] else HELD if counts[HELD] == len(outcomes) else INCONCLUSIVE
    worst = min(differences, key=lambda study: differences[study].mean)
    measured = (
        f"held in {counts[HELD]}, not in {counts[NOT_HELD]}, inconclusive in {counts[INCONCLUSIVE]} of "
        f"{len(outcomes)} studies; worst, {worst}: UNet drop − Med-NCA drop "
        f"{interval_text(differences[worst])}"
    )
    return ClaimRow(claim, paper, measured, sample_size(differences[worst]), overall, section)


def quality_rows(inputs: Evidence) -> list[ClaimRow]:
    """Per dataset: Med-NCA's NQM falls as its Dice rises (Spearman correlation over the robustness cases,
    clean and perturbed, cases resampled whole), with what the validation-calibrated threshold caught."""
    rows, paper = [], "high NQM flags likely failures (M3D-NCA)"
    for dataset in nca_datasets(inputs):
        claim = f"{dataset}: Med-NCA's NQM flags failed segmentations"
        runs = [run for run in inputs.quality if run.dataset == dataset and run.model == NCA]
        if not runs:
            rows.append(_untested(claim, paper, "no NQM of Med-NCA in the run", SECTIONS["quality"]))
            continue
        population = pd.concat(
            [quality_population(rows_of(inputs.robustness, run)) for run in runs], ignore_index=True
        )
        correlation = clustered_correlation(population, "nqm", "dice")
        summaries = [inputs.quality[run] for run in runs]
        caught = [s.get("failures_caught") for s in summaries]
        detection = (
            f"; threshold caught {sum(caught)} of {sum(s['failures'] for s in summaries)} failures"
            if all(value is not None for value in caught)
            else ""
        )
        measured = f"Spearman ρ of NQM and Dice {interval_text(correlation)}{detection}"
        outcome = verdict(correlation, -1)
        rows.append(ClaimRow(claim, paper, measured, sample_size(correlation), outcome, SECTIONS["quality"]))
    return rows


def edge_row(edge: dict | None) -> ClaimRow:
    """Raspberry-Pi-class inference from an edge profile: held when one runtime segments a volume at one
    thread within the profile's memory target (``EDGE_TARGETS``)."""
    claim, paper = "Med-NCA runs on Raspberry-Pi-class hardware", "runs on a Raspberry Pi 4 (2 GB)"
    if edge is None:
        why = "no edge profile in this run (benchmarks/edge.py, configured as edge_record)"
        return _untested(claim, paper, why, SECTIONS["edge"])
    volumes = [row for row in edge["rows"] if row["workload"] == "volume" and row["threads"] == 1]
    if not volumes:
        return _untested(claim, paper, "the edge profile has no one-thread volume", SECTIONS["edge"])
    lightest = min(volumes, key=lambda row: row["peak_rss_mb"])
    limit = EDGE_TARGETS["onnxruntime_mb"]
    outcome = HELD if lightest["peak_rss_mb"] <= limit else NOT_HELD
    measured = (
        f"{lightest['runtime']}, 1 thread: {lightest['peak_rss_mb']:.0f} MB peak (target ≤ {limit:g} MB), "
        f"{lightest['median_s']:.2f} s per volume on {edge['machine']['cpu']}"
    )
    return ClaimRow(claim, paper, measured, f"{lightest['repeats']} repeats", outcome, SECTIONS["edge"])


def transfer_rows(inputs: Evidence) -> list[ClaimRow]:
    """MRISeg's aim, from the data-efficiency study: a pre-trained model fine-tuned on the fewest cases
    beats the same model trained from scratch on them."""
    paper = "transfers with little new data (no metric)"
    claim = "a pre-trained MRISeg model needs less data"
    summary, runs = inputs.efficiency, inputs.efficiency_runs
    tuned_models = [] if summary is None else [m for m in summary["model"].unique() if "_from_" in m]
    rows = []
    for tuned in tuned_models:
        base, _, source = tuned.partition("_from_")
        named = f"{claim} ({display_name(base)} pre-trained on {source})"
        cases = fewest_cases(summary, tuned, base)
        if cases is None or runs is None:
            why = f"the data-efficiency study does not train {display_name(base)} from scratch too"
            rows.append(_untested(named, paper, why, SECTIONS["efficiency"]))
            continue
        difference = pretraining_difference(runs, tuned, base, cases)
        measured = f"fine-tuned − from scratch, {cases} training case(s)"
        rows.append(_judged(named, paper, measured, difference, SECTIONS["efficiency"]))
    if not rows:
        why = "no data-efficiency study with a fine-tuned model and its from-scratch counterpart"
        rows.append(_untested(claim, paper, why, SECTIONS["efficiency"]))
    return rows


def claim_rows(inputs: Evidence) -> list[ClaimRow]:
    """Every claim of the source works, in the order of the paper's abstract, then NQM, the Pi and MRISeg."""
    return [
        *dice_rows(inputs),
        *equal_time_rows(inputs),
        parameter_row(inputs),
        *robustness_rows(inputs),
        *quality_rows(inputs),
        edge_row(inputs.edge),
        *transfer_rows(inputs),
    ]
