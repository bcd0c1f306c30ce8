"""The memory a configuration's jobs will need, estimated from the configuration alone before anything runs.

Three costs grow with the configuration: preprocessing holds one slice of the model input size in a few
copies (source, padded, resized); training keeps every step's activations for back-propagation through time
(an NCA: per step and cell of both levels the perception, hidden layer and state; a UNet or SegNet: every
layer's output of the batch); inference holds one batch of slices at a time. Each estimate adds the
runtime's own memory (PyTorch and the libraries, about 300 MB) and is compared with a limit: the config's
``memory_limit_gb``, else this machine's memory. A job over the limit is refused in one line naming the
config key that drives it, the estimate and the limit; one over half of it gets a warning.

The factors are calibrated on measured runs (Med-NCA of 16 channels, batch 24 of 64x64: about 0.6 GB of
activations; MONAI UNet of 1.6 M parameters, batch 48: about 0.4 GB): an estimate is a size to plan with,
right within a factor of two or so, not a guarantee.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mednca.errors import ConfigError
from mednca.names import base_model, is_nca

FLOAT_BYTES = 4
RUNTIME_BYTES = 300 * 2**20
"""PyTorch, NumPy and the pipeline's own libraries once imported."""
PREPROCESSING_COPIES = 4
UNET_FLOATS_PER_CHANNEL = 3
"""Stored activations per channel of a UNet layer: convolution, normalisation and activation outputs."""
SEGNET_FLOATS_PER_CONVOLUTION = 3
WARN_FRACTION = 0.5


@dataclass(frozen=True)
class Estimate:
    """The memory one job needs by estimate, and the config key that drives it."""

    job: str
    key: str
    bytes: int


def machine_memory_bytes() -> int | None:
    """This machine's memory, or the container's (cgroup) limit when smaller; None if unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
    return total


def nca_cell_floats(arguments: dict[str, Any]) -> int:
    """Floats an NCA stores per cell and step for back-propagation: perception (3 C), hidden, new state."""
    return 4 * int(arguments["channels"]) + int(arguments["hidden_size"])


def nca_training_bytes(
    arguments: dict[str, Any], image_size: tuple[int, int], batch: int, two_level: bool
) -> int:
    """Back-propagation through time of an NCA: every stored step of its level(s) for the batch."""
    height, width = image_size
    steps = int(arguments["steps"])
    every = int(arguments.get("checkpoint_steps") or 0)
    stored = steps if every <= 0 else steps // every + every
    if two_level:
        scale = int(arguments.get("downscale", 4))
        level1 = (height // scale) * (width // scale)
        patch = arguments.get("patch_size")
        level2 = patch * patch if patch else level1
        cells = level1 + level2
    else:
        cells = height * width
    return batch * stored * cells * nca_cell_floats(arguments) * FLOAT_BYTES


def nca_inference_bytes(arguments: dict[str, Any], image_size: tuple[int, int], batch: int) -> int:
    """One batch of full-size states with their per-step temporaries (no step is kept)."""
    height, width = image_size
    return 3 * batch * height * width * nca_cell_floats(arguments) * FLOAT_BYTES


def unet_floats_per_image(arguments: dict[str, Any], image_size: tuple[int, int]) -> int:
    """Stored activations of a MONAI UNet for one image: each level's channels at its resolution, encoder and
    decoder, per residual unit."""
    height, width = image_size
    pixels, floats = height * width, 0
    strides = [1, *arguments["strides"]]
    for channels, stride in zip(arguments["channels"], strides, strict=False):
        pixels = max(1, pixels // (stride * stride))
        floats += 2 * pixels * int(channels)
    return floats * UNET_FLOATS_PER_CHANNEL * (1 + int(arguments.get("num_res_units", 0)))


def segnet_floats_per_image(arguments: dict[str, Any], image_size: tuple[int, int]) -> int:
    """Stored activations of the VGG16-style SegNet for one image: each convolution of encoder and decoder."""
    from mednca.models.segnet import ENCODER_DEPTHS, WIDTH_FACTORS

    height, width = image_size
    base = int(arguments.get("base_channels", 64))
    floats = 0
    for level, (depth, factor) in enumerate(zip(ENCODER_DEPTHS, WIDTH_FACTORS, strict=True)):
        floats += 2 * depth * (height * width // 4**level) * base * factor
    return floats * SEGNET_FLOATS_PER_CONVOLUTION


def model_estimates(
    dataset: str, model: str, settings: dict[str, Any], image_size: tuple[int, int], inference_batch: int
) -> list[Estimate]:
    """Training and inference estimates of one model on one dataset (``settings``: its model_settings)."""
    base, arguments = base_model(model), settings["architecture"]
    batch = int(settings["training"]["batch_size"])
    if is_nca(base):
        training = nca_training_bytes(arguments, image_size, batch, two_level=base == "med_nca")
        inference = nca_inference_bytes(arguments, image_size, inference_batch)
    else:
        floats_per_image = unet_floats_per_image if base == "unet" else segnet_floats_per_image
        per_image = floats_per_image(arguments, image_size)
        training = batch * per_image * FLOAT_BYTES
        inference = inference_batch * per_image * FLOAT_BYTES // 4  # no layer's output is kept
    return [
        Estimate(
            f"training {model} on {dataset}",
            _driving_key(dataset, base, arguments, batch, image_size),
            RUNTIME_BYTES + training,
        ),
        Estimate(f"inference of {model} on {dataset}", "evaluation.batch_size", RUNTIME_BYTES + inference),
    ]


def _driving_key(
    dataset: str, model: str, arguments: dict[str, Any], batch: int, image_size: tuple[int, int]
) -> str:
    """The config key that most raises a training's memory: of image size, batch size and (for an NCA)
    steps, the one furthest above a typical value (64x64 pixels, batch 24, 64 steps)."""
    candidates = {
        f"model_settings.{model}.training.batch_size": batch / 24,
        f"dataset_settings.{dataset}.image_size": image_size[0] * image_size[1] / (64 * 64),
    }
    if is_nca(model):
        candidates[f"model_settings.{model}.architecture.steps"] = int(arguments["steps"]) / 64
    return max(candidates, key=candidates.__getitem__)


def job_estimates(config: dict[str, Any]) -> list[Estimate]:
    """Every job's estimate for a validated config: preprocessing per dataset, training and inference per
    model and dataset."""
    from mednca.config import input_channels, model_runs

    estimates = []
    for dataset in config["datasets"]:
        settings = config["dataset_settings"][dataset]
        height, width = settings["image_size"]
        one_slice = height * width * input_channels(settings) * FLOAT_BYTES * PREPROCESSING_COPIES
        key = f"dataset_settings.{dataset}.image_size"
        estimates.append(Estimate(f"preprocessing {dataset}", key, RUNTIME_BYTES + one_slice))
    seen = set()
    for dataset, model, _ in model_runs(config):
        if (dataset, model) in seen:
            continue
        seen.add((dataset, model))
        size = tuple(config["dataset_settings"][dataset]["image_size"])
        settings = config["model_settings"][base_model(model)]
        estimates += model_estimates(dataset, model, settings, size, config["evaluation"]["batch_size"])
    return estimates


def memory_limit(config: dict[str, Any]) -> tuple[int | None, str]:
    """The limit jobs are held to, in bytes, and where it comes from."""
    configured = config.get("memory_limit_gb")
    if configured is not None:
        return int(float(configured) * 2**30), "config key 'memory_limit_gb'"
    return machine_memory_bytes(), "this machine's memory; set memory_limit_gb for another"


def _gb(count: int) -> str:
    return f"{count / 2**30:.1f} GB"


def check_memory(config: dict[str, Any]) -> list[str]:
    """Refuse (ConfigError) a config with a job over the memory limit, naming the key, the estimate and the
    limit; return one warning per job over half the limit."""
    limit, source = memory_limit(config)
    if limit is None:
        return []
    warnings = []
    for estimate in job_estimates(config):
        if estimate.bytes > limit:
            raise ConfigError(
                f"config key '{estimate.key}': {estimate.job} needs about {_gb(estimate.bytes)} of memory by "
                f"estimate, more than the limit of {_gb(limit)} ({source}); lower it"
            )
        if estimate.bytes > WARN_FRACTION * limit:
            warnings.append(
                f"{estimate.job} needs about {_gb(estimate.bytes)} of memory by estimate (config key "
                f"'{estimate.key}'), over half of the limit of {_gb(limit)}"
            )
    return warnings
