"""Segmenting a new NIfTI volume with a trained model file: ``mednca predict``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from mednca.data.layout import Channel
from mednca.data.volumes import read_nifti, read_voxels, save_label_map, select_channel
from mednca.device import resolve_device
from mednca.errors import DataError
from mednca.evaluate.inference import segment_volume
from mednca.train.checkpoint import load_model

log = logging.getLogger(__name__)


def read_input_channels(inputs: list[Path], preprocessing: dict) -> tuple[np.ndarray, np.ndarray]:
    """Model input from NIfTI files: (C, X, Y, Z) float32 and the first file's (4, 4) affine.

    One file: its channels are chosen as in training (the configured modalities of a 4D image; a 3D image
    is one channel). Several files: one 3D volume per channel, in the order the model was trained with.
    """
    first = read_nifti(inputs[0])
    if len(inputs) == 1:
        voxels = read_voxels(first, inputs[0])
        indices = preprocessing["modalities"] if voxels.ndim == 4 else [None]
        channels = [select_channel(voxels, Channel(inputs[0], index)) for index in indices]
    else:
        channels = [select_channel(read_voxels(read_nifti(path), path), Channel(path)) for path in inputs]
    shapes = {channel.shape for channel in channels}
    if len(shapes) != 1:
        raise DataError(
            f"input channels have different shapes {sorted(shapes)}: {', '.join(map(str, inputs))}"
        )
    return np.stack(channels).astype(np.float32), np.asarray(first.affine, dtype=np.float64)


def predict_file(
    model_path: Path, inputs: list[Path], output: Path, device_name: str = "auto", seed: int = 0
) -> np.ndarray:
    """Segment the volume in ``inputs`` and write a {0, 1} label map with the input's shape and affine."""
    device = resolve_device(device_name)
    model, payload = load_model(model_path, device)
    image, affine = read_input_channels([Path(p) for p in inputs], payload["preprocessing"])
    expected = payload["in_channels"] // payload["preprocessing"].get("repeat_channels", 1)
    if image.shape[0] != expected:
        raise DataError(
            f"{model_path}: the model takes {expected} input channel(s), the input has {image.shape[0]}"
        )
    generator = torch.Generator(device=device).manual_seed(seed)
    label = segment_volume(model, image, affine, payload["preprocessing"], device, generator)
    save_label_map(Path(output), label, affine)
    log.info("wrote %s: %d foreground voxels of %d", output, int(label.sum()), label.size)
    return label
