"""The speed benchmark's bookkeeping (benchmarks/speed.py), on tiny shapes: what it counts and reports."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import speed  # noqa: E402


@pytest.fixture
def tiny(monkeypatch) -> None:
    """Batch 2 of 16x16 images, 3 steps: the cases' code paths in a fraction of a second."""
    monkeypatch.setattr(speed, "BATCH", 2)
    monkeypatch.setattr(speed, "SIZE", 16)
    monkeypatch.setattr(speed, "VOLUME_SLICES", 2)
    monkeypatch.setattr(speed, "STEPS", 3)
    small = {
        name: dataclasses.replace(case, batch=2, size=16, slices_per_forward=min(case.slices_per_forward, 2))
        for name, case in speed.CASES.items()
    }  # the cases' defaults were fixed when the module was imported
    monkeypatch.setattr(speed, "CASES", small)


@pytest.mark.parametrize(
    ("case", "rule", "flop_per_cell", "profiled"),
    [
        ("nca16_train", "gather", speed.nca_flop_per_cell_step(16), True),
        ("nca16_train_folded", "folded", speed.nca_flop_per_cell_step(16, folded=True), False),
        ("nca16_train_dense", "dense", speed.nca_flop_per_cell_step(16, sparse=False), False),
        ("nca16_infer_dense_bf16", "dense", speed.nca_flop_per_cell_step(16, sparse=False), True),
    ],
)
def test_nca_cases_count_the_work_of_their_formulation(
    tiny, monkeypatch: pytest.MonkeyPatch, case: str, rule: str, flop_per_cell: float, profiled: bool
) -> None:
    """Every formulation's FLOP count; the profiler's matmul share (seconds to parse) on two of them."""
    if not profiled:
        monkeypatch.setattr(speed, "matmul_seconds", lambda work: (0.0, 1.0))
    result = speed.run_case(case, torch.device("cpu"), repeats=1)
    assert result["cell_rule"] == rule
    backward = 3 if result["task"] == "train" else 1
    cell_steps = speed.nca_cell_steps(result["task"])
    assert result["gflop"] == pytest.approx(cell_steps * flop_per_cell * backward / 1e9)
    if profiled:
        assert 0 < result["matmul_share"] <= 1  # convolutions count as matrix work too
    else:
        assert "matmul_share" not in result
    assert result["seconds"] > 0 and result["peak_memory_mb"] > 0


def test_dense_rule_does_twice_the_firing_rules_arithmetic() -> None:
    assert speed.nca_flop_per_cell_step(16, sparse=False) == 2 * speed.nca_flop_per_cell_step(16)


def test_competitor_runs_only_inside_the_block() -> None:
    with speed.competitor(1) as process:
        assert process is not None and process.poll() is None
    assert process.poll() is not None
    with speed.competitor(0) as nothing:
        assert nothing is None
