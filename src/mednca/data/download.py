"""Make a raw dataset folder available under the data directory.

A dataset folder that is already there is used as it stands. Otherwise a local archive is extracted, or the
archive is downloaded (md5-checked while streaming) and then extracted. Archives are recognised by content
(.tar, .tar.gz/.tgz, .zip); members that could write outside the destination are refused, macOS metadata
(``._*``, ``__MACOSX``) is skipped, and the final folder only appears once everything has been extracted.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from tqdm import tqdm

from mednca.errors import DataError

CHUNK_SIZE = 1 << 20
EXTRACTED_FOLDER_MODE = 0o755
ARCHIVE_TYPES = ".tar, .tar.gz/.tgz or .zip"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchResult:
    """Where a dataset folder is and how it got there."""

    folder: Path
    origin: str
    archive: Path | None
    archive_md5: str | None


def fetch_dataset(
    data_dir: Path,
    folder: str,
    archive: str | None = None,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> FetchResult:
    """Make ``data_dir/folder`` available: use it, else extract ``data_dir/archive``, else download it.

    ``archive`` defaults to the last path component of ``url``. ``md5`` (if given) is checked against a
    local archive as well as a downloaded one.
    """
    data_dir = Path(data_dir)
    target = data_dir / folder
    if _is_nonempty_dir(target):
        log.info("using present folder %s", target)
        return FetchResult(target, "present", None, None)
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists but is not a folder; move it away so the dataset can be put there")
    if archive is None and url is not None:
        archive = _url_file_name(url)
    archive_path = data_dir / archive if archive is not None else None
    if archive_path is not None and archive_path.exists():
        digest = _verify_archive(archive_path, md5, can_download=url is not None)
        origin = "extracted"
    elif archive_path is not None and url is not None:
        digest = _download(url, archive_path, md5, progress, timeout=60.0)
        origin = "downloaded"
    else:
        raise DataError(_missing_message(target, archive_path))
    _extract_to_folder(archive_path, data_dir, folder)
    return FetchResult(target, origin, archive_path, digest)


def download_file(
    url: str, dest: Path, md5: str | None = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``; ``dest`` is replaced only once the md5 matches."""
    dest = Path(dest)
    _download(url, dest, md5, progress, timeout)
    return dest


def file_md5(path: Path, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(archive: Path, dest_dir: Path) -> None:
    """Extract a tar (plain or compressed) or zip archive into ``dest_dir``, refusing unsafe members.

    Absolute paths, paths or links leading outside ``dest_dir`` and device files are refused before
    anything is written; tar extraction also runs through Python's ``data`` filter. macOS metadata
    members (``._*``, ``__MACOSX``) are skipped.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    kind = _archive_kind(archive)
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "tar":
            _extract_tar(archive, dest_dir)
        else:
            _extract_zip(archive, dest_dir)
    except tarfile.FilterError as error:
        raise _unsafe_member(archive, error.tarinfo.name, str(error)) from error
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{archive}: cannot be extracted into {dest_dir} ({error}); if the archive is incomplete or "
            "damaged, delete it and fetch it again"
        ) from error


def _is_nonempty_dir(path: Path) -> bool:
    """True for an existing directory with at least one entry."""
    return path.is_dir() and any(path.iterdir())


def _url_file_name(url: str) -> str:
    """The file name at the end of a URL's path."""
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not name:
        raise DataError(f"{url}: cannot tell the archive's file name from the URL; give the archive name")
    return name


def _missing_message(target: Path, archive_path: Path | None) -> str:
    """What to put where when a dataset is absent and has no download URL."""
    where = f"put the extracted dataset folder at {target}"
    if archive_path is not None:
        where += f", or its archive ({ARCHIVE_TYPES}) at {archive_path}"
    return (
        f"dataset folder {target} is not present and cannot be downloaded automatically; "
        f"{where}, then run again"
    )


def _verify_archive(path: Path, expected: str | None, can_download: bool) -> str:
    """md5 of a local archive, checked against ``expected`` when given."""
    log.info("checking md5 of %s", path)
    actual = file_md5(path)
    if expected is not None and actual != expected.lower():
        fix = "delete it (it will be downloaded again)" if can_download else "delete it"
        raise DataError(
            f"{path}: md5 is {actual} but {expected.lower()} was expected; the file is probably incomplete "
            f"or a different release: {fix} or replace it with the correct archive"
        )
    return actual


def _download(url: str, dest: Path, md5: str | None, progress: bool, timeout: float) -> str:
    """Download ``url`` to ``dest`` (atomically, md5-checked) and return the md5 of what was received."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s to %s", url, dest)
    try:
        actual = _stream_to_file(url, part, progress, timeout, dest.name)
    except urllib.error.HTTPError as error:
        error.close()
        part.unlink(missing_ok=True)
        raise DataError(_unreachable_message(url, dest, f"HTTP {error.code} {error.reason}")) from error
    except (OSError, http.client.HTTPException) as error:
        part.unlink(missing_ok=True)
        raise DataError(_unreachable_message(url, dest, _reason(error))) from error
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if md5 is not None and actual != md5.lower():
        part.unlink(missing_ok=True)
        raise DataError(
            f"{url}: the downloaded file has md5 {actual} but {md5.lower()} was expected (incomplete "
            f"transfer or a different release); nothing was saved at {dest}: try again, or download it "
            "yourself, check its md5 and place it there"
        )
    os.replace(part, dest)
    return actual


def _stream_to_file(url: str, part: Path, progress: bool, timeout: float, desc: str) -> str:
    """Stream ``url`` into ``part`` in chunks with a progress bar; return the md5 of the bytes written."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
            while chunk := response.read(CHUNK_SIZE):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")
    return digest.hexdigest()


def _reason(error: BaseException) -> str:
    """A short human-readable reason for a network error."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return str(reason) or type(error).__name__


def _unreachable_message(url: str, dest: Path, reason: str) -> str:
    """What happened when a download failed and how to get the file by hand."""
    return (
        f"could not download {url} ({reason}); download it on another machine (or later) "
        f"and place it at {dest}, then run again"
    )


def _extract_to_folder(archive: Path, data_dir: Path, folder: str) -> None:
    """Extract ``archive`` into a temporary directory in ``data_dir`` and rename the result to ``folder``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / folder
    log.info("extracting %s to %s", archive, target)
    tmp = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{folder}.extract-"))
    try:
        safe_extract(archive, tmp)
        source = _extracted_root(tmp, folder, archive)
        if source == tmp:
            tmp.chmod(EXTRACTED_FOLDER_MODE)
        if target.is_dir():
            target.rmdir()
        os.rename(source, target)
    except OSError as error:
        raise DataError(
            f"{archive}: cannot extract into {target} ({error}); "
            f"check free space and permissions in {data_dir}"
        ) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extracted_root(tmp: Path, folder: str, archive: Path) -> Path:
    """The extracted directory named ``folder`` if it is the only entry in ``tmp``, else ``tmp`` itself."""
    if not any(not path.is_dir() for path in tmp.rglob("*")):
        raise DataError(f"{archive}: contains no files; replace it with the original archive")
    entries = [entry for entry in tmp.iterdir() if not _is_macos_metadata(entry.name)]
    only = entries[0]
    if len(entries) == 1 and only.name == folder and only.is_dir() and not only.is_symlink():
        return only
    return tmp


def _archive_kind(archive: Path) -> str:
    """``"tar"`` or ``"zip"``, by content."""
    if not archive.is_file():
        raise DataError(f"{archive}: not a file; replace it with the dataset archive ({ARCHIVE_TYPES})")
    if tarfile.is_tarfile(archive):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    raise DataError(
        f"{archive}: unknown archive type (its content is not {ARCHIVE_TYPES}); "
        "replace it with the original dataset archive"
    )


def _extract_tar(archive: Path, dest_dir: Path) -> None:
    """Check every tar member, then extract the non-metadata ones with the ``data`` filter."""
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if not _is_macos_metadata(member.name)]
        for member in members:
            _check_tar_member(archive, member)
        tar.extractall(dest_dir, members=members, filter="data")


def _extract_zip(archive: Path, dest_dir: Path) -> None:
    """Check every zip member name, then extract the non-metadata ones."""
    with zipfile.ZipFile(archive) as zf:
        names = [name for name in zf.namelist() if not _is_macos_metadata(name)]
        for name in names:
            _check_member_path(archive, name)
        zf.extractall(dest_dir, members=names)


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse a tar member whose path or link target leaves the destination, or a device file."""
    name = member.name
    _check_member_path(archive, name)
    target = member.linkname
    if member.issym():
        resolved = posixpath.join(posixpath.dirname(_posix(name)), _posix(target))
        if _is_absolute(target) or _leaves_root(resolved):
            raise _unsafe_member(archive, name, f"symbolic link to {target} points outside the destination")
    elif member.islnk():
        if _is_absolute(target) or _leaves_root(target):
            raise _unsafe_member(archive, name, f"hard link to {target} points outside the destination")
    elif member.isdev():
        raise _unsafe_member(archive, name, "device or special file")


def _check_member_path(archive: Path, name: str) -> None:
    """Refuse an absolute member path or one whose ``..`` components lead outside the destination."""
    if _is_absolute(name):
        raise _unsafe_member(archive, name, "absolute path")
    if _leaves_root(name):
        raise _unsafe_member(archive, name, "path leads outside the destination")


def _unsafe_member(archive: Path, name: str, problem: str) -> DataError:
    """The error for a refused archive member."""
    return DataError(
        f"{archive}: refusing to extract member {name!r} ({problem}); this is not a plain dataset archive, "
        "replace it with the original one"
    )


def _posix(name: str) -> str:
    """An archive path with backslashes read as separators."""
    return name.replace("\\", "/")


def _is_absolute(name: str) -> bool:
    """True for POSIX, UNC or drive-letter absolute paths."""
    return _posix(name).startswith("/") or bool(PureWindowsPath(name).drive)


def _leaves_root(name: str) -> bool:
    """True if a relative path, once normalised, starts with ``..``."""
    normalised = posixpath.normpath(_posix(name))
    return normalised == ".." or normalised.startswith("../")


def _is_macos_metadata(name: str) -> bool:
    """True for macOS resource forks (``._*``) and anything under ``__MACOSX``."""
    return any(part == "__MACOSX" or part.startswith("._") for part in _posix(name).split("/"))
