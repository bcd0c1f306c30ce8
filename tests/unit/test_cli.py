"""The ``mednca`` command line."""

from __future__ import annotations

from pathlib import Path

from conftest import write_msd_dataset

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
