"""Figures of the HTML report, drawn with matplotlib's object-oriented API and seaborn's axes-level functions.

Every function takes plain DataFrames or arrays and returns a :class:`matplotlib.figure.Figure` that no
pyplot state refers to; :func:`to_data_uri` turns it into an inline PNG. Empty or partial input gives a
figure that says "no data" instead of an error, so the report works for any subset of results. All
randomness (strip jitter, bootstrap bands) is seeded and PNGs carry no software or time metadata, so the
same input gives byte-identical images. Model colours come from :func:`model_palette` (sorted names), so a
model has the same colour in every figure drawn from the same set of models. 2D slices are shown transposed
with ``origin="lower"`` (array axis 0 runs left to right, axis 1 bottom to top).
"""

from __future__ import annotations

import base64
import io
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, MaxNLocator, NullFormatter

from mednca.names import MODEL_NAMES, display_name
from mednca.studies import STUDIES

DPI = 100
MAX_WIDTH = 12.0
NO_DATA = "no data"
LABEL_COLOUR = "#2ca02c"
OVERLAY_LABEL_COLOUR = "#ffd92f"  # yellow: ground truth next to model colours, which include a green
PREDICTION_COLOUR = "#d62728"
MASK_ALPHA = 0.4
CLEAN_COLOUR = sns.color_palette("colorblind")[2]
PERTURBED_COLOUR = sns.color_palette("colorblind")[3]
DATASET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LOG2_STUDIES = frozenset(name for name, study in STUDIES.items() if study.log_axis)
STUDY_X_LABELS = {name: study.axis_label for name, study in STUDIES.items()}
SEED_DASHES: tuple[tuple[float, ...], ...] = ((), (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1))
MAX_STUDY_COLUMNS = 5
MAX_SNAPSHOTS_PER_ROW = 10
SEVERITY_KEY = re.compile(r"^image_(\d+)$")


@dataclass(frozen=True)
class OverlayRow:
    """One row of :func:`overlay_grid`: a (H, W) float image, its (H, W) {0, 1} label, and per model its
    (H, W) {0, 1} prediction and Dice (a model may be missing from either dict)."""

    title: str
    image: np.ndarray
    label: np.ndarray
    predictions: dict[str, np.ndarray]
    dice: dict[str, float]


@dataclass(frozen=True)
class DatasetExample:
    """A (H, W) float image slice and its (H, W) integer label from one case of one dataset."""

    dataset: str
    case_id: str
    image: np.ndarray
    label: np.ndarray


# ----------------------------------------------------------------------------------------------- helpers


PREFERRED_COLOURS = {name: index for index, name in enumerate(MODEL_NAMES)}
"""Palette positions of the base models, so a model keeps its colour in every figure of a report."""


def model_palette(models: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """Each distinct model name mapped onto seaborn's "colorblind" palette (10 colours).

    The base models always get the same colour; other names (fine-tuned models) take the free colours in
    sorted order, cycling when more than 10 models are drawn.
    """
    colours = sns.color_palette("colorblind", 10)
    names = sorted({str(model) for model in models})
    palette = {name: colours[PREFERRED_COLOURS[name]] for name in names if name in PREFERRED_COLOURS}
    free = [index for index in range(10) if index not in PREFERRED_COLOURS.values()]
    others = [name for name in names if name not in palette]
    palette |= {name: colours[free[index % len(free)]] for index, name in enumerate(others)}
    return {name: tuple(colour) for name, colour in palette.items()}


def to_data_uri(figure: Figure, dpi: int = DPI) -> str:
    """PNG of the figure as 'data:image/png;base64,...'; closes the figure. Same figure -> same bytes."""
    return "data:image/png;base64," + base64.b64encode(_png_bytes(figure, dpi)).decode("ascii")


def save_png(figure: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write the figure as a PNG at ``path`` (parent folders created) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png_bytes(figure, dpi))
    return path


def to_svg(figure: Figure) -> str:
    """SVG text of the figure without a date and with fixed element ids (text drawn as paths), so the same
    figure gives the same text on every machine with the same matplotlib; closes the figure."""
    buffer = io.StringIO()
    try:
        with plt.rc_context({"svg.hashsalt": "mednca", "svg.fonttype": "path"}):
            figure.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _png_bytes(figure: Figure, dpi: int) -> bytes:
    """PNG bytes of the figure without metadata (so the same figure gives the same bytes); closes it."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _clean(
    frame: pd.DataFrame | None, text: Sequence[str], numeric: Sequence[str], required: Sequence[str] = ()
) -> pd.DataFrame:
    """Copy of ``frame`` restricted to the ``text`` (as str) and ``numeric`` (as float, inf -> NaN) columns,
    without the rows whose ``required`` columns are NaN; an empty frame if ``frame`` lacks a column."""
    columns = [*text, *numeric]
    if frame is None or not set(columns) <= set(frame.columns):
        return pd.DataFrame(
            {column: pd.Series(dtype=float if column in numeric else str) for column in columns}
        )
    cleaned = frame.loc[:, columns].copy()
    for column in text:
        cleaned[column] = cleaned[column].astype(str)
    for column in numeric:
        values = pd.to_numeric(cleaned[column], errors="coerce").astype(float)
        cleaned[column] = values.where(np.isfinite(values))
    return cleaned.dropna(subset=list(required)).reset_index(drop=True)


def _figure(width: float, height: float) -> Figure:
    """A constrained-layout figure no wider than MAX_WIDTH inches, not registered with pyplot."""
    return Figure(figsize=(min(width, MAX_WIDTH), height), dpi=DPI, layout="constrained")


def _grid(figure: Figure, panels: int, columns: int, **kwargs) -> list[Axes]:
    """``panels`` axes in a grid of at most ``columns`` columns, row-major; the unused cells are removed."""
    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    axes = list(figure.subplots(rows, columns, squeeze=False, **kwargs).ravel())
    for extra in axes[panels:]:
        extra.remove()
    return axes[:panels]


def _spaced_labels(values: np.ndarray, log: bool, min_gap: float = 0.15) -> list[str]:
    """Tick labels for sorted ``values``, blank where a label would sit closer than ``min_gap`` of the axis
    span to the previous shown one (so that 0, 0.025 and 0.05 do not print over each other)."""
    positions = np.log2(values) if log else values.astype(float)
    span = float(positions[-1] - positions[0]) or 1.0
    labels, last = [], -np.inf
    for value, position in zip(values, positions, strict=True):
        show = (position - last) / span >= min_gap
        labels.append(f"{value:g}" if show else "")
        last = position if show else last
    return labels


def _say(axis: Axes, message: str = NO_DATA) -> None:
    """Write ``message`` in the middle of ``axis`` and hide its ticks."""
    axis.text(0.5, 0.5, message, transform=axis.transAxes, ha="center", va="center", fontsize=10, color="0.4")
    axis.set_xticks([])
    axis.set_yticks([])


def _no_data_figure(title: str = "", message: str = NO_DATA) -> Figure:
    """A small figure with one axes that says ``message``."""
    figure = _figure(4.0, 2.5)
    axis = figure.subplots()
    _say(axis, message)
    if title:
        axis.set_title(title, fontsize=10)
    return figure


def _as_slice(array: np.ndarray | None) -> np.ndarray | None:
    """A (H, W) float array from a (H, W) or (C, H, W) array (first channel); None if not possible."""
    if array is None:
        return None
    values = np.asarray(array)
    if values.ndim == 3:
        values = values[0]
    if values.ndim != 2 or values.size == 0 or not np.issubdtype(values.dtype, np.number):
        return None
    return values.astype(float)


def _show_image(axis: Axes, image: np.ndarray | None) -> bool:
    """Draw a (H, W) image in grey (1st-99th percentile window), axes off; False ('no data') if unusable."""
    values = _as_slice(image)
    if values is None:
        _say(axis)
        axis.set_frame_on(False)
        return False
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    axis.imshow(values.T, cmap="gray", origin="lower", vmin=low, vmax=high, interpolation="nearest")
    axis.set_axis_off()
    return True


def _show_mask(
    axis: Axes,
    mask: np.ndarray | None,
    shape: tuple[int, ...],
    colour,
    filled: bool = True,
    width: float = 1.0,
) -> None:
    """Overlay a (H, W) binary mask matching ``shape``: filled in ``colour`` (alpha) and/or its outline."""
    values = _as_slice(mask)
    if values is None or values.shape != shape:
        if mask is not None:
            axis.text(0.02, 0.02, "mask size differs", transform=axis.transAxes, fontsize=7, color="yellow")
        return
    binary = values > 0.5
    if filled and binary.any():
        overlay = np.zeros((*binary.T.shape, 4))
        overlay[binary.T] = to_rgba(colour, MASK_ALPHA)
        axis.imshow(overlay, origin="lower", interpolation="nearest")
    if binary.any() and not binary.all():
        axis.contour(binary.T.astype(float), levels=[0.5], colors=[colour], linewidths=width)


def _wrap_label(title: str, width: int = 30) -> str:
    """``title`` broken before its first ' (' and wrapped at ``width`` characters, for a rotated row label."""
    head, bracket, tail = title.partition(" (")
    parts = [head, f"({tail}"] if bracket else [head]
    return "\n".join(textwrap.fill(part, width) for part in parts)


def model_label(model: str, width: int = 16) -> str:
    """A model's display name wrapped at ``width`` characters, for a category or column label."""
    return textwrap.fill(display_name(model), width, break_long_words=False)


LOG_TICK_MANTISSAS = (1, 5, 2, 3, 4, 6, 7, 8, 9)
"""Candidate tick mantissas, the roundest first: decades are labelled wherever they fit."""


def _log_ticks(axis: Axes, values: np.ndarray, formatter) -> None:
    """Log-scale x limits around ``values`` and at most about 5 labelled ticks, each at least a fifth of
    the axis from the others (so labels never overlap, over a fraction of a decade or over ten); the
    roundest values are chosen first, evenly stepped ones where no round value fits; minor ticks
    unlabelled."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = 0.12 * max(math.log10(high / low), 0.3)
    low, high = low / 10**pad, high * 10**pad
    axis.set_xlim(low, high)
    gap = math.log10(high / low) / 5
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    candidates = [mantissa * 10.0**decade for mantissa in LOG_TICK_MANTISSAS for decade in decades]
    candidates += list(MaxNLocator(nbins=4).tick_values(low, high))  # within a fraction of a decade
    chosen: list[float] = []
    for tick in (float(value) for value in candidates if low <= value <= high):
        if not any(abs(math.log10(tick / other)) < gap for other in chosen):
            chosen.append(tick)
    axis.set_xticks(sorted(chosen))
    axis.xaxis.set_major_formatter(formatter)
    axis.xaxis.set_minor_formatter(NullFormatter())


def _legend_handles(colours: Mapping[str, object], marker: str = "o") -> list[Line2D]:
    """One legend line per (label -> colour) entry; model names as readers know them ('Med-NCA')."""
    return [
        Line2D([], [], color=colour, marker=marker, linestyle="-", markersize=5, label=display_name(label))
        for label, colour in colours.items()
    ]


# ------------------------------------------------------------------------------------------ tables


def dice_distribution(per_case: pd.DataFrame) -> Figure:
    """Horizontal box plot + jittered points of per-case Dice, one row per model (its display name as the
    row label, so the names never overlap however many models there are), one panel per dataset.

    per_case columns: dataset, model, seed, case_id, dice (float; NaN rows are left out).
    """
    data = _clean(per_case, ["dataset", "model"], ["dice"], required=["dice"])
    if data.empty:
        return _no_data_figure("Dice per case")
    datasets, models = sorted(data["dataset"].unique()), sorted(data["model"].unique())
    palette = model_palette(models)
    figure = _figure(1.6 + 3.4 * len(datasets), 0.9 + 0.42 * len(models))
    axes = _grid(figure, len(datasets), min(len(datasets), 3), sharey=True)
    for axis, dataset in zip(axes, datasets, strict=True):
        subset = data[data["dataset"] == dataset]
        rng = np.random.default_rng(0)
        for position, model in enumerate(models):
            dice = subset.loc[subset["model"] == model, "dice"].to_numpy()
            if dice.size == 0:
                continue
            boxes = axis.boxplot(
                [dice], positions=[position], widths=0.6, showfliers=False, patch_artist=True,
                orientation="horizontal",
            )  # fmt: skip
            boxes["boxes"][0].set(facecolor=palette[model], edgecolor="0.25")
            for line in boxes["medians"]:
                line.set(color="0.1", linewidth=1.5)
            jitter = rng.uniform(-0.18, 0.18, size=dice.size)
            axis.scatter(dice, position + jitter, s=8, color="0.15", alpha=0.6, linewidths=0, zorder=3)
        axis.set_yticks(range(len(models)), [model_label(model, 24) for model in models])
        axis.set(title=dataset, ylabel="", xlabel="Dice", ylim=(len(models) - 0.4, -0.6), xlim=(0.0, 1.02))
        axis.tick_params(labelsize=8)
    return figure


def dice_vs_cost(summary: pd.DataFrame) -> Figure:
    """Mean test Dice (std error bars) against parameters and inference seconds per volume.

    Two panels sharing the y axis, x on log scale, colour per model (named in the legend: labels beside the
    points would collide when models sit close), marker per dataset (Dice against training time is
    :func:`learning_curves`). summary columns: dataset, model, dice_mean, dice_std, parameters,
    inference_seconds (one row per dataset x model; a NaN or non-positive value skips that point).
    """
    costs = {"parameters": "parameters", "inference_seconds": "inference time (s / volume)"}
    data = _clean(summary, ["dataset", "model"], ["dice_mean", "dice_std", *costs], required=["dice_mean"])
    if data.empty:
        return _no_data_figure("Dice against cost")
    palette = model_palette(data["model"].tolist())
    datasets = sorted(data["dataset"].unique())
    markers = {name: DATASET_MARKERS[index % len(DATASET_MARKERS)] for index, name in enumerate(datasets)}
    figure = _figure(8.0, 3.4)
    axes = _grid(figure, len(costs), len(costs), sharey=True)
    for axis, (column, label) in zip(axes, costs.items(), strict=True):
        points = data[data[column] > 0]
        for row in points.itertuples(index=False):
            std = row.dice_std if np.isfinite(row.dice_std) else None
            axis.errorbar(
                getattr(row, column), row.dice_mean, yerr=std, fmt=markers[row.dataset],
                color=palette[row.model], capsize=2, markersize=6, linewidth=1,
            )  # fmt: skip
        if points.empty:
            _say(axis)
        else:
            axis.set_xscale("log")
            plain = FuncFormatter(lambda value, _: f"{value:g}")
            formatter = EngFormatter(sep="") if column == "parameters" else plain
            _log_ticks(axis, points[column].to_numpy(), formatter)
            axis.tick_params(axis="x", labelsize=8)
        axis.set(xlabel=label, ylim=(0.0, 1.02))
        axis.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("mean test Dice")
    handles = _legend_handles(palette) + [
        Line2D([], [], color="0.3", marker=marker, linestyle="", label=name)
        for name, marker in markers.items()
    ]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return figure


CURVE_AXES = {"train_seconds": "training time", "iterations": "optimiser steps"}


def _seed_handles(dashes: Mapping[object, tuple[float, ...]]) -> list[Line2D]:
    """Legend lines for the seeds' dash patterns (none when there is one seed)."""
    if len(dashes) < 2:
        return []
    return [
        Line2D([], [], color="0.3", linestyle=(0, dash) if dash else "-", label=f"seed {seed}")
        for seed, dash in dashes.items()
    ]


def _unit(column: str, minutes: bool) -> str:
    """The axis-label unit of a learning-curve x column."""
    if column != "train_seconds":
        return ""
    return " (min)" if minutes else " (s)"


def learning_curves(curves: pd.DataFrame, paper_dice: Mapping[str, Mapping[str, float]]) -> Figure:
    """Test Dice during training: per dataset (row) against training time and against optimiser steps.

    One line per model (colour) and seed (dashes) through its snapshots; the paper's Dice of a model is a
    dotted line in its colour. Time is in minutes when a run is longer than 10 minutes. curves columns:
    dataset, model, seed, train_seconds, iterations, dice_mean; paper_dice: {dataset: {model: dice}}.
    """
    data = _clean(curves, ["dataset", "model", "seed"], [*CURVE_AXES, "dice_mean"], required=["dice_mean"])
    if data.empty:
        return _no_data_figure("Learning curves")
    datasets, models = sorted(data["dataset"].unique()), sorted(data["model"].unique())
    seeds = sorted(data["seed"].unique())
    palette = model_palette(models)
    dashes = {seed: SEED_DASHES[index % len(SEED_DASHES)] for index, seed in enumerate(seeds)}
    minutes = data["train_seconds"].max() > 600
    figure = _figure(9.5, 0.6 + 2.8 * len(datasets))
    axes = _grid(figure, 2 * len(datasets), 2, sharey="row")
    for row, dataset in enumerate(datasets):
        subset = data[data["dataset"] == dataset].sort_values("iterations")
        for axis, column in zip(axes[2 * row : 2 * row + 2], CURVE_AXES, strict=True):
            for (model, seed), run in subset.groupby(["model", "seed"]):
                x = run[column] / 60 if column == "train_seconds" and minutes else run[column]
                axis.plot(
                    x, run["dice_mean"], color=palette[model], marker="o", markersize=3, linewidth=1.2,
                    linestyle=(0, dashes[seed]) if dashes[seed] else "-",
                )  # fmt: skip
            for model in models:
                paper = paper_dice.get(dataset, {}).get(model)
                if paper is not None and math.isfinite(paper):
                    axis.axhline(paper, color=palette[model], linestyle=":", linewidth=1)
            axis.set(title=dataset, xlabel=CURVE_AXES[column] + _unit(column, minutes))
            axis.grid(True, alpha=0.3)
        axes[2 * row].set_ylabel("mean test Dice")
    handles = _legend_handles(palette, marker="o")
    handles.append(Line2D([], [], color="0.3", linestyle=":", label="paper"))
    handles += _seed_handles(dashes)
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return figure


def data_efficiency(runs: pd.DataFrame) -> Figure:
    """Test Dice against the number of training cases (log x), one panel per dataset.

    Per model (colour): a line through the mean over seeds at each k, bars from the seeds' lowest to
    highest Dice, and each seed's run as a small dot. runs columns: dataset, model, seed, train_cases,
    dice_mean (one row per run, as ``mednca.evaluate.efficiency.EFFICIENCY_COLUMNS``).
    """
    data = _clean(runs, ["dataset", "model", "seed"], ["train_cases", "dice_mean"], required=["dice_mean"])
    data = data[data["train_cases"] > 0]
    if data.empty:
        return _no_data_figure("Data efficiency")
    datasets, models = sorted(data["dataset"].unique()), sorted(data["model"].unique())
    palette = model_palette(models)
    figure = _figure(1.8 + 4.2 * len(datasets), 3.4)
    axes = _grid(figure, len(datasets), len(datasets), sharey=True)
    for axis, dataset in zip(axes, datasets, strict=True):
        subset = data[data["dataset"] == dataset]
        for model, run in subset.groupby("model"):
            spread = run.groupby("train_cases")["dice_mean"].agg(["mean", "min", "max"]).sort_index()
            bars = [spread["mean"] - spread["min"], spread["max"] - spread["mean"]]
            axis.errorbar(
                spread.index, spread["mean"], yerr=bars, color=palette[model], marker="o", markersize=4,
                capsize=3, linewidth=1.2,
            )  # fmt: skip
            axis.scatter(run["train_cases"], run["dice_mean"], color=palette[model], s=8, alpha=0.6, zorder=3)
        ticks = sorted(subset["train_cases"].unique())
        axis.set_xscale("log")
        axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set(title=dataset, xlabel="training cases", ylim=(0.0, 1.02))
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("mean test Dice")
    figure.legend(handles=_legend_handles(palette), loc="outside right upper", fontsize=8, frameon=False)
    return figure


def training_curves(training: pd.DataFrame) -> Figure:
    """Training loss per epoch (log y), one line per model (colour) and seed (dashes), one panel per dataset.

    training columns: dataset, model, seed, epoch, loss (rows with a NaN or non-positive loss are left out).
    """
    data = _clean(training, ["dataset", "model", "seed"], ["epoch", "loss"], required=["epoch", "loss"])
    data = data[data["loss"] > 0]
    if data.empty:
        return _no_data_figure("Training loss")
    datasets, models = sorted(data["dataset"].unique()), sorted(data["model"].unique())
    seeds = sorted(data["seed"].unique())
    palette = model_palette(models)
    figure = _figure(1.5 + 3.5 * len(datasets), 3.2)
    axes = _grid(figure, len(datasets), len(datasets))
    dashes = {seed: SEED_DASHES[index % len(SEED_DASHES)] for index, seed in enumerate(seeds)}
    few_epochs = data.groupby(["dataset", "model", "seed"])["epoch"].nunique().max() < 3
    for axis, dataset in zip(axes, datasets, strict=True):
        sns.lineplot(
            data=data[data["dataset"] == dataset], x="epoch", y="loss", hue="model", hue_order=models,
            style="seed", style_order=seeds, dashes=dashes, units="seed", estimator=None, palette=palette,
            legend=False, marker="o" if few_epochs else None, linewidth=1, ax=axis,
        )  # fmt: skip
        axis.set_yscale("log")
        axis.set(title=dataset, xlabel="epoch", ylabel="training loss")
    handles = _legend_handles(palette, marker="")
    handles += _seed_handles(dashes)
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return figure


def robustness_curves(robustness: pd.DataFrame, dataset: str) -> Figure:
    """Dice against perturbation value for one dataset: one panel per study, one line per model.

    Lines are means over cases and seeds with a seeded 95 % bootstrap band; the x axis is log2 for
    scale_resize, scale_fixed and anisotropy; y in [0, 1]. robustness columns: dataset, model, seed, case_id,
    study, severity (int, 0 = clean), value (float, the study's own parameter), dice.
    """
    data = _clean(robustness, ["dataset", "model", "study"], ["value", "dice"], required=["value", "dice"])
    data = data[data["dataset"] == str(dataset)]
    data = data[~(data["study"].isin(LOG2_STUDIES) & (data["value"] <= 0))]
    if data.empty:
        return _no_data_figure(f"Robustness: {dataset}")
    studies, models = sorted(data["study"].unique()), sorted(data["model"].unique())
    palette = model_palette(models)
    columns = min(len(studies), MAX_STUDY_COLUMNS)
    rows = math.ceil(len(studies) / columns)
    figure = _figure(1.5 + 2.3 * columns, 0.4 + 2.2 * rows)
    axes = _grid(figure, len(studies), MAX_STUDY_COLUMNS, sharey=True)
    for index, (axis, study) in enumerate(zip(axes, studies, strict=True)):
        subset = data[data["study"] == study]
        sns.lineplot(
            data=subset, x="value", y="dice", hue="model", hue_order=models, palette=palette,
            errorbar=("ci", 95), seed=0, marker="o", markersize=4, linewidth=1.2, legend=False, ax=axis,
        )  # fmt: skip
        values = np.sort(subset["value"].unique())
        if study in LOG2_STUDIES:
            axis.set_xscale("log", base=2)
        if len(values) <= 8:
            axis.set_xticks(values, _spaced_labels(values, log=study in LOG2_STUDIES))
            axis.minorticks_off()
        axis.tick_params(labelsize=7)
        axis.set(title=study, xlabel=STUDY_X_LABELS.get(study, "severity value"), ylim=(0.0, 1.0))
        axis.set_ylabel("Dice" if index % columns == 0 else "")
    figure.suptitle(f"Robustness: {dataset}", fontsize=11)
    figure.legend(handles=_legend_handles(palette), loc="outside right upper", fontsize=8, frameon=False)
    return figure


def nqm_vs_dice(points: pd.DataFrame, threshold: float | None, failure_dice: float) -> Figure:
    """NQM (x) against Dice (y) of the NCA models, one panel per dataset / model, clean vs perturbed colours.

    Dashed lines mark ``failure_dice`` (horizontal) and the NQM ``threshold`` (vertical, when not None).
    points columns: dataset, model, source ('clean' or a study name = perturbed), dice, nqm.
    """
    data = _clean(points, ["dataset", "model", "source"], ["dice", "nqm"], required=["dice", "nqm"])
    if data.empty:
        return _no_data_figure("NQM against Dice")
    data["kind"] = np.where(data["source"] == "clean", "clean", "perturbed")
    panels = sorted(data.groupby(["dataset", "model"]).groups)
    columns = min(len(panels), 4)
    figure = _figure(1.8 + 2.8 * columns, 0.3 + 2.7 * math.ceil(len(panels) / columns))
    axes = _grid(figure, len(panels), columns, sharey=True)
    colours = {"perturbed": PERTURBED_COLOUR, "clean": CLEAN_COLOUR}
    has_threshold = threshold is not None and np.isfinite(threshold)
    for axis, (dataset, model) in zip(axes, panels, strict=True):
        subset = data[(data["dataset"] == dataset) & (data["model"] == model)]
        for kind, colour in colours.items():
            chosen = subset[subset["kind"] == kind]
            axis.scatter(chosen["nqm"], chosen["dice"], s=10, color=colour, alpha=0.6, linewidths=0)
        axis.axhline(failure_dice, linestyle="--", color="0.4", linewidth=1)
        if has_threshold:
            axis.axvline(float(threshold), linestyle="--", color="black", linewidth=1)
        axis.set(title=f"{dataset} / {display_name(model)}", xlabel="NQM", ylabel="Dice", ylim=(0.0, 1.02))
        axis.title.set_fontsize(9)
    handles = [
        Line2D([], [], color=colour, marker="o", linestyle="", label=kind) for kind, colour in colours.items()
    ][::-1]
    handles.append(Line2D([], [], color="0.4", linestyle="--", label=f"failure: Dice < {failure_dice:g}"))
    if has_threshold:
        handles.append(Line2D([], [], color="black", linestyle="--", label=f"NQM threshold {threshold:.3g}"))
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return figure


# ------------------------------------------------------------------------------------------ images


def overlay_grid(rows: list[OverlayRow], model_names: list[str]) -> Figure:
    """Qualitative results: one row per :class:`OverlayRow`; columns image, ground truth, then one per model.

    Masks are filled in colour over the grey image (ground truth in yellow, predictions in the model's colour
    with the ground-truth outline on top); the row label is on the left, column titles on the first row and
    each prediction's Dice in its title.
    """
    if not rows:
        return _no_data_figure("Qualitative results")
    models = [str(name) for name in model_names]
    palette = model_palette(models)
    columns = 2 + len(models)
    side = min(2.0, (MAX_WIDTH - 0.6) / columns)
    figure = _figure(0.6 + side * columns, 0.3 + (side + 0.35) * len(rows))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row_index, (row, row_axes) in enumerate(zip(rows, axes, strict=True)):
        first = row_index == 0
        shown = _show_image(row_axes[0], row.image)
        shape = _as_slice(row.image).shape if shown else ()
        row_axes[0].set_axis_on()
        row_axes[0].set(xticks=[], yticks=[])
        row_axes[0].set_frame_on(False)
        row_axes[0].set_ylabel(_wrap_label(row.title), fontsize=8)
        if shown:
            _show_image(row_axes[1], row.image)
            _show_mask(row_axes[1], row.label, shape, OVERLAY_LABEL_COLOUR)
        for axis, model in zip(row_axes[2:], models, strict=True):
            prediction = row.predictions.get(model)
            dice = row.dice.get(model)
            dice_text = f"Dice {dice:.2f}" if dice is not None and np.isfinite(dice) else "Dice n/a"
            if prediction is None or not shown:
                _say(axis, "missing")
                axis.set_frame_on(False)
            else:
                _show_image(axis, row.image)
                _show_mask(axis, prediction, shape, palette[model])
                _show_mask(axis, row.label, shape, OVERLAY_LABEL_COLOUR, filled=False, width=0.7)
            title = f"{model_label(model, 14)}\n{dice_text}" if first else dice_text
            axis.set_title(title, fontsize=8 if side >= 1.5 else 6.5)
        if first:
            row_axes[0].set_title("image", fontsize=8)
            row_axes[1].set_title("ground truth", fontsize=8)
    return figure


def perturbation_gallery(galleries: Mapping[str, Mapping[str, np.ndarray]], title: str) -> Figure:
    """One row per model, one column per severity s: image_{s} in grey, label_{s} outline in green and the
    model's prediction_{s} in red, columns titled 'severity s'; the figure is titled ``title``.

    ``galleries`` maps each model to its arrays: 'image_{s}' (H, W) float, 'label_{s}' (H, W) uint8,
    'prediction_{s}' (H, W) uint8, plus 'case_id' (0-d string array); the slice size may change with the
    severity. Every model sees the same perturbed image, so the rows differ only in their predictions.
    """
    models = list(galleries)
    severities = sorted(
        {
            int(match[1])
            for gallery in galleries.values()
            for key in gallery
            if (match := SEVERITY_KEY.match(str(key)))
        }
    )
    if not severities:
        return _no_data_figure(title)
    side = min(1.6, (MAX_WIDTH - 1.2) / len(severities))
    figure = _figure(1.2 + side * len(severities), 0.5 + side * len(models))
    axes = _grid(figure, len(models) * len(severities), len(severities))
    for row, model in enumerate(models):
        gallery = galleries[model]
        for column, severity in enumerate(severities):
            axis = axes[row * len(severities) + column]
            image = gallery.get(f"image_{severity}")
            if _show_image(axis, image):
                shape = _as_slice(image).shape
                _show_mask(axis, gallery.get(f"prediction_{severity}"), shape, PREDICTION_COLOUR)
                _show_mask(axis, gallery.get(f"label_{severity}"), shape, LABEL_COLOUR, filled=False)
            if row == 0:
                axis.set_title(f"severity {severity}", fontsize=8)
            if column == 0:
                axis.text(
                    -0.08,
                    0.5,
                    _wrap_label(model, 16),
                    transform=axis.transAxes,
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize=8,
                )
    figure.suptitle(title, fontsize=10)
    return figure


def nca_trajectory(
    steps: np.ndarray, levels: np.ndarray, probabilities: np.ndarray, image: np.ndarray
) -> Figure:
    """The NCA's foreground probability as it evolves: the (H, W) input image, then one 'magma' panel per
    snapshot k of probabilities (K, H, W) in [0, 1], titled 'level {levels[k]}, step {steps[k]}'.

    steps (K,) int and levels (K,) int; up to 10 snapshots per row, more wrap onto further rows.
    """
    snapshots = np.asarray(probabilities, dtype=float)
    if snapshots.ndim == 4:
        snapshots = snapshots[:, 0]
    if snapshots.ndim != 3 or snapshots.shape[0] == 0 or snapshots[0].size == 0:
        return _no_data_figure("NCA trajectory")
    steps, levels = np.asarray(steps).ravel(), np.asarray(levels).ravel()
    count = snapshots.shape[0]
    columns = 1 + min(count, MAX_SNAPSHOTS_PER_ROW)
    rows = math.ceil((1 + count) / columns)
    side = min(1.6, (MAX_WIDTH - 0.8) / columns)
    figure = _figure(0.8 + side * columns, 0.2 + (side + 0.4) * rows)
    axes = _grid(figure, 1 + count, columns)
    _show_image(axes[0], image)
    axes[0].set_title("input", fontsize=8)
    mappable = None
    for index, axis in enumerate(axes[1:]):
        mappable = axis.imshow(
            snapshots[index].T, cmap="magma", vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest"
        )
        axis.set_axis_off()
        level = levels[index] if index < levels.size else "?"
        step = steps[index] if index < steps.size else "?"
        axis.set_title(f"level {level}, step {step}", fontsize=7)
    figure.colorbar(mappable, ax=axes[1:], shrink=0.8, label="foreground probability")
    return figure


def dataset_examples(examples: list[DatasetExample]) -> Figure:
    """One panel per dataset example: the (H, W) image slice in grey with the label's outline in colour,
    titled with the dataset name and case id (up to 5 panels per row)."""
    if not examples:
        return _no_data_figure("Datasets")
    columns = min(len(examples), MAX_STUDY_COLUMNS)
    side = min(2.4, MAX_WIDTH / columns)
    figure = _figure(side * columns, (side + 0.5) * math.ceil(len(examples) / columns))
    axes = _grid(figure, len(examples), columns)
    for axis, example in zip(axes, examples, strict=True):
        if _show_image(axis, example.image):
            _show_mask(axis, example.label, _as_slice(example.image).shape, LABEL_COLOUR, filled=False)
        axis.set_title(f"{example.dataset}\n{example.case_id}", fontsize=8)
    return figure


def validation_curves(curves: pd.DataFrame, targets: Sequence[float]) -> Figure:
    """Validation Dice against minutes of training for the candidate recipes of a time-to-accuracy study:
    one line per variant (colour) and seed (dashes), each target Dice a dotted line. curves columns:
    variant, seed, minutes (of training), dice_mean (one row per scored snapshot)."""
    data = _clean(curves, ["variant", "seed"], ["minutes", "dice_mean"], required=["dice_mean"])
    if data.empty:
        return _no_data_figure("Time to accuracy")
    variants, seeds = sorted(data["variant"].unique()), sorted(data["seed"].unique())
    colours = dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))
    dashes = {seed: SEED_DASHES[index % len(SEED_DASHES)] for index, seed in enumerate(seeds)}
    figure = _figure(8.0, 3.6)
    axis = figure.subplots()
    for (variant, seed), run in data.groupby(["variant", "seed"]):
        run = run.sort_values("minutes")
        axis.plot(
            run["minutes"], run["dice_mean"], color=colours[variant], marker="o", markersize=3,
            linewidth=1.2, linestyle=(0, dashes[seed]) if dashes[seed] else "-",
        )  # fmt: skip
    for target in targets:
        axis.axhline(target, color="0.4", linestyle=":", linewidth=1)
    axis.set(xlabel="training minutes (epochs x the fastest epoch)", ylabel="mean validation Dice")
    axis.grid(True, alpha=0.3)
    handles = [Line2D([], [], color=colour, marker="o", label=variant) for variant, colour in colours.items()]
    handles += [Line2D([], [], color="0.4", linestyle=":", label="target Dice")] + _seed_handles(dashes)
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return figure
