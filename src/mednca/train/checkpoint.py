"""Saving and loading checkpoints and trained models, atomically and with ``weights_only=True`` loading.

A trained model file holds everything needed to use it on a new image: the model's registry name and
constructor arguments, its weights and the preprocessing it was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import torch
from torch import nn

from mednca import __version__
from mednca.config import PREPROCESSING_KEYS, SCHEMA_PATH, load_yaml
from mednca.data.preprocessing import Preprocessing
from mednca.data.ranges import ranges_problem
from mednca.errors import DataError
from mednca.io import atomic_path
from mednca.models import MODELS, build_model, size_multiple
from mednca.models.nca import pin_formulation

MODEL_FORMAT = 2
"""The model file format this version writes and the newest it reads. 1: files without ``format`` (before
input ranges); 2: adds ``format``, the training cases' ``input_ranges`` and, for an NCA, the ``formulation``
it was trained to infer with (loading pins it, so a model computes the same way on every machine)."""


def save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves a truncated checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``, naming the file if it is missing or damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise DataError(f"{path}: no such model file") from error
    except Exception as error:  # torch.load raises many types for damaged or malicious files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in reason:
            reason = "not a model file, or it holds objects other than weights, which are never loaded"
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        raise DataError(f"{path}: cannot load model checkpoint ({reason})") from error


def model_payload(
    name: str,
    in_channels: int,
    arguments: dict[str, Any],
    model: nn.Module,
    preprocessing: Preprocessing,
    input_ranges: dict[str, list[list[float]]] | None = None,
) -> dict[str, Any]:
    """The content of a ``model.pt`` file (the preprocessing as a plain mapping; ``input_ranges``, what the
    training cases spanned, when known: ``mednca.data.ranges``)."""
    payload = {
        "format": MODEL_FORMAT,
        "model": name,
        "in_channels": in_channels,
        "arguments": arguments,
        "state_dict": model.state_dict(),
        "preprocessing": preprocessing.as_mapping(),
    }
    return payload if input_ranges is None else {**payload, "input_ranges": input_ranges}


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its ``model.pt``; returns the model (eval mode) and the whole payload,
    its ``preprocessing`` as a ``Preprocessing``.

    Every part of the file is checked before use (model name, constructor arguments, weight shapes and
    values, stored preprocessing), so a damaged or tampered file is a DataError naming it.
    """
    payload = load(path)
    if not isinstance(payload, dict):
        raise DataError(f"{path}: not a mednca model file (it holds a {type(payload).__name__})")
    check_format(path, payload.get("format", 1))
    missing = {"model", "in_channels", "arguments", "state_dict", "preprocessing"} - set(payload)
    if missing:
        raise DataError(f"{path}: not a mednca model file (missing {', '.join(sorted(missing))})")
    in_channels = payload["in_channels"]
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise DataError(f"{path}: damaged model file: in_channels is {in_channels!r}, not a positive integer")
    if not isinstance(payload["arguments"], dict):
        raise DataError(f"{path}: damaged model file: its model arguments are not a mapping")
    problem = preprocessing_problem(payload["preprocessing"])
    if problem is not None:
        raise DataError(f"{path}: damaged model file: stored preprocessing {problem}")
    if "input_ranges" in payload and (problem := ranges_problem(payload["input_ranges"])) is not None:
        raise DataError(f"{path}: damaged model file: its training input ranges {problem}")
    preprocessing = Preprocessing.from_mapping(payload["preprocessing"])
    model = _build_stored_model(path, payload["model"], in_channels, payload["arguments"])
    _check_fit(path, model, preprocessing)
    _load_weights(path, model, payload["state_dict"])
    if "formulation" in payload:
        try:
            pin_formulation(model, payload["formulation"])
        except ValueError as error:
            raise DataError(f"{path}: damaged model file: {error}") from error
    return model.to(device).eval(), {**payload, "preprocessing": preprocessing}


def check_format(path: Path, version: Any) -> None:
    """Refuse a model file of a format this version cannot read, naming the file and both versions."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(f"{path}: damaged model file: its format is {version!r}, not a positive integer")
    if version > MODEL_FORMAT:
        raise DataError(
            f"{path}: model file format {version} was written by a newer mednca; this one ({__version__}) "
            f"reads formats 1 to {MODEL_FORMAT}: upgrade mednca to use it"
        )


def _check_fit(path: Path, model: nn.Module, preprocessing: Preprocessing) -> None:
    """Refuse a file whose model cannot take the images its preprocessing makes."""
    channels = preprocessing.model_channels
    if channels != model.in_channels:
        raise DataError(
            f"{path}: damaged model file: its preprocessing makes {channels} input channel(s), "
            f"its model takes {model.in_channels}"
        )
    multiple = size_multiple(model)
    if any(side % multiple for side in preprocessing.image_size):
        raise DataError(
            f"{path}: damaged model file: image size {list(preprocessing.image_size)} is not a multiple of "
            f"{multiple}, which its model needs"
        )


def _build_stored_model(path: Path, name: Any, in_channels: int, arguments: dict) -> nn.Module:
    """The model a file names, built with its stored arguments; any failure names the file."""
    if not isinstance(name, str) or name not in MODELS:
        raise DataError(f"{path}: holds an unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    try:
        return build_model(name, in_channels, **arguments)
    except Exception as error:  # a constructor can fail in many ways on tampered arguments
        raise DataError(
            f"{path}: cannot build its '{name}' model from the stored arguments ({error})"
        ) from error


def _load_weights(path: Path, model: nn.Module, state_dict: Any) -> None:
    """Load stored weights into ``model``; refuse missing, extra, misshapen or non-finite ones."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise DataError(f"{path}: damaged model file: its weights are not a mapping of tensors")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) or first[0]
        raise DataError(
            f"{path}: its weights do not fit its '{type(model).__name__}' model ({detail})"
        ) from error
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DataError(
                f"{path}: weight '{name}' holds NaN or infinite values; the model file is damaged"
            )


def preprocessing_problem(preprocessing: Any) -> str | None:
    """What is wrong with a model file's stored preprocessing (checked against the config schema), or None."""
    if not isinstance(preprocessing, dict):
        return "is not a mapping"
    dataset_schema = load_yaml(SCHEMA_PATH)
    properties = dataset_schema["$defs"]["dataset"]["properties"]
    for key in PREPROCESSING_KEYS:
        if key not in preprocessing:
            return f"lacks '{key}'"
        validator = jsonschema.Draft202012Validator({**properties[key], "$defs": dataset_schema["$defs"]})
        error = jsonschema.exceptions.best_match(validator.iter_errors(preprocessing[key]))
        if error is not None:
            return f"'{key}' is invalid: {error.message}"
        stored = preprocessing[key] if isinstance(preprocessing[key], dict) else {}
        absent = set(properties[key].get("properties", {})) - set(stored)
        if stored and absent:  # a stored block has every default filled in
            return f"'{key}' lacks {', '.join(sorted(absent))}"
    if "repeat_channels" not in preprocessing:
        return "lacks 'repeat_channels'"
    repeat = preprocessing["repeat_channels"]
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        return f"'repeat_channels' is {repeat!r}, not a positive integer"
    return None
