"""The Snakemake DAG: the paper config plans, the demo config runs, bad data stops with a named case."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_msd_dataset

ROOT = Path(__file__).resolve().parents[2]
STUDIES = [
    "shift",
    "scale_resize",
    "scale_fixed",
    "noise",
    "spike",
    "ghosting",
    "bias_field",
    "motion",
    "anisotropy",
]
STUDIES += ["gibbs"]
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


def test_demo_runs_every_stage_and_ends_with_the_report(project: Path) -> None:
    run = snakemake(project, "--configfile", "config/demo.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    results = project / "results"
    for dataset in ("phantom", "phantom_multimodal"):
        manifest = pd.read_csv(results / "data" / dataset / "manifest.csv")
        assert set(manifest["split"]) == {"train", "test"}
        assert manifest["case_id"].is_unique
        index = pd.read_csv(results / "data" / dataset / "slices" / "index.csv")
        assert sorted(index["case_id"]) == sorted(manifest["case_id"])
        held_out_cases = sorted(manifest.loc[manifest.split == "test", "case_id"])
        models = ["med_nca", "nca", "unet", "segnet"] + (
            ["segnet_from_phantom_multimodal"] if dataset == "phantom" else []
        )
        for model in models:
            assert (results / "models" / dataset / model / "seed0" / "model.pt").exists()
            per_case = pd.read_csv(results / "metrics" / dataset / model / "seed0" / "per_case.csv")
            assert sorted(per_case["case_id"]) == held_out_cases
            assert per_case["dice"].between(0, 1).all()
            predictions = results / "predictions" / dataset / model / "seed0"
            assert sorted(p.name for p in predictions.glob("*.nii.gz")) == [
                f"{c}.nii.gz" for c in held_out_cases
            ]
            robustness = results / "robustness" / dataset / model / "seed0"
            for study in STUDIES:
                table = pd.read_csv(robustness / f"{study}.csv")
                assert sorted(table["severity"].unique()) == [0, 1, 2]
                clean = table[table.severity == 0].set_index("case_id")
                assert (clean["dice"] == per_case.set_index("case_id").loc[clean.index, "dice"]).all()
                assert (robustness / "gallery" / f"{study}.npz").exists()
            if model in ("med_nca", "nca"):
                assert (results / "metrics" / dataset / model / "seed0" / "nca_trajectory.npz").exists()
            assert (results / "benchmarks" / "evaluate" / dataset / model / "seed0.tsv").exists()
    assert "synthetic" in (project / "data" / "raw" / "Phantom_demo" / "dataset.json").read_text().lower()
    report = (results / "report.html").read_text()
    assert "Missing results" not in report
    assert report.count('id="main-results"') == 1 and report.count("data:image/png;base64,") > 20
    again = snakemake(project, "--configfile", "config/demo.yaml")
    assert "Nothing to be done" in again.stdout


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
