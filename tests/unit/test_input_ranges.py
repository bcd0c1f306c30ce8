"""A model file records what its training cases spanned; a case far outside it is named in a warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PREPROCESSING, write_nifti

from mednca.cli import main
from mednca.data.preprocess import load_profile
from mednca.data.ranges import CaseProfile, range_warnings, training_ranges
from mednca.errors import DataError
from mednca.train import checkpoint
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage

RANGES = {
    "shape": [[30, 40], [45, 60], [30, 40]],
    "spacing": [[1, 1], [1, 1], [1, 1]],
    "intensity": [[0, 300]],
}


def _profile(shape=(35, 50, 35), spacing=(1.0, 1.0, 1.0), intensity=((10.0, 250.0),)) -> CaseProfile:
    return CaseProfile(shape, spacing, intensity)


def test_a_case_like_the_training_cases_gets_no_warning() -> None:
    assert range_warnings(_profile(), RANGES) == []
    assert range_warnings(_profile(shape=(60, 100, 20), spacing=(1.9, 0.6, 1.0)), RANGES) == []


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (_profile(shape=(256, 256, 180)), "shape 256x256x180 voxels, trained on 30-40 x 45-60 x 30-40"),
        (_profile(spacing=(1.0, 1.0, 3.0)), "spacing 1x1x3 mm, trained on 1 x 1 x 1"),
        (_profile(intensity=((-1024.0, 1500.0),)), "channel 0 intensities -1024..1500"),
        (_profile(intensity=((0.0, 0.05),)), None),  # within the range, however dark
    ],
)
def test_a_case_far_outside_is_named_with_the_training_range(profile: CaseProfile, expected) -> None:
    found = range_warnings(profile, RANGES)
    assert (found == []) if expected is None else any(expected in line for line in found)


def test_training_ranges_span_the_cases_and_skip_unrecorded_intensities() -> None:
    profiles = [_profile(shape=(30, 50, 35), intensity=((5.0, 100.0),)), _profile(shape=(40, 45, 31))]
    ranges = training_ranges(profiles)
    assert ranges["shape"] == [[30, 40], [45, 50], [31, 35]] and ranges["intensity"] == [[5.0, 250.0]]
    assert "intensity" not in training_ranges([*profiles, CaseProfile((3, 3, 3), (1.0, 1.0, 1.0), None)])


@pytest.fixture(scope="module")
def trained(prepared_phantom: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ranges") / "model.pt"
    arguments = {"channels": 8, "hidden_size": 16, "steps": 4, "fire_rate": 0.5, "downscale": 2}
    train_stage(
        slices_dir=prepared_phantom / "slices", manifest_csv=prepared_phantom / "manifest.csv",
        model_path=path, model_name="med_nca", arguments=arguments,
        settings=TrainingSettings(epochs=1, batch_size=8), seed=0, preprocessing=PREPROCESSING,
        device_name="cpu", **outputs_beside(path),
    )  # fmt: skip
    return path


def test_the_model_file_records_its_training_cases_ranges(prepared_phantom: Path, trained: Path) -> None:
    manifest = pd.read_csv(prepared_phantom / "manifest.csv", dtype={"case_id": str})
    train = sorted(manifest.loc[manifest["split"] == "train", "case_id"])
    profiles = [load_profile(prepared_phantom / "slices" / f"{case}.npz") for case in train]
    assert checkpoint.load(trained)["input_ranges"] == training_ranges(profiles)
    assert all(profile.intensity is not None for profile in profiles)


def test_predict_warns_about_a_case_far_outside_and_still_segments_it(
    trained: Path, tmp_path: Path, capfd
) -> None:
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    write_nifti(inputs / "usual.nii.gz", rng.uniform(300, 800, (16, 16, 12)).astype(np.float32))
    write_nifti(inputs / "whole_head.nii.gz", rng.uniform(300, 800, (64, 64, 48)).astype(np.float32))
    assert (
        main(
            [
                "predict",
                "--model",
                str(trained),
                "--input",
                str(inputs),
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("case_id")
    assert table["outside_training_data"].isna()["usual"]
    assert table.loc["whole_head", "outside_training_data"].startswith("shape 64x64x48 voxels, trained on")
    assert "case whole_head lies far outside the training data: shape 64x64x48" in capfd.readouterr().err
    assert (tmp_path / "out" / "whole_head.nii.gz").exists()


def test_damaged_input_ranges_are_named(trained: Path, tmp_path: Path) -> None:
    payload = checkpoint.load(trained)
    damaged = tmp_path / "damaged.pt"
    checkpoint.save(damaged, {**payload, "input_ranges": {"shape": [[40, 30]]}})
    with pytest.raises(DataError, match=r"damaged.pt: damaged model file: its training input ranges 'shape'"):
        checkpoint.load_model(damaged)
    older = tmp_path / "older.pt"
    checkpoint.save(older, {key: value for key, value in payload.items() if key != "input_ranges"})
    checkpoint.load_model(older)  # a model file from before input ranges were recorded still loads
