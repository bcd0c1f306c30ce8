"""Saving and loading checkpoints and trained models, atomically and with ``weights_only=True`` loading.

A trained model file holds everything needed to use it on a new image: the model's registry name and
constructor arguments, its weights and the preprocessing it was trained with.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mednca.errors import DataError
from mednca.io import atomic_path
from mednca.models import build_model


def save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves a truncated checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``, naming the file if it is missing or damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: cannot load model checkpoint ({error})") from error


def model_payload(
    name: str, in_channels: int, arguments: dict[str, Any], model: nn.Module, preprocessing: dict[str, Any]
) -> dict[str, Any]:
    """The content of a ``model.pt`` file."""
    return {
        "model": name,
        "in_channels": in_channels,
        "arguments": arguments,
        "state_dict": model.state_dict(),
        "preprocessing": preprocessing,
    }


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its ``model.pt``; returns the model (eval mode) and the whole payload."""
    payload = load(path)
    missing = {"model", "in_channels", "arguments", "state_dict", "preprocessing"} - set(payload)
    if missing:
        raise DataError(f"{path}: not a mednca model file (missing {', '.join(sorted(missing))})")
    model = build_model(payload["model"], payload["in_channels"], **payload["arguments"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload
