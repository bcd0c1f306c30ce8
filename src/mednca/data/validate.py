"""Integrity check of a dataset before anything is trained on it (in the spirit of nnU-Net's check).

Per case: every file readable; image and label present; the requested channels exist; image, channel and
label shapes and affines agree; label values are integers among the declared labels; no NaN or Inf; the
image is not constant. Every problem names the case and the file. Hostile files (a header claiming more
data than the file holds or than MEDNCA_MAX_IMAGE_MB allows, a broken affine) are refused by
``mednca.data.volumes`` before anything large is read, and become a problem of their case.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mednca.data.layout import Case, Discovery, Problem
from mednca.data.volumes import (
    ImageLimitError,
    file_sha256,
    max_image_bytes,
    read_nifti,
    read_voxels,
    select_channel,
)
from mednca.errors import DataError

AFFINE_TOLERANCE_MM = 1e-3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseRecord:
    """What the manifest keeps of a valid case. Paths are relative to the dataset root."""

    case_id: str
    image_files: str
    label_file: str
    shape: str
    spacing: str
    channels: int
    image_dtype: str
    image_sha256: str
    label_sha256: str


@dataclass
class ValidationReport:
    """Valid cases and every problem found."""

    records: list[CaseRecord]
    problems: list[Problem]

    def table(self) -> pd.DataFrame:
        """One row per valid case, sorted by case id."""
        columns = list(CaseRecord.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self.records], columns=columns).sort_values("case_id")


def _format(values: tuple[float, ...], digits: int) -> str:
    return "x".join(f"{v:.{digits}f}" if digits else str(int(v)) for v in values)


def _geometry_problems(
    case_id: str, path: Path, shape, affine, ref_shape, ref_affine, what: str
) -> list[Problem]:
    problems = []
    if tuple(shape) != tuple(ref_shape):
        problems.append(
            Problem(case_id, f"{what} shape {_format(shape, 0)} differs from {_format(ref_shape, 0)}", path)
        )
    elif not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE_MM, rtol=0):
        worst = float(np.abs(np.asarray(affine) - np.asarray(ref_affine)).max())
        problems.append(
            Problem(case_id, f"{what} affine differs from the image's by up to {worst:.4g}", path)
        )
    return problems


def _image_problems(case_id: str, path: Path, voxels: np.ndarray) -> list[Problem]:
    finite = np.isfinite(voxels)
    if not finite.all():
        return [Problem(case_id, f"image has {int((~finite).sum())} NaN/Inf voxels", path)]
    if voxels.size == 0 or voxels.min() == voxels.max():
        return [Problem(case_id, "image is constant (no contrast to normalise)", path)]
    return []


def _label_problems(case_id: str, path: Path, voxels: np.ndarray, declared: tuple[int, ...]) -> list[Problem]:
    if not np.isfinite(voxels).all():
        return [Problem(case_id, "label has NaN/Inf voxels", path)]
    values = np.unique(voxels)
    if not np.array_equal(values, np.round(values)):
        return [Problem(case_id, "label has non-integer values", path)]
    undeclared = sorted(set(values.astype(int).tolist()) - set(declared))
    if undeclared:
        return [
            Problem(
                case_id, f"label values {undeclared} are not among the declared labels {list(declared)}", path
            )
        ]
    return []


def validate_case(
    case: Case, declared_labels: tuple[int, ...], root: Path
) -> tuple[CaseRecord | None, list[Problem]]:
    """Check one case; returns its manifest record (None if it has problems) and the problems.

    Whatever goes wrong while reading the case's files (a DataError, a file that vanished or cannot be
    read, not enough memory) becomes a problem of this case; the other cases are still checked.
    """
    try:
        return _check_case(case, declared_labels, root)
    except ImageLimitError:
        raise
    except DataError as error:
        return None, [Problem(case.case_id, str(error))]
    except MemoryError:
        return None, [Problem(case.case_id, "not enough memory to check the case's volumes")]
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or type(error).__name__
        return None, [Problem(case.case_id, f"{where}cannot read the file ({reason})")]


def _check_case(
    case: Case, declared_labels: tuple[int, ...], root: Path
) -> tuple[CaseRecord | None, list[Problem]]:
    try:
        label_image = read_nifti(case.label)
        label = read_voxels(label_image, case.label)
        first = read_nifti(case.channels[0].path)
        problems: list[Problem] = []
        dtypes, shape = [], None
        for channel in case.channels:
            image = read_nifti(channel.path)
            voxels = select_channel(read_voxels(image, channel.path), channel)
            dtypes.append(str(voxels.dtype))
            shape = shape or voxels.shape
            problems += _geometry_problems(
                case.case_id, channel.path, voxels.shape, image.affine, shape, first.affine, "channel"
            )
            problems += _image_problems(case.case_id, channel.path, voxels)
    except DataError as error:
        return None, [Problem(case.case_id, str(error))]
    problems += _geometry_problems(
        case.case_id, case.label, label.shape, label_image.affine, shape, first.affine, "label"
    )
    problems += _label_problems(case.case_id, case.label, label, declared_labels)
    if problems:
        return None, problems
    spacing = tuple(float(v) for v in np.sqrt((np.asarray(first.affine)[:3, :3] ** 2).sum(axis=0)))
    record = CaseRecord(
        case_id=case.case_id,
        image_files=";".join(
            str(c.path.relative_to(root)) + ("" if c.index is None else f"#{c.index}") for c in case.channels
        ),
        label_file=str(case.label.relative_to(root)),
        shape=_format(shape, 0),
        spacing=_format(spacing, 4),
        channels=len(case.channels),
        image_dtype="/".join(sorted(set(dtypes))),
        image_sha256=";".join(file_sha256(p) for p in dict.fromkeys(c.path for c in case.channels)),
        label_sha256=file_sha256(case.label),
    )
    return record, []


def validate_dataset(discovery: Discovery, progress: bool = False) -> ValidationReport:
    """Check every discovered case; problems found by name during discovery are kept in the report."""
    max_image_bytes()  # a bad MEDNCA_MAX_IMAGE_MB stops here, once, rather than in every case
    report = ValidationReport(records=[], problems=list(discovery.problems))
    for case in tqdm(discovery.cases, desc="validating", unit="case", disable=not progress):
        record, problems = validate_case(case, discovery.labels, discovery.root)
        report.problems += problems
        if record is not None:
            report.records.append(record)
    return report


def enforce_policy(report: ValidationReport, dataset: str, on_bad_case: str) -> None:
    """Stop with every problem listed (``fail``) or log the skipped cases (``skip``)."""
    if not report.problems:
        return
    lines = "\n".join(f"  {problem}" for problem in report.problems)
    bad = sorted({p.case_id for p in report.problems})
    if on_bad_case == "fail":
        raise DataError(
            f"dataset '{dataset}': {len(report.problems)} problem(s) in {len(bad)} case(s):\n{lines}\n"
            "Fix or remove these cases, or set bad_cases: skip to leave them out."
        )
    log.warning("dataset '%s': skipping %d case(s) with problems:\n%s", dataset, len(bad), lines)
    if not report.records:
        raise DataError(f"dataset '{dataset}': no valid case left after skipping the bad ones")
