"""Paired differences, their bootstrap intervals and the verdicts that follow them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mednca.report.statistics import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    PairedDifference,
    case_bootstrap,
    describe,
    hierarchical_bootstrap,
    paired_difference,
    seed_difference,
    verdict,
    wilcoxon_p,
)


def scores(values, seeds=(0,), cases: int | None = None) -> pd.DataFrame:
    """A per-case table (case_id, seed, value) of ``values`` (seeds x cases, or cases for one seed)."""
    matrix = np.atleast_2d(np.asarray(values, dtype=float))
    return pd.DataFrame(
        [
            {"case_id": f"case{c:02d}", "seed": seed, "value": matrix[s, c]}
            for s, seed in enumerate(seeds)
            for c in range(matrix.shape[1] if cases is None else cases)
        ]
    )


def effect(mean: float, noise: float, cases: int = 20, seed: int = 1) -> PairedDifference:
    """The paired difference of two models whose per-case Dice differ by ``mean`` plus normal noise."""
    rng = np.random.default_rng(seed)
    theirs = rng.uniform(0.6, 0.9, cases)
    ours = theirs + mean + rng.normal(0.0, noise, cases)
    return paired_difference(scores(ours), scores(theirs))


def test_verdict_follows_the_interval() -> None:
    positive = effect(0.05, 0.02)
    assert positive.low > 0 and verdict(positive) == HELD
    assert verdict(positive, claim_direction=-1) == NOT_HELD
    tiny = effect(0.001, 0.05)
    assert tiny.low < 0 < tiny.high
    assert verdict(tiny) == INCONCLUSIVE == "inconclusive at this sample size"
    negative = effect(-0.05, 0.02)
    assert negative.high < 0 and verdict(negative) == NOT_HELD
    assert (positive.n_cases, positive.n_seeds) == (20, 1)


def test_verdict_against_a_margin() -> None:
    drop = PairedDifference(mean=0.02, low=0.01, high=0.03, p_value=0.01, n_cases=30, n_seeds=1)
    assert verdict(drop, -1, margin=0.05) == HELD  # the whole interval below a drop of 0.05
    assert verdict(drop, -1, margin=0.02) == INCONCLUSIVE
    assert verdict(drop, -1, margin=0.005) == NOT_HELD
    with pytest.raises(ValueError, match="claim_direction"):
        verdict(drop, 0)


def test_too_few_units_are_inconclusive_whatever_the_sign() -> None:
    single = paired_difference(scores([0.9]), scores([0.1]))
    assert single.low == single.high == pytest.approx(0.8)
    assert verdict(single) == INCONCLUSIVE and single.p_value is None
    assert describe(single) == "+0.800 (no interval or test from 1 case, 1 seed)"
    nothing = paired_difference(scores([0.9]), scores([0.1]).assign(seed=5))
    assert nothing.units == 0 and verdict(nothing) == INCONCLUSIVE
    assert describe(nothing) == "n/a (nothing paired)"


def test_rounding_level_differences_are_no_difference() -> None:
    clean = np.array([0.91, 0.85, 0.77, 0.83, 0.88])
    unet_clean = np.array([0.3, 0.8, 0.6, 0.7, 0.9])
    perturbed, unet_perturbed = clean - 0.2, unet_clean - 0.2
    # Both models lose 0.2 on every case, up to floating-point rounding.
    assert not np.array_equal(clean - perturbed, unet_clean - unet_perturbed)
    same = paired_difference(scores(unet_clean - unet_perturbed), scores(clean - perturbed))
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, None)
    assert verdict(same) == INCONCLUSIVE
    assert describe(same) == "+0.000 (95 % CI +0.000 to +0.000, Wilcoxon p n/a; 5 cases, 1 seed)"
    assert describe(PairedDifference(-0.0004, -0.0009, 0.002, 0.5, 9, 1)).startswith("+0.000 (95 % CI -0.001")


def test_interval_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(3)
    ours, theirs = scores(rng.random(25)), scores(rng.random(25))
    first = paired_difference(ours, theirs, seed=7)
    np.random.seed(123)  # the global random state plays no part
    assert paired_difference(ours, theirs, seed=7) == first
    other = paired_difference(ours, theirs, seed=8)
    assert (other.low, other.high) != (first.low, first.high) and other.mean == first.mean


def test_hierarchical_bootstrap_with_one_seed_is_the_case_bootstrap() -> None:
    differences = np.random.default_rng(4).normal(0.02, 0.05, 30)
    single = hierarchical_bootstrap(differences[None, :], resamples=2000, seed=11)
    assert single == pytest.approx(case_bootstrap(differences, resamples=2000, seed=11), rel=1e-12)


def test_hierarchical_bootstrap_resamples_seeds_too() -> None:
    rng = np.random.default_rng(5)
    # The same per-case noise for every seed, but seeds that disagree strongly: only a bootstrap over
    # seeds widens the interval.
    matrix = rng.normal(0.0, 0.01, 40)[None, :] + np.array([[-0.2], [0.0], [0.2]])
    cases_only = case_bootstrap(matrix.mean(axis=0), seed=0)
    both = hierarchical_bootstrap(matrix, seed=0)
    assert both[1] - both[0] > 5 * (cases_only[1] - cases_only[0])
    ours = scores(matrix + 0.5, seeds=(0, 1, 2))
    difference = paired_difference(ours, scores(np.full_like(matrix, 0.5), seeds=(0, 1, 2)))
    assert (difference.n_cases, difference.n_seeds) == (40, 3)
    assert difference.mean == pytest.approx(matrix.mean())
    assert (difference.low, difference.high) == pytest.approx(both)


def test_pairs_only_the_cases_and_seeds_both_models_have() -> None:
    ours = scores([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7]], seeds=(0, 1))
    theirs = scores([0.5, 0.5, 0.5], seeds=(1,)).iloc[:2]
    difference = paired_difference(ours, theirs)
    assert (difference.n_cases, difference.n_seeds) == (2, 1)
    assert difference.mean == pytest.approx(0.35)


def test_wilcoxon_p_matches_scipy() -> None:
    differences = np.array([0.12, -0.03, 0.05, 0.08, 0.02, -0.01, 0.07, 0.04])
    assert wilcoxon_p(differences) == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert wilcoxon_p(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2 / 32)  # exact: 2 of 2^5 signs
    assert wilcoxon_p(np.zeros(6)) is None and wilcoxon_p(np.array([0.3])) is None
    difference = paired_difference(scores(differences + 0.5), scores(np.full(8, 0.5)))
    assert difference.p_value == pytest.approx(stats.wilcoxon(differences).pvalue)


def test_wilcoxon_over_several_seeds_uses_each_case_mean() -> None:
    matrix = np.array([[0.1, 0.3, -0.1, 0.2, 0.4], [0.3, 0.1, 0.0, 0.2, 0.0]])
    difference = paired_difference(scores(matrix, seeds=(0, 1)), scores(np.zeros_like(matrix), seeds=(0, 1)))
    assert difference.p_value == pytest.approx(stats.wilcoxon(matrix.mean(axis=0)).pvalue)


def test_seed_difference_bootstraps_over_seeds() -> None:
    tuned = pd.DataFrame({"seed": [0, 1, 2, 3, 4], "value": [0.5, 0.6, 0.55, 0.45, 0.65]})
    base = pd.DataFrame({"seed": [0, 1, 2, 3, 4, 5], "value": [0.3, 0.4, 0.35, 0.25, 0.45, 0.9]})
    difference = seed_difference(tuned, base)
    assert (difference.n_cases, difference.n_seeds) == (None, 5)
    assert difference.mean == pytest.approx(0.2) and difference.low == pytest.approx(0.2)
    assert verdict(difference) == HELD
    assert describe(difference) == "+0.200 (95 % CI +0.200 to +0.200, Wilcoxon p = 0.062; 5 seeds)"
    assert verdict(seed_difference(tuned.iloc[:1], base)) == INCONCLUSIVE


def test_describe_renders_one_line() -> None:
    difference = PairedDifference(
        mean=0.0123, low=-0.0041, high=0.0268, p_value=0.2134, n_cases=60, n_seeds=1
    )
    assert describe(difference) == "+0.012 (95 % CI -0.004 to +0.027, Wilcoxon p = 0.21; 60 cases, 1 seed)"
    small_p = PairedDifference(0.05, 0.03, 0.07, 0.0004, 12, 3)
    assert describe(small_p) == "+0.050 (95 % CI +0.030 to +0.070, Wilcoxon p < 0.001; 12 cases, 3 seeds)"
    assert "Wilcoxon p n/a" in describe(PairedDifference(0.0, 0.0, 0.0, None, 5, 1))
