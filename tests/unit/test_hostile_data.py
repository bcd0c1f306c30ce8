"""Hostile and clumsy input files end in one clear DataError naming the file, never a traceback."""

from __future__ import annotations

import gzip
import json
import shutil
import tracemalloc
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import AFFINE, write_brats_dataset, write_msd_dataset, write_nifti

from mednca import cli
from mednca.data import volumes
from mednca.data.layout import Case, Channel, detect_layout, discover_brats, discover_msd
from mednca.data.validate import validate_dataset
from mednca.data.volumes import load_case, read_nifti, read_voxels, require_finite
from mednca.errors import ConfigError, DataError

MIB = 1 << 20


def nifti_bytes(path: Path) -> bytes:
    """The (decompressed) bytes of a NIfTI file."""
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def write_bytes_like(path: Path, data: bytes) -> Path:
    """Write NIfTI bytes, gzip-compressed when the name ends in .gz (any case)."""
    path.write_bytes(gzip.compress(data) if path.name.lower().endswith(".gz") else data)
    return path


def patch_header(path: Path, **fields: object) -> Path:
    """Overwrite NIfTI-1 header fields of a file in place, keeping its voxel bytes."""
    raw = nifti_bytes(path)
    header = nib.Nifti1Header(raw[:348], check=False)
    for key, value in fields.items():
        header[key] = value
    return write_bytes_like(path, header.binaryblock + raw[348:])


def header_only(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Path:
    """A NIfTI file that is a header (and 4 extension bytes, 1 data byte) claiming ``shape`` of ``dtype``."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    header.set_sform(np.eye(4), code=1)
    return write_bytes_like(path, header.binaryblock + b"\0" * 5)


def gzip_stream(path: Path, header: bytes, n_zero_bytes: int) -> Path:
    """A .nii.gz of ``header`` followed by ``n_zero_bytes`` zeros, compressed without holding them all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * MIB
    with path.open("wb") as out:
        out.write(compressor.compress(header))
        for start in range(0, n_zero_bytes, MIB):
            out.write(compressor.compress(chunk[: min(MIB, n_zero_bytes - start)]))
        out.write(compressor.flush())
    return path


def read(path: Path) -> np.ndarray:
    return read_voxels(read_nifti(path), path)


# --- reading gives exactly nibabel's arrays ------------------------------------------------------------

RNG = np.random.default_rng(0)
VOLUMES = {
    "float32": (RNG.random((6, 5, 4)).astype(np.float32), None),
    "uint8": (RNG.integers(0, 255, (6, 5, 4)).astype(np.uint8), None),
    "int16-scaled": (RNG.integers(-500, 500, (6, 5, 4)).astype(np.int16), (0.25, 10.0)),
    "float32-4d": (RNG.random((6, 5, 4, 3)).astype(np.float32), None),
    "uint8-4d-scaled": (RNG.integers(0, 255, (6, 5, 4, 2)).astype(np.uint8), (2.0, -1.0)),
    "float64-big-endian": (RNG.random((6, 5, 4)).astype(">f8"), None),
}


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("name", sorted(VOLUMES))
def test_voxels_are_exactly_nibabels(tmp_path: Path, name: str, suffix: str) -> None:
    data, scaling = VOLUMES[name]
    image = nib.Nifti1Image(data, AFFINE)
    if scaling is not None:
        image.header.set_slope_inter(*scaling)
    path = tmp_path / f"x{suffix}"
    nib.save(image, path)
    expected = np.asanyarray(nib.load(path).dataobj)
    ours = read(path)
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)
    if scaling is not None:
        assert ours.dtype.kind == "f"


@pytest.mark.parametrize("suffix", [".Nii", ".Nii.Gz", ".NII.GZ", ".nii.GZ", ".NII"])
def test_any_letter_case_of_the_suffix_is_read(tmp_path: Path, suffix: str) -> None:
    data = VOLUMES["int16-scaled"][0]
    reference = write_nifti(tmp_path / ("ref.nii.gz" if suffix.lower().endswith("gz") else "ref.nii"), data)
    path = tmp_path / f"x{suffix}"
    shutil.copy(reference, path)
    np.testing.assert_array_equal(read(path), np.asanyarray(nib.load(reference).dataobj))


# --- resource bombs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bomb.nii", "bomb.nii.gz"])
def test_header_claiming_gigabytes_is_refused_without_allocating(tmp_path: Path, name: str) -> None:
    path = header_only(tmp_path / name, (1024, 1024, 525))
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}: header claims 2202009600 bytes") and "512 MiB" in message
    assert "MEDNCA_MAX_IMAGE_MB" in message and "\n" not in message
    assert peak < 16 * MIB


def test_limit_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", np.ones((64, 64, 64), np.float32))  # 1 MiB of voxels
    monkeypatch.setenv("MEDNCA_MAX_IMAGE_MB", "0.5")
    with pytest.raises(DataError, match=r"more than the 0\.5 MiB limit"):
        read(path)
    monkeypatch.setenv("MEDNCA_MAX_IMAGE_MB", "1.5")
    assert read(path).shape == (64, 64, 64)


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan", "inf", "1e999"])
def test_bad_limit_value_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, msd_dataset: Path, value: str
) -> None:
    monkeypatch.setenv("MEDNCA_MAX_IMAGE_MB", value)
    path = write_nifti(tmp_path / "x.nii", np.ones((4, 4, 4), np.float32))
    with pytest.raises(DataError, match=f"MEDNCA_MAX_IMAGE_MB='{value}' is not a positive number") as caught:
        read(path)
    assert isinstance(caught.value, ConfigError) and "\n" not in str(caught.value)
    with pytest.raises(DataError, match="MEDNCA_MAX_IMAGE_MB"):
        validate_dataset(discover_msd(msd_dataset))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_voxel_data_is_refused_with_the_numbers(tmp_path: Path, suffix: str) -> None:
    path = write_nifti(tmp_path / f"x{suffix}", np.ones((20, 20, 20), np.float32))
    raw = nifti_bytes(path)
    write_bytes_like(path, raw[: len(raw) - 1000])
    with pytest.raises(DataError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "32000" in message and "truncated" in message
    if suffix == ".nii":
        assert f"file is {len(raw) - 1000} bytes but its header needs {len(raw)}" in message
    else:
        assert f"ends after {32000 - 1000} of the 32000 bytes" in message


def test_cut_off_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", RNG.random((30, 30, 30)).astype(np.float32))
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(DataError, match=f"^{path}: .*(ended|ends after)"):
        read(path)


def test_gzip_stream_is_read_only_up_to_the_claimed_size(tmp_path: Path) -> None:
    claimed = (64, 64, 64)  # 1 MiB of float32
    header = nib.Nifti1Header()
    header.set_data_shape(claimed)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    header.set_sform(np.eye(4), code=1)
    path = gzip_stream(tmp_path / "long.nii.gz", header.binaryblock + b"\0" * 4, 64 * MIB)
    tracemalloc.start()
    try:
        voxels = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert voxels.shape == claimed and not voxels.any()
    assert peak < 6 * MIB


def test_memory_error_names_the_file_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", np.ones((8, 8, 8), np.float32))

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(volumes.np, "empty", no_memory)
    with pytest.raises(DataError, match=f"^{path}: not enough memory to read 2048 bytes"):
        read(path)


# --- broken headers and affines ------------------------------------------------------------------------

BROKEN_HEADERS = {
    "negative dim": ({"dim": [3, -4, 4, 4, 1, 1, 1, 1]}, "every dimension must be at least 1"),
    "zero dim": ({"dim": [3, 0, 4, 4, 1, 1, 1, 1]}, "every dimension must be at least 1"),
    "dim[0] out of range": ({"dim": [9, 4, 4, 4, 1, 1, 1, 1]}, "cannot read NIfTI file (data code"),
    "unknown datatype": ({"datatype": 999}, "cannot read NIfTI file (data code 999"),
    "rgb voxels": ({"datatype": 128, "bitpix": 24}, "voxel type"),
    "complex voxels": ({"datatype": 32, "bitpix": 64}, "voxel type complex64 is not supported"),
    "nan in sform": ({"srow_x": [np.nan, 0, 0, 0]}, "affine (voxel-to-world transform) has NaN/Inf"),
    "inf in sform": ({"srow_z": [0, 0, np.inf, 0]}, "affine (voxel-to-world transform) has NaN/Inf"),
    "singular sform": ({"srow_y": [0, 0, 0, 0]}, "3x3 part is singular"),
    "collinear sform": ({"srow_y": [1, 0, 0, 0]}, "3x3 part is singular"),
    "nan in qform": ({"sform_code": 0, "qform_code": 1, "quatern_b": np.nan}, "NaN/Inf"),
    "huge offset": ({"vox_offset": 4e9}, "voxel data offset"),
}


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("name", sorted(BROKEN_HEADERS))
def test_broken_header_is_one_data_error_naming_the_file(tmp_path: Path, name: str, suffix: str) -> None:
    fields, expected = BROKEN_HEADERS[name]
    path = patch_header(write_nifti(tmp_path / f"x{suffix}", np.ones((4, 4, 4), np.float32)), **fields)
    with pytest.raises(DataError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


@pytest.mark.parametrize(
    "content",
    [b"", b"not a nifti", b"\x1f\x8b\x08garbage", b"\0" * 400],
    ids=["empty", "text", "gz", "zeros"],
)
def test_garbage_file_reason_is_never_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.nii.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{path}: cannot read NIfTI file \(.+\)$"):
        read_nifti(path)


def test_exception_without_message_gives_its_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise ValueError

    monkeypatch.setattr(volumes.nib, "load", fail)
    with pytest.raises(DataError, match=r"cannot read NIfTI file \(ValueError\)"):
        read_nifti(tmp_path / "x.nii.gz")


def test_check_affine_is_public(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", np.ones((4, 4, 4), np.float32))
    image = nib.load(path)
    volumes.check_affine(image, path)
    image = nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4))
    image._affine = np.diag([1.0, 1.0, 0.0, 1.0])
    with pytest.raises(DataError, match=f"^{path}: the affine's 3x3 part is singular"):
        volumes.check_affine(image, path)


# --- NaN/Inf voxels --------------------------------------------------------------------------------------


def test_require_finite_counts_bad_voxels(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    voxels = np.ones((3, 3, 3), np.float32)
    require_finite(voxels, path)
    require_finite(np.ones((2, 2), np.int16), path, "label")
    voxels[0, 0, :2] = np.nan
    voxels[1, 1, 1] = -np.inf
    with pytest.raises(DataError, match=f"^{path}: image has 3 NaN/Inf voxel\\(s\\); "):
        require_finite(voxels, path)
    with pytest.raises(DataError, match="label has 3 NaN/Inf"):
        require_finite(voxels, path, what="label")


def test_load_case_refuses_non_finite_channels(tmp_path: Path) -> None:
    root = write_msd_dataset(tmp_path / "ds", n_cases=1, channels=2)
    image_path = root / "imagesTr" / "case_000.nii.gz"
    data = np.asanyarray(nib.load(image_path).dataobj).copy()
    data[1, 2, 3, 1] = np.inf
    write_nifti(image_path, data)
    case = Case(
        "case_000", (Channel(image_path, 0), Channel(image_path, 1)), root / "labelsTr" / "case_000.nii.gz"
    )
    load_case(Case(case.case_id, case.channels[:1], case.label))
    with pytest.raises(DataError, match=f"^{image_path}: image has 1 NaN/Inf voxel"):
        load_case(case)


# --- case discovery --------------------------------------------------------------------------------------


def rename(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


def test_upper_and_mixed_case_suffixes_are_cases(msd_dataset: Path) -> None:
    images, labels = msd_dataset / "imagesTr", msd_dataset / "labelsTr"
    rename(images / "case_000.nii.gz", "case_000.NII.GZ")
    rename(labels / "case_001.nii.gz", "case_001.Nii.Gz")
    for folder in (images, labels):
        plain = nib.load(folder / "case_002.nii.gz")
        nib.save(plain, folder / "case_002.nii")
        (folder / "case_002.nii").rename(folder / "case_002.Nii")
        (folder / "case_002.nii.gz").unlink()
    report = validate_dataset(discover_msd(msd_dataset))
    assert report.problems == []
    assert len(report.records) == 4


def test_nii_beside_nii_gz_is_a_problem_naming_both(msd_dataset: Path) -> None:
    image = msd_dataset / "imagesTr" / "case_001.nii.gz"
    nib.save(nib.load(image), msd_dataset / "imagesTr" / "case_001.nii")
    discovery = discover_msd(msd_dataset)
    assert [c.case_id for c in discovery.cases] == ["case_000", "case_002", "case_003"]
    (problem,) = discovery.problems
    assert problem.case_id == "case_001"
    assert "case_001.nii and case_001.nii.gz" in str(problem) and "imagesTr" in str(problem)


def test_stray_files_are_problems_but_hidden_ones_are_ignored(msd_dataset: Path) -> None:
    images, labels = msd_dataset / "imagesTr", msd_dataset / "labelsTr"
    shutil.copy(images / "case_000.nii.gz", images / "case_000.nii.bak")
    (labels / "case_000.mha").write_bytes(b"x")
    (images / "sub").mkdir()
    (images / "._case_000.nii.gz").write_bytes(b"\0\5\26\7")
    (labels / ".DS_Store").write_bytes(b"x")
    report = validate_dataset(discover_msd(msd_dataset))
    problems = sorted(str(p) for p in report.problems)
    assert len(problems) == 3, problems
    assert all("not a NIfTI file" in p for p in problems)
    assert any("case_000.nii.bak" in p for p in problems) and any("case_000.mha" in p for p in problems)
    assert len(report.records) == 4


def test_listed_and_found_counts(msd_dataset: Path) -> None:
    (msd_dataset / "imagesTr" / "case_003.nii.gz").unlink()
    (msd_dataset / "labelsTr" / "case_003.nii.gz").unlink()
    discovery = discover_msd(msd_dataset)
    assert (discovery.listed_cases, discovery.found_cases) == (4, 3)
    assert [str(p).split(" (")[0] for p in discovery.problems] == [
        "case_003: image file is missing",
        "case_003: label file is missing",
    ]


def write_description(root: Path, change) -> Path:
    path = root / "dataset.json"
    description = json.loads(path.read_text())
    path.write_text(change(description))
    return path


BAD_DESCRIPTIONS = {
    "not json": (lambda d: json.dumps(d)[:-3], "not a readable JSON file"),
    "not an object": (lambda d: json.dumps([d]), "must hold a JSON object"),
    "labels a list": (lambda d: json.dumps({**d, "labels": ["0", "1"]}), "'labels' must map integer"),
    "labels names as keys": (
        lambda d: json.dumps({**d, "labels": {"background": 0, "a": 1}}),
        "key 'background' is not an integer",
    ),
    "labels empty": (lambda d: json.dumps({**d, "labels": {}}), "(it is empty)"),
    "labels missing": (
        lambda d: json.dumps({k: v for k, v in d.items() if k != "labels"}),
        "(it is missing)",
    ),
    "training an object": (lambda d: json.dumps({**d, "training": {"a": 1}}), "'training' must be a list"),
    "training of strings": (
        lambda d: json.dumps({**d, "training": ["imagesTr/case_000.nii.gz"]}),
        "'training' entry 1 must be an object",
    ),
    "training image not a string": (
        lambda d: json.dumps({**d, "training": [{"image": 3, "label": 4}]}),
        "'training' entry 1 must be an object with an 'image' file name",
    ),
    "not utf-8": (None, "not a readable JSON file"),
}


@pytest.mark.parametrize("name", sorted(BAD_DESCRIPTIONS))
def test_bad_dataset_json_is_one_line_naming_it(msd_dataset: Path, name: str) -> None:
    change, expected = BAD_DESCRIPTIONS[name]
    if name == "not utf-8":
        (msd_dataset / "dataset.json").write_bytes(b'{"labels": {"0": "b\xff"}}')
        path = msd_dataset / "dataset.json"
    else:
        path = write_description(msd_dataset, change)
    with pytest.raises(DataError) as caught:
        discover_msd(msd_dataset)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_training_entry_that_is_not_nifti_is_a_problem(msd_dataset: Path) -> None:
    write_description(
        msd_dataset,
        lambda d: json.dumps(
            {**d, "training": [*d["training"], {"image": "./imagesTr/x.mha", "label": "y"}]}
        ),
    )
    problems = [str(p) for p in discover_msd(msd_dataset).problems]
    assert len(problems) == 1 and "'./imagesTr/x.mha', not a NIfTI file" in problems[0]


def test_brats_suffix_rules(tmp_path: Path) -> None:
    root = write_brats_dataset(tmp_path / "BraTS2020", case_ids=(1, 2, 3))
    cases = root / "MICCAI_BraTS2020_TrainingData"
    one = cases / "BraTS20_Training_001"
    rename(one / "BraTS20_Training_001_t1.nii.gz", "BraTS20_Training_001_t1.NII.GZ")
    rename(one / "BraTS20_Training_001_seg.nii.gz", "BraTS20_Training_001_seg.Nii.gz")
    two = cases / "BraTS20_Training_002"
    nib.save(nib.load(two / "BraTS20_Training_002_t2.nii.gz"), two / "BraTS20_Training_002_t2.nii")
    three = cases / "BraTS20_Training_003"
    (three / "BraTS20_Training_003_t1.nii.bak").write_bytes(b"x")
    rename(three / "BraTS20_Training_003_seg.nii.gz", "W39_1998.09.19_Segm.nii.gz")
    discovery = discover_brats(root, ("t1", "t2", "flair"))
    assert [c.case_id for c in discovery.cases] == ["BraTS20_Training_001"]
    problems = [str(p) for p in discovery.problems]
    assert len(problems) == 4, problems
    assert any("BraTS20_Training_002_t2.nii and BraTS20_Training_002_t2.nii.gz" in p for p in problems)
    assert any("BraTS20_Training_003_t1.nii.bak" in p and "not a NIfTI file" in p for p in problems)
    assert any("W39_1998.09.19_Segm.nii.gz" in p and "unexpected file" in p for p in problems)
    assert any("BraTS20_Training_003: 'seg' file is missing" in p for p in problems)
    assert validate_dataset(discovery).records[0].case_id == "BraTS20_Training_001"


@pytest.mark.parametrize("content", ["empty", "stray files"])
def test_unknown_layout_names_every_layout(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    if content == "stray files":
        (folder / "notes.txt").write_text("x")
        (folder / "sub" / "deeper").mkdir(parents=True)
    with pytest.raises(DataError) as caught:
        detect_layout(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: ") and "\n" not in message
    for part in ("MSD", "dataset.json", "imagesTr/", "labelsTr/", "BraTS 2020", "BraTS20_Training_NNN"):
        assert part in message


# --- the validate command --------------------------------------------------------------------------------


def hostile_header_bomb(root: Path) -> Path:
    return header_only(root / "imagesTr" / "case_001.nii.gz", (1024, 1024, 525))


def hostile_truncated(root: Path) -> Path:
    path = root / "labelsTr" / "case_002.nii.gz"
    raw = nifti_bytes(path)
    return write_bytes_like(path, raw[:400])


def hostile_nan_affine(root: Path) -> Path:
    return patch_header(root / "imagesTr" / "case_000.nii.gz", srow_x=[np.nan, 0, 0, 0])


def hostile_bad_json(root: Path) -> Path:
    path = root / "dataset.json"
    path.write_text("{not json")
    return path


def hostile_duplicate(root: Path) -> Path:
    nib.save(nib.load(root / "imagesTr" / "case_003.nii.gz"), root / "imagesTr" / "case_003.nii")
    return root / "imagesTr" / "case_003.nii"


def hostile_rgb(root: Path) -> Path:
    return patch_header(root / "labelsTr" / "case_000.nii.gz", datatype=128, bitpix=24)


HOSTILE = {
    f.__name__.removeprefix("hostile_"): f
    for f in (hostile_header_bomb, hostile_truncated, hostile_nan_affine, hostile_bad_json)
}
HOSTILE.update(duplicate=hostile_duplicate, rgb=hostile_rgb)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_command_names_the_file_without_traceback(msd_dataset: Path, capsys, name: str) -> None:
    bad_file = HOSTILE[name](msd_dataset)
    code = cli.main(["validate", str(msd_dataset)])
    captured = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in (captured.out + captured.err).splitlines() if bad_file.name in line]
    assert lines, captured


def test_validate_command_summary_counts_listed_and_found(msd_dataset: Path, capsys) -> None:
    (msd_dataset / "imagesTr" / "case_003.nii.gz").unlink()
    assert cli.main(["validate", str(msd_dataset)]) == 1
    err = capsys.readouterr().err
    assert (
        f"msd dataset {msd_dataset}: dataset.json lists 4 case(s), 4 found on disk, 3 valid case(s), "
        "1 problem(s) in 1 case(s)"
    ) in err


@pytest.mark.parametrize("setup", ["empty", "bad-limit"])
def test_validate_command_stops_with_one_line(
    tmp_path: Path, msd_dataset: Path, capsys, monkeypatch: pytest.MonkeyPatch, setup: str
) -> None:
    folder = msd_dataset
    if setup == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    else:
        monkeypatch.setenv("MEDNCA_MAX_IMAGE_MB", "lots")
    code = cli.main(["validate", str(folder)])
    captured = capsys.readouterr()
    assert code != 0 and "Traceback" not in captured.err
    assert captured.out == ""
    expected = str(folder) if setup == "empty" else "MEDNCA_MAX_IMAGE_MB='lots'"
    assert any(expected in line for line in captured.err.splitlines()), captured.err


def test_load_case_refuses_values_beyond_float32(tmp_path: Path) -> None:
    root = write_msd_dataset(tmp_path / "ds", n_cases=1)
    image_path = root / "imagesTr" / "case_000.nii.gz"
    write_nifti(image_path, np.full((12, 10, 8), 1e300))
    case = Case("case_000", (Channel(image_path),), root / "labelsTr" / "case_000.nii.gz")
    with pytest.raises(DataError, match=f"^{image_path}: image values exceed the float32 range"):
        load_case(case)
