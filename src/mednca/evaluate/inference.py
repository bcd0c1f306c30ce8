"""Segmenting slices and whole volumes with a trained model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mednca.data.preprocess import image_to_slices, normalise_intensity, slices_to_volume
from mednca.train.data import repeat_channels


@torch.no_grad()
def predict_slices(
    model: nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """(S, C, H, W) float32 slices -> (S, H, W) float32 foreground probabilities, in batches."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        outputs.append(torch.sigmoid(model(batch, generator=generator))[:, 0].float().cpu())
    return torch.cat(outputs).numpy()


def segment_volume(
    model: nn.Module,
    image: np.ndarray,
    affine: np.ndarray,
    preprocessing: dict[str, Any],
    device: torch.device,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Raw (C, X, Y, Z) image -> (X, Y, Z) uint8 {0, 1} segmentation in the image's own voxel grid.

    Applies the preprocessing the model was trained with (stored in its model file).
    """
    intensity = preprocessing["intensity"]
    normalised = normalise_intensity(image, intensity["method"], intensity["lower"], intensity["upper"])
    slices, geometry = image_to_slices(
        normalised,
        affine,
        preprocessing["slice_axis"],
        tuple(preprocessing["image_size"]),
        preprocessing["resize_mode"],
    )
    slices = repeat_channels(torch.from_numpy(slices), preprocessing.get("repeat_channels", 1)).numpy()
    probabilities = predict_slices(model, slices, device, batch_size, generator)
    return (slices_to_volume(probabilities, geometry) >= 0.5).astype(np.uint8)
