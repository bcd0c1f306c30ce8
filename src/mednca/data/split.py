"""Patient-level train/test split, deterministic from a seed and independent of file-system order."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assign_splits(case_ids: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Map each case id to ``"train"`` or ``"test"``.

    Ids are sorted before a seeded permutation, so the split depends only on the set of ids and the seed.
    With two or more cases, both splits get at least one case.
    """
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError("case ids must be unique")
    n_test = round(test_fraction * len(ids))
    if len(ids) >= 2:
        n_test = min(max(n_test, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[:n_test]}
    return {case_id: "test" if case_id in test else "train" for case_id in ids}


def build_manifest(cases: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """Add a ``split`` column (after ``case_id``) to the table of valid cases; rows sorted by case id."""
    splits = assign_splits(cases["case_id"].tolist(), test_fraction, seed)
    manifest = cases.sort_values("case_id").reset_index(drop=True)
    manifest.insert(1, "split", manifest["case_id"].map(splits))
    return manifest
