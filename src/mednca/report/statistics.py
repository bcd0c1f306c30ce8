"""Paired differences with their uncertainty, and the verdicts on the paper's claims that follow from them.

A claim such as "Med-NCA beats the UNet" is judged from the difference of two models' scores on the same
test cases and seeds: its mean, a percentile bootstrap interval and a Wilcoxon signed-rank test. The verdict
follows the interval, so a difference of +0.001 among noisy cases reads as inconclusive, not as a claim
that held.

The bootstrap resamples the units that vary: test cases, and seeds where there are several. Cases and seeds
are crossed (every seed segments every test case), so one bootstrap sample draws the cases with replacement
and the seeds with replacement and averages the paired differences of every drawn (seed, case) pair, each
as often as it was drawn. With one seed this is the ordinary bootstrap over cases: both draw the cases
with the same call of the same seeded generator first. Every bootstrap has its own
``numpy.random.Generator``; the global random state is never used, so a report is the same on every build.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
"""The coverage of every interval the report states."""
RESAMPLES = 10_000
"""Bootstrap samples per interval."""
MIN_UNITS = 5
"""Below this many resampled units (cases, or seeds where only seeds vary) there is no interval and no
verdict: a percentile bootstrap of 2-4 units has only a handful of distinct resample means, so its interval
would be far too narrow (the report also calls a split of fewer than 5 test volumes a check, not an
estimate)."""

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive at this sample size"
"""The three verdicts on a claim."""
NOT_TESTED = "not tested"
"""A claim the run's configuration cannot test (its data, models or profile are not in the run)."""

ROUNDING = 1e-9
"""Paired differences smaller than this are floating-point rounding (e.g. two drops of 0.2 computed from
different Dice values) and count as zero."""

PAIR_COLUMNS = ["case_id", "seed"]
"""The columns a pair of per-case tables is matched on."""


@dataclass(frozen=True)
class PairedDifference:
    """The difference ours − theirs over paired units, with its bootstrap interval and a paired test.

    ``mean`` is the mean over all pairs; ``low`` and ``high`` bound the percentile bootstrap interval of
    coverage ``confidence``; ``p_value`` is the two-sided Wilcoxon signed-rank p-value over the units'
    differences (None when it cannot be computed: fewer than ``MIN_UNITS`` units or no non-zero
    difference). ``n_cases`` is the number of paired test cases, None when the units are seeds only (a
    comparison of per-seed means); ``n_seeds`` the number of paired seeds. NaN throughout when nothing
    was paired.
    """

    mean: float
    low: float
    high: float
    p_value: float | None
    n_cases: int | None
    n_seeds: int
    confidence: float = CONFIDENCE

    @property
    def units(self) -> int:
        """The number of resampled units: the larger of cases and seeds (seeds alone for seed means)."""
        return max(self.n_cases or 0, self.n_seeds)


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """(resamples, size) counts of how often each index was drawn in each row of ``draws``."""
    resamples = draws.shape[0]
    offsets = draws + size * np.arange(resamples)[:, None]
    return np.bincount(offsets.ravel(), minlength=resamples * size).reshape(resamples, size).astype(float)


def _percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap means (NaN ones, from empty draws, left out)."""
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(means, [tail, 1 - tail])
    return float(low), float(high)


def case_bootstrap(
    differences: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-case ``differences`` (1-D), cases drawn with
    replacement by ``np.random.default_rng(seed)``."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    return _percentile_interval(values[draws].mean(axis=1), confidence)


def hierarchical_bootstrap(
    differences: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a (seeds, cases) matrix of paired differences.

    Each sample draws the cases and then the seeds with replacement (``np.random.default_rng(seed)``) and
    averages every drawn (seed, case) cell, weighted by how often both were drawn; NaN cells (a pair one of
    the models lacks) are left out of the average. With one seed it equals ``case_bootstrap``.
    """
    matrix = np.asarray(differences, dtype=float)
    seeds, cases = matrix.shape
    rng = np.random.default_rng(seed)
    case_counts = _counts(rng.integers(0, cases, size=(resamples, cases)), cases)
    seed_counts = _counts(rng.integers(0, seeds, size=(resamples, seeds)), seeds)
    present = ~np.isnan(matrix)
    total = ((seed_counts @ np.where(present, matrix, 0.0)) * case_counts).sum(axis=1)
    weight = ((seed_counts @ present.astype(float)) * case_counts).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _percentile_interval(total / weight, confidence)


def wilcoxon_p(differences: np.ndarray) -> float | None:
    """Two-sided p-value of ``scipy.stats.wilcoxon`` on paired differences, or None when there are fewer
    than ``MIN_UNITS`` of them, none is non-zero or scipy gives no finite p-value."""
    values = np.asarray(differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < MIN_UNITS or not np.any(values != 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on small samples, ties and zeros
        try:
            p_value = float(stats.wilcoxon(values).pvalue)
        except ValueError:
            return None
    return p_value if math.isfinite(p_value) else None


def _nothing_paired(seeds_only: bool, confidence: float) -> PairedDifference:
    """The difference of two tables without a common pair."""
    nan = float("nan")
    return PairedDifference(nan, nan, nan, None, None if seeds_only else 0, 0, confidence)


def paired_difference(
    ours: pd.DataFrame,
    theirs: pd.DataFrame,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Ours − theirs over the (case_id, seed) pairs both tables have (columns case_id, seed, value).

    The interval is ``hierarchical_bootstrap`` over cases and seeds; the Wilcoxon test is over cases, each
    case's difference averaged over its seeds (the seeds of one case are not independent observations).
    Rows with a missing value are left out; duplicate pairs are averaged.
    """
    pairs = _pairs(ours, theirs, PAIR_COLUMNS)
    if pairs.empty:
        return _nothing_paired(False, confidence)
    matrix = pairs.pivot_table(index="seed", columns="case_id", values="difference", aggfunc="mean")
    values = matrix.to_numpy(dtype=float)
    low, high = hierarchical_bootstrap(values, confidence, resamples, seed)
    return PairedDifference(
        mean=float(np.nanmean(values)),
        low=low,
        high=high,
        p_value=wilcoxon_p(np.nanmean(values, axis=0)),
        n_cases=int(matrix.shape[1]),
        n_seeds=int(matrix.shape[0]),
        confidence=confidence,
    )


def seed_difference(
    ours: pd.DataFrame,
    theirs: pd.DataFrame,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Ours − theirs over the seeds both tables have (columns seed, value: one score per run, e.g. a mean
    test Dice), for comparisons that have only per-seed means: a bootstrap and a Wilcoxon test over seeds."""
    pairs = _pairs(ours, theirs, ["seed"])
    if pairs.empty:
        return _nothing_paired(True, confidence)
    differences = pairs.groupby("seed")["difference"].mean().to_numpy(dtype=float)
    low, high = case_bootstrap(differences, confidence, resamples, seed)
    return PairedDifference(
        mean=float(differences.mean()),
        low=low,
        high=high,
        p_value=wilcoxon_p(differences),
        n_cases=None,
        n_seeds=len(differences),
        confidence=confidence,
    )


def clustered_correlation(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Spearman's correlation of columns ``x`` and ``y`` of ``frame`` (columns case_id, seed, x, y), with a
    percentile bootstrap interval that draws whole cases with replacement: the rows of one case (its clean
    and perturbed versions, every seed) are not independent, so the case is the resampled unit. Each
    bootstrap sample is the correlation of the full sample's ranks, every row weighted by how often its case
    was drawn (ranks are not recomputed per sample, which keeps 10,000 samples a matrix product). ``mean``
    holds the correlation, ``n_cases`` the cases, ``n_seeds`` the seeds; no p-value."""
    rows = frame.dropna(subset=[x, y])
    if rows.empty:
        return _nothing_paired(False, confidence)
    codes, cases = pd.factorize(rows["case_id"])
    ranks = np.column_stack([stats.rankdata(rows[x]), stats.rankdata(rows[y])])
    per_case = np.zeros((len(cases), 6))  # per case: rows, sum x, sum y, sum x^2, sum y^2, sum xy
    moments = np.column_stack(
        [
            np.ones(len(ranks)),
            ranks[:, 0],
            ranks[:, 1],
            ranks[:, 0] ** 2,
            ranks[:, 1] ** 2,
            ranks.prod(axis=1),
        ]
    )
    np.add.at(per_case, codes, moments)
    rng = np.random.default_rng(seed)
    counts = _counts(rng.integers(0, len(cases), size=(resamples, len(cases))), len(cases))
    low, high = _percentile_interval(_correlation(counts @ per_case), confidence)
    observed = _correlation(per_case.sum(axis=0, keepdims=True))[0]
    return PairedDifference(
        float(observed), low, high, None, len(cases), int(rows["seed"].nunique()), confidence
    )


def _correlation(moments: np.ndarray) -> np.ndarray:
    """Pearson correlation from (samples, 6) sums: rows, x, y, x^2, y^2, xy; NaN where a side is constant."""
    total, sum_x, sum_y, sum_xx, sum_yy, sum_xy = moments.T
    mean_x, mean_y = sum_x / total, sum_y / total
    var_x, var_y = sum_xx / total - mean_x**2, sum_yy / total - mean_y**2
    covariance = sum_xy / total - mean_x * mean_y
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((var_x > 1e-9) & (var_y > 1e-9), covariance / np.sqrt(var_x * var_y), np.nan)


def _pairs(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The rows of both tables matched on ``keys``, with their ``difference`` (ours − theirs; zero where
    it is below ``ROUNDING``)."""
    left, right = (
        table.dropna(subset=["value"]).groupby(keys, as_index=False)["value"].mean()
        for table in (ours, theirs)
    )
    pairs = left.merge(right, on=keys, suffixes=("_ours", "_theirs"))
    difference = pairs["value_ours"] - pairs["value_theirs"]
    return pairs.assign(difference=difference.where(difference.abs() >= ROUNDING, 0.0))


def verdict(difference: PairedDifference, claim_direction: int = +1, margin: float = 0.0) -> str:
    """Whether a claim held, from the interval of ``difference``.

    The claim is that the true difference lies beyond ``margin`` on the side of ``claim_direction`` (+1:
    above, -1: below). "held" when the interval excludes ``margin`` on the claimed side, "did not hold"
    when it excludes it on the other side, "inconclusive at this sample size" otherwise, and also when
    fewer than ``MIN_UNITS`` units were paired (no interval can be drawn from them).
    """
    if claim_direction not in (1, -1):
        raise ValueError(f"claim_direction must be +1 or -1, not {claim_direction}")
    if difference.units < MIN_UNITS or math.isnan(difference.low) or math.isnan(difference.high):
        return INCONCLUSIVE
    above, below = difference.low > margin, difference.high < margin
    if above or below:
        return HELD if above == (claim_direction > 0) else NOT_HELD
    return INCONCLUSIVE


def _plural(count: int, noun: str) -> str:
    """'1 case', '3 cases'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def sample_size(difference: PairedDifference) -> str:
    """'60 cases, 1 seed' (or '3 seeds' for a comparison of seed means)."""
    seeds = _plural(difference.n_seeds, "seed")
    return seeds if difference.n_cases is None else f"{_plural(difference.n_cases, 'case')}, {seeds}"


def p_text(p_value: float | None) -> str:
    """'p = 0.21', 'p = 0.034', 'p < 0.001' or 'p n/a'."""
    if p_value is None:
        return "p n/a"
    if p_value < 0.001:
        return "p < 0.001"
    return f"p = {p_value:.2f}" if p_value >= 0.1 else f"p = {p_value:.2g}"


def signed(value: float) -> str:
    """'+0.012', '-0.004'; a value that rounds to zero is '+0.000', never '-0.000'."""
    return f"{round(value, 3) + 0.0:+.3f}"


def _interval(difference: PairedDifference) -> str:
    """'95 % CI -0.004 to +0.027'."""
    return f"{difference.confidence * 100:g} % CI {signed(difference.low)} to {signed(difference.high)}"


def interval_text(difference: PairedDifference) -> str:
    """'+0.012 (95 % CI -0.004 to +0.027)'; the value alone, saying why, when there is no interval."""
    if difference.units == 0 or math.isnan(difference.mean):
        return "n/a (nothing paired)"
    if difference.units < MIN_UNITS or math.isnan(difference.low):
        return f"{signed(difference.mean)} (no interval from {sample_size(difference)})"
    return f"{signed(difference.mean)} ({_interval(difference)})"


def describe(difference: PairedDifference) -> str:
    """One line, e.g. '+0.012 (95 % CI -0.004 to +0.027, Wilcoxon p = 0.21; 60 cases, 1 seed)'."""
    if difference.units == 0 or math.isnan(difference.mean):
        return "n/a (nothing paired)"
    if difference.units < MIN_UNITS:
        return f"{signed(difference.mean)} (no interval or test from {sample_size(difference)})"
    test = f"Wilcoxon {p_text(difference.p_value)}; {sample_size(difference)}"
    return f"{signed(difference.mean)} ({_interval(difference)}, {test})"
