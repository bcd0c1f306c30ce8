"""Hostile and clumsy inputs to the real commands: each ends with a non-zero exit and one line naming the
file or argument and the problem; nothing is destroyed or written where it does not belong."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import AFFINE, PREPROCESSING_SETTINGS, write_nifti

from mednca.cli import main
from mednca.data.preprocessing import Preprocessing
from mednca.models import build_model
from mednca.train import checkpoint

UNET_ARGUMENTS = {"channels": [4, 8], "strides": [2], "num_res_units": 0}


def _model_payload(in_channels: int = 1, **preprocessing) -> dict:
    model = build_model("unet", in_channels, **UNET_ARGUMENTS)
    return checkpoint.model_payload(
        "unet",
        in_channels,
        UNET_ARGUMENTS,
        model,
        Preprocessing.from_settings({**PREPROCESSING_SETTINGS, **preprocessing}),
    )


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """An (untrained) UNet model file for single-channel 16x16 slices."""
    path = tmp_path / "model.pt"
    checkpoint.save(path, _model_payload())
    return path


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    """A small single-channel image."""
    return write_nifti(tmp_path / "in" / "image.nii.gz", np.random.default_rng(0).random((12, 10, 8)))


def _predict(model: Path, inputs: list[Path], output: str | Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model), "--input", *map(str, inputs), "--output", str(output), *extra]


def _one_error_line(capsys) -> str:
    """The single error line a failed command printed (and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- outputs that must never be written -----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dotted", "model", "hardlink", "symlink"])
def test_predict_never_overwrites_an_input_or_the_model(
    model_file: Path, image_file: Path, tmp_path: Path, spelling: str, capsys
) -> None:
    target = {
        "same": image_file,
        "dotted": image_file.parent / ".." / image_file.parent.name / "." / image_file.name,
        "model": model_file,
    }.get(spelling)
    if spelling == "hardlink":
        target = tmp_path / "hard.nii.gz"
        os.link(image_file, target)
    if spelling == "symlink":
        target = tmp_path / "link.nii.gz"
        target.symlink_to(image_file)
    before = _snapshot(tmp_path)
    assert main(_predict(model_file, [image_file], target)) == 2
    line = _one_error_line(capsys)
    assert "refusing to overwrite" in line and str(image_file if spelling != "model" else model_file) in line
    assert _snapshot(tmp_path) == before


def test_predict_never_overwrites_another_input_sequence(tmp_path: Path, capsys) -> None:
    model = tmp_path / "model.pt"
    checkpoint.save(model, _model_payload(2, layout="brats", sequences=["t1", "flair"]))
    rng = np.random.default_rng(1)
    t1, flair = (
        write_nifti(tmp_path / f"{name}.nii.gz", rng.random((12, 10, 8))) for name in ("t1", "flair")
    )
    before = flair.read_bytes()
    assert main(_predict(model, [t1, flair], flair)) == 2
    assert str(flair) in _one_error_line(capsys)
    assert flair.read_bytes() == before
    assert main(_predict(model, [t1, flair], tmp_path / "seg.nii.gz")) == 0


def _brats_model_and_case(tmp_path: Path, sequences=("t1", "t2", "flair", "seg")) -> tuple[Path, Path]:
    """A model file taking (t1, flair) and a BraTS case folder with the given files."""
    model = tmp_path / "model.pt"
    checkpoint.save(model, _model_payload(2, layout="brats", sequences=["t1", "flair"]))
    rng = np.random.default_rng(2)
    case = tmp_path / "BraTS20_Training_007"
    for name in sequences:
        write_nifti(case / f"BraTS20_Training_007_{name}.nii.gz", rng.random((12, 10, 8)))
    return model, case


def test_predict_takes_a_brats_case_folder(tmp_path: Path) -> None:
    model, case = _brats_model_and_case(tmp_path)
    output = tmp_path / "seg.nii.gz"
    assert main(_predict(model, [case], output)) == 0
    assert nib.load(output).shape == (12, 10, 8)


def test_predict_orders_named_sequence_files_as_in_training(tmp_path: Path) -> None:
    from mednca.data.layout import order_sequence_files

    flair, t1 = Path("a/x_FLAIR.nii.gz"), Path("b/x_t1.nii")
    assert order_sequence_files([flair, t1], ("t1", "flair")) == [t1, flair]
    unnamed = [Path("one.nii.gz"), Path("x_t1.nii.gz")]
    assert order_sequence_files(unnamed, ("flair", "t1")) == unnamed


@pytest.mark.parametrize(
    ("case_files", "inputs", "message"),
    [
        (("t1", "t2", "seg"), None, "no file for the 'flair' sequence"),
        (("t1", "t1ce", "flair"), ["t1ce", "flair"], "the files are t1ce, flair; the model takes t1, flair"),
        (("t1", "flair"), ["t1", "t1"], "the files are t1, t1; the model takes t1, flair"),
        (("t1", "flair"), ["flair"], "the files are flair; the model takes t1, flair"),
    ],
)
def test_predict_names_missing_or_wrong_brats_sequences(
    tmp_path: Path, capsys, case_files: tuple[str, ...], inputs: list[str] | None, message: str
) -> None:
    model, case = _brats_model_and_case(tmp_path, case_files)
    given = [case] if inputs is None else [case / f"BraTS20_Training_007_{name}.nii.gz" for name in inputs]
    assert main(_predict(model, given, tmp_path / "seg.nii.gz")) == 2
    line = _one_error_line(capsys)
    assert message in line and str(case) in line
    assert not (tmp_path / "seg.nii.gz").exists()


def test_predict_names_the_sequences_a_brats_model_takes(tmp_path: Path, capsys) -> None:
    model, _ = _brats_model_and_case(tmp_path, ())
    image = write_nifti(tmp_path / "image.nii.gz", np.zeros((12, 10, 8)))
    assert main(_predict(model, [image], tmp_path / "seg.nii.gz")) == 2
    assert "takes 2 input channel(s) (t1, flair), the input has 1" in _one_error_line(capsys)


def test_predict_refuses_special_files_and_keeps_them(
    model_file: Path, image_file: Path, tmp_path: Path, capsys
):
    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)
    assert main(_predict(model_file, [image_file], fifo)) == 2
    assert "not a regular file" in _one_error_line(capsys)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert main(_predict(model_file, [image_file], "/dev/null")) == 2
    assert "/dev/null" in _one_error_line(capsys)
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("seg.txt", "must end in .nii.gz"),
        ("seg.nii.gz.bak", "must end in .nii.gz"),
        (".nii.gz", "must end in .nii.gz"),
        ("", "the output path is empty"),
        ("folder.nii.gz", "is a folder"),
        ("afile/seg.nii.gz", "is not a folder"),
    ],
)
def test_predict_refuses_unusable_outputs_before_computing(
    model_file: Path, image_file: Path, tmp_path: Path, output: str, expected: str, capsys
) -> None:
    (tmp_path / "folder.nii.gz").mkdir()
    (tmp_path / "afile").write_text("x")
    target = output if output == "" else tmp_path / output
    assert main(_predict(model_file, [image_file], target)) == 2
    assert expected in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("name", "compressed"), [("seg.nii", False), ("seg.nii.gz", True), ("SEG.NII.GZ", True)]
)
def test_predict_output_suffix_decides_the_format(
    model_file: Path, image_file: Path, tmp_path: Path, name: str, compressed: bool
) -> None:
    output = tmp_path / name
    assert main(_predict(model_file, [image_file], output)) == 0
    assert (output.read_bytes()[:2] == b"\x1f\x8b") == compressed
    assert nib.load(output).shape == (12, 10, 8)


def test_full_disk_keeps_the_previous_output_and_leaves_no_temporary_file(
    model_file: Path, image_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    output = tmp_path / "out" / "seg.nii.gz"
    output.parent.mkdir()
    output.write_bytes(b"previous")

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    assert main(_predict(model_file, [image_file], output)) == 2
    line = _one_error_line(capsys)
    assert str(output) in line and "No space left on device" in line
    assert [p.name for p in output.parent.iterdir()] == ["seg.nii.gz"]
    assert output.read_bytes() == b"previous"


# --- inputs that would give a wrong answer ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["nan", "inf", "huge"])
def test_predict_refuses_non_finite_intensities(model_file: Path, tmp_path: Path, kind: str, capsys) -> None:
    voxels = np.random.default_rng(0).random((12, 10, 8))
    if kind == "huge":
        voxels = voxels * 1e308 * 1.7 - 1e308
    else:
        voxels[3, 3, 3] = np.nan if kind == "nan" else np.inf
    image = write_nifti(tmp_path / "bad.nii.gz", voxels.astype(np.float64))
    assert main(_predict(model_file, [image], tmp_path / "seg.nii.gz")) == 2
    line = _one_error_line(capsys)
    assert str(image) in line and ("NaN/Inf" in line or "overflow" in line)
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("affine", ["singular", "nan"])
def test_predict_refuses_a_broken_affine_before_inference(
    model_file: Path, tmp_path: Path, affine: str, capsys
) -> None:
    matrix = np.diag([1.0, 0.0, 1.0, 1.0]) if affine == "singular" else np.full((4, 4), np.nan)
    voxels = np.random.default_rng(0).random((12, 10, 8)).astype(np.float32)
    image = tmp_path / "bad.nii"
    header = nib.Nifti1Header()
    nib.save(nib.Nifti1Image(voxels, AFFINE, header), image)
    raw = bytearray(image.read_bytes())  # write the broken affine into the sform rows by hand
    raw[280:328] = np.asarray(matrix[:3], dtype="<f4").tobytes()
    raw[254:256] = np.int16(1).tobytes()  # sform_code
    raw[252:254] = np.int16(0).tobytes()  # qform_code
    image.write_bytes(bytes(raw))
    assert main(_predict(model_file, [image], tmp_path / "seg.nii.gz")) == 2
    assert str(image) in _one_error_line(capsys)
    assert not (tmp_path / "seg.nii.gz").exists()


# --- damaged or tampered model files ----------------------------------------------------------------


def _tampered(payload: dict, change: str) -> object:
    state = payload["state_dict"]
    first = next(iter(state))
    changes = {
        "weight_shape": lambda: {**payload, "state_dict": {**state, first: torch.zeros(3, 3)}},
        "nan_weight": lambda: {**payload, "state_dict": {**state, first: state[first] * float("nan")}},
        "missing_weight": lambda: {**payload, "state_dict": dict(list(state.items())[1:])},
        "unknown_model": lambda: {**payload, "model": "resnet"},
        "bad_argument": lambda: {**payload, "arguments": {**payload["arguments"], "depth": 3}},
        "bad_argument_value": lambda: {**payload, "arguments": {**payload["arguments"], "channels": [-4, 8]}},
        "no_preprocessing": lambda: {k: v for k, v in payload.items() if k != "preprocessing"},
        "preprocessing_key": lambda: {**payload, "preprocessing": {"layout": "msd"}},
        "zero_channels": lambda: {**payload, "in_channels": 0},
        "zero_size": lambda: {**payload, "preprocessing": {**payload["preprocessing"], "image_size": [0, 0]}},
        "odd_size": lambda: {
            **payload,
            "preprocessing": {**payload["preprocessing"], "image_size": [15, 15]},
        },
        "slice_axis": lambda: {**payload, "preprocessing": {**payload["preprocessing"], "slice_axis": 5}},
        "intensity": lambda: {
            **payload,
            "preprocessing": {**payload["preprocessing"], "intensity": {"method": "x"}},
        },
        "not_a_dict": lambda: [1, 2, 3],
    }
    return changes[change]()


@pytest.mark.parametrize(
    "change",
    [
        "weight_shape",
        "nan_weight",
        "missing_weight",
        "unknown_model",
        "bad_argument",
        "bad_argument_value",
        "no_preprocessing",
        "preprocessing_key",
        "zero_channels",
        "zero_size",
        "odd_size",
        "slice_axis",
        "intensity",
        "not_a_dict",
    ],
)
def test_predict_names_a_tampered_model_file(image_file: Path, tmp_path: Path, change: str, capsys) -> None:
    model = tmp_path / "tampered.pt"
    torch.save(_tampered(_model_payload(), change), model)
    assert main(_predict(model, [image_file], tmp_path / "seg.nii.gz")) == 2
    assert str(model) in _one_error_line(capsys)
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "gzip"])
def test_predict_names_a_damaged_model_file(model_file: Path, image_file: Path, damage: str, capsys) -> None:
    data = model_file.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": os.urandom(300), "empty": b""}
    model_file.write_bytes(damaged.get(damage, gzip.compress(data)))
    assert main(_predict(model_file, [image_file], model_file.parent / "seg.nii.gz")) == 2
    assert f"{model_file}: cannot load model checkpoint" in _one_error_line(capsys)


# --- bad arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [["--runs", "0"], ["--runs", "-2"], ["--seed", "-1"], ["--runs", "x"]])
def test_predict_names_a_bad_count(model_file: Path, image_file: Path, tmp_path: Path, extra, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_predict(model_file, [image_file], tmp_path / "seg.nii.gz", *extra))
    assert exit_info.value.code == 2
    assert f"argument {extra[0]}" in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--device", "tpu"], "device 'tpu' is unknown"),
        (["--device", "cuda:x"], "device 'cuda:x' is unknown"),
    ],
)
def test_predict_names_a_bad_argument(
    model_file: Path, image_file: Path, tmp_path: Path, extra: list[str], expected: str, capsys
) -> None:
    assert main(_predict(model_file, [image_file], tmp_path / "seg.nii.gz", *extra)) == 2
    assert expected in _one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line(model_file: Path, image_file: Path, tmp_path: Path, capsys) -> None:
    assert main(_predict(model_file, [image_file], tmp_path / "seg.nii.gz", "--device", "cuda")) == 2
    assert "no CUDA GPU" in _one_error_line(capsys)


def test_validate_refuses_an_empty_sequence_list(msd_dataset: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", str(msd_dataset), "--sequences", ","])
    assert exit_info.value.code == 2
    assert "argument --sequences" in _one_error_line(capsys)


@pytest.mark.parametrize("extra", [["--epochs", "0"], ["--max-cases", "0"], ["--epochs", "two"]])
def test_train_names_a_bad_count(prepared_phantom: Path, tiny_config: Path, tmp_path: Path, extra, capsys):
    arguments = ["train", str(prepared_phantom), str(tmp_path / "m.pt"), "--model", "unet"]
    with pytest.raises(SystemExit):
        main([*arguments, "--config", str(tiny_config), "--dataset", "data", *extra])
    assert f"argument {extra[0]}" in _one_error_line(capsys)
    assert not (tmp_path / "m.pt").exists()


def test_train_never_writes_over_its_inputs(
    prepared_phantom: Path, tiny_config: Path, tmp_path: Path, capsys
):
    before = tiny_config.read_bytes()
    arguments = ["train", str(prepared_phantom), str(tiny_config), "--model", "unet", "--dataset", "data"]
    assert main([*arguments, "--config", str(tiny_config)]) == 2
    assert "refusing to overwrite" in _one_error_line(capsys)
    assert tiny_config.read_bytes() == before


def test_evaluate_names_a_channel_mismatch(prepared_phantom: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "two_channels.pt"
    checkpoint.save(model, _model_payload(2, modalities=[0, 1]))
    assert main(["evaluate", str(model), str(prepared_phantom), str(tmp_path / "eval")]) == 2
    line = _one_error_line(capsys)
    assert str(model) in line and "takes 2 input channel(s)" in line and "has 1" in line
    assert not (tmp_path / "eval").exists()


def test_evaluate_refuses_an_output_folder_that_is_a_file(
    model_file: Path, prepared_phantom: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "eval").write_text("not a folder")
    assert main(["evaluate", str(model_file), str(prepared_phantom), str(tmp_path / "eval")]) == 2
    assert "is not a folder" in _one_error_line(capsys)


def test_config_output_never_overwrites_a_config_file(tiny_config: Path, capsys) -> None:
    before = tiny_config.read_bytes()
    assert main(["config", "--config", str(tiny_config), "--output", str(tiny_config)]) == 2
    assert "refusing to overwrite" in _one_error_line(capsys)
    assert tiny_config.read_bytes() == before


def test_an_unexpected_error_is_one_line_naming_its_type(
    model_file: Path, image_file: Path, tmp_path, monkeypatch, capsys
):
    from mednca.evaluate import predict

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(predict, "load_segmenter", broken)
    assert main(_predict(model_file, [image_file], tmp_path / "seg.nii.gz")) == 2
    assert "unexpected KeyError: 'boom'" in _one_error_line(capsys)
    monkeypatch.setenv("MEDNCA_TRACEBACK", "1")
    with pytest.raises(KeyError):
        main(_predict(model_file, [image_file], tmp_path / "seg.nii.gz"))


def test_a_legitimate_input_still_works(model_file: Path, image_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.NII.GZ"
    shutil.copy(image_file, copy)
    assert main(_predict(model_file, [copy], tmp_path / "seg.nii.gz", "--runs", "2")) == 0
    assert json.dumps(nib.load(tmp_path / "seg.nii.gz").shape) == "[12, 10, 8]"


@pytest.mark.parametrize(
    "arguments",
    [["../escape"], ["/absolute"], ["ok", "--archive", "../a.tar"], ["ok", "--url", "http://x/a/.."]],
)
def test_fetch_never_leaves_the_data_directory(tmp_path: Path, arguments: list[str], capsys) -> None:
    data_dir = tmp_path / "data"
    assert main(["fetch", str(data_dir), *arguments]) == 2
    assert "inside the data directory" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"), [("a: [", "cannot read"), ("- 1\n- 2\n", "must map keys to values")]
)
def test_a_broken_config_file_is_one_line(tmp_path: Path, text: str, expected: str, capsys) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(text)
    assert main(["config", "--config", str(config)]) == 2
    line = _one_error_line(capsys)
    assert str(config) in line and expected in line
