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
    """The cases found in a dataset folder ``root`` (the folder every case path is recorded relative to),
    the problems found by name alone, and the declared labels.

    MSD only: ``listed_cases`` is the number of cases dataset.json's 'training' lists and ``found_cases``
    the number of cases with an image or label file in imagesTr/labelsTr (None for BraTS).
    """

    root: Path
    cases: list[Case]
    labels: tuple[int, ...]
    problems: list[Problem] = field(default_factory=list)
    listed_cases: int | None = None
    found_cases: int | None = None


NOT_NIFTI = "not a NIfTI file (.nii or .nii.gz); remove it or move it out of the dataset folder"


def strip_nifti_suffix(name: str) -> str | None:
    """``"case_001.nii.gz"`` -> ``"case_001"`` (suffix in any letter case); None for non-NIfTI names."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _is_hidden(path: Path) -> bool:
    """macOS resource forks (``._x``) and other dot files that archives carry along."""
    return path.name.startswith(".")


def _entries(folder: Path) -> list[Path]:
    """The entries of a folder, sorted; a folder that cannot be listed is a DataError naming it."""
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise DataError(
            f"{folder}: cannot list the folder ({error.strerror or type(error).__name__})"
        ) from error


@dataclass
class _FolderScan:
    """The NIfTI files of one folder by case stem, the stems with several files, and the problems."""

    found: dict[str, Path]
    ambiguous: set[str]
    problems: list[Problem]


def _nifti_files(folder: Path) -> _FolderScan:
    """NIfTI files of a folder by case stem (suffix in any letter case), and a problem for every other entry.

    Hidden entries (dot files, macOS ``._*``) are ignored. Two files of the same stem (``x.nii`` and
    ``x.nii.gz``) are a problem naming both, and neither is used.
    """
    scan = _FolderScan({}, set(), [])
    if not folder.is_dir():
        return scan
    by_stem: dict[str, list[Path]] = {}
    for path in _entries(folder):
        if _is_hidden(path):
            continue
        stem = strip_nifti_suffix(path.name)
        if stem is None or not path.is_file():
            what = NOT_NIFTI if path.is_file() else "not a NIfTI file (a folder or a broken link)"
            scan.problems.append(Problem(path.name, what, path))
            continue
        by_stem.setdefault(stem, []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) == 1:
            scan.found[stem] = paths[0]
            continue
        scan.ambiguous.add(stem)
        names = " and ".join(p.name for p in paths)
        scan.problems.append(
            Problem(
                stem, f"several files for the same case in {folder.name}/: {names}; keep only one", folder
            )
        )
    return scan


def read_msd_description(root: Path) -> dict:
    """Parse and check ``dataset.json`` of an MSD-layout folder.

    'labels' must map integer values to names and 'training' must be a list of objects with an 'image'
    file name; anything else is a DataError naming dataset.json. ``labels`` comes back as sorted ints.
    """
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(
            f"{root}: no dataset.json; an MSD-layout dataset needs imagesTr/, labelsTr/ and dataset.json"
        )
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable JSON file ({' '.join(str(error).split())})") from error
    if not isinstance(description, dict):
        raise DataError(
            f"{path}: must hold a JSON object with 'labels' and 'training', not {_kind(description)}"
        )
    description["labels"] = _declared_labels(path, description.get("labels"))
    _check_training(path, description)
    return description


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), "a number"
    )


def _declared_labels(path: Path, labels: object) -> tuple[int, ...]:
    example = '{"0": "background", "1": "tumour"}'
    if not isinstance(labels, dict) or not labels:
        got = "missing" if labels is None else f"{_kind(labels)}" if labels else "empty"
        raise DataError(
            f"{path}: 'labels' must map integer label values to names, e.g. {example} (it is {got})"
        )
    values = []
    for key in labels:
        try:
            values.append(int(key))
        except ValueError:
            raise DataError(
                f"{path}: 'labels' must map integer label values to names, e.g. {example} "
                f"(key {key!r} is not an integer)"
            ) from None
    return tuple(sorted(set(values)))


def _check_training(path: Path, description: dict) -> None:
    training = description.get("training")
    if not isinstance(training, list):
        got = "missing" if training is None else _kind(training)
        raise DataError(
            f'{path}: \'training\' must be a list of {{"image": ..., "label": ...}} objects (it is {got})'
        )
    for number, entry in enumerate(training, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DataError(
                f"{path}: 'training' entry {number} must be an object with an 'image' file name, "
                f"got {json.dumps(entry)[:80]}"
            )


def discover_msd(root: Path, modalities: tuple[int, ...] = (0,)) -> Discovery:
    """Cases of an MSD-layout folder: ``dataset.json`` entries and every NIfTI file in imagesTr/labelsTr.

    A case missing its image or label, not listed in dataset.json, listed twice or with two files of the
    same name is reported as a problem, and so is every file of imagesTr/labelsTr that is not NIfTI.
    """
    description = read_msd_description(root)
    image_scan, label_scan = _nifti_files(root / "imagesTr"), _nifti_files(root / "labelsTr")
    images, labels = image_scan.found, label_scan.found
    ambiguous = image_scan.ambiguous | label_scan.ambiguous
    discovery = Discovery(root=root, cases=[], labels=description["labels"])
    discovery.problems += image_scan.problems + label_scan.problems
    listed: dict[str, int] = {}
    for entry in description["training"]:
        name = Path(entry["image"].replace("\\", "/")).name
        stem = strip_nifti_suffix(name)
        if stem is None:
            discovery.problems.append(
                Problem(
                    name or "dataset",
                    f"dataset.json 'training' lists {entry['image']!r}, not a NIfTI file",
                    root / "dataset.json",
                )
            )
            continue
        listed[stem] = listed.get(stem, 0) + 1
    discovery.listed_cases = len(listed)
    discovery.found_cases = len(set(images) | set(labels) | ambiguous)
    for case_id, count in sorted(listed.items()):
        if count > 1:
            discovery.problems.append(
                Problem(case_id, f"listed {count} times in dataset.json 'training'", root / "dataset.json")
            )
    for case_id in sorted(set(images) | set(labels) | set(listed)):
        if case_id in ambiguous:
            continue
        problems = _msd_case_problems(root, case_id, images, labels, set(listed))
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


BRATS_SEQUENCES = ("flair", "t1", "t1ce", "t2")
BRATS_EXPECTED = (
    "MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,flair,seg}.nii.gz"
)
MSD_EXPECTED = "dataset.json with imagesTr/ and labelsTr/"


def _holds_brats_cases(folder: Path) -> bool:
    return any(BRATS_CASE_PATTERN.match(p.name) and p.is_dir() for p in _entries(folder))


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in _entries(folder) if p.is_dir() and not _is_hidden(p)]


def _brats_root_or_none(folder: Path) -> Path | None:
    candidates = [folder, *_subfolders(folder)]
    candidates += [sub for child in candidates[1:] for sub in _subfolders(child)]
    return next((candidate for candidate in candidates if _holds_brats_cases(candidate)), None)


def find_brats_root(folder: Path) -> Path:
    """The folder that directly holds the ``BraTS20_Training_NNN`` case folders (searched two levels deep)."""
    root = _brats_root_or_none(folder)
    if root is not None:
        return root
    raise DataError(
        f"{folder}: no BraTS20_Training_NNN case folders found "
        f"(expected the BraTS 2020 layout {BRATS_EXPECTED})"
    )


def discover_brats(folder: Path, sequences: tuple[str, ...] = ("t1", "t2", "flair")) -> Discovery:
    """Cases of a BraTS 2020 training folder; each needs the requested sequences and ``_seg``.

    File suffixes are matched in any letter case; two files for the same sequence, files that are not
    NIfTI and NIfTI files that are no sequence of the case are reported as problems.
    """
    root = find_brats_root(folder)
    # Case paths are recorded relative to the dataset folder, which the later stages are given, even when
    # the cases sit in a subfolder of it (MICCAI_BraTS2020_TrainingData/ in the official archive).
    discovery = Discovery(root=Path(folder), cases=[], labels=BRATS_LABELS)
    for case_dir in sorted(p for p in _entries(root) if p.is_dir() and BRATS_CASE_PATTERN.match(p.name)):
        case_id = case_dir.name
        scan = _nifti_files(case_dir)
        discovery.problems += [Problem(case_id, p.message, p.path or case_dir) for p in scan.problems]
        known = {f"{case_id}_{name}" for name in (*BRATS_SEQUENCES, *sequences, "seg")}
        for stem in sorted(set(scan.found) - known):
            discovery.problems.append(
                Problem(
                    case_id,
                    "unexpected file in the case folder "
                    f"(expected {case_id}_{{t1,t1ce,t2,flair,seg}}.nii.gz)",
                    scan.found[stem],
                )
            )
        for name in (*sequences, "seg"):
            stem = f"{case_id}_{name}"
            if stem not in scan.found and stem not in scan.ambiguous:
                discovery.problems.append(
                    Problem(case_id, f"'{name}' file is missing", case_dir / f"{stem}.nii.gz")
                )
        needed = [f"{case_id}_{name}" for name in (*sequences, "seg")]
        if all(stem in scan.found for stem in needed):
            channels = tuple(Channel(scan.found[f"{case_id}_{name}"]) for name in sequences)
            discovery.cases.append(Case(case_id, channels, scan.found[f"{case_id}_seg"]))
    return discovery


def brats_sequence(path: Path) -> str | None:
    """The BraTS sequence (or ``"seg"``) a file name ends with, in any letter case: ``x_flair.nii.gz`` ->
    ``"flair"``; None for names that end with none."""
    stem = strip_nifti_suffix(path.name)
    if stem is None or "_" not in stem:
        return None
    tail = stem.rsplit("_", 1)[1].lower()
    return tail if tail in (*BRATS_SEQUENCES, "seg") else None


def case_sequence_files(folder: Path, sequences: tuple[str, ...]) -> list[Path]:
    """The files of ``sequences`` (in that order) in one case folder, by name (``*_{sequence}.nii[.gz]``).

    A sequence with no file or with several is a DataError naming the folder.
    """
    by_sequence: dict[str, list[Path]] = {}
    for path in _entries(folder):
        if path.is_file() and not _is_hidden(path):
            by_sequence.setdefault(brats_sequence(path) or "", []).append(path)
    wanted = ", ".join(sequences)
    for name in sequences:
        found = by_sequence.get(name, [])
        if len(found) != 1:
            what = "no file" if not found else "several files: " + ", ".join(p.name for p in found)
            raise DataError(
                f"{folder}: {what} for the '{name}' sequence (*_{name}.nii.gz; the model takes {wanted})"
            )
    return [by_sequence[name][0] for name in sequences]


def order_sequence_files(inputs: list[Path], sequences: tuple[str, ...]) -> list[Path]:
    """One file per sequence in the order of ``sequences``, from a case folder or from files in any order.

    Files are put in order only when every name ends with a sequence (``*_t1.nii.gz``); names that say
    nothing are taken in the order given. Names that show a sequence the model does not take, or one
    twice, are a DataError listing what the model takes.
    """
    if len(inputs) == 1 and inputs[0].is_dir():
        return case_sequence_files(inputs[0], sequences)
    named = [brats_sequence(path) for path in inputs]
    if None in named:
        return inputs
    if sorted(named) != sorted(sequences):
        raise DataError(
            f"{', '.join(map(str, inputs))}: the files are {', '.join(map(str, named))}; "
            f"the model takes {', '.join(sequences)}"
        )
    return [inputs[named.index(name)] for name in sequences]


def detect_layout(folder: Path) -> str:
    """``"msd"`` if the folder has a dataset.json or imagesTr/, ``"brats"`` if it holds BraTS case folders."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected a dataset folder, MSD or BraTS 2020 layout)")
    if (folder / "dataset.json").exists() or (folder / "imagesTr").is_dir():
        return "msd"
    if _brats_root_or_none(folder) is None:
        raise DataError(
            f"{folder}: no dataset found: neither the MSD layout ({MSD_EXPECTED}; "
            "no dataset.json or imagesTr/ here) nor the BraTS 2020 layout "
            "(no BraTS20_Training_NNN case folders found within two levels, "
            f"expected {BRATS_EXPECTED})"
        )
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
