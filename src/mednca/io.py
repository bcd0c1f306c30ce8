"""Writing files so that a crash never leaves a half-written result behind, nor destroys anything else.

Every result goes through ``atomic_path``: it is written to a temporary file beside its destination and
renamed over it only once complete. Before anything is written the destination is checked: it must not be
a folder, a device, a FIFO or a socket (a rename would replace the special file itself), its parent must be
a folder, and it must not be one of the command's own inputs (``check_output``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import resource
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mednca.errors import DataError

#: Errors of the file system itself (full disk, quota, read-only, permissions), reported in one line.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_destination(path: Path) -> None:
    """Refuse a destination that is a folder or a special file, or whose parent is not a folder."""
    path = Path(path)
    if str(path) in ("", "."):
        raise DataError("the output path is empty; give a file name")
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as error:
        raise DataError(f"{path}: cannot use it as an output ({error.strerror})") from error
    if mode is not None and stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a folder; give a file name as output")
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise DataError(
            f"{path}: exists and is not a regular file (a device, FIFO or socket); refusing to replace it"
        )
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"{path}: cannot be written, {parent} is not a folder")
            break


def same_file(first: Path, second: Path) -> bool:
    """True if two paths name the same file: equal once resolved, or the same inode (hard links)."""
    if Path(first).resolve() == Path(second).resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def check_output(output: Path, inputs: Iterable[Path], what: str = "output") -> None:
    """Refuse an ``output`` that cannot be written safely or that is one of ``inputs``, naming both."""
    check_writable_destination(output)
    for source in inputs:
        if same_file(output, source):
            raise DataError(
                f"{what} {output} is the input {source}; refusing to overwrite it, choose another {what}"
            )


def _temporary_prefix(path: Path, pid: int | None = None) -> str:
    """The name start of ``path``'s temporary files written by process ``pid`` (default: this one) of
    this machine: ``.{name}.{host}-{pid}.``."""
    return f".{path.name}.{socket.gethostname()}-{os.getpid() if pid is None else pid}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by processes of this machine that no longer run (a
    SIGKILL or a power cut gives no chance to clean up); those of running processes and of other machines
    sharing the folder are left alone. Returns the removed files."""
    pattern = re.compile(re.escape(f".{path.name}.{socket.gethostname()}-") + r"(\d+)\.[^.]+\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = pattern.match(entry.name)
            if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    A full disk or a read-only folder becomes a DataError naming ``path``; the previous file is unchanged
    and no temporary file is left behind, also when the block is ended by an exception or a terminating
    signal (``mednca.logs.signals_as_exceptions``). Temporary files of ``path`` that killed processes left
    behind are removed first.
    """
    path = Path(path)
    check_writable_destination(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
        os.close(handle)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared
        yield Path(temporary)
        check_writable_destination(path)  # nothing special may have appeared there while writing
        os.replace(temporary, path)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise DataError(
            f"{path}: cannot be written ({os.strerror(error.errno)}); any previous file there is unchanged"
        ) from error
    except RuntimeError as error:  # torch.save reports a failed write as its own RuntimeError
        reason = write_limit(path.parent, None if temporary is None else Path(temporary))
        if reason is None:
            raise
        raise DataError(
            f"{path}: cannot be written ({reason}); any previous file there is unchanged"
        ) from error
    finally:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


FULL_BELOW_BYTES = 1 << 20
"""A file system with less free space than this (1 MiB) counts as full."""


def free_bytes(folder: Path) -> int | None:
    """Free space of the file system of ``folder`` (or of its nearest existing parent), None if unknown."""
    for candidate in (Path(folder), *Path(folder).absolute().parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def write_limit(folder: Path, written: Path | None) -> str | None:
    """Why a write into ``folder`` failed when a library does not say (a full disk, or the file size limit of
    ``ulimit -f`` reached by ``written``), or None if neither holds."""
    free = free_bytes(folder)
    if free is not None and free < FULL_BELOW_BYTES:
        return f"{os.strerror(errno.ENOSPC)}: {free:,} bytes free"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    limited = written is not None and limit != resource.RLIM_INFINITY and written.exists()
    if limited and written.stat().st_size >= limit:
        return f"{os.strerror(errno.EFBIG)}: the size limit is {limit:,} bytes"
    return None


def check_free_space(folder: Path, what: str) -> None:
    """Refuse to go on when ``folder``'s file system is full (less than 1 MiB free), naming it and ``what``
    would have been written."""
    free = free_bytes(folder)
    if free is not None and free < FULL_BELOW_BYTES:
        raise DataError(
            f"{folder}: the disk is full ({free:,} bytes free), {what} cannot be written; free space and "
            "re-run: what is finished is kept"
        )


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file the pipeline wrote, naming the file and what it is if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the {what} ({error})") from error


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write a table as CSV without the index, atomically."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)
