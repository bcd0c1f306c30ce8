"""The original Med-NCA code, timed beside ours: its own ``BackboneNCA`` class, from a checkout of the
official repository (MECLabTUDA/M3D-NCA, MIT licence) given on the command line; nothing of it is copied.

The two-level scheme is the original agent's (``Agent_Med_NCA.get_outputs``): level 1 on the image
downscaled by 4, its state upscaled (nearest) with the full-resolution image channels put back, level 2 on
one random patch per image in training (the level-1 size) or on the whole image at inference. States are
channels-last (B, H, W, C) as the original keeps them. The downscaling is an area average, as ours, so that
only the NCA classes are compared (the original agent resamples with TorchIO).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

MODEL_FILE = Path("src") / "models" / "Model_BackboneNCA.py"


def backbone_class(checkout: Path) -> type:
    """``BackboneNCA`` of an M3D-NCA checkout; a clear error if the folder is not one."""
    checkout = Path(checkout).resolve()
    if not (checkout / MODEL_FILE).is_file():
        raise SystemExit(f"{checkout}: not an M3D-NCA checkout (no {MODEL_FILE}); clone MECLabTUDA/M3D-NCA")
    sys.path.insert(0, str(checkout))
    from src.models.Model_BackboneNCA import BackboneNCA  # noqa: PLC0415 (found only at run time)

    return BackboneNCA


def _state(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 1, H, W) images -> (B, H, W, C) channels-last state: the image, then zeros."""
    state = images.new_zeros((images.shape[0], images.shape[2], images.shape[3], channels))
    state[..., 0] = images[:, 0]
    return state


def _coarse(level1, images: torch.Tensor, channels: int, steps: int) -> torch.Tensor:
    """Level 1 on the downscaled images, upscaled by 4, the image channel replaced: (B, H, W, C)."""
    small = level1(_state(F.avg_pool2d(images, 4), channels), steps=steps, fire_rate=0.5)
    up = F.interpolate(small.permute(0, 3, 1, 2), scale_factor=4, mode="nearest").permute(0, 2, 3, 1)
    return torch.cat([images.permute(0, 2, 3, 1), up[..., 1:]], dim=3)


def original_models(checkout: Path, channels: int, device: torch.device) -> tuple:
    """The two BackboneNCA levels of Med-NCA (hidden size 128, fire rate 0.5, one input channel)."""
    backbone = backbone_class(checkout)
    return tuple(backbone(channels, 0.5, device, hidden_size=128, input_channels=1) for _ in range(2))


def training_work(
    checkout: Path, channels: int, images: torch.Tensor, labels: torch.Tensor, steps: int
) -> tuple[Callable[[], None], list]:
    """One original training iteration (both levels, Dice + BCE, Adam as the paper) as a closure."""
    level1, level2 = original_models(checkout, channels, images.device)
    parameters = [*level1.parameters(), *level2.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=1.6e-3, betas=(0.5, 0.5))
    patch = images.shape[-1] // 4
    draws = random.Random(0)

    def work() -> None:
        full = _coarse(level1, images, channels, steps)
        corners = [
            (draws.randint(0, full.shape[1] - patch), draws.randint(0, full.shape[2] - patch))
            for _ in range(len(full))
        ]
        windows = [(b, slice(y, y + patch), slice(x, x + patch)) for b, (y, x) in enumerate(corners)]
        crops = torch.stack([full[b, rows, columns] for b, rows, columns in windows])
        targets = torch.stack(
            [labels[b, 0, y : y + patch, x : x + patch] for b, (y, x) in enumerate(corners)]
        )
        logits = level2(crops, steps=steps, fire_rate=0.5)[..., 1]
        probabilities = torch.sigmoid(logits)
        dice = 1 - (2 * (probabilities * targets).sum() + 1) / (probabilities.sum() + targets.sum() + 1)
        loss = dice + F.binary_cross_entropy_with_logits(logits, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return work, parameters


def inference_work(
    checkout: Path, channels: int, volume: torch.Tensor, steps: int, slices_per_forward: int
) -> tuple[Callable[[], None], list]:
    """The original full-image inference of a (S, 1, H, W) volume, ``slices_per_forward`` at a time."""
    level1, level2 = original_models(checkout, channels, volume.device)

    @torch.no_grad()
    def work() -> None:
        for start in range(0, len(volume), slices_per_forward):
            part = volume[start : start + slices_per_forward]
            level2(_coarse(level1, part, channels, steps), steps=steps, fire_rate=0.5)

    return work, [*level1.parameters(), *level2.parameters()]
