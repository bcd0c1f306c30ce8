"""Run records, model cards, the documents rendered from committed records, and the code each rule runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from mednca import documents
from mednca.cli import main
from mednca.dependencies import library_files
from mednca.errors import DataError
from mednca.records import config_hash, model_card, run_record

PACKAGE = ROOT / "src" / "mednca"


def _names(files: list[str]) -> set[str]:
    return {Path(file).relative_to(PACKAGE).as_posix() for file in files}


def test_a_model_job_depends_on_its_own_architecture_only() -> None:
    unet = _names(library_files(ROOT / "scripts" / "train_model.py", "unet"))
    nca = _names(library_files(ROOT / "scripts" / "train_model.py", "med_nca"))
    assert {"models/unet.py", "train/loop.py", "train/checkpoint.py", "models/registry.py"} <= unet
    assert not {"models/nca.py", "models/cells.py", "models/segnet.py"} & unet
    assert {"models/nca.py", "models/cells.py", "models/dense.py"} <= nca
    assert not {"models/unet.py", "models/segnet.py"} & nca
    fine_tuned = _names(library_files(ROOT / "scripts" / "evaluate_model.py", "segnet_from_brats"))
    assert "models/segnet.py" in fine_tuned and "models/unet.py" not in fine_tuned


def test_data_and_report_jobs_follow_their_imports() -> None:
    data = _names(library_files(ROOT / "scripts" / "preprocess_dataset.py"))
    assert {"data/preprocess.py", "data/stages.py", "io.py", "__init__.py"} <= data
    assert not any(name.startswith(("models/", "train/")) for name in data)
    report = _names(library_files(ROOT / "scripts" / "build_report.py"))
    assert "report/findings.py" in report and "report/statistics.py" in report


def test_every_model_module_defines_that_model() -> None:
    from mednca.models.registry import MODELS
    from mednca.names import MODEL_MODULES

    assert set(MODEL_MODULES) == set(MODELS)
    for name, model_class in MODELS.items():
        assert model_class.__module__ in MODEL_MODULES[name]


def test_the_config_hash_ignores_where_and_how_a_run_is_computed() -> None:
    config = {"datasets": ["d"], "model_settings": {"unet": {"training": {"lr": 1e-3}}}, "data_dir": "a"}
    assert config_hash(config) == config_hash({**config, "data_dir": "b", "device": "cuda"})
    changed = {**config, "model_settings": {"unet": {"training": {"lr": 2e-3}}}}
    assert config_hash(config) != config_hash(changed)


@pytest.fixture
def run_files(tmp_path: Path) -> dict[str, Path]:
    """The result files of one run, as the workflow writes them."""
    training = {
        "model": "med_nca", "parameters": 25920, "epochs": 3, "iterations": 30, "train_seconds": 120.0,
        "peak_memory_mb": 900.0, "final_loss": 0.3, "commit": "abc123", "train_cases_sha256": "ff",
        "machine": {"cpu": "Test CPU", "isa": ["avx2"], "cpus": 2, "threads": 2},
        "versions": {"python": "3.11", "torch": "2.13.0"},
    }  # fmt: skip
    summary = {
        "cases": 3,
        "dice_mean": 0.8,
        "dice_std": 0.05,
        "hd95_mean": 2.0,
        "hd95_std": 0.5,
        "nqm_mean": 0.1,
    }
    files = {
        "training": tmp_path / "training.json",
        "test": tmp_path / "summary.json",
        "validation": tmp_path / "validation.json",
        "manifest": tmp_path / "manifest.csv",
    }
    files["training"].write_text(json.dumps(training))
    files["test"].write_text(json.dumps(summary))
    files["validation"].write_text(json.dumps({**summary, "cases": 2, "dice_mean": 0.75}))
    splits = ["train"] * 5 + ["validation"] * 2 + ["test"] * 3
    pd.DataFrame({"case_id": [f"c{i}" for i in range(10)], "split": splits}).to_csv(
        files["manifest"], index=False
    )
    return files


def _arguments(files: dict[str, Path]) -> dict:
    return dict(
        dataset="phantom", model="med_nca", seed=0, training_json=files["training"],
        manifest_csv=files["manifest"], settings={"model": {"training": {"epochs": 3}}},
        config_files=["config/demo.yaml"], config_sha256="0123", test_summary=files["test"],
        validation_summary=files["validation"],
    )  # fmt: skip


def _record(files: dict[str, Path]) -> dict:
    return run_record(**_arguments(files))


def test_a_record_holds_split_code_machine_and_both_splits_metrics(run_files: dict[str, Path]) -> None:
    record = _record(run_files)
    assert "epoch_seconds_median" not in record["training"]
    log = run_files["training"].with_name("train_log.csv")
    pd.DataFrame({"epoch": [1, 2, 3], "seconds": [10.0, 900.0, 12.0]}).to_csv(log, index=False)
    timed = run_record(**{**_arguments(run_files), "train_log_csv": log})
    assert timed["training"]["epoch_seconds_median"] == 12.0  # a paused epoch does not move the median
    assert timed["training"]["epoch_seconds_min"] == 10.0
    assert {name: facts["cases"] for name, facts in record["split"].items()} == {
        "train": 5, "validation": 2, "test": 3,
    }  # fmt: skip
    assert all(len(facts["sha256"]) == 16 for facts in record["split"].values())
    assert record["code"]["training"] == "abc123" and record["machine"]["cpu"] == "Test CPU"
    assert record["metrics"]["validation"]["dice_mean"] == 0.75 and record["metrics"]["test"]["cases"] == 3
    card = model_card(record)
    for text in ("Med-NCA on phantom (seed 0)", "| validation | 2 | 0.750", "| test | 3 | 0.800", "Test CPU"):
        assert text in card
    assert "one empty: the volume's diagonal in mm" in card


def _commit_records(root: Path, files: dict[str, Path]) -> None:
    record = _record(files)
    target = root / "records" / "demo" / "phantom" / "med_nca" / "seed0.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(record))
    for variant, dice in (("paper", 0.70), ("ema", 0.78)):
        ablation = {
            **record,
            "label": variant,
            "metrics": {"validation": {**record["metrics"]["validation"]}},
        }
        ablation["metrics"]["validation"]["dice_mean"] = dice
        path = root / "records" / "recipe_ablation" / variant / "seed0.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(ablation))
    (root / "README.md").write_text(f"# x\n\n{documents.TABLE_START}\nold\n{documents.TABLE_END}\n\nend\n")
    (root / "docs").mkdir()
    markers = (
        documents.EDGE_START, documents.EDGE_END, documents.PROFILE_START, documents.PROFILE_END,
        documents.SPEED_START, documents.SPEED_END,
    )  # fmt: skip
    (root / "docs" / "performance.md").write_text("# p\n" + "\n".join(markers) + "\n")
    edge = root / "records" / "benchmarks" / "edge" / "test-cpu.json"
    edge.parent.mkdir(parents=True)
    rows = [
        {"workload": "volume", "runtime": runtime, "threads": 1, "repeats": 5, "median_s": seconds,
         "p90_s": seconds * 1.1, "peak_rss_mb": memory, "torch_imported": runtime == "pytorch"}
        for runtime, seconds, memory in (("pytorch", 0.8, 420.0), ("onnxruntime", 1.2, 95.0))
    ]  # fmt: skip
    edge.write_text(
        json.dumps(
            {
                "machine": {"cpu": "Test CPU", "isa": ["avx2"], "cpus": 2, "threads": 2},
                "date": "2026-12-07", "commit": "abcdef1234567",
                "versions": {"torch": "2", "onnxruntime": "1"}, "model": "hippocampus", "parameters": 25920,
                "model_bytes": 110000, "onnx_bytes": 120000, "rows": rows,
                "volume": {"file": "h.nii.gz", "shape": [35, 51, 35], "slices": [35, 1, 64, 64]},
            }
        )
    )  # fmt: skip


def test_documents_are_rendered_from_the_records(run_files: dict[str, Path], tmp_path: Path) -> None:
    _commit_records(tmp_path, run_files)
    rendered = documents.render_documents(tmp_path)
    results, readme = rendered[documents.RESULTS_DOC], rendered[documents.README]
    assert "| phantom | Med-NCA | 0 | 25,920 | 2.0 min, 3 epochs |" in results
    assert "0.750 ± 0.050 (2)" in results and "0.800 ± 0.050 (3)" in results
    assert "Highest mean Dice: ema (0.780); no other variant's range of seeds reaches it." in results
    assert "| ema | 1 | 3 |" in results
    assert "| demo | Med-NCA | 25,920 | 0.750 ± 0.050 (2) | 0.800 ± 0.050 (3) |" in readme
    assert readme.startswith("# x\n") and readme.endswith("\n\nend\n") and "old" not in readme
    performance = rendered[documents.PERFORMANCE_DOC]
    assert "| volume | onnxruntime | 1 | 1.200 | 1.320 | 95 | no |" in performance
    assert "at one thread: met (pytorch, median 0.800 s)" in performance
    assert "for a volume with ONNX Runtime: met (largest peak 95 MB)" in performance
    assert documents.stale_documents(tmp_path) == [
        documents.RESULTS_DOC, documents.README, documents.PERFORMANCE_DOC
    ]  # fmt: skip
    assert main(["records", "render", "--root", str(tmp_path)]) == 0
    assert documents.stale_documents(tmp_path) == []
    assert main(["records", "check", "--root", str(tmp_path)]) == 0


def test_collect_copies_a_results_folders_records(run_files: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "results" / "records" / "phantom" / "unet" / "seed0.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(_record(run_files)))
    study = pd.DataFrame(
        {
            "dataset": "phantom", "model": ["unet", "unet", "unet"], "cases": ["2", "2", "all"],
            "train_cases": [2, 2, 5], "seed": [0, 1, 0], "iterations": 4, "batch_size": 16,
            "train_seconds": 6.0, "test_cases": 3, "dice_mean": [0.5, 0.7, 0.8], "dice_std": 0.1,
            "hd95_mean": 2.0, "hd95_std": 0.5,
        }
    )  # fmt: skip
    (tmp_path / "results" / "efficiency").mkdir()
    study.to_csv(tmp_path / "results" / "efficiency" / "data_efficiency.csv", index=False)
    written = documents.collect_records(tmp_path / "results", "demo_run", tmp_path / "records")
    assert written == [
        tmp_path / "records" / "demo_run" / "phantom" / "unet" / "seed0.json",
        tmp_path / "records" / "demo_run" / "data_efficiency.csv",
    ]
    results = documents.render_results(documents.load_records(tmp_path / "records"))
    assert (
        "### Data efficiency (test split" in results
        and "| UNet | 2 | 2 | 2 | 4 | 0.1 | 0.600 | 0.500-0.700 |" in results
    )
    with pytest.raises(DataError, match="holds no run records"):
        documents.collect_records(tmp_path / "elsewhere", "demo_run", tmp_path / "records")
    with pytest.raises(DataError, match="collection name"):
        documents.collect_records(tmp_path / "results", "../out", tmp_path / "records")


def test_a_damaged_record_is_named(tmp_path: Path) -> None:
    (tmp_path / "records" / "x").mkdir(parents=True)
    (tmp_path / "records" / "x" / "bad.json").write_text("{")
    with pytest.raises(DataError, match=r"bad\.json: not a run record"):
        documents.load_records(tmp_path / "records")


def test_the_committed_documents_are_their_rendering_from_the_committed_records() -> None:
    stale = documents.stale_documents(ROOT)
    assert not stale, f"{stale}: run `mednca records render` and commit the result"


def test_time_to_accuracy_counts_epochs_at_the_fastest_epoch(run_files: dict[str, Path]) -> None:
    """24 epochs of which the fastest took 50 s, paused for an hour (3600 s of wall time): the curve's
    minutes are epochs x 50 s, so a pause does not count; without epoch times, the wall time."""
    record = {**_record(run_files), "label": "steps_32"}
    timing = {"epochs": 24, "train_seconds": 3600.0, "epoch_seconds_min": 50.0, "epoch_seconds_median": 55.0}
    record["training"] = {**record["training"], **timing}
    record["validation_curve"] = [
        {"epoch": 8, "train_seconds": 600.0, "dice_mean": 0.86},
        {"epoch": 16, "train_seconds": 2900.0, "dice_mean": 0.875},
        {"epoch": 24, "train_seconds": 3600.0, "dice_mean": 0.879},
    ]
    table = "\n".join(documents.time_to_accuracy_table([documents.Record("fast", Path("x.json"), record)]))
    assert "| steps_32 | 0 | 13.3 | not reached | not reached | 0.879 | 20.0 | 50 / 55 |" in table
    curve = documents.undisturbed_curve(documents.Record("fast", Path("x.json"), record))
    assert documents.minutes_to(curve, 0.86) == pytest.approx(8 * 50 / 60)
    del record["training"]["epoch_seconds_min"]
    curve = documents.undisturbed_curve(documents.Record("fast", Path("x.json"), record))
    assert [point["minutes"] for point in curve] == [20.0, 40.0, 60.0]


def test_time_to_accuracy_figure_is_drawn_from_the_curves_the_same_every_time(run_files) -> None:
    """The figure of validation Dice against minutes: one line per variant and seed, deterministic SVG."""
    point = {"epoch": 3, "train_seconds": 300.0, "dice_mean": 0.8}
    curves = {
        "recipe": [point, {**point, "epoch": 6, "train_seconds": 600.0, "dice_mean": 0.87}],
        "steps_32": [{**point, "epoch": 6, "train_seconds": 320.0, "dice_mean": 0.85}],
    }
    records = [
        documents.Record(
            "tta", Path(f"{label}.json"), {**_record(run_files), "label": label, "validation_curve": c}
        )
        for label, c in curves.items()
    ]
    points = documents.validation_curve_points(records)
    assert sorted(points["variant"].unique()) == ["recipe", "steps_32"] and len(points) == 3
    svg = documents.time_to_accuracy_figure(records)
    assert svg.startswith("<?xml") and "<dc:date>" not in svg
    assert documents.time_to_accuracy_figure(records) == svg
    assert (
        documents.time_to_accuracy_figure([documents.Record("x", Path("r.json"), _record(run_files))]) is None
    )


def test_the_ablation_table_counts_a_paused_run_at_its_fastest_epoch(run_files) -> None:
    """Two variants of 3 epochs: one with paused epochs (fastest 10 s), one without epoch times."""
    paused = {**_record(run_files), "label": "paused"}
    paused["training"] = {
        **paused["training"],
        "epochs": 3,
        "train_seconds": 1810.0,
        "epoch_seconds_median": 900.0,
        "epoch_seconds_min": 10.0,
    }
    plain = {**_record(run_files), "label": "plain"}
    plain["training"] = {**plain["training"], "epochs": 3, "train_seconds": 60.0}
    frame = documents.ablation_frame(
        [documents.Record("a", Path(f"{r['label']}.json"), r) for r in (paused, plain)]
    )
    assert frame.set_index("variant")["train_minutes"].to_dict() == {"paused": 0.5, "plain": 1.0}


def test_the_speed_table_gives_each_formulation_its_speed_up_over_the_original(tmp_path: Path) -> None:
    """Training at 16 channels: the library's gathered rule 0.5 s, the original code 1.5 s, the library's
    copy of the original rule 2.0 s; the original's own rows carry no speed-up."""

    def row(implementation: str, seconds: float, cell_rule: str = "original") -> dict:
        return {
            "model": "med_nca", "task": "train", "implementation": implementation, "slices_per_forward": 40,
            "arguments": {"channels": 16}, "cell_rule": cell_rule, "compute": "fp32", "seconds": seconds,
            "peak_memory_mb": 300.0,
        }  # fmt: skip

    record = {
        "machine": {"cpu": "Test CPU", "isa": ["avx2"], "threads": 2}, "torch": "2", "steps": 64,
        "commit": "abcdef1234567", "date": "2026-12-07", "competing_threads": 0,
        "cases": [row("ours", 0.5, "gather"), row("original", 1.5), row("reference", 2.0),
                  {"model": "unet", "task": "train", "implementation": "ours", "seconds": 0.1}],
    }  # fmt: skip
    path = documents.save_benchmark_record(record, tmp_path / "records", "speed", "Test CPU 2 threads")
    assert path == tmp_path / "records" / "benchmarks" / "speed" / "test-cpu-2-threads.json"
    table = documents.speed_table(documents.benchmark_records(tmp_path / "records", "speed"))
    assert "Test CPU (avx2), 2 threads, PyTorch 2, 64 steps per level" in table
    assert "| training iteration | 16 | gather fp32 (cell_rule auto) | 0.500 | 300 | 3.0x | 4.0x |" in table
    assert "| training iteration | 16 | original code (M3D-NCA) | 1.500 | 300 | – | – |" in table
    assert "unet" not in table and len(table.splitlines()) == 7
    assert documents.speed_table([]).startswith("No speed benchmark has been recorded yet")


def test_the_ablation_names_the_variants_its_seeds_cannot_separate_from_the_best(run_files) -> None:
    """best: 0.80-0.84; close: 0.79-0.81 meets it; far: 0.70-0.75 does not."""
    records = []
    for variant, dices in (("best", (0.80, 0.84)), ("close", (0.79, 0.81)), ("far", (0.70, 0.75))):
        for seed, dice in enumerate(dices):
            record = {**_record(run_files), "label": variant}
            record["run"] = {**record["run"], "seed": seed}
            record["metrics"] = {"validation": {**record["metrics"]["validation"], "dice_mean": dice}}
            records.append(documents.Record(variant, Path(f"{variant}{seed}.json"), record))
    text = "\n".join(documents.ablation_table(records))
    assert "Highest mean Dice: best (0.820); not separable from it" in text
    assert "(their ranges of seeds meet): close. CPU" in text
