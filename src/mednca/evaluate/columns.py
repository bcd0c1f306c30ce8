"""The columns of the evaluation's tables, kept free of heavy imports so that the report can read them."""

from __future__ import annotations

CURVE_COLUMNS = [
    "epoch",
    "iterations",
    "train_seconds",
    "cases",
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "hd95_std",
]
"""A learning curve (``learning_curve.csv``), one row per scored model file."""

EFFICIENCY_COLUMNS = [
    "dataset",
    "model",
    "cases",
    "train_cases",
    "seed",
    "iterations",
    "batch_size",
    "train_seconds",
    "test_cases",
    "dice_mean",
    "dice_std",
    "hd95_mean",
    "hd95_std",
]
"""``cases`` is the k asked for ("all" for the whole train split), ``train_cases`` the cases trained on."""
