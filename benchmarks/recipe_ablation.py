"""Med-NCA training-recipe ablation on real data: each option alone, at one training budget, several seeds.

Every variant in ``benchmarks/recipe_ablation.yaml`` is ``config/hippocampus_cpu.yaml``'s Med-NCA with the
file's ``base`` settings (the paper's recipe) and the variant's changes merged over them. Each (variant,
seed) runs through the workflow (``snakemake``): it trains on the train split and is scored on the
**validation** split only (the test split is never evaluated here), so its model, training log and
validation metrics are ordinary results under ``OUT/<variant>/``; a finished run is not run again. Runs go
one at a time (they would share the cores). Each finished run's record goes to
``RECORDS/<variant>/seed<N>.json`` (default ``records/recipe_ablation``), from which ``mednca records
render`` writes the ablation table of ``docs/results.md``.

    python benchmarks/recipe_ablation.py --data-dir DATA --out results/ablation
    python benchmarks/recipe_ablation.py --data-dir DATA --out results/ablation --variants paper,ema --seeds 0
    python benchmarks/recipe_ablation.py --out results/ablation --table-only   # the table of the records

``--spec FILE`` runs another set of variants the same way (records under ``records/<FILE's stem>``), e.g.
``benchmarks/time_to_accuracy.yaml``, whose runs write snapshots: each snapshot is then scored on the
validation split too, and the record keeps that validation learning curve (minutes of training against
validation Dice).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mednca.cli import load_config
from mednca.config import SCHEMA_PATH
from mednca.documents import ablation_table, load_records
from mednca.io import write_json
from mednca.records import config_hash, run_record

ROOT = Path(__file__).resolve().parent.parent
VARIANTS_FILE = Path(__file__).with_suffix(".yaml")
CONFIG_FILE = ROOT / "config" / "hippocampus_cpu.yaml"
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
        raise SystemExit(f"unknown variant '{name}'; the variants are {', '.join(spec['variants'])}")
    return merged(spec["base"], spec["variants"][name] or {})


def run_paths(out: Path, variant: str, seed: int) -> dict[str, Path]:
    """Where one run's overlay config, validation summary, training summary and manifest are."""
    folder = out / variant
    return {
        "folder": folder,
        "overlay": folder / f"overlay_seed{seed}.yaml",
        "summary": folder / "metrics" / DATASET / MODEL / f"seed{seed}" / "validation" / "summary.json",
        "training": folder / "models" / DATASET / MODEL / f"seed{seed}" / "training.json",
        "manifest": folder / "data" / DATASET / "manifest.csv",
        "curve": folder / "metrics" / DATASET / MODEL / f"seed{seed}" / "validation" / "learning_curve.csv",
    }


def run_variant(
    out: Path, data_dir: Path, overlay: dict, variant: str, seed: int, cores: int, curve: bool
) -> bool:
    """Train and evaluate one (variant, seed) with the config ``overlay``; False (and a line) if it failed."""
    paths = run_paths(out, variant, seed)
    paths["folder"].mkdir(parents=True, exist_ok=True)
    paths["overlay"].write_text(yaml.safe_dump({**overlay, "seeds": [seed]}, sort_keys=True))
    command = [
        sys.executable, "-m", "snakemake", "--cores", str(cores), "--directory", str(ROOT),
        "--configfile", str(CONFIG_FILE), str(paths["overlay"]),
        "--config", f"data_dir={data_dir}", f"results_dir={paths['folder']}", f"models=[{MODEL}]",
        "--", str(paths["summary"]), *([str(paths["curve"])] if curve else []),
    ]  # fmt: skip
    started = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {variant} seed {seed}: training, scoring on validation", flush=True)
    log = paths["folder"] / f"snakemake_seed{seed}.log"
    with log.open("w") as stream:
        finished = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, check=False)
    minutes = (time.perf_counter() - started) / 60
    if finished.returncode != 0:
        print(f"  failed after {minutes:.1f} min; see {log}", flush=True)
        return False
    print(f"  done in {minutes:.1f} min", flush=True)
    return True


def write_record(out: Path, records: Path, variant: str, seed: int, spec_file: Path) -> Path | None:
    """The record of a finished run (None if it has no validation summary yet), labelled with its variant."""
    paths = run_paths(out, variant, seed)
    if not paths["summary"].exists():
        return None
    config = load_config([str(CONFIG_FILE), str(paths["overlay"])], SCHEMA_PATH)
    record = run_record(
        dataset=DATASET,
        model=MODEL,
        seed=seed,
        training_json=paths["training"],
        manifest_csv=paths["manifest"],
        settings={"model": config["model_settings"][MODEL], "evaluation": config["evaluation"]},
        config_files=["config/hippocampus_cpu.yaml", f"benchmarks/{spec_file.name} ({variant})"],
        config_sha256=config_hash(config),
        validation_summary=paths["summary"],
        validation_curve_csv=paths["curve"] if paths["curve"].exists() else None,
        train_log_csv=paths["training"].with_name("train_log.csv"),
    )
    target = records / variant / f"seed{seed}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, {**record, "label": variant})
    return target


def print_table(records: Path) -> None:
    """The ablation table of the records under ``records`` (as docs/results.md shows it)."""
    found = load_records(records.parent) if records.exists() else []
    found = [record for record in found if record.collection == records.name]
    print("\n".join(ablation_table(found)) if found else f"no records under {records}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and the table")
    parser.add_argument("--data-dir", type=Path, help="folder holding Task04_Hippocampus")
    parser.add_argument("--variants", help="comma-separated variant names (default: all in the YAML file)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default 0,1)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--spec", type=Path, default=VARIANTS_FILE, help="the variants file (YAML)")
    parser.add_argument("--records", type=Path, help="folder for the runs' records (default records/<spec>)")
    parser.add_argument("--table-only", action="store_true", help="only tabulate the records")
    args = parser.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    records = args.records or ROOT / "records" / args.spec.stem
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
                if not run_paths(args.out, variant, seed)["summary"].exists():
                    data_dir = args.data_dir.resolve()
                    curve = (
                        overlays[variant]["model_settings"][MODEL]["training"].get("snapshot_every", 0) > 0
                    )
                    run_variant(args.out, data_dir, overlays[variant], variant, seed, args.cores, curve)
                write_record(args.out, records, variant, seed, args.spec)
    print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
