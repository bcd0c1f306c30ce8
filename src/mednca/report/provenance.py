"""Provenance of a report: when and from which commit it was built, with which package versions."""

from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd
import yaml

from mednca import provenance
from mednca.names import display_name


def package_versions() -> pd.DataFrame:
    """Installed version of each package the pipeline relies on (columns package, version)."""
    versions = provenance.package_versions()
    versions.pop("python")
    return pd.DataFrame({"package": list(versions), "version": list(versions.values())})


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
        ("Git commit", provenance.git_state(repository) if repository else "not recorded"),
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
