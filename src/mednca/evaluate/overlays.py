"""The slices the report overlays: for every test case, its most-foreground slice with the prediction.

The evaluation writes them beside its metrics (``test_slices.npz``) so the report draws its qualitative
figure from declared results, never from the raw data. Every model of a dataset picks the same slice: the
one with the most ground-truth foreground along the dataset's slice axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mednca.data.preprocess import most_foreground_slice
from mednca.errors import DataError
from mednca.io import atomic_path


@dataclass(frozen=True)
class CaseSlice:
    """One test case's slice: (H, W) float32 raw image (first channel), (H, W) uint8 label and prediction."""

    case_id: str
    index: int
    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray


def case_slice(
    case_id: str, image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, slice_axis: int
) -> CaseSlice:
    """The most-foreground slice of a case from its (C, X, Y, Z) image and (X, Y, Z) label and prediction."""
    index = most_foreground_slice(truth, slice_axis)
    return CaseSlice(
        case_id=case_id,
        index=index,
        image=np.take(image[0], index, axis=slice_axis).astype(np.float32),
        label=np.take(truth, index, axis=slice_axis).astype(np.uint8),
        prediction=np.take(prediction, index, axis=slice_axis).astype(np.uint8),
    )


def write_case_slices(path: Path, slices: list[CaseSlice]) -> None:
    """Write the slices of a run's test cases to one compressed NPZ file (atomically)."""
    arrays: dict[str, np.ndarray] = {
        "case_ids": np.array([item.case_id for item in slices], dtype=str),
        "indices": np.array([item.index for item in slices], dtype=np.int64),
    }
    for number, item in enumerate(slices):
        arrays[f"image_{number}"] = item.image
        arrays[f"label_{number}"] = item.label
        arrays[f"prediction_{number}"] = item.prediction
    with atomic_path(Path(path)) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def read_case_slices(path: Path) -> dict[str, CaseSlice]:
    """The slices of a ``test_slices.npz`` by case id; a file of another kind is a DataError naming it."""
    try:
        with np.load(path) as arrays:
            return {
                str(case_id): CaseSlice(
                    str(case_id),
                    int(arrays["indices"][number]),
                    arrays[f"image_{number}"],
                    arrays[f"label_{number}"],
                    arrays[f"prediction_{number}"],
                )
                for number, case_id in enumerate(arrays["case_ids"])
            }
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: not a file of test-case slices ({error})") from error
