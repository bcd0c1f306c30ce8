"""The Snakemake DAG: the paper config plans, the demo config runs, bad data stops with a named case."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_msd_dataset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the workflow, scripts and configs, so runs leave the checkout untouched."""
    for name in ("workflow", "scripts", "config", "envs", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Snakemake in ``project`` and return the finished process (stdout and stderr combined)."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )


def test_paper_config_plans_every_stage(project: Path) -> None:
    run = snakemake(project, "-n")
    assert run.returncode == 0, run.stdout
    stages = ("fetch_dataset", "validate_dataset", "preprocess_dataset", "split_dataset", "train_model")
    for rule in (*stages, "evaluate_model"):
        assert f"rule {rule}:" in run.stdout
    for dataset in ("hippocampus", "prostate"):
        assert f"results/data/{dataset}/manifest.csv" in run.stdout
        for model in ("med_nca", "unet"):
            assert f"results/metrics/{dataset}/{model}/seed0/summary.json" in run.stdout


def test_invalid_config_stops_naming_the_key(project: Path) -> None:
    run = snakemake(project, "-n", "--config", "seeds=[0, x]")
    assert run.returncode != 0
    assert "config key 'seeds[1]'" in run.stdout


def _single_dataset_config(project: Path, settings: dict) -> Path:
    config = {
        "data_dir": str(project / "raw"),
        "datasets": ["tiny"],
        "dataset_settings": {
            "tiny": {"layout": "msd", "foreground_labels": [1, 2], "image_size": [8, 8], **settings}
        },
    }
    path = project / "config" / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_case_stops_the_run_naming_the_case(project: Path) -> None:
    root = write_msd_dataset(project / "raw" / "Tiny")
    (root / "labelsTr" / "case_002.nii.gz").unlink()
    config = _single_dataset_config(project, {"folder": "Tiny"})
    run = snakemake(project, "--configfile", str(config), "--config", "datasets=[tiny]")
    assert run.returncode != 0
    assert "case_002: label file is missing" in run.stdout
    assert "Traceback" not in (project / "results" / "logs" / "validate" / "tiny.log").read_text()
    assert not (project / "results" / "data" / "tiny" / "cases.csv").exists()


def test_offline_download_says_which_file_to_put_where(project: Path) -> None:
    url = "http://127.0.0.1:9/Task99_Tiny.tar"
    config = _single_dataset_config(
        project, {"folder": "Task99_Tiny", "archive": "Task99_Tiny.tar", "url": url}
    )
    run = snakemake(project, "--configfile", str(config), "--config", "datasets=[tiny]")
    assert run.returncode != 0
    assert url in run.stdout
    assert str(project / "raw" / "Task99_Tiny.tar") in run.stdout
