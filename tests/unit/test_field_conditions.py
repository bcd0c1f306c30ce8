"""Field conditions: signals while writing, stale temporary files, full disks, home-relative folders and
model files of other format versions; each builds the condition and runs the real code."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from mednca.config import SCHEMA_PATH, validate_config
from mednca.errors import ConfigError, DataError
from mednca.io import atomic_path
from mednca.train import checkpoint

SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def _python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _train_command(data: Path, output: Path, config: Path) -> list[str]:
    """``mednca train`` of the tiny UNet on the prepared phantom into ``output``."""
    command = [sys.executable, "-m", "mednca.cli", "train", str(data), str(output), "--model", "unet"]
    return [*command, "--config", str(config), "--dataset", "data"]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_a_signal_while_writing_removes_the_temporary_file_and_keeps_the_old_one(
    signum: int, tmp_path: Path
) -> None:
    target = tmp_path / "train_log.csv"
    target.write_text("finished epochs\n")
    code = """
        import os, sys, time
        from pathlib import Path
        from mednca.io import atomic_path
        from mednca.logs import configure_logging, run_reported

        def stage():
            with atomic_path(Path(sys.argv[1])) as temporary:
                temporary.write_text("half of the next epoch")
                os.kill(os.getpid(), int(sys.argv[2]))
                time.sleep(30)

        configure_logging()
        sys.exit(run_reported(stage))
    """
    finished = _python(code, str(target), str(int(signum)))
    name = signal.Signals(signum).name
    assert finished.returncode == 128 + signum, finished.stderr
    assert f"stopped by {name}" in finished.stderr and "Traceback" not in finished.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["train_log.csv"]
    assert target.read_text() == "finished epochs\n"


def test_sigterm_ends_a_training_cleanly_and_a_rerun_resumes(
    prepared_phantom: Path, tiny_config: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run" / "model.pt"
    command = _train_command(prepared_phantom, output, tiny_config)
    process = subprocess.Popen([*command, "--epochs", "400"], stderr=subprocess.PIPE, text=True)
    log = output.parent / "train_log.csv"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # inside a later epoch, maybe inside a write
    process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and time.monotonic() - stopped < 10
    assert "stopped by SIGTERM" in errors.splitlines()[-1]
    assert not list(output.parent.rglob("*.tmp")) and not output.exists()
    resumed = subprocess.run([*command, "--epochs", "3"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and output.exists(), resumed.stderr


def test_temporary_files_of_killed_processes_are_removed_by_the_next_write(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = socket.gethostname()
    stale = tmp_path / f".model.pt.{host}-{finished.pid}.k3x9q1.tmp"
    running = tmp_path / f".model.pt.{host}-{os.getppid()}.a8b2c0.tmp"  # a live process may still write it
    elsewhere = tmp_path / f".model.pt.another-host-{finished.pid}.z1z1z1.tmp"
    for path in (stale, running, elsewhere):
        path.write_bytes(b"partial")
    with atomic_path(tmp_path / "model.pt") as temporary:
        temporary.write_bytes(b"complete")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["model.pt", running.name, elsewhere.name]
    )


def test_a_file_size_limit_while_saving_a_model_is_named(tmp_path: Path) -> None:
    code = """
        import resource, signal, sys
        import torch
        from mednca.errors import DataError
        from mednca.train import checkpoint

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            checkpoint.save(sys.argv[1], {"weights": torch.zeros(10_000)})
        except DataError as error:
            print(error)
    """
    (tmp_path / "model.pt").write_bytes(b"previous")
    finished = _python(code, str(tmp_path / "model.pt"))
    assert f"{tmp_path / 'model.pt'}: cannot be written (File too large" in finished.stdout, finished.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["model.pt"]
    assert (tmp_path / "model.pt").read_bytes() == b"previous"


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 2 MiB file system (tmpfs) filled to its last bytes; skipped where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small file system needs root")
    try:
        (mount / "keep.txt").write_text("finished result\n")
        descriptor = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(descriptor, b"\0" * 512):
                pass
        except OSError:
            pass  # the disk is full
        finally:
            os.close(descriptor)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_while_saving_a_checkpoint_is_named(full_disk: Path) -> None:
    (full_disk / "checkpoint.pt").unlink(missing_ok=True)
    with pytest.raises(DataError, match=r"checkpoint.pt: cannot be written \(No space left on device"):
        checkpoint.save(full_disk / "checkpoint.pt", {"weights": torch.zeros(100_000)})
    assert sorted(path.name for path in full_disk.iterdir()) == ["filler", "keep.txt"]


def test_training_on_a_full_disk_stops_naming_the_folder(
    full_disk: Path, prepared_phantom: Path, tiny_config: Path
) -> None:
    output = full_disk / "model.pt"
    command = [*_train_command(prepared_phantom, output, tiny_config), "--epochs", "2"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode != 0
    last = finished.stderr.strip().splitlines()[-1]
    assert f"{full_disk}: the disk is full" in last and "Traceback" not in finished.stderr
    assert (full_disk / "keep.txt").read_text() == "finished result\n"
    assert not list(full_disk.rglob("*.tmp"))


def _config(**keys) -> dict:
    dataset = {"layout": "msd", "folder": "D", "foreground_labels": [1], "image_size": [16, 16]}
    return {"datasets": ["d"], "dataset_settings": {"d": dataset}, **keys}


def test_home_relative_folders_are_expanded_as_a_shell_would(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = validate_config(_config(data_dir="~/data", results_dir="~/runs/one"), SCHEMA_PATH)
    assert config["data_dir"] == f"{tmp_path}/data" and config["results_dir"] == f"{tmp_path}/runs/one"
    with pytest.raises(ConfigError, match="config key 'results_dir': '~no_such_user_x/r': no home folder"):
        validate_config(_config(results_dir="~no_such_user_x/r"), SCHEMA_PATH)


def test_model_files_of_other_format_versions(tmp_path: Path, prepared_phantom: Path) -> None:
    from conftest import PREPROCESSING

    from mednca import __version__
    from mednca.models import build_model

    model = build_model("unet", 1, channels=[4, 8], strides=[2], num_res_units=0)
    payload = checkpoint.model_payload("unet", 1, {"channels": [4, 8], "strides": [2], "num_res_units": 0},
                                       model, PREPROCESSING)  # fmt: skip
    assert payload["format"] == checkpoint.MODEL_FORMAT
    newer = tmp_path / "newer.pt"
    checkpoint.save(newer, {**payload, "format": checkpoint.MODEL_FORMAT + 1})
    with pytest.raises(DataError) as raised:
        checkpoint.load_model(newer)
    assert str(raised.value) == (
        f"{newer}: model file format {checkpoint.MODEL_FORMAT + 1} was written by a newer mednca; this one "
        f"({__version__}) reads formats 1 to {checkpoint.MODEL_FORMAT}: upgrade mednca to use it"
    )
    older = tmp_path / "older.pt"
    checkpoint.save(older, {key: value for key, value in payload.items() if key != "format"})
    checkpoint.load_model(older)  # format 1, written before files carried a version
    damaged = tmp_path / "damaged.pt"
    checkpoint.save(damaged, {**payload, "format": "two"})
    with pytest.raises(DataError, match="damaged.pt: damaged model file: its format is 'two'"):
        checkpoint.load_model(damaged)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"image_size": [40000, 40000]}, "dataset_settings.d.image_size: preprocessing d"),
        ({"image_size": [4000, 4000]}, "dataset_settings.d.image_size: training med_nca on d"),
        ({"steps": 300_000}, "model_settings.med_nca.architecture.steps: training med_nca on d"),
        ({"batch_size": 100_000}, "model_settings.med_nca.training.batch_size: training med_nca on d"),
    ],
)
def test_a_configuration_too_large_for_the_memory_is_refused_naming_the_key(
    overrides: dict, key: str, tmp_path: Path
) -> None:
    config = _config(memory_limit_gb=8)
    config["models"] = ["med_nca"]
    if "image_size" in overrides:
        config["dataset_settings"]["d"]["image_size"] = overrides["image_size"]
    architecture = {"steps": overrides.get("steps", 64)}
    training = {"batch_size": overrides.get("batch_size", 24)}
    config["model_settings"] = {"med_nca": {"architecture": architecture, "training": training}}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    finished = subprocess.run(
        [sys.executable, "-m", "mednca.cli", "config", "--config", str(path)], capture_output=True, text=True
    )
    assert finished.returncode != 0 and not finished.stdout
    (line,) = finished.stderr.strip().splitlines()
    key, job = key.split(": ")
    assert f"config key '{key}': {job} needs about" in line
    assert "GB of memory by estimate, more than the limit of 8.0 GB (config key 'memory_limit_gb')" in line


def test_a_large_but_possible_configuration_gets_a_warning(caplog) -> None:
    config = _config(memory_limit_gb=2, models=["med_nca"])
    config["dataset_settings"]["d"]["image_size"] = [64, 64]
    config["model_settings"] = {"med_nca": {"training": {"batch_size": 48}}}
    with caplog.at_level(logging.WARNING, logger="mednca.memory"):
        validate_config(config, SCHEMA_PATH)
    assert "training med_nca on d needs about 1.4 GB of memory by estimate" in caplog.text
    assert "over half of the limit of 2.0 GB" in caplog.text
