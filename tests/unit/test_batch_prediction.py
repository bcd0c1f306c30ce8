"""``mednca predict`` on many cases: files, folders and globs into an output folder, one row per case."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import PREPROCESSING

from mednca.cli import main
from mednca.data.stages import dataset_folder
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage


@pytest.fixture(scope="module")
def unet(prepared_phantom: Path, tmp_path_factory) -> Path:
    """A tiny UNet trained for one epoch on the prepared phantom."""
    path = tmp_path_factory.mktemp("batch_model") / "model.pt"
    train_stage(
        slices_dir=prepared_phantom / "slices",
        manifest_csv=prepared_phantom / "manifest.csv",
        model_path=path,
        model_name="unet",
        arguments={"channels": [4, 8], "strides": [2], "num_res_units": 0},
        settings=TrainingSettings(epochs=1, batch_size=8, lr=1e-3),
        seed=0,
        preprocessing=PREPROCESSING,
        device_name="cpu",
        **outputs_beside(path),
    )
    return path


@pytest.fixture
def images(prepared_phantom: Path, tmp_path: Path) -> Path:
    """A folder of three cases: two single files (one .nii) and one given as channel file X_0000."""
    raw = dataset_folder(prepared_phantom / "source.json") / "imagesTr"
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(raw / "phantom_000.nii.gz", folder / "phantom_000.nii.gz")
    shutil.copy(raw / "phantom_001.nii.gz", folder / "scan_b_0000.nii.gz")
    image = nib.load(raw / "phantom_002.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine), folder / "phantom_002.nii")
    return folder


def test_a_folder_of_cases_gives_a_label_map_per_case_and_a_table(
    unet: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert (
        main(
            ["predict", "--model", str(unet), "--input", str(images), "--output", str(out), "--probabilities"]
        )
        == 0
    )
    table = pd.read_csv(out / "predictions.csv")
    assert table["case_id"].tolist() == ["phantom_000", "phantom_002", "scan_b"]
    assert table["output"].tolist() == ["phantom_000.nii.gz", "phantom_002.nii", "scan_b.nii.gz"]
    assert table["error"].isna().all() and table["likely_failure"].isna().all()
    for row in table.itertuples():
        label = np.asarray(nib.load(out / row.output).dataobj)
        assert row.foreground_voxels == int(label.sum()) and row.volume_mm3 > 0
        probability = np.asarray(nib.load(out / f"{row.case_id}_probability.nii.gz").dataobj)
        np.testing.assert_array_equal(label, (probability >= 0.5).astype(np.uint8))
    single = tmp_path / "single.nii.gz"
    arguments = ["--input", str(images / "phantom_000.nii.gz"), "--output", str(single)]
    assert main(["predict", "--model", str(unet), *arguments]) == 0
    assert np.array_equal(nib.load(single).get_fdata(), nib.load(out / "phantom_000.nii.gz").get_fdata())


def test_globs_and_a_failing_case(unet: Path, images: Path, tmp_path: Path, capsys) -> None:
    (images / "broken.nii.gz").write_bytes(b"not a nifti file")
    out = tmp_path / "out"
    pattern = str(images / "*.nii.gz")
    assert main(["predict", "--model", str(unet), "--input", pattern, "--output", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "case broken:" in errors[0] and "broken.nii.gz" in errors[0]
    table = pd.read_csv(out / "predictions.csv").set_index("case_id")
    assert sorted(table.index) == ["broken", "phantom_000", "scan_b"]  # the .nii case is not in the pattern
    assert table["error"].notna().tolist() == [True, False, False]
    assert (out / "phantom_000.nii.gz").exists() and not (out / "broken.nii.gz").exists()


@pytest.mark.parametrize("where", ["inside", "missing"])
def test_unusable_inputs_and_outputs_are_one_line(
    unet: Path, images: Path, tmp_path: Path, capsys, where: str
) -> None:
    if where == "inside":
        arguments = ["--input", str(images), "--output", str(images / "out")]
        expected = "is inside the input folder"
    else:
        arguments = ["--input", str(tmp_path / "none" / "*.nii.gz"), "--output", str(tmp_path / "out")]
        expected = "no such file or folder, and no file matches it as a pattern"
    assert main(["predict", "--model", str(unet), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and expected in error[0]
