"""Scoring a model file on any folder of labelled images: ``mednca evaluate MODEL --images --labels``.

Images and labels are paired by file name. A label ``X.nii.gz`` (or ``X.nii``) in the labels folder belongs
to case ``X`` of the images folder, given as one of:

- one file ``X.nii.gz`` (a 3D image, or a 4D image whose channels are chosen as in training);
- nnU-Net style channel files ``X_0000.nii.gz``, ``X_0001.nii.gz``, ... (one 3D volume per channel, in
  the order of their numbers, which must run from 0000 without a gap);
- a case folder ``X/``: for a BraTS model its ``*_{sequence}.nii.gz`` files as ``mednca predict`` takes
  them, for any other model the NIfTI files it holds, in the order of their names.

Every case is segmented exactly as ``mednca predict`` and the workflow's evaluation do (same input reading,
same per-case random draws, same model runs) and compared with its label map, foreground labels merged, in
the label's own voxel grid, which must be the image's. A case that cannot be scored is reported in one line
and the others are still scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mednca.data.layout import Channel, strip_nifti_suffix
from mednca.data.preprocess import binarise_label
from mednca.data.validate import AFFINE_TOLERANCE_MM
from mednca.data.volumes import read_nifti, read_voxels, require_finite, save_label_map, select_channel
from mednca.errors import DataError, MednCAError
from mednca.evaluate.cases import CaseFailure, case_inputs, image_entries, list_entries
from mednca.evaluate.evaluation import Segmenter, load_segmenter, score, spacing_of, summarise
from mednca.evaluate.inference import case_generator
from mednca.evaluate.predict import model_files, read_input_channels
from mednca.io import check_output, write_csv, write_json

log = logging.getLogger(__name__)

PER_CASE_COLUMNS = [
    "case_id",
    "dice",
    "hd95",
    "predicted_voxels",
    "label_voxels",
    "predicted_volume_mm3",
    "label_volume_mm3",
    "nqm",
    "inference_seconds",
    "outside_training_data",
    "image",
]
"""The columns of ``per_case.csv``; ``image`` lists the case's input files (relative to the images folder,
separated by ``;``). ``nqm`` is 0 for a deterministic model, as in the workflow's evaluation;
``outside_training_data`` says what of the case lies far outside the model's training data (empty if
nothing)."""

DICE_RULE = "Dice 2|P&L|/(|P|+|L|); both masks empty: 1.0; one empty: 0.0"
HD95_RULE = (
    "HD95 in mm (95th-percentile symmetric Hausdorff distance); both masks empty: 0 mm; "
    "one empty: the diagonal of the volume in mm (the largest distance possible)"
)
"""How ``mednca.evaluate.metrics`` scores empty masks, stated in ``summary.json``."""


@dataclass(frozen=True)
class ExternalCase:
    """One labelled case: its image inputs (files in channel order, or one case folder) and label file."""

    case_id: str
    images: tuple[Path, ...]
    label: Path


@dataclass
class Pairing:
    """The cases whose image(s) and label were both found, sorted by id, and the cases that cannot be."""

    cases: list[ExternalCase] = field(default_factory=list)
    failures: list[CaseFailure] = field(default_factory=list)


@dataclass(frozen=True)
class ExternalEvaluation:
    """What ``evaluate_folders`` wrote: the summary, the failed cases and where the results are."""

    summary: dict[str, Any]
    failures: list[CaseFailure]
    output_dir: Path

    def line(self) -> str:
        """A one-line account: cases scored and failed, mean Dice and HD95, and the summary file."""
        summary = self.summary
        failed = f", {len(self.failures)} case(s) failed" if self.failures else ""
        return (
            f"{summary['cases']} case(s) scored{failed}: Dice {summary['dice_mean']:.4f} "
            f"+- {summary['dice_std']:.4f}, HD95 {summary['hd95_mean']:.2f} mm; "
            f"{self.output_dir / 'summary.json'}"
        )


def _label_files(labels_dir: Path) -> tuple[dict[str, Path], list[CaseFailure]]:
    """The label files of a folder by case id, and a failure for every id with several files."""
    by_case: dict[str, list[Path]] = {}
    for path in list_entries(labels_dir):
        stem = strip_nifti_suffix(path.name)
        if stem is None or not path.is_file():
            log.warning("%s: ignored, not a NIfTI label file (.nii or .nii.gz)", path)
            continue
        by_case.setdefault(stem, []).append(path)
    failures = [
        CaseFailure(case_id, f"several label files: {', '.join(map(str, paths))}; keep only one")
        for case_id, paths in by_case.items()
        if len(paths) > 1
    ]
    return {case_id: paths[0] for case_id, paths in by_case.items() if len(paths) == 1}, failures


def pair_cases(images_dir: Path, labels_dir: Path) -> Pairing:
    """Match the images and labels of two folders by name (module docstring), sorted by case id.

    An image without a label and a label without an image become failures naming the case and the file(s).
    Folders that are missing or hold no NIfTI file at all are a DataError.
    """
    for folder, what in ((images_dir, "--images"), (labels_dir, "--labels")):
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder ({what})")
    labels, label_failures = _label_files(labels_dir)
    if not labels and not label_failures:
        raise DataError(f"{labels_dir}: no label files (.nii or .nii.gz) in the --labels folder")
    images = image_entries(images_dir, labels)
    if not images:
        raise DataError(
            f"{images_dir}: no images in the --images folder (X.nii.gz, X_0000.nii.gz ... or case folders X/)"
        )
    pairing = Pairing(failures=list(label_failures))
    failed = {failure.case_id for failure in label_failures}
    for case_id in sorted((set(images) | set(labels)) - failed):
        if case_id not in labels:
            found = ", ".join(map(str, images[case_id].all()))
            pairing.failures.append(
                CaseFailure(case_id, f"{found} has no label (expected {labels_dir / case_id}.nii.gz or .nii)")
            )
        elif case_id not in images:
            pairing.failures.append(
                CaseFailure(
                    case_id,
                    f"label {labels[case_id]} has no image in {images_dir} "
                    f"(expected {case_id}.nii.gz, {case_id}_0000.nii.gz ... or a folder {case_id}/)",
                )
            )
        else:
            inputs = case_inputs(case_id, images[case_id])
            if isinstance(inputs, CaseFailure):
                pairing.failures.append(inputs)
            else:
                pairing.cases.append(ExternalCase(case_id, inputs, labels[case_id]))
    pairing.failures.sort(key=lambda failure: failure.case_id)
    return pairing


def model_inputs(case: ExternalCase, segmenter: Segmenter) -> list[Path]:
    """A case's image files in the order the model takes them.

    A case folder is handed to a BraTS model as ``mednca predict`` hands it (its sequence files); for any
    other model it stands for the NIfTI files it holds, sorted by name.
    """
    return model_files(list(case.images), segmenter.preprocessing)


def read_label(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A label map: its (X, Y, Z) int16 values (rounded, as the workflow reads labels) and (4, 4) affine.

    A 4D file with one volume is taken as 3D; NaN or Inf voxels are refused, naming the file.
    """
    header = read_nifti(path)
    voxels = select_channel(read_voxels(header, path), Channel(path))
    require_finite(voxels, path, "label")
    return np.rint(voxels).astype(np.int16), np.asarray(header.affine, dtype=np.float64)


def _check_geometry(
    image_path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    label_path: Path,
    label: np.ndarray,
    label_affine: np.ndarray,
) -> None:
    """Refuse a label whose voxel grid (shape, affine) is not the image's, naming both files."""
    if tuple(shape) != label.shape:
        raise DataError(
            f"image {image_path} has shape {'x'.join(map(str, shape))} but label {label_path} has "
            f"{'x'.join(map(str, label.shape))}; they must share one voxel grid"
        )
    if not np.allclose(affine, label_affine, atol=AFFINE_TOLERANCE_MM, rtol=0):
        worst = float(np.abs(affine - label_affine).max())
        raise DataError(
            f"image {image_path} and label {label_path} have different affines (by up to {worst:.4g}); "
            "they must share one voxel grid"
        )


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume in mm^3 of one voxel of a (4, 4) affine: |det| of its 3x3 part."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))


def score_case(
    segmenter: Segmenter, case: ExternalCase, seed: int, images_dir: Path
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Segment a case as ``mednca predict`` does (draws seeded from ``seed`` and the case id, as in the
    workflow's evaluation) and score it against its label.

    Returns its ``per_case.csv`` row, the (X, Y, Z) uint8 {0, 1} prediction and the image's (4, 4) affine.
    """
    inputs = model_inputs(case, segmenter)
    image, affine = read_input_channels(inputs, segmenter.preprocessing)  # (C, X, Y, Z) float32
    segmenter.check_channels(image.shape[0], f"case {case.case_id}")
    outside = segmenter.check_ranges(image, affine, case.case_id)
    label, label_affine = read_label(case.label)
    _check_geometry(inputs[0], image.shape[1:], affine, case.label, label, label_affine)
    truth = binarise_label(label, segmenter.preprocessing.foreground_labels)
    result = segmenter.segment(image, affine, case_generator(seed, case.case_id, segmenter.device))
    metrics = score(result.label, truth, spacing_of(label_affine))
    voxel = voxel_volume_mm3(label_affine)
    row = {
        "case_id": case.case_id,
        **metrics,
        "predicted_volume_mm3": metrics["predicted_voxels"] * voxel,
        "label_volume_mm3": metrics["label_voxels"] * voxel,
        "nqm": result.nqm,
        "inference_seconds": result.seconds,
        "outside_training_data": outside,
        "image": ";".join(str(_relative(path, images_dir)) for path in inputs),
    }
    return row, result.label, affine


def _relative(path: Path, folder: Path) -> Path:
    try:
        return path.relative_to(folder)
    except ValueError:
        return path


def _inside(path: Path, folder: Path) -> bool:
    """True if ``path`` is ``folder`` or lies within it (links resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_output_dir(output_dir: Path, images_dir: Path, labels_dir: Path, model_path: Path) -> None:
    """Refuse an output folder that is or lies inside an input folder (or whose predictions/ folder is an
    input folder or holds one), or whose files cannot be written."""
    for folder, what in ((images_dir, "--images"), (labels_dir, "--labels")):
        if _inside(output_dir, folder) or _inside(folder, output_dir / "predictions"):
            where = "inside" if _inside(output_dir, folder) else "the parent of"
            raise DataError(
                f"--output {output_dir} is {where} the {what} folder {folder}; "
                "choose a folder outside the inputs so that no input is overwritten"
            )
    if images_dir.resolve() == labels_dir.resolve():
        raise DataError(f"--images and --labels are the same folder {images_dir}; give two folders")
    if output_dir.exists() and not output_dir.is_dir():
        raise DataError(f"--output {output_dir} is a file; give a folder")
    for name in ("per_case.csv", "summary.json"):
        check_output(output_dir / name, [model_path])


def evaluate_folders(
    model_path: Path,
    images_dir: Path,
    labels_dir: Path,
    output_dir: Path,
    seed: int = 0,
    device_name: str = "auto",
    batch_size: int = 64,
    runs: int = 1,
) -> ExternalEvaluation:
    """Segment and score every labelled case of ``images_dir``; write ``per_case.csv``, ``summary.json`` and
    ``predictions/<label file name>`` under ``output_dir``.

    ``runs``: runs averaged for a stochastic model (gives the NQM); deterministic models run once. Cases are
    processed sorted by id; a case that cannot be paired, read or scored is logged in one line naming it and
    the others go on. A DataError if the folders cannot be used or no case could be scored.
    """
    model_path, images_dir, labels_dir, output_dir = map(
        Path, (model_path, images_dir, labels_dir, output_dir)
    )
    check_output_dir(output_dir, images_dir, labels_dir, model_path)
    pairing = pair_cases(images_dir, labels_dir)
    segmenter = load_segmenter(model_path, device_name, runs, batch_size)
    failures = list(pairing.failures)
    for failure in failures:
        log.error("%s", failure)
    rows = []
    for case in tqdm(pairing.cases, desc="evaluating", unit="case"):
        destination = output_dir / "predictions" / case.label.name
        try:
            check_output(destination, [model_path, case.label, *case.images])
            row, prediction, affine = score_case(segmenter, case, seed, images_dir)
            save_label_map(destination, prediction, affine)
        except (MednCAError, MemoryError) as error:
            reason = str(error) if isinstance(error, MednCAError) else "not enough memory to segment it"
            failures.append(CaseFailure(case.case_id, reason))
            log.error("%s", failures[-1])
            continue
        rows.append(row)
    failures.sort(key=lambda failure: failure.case_id)
    if not rows:
        raise DataError(f"no case could be scored ({len(failures)} failed, each named above)")
    per_case = pd.DataFrame(rows, columns=PER_CASE_COLUMNS)
    summary = summarise(per_case)
    summary.update(
        model=segmenter.training.get("model"),
        model_path=str(model_path),
        images=str(images_dir),
        labels=str(labels_dir),
        seed=seed,
        runs=runs,
        device=str(segmenter.device),
        foreground_labels=list(segmenter.preprocessing.foreground_labels),
        failed_cases={failure.case_id: failure.message for failure in failures},
        dice_rule=DICE_RULE,
        hd95_rule=HD95_RULE,
    )
    write_csv(output_dir / "per_case.csv", per_case)
    write_json(output_dir / "summary.json", summary)
    return ExternalEvaluation(summary, failures, output_dir)
