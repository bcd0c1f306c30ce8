"""The data-efficiency study: nested case subsets and its table of runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mednca.errors import DataError
from mednca.evaluate.columns import CURVE_COLUMNS, EFFICIENCY_COLUMNS
from mednca.evaluate.efficiency import efficiency_table_stage
from mednca.train.data import choose_cases


def test_a_seeds_cases_are_nested_across_k_and_differ_between_seeds() -> None:
    ids = [f"case{index:02d}" for index in range(30)]
    for seed in (0, 1):
        subsets = [set(choose_cases(ids, k, seed)) for k in (2, 5, 10, 20)]
        assert [len(subset) for subset in subsets] == [2, 5, 10, 20]
        assert all(small <= large for small, large in zip(subsets, subsets[1:], strict=False))
    assert choose_cases(ids, 10, 0) != choose_cases(ids, 10, 1)
    assert choose_cases(ids, None, 0) == choose_cases(ids, 50, 0) == ids


def _run(folder: Path, train_cases: int, dice: float, seconds: float = 60.0) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    training = {
        "train_cases": train_cases,
        "iterations": 100,
        "train_seconds": seconds,
        "settings": {"batch_size": 8},
    }
    (folder / "training.json").write_text(json.dumps(training))
    point = {"epoch": 3, "iterations": 100, "train_seconds": seconds, "cases": 7, "dice_mean": dice}
    pd.DataFrame([point | {"dice_std": 0.1, "hd95_mean": 2.0, "hd95_std": 0.5}]).to_csv(
        folder / "score.csv", index=False
    )
    return folder / "score.csv", folder / "training.json"


def test_the_table_has_one_row_per_run_with_its_budget_and_score(tmp_path: Path, caplog) -> None:
    runs = [("unet", "2", 0), ("unet", "all", 0), ("med_nca", "50", 1)]
    files = [
        _run(tmp_path / "a", 2, 0.5),
        _run(tmp_path / "b", 40, 0.8),
        _run(tmp_path / "c", 40, 0.7),  # the train split has fewer cases than asked for
    ]
    scores, trainings = zip(*files, strict=True)
    with caplog.at_level("WARNING"):
        table = efficiency_table_stage("h", runs, scores, trainings, tmp_path / "table.csv")
    assert "asked for 50 training cases, the train split has 40" in caplog.text
    assert list(table.columns) == EFFICIENCY_COLUMNS
    assert table[["model", "cases", "train_cases", "seed"]].values.tolist() == [
        ["unet", "2", 2, 0], ["unet", "all", 40, 0], ["med_nca", "50", 40, 1]
    ]  # fmt: skip
    assert table["dice_mean"].tolist() == [0.5, 0.8, 0.7] and (table["batch_size"] == 8).all()
    written = pd.read_csv(tmp_path / "table.csv", dtype={"cases": str})
    pd.testing.assert_frame_equal(written, table)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda score, training: training.write_text("{"), "training.json: not a readable training summary"),
        (lambda score, training: score.write_text(""), "score.csv: cannot read the score"),
        (
            lambda score, training: pd.concat([pd.read_csv(score)] * 2).to_csv(score, index=False),
            "score.csv: not the score of one trained model",
        ),
        (
            lambda score, training: pd.read_csv(score).drop(columns="dice_mean").to_csv(score, index=False),
            f"needs one row of {', '.join(CURVE_COLUMNS)}",
        ),
    ],
)
def test_a_damaged_run_file_is_named(tmp_path: Path, damage, problem: str) -> None:
    score, training = _run(tmp_path / "run", 2, 0.5)
    damage(score, training)
    with pytest.raises(DataError, match=problem):
        efficiency_table_stage("h", [("unet", "2", 0)], [score], [training], tmp_path / "table.csv")
    assert not (tmp_path / "table.csv").exists()
