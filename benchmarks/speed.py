"""Speed and memory of the models at the hippocampus configuration, on the current device.

Times one training iteration (forward, backward, optimiser step; batch 48 of 64x64 slices) and one volume's
inference (40 slices of 64x64) for Med-NCA at 16 and 32 channels, the same Med-NCA with the original
(reference) cell rule, the CPU UNet and SegNet. The original rule segments a volume one slice at a time, its
fastest batch size on a CPU (a 40-slice batch of full-resolution states does not fit in the cache); the fast
rule segments all 40 slices in one batch. Each case runs in its own process so that its peak memory
(resident set size on a CPU, allocated memory on CUDA) is its own. Timings are medians over repeats after
warm-up. NCA figures are also given as cell updates per second and achieved GFLOP/s, next to the GFLOP/s of
a large fp32 matrix multiplication measured in the same run (the practical ceiling). For the fast rule, one
more run under the profiler gives the share of time spent in matrix multiplications and their own GFLOP/s:
the rest (gathers, scatters, random draws, Python) is what separates the rule from the matmul-bound limit.

With ``--original PATH`` (a clone of MECLabTUDA/M3D-NCA) it also times the original code's own
``BackboneNCA`` classes in the same two-level scheme (``benchmarks/m3dnca.py``), and every speed-up is
given against them too. The report names the CPU, its vector instruction sets (AVX2, AVX-512, AVX512-BF16,
AMX) and the fp32 (and, where the CPU has native bfloat16, bf16) matrix-multiplication ceilings.

    python benchmarks/speed.py                      # every case, table on stdout, JSON in results/
    python benchmarks/speed.py --cases nca16_train  # some cases
    python benchmarks/speed.py --original ../M3D-NCA  # with the original code's classes
    python benchmarks/speed.py --busy 2             # beside a CPU-bound process of 2 threads (shared cores)
    python benchmarks/speed.py --original ../M3D-NCA --record  # also commit a record (docs/performance.md)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import m3dnca
import torch
import torch.nn.functional as F

from mednca import provenance
from mednca.device import peak_memory_mb, resolve_device
from mednca.documents import save_benchmark_record
from mednca.models import build_model, count_parameters
from mednca.models.formulations import resolve_formulation
from mednca.models.reference import with_reference_rules

ROOT = Path(__file__).resolve().parent.parent
BATCH, SIZE, VOLUME_SLICES, STEPS, HIDDEN = 48, 64, 40, 64, 128
UNET = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}


@dataclass(frozen=True)
class Case:
    """One benchmark: a model, what is timed, and which implementation of the NCA runs it.

    ``implementation``: ``ours`` (the library), ``reference`` (the library's copy of the original rule,
    ``mednca.models.reference``) or ``original`` (the original code's classes, ``--original``).
    """

    model: str
    arguments: dict
    task: str
    implementation: str = "ours"
    slices_per_forward: int = VOLUME_SLICES
    batch: int = BATCH
    size: int = SIZE

    @property
    def reference(self) -> bool:
        """Whether every cell is computed (the original rule), not only the firing ones."""
        return self.implementation != "ours"


CASES = {
    "nca16_train": Case("med_nca", {"channels": 16}, "train"),
    "nca16_train_original": Case("med_nca", {"channels": 16}, "train", "reference"),
    "nca16_train_m3dnca": Case("med_nca", {"channels": 16}, "train", "original"),
    "nca16_train_checkpointed": Case("med_nca", {"channels": 16, "checkpoint_steps": 8}, "train"),
    "nca16_train_folded": Case("med_nca", {"channels": 16, "cell_rule": "folded"}, "train"),
    "nca16_train_bf16": Case("med_nca", {"channels": 16, "precision": "bf16"}, "train"),
    "nca16_train_dense": Case("med_nca", {"channels": 16, "cell_rule": "dense"}, "train"),
    "nca16_train_dense_bf16": Case(
        "med_nca", {"channels": 16, "cell_rule": "dense", "precision": "bf16"}, "train"
    ),
    "nca16_infer": Case("med_nca", {"channels": 16}, "infer"),
    "nca16_infer_bf16": Case("med_nca", {"channels": 16, "precision": "bf16"}, "infer"),
    "nca16_infer_dense": Case("med_nca", {"channels": 16, "cell_rule": "dense"}, "infer"),
    "nca16_infer_dense_bf16": Case(
        "med_nca", {"channels": 16, "cell_rule": "dense", "precision": "bf16"}, "infer"
    ),
    "nca16_infer_original": Case("med_nca", {"channels": 16}, "infer", "reference", slices_per_forward=1),
    "nca16_infer_m3dnca": Case("med_nca", {"channels": 16}, "infer", "original", slices_per_forward=1),
    "nca16_infer_m3dnca_batch": Case("med_nca", {"channels": 16}, "infer", "original"),
    "nca32_train": Case("med_nca", {"channels": 32}, "train"),
    "nca32_train_bf16": Case("med_nca", {"channels": 32, "precision": "bf16"}, "train"),
    "nca32_train_dense_bf16": Case(
        "med_nca", {"channels": 32, "cell_rule": "dense", "precision": "bf16"}, "train"
    ),
    "nca32_train_original": Case("med_nca", {"channels": 32}, "train", "reference"),
    "nca32_train_m3dnca": Case("med_nca", {"channels": 32}, "train", "original"),
    "nca32_infer": Case("med_nca", {"channels": 32}, "infer"),
    "nca32_infer_bf16": Case("med_nca", {"channels": 32, "precision": "bf16"}, "infer"),
    "nca32_infer_original": Case("med_nca", {"channels": 32}, "infer", "reference", slices_per_forward=1),
    "nca32_infer_m3dnca": Case("med_nca", {"channels": 32}, "infer", "original", slices_per_forward=1),
    "unet_train": Case("unet", UNET, "train"),
    "unet_infer": Case("unet", UNET, "infer"),
    "segnet_train": Case("segnet", {"base_channels": 64}, "train"),
    "segnet_infer": Case("segnet", {"base_channels": 64}, "infer"),
    # MRISeg's own figure: a batch of 10 slices of 240x240 with 3 channels in about 0.6 s on an Apple M2 Pro
    # (MPS), about 6x its CPU time.
    "segnet_train_mriseg": Case("segnet", {"base_channels": 64}, "train", batch=10, size=240),
}


def nca_flop_per_cell_step(
    channels: int, hidden: int = HIDDEN, fire_rate: float = 0.5, sparse: bool = True, folded: bool = False
) -> float:
    """FLOP of one cell update: two 3x3 perception convolutions, fc0 and fc1 (folded: one 9C -> hidden
    product and fc1); with ``sparse`` (the fast rule) only the firing cells are computed, the original
    rule computes every cell."""
    if folded:
        work = 2 * (9 * channels * hidden + hidden * channels)
    else:
        work = 2 * 2 * 9 * channels * channels + 2 * (3 * channels * hidden + hidden * channels)
    return work * (fire_rate if sparse else 1.0)


def nca_cell_steps(task: str, downscale: int = 4) -> int:
    """Cell updates of one training iteration (level 1 whole, level 2 one patch) or one volume's inference."""
    small = (SIZE // downscale) ** 2
    if task == "train":
        return BATCH * (small + small) * STEPS
    return VOLUME_SLICES * (small + SIZE * SIZE) * STEPS


#: Operators whose own time is matrix work: products, and the convolutions of the dense rule and the CNNs.
MATMUL_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::addmm_",
    "aten::bmm",
    "aten::linear",
    "aten::matmul",
    "aten::mkldnn_convolution",
    "aten::thnn_conv2d",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
    "aten::convolution_backward",
    "aten::cudnn_convolution",
}


def matmul_seconds(work: Callable[[], object]) -> tuple[float, float]:
    """(seconds in matrix multiplications, total seconds) of one run of ``work`` under the profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        work()
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    in_matmul = sum(event.self_cpu_time_total for event in events if event.key in MATMUL_OPS)
    return in_matmul / 1e6, total / 1e6


def synchronised(work: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``work`` followed by waiting for the device, so that a timing covers the kernels it queued (CUDA
    runs them asynchronously; on a CPU this is ``work`` itself)."""
    if device.type != "cuda":
        return work

    def run() -> None:
        work()
        torch.cuda.synchronize(device)

    return run


def median_seconds(work: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``work`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def matmul_gflops(
    device: torch.device,
    shape: tuple[int, int, int] = (2048, 2048, 2048),
    dtype: torch.dtype = torch.float32,
    repeats: int = 10,
) -> float:
    """GFLOP/s of an (M, K) @ (K, N) matrix multiplication, from its fastest repeat: the ceiling is what the
    hardware can do, and on a shared machine the median also measures the neighbours."""
    rows, inner, columns = shape
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.rand((rows, inner), generator=generator, device=device).to(dtype)
    b = torch.rand((inner, columns), generator=generator, device=device).to(dtype)
    product = synchronised(lambda: torch.mm(a, b), device)
    product()  # warm-up
    seconds = min(median_seconds(product, 1, warmup=0) for _ in range(repeats))
    return 2 * rows * inner * columns / seconds / 1e9


CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description() -> dict:
    """The CPU's model name and which of the vector instruction sets that matter here it has."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {
        "cpu": model,
        "cpu_features": [feature for feature in CPU_FEATURES if feature in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
    }


#: The fast rule's widest product (a chunk of 4096 cells, 9 neighbours of 16 channels, 128 hidden units)
#: and its narrowest (the same chunk's 16 output channels).
RULE_SHAPES = {"wide": (4096, 144, 128), "narrow": (4096, 128, 16)}


def ceilings(device: torch.device, native_bf16: bool) -> dict:
    """fp32 (and, with native bf16, bf16) GFLOP/s of a large square product and of the rule's shapes."""
    dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if native_bf16 else {})
    shapes = {"square_2048": (2048, 2048, 2048), **RULE_SHAPES}
    return {
        f"{name}_{label}": matmul_gflops(device, shape, dtype)
        for label, dtype in dtypes.items()
        for name, shape in shapes.items()
    }


def _inputs(case: Case, device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random training images and labels, or a volume to segment, for a case."""
    in_channels = 3 if case.model == "segnet" else 1
    if case.task == "train":
        size = (case.batch, in_channels, case.size, case.size)
        images = torch.rand(size, generator=generator, device=device)
        return images, (images[:, :1] > 0.5).float()
    size = (VOLUME_SLICES, in_channels, case.size, case.size)
    return (torch.rand(size, generator=generator, device=device),)


def original_work(case: Case, device: torch.device, checkout: Path | None) -> tuple[Callable[[], None], int]:
    """The original code's closure for a case and its parameter count."""
    if checkout is None:
        raise SystemExit(f"case needs --original PATH (a clone of MECLabTUDA/M3D-NCA): {case}")
    torch.manual_seed(0)  # the original draws its fire masks from the global generator
    inputs = _inputs(case, device, torch.Generator(device=device).manual_seed(0))
    channels = case.arguments["channels"]
    if case.task == "train":
        work, parameters = m3dnca.training_work(checkout, channels, *inputs, STEPS)
    else:
        work, parameters = m3dnca.inference_work(checkout, channels, *inputs, STEPS, case.slices_per_forward)
    return work, sum(parameter.numel() for parameter in parameters)


def library_work(case: Case, device: torch.device) -> tuple[Callable[[], None], int]:
    """The library's closure for a case (a training iteration or a volume's inference), its parameters."""
    in_channels = 3 if case.model == "segnet" else 1
    model = build_model(case.model, in_channels=in_channels, **case.arguments).to(device)
    if case.implementation == "reference":
        model = with_reference_rules(model)
    generator = torch.Generator(device=device).manual_seed(0)
    inputs = _inputs(case, device, generator)
    if case.task == "train":
        images, labels = inputs
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

        def work() -> None:
            logits, targets = model.training_forward(images, labels, generator)
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()

        model.train()
    else:
        (volume,) = inputs

        @torch.no_grad()
        def work() -> None:
            for start in range(0, VOLUME_SLICES, case.slices_per_forward):
                model(volume[start : start + case.slices_per_forward], generator)

        model.eval()
    return work, count_parameters(model)


def run_case(name: str, device: torch.device, repeats: int, checkout: Path | None = None) -> dict:
    """Time one case in this process and return its measurements."""
    case = CASES[name]
    if case.implementation == "original":
        work, parameters = original_work(case, device, checkout)
    else:
        work, parameters = library_work(case, device)
    work = synchronised(work, device)
    seconds = median_seconds(work, repeats, warmup=1)
    result = {
        "case": name,
        **asdict(case),
        "parameters": parameters,
        "seconds": seconds,
        "peak_memory_mb": peak_memory_mb(device),
    }
    if case.model == "med_nca":
        cell_steps = nca_cell_steps(case.task)
        backward = 3 if case.task == "train" else 1
        formulation = resolve_formulation(
            case.arguments.get("cell_rule", "auto"),
            case.arguments.get("precision", "fp32"),
            device,
            training=case.task == "train",
        )
        rule, dtype = formulation.name, formulation.dtype
        result["cell_rule"] = "original" if case.reference else rule
        folded = not case.reference and rule == "folded"
        per_cell = nca_flop_per_cell_step(
            case.arguments["channels"], sparse=not case.reference and rule != "dense", folded=folded
        )
        flop = cell_steps * per_cell * backward
        result["compute"] = "bf16" if dtype == torch.bfloat16 else "fp32"
        result |= {
            "cell_updates_per_second": cell_steps / seconds,
            "gflop": flop / 1e9,
            "gflops": flop / seconds / 1e9,
        }
        if not case.reference and device.type == "cpu":  # the CPU profiler sees only host time on a GPU
            in_matmul, profiled = matmul_seconds(work)
            if in_matmul > 0:
                result |= {"matmul_share": in_matmul / profiled, "matmul_gflops": flop / in_matmul / 1e9}
    return result


COMPETITOR = (
    "import sys, torch\n"
    "torch.set_num_threads(int(sys.argv[1]))\n"
    "a = torch.rand((1024, 1024))\n"
    "while True:\n"
    "    a @ a\n"
)


@contextlib.contextmanager
def competitor(threads: int) -> Iterator[subprocess.Popen | None]:
    """Run a CPU-bound process of ``threads`` threads (matrix products) beside the block and yield it;
    0 = none (yields None)."""
    if threads <= 0:
        yield None
        return
    process = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(threads)])
    try:
        time.sleep(1.0)  # let it start computing
        yield process
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="results/benchmarks/speed.json")
    parser.add_argument(
        "--original", type=Path, help="a clone of MECLabTUDA/M3D-NCA: also time the original code's classes"
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="THREADS",
        help="time every case beside a CPU-bound process of THREADS threads, as on a shared machine",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="also write the measurements as a record under records/benchmarks/speed/ (docs/performance.md)",
    )
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.single:
        print(json.dumps(run_case(args.single, device, args.repeats, args.original)))
        return
    names = [
        name for name in args.cases if args.original is not None or CASES[name].implementation != "original"
    ]
    if len(names) < len(args.cases):
        print("no --original given: the original code's cases (*_m3dnca) are left out", file=sys.stderr)
    rows = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        command = [
            sys.executable,
            __file__,
            "--single",
            name,
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
            *(["--original", str(args.original)] if args.original is not None else []),
        ]
        with competitor(args.busy):
            finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            lines = finished.stderr.strip().splitlines() or ["no output"]
            raise SystemExit(f"benchmark case {name} failed: {lines[-1]}")
        rows.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    cpu = cpu_description()
    peaks = ceilings(device, cpu["native_bf16"] and device.type == "cpu")
    ceiling = peaks["square_2048_fp32"]
    report = {
        **cpu,
        "ceilings_gflops": peaks,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "competing_threads": args.busy,
        "device": str(device),
        **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        "matmul_gflops": ceiling,
        "cases": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    if args.record:
        machine = provenance.machine(torch.get_num_threads())
        record = {
            "benchmark": "speed",
            "machine": machine,
            "commit": provenance.git_state(),
            "date": time.strftime("%Y-%m-%d"),
            "steps": STEPS,
            **report,
        }
        label = f"{machine['cpu']} {machine['threads']} threads" + (f" busy {args.busy}" if args.busy else "")
        print(f"record: {save_benchmark_record(record, ROOT / 'records', 'speed', label)}")
    print(f"{cpu['cpu']} ({', '.join(cpu['cpu_features'])}; PyTorch {cpu['torch_cpu_capability']})")
    beside = f", beside a CPU-bound process of {args.busy} threads" if args.busy else ""
    print(f"device {device}, {torch.get_num_threads()} threads{beside}; matmul GFLOP/s (fastest of 10):")
    print("  " + ", ".join(f"{name} {value:.0f}" for name, value in peaks.items()))
    print(
        f"{'case':26} {'params':>10} {'seconds':>9} {'peak MB':>8} {'Mcell/s':>8} {'GFLOP/s':>8} {'%':>5}"
        f" {'in matmul':>9} {'its GFLOP/s':>11}"
    )
    for row in rows:
        cells = row.get("cell_updates_per_second")
        gflops = row.get("gflops")
        share, matmul_rate = row.get("matmul_share"), row.get("matmul_gflops")
        # the share of the ceiling of the dtype the products ran in (bf16 where there is one)
        limit = peaks.get(f"square_2048_{row.get('compute', 'fp32')}", ceiling)
        print(
            f"{row['case']:26} {row['parameters']:>10,} {row['seconds']:>9.3f} {row['peak_memory_mb']:>8.0f} "
            + (f"{cells / 1e6:>8.1f} {gflops:>8.1f} {100 * gflops / limit:>4.0f}%" if cells else "")
            + (f" {100 * share:>8.0f}% {matmul_rate:>11.1f}" if share else "")
        )
    for row in (row for row in rows if row["implementation"] == "ours" and row["model"] == "med_nca"):
        for implementation, what in (("reference", "the reference rule"), ("original", "the original code")):
            others = [
                other
                for other in rows
                if other["implementation"] == implementation
                and (other["task"], other["arguments"]["channels"])
                == (row["task"], row["arguments"]["channels"])
            ]
            if others:
                fastest = min(others, key=lambda other: other["seconds"])
                print(f"{row['case']}: {fastest['seconds'] / row['seconds']:.1f}x the speed of {what}")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
