"""The demo as `make demo` runs it: `dvc repro` over the Snakemake stage targets, in a git + DVC copy.

One run serves every test here: the outputs of each stage, a second `dvc repro` that does nothing, a
learning-rate change that re-trains only that model, a change of a model's code, the report written
elsewhere, and `dvc push` / `dvc pull` into a clone. To keep the suite short the run uses a smaller demo
(``SMALLER_DEMO`` over ``config/demo.yaml``) that still has every rule: both datasets, an NCA, the UNet,
a fine-tuned SegNet, every robustness study and the data-efficiency study; the full demo is planned by
``test_the_full_demo_plans_every_job``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import report_browser as browser
import yaml
from conftest import ROOT, run_tool

pytestmark = pytest.mark.workflow
SMALLER_DEMO = {
    "dataset_settings": {"phantom": {"models": ["med_nca", "unet"]}},
    "models": ["med_nca", "unet", "segnet"],
    "data_efficiency": {"seeds": [0]},
}
"""Merged over config/demo.yaml in the DVC copy: phantom trains Med-NCA, the UNet and the SegNet fine-tuned
from phantom_multimodal (the demo also trains the single-level NCA and a SegNet from scratch there), and the
data-efficiency study runs one seed."""
PHANTOM_MODELS = ["med_nca", "unet", "segnet_from_phantom_multimodal"]
STUDIES = ["shift", "scale_resize", "scale_fixed", "noise", "spike", "ghosting", "bias_field", "motion"]
STUDIES += ["anisotropy", "gibbs"]
DATASETS = ("phantom", "phantom_multimodal")


def run(command: list[str], cwd: Path) -> str:
    """A command in a copy of the project, with that copy's own library (its ``src/``) on the Python path:
    the rules' code inputs are then the copy's files, as in a clone with an editable install."""
    return run_tool(command, cwd, python_path=cwd / "src" if (cwd / "src").is_dir() else None)


def dvc(*args: str, cwd: Path) -> str:
    return run([str(Path(sys.executable).parent / "dvc"), *args], cwd)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC copy of the project after `dvc repro` of the demo, with a local remote beside it."""
    root = tmp_path_factory.mktemp("dvc")
    repo = root / "repo"
    for name in ("workflow", "scripts", "config", "envs", "profiles", "src", ".dvc"):
        shutil.copytree(
            ROOT / name, repo / name, ignore=shutil.ignore_patterns("tmp", "cache", "__pycache__")
        )
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    demo_config = repo / "config" / "demo.yaml"
    demo_config.write_text(yaml.safe_dump(merged(yaml.safe_load(demo_config.read_text()), SMALLER_DEMO)))
    run(["git", "init", "-q"], repo)
    dvc("remote", "modify", "--local", "local", "url", str(root / "storage"), cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "project"], repo)
    assert "Running stage 'report'" in dvc("repro", cwd=repo)
    return repo


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, mapping by mapping (as Snakemake merges config files)."""
    result = dict(base)
    for key, value in overrides.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        result[key] = merged(base[key], value) if both else value
    return result


def test_the_full_demo_plans_every_job(project: Path) -> None:
    """The demo itself (5 models on phantom, the study with two seeds): planned, every rule once or more."""
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/demo.yaml"]
    plan = run(command, project)
    for model in ("med_nca", "nca", "unet", "segnet", "segnet_from_phantom_multimodal"):
        assert f"results/models/phantom/{model}/seed0" in plan, model
    assert "efficiency/phantom/med_nca/cases2/seed1" in plan


def test_demo_runs_every_stage_and_ends_with_the_report(demo: Path) -> None:
    results = demo / "results"
    for dataset in DATASETS:
        manifest = pd.read_csv(results / "data" / dataset / "manifest.csv")
        # The demo's phantom holds out validation patients (its NCAs' NQM threshold is fitted on them).
        expected = {"train", "validation", "test"} if dataset == "phantom" else {"train", "test"}
        assert set(manifest["split"]) == expected
        assert manifest["case_id"].is_unique
        index = pd.read_csv(results / "data" / dataset / "slices" / "index.csv")
        assert sorted(index["case_id"]) == sorted(manifest["case_id"])
        held_out = sorted(manifest.loc[manifest.split == "test", "case_id"])
        models = PHANTOM_MODELS if dataset == "phantom" else ["segnet"]
        for model in models:
            run_dir = Path(dataset) / model / "seed0"
            assert (results / "models" / run_dir / "model.pt").exists()
            per_case = pd.read_csv(results / "metrics" / run_dir / "per_case.csv")
            assert sorted(per_case["case_id"]) == held_out
            assert per_case["dice"].between(0, 1).all()
            predictions = sorted(p.name for p in (results / "predictions" / run_dir).glob("*.nii.gz"))
            assert predictions == [f"{case}.nii.gz" for case in held_out]
            for study in STUDIES:
                table = pd.read_csv(results / "robustness" / run_dir / f"{study}.csv")
                assert sorted(table["severity"].unique()) == [0, 1, 2]
                clean = table[table.severity == 0].set_index("case_id")
                assert (clean["dice"] == per_case.set_index("case_id").loc[clean.index, "dice"]).all()
                assert (results / "robustness" / run_dir / "gallery" / f"{study}.npz").exists()
            curve = pd.read_csv(results / "metrics" / run_dir / "learning_curve.csv")
            assert curve["epoch"].tolist() == ([1, 2] if "_from_" in model else [1, 2, 3])
            if model == "med_nca":
                assert (results / "metrics" / run_dir / "nca_trajectory.npz").exists()
            else:  # deterministic: the curve's last point is the evaluation
                assert curve["dice_mean"].iloc[-1] == pytest.approx(per_case["dice"].mean())
            assert (results / "benchmarks" / "evaluate" / f"{run_dir}.tsv").exists()
            record = json.loads((results / "records" / dataset / model / "seed0.json").read_text())
            assert record["metrics"]["test"]["dice_mean"] == pytest.approx(per_case["dice"].mean())
            assert "Dice (mean ± sd)" in (results / "models" / run_dir / "model_card.md").read_text()
            if dataset == "phantom":
                validation = pd.read_csv(results / "metrics" / run_dir / "validation" / "per_case.csv")
                held_out_for_validation = manifest.loc[manifest.split == "validation", "case_id"]
                assert sorted(validation["case_id"]) == sorted(held_out_for_validation)
                assert record["metrics"]["validation"]["cases"] == len(validation)
            if dataset == "phantom" and model == "med_nca":
                assert record["nqm"]["threshold_fitted_on"] == "validation"
    assert "synthetic" in (demo / "data" / "raw" / "Phantom_demo" / "dataset.json").read_text().lower()
    report = (results / "report.html").read_text()
    assert "Missing results" not in report
    assert report.count('id="main-results"') == 1 and report.count("data:image/png;base64,") > 20
    assert report.count('id="efficiency"') == 2  # the section heading and its table


def test_the_data_efficiency_study_trains_each_k_with_the_same_budget(demo: Path) -> None:
    """The study of the run: 2 cases and the whole train split with seed 0; 4 steps each."""
    table = pd.read_csv(demo / "results" / "efficiency" / "data_efficiency.csv", dtype={"cases": str})
    manifest = pd.read_csv(demo / "results" / "data" / "phantom" / "manifest.csv")
    train, test = (int((manifest["split"] == split).sum()) for split in ("train", "test"))
    runs = {(row.model, row.cases, row.seed): row for row in table.itertuples()}
    models = ("med_nca", "segnet", "segnet_from_phantom_multimodal")
    assert sorted(runs) == sorted([(m, cases, 0) for m in models for cases in ("2", "all")])
    assert (table["iterations"] == 4).all() and (table["test_cases"] == test).all()
    assert table.set_index("cases")["train_cases"].to_dict() == {"2": 2, "all": train}
    assert table["dice_mean"].between(0, 1).all()


def test_second_run_does_nothing(demo: Path) -> None:
    assert "Data and pipelines are up to date" in dvc("repro", cwd=demo)
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/demo.yaml"]
    assert "Nothing to be done" in run(command, demo)
    # The device is how results are computed, not what they are: naming it re-runs no torch job (only the
    # report, whose run summary names the device).
    planned = run([*command, "--config", "device=cpu"], demo)
    torch_jobs = ("train_model", "evaluate_model", "robustness_studies")
    assert not any(f"rule {name}:" in planned for name in torch_jobs)


def test_learning_rate_change_retrains_only_that_model_then_push_pull(demo: Path, tmp_path: Path) -> None:
    """On a copy of the demo (same remote), so that the module's demo stays as `dvc repro` left it."""
    demo = Path(shutil.copytree(demo, tmp_path / "repo", symlinks=True))
    models = demo / "results" / "models"
    files = sorted(models.glob("*/*/seed0/model.pt"))
    before = {path: digest(path) for path in files}
    config_path = demo / "config" / "demo.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert config["model_settings"]["unet"]["training"]["lr"] == 1.0e-3
    config["model_settings"]["unet"]["training"]["lr"] = 3.0e-3
    config_path.write_text(yaml.safe_dump(config))
    assert "config" in dvc("status", cwd=demo)
    again = dvc("repro", cwd=demo)
    assert "Stage 'data' didn't change, skipping" in again and "Running stage 'models'" in again
    changed = {path.parent.parent.name for path in files if digest(path) != before[path]}
    assert changed == {"unet"}
    assert "model_settings.unet.training.lr" in dvc("params", "diff", cwd=demo)
    assert "phantom.unet.seed0.dice_mean" in dvc("metrics", "show", cwd=demo)

    run(["git", "add", "-A"], demo)
    run(["git", "commit", "-q", "-m", "run"], demo)
    dvc("push", cwd=demo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(demo), str(clone)], tmp_path)
    storage = dvc("remote", "list", "--local", cwd=demo).split()[-1]
    dvc("remote", "modify", "--local", "local", "url", storage, cwd=clone)
    dvc("pull", cwd=clone)
    for path in [*files, demo / "results" / "report.html"]:
        assert digest(clone / path.relative_to(demo)) == digest(path)
    assert digest(clone / "data" / "raw" / "Phantom_demo" / "dataset.json") == digest(
        demo / "data" / "raw" / "Phantom_demo" / "dataset.json"
    )


def test_a_change_of_the_unet_code_reruns_the_unet_jobs_only(demo: Path, tmp_path: Path) -> None:
    """The rules declare the library files they run: after a behaviour change in the UNet's module, DVC
    sees the library changed and Snakemake plans the UNet's jobs and what depends on them, nothing of the
    other models."""
    demo = Path(shutil.copytree(demo, tmp_path / "repo", symlinks=True))
    unet = demo / "src" / "mednca" / "models" / "unet.py"
    unet.write_text(unet.read_text().replace("dropout: float = 0.0", "dropout: float = 0.0  # changed"))
    assert "models" in dvc("status", cwd=demo)
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/demo.yaml"]
    planned = run(command, demo)
    trained = set(re.findall(r"results/models/(\w+)/(\w+)/seed0/model\.pt", _jobs(planned, "train_model")))
    assert trained == {("phantom", "unet")}
    for rule in ("train_model", "finetune_model", "evaluate_model", "robustness_studies", "calibrate_nqm"):
        assert not re.search(r"(med_nca|segnet)", _jobs(planned, rule)), rule


def _jobs(plan: str, rule: str) -> str:
    """The text of every planned job of ``rule`` in a dry run's output."""
    return "\n".join(block for block in plan.split("\n\n") if f"rule {rule}:" in block)


def test_report_written_elsewhere_finds_every_result(demo: Path, tmp_path: Path) -> None:
    """The report reads only what the workflow declares, so writing it to another folder changes nothing."""
    report = demo / "results" / "report.html"
    before = digest(report)
    elsewhere = tmp_path / "elsewhere" / "report.html"
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/demo.yaml"]
    output = run([*command, "--config", f"report_html={elsewhere}", "--", str(elsewhere)], demo)
    assert "rule build_report:" in output and "rule train_model:" not in output
    html = elsewhere.read_text()
    assert "Missing results" not in html
    assert all(f"{dataset}: predictions" in html for dataset in DATASETS)
    assert html.count('id="main-results"') == 1 and html.count('id="stage-times"') == 1
    assert digest(report) == before, "the report of the results folder is left as it was"


# ------------------------------------------------------------------- the report in a real browser


@pytest.mark.parametrize("width", [1024, 1440])
def test_the_report_reads_in_a_browser(demo: Path, width: int) -> None:
    """Opened in headless Chromium as a reader would: every image decodes, every in-page link lands, no
    script or console error, nothing wider than the window at laptop widths, a wide table shows that it
    scrolls, and the claims table comes right after the run summary, before the detailed findings."""
    with browser.open_page(demo / "results" / "report.html", width) as (page, loaded):
        assert page.evaluate(browser.BROKEN_IMAGES) == []
        assert page.evaluate(browser.BROKEN_LINKS) == []
        assert page.evaluate(browser.PAGE_OVERFLOW) <= 0
        assert page.evaluate(browser.UNMARKED_SCROLLERS) == []
        assert page.evaluate(browser.CLAIMS_FIRST)
        assert page.locator("#claims-table tbody tr").count() >= 9
        page.emulate_media(media="print")
        assert page.evaluate(browser.FIGURES_KEPT_WHOLE)
    assert loaded.errors == []


def test_the_report_prints_to_pdf(demo: Path, tmp_path: Path) -> None:
    with browser.open_page(demo / "results" / "report.html", 1024) as (page, loaded):
        page.pdf(path=tmp_path / "report.pdf", format="A4")
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-" and loaded.errors == []


def test_a_missing_browser_is_a_skip_with_its_reason_unless_required(monkeypatch) -> None:
    monkeypatch.delenv(browser.REQUIRED, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no system Chromium"):
        browser.unavailable("no system Chromium")
    monkeypatch.setenv(browser.REQUIRED, "1")
    with pytest.raises(pytest.fail.Exception, match="requires the browser tests"):
        browser.unavailable("no system Chromium")
