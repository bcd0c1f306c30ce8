"""The range of inputs a model was trained on, and a warning for a case far outside it.

Preprocessing records each case's ``CaseProfile`` in its slices file: the raw volume's (X, Y, Z) size in
voxels, voxel spacing in mm and, per channel, the 1st and 99th percentiles of its raw intensities. Training
turns the profiles of its cases into ``input_ranges`` (stored in the model file); ``mednca predict`` and
``mednca evaluate`` compare every case with them before inference and warn, naming the case and the
training range, when it lies far outside: a size or spacing more than ``FAR_FACTOR`` times beyond the
smallest or largest seen on an axis, or an intensity percentile more than one training span below or above
the lowest 1st or highest 99th percentile seen. A whole-head scan given to a model trained on hippocampus
crops, a volume resampled to another resolution or a CT given to an MRI model are the cases meant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PERCENTILES = (1.0, 99.0)
"""The raw intensity percentiles a profile records per channel."""
FAR_FACTOR = 2.0
"""A size or spacing this many times beyond the training range is far outside it."""
INTENSITY_KEY = "raw_intensity"
"""The slices file's array of a case's (C, 2) raw intensity percentiles."""


@dataclass(frozen=True)
class CaseProfile:
    """What a case's raw volume is like: (X, Y, Z) size in voxels, voxel spacing in mm per axis and, per
    channel, the (1st, 99th) percentile of its intensities (``None`` when not recorded)."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    intensity: tuple[tuple[float, float], ...] | None

    @classmethod
    def of(cls, image: np.ndarray, affine: np.ndarray) -> CaseProfile:
        """The profile of a (C, X, Y, Z) raw image with its 4x4 affine."""
        flat = np.asarray(image, dtype=np.float64).reshape(image.shape[0], -1)
        percentiles = np.percentile(flat, PERCENTILES, axis=1).T if flat.size else np.zeros((len(flat), 2))
        return cls(
            shape=tuple(int(size) for size in image.shape[1:]),
            spacing=voxel_spacing(affine),
            intensity=tuple((float(low), float(high)) for low, high in percentiles),
        )


def voxel_spacing(affine: np.ndarray) -> tuple[float, ...]:
    """The voxel spacing in mm per axis of a 4x4 affine (the lengths of its first three columns)."""
    return tuple(float(length) for length in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def profile_from_arrays(arrays: Mapping[str, np.ndarray]) -> CaseProfile:
    """A case's profile from its slices file (an open ``np.load`` archive holding ``shape`` and ``affine``,
    and ``raw_intensity`` when preprocessing recorded it)."""
    intensity = None
    if INTENSITY_KEY in arrays:
        intensity = tuple((float(low), float(high)) for low, high in np.asarray(arrays[INTENSITY_KEY]))
    return CaseProfile(
        shape=tuple(int(size) for size in arrays["shape"]),
        spacing=voxel_spacing(arrays["affine"]),
        intensity=intensity,
    )


def training_ranges(profiles: Sequence[CaseProfile]) -> dict[str, list[list[float]]]:
    """The ranges a model file records, as plain lists: ``shape`` and ``spacing`` [[min, max]] per axis and,
    when every profile has them, ``intensity`` [[lowest 1st, highest 99th percentile]] per channel."""
    if not profiles:
        return {}
    ranges = {
        "shape": _per_axis([profile.shape for profile in profiles]),
        "spacing": _per_axis([profile.spacing for profile in profiles]),
    }
    intensities = [profile.intensity for profile in profiles]
    if all(intensity is not None for intensity in intensities) and len({len(i) for i in intensities}) == 1:
        values = np.asarray(intensities, dtype=np.float64)  # (cases, C, 2)
        ranges["intensity"] = [[float(low), float(high)] for low, high in
                               zip(values[:, :, 0].min(0), values[:, :, 1].max(0), strict=True)]  # fmt: skip
    return ranges


def _per_axis(values: list[tuple[float, ...]]) -> list[list[float]]:
    array = np.asarray(values, dtype=np.float64)
    return [[float(low), float(high)] for low, high in zip(array.min(0), array.max(0), strict=True)]


def ranges_problem(ranges: Any) -> str | None:
    """Why a model file's ``input_ranges`` cannot be used (None when it can)."""
    if not isinstance(ranges, dict):
        return "is not a mapping"
    for key, pairs in ranges.items():
        if key not in ("shape", "spacing", "intensity"):
            return f"has an unknown key '{key}'"
        try:
            array = np.asarray(pairs, dtype=np.float64)
        except (TypeError, ValueError):
            return f"'{key}' is not a list of [min, max] pairs"
        if array.ndim != 2 or array.shape[1] != 2 or not np.isfinite(array).all():
            return f"'{key}' is not a list of finite [min, max] pairs"
        if (array[:, 0] > array[:, 1]).any():
            return f"'{key}' has a minimum above its maximum"
    return None


def range_warnings(profile: CaseProfile, ranges: Mapping[str, Any]) -> list[str]:
    """What lies far outside the training ``ranges`` in a case's ``profile``, one phrase each."""
    warnings = []
    for key, unit, values in (("shape", "voxels", profile.shape), ("spacing", "mm", profile.spacing)):
        bounds = ranges.get(key)
        if bounds is None or len(bounds) != len(values):
            continue
        far = [
            axis for axis, (value, (low, high)) in enumerate(zip(values, bounds, strict=True))
            if value > high * FAR_FACTOR or value < low / FAR_FACTOR
        ]  # fmt: skip
        if far:
            warnings.append(f"{key} {_format(values)} {unit}, trained on {_format_ranges(bounds)}")
    bounds = ranges.get("intensity")
    if bounds is not None and profile.intensity is not None and len(bounds) == len(profile.intensity):
        for channel, ((low, high), (train_low, train_high)) in enumerate(
            zip(profile.intensity, bounds, strict=True)
        ):
            span = max(train_high - train_low, 1e-6)
            if high > train_high + span or low < train_low - span or high < train_low:
                warnings.append(
                    f"channel {channel} intensities {low:.4g}..{high:.4g} (1st..99th percentile), "
                    f"trained on {train_low:.4g}..{train_high:.4g}"
                )
    return warnings


def warn_outside(case: str, profile: CaseProfile, ranges: Mapping[str, Any] | None) -> str | None:
    """Log one warning naming ``case`` when it lies far outside the training ``ranges``; return its text."""
    if not ranges:
        return None
    found = range_warnings(profile, ranges)
    if not found:
        return None
    text = "; ".join(found)
    log.warning("case %s lies far outside the training data: %s; check the result", case, text)
    return text


def _format(values: Sequence[float]) -> str:
    return "x".join(f"{value:g}" for value in values)


def _format_ranges(bounds: Sequence[Sequence[float]]) -> str:
    return " x ".join(f"{low:g}-{high:g}" if low != high else f"{low:g}" for low, high in bounds)
