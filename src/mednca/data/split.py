"""Patient-level train/validation/test split, deterministic from a seed, independent of file-system order."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
"""The manifest's split names: train fits the weights, validation makes every choice, test scores once."""


def assign_splits(
    case_ids: list[str], test_fraction: float, seed: int, validation_fraction: float = 0.0
) -> dict[str, str]:
    """Map each case id to ``"train"``, ``"validation"`` or ``"test"``.

    Ids are sorted before a seeded permutation, so the split depends only on the set of ids and the seed.
    The test cases are the permutation's first ``round(test_fraction * n)``; the validation cases
    (``round(validation_fraction * n)``, both fractions of all cases) are the next ones, so adding a
    validation split keeps the test split as it was. With two or more cases, train and test get at least
    one case each, and so does validation when its fraction is positive and there are three or more.
    """
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError("case ids must be unique")
    if test_fraction + validation_fraction >= 1:
        raise ValueError(
            f"test_fraction ({test_fraction}) and validation_fraction ({validation_fraction}) leave no "
            "training cases"
        )
    n_test = _split_size(test_fraction, len(ids), reserved=1)
    n_validation = _split_size(validation_fraction, len(ids) - n_test, reserved=1, total=len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[:n_test]}
    validation = {ids[i] for i in order[n_test : n_test + n_validation]}
    return {
        case_id: "test" if case_id in test else "validation" if case_id in validation else "train"
        for case_id in ids
    }


def _split_size(fraction: float, available: int, reserved: int, total: int | None = None) -> int:
    """Cases for a split of ``fraction`` of ``total`` (default ``available``), at least one if the fraction
    is positive, leaving ``reserved`` of the ``available`` cases for the splits after it."""
    if fraction <= 0 or available <= reserved:
        return 0
    wanted = round(fraction * (available if total is None else total))
    return min(max(wanted, 1), available - reserved)


def build_manifest(
    cases: pd.DataFrame, test_fraction: float, seed: int, validation_fraction: float = 0.0
) -> pd.DataFrame:
    """Add a ``split`` column (after ``case_id``) to the table of valid cases; rows sorted by case id."""
    splits = assign_splits(cases["case_id"].tolist(), test_fraction, seed, validation_fraction)
    manifest = cases.sort_values("case_id").reset_index(drop=True)
    manifest.insert(1, "split", manifest["case_id"].map(splits))
    return manifest
