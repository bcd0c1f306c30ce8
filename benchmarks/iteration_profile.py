"""Where the time of one Med-NCA training iteration goes, by phase: fire-mask draws, gathers and scatters,
matrix products and the rest, in the forward and in the backward pass.

One iteration of the CPU recipe's shape (a batch of 64x64 slices, 64 steps per level, level 2 on a 16x16
patch, Dice + BCE, Adam) runs under ``torch.profiler`` after warm-up iterations; every operator's own
(self) CPU time is summed into its phase. The record (CPU, threads, commit, the phases' seconds) goes to
``records/benchmarks/iteration_profile/<cpu>.json`` and its table into ``docs/performance.md``.

    python benchmarks/iteration_profile.py                         # the CPU recipe's Med-NCA
    python benchmarks/iteration_profile.py --precision bf16 --batch 24 --steps 32
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/iteration_profile.py --steps 32     # as an AVX2-only CPU runs it
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from mednca import provenance
from mednca.documents import save_benchmark_record
from mednca.models import build_model
from mednca.models.nca import resolved_formulations

ROOT = Path(__file__).resolve().parent.parent
PHASES = {
    "draws": ("uniform", "rand", "nonzero", "lt", "randint"),
    "gathers": ("index", "gather", "scatter", "embedding", "take", "narrow_copy", "masked"),
    "products": ("mm", "addmm", "matmul", "bmm", "linear", "conv", "convolution", "mkldnn"),
}
"""Which operators make each phase: an operator whose name holds one of the words (``aten::`` dropped);
anything else (additions, copies, activations, the optimiser) is ``other``."""


def phase_of(name: str) -> str:
    """The phase of a profiled operator name such as ``aten::index_select``."""
    short = name.split("::")[-1]
    for phase, words in PHASES.items():
        if any(re.search(rf"(^|_){word}", short) for word in words):
            return phase
    return "other"


def iteration(model, images, labels, optimiser, generator) -> None:
    """One training iteration with its forward and backward passes labelled."""
    with record_function("pass::forward"):
        logits, targets = model.training_forward(images, labels, generator)
        probabilities = torch.sigmoid(logits)
        dice = 1 - (2 * (probabilities * targets).sum() + 1) / (probabilities.sum() + targets.sum() + 1)
        loss = dice + F.binary_cross_entropy_with_logits(logits, targets)
    with record_function("pass::backward"):
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def profile_iteration(arguments: dict, batch: int, size: int, warmup: int) -> dict:
    """Seconds per phase of one iteration, forward and backward, and its wall time."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((batch, 1, size, size), generator=generator)
    labels = (images > 0.5).float()
    model = build_model("med_nca", 1, **arguments)
    optimiser = torch.optim.Adam(model.parameters(), lr=1.6e-3)
    for _ in range(warmup):
        iteration(model, images, labels, optimiser, generator)
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        iteration(model, images, labels, optimiser, generator)
    wall = time.perf_counter() - started
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in profiler.events():
        if event.name.startswith("pass::"):
            continue
        stage = _enclosing_pass(event)
        seconds[stage][phase_of(event.name)] += event.self_cpu_time_total / 1e6
    return {
        "wall_seconds": wall,
        "phases": {stage: dict(values) for stage, values in seconds.items()},
        "formulation": resolved_formulations(model, torch.device("cpu")),
    }


def _enclosing_pass(event) -> str:
    """``forward`` or ``backward``: the labelled pass an operator ran in (autograd's own operators, which run
    outside the forward label, count as backward)."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("pass::"):
            return parent.name.split("::")[1]
        parent = parent.cpu_parent
    return "backward"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--cell-rule", default="auto", choices=["auto", "gather", "folded", "dense"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, help="the record (default records/benchmarks/iteration_profile/)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arguments = {
        "channels": args.channels, "hidden_size": 128, "steps": args.steps, "fire_rate": 0.5, "downscale": 4,
        "precision": args.precision, "cell_rule": args.cell_rule,
    }  # fmt: skip
    result = profile_iteration(arguments, args.batch, args.size, args.warmup)
    for stage, values in result["phases"].items():
        listed = ", ".join(f"{phase} {seconds:.3f} s" for phase, seconds in sorted(values.items()))
        print(f"{stage}: {listed}")
    print(f"one iteration: {result['wall_seconds']:.3f} s (profiled; the profiler adds overhead)")
    machine = provenance.machine(args.threads)
    record = {
        "benchmark": "iteration_profile",
        "machine": machine,
        "commit": provenance.git_state(),
        "versions": provenance.package_versions(("torch",)),
        "date": time.strftime("%Y-%m-%d"),
        "arguments": arguments,
        "batch": args.batch,
        "size": args.size,
        **result,
    }
    limit = f" {provenance.isa_limit_name(machine)} kernels" if "isa_limit" in machine else ""
    label = f"{machine['cpu']}{limit} {args.precision} b{args.batch} s{args.steps}"
    print(save_benchmark_record(record, ROOT / "records", "iteration_profile", label, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
