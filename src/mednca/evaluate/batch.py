"""Segmenting many cases in one call: ``mednca predict --input FILES|FOLDERS|GLOBS --output FOLDER``.

Inputs are read as ``mednca.evaluate.cases`` reads a folder: a file ``X.nii.gz`` is case ``X``, channel files
``X_0000.nii.gz``, ``X_0001.nii.gz`` ... are one case ``X``, a folder is a folder of such cases (or, for a
BraTS model, a case folder itself when it holds the sequence files). Each case is segmented exactly as
``mednca predict`` segments one (same input checks, same random draws from the seed and the case's name), its
label map is written under the output folder with its input's file name (``X.nii.gz`` for channel files and
case folders), and ``predictions.csv`` beside them holds one row per case. A case that fails is named in one
line and the others go on.
"""

from __future__ import annotations

import glob
import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from mednca.data.layout import strip_nifti_suffix
from mednca.data.volumes import save_label_map
from mednca.errors import DataError, MednCAError
from mednca.evaluate.cases import CHANNEL_FILE, CaseFailure, ImageEntries, case_inputs, image_entries
from mednca.evaluate.cases import list_entries as folder_entries
from mednca.evaluate.evaluation import Segmenter, load_segmenter
from mednca.evaluate.inference import case_generator
from mednca.evaluate.predict import model_files, read_input_channels
from mednca.io import atomic_path, check_output, write_csv

log = logging.getLogger(__name__)

TABLE_NAME = "predictions.csv"
COLUMNS = [
    "case_id", "inputs", "output", "foreground_voxels", "volume_mm3", "nqm", "likely_failure", "seconds",
    "outside_training_data", "error",
]  # fmt: skip
"""One row per case: its input files, label map, foreground size, NQM (0 for deterministic models), whether
the NQM exceeds the model's calibrated threshold (empty when the model file records none), inference
seconds, what of the case lies far outside the training data (empty when nothing does) and, for a case that
failed, why."""


@dataclass(frozen=True)
class PredictionCase:
    """One case to segment: its id, its input files or case folder, and its label map's file name."""

    case_id: str
    inputs: tuple[Path, ...]
    output_name: str


@dataclass
class BatchPrediction:
    """What ``predict_cases`` wrote: one row per case, the failures and the output folder."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[CaseFailure] = field(default_factory=list)
    output_dir: Path = Path()

    def line(self) -> str:
        """A one-line account: cases segmented and failed, and the table."""
        done = len(self.rows) - len(self.failures)
        failed = f", {len(self.failures)} failed (named above)" if self.failures else ""
        return f"{done} case(s) segmented{failed}; {self.output_dir / TABLE_NAME}"


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files and folders from the given paths and glob patterns (sorted per pattern); a DataError names a
    path that does not exist or a pattern that matches nothing."""
    paths = []
    for given in inputs:
        if Path(given).exists():
            paths.append(Path(given))
            continue
        matches = sorted(glob.glob(given))
        if not matches:
            raise DataError(f"{given}: no such file or folder, and no file matches it as a pattern")
        paths += [Path(match) for match in matches]
    return paths


def _is_case_folder(folder: Path) -> bool:
    """Whether a folder holds a case's files directly (NIfTI files, no subfolders): a BraTS case folder."""
    entries = folder_entries(folder)
    return not any(path.is_dir() for path in entries) and any(strip_nifti_suffix(p.name) for p in entries)


def find_cases(paths: list[Path], case_folders: bool) -> tuple[list[PredictionCase], list[CaseFailure]]:
    """The cases of the given files and folders, sorted by id, and the ones that cannot be read as one.

    ``case_folders``: a folder holding NIfTI files directly is one case (a BraTS model's case folder).
    """
    entries: dict[str, ImageEntries] = {}
    for path in paths:
        if path.is_dir() and case_folders and _is_case_folder(path):
            found = {path.name: ImageEntries(folders=[path])}
        elif path.is_dir():
            found = image_entries(path)
        else:
            found = _file_entry(path)
        for case_id, entry in found.items():
            merged = entries.setdefault(case_id, ImageEntries())
            merged.files += entry.files
            merged.folders += entry.folders
            for number, channel in entry.channels.items():
                merged.channels.setdefault(number, []).extend(channel)
    cases, failures = [], []
    for case_id in sorted(entries):
        inputs = case_inputs(case_id, entries[case_id])
        if isinstance(inputs, CaseFailure):
            failures.append(inputs)
            continue
        single_file = bool(entries[case_id].files)  # channel files and case folders are named by the case
        cases.append(PredictionCase(case_id, inputs, inputs[0].name if single_file else f"{case_id}.nii.gz"))
    return cases, failures


def _file_entry(path: Path) -> dict[str, ImageEntries]:
    stem = strip_nifti_suffix(path.name)
    if stem is None:
        raise DataError(f"{path}: not a NIfTI image (.nii or .nii.gz) nor a folder")
    match = CHANNEL_FILE.match(stem)
    if match is None:
        return {stem: ImageEntries(files=[path])}
    return {match["case"]: ImageEntries(channels={int(match["channel"]): [path]})}


def save_probability_map(path: Path, probability: np.ndarray, affine: np.ndarray) -> None:
    """Write an (X, Y, Z) foreground probability map as float32 NIfTI, atomically (gzip for ``.nii.gz``)."""
    data = nib.Nifti1Image(np.asarray(probability, dtype=np.float32), affine).to_bytes()
    with atomic_path(path) as temporary:
        temporary.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _check_output_dir(output_dir: Path, paths: list[Path], model_path: Path) -> None:
    """Refuse an output folder that is one of the inputs or lies inside an input folder."""
    if output_dir.exists() and not output_dir.is_dir():
        raise DataError(f"--output {output_dir} is a file; give a folder (or a .nii.gz name for one case)")
    resolved = output_dir.resolve()
    for path in paths:
        folder = path.resolve() if path.is_dir() else None
        if folder is not None and (resolved == folder or folder in resolved.parents):
            raise DataError(
                f"--output {output_dir} is inside the input folder {path}; choose a folder outside the inputs"
            )
    check_output(output_dir / TABLE_NAME, [model_path, *paths])


def predict_cases(
    model_path: Path,
    inputs: list[str],
    output_dir: Path,
    device_name: str = "auto",
    seed: int = 0,
    runs: int = 1,
    probabilities: bool = False,
    batch_size: int = 64,
) -> BatchPrediction:
    """Segment every case of ``inputs`` (files, folders, glob patterns) into ``output_dir``.

    Writes each label map (and with ``probabilities`` its ``{case}_probability.nii.gz``) and the table
    ``predictions.csv``; a case that fails is logged in one line and recorded with its error.
    """
    model_path, output_dir = Path(model_path), Path(output_dir)
    paths = expand_inputs(inputs)
    _check_output_dir(output_dir, paths, model_path)
    segmenter = load_segmenter(model_path, device_name, runs, batch_size)
    cases, failures = find_cases(paths, case_folders=segmenter.preprocessing.layout == "brats")
    if not cases and not failures:
        raise DataError(
            f"no image found in {', '.join(map(str, paths))} (.nii or .nii.gz files or case folders)"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    result = BatchPrediction(output_dir=output_dir)
    for failure in failures:
        log.error("%s", failure)
        result.rows.append({"case_id": failure.case_id, "error": failure.message})
    result.failures += failures
    threshold = segmenter.training.get("nqm_threshold")
    for case in tqdm(cases, desc="segmenting", unit="case"):
        try:
            row = _predict_case(segmenter, case, output_dir, seed, threshold, probabilities, model_path)
        except (MednCAError, MemoryError) as error:
            reason = str(error) if isinstance(error, MednCAError) else "not enough memory to segment it"
            failure = CaseFailure(case.case_id, reason)
            log.error("%s", failure)
            result.failures.append(failure)
            row = {"case_id": case.case_id, "inputs": _names(case.inputs), "error": reason}
        result.rows.append(row)
    result.rows.sort(key=lambda row: row["case_id"])
    write_csv(output_dir / TABLE_NAME, pd.DataFrame(result.rows, columns=COLUMNS))
    return result


def _names(paths: tuple[Path, ...]) -> str:
    return ";".join(map(str, paths))


def _predict_case(
    segmenter: Segmenter,
    case: PredictionCase,
    output_dir: Path,
    seed: int,
    threshold: float | None,
    probabilities: bool,
    model_path: Path,
) -> dict[str, Any]:
    """Segment one case as ``mednca predict`` does; write its maps and return its table row."""
    files = model_files(list(case.inputs), segmenter.preprocessing)
    destination = output_dir / case.output_name
    check_output(destination, [model_path, *files])
    image, affine = read_input_channels(files, segmenter.preprocessing)  # (C, X, Y, Z) float32
    segmenter.check_channels(image.shape[0], f"case {case.case_id}")
    outside = segmenter.check_ranges(image, affine, case.case_id)
    segmentation = segmenter.segment(image, affine, case_generator(seed, case.case_id, segmenter.device))
    save_label_map(destination, segmentation.label, affine)
    if probabilities:
        save_probability_map(
            output_dir / f"{case.case_id}_probability.nii.gz", segmentation.probability, affine
        )
    voxels = int(segmentation.label.sum())
    likely_failure = None if threshold is None else bool(segmentation.nqm > threshold)
    if likely_failure:
        log.warning("case %s: NQM %.4f above the model's threshold %.4f: likely failure", case.case_id,
                    segmentation.nqm, threshold)  # fmt: skip
    return {
        "case_id": case.case_id,
        "inputs": _names(case.inputs),
        "output": destination.name,
        "foreground_voxels": voxels,
        "volume_mm3": voxels * float(abs(np.linalg.det(np.asarray(affine)[:3, :3]))),
        "nqm": segmentation.nqm,
        "likely_failure": likely_failure,
        "seconds": segmentation.seconds,
        "outside_training_data": outside,
        "error": None,
    }
