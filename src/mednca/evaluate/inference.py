"""Segmenting slices and whole volumes with a trained model.

A stochastic model (an NCA) is run ``runs`` times; its prediction is the mean of the runs' sigmoid outputs
and the spread of the runs gives the M3D-NCA quality metric NQM = sum(per-pixel std) / sum(per-pixel mean)
(Kalkhof et al., MICCAI 2023). A deterministic model runs once and has NQM 0. Every case draws its random
cell updates from its own generator, so a case's prediction does not depend on which cases came before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mednca.data.preprocess import SliceGeometry, image_to_slices, normalise_intensity
from mednca.data.preprocessing import Preprocessing
from mednca.models import is_stochastic
from mednca.train.data import repeat_channels


@dataclass(frozen=True)
class SlicePrediction:
    """Mean foreground probability (S, H, W) over the runs, and the NQM of the runs."""

    probabilities: np.ndarray
    nqm: float


def case_generator(seed: int, case_id: str, device: torch.device) -> torch.Generator:
    """A generator for one case's random draws, from the seed and the case id (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{case_id}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "big") >> 1)


def nqm(mean: np.ndarray, std: np.ndarray) -> float:
    """Sum of per-pixel standard deviations over sum of per-pixel means (0 for an empty mean)."""
    total = float(mean.sum())
    return float(std.sum()) / total if total > 0 else 0.0


@torch.no_grad()
def _probabilities(
    model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int, generator: torch.Generator
) -> np.ndarray:
    """(S, C, H, W) -> (S, H, W) sigmoid outputs of one run, in batches."""
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
        outputs.append(torch.sigmoid(model(batch, generator=generator))[:, 0].float().cpu())
    return torch.cat(outputs).numpy()


def predict_slices(
    model: nn.Module,
    images: np.ndarray,
    device: torch.device,
    generator: torch.Generator,
    runs: int = 1,
    batch_size: int = 64,
) -> SlicePrediction:
    """(S, C, H, W) float32 slices -> mean (S, H, W) probabilities over ``runs`` runs and their NQM."""
    model.eval()
    stochastic = getattr(model, "stochastic", False) or is_stochastic(model)  # an exported NCA says so itself
    if not stochastic or runs == 1:
        return SlicePrediction(_probabilities(model, images, device, batch_size, generator), 0.0)
    samples = np.stack([_probabilities(model, images, device, batch_size, generator) for _ in range(runs)])
    mean, std = samples.mean(axis=0), samples.std(axis=0)
    return SlicePrediction(mean, nqm(mean, std))


def normalise(image: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Raw (C, X, Y, Z) image -> intensities normalised as in training, same shape, float32."""
    intensity = preprocessing.intensity
    return normalise_intensity(image, intensity.method, intensity.lower, intensity.upper)


def prepare_slices(
    image: np.ndarray,
    affine: np.ndarray,
    preprocessing: Preprocessing,
    size: tuple[int, int] | None = None,
    normalised: bool = False,
) -> tuple[np.ndarray, SliceGeometry]:
    """(C, X, Y, Z) image -> model-ready (S, C', H, W) slices and their geometry, as in training.

    ``size`` overrides the trained in-plane size (for models that accept any size); ``normalised`` says
    the intensities are already normalised.
    """
    normalised_image = image if normalised else normalise(image, preprocessing)
    size = preprocessing.image_size if size is None else size
    slices, geometry = image_to_slices(
        normalised_image, affine, preprocessing.slice_axis, size, preprocessing.resize_mode
    )
    repeated = repeat_channels(torch.from_numpy(slices), preprocessing.repeat_channels).numpy()
    return repeated, geometry
