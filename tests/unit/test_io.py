"""Atomic result files: a failed write leaves the old file, a finished one is readable like any other file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mednca.io import atomic_path, write_json


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json(path, {"dice": 0.8})
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash")
    assert path.read_text() == '{\n  "dice": 0.8\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_written_file_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
