"""Make a raw dataset folder available under the data directory.

A dataset folder that is already there is used as it stands. Otherwise a local archive is extracted, or the
archive is downloaded (md5-checked while streaming) and then extracted. Archives are recognised by content
(.tar, .tar.gz/.tgz, .zip); only regular files and folders are extracted (links, devices and paths that could
write outside the destination are refused before anything is written), macOS metadata (``._*``,
``__MACOSX``) is skipped, and the final folder only appears once everything has been extracted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import BinaryIO

from tqdm import tqdm

from mednca.errors import DataError

CHUNK_SIZE = 1 << 20
EXTRACTED_FOLDER_MODE = 0o755
EXTRACTED_FILE_MODE = 0o644
MAX_NAMED_MEMBERS = 5
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
    _check_inside(folder, "dataset folder")
    target = data_dir / folder
    if _is_nonempty_dir(target):
        log.info("using present folder %s", target)
        return FetchResult(target, "present", None, None)
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists but is not a folder; move it away so the dataset can be put there")
    if archive is None and url is not None:
        archive = _url_file_name(url)
    if archive is not None:
        _check_inside(archive, "archive")
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
    """Extract a tar (plain or compressed) or zip archive into ``dest_dir``: regular files and folders only.

    Every member is checked before anything is written, and one error names every refused member: symbolic
    and hard links, devices, FIFOs and any other special member (dataset archives need none, and links are
    how crafted archives escape, e.g. CVE-2025-4517), absolute paths, drive letters, paths whose ``..``
    lead outside, encrypted zip members and duplicates. Tar members must also pass Python's ``data``
    filter. Files are then written by this module itself through folder descriptors opened with
    O_NOFOLLOW and created with O_EXCL, so a link already in ``dest_dir`` is never followed and nothing
    lands outside it. macOS metadata members (``._*``, ``__MACOSX``) are skipped.
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
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        OSError,
        RuntimeError,
        NotImplementedError,
        ValueError,
    ) as error:
        raise DataError(
            f"{archive}: cannot be extracted into {dest_dir} ({_reason(error)}); if the archive is "
            "incomplete or damaged, delete it and fetch it again"
        ) from error


def _check_inside(name: str, what: str) -> None:
    """Refuse a folder or archive name that would lead outside the data directory."""
    parts = _posix(str(name)).split("/")
    if not str(name).strip() or _is_absolute(str(name)) or ".." in parts or "\0" in str(name):
        raise DataError(
            f"{what} name {name!r} must be a relative path inside the data directory, without '..'"
        )


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
    """Check every tar member, then write the non-metadata ones (regular files and folders only)."""
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if not _is_macos_metadata(member.name)]
        plan = _plan(archive, [(m.name, m.isdir(), _tar_member_problem(m)) for m in members])
        for member in members:  # second layer: the interpreter's own filter must agree
            tarfile.data_filter(member, str(dest_dir))
        with _DestinationWriter(archive, dest_dir) as writer:
            for member, parts in zip(members, plan, strict=True):
                if member.isdir():
                    writer.make_dir(member.name, parts)
                else:
                    writer.write_file(member.name, parts, tar.extractfile(member))


def _extract_zip(archive: Path, dest_dir: Path) -> None:
    """Check every zip member, then write the non-metadata ones (regular files and folders only)."""
    with zipfile.ZipFile(archive) as zf:
        infos = [info for info in zf.infolist() if not _is_macos_metadata(info.filename)]
        plan = _plan(archive, [(i.filename, _zip_is_dir(i), _zip_member_problem(i)) for i in infos])
        with _DestinationWriter(archive, dest_dir) as writer:
            for info, parts in zip(infos, plan, strict=True):
                if _zip_is_dir(info):
                    writer.make_dir(info.filename, parts)
                else:
                    with zf.open(info) as source:
                        writer.write_file(info.filename, parts, source)


def _plan(archive: Path, members: list[tuple[str, bool, str | None]]) -> list[tuple[str, ...]]:
    """Each member's path components below the destination; every refused member is named in one error.

    ``members`` holds each member's name, whether it is a folder and the problem of its type (None for a
    regular file or folder). A file member that names nothing, or a file written twice or where a folder
    goes, is refused too, so nothing is silently overwritten.
    """
    refused: list[tuple[str, str]] = []
    plan: list[tuple[str, ...]] = []
    for name, is_dir, type_problem in members:
        problem = type_problem or _path_problem(name)
        parts = () if problem is not None else _components(name)
        if problem is None and not parts and not is_dir:
            problem = "a file member without a file name"
        if problem is not None:
            refused.append((name, problem))
        plan.append(parts)
    folders = {parts[:end] for parts in plan for end in range(len(parts))}
    folders |= {parts for parts, (_, is_dir, _) in zip(plan, members, strict=True) if is_dir}
    files: set[tuple[str, ...]] = set()
    for parts, (name, is_dir, _) in zip(plan, members, strict=True):
        if is_dir or not parts:
            continue
        if parts in files:
            refused.append((name, "appears more than once in the archive"))
        elif parts in folders:
            refused.append((name, "is both a file and a folder in the archive"))
        files.add(parts)
    if refused:
        raise _refused_members(archive, refused)
    return plan


def _tar_member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member of this type is refused (dataset archives need no links or special files)."""
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return f"symbolic link to {_shorten(member.linkname)}; dataset archives need no links"
    if member.islnk():
        return f"hard link to {_shorten(member.linkname)}; dataset archives need no links"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO (named pipe)"
    return f"special member of tar type {member.type!r}, not a regular file or folder"


ZIP_FILE_TYPES = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
}


def _zip_is_dir(info: zipfile.ZipInfo) -> bool:
    """A folder entry: a name ending in a slash, or unix folder mode bits."""
    return info.is_dir() or stat.S_ISDIR(info.external_attr >> 16)


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is refused: a link or special file by its unix mode bits, or encryption."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind in ZIP_FILE_TYPES:
        return f"{ZIP_FILE_TYPES[kind]}; dataset archives need only regular files and folders"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"unknown file type {oct(kind)}, not a regular file or folder"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def _path_problem(name: str) -> str | None:
    """Why a member path is refused: absolute, leaving the destination, NUL bytes or naming nothing."""
    if "\x00" in name:
        return "name contains a NUL character"
    if _is_absolute(name):
        return "absolute path"
    if _leaves_root(name):
        return "path leads outside the destination"
    return None


def _components(name: str) -> tuple[str, ...]:
    """The normalised path components of a member (backslashes read as separators; ``.`` dropped)."""
    normalised = posixpath.normpath(_posix(name))
    return tuple(part for part in normalised.split("/") if part not in ("", "."))


class _DestinationWriter:
    """Writes members below ``dest_dir`` through directory file descriptors, never following a link.

    Every folder is opened with O_NOFOLLOW|O_DIRECTORY relative to its parent and every file is created
    with O_CREAT|O_EXCL|O_NOFOLLOW, so a symbolic link already in the destination (or an existing file) is
    never followed or overwritten: nothing can land outside ``dest_dir``.
    """

    def __init__(self, archive: Path, dest_dir: Path) -> None:
        self.archive = archive
        self.root = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.dirs: dict[tuple[str, ...], int] = {(): self.root}

    def __enter__(self) -> _DestinationWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def _folder(self, name: str, parts: tuple[str, ...]) -> int:
        """The descriptor of folder ``parts``, created (mode 755) where missing."""
        if parts in self.dirs:
            return self.dirs[parts]
        parent = self._folder(name, parts[:-1])
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(parts[-1], EXTRACTED_FOLDER_MODE, dir_fd=parent)
            fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as error:
            raise self._cannot_write(name, "/".join(parts), error) from error
        self.dirs[parts] = fd
        return fd

    def make_dir(self, name: str, parts: tuple[str, ...]) -> None:
        """Create the folder of a folder member."""
        self._folder(name, parts)

    def write_file(self, name: str, parts: tuple[str, ...], source: BinaryIO | None) -> None:
        """Create a new regular file for a file member and copy its content."""
        parent = self._folder(name, parts[:-1])
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(parts[-1], flags, EXTRACTED_FILE_MODE, dir_fd=parent)
        except OSError as error:
            raise self._cannot_write(name, "/".join(parts), error) from error
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, CHUNK_SIZE)

    def _cannot_write(self, name: str, relative: str, error: OSError) -> DataError:
        reason = error.strerror or type(error).__name__
        if isinstance(error, FileExistsError):
            reason = "something is already there"
        elif error.errno in (errno.ELOOP, errno.ENOTDIR):
            reason = f"{reason}: a link or file is in the way"
        return DataError(
            f"{self.archive}: cannot extract member {name!r} to {relative!r} in the destination ({reason}); "
            "extract into an empty folder"
        )


def _refused_members(archive: Path, refused: list[tuple[str, str]]) -> DataError:
    """One error naming every refused member (the first few of them if there are many)."""
    if len(refused) == 1:
        return _unsafe_member(archive, *refused[0])
    shown = "; ".join(f"{_shorten(name)} ({problem})" for name, problem in refused[:MAX_NAMED_MEMBERS])
    more = f"; and {len(refused) - MAX_NAMED_MEMBERS} more" if len(refused) > MAX_NAMED_MEMBERS else ""
    return DataError(
        f"{archive}: refusing to extract {len(refused)} members: {shown}{more}; this is not a plain dataset "
        "archive, replace it with the original one"
    )


def _shorten(name: str, limit: int = 160) -> str:
    """``repr(name)``, with the middle of a very long name replaced by ``...``."""
    if len(name) <= limit:
        return repr(name)
    return repr(name[: limit // 2]) + "..." + repr(name[-limit // 2 :])


def _unsafe_member(archive: Path, name: str, problem: str) -> DataError:
    """The error for a refused archive member."""
    return DataError(
        f"{archive}: refusing to extract member {_shorten(name)} ({problem}); "
        "this is not a plain dataset archive, replace it with the original one"
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
