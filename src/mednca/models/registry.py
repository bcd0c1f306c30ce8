"""Model names used by the configuration, and helpers to build models and describe them."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from torch import nn

from mednca.models.nca import MedNCA, SingleLevelNCA
from mednca.models.segnet import SegNet
from mednca.models.unet import UNet2D
from mednca.names import MODEL_NAMES

MODELS: dict[str, type[nn.Module]] = dict(
    zip(MODEL_NAMES, (MedNCA, SingleLevelNCA, UNet2D, SegNet), strict=True)  # in MODEL_NAMES' order
)
STOCHASTIC: tuple[type[nn.Module], ...] = (MedNCA, SingleLevelNCA)


def _unknown_arguments(model_class: type[nn.Module], arguments: dict) -> list[str]:
    """The names in ``arguments`` that ``model_class`` does not accept."""
    accepted = set(inspect.signature(model_class.__init__).parameters) - {"self"}
    return sorted(set(arguments) - accepted)


def build_model(name: str, in_channels: int, **arguments) -> nn.Module:
    """Build the model called ``name`` for (B, in_channels, H, W) inputs -> (B, 1, H, W) logits.

    Raises ValueError for an unknown name (listing the known ones) and for arguments the model does not
    accept or that have the wrong type (naming the model and the argument).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))}")
    model_class = MODELS[name]
    unknown = _unknown_arguments(model_class, arguments)
    if unknown:
        raise ValueError(f"model '{name}' does not accept argument(s): {', '.join(unknown)}")
    try:
        return model_class(in_channels=in_channels, **arguments)
    except TypeError as error:
        raise ValueError(f"model '{name}': bad argument: {error}") from error


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def is_stochastic(model: nn.Module) -> bool:
    """True for models whose output depends on the generator (the NCAs)."""
    return isinstance(model, STOCHASTIC)


def size_multiple(model: nn.Module) -> int:
    """What input height and width must be a multiple of (Med-NCA: its downscale; UNet: its strides)."""
    return int(getattr(model, "size_multiple", 1))


def min_side(model: nn.Module) -> int:
    """The smallest input height and width a model takes (SegNet: 32, one pixel after its 5 poolings)."""
    return int(getattr(model, "min_side", 1))


def image_size_problem(name: str, architecture: dict, size: Sequence[int]) -> str | None:
    """Why the model ``name`` with ``architecture`` cannot take (H, W) images of ``size``, or None.

    Uses each model's own rules (``size_multiple_for``, ``min_side_for``) without building it.
    """
    multiple = int(MODELS[name].size_multiple_for(**architecture))
    min_side_rule = getattr(MODELS[name], "min_side_for", None)
    smallest = 1 if min_side_rule is None else int(min_side_rule(**architecture))
    if min(size) < smallest:
        return f"its sides must be at least {smallest}"
    if any(side % multiple for side in size):
        suggestion = [max(multiple, round(side / multiple) * multiple) for side in size]
        return (
            f"with these architecture arguments its sides must be multiples of {multiple} (e.g. {suggestion})"
        )
    return None
