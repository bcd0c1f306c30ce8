"""Choosing the compute device."""

from __future__ import annotations

import functools
import re

import torch

from mednca.errors import ConfigError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, then Apple MPS, then CPU; otherwise the named device.

    Raises ConfigError for a name that is not auto, cpu, cuda, cuda:N or mps, and for a device this
    machine does not have.
    """
    if not DEVICE_PATTERN.match(str(name)):
        raise ConfigError(f"device '{name}' is unknown; use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device '{name}': this machine has no CUDA GPU (PyTorch sees none); use auto or cpu"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}': there are only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{name}': Apple MPS is not available on this machine; use auto or cpu")
    return device


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere); read once per process."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX-BF16 (elsewhere bf16 still runs, emulated and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated tensor memory on CUDA, resident set size of the process otherwise."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
