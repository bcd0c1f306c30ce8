"""Models shipped inside the package: added from a results folder, listed, and used by name."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import PREPROCESSING

from mednca import provenance, shipped
from mednca.cli import main
from mednca.errors import DataError
from mednca.train import checkpoint
from mednca.train.loop import TrainingSettings
from mednca.train.stages import outputs_beside, train_stage


def _run(prepared_phantom: Path, folder: Path, model: str, arguments: dict) -> Path:
    """A trained model with the record and card the workflow writes beside it."""
    path = folder / "model.pt"
    train_stage(
        slices_dir=prepared_phantom / "slices", manifest_csv=prepared_phantom / "manifest.csv",
        model_path=path, model_name=model, arguments=arguments,
        settings=TrainingSettings(epochs=1, batch_size=8), seed=0, preprocessing=PREPROCESSING,
        device_name="cpu", **outputs_beside(path),
    )  # fmt: skip
    record = {
        "run": {"dataset": "hippocampus", "model": model, "seed": 0},
        "training": {
            "parameters": 100,
            "train_cases_sha256": provenance.case_list_hash(_train_ids(prepared_phantom)),
        },
        "split": {"train": {"cases": 3}},
        "metrics": {"validation": {"dice_mean": 0.8, "cases": 2}, "test": {"dice_mean": 0.82, "cases": 2}},
        "nqm": {"nqm_threshold": 0.05, "threshold_fitted_on": "validation"},
    }
    (folder / "record.json").write_text(json.dumps(record))
    (folder / "model_card.md").write_text("# card\n")
    return path


def _train_ids(data_dir: Path) -> list[str]:
    manifest = pd.read_csv(data_dir / "manifest.csv", dtype={"case_id": str})
    return sorted(manifest.loc[manifest["split"] == "train", "case_id"])


def test_a_model_without_input_ranges_gets_them_from_its_training_cases(
    prepared_phantom: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    arguments = {"channels": 8, "hidden_size": 16, "steps": 4, "fire_rate": 0.5, "downscale": 2}
    model = _run(prepared_phantom, run, "med_nca", arguments)
    recorded = checkpoint.load(model)
    old = run / "old.pt"
    older_keys = ("input_ranges", "formulation", "format")  # a model file of format 1
    checkpoint.save(old, {key: value for key, value in recorded.items() if key not in older_keys})
    target = shipped.ship_model(
        old, run / "record.json", run / "model_card.md", "old", prepared_phantom, tmp_path
    )
    shipped_payload = checkpoint.load(target / "model.pt")
    assert shipped_payload["input_ranges"] == recorded["input_ranges"]
    assert shipped_payload["formulation"] == recorded["formulation"]
    assert shipped_payload["format"] == checkpoint.MODEL_FORMAT
    record = json.loads((run / "record.json").read_text())
    record["training"]["train_cases_sha256"] = "another list"
    (run / "record.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="not the ones the run's record names"):
        shipped.ship_model(old, run / "record.json", run / "model_card.md", "x", prepared_phantom, tmp_path)


def test_an_nca_ships_with_its_threshold_card_and_licence(
    prepared_phantom: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    arguments = {"channels": 8, "hidden_size": 16, "steps": 4, "fire_rate": 0.5, "downscale": 2}
    model = _run(prepared_phantom, run, "med_nca", arguments)
    package = tmp_path / "package"
    monkeypatch.setattr(shipped, "SHIPPED_DIR", package)
    target = shipped.ship_model(
        model, run / "record.json", run / "model_card.md", "hippocampus", prepared_phantom
    )
    payload = checkpoint.load(target / "model.pt")
    assert payload["input_ranges"] == checkpoint.load(model)["input_ranges"]
    assert (
        payload["training"]["nqm_threshold"] == 0.05 and "CC-BY-SA 4.0" in payload["training"]["data_licence"]
    )
    assert "CC-BY-SA 4.0" in (target / "model_card.md").read_text()
    assert shipped.resolve_model("hippocampus") == target / "model.pt"
    assert main(["models"]) == 0
    assert (
        "hippocampus: Med-NCA (100 parameters), trained on 3 hippocampus patients" in capsys.readouterr().out
    )
    with pytest.raises(DataError, match=r"no shipped model of that name \(shipped: hippocampus\)"):
        shipped.resolve_model("prostate")


def test_a_baseline_does_not_ship(prepared_phantom: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    model = _run(prepared_phantom, run, "unet", {"channels": [4, 8], "strides": [2], "num_res_units": 0})
    with pytest.raises(DataError, match="a UNet does not ship"):
        shipped.ship_model(
            model, run / "record.json", run / "model_card.md", "x", prepared_phantom, tmp_path / "package"
        )
