"""The ``mednca`` command line."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_msd_dataset

from mednca.cli import main


def test_validate_clean_dataset_exits_zero(msd_dataset: Path, capsys) -> None:
    assert main(["validate", str(msd_dataset)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4 valid case(s), 0 problem(s)" in captured.err


def test_validate_prints_one_line_per_problem(tmp_path: Path, capsys) -> None:
    root = write_msd_dataset(tmp_path / "bad", n_cases=3)
    (root / "labelsTr" / "case_000.nii.gz").unlink()
    (root / "imagesTr" / "case_002.nii.gz").write_bytes(b"junk")
    assert main(["validate", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("case_000: label file is missing")
    assert lines[1].startswith("case_002:") and "cannot read" in lines[1]


def test_validate_missing_folder_is_one_error_line(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "nowhere: not a folder" in error
    assert "Traceback" not in error


def test_phantom_then_validate(tmp_path: Path, capsys) -> None:
    assert main(["phantom", str(tmp_path / "ph"), "--cases", "3", "--seed", "1"]) == 0
    assert main(["validate", str(tmp_path / "ph")]) == 0
    assert main(["phantom", str(tmp_path / "ph"), "--cases", "3"]) == 2


def test_train_and_evaluate_commands(
    prepared_phantom: Path, tiny_config: Path, tmp_path: Path, capsys
) -> None:
    config = tiny_config
    model = tmp_path / "model.pt"
    arguments = ["train", str(prepared_phantom), str(model), "--model", "unet", "--config", str(config)]
    assert main([*arguments, "--epochs", "1"]) == 0
    assert main(["evaluate", str(model), str(prepared_phantom), str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "summary.json").exists()
    assert len(list((tmp_path / "eval" / "predictions").iterdir())) == 2
    assert main([*arguments, "--dataset", "nowhere"]) == 2
    assert "no dataset_settings for 'nowhere'" in capsys.readouterr().err


def test_config_command_writes_the_effective_config(tmp_path: Path) -> None:

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("models: [unet]\nmodel_settings:\n  unet:\n    training: {lr: 0.5}\n")
    out = tmp_path / "effective.yaml"
    assert main(["config", "--config", str(overlay), "--output", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    assert config["models"] == ["unet"]
    assert config["model_settings"]["unet"]["training"]["lr"] == 0.5
    assert config["model_settings"]["unet"]["training"]["epochs"] == 1000  # from config/config.yaml
    assert config["evaluation"]["nca_runs"] == 10  # a schema default
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [x]\n")
    assert main(["config", "--config", str(bad), "--output", str(tmp_path / "no.yaml")]) == 2
    assert not (tmp_path / "no.yaml").exists()


def test_version_licence_and_citation_agree_with_the_package(capsys) -> None:

    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mednca {metadata.version('mednca')}"
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == metadata.version("mednca") and citation["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
