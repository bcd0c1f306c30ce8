"""Reading NIfTI volumes of a case into arrays, with errors that name the file."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mednca.data.layout import Case, Channel
from mednca.errors import DataError
from mednca.io import atomic_path


@dataclass(frozen=True)
class CaseVolume:
    """A loaded case. ``image``: (C, X, Y, Z) float32; ``label``: (X, Y, Z) int16; ``affine``: (4, 4)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis, from the affine."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))


def read_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; voxels are read on access)."""
    try:
        return nib.load(path)
    except Exception as error:  # nibabel raises many types for broken files
        raise DataError(f"{path}: cannot read NIfTI file ({error})") from error


def read_voxels(image: nib.Nifti1Image, path: Path) -> np.ndarray:
    """All voxels in their stored dtype (with scaling applied when the header asks for it)."""
    try:
        return np.asanyarray(image.dataobj)
    except Exception as error:
        raise DataError(f"{path}: cannot read voxel data ({error})") from error


def select_channel(voxels: np.ndarray, channel: Channel) -> np.ndarray:
    """(X, Y, Z) or (X, Y, Z, M) voxels -> the (X, Y, Z) array of the requested channel."""
    if voxels.ndim == 3 and channel.index in (None, 0):
        return voxels
    if voxels.ndim == 4 and channel.index is not None and channel.index < voxels.shape[3]:
        return voxels[..., channel.index]
    if voxels.ndim == 4 and channel.index is None and voxels.shape[3] == 1:
        return voxels[..., 0]
    raise DataError(
        f"{channel.path}: cannot take channel {channel.index} of an image of shape {voxels.shape}"
    )


def load_case(case: Case) -> CaseVolume:
    """Read every channel and the label of a case (the geometry is taken from the first channel)."""
    first = read_nifti(case.channels[0].path)
    channels = [
        select_channel(read_voxels(read_nifti(c.path), c.path), c).astype(np.float32) for c in case.channels
    ]
    label = read_voxels(read_nifti(case.label), case.label)
    return CaseVolume(
        case_id=case.case_id,
        image=np.stack(channels),
        label=np.rint(label).astype(np.int16),
        affine=np.asarray(first.affine, dtype=np.float64),
    )


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def save_label_map(path: Path, label: np.ndarray, affine: np.ndarray) -> None:
    """Write an (X, Y, Z) label map as uint8 NIfTI (gzip-compressed), atomically."""
    image = nib.Nifti1Image(np.asarray(label, dtype=np.uint8), affine)
    with atomic_path(path) as temporary:
        temporary.write_bytes(gzip.compress(image.to_bytes(), mtime=0))
