"""Jobs killed for their memory on a cluster are found in Snakemake's log and named with the resource."""

from __future__ import annotations

from pathlib import Path

from mednca.cluster import memory_advice, memory_failures

SUBMITTED = """\
[Thu Dec  3 07:46:04 2026]
rule train_model:
    output: results/models/phantom/unet/seed0/model.pt
    jobid: 7
    reason: Missing output files: results/models/phantom/unet/seed0/model.pt
    resources: tmpdir=<TBD>, mem_mb={mem}, mem=100 MB, slurm_account=mednca, slurm_partition=cpu, runtime=5
Job 7 has been submitted with SLURM jobid 5 (log: {slurm_log}).
"""
FAILED = """\
[Thu Dec  3 07:46:20 2026]
Error in rule train_model:
    message: SLURM-job '5' failed, SLURM status is: '{state}'. Reason: Unknown.
    jobid: 7
    output: results/models/phantom/unet/seed0/model.pt
    log: {rule_log}, {slurm_log} (check log file(s) for error details)
    external_jobid: 5
"""
# What Snakemake prints after the error block (show-failed-logs): the job's logs, the cluster job's holding
# the job's own Snakemake run with its own error block and timestamps.
PRINTED_LOGS = """\
Logfile {slurm_log}:
{rule}
[Thu Dec  3 07:46:19 2026]
Error in rule train_model:
    message: None
    jobid: 0
    log: {rule_log} (check log file(s) for error details)
{job_log}
{rule}
"""
OVER_MEMORY = (
    "slurmstepd-vm: error: StepId=5.batch exceeded memory limit (133169152 > 104857600), being killed\n"
)


def snakemake_log(tmp_path: Path, state: str, job_log: str, mem: int = 100, printed: bool = False) -> str:
    """A Snakemake log of one submission and failure; the cluster job's log written to 5.log (and printed
    after the error block with ``printed``)."""
    slurm_log, rule_log = tmp_path / "5.log", tmp_path / "seed0.log"
    slurm_log.write_text(job_log)
    rule_log.write_text("epoch 1/3 loss 0.9\n")
    fields = {"mem": mem, "slurm_log": slurm_log, "rule_log": rule_log, "state": state}
    fields |= {"job_log": job_log, "rule": "=" * 80}
    text = SUBMITTED.format(**fields) + FAILED.format(**fields)
    text += PRINTED_LOGS.format(**fields) if printed else ""
    return text + "Shutting down, this might take some time.\n"


def test_over_memory_kill_is_named_with_rule_request_and_resource(tmp_path: Path) -> None:
    log = snakemake_log(tmp_path, "FAILED", OVER_MEMORY)
    (failure,) = memory_failures(log)
    assert (failure.rule, failure.jobid, failure.requested_mb, failure.external_jobid) == (
        "train_model",
        "7",
        100,
        "5",
    )
    advice = failure.advice()
    assert "rule train_model" in advice and "mem_mb=100" in advice and "raise mem_mb of train_model" in advice


def test_cgroup_out_of_memory_state_is_found_without_the_job_log(tmp_path: Path) -> None:
    log = snakemake_log(tmp_path, "OUT_OF_MEMORY", "", mem=8000)
    (tmp_path / "5.log").unlink()
    (failure,) = memory_failures(log)
    assert failure.requested_mb == 8000


def test_printed_job_log_is_read_and_its_inner_error_not_counted_twice(tmp_path: Path) -> None:
    log = snakemake_log(tmp_path, "FAILED", OVER_MEMORY, printed=True)
    (tmp_path / "5.log").unlink()  # the evidence is in the printed copy only
    (failure,) = memory_failures(log)
    assert (failure.rule, failure.external_jobid, failure.requested_mb) == ("train_model", "5", 100)


def test_the_retry_with_more_memory_is_the_request_reported(tmp_path: Path) -> None:
    first = snakemake_log(tmp_path, "FAILED", OVER_MEMORY, mem=100)
    second = snakemake_log(tmp_path, "FAILED", OVER_MEMORY, mem=200)
    failures = memory_failures(first + second)
    assert [failure.requested_mb for failure in failures] == [100, 200]


def test_other_failures_give_no_memory_advice(tmp_path: Path) -> None:
    log = snakemake_log(tmp_path, "FAILED", "Traceback (most recent call last):\nValueError: bad case\n")
    assert memory_failures(log) == []
    gpu = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    assert memory_failures(snakemake_log(tmp_path, "FAILED", gpu, printed=True)) == []
    assert memory_advice(tmp_path / "missing.log") == []


def test_memory_advice_reads_the_log_file(tmp_path: Path) -> None:
    path = tmp_path / "run.snakemake.log"
    path.write_text(snakemake_log(tmp_path, "FAILED", OVER_MEMORY))
    (line,) = memory_advice(path)
    assert line.startswith("rule train_model: SLURM job 5 was killed for exceeding its memory")
