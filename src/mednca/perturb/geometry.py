"""Geometric perturbations of 2D-slice test cases: in-plane translation and zoom.

Arrays follow the pipeline's slice layout: images are (S, C, H, W) float, labels are (S, H, W) binary
integers. Every function returns new arrays and never modifies its inputs. Translations use whole pixels
so labels stay exactly binary; zooms interpolate the image bilinearly and threshold the bilinearly resized
label mask at 0.5, like the preprocessing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mednca.data.preprocess import resize_slices

FILL_MODES = {"zeros": "constant", "reflect": "reflect"}
SCALE_PROTOCOLS = ("resize", "fixed")
LABEL_THRESHOLD = 0.5


def round_half_away(value: float) -> int:
    """Round ``value`` to the nearest integer, halves away from zero (unlike Python's banker's rounding)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def round_size(size: int, multiple: int) -> int:
    """Nearest positive multiple of ``multiple`` to ``size`` (halves round up; at least ``multiple``)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return max(multiple, multiple * round_half_away(size / multiple))


def draw_shift_params(rng: np.random.Generator) -> dict[str, float]:
    """Draw a uniformly distributed in-plane unit direction: ``{"direction_dy": .., "direction_dx": ..}``."""
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    return {"direction_dy": math.sin(angle), "direction_dx": math.cos(angle)}


def shift_pixels(height: int, width: int, fraction: float, direction: tuple[float, float]) -> tuple[int, int]:
    """Whole-pixel (dy, dx) moving an H x W slice by ``fraction`` of its size along ``direction`` (dy, dx).

    ``direction`` is normalised to unit length; each component is scaled by the matching image size
    (``fraction * dy * H``, ``fraction * dx * W``) and rounded to the nearest pixel.
    """
    norm = math.hypot(direction[0], direction[1])
    if norm == 0:
        raise ValueError("direction must be a non-zero vector")
    dy = round_half_away(fraction * height * direction[0] / norm)
    dx = round_half_away(fraction * width * direction[1] / norm)
    return dy, dx


def translate(
    image: np.ndarray, label: np.ndarray, dy: int, dx: int, fill: str = "zeros"
) -> tuple[np.ndarray, np.ndarray]:
    """Move every slice of image (S, C, H, W) and label (S, H, W) by (dy, dx) whole pixels.

    Positive ``dy`` moves content down, positive ``dx`` right. Uncovered space is filled with 0 (``zeros``)
    or mirrored content (``reflect``, NumPy's ``np.pad(mode="reflect")``), identically for image and label.
    Returns new arrays of unchanged shapes and dtypes.
    """
    if fill not in FILL_MODES:
        raise ValueError(f"fill must be one of {sorted(FILL_MODES)}, got {fill!r}")
    return _translate_last2(image, dy, dx, fill), _translate_last2(label, dy, dx, fill)


def _translate_last2(array: np.ndarray, dy: int, dx: int, fill: str) -> np.ndarray:
    """Translate the last two axes of ``array`` by (dy, dx) pixels with padding mode ``fill``."""
    height, width = array.shape[-2:]
    lead = [(0, 0)] * (array.ndim - 2)
    pads = [*lead, (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))]
    padded = np.pad(array, pads, mode=FILL_MODES[fill])
    top, left = max(-dy, 0), max(-dx, 0)
    return np.ascontiguousarray(padded[..., top : top + height, left : left + width])


def shift(
    image: np.ndarray,
    label: np.ndarray,
    fraction: float,
    direction: tuple[float, float],
    fill: str = "zeros",
) -> tuple[np.ndarray, np.ndarray]:
    """Translate image (S, C, H, W) and label (S, H, W) by ``fraction`` of the slice size along ``direction``.

    ``direction`` is an in-plane (dy, dx) vector (normalised here); the displacement is rounded to whole
    pixels (see :func:`shift_pixels`), e.g. fraction 0.2 along (0, 1) on 64 x 64 moves content 13 px right.
    ``fill`` is ``zeros`` or ``reflect`` (see :func:`translate`). Fraction 0 returns copies of the inputs.
    """
    dy, dx = shift_pixels(image.shape[-2], image.shape[-1], fraction, direction)
    return translate(image, label, dy, dx, fill)


def scaled_size(
    height: int, width: int, factor: float, multiple: int = 1, minimum: int = 1
) -> tuple[int, int]:
    """(H', W') = (round(H * factor), round(W * factor)), each rounded to the nearest ``multiple`` and at
    least ``minimum``."""
    if factor <= 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    return (
        max(minimum, round_size(round_half_away(height * factor), multiple)),
        max(minimum, round_size(round_half_away(width * factor), multiple)),
    )


def effective_factor(height: int, width: int, new_height: int, new_width: int) -> float:
    """Zoom applied by resizing H x W to H' x W': sqrt((H'/H) * (W'/W)), so areas scale by its square."""
    return math.sqrt((new_height / height) * (new_width / width))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly resize image (S, C, H, W) to (S, C, height, width), as the preprocessing does."""
    resized = resize_slices(torch.tensor(image, dtype=torch.float32), (height, width))
    return resized.numpy().astype(image.dtype, copy=False)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize binary label (S, H, W) to (S, height, width) like the preprocessing does.

    The float mask is resized as by :func:`resize_image` (antialiased when shrinking) and thresholded at 0.5.
    """
    mask = resize_image(label[:, None].astype(np.float32), height, width)[:, 0]
    return (mask >= LABEL_THRESHOLD).astype(label.dtype)


def center_crop_or_pad(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop or zero-pad the last two axes of ``array`` (..., h, w) to (..., height, width)."""
    out = array
    for axis, target in ((-2, height), (-1, width)):
        out = _crop_or_pad_axis(out, axis, target)
    return np.ascontiguousarray(out)


def _crop_or_pad_axis(array: np.ndarray, axis: int, target: int) -> np.ndarray:
    """Centre-crop or symmetrically zero-pad one axis of ``array`` to length ``target``."""
    size = array.shape[axis]
    if size >= target:
        start = (size - target) // 2
        return np.take(array, np.arange(start, start + target), axis=axis)
    before = (target - size) // 2
    pads = [(0, 0)] * array.ndim
    pads[axis] = (before, target - size - before)
    return np.pad(array, pads, mode="constant")


def scale(
    image: np.ndarray,
    label: np.ndarray,
    factor: float,
    protocol: str,
    multiple: int = 1,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Zoom image (S, C, H, W) and label (S, H, W) about the slice centre by ``factor``.

    ``resize``: slices become (H', W') = round(H * factor), round(W * factor), each rounded to the nearest
    ``multiple`` (the size a model needs, e.g. 4 for NCA, 16 for UNet, 32 for SegNet), so the zoom actually
    applied differs slightly from ``factor``. ``fixed``: the content is zoomed but kept at H x W (zoom in =
    centre crop, zoom out = centred and zero-padded), as a fixed-input-size model sees it; ``multiple`` is
    not used. Returns (image (S, C, H', W'), label (S, H', W'), effective factor, see
    :func:`effective_factor`). Factor 1.0 returns copies of the inputs and effective factor 1.0.
    """
    if protocol not in SCALE_PROTOCOLS:
        raise ValueError(f"protocol must be one of {SCALE_PROTOCOLS}, got {protocol!r}")
    height, width = image.shape[-2:]
    if factor == 1.0:
        return image.copy(), label.copy(), 1.0
    new_height, new_width = scaled_size(height, width, factor, multiple if protocol == "resize" else 1)
    zoomed_image = resize_image(image, new_height, new_width)
    zoomed_label = resize_label(label, new_height, new_width)
    applied = effective_factor(height, width, new_height, new_width)
    if protocol == "resize":
        return zoomed_image, zoomed_label, applied
    return (
        center_crop_or_pad(zoomed_image, height, width),
        center_crop_or_pad(zoomed_label, height, width),
        applied,
    )
