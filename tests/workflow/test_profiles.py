"""Execution profiles: local and SLURM profiles cover the same rules; the SLURM one (a YTE template, rendered
as Snakemake renders it) plans the DAG, on CPU nodes by default and with GPU requests when asked for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
import yte
from conftest import ROOT, snakemake

PROFILES = ("default", "slurm")
pytestmark = pytest.mark.workflow


def workflow_rules() -> set[str]:
    """Names of every rule declared in the workflow's rule files and Snakefile."""
    sources = [ROOT / "workflow" / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    return {name for path in sources for name in re.findall(r"^rule (\w+):", path.read_text(), re.MULTILINE)}


def profile(name: str, root: Path = ROOT) -> dict:
    """The profile as Snakemake reads it: YTE templates rendered, plain YAML as it is."""
    text = (root / "profiles" / name / "config.yaml").read_text()
    return yte.process_yaml(text, require_use_yte=True)


def use_gpus(project: Path) -> None:
    """Edit the SLURM profile of ``project`` as a user with GPU nodes would: one GPU per heavy job."""
    path = project / "profiles" / "slurm" / "config.yaml"
    text = path.read_text()
    assert "  - gpus = 0" in text
    path.write_text(text.replace("  - gpus = 0", "  - gpus = 1"))


def test_profiles_set_threads_and_resources_for_the_same_existing_rules() -> None:
    rules = workflow_rules()
    default, slurm = (profile(name) for name in PROFILES)
    for key in ("set-threads", "set-resources"):
        assert set(default[key]) == set(slurm[key]), key
        assert set(default[key]) <= rules, set(default[key]) - rules
    heavy = {"train_model", "finetune_model", "evaluate_model", "robustness_studies"}
    assert heavy <= set(default["set-resources"])
    assert all(slurm["set-resources"][rule]["gpu"] == 0 for rule in heavy)
    assert all(default["set-resources"][rule]["gpu"] == 0 for rule in heavy)
    assert slurm["executor"] == "slurm"
    assert slurm["default-resources"]["slurm_partition"] == "cpu"


def test_slurm_profile_asks_gpus_for_the_heavy_rules_only_when_told(project: Path) -> None:
    use_gpus(project)
    slurm = profile("slurm", project)
    for rule, request in slurm["set-resources"].items():
        heavy = rule in {"train_model", "finetune_model", "evaluate_model", "robustness_studies"}
        assert request["gpu"] == (1 if heavy else 0), rule
        assert (request.get("slurm_partition") == "gpu") == heavy, rule


def planned_training(project: Path) -> str:
    run = snakemake(project, "-n", "--workflow-profile", "profiles/slurm")
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout.split("rule train_model:")[1].split("\n\n")[0]


def test_slurm_profile_plans_the_paper_on_cpu_nodes(project: Path) -> None:
    train = planned_training(project)
    assert "gpu=0" in train and "slurm_partition=cpu" in train and "mem_mb=8000" in train


def test_slurm_profile_plans_the_paper_with_gpu_requests(project: Path) -> None:
    use_gpus(project)
    train = planned_training(project)
    assert "gpu=1" in train and "slurm_partition=gpu" in train and "mem_mb=8000" in train


def test_large_grid_plans(project: Path) -> None:  # noqa: F811
    """3 datasets x 4 models x 5 seeds x every study: the DAG is planned without running anything."""
    grid = project / "config" / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "datasets": ["hippocampus", "prostate", "brats"],
                "models": ["med_nca", "nca", "unet", "segnet"],
                "seeds": [0, 1, 2, 3, 4],
                "dataset_settings": {"brats": {"models": None}, "prostate": {"models": None}},
                # Planned, never run: full-resolution NCAs on 240x240 and 256x256 slices exceed any memory.
                "memory_limit_gb": 100000,
            }
        )
    )
    run = snakemake(project, "-n", "--configfile", str(grid), "--quiet", "rules")
    assert run.returncode == 0, run.stdout[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, re.MULTILINE))
    assert int(counts["train_model"]) == 3 * 4 * 5
    assert int(counts["robustness_studies"]) == 3 * 4 * 5
    assert int(counts["nca_trajectory"]) == 3 * 2 * 5
