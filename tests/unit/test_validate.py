"""Validation names every problem with its case; clean datasets pass."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AFFINE, write_brats_dataset, write_msd_dataset, write_nifti

from mednca.data.layout import detect_layout, discover, discover_brats, discover_msd
from mednca.data.validate import enforce_policy, validate_dataset
from mednca.errors import DataError

BAD = "case_001"


def _label(root: Path) -> Path:
    return root / "labelsTr" / f"{BAD}.nii.gz"


def _image(root: Path) -> Path:
    return root / "imagesTr" / f"{BAD}.nii.gz"


def _overwrite_label(root: Path, change) -> None:
    label = np.zeros((12, 10, 8), dtype=np.float32)
    label[2:5, 2:5, 2:5] = 1
    data, affine = change(label, AFFINE.copy())
    write_nifti(_label(root), data, affine)


def _overwrite_image(root: Path, data: np.ndarray) -> None:
    write_nifti(_image(root), data)


def _unlist(root: Path) -> None:
    description = json.loads((root / "dataset.json").read_text())
    description["training"] = [e for e in description["training"] if BAD not in e["image"]]
    (root / "dataset.json").write_text(json.dumps(description))


CORRUPTIONS = {
    "label missing": (lambda root: _label(root).unlink(), "label file is missing"),
    "image missing": (lambda root: _image(root).unlink(), "image file is missing"),
    "undeclared label": (
        lambda root: _overwrite_label(root, lambda lab, a: (lab * 3, a)),
        "label values [3]",
    ),
    "non-integer label": (lambda root: _overwrite_label(root, lambda lab, a: (lab * 0.5, a)), "non-integer"),
    "shape mismatch": (
        lambda root: _overwrite_label(root, lambda lab, a: (lab[:, :, :7], a)),
        "label shape 12x10x7",
    ),
    "affine mismatch": (
        lambda root: _overwrite_label(root, lambda lab, a: (lab, a + np.diag([0, 0, 0.5, 0]))),
        "affine differs",
    ),
    "nan in image": (
        lambda root: _overwrite_image(
            root, np.where(np.eye(12, 10)[..., None] > 0, np.nan, 1.0).repeat(8, 2)
        ),
        "NaN/Inf",
    ),
    "constant image": (lambda root: _overwrite_image(root, np.zeros((12, 10, 8), np.float32)), "constant"),
    "unreadable image": (lambda root: _image(root).write_bytes(b"not a nifti"), "cannot read"),
    "not listed": (_unlist, "not listed in dataset.json"),
}


def test_clean_dataset_has_no_problems(msd_dataset: Path) -> None:
    report = validate_dataset(discover_msd(msd_dataset))
    assert report.problems == []
    assert list(report.table()["case_id"]) == [f"case_{i:03d}" for i in range(4)]
    row = report.table().iloc[0]
    assert (row["shape"], row["spacing"], row["channels"]) == ("12x10x8", "1.0000x1.0000x1.5000", 1)
    assert len(row["image_sha256"]) == 64


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_problem_is_named_with_its_case(msd_dataset: Path, name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    corrupt(msd_dataset)
    report = validate_dataset(discover_msd(msd_dataset))
    assert report.problems, f"{name} was not detected"
    assert all(p.case_id == BAD for p in report.problems)
    assert any(expected in str(p) for p in report.problems), [str(p) for p in report.problems]
    assert BAD not in set(report.table()["case_id"]) or name == "not listed"


def test_fail_policy_lists_every_problem(msd_dataset: Path) -> None:
    _label(msd_dataset).unlink()
    report = validate_dataset(discover_msd(msd_dataset))
    with pytest.raises(DataError, match=f"(?s)'tiny'.*{BAD}: label file is missing"):
        enforce_policy(report, "tiny", "fail")


def test_skip_policy_keeps_the_clean_cases(msd_dataset: Path, caplog) -> None:
    _label(msd_dataset).unlink()
    report = validate_dataset(discover_msd(msd_dataset))
    enforce_policy(report, "tiny", "skip")
    assert BAD in caplog.text
    assert len(report.records) == 3


def test_missing_dataset_json_is_named(msd_dataset: Path) -> None:
    (msd_dataset / "dataset.json").unlink()
    with pytest.raises(DataError, match="no dataset.json"):
        discover_msd(msd_dataset)


def test_hidden_resource_forks_are_ignored(msd_dataset: Path) -> None:
    (msd_dataset / "imagesTr" / f"._{BAD}.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    assert validate_dataset(discover_msd(msd_dataset)).problems == []


def test_modality_out_of_range_is_named(tmp_path: Path) -> None:
    root = write_msd_dataset(tmp_path / "mm", n_cases=2, channels=2)
    report = validate_dataset(discover_msd(root, modalities=(0, 1, 2)))
    assert len(report.problems) == 2
    assert "needs a 4D image with channel 2" in str(report.problems[0])


def test_multimodal_msd_case_is_valid(tmp_path: Path) -> None:
    root = write_msd_dataset(tmp_path / "mm", n_cases=2, channels=2)
    report = validate_dataset(discover_msd(root, modalities=(0, 1)))
    assert report.problems == []
    assert report.table()["image_files"].iloc[0] == "imagesTr/case_000.nii.gz#0;imagesTr/case_000.nii.gz#1"


def test_brats_layout_found_below_the_given_folder(tmp_path: Path) -> None:
    root = write_brats_dataset(tmp_path / "BraTS2020")
    assert detect_layout(root) == "brats"
    report = validate_dataset(discover(root, "brats", sequences=("t1", "t2", "flair")))
    assert report.problems == []
    assert len(report.records) == 2


def test_brats_case_paths_are_recorded_relative_to_the_dataset_folder(tmp_path: Path) -> None:
    """The cases sit in MICCAI_BraTS2020_TrainingData/ below the configured folder; the later stages join
    the recorded paths with the configured folder, so that is what they must be relative to."""
    from mednca.data.stages import case_from_record

    root = write_brats_dataset(tmp_path / "BraTS2020")
    report = validate_dataset(discover(root, "brats", sequences=("flair", "t1")))
    for record in report.records:
        case = case_from_record(pd.Series(dataclasses.asdict(record)), root)
        assert [channel.path.name for channel in case.channels] == [
            f"{record.case_id}_flair.nii.gz", f"{record.case_id}_t1.nii.gz"
        ]  # fmt: skip
        assert all(channel.path.is_file() for channel in case.channels) and case.label.is_file()


def test_brats_missing_sequence_is_named(tmp_path: Path) -> None:
    root = write_brats_dataset(tmp_path / "BraTS2020", sequences=("t1", "flair"))
    discovery = discover_brats(root, ("t1", "t2", "flair"))
    assert [str(p).split(" (")[0] for p in discovery.problems] == [
        "BraTS20_Training_001: 't2' file is missing",
        "BraTS20_Training_002: 't2' file is missing",
    ]


def test_folder_without_any_layout_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no BraTS20_Training_NNN case folders"):
        detect_layout(tmp_path / "empty")
