"""The claims table: one row per claim, its verdict from the run's paired results, "not tested" with a reason
where the run cannot test it, and the same differences as the findings sentences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mednca.errors import DataError
from mednca.report.claims import Evidence, claim_rows, edge_row, parameter_row
from mednca.report.collect import Run, load_edge_record
from mednca.report.findings import dice_findings
from mednca.report.statistics import HELD, INCONCLUSIVE, NOT_HELD, NOT_TESTED, clustered_correlation
from mednca.report.tables import robustness_summary

PAPER_RESULTS = {
    "hippocampus": {"med_nca": {"dice": 0.886}, "unet": {"dice": 0.858}},
    "prostate": {"med_nca": {"dice": 0.838}, "unet": {"dice": 0.799}},
}
PAPER_PARAMETERS = {"med_nca": 70016, "unet": 37000000}
STUDIES = {"shift": [0.0, 0.3], "scale_resize": [1.0, 0.5], "noise": [0.0, 0.2], "motion": [0.0, 0.6]}


def per_case_table(cases: int, nca_gain: float, rng: np.random.Generator) -> pd.DataFrame:
    """hippocampus test Dice of Med-NCA and the UNet on ``cases`` cases, Med-NCA ``nca_gain`` higher."""
    unet = rng.uniform(0.80, 0.86, cases)
    rows = []
    for model, dice in (("unet", unet), ("med_nca", unet + nca_gain + rng.normal(0, 0.002, cases))):
        rows += [
            {"dataset": "hippocampus", "model": model, "seed": 0, "case_id": f"c{i:02d}", "dice": float(d)}
            for i, d in enumerate(dice)
        ]
    return pd.DataFrame(rows)


def robustness_table(cases: int, rng: np.random.Generator) -> pd.DataFrame:
    """Per case and study: clean and one perturbed level. Med-NCA loses 0.01 under shift and noise, 0.3
    under scale; the UNet loses 0.1 everywhere. Med-NCA's NQM falls as its Dice rises."""
    rows = []
    for case in range(cases):
        clean = float(rng.uniform(0.8, 0.9))
        for study, values in STUDIES.items():
            for severity, value in enumerate(values):
                nca_drop = (0.3 if study == "scale_resize" else 0.01) * severity
                for model, drop in (("med_nca", nca_drop), ("unet", 0.1 * severity)):
                    dice = clean - drop + float(rng.normal(0, 0.001))
                    rows.append(
                        {
                            "dataset": "hippocampus", "model": model, "seed": 0, "case_id": f"c{case:02d}",
                            "study": study, "severity": severity, "value": value, "dice": dice,
                            "nqm": 0.5 - 0.5 * dice + float(rng.normal(0, 0.005)),
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def inputs(cases: int = 20, nca_gain: float = 0.02, **changes) -> Evidence:
    rng = np.random.default_rng(0)
    per_case = per_case_table(cases, nca_gain, rng)
    robustness = robustness_table(cases, rng)
    table = pd.DataFrame(
        [
            {"dataset": "hippocampus", "model": "med_nca", "parameters": 25920},
            {"dataset": "hippocampus", "model": "unet", "parameters": 1627278},
        ]
    )
    quality = {Run("hippocampus", "med_nca", 0): {"failures": 3, "failures_caught": 2}}
    values = {
        "datasets": ["hippocampus"],
        "table": table,
        "per_case": per_case,
        "robust": robustness_summary(robustness),
        "robustness": robustness,
        "quality": quality,
        "curves": pd.DataFrame(columns=["dataset", "model", "seed", "train_seconds", "dice_mean"]),
        "paper_results": PAPER_RESULTS,
        "paper_parameters": PAPER_PARAMETERS,
    }
    return Evidence(**{**values, **changes})


def by_claim(rows) -> dict[str, object]:
    return {row.claim: row for row in rows}


def test_every_claim_has_a_row_with_a_verdict_and_a_link() -> None:
    rows = by_claim(claim_rows(inputs()))
    dice = rows["hippocampus: Med-NCA's Dice beats the UNet's"]
    assert dice.verdict == HELD and dice.paper == "+0.028 (0.886 vs 0.858)"
    assert dice.sample == "20 cases, 1 seed" and "95 % CI" in dice.measured
    assert rows["prostate: Med-NCA's Dice beats the UNet's"].verdict == NOT_TESTED
    assert "no prostate dataset" in rows["prostate: Med-NCA's Dice beats the UNet's"].measured
    shift = next(row for claim, row in rows.items() if "strong shifts" in claim)
    scale = next(row for claim, row in rows.items() if "scale" in claim)
    artefacts = next(row for claim, row in rows.items() if "artefacts" in claim)
    assert (shift.verdict, scale.verdict, artefacts.verdict) == (HELD, NOT_HELD, HELD)
    assert "scale_resize at 0.5" in scale.measured
    assert "held in 2, not in 0, inconclusive in 0 of 2 studies" in artefacts.measured
    nqm = rows["hippocampus: Med-NCA's NQM flags failed segmentations"]
    assert nqm.verdict == HELD and "threshold caught 2 of 3 failures" in nqm.measured
    assert rows["hippocampus: Med-NCA beats the UNet at equal training time"].verdict == NOT_TESTED
    assert rows["Med-NCA runs on Raspberry-Pi-class hardware"].verdict == NOT_TESTED
    transfer = next(row for claim, row in rows.items() if "pre-trained" in claim)
    assert transfer.verdict == NOT_TESTED and "data-efficiency" in transfer.measured
    assert all(row.section for row in rows.values())


def test_the_dice_verdict_is_the_findings_verdict() -> None:
    """Both come from the same paired difference: a small gain on 3 cases is inconclusive in both."""
    few = inputs(cases=3, nca_gain=0.05)
    row = claim_rows(few)[0]
    assert row.verdict == INCONCLUSIVE and "no interval from 3" in row.measured
    table = few.table.assign(
        dice_mean=[0.9, 0.85], paper_dice=[0.886, 0.858], inference_seconds=[1.0, 0.1], cases=[3, 3]
    )
    sentences = " ".join(dice_findings(table, PAPER_PARAMETERS, few.per_case))
    assert "was inconclusive at this sample size" in sentences
    assert claim_rows(inputs(nca_gain=-0.02))[0].verdict == NOT_HELD


def test_the_parameter_ratio_is_judged_against_the_papers() -> None:
    row = parameter_row(inputs())
    assert row.verdict == NOT_HELD and row.measured == "25,920 vs 1,627,278 (63x)"
    assert row.paper == "70,016 vs 37,000,000 (528x)"
    bigger_unet = inputs().table.assign(parameters=[25920, 20_000_000])
    assert parameter_row(inputs(table=bigger_unet)).verdict == HELD


def test_nqm_correlation_resamples_whole_cases() -> None:
    """Rows of one case move together: the interval is that of cases, not of rows."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"case_id": np.repeat([f"c{i}" for i in range(30)], 10), "seed": 0, "dice": rng.random(300)}
    )
    frame["nqm"] = -frame["dice"] + rng.normal(0, 0.1, 300)
    correlation = clustered_correlation(frame, "nqm", "dice")
    assert correlation.mean < -0.8 and correlation.high < 0 and correlation.n_cases == 30
    assert clustered_correlation(frame, "nqm", "dice").low == correlation.low  # seeded, same every build


def test_the_edge_claim_follows_the_profile(tmp_path) -> None:
    rows = [
        {"runtime": "onnxruntime", "threads": 1, "workload": "volume", "median_s": 2.9, "peak_rss_mb": 193.0,
         "repeats": 10},
        {"runtime": "pytorch", "threads": 1, "workload": "volume", "median_s": 2.2, "peak_rss_mb": 432.0,
         "repeats": 10},
    ]  # fmt: skip
    record = {"machine": {"cpu": "AMD EPYC"}, "rows": rows}
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(record))
    row = edge_row(load_edge_record(path))
    assert row.verdict == HELD and row.measured.startswith("onnxruntime, 1 thread: 193 MB peak")
    heavy = {**record, "rows": [{**rows[0], "peak_rss_mb": 900.0}]}
    assert edge_row(heavy).verdict == NOT_HELD
    path.write_text(json.dumps({"rows": [{"runtime": "pytorch"}]}))
    with pytest.raises(DataError, match="edge.json: not an edge-profile record"):
        load_edge_record(path)
