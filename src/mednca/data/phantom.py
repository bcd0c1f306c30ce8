"""Seeded generator of a small SYNTHETIC, MRI-like dataset in the Medical Segmentation Decathlon layout.

The phantom mimics MSD Task04 (hippocampus): small 3D crops, labels 0 background / 1 anterior / 2 posterior,
image dtypes mixed float32 and uint8, 4D channels-last images for several modalities. Each case holds one
smooth, bent and noise-deformed ellipsoid split along its long axis into labels 1 and 2, inside a textured
background, with a smooth multiplicative bias field and Rician noise. Geometry is built in voxel units.

All randomness comes from ``numpy.random.default_rng([seed, case_index])``, so a case depends only on the
arguments and its index. The dataset folder appears only once every file has been written.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

MIN_AXIS = 8
CASE_PREFIX = "phantom"
ORIGIN_MM = (-20.0, -24.0, -12.0)
DATASET_FOLDER_MODE = 0o755
DEFORMATION = 0.1
NOISE_CLIP = 1.5
LABELS = {"0": "background", "1": "anterior", "2": "posterior"}
DATASET_NAME = "Phantom (synthetic)"
SETTINGS_KEY = "mednca_phantom"
"""The ``dataset.json`` key holding the generator's arguments, so a folder says what it was made with."""


@dataclass(frozen=True)
class _Contrast:
    """Intensity model of one modality: relative means, texture weight, scale and noise level."""

    anterior: float
    posterior: float
    texture: float
    level: float
    noise: float


def generate_phantom_dataset(
    out_dir: Path,
    n_cases: int,
    seed: int,
    shape: tuple[int, int, int] = (32, 40, 24),
    shape_jitter: int = 4,
    n_modalities: int = 1,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    progress: bool = False,
    replace: bool = False,
) -> Path:
    """Write ``n_cases`` synthetic cases as an MSD folder at ``out_dir`` and return ``out_dir``.

    Images are (X, Y, Z) for one modality, (X, Y, Z, n_modalities) otherwise; labels are (X, Y, Z) uint8.
    Each case's shape is ``shape`` plus a per-axis jitter in [-shape_jitter, shape_jitter]. Raises
    ``FileExistsError`` if ``out_dir`` exists (unless ``replace``: the new folder then takes the old one's
    place once complete) and ``ValueError`` for invalid arguments.
    """
    out_dir = Path(out_dir)
    shape, spacing = _validated(n_cases, seed, shape, shape_jitter, n_modalities, spacing)
    if out_dir.exists() and not replace:
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another folder for the phantom")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_dataset(tmp, n_cases, seed, shape, shape_jitter, n_modalities, spacing, progress)
        tmp.chmod(DATASET_FOLDER_MODE)
        _move_into_place(tmp, out_dir, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _move_into_place(complete: Path, out_dir: Path, replace: bool) -> None:
    """Rename the finished folder to ``out_dir``; with ``replace``, the old folder goes only afterwards."""
    if not out_dir.exists():
        complete.rename(out_dir)
        return
    if not replace:
        raise FileExistsError(f"{out_dir} appeared while the phantom was being generated")
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    out_dir.rename(old / out_dir.name)
    complete.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def phantom_settings(folder: Path) -> dict | None:
    """The generator arguments a phantom folder was written with (``{}`` for a phantom that predates their
    recording), or None when ``folder`` is not a phantom written by this generator."""
    try:
        description = json.loads((Path(folder) / "dataset.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(description, dict) or description.get("name") != DATASET_NAME:
        return None
    settings = description.get(SETTINGS_KEY)
    return settings if isinstance(settings, dict) else {}


def _validated(
    n_cases: int,
    seed: int,
    shape: tuple[int, int, int],
    shape_jitter: int,
    n_modalities: int,
    spacing: tuple[float, float, float],
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Check the arguments; return ``shape`` as 3 ints and ``spacing`` as 3 floats."""
    if n_cases < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if n_modalities < 1:
        raise ValueError(f"n_modalities must be at least 1, got {n_modalities}")
    if shape_jitter < 0:
        raise ValueError(f"shape_jitter must be non-negative, got {shape_jitter}")
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"shape and spacing need 3 entries each, got shape {shape} and spacing {spacing}")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    if min(shape) - shape_jitter < MIN_AXIS:
        raise ValueError(
            f"shape {shape} with shape_jitter {shape_jitter} could give an axis of "
            f"{min(shape) - shape_jitter} voxels; every axis needs at least {MIN_AXIS} voxels after jitter"
        )
    spacing = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing entries must be positive and finite, got {spacing}")
    return shape, spacing


def _write_dataset(
    root: Path,
    n_cases: int,
    seed: int,
    shape: tuple[int, int, int],
    shape_jitter: int,
    n_modalities: int,
    spacing: tuple[float, float, float],
    progress: bool,
) -> None:
    """Write imagesTr/, labelsTr/ and dataset.json into ``root``."""
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    affine = _affine(spacing)
    names = [f"{CASE_PREFIX}_{index:03d}.nii.gz" for index in range(n_cases)]
    for index in tqdm(range(n_cases), desc="phantom", unit="case", disable=not progress):
        image, label = _case(np.random.default_rng([seed, index]), shape, shape_jitter, n_modalities)
        if index % 3 == 2:
            image = _to_uint8(image)
        image = image[..., 0] if n_modalities == 1 else image
        nib.save(_nifti(image, affine, spacing), root / "imagesTr" / names[index])
        nib.save(_nifti(label, affine, spacing), root / "labelsTr" / names[index])
    settings = {
        "cases": n_cases,
        "seed": seed,
        "shape": list(shape),
        "shape_jitter": shape_jitter,
        "modalities": n_modalities,
        "spacing": list(spacing),
    }
    description = _dataset_description(names, settings)
    (root / "dataset.json").write_text(json.dumps(description, indent=4) + "\n")


def _dataset_description(names: list[str], settings: dict) -> dict:
    """The MSD ``dataset.json`` of the case files ``names``, written with the generator ``settings``."""
    seed, n_modalities = settings["seed"], settings["modalities"]
    return {
        "name": DATASET_NAME,
        "description": (
            f"SYNTHETIC data generated by mednca (mednca.data.phantom, seed {seed}); NOT real MRI. "
            "Smooth random structures split into anterior/posterior parts in an MRI-like texture, "
            "for demos and tests only."
        ),
        "reference": "mednca synthetic phantom generator; no human or animal subject data",
        "licence": "CC0 1.0",
        "release": "1.0",
        "tensorImageSize": "4D" if n_modalities > 1 else "3D",
        "modality": {str(m): "synthetic MRI" for m in range(n_modalities)},
        "labels": dict(LABELS),
        "numTraining": len(names),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"} for name in names],
        "test": [],
        SETTINGS_KEY: settings,
    }


def _case(
    rng: np.random.Generator, shape: tuple[int, int, int], shape_jitter: int, n_modalities: int
) -> tuple[np.ndarray, np.ndarray]:
    """One case: a float32 image (X, Y, Z, n_modalities) and a uint8 label (X, Y, Z)."""
    jitter = rng.integers(-shape_jitter, shape_jitter + 1, size=3)
    case_shape = tuple(int(s + j) for s, j in zip(shape, jitter, strict=True))
    label = _structure_label(rng, case_shape)
    texture = np.tanh(2.0 * _smooth_noise(rng, case_shape, 2.0))
    channels = [_image_channel(rng, label, texture, _contrast(rng, m)) for m in range(n_modalities)]
    return np.stack(channels, axis=-1).astype(np.float32), label


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise of ``shape``, rescaled to zero mean and unit standard deviation."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (noise - noise.mean()) / max(float(noise.std()), 1e-12)


def _structure_axes(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """(3, 3) matrix whose columns are the structure's axes, long axis first, near the volume's long axes."""
    frame = np.eye(3)[:, np.argsort(shape, kind="stable")[::-1]]
    random = np.linalg.qr(np.eye(3) + 0.25 * rng.standard_normal((3, 3)))[0]
    return random * np.sign(np.diag(random)) @ frame


def _structure_label(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (X, Y, Z) map of one bent, deformed ellipsoid split along its long axis into labels 1 and 2."""
    size = np.asarray(shape, dtype=float)
    axes = _structure_axes(rng, shape)
    semi = np.array([1.0, rng.uniform(0.5, 0.65), rng.uniform(0.4, 0.55)])
    semi *= (rng.uniform(0.07, 0.12) * size.prod() / (4 / 3 * np.pi * semi.prod())) ** (1 / 3)
    bend = rng.uniform(-0.3, 0.3)
    semi, centre = _placement(rng, size, axes, semi, bend)
    local = np.einsum("ik,i...->k...", axes, np.indices(shape) - centre[:, None, None, None])
    local[1] -= bend * semi[1] * (local[0] / semi[0]) ** 2
    radius = np.sqrt(((local / semi[:, None, None, None]) ** 2).sum(axis=0))
    deformation = np.clip(_smooth_noise(rng, shape, 2.5), -NOISE_CLIP, NOISE_CLIP)
    inside = np.zeros(shape, dtype=bool)
    inside[1:-1, 1:-1, 1:-1] = True
    mask = _largest_component(inside & (radius - 1 + DEFORMATION * deformation < 0), radius)
    return _split(mask, local[0], rng.uniform(0.4, 0.6))


def _placement(
    rng: np.random.Generator, size: np.ndarray, axes: np.ndarray, semi: np.ndarray, bend: float
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes (3,) shrunk to fit and a random centre (3,) keeping the deformed structure off the border."""
    reach = 1 + DEFORMATION * NOISE_CLIP
    bounds = semi * np.array([reach, reach + abs(bend) * reach**2, reach])
    room = (size - 1) / 2 - 1
    extent = np.sqrt((axes * bounds) ** 2 @ np.ones(3))
    scale = min(1.0, float((room / extent).min()))
    centre = (size - 1) / 2 + rng.uniform(-1, 1, 3) * np.clip(room - extent * scale, 0, None)
    return semi * scale, centre


def _largest_component(mask: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Largest connected, filled part of boolean (X, Y, Z) ``mask``; else the 2 lowest-``radius`` voxels."""
    components, count = ndimage.label(mask)
    if count > 1:
        mask = components == np.argmax(np.bincount(components.ravel())[1:]) + 1
    mask = ndimage.binary_fill_holes(mask)
    if mask.sum() < 2:
        mask = radius <= np.partition(radius.ravel(), 1)[1]
    return mask


def _split(mask: np.ndarray, along: np.ndarray, fraction: float) -> np.ndarray:
    """uint8 (X, Y, Z) labels: 1 for the ``fraction`` of ``mask`` voxels lowest in ``along``, else 2."""
    label = np.zeros(mask.shape, dtype=np.uint8)
    order = np.argsort(along[mask], kind="stable")
    n_first = int(np.clip(round(fraction * order.size), 1, order.size - 1))
    values = np.full(order.size, 2, dtype=np.uint8)
    values[order[:n_first]] = 1
    label[mask] = values
    return label


def _contrast(rng: np.random.Generator, modality: int) -> _Contrast:
    """Random contrast of ``modality``: even modalities show a bright structure, odd ones a dark one."""
    sign = 1.0 if modality % 2 == 0 else -1.0
    anterior = sign * rng.uniform(0.25, 0.4)
    return _Contrast(
        anterior=anterior,
        posterior=anterior * rng.uniform(0.75, 0.95),
        texture=rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.1),
        level=rng.uniform(300.0, 900.0),
        noise=rng.uniform(0.03, 0.06),
    )


def _image_channel(
    rng: np.random.Generator, label: np.ndarray, texture: np.ndarray, contrast: _Contrast
) -> np.ndarray:
    """float64 (X, Y, Z) non-negative image of ``label`` on ``texture`` (both (X, Y, Z)) for one modality."""
    shape = label.shape
    signal = 1.0 + contrast.texture * texture + 0.03 * _smooth_noise(rng, shape, 0.8)
    for value, mean in ((1, contrast.anterior), (2, contrast.posterior)):
        signal += mean * ndimage.gaussian_filter((label == value).astype(float), 0.8)
    signal *= _bias_field(rng, shape) * contrast.level
    sigma = contrast.noise * contrast.level
    real = signal + sigma * rng.standard_normal(shape)
    return np.hypot(real, sigma * rng.standard_normal(shape))


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth multiplicative (X, Y, Z) field: exp of a random quadratic polynomial, roughly 0.8..1.25."""
    grid = [np.linspace(-1.0, 1.0, n) for n in shape]
    x, y, z = np.meshgrid(*grid, indexing="ij")
    terms = np.stack([x, y, z, x * x, y * y, z * z, x * y, x * z, y * z])
    weights = rng.normal(0.0, 0.035, len(terms))
    return np.exp(np.tensordot(weights, terms, axes=1))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """(X, Y, Z, C) image rescaled channel by channel to the full 0..255 range, as uint8."""
    low = image.min(axis=(0, 1, 2), keepdims=True)
    high = image.max(axis=(0, 1, 2), keepdims=True)
    scaled = (image - low) / np.maximum(high - low, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """(4, 4) diagonal affine with ``spacing`` (mm) and the fixed origin ``ORIGIN_MM``."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = ORIGIN_MM
    return affine


def _nifti(data: np.ndarray, affine: np.ndarray, spacing: tuple[float, float, float]) -> nib.Nifti1Image:
    """NIfTI image of (X, Y, Z) or (X, Y, Z, C) ``data`` with ``affine`` as qform and sform, zooms in mm."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_zooms((*spacing, *([1.0] * (data.ndim - 3))))
    image.header.set_xyzt_units("mm")
    return image
