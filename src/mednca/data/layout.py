"""Finding the cases of a dataset on disk, in the MSD or the BraTS 2020 layout.

Discovery only looks at file names; reading and checking the volumes is the job of ``validate``.
A case's image is a list of channels, each a file plus an optional index into its 4th axis, so 4D MSD
images (one file, several modalities) and BraTS cases (one file per sequence) are handled alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from mednca.errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
BRATS_LABELS = (0, 1, 2, 4)
BRATS_CASE_PATTERN = re.compile(r"^BraTS20_Training_\d+$")


@dataclass(frozen=True)
class Channel:
    """One input channel: a NIfTI file and, for 4D images, the index along its 4th axis."""

    path: Path
    index: int | None = None


@dataclass(frozen=True)
class Case:
    """One patient: its input channels (in order) and its label map."""

    case_id: str
    channels: tuple[Channel, ...]
    label: Path


@dataclass(frozen=True)
class Problem:
    """A problem with one case (or with the dataset, case_id ``"dataset"``), meant to be shown to the user."""

    case_id: str
    message: str
    path: Path | None = None

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path is not None else ""
        return f"{self.case_id}: {self.message}{where}"


@dataclass
class Discovery:
    """The cases found in a dataset folder, the problems found by name alone, and the declared labels."""

    root: Path
    cases: list[Case]
    labels: tuple[int, ...]
    problems: list[Problem] = field(default_factory=list)


def strip_nifti_suffix(name: str) -> str | None:
    """``"case_001.nii.gz"`` -> ``"case_001"``; None for files that are not NIfTI."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _is_hidden(path: Path) -> bool:
    """macOS resource forks (``._x``) and other dot files that archives carry along."""
    return path.name.startswith(".")


def _nifti_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        stem = strip_nifti_suffix(path.name)
        if stem is not None and not _is_hidden(path):
            found[stem] = path
    return found


def read_msd_description(root: Path) -> dict:
    """Parse ``dataset.json`` of an MSD-layout folder."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(
            f"{root}: no dataset.json; an MSD-layout dataset needs imagesTr/, labelsTr/ and dataset.json"
        )
    try:
        description = json.loads(path.read_text())
        labels = tuple(sorted(int(value) for value in description["labels"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: cannot read the 'labels' of dataset.json ({error})") from error
    description["labels"] = labels
    return description


def discover_msd(root: Path, modalities: tuple[int, ...] = (0,)) -> Discovery:
    """Cases of an MSD-layout folder: ``dataset.json`` entries and every NIfTI file in imagesTr/labelsTr.

    A case missing its image or label, or not listed in dataset.json, is reported as a problem.
    """
    description = read_msd_description(root)
    images = _nifti_files(root / "imagesTr")
    labels = _nifti_files(root / "labelsTr")
    listed = set()
    for entry in description.get("training", []):
        stem = strip_nifti_suffix(Path(str(entry.get("image", ""))).name)
        if stem:
            listed.add(stem)
    discovery = Discovery(root=root, cases=[], labels=description["labels"])
    for case_id in sorted(set(images) | set(labels) | listed):
        problems = _msd_case_problems(root, case_id, images, labels, listed)
        discovery.problems.extend(problems)
        if case_id in images and case_id in labels:
            channels = tuple(Channel(images[case_id], index) for index in modalities)
            discovery.cases.append(Case(case_id, channels, labels[case_id]))
    if not discovery.cases and not discovery.problems:
        discovery.problems.append(Problem("dataset", "no cases found in imagesTr/", root / "imagesTr"))
    return discovery


def _msd_case_problems(
    root: Path, case_id: str, images: dict[str, Path], labels: dict[str, Path], listed: set[str]
) -> list[Problem]:
    problems = []
    if case_id not in images:
        problems.append(Problem(case_id, "image file is missing", root / "imagesTr" / f"{case_id}.nii.gz"))
    if case_id not in labels:
        problems.append(Problem(case_id, "label file is missing", root / "labelsTr" / f"{case_id}.nii.gz"))
    if case_id not in listed and case_id in images:
        problems.append(Problem(case_id, "not listed in dataset.json 'training'", root / "dataset.json"))
    return problems


def find_brats_root(folder: Path) -> Path:
    """The folder that directly holds the ``BraTS20_Training_NNN`` case folders (searched two levels deep)."""
    candidates = [folder, *sorted(p for p in folder.glob("*") if p.is_dir())]
    candidates += sorted(p for p in folder.glob("*/*") if p.is_dir())
    for candidate in candidates:
        if any(BRATS_CASE_PATTERN.match(p.name) and p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise DataError(
        f"{folder}: no BraTS20_Training_NNN case folders found (expected the BraTS 2020 layout "
        "MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,flair,seg}.nii.gz)"
    )


def _find_nifti(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def discover_brats(folder: Path, sequences: tuple[str, ...] = ("t1", "t2", "flair")) -> Discovery:
    """Cases of a BraTS 2020 training folder; each needs the requested sequences and ``_seg``."""
    root = find_brats_root(folder)
    discovery = Discovery(root=root, cases=[], labels=BRATS_LABELS)
    for case_dir in sorted(p for p in root.iterdir() if p.is_dir() and BRATS_CASE_PATTERN.match(p.name)):
        case_id = case_dir.name
        found = {name: _find_nifti(case_dir, f"{case_id}_{name}") for name in (*sequences, "seg")}
        missing = [name for name, path in found.items() if path is None]
        for name in missing:
            discovery.problems.append(
                Problem(case_id, f"'{name}' file is missing", case_dir / f"{case_id}_{name}.nii.gz")
            )
        if not missing:
            channels = tuple(Channel(found[name]) for name in sequences)
            discovery.cases.append(Case(case_id, channels, found["seg"]))
    return discovery


def detect_layout(folder: Path) -> str:
    """``"msd"`` if the folder has a dataset.json or imagesTr/, ``"brats"`` if it holds BraTS case folders."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    if (folder / "dataset.json").exists() or (folder / "imagesTr").is_dir():
        return "msd"
    find_brats_root(folder)
    return "brats"


def discover(
    folder: Path,
    layout: str,
    modalities: tuple[int, ...] = (0,),
    sequences: tuple[str, ...] = ("t1", "t2", "flair"),
) -> Discovery:
    """Dispatch to the discovery of the given layout."""
    if layout == "msd":
        return discover_msd(folder, modalities)
    if layout == "brats":
        return discover_brats(folder, sequences)
    raise DataError(f"{folder}: unknown dataset layout '{layout}' (expected 'msd' or 'brats')")
