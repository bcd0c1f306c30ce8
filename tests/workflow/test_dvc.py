"""DVC around Snakemake: one run, a no-op second run, a parameter change re-runs only its model, push/pull."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import ROOT

pytestmark = pytest.mark.workflow
TINY = {
    "datasets": ["phantom"],
    "models": ["med_nca", "unet"],
    "dataset_settings": {
        "phantom": {
            "layout": "msd",
            "folder": "Phantom_tiny",
            "synthetic": {"cases": 6, "seed": 0, "shape": [16, 16, 12], "shape_jitter": 2, "modalities": 1},
            "foreground_labels": [1, 2],
            "slice_axis": 2,
            "image_size": [16, 16],
            "test_fraction": 0.34,
        }
    },
    "model_settings": {
        "med_nca": {
            "architecture": {"channels": 8, "hidden_size": 16, "steps": 4, "downscale": 4},
            "training": {"epochs": 1, "batch_size": 16},
        },
        "unet": {
            "architecture": {"channels": [4, 8], "strides": [2], "num_res_units": 1},
            "training": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3},
        },
    },
    "transfer": [],
    "evaluation": {"nca_runs": 2},
    "robustness": {"studies": ["shift"], "levels": {"shift": [0, 0.2]}, "max_cases": 1},
}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command with the test interpreter's bin folder first on PATH; stdout and stderr combined."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}"
    return result


def dvc(*args: str, cwd: Path) -> str:
    return run([str(Path(sys.executable).parent / "dvc"), *args], cwd).stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git + DVC copy of the project running the tiny config, with a local DVC remote in tmp_path."""
    repo = tmp_path / "repo"
    for name in ("workflow", "scripts", "config", "envs", "profiles", "src", ".dvc"):
        shutil.copytree(
            ROOT / name, repo / name, ignore=shutil.ignore_patterns("tmp", "cache", "__pycache__")
        )
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "config" / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (repo / "params.yaml").write_text("configfile: config/tiny.yaml\n")
    run(["git", "init", "-q"], repo)
    dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "storage"), cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "project"], repo)
    return repo


def test_dvc_reruns_only_what_a_change_affects_and_round_trips(repository: Path, tmp_path: Path) -> None:
    first = dvc("repro", cwd=repository)
    assert "Running stage 'report'" in first
    assert (repository / "results" / "report.html").exists()
    assert "Data and pipelines are up to date" in dvc("repro", cwd=repository)

    models = repository / "results" / "models" / "phantom"
    before = {model: digest(models / model / "seed0" / "model.pt") for model in ("med_nca", "unet")}
    tiny = yaml.safe_load((repository / "config" / "tiny.yaml").read_text())
    tiny["model_settings"]["unet"]["training"]["lr"] = 5.0e-3
    (repository / "config" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    assert "config" in dvc("status", cwd=repository)
    again = dvc("repro", cwd=repository)
    assert "Stage 'data' didn't change, skipping" in again
    assert "Running stage 'train'" in again
    assert digest(models / "unet" / "seed0" / "model.pt") != before["unet"]
    assert digest(models / "med_nca" / "seed0" / "model.pt") == before["med_nca"]
    assert "model_settings.unet.training.lr" in dvc("params", "diff", cwd=repository)
    metrics = dvc("metrics", "show", cwd=repository)
    assert "phantom.unet.seed0.dice_mean" in metrics

    run(["git", "add", "-A"], repository)
    run(["git", "commit", "-q", "-m", "run"], repository)
    dvc("push", cwd=repository)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repository), str(clone)], tmp_path)
    dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "storage"), cwd=clone)
    dvc("pull", cwd=clone)
    for model in ("med_nca", "unet"):
        path = Path("results") / "models" / "phantom" / model / "seed0" / "model.pt"
        assert digest(clone / path) == digest(repository / path)
    assert digest(clone / "results" / "report.html") == digest(repository / "results" / "report.html")
