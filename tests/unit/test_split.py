"""The patient-level split is deterministic, seeded and independent of input order."""

from __future__ import annotations

import pandas as pd
import pytest

from mednca.data.split import assign_splits, build_manifest

IDS = [f"hippocampus_{i:03d}" for i in range(50)]


def test_same_seed_same_split_whatever_the_order() -> None:
    assert assign_splits(IDS, 0.3, seed=7) == assign_splits(list(reversed(IDS)), 0.3, seed=7)


def test_different_seed_different_split() -> None:
    assert assign_splits(IDS, 0.3, seed=0) != assign_splits(IDS, 0.3, seed=1)


@pytest.mark.parametrize(
    ("n", "fraction", "n_test"), [(50, 0.3, 15), (10, 0.3, 3), (2, 0.3, 1), (3, 0.01, 1)]
)
def test_test_fraction_and_both_splits_non_empty(n: int, fraction: float, n_test: int) -> None:
    splits = assign_splits(IDS[:n], fraction, seed=0)
    assert list(splits.values()).count("test") == n_test
    assert "train" in splits.values()


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        assign_splits(["a", "a", "b"], 0.3, seed=0)


def test_manifest_has_each_patient_once_with_its_split() -> None:
    cases = pd.DataFrame({"case_id": list(reversed(IDS)), "shape": "35x51x35"})
    manifest = build_manifest(cases, 0.3, seed=0)
    assert list(manifest.columns[:2]) == ["case_id", "split"]
    assert manifest["case_id"].is_unique and list(manifest["case_id"]) == IDS
    assert set(manifest.loc[manifest.split == "train", "case_id"]).isdisjoint(
        manifest.loc[manifest.split == "test", "case_id"]
    )


@pytest.mark.parametrize(("n", "validation", "counts"), [(200, 0.1, (120, 20, 60)), (10, 0.1, (6, 1, 3))])
def test_validation_split_sizes(n: int, validation: float, counts: tuple[int, int, int]) -> None:
    ids = [f"case_{i:03d}" for i in range(n)]
    splits = list(assign_splits(ids, 0.3, seed=0, validation_fraction=validation).values())
    assert tuple(splits.count(name) for name in ("train", "validation", "test")) == counts


def test_a_validation_split_keeps_the_test_split() -> None:
    without = assign_splits(IDS, 0.3, seed=3)
    with_validation = assign_splits(IDS, 0.3, seed=3, validation_fraction=0.2)
    assert {c for c, s in without.items() if s == "test"} == {
        c for c, s in with_validation.items() if s == "test"
    }
    assert list(with_validation.values()).count("validation") == 10


def test_fractions_that_leave_no_training_case_are_refused() -> None:
    with pytest.raises(ValueError, match="no training cases"):
        assign_splits(IDS, 0.5, seed=0, validation_fraction=0.5)
