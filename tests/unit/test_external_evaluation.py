"""``mednca evaluate MODEL --images DIR --labels DIR --output DIR``: scoring any folder of labelled images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import AFFINE, PREPROCESSING, make_case, write_nifti

from mednca.cli import main
from mednca.data.preprocessing import Preprocessing
from mednca.models import build_model
from mednca.train import checkpoint

ARCHITECTURE = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
TWO_MODALITIES = dataclasses.replace(PREPROCESSING, modalities=(0, 1))
BRATS = dataclasses.replace(PREPROCESSING, layout="brats", sequences=("t1", "flair"))


def _model(path: Path, preprocessing: Preprocessing) -> Path:
    """An untrained tiny UNet saved as a model file (deterministic, so predictions are reproducible).

    Its output bias is shifted so that about half of the voxels of a random image are foreground: the
    predictions are neither empty nor full, and the Dice checks compare real overlaps.
    """
    channels = preprocessing.model_channels
    model = build_model("unet", channels, **ARCHITECTURE).eval()
    with torch.no_grad():
        logits = model(torch.rand(4, channels, *preprocessing.image_size))
        model.state_dict()["net.model.2.conv.bias"] -= logits.median()
    checkpoint.save(path, checkpoint.model_payload("unet", channels, ARCHITECTURE, model, preprocessing))
    return path


def _voxels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """2|A and B| / (|A| + |B|), computed here independently of the pipeline's metrics."""
    a, b = prediction.astype(bool), truth.astype(bool)
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _evaluate(model: Path, images: Path, labels: Path, output: Path, *extra: str) -> int:
    arguments = ["--images", str(images), "--labels", str(labels), "--output", str(output)]
    return main(["evaluate", str(model), *arguments, "--device", "cpu", *extra])


def _single_channel_cases(root: Path, case_ids: list[str]) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    for case_id in case_ids:
        image, label = make_case(rng)
        write_nifti(root / "images" / f"{case_id}.nii.gz", image)
        write_nifti(root / "labels" / f"{case_id}.nii.gz", label)
    return root / "images", root / "labels"


def test_every_layout_is_scored_with_dice_matching_the_written_label_maps(tmp_path: Path, capsys) -> None:
    model = _model(tmp_path / "model.pt", TWO_MODALITIES)
    images, labels = tmp_path / "images", tmp_path / "labels"
    rng = np.random.default_rng(0)
    image, label = make_case(rng, channels=2)  # one 4D file with both channels
    write_nifti(images / "alpha.nii.gz", image)
    write_nifti(labels / "alpha.nii.gz", label)
    image, label = make_case(rng, channels=2)  # nnU-Net channel files
    write_nifti(images / "beta_0000.nii.gz", image[..., 0])
    write_nifti(images / "beta_0001.nii.gz", image[..., 1])
    write_nifti(labels / "beta.nii.gz", label)
    image, label = make_case(rng, channels=2)  # a case folder, files taken in name order; plain .nii label
    write_nifti(images / "gamma" / "gamma_a.nii", image[..., 0])
    write_nifti(images / "gamma" / "gamma_b.nii.gz", image[..., 1])
    write_nifti(labels / "gamma.nii", label)

    assert _evaluate(model, images, labels, tmp_path / "out", "--seed", "3") == 0
    output = capsys.readouterr().out.strip().splitlines()
    assert len(output) == 1 and output[0].startswith("3 case(s) scored: Dice ")

    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    assert list(per_case.columns) == [
        "case_id", "dice", "hd95", "predicted_voxels", "label_voxels", "predicted_volume_mm3",
        "label_volume_mm3", "nqm", "inference_seconds", "outside_training_data", "image",
    ]  # fmt: skip
    assert list(per_case["case_id"]) == ["alpha", "beta", "gamma"]
    assert (per_case["predicted_voxels"] > 0).all() and (per_case["dice"] > 0).all()  # real overlaps
    assert list(per_case["image"]) == [
        "alpha.nii.gz",
        "beta_0000.nii.gz;beta_0001.nii.gz",
        "gamma/gamma_a.nii;gamma/gamma_b.nii.gz",
    ]
    assert sorted(p.name for p in (tmp_path / "out" / "predictions").iterdir()) == [
        "alpha.nii.gz",
        "beta.nii.gz",
        "gamma.nii",
    ]
    voxel_mm3 = abs(np.linalg.det(AFFINE[:3, :3]))
    for row in per_case.itertuples():
        label_file = next(labels.glob(f"{row.case_id}.nii*"))
        prediction_file = tmp_path / "out" / "predictions" / label_file.name
        prediction, truth = _voxels(prediction_file), np.isin(_voxels(label_file), (1, 2))
        assert prediction.shape == truth.shape and set(np.unique(prediction)) <= {0, 1}
        np.testing.assert_allclose(nib.load(prediction_file).affine, AFFINE)
        assert row.dice == pytest.approx(_dice(prediction, truth), abs=1e-6)
        assert row.predicted_voxels == prediction.sum() and row.label_voxels == truth.sum()
        assert row.label_volume_mm3 == pytest.approx(truth.sum() * voxel_mm3)
        assert row.predicted_volume_mm3 == pytest.approx(prediction.sum() * voxel_mm3)
        assert row.nqm == 0  # a deterministic model, as in the workflow's evaluation

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cases"] == 3 and summary["seed"] == 3 and summary["runs"] == 10
    assert summary["dice_mean"] == pytest.approx(per_case["dice"].mean())
    assert summary["hd95_mean"] == pytest.approx(per_case["hd95"].mean())
    assert summary["model_path"] == str(model) and summary["failed_cases"] == {}
    assert "one empty" in summary["hd95_rule"]

    # The channel files are segmented exactly as ``mednca predict`` segments them.
    inputs = [str(images / "beta_0000.nii.gz"), str(images / "beta_0001.nii.gz")]
    predicted = tmp_path / "beta_predict.nii.gz"
    assert main(["predict", "--model", str(model), "--input", *inputs, "--output", str(predicted)]) == 0
    np.testing.assert_array_equal(
        _voxels(predicted), _voxels(tmp_path / "out" / "predictions" / "beta.nii.gz")
    )


def test_brats_model_takes_a_case_folder_as_predict_does(tmp_path: Path) -> None:
    model = _model(tmp_path / "model.pt", BRATS)
    image, label = make_case(np.random.default_rng(2), channels=2)
    folder = tmp_path / "images" / "BraTS_007"
    write_nifti(folder / "BraTS_007_flair.nii.gz", image[..., 1])
    write_nifti(folder / "BraTS_007_t1.nii.gz", image[..., 0])
    write_nifti(folder / "BraTS_007_seg.nii.gz", label)  # not an input: the label comes from --labels
    write_nifti(tmp_path / "labels" / "BraTS_007.nii.gz", label)
    assert _evaluate(model, tmp_path / "images", tmp_path / "labels", tmp_path / "out") == 0
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    assert list(per_case["image"]) == ["BraTS_007/BraTS_007_t1.nii.gz;BraTS_007/BraTS_007_flair.nii.gz"]
    predicted = tmp_path / "predict.nii.gz"
    assert main(["predict", "--model", str(model), "--input", str(folder), "--output", str(predicted)]) == 0
    np.testing.assert_array_equal(
        _voxels(predicted), _voxels(tmp_path / "out" / "predictions" / "BraTS_007.nii.gz")
    )


def test_a_missing_label_is_one_line_naming_the_case_and_the_others_are_scored(
    tmp_path: Path, capsys
) -> None:
    model = _model(tmp_path / "model.pt", PREPROCESSING)
    images, labels = _single_channel_cases(tmp_path, ["case_a", "case_b", "case_c"])
    (labels / "case_b.nii.gz").unlink()
    assert _evaluate(model, images, labels, tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if "case_b" in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"case case_b: {images / 'case_b.nii.gz'} has no label (expected {labels / 'case_b'}.nii.gz or .nii)"
    )
    assert captured.out.startswith("2 case(s) scored, 1 case(s) failed: Dice ")
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv")
    assert list(per_case["case_id"]) == ["case_a", "case_c"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["failed_cases"]) == ["case_b"]


def test_a_label_without_image_and_a_grid_mismatch_name_their_files(tmp_path: Path, capsys) -> None:
    model = _model(tmp_path / "model.pt", PREPROCESSING)
    images, labels = _single_channel_cases(tmp_path, ["case_a", "case_b"])
    write_nifti(labels / "orphan.nii.gz", np.zeros((12, 10, 8), np.uint8))
    write_nifti(labels / "case_b.nii.gz", np.zeros((12, 10, 7), np.uint8))
    assert _evaluate(model, images, labels, tmp_path / "out") == 1
    errors = capsys.readouterr().err
    assert "Traceback" not in errors
    [orphan] = [line for line in errors.splitlines() if "orphan" in line]
    assert "case orphan: label " in orphan and "has no image" in orphan
    [mismatch] = [line for line in errors.splitlines() if "case case_b" in line]
    assert str(images / "case_b.nii.gz") in mismatch and str(labels / "case_b.nii.gz") in mismatch
    assert "shape 12x10x8" in mismatch


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("output_inside_images", "is inside the --images folder"),
        ("output_is_images", "is inside the --images folder"),
        ("images_are_its_predictions", "is the parent of the --images folder"),
        ("empty_images", "no images in the --images folder"),
    ],
)
def test_unusable_folders_are_one_error_line_and_nothing_is_written(
    tmp_path: Path, capsys, problem: str, message: str
) -> None:
    model = _model(tmp_path / "model.pt", PREPROCESSING)
    images, labels = _single_channel_cases(tmp_path, ["case_a"])
    output = tmp_path / "out"
    if problem == "output_inside_images":
        output = images / "eval"
    elif problem == "output_is_images":
        output = images
    elif problem == "images_are_its_predictions":
        images = images.rename(tmp_path / "predictions")
        output = tmp_path
    else:
        (images / "case_a.nii.gz").unlink()
    before = sorted(tmp_path.rglob("*"))
    assert _evaluate(model, images, labels, output) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and "ERROR" in errors[0] and message in errors[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_help_explains_both_forms_and_the_forms_do_not_mix(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "MODEL DATA OUT_DIR" in text and "MODEL --images DIR --labels DIR --output DIR" in text
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", "model.pt", "--images", str(tmp_path)])
    assert stopped.value.code == 2
    assert "missing --labels, --output" in capsys.readouterr().err
