"""Execution profiles: local and SLURM profiles cover the same rules; the SLURM one plans the DAG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake

PROFILES = ("default", "slurm")
pytestmark = pytest.mark.workflow


def workflow_rules() -> set[str]:
    """Names of every rule declared in the workflow's rule files and Snakefile."""
    sources = [ROOT / "workflow" / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    return {name for path in sources for name in re.findall(r"^rule (\w+):", path.read_text(), re.MULTILINE)}


def profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_profiles_set_threads_and_resources_for_the_same_existing_rules() -> None:
    rules = workflow_rules()
    default, slurm = (profile(name) for name in PROFILES)
    for key in ("set-threads", "set-resources"):
        assert set(default[key]) == set(slurm[key]), key
        assert set(default[key]) <= rules, set(default[key]) - rules
    heavy = {"train_model", "finetune_model", "evaluate_model", "robustness_studies"}
    assert heavy <= set(default["set-resources"])
    assert all(slurm["set-resources"][rule]["gpu"] == 1 for rule in heavy)
    assert all(default["set-resources"][rule]["gpu"] == 0 for rule in heavy)
    assert slurm["executor"] == "slurm"


def test_slurm_profile_plans_the_paper_with_gpu_requests(project: Path) -> None:  # noqa: F811
    run = snakemake(project, "-n", "--workflow-profile", "profiles/slurm")
    assert run.returncode == 0, run.stdout[-3000:]
    train = run.stdout.split("rule train_model:")[1].split("\n\n")[0]
    assert "gpu=1" in train and "slurm_partition=gpu" in train and "mem_mb=32000" in train


def test_large_grid_plans(project: Path) -> None:  # noqa: F811
    """3 datasets x 4 models x 5 seeds x every study: the DAG is planned without running anything."""
    grid = project / "config" / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "datasets": ["hippocampus", "prostate", "brats"],
                "models": ["med_nca", "nca", "unet", "segnet"],
                "seeds": [0, 1, 2, 3, 4],
                "dataset_settings": {"brats": {"models": None}},
            }
        )
    )
    run = snakemake(project, "-n", "--configfile", str(grid), "--quiet", "rules")
    assert run.returncode == 0, run.stdout[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, re.MULTILINE))
    assert int(counts["train_model"]) == 3 * 4 * 5
    assert int(counts["robustness_studies"]) == 3 * 4 * 5
    assert int(counts["nca_trajectory"]) == 3 * 2 * 5
