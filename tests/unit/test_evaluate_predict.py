"""Evaluation in the original geometry, and ``mednca predict`` on a new volume."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import PREPROCESSING

from mednca.cli import main
from mednca.data.stages import dataset_folder
from mednca.errors import DataError
from mednca.evaluate.evaluation import evaluate_stage
from mednca.evaluate.overlays import read_case_slices
from mednca.evaluate.predict import case_name, read_input_channels
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage


@pytest.fixture(scope="module")
def trained_model(prepared_phantom: Path, tmp_path_factory) -> Path:
    """A UNet trained for one epoch on the prepared phantom."""
    path = tmp_path_factory.mktemp("model") / "model.pt"
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


def _raw_case(prepared_phantom: Path, case_id: str) -> tuple[Path, Path]:
    root = dataset_folder(prepared_phantom / "source.json")
    return root / "imagesTr" / f"{case_id}.nii.gz", root / "labelsTr" / f"{case_id}.nii.gz"


def test_evaluation_writes_metrics_and_predictions_in_original_geometry(
    trained_model: Path, prepared_phantom: Path, tmp_path: Path
) -> None:
    evaluate_stage(
        model_path=trained_model,
        manifest_csv=prepared_phantom / "manifest.csv",
        cases_csv=prepared_phantom / "cases.csv",
        source_json=prepared_phantom / "source.json",
        per_case_csv=tmp_path / "per_case.csv",
        summary_json=tmp_path / "summary.json",
        slices_npz=tmp_path / "test_slices.npz",
        predictions_dir=tmp_path / "predictions",
        seed=0,
        device_name="cpu",
        batch_size=64,
        nca_runs=1,
    )
    per_case = pd.read_csv(tmp_path / "per_case.csv")
    manifest = pd.read_csv(prepared_phantom / "manifest.csv")
    assert sorted(per_case["case_id"]) == sorted(manifest.loc[manifest.split == "test", "case_id"])
    assert per_case[["dice", "hd95", "nqm"]].notna().all().all()
    assert (per_case["nqm"] == 0).all()
    assert per_case["dice"].between(0, 1).all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dice_mean"] == pytest.approx(per_case["dice"].mean())
    assert summary["parameters"] > 0 and summary["cases"] == len(per_case)
    for case_id in per_case["case_id"]:
        prediction = nib.load(tmp_path / "predictions" / f"{case_id}.nii.gz")
        label = nib.load(_raw_case(prepared_phantom, case_id)[1])
        assert prediction.shape == label.shape
        np.testing.assert_allclose(prediction.affine, label.affine)
        assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1}
    # The report's overlays: each case's most-foreground slice (axis 2 here) of its label and prediction.
    slices = read_case_slices(tmp_path / "test_slices.npz")
    assert sorted(slices) == sorted(per_case["case_id"])
    for case_id, item in slices.items():
        truth = np.asarray(nib.load(_raw_case(prepared_phantom, case_id)[1]).dataobj) > 0
        prediction = np.asarray(nib.load(tmp_path / "predictions" / f"{case_id}.nii.gz").dataobj)
        assert item.index == int(np.argmax(truth.sum(axis=(0, 1))))
        np.testing.assert_array_equal(item.label, truth[:, :, item.index])
        np.testing.assert_array_equal(item.prediction, prediction[:, :, item.index])
    assert summary["epochs"] >= 1 and summary["iterations"] >= 1 and summary["train_seconds"] > 0


def test_predict_writes_a_label_map_with_the_input_geometry(
    trained_model: Path, prepared_phantom: Path, tmp_path: Path
) -> None:
    image, _ = _raw_case(prepared_phantom, "phantom_000")
    output = tmp_path / "seg.nii.gz"
    assert (
        main(["predict", "--model", str(trained_model), "--input", str(image), "--output", str(output)]) == 0
    )
    source, result = nib.load(image), nib.load(output)
    assert result.shape == source.shape
    np.testing.assert_allclose(result.affine, source.affine)
    assert result.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(result.dataobj))) <= {0, 1}


def test_predict_names_a_channel_mismatch(
    trained_model: Path, prepared_phantom: Path, tmp_path: Path, capsys
) -> None:
    image, _ = _raw_case(prepared_phantom, "phantom_000")
    arguments = ["predict", "--model", str(trained_model), "--input", str(image), str(image)]
    assert main([*arguments, "--output", str(tmp_path / "seg.nii.gz")]) == 2
    assert "takes 1 input channel(s), the input has 2" in capsys.readouterr().err
    assert not (tmp_path / "seg.nii.gz").exists()


def test_predict_of_a_test_case_is_the_evaluations_label_map_for_an_nca(
    prepared_phantom: Path, tmp_path: Path
) -> None:
    """The NCA's random draws come from the seed and the case's name in both, so the label maps agree."""
    model = tmp_path / "nca" / "model.pt"
    train_stage(
        slices_dir=prepared_phantom / "slices",
        manifest_csv=prepared_phantom / "manifest.csv",
        model_path=model,
        model_name="med_nca",
        arguments={"channels": 8, "hidden_size": 16, "steps": 4, "fire_rate": 0.5, "downscale": 2},
        settings=TrainingSettings(epochs=1, batch_size=8, lr=1e-3),
        seed=0,
        preprocessing=PREPROCESSING,
        device_name="cpu",
        **outputs_beside(model),
    )
    evaluate_stage(
        model_path=model,
        manifest_csv=prepared_phantom / "manifest.csv",
        cases_csv=prepared_phantom / "cases.csv",
        source_json=prepared_phantom / "source.json",
        per_case_csv=tmp_path / "per_case.csv",
        summary_json=tmp_path / "summary.json",
        predictions_dir=tmp_path / "predictions",
        seed=3,
        device_name="cpu",
        batch_size=64,
        nca_runs=2,
    )
    case_id = pd.read_csv(tmp_path / "per_case.csv")["case_id"].iloc[0]
    image, _ = _raw_case(prepared_phantom, case_id)
    output = tmp_path / "seg.nii.gz"
    arguments = ["--input", str(image), "--output", str(output), "--seed", "3", "--runs", "2"]
    assert main(["predict", "--model", str(model), *arguments, "--device", "cpu"]) == 0
    evaluated = np.asarray(nib.load(tmp_path / "predictions" / f"{case_id}.nii.gz").dataobj)
    np.testing.assert_array_equal(np.asarray(nib.load(output).dataobj), evaluated)


@pytest.mark.parametrize(
    ("names", "case"),
    [
        (["hippocampus_001.nii.gz"], "hippocampus_001"),
        (["X_0000.nii.gz", "X_0001.nii.gz"], "X"),
        (["BraTS20_Training_050_flair.nii.gz", "BraTS20_Training_050_t1.NII"], "BraTS20_Training_050"),
        (["a.nii", "b_t1.nii"], "a"),
    ],
)
def test_case_name_is_the_evaluations_case_id(names: list[str], case: str, tmp_path: Path) -> None:
    assert case_name([tmp_path / name for name in names]) == case


def test_the_case_name_of_a_case_folder_is_its_name(tmp_path: Path) -> None:
    (tmp_path / "BraTS20_Training_050").mkdir()
    assert case_name([tmp_path / "BraTS20_Training_050"]) == "BraTS20_Training_050"


def _two_channels(tmp_path: Path, shift_mm: float, shape: tuple[int, int, int] = (16, 16, 12)) -> list[Path]:
    """Two 3D channel files of one case, the second moved by ``shift_mm`` along x (and of ``shape``)."""
    rng = np.random.default_rng(0)
    paths = []
    for index, (size, offset) in enumerate((((16, 16, 12), 0.0), (shape, shift_mm))):
        affine = np.diag([1.0, 1.0, 1.0, 1.0])
        affine[0, 3] = offset
        path = tmp_path / f"case_{index:04d}.nii.gz"
        nib.save(nib.Nifti1Image(rng.random(size).astype(np.float32), affine), path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("shift", "shape", "message"),
    [
        (
            50.0,
            (16, 16, 12),
            "not aligned with .*case_0000.nii.gz: their affines differ by up to 50 .origins 50 mm",
        ),
        (
            0.0,
            (16, 16, 10),
            r"its voxel grid \(16, 16, 10\) differs from .*case_0000.nii.gz's \(16, 16, 12\)",
        ),
    ],
)
def test_channel_files_of_one_case_must_share_a_grid(
    tmp_path: Path, capsys, shift: float, shape: tuple[int, int, int], message: str
) -> None:
    from mednca.data.preprocessing import Preprocessing

    inputs = _two_channels(tmp_path, shift, shape)
    preprocessing = Preprocessing.from_mapping({**PREPROCESSING.as_mapping(), "modalities": [0, 1]})
    with pytest.raises(DataError, match=message):
        read_input_channels(inputs, preprocessing)


def test_channel_files_within_the_tolerance_are_read(tmp_path: Path) -> None:
    from mednca.data.preprocessing import Preprocessing

    inputs = _two_channels(tmp_path, 1e-5)
    preprocessing = Preprocessing.from_mapping({**PREPROCESSING.as_mapping(), "modalities": [0, 1]})
    image, _ = read_input_channels(inputs, preprocessing)
    assert image.shape == (2, 16, 16, 12)
