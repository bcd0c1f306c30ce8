"""Perturbation library: seeds, identity at severity 0, determinism, geometry and graded artefacts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from mednca.perturb import (
    ARTEFACT_KINDS,
    ARTEFACT_SEVERITIES,
    STUDIES,
    Perturbation,
    apply_artefact,
    draw_artefact_params,
    perturb_case,
    perturbation_seed,
    round_size,
    scale,
    shift,
    study_levels,
    study_perturbations,
)
from mednca.perturb.geometry import shift_pixels, translate

SLICES, SIZE = 6, 32
SQUARE = slice(12, 20)
CASE = "case_007"
SEED = 3
STOCHASTIC = [
    ("shift", 1),
    ("noise", 1),
    ("spike", 1),
    ("bias_field", 1),
    ("motion", 1),
    ("ghosting", 8),
    ("anisotropy", 8),
]


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, np.ndarray]:
    """Image (6, 2, 32, 32): channel 0 = 0.7 label + 0.2 texture, channel 1 texture; label an 8 px square.

    The label is empty in the first and last slices; the texture is smooth noise varying across slices.
    """
    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.random((SLICES, 2, SIZE, SIZE)), (1, 0, 2, 2))
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    label = np.zeros((SLICES, SIZE, SIZE), dtype=np.uint8)
    label[1:-1, SQUARE, SQUARE] = 1
    image = texture.astype(np.float32)
    image[:, 0] = 0.7 * label + 0.2 * texture[:, 0]
    return image, label


def run(case: tuple[np.ndarray, np.ndarray], study: str, severity: int, seed: int = SEED, **kwargs):
    """``perturb_case`` of the fixture case at the default level ``severity`` of ``study``."""
    image, label = case
    perturbation = study_perturbations(study)[severity]
    return perturb_case(image, label, CASE, perturbation, seed, **kwargs)


def centre_of_mass(label: np.ndarray) -> np.ndarray:
    """(y, x) centre of mass of every non-empty slice of label (S, H, W), as an (n, 2) array."""
    return np.array([ndimage.center_of_mass(slice_) for slice_ in label if slice_.any()])


def test_perturbation_seed_is_stable() -> None:
    assert perturbation_seed(42, "hippocampus_001", "shift", 2) == 12855447626716745976


@pytest.mark.parametrize(
    "changed",
    [
        (43, "hippocampus_001", "shift", 2),
        (42, "hippocampus_002", "shift", 2),
        (42, "hippocampus_001", "noise", 2),
        (42, "hippocampus_001", "shift", 3),
    ],
)
def test_perturbation_seed_depends_on_every_argument(changed: tuple) -> None:
    assert perturbation_seed(*changed) != perturbation_seed(42, "hippocampus_001", "shift", 2)


@pytest.mark.parametrize("study", STUDIES)
def test_severity_zero_returns_equal_copies(case, study: str) -> None:
    image, label = case
    out_image, out_label, params = run(case, study, 0)
    assert np.array_equal(out_image, image) and out_image.dtype == image.dtype
    assert np.array_equal(out_label, label) and out_label.dtype == label.dtype
    assert not np.shares_memory(out_image, image) and not np.shares_memory(out_label, label)
    json.dumps(params)


@pytest.mark.parametrize("kind", ARTEFACT_KINDS)
def test_artefact_none_value_is_identity(case, kind: str) -> None:
    image = case[0]
    params = draw_artefact_params(kind, np.random.default_rng(0), ARTEFACT_SEVERITIES[kind][0])
    assert np.array_equal(apply_artefact(kind, image, params), image)


@pytest.mark.parametrize("study", STUDIES)
def test_same_arguments_give_identical_outputs_and_no_side_effects(case, study: str) -> None:
    image, label = case
    image_copy, label_copy = image.copy(), label.copy()
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = run(case, study, 4, fill="reflect", multiple=4)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    second = run(case, study, 4, fill="reflect", multiple=4)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert json.loads(json.dumps(first[2])) == first[2]
    assert np.array_equal(image, image_copy) and np.array_equal(label, label_copy)


@pytest.mark.parametrize(("study", "n_seeds"), STOCHASTIC)
def test_another_seed_gives_another_output(case, study: str, n_seeds: int) -> None:
    reference = run(case, study, 3)[0]
    others = [run(case, study, 3, seed=SEED + offset)[0] for offset in range(1, n_seeds + 1)]
    assert any(not np.array_equal(reference, other) for other in others)


@pytest.mark.parametrize("study", ["shift", "spike", "bias_field", "motion", "ghosting"])
def test_random_draws_are_shared_by_the_severities_of_a_case(case, study: str) -> None:
    records = [run(case, study, severity)[2] for severity in range(1, 5)]
    random_keys = {
        "shift": ["shift_direction_dy", "shift_direction_dx"],
        "spike": ["spike_positions"],
        "bias_field": [],
        "motion": ["motion_degrees", "motion_translation"],
        "ghosting": ["ghosting_axis"],
    }[study]
    for key in random_keys:
        assert all(record[key] == records[0][key] for record in records)
    if study == "bias_field":
        signs = [np.sign(record["bias_field_coefficients"]) for record in records]
        assert all(np.array_equal(sign, signs[0]) for sign in signs)


@pytest.mark.parametrize("direction", [(0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0)])
def test_shift_moves_label_with_image(case, direction: tuple[float, float]) -> None:
    image, label = case
    out_image, out_label = shift(image, label, 0.25, direction)
    assert np.array_equal(out_image[:, 0] > 0.5, out_label == 1)
    moved = centre_of_mass(out_label) - centre_of_mass(label)
    assert np.allclose(moved, 8 * np.array(direction))


def test_shift_rounds_to_whole_pixels_and_normalises_direction() -> None:
    assert shift_pixels(64, 64, 0.2, (0.0, 1.0)) == (0, 13)
    assert shift_pixels(64, 64, 0.2, (0.0, 3.0)) == (0, 13)
    assert shift_pixels(64, 32, 0.25, (-1.0, -1.0)) == (-11, -6)


def test_reflect_fill_mirrors_image_and_label() -> None:
    ramp = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5)
    label = (ramp[:, 0] > 2).astype(np.uint8)
    out_image, out_label = translate(ramp, label, 0, 2, fill="reflect")
    assert out_image.ravel().tolist() == [2, 1, 0, 1, 2]
    assert out_label.ravel().tolist() == [0, 0, 0, 0, 0]
    left_image, left_label = translate(ramp, label, 0, -2, fill="reflect")
    assert left_image.ravel().tolist() == [2, 3, 4, 3, 2]
    assert left_label.ravel().tolist() == [0, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("size", "multiple", "expected"), [(30, 4, 32), (48, 16, 48), (40, 16, 48), (8, 32, 32)]
)
def test_round_size(size: int, multiple: int, expected: int) -> None:
    assert round_size(size, multiple) == expected


@pytest.mark.parametrize(
    ("factor", "multiple"), [(0.5, 1), (0.75, 1), (1.5, 1), (2.0, 1), (0.75, 16), (1.5, 32)]
)
def test_scale_resize_size_and_foreground_area(case, factor: float, multiple: int) -> None:
    image, label = case
    out_image, out_label, applied = scale(image, label, factor, "resize", multiple)
    side = round_size(round(SIZE * factor), multiple)
    assert out_image.shape == (SLICES, 2, side, side) and out_label.shape == (SLICES, side, side)
    assert applied == pytest.approx(side / SIZE)
    assert set(np.unique(out_label)) <= {0, 1}
    assert out_label.sum() / label.sum() == pytest.approx(applied**2, rel=0.15)


@pytest.mark.parametrize("factor", [0.5, 0.75, 1.5, 2.0])
def test_scale_fixed_keeps_size_and_scales_foreground_area(case, factor: float) -> None:
    image, label = case
    out_image, out_label, applied = scale(image, label, factor, "fixed")
    assert out_image.shape == image.shape and out_label.shape == label.shape
    assert applied == pytest.approx(factor)
    assert out_label.sum() / label.sum() == pytest.approx(factor**2, rel=0.15)
    assert np.allclose(centre_of_mass(out_label), centre_of_mass(label), atol=0.6)


@pytest.mark.parametrize("kind", ARTEFACT_KINDS)
def test_artefacts_grow_with_severity_and_keep_the_label(case, kind: str) -> None:
    image, label = case
    outputs = [run(case, kind, severity) for severity in range(len(ARTEFACT_SEVERITIES[kind]))]
    distances = np.array([np.abs(out_image - image).mean() for out_image, _, _ in outputs])
    assert np.all(np.diff(distances) >= 0), distances
    assert distances[-1] > distances[1] > 0
    assert all(np.array_equal(out_label, label) for _, out_label, _ in outputs)


def test_noise_std_is_relative_to_the_intensity_range(case) -> None:
    image = case[0]
    noisy = run(case, "noise", 4)[0]
    assert np.std(noisy - image) == pytest.approx(0.2 * (image.max() - image.min()), rel=0.05)


def test_motion_is_the_same_2d_artefact_in_every_slice(case) -> None:
    image = np.repeat(case[0][2:3], SLICES, axis=0)
    moved = apply_artefact("motion", image, draw_artefact_params("motion", np.random.default_rng(1), 0.4))
    assert np.abs(moved - image).mean() > 0.01
    assert np.allclose(moved, moved[:1], atol=1e-5)


def test_study_levels_defaults_and_validation() -> None:
    assert study_levels("shift") == [0.0, 0.05, 0.1, 0.2, 0.3]
    assert study_levels("scale_fixed") == [1.0, 0.5, 0.75, 1.5, 2.0]
    assert study_levels("anisotropy")[0] == 1.0
    assert study_levels("noise", [0, 0.5]) == [0.0, 0.5]
    with pytest.raises(ValueError, match="identity"):
        study_levels("scale_resize", [0.5, 1.0])
    with pytest.raises(ValueError, match="unknown study"):
        study_levels("blur")
    with pytest.raises(ValueError, match="severity 0"):
        Perturbation("shift", 0, 0.1)
