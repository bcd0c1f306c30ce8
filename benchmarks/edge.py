"""Edge profile: Med-NCA inference latency and peak memory of a fresh process, at 1 and 2 threads.

The paper's claim is a model small enough for a Raspberry Pi (OctreeNCA measured Med-NCA at 4.4 s per 320x320
image on one). Each (runtime, workload, threads) runs in a fresh process that imports its runtime, loads the
model, runs one warm-up and ``--repeats`` timed inferences, and reports the median and 90th percentile of
the latency and its peak resident set size (what the process needed, imports included).

- runtimes: ``pytorch`` (the library's model file, as ``mednca predict`` runs it), ``onnxruntime`` (the model
  exported by ``mednca export``, run by ONNX Runtime with NumPy only: no PyTorch in the process; the fire-mask
  noise is drawn with NumPy) and, given a clone of MECLabTUDA/M3D-NCA with ``--original``, ``original``
  (that code's own ``BackboneNCA`` classes in the original two-level scheme, ``benchmarks/m3dnca.py``, with
  the same architecture and untrained weights: the cost of inference does not depend on the weights).
- workloads: ``volume``, one hippocampus volume (``--volume``) preprocessed as the model's preprocessing makes
  it (its slices in batches of ``--batch``, default 8, one stochastic run: ``mednca predict --runs 1``), and
  ``slice320``, one 320x320 slice (the prostate size of the paper).

A latency is one inference of the network including its fire-mask draws and the sigmoid; preprocessing
(reading and resizing the volume, milliseconds) is done once before. The record (CPU, commit, versions, each
row) goes to ``records/benchmarks/edge/<cpu>.json``; ``mednca records render`` puts its table into
``docs/performance.md``.

    python benchmarks/edge.py --volume DATA/Task04_Hippocampus/imagesTr/hippocampus_001.nii.gz
    python benchmarks/edge.py --volume CASE.nii.gz --model MODEL.pt --original ../M3D-NCA --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("pytorch", "onnxruntime", "original")
WORKLOADS = ("volume", "slice320")
SLICE_SIDE = 320
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB: ``VmHWM`` of its memory map, which starts afresh at
    ``exec`` (``getrusage``'s maximum keeps the forking parent's, which would count the benchmark's own)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    unit = 1024**2 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit


def _timed(work, repeats: int) -> list[float]:
    """One warm-up, then ``repeats`` timings of ``work()`` in seconds."""
    work()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return seconds


def pytorch_work(folder: Path, workload: str, threads: int, batch: int):
    """The library's model file, run as ``mednca predict`` runs it (one stochastic run, ``batch`` slices
    per forward pass)."""
    import torch

    from mednca.evaluate.inference import predict_slices
    from mednca.train.checkpoint import load_model

    torch.set_num_threads(threads)
    model, _ = load_model(folder / "model.pt")
    images = np.load(folder / f"{workload}.npy")
    generator = torch.Generator().manual_seed(0)
    return lambda: predict_slices(model, images, torch.device("cpu"), generator, 1, batch)


def onnxruntime_work(folder: Path, workload: str, threads: int, batch: int):
    """The exported graph in ONNX Runtime, ``batch`` slices per run, its noise drawn with NumPy; no PyTorch
    is imported."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(
        str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["mednca"])
    steps, downscale = metadata["arguments"]["steps"], metadata["arguments"]["downscale"]
    images = np.load(folder / f"{workload}.npy")
    _, _, height, width = images.shape
    rng = np.random.default_rng(0)

    def noise(count: int) -> dict[str, np.ndarray]:
        shapes = {
            "noise1": (steps, count, 1, height // downscale, width // downscale),
            "noise2": (steps, count, 1, height, width),
        }
        return {name: rng.random(shape, dtype=np.float32) for name, shape in shapes.items()}

    def work() -> list[np.ndarray]:
        outputs = []
        for start in range(0, len(images), batch):
            part = images[start : start + batch]
            logits = session.run(["logits"], {"images": part} | noise(len(part)))[0]
            outputs.append(1 / (1 + np.exp(-logits)))
        return outputs

    return work


def original_work(folder: Path, workload: str, threads: int, batch: int, checkout: Path):
    """The original code's classes, same architecture, ``batch`` slices per forward pass."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import m3dnca

    torch.set_num_threads(threads)
    arguments = json.loads((folder / "arguments.json").read_text())
    images = torch.from_numpy(np.load(folder / f"{workload}.npy"))
    work, _ = m3dnca.inference_work(checkout, arguments["channels"], images, arguments["steps"], batch)
    return work


def worker(
    runtime: str, workload: str, threads: int, folder: Path, repeats: int, batch: int, checkout: Path | None
) -> dict:
    """One measurement in this (fresh) process."""
    if runtime == "pytorch":
        work = pytorch_work(folder, workload, threads, batch)
    elif runtime == "onnxruntime":
        work = onnxruntime_work(folder, workload, threads, batch)
    else:
        work = original_work(folder, workload, threads, batch, checkout)
    seconds = _timed(work, repeats)
    return {
        "runtime": runtime,
        "workload": workload,
        "threads": threads,
        "repeats": repeats,
        "batch": batch,
        "median_s": float(np.median(seconds)),
        "p90_s": float(np.percentile(seconds, 90)),
        "peak_rss_mb": peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def prepare(folder: Path, model: str, volume: Path) -> dict:
    """Write the model file, its ONNX export, its arguments and the two workloads' inputs into ``folder``."""
    import nibabel as nib
    import torch

    from mednca.evaluate.inference import prepare_slices
    from mednca.evaluate.predict import read_input_channels
    from mednca.export import export_model
    from mednca.models import count_parameters
    from mednca.shipped import resolve_model
    from mednca.train.checkpoint import load, load_model, save

    model_file = resolve_model(model)
    save(folder / "model.pt", load(model_file))
    network, payload = load_model(model_file)
    export_model(model_file, folder / "model.onnx", "onnx")
    (folder / "arguments.json").write_text(json.dumps(payload["arguments"]))
    preprocessing = payload["preprocessing"]
    image, affine = read_input_channels([volume], preprocessing)
    slices, _ = prepare_slices(image, affine, preprocessing)
    np.save(folder / "volume.npy", np.ascontiguousarray(slices, dtype=np.float32))
    generator = torch.Generator().manual_seed(0)
    side = torch.rand((1, network.in_channels, SLICE_SIDE, SLICE_SIDE), generator=generator)
    np.save(folder / "slice320.npy", side.numpy())
    return {
        "model": str(model),
        "architecture": payload["model"],
        "arguments": payload["arguments"],
        "parameters": count_parameters(network),
        "model_bytes": model_file.stat().st_size,
        "onnx_bytes": (folder / "model.onnx").stat().st_size,
        "volume": {"file": volume.name, "shape": list(nib.load(volume).shape), "slices": list(slices.shape)},
        "slice320": [1, network.in_channels, SLICE_SIDE, SLICE_SIDE],
    }


def measure(args: argparse.Namespace, folder: Path, runtime: str, workload: str, threads: int) -> dict:
    """Run one measurement in a fresh process with ``threads`` threads everywhere."""
    command = [sys.executable, __file__, "--worker", runtime, workload, str(threads), str(folder)]
    command += ["--repeats", str(args.repeats), "--batch", str(args.batch)]
    command += ["--original", str(args.original)] if args.original else []
    environment = os.environ | dict.fromkeys(THREAD_VARIABLES, str(threads))
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"{runtime} {workload} at {threads} thread(s) failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hippocampus", help="model file or shipped model name")
    parser.add_argument("--volume", type=Path, help="a hippocampus volume (NIfTI) for the volume workload")
    parser.add_argument("--original", type=Path, help="a clone of MECLabTUDA/M3D-NCA: also time its classes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument(
        "--batch", type=int, default=8, help="slices per forward pass (default 8: memory of a small device)"
    )
    parser.add_argument(
        "--out", type=Path, help="the record's file (default records/benchmarks/edge/<cpu>.json)"
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("RUNTIME", "WORKLOAD", "THREADS", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        runtime, workload, threads, folder = args.worker
        result = worker(
            runtime, workload, int(threads), Path(folder), args.repeats, args.batch, args.original
        )
        print(json.dumps(result))
        return 0
    if args.volume is None:
        parser.error("--volume is required")
    from mednca import provenance
    from mednca.documents import save_benchmark_record

    runtimes = [runtime for runtime in RUNTIMES if runtime != "original" or args.original]
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        facts = prepare(folder, args.model, args.volume)
        for workload in WORKLOADS:
            for runtime in runtimes:
                for threads in [int(count) for count in args.threads.split(",")]:
                    row = measure(args, folder, runtime, workload, threads)
                    print(
                        f"{workload:9} {runtime:12} {threads} thread(s): median {row['median_s']:.3f} s, "
                        f"p90 {row['p90_s']:.3f} s, peak {row['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
                    rows.append(row)
    machine = provenance.machine(2)
    record = {
        "benchmark": "edge",
        "machine": machine,
        "commit": provenance.git_state(),
        "versions": provenance.package_versions((*provenance.PACKAGES, "onnxruntime")),
        "date": time.strftime("%Y-%m-%d"),
        **facts,
        "rows": rows,
    }
    print(save_benchmark_record(record, ROOT / "records", "edge", str(machine["cpu"]), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
