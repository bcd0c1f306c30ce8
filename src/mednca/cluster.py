"""What a failed cluster run needs: jobs killed for their memory, named with the rule and the resource.

SLURM reports a job over its memory request in two ways: with cgroup enforcement as state OUT_OF_MEMORY, and
with the accounting plugin's OverMemoryKill as a plain failure whose job log says "exceeded memory limit".
The SLURM executor plugin writes both into Snakemake's log (the state in the error message, the job log's
path and text after it), so the log of the run is enough to tell which rules to give more memory.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

_ERROR_BLOCK = re.compile(r"^Error in rule (\w+):\n((?:[ \t]+.*\n?)*)", re.MULTILINE)
_JOB_START = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n?)*)", re.MULTILINE)
# SLURM's own words only: a GPU's "CUDA out of memory" is not the job's mem_mb.
_MEMORY_KILL = re.compile(r"OUT_OF_MEMORY|exceeded memory limit|oom[-_]kill")


@dataclass(frozen=True)
class MemoryFailure:
    """A job killed for exceeding its memory request."""

    rule: str
    jobid: str
    requested_mb: int | None
    external_jobid: str | None

    def advice(self) -> str:
        """One line naming the rule and the resource to raise."""
        asked = f" (asked for mem_mb={self.requested_mb})" if self.requested_mb else ""
        job = f"SLURM job {self.external_jobid}" if self.external_jobid else "its job"
        return (
            f"rule {self.rule}: {job} was killed for exceeding its memory{asked}; raise mem_mb of "
            f"{self.rule} under set-resources in your cluster profile (or pass --set-resources "
            f"{self.rule}:mem_mb=N)"
        )


def _field(block: str, name: str) -> str | None:
    match = re.search(rf"^\s+{name}: (.*)$", block, re.MULTILINE)
    return match.group(1).strip() if match else None


def _requested_mb(log: str, rule: str, jobid: str | None, before: int) -> int | None:
    """mem_mb of the last submission of ``rule`` (job ``jobid``) before position ``before`` of the log."""
    requested = None
    for start in _JOB_START.finditer(log, 0, before):
        block = start.group(2)
        if start.group(1) != rule or (jobid is not None and _field(block, "jobid") != jobid):
            continue
        memory = re.search(r"\bmem_mb=(\d+)", _field(block, "resources") or "")
        requested = int(memory.group(1)) if memory else requested
    return requested


def _job_log_text(block: str) -> str:
    """The text of the log files an error block names (the rule's log and the cluster job's log)."""
    text = ""
    for name in (_field(block, "log") or "").split(" (")[0].split(", "):
        path = Path(name.strip())
        if name.strip() and path.is_file():
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
    return text


def memory_failures(log: str) -> list[MemoryFailure]:
    """The cluster jobs of a Snakemake log (text) that were killed for their memory, in the order they failed.

    Only error blocks of submitted jobs count (they name an ``external_jobid``): the failed job's own
    Snakemake log, printed after its block, holds error blocks of its own that repeat the failure.
    """
    blocks = [match for match in _ERROR_BLOCK.finditer(log) if _field(match.group(2), "external_jobid")]
    failures = []
    for index, match in enumerate(blocks):
        rule, block = match.group(1), match.group(2)
        following = log[match.end() : blocks[index + 1].start() if index + 1 < len(blocks) else len(log)]
        evidence = block + following + _job_log_text(block)
        if not _MEMORY_KILL.search(evidence):
            continue
        jobid = _field(block, "jobid")
        failures.append(
            MemoryFailure(
                rule,
                jobid or "",
                _requested_mb(log, rule, jobid, match.start()),
                _field(block, "external_jobid"),
            )
        )
    return failures


def memory_advice(log_path: Path) -> list[str]:
    """One line of advice per job of the Snakemake log at ``log_path`` killed for its memory."""
    try:
        log = Path(log_path).read_text(errors="replace")
    except OSError:
        return []
    return [failure.advice() for failure in memory_failures(log)]
