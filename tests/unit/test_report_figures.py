"""Report figures: each draws for small synthetic input and for empty input; the PNGs are deterministic."""

from __future__ import annotations

import base64

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mednca.names import display_name
from mednca.report import figures
from mednca.report.figures import DatasetExample, OverlayRow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATASETS = ["hippocampus", "prostate"]
MODELS = ["unet", "med_nca", "nca"]
SEEDS = [0, 1]
CASES = [f"case_{index:03d}" for index in range(4)]
STUDY_VALUES = {
    "shift": [0.0, 0.1, 0.2],
    "scale_resize": [1.0, 0.5, 2.0],
    "noise": [0.0, 0.05, 0.1],
    "anisotropy": [1.0, 2.0, 4.0],
}


def png_bytes(uri: str) -> bytes:
    """The PNG bytes of a data URI made by ``to_data_uri``."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix) :])


def visible_axes(figure: Figure) -> list:
    """The visible axes of ``figure`` that are not colour bars."""
    return [axis for axis in figure.axes if axis.get_visible() and axis.get_label() != "<colorbar>"]


def disk(size: int, radius: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    """A (size, size) uint8 disk mask."""
    cy, cx = centre or (size / 2, size / 2)
    yy, xx = np.mgrid[:size, :size]
    return (((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2).astype(np.uint8)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def per_case(rng: np.random.Generator) -> pd.DataFrame:
    """dataset, model, seed, case_id, dice; one NaN Dice."""
    rows = [
        {"dataset": d, "model": m, "seed": s, "case_id": c, "dice": rng.uniform(0.5, 0.95)}
        for d in DATASETS
        for m in MODELS
        for s in SEEDS
        for c in CASES
    ]
    frame = pd.DataFrame(rows)
    frame.loc[0, "dice"] = np.nan
    return frame


@pytest.fixture(scope="module")
def summary(rng: np.random.Generator) -> pd.DataFrame:
    """One row per dataset x model; one NaN inference time and one NaN std."""
    frame = pd.DataFrame(
        [
            {
                "dataset": d,
                "model": m,
                "dice_mean": rng.uniform(0.6, 0.9),
                "dice_std": rng.uniform(0.01, 0.1),
                "parameters": float(rng.integers(5_000, 2_000_000)),
                "train_seconds": rng.uniform(60, 6000),
                "inference_seconds": rng.uniform(0.05, 5),
            }
            for d in DATASETS
            for m in MODELS
        ]
    )
    frame.loc[0, "inference_seconds"] = np.nan
    frame.loc[1, "dice_std"] = np.nan
    return frame


@pytest.fixture(scope="module")
def training(rng: np.random.Generator) -> pd.DataFrame:
    """dataset, model, seed, epoch, loss over 6 epochs."""
    rows = [
        {
            "dataset": d,
            "model": m,
            "seed": s,
            "epoch": e,
            "loss": float(np.exp(-0.3 * e) + rng.uniform(0, 0.05)),
        }
        for d in DATASETS
        for m in MODELS
        for s in SEEDS
        for e in range(6)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def robustness(rng: np.random.Generator) -> pd.DataFrame:
    """dataset, model, seed, case_id, study, severity, value, dice for the studies of STUDY_VALUES."""
    rows = [
        {
            "dataset": d,
            "model": m,
            "seed": s,
            "case_id": c,
            "study": study,
            "severity": severity,
            "value": value,
            "dice": float(np.clip(0.9 - 0.15 * severity + rng.normal(0, 0.05), 0, 1)),
        }
        for d in DATASETS
        for m in MODELS[:2]
        for s in SEEDS
        for c in CASES
        for study, values in STUDY_VALUES.items()
        for severity, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def points(rng: np.random.Generator) -> pd.DataFrame:
    """dataset, model, source, dice, nqm for the two NCAs."""
    rows = [
        {
            "dataset": d,
            "model": m,
            "source": source,
            "dice": rng.uniform(0.3, 0.95),
            "nqm": rng.uniform(0, 0.3),
        }
        for d in DATASETS
        for m in ["med_nca", "nca"]
        for source in ["clean", "noise", "shift"]
        for _ in range(5)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def overlay_rows(rng: np.random.Generator) -> list[OverlayRow]:
    """Two rows of 24 x 24 slices; 'nca' is missing from the second row."""
    label = disk(24, 6)
    rows = []
    for title in ["best: case_001 (Dice 0.91)", "worst: case_003 (mean Dice 0.61)"]:
        predictions = {"unet": disk(24, 5), "med_nca": disk(24, 7, (11, 13)), "nca": disk(24, 4)}
        if title.startswith("worst"):
            del predictions["nca"]
        rows.append(
            OverlayRow(
                title=title,
                image=rng.random((24, 24)),
                label=label,
                predictions=predictions,
                dice={"unet": 0.9, "med_nca": 0.8, "nca": float("nan")},
            )
        )
    return rows


@pytest.fixture(scope="module")
def gallery(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three severities of different slice sizes (scale study)."""
    contents: dict[str, np.ndarray] = {"case_id": np.array("case_001")}
    for severity, size in enumerate([24, 12, 36]):
        contents[f"image_{severity}"] = rng.random((size, size)).astype(np.float32)
        contents[f"label_{severity}"] = disk(size, size / 4)
        contents[f"prediction_{severity}"] = disk(size, size / 5)
    return contents


def test_model_palette_does_not_depend_on_order() -> None:
    forward = figures.model_palette(MODELS)
    backward = figures.model_palette(list(reversed(MODELS)) + ["unet"])
    assert forward == backward
    assert sorted(forward) == sorted(MODELS)
    assert len(set(forward.values())) == len(MODELS)
    assert figures.model_palette(["unet"])["unet"] == forward["unet"]
    assert figures.model_palette(["unet", "segnet_from_x"])["segnet_from_x"] not in (forward["unet"],)


def test_to_data_uri_is_png_and_closes(per_case: pd.DataFrame) -> None:
    figure = figures.dice_distribution(per_case)
    uri = figures.to_data_uri(figure)
    assert png_bytes(uri).startswith(PNG_MAGIC)


def test_figures_leave_no_global_state(per_case, training, robustness) -> None:
    before = dict(matplotlib.rcParams)
    for figure in [
        figures.dice_distribution(per_case),
        figures.training_curves(training),
        figures.robustness_curves(robustness[robustness["study"] == "noise"], "hippocampus"),
    ]:
        figures.to_data_uri(figure)
    assert plt.get_fignums() == []
    assert dict(matplotlib.rcParams) == before


def test_save_png_writes_the_same_bytes_as_the_data_uri(per_case: pd.DataFrame, tmp_path) -> None:
    path = figures.save_png(figures.dice_distribution(per_case), tmp_path / "sub" / "dice.png")
    assert path.read_bytes() == png_bytes(figures.to_data_uri(figures.dice_distribution(per_case)))


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda data: figures.dice_distribution(data["per_case"]), id="dice_distribution"),
        pytest.param(
            lambda data: figures.robustness_curves(data["robustness"], "hippocampus"), id="robustness"
        ),
    ],
)
def test_randomised_figures_are_deterministic(draw, per_case, robustness) -> None:
    data = {"per_case": per_case, "robustness": robustness}
    assert png_bytes(figures.to_data_uri(draw(data))) == png_bytes(figures.to_data_uri(draw(data)))


def test_robustness_curves_has_one_panel_per_study(robustness: pd.DataFrame) -> None:
    figure = figures.robustness_curves(robustness, "prostate")
    panels = visible_axes(figure)
    assert len(panels) == len(STUDY_VALUES)
    assert sorted(axis.get_title() for axis in panels) == sorted(STUDY_VALUES)
    assert {axis.get_title(): axis.get_xscale() for axis in panels}["anisotropy"] == "log"
    assert all(axis.get_ylim() == (0.0, 1.0) for axis in panels)
    figures.to_data_uri(figure)


def test_robustness_curves_single_severity_and_unknown_dataset(robustness: pd.DataFrame) -> None:
    clean = robustness[robustness["severity"] == 0]
    assert isinstance(figures.robustness_curves(clean, "hippocampus"), Figure)
    assert len(visible_axes(figures.robustness_curves(robustness, "brats"))) == 1


def all_texts(figure: Figure) -> list[str]:
    """Every text a reader sees: axis titles and labels, tick labels, annotations, legends, suptitle."""
    texts = [text.get_text() for text in figure.findobj(matplotlib.text.Text)]
    return [text for text in texts if text]


def test_dice_distribution_has_a_box_per_model_and_a_point_per_case(per_case: pd.DataFrame) -> None:
    figure = figures.dice_distribution(per_case)
    panels = visible_axes(figure)
    assert [axis.get_title() for axis in panels] == DATASETS
    names = [label.get_text() for label in panels[0].get_yticklabels()]
    assert names == [figures.model_label(m, 24) for m in sorted(MODELS)]  # one row per model, shared
    for axis, dataset in zip(panels, DATASETS, strict=True):
        assert axis.get_xlabel() == "Dice" and axis.get_xlim() == (0.0, 1.02)
        points = sum(len(collection.get_offsets()) for collection in axis.collections)
        assert points == per_case[per_case["dataset"] == dataset]["dice"].notna().sum()
        assert len(axis.patches) == len(MODELS)  # one box per model
    assert figure.get_figwidth() <= 12


def test_dice_vs_cost_places_each_model_at_its_cost(summary: pd.DataFrame) -> None:
    figure = figures.dice_vs_cost(summary)
    parameters, inference = visible_axes(figure)
    assert parameters.get_xlabel() == "parameters" and inference.get_xlabel() == "inference time (s / volume)"
    assert parameters.get_ylabel() == "mean test Dice" and parameters.get_xscale() == "log"
    assert len(parameters.containers) == len(summary)  # one error bar per dataset and model
    assert len(inference.containers) == summary["inference_seconds"].notna().sum()
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert {display_name(model) for model in MODELS} | set(DATASETS) <= legend


def test_training_curves_draw_one_line_per_model_and_seed(training: pd.DataFrame) -> None:
    figure = figures.training_curves(training)
    panels = visible_axes(figure)
    assert [axis.get_title() for axis in panels] == DATASETS
    for axis in panels:
        assert (axis.get_xlabel(), axis.get_ylabel(), axis.get_yscale()) == ("epoch", "training loss", "log")
        lines = [line for line in axis.get_lines() if len(line.get_xdata())]
        assert len(lines) == len(MODELS) * len(SEEDS)
        assert all(len(line.get_xdata()) == 6 for line in lines)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert {display_name(model) for model in MODELS} <= set(legend) and any("seed" in text for text in legend)


@pytest.mark.parametrize("threshold", [0.12, None])
def test_nqm_vs_dice_marks_the_failure_line_and_the_threshold(points: pd.DataFrame, threshold) -> None:
    figure = figures.nqm_vs_dice(points, threshold=threshold, failure_dice=0.8)
    panels = visible_axes(figure)
    assert sorted(axis.get_title() for axis in panels) == [
        f"{dataset} / {display_name(model)}" for dataset in DATASETS for model in ("med_nca", "nca")
    ]
    for axis in panels:
        assert axis.get_xlabel() == "NQM"
        assert sum(len(collection.get_offsets()) for collection in axis.collections) == 15
        horizontal = [line for line in axis.get_lines() if list(line.get_ydata()) == [0.8, 0.8]]
        vertical = [line for line in axis.get_lines() if list(line.get_xdata()) == [0.12, 0.12]]
        assert len(horizontal) == 1 and len(vertical) == (threshold is not None)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "failure: Dice < 0.8" in legend and ("NQM threshold 0.12" in legend) == (threshold is not None)


def test_learning_curves_draw_each_run_against_time_and_steps_with_the_paper_lines() -> None:
    curves = pd.DataFrame(
        {
            "dataset": ["h"] * 5,
            "model": ["med_nca"] * 3 + ["unet"] * 2,
            "seed": 0,
            "iterations": [100, 200, 300, 50, 100],
            "train_seconds": [600.0, 1200.0, 1800.0, 60.0, 120.0],
            "dice_mean": [0.7, 0.8, 0.85, 0.8, 0.86],
        }
    )
    figure = figures.learning_curves(curves, {"h": {"med_nca": 0.886, "unet": 0.858}})
    time_axis, steps_axis = figure.axes
    assert time_axis.get_xlabel() == "training time (min)" and steps_axis.get_xlabel() == "optimiser steps"
    for axis in (time_axis, steps_axis):
        runs = [line for line in axis.get_lines() if line.get_linestyle() != ":"]
        assert sorted(len(line.get_xdata()) for line in runs) == [2, 3]
        assert sorted(line.get_ydata()[0] for line in axis.get_lines() if line.get_linestyle() == ":") == [
            0.858,
            0.886,
        ]
    nca = next(line for line in time_axis.get_lines() if len(line.get_xdata()) == 3)
    assert list(nca.get_xdata()) == [10.0, 20.0, 30.0]
    assert png_bytes(figures.to_data_uri(figure)).startswith(PNG_MAGIC)


def test_perturbation_gallery_shows_each_model_at_each_severity(gallery) -> None:
    figure = figures.perturbation_gallery({"med_nca": gallery, "unet": gallery}, "scale_resize on case_001")
    panels = visible_axes(figure)
    assert len(panels) == 2 * 3
    assert [axis.get_title() for axis in panels[:3]] == ["severity 0", "severity 1", "severity 2"]
    assert figure._suptitle.get_text() == "scale_resize on case_001"
    row_labels = [text.get_text() for axis in panels for text in axis.texts]
    assert row_labels == ["med_nca", "unet"]
    for axis, size in zip(panels, [24, 12, 36] * 2, strict=True):
        image = axis.get_images()[0].get_array()
        assert image.shape[:2] in ((size, size),)  # each severity keeps its own slice size


def test_nca_trajectory_titles_each_snapshot_with_its_level_and_step(rng: np.random.Generator) -> None:
    probabilities = rng.random((3, 16, 16))
    figure = figures.nca_trajectory(
        np.array([0, 8, 16]), np.array([1, 1, 2]), probabilities, rng.random((16, 16))
    )
    panels = [axis for axis in visible_axes(figure) if axis.get_title()]
    assert [axis.get_title() for axis in panels] == [
        "input",
        "level 1, step 0",
        "level 1, step 8",
        "level 2, step 16",
    ]
    shown = panels[3].get_images()[0].get_array()
    np.testing.assert_allclose(shown, probabilities[2].T)
    assert "foreground probability" in all_texts(figure)


def test_dataset_examples_title_each_panel_with_dataset_and_case(rng: np.random.Generator) -> None:
    figure = figures.dataset_examples(
        [
            DatasetExample("hippocampus", "case_001", rng.random((24, 20)), disk(24, 5)[:, :20]),
            DatasetExample("prostate", "case_002", rng.random((32, 32)), disk(32, 8)),
        ]
    )
    panels = visible_axes(figure)
    assert [axis.get_title() for axis in panels] == ["hippocampus\ncase_001", "prostate\ncase_002"]
    assert all(len(axis.get_images()) == 1 for axis in panels)
    assert figure.get_figwidth() <= 12


def test_overlay_grid_layout(overlay_rows) -> None:
    figure = figures.overlay_grid(overlay_rows, ["med_nca", "nca", "unet"])
    assert len(figure.axes) == len(overlay_rows) * 5
    titles = [axis.get_title() for axis in figure.axes]
    models = ["Med-NCA\nDice 0.80", "single-level\nNCA\nDice n/a", "UNet\nDice 0.90"]  # display names
    assert titles[:5] == ["image", "ground truth", *models]
    assert any(text.get_text() == "missing" for text in figure.axes[8].texts)
    figures.to_data_uri(figure)


def test_nca_trajectory_wraps_beyond_ten_snapshots(rng: np.random.Generator) -> None:
    probabilities = rng.random((12, 8, 8))
    figure = figures.nca_trajectory(np.arange(12), np.zeros(12, dtype=int), probabilities, rng.random((8, 8)))
    panels = visible_axes(figure)
    assert len(panels) == 13
    assert panels[1].get_title() == "level 0, step 0"
    assert [axis.get_subplotspec().rowspan.start for axis in panels] == [0] * 11 + [1] * 2
    figures.to_data_uri(figure)


EMPTY_CASES = {
    "dice_distribution": lambda: figures.dice_distribution(pd.DataFrame()),
    "dice_distribution_all_nan": lambda: figures.dice_distribution(
        pd.DataFrame({"dataset": ["a"], "model": ["m"], "seed": [0], "case_id": ["c"], "dice": [np.nan]})
    ),
    "dice_vs_cost": lambda: figures.dice_vs_cost(pd.DataFrame()),
    "dice_vs_cost_no_costs": lambda: figures.dice_vs_cost(
        pd.DataFrame(
            {
                "dataset": ["a"],
                "model": ["m"],
                "dice_mean": [0.8],
                "dice_std": [np.nan],
                "parameters": [np.nan],
            }
            | {"train_seconds": [np.nan], "inference_seconds": [0.0]}
        )
    ),
    "training_curves": lambda: figures.training_curves(pd.DataFrame()),
    "learning_curves": lambda: figures.learning_curves(pd.DataFrame(), {}),
    "robustness_curves": lambda: figures.robustness_curves(pd.DataFrame(), "hippocampus"),
    "nqm_vs_dice": lambda: figures.nqm_vs_dice(pd.DataFrame(), threshold=None, failure_dice=0.8),
    "overlay_grid": lambda: figures.overlay_grid([], ["unet"]),
    "overlay_grid_bad_image": lambda: figures.overlay_grid(
        [OverlayRow("x", np.zeros((0, 0)), np.zeros((0, 0), np.uint8), {}, {})], ["unet"]
    ),
    "perturbation_gallery": lambda: figures.perturbation_gallery({}, "nothing"),
    "nca_trajectory": lambda: figures.nca_trajectory(
        np.array([], int), np.array([], int), np.zeros((0, 8, 8)), np.zeros((8, 8))
    ),
    "dataset_examples": lambda: figures.dataset_examples([]),
}


@pytest.mark.parametrize("draw", list(EMPTY_CASES.values()), ids=list(EMPTY_CASES))
def test_empty_input_gives_a_figure_that_says_so(draw) -> None:
    figure = draw()
    assert isinstance(figure, Figure)
    texts = all_texts(figure)
    assert figures.NO_DATA in texts or "missing" in texts, texts
    assert png_bytes(figures.to_data_uri(figure)).startswith(PNG_MAGIC)


def test_crowded_tick_labels_are_thinned() -> None:
    noise = np.array([0.0, 0.025, 0.05, 0.1, 0.2])
    assert figures._spaced_labels(noise, log=False) == ["0", "", "0.05", "0.1", "0.2"]
    zoom = np.array([0.5, 0.75, 1.0, 1.5, 2.0])
    assert figures._spaced_labels(zoom, log=True) == ["0.5", "0.75", "1", "1.5", "2"]
    assert figures._spaced_labels(np.array([3.0]), log=False) == ["3"]


def test_training_curves_of_one_epoch_show_the_point() -> None:
    figure = figures.training_curves(
        pd.DataFrame({"dataset": ["a"], "model": ["m"], "seed": [0], "epoch": [0], "loss": [0.5]})
    )
    (axis,) = visible_axes(figure)
    (line,) = [line for line in axis.get_lines() if len(line.get_xdata())]
    assert list(line.get_ydata()) == [0.5] and line.get_marker() == "o"


# ------------------------------------------------------------------------------- legible labels


MANY_MODELS = ["med_nca", "nca", "unet", "segnet", "segnet_from_phantom_multimodal"]
MANY_MODELS += ["unet_from_brats_multimodal", "med_nca_from_hippocampus", "segnet_from_prostate"]


def _label_boxes(figure: Figure) -> list[list]:
    """Per axis and direction, the display-space boxes of its visible non-empty tick labels; the column
    titles of all axes as one more group (the overlay grid's model names)."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    groups = []
    for axis in visible_axes(figure):
        for labels in (axis.get_xticklabels(), axis.get_yticklabels()):
            shown = [label for label in labels if label.get_visible() and label.get_text()]
            groups.append([label.get_window_extent(renderer) for label in shown])
    titles = [axis.title for axis in visible_axes(figure) if axis.title.get_text()]
    rows = {}
    for title in titles:
        box = title.get_window_extent(renderer)
        rows.setdefault(round(box.y0), []).append(box)
    groups += list(rows.values())
    return groups


def _overlaps(groups: list[list]) -> list[tuple]:
    return [
        (first, second)
        for boxes in groups
        for index, first in enumerate(boxes)
        for second in boxes[index + 1 :]
        if first.overlaps(second)
    ]


@pytest.mark.parametrize("count", [2, 8])
def test_no_tick_or_category_labels_overlap(count: int, rng: np.random.Generator) -> None:
    """The figures whose labels grow with the models, for 2 and for 8 of them (long fine-tuned names too)."""
    models = MANY_MODELS[:count]
    per_case = pd.DataFrame(
        [
            {"dataset": d, "model": m, "seed": 0, "case_id": c, "dice": rng.uniform(0.5, 0.95)}
            for d in DATASETS
            for m in models
            for c in CASES
        ]
    )
    summary = pd.DataFrame(
        [
            {
                "dataset": d,
                "model": m,
                "dice_mean": rng.uniform(0.6, 0.9),
                "dice_std": 0.05,
                "parameters": float(10 ** rng.uniform(3.5, 7.6)),
                "inference_seconds": float(10 ** rng.uniform(-2, 1)),
            }
            for d in DATASETS
            for m in models
        ]
    )
    image = rng.random((32, 32))
    row = OverlayRow(
        "best: case_000 (mean Dice 0.900)", image, disk(32, 8), {m: disk(32, 7) for m in models},
        {m: 0.9 for m in models},
    )  # fmt: skip
    drawn = {
        "dice_distribution": figures.dice_distribution(per_case),
        "dice_vs_cost": figures.dice_vs_cost(summary),
        "overlay_grid": figures.overlay_grid([row], models),
    }
    for name, figure in drawn.items():
        assert not _overlaps(_label_boxes(figure)), name
        plt.close(figure)
