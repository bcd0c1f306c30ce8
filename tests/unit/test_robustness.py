"""Robustness stage: severity 0 reproduces the evaluation, NQM separates stochastic from deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PREPROCESSING

from mednca.evaluate.evaluation import evaluate_stage, segment_case
from mednca.evaluate.inference import nqm
from mednca.evaluate.quality import failure_detection, nqm_threshold
from mednca.perturb.robustness import quality_summary, robustness_stage, strip_background
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage

ARCHITECTURES = {
    "med_nca": {"channels": 6, "hidden_size": 16, "steps": 6, "downscale": 4},
    "unet": {"channels": [4, 8], "strides": [2], "num_res_units": 0},
}
STUDIES = ["shift", "scale_resize", "scale_fixed", "noise", "ghosting", "anisotropy"]
LEVELS = {"shift": [0, 0.2], "scale_resize": [1.0, 2.0], "scale_fixed": [1.0, 0.5], "noise": [0, 0.1]}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def evaluated(request, prepared_phantom: Path, tmp_path_factory) -> tuple[str, Path, Path]:
    """(model name, data folder, run folder) of a model trained for 2 epochs and evaluated with 3 runs."""
    name = request.param
    run = tmp_path_factory.mktemp(name)
    train_stage(
        slices_dir=prepared_phantom / "slices",
        manifest_csv=prepared_phantom / "manifest.csv",
        model_path=run / "model.pt",
        model_name=name,
        arguments=ARCHITECTURES[name],
        settings=TrainingSettings(epochs=2, batch_size=8, lr=1e-2),
        seed=0,
        preprocessing=PREPROCESSING,
        device_name="cpu",
        **outputs_beside(run / "model.pt"),
    )
    data = {
        "model_path": run / "model.pt",
        "manifest_csv": prepared_phantom / "manifest.csv",
        "cases_csv": prepared_phantom / "cases.csv",
        "source_json": prepared_phantom / "source.json",
        "seed": 0,
        "device_name": "cpu",
        "batch_size": 64,
        "nca_runs": 3,
    }
    evaluate_stage(
        **data,
        per_case_csv=run / "per_case.csv",
        summary_json=run / "summary.json",
        slices_npz=run / "test_slices.npz",
        predictions_dir=run / "pred",
    )
    studies = {study: run / f"{study}.csv" for study in STUDIES}
    robustness_stage(
        **data, studies=studies, gallery_dir=run / "gallery", quality_json=run / "quality.json",
        levels=LEVELS, fill="zeros", max_cases=None,
    )  # fmt: skip
    return name, prepared_phantom, run


def test_severity_zero_reproduces_the_evaluation_exactly(evaluated) -> None:
    _, _, run = evaluated
    per_case = pd.read_csv(run / "per_case.csv").set_index("case_id")
    for study in STUDIES:
        table = pd.read_csv(run / f"{study}.csv")
        clean = table[table.severity == 0].set_index("case_id")
        assert sorted(clean.index) == sorted(per_case.index)
        for column in ("dice", "hd95", "nqm", "predicted_voxels"):
            np.testing.assert_array_equal(clean[column], per_case.loc[clean.index, column], err_msg=study)


def test_every_study_has_every_case_and_severity(evaluated) -> None:
    _, _, run = evaluated
    cases = len(pd.read_csv(run / "per_case.csv"))
    for study in STUDIES:
        table = pd.read_csv(run / f"{study}.csv")
        levels = LEVELS.get(study)
        expected = len(levels) if levels else 5
        assert len(table) == cases * expected
        assert list(table.columns[:6]) == ["case_id", "study", "severity", "value", "dice", "hd95"]
        assert table[["dice", "hd95", "nqm"]].notna().all().all()
        gallery = np.load(run / "gallery" / f"{study}.npz")
        assert {f"prediction_{s}" for s in range(expected)} <= set(gallery.files)


def test_resize_protocol_feeds_the_model_at_the_new_size(evaluated) -> None:
    _, _, run = evaluated
    table = pd.read_csv(run / "scale_resize.csv")
    zoomed = table[table.severity == 1]
    assert (zoomed["effective_factor"] > 1.5).all()
    gallery = np.load(run / "gallery" / "scale_resize.npz")
    assert gallery["image_1"].shape[0] > gallery["image_0"].shape[0]


def test_nqm_is_zero_for_deterministic_and_positive_for_stochastic_models(evaluated) -> None:
    name, _, run = evaluated
    per_case = pd.read_csv(run / "per_case.csv")
    if name == "unet":
        assert (per_case["nqm"] == 0).all()
    else:
        assert (per_case["nqm"] > 0).all()


def test_failure_detection_summary_is_written(evaluated) -> None:
    name, _, run = evaluated
    quality = json.loads((run / "quality.json").read_text())
    tables = [pd.read_csv(run / f"{study}.csv") for study in STUDIES]
    clean_cases = tables[0].loc[tables[0]["severity"] == 0, "case_id"].nunique()
    assert quality["cases"] == clean_cases + sum(int((table["severity"] > 0).sum()) for table in tables)
    if name == "unet":
        assert quality["spearman_nqm_dice"] is None


def test_failure_detection_on_hand_made_values() -> None:
    dice = np.array([0.9, 0.85, 0.95, 0.5, 0.3, 0.88])
    quality = np.array([0.1, 0.12, 0.08, 0.4, 0.6, 0.11])
    summary = failure_detection(dice, quality)
    assert summary["failures"] == 2 and summary["failures_caught"] == 2 and summary["successes_flagged"] == 1
    assert summary["spearman_nqm_dice"] == pytest.approx(-1.0)
    assert failure_detection(dice, np.zeros(6))["spearman_nqm_dice"] is None


def test_a_threshold_calibrated_on_validation_is_judged_on_other_cases(tmp_path: Path) -> None:
    validation = pd.DataFrame({"dice": [0.9, 0.85, 0.95, 0.88, 0.5], "nqm": [0.1, 0.12, 0.08, 0.11, 0.5]})
    assert nqm_threshold(validation["dice"], validation["nqm"]) == pytest.approx(
        np.quantile([0.1, 0.12, 0.08, 0.11], 0.95)
    )
    calibration = tmp_path / "validation.json"
    calibration.write_text(json.dumps(quality_summary(validation, "validation", None)))
    test = pd.DataFrame({"dice": [0.9, 0.3, 0.86, 0.4], "nqm": [0.05, 0.6, 0.13, 0.09]})
    summary = quality_summary(test, "test", calibration)
    assert summary["split"] == "test" and summary["threshold_fitted_on"] == "validation"
    assert summary["nqm_threshold"] == pytest.approx(
        json.loads(calibration.read_text())["calibrated_threshold"]
    )
    # 0.6 is above the validation threshold (caught), 0.09 is not (missed); 0.13 flags a success.
    assert (summary["failures"], summary["failures_caught"], summary["successes_flagged"]) == (2, 1, 1)
    uncalibrated = quality_summary(test, "test", None)
    assert uncalibrated["threshold_fitted_on"] == "same cases"
    no_success = tmp_path / "none.json"
    no_success.write_text(json.dumps(quality_summary(test.assign(dice=0.1), "validation", None)))
    summary = quality_summary(test, "test", no_success)
    assert summary["nqm_threshold"] is None and summary["threshold_fitted_on"] == "validation"


def test_nqm_definition() -> None:
    mean = np.array([[0.5, 0.5], [0.0, 1.0]])
    std = np.array([[0.1, 0.1], [0.0, 0.0]])
    assert nqm(mean, std) == pytest.approx(0.2 / 2.0)
    assert nqm(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0


def test_each_case_is_segmented_clean_once_for_all_studies(
    evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mednca.perturb import robustness

    _, data, run = evaluated
    calls: list[str] = []

    def counted(segmenter, case_id, *args, **kwargs):
        calls.append(case_id)
        return segment_case(segmenter, case_id, *args, **kwargs)

    monkeypatch.setattr(robustness, "segment_case", counted)
    studies = {study: tmp_path / f"{study}.csv" for study in ("shift", "noise")}
    robustness_stage(
        run / "model.pt", data / "manifest.csv", data / "cases.csv", data / "source.json", studies,
        tmp_path / "gallery", tmp_path / "quality.json", seed=0, levels=LEVELS, fill="zeros",
        max_cases=None, device_name="cpu", batch_size=64, nca_runs=3,
    )  # fmt: skip
    cases = pd.read_csv(run / "per_case.csv")["case_id"].astype(str).tolist()
    assert sorted(calls) == sorted(cases * (1 + 1 + 1)), "one clean run per case, one per perturbed level"
    for study in studies:
        fresh, before = (pd.read_csv(folder / f"{study}.csv") for folder in (tmp_path, run))
        timing = "inference_seconds"
        pd.testing.assert_frame_equal(fresh.drop(columns=timing), before.drop(columns=timing))


def test_artefacts_leave_the_background_of_z_scored_images_at_zero() -> None:
    raw = np.zeros((2, 4, 4, 3), dtype=np.float32)
    raw[:, 1:3, 1:3] = 5.0
    noisy = raw + np.random.default_rng(0).normal(size=raw.shape).astype(np.float32)
    stripped = strip_background(noisy, raw, "zscore")
    assert stripped.dtype == np.float32
    np.testing.assert_array_equal(stripped[raw == 0], 0)
    np.testing.assert_array_equal(stripped[raw != 0], noisy[raw != 0])
    assert strip_background(noisy, raw, "percentile") is noisy


@pytest.mark.parametrize("evaluated", ["unet"], indirect=True)
def test_robustness_feeds_z_scored_models_artefacts_on_the_brain_only(
    evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mednca.perturb import robustness
    from mednca.train import checkpoint

    _, data, run = evaluated
    payload = checkpoint.load(run / "model.pt")
    payload["preprocessing"]["intensity"] = {"method": "zscore", "lower": 0.5, "upper": 99.5}
    checkpoint.save(tmp_path / "model.pt", payload)
    raw_images: dict[str, np.ndarray] = {}
    fed: dict[str, np.ndarray] = {}
    load_test_case = robustness.load_test_case

    def loaded(case, foreground):
        volume, truth = load_test_case(case, foreground)
        volume.image[:, :2] = 0  # a skull-stripped background
        raw_images[case.case_id] = volume.image.copy()
        return volume, truth

    def recorded(segmenter, case_id, image, *args, **kwargs):
        fed[case_id] = image
        return segment_case(segmenter, case_id, image, *args, **kwargs)

    monkeypatch.setattr(robustness, "load_test_case", loaded)
    monkeypatch.setattr(robustness, "segment_case", recorded)
    robustness_stage(
        tmp_path / "model.pt", data / "manifest.csv", data / "cases.csv", data / "source.json",
        {"noise": tmp_path / "noise.csv"}, tmp_path / "gallery", tmp_path / "quality.json", seed=0,
        levels={"noise": [0, 0.2]}, fill="zeros", max_cases=1, device_name="cpu", batch_size=64, nca_runs=1,
    )  # fmt: skip
    [(case_id, raw)] = raw_images.items()
    image = fed[case_id]  # the last level's input: noise 0.2
    assert np.any(image[raw != 0] != raw[raw != 0]), "noise was added to the brain"
    np.testing.assert_array_equal(image[raw == 0], 0)
