"""Sentences that state, from this run's numbers, whether each claim of the Med-NCA paper held.

The claims (Kalkhof et al., IPMI 2023): Med-NCA beats a UNet on Dice while being about 500x smaller; it
degrades only slightly under strong shifts; it is robust to scale changes and MRI artefacts. The M3D-NCA
follow-up adds that the NQM of repeated NCA runs flags failed segmentations. Every sentence is built from
the report's tables; where a comparison lacks its inputs the sentence says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from mednca.names import BASELINE, display_name
from mednca.names import PAPER_MODEL as NCA
from mednca.report.render import seconds

SLIGHT_DROP = 0.05
"""The largest mean Dice drop this report calls "slight degradation"."""
ARTEFACT_STUDIES = ("noise", "spike", "ghosting", "bias_field", "motion", "anisotropy", "gibbs")


def _signed(value: float) -> str:
    """+0.012 / -0.034, or 'n/a' for NaN."""
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _row(table: pd.DataFrame, dataset: str, model: str) -> pd.Series | None:
    """The main-table row of a dataset and model, or None."""
    rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
    return None if rows.empty else rows.iloc[0]


def dice_findings(table: pd.DataFrame, paper_parameters: dict[str, float]) -> list[str]:
    """Per dataset: Med-NCA vs UNet Dice (with the paper's difference), size and inference time."""
    sentences = []
    for dataset in sorted(table["dataset"].unique()):
        sentences += _few_cases_sentences(table[table["dataset"] == dataset])
        nca, unet = _row(table, dataset, NCA), _row(table, dataset, BASELINE)
        if nca is None or unet is None:
            rows = table[table["dataset"] == dataset]
            scores = ", ".join(f"{display_name(r.model)} {r.dice_mean:.3f}" for r in rows.itertuples())
            sentences.append(
                f"{dataset}: mean test Dice {scores}. The Med-NCA vs UNet comparison needs both models."
            )
            continue
        ours = nca["dice_mean"] - unet["dice_mean"]
        theirs = nca["paper_dice"] - unet["paper_dice"]
        paper = "no published values" if math.isnan(theirs) else f"paper {_signed(theirs)}"
        verdict = "held" if ours > 0 else "did not hold"
        sentences.append(
            f"{dataset}: Med-NCA Dice {nca['dice_mean']:.3f} vs UNet {unet['dice_mean']:.3f} "
            f"({_signed(ours)}; {paper}). The claim that Med-NCA beats the UNet {verdict} in this run."
        )
        sentences.append(_size_sentence(dataset, nca, unet, paper_parameters))
        sentences.append(
            f"{dataset}: one test volume took {nca['inference_seconds']:.2f} s with Med-NCA "
            f"(all its runs) and {unet['inference_seconds']:.2f} s with the UNet."
        )
    return sentences


FEW_TEST_CASES = 5
"""Below this many test volumes the report says that a Dice is a check rather than an estimate."""


def _few_cases_sentences(rows: pd.DataFrame) -> list[str]:
    """A caution for a dataset whose test split has fewer than ``FEW_TEST_CASES`` volumes."""
    if "cases" not in rows or rows["cases"].isna().all() or rows["cases"].max() >= FEW_TEST_CASES:
        return []
    dataset, cases = rows["dataset"].iloc[0], int(rows["cases"].max())
    return [
        f"{dataset}: only {cases} test volume(s), so its Dice values are a check that training worked, not "
        "an estimate of the accuracy on new cases."
    ]


def _size_sentence(dataset: str, nca: pd.Series, unet: pd.Series, paper_parameters: dict[str, float]) -> str:
    """Parameter counts of Med-NCA and UNet, their ratio and the paper's ratio."""
    ratio = unet["parameters"] / nca["parameters"]
    paper_nca, paper_unet = paper_parameters.get(NCA), paper_parameters.get(BASELINE)
    paper = (
        f"; the paper compares {paper_nca:,.0f} with {paper_unet:,.0f} ({paper_unet / paper_nca:.0f}x)"
        if paper_nca and paper_unet
        else ""
    )
    return (
        f"{dataset}: Med-NCA has {nca['parameters']:,.0f} parameters, {ratio:.0f}x fewer than the UNet's "
        f"{unet['parameters']:,.0f}{paper}."
    )


def _largest_drop(summary: pd.DataFrame, dataset: str, study: str, model: str) -> pd.Series | None:
    """The severity row with the largest mean Dice drop of a model in a study, or None."""
    rows = summary[
        (summary["dataset"] == dataset) & (summary["study"] == study) & (summary["model"] == model)
    ]
    rows = rows[rows["severity"] > 0].dropna(subset=["drop"])
    return None if rows.empty else rows.loc[rows["drop"].idxmax()]


def _worst_level(row: pd.Series) -> str:
    """'went from 0.85 (clean) to 0.62 at 0.3' for the worst level, or that it never fell below clean."""
    clean = row["dice"] + row["drop"]
    if row["drop"] <= 0:
        return f"stayed at or above its clean {clean:.3f} at every level"
    return f"went from {clean:.3f} (clean) to {row['dice']:.3f} at {row['value']:g}"


def robustness_findings(summary: pd.DataFrame) -> list[str]:
    """Per dataset: the largest Dice drop of Med-NCA and UNet under shift, scale and the MRI artefacts."""
    sentences = []
    for dataset in sorted(summary["dataset"].unique()):
        drops = {}
        for study in sorted(summary.loc[summary["dataset"] == dataset, "study"].unique()):
            nca, unet = (_largest_drop(summary, dataset, study, model) for model in (NCA, BASELINE))
            if nca is None:
                sentences += _single_model_drops(summary, dataset, study)
                continue
            drops[study] = (nca["drop"], None if unet is None else unet["drop"])
            unet_text = "" if unet is None else f"; the UNet's {_worst_level(unet)}"
            sentences.append(f"{dataset}, {study}: Med-NCA's mean Dice {_worst_level(nca)}{unet_text}.")
        sentences += _claim_sentences(dataset, drops)
    return sentences


def _single_model_drops(summary: pd.DataFrame, dataset: str, study: str) -> list[str]:
    """The largest Dice drop of every model of a study that has no Med-NCA to compare with."""
    models = summary.loc[(summary["dataset"] == dataset) & (summary["study"] == study), "model"].unique()
    sentences = []
    for model in _compared_first(models):
        if (row := _largest_drop(summary, dataset, study, model)) is not None:
            sentences.append(f"{dataset}, {study}: {display_name(model)}'s mean Dice {_worst_level(row)}.")
    return sentences


def _claim_sentences(dataset: str, drops: dict[str, tuple[float, float | None]]) -> list[str]:
    """Verdicts on 'slight degradation under strong shifts' and 'robust to artefacts' for one dataset."""
    sentences = []
    if "shift" in drops:
        verdict = "held" if drops["shift"][0] <= SLIGHT_DROP else "did not hold"
        sentences.append(
            f"{dataset}: the claim of only slight degradation under strong shifts (a drop of at most "
            f"{SLIGHT_DROP}) {verdict} for Med-NCA."
        )
    compared = [study for study in ARTEFACT_STUDIES if study in drops and drops[study][1] is not None]
    if compared:
        fewer = sum(drops[study][0] < drops[study][1] for study in compared)
        sentences.append(
            f"{dataset}: Med-NCA lost less Dice than the UNet in {fewer} of {len(compared)} MRI artefact "
            "studies (largest drop per study)."
        )
    return sentences


def quality_findings(quality: dict[tuple[str, str, int], dict]) -> list[str]:
    """Per NCA run: how well NQM ranks Dice and how many failures an NQM threshold catches."""
    sentences = []
    for (dataset, model, seed), summary in sorted(quality.items()):
        name = f"{dataset}, {display_name(model)}, seed {seed}"
        rho = summary.get("spearman_nqm_dice")
        if rho is None:
            continue
        caught = summary.get("failures_caught")
        if caught is None:
            detection = (
                f"no case had Dice below {summary['failure_dice']}, so failure detection could not be tested"
                if summary["failures"] == 0
                else "every case failed, so no threshold could be set"
            )
        else:
            detection = (
                f"a threshold at NQM {summary['nqm_threshold']:.3f} caught {caught} of {summary['failures']} "
                f"failures (Dice < {summary['failure_dice']}) and flagged {summary['successes_flagged']} "
                "successful cases"
            )
        sentences.append(
            f"{name}: Spearman correlation of NQM with Dice {rho:+.2f} over {summary['cases']} clean and "
            f"perturbed cases; {detection}."
        )
    return sentences


def dice_at(run: pd.DataFrame, elapsed: float) -> float:
    """The test Dice of one run's learning curve after ``elapsed`` seconds of training: its last point
    taken at or before then (NaN if it has none). run columns: train_seconds, dice_mean."""
    earlier = run[run["train_seconds"] <= elapsed * (1 + 1e-9)].sort_values("train_seconds")
    return float("nan") if earlier.empty else float(earlier["dice_mean"].iloc[-1])


def _mean_dice_at(runs: pd.DataFrame, elapsed: float) -> float:
    """The mean over seeds of ``dice_at``."""
    values = [dice_at(run, elapsed) for _, run in runs.groupby("seed")]
    return sum(values) / len(values)


def equal_time_findings(curves: pd.DataFrame, paper_dice: dict[str, dict[str, float]]) -> list[str]:
    """Per dataset: Med-NCA vs UNet at equal training time, and for every model when it reached its
    paper's Dice or, without a published Dice, how its learning curve went.

    The equal time is ``equal_budget``; each model's Dice then is the mean over its seeds of the last
    learning-curve point at or before it. curves columns: dataset, model, seed, train_seconds,
    dice_mean; paper_dice: {dataset: {model: dice}}.
    """
    sentences = []
    for dataset in sorted(curves["dataset"].unique()):
        subset = curves[curves["dataset"] == dataset]
        nca, unet = (subset[subset["model"] == model] for model in (NCA, BASELINE))
        if not nca.empty and not unet.empty:
            sentences.append(_equal_time_sentence(dataset, nca, unet))
        for model in _compared_first(subset["model"].unique()):
            runs, paper = subset[subset["model"] == model], paper_dice.get(dataset, {}).get(model)
            if paper is not None and math.isfinite(paper):
                sentences.append(_paper_reached_sentence(dataset, model, runs, paper))
            else:
                sentences.append(_curve_sentence(dataset, model, runs))
    return sentences


def _compared_first(models: Iterable[str]) -> list[str]:
    """Med-NCA, then the UNet, then every other model alphabetically (those present)."""
    return sorted(models, key=lambda model: ({NCA: 0, BASELINE: 1}.get(model, 2), model))


def _curve_sentence(dataset: str, model: str, runs: pd.DataFrame) -> str:
    """A model's first and last learning-curve points (mean over seeds) and its best point, for a model
    without a published Dice to compare with."""
    by_epoch = runs.groupby("epoch").agg(
        dice_mean=("dice_mean", "mean"), train_seconds=("train_seconds", "mean")
    )
    first, last = by_epoch.iloc[0], by_epoch.iloc[-1]
    best = runs.loc[runs["dice_mean"].idxmax()]
    return (
        f"{dataset}: {display_name(model)}'s test Dice went from {first['dice_mean']:.3f} after "
        f"{seconds(first['train_seconds'])} (epoch {by_epoch.index[0]}) to {last['dice_mean']:.3f} after "
        f"{seconds(last['train_seconds'])} (epoch {by_epoch.index[-1]}), mean over {runs['seed'].nunique()} "
        f"seed(s); its best point was {best['dice_mean']:.3f} (seed {int(best['seed'])}, epoch "
        f"{int(best['epoch'])})."
    )


def equal_budget(*runs: pd.DataFrame) -> float:
    """The training time at which to compare models: the shortest run's length, or, if a model has no
    learning-curve point that early, the first time by which every run has one. runs: each model's curves
    (columns seed, train_seconds)."""
    shortest = min(model.groupby("seed")["train_seconds"].max().min() for model in runs)
    first_points = max(model.groupby("seed")["train_seconds"].min().max() for model in runs)
    return max(shortest, first_points)


def _equal_time_sentence(dataset: str, nca: pd.DataFrame, unet: pd.DataFrame) -> str:
    """Med-NCA's and the UNet's Dice within the same training time (``equal_budget``)."""
    budget = equal_budget(nca, unet)
    ours, theirs = _mean_dice_at(nca, budget), _mean_dice_at(unet, budget)
    verdict = "held" if ours > theirs else "did not hold"
    return (
        f"{dataset}: within {seconds(budget)} of training (each model's last learning-curve point by then), "
        f"Med-NCA's test Dice was {ours:.3f} vs the UNet's {theirs:.3f} ({_signed(ours - theirs)}). The "
        f"claim that Med-NCA beats the UNet {verdict} at equal training time."
    )


def _paper_reached_sentence(dataset: str, model: str, runs: pd.DataFrame, paper: float) -> str:
    """When a model's learning curve first reached the paper's Dice, or its best point if it never did."""
    name = display_name(model)
    reached = runs[runs["dice_mean"] >= paper]
    if not reached.empty:
        first = reached.loc[reached["train_seconds"].idxmin()]
        return (
            f"{dataset}: {name} first reached the paper's Dice {paper:.3f} after "
            f"{seconds(first['train_seconds'])} of training (seed {int(first['seed'])}, "
            f"epoch {int(first['epoch'])})."
        )
    best = runs.loc[runs["dice_mean"].idxmax()]
    return (
        f"{dataset}: {name} stayed below the paper's Dice {paper:.3f} throughout training; its best point "
        f"was {best['dice_mean']:.3f} after {seconds(best['train_seconds'])} (seed {int(best['seed'])}, "
        f"epoch {int(best['epoch'])})."
    )


def efficiency_findings(summary: pd.DataFrame) -> list[str]:
    """The data-efficiency study: every model's Dice with the fewest and the most training cases, and for
    every fine-tuned model ``{model}_from_{source}`` what pre-training changed against ``model`` trained from
    scratch. summary: ``efficiency_summary`` (model, cases, train_cases, seeds, dice)."""
    by_cases = summary.sort_values("train_cases", kind="stable")
    ends = list(dict.fromkeys([by_cases["cases"].iloc[0], by_cases["cases"].iloc[-1]]))
    sentences = [_efficiency_ranking(by_cases[by_cases["cases"] == cases]) for cases in ends]
    models = set(summary["model"])
    for model in _compared_first(models):
        base, _, source = model.partition("_from_")
        if source and base in models:
            sentences += _pretraining_sentences(by_cases, model, base, source)
    return sentences


def _efficiency_ranking(rows: pd.DataFrame) -> str:
    """The models' mean test Dice at one k, best first."""
    rows = rows.sort_values("dice", ascending=False, kind="stable")
    scores = ", ".join(
        f"{display_name(row.model)} {row.dice:.3f}" + (f" ({row.seeds} seeds)" if row.seeds > 1 else "")
        for row in rows.itertuples()
    )
    return (
        f"Trained on {int(rows['train_cases'].iloc[0])} case(s) with equal budgets: mean test Dice {scores}."
    )


def _pretraining_sentences(by_cases: pd.DataFrame, tuned: str, base: str, source: str) -> list[str]:
    """Per k, the fine-tuned model's Dice minus its from-scratch counterpart's; the verdict at the
    smallest k (MRISeg's claim that the pre-trained model transfers with little data)."""
    dice = by_cases.pivot_table(index="train_cases", columns="model", values="dice", sort=True)
    gains = (dice[tuned] - dice[base]).dropna()
    if gains.empty:
        return []
    listed = ", ".join(f"k={k} {_signed(gain)}" for k, gain in gains.items())
    fewest = gains.index[0]
    verdict = "held" if gains.iloc[0] > 0 else "did not hold"
    return [
        f"Pre-training on {source} changed {display_name(base)}'s mean test Dice by {listed}; it helped at "
        f"{int((gains > 0).sum())} of {len(gains)} k values.",
        f"The claim that a model pre-trained on {source} needs less data (better with the fewest cases, "
        f"k={fewest}) {verdict} for {display_name(base)}.",
    ]
