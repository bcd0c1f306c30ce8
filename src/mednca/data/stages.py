"""The data stages as the workflow runs them: fetch -> validate -> preprocess, and split.

Each stage reads the files the previous one wrote, writes its own outputs atomically and logs progress.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from mednca.data.download import fetch_dataset
from mednca.data.layout import Case, Channel, discover
from mednca.data.phantom import generate_phantom_dataset
from mednca.data.preprocess import binarise_label, normalise_intensity, save_slices, volume_to_slices
from mednca.data.split import build_manifest
from mednca.data.validate import enforce_policy, validate_dataset
from mednca.data.volumes import load_case
from mednca.errors import DataError
from mednca.io import write_csv, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhantomSpec:
    """Arguments of ``generate_phantom_dataset`` for a synthetic dataset."""

    cases: int
    seed: int = 0
    shape: tuple[int, int, int] = (32, 40, 24)
    shape_jitter: int = 4
    modalities: int = 1


def fetch_stage(
    data_dir: Path,
    folder: str,
    source_json: Path,
    archive: str | None = None,
    url: str | None = None,
    md5: str | None = None,
    phantom: PhantomSpec | None = None,
) -> None:
    """Make ``data_dir/folder`` available (present, extracted, downloaded or generated) and record how."""
    target = Path(data_dir) / folder
    if phantom is not None and not target.exists():
        log.info("generating synthetic phantom dataset (%d cases) in %s", phantom.cases, target)
        generate_phantom_dataset(
            target,
            phantom.cases,
            phantom.seed,
            phantom.shape,
            phantom.shape_jitter,
            phantom.modalities,
            progress=True,
        )
        record = {"folder": str(target.resolve()), "origin": "generated", "synthetic": True}
    else:
        result = fetch_dataset(Path(data_dir), folder, archive=archive, url=url, md5=md5)
        record = {
            "folder": str(result.folder.resolve()),
            "origin": result.origin,
            "archive": None if result.archive is None else str(result.archive),
            "archive_md5": result.archive_md5,
            "synthetic": phantom is not None,
        }
    log.info("dataset folder %s (%s)", record["folder"], record["origin"])
    write_json(source_json, record)


def dataset_folder(source_json: Path) -> Path:
    """The dataset folder recorded by ``fetch_stage``."""
    try:
        return Path(json.loads(Path(source_json).read_text())["folder"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{source_json}: cannot read the dataset folder from it ({error}); re-run fetch"
        ) from error


def validate_stage(
    source_json: Path,
    cases_csv: Path,
    dataset: str,
    layout: str,
    modalities: tuple[int, ...],
    sequences: tuple[str, ...],
    on_bad_case: str,
) -> None:
    """Check every case; write the table of valid cases or stop naming each problem."""
    discovery = discover(dataset_folder(source_json), layout, tuple(modalities), tuple(sequences))
    report = validate_dataset(discovery, progress=True)
    enforce_policy(report, dataset, on_bad_case)
    log.info("dataset '%s': %d valid case(s)", dataset, len(report.records))
    write_csv(cases_csv, report.table())


def case_from_record(record: pd.Series, root: Path) -> Case:
    """Rebuild a Case from a row of the cases table (paths relative to ``root``, ``file#index`` channels)."""
    channels = []
    for item in str(record["image_files"]).split(";"):
        name, _, index = item.partition("#")
        channels.append(Channel(root / name, int(index) if index else None))
    return Case(str(record["case_id"]), tuple(channels), root / str(record["label_file"]))


TABLE_COLUMNS = {
    "manifest": ("case_id", "split"),
    "table of valid cases": ("case_id", "image_files", "label_file"),
}


def read_table(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV the pipeline wrote, naming the file if it is missing, unreadable or lacks a column."""
    try:
        table = pd.read_csv(path, dtype={"case_id": str})
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: cannot read the {what} ({error})") from error
    missing = [column for column in TABLE_COLUMNS.get(what, ()) if column not in table.columns]
    if missing:
        raise DataError(f"{path}: the {what} lacks column(s) {', '.join(missing)}; re-run the data stage")
    return table


def preprocess_stage(
    source_json: Path,
    cases_csv: Path,
    out_dir: Path,
    foreground_labels: tuple[int, ...],
    image_size: tuple[int, int],
    slice_axis: int,
    resize_mode: str,
    intensity_method: str,
    lower_percentile: float,
    upper_percentile: float,
) -> None:
    """Write ``{case_id}.npz`` slices for every valid case and an ``index.csv`` with their slice counts."""
    root = dataset_folder(source_json)
    cases = read_table(cases_csv, "table of valid cases")
    out_dir = Path(out_dir)
    rows = []
    for _, record in tqdm(cases.iterrows(), total=len(cases), desc="preprocessing", unit="case"):
        volume = load_case(case_from_record(record, root))
        try:
            image = normalise_intensity(volume.image, intensity_method, lower_percentile, upper_percentile)
        except DataError as error:
            raise DataError(f"{volume.case_id}: {error}") from error
        label = binarise_label(volume.label, tuple(foreground_labels))
        images, labels, geometry = volume_to_slices(
            image, label, volume.affine, slice_axis, tuple(image_size), resize_mode
        )
        save_slices(out_dir / f"{volume.case_id}.npz", images, labels, geometry)
        rows.append(
            {
                "case_id": volume.case_id,
                "slices": len(images),
                "foreground_slices": int(labels.any((1, 2)).sum()),
            }
        )
    index = pd.DataFrame(rows, columns=["case_id", "slices", "foreground_slices"])
    log.info(
        "%d case(s), %d slices of %s pixels in %s", len(index), index["slices"].sum(), image_size, out_dir
    )
    write_csv(out_dir / "index.csv", index)


def split_stage(cases_csv: Path, manifest_csv: Path, test_fraction: float, seed: int) -> None:
    """Write the manifest: the valid cases with their patient-level split."""
    manifest = build_manifest(read_table(cases_csv, "table of valid cases"), test_fraction, seed)
    counts = manifest["split"].value_counts().to_dict()
    log.info("split (seed %d): %d train, %d test", seed, counts.get("train", 0), counts.get("test", 0))
    write_csv(manifest_csv, manifest)
