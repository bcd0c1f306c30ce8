"""Slicing, normalisation and the geometry round trip back to the original voxel grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mednca.data.preprocess import (
    SliceGeometry,
    binarise_label,
    load_profile,
    load_slices,
    normalise_intensity,
    save_slices,
    slices_to_volume,
    volume_to_slices,
)
from mednca.data.ranges import CaseProfile
from mednca.errors import DataError


def _ellipsoid(shape: tuple[int, int, int]) -> np.ndarray:
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    return (sum((g / 0.6) ** 2 for g in grid) <= 1).astype(np.uint8)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize(
    ("shape", "axis", "size", "mode", "slices_shape"),
    [
        ((30, 40, 20), 2, (64, 64), "stretch", (20, 2, 64, 64)),
        ((30, 40, 20), 0, (16, 16), "stretch", (30, 2, 16, 16)),
        ((30, 40, 20), 1, (32, 48), "pad", (40, 2, 32, 48)),
    ],
)
def test_slice_count_and_shape(shape, axis, size, mode, slices_shape) -> None:
    image = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    images, labels, geometry = volume_to_slices(image, _ellipsoid(shape), np.eye(4), axis, size, mode)
    assert images.shape == slices_shape
    assert labels.shape == (slices_shape[0], *size)
    assert images.dtype == np.float32 and labels.dtype == np.uint8
    assert geometry.shape == shape


@pytest.mark.parametrize(
    ("shape", "axis", "size", "mode", "min_dice"),
    [
        ((30, 40, 20), 2, (30, 40), "stretch", 1.0),
        ((30, 40, 20), 2, (64, 64), "stretch", 0.97),
        ((35, 51, 35), 2, (64, 64), "pad", 0.97),
        ((35, 51, 35), 1, (16, 16), "stretch", 0.85),
    ],
)
def test_label_round_trip_back_to_original_grid(shape, axis, size, mode, min_dice) -> None:
    label = _ellipsoid(shape)
    image = label[None].astype(np.float32)
    _, slices, geometry = volume_to_slices(image, label, np.eye(4), axis, size, mode)
    restored = slices_to_volume(slices.astype(np.float32), geometry) >= 0.5
    assert restored.shape == shape
    assert _dice(restored, label.astype(bool)) >= min_dice


def test_percentile_normalisation_maps_to_unit_range_per_channel() -> None:
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(100, 10, (20, 20, 5)), rng.normal(-3, 1, (20, 20, 5))])
    normalised = normalise_intensity(image, "percentile", 0.5, 99.5)
    assert normalised.dtype == np.float32
    for channel in normalised:
        assert channel.min() == 0.0 and channel.max() == 1.0
        assert 0.005 <= (channel == 1.0).mean() <= 0.01


def test_zscore_keeps_zero_background() -> None:
    image = np.zeros((1, 10, 10, 4))
    image[0, 2:8, 2:8] = np.random.default_rng(0).normal(50, 5, (6, 6, 4))
    normalised = normalise_intensity(image, "zscore")
    inside = normalised[0, 2:8, 2:8]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-4
    assert (normalised[0, :2] == 0).all()


def test_constant_image_cannot_be_normalised() -> None:
    with pytest.raises(DataError, match="constant"):
        normalise_intensity(np.ones((1, 4, 4, 4)), "percentile")


def test_foreground_labels_are_merged() -> None:
    label = np.array([0, 1, 2, 4, 3])
    assert binarise_label(label, (1, 2, 4)).tolist() == [0, 1, 1, 1, 0]


def test_slices_file_round_trip(tmp_path: Path) -> None:
    geometry = SliceGeometry((4, 5, 6), 2, (1, 0, 2, 0), np.diag([0.5, 1.0, 2.0, 1.0]))
    image = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    label = (image[:, 0] > 0.5).astype(np.uint8)
    raw = np.random.default_rng(1).normal(100.0, 10.0, (1, 4, 5, 6))
    profile = CaseProfile.of(raw, geometry.affine)
    save_slices(tmp_path / "case.npz", image, label, geometry, profile)
    loaded_image, loaded_label, loaded_geometry = load_slices(tmp_path / "case.npz")
    np.testing.assert_array_equal(loaded_image, image)
    np.testing.assert_array_equal(loaded_label, label)
    assert loaded_geometry.shape == geometry.shape and loaded_geometry.padding == geometry.padding
    np.testing.assert_array_equal(loaded_geometry.affine, geometry.affine)
    assert load_profile(tmp_path / "case.npz") == profile
    assert profile.shape == (4, 5, 6) and profile.spacing == (0.5, 1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["case.npz"]


def test_unreadable_slices_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.npz"):
        load_slices(tmp_path / "broken.npz")
