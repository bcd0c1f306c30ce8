"""Finding the cases of a folder of images: single files, nnU-Net channel files and case folders.

``mednca evaluate --images`` pairs them with labels of the same name and ``mednca predict`` segments them;
both read a folder the same way:

- one file ``X.nii.gz`` (or ``X.nii``) is case ``X`` (a 3D image, or a 4D image whose channels are chosen
  as in training);
- channel files ``X_0000.nii.gz``, ``X_0001.nii.gz``, ... are the channels of case ``X``, in the order of
  their numbers, which must run from 0000 without a gap;
- a folder ``X/`` is case ``X``: for a BraTS model its ``*_{sequence}.nii.gz`` files, for any other model
  the NIfTI files it holds, in the order of their names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mednca.data.layout import strip_nifti_suffix
from mednca.errors import DataError

log = logging.getLogger(__name__)

CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
"""The stem of an nnU-Net channel file: ``X_0000`` is channel 0 of case ``X``."""


@dataclass(frozen=True)
class CaseFailure:
    """A case that cannot be scored, and why (one line meant for the user)."""

    case_id: str
    message: str

    def __str__(self) -> str:
        return f"case {self.case_id}: {self.message}"


def list_entries(folder: Path) -> list[Path]:
    """The visible entries of a folder, sorted (dot files such as macOS ``._*`` are skipped)."""
    try:
        return sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    except OSError as error:
        raise DataError(
            f"{folder}: cannot list the folder ({error.strerror or type(error).__name__})"
        ) from error


@dataclass
class ImageEntries:
    """What the images folder holds for one case id: single files, case folders and numbered channels."""

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    channels: dict[int, list[Path]] = field(default_factory=dict)

    def all(self) -> list[Path]:
        return sorted([*self.files, *self.folders, *(p for paths in self.channels.values() for p in paths)])


def image_entries(images_dir: Path, label_ids: Iterable[str] = ()) -> dict[str, ImageEntries]:
    """The images folder's entries by case id. ``X_0000.nii.gz`` is channel 0 of case ``X`` unless a label
    ``X_0000`` exists (then it is the single image of case ``X_0000``)."""
    label_ids = set(label_ids)
    by_case: dict[str, ImageEntries] = {}
    for path in list_entries(images_dir):
        if path.is_dir():
            by_case.setdefault(path.name, ImageEntries()).folders.append(path)
            continue
        stem = strip_nifti_suffix(path.name)
        if stem is None or not path.is_file():
            log.warning("%s: ignored, neither a NIfTI image (.nii or .nii.gz) nor a case folder", path)
            continue
        match = CHANNEL_FILE.match(stem)
        if match is None or stem in label_ids:
            by_case.setdefault(stem, ImageEntries()).files.append(path)
        else:
            entries = by_case.setdefault(match["case"], ImageEntries())
            entries.channels.setdefault(int(match["channel"]), []).append(path)
    return by_case


def case_inputs(case_id: str, entries: ImageEntries) -> tuple[Path, ...] | CaseFailure:
    """A case's image inputs (one file, its channel files in order, or its folder), or why there are none."""
    names = ", ".join(map(str, entries.all()))
    kinds = bool(entries.files) + bool(entries.folders) + bool(entries.channels)
    if kinds > 1 or len(entries.files) > 1 or len(entries.folders) > 1:
        return CaseFailure(case_id, f"several images for the case: {names}; keep only one form")
    if entries.files or entries.folders:
        return ((entries.files or entries.folders)[0],)
    if any(len(paths) > 1 for paths in entries.channels.values()):
        return CaseFailure(case_id, f"several files for the same channel: {names}; keep only one")
    numbers = sorted(entries.channels)
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        gaps = ", ".join(f"{case_id}_{number:04d}" for number in missing)
        return CaseFailure(case_id, f"channel file(s) {gaps} missing among {names}")
    return tuple(entries.channels[number][0] for number in numbers)


def folder_case_files(folder: Path) -> list[Path]:
    """The NIfTI files of a case folder, sorted by name (a non-BraTS model's channels)."""
    files = [path for path in list_entries(folder) if path.is_file() and strip_nifti_suffix(path.name)]
    if not files:
        raise DataError(f"{folder}: the case folder holds no NIfTI file (.nii or .nii.gz)")
    return files
