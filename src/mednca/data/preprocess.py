"""Turning volumes into normalised 2D slices, as Med-NCA trains on them, and slices back into volumes.

A volume (C, X, Y, Z) is cut along ``slice_axis`` into S slices, each resized in-plane to (H, W).
``SliceGeometry`` keeps what is needed to put per-slice predictions back into the original voxel grid.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mednca.data.ranges import INTENSITY_KEY, CaseProfile, profile_from_arrays
from mednca.errors import DataError
from mednca.io import atomic_path


@dataclass(frozen=True)
class SliceGeometry:
    """Where slices came from: original (X, Y, Z) shape, slice axis, in-plane shape and padding.

    ``padding`` is (top, bottom, left, right) added to the in-plane (h, w) slice before resizing.
    """

    shape: tuple[int, int, int]
    slice_axis: int
    padding: tuple[int, int, int, int]
    affine: np.ndarray

    @property
    def inplane_shape(self) -> tuple[int, int]:
        """(h, w) of an original slice."""
        return tuple(s for axis, s in enumerate(self.shape) if axis != self.slice_axis)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The geometry as arrays for ``np.savez``."""
        return {
            "shape": np.asarray(self.shape, dtype=np.int64),
            "slice_axis": np.asarray(self.slice_axis, dtype=np.int64),
            "padding": np.asarray(self.padding, dtype=np.int64),
            "affine": np.asarray(self.affine, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays) -> SliceGeometry:
        """Inverse of ``to_arrays`` (accepts an open ``np.load`` archive)."""
        return cls(
            shape=tuple(int(v) for v in arrays["shape"]),
            slice_axis=int(arrays["slice_axis"]),
            padding=tuple(int(v) for v in arrays["padding"]),
            affine=np.asarray(arrays["affine"], dtype=np.float64),
        )


def normalise_intensity(
    image: np.ndarray, method: str, lower: float = 0.5, upper: float = 99.5
) -> np.ndarray:
    """Normalise each channel of a (C, X, Y, Z) volume independently; returns float32 of the same shape.

    ``percentile``: clip to the [lower, upper] percentiles and rescale to [0, 1]. Med-NCA's min-max then
    z-score then percentile rescaling gives the same result, since the first two steps are affine.
    ``zscore``: zero mean and unit variance over the non-zero voxels; zero voxels stay zero.
    """
    return np.stack([_normalise_channel(channel, method, lower, upper) for channel in image]).astype(
        np.float32
    )


def _normalise_channel(channel: np.ndarray, method: str, lower: float, upper: float) -> np.ndarray:
    channel = channel.astype(np.float64)
    if not np.isfinite(channel).all():
        raise DataError(
            f"image has {int((~np.isfinite(channel)).sum())} NaN/Inf voxel(s); cannot normalise it"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        normalised = _normalised_values(channel, method, lower, upper)
    if not np.isfinite(normalised).all():
        raise _overflow_error(channel)
    return normalised


def _overflow_error(channel: np.ndarray) -> DataError:
    return DataError(
        f"image intensities (from {channel.min():.3g} to {channel.max():.3g}) overflow when normalised"
    )


def _normalised_values(channel: np.ndarray, method: str, lower: float, upper: float) -> np.ndarray:
    if method == "percentile":
        low, high = np.percentile(channel, [lower, upper])
        if high <= low:
            low, high = channel.min(), channel.max()
        if high <= low:
            raise DataError("image is constant; cannot normalise its intensities")
        return (np.clip(channel, low, high) - low) / (high - low)
    if method == "zscore":
        foreground = channel[channel != 0]
        std = foreground.std() if foreground.size else 0.0
        if not np.isfinite(std):
            raise _overflow_error(channel)
        if foreground.size < 2 or std == 0:
            raise DataError("image has no non-zero contrast; cannot z-score it")
        return np.where(channel != 0, (channel - foreground.mean()) / std, 0.0)
    raise ValueError(f"unknown intensity method '{method}' (expected 'percentile' or 'zscore')")


def binarise_label(label: np.ndarray, foreground_labels: tuple[int, ...]) -> np.ndarray:
    """Map the given label values to 1 and everything else to 0; returns uint8 of the same shape."""
    return np.isin(label, foreground_labels).astype(np.uint8)


def most_foreground_slice(label: np.ndarray, slice_axis: int) -> int:
    """Index, along ``slice_axis``, of the slice of a 3D label with the most foreground voxels."""
    other_axes = tuple(axis for axis in range(3) if axis != slice_axis)
    return int(np.argmax(label.sum(axis=other_axes)))


def _padding_for(inplane: tuple[int, int], size: tuple[int, int], mode: str) -> tuple[int, int, int, int]:
    """Padding (top, bottom, left, right) that gives an (h, w) slice the aspect ratio of ``size``."""
    if mode == "stretch":
        return (0, 0, 0, 0)
    if mode != "pad":
        raise ValueError(f"unknown resize mode '{mode}' (expected 'stretch' or 'pad')")
    height, width = inplane
    scale = max(height / size[0], width / size[1])
    target_h, target_w = round(size[0] * scale), round(size[1] * scale)
    pad_h, pad_w = max(target_h - height, 0), max(target_w - width, 0)
    return (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)


def resize_slices(slices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(S, C, h, w) float -> (S, C, H, W) by bilinear interpolation (antialiased when shrinking)."""
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    shrinking = slices.shape[-2] > size[0] or slices.shape[-1] > size[1]
    return F.interpolate(slices, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def image_to_slices(
    image: np.ndarray,
    affine: np.ndarray,
    slice_axis: int,
    size: tuple[int, int],
    resize_mode: str = "stretch",
) -> tuple[np.ndarray, SliceGeometry]:
    """(C, X, Y, Z) image -> (S, C, H, W) float32 slices along ``slice_axis`` and their geometry."""
    shape = tuple(int(s) for s in image.shape[1:])
    slices = torch.from_numpy(np.moveaxis(image, slice_axis + 1, 0).astype(np.float32, copy=True))
    padding = _padding_for(tuple(slices.shape[-2:]), size, resize_mode)
    geometry = SliceGeometry(shape, slice_axis, padding, np.asarray(affine, dtype=np.float64))
    return _pad_and_resize(slices, geometry, size).numpy(), geometry


def _pad_and_resize(slices: torch.Tensor, geometry: SliceGeometry, size: tuple[int, int]) -> torch.Tensor:
    """(S, C, h, w) -> (S, C, H, W) with the geometry's padding."""
    top, bottom, left, right = geometry.padding
    return resize_slices(F.pad(slices, (left, right, top, bottom)), size)


def volume_to_slices(
    image: np.ndarray,
    label: np.ndarray,
    affine: np.ndarray,
    slice_axis: int,
    size: tuple[int, int],
    resize_mode: str = "stretch",
) -> tuple[np.ndarray, np.ndarray, SliceGeometry]:
    """(C, X, Y, Z) image and (X, Y, Z) binary label -> (S, C, H, W) float32 and (S, H, W) uint8 slices.

    Labels are resized bilinearly and thresholded at 0.5, which keeps thin structures better than nearest.
    """
    if image.shape[1:] != label.shape:
        raise DataError(f"image shape {image.shape[1:]} and label shape {label.shape} differ")
    image_slices, geometry = image_to_slices(image, affine, slice_axis, size, resize_mode)
    label_slices = torch.from_numpy(np.moveaxis(label, slice_axis, 0).astype(np.float32, copy=True))[:, None]
    label_slices = _pad_and_resize(label_slices, geometry, size)[:, 0] >= 0.5
    return image_slices, label_slices.numpy().astype(np.uint8), geometry


def slices_to_volume(slices: np.ndarray, geometry: SliceGeometry) -> np.ndarray:
    """(S, H, W) per-slice maps (e.g. foreground probabilities) -> (X, Y, Z) float32 in the original grid.

    Undoes the resize (bilinear) and the padding; threshold the result to get a label map.
    """
    top, bottom, left, right = geometry.padding
    height, width = geometry.inplane_shape
    padded = (height + top + bottom, width + left + right)
    restored = resize_slices(torch.from_numpy(np.asarray(slices, dtype=np.float32))[:, None], padded)[:, 0]
    restored = restored[:, top : top + height, left : left + width]
    if restored.shape[0] != geometry.shape[geometry.slice_axis]:
        raise DataError(
            f"{restored.shape[0]} slices cannot fill axis {geometry.slice_axis} "
            f"of a volume of shape {geometry.shape}"
        )
    return np.ascontiguousarray(np.moveaxis(restored.numpy(), 0, geometry.slice_axis))


def save_slices(
    path: Path, image: np.ndarray, label: np.ndarray, geometry: SliceGeometry, profile: CaseProfile
) -> None:
    """Store (S, C, H, W) image and (S, H, W) label slices with their geometry and the raw volume's (C, 2)
    intensity percentiles (``profile``) in one ``.npz``, atomically."""
    intensity = np.asarray(profile.intensity, dtype=np.float64).reshape(-1, 2)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, image=image, label=label, **geometry.to_arrays(), **{INTENSITY_KEY: intensity})


def load_profile(path: Path) -> CaseProfile:
    """The raw volume's profile (size, spacing, intensity percentiles) recorded in a slices file."""
    try:
        with np.load(path) as arrays:
            return profile_from_arrays(arrays)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read preprocessed slices ({error}); delete it and re-run") from error


def load_slices(path: Path) -> tuple[np.ndarray, np.ndarray, SliceGeometry]:
    """Inverse of ``save_slices``: (S, C, H, W) float32 image, (S, H, W) uint8 label and the geometry."""
    try:
        with np.load(path) as arrays:
            return arrays["image"], arrays["label"], SliceGeometry.from_arrays(arrays)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read preprocessed slices ({error}); delete it and re-run") from error
