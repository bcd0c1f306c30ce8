"""Dataset fetching: present folders, local archives, downloads, md5 checks, safe and atomic extraction."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mednca.data import download
from mednca.data.download import FetchResult, download_file, fetch_dataset, file_md5, safe_extract
from mednca.errors import DataError

HIPPO = "Task04_Hippocampus"
BRATS = "MICCAI_BraTS2020_TrainingData"
HIPPO_FILES = {
    f"{HIPPO}/dataset.json": b'{"name": "Hippocampus"}',
    f"{HIPPO}/imagesTr/hippocampus_001.nii.gz": b"image bytes",
    f"{HIPPO}/labelsTr/hippocampus_001.nii.gz": b"label bytes",
}
MACOS_FILES = {
    f"{HIPPO}/._dataset.json": b"resource fork",
    f"{HIPPO}/imagesTr/._hippocampus_001.nii.gz": b"resource fork",
    f"._{HIPPO}": b"resource fork",
    f"__MACOSX/{HIPPO}/._dataset.json": b"resource fork",
}
KINDS = ["tar", "tar.gz", "zip"]


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that does not log requests to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Drop request logs."""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and the server's base URL."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def closed_url() -> str:
    """A URL on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{HIPPO}.tar"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL on a local port that accepts connections but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/{HIPPO}.tar"


def md5_of(data: bytes) -> str:
    """Hex md5 of some bytes."""
    return hashlib.md5(data).hexdigest()


def parents_of(names: list[str]) -> list[str]:
    """Every parent folder of the given archive paths, shallowest first."""
    parents = {str(parent) for name in names for parent in Path(name).parents if str(parent) != "."}
    return sorted(parents, key=lambda parent: (parent.count("/"), parent))


def write_archive(path: Path, files: dict[str, bytes], kind: str = "tar") -> Path:
    """A tar, tar.gz or zip archive holding ``files`` plus entries for their folders."""
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for folder in parents_of(list(files)):
                zf.writestr(f"{folder}/", b"")
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    with tarfile.open(path, "w:gz" if kind == "tar.gz" else "w") as tar:
        for folder in parents_of(list(files)):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_tar_members(path: Path, members: list[tarfile.TarInfo]) -> Path:
    """A tar archive made of hand-built members (regular members get one byte of content)."""
    with tarfile.open(path, "w") as tar:
        for member in members:
            if member.isreg():
                member.size = 1
                tar.addfile(member, io.BytesIO(b"x"))
            else:
                tar.addfile(member)
    return path


def tar_member(name: str, type: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    """A tar member description."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type, linkname
    return info


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``root``."""
    files = (path for path in root.rglob("*") if path.is_file())
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in files}


def leftovers(data_dir: Path) -> list[str]:
    """Temporary extraction folders and partial downloads left in ``data_dir``."""
    return sorted(p.name for p in data_dir.iterdir() if ".extract-" in p.name or p.name.endswith(".part"))


def test_present_folder_is_used_without_network(
    tmp_path: Path, closed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / HIPPO).mkdir()
    (tmp_path / HIPPO / "dataset.json").write_text("{}")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was contacted")

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
    result = fetch_dataset(tmp_path, HIPPO, f"{HIPPO}.tar", url=closed_url, md5="0" * 32, progress=False)
    assert result == FetchResult(tmp_path / HIPPO, "present", None, None)


@pytest.mark.parametrize("md5_known", [True, False], ids=["md5-given", "no-md5"])
def test_local_archive_is_verified_and_extracted(tmp_path: Path, md5_known: bool) -> None:
    archive = write_archive(tmp_path / f"{HIPPO}.tar", HIPPO_FILES)
    digest = file_md5(archive)
    result = fetch_dataset(tmp_path, HIPPO, archive.name, md5=digest.upper() if md5_known else None)
    assert result == FetchResult(tmp_path / HIPPO, "extracted", archive, digest)
    assert files_under(tmp_path / HIPPO) == {k.removeprefix(f"{HIPPO}/"): v for k, v in HIPPO_FILES.items()}
    assert leftovers(tmp_path) == []


def test_empty_folder_counts_as_absent(tmp_path: Path) -> None:
    (tmp_path / HIPPO).mkdir()
    archive = write_archive(tmp_path / f"{HIPPO}.tar", HIPPO_FILES)
    assert fetch_dataset(tmp_path, HIPPO, archive.name).origin == "extracted"
    assert (tmp_path / HIPPO / "dataset.json").is_file()


def test_local_archive_with_wrong_md5_is_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / f"{HIPPO}.tar", HIPPO_FILES)
    wrong = "0" * 32
    with pytest.raises(DataError) as caught:
        fetch_dataset(tmp_path, HIPPO, archive.name, md5=wrong)
    message = str(caught.value)
    assert str(archive) in message and wrong in message and file_md5(archive) in message
    assert "incomplete" in message and "delete" in message
    assert not (tmp_path / HIPPO).exists()
    assert archive.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("archive_name", [f"{HIPPO}.tar", None], ids=["named", "name-from-url"])
def test_download_verify_and_extract(
    tmp_path: Path, served: tuple[Path, str], archive_name: str | None
) -> None:
    root, base = served
    source = write_archive(root / f"{HIPPO}.tar", HIPPO_FILES)
    data_dir = tmp_path / "data" / "raw"
    url = f"{base}/{HIPPO}.tar"
    result = fetch_dataset(data_dir, HIPPO, archive_name, url=url, md5=file_md5(source), progress=False)
    assert result == FetchResult(data_dir / HIPPO, "downloaded", data_dir / f"{HIPPO}.tar", file_md5(source))
    assert (data_dir / f"{HIPPO}.tar").read_bytes() == source.read_bytes()
    assert (data_dir / HIPPO / "imagesTr" / "hippocampus_001.nii.gz").read_bytes() == b"image bytes"
    assert leftovers(data_dir) == []


def test_download_with_wrong_md5_leaves_nothing(tmp_path: Path, served: tuple[Path, str]) -> None:
    root, base = served
    source = write_archive(root / f"{HIPPO}.tar", HIPPO_FILES)
    url = f"{base}/{HIPPO}.tar"
    with pytest.raises(DataError) as caught:
        fetch_dataset(tmp_path / "data", HIPPO, url=url, md5="f" * 32, progress=False)
    message = str(caught.value)
    assert url in message and "f" * 32 in message and file_md5(source) in message
    assert sorted(os.listdir(tmp_path / "data")) == []


def test_unreachable_url_names_url_and_destination(tmp_path: Path, closed_url: str) -> None:
    with pytest.raises(DataError) as caught:
        fetch_dataset(tmp_path, HIPPO, url=closed_url, progress=False)
    message = str(caught.value)
    assert closed_url in message and str(tmp_path / f"{HIPPO}.tar") in message
    assert "another machine" in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("server", "reason"),
    [("closed", "refused"), ("missing-file", "404"), ("silent", "timed out")],
)
def test_download_failures_name_url_destination_and_reason(
    tmp_path: Path, request: pytest.FixtureRequest, server: str, reason: str
) -> None:
    if server == "missing-file":
        url = f"{request.getfixturevalue('served')[1]}/nothing.tar"
    else:
        url = request.getfixturevalue(f"{server}_url")
    dest = tmp_path / "downloads" / "archive.tar"
    with pytest.raises(DataError) as caught:
        download_file(url, dest, progress=False, timeout=0.3)
    message = str(caught.value)
    assert url in message and str(dest) in message and reason in message.lower()
    assert os.listdir(dest.parent) == []


@pytest.mark.parametrize(("md5_ok", "expected"), [(True, b"new"), (False, b"old")])
def test_download_file_replaces_dest_only_when_verified(
    tmp_path: Path, served: tuple[Path, str], md5_ok: bool, expected: bytes
) -> None:
    root, base = served
    (root / "file.bin").write_bytes(b"new")
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    md5 = md5_of(b"new") if md5_ok else md5_of(b"other")
    if md5_ok:
        assert download_file(f"{base}/file.bin", dest, md5=md5, progress=True) == dest
    else:
        with pytest.raises(DataError):
            download_file(f"{base}/file.bin", dest, md5=md5, progress=True)
    assert dest.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "served"]


@pytest.mark.parametrize("archive_name", ["MICCAI_BraTS2020_TrainingData.zip", None])
def test_nothing_present_and_no_url_says_where_to_put_it(tmp_path: Path, archive_name: str | None) -> None:
    with pytest.raises(DataError) as caught:
        fetch_dataset(tmp_path, BRATS, archive_name)
    message = str(caught.value)
    assert str(tmp_path / BRATS) in message and "cannot be downloaded automatically" in message
    if archive_name is not None:
        assert str(tmp_path / archive_name) in message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("folder", "files", "expected"),
    [
        pytest.param(HIPPO, HIPPO_FILES, {k.split("/", 1)[1] for k in HIPPO_FILES}, id="top-is-folder"),
        pytest.param(
            "brats_raw",
            {f"{BRATS}/BraTS20_Training_001/t1.nii.gz": b"t1", f"{BRATS}/survival.csv": b""},
            {f"{BRATS}/BraTS20_Training_001/t1.nii.gz", f"{BRATS}/survival.csv"},
            id="other-top-folder",
        ),
        pytest.param("flat", {"a.txt": b"a", "sub/b.txt": b"b"}, {"a.txt", "sub/b.txt"}, id="flat"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_layout_and_formats(
    tmp_path: Path, kind: str, folder: str, files: dict[str, bytes], expected: set[str]
) -> None:
    archive = write_archive(tmp_path / f"dataset.{kind}", {**files, **MACOS_FILES}, kind)
    result = fetch_dataset(tmp_path, folder, archive.name)
    assert result.folder == tmp_path / folder and result.origin == "extracted"
    assert set(files_under(tmp_path / folder)) == expected
    assert sorted(os.listdir(tmp_path)) == sorted([archive.name, folder])
    assert (tmp_path / folder).stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("kind", KINDS)
def test_safe_extract_skips_macos_metadata(tmp_path: Path, kind: str) -> None:
    archive = write_archive(tmp_path / f"a.{kind}", {**HIPPO_FILES, **MACOS_FILES}, kind)
    safe_extract(archive, tmp_path / "out")
    assert set(files_under(tmp_path / "out")) == set(HIPPO_FILES)
    assert not any(p.name.startswith("._") or p.name == "__MACOSX" for p in (tmp_path / "out").rglob("*"))


UNSAFE_TAR_MEMBERS = [
    pytest.param([tar_member("../evil")], "../evil", id="dotdot"),
    pytest.param([tar_member("a/../../evil")], "a/../../evil", id="inner-dotdot"),
    pytest.param([tar_member("{outside}/evil")], "{outside}/evil", id="absolute"),
    pytest.param([tar_member("passwd", tarfile.SYMTYPE, "/etc/passwd")], "passwd", id="symlink-absolute"),
    pytest.param([tar_member("a/up", tarfile.SYMTYPE, "../../outside")], "a/up", id="symlink-relative"),
    pytest.param([tar_member("hard", tarfile.LNKTYPE, "../outside/evil")], "hard", id="hardlink"),
    pytest.param([tar_member("null", tarfile.CHRTYPE)], "null", id="char-device"),
    pytest.param([tar_member("fifo", tarfile.FIFOTYPE)], "fifo", id="fifo"),
    pytest.param(
        [tar_member("here", tarfile.SYMTYPE, "."), tar_member("here/up", tarfile.SYMTYPE, "..")],
        "here/up",
        id="symlink-chain",
    ),
]


@pytest.mark.parametrize(("members", "bad_name"), UNSAFE_TAR_MEMBERS)
def test_unsafe_tar_members_are_refused(
    tmp_path: Path, members: list[tarfile.TarInfo], bad_name: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for member in members:
        member.name = member.name.format(outside=outside)
    archive = write_tar_members(tmp_path / "evil.tar", [tar_member("good.txt"), *members])
    dest = tmp_path / "box" / "dest"
    with pytest.raises(DataError) as caught:
        safe_extract(archive, dest)
    message = str(caught.value)
    assert str(archive) in message and bad_name.format(outside=outside) in message
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path)) == ["box", "evil.tar", "outside"]
    assert os.listdir(tmp_path / "box") == ["dest"]


@pytest.mark.parametrize("bad_name", ["../evil", "a/../../evil", "{outside}/evil", "..\\evil"])
def test_unsafe_zip_members_are_refused(tmp_path: Path, bad_name: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bad_name = bad_name.format(outside=outside)
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.txt", b"x")
        zf.writestr(bad_name, b"x")
    with pytest.raises(DataError) as caught:
        safe_extract(archive, tmp_path / "box" / "dest")
    assert str(archive) in str(caught.value) and repr(bad_name) in str(caught.value)
    assert os.listdir(outside) == []
    assert os.listdir(tmp_path / "box" / "dest") == []


@pytest.mark.parametrize("content", [b"", b"this is not an archive\n" * 100], ids=["empty", "text"])
def test_unknown_archive_type_is_refused(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / f"{HIPPO}.tar"
    archive.write_bytes(content)
    with pytest.raises(DataError, match="unknown archive type") as caught:
        fetch_dataset(tmp_path, HIPPO, archive.name)
    assert str(archive) in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == [archive.name]


def test_archive_with_only_macos_metadata_is_refused(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "junk.zip", MACOS_FILES, "zip")
    with pytest.raises(DataError, match="contains no files"):
        fetch_dataset(tmp_path, HIPPO, archive.name)
    assert sorted(os.listdir(tmp_path)) == [archive.name]


def write_truncated_tar(path: Path) -> Path:
    """A tar whose last member is cut off halfway through its data."""
    write_archive(path, {**HIPPO_FILES, f"{HIPPO}/big.bin": os.urandom(200_000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def fail_halfway(archive: Path, dest_dir: Path) -> None:
    """A stand-in for ``safe_extract`` that writes part of the dataset, then fails."""
    (dest_dir / HIPPO).mkdir()
    (dest_dir / HIPPO / "dataset.json").write_text("{}")
    raise OSError("No space left on device")


def fail_rename(src: object, dst: object) -> None:
    """A stand-in for ``os.rename`` that always fails."""
    raise OSError("rename failed")


@pytest.mark.parametrize("failure", ["truncated-archive", "extraction", "rename"])
def test_failed_extraction_leaves_no_folder_and_no_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    archive = tmp_path / f"{HIPPO}.tar"
    if failure == "truncated-archive":
        write_truncated_tar(archive)
    else:
        write_archive(archive, HIPPO_FILES)
    if failure == "extraction":
        monkeypatch.setattr(download, "safe_extract", fail_halfway)
    if failure == "rename":
        monkeypatch.setattr(download.os, "rename", fail_rename)
    with pytest.raises(DataError) as caught:
        fetch_dataset(tmp_path, HIPPO, archive.name)
    assert str(archive) in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == [archive.name]


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20])
def test_file_md5_matches_hashlib(tmp_path: Path, chunk_size: int) -> None:
    data = bytes(range(256)) * 40
    (tmp_path / "f").write_bytes(data)
    assert file_md5(tmp_path / "f", chunk_size=chunk_size) == md5_of(data)


def cve_2025_4517_members() -> list[tarfile.TarInfo]:
    """The member pattern of CVE-2025-4517: a chain of symlinks through long folder names whose expanded
    path exceeds PATH_MAX (so ``os.path.realpath`` stops resolving), then a link and a file through it."""
    component = "d" * 247
    steps = "abcdefghijklmnop"
    members, path = [], ""
    for step in steps:
        members.append(tar_member(posixpath_join(path, component), tarfile.DIRTYPE))
        members.append(tar_member(posixpath_join(path, step), tarfile.SYMTYPE, component))
        path = posixpath_join(path, component)
    link_path = "/".join(steps) + "/" + "l" * 254
    members.append(tar_member(link_path, tarfile.SYMTYPE, "../" * len(steps)))
    members.append(tar_member("escape", tarfile.SYMTYPE, link_path + "/../" * 8 + "outside"))
    members.append(tar_member("escape/evil"))
    return members


def posixpath_join(*parts: str) -> str:
    """Join archive path parts, ignoring empty ones."""
    return "/".join(part for part in parts if part)


def test_cve_2025_4517_symlink_chain_is_refused_before_writing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = write_tar_members(tmp_path / "evil.tar", [tar_member("good.txt"), *cve_2025_4517_members()])
    dest = tmp_path / "box" / "dest"
    with pytest.raises(DataError) as caught:
        safe_extract(archive, dest)
    message = str(caught.value)
    assert str(archive) in message and "'a' (symbolic link to " in message and "and 13 more" in message
    assert "\n" not in message and len(message) < 2000
    assert os.listdir(outside) == [] and os.listdir(dest) == []
    assert sorted(os.listdir(tmp_path)) == ["box", "evil.tar", "outside"]


IN_TREE_LINKS = [
    pytest.param(
        [tar_member("data"), tar_member("data/link.nii.gz", tarfile.SYMTYPE, "../data")],
        "data/link.nii.gz",
        "symbolic link",
        id="symlink-inside-tree",
    ),
    pytest.param(
        [tar_member("data/a.nii.gz"), tar_member("data/b.nii.gz", tarfile.LNKTYPE, "data/a.nii.gz")],
        "data/b.nii.gz",
        "hard link",
        id="hardlink-inside-tree",
    ),
    pytest.param([tar_member("pipe", tarfile.FIFOTYPE)], "pipe", "FIFO", id="fifo"),
    pytest.param([tar_member("tty", tarfile.CHRTYPE)], "tty", "character device", id="char-device"),
    pytest.param([tar_member("sda", tarfile.BLKTYPE)], "sda", "block device", id="block-device"),
    pytest.param([tar_member("odd", b"Z")], "odd", "tar type", id="unknown-type"),
]


@pytest.mark.parametrize(("members", "bad_name", "kind"), IN_TREE_LINKS)
def test_every_link_or_special_member_is_refused(
    tmp_path: Path, members: list[tarfile.TarInfo], bad_name: str, kind: str
) -> None:
    archive = write_tar_members(tmp_path / "evil.tar", [tar_member("good.txt"), *members])
    with pytest.raises(DataError) as caught:
        safe_extract(archive, tmp_path / "dest")
    message = str(caught.value)
    assert repr(bad_name) in message and kind in message and str(archive) in message
    assert os.listdir(tmp_path / "dest") == []


def test_several_refused_members_are_named_in_one_line(tmp_path: Path) -> None:
    members = [tar_member(f"link{i}", tarfile.SYMTYPE, "x") for i in range(7)]
    archive = write_tar_members(tmp_path / "evil.tar", members)
    with pytest.raises(DataError, match=r"refusing to extract 7 members: 'link0' .*and 2 more") as caught:
        safe_extract(archive, tmp_path / "dest")
    assert "\n" not in str(caught.value)


def zip_with_mode(path: Path, name: str, mode: int, data: bytes = b"target") -> Path:
    """A zip archive with a good file and one member whose unix mode bits are ``mode``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good.txt", b"x")
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("mode", "kind"),
    [(0o120777, "symbolic link"), (0o010644, "FIFO"), (0o020644, "character device")],
    ids=["symlink", "fifo", "char-device"],
)
def test_zip_links_and_special_members_are_refused(tmp_path: Path, mode: int, kind: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = zip_with_mode(tmp_path / "evil.zip", "data/link", mode, str(outside).encode())
    with pytest.raises(DataError) as caught:
        safe_extract(archive, tmp_path / "dest")
    assert "'data/link'" in str(caught.value) and kind in str(caught.value)
    assert os.listdir(tmp_path / "dest") == [] and os.listdir(outside) == []


def test_pre_existing_symlink_in_destination_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "data").symlink_to(outside)
    (dest / "file.txt").symlink_to(outside / "file.txt")
    for kind in KINDS:
        archive = write_archive(tmp_path / f"a.{kind}", {"data/evil.txt": b"evil"}, kind)
        with pytest.raises(DataError, match="'data"):
            safe_extract(archive, dest)
    archive = write_archive(tmp_path / "b.zip", {"file.txt": b"evil"}, "zip")
    with pytest.raises(DataError, match="'file.txt'"):
        safe_extract(archive, dest)
    assert os.listdir(outside) == []


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_members_are_refused(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"dup.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning):
            zf.writestr("a.txt", b"1")
            zf.writestr("a.txt", b"2")
    else:
        write_tar_members(archive, [tar_member("a.txt"), tar_member("./a.txt")])
        if kind == "tar.gz":
            archive.rename(tmp_path / "dup.tar")
            archive = write_archive(tmp_path / "dup.tar.gz", {"a.txt": b"1", "b/../a.txt": b"2"}, "tar.gz")
    with pytest.raises(DataError, match="more than once"):
        safe_extract(archive, tmp_path / "dest")
    assert os.listdir(tmp_path / "dest") == []


def test_zip_with_backslash_separators_extracts_into_folders(tmp_path: Path) -> None:
    archive = tmp_path / "windows.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Task\\imagesTr\\a.nii.gz", b"a")
    safe_extract(archive, tmp_path / "dest")
    assert files_under(tmp_path / "dest") == {"Task/imagesTr/a.nii.gz": b"a"}


def test_extracted_files_are_regular_files_with_plain_modes(tmp_path: Path) -> None:
    info = tar_member("run.sh")
    info.mode = 0o6777
    archive = write_tar_members(tmp_path / "modes.tar", [info])
    safe_extract(archive, tmp_path / "dest")
    path = tmp_path / "dest" / "run.sh"
    assert path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o7777 == 0o644
