"""Provenance of a report: when and from which commit it was built, with which package versions."""

from __future__ import annotations

import datetime
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from mednca.names import display_name

PACKAGES = (
    "mednca",
    "torch",
    "monai",
    "torchio",
    "nibabel",
    "numpy",
    "pandas",
    "seaborn",
    "snakemake",
    "dvc",
)


def git_state(directory: Path) -> str:
    """'<commit>' or '<commit> (uncommitted changes)', or a note when ``directory`` is not a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (uncommitted changes)" if status.strip() else commit


def package_versions() -> pd.DataFrame:
    """Installed version of each package the pipeline relies on (columns package, version)."""
    rows = []
    for package in PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": package, "version": version})
    return pd.DataFrame(rows)


def run_info(
    config: dict,
    summaries: pd.DataFrame,
    overview: pd.DataFrame,
    repository: Path | None,
    nca_runs: int,
) -> dict:
    """The run summary: date, commit, device, datasets and configuration."""
    devices = sorted(summaries["device"].dropna().unique()) if "device" in summaries else []
    items = [
        ("Generated (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")),
        ("Git commit", git_state(repository) if repository else "not recorded"),
        ("Device", ", ".join(devices) or "unknown"),
        ("Datasets", ", ".join(overview["dataset"]) or "none"),
        ("Models", ", ".join(display_name(m) for m in sorted(set(summaries.get("model", [])))) or "none"),
        ("Seeds", ", ".join(str(s) for s in config.get("seeds", []))),
    ]
    return {
        "generated": items[0][1],
        "results_dir": str(config.get("results_dir", "")),
        "items_shown": items,
        "config_yaml": yaml.safe_dump(config, sort_keys=True),
        "nca_runs": nca_runs,
    }
