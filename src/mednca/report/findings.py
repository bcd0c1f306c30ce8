"""Sentences that state, from this run's numbers, whether each claim of the Med-NCA paper held.

The claims (Kalkhof et al., IPMI 2023): Med-NCA beats a UNet on Dice while being about 500x smaller; it
degrades only slightly under strong shifts; it is robust to scale changes and MRI artefacts. The M3D-NCA
follow-up adds that the NQM of repeated NCA runs flags failed segmentations. Every sentence is built from
the report's tables; where a comparison lacks its inputs the sentence says so.

A verdict on a claim follows the 95 % interval of a paired difference (``mednca.report.statistics``): over
the same test cases and seeds where there are per-case results, over seeds where there are only per-seed
means. It states the difference, its interval, a Wilcoxon signed-rank p-value and how many cases and seeds
were paired; "held" needs the interval to exclude the claim's boundary on the claimed side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from mednca.names import BASELINE, display_name
from mednca.names import PAPER_MODEL as NCA
from mednca.report.render import seconds
from mednca.report.statistics import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    PairedDifference,
    describe,
    paired_difference,
    seed_difference,
    verdict,
)
from mednca.studies import ARTEFACT_STUDIES

SLIGHT_DROP = 0.05
"""The largest mean Dice drop this report calls "slight degradation"."""


def _signed(value: float) -> str:
    """+0.012 / -0.034, or 'n/a' for NaN."""
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _row(table: pd.DataFrame, dataset: str, model: str) -> pd.Series | None:
    """The main-table row of a dataset and model, or None."""
    rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
    return None if rows.empty else rows.iloc[0]


def _claim_text(claim: str, prefix: str) -> str:
    """'The claim {claim}', or '{prefix}: the claim {claim}'."""
    return f"{prefix}: the claim {claim}" if prefix else f"The claim {claim}"


def _judged(
    claim: str,
    difference: PairedDifference,
    measured: str,
    direction: int = 1,
    margin: float = 0.0,
    prefix: str = "",
) -> str:
    """'The claim {claim} held: {measured}, +0.012 (95 % CI ...; 60 cases, 1 seed).' (claim: 'that ...' or
    'of ...'; led by '{prefix}: ' when given). The verdict follows the interval of ``difference`` against
    ``margin`` on the side of ``direction`` (``statistics.verdict``); with nothing paired it is not judged."""
    if difference.units == 0:
        return f"{_claim_text(claim, prefix)} cannot be judged: {measured} has no pair of results."
    outcome = verdict(difference, direction, margin)
    verb = f"was {outcome}" if outcome == INCONCLUSIVE else outcome
    return f"{_claim_text(claim, prefix)} {verb}: {measured}, {describe(difference)}."


def _scores(rows: pd.DataFrame, column: str = "dice") -> pd.DataFrame:
    """The case_id, seed and value (``column``) of per-case rows, as ``paired_difference`` takes them."""
    return pd.DataFrame({"case_id": rows["case_id"], "seed": rows["seed"], "value": rows[column]})


def dice_difference(per_case: pd.DataFrame, dataset: str) -> PairedDifference:
    """Med-NCA − UNet test Dice of a dataset paired by case and seed (per_case: ``load_per_case``)."""
    rows = per_case[per_case["dataset"] == dataset]
    nca, unet = (_scores(rows[rows["model"] == model]) for model in (NCA, BASELINE))
    return paired_difference(nca, unet)


def _dice_claim(dataset: str, per_case: pd.DataFrame | None) -> str:
    """The verdict on 'Med-NCA beats the UNet' from their Dice on the same test cases and seeds."""
    claim = "that Med-NCA beats the UNet"
    if per_case is None:
        return f"The claim {claim} cannot be judged without their per-case results."
    measured = "Med-NCA − UNet Dice paired by test case and seed"
    return _judged(claim, dice_difference(per_case, dataset), measured)


def dice_findings(
    table: pd.DataFrame, paper_parameters: dict[str, float], per_case: pd.DataFrame | None = None
) -> list[str]:
    """Per dataset: Med-NCA vs UNet Dice (with the paper's difference), size and inference time.

    The verdict on 'Med-NCA beats the UNet' pairs their Dice per test case and seed from ``per_case``
    (``load_per_case``: dataset, model, seed, case_id, dice); without it the claim is not judged.
    """
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
        sentences.append(
            f"{dataset}: Med-NCA Dice {nca['dice_mean']:.3f} vs UNet {unet['dice_mean']:.3f} "
            f"({_signed(ours)}; {paper}). {_dice_claim(dataset, per_case)}"
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


def largest_drop(summary: pd.DataFrame, dataset: str, study: str, model: str) -> pd.Series | None:
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


def robustness_findings(summary: pd.DataFrame, per_case: pd.DataFrame | None = None) -> list[str]:
    """Per dataset: the largest Dice drop of Med-NCA and UNet under shift, scale and the MRI artefacts,
    and the verdicts on the robustness claims.

    summary: ``robustness_summary``; per_case: its per-case rows (``load_robustness``: dataset, model,
    seed, case_id, study, severity, dice), from which each drop is paired with the clean Dice of the same
    case and seed; without them the claims are not judged.
    """
    sentences = []
    for dataset in sorted(summary["dataset"].unique()):
        drops: dict[str, tuple[pd.Series, pd.Series | None]] = {}
        for study in sorted(summary.loc[summary["dataset"] == dataset, "study"].unique()):
            nca, unet = (largest_drop(summary, dataset, study, model) for model in (NCA, BASELINE))
            if nca is None:
                sentences += _single_model_drops(summary, dataset, study)
                continue
            drops[study] = (nca, unet)
            unet_text = "" if unet is None else f"; the UNet's {_worst_level(unet)}"
            sentences.append(f"{dataset}, {study}: Med-NCA's mean Dice {_worst_level(nca)}{unet_text}.")
        cases = None if per_case is None else per_case[per_case["dataset"] == dataset]
        sentences += _claim_sentences(dataset, drops, cases)
    return sentences


def _single_model_drops(summary: pd.DataFrame, dataset: str, study: str) -> list[str]:
    """The largest Dice drop of every model of a study that has no Med-NCA to compare with."""
    models = summary.loc[(summary["dataset"] == dataset) & (summary["study"] == study), "model"].unique()
    sentences = []
    for model in _compared_first(models):
        if (row := largest_drop(summary, dataset, study, model)) is not None:
            sentences.append(f"{dataset}, {study}: {display_name(model)}'s mean Dice {_worst_level(row)}.")
    return sentences


def _clean_and_perturbed(
    per_case: pd.DataFrame, study: str, model: str, severity: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model's per-case Dice in ``study`` clean and at ``severity`` (columns case_id, seed, value);
    per_case: ``load_robustness`` rows of one dataset."""
    rows = per_case[(per_case["study"] == study) & (per_case["model"] == model)]
    clean, perturbed = (_scores(rows[rows["severity"] == level]) for level in (0, severity))
    return clean, perturbed


def drop_difference(per_case: pd.DataFrame, study: str, model: str, severity: int) -> PairedDifference:
    """A model's clean − perturbed Dice at ``severity`` of ``study`` paired by case and seed (per_case:
    ``load_robustness`` rows of one dataset): positive when the perturbation costs Dice."""
    return paired_difference(*_clean_and_perturbed(per_case, study, model, severity))


def artefact_difference(
    per_case: pd.DataFrame, study: str, nca: pd.Series, unet: pd.Series
) -> PairedDifference:
    """The UNet's per-case Dice drop − Med-NCA's in ``study``, each at its largest mean drop (``nca``,
    ``unet``: ``largest_drop`` rows), paired by case and seed: positive when Med-NCA loses less."""
    return paired_difference(
        case_drops(per_case, study, BASELINE, int(unet["severity"])),
        case_drops(per_case, study, NCA, int(nca["severity"])),
    )


def case_drops(per_case: pd.DataFrame, study: str, model: str, severity: int) -> pd.DataFrame:
    """Per test case and seed, a model's clean Dice minus its Dice at ``severity`` of ``study`` (columns
    case_id, seed, value); per_case: ``load_robustness`` rows of one dataset."""
    clean, perturbed = _clean_and_perturbed(per_case, study, model, severity)
    pairs = clean.merge(perturbed, on=["case_id", "seed"], suffixes=("_clean", "_perturbed"))
    return pairs.assign(value=pairs["value_clean"] - pairs["value_perturbed"])[["case_id", "seed", "value"]]


def _claim_sentences(
    dataset: str, drops: dict[str, tuple[pd.Series, pd.Series | None]], per_case: pd.DataFrame | None
) -> list[str]:
    """Verdicts on 'slight degradation under strong shifts' and 'robust to artefacts' for one dataset.

    drops: per study, the ``largest_drop`` rows of Med-NCA and the UNet (None without one); each verdict
    pairs the per-case drops at those severities (``case_drops``) over the same cases and seeds.
    """
    sentences = []
    if "shift" in drops:
        claim = f"of only slight degradation of Med-NCA under strong shifts (a drop of at most {SLIGHT_DROP})"
        nca = drops["shift"][0]
        if per_case is None:
            sentences.append(f"{dataset}: the claim {claim} cannot be judged without per-case results.")
        else:
            difference = drop_difference(per_case, "shift", NCA, int(nca["severity"]))
            measured = (
                f"Med-NCA's clean − shifted Dice at {nca['value']:g} (its largest mean drop) paired by case "
                "and seed"
            )
            sentences.append(_judged(claim, difference, measured, -1, SLIGHT_DROP, dataset))
    compared = [study for study in ARTEFACT_STUDIES if study in drops and drops[study][1] is not None]
    if compared:
        fewer = sum(drops[study][0]["drop"] < drops[study][1]["drop"] for study in compared)
        sentences.append(
            f"{dataset}: Med-NCA lost less Dice than the UNet in {fewer} of {len(compared)} MRI artefact "
            "studies (largest mean drop per study)."
        )
        if per_case is not None:
            sentences += _artefact_claims(dataset, drops, compared, per_case)
    return sentences


def _artefact_claims(
    dataset: str,
    drops: dict[str, tuple[pd.Series, pd.Series | None]],
    studies: list[str],
    per_case: pd.DataFrame,
) -> list[str]:
    """Per MRI artefact study, the verdict on 'Med-NCA loses less Dice than the UNet' (the UNet's per-case
    drop minus Med-NCA's, each at its largest mean drop), then how many studies held."""
    sentences, outcomes = [], []
    for study in studies:
        nca, unet = drops[study]
        difference = artefact_difference(per_case, study, nca, unet)
        outcomes.append(verdict(difference) if difference.units else None)
        measured = (
            f"the UNet's Dice drop at {unet['value']:g} − Med-NCA's at {nca['value']:g} (each model's "
            "largest mean drop) paired by case and seed"
        )
        claim = "that Med-NCA loses less Dice than the UNet"
        sentences.append(_judged(claim, difference, measured, prefix=f"{dataset}, {study}"))
    counts = {outcome: outcomes.count(outcome) for outcome in (HELD, NOT_HELD, INCONCLUSIVE)}
    unpaired = f", {outcomes.count(None)} without paired cases" if None in outcomes else ""
    sentences.append(
        f"{dataset}: the claim that Med-NCA loses less Dice than the UNet under MRI artefacts held in "
        f"{counts[HELD]}, did not hold in {counts[NOT_HELD]} and was inconclusive in "
        f"{counts[INCONCLUSIVE]} of {len(studies)} studies{unpaired}."
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
        fitted_on = summary.get("threshold_fitted_on")
        if caught is None and fitted_on not in (None, "same cases"):
            detection = f"the {fitted_on} split had no successful case, so no threshold was calibrated"
        elif caught is None:
            detection = (
                f"no case had Dice below {summary['failure_dice']}, so failure detection could not be tested"
                if summary["failures"] == 0
                else "every case failed, so no threshold could be set"
            )
        else:
            detection = (
                f"a threshold at NQM {summary['nqm_threshold']:.3f} {_fitted(fitted_on)} caught {caught} of "
                f"{summary['failures']} failures (Dice < {summary['failure_dice']}) and flagged "
                f"{summary['successes_flagged']} successful cases"
            )
        sentences.append(
            f"{name}: Spearman correlation of NQM with Dice {rho:+.2f} over {summary['cases']} clean and "
            f"perturbed test cases; {detection}."
        )
    return sentences


def _fitted(fitted_on: str | None) -> str:
    """Where a threshold was fitted, as a phrase: a calibration split, or the judged cases themselves."""
    if fitted_on in (None, "same cases"):
        return "(fitted on these same cases: no validation split, so this is optimistic)"
    return f"(fitted on the {fitted_on} split)"


def dice_at(run: pd.DataFrame, elapsed: float) -> float:
    """The test Dice of one run's learning curve after ``elapsed`` seconds of training: its last point
    taken at or before then (NaN if it has none). run columns: train_seconds, dice_mean."""
    earlier = run[run["train_seconds"] <= elapsed * (1 + 1e-9)].sort_values("train_seconds")
    return float("nan") if earlier.empty else float(earlier["dice_mean"].iloc[-1])


def _seed_dice_at(runs: pd.DataFrame, elapsed: float) -> pd.DataFrame:
    """``dice_at`` of every seed's run (columns seed, value)."""
    return pd.DataFrame(
        [{"seed": seed, "value": dice_at(run, elapsed)} for seed, run in runs.groupby("seed")],
        columns=["seed", "value"],
    )


def _mean_dice_at(runs: pd.DataFrame, elapsed: float) -> float:
    """The mean over seeds of ``dice_at``."""
    values = _seed_dice_at(runs, elapsed)["value"]
    return float(values.sum() / len(values))


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


def equal_time_difference(nca: pd.DataFrame, unet: pd.DataFrame) -> tuple[float, PairedDifference]:
    """The equal training time (``equal_budget``) of Med-NCA's and the UNet's learning curves, and their
    Dice difference then (Med-NCA − UNet), paired by seed."""
    budget = equal_budget(nca, unet)
    return budget, seed_difference(_seed_dice_at(nca, budget), _seed_dice_at(unet, budget))


def _equal_time_sentence(dataset: str, nca: pd.DataFrame, unet: pd.DataFrame) -> str:
    """Med-NCA's and the UNet's Dice within the same training time (``equal_budget``)."""
    budget, difference = equal_time_difference(nca, unet)
    ours, theirs = _mean_dice_at(nca, budget), _mean_dice_at(unet, budget)
    claim = _judged(
        "that Med-NCA beats the UNet at equal training time",
        difference,
        "Med-NCA − UNet mean test Dice paired by seed (the learning curves have no per-case Dice)",
    )
    return (
        f"{dataset}: within {seconds(budget)} of training (each model's last learning-curve point by then), "
        f"Med-NCA's test Dice was {ours:.3f} vs the UNet's {theirs:.3f} ({_signed(ours - theirs)}). {claim}"
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


def efficiency_findings(summary: pd.DataFrame, runs: pd.DataFrame | None = None) -> list[str]:
    """The data-efficiency study: every model's Dice with the fewest and the most training cases, and for
    every fine-tuned model ``{model}_from_{source}`` what pre-training changed against ``model`` trained from
    scratch. summary: ``efficiency_summary`` (model, cases, train_cases, seeds, dice); runs: its rows per
    run (model, train_cases, seed, dice_mean), from which the verdict on pre-training pairs the seeds;
    without them that claim is not judged."""
    by_cases = summary.sort_values("train_cases", kind="stable")
    ends = list(dict.fromkeys([by_cases["cases"].iloc[0], by_cases["cases"].iloc[-1]]))
    sentences = [_efficiency_ranking(by_cases[by_cases["cases"] == cases]) for cases in ends]
    models = set(summary["model"])
    for model in _compared_first(models):
        base, _, source = model.partition("_from_")
        if source and base in models:
            sentences += _pretraining_sentences(by_cases, model, base, source, runs)
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


def _pretraining_sentences(
    by_cases: pd.DataFrame, tuned: str, base: str, source: str, runs: pd.DataFrame | None
) -> list[str]:
    """Per k, the fine-tuned model's Dice minus its from-scratch counterpart's; the verdict at the
    smallest k (MRISeg's claim that the pre-trained model transfers with little data), paired over the
    seeds both ran (``seed_difference``; inconclusive with fewer than two)."""
    dice = by_cases.pivot_table(index="train_cases", columns="model", values="dice", sort=True)
    gains = (dice[tuned] - dice[base]).dropna()
    if gains.empty:
        return []
    listed = ", ".join(f"k={k} {_signed(gain)}" for k, gain in gains.items())
    fewest = gains.index[0]
    claim = (
        f"that a model pre-trained on {source} needs less data (better with the fewest cases, k={fewest}) "
        f"for {display_name(base)}"
    )
    if runs is None:
        judged = f"The claim {claim} cannot be judged without the per-seed runs."
    else:
        measured = "fine-tuned − from-scratch mean test Dice paired by seed"
        judged = _judged(claim, pretraining_difference(runs, tuned, base, fewest), measured)
    return [
        f"Pre-training on {source} changed {display_name(base)}'s mean test Dice by {listed}; its mean was "
        f"higher at {int((gains > 0).sum())} of {len(gains)} k values.",
        judged,
    ]


def fewest_cases(summary: pd.DataFrame, tuned: str, base: str) -> int | None:
    """The smallest number of training cases at which both ``tuned`` and ``base`` have a mean Dice in a
    data-efficiency summary (``efficiency_summary``), or None."""
    dice = summary.pivot_table(index="train_cases", columns="model", values="dice", sort=True)
    if tuned not in dice or base not in dice:
        return None
    both = (dice[tuned] - dice[base]).dropna()
    return None if both.empty else int(both.index[0])


def pretraining_difference(runs: pd.DataFrame, tuned: str, base: str, cases: int) -> PairedDifference:
    """The fine-tuned model's mean test Dice − its from-scratch counterpart's, trained on ``cases``
    cases, paired by seed (runs: ``read_efficiency`` rows: model, train_cases, seed, dice_mean)."""
    at_cases = runs[runs["train_cases"] == cases]
    tuned_runs, base_runs = (
        at_cases.loc[at_cases["model"] == model, ["seed", "dice_mean"]].rename(columns={"dice_mean": "value"})
        for model in (tuned, base)
    )
    return seed_difference(tuned_runs, base_runs)
