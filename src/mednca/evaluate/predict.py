"""Segmenting a new NIfTI volume with a trained model file: ``mednca predict``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from mednca.data.layout import Channel
from mednca.data.volumes import read_nifti, read_voxels, save_label_map, select_channel
from mednca.errors import DataError
from mednca.evaluate.evaluation import load_segmenter

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
    model_path: Path,
    inputs: list[Path],
    output: Path,
    device_name: str = "auto",
    seed: int = 0,
    runs: int = 1,
) -> np.ndarray:
    """Segment the volume in ``inputs`` and write a {0, 1} label map with the input's shape and affine.

    An NCA is run ``runs`` times and its mean output thresholded; the NQM of the runs is logged.
    """
    segmenter = load_segmenter(Path(model_path), device_name, runs, batch_size=64)
    preprocessing = segmenter.preprocessing
    image, affine = read_input_channels([Path(p) for p in inputs], preprocessing)
    expected = segmenter.model.in_channels // preprocessing.get("repeat_channels", 1)
    if image.shape[0] != expected:
        raise DataError(
            f"{model_path}: the model takes {expected} input channel(s), the input has {image.shape[0]}"
        )
    result = segmenter.segment(image, affine, torch.Generator(device=segmenter.device).manual_seed(seed))
    save_label_map(Path(output), result.label, affine)
    log.info(
        "wrote %s: %d foreground voxels of %d (NQM %.4f)",
        output,
        int(result.label.sum()),
        result.label.size,
        result.nqm,
    )
    return result.label
