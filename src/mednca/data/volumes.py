"""Reading NIfTI volumes of a case into arrays, with errors that name the file.

Every file is checked before its voxels are read, so a broken or hostile file ends in one clear
``DataError`` rather than a traceback or an out-of-memory kill: the header must be readable, its
dimensions positive, its voxel type numeric and its affine finite and invertible; the voxel data the header
claims (shape x bytes per voxel) must not exceed a size limit and must really be in the file (an
uncompressed file must be long enough, a gzip stream is decompressed up to the claimed size only and must
not end early). The arrays are the ones nibabel gives (``np.asanyarray(nib.load(path).dataobj)``: stored
dtype, scl_slope/scl_inter applied as nibabel applies them).

Environment:
    MEDNCA_MAX_IMAGE_MB: the largest voxel data (in MiB, as stored in the file, before scaling) that
        one NIfTI file may claim; default 512. Raise it for genuinely larger images.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import imageglobals
from nibabel.arrayproxy import ArrayProxy
from nibabel.fileholders import FileHolder
from nibabel.openers import ImageOpener
from nibabel.volumeutils import apply_read_scaling

from mednca.data.layout import Case, Channel
from mednca.errors import ConfigError, DataError
from mednca.io import atomic_path

MAX_IMAGE_MB_VARIABLE = "MEDNCA_MAX_IMAGE_MB"
DEFAULT_MAX_IMAGE_MB = 512
READ_CHUNK = 1 << 20
#: Voxel types that can be read as numbers (bool, signed and unsigned integers, floats).
NUMERIC_KINDS = "biuf"
#: |det| of the affine's 3x3 part relative to the product of its column lengths below which it is singular.
SINGULAR_TOLERANCE = 1e-6


log = logging.getLogger(__name__)


class ImageLimitError(ConfigError, DataError):
    """MEDNCA_MAX_IMAGE_MB has a value that is not a positive number of MiB."""


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


def max_image_bytes() -> int:
    """The largest voxel data one file may claim, from MEDNCA_MAX_IMAGE_MB (MiB; default 512)."""
    text = os.environ.get(MAX_IMAGE_MB_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_MB << 20
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ImageLimitError(
            f"{MAX_IMAGE_MB_VARIABLE}={text!r} is not a positive number of MiB (the largest voxel data one "
            f"NIfTI file may hold; default {DEFAULT_MAX_IMAGE_MB}); set it to e.g. 2048 or unset it"
        )
    return int(value * (1 << 20))


def _reason(error: BaseException) -> str:
    """``str(error)`` on one line, or the exception's type name when that is empty."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _size(n_bytes: int) -> str:
    """``"2097152000 bytes (2000.0 MiB)"``."""
    return f"{n_bytes} bytes ({n_bytes / (1 << 20):.1f} MiB)"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _sniff_class(path: Path) -> type[nib.Nifti1Image]:
    """NIfTI-1 or NIfTI-2, from the header size in the file's first 4 (decompressed) bytes."""
    with ImageOpener(str(path)) as stream:
        head = stream.read(4)
    sizes = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    return nib.Nifti2Image if 540 in sizes else nib.Nifti1Image


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    """``nib.load``, or, when nibabel would open a differently-cased name (``x.Nii``), that exact file."""
    klass = nib.Nifti1Image
    if klass.filespec_to_file_map(str(path))["image"].filename == str(path):
        return nib.load(path)
    holders = {"image": FileHolder(filename=str(path)), "header": FileHolder(filename=str(path))}
    return _sniff_class(path).from_file_map(holders)


@contextlib.contextmanager
def _nibabel_messages() -> Iterator[list[str]]:
    """Collect what nibabel's global logger says while loading (instead of letting it print raw lines)."""
    messages: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(" ".join(record.getMessage().split()))

    logger, collector = imageglobals.logger, Collector()
    propagate = logger.propagate
    with imageglobals.LoggingOutputSuppressor():
        logger.addHandler(collector)
        logger.propagate = False
        try:
            yield messages
        finally:
            logger.removeHandler(collector)
            logger.propagate = propagate


def read_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; voxels are read on access) and check its header and affine.

    Refused with a DataError naming the file: anything nibabel cannot parse, a file that is not NIfTI-1 or
    NIfTI-2, a dimension below 1, a non-numeric voxel type (RGB, complex), a non-finite or singular affine.
    """
    path = Path(path)
    with _nibabel_messages() as messages:
        try:
            image = _load(path)
        except Exception as error:  # nibabel raises many types for broken files
            raise DataError(f"{path}: cannot read NIfTI file ({_reason(error)})") from error
    if messages:
        log.warning("%s: nibabel corrected the header (%s)", path, "; ".join(messages))
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise DataError(
            f"{path}: cannot read NIfTI file (nibabel reads it as {type(image).__name__}, not NIfTI-1/2)"
        )
    try:
        shape, dtype = tuple(int(d) for d in image.shape), np.dtype(image.get_data_dtype())
    except Exception as error:
        raise DataError(f"{path}: cannot read NIfTI file ({_reason(error)})") from error
    _check_layout(shape, dtype, path)
    check_affine(image, path)
    return image


def _check_layout(shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    """Refuse a header with no or non-positive dimensions or a voxel type that is not a plain number."""
    if not shape or any(d < 1 for d in shape):
        raise DataError(
            f"{path}: header gives the image shape {shape}; every dimension must be at least 1 "
            "(the header is broken)"
        )
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        name = f"structured ({', '.join(dtype.names)})" if dtype.names else str(dtype)
        raise DataError(
            f"{path}: voxel type {name} is not supported (expected integer or floating-point voxels); "
            "convert the image to a scalar type"
        )


def check_affine(image: nib.spatialimages.SpatialImage, path: Path) -> None:
    """Refuse an image whose affine is not finite or whose 3x3 part is singular (no voxel geometry)."""
    try:
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:
        raise DataError(f"{path}: cannot read the affine ({_reason(error)})") from error
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise DataError(
            f"{path}: the affine (voxel-to-world transform) has NaN/Inf or missing entries; "
            "fix the sform/qform and pixdim of the header"
        )
    linear = affine[:3, :3]
    scale = float(np.prod(np.linalg.norm(linear, axis=0)))
    determinant = float(np.linalg.det(linear))
    if scale == 0 or not abs(determinant) > SINGULAR_TOLERANCE * scale:
        raise DataError(
            f"{path}: the affine's 3x3 part is singular (determinant {determinant:.3g}, e.g. a zero voxel "
            "size or collinear axes); fix the sform/qform and pixdim of the header"
        )


def require_finite(voxels: np.ndarray, path: Path, what: str = "image") -> None:
    """Raise a DataError naming ``path`` when any voxel of ``voxels`` is NaN or infinite."""
    array = np.asarray(voxels)
    if array.dtype.kind not in "fc":
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise DataError(
            f"{path}: {what} has {bad} NaN/Inf voxel(s); replace them (e.g. with 0) or leave the case out"
        )


def finite_float32(voxels: np.ndarray, path: Path) -> np.ndarray:
    """An image channel as float32, refused (naming ``path``) if a voxel is NaN/Inf or overflows float32."""
    require_finite(voxels, path, "image")
    with np.errstate(over="ignore", invalid="ignore"):
        as_float = np.asarray(voxels).astype(np.float32)
    if as_float.dtype != voxels.dtype and not np.isfinite(as_float).all():
        raise DataError(f"{path}: image values exceed the float32 range (overflow to Inf); rescale the image")
    return as_float


def claimed_bytes(image: nib.Nifti1Image, path: Path) -> int:
    """Bytes of voxel data the header claims (shape x bytes per voxel), after checking shape and type."""
    try:
        shape, dtype = tuple(int(d) for d in image.dataobj.shape), np.dtype(image.dataobj.dtype)
    except Exception as error:
        raise DataError(f"{path}: cannot read NIfTI file ({_reason(error)})") from error
    _check_layout(shape, dtype, path)
    return math.prod(shape) * dtype.itemsize


def read_voxels(image: nib.Nifti1Image, path: Path) -> np.ndarray:
    """All voxels in their stored dtype (with scaling applied when the header asks for it).

    The claimed size is checked against MEDNCA_MAX_IMAGE_MB and against the file before anything large is
    allocated; the data is read in chunks into one buffer, so memory stays about the claimed size.
    """
    path = Path(path)
    proxy = image.dataobj
    if not isinstance(proxy, ArrayProxy):  # an image made in memory: nothing to read
        return np.asanyarray(proxy)
    n_bytes = claimed_bytes(image, path)
    limit = max_image_bytes()
    shape, dtype = tuple(int(d) for d in proxy.shape), np.dtype(proxy.dtype)
    what = f"shape {_shape_text(shape)} of {dtype}"
    if n_bytes > limit:
        raise DataError(
            f"{path}: header claims {_size(n_bytes)} of voxel data ({what}), more than the "
            f"{limit / (1 << 20):g} MiB limit; if the image is genuine, raise {MAX_IMAGE_MB_VARIABLE}"
        )
    if int(proxy.offset) > limit:
        raise DataError(
            f"{path}: header gives a voxel data offset of {int(proxy.offset)} bytes, beyond the "
            f"{limit / (1 << 20):g} MiB limit ({MAX_IMAGE_MB_VARIABLE}); the header is broken"
        )
    try:
        raw = _read_data(proxy, n_bytes, path, what)
        voxels = np.ndarray(shape, dtype=dtype, buffer=raw, order=proxy.order)
        return _scaled(voxels, proxy)
    except MemoryError as error:
        raise DataError(
            f"{path}: not enough memory to read {_size(n_bytes)} of voxel data ({what})"
        ) from error
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: cannot read voxel data ({_reason(error)})") from error


def _read_data(proxy: ArrayProxy, n_bytes: int, path: Path, what: str) -> np.ndarray:
    """The ``n_bytes`` of voxel data at the proxy's offset, refusing a file or stream that is too short."""
    offset = int(proxy.offset)
    if offset < 0:
        raise DataError(f"{path}: header gives a negative voxel data offset ({offset})")
    with ImageOpener(proxy.file_like) as stream:
        if isinstance(stream.fobj, (io.BufferedReader, io.FileIO)):
            size = os.fstat(stream.fobj.fileno()).st_size
            if size < offset + n_bytes:
                raise DataError(
                    f"{path}: file is {size} bytes but its header needs {offset + n_bytes} "
                    f"({n_bytes} bytes of voxel data, {what}, from offset {offset}); "
                    "the file is truncated or its header is wrong"
                )
        buffer = np.empty(n_bytes, dtype=np.uint8)  # pages are only committed as data arrives
        stream.seek(offset)
        view, filled = memoryview(buffer), 0
        while filled < n_bytes:
            chunk = stream.read(min(READ_CHUNK, n_bytes - filled))
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    if filled < n_bytes:
        raise DataError(
            f"{path}: voxel data ends after {filled} of the {n_bytes} bytes its header claims ({what}, "
            f"from offset {offset}); the file is truncated or its header is wrong"
        )
    return buffer


def _scaled(voxels: np.ndarray, proxy: ArrayProxy) -> np.ndarray:
    """Apply scl_slope/scl_inter exactly as nibabel's ``ArrayProxy`` does for ``np.asanyarray``."""
    slope, inter = np.asanyarray(proxy.slope), np.asanyarray(proxy.inter)
    use_dtype = slope.dtype
    if np.can_cast(slope, use_dtype):
        slope = slope.astype(use_dtype)
    if np.can_cast(inter, use_dtype):
        inter = inter.astype(use_dtype)
    return apply_read_scaling(voxels, slope, inter)


def select_channel(voxels: np.ndarray, channel: Channel) -> np.ndarray:
    """(X, Y, Z) or (X, Y, Z, M) voxels -> the (X, Y, Z) array of the requested channel."""
    if voxels.ndim == 3 and channel.index in (None, 0):
        return voxels
    if voxels.ndim == 4 and channel.index is not None and channel.index < voxels.shape[3]:
        return voxels[..., channel.index]
    if voxels.ndim == 4 and channel.index is None and voxels.shape[3] == 1:
        return voxels[..., 0]
    wanted = "a 3D volume" if channel.index is None else f"a 4D image with channel {channel.index}"
    raise DataError(f"{channel.path}: needs {wanted}, but the image has shape {voxels.shape}")


def load_case(case: Case) -> CaseVolume:
    """Read every channel and the label of a case (the geometry is taken from the first channel).

    Every image channel must be finite (``require_finite``), and so must the label.
    """
    first = read_nifti(case.channels[0].path)
    channels = []
    try:
        for channel in case.channels:
            voxels = select_channel(read_voxels(read_nifti(channel.path), channel.path), channel)
            channels.append(finite_float32(voxels, channel.path))
        label = read_voxels(read_nifti(case.label), case.label)
        require_finite(label, case.label, "label")
        return CaseVolume(
            case_id=case.case_id,
            image=np.stack(channels),
            label=np.rint(label).astype(np.int16),
            affine=np.asarray(first.affine, dtype=np.float64),
        )
    except MemoryError as error:
        raise DataError(f"case {case.case_id}: not enough memory to load its volumes") from error


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def is_compressed_nifti(path: Path) -> bool:
    """True for a ``.nii.gz`` name, False for ``.nii`` (any letter case); DataError for any other name."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz") and len(name) > len(".nii.gz"):
        return True
    if name.endswith(".nii") and len(name) > len(".nii"):
        return False
    raise DataError(f"{path}: a NIfTI output must end in .nii.gz (compressed) or .nii (uncompressed)")


def save_label_map(path: Path, label: np.ndarray, affine: np.ndarray) -> None:
    """Write an (X, Y, Z) label map as uint8 NIfTI, atomically (``.nii.gz`` compressed, ``.nii`` plain)."""
    compressed = is_compressed_nifti(path)
    data = nib.Nifti1Image(np.asarray(label, dtype=np.uint8), affine).to_bytes()
    with atomic_path(path) as temporary:
        temporary.write_bytes(gzip.compress(data, mtime=0) if compressed else data)
