"""MRI acquisition artefacts applied deterministically to 2D-slice test volumes.

Images are (S, C, H, W) float arrays holding the S slices of one 3D volume; labels are never touched.
Each artefact kind has a pair of functions, following MONAI's convention of separating drawing from
applying:

* ``draw_<kind>_params(rng, value) -> dict`` draws the random parts of the artefact (positions, axes,
  directions, seeds) from a NumPy ``Generator`` independently of the severity ``value``, which only sets
  the strength, so for one generator state the levels of a kind form a graded line. The dict holds plain
  JSON values.
* ``apply_<kind>(image, params) -> image`` applies it with no randomness of its own: TorchIO's
  deterministic transform classes (``Noise``, ``Spike``, ``Ghosting``, ``BiasField``, ``Motion``), MONAI's
  ``GibbsNoise``, or, for anisotropy, a NumPy version of TorchIO's RandomAnisotropy resampling.

TorchIO sees the whole volume as a ``ScalarImage`` of shape (C, H, W, S) with an identity affine
(1 mm isotropic voxels, so TorchIO's millimetres are pixels); motion uses (C, S, H, W), see
:func:`apply_motion`. The severity value meaning "none" (``ARTEFACT_SEVERITIES[kind][0]``: 0, or 1 for
anisotropy) returns an exact copy of the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torchio as tio
from monai.transforms import GibbsNoise

from mednca.studies import ARTEFACT_STUDIES, STUDIES

ARTEFACT_SEVERITIES: dict[str, list[float]] = {name: list(STUDIES[name].levels) for name in ARTEFACT_STUDIES}
ARTEFACT_KINDS: tuple[str, ...] = tuple(ARTEFACT_SEVERITIES)

NUM_SPIKES = 1
NUM_GHOSTS = 4
BIAS_FIELD_ORDER = 3
NUM_MOVEMENTS = 2
MOTION_SHARE_JITTER = 0.15
MOTION_DEGREES = 10.0
MOTION_TRANSLATION_PX = 10.0
IN_PLANE_AXES = 2
TORCH_SEED_BOUND = 2**31 - 1

Params = dict[str, Any]


def _to_torchio(image: np.ndarray) -> tio.ScalarImage:
    """Volume (S, C, H, W) as a TorchIO image (C, H, W, S) with identity affine; the data is a copy."""
    tensor = torch.tensor(np.transpose(image, (1, 2, 3, 0)), dtype=torch.float32)
    return tio.ScalarImage(tensor=tensor, affine=np.eye(4))


def _from_torchio(volume: tio.ScalarImage, dtype: np.dtype) -> np.ndarray:
    """TorchIO image (C, H, W, S) back to a new (S, C, H, W) array of ``dtype``."""
    array = volume.data.numpy().transpose(3, 0, 1, 2)
    return np.ascontiguousarray(array, dtype=dtype)


def _transform(volume: tio.ScalarImage, transform: tio.Transform) -> tio.ScalarImage:
    """``transform(volume)`` keeping the global torch RNG state (TorchIO draws from it in ``__call__``)."""
    with torch.random.fork_rng(devices=[]):
        return transform(volume)


def _apply_torchio(image: np.ndarray, transform: tio.Transform) -> np.ndarray:
    """Apply a deterministic TorchIO transform to volume (S, C, H, W); returns a new (S, C, H, W) array."""
    return _from_torchio(_transform(_to_torchio(image), transform), image.dtype)


def intensity_range(image: np.ndarray) -> float:
    """max - min of ``image`` (any shape), or 1.0 for a constant or empty image."""
    if image.size == 0:
        return 1.0
    spread = float(image.max()) - float(image.min())
    return spread if spread > 0 else 1.0


def draw_noise_params(rng: np.random.Generator, std: float) -> Params:
    """Gaussian noise of standard deviation ``std`` x intensity range, with a drawn torch seed."""
    return {"std": float(std), "seed": int(rng.integers(0, TORCH_SEED_BOUND))}


def apply_noise(image: np.ndarray, params: Params) -> np.ndarray:
    """Add zero-mean Gaussian noise to image (S, C, H, W) with ``torchio.Noise`` (seeded, one draw per voxel).

    ``params["std"]`` is relative to the image's intensity range (:func:`intensity_range`); TorchIO
    restores the global torch RNG state after drawing with ``params["seed"]``.
    """
    if params["std"] == 0:
        return image.copy()
    std = params["std"] * intensity_range(image)
    return _apply_torchio(image, tio.Noise(mean=0.0, std=std, seed=params["seed"]))


def draw_spike_params(rng: np.random.Generator, intensity: float) -> Params:
    """``NUM_SPIKES`` relative k-space spike positions in [0, 1)^3 (H, W, S), of strength ``intensity``."""
    return {"intensity": float(intensity), "positions": rng.random((NUM_SPIKES, 3)).tolist()}


def apply_spike(image: np.ndarray, params: Params) -> np.ndarray:
    """Add k-space spikes (herringbone stripes) to image (S, C, H, W) with ``torchio.Spike``.

    ``params["intensity"]`` is the spike's magnitude relative to the maximum of each channel's 3D spectrum.
    """
    if params["intensity"] == 0:
        return image.copy()
    positions = np.asarray(params["positions"], dtype=float)
    return _apply_torchio(image, tio.Spike(spikes_positions=positions, intensity=params["intensity"]))


def draw_ghosting_params(rng: np.random.Generator, intensity: float) -> Params:
    """``NUM_GHOSTS`` ghosts of strength ``intensity`` along a drawn in-plane axis (0 = H, 1 = W)."""
    axis = int(rng.integers(0, IN_PLANE_AXES))
    return {"intensity": float(intensity), "num_ghosts": NUM_GHOSTS, "axis": axis}


def apply_ghosting(image: np.ndarray, params: Params) -> np.ndarray:
    """Add ghosting to image (S, C, H, W) with ``torchio.Ghosting``, restoring the k-space centre plane."""
    if params["intensity"] == 0:
        return image.copy()
    transform = tio.Ghosting(
        num_ghosts=params["num_ghosts"], axis=params["axis"], intensity=params["intensity"], restore=None
    )
    return _apply_torchio(image, transform)


def bias_field_size(order: int) -> int:
    """Number of coefficients of TorchIO's 3D polynomial bias field of ``order``."""
    return math.comb(order + 3, 3)


def draw_bias_field_params(rng: np.random.Generator, magnitude: float) -> Params:
    """Polynomial coefficients ``magnitude`` x U(-1, 1) (TorchIO's U(-magnitude, magnitude)), order 3."""
    unit = rng.uniform(-1.0, 1.0, bias_field_size(BIAS_FIELD_ORDER))
    return {"coefficients": (magnitude * unit).tolist(), "order": BIAS_FIELD_ORDER}


def apply_bias_field(image: np.ndarray, params: Params) -> np.ndarray:
    """Multiply image (S, C, H, W) by the smooth 3D field exp(polynomial) of ``torchio.BiasField``."""
    if not any(params["coefficients"]):
        return image.copy()
    transform = tio.BiasField(coefficients=params["coefficients"], order=params["order"])
    return _apply_torchio(image, transform)


def draw_motion_params(rng: np.random.Generator, fraction: float) -> Params:
    """``NUM_MOVEMENTS`` rigid in-plane movements, the k-space ``fraction`` acquired while displaced.

    Rotations (up to ``MOTION_DEGREES`` about the slice axis) and translations (up to
    ``MOTION_TRANSLATION_PX`` along H and W) are drawn as in TorchIO's RandomMotion for 2D images, given
    as (axis S, axis H, axis W) triples, and do not depend on the severity. ``times`` puts the first
    movement's share ``a ~ U(0.35, 0.65)`` of ``fraction`` on the low side of k-space and the rest on the
    high side, so the central ``1 - fraction`` of k-space comes from the still subject.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"motion fraction must be in [0, 1], got {fraction}")
    share = float(rng.uniform(0.5 - MOTION_SHARE_JITTER, 0.5 + MOTION_SHARE_JITTER))
    angles = MOTION_DEGREES * rng.uniform(-1.0, 1.0, NUM_MOVEMENTS)
    shifts = MOTION_TRANSLATION_PX * rng.uniform(-1.0, 1.0, (NUM_MOVEMENTS, 2))
    return {
        "fraction": float(fraction),
        "degrees": [[float(angle), 0.0, 0.0] for angle in angles],
        "translation": [[0.0, float(dy), float(dx)] for dy, dx in shifts],
        "times": [fraction * share, 1.0 - fraction * (1.0 - share)],
    }


def apply_motion(image: np.ndarray, params: Params) -> np.ndarray:
    """Simulate patient motion in image (S, C, H, W) with ``torchio.Motion`` (linear resampling).

    TorchIO builds k-space from the spectra of the moved copies, in segments along its last axis split at
    ``params["times"]``, the still subject's spectrum filling the segment that holds the centre. To simulate
    a 2D multi-slice acquisition (the same in-plane movements in every slice, phase encoding along W), the
    volume is given to TorchIO as (C, S, H, W) instead of (C, H, W, S), so each slice gets its own 2D
    artefact. The difference from the clean image only gains k-space lines as ``params["fraction"]`` grows.
    """
    if params["fraction"] == 0:
        return image.copy()
    transform = tio.Motion(
        degrees=np.asarray(params["degrees"]),
        translation=np.asarray(params["translation"]),
        times=np.asarray(params["times"]),
        image_interpolation="linear",
    )
    tensor = torch.tensor(np.transpose(image, (1, 0, 2, 3)), dtype=torch.float32)
    moved = _transform(tio.ScalarImage(tensor=tensor, affine=np.eye(4)), transform).data.numpy()
    return np.ascontiguousarray(moved.transpose(1, 0, 2, 3), dtype=image.dtype)


def draw_anisotropy_params(rng: np.random.Generator, downsampling: float) -> Params:
    """Downsampling factor ``downsampling`` along a drawn in-plane axis (0 = H, 1 = W)."""
    return {"downsampling": float(downsampling), "axis": int(rng.integers(0, IN_PLANE_AXES))}


def coarse_positions(size: int, factor: float) -> np.ndarray:
    """Pixel positions (n,) of a grid ``factor`` times coarser than ``size`` pixels, centred in the view.

    Samples are ``factor`` apart and start at ``((size - 1) mod factor) // 2``, so for integer factors they
    fall exactly on pixels and the margins left at both ends are as even as possible.
    """
    start = float(((size - 1) % factor) // 2)
    return start + factor * np.arange(math.floor((size - 1 - start) / factor) + 1)


def apply_anisotropy(image: np.ndarray, params: Params) -> np.ndarray:
    """Simulate a coarse acquisition along one in-plane axis of image (S, C, H, W).

    Deterministic NumPy version of ``torchio.RandomAnisotropy`` (downsample with nearest-neighbour, upsample
    back with linear interpolation) along ``params["axis"]`` (0 = H, 1 = W) by ``params["downsampling"]``.
    It samples the pixels nearest to :func:`coarse_positions` and interpolates linearly between them,
    holding the end samples constant beyond them. Unlike TorchIO's spacing-based ``Resample``, which keeps
    floor(n / factor) samples and fills the uncovered border with zeros, the whole field of view is kept.
    """
    if params["downsampling"] == 1:
        return image.copy()
    axis = image.ndim - 2 + params["axis"]
    size = image.shape[axis]
    positions = coarse_positions(size, params["downsampling"])
    coarse = np.take(image, np.clip(np.floor(positions + 0.5).astype(int), 0, size - 1), axis=axis)
    index = np.clip((np.arange(size) - positions[0]) / params["downsampling"], 0, len(positions) - 1)
    lower = np.floor(index).astype(int)
    upper = np.minimum(lower + 1, len(positions) - 1)
    weight = _along(index - lower, axis, image.ndim)
    restored = (1 - weight) * np.take(coarse, lower, axis=axis) + weight * np.take(coarse, upper, axis=axis)
    return restored.astype(image.dtype)


def _along(vector: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """``vector`` reshaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = vector.size
    return vector.reshape(shape)


def draw_gibbs_params(rng: np.random.Generator, alpha: float) -> Params:
    """MONAI Gibbs ringing strength ``alpha`` in [0, 1]; nothing is random (``rng`` is unused)."""
    return {"alpha": float(alpha)}


def apply_gibbs(image: np.ndarray, params: Params) -> np.ndarray:
    """Gibbs ringing in every 2D slice and channel of image (S, C, H, W) with ``monai.transforms.GibbsNoise``.

    Each (H, W) slice's k-space is truncated to a disc of radius (1 - alpha) x the half-diagonal.
    """
    if params["alpha"] == 0:
        return image.copy()
    slices = torch.tensor(image.reshape(-1, *image.shape[-2:]), dtype=torch.float32)
    ringing = GibbsNoise(alpha=params["alpha"])(slices)
    return np.asarray(ringing, dtype=image.dtype).reshape(image.shape)


DRAWERS: dict[str, Callable[[np.random.Generator, float], Params]] = {
    "noise": draw_noise_params,
    "spike": draw_spike_params,
    "ghosting": draw_ghosting_params,
    "bias_field": draw_bias_field_params,
    "motion": draw_motion_params,
    "anisotropy": draw_anisotropy_params,
    "gibbs": draw_gibbs_params,
}
APPLIERS: dict[str, Callable[[np.ndarray, Params], np.ndarray]] = {
    "noise": apply_noise,
    "spike": apply_spike,
    "ghosting": apply_ghosting,
    "bias_field": apply_bias_field,
    "motion": apply_motion,
    "anisotropy": apply_anisotropy,
    "gibbs": apply_gibbs,
}


def draw_artefact_params(kind: str, rng: np.random.Generator, value: float) -> Params:
    """Draw the parameters of artefact ``kind`` at severity ``value`` (see the ``draw_<kind>_params``)."""
    return DRAWERS[_checked_kind(kind)](rng, value)


def apply_artefact(kind: str, image: np.ndarray, params: Params) -> np.ndarray:
    """Apply artefact ``kind`` with ``params`` to image (S, C, H, W); returns a new (S, C, H, W) array."""
    return APPLIERS[_checked_kind(kind)](image, params)


def _checked_kind(kind: str) -> str:
    """``kind`` if it is a known artefact kind, else ``ValueError``."""
    if kind not in ARTEFACT_SEVERITIES:
        raise ValueError(f"unknown artefact kind {kind!r}; expected one of {ARTEFACT_KINDS}")
    return kind
