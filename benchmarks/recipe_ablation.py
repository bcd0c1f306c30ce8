"""Med-NCA training-recipe ablation on real data: each option alone, at one training budget, several seeds.

Every variant in ``benchmarks/recipe_ablation.yaml`` is ``config/hippocampus_cpu.yaml``'s Med-NCA with the
file's ``base`` settings (the paper's recipe) and the variant's changes merged over them. Each (variant,
seed) runs through the workflow (``snakemake``), so its model, training log and test metrics are ordinary
results under ``OUT/<variant>/``; a finished run is not run again. Runs go one at a time (they would share
the cores). The table, one row per run plus one per variant (mean and spread over seeds, difference to
``paper``), goes to ``OUT/ablation.csv`` and ``OUT/ablation.md``.

    python benchmarks/recipe_ablation.py --data-dir DATA --out results/ablation
    python benchmarks/recipe_ablation.py --data-dir DATA --out results/ablation --variants paper,ema --seeds 0
    python benchmarks/recipe_ablation.py --out results/ablation --table-only   # the table of finished runs
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from mednca.report.tables import ablation_summary

ROOT = Path(__file__).resolve().parent.parent
VARIANTS_FILE = Path(__file__).with_suffix(".yaml")
DATASET, MODEL = "hippocampus", "med_nca"


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, nested mappings key by key."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def variant_settings(spec: dict, name: str) -> dict:
    """The Med-NCA settings block (architecture, training) of one variant."""
    if name not in spec["variants"]:
        raise SystemExit(f"unknown variant '{name}'; {VARIANTS_FILE.name} has {', '.join(spec['variants'])}")
    return merged(spec["base"], spec["variants"][name] or {})


def run_paths(out: Path, variant: str, seed: int) -> dict[str, Path]:
    """Where one run's overlay config and test summary (with its training facts) are."""
    folder = out / variant
    return {
        "folder": folder,
        "overlay": folder / f"overlay_seed{seed}.yaml",
        "summary": folder / "metrics" / DATASET / MODEL / f"seed{seed}" / "summary.json",
    }


def run_variant(out: Path, data_dir: Path, overlay: dict, variant: str, seed: int, cores: int) -> bool:
    """Train and evaluate one (variant, seed) with the config ``overlay``; False (and a line) if it failed."""
    paths = run_paths(out, variant, seed)
    paths["folder"].mkdir(parents=True, exist_ok=True)
    paths["overlay"].write_text(yaml.safe_dump({**overlay, "seeds": [seed]}, sort_keys=True))
    command = [
        sys.executable, "-m", "snakemake", "--cores", str(cores), "--directory", str(ROOT),
        "--configfile", str(ROOT / "config" / "hippocampus_cpu.yaml"), str(paths["overlay"]),
        "--config", f"data_dir={data_dir}", f"results_dir={paths['folder']}", f"models=[{MODEL}]",
        "--", str(paths["summary"]),
    ]  # fmt: skip
    started = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {variant} seed {seed}: training and evaluating", flush=True)
    log = paths["folder"] / f"snakemake_seed{seed}.log"
    with log.open("w") as stream:
        finished = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=False)
    minutes = (time.perf_counter() - started) / 60
    if finished.returncode != 0:
        print(f"  failed after {minutes:.1f} min; see {log}", flush=True)
        return False
    print(f"  done in {minutes:.1f} min", flush=True)
    return True


def run_row(out: Path, variant: str, seed: int) -> dict | None:
    """The table row of a finished run (None if it has no test summary yet)."""
    paths = run_paths(out, variant, seed)
    if not paths["summary"].exists():
        return None
    summary = json.loads(paths["summary"].read_text())
    return {
        "variant": variant,
        "seed": seed,
        "epochs": summary["epochs"],
        "iterations": summary.get("iterations"),
        "train_minutes": summary["train_seconds"] / 60,
        "dice_mean": summary["dice_mean"],
        "dice_std": summary["dice_std"],
        "hd95_mean": summary["hd95_mean"],
    }


def markdown(table: pd.DataFrame) -> str:
    """The per-variant table as Markdown."""
    lines = [
        "| variant | seeds | epochs | training (min) | test Dice (mean over seeds) | seeds' range "
        "| HD95 (mm) | vs paper recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.variant} | {row.seeds} | {row.epochs} | {row.train_minutes:.1f} | {row.dice:.3f} | "
            f"{row.dice_seed_min:.3f}-{row.dice_seed_max:.3f} | {row.hd95:.2f} "
            f"| {row.dice_vs_reference:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(out: Path, variants: list[str], seeds: list[int]) -> pd.DataFrame | None:
    """Write ``ablation.csv`` (one row per run) and ``ablation.md`` (per variant); None if none finished."""
    rows = [row for variant in variants for seed in seeds if (row := run_row(out, variant, seed))]
    if not rows:
        print(f"no finished runs under {out}")
        return None
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "ablation.csv", index=False)
    table = ablation_summary(frame)
    (out / "ablation.md").write_text(markdown(table))
    print(markdown(table))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and the table")
    parser.add_argument("--data-dir", type=Path, help="folder holding Task04_Hippocampus")
    parser.add_argument("--variants", help="comma-separated variant names (default: all in the YAML file)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default 0,1)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--table-only", action="store_true", help="only tabulate the finished runs")
    args = parser.parse_args()
    spec = yaml.safe_load(VARIANTS_FILE.read_text())
    variants = args.variants.split(",") if args.variants else list(spec["variants"])
    seeds = [int(seed) for seed in args.seeds.split(",")]
    overlays = {
        name: {"evaluation": spec["evaluation"], "model_settings": {MODEL: variant_settings(spec, name)}}
        for name in variants
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        if args.data_dir is None:
            parser.error("--data-dir is required unless --table-only")
        for seed in seeds:  # all variants of one seed first, so a partial ablation is balanced
            for variant in variants:
                if run_row(args.out, variant, seed) is None:
                    data_dir = args.data_dir.resolve()
                    run_variant(args.out, data_dir, overlays[variant], variant, seed, args.cores)
    write_tables(args.out, variants, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
