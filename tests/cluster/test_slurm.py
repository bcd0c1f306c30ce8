"""The workflow on a real SLURM cluster (``slurm_cluster.sh``): every job goes through sbatch with the
shipped profile, edited as a user would; a training job cancelled with scancel is re-submitted and resumes
from its checkpoint; the results equal those of a local run; a job over its memory request is named.

Needs root (the daemons, and Debian's packages if absent): ``make test-cluster``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT

from mednca.cluster import memory_failures

pytestmark = pytest.mark.cluster
CLUSTER_SCRIPT = Path(__file__).with_name("slurm_cluster.sh")
EPOCHS = 20
STUDIES = ["shift", "noise", "motion"]
# Columns that measure the machine (time, memory) rather than the result.
MEASURED = re.compile(r"seconds|time|memory|_ms$|_mb$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running single-node SLURM cluster; yields the environment its clients need."""
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=900
    )
    assert start.returncode == 0, start.stdout + start.stderr
    env = os.environ | {
        "SLURM_CONF": str(state / "slurm.conf"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    yield env
    subprocess.run([str(CLUSTER_SCRIPT), "stop", str(state)], timeout=300, check=False)


@pytest.fixture(scope="module")
def cluster_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with the SLURM profile edited for the test cluster and a small demo overlay."""
    project = tmp_path_factory.mktemp("project")
    for name in ("workflow", "scripts", "config", "envs", "profiles"):
        shutil.copytree(ROOT / name, project / name, symlinks=False)
    profile = project / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    for line, edited in (('account = "your_account"', 'account = "mednca"'), ("cpus = 8", "cpus = 2")):
        assert line in text, line
        text = text.replace(line, edited)
    profile.write_text(text)
    overlay = {
        "datasets": ["phantom"],
        "models": ["med_nca", "unet"],
        "transfer": [],
        "data_efficiency": {"dataset": None},
        "model_settings": {"med_nca": {"training": {"epochs": EPOCHS, "checkpoint_every": 1}}},
        "robustness": {"studies": STUDIES},
    }
    (project / "config" / "cluster.yaml").write_text(yaml.safe_dump(overlay))
    return project


TARGETS = ("evaluate", "robustness")


def command(results: str, *extra: str, targets=TARGETS) -> list[str]:
    """The snakemake command for the small demo, results in ``results`` (with its own raw data folder)."""
    return [
        sys.executable, "-m", "snakemake", *targets,
        "--configfile", "config/demo.yaml", "config/cluster.yaml",
        "--config", f"results_dir={results}", f"data_dir={results}_raw", *extra,
    ]  # fmt: skip


def slurm_command(results: str, *extra: str, targets=TARGETS) -> list[str]:
    """The same through the SLURM profile; status checks from 5 s after a submission (default 40 s)."""
    profile = ("--workflow-profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "5")
    return command(results, *profile, *extra, targets=targets)


def squeue(env: dict[str, str]) -> list[tuple[str, str]]:
    """(job id, comment) of the queued and running jobs."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], env=env, capture_output=True, text=True).stdout
    return [tuple(line.split("|", 1)) for line in out.splitlines() if "|" in line]


def epochs_done(history: Path) -> int:
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


def cancel_training_when_checkpointed(process: subprocess.Popen, model_dir: Path, env: dict) -> str:
    """Wait until the Med-NCA training job has a checkpoint after 3 epochs, scancel it; its SLURM id."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and process.poll() is None:
        jobs = [job for job, comment in squeue(env) if "train_model" in comment and "med_nca" in comment]
        history = model_dir / "train_log.csv"
        if jobs and epochs_done(history) >= 3 and (model_dir / "checkpoint.pt").exists():
            subprocess.run(["scancel", jobs[0]], env=env, check=True)
            return jobs[0]
        time.sleep(0.2)
    pytest.fail("the Med-NCA training job did not reach its third epoch on the cluster")


@pytest.fixture(scope="module")
def slurm_run(cluster: dict[str, str], cluster_project: Path) -> tuple[Path, str, str]:
    """The small demo run through SLURM, its training job cancelled once; (results, log, cancelled id)."""
    log = cluster_project / "slurm_run.log"
    model_dir = cluster_project / "slurm" / "models" / "phantom" / "med_nca" / "seed0"
    with open(log, "w") as output:
        process = subprocess.Popen(
            slurm_command("slurm"), cwd=cluster_project, env=cluster, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            cancelled = cancel_training_when_checkpointed(process, model_dir, cluster)
            process.wait(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    assert process.returncode == 0, text[-4000:]
    return cluster_project / "slurm", text, cancelled


@pytest.fixture(scope="module")
def local_run(cluster_project: Path) -> Path:
    """The same run on this machine, without SLURM."""
    run = subprocess.run(
        [*command("local"), "--cores", "2"], cwd=cluster_project, capture_output=True, text=True, timeout=1800
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return cluster_project / "local"


def sacct_jobs(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (state, comment) of every job in the cluster's accounting (job steps left out)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-o", "JobID,State,Comment", "-S", "now-1days"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line]
    return {row[0]: (row[1], row[2]) for row in rows}


def test_every_job_ran_through_sbatch_and_is_in_the_accounting(slurm_run, cluster) -> None:
    _, log, cancelled = slurm_run
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) >= 10 and cancelled in submitted, log[-3000:]
    jobs = sacct_jobs(cluster)
    assert jobs[cancelled][0].startswith("CANCELLED")
    assert all(jobs[job][0] == "COMPLETED" for job in submitted if job != cancelled), jobs
    rules = {re.sub(r"^rule_(\w+?)(_wildcards_.*)?$", r"\1", jobs[job][1]) for job in submitted}
    assert {"preprocess_dataset", "train_model", "evaluate_model", "robustness_studies"} <= rules, rules
    # The one failure of the run is the cancelled job, and it is no memory failure.
    failed = re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: '(\w+)'", log)
    assert failed == [(cancelled, "CANCELLED")]
    assert memory_failures(log) == []


def test_cancelled_training_is_resubmitted_and_resumes_from_its_checkpoint(slurm_run) -> None:
    results, log, cancelled = slurm_run
    assert f"SLURM-job '{cancelled}' failed" in log
    train_log = (results / "logs" / "train" / "phantom" / "med_nca" / "seed0.log").read_text()
    resumed = re.search(rf"resuming from \S+checkpoint.pt at epoch (\d+) of {EPOCHS}", train_log)
    assert resumed and int(resumed.group(1)) >= 2, train_log[-3000:]
    history = pd.read_csv(results / "models" / "phantom" / "med_nca" / "seed0" / "train_log.csv")
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))


def result_tables(results: Path) -> dict[str, pd.DataFrame]:
    """Every CSV of the evaluation, learning curves, robustness studies and training logs, without the
    columns that measure the machine."""
    tables = {}
    for folder in ("metrics", "robustness", "models"):
        for path in sorted((results / folder).rglob("*.csv")):
            table = pd.read_csv(path)
            tables[str(path.relative_to(results))] = table.drop(
                columns=[name for name in table.columns if MEASURED.search(name)]
            )
    return tables


def test_cluster_results_equal_the_local_run(slurm_run, local_run) -> None:
    cluster_tables, local_tables = result_tables(slurm_run[0]), result_tables(local_run)
    assert cluster_tables.keys() == local_tables.keys()
    names = " ".join(local_tables)
    assert "robustness" in names and "learning_curve" in names and "per_case" in names, names
    for name, table in local_tables.items():
        pd.testing.assert_frame_equal(cluster_tables[name], table, obj=name)
    for model in ("med_nca", "unet"):
        weights = [
            torch.load(root / "models" / "phantom" / model / "seed0" / "model.pt", weights_only=True)
            for root in (slurm_run[0], local_run)
        ]
        states = [weight["state_dict"] for weight in weights]
        assert states[0].keys() == states[1].keys()
        assert all(torch.equal(states[0][key], states[1][key]) for key in states[0]), model


def test_job_over_its_memory_is_named_with_the_resource_to_raise(slurm_run, cluster, cluster_project) -> None:
    """Run after the other cluster tests (it needs the cluster to itself)."""
    target = "oom/models/phantom/unet/seed0/model.pt"
    run = subprocess.run(
        slurm_command("oom", "--retries", "0", "--set-resources", "train_model:mem_mb=150", targets=[target]),
        cwd=cluster_project, env=cluster, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    advice = [line for line in output.splitlines() if "killed for exceeding its memory" in line]
    assert len(advice) == 1, output[-4000:]
    assert advice[0].startswith("rule train_model: SLURM job ") and "mem_mb=150" in advice[0], advice
    assert "set-resources" in advice[0]
