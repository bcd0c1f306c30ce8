"""Segmenting a new NIfTI volume with a trained model file: ``mednca predict``."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from mednca.data.layout import Channel, order_sequence_files
from mednca.data.preprocessing import Preprocessing
from mednca.data.validate import AFFINE_TOLERANCE_MM
from mednca.data.volumes import (
    finite_float32,
    is_compressed_nifti,
    read_nifti,
    read_voxels,
    save_label_map,
    select_channel,
)
from mednca.errors import DataError
from mednca.evaluate.cases import folder_case_files
from mednca.evaluate.evaluation import load_segmenter
from mednca.evaluate.inference import case_generator
from mednca.io import check_output

log = logging.getLogger(__name__)


def _read_channels(path: Path, indices: list[int | None]) -> list[np.ndarray]:
    """(X, Y, Z) float32 input channels of a NIfTI file, refused if any voxel is not finite in float32."""
    voxels = read_voxels(read_nifti(path), path)
    return [finite_float32(select_channel(voxels, Channel(path, index)), path) for index in indices]


def read_input_channels(inputs: list[Path], preprocessing: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Model input from NIfTI files: (C, X, Y, Z) float32 and the first file's (4, 4) affine.

    One file: its channels are chosen as in training (the configured modalities of a 4D image; a 3D image
    is one channel). Several files: one 3D volume per channel, in the order the model was trained with,
    which must share the first file's voxel grid (``check_aligned``). The affine must be finite and
    invertible; every voxel must be finite.
    """
    first = read_nifti(inputs[0])  # checks the header and the affine before any voxel is read
    check_aligned(inputs, first)
    if len(inputs) == 1:
        indices = list(preprocessing.modalities) if len(first.shape) == 4 else [None]
        channels = _read_channels(inputs[0], indices)
    else:
        channels = [channel for path in inputs for channel in _read_channels(path, [None])]
    shapes = {channel.shape for channel in channels}
    if len(shapes) != 1:
        raise DataError(
            f"input channels have different shapes {sorted(shapes)}: {', '.join(map(str, inputs))}"
        )
    return np.stack(channels), np.asarray(first.affine, dtype=np.float64)


def check_aligned(inputs: list[Path], first: nib.Nifti1Image) -> None:
    """Refuse channel files that do not share the first file's voxel grid: the same (X, Y, Z) shape and the
    same affine within ``AFFINE_TOLERANCE_MM``; one line names both files and the difference. A channel
    moved against another (another scan's position, a wrong registration) would be segmented silently."""
    reference = np.asarray(first.affine, dtype=np.float64)[:3]
    for path in inputs[1:]:
        other = read_nifti(path)
        if tuple(other.shape[:3]) != tuple(first.shape[:3]):
            raise DataError(
                f"{path}: its voxel grid {tuple(other.shape[:3])} differs from {inputs[0]}'s "
                f"{tuple(first.shape[:3])}; the channels of one case must share one grid"
            )
        difference = np.abs(np.asarray(other.affine, dtype=np.float64)[:3] - reference)
        if difference.max() > AFFINE_TOLERANCE_MM:
            shift = float(np.linalg.norm(np.asarray(other.affine)[:3, 3] - reference[:, 3]))
            raise DataError(
                f"{path}: not aligned with {inputs[0]}: their affines differ by up to {difference.max():.3g} "
                f"(origins {shift:.3g} mm apart); resample the channels onto one grid first"
            )


def model_files(inputs: list[Path], preprocessing: Preprocessing) -> list[Path]:
    """A case's input files in the order the model takes them: a BraTS model's sequence files (from a case
    folder or files in any order, ``sequence_files``); for any other model a case folder stands for the NIfTI
    files it holds, sorted by name."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir() and preprocessing.layout != "brats":
        inputs = folder_case_files(Path(inputs[0]))
    return sequence_files(inputs, preprocessing)


def sequence_files(inputs: list[Path], preprocessing: Preprocessing) -> list[Path]:
    """A BraTS model's inputs as one file per sequence in its training order (from a case folder or from
    files named ``*_{sequence}.nii.gz`` in any order); other inputs unchanged."""
    if preprocessing.layout != "brats":
        return inputs
    ordered = order_sequence_files(inputs, preprocessing.sequences)
    if ordered != inputs:
        log.info("input sequences %s: %s", ", ".join(preprocessing.sequences), ", ".join(map(str, ordered)))
    return ordered


NIFTI_SUFFIXES = (".nii.gz", ".nii")


def case_name(inputs: list[Path]) -> str:
    """The case an input names, as the evaluation names cases: a case folder's name, a file's name without
    its NIfTI suffix, or the part before the last ``_`` that channel files share (``X_0000``/``X_0001`` and
    ``X_flair``/``X_t1`` -> ``X``). An NCA's random draws are seeded from it, so ``mednca predict`` on a test
    case gives the evaluation's label map."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        return Path(inputs[0]).name
    stems = []
    for path in map(Path, inputs):
        name = path.name
        suffix = next((s for s in NIFTI_SUFFIXES if name.lower().endswith(s)), "")
        stems.append(name[: len(name) - len(suffix)])
    if len(stems) == 1:
        return stems[0]
    prefixes = {stem.rpartition("_")[0] for stem in stems}
    return prefixes.pop() if len(prefixes) == 1 and "" not in prefixes else stems[0]


def predict_file(
    model_path: Path,
    inputs: list[Path],
    output: Path,
    device_name: str = "auto",
    seed: int = 0,
    runs: int = 1,
) -> np.ndarray:
    """Segment the volume in ``inputs`` and write a {0, 1} label map with the input's shape and affine.

    A BraTS model also takes a case folder, or its sequence files in any order when their names end with
    the sequence. An NCA is run ``runs`` times and its mean output thresholded; the NQM of the runs is
    logged; its random draws are seeded from ``seed`` and the case's name (``case_name``), as in the
    evaluation. The output is checked before anything is computed: a ``.nii`` or ``.nii.gz`` name that is
    none of the inputs nor the model file.
    """
    model_path, inputs, output = Path(model_path), [Path(p) for p in inputs], Path(output)
    check_output(output, [model_path, *inputs])
    is_compressed_nifti(output)
    segmenter = load_segmenter(model_path, device_name, runs, batch_size=64)
    inputs = sequence_files(inputs, segmenter.preprocessing)
    check_output(output, [model_path, *inputs])
    image, affine = read_input_channels(inputs, segmenter.preprocessing)
    segmenter.check_channels(image.shape[0], "the input")
    segmenter.check_ranges(image, affine, case_name(inputs))
    generator = case_generator(seed, case_name(inputs), segmenter.device)
    try:
        result = segmenter.segment(image, affine, generator)
    except DataError as error:
        raise DataError(f"{inputs[0]}: {error}") from error
    save_label_map(output, result.label, affine)
    log.info(
        "wrote %s: %d foreground voxels of %d (NQM %.4f)",
        output,
        int(result.label.sum()),
        result.label.size,
        result.nqm,
    )
    return result.label
