"""Shared fixtures: tiny datasets written with nibabel, fast enough for every test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mednca.data.preprocessing import Preprocessing

ROOT = Path(__file__).resolve().parents[1]
"""The project checkout."""
AFFINE = np.diag([1.0, 1.0, 1.5, 1.0])
#: The dataset settings of the ``prepared_phantom`` slices that a trained model remembers.
PREPROCESSING_SETTINGS = {
    "layout": "msd",
    "modalities": [0],
    "sequences": ["t1"],
    "foreground_labels": [1, 2],
    "slice_axis": 2,
    "image_size": [16, 16],
    "resize_mode": "stretch",
    "intensity": {"method": "percentile", "lower": 0.5, "upper": 99.5},
}
#: What a model trained on the ``prepared_phantom`` slices remembers of their preprocessing.
PREPROCESSING = Preprocessing.from_settings(PREPROCESSING_SETTINGS)


@pytest.fixture(autouse=True)
def fixed_torch_seed():
    """Every test starts from the same global torch generator (restored afterwards), so the weights a
    model constructor draws do not depend on which tests ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    """Save ``data`` as a NIfTI file, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def make_case(
    rng: np.random.Generator, shape=(12, 10, 8), channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A random image ((X, Y, Z) or (X, Y, Z, C) float32) and a label with a box of 1s and 2s."""
    image = rng.random((*shape, channels) if channels > 1 else shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[3:7, 3:7, 2:6] = 1
    label[7:9, 3:7, 2:6] = 2
    return image, label


def write_msd_dataset(root: Path, n_cases: int = 4, channels: int = 1, seed: int = 0) -> Path:
    """An MSD-layout dataset (imagesTr/, labelsTr/, dataset.json) of ``n_cases`` small cases."""
    rng = np.random.default_rng(seed)
    training = []
    for index in range(n_cases):
        name = f"case_{index:03d}.nii.gz"
        image, label = make_case(rng, channels=channels)
        write_nifti(root / "imagesTr" / name, image)
        write_nifti(root / "labelsTr" / name, label)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    description = {
        "name": "tiny",
        "labels": {"0": "background", "1": "a", "2": "b"},
        "modality": {str(c): f"m{c}" for c in range(channels)},
        "numTraining": n_cases,
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def write_brats_dataset(root: Path, case_ids=(1, 2), sequences=("t1", "t2", "flair")) -> Path:
    """A BraTS-2020-layout folder with the given sequences and a seg file per case."""
    rng = np.random.default_rng(0)
    for number in case_ids:
        case = f"BraTS20_Training_{number:03d}"
        folder = root / "MICCAI_BraTS2020_TrainingData" / case
        image, label = make_case(rng)
        for sequence in sequences:
            write_nifti(folder / f"{case}_{sequence}.nii.gz", image * (1 + len(sequence)))
        label[label == 2] = 4
        write_nifti(folder / f"{case}_seg.nii.gz", label)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the workflow, scripts and configs, so runs leave the checkout untouched."""
    for name in ("workflow", "scripts", "config", "envs", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Snakemake in ``project`` and return the finished process (stdout and stderr combined)."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )


def run_tool(command: list[str], cwd: Path, home: Path | None = None, python_path: Path | None = None) -> str:
    """Run a command (git, dvc, snakemake) with the test interpreter's bin folder first on PATH, a test git
    identity, if given ``home`` as HOME and ``python_path`` as PYTHONPATH (to run a copy's own library);
    its combined output. A non-zero exit fails the test."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    if home is not None:
        env["HOME"] = str(home)
    if python_path is not None:
        env["PYTHONPATH"] = str(python_path)
    result = subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-4000:]}"
    return result.stdout


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A config file for the ``prepared_phantom`` data (dataset ``data``) with a tiny UNet."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "dataset_settings:\n"
        "  data: {layout: msd, folder: Phantom, foreground_labels: [1, 2], image_size: [16, 16]}\n"
        "model_settings:\n"
        "  unet: {architecture: {channels: [4, 8], strides: [2], num_res_units: 0}}\n"
    )
    return config


@pytest.fixture
def msd_dataset(tmp_path: Path) -> Path:
    """Four clean single-modality cases in MSD layout."""
    return write_msd_dataset(tmp_path / "Task99_Tiny")


def prepare_phantom(
    raw_dir: Path, out: Path, spec, dataset: str = "phantom", test_fraction: float = 0.4
) -> Path:
    """The data stage (fetch, validate, preprocess, split) of a phantom ``spec`` with the settings of
    ``PREPROCESSING_SETTINGS``; returns ``out``, which then holds source.json, cases.csv, manifest.csv and
    slices/."""
    from mednca.data.stages import fetch_stage, preprocess_stage, split_stage, validate_stage

    settings = PREPROCESSING_SETTINGS
    fetch_stage(raw_dir, dataset.capitalize(), out / "source.json", phantom=spec)
    validate_stage(
        out / "source.json", out / "cases.csv", dataset, settings["layout"], tuple(settings["modalities"]),
        tuple(settings["sequences"]), on_bad_case="fail",
    )  # fmt: skip
    intensity = settings["intensity"]
    preprocess_stage(
        out / "source.json", out / "cases.csv", out / "slices", tuple(settings["foreground_labels"]),
        tuple(settings["image_size"]), settings["slice_axis"], settings["resize_mode"], intensity["method"],
        intensity["lower"], intensity["upper"],
    )  # fmt: skip
    split_stage(out / "cases.csv", out / "manifest.csv", test_fraction=test_fraction, seed=0)
    return out


@pytest.fixture(scope="session")
def prepared_phantom(tmp_path_factory) -> Path:
    """A small phantom dataset taken through the whole data stage; returns its data-stage folder.

    The folder holds source.json, cases.csv, manifest.csv and slices/ (16x16 slices), like
    ``results/data/{dataset}``.
    """
    from mednca.data.stages import PhantomSpec

    root = tmp_path_factory.mktemp("phantom")
    spec = PhantomSpec(cases=5, shape=(16, 16, 12), shape_jitter=2)
    return prepare_phantom(root / "raw", root / "data", spec)


@pytest.fixture(scope="session")
def nca_file(prepared_phantom: Path, tmp_path_factory) -> Path:
    """A tiny Med-NCA trained for one epoch on the prepared phantom (export and edge benchmark tests)."""
    from mednca.train.loop import TrainingSettings
    from mednca.train.stages import outputs_beside, train_stage

    path = tmp_path_factory.mktemp("nca") / "model.pt"
    train_stage(
        slices_dir=prepared_phantom / "slices", manifest_csv=prepared_phantom / "manifest.csv",
        model_path=path, model_name="med_nca",
        arguments={"channels": 8, "hidden_size": 16, "steps": 6, "fire_rate": 0.5, "downscale": 2},
        settings=TrainingSettings(epochs=1, batch_size=8, lr=1e-2), seed=0, preprocessing=PREPROCESSING,
        device_name="cpu", **outputs_beside(path),
    )  # fmt: skip
    return path
