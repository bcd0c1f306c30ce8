"""Segmentation models: Med-NCA, the single-level NCA ablation, the UNet and SegNet baselines.

Every model maps (B, C_in, H, W) float images to (B, 1, H, W) foreground logits with
``forward(images, generator)`` and returns the (logits, labels) pair the loss is computed on with
``training_forward(images, labels, generator)``.
"""

from mednca.models.nca import MedNCA, NCARule, SingleLevelNCA
from mednca.models.registry import (
    MODELS,
    build_model,
    count_parameters,
    is_stochastic,
    min_side,
    size_multiple,
)
from mednca.models.segnet import SegNet
from mednca.models.unet import UNet2D

__all__ = [
    "MODELS",
    "MedNCA",
    "NCARule",
    "SegNet",
    "SingleLevelNCA",
    "UNet2D",
    "build_model",
    "count_parameters",
    "is_stochastic",
    "min_side",
    "size_multiple",
]
