"""Per-case overlap and boundary metrics of binary segmentations, computed with MONAI.

Conventions for empty masks, so that no NaN reaches a mean:
- Dice: both empty -> 1.0 (nothing to find, nothing found); one empty -> 0.0.
- HD95: both empty -> 0.0 mm; one empty -> the diagonal of the volume in mm, the largest distance possible
  in that volume (a worst-case penalty, as several challenges use).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def _as_batch(mask: np.ndarray) -> torch.Tensor:
    """(X, Y, Z) bool -> (1, 1, X, Y, Z) float, MONAI's one-channel batch layout."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]


def dice_score(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two same-shape binary masks (any dimensionality)."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from label shape {truth.shape}")
    if not prediction.any() and not truth.any():
        return 1.0
    from monai.metrics import compute_dice  # MONAI takes seconds to import: only where a metric is computed

    return float(
        compute_dice(_as_batch(prediction), _as_batch(truth), include_background=True, ignore_empty=False)
    )


def hd95(prediction: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm between two binary masks with voxel ``spacing``."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from label shape {truth.shape}")
    if not prediction.any() and not truth.any():
        return 0.0
    if not prediction.any() or not truth.any():
        return float(np.linalg.norm(np.asarray(truth.shape) * np.asarray(spacing, dtype=float)))
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # raised inside MONAI by its own deprecated argument
        distance = compute_hausdorff_distance(
            _as_batch(prediction),
            _as_batch(truth),
            include_background=True,
            percentile=95,
            spacing=[float(s) for s in spacing],
        )
    return float(distance)
