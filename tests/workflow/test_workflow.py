"""The Snakemake DAG: the paper config plans, the demo config runs, bad data stops with a named case."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import snakemake, write_msd_dataset

pytestmark = pytest.mark.workflow


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
            "tiny": {"layout": "msd", "foreground_labels": [1, 2], "image_size": [16, 16], **settings}
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


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"device": "gpu"}, "device"),
        ({"transfer": [{"model": "segnet", "source": "nowhere", "target": "phantom"}]}, "transfer[0].source"),
    ],
    ids=["schema", "cross_check"],
)
def test_bad_config_stops_the_workflow_with_one_line(project: Path, overrides: dict, key: str) -> None:
    """Snakemake stops while loading the config, before planning: one 'Invalid configuration' line naming
    the key, no traceback. One key the schema refuses and one the checks across keys refuse; every
    refused key and its message are tested on the config module (tests/unit/test_config.py)."""
    bad = project / "config" / "bad.yaml"
    bad.write_text(yaml.safe_dump(overrides))
    run = snakemake(project, "-n", "--configfile", "config/demo.yaml", str(bad))
    assert run.returncode != 0
    errors = [line for line in run.stdout.splitlines() if "Invalid configuration" in line]
    assert len(errors) == 1, run.stdout
    assert errors[0].startswith(f"Invalid configuration: config key '{key}"), errors[0]
    assert "Traceback" not in run.stdout
    assert "Building DAG of jobs" not in run.stdout and "Job stats" not in run.stdout


def _wait_for(condition, timeout: float, process: subprocess.Popen) -> None:
    """Poll ``condition`` until true; fail if ``process`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the run did not reach training in time")
        time.sleep(0.05)


def _epochs_done(history: Path) -> int:
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


def _trained(results: Path) -> tuple[list[float], dict]:
    """A run's per-epoch losses and its trained weights."""
    import pandas as pd
    import torch

    model_dir = results / "models" / "phantom" / "med_nca" / "seed0"
    losses = pd.read_csv(model_dir / "train_log.csv")["loss"].tolist()
    return losses, torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


# Long enough that the kill (after 3 epochs, polled every 50 ms) lands well before the end of training.
EPOCHS = 10


def test_killed_run_resumes_after_unlock(project: Path) -> None:
    """kill -9 during train_model leaves Snakemake's lock; `snakemake --unlock` and the same command again
    finish the run, training resumed from its checkpoint, with the weights of an uninterrupted run."""
    overlay = project / "config" / "resume.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "datasets": ["phantom"],
                "models": ["med_nca"],
                "transfer": [],
                "data_efficiency": {"dataset": None},
                "model_settings": {"med_nca": {"training": {"epochs": EPOCHS, "checkpoint_every": 1}}},
            }
        )
    )
    # The documented command, for the `train` stage (data and models) to keep the test short.
    command = [sys.executable, "-m", "snakemake", "train", "--cores", "1"]
    command += ["--configfile", "config/demo.yaml", str(overlay)]
    model_dir = project / "results" / "models" / "phantom" / "med_nca" / "seed0"
    history = model_dir / "train_log.csv"

    first_log = project / "killed_run.log"
    with open(first_log, "w") as output:
        process = subprocess.Popen(
            command, cwd=project, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_for(
                lambda: _epochs_done(history) >= 3 and (model_dir / "checkpoint.pt").exists(), 180, process
            )
        except BaseException:
            print(first_log.read_text()[-3000:])
            raise
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the whole run: snakemake and its training job
            process.wait(timeout=60)
    killed_at = _epochs_done(history)
    assert 3 <= killed_at < EPOCHS and not (model_dir / "model.pt").exists()

    # Snakemake 9 does not remove the lock of a killed run by itself: a plain re-run refuses to start.
    locked = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.stdout + locked.stderr

    unlock = subprocess.run(
        [sys.executable, "-m", "snakemake", "--unlock"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    resumed = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    train_log = (project / "results" / "logs" / "train" / "phantom" / "med_nca" / "seed0.log").read_text()
    resumed_from = re.search(rf"resuming from \S+checkpoint.pt at epoch (\d+) of {EPOCHS}", train_log)
    # The log is written just before the checkpoint of the same epoch, so the kill may fall in between.
    assert resumed_from and int(resumed_from.group(1)) >= killed_at - 1 >= 2, train_log
    assert _epochs_done(history) == EPOCHS

    straight = subprocess.run(
        [*command, "--config", "results_dir=straight"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, (straight.stdout + straight.stderr)[-3000:]
    import torch

    (resumed_losses, resumed_weights), (losses, weights) = (
        _trained(project / "results"),
        _trained(project / "straight"),
    )
    assert resumed_losses == losses
    assert resumed_weights.keys() == weights.keys()
    assert all(torch.equal(resumed_weights[name], weights[name]) for name in weights)
