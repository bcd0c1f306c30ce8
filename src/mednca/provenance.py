"""Where a result comes from: the code's commit, the machine, the software and the data it saw.

Training writes these facts into its summary, so a run's record and its model card can name them without
guessing afterwards. Nothing here imports torch: the report environment uses it too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "neon", "asimd")
ISA_LIMIT_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that hold PyTorch's own kernels, oneDNN and MKL below the CPU's instruction sets
(set to time a lesser CPU, for example an AVX2-only one, on this one)."""
"""The instruction-set flags that decide which kernels PyTorch runs (and so a run's speed)."""

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
"""The packages the pipeline relies on, whose versions a record keeps."""


def source_checkout() -> Path:
    """The folder the ``mednca`` package was loaded from, two levels up: an editable install's checkout."""
    return Path(__file__).resolve().parents[2]


def git_state(directory: Path | None = None) -> str:
    """'<commit>' or '<commit> (uncommitted changes)', or a note when ``directory`` is not a git checkout."""
    directory = source_checkout() if directory is None else Path(directory)
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (uncommitted changes)" if status else commit


def _git(directory: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=directory, capture_output=True, text=True, check=True
    ).stdout.strip()


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), or the platform's processor string."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_isa() -> list[str]:
    """Which of ``ISA_FLAGS`` the CPU has."""
    flags = set((_cpuinfo().get("flags") or _cpuinfo().get("Features") or "").split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """{package: installed version or 'not installed'}, with Python's own version under 'python'."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def isa_limits() -> dict[str, str]:
    """The ``ISA_LIMIT_VARIABLES`` that are set, with their values."""
    return {name: os.environ[name] for name in ISA_LIMIT_VARIABLES if os.environ.get(name)}


def isa_limit_name(machine: dict[str, Any]) -> str:
    """The instruction set a ``machine`` record's kernels were held to ('AVX2'), or '' if none was."""
    return "/".join(sorted({value.upper() for value in (machine.get("isa_limit") or {}).values()}))


def machine(threads: int) -> dict[str, Any]:
    """The machine a job ran on: CPU model, instruction sets, logical CPUs and the threads it used, and the
    kernels' instruction-set limits where any is set (``isa_limits``)."""
    limits = isa_limits()
    return {
        "cpu": cpu_model(), "isa": cpu_isa(), "cpus": os.cpu_count(), "threads": threads,
        **({"isa_limit": limits} if limits else {}),
    }  # fmt: skip


def case_list_hash(case_ids: Iterable[str]) -> str:
    """SHA-256 (first 16 hex digits) of the sorted case ids, one per line: names a split's case list."""
    text = "\n".join(sorted(case_ids))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
