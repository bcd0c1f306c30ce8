"""Snapshots published as model files, and the learning curve that scores them on the test split."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import PREPROCESSING, prepare_phantom

from mednca.errors import DataError
from mednca.evaluate.curve import CURVE_COLUMNS, curve_point, learning_curve_stage
from mednca.evaluate.evaluation import evaluate_stage
from mednca.train import checkpoint
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage

UNET = {"channels": [4, 8], "strides": [2], "num_res_units": 0}


@pytest.fixture(scope="module")
def trained_run(prepared_phantom: Path, tmp_path_factory) -> Path:
    """A small UNet trained for 3 epochs with a snapshot every epoch; returns its model folder."""
    folder = tmp_path_factory.mktemp("run")
    train_stage(
        slices_dir=prepared_phantom / "slices",
        manifest_csv=prepared_phantom / "manifest.csv",
        model_path=folder / "model.pt",
        model_name="unet",
        arguments=UNET,
        settings=TrainingSettings(epochs=3, batch_size=8, lr=1e-2, betas=(0.9, 0.99), snapshot_every=1),
        seed=0,
        preprocessing=PREPROCESSING,
        device_name="cpu",
        **outputs_beside(folder / "model.pt"),
    )
    return folder


def _inputs(prepared_phantom: Path) -> dict[str, Path]:
    return {
        "manifest_csv": prepared_phantom / "manifest.csv",
        "cases_csv": prepared_phantom / "cases.csv",
        "source_json": prepared_phantom / "source.json",
    }


def test_snapshots_are_model_files_that_record_their_point_in_training(trained_run: Path) -> None:
    names = sorted(path.name for path in (trained_run / "snapshots").iterdir())
    assert names == ["epoch0001.pt", "epoch0002.pt", "epoch0003.pt"]
    final = checkpoint.load(trained_run / "model.pt")
    iterations = []
    for name in names:
        model, payload = checkpoint.load_model(trained_run / "snapshots" / name)
        assert payload["preprocessing"].as_mapping() == final["preprocessing"]
        assert payload["arguments"] == UNET
        iterations.append(payload["training"]["iterations"])
        assert payload["training"]["train_seconds"] > 0
    assert iterations == [5, 10, 15]  # 40 training slices in batches of 8
    last = checkpoint.load(trained_run / "snapshots" / "epoch0003.pt")["state_dict"]
    assert all(value.equal(final["state_dict"][name]) for name, value in last.items())
    assert final["training"]["iterations"] == 15


def test_learning_curve_scores_each_snapshot_and_ends_with_the_evaluated_model(
    trained_run: Path, prepared_phantom: Path, tmp_path: Path
) -> None:
    curve = learning_curve_stage(
        model_path=trained_run / "model.pt",
        snapshots_dir=trained_run / "snapshots",
        curve_csv=tmp_path / "learning_curve.csv",
        seed=0,
        device_name="cpu",
        batch_size=64,
        **_inputs(prepared_phantom),
    )
    assert list(curve.columns) == CURVE_COLUMNS
    assert curve["epoch"].tolist() == [1, 2, 3] and curve["iterations"].tolist() == [5, 10, 15]
    assert curve["train_seconds"].is_monotonic_increasing
    written = pd.read_csv(tmp_path / "learning_curve.csv")
    pd.testing.assert_frame_equal(written, curve, check_dtype=False)
    evaluate_stage(
        model_path=trained_run / "model.pt",
        per_case_csv=tmp_path / "per_case.csv",
        summary_json=tmp_path / "summary.json",
        slices_npz=tmp_path / "test_slices.npz",
        predictions_dir=tmp_path / "predictions",
        seed=0,
        device_name="cpu",
        batch_size=64,
        nca_runs=1,
        **_inputs(prepared_phantom),
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert curve["dice_mean"].iloc[-1] == pytest.approx(summary["dice_mean"], abs=1e-12)
    assert curve["cases"].iloc[-1] == summary["cases"]
    assert curve["dice_mean"].nunique() > 1, "an untrained and a trained snapshot should not score alike"


@pytest.mark.parametrize(
    ("training", "problem"),
    [
        (None, "has no training record"),
        ({"epoch": 2, "iterations": -4, "train_seconds": 3.0}, "'iterations'"),
    ],
)
def test_a_snapshot_without_a_valid_training_record_is_named(
    trained_run: Path, tmp_path: Path, training: dict | None, problem: str
) -> None:
    payload = checkpoint.load(trained_run / "snapshots" / "epoch0001.pt")
    if training is None:
        payload.pop("training")
    else:
        payload["training"] = training
    checkpoint.save(tmp_path / "epoch0001.pt", payload)
    with pytest.raises(DataError, match=rf"epoch0001\.pt: .*{problem}"):
        curve_point(tmp_path / "epoch0001.pt")


def test_learning_curve_of_a_prostate_like_4d_dataset_on_its_first_modality(tmp_path: Path) -> None:
    """MSD prostate's shape of data (4D images, T2 and ADC, the paper uses T2): a phantom with two
    modalities goes through the data stage with ``modalities: [0]``, trains with snapshots and gets its
    learning curve, scored on the raw 4D test volumes."""
    from mednca.data.stages import PhantomSpec

    spec = PhantomSpec(cases=4, seed=3, shape=(16, 16, 10), shape_jitter=2, modalities=2)
    data = prepare_phantom(tmp_path / "raw", tmp_path / "data", spec, "prostate_like", test_fraction=0.5)
    run = tmp_path / "run"
    train_stage(
        slices_dir=data / "slices", manifest_csv=data / "manifest.csv", model_path=run / "model.pt",
        model_name="med_nca", arguments={"channels": 8, "hidden_size": 16, "steps": 4, "downscale": 2},
        settings=TrainingSettings(epochs=2, batch_size=8, snapshot_every=1), seed=0,
        preprocessing=PREPROCESSING, device_name="cpu", **outputs_beside(run / "model.pt"),
    )  # fmt: skip
    curve = learning_curve_stage(
        model_path=run / "model.pt", snapshots_dir=run / "snapshots", curve_csv=tmp_path / "curve.csv",
        seed=0, device_name="cpu", batch_size=64, **_inputs(data),
    )  # fmt: skip
    assert curve["epoch"].tolist() == [1, 2] and (curve["cases"] == 2).all()
    assert curve["dice_mean"].between(0, 1).all() and curve["hd95_mean"].notna().all()
