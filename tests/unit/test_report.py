"""The HTML report: built from a small tree of result files, checked against those files."""

from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mednca.errors import DataError
from mednca.evaluate.evaluation import held_out_cases, load_test_case
from mednca.evaluate.overlays import case_slice, write_case_slices
from mednca.names import is_nca
from mednca.report.build import report_stage
from mednca.report.collect import (
    Benchmark,
    DatasetFiles,
    ReportFiles,
    Run,
    RunFiles,
    dataset_digest,
    load_benchmarks,
    report_files,
    run_files,
)
from mednca.report.findings import (
    dice_findings,
    efficiency_findings,
    equal_time_findings,
    quality_findings,
    robustness_findings,
)
from mednca.report.tables import efficiency_summary, main_table, robustness_summary, small_split_volumes

STUDIES = ["shift", "noise"]
PAPER = {"phantom": {"med_nca": {"dice": 0.9, "dice_std": 0.05}, "unet": {"dice": 0.8}}}
PAPER_PARAMETERS = {"med_nca": 70016, "unet": 37_000_000}
SETTINGS = {"phantom": {"slice_axis": 2, "foreground_labels": [1, 2]}}
RUNS = [Run("phantom", "med_nca", 0), Run("phantom", "unet", 0), Run("phantom", "unet", 1)]


class TableParser(HTMLParser):
    """Collects every table's cells (text and data-value) by table id, and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.links += [value for key, value in attrs if key in ("src", "href") and value]
        if tag == "table":
            self._table = attributes.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell, self._value = [], attributes.get("data-value")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(("".join(self._cell).strip(), self._value))
            self._cell = None
        elif tag == "table":
            self._table = None


def parse(html: str) -> TableParser:
    parser = TableParser()
    parser.feed(html)
    return parser


def write_run(results: Path, run: Run, case_ids: list[str], dice: list[float], data_dir: Path) -> None:
    """Per-case metrics, summary, training log, robustness tables, gallery, quality and predictions."""
    metrics = results / "metrics" / run.dataset / run.model / f"seed{run.seed}"
    metrics.mkdir(parents=True)
    nqm = [0.05 + 0.2 * (1 - d) for d in dice] if run.model == "med_nca" else [0.0] * len(dice)
    per_case = pd.DataFrame(
        {
            "case_id": case_ids,
            "dice": dice,
            "hd95": [1.0 + i for i in range(len(dice))],
            "nqm": nqm,
            "inference_seconds": 0.5,
        }
    )
    per_case.to_csv(metrics / "per_case.csv", index=False)
    summary = {
        "dice_mean": float(np.mean(dice)),
        "parameters": 25920 if run.model == "med_nca" else 1_600_000,
        "train_seconds": 100.0,
        "inference_seconds_mean": 0.5,
        "train_peak_memory_mb": 900.0,
        "inference_peak_memory_mb": 300.0,
        "device": "cpu",
    }
    (metrics / "summary.json").write_text(json.dumps(summary))
    curve = {"epoch": [1, 3], "iterations": [10, 30], "train_seconds": [30.0, 100.0], "cases": len(dice)}
    final = float(np.mean(dice))
    pd.DataFrame({**curve, "dice_mean": [final - 0.2, final], "dice_std": 0.1, "hd95_mean": 2.0}).to_csv(
        metrics / "learning_curve.csv", index=False
    )
    models = results / "models" / run.dataset / run.model / f"seed{run.seed}"
    models.mkdir(parents=True)
    pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.4], "lr": 1e-3, "seconds": 5.0}).to_csv(
        models / "train_log.csv", index=False
    )
    robustness = results / "robustness" / run.dataset / run.model / f"seed{run.seed}"
    (robustness / "gallery").mkdir(parents=True)
    for study in STUDIES:
        rows = [
            {
                "case_id": case,
                "study": study,
                "severity": s,
                "value": 0.1 * s,
                "dice": d - 0.1 * s,
                "hd95": 2.0,
                "nqm": n + 0.05 * s,
            }
            for case, d, n in zip(case_ids, dice, nqm, strict=True)
            for s in range(3)
        ]
        pd.DataFrame(rows).to_csv(robustness / f"{study}.csv", index=False)
        gallery = {"case_id": np.asarray(case_ids[0])}
        for s in range(3):
            gallery |= {
                f"image_{s}": np.random.default_rng(s).random((16, 16)),
                f"label_{s}": np.eye(16, dtype=np.uint8),
                f"prediction_{s}": np.eye(16, dtype=np.uint8),
            }
        np.savez_compressed(robustness / "gallery" / f"{study}.npz", **gallery)
    (robustness / "nqm_failure_detection.json").write_text(
        json.dumps(
            {
                "cases": 12,
                "failures": 3,
                "failure_dice": 0.8,
                "spearman_nqm_dice": -0.7,
                "nqm_threshold": 0.1,
                "failures_caught": 2,
                "successes_flagged": 1,
            }
        )
    )
    if run.model == "med_nca":
        np.savez_compressed(
            metrics / "nca_trajectory.npz",
            case_id=np.asarray(case_ids[0]),
            slice_index=np.asarray(3),
            image=np.random.default_rng(0).random((16, 16)),
            label=np.eye(16, dtype=np.uint8),
            levels=np.array([1, 1, 2, 2]),
            steps=np.array([0, 4, 0, 4]),
            probabilities=np.random.default_rng(1).random((4, 16, 16)).astype(np.float16),
        )
    cases = {
        c.case_id: c
        for c in held_out_cases(data_dir / "manifest.csv", data_dir / "cases.csv", data_dir / "source.json")
    }
    slices = []
    for index, case_id in enumerate(case_ids):
        volume, truth = load_test_case(cases[case_id], (1, 2))
        label = np.zeros_like(truth) if (run.model == "unet" and index == 0) else truth
        slices.append(case_slice(case_id, volume.image, truth, label, SETTINGS["phantom"]["slice_axis"]))
    write_case_slices(metrics / "test_slices.npz", slices)


def run_dir(results: Path, kind: str, run: Run) -> Path:
    """Where the workflow puts a run's outputs of one kind (``run_folder`` in workflow/rules/common.smk)."""
    return results / kind / run.dataset / run.model / f"seed{run.seed}"


def files_of(results: Path, runs: list[Run] = RUNS, studies: list[str] = STUDIES) -> ReportFiles:
    """The ReportFiles the workflow would give the report for a results tree laid out as it writes it."""
    return ReportFiles(
        runs={
            run: RunFiles(
                per_case=run_dir(results, "metrics", run) / "per_case.csv",
                summary=run_dir(results, "metrics", run) / "summary.json",
                train_log=run_dir(results, "models", run) / "train_log.csv",
                learning_curve=run_dir(results, "metrics", run) / "learning_curve.csv",
                test_slices=run_dir(results, "metrics", run) / "test_slices.npz",
                robustness={study: run_dir(results, "robustness", run) / f"{study}.csv" for study in studies},
                quality=run_dir(results, "robustness", run) / "nqm_failure_detection.json"
                if studies
                else None,
                gallery=run_dir(results, "robustness", run) / "gallery" if studies else None,
                trajectory=run_dir(results, "metrics", run) / "nca_trajectory.npz"
                if is_nca(run.model)
                else None,
            )
            for run in runs
        },
        datasets={
            "phantom": DatasetFiles(
                results / "data" / "phantom" / "manifest.csv", results / "data" / "phantom" / "slices"
            )
        },
        benchmarks=[
            Benchmark(
                "train",
                f"phantom/{run.model}/seed{run.seed}",
                results / "benchmarks" / "train" / "phantom" / run.model / f"seed{run.seed}.tsv",
            )
            for run in runs
        ],
    )


@pytest.fixture
def results(prepared_phantom: Path, tmp_path: Path) -> Path:
    """A results folder with the phantom's data stage and three runs (the first UNet prediction is empty)."""
    results = tmp_path / "results"
    shutil.copytree(prepared_phantom, results / "data" / "phantom")
    manifest = pd.read_csv(results / "data" / "phantom" / "manifest.csv")
    case_ids = sorted(manifest.loc[manifest["split"] == "test", "case_id"])
    dice = {"med_nca": [0.91, 0.85], "unet": [0.0, 0.8]}
    for run in RUNS:
        shift = 0.02 * run.seed
        write_run(results, run, case_ids, [d + shift for d in dice[run.model]], results / "data" / "phantom")
    benchmark = results / "benchmarks" / "train" / "phantom" / "unet" / "seed0.tsv"
    benchmark.parent.mkdir(parents=True)
    benchmark.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.5\t0:00:12\t512.3\t900.1\n")
    return results


def build(results: Path, runs: list[Run] = RUNS, studies: list[str] = STUDIES) -> str:
    out = results / "report.html"
    report_stage(
        files=files_of(results, runs, studies),
        out_html=out,
        studies=studies,
        paper_results=PAPER,
        paper_parameters=PAPER_PARAMETERS,
        config={"seeds": [0, 1], "datasets": ["phantom"]},
        nca_runs=3,
        repository=None,
    )
    return out.read_text()


def test_main_table_matches_the_per_case_files(results: Path) -> None:
    parsed = parse(build(results))
    header, *rows = parsed.tables["main-results"]
    columns = [text for text, _ in header]
    assert len(rows) == 2
    for row in rows:
        cells = dict(zip(columns, row, strict=True))
        model = {"Med-NCA": "med_nca", "UNet": "unet"}[cells["Model"][0]]
        seeds = [run.seed for run in RUNS if run.model == model]
        dice = pd.concat(
            pd.read_csv(results / "metrics" / "phantom" / model / f"seed{seed}" / "per_case.csv")["dice"]
            for seed in seeds
        )
        assert float(cells["Test Dice"][1]) == pytest.approx(dice.mean())
        assert cells["Test Dice"][0] == f"{dice.mean():.3f} ± {dice.std(ddof=0):.3f}"
        assert cells["Seeds"][0] == str(len(seeds))
        paper = PAPER["phantom"][model]["dice"]
        assert float(cells["Ours − paper"][1]) == pytest.approx(dice.mean() - paper)
    unet = next(row for row in rows if row[1][0] == "UNet")
    assert unet[columns.index("Dice seed std")][0] == "0.010"


def test_report_is_self_contained_and_has_every_section(results: Path) -> None:
    html = build(results)
    parsed = parse(html)
    assert parsed.links, "the page should have its navigation links and inline images"
    assert all(link.startswith(("data:", "#")) for link in parsed.links)
    loads = r"<(?!a\b)\w+[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//|url\(\s*[\"']?\s*(?:https?:)?//"
    assert not re.findall(loads, html), "the page must not load anything from the network"
    for section in (
        "Run summary",
        "Findings",
        "Datasets",
        "Main results",
        "Robustness",
        "NQM",
        "Qualitative",
        "Learning curves",
        "Accuracy against training time",
    ):
        assert section in html
    assert "within 100.0 s of training" in html and "was 0.880 vs the UNet" in html
    # Med-NCA and the UNet share seed 0: its two test cases are the pairs of every verdict, too few for one.
    text = re.sub(r"<[^>]+>", "", html)
    assert (
        "The claim that Med-NCA beats the UNet was inconclusive at this sample size: Med-NCA − UNet Dice "
        "paired by test case and seed, +0.480 (no interval or test from 2 cases, 1 seed)." in text
    )
    assert " held:" not in text and "did not hold:" not in text
    assert html.count("data:image/png;base64,") >= 10
    assert all(f"<summary>phantom: {study}</summary>" in html for study in STUDIES)
    assert "Med-NCA steps" in html
    assert "Missing results" not in html
    assert {"stage-times", "datasets", "robustness", "versions"} <= parsed.tables.keys()
    stage_rows = parsed.tables["stage-times"][1:]
    assert stage_rows[0][0][0] == "train" and stage_rows[0][2][0] == "12.5 s"


def test_missing_study_is_stated_not_fatal(results: Path) -> None:
    (results / "robustness" / "phantom" / "unet" / "seed1" / "noise.csv").unlink()
    html = build(results)
    assert "Missing results" in html
    assert "robustness/phantom/unet/seed1/noise.csv" in html


def test_single_model_report_says_what_it_cannot_compare(results: Path) -> None:
    html = build(results, runs=[Run("phantom", "unet", 0)], studies=[])
    assert "phantom: mean test Dice UNet 0." in html and "needs both models" in html
    assert "No robustness results in this run" in html
    assert len(parse(html).tables["main-results"]) == 2


def test_report_of_an_empty_results_folder(tmp_path: Path) -> None:
    html = build(tmp_path / "results", runs=[Run("phantom", "med_nca", 0)])
    assert "Missing results" in html and "No evaluation results" in html


def test_small_test_split_is_shown_volume_by_volume(results: Path) -> None:
    header, *rows = parse(build(results)).tables["per-volume"]
    assert [text for text, _ in header] == [
        "Dataset",
        "Test case",
        "Model",
        "Seed",
        "Dice",
        "HD95 (mm)",
        "Label voxels",
        "Predicted voxels",
        "NQM",
    ]
    expected = {}
    for run in RUNS:
        per_case = pd.read_csv(
            results / "metrics" / "phantom" / run.model / f"seed{run.seed}" / "per_case.csv"
        )
        for case, dice in per_case[["case_id", "dice"]].itertuples(index=False):
            expected[(case, run.model, run.seed)] = dice
    names = {"Med-NCA": "med_nca", "UNet": "unet"}
    shown = {(row[1][0], names[row[2][0]], int(row[3][0])): float(row[4][1]) for row in rows}
    assert shown.keys() == expected.keys()
    assert all(shown[key] == pytest.approx(expected[key]) for key in expected)
    assert all(row[-1][0] == "–" for row in rows if row[2][0] == "UNet"), "NQM is an NCA's measure"


def test_only_small_test_splits_are_listed_volume_by_volume() -> None:
    per_case = pd.DataFrame(
        {
            "dataset": ["big"] * 5 + ["small"] * 2,
            "model": "segnet",
            "seed": 0,
            "case_id": ["a", "b", "c", "d", "e", "y", "x"],
            "dice": 0.5,
            "hd95": 1.0,
        }
    )
    volumes = small_split_volumes(per_case, fewer_than=5)
    assert list(volumes["case_id"]) == ["x", "y"] and set(volumes["dataset"]) == {"small"}
    assert volumes["nqm"].isna().all()
    assert small_split_volumes(per_case, fewer_than=6)["dataset"].value_counts().to_dict() == {
        "big": 5,
        "small": 2,
    }
    assert small_split_volumes(per_case.iloc[:0], fewer_than=5).empty


def test_main_table_pools_cases_and_seeds() -> None:
    per_case = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "seed": [0, 0, 1, 1],
            "case_id": ["a", "b", "a", "b"],
            "dice": [0.8, 0.6, 0.9, 0.7],
            "hd95": [1.0, np.nan, 3.0, 2.0],
            "nqm": 0.0,
        }
    )
    summaries = pd.DataFrame({"dataset": "d", "model": "m", "seed": [0, 1], "train_seconds": [10.0, 20.0]})
    row = main_table(per_case, summaries, {"d": {"m": {"dice": 0.7}}}).iloc[0]
    assert row["dice_mean"] == pytest.approx(0.75)
    assert row["dice_std"] == pytest.approx(np.std([0.8, 0.6, 0.9, 0.7]))
    assert row["dice_seed_std"] == pytest.approx(0.05)
    assert row["hd95_mean"] == pytest.approx(2.0)
    assert row["train_seconds"] == pytest.approx(15.0)
    assert row["dice_vs_paper"] == pytest.approx(0.05)
    assert np.isnan(row["parameters"])


def centred_noise(rng: np.random.Generator, scale: float, size: int) -> np.ndarray:
    """Normal noise with mean exactly zero, so that per-case values keep a stated mean."""
    noise = rng.normal(0.0, scale, size)
    return noise - noise.mean()


def per_case_dice(dataset: str, dice: dict[str, np.ndarray]) -> pd.DataFrame:
    """``load_per_case`` rows of one seed: each model's Dice per test case."""
    return pd.DataFrame(
        [
            {"dataset": dataset, "model": model, "seed": 0, "case_id": f"case{i:02d}", "dice": value}
            for model, values in dice.items()
            for i, value in enumerate(values)
        ]
    )


def test_findings_state_the_claims_from_the_numbers() -> None:
    table = pd.DataFrame(
        [
            {
                "dataset": "hippocampus",
                "model": "med_nca",
                "dice_mean": 0.85,
                "paper_dice": 0.886,
                "parameters": 25920.0,
                "inference_seconds": 12.0,
            },
            {
                "dataset": "hippocampus",
                "model": "unet",
                "dice_mean": 0.87,
                "paper_dice": 0.858,
                "parameters": 1.6e6,
                "inference_seconds": 0.05,
            },
        ]
    )
    rng = np.random.default_rng(0)
    unet = 0.87 + centred_noise(rng, 0.03, 30)
    per_case = per_case_dice(
        "hippocampus", {"med_nca": unet - 0.02 + centred_noise(rng, 0.005, 30), "unet": unet}
    )
    sentences = dice_findings(table, PAPER_PARAMETERS, per_case)
    assert sentences[0].startswith(
        "hippocampus: Med-NCA Dice 0.850 vs UNet 0.870 (-0.020; paper +0.028). The claim that Med-NCA beats "
        "the UNet did not hold: Med-NCA − UNet Dice paired by test case and seed, -0.020 (95 % CI -0.02"
    )
    assert sentences[0].endswith("Wilcoxon p < 0.001; 30 cases, 1 seed).")
    few = dice_findings(table.assign(cases=2), PAPER_PARAMETERS, per_case)
    assert few[0] == (
        "hippocampus: only 2 test volume(s), so its Dice values are a check that training worked, not an "
        "estimate of the accuracy on new cases."
    )
    assert few[1:] == sentences
    assert "62x fewer" in sentences[1] and "(528x)" in sentences[1]
    # A tiny difference among noisy cases is no confirmed claim, whatever its sign.
    tiny = per_case_dice(
        "hippocampus", {"med_nca": unet + 0.001 + centred_noise(rng, 0.05, 30), "unet": unet}
    )
    assert (
        "The claim that Med-NCA beats the UNet was inconclusive at this sample size: Med-NCA − UNet Dice "
        "paired by test case and seed, +0.001 (95 % CI -0.0"
        in dice_findings(table, PAPER_PARAMETERS, tiny)[0]
    )
    assert dice_findings(table, PAPER_PARAMETERS)[0].endswith(
        "The claim that Med-NCA beats the UNet cannot be judged without their per-case results."
    )
    cases = 11
    robustness = pd.DataFrame(
        [
            {"dataset": "h", "model": model, "seed": 0, "case_id": f"case{case:02d}", "study": study,
             "severity": s, "value": 0.1 * s, "dice": dice + offset}
            for study in ("shift", "noise")
            for model, dices in (("med_nca", [0.85, 0.83, 0.82]), ("unet", [0.87, 0.7, 0.5]))
            for s, dice in enumerate(dices)
            for case, offset in enumerate(centred_noise(rng, 0.01, cases))
        ]
    )  # fmt: skip
    summary = robustness_summary(robustness)
    text = " ".join(robustness_findings(summary, robustness))
    assert (
        "h, shift: Med-NCA's mean Dice went from 0.850 (clean) to 0.820 at 0.2; the UNet's went from 0.870 "
        "(clean) to 0.500 at 0.2." in text
    )
    assert (
        "h: the claim of only slight degradation of Med-NCA under strong shifts (a drop of at most 0.05) "
        "held: Med-NCA's clean − shifted Dice at 0.2 (its largest mean drop) paired by case and seed, +0.030 "
        "(95 % CI" in text
    )
    assert "11 cases, 1 seed" in text
    assert "less Dice than the UNet in 1 of 1 MRI artefact studies" in text
    assert (
        "h, noise: the claim that Med-NCA loses less Dice than the UNet held: the UNet's Dice drop at 0.2 − "
        "Med-NCA's at 0.2 (each model's largest mean drop) paired by case and seed, +0.340 (95 % CI" in text
    )
    assert "under MRI artefacts held in 1, did not hold in 0 and was inconclusive in 0 of 1 studies." in text
    # A drop near the bound among noisy cases leaves the claim open; without per-case rows it is not judged.
    worst = (
        (robustness["study"] == "shift") & (robustness["model"] == "med_nca") & (robustness["severity"] == 2)
    )
    noisy = robustness.copy()
    noisy.loc[worst, "dice"] -= 0.015 + centred_noise(rng, 0.05, cases)
    shift = [
        sentence for sentence in robustness_findings(robustness_summary(noisy), noisy) if "shifts" in sentence
    ]
    assert shift[0].startswith(
        "h: the claim of only slight degradation of Med-NCA under strong shifts (a drop of at most 0.05) was "
        "inconclusive at this sample size: Med-NCA's clean − shifted Dice at 0.2 (its largest mean drop) "
        "paired by case and seed, +0.045 (95 % CI +0.0"
    )
    assert "(a drop of at most 0.05) cannot be judged without per-case results." in " ".join(
        robustness_findings(summary)
    )
    quality = quality_findings(
        {("h", "med_nca", 0): {"cases": 10, "failures": 0, "failure_dice": 0.8, "spearman_nqm_dice": -0.5}}
    )
    assert quality == [
        "h, Med-NCA, seed 0: Spearman correlation of NQM with Dice -0.50 over 10 clean and perturbed test "
        "cases; no case had Dice below 0.8, so failure detection could not be tested."
    ]
    calibrated = {
        "cases": 10, "failures": 2, "failure_dice": 0.8, "spearman_nqm_dice": -0.5, "nqm_threshold": 0.04,
        "failures_caught": 1, "successes_flagged": 0,
    }  # fmt: skip
    on_validation = quality_findings(
        {("h", "med_nca", 0): {**calibrated, "threshold_fitted_on": "validation"}}
    )
    assert (
        "a threshold at NQM 0.040 (fitted on the validation split) caught 1 of 2 failures" in on_validation[0]
    )
    same = quality_findings({("h", "med_nca", 0): {**calibrated, "threshold_fitted_on": "same cases"}})
    assert "(fitted on these same cases: no validation split, so this is optimistic)" in same[0]


def test_benchmarks_and_dataset_digest(results: Path) -> None:
    benchmarks = load_benchmarks(files_of(results).benchmarks)
    assert benchmarks.to_dict("records") == [
        {"stage": "train", "job": "phantom/unet/seed0", "seconds": 12.5, "max_rss_mb": 512.3}
    ]
    manifest = pd.read_csv(results / "data" / "phantom" / "manifest.csv")
    assert dataset_digest(manifest) == dataset_digest(manifest.iloc[::-1])
    changed = manifest.assign(image_sha256=manifest["image_sha256"].where(manifest.index > 0, "0" * 64))
    assert dataset_digest(changed) != dataset_digest(manifest)


def test_summary_files_for_dvc(results: Path, tmp_path: Path) -> None:
    from mednca.report.summary import summary_stage

    out = tmp_path / "summary"
    summary_stage(
        files_of(results).runs,
        STUDIES,
        *(out / name for name in ("metrics.json", "training.csv", "curve.csv", "robustness.csv")),
    )
    metrics = json.loads((out / "metrics.json").read_text())
    per_case = pd.read_csv(results / "metrics" / "phantom" / "unet" / "seed1" / "per_case.csv")
    assert metrics["phantom"]["unet"]["seed1"]["dice_mean"] == pytest.approx(per_case["dice"].mean())
    assert metrics["phantom"]["med_nca"]["seed0"]["parameters"] == 25920
    training = pd.read_csv(out / "training.csv")
    assert set(training["series"]) == {"phantom/med_nca/seed0", "phantom/unet/seed0", "phantom/unet/seed1"}
    curve = pd.read_csv(out / "curve.csv").set_index("series")
    assert curve.loc["phantom/unet/seed1", "dice_mean"].tolist() == pytest.approx([0.22, 0.42])
    robustness = pd.read_csv(out / "robustness.csv")
    assert len(robustness) == len(RUNS) * len(STUDIES) * 3
    shift = robustness[robustness["series"] == "phantom/shift/unet/seed0"].set_index("severity")
    table = pd.read_csv(results / "robustness" / "phantom" / "unet" / "seed0" / "shift.csv")
    assert shift.loc[2, "dice"] == pytest.approx(table.loc[table["severity"] == 2, "dice"].mean())


def test_equal_time_findings_compare_at_the_shortest_run_and_say_when_the_paper_was_reached() -> None:
    rows = [
        ("med_nca", 0, [(1, 600.0, 0.80), (2, 1200.0, 0.85), (12, 7200.0, 0.89)]),
        ("med_nca", 1, [(1, 650.0, 0.78), (2, 1300.0, 0.84), (12, 7000.0, 0.87)]),
        ("unet", 0, [(1, 100.0, 0.85), (9, 900.0, 0.875)]),
    ]
    curves = pd.DataFrame(
        [
            {"dataset": "h", "model": model, "seed": seed, "epoch": e, "train_seconds": t, "dice_mean": d}
            for model, seed, points in rows
            for e, t, d in points
        ]
    )
    paper = {"h": {"med_nca": 0.886, "unet": 0.9}}
    sentences = equal_time_findings(curves, paper)
    assert sentences == [
        "h: within 15.0 min of training (each model's last learning-curve point by then), Med-NCA's test "
        "Dice was 0.790 vs the UNet's 0.875 (-0.085). The claim that Med-NCA beats the UNet at equal "
        "training time was inconclusive at this sample size: Med-NCA − UNet mean test Dice paired by seed "
        "(the learning curves have no per-case Dice), -0.075 (no interval or test from 1 seed).",
        "h: Med-NCA first reached the paper's Dice 0.886 after 2.0 h of training (seed 0, epoch 12).",
        "h: UNet stayed below the paper's Dice 0.900 throughout training; its best point was 0.875 after "
        "15.0 min (seed 0, epoch 9).",
    ]
    late = curves[~((curves["model"] == "med_nca") & (curves["train_seconds"] < 1000))]
    # No Med-NCA point by the UNet's 15 min: compare at the first time both have one.
    assert equal_time_findings(late, {})[0].startswith(
        "h: within 21.7 min of training (each model's last learning-curve point by then), Med-NCA's test "
        "Dice was 0.845 vs the UNet's 0.875 (-0.030)."
    )


def test_findings_describe_a_model_that_has_no_med_nca_or_unet_to_compare_with() -> None:
    curves = pd.DataFrame(
        [
            {"dataset": "b", "model": "segnet", "seed": seed, "epoch": e, "train_seconds": t, "dice_mean": d}
            for seed, points in (
                (0, [(2, 300.0, 0.70), (4, 600.0, 0.60)]),
                (1, [(2, 320.0, 0.74), (4, 640.0, 0.82)]),
            )
            for e, t, d in points
        ]
    )
    assert equal_time_findings(curves, {}) == [
        "b: SegNet's test Dice went from 0.720 after 5.2 min (epoch 2) to 0.710 after 10.3 min (epoch 4), "
        "mean over 2 seed(s); its best point was 0.820 (seed 1, epoch 4)."
    ]
    robustness = pd.DataFrame(
        [
            {"dataset": "b", "study": "shift", "model": "segnet", "severity": s, "value": 0.1 * s, "dice": d}
            for s, d in enumerate([0.80, 0.60, 0.70])
        ]
    )
    assert robustness_findings(robustness_summary(robustness)) == [
        "b, shift: SegNet's mean Dice went from 0.800 (clean) to 0.600 at 0.1."
    ]


def test_efficiency_findings_rank_the_models_and_judge_pre_training_at_the_fewest_cases() -> None:
    dice = {
        ("segnet", "2"): [0.30, 0.40],
        ("segnet_from_brats", "2"): [0.50, 0.60],
        ("med_nca", "2"): [0.70, 0.60],
        ("segnet", "all"): [0.85],
        ("segnet_from_brats", "all"): [0.80],
        ("med_nca", "all"): [0.88],
    }
    runs = pd.DataFrame(
        [
            {"model": model, "cases": cases, "train_cases": 140 if cases == "all" else int(cases),
             "seed": seed, "iterations": 200, "train_seconds": 60.0, "dice_mean": value, "hd95_mean": 2.0}
            for (model, cases), values in dice.items()
            for seed, value in enumerate(values)
        ]
    )  # fmt: skip
    assert efficiency_findings(efficiency_summary(runs), runs) == [
        "Trained on 2 case(s) with equal budgets: mean test Dice Med-NCA 0.650 (2 seeds), SegNet (from "
        "brats) 0.550 (2 seeds), SegNet 0.350 (2 seeds).",
        "Trained on 140 case(s) with equal budgets: mean test Dice Med-NCA 0.880, SegNet 0.850, SegNet (from "
        "brats) 0.800.",
        "Pre-training on brats changed SegNet's mean test Dice by k=2 +0.200, k=140 -0.050; its mean was "
        "higher at 1 of 2 k values.",
        "The claim that a model pre-trained on brats needs less data (better with the fewest cases, k=2) for "
        "SegNet was inconclusive at this sample size: fine-tuned − from-scratch mean test Dice paired by "
        "seed, +0.200 (no interval or test from 2 seeds).",
    ]
    one_seed = runs[~((runs["model"] == "segnet") & (runs["seed"] == 1))]
    assert efficiency_findings(efficiency_summary(one_seed), one_seed)[-1].startswith(
        "The claim that a model pre-trained on brats needs less data (better with the fewest cases, k=2) for "
        "SegNet was inconclusive at this sample size: fine-tuned − from-scratch mean test Dice paired by "
        "seed, +0.200 (no interval or test from 1 seed)."
    )
    assert len(efficiency_findings(efficiency_summary(runs[runs["model"] != "segnet"]))) == 2


def _report_arguments(results: Path, out: Path) -> dict:
    """``report_stage``'s arguments for the result tree ``results``, writing ``out``."""
    return {
        "files": files_of(results), "out_html": out, "studies": STUDIES, "paper_results": PAPER,
        "paper_parameters": PAPER_PARAMETERS, "config": {"seeds": [0, 1]}, "nca_runs": 3,
    }  # fmt: skip


def _ablation_record(variant: str, seed: int, minutes: float, dice: float, hd95: float) -> dict:
    """A recipe-ablation record as ``benchmarks/recipe_ablation.py`` writes it (validation metrics only)."""
    return {
        "label": variant,
        "run": {"dataset": "hippocampus", "model": "med_nca", "seed": seed},
        "training": {"epochs": 9, "iterations": 1872, "train_seconds": 60 * minutes, "parameters": 25920},
        "metrics": {
            "validation": {"cases": 20, "dice_mean": dice, "dice_std": 0.05, "hd95_mean": hd95},
            "test": None,
        },
        "machine": {"cpu": "AMD EPYC", "isa": ["avx2"], "threads": 2},
    }


def test_report_shows_a_recipe_ablation_per_variant(results: Path, tmp_path: Path) -> None:
    folder = tmp_path / "records" / "recipe_ablation"
    runs = [("paper", 0, 14.0, 0.80, 3.0), ("ema", 0, 15.0, 0.85, 2.0), ("paper", 1, 16.0, 0.82, 5.0)]
    runs.append(("ema", 1, 15.0, 0.86, 2.0))
    for variant, seed, minutes, dice, hd95 in runs:
        path = folder / variant / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_ablation_record(variant, seed, minutes, dice, hd95)))
    out = results / "report.html"
    arguments = _report_arguments(results, out)
    report_stage(**arguments, ablation_records=folder)
    header, *rows = parse(out.read_text()).tables["ablation"]
    cells = {row[0][0]: dict(zip([text for text, _ in header], row, strict=True)) for row in rows}
    assert set(cells) == {"paper", "ema"}
    verdict = "Highest mean Dice: ema (0.855); no other variant's range of seeds reaches it."
    assert verdict in html.unescape(out.read_text())
    assert cells["ema"]["Validation Dice (mean over seeds)"][0] == "0.855"
    assert cells["ema"]["Seeds' range"][0] == "0.850–0.860"
    assert cells["ema"]["Dice − paper recipe"][0] == "0.045"
    assert (
        cells["paper"]["Training time"][0] == "15.0 min"
        and cells["paper"]["Validation HD95 (mm)"][0] == "4.00"
    )
    with pytest.raises(DataError, match=r"empty: holds no recipe-ablation record"):
        report_stage(**arguments, ablation_records=tmp_path / "records" / "empty")


def test_report_shows_the_data_efficiency_study_per_model_and_k(results: Path, tmp_path: Path) -> None:
    runs = pd.DataFrame(
        {
            "dataset": "phantom",
            "model": ["unet", "unet", "unet", "segnet_from_brats"],
            "cases": ["2", "2", "all", "2"],
            "train_cases": [2, 2, 7, 2],
            "seed": [0, 1, 0, 0],
            "iterations": 500,
            "batch_size": [48, 48, 48, 10],
            "train_seconds": [120.0, 180.0, 150.0, 90.0],
            "test_cases": 3,
            "dice_mean": [0.60, 0.70, 0.85, 0.75],
            "dice_std": 0.1,
            "hd95_mean": [4.0, 6.0, 2.0, 3.0],
            "hd95_std": 1.0,
        }
    )
    runs.to_csv(tmp_path / "efficiency.csv", index=False)
    out = results / "report.html"
    arguments = _report_arguments(results, out)
    report_stage(**arguments, efficiency_csv=tmp_path / "efficiency.csv")
    html = out.read_text()
    header, *rows = parse(html).tables["efficiency"]
    names = [text for text, _ in header]
    cells = [dict(zip(names, [text for text, _ in row], strict=True)) for row in rows]
    assert [(row["Model"], row["k"], row["Seeds"]) for row in cells] == [
        ("UNet", "2", "2"), ("UNet", "all", "1"), ("SegNet (from brats)", "2", "1")
    ]  # fmt: skip
    assert cells[0]["Test Dice (mean over seeds)"] == "0.650" and cells[0]["Seeds' range"] == "0.600–0.700"
    assert cells[1]["Training cases"] == "7" and cells[0]["Training time"] == "2.5 min"
    assert "UNet 500 steps of batch 48; SegNet (from brats) 500 steps of batch 10" in html
    runs.drop(columns="train_cases").to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(DataError, match=r"broken\.csv: not a data-efficiency table \(lacks train_cases\)"):
        report_stage(**arguments, efficiency_csv=tmp_path / "broken.csv")


def test_report_draws_its_overlays_without_opening_raw_data(results: Path, monkeypatch) -> None:
    import nibabel

    def refuse(*args, **kwargs):
        raise AssertionError("the report opened a NIfTI file")

    monkeypatch.setattr(nibabel, "load", refuse)
    html = build(results)
    assert "phantom: predictions" in html and "Missing results" not in html


def test_run_files_follow_the_order_of_the_runs() -> None:
    runs = [Run("d", "med_nca", 0), Run("d", "unet", 0)]
    files = run_files(
        runs,
        ["shift", "noise"],
        per_case=["a.csv", "b.csv"],
        robustness=["a_shift", "a_noise", "b_shift", "b_noise"],
        trajectories=["a.npz"],
    )
    assert files[runs[1]].per_case == Path("b.csv")
    assert files[runs[1]].robustness == {"shift": Path("b_shift"), "noise": Path("b_noise")}
    assert files[runs[0]].trajectory == Path("a.npz") and files[runs[1]].trajectory is None
    assert files[runs[0]].summary is None
    with pytest.raises(ValueError, match="3 per-case tables for 2 run"):
        run_files(runs, [], per_case=["a", "b", "c"])
    # No robustness study configured: the workflow declares empty lists for those kinds.
    empty = run_files(runs, [], per_case=["a.csv", "b.csv"], robustness=[], quality=[], galleries=[])
    assert all(f.quality is None and f.gallery is None and f.robustness == {} for f in empty.values())


def test_report_files_from_named_inputs() -> None:
    class Inputs(dict):
        """The part of Snakemake's named input list the report's script uses."""

    inputs = Inputs(
        manifests="data/d/manifest.csv",
        slices=["data/d/slices"],
        benchmarks=["b/train.tsv"],
        per_case=["m/a.csv"],
        learning_curves=["m/a_curve.csv"],
    )
    files = report_files([Run("d", "unet", 1)], [], inputs, ["d"], [("train", "d/unet/seed1")])
    assert files.datasets == {"d": DatasetFiles(Path("data/d/manifest.csv"), Path("data/d/slices"))}
    assert files.benchmarks == [Benchmark("train", "d/unet/seed1", Path("b/train.tsv"))]
    run = files.runs[Run("d", "unet", 1)]
    assert (run.per_case, run.learning_curve, run.train_log) == (Path("m/a.csv"), Path("m/a_curve.csv"), None)
