"""Segmentation losses on foreground logits. Every loss takes logits, never probabilities.

MRISeg applied a sigmoid and then ``BCEWithLogitsLoss`` (a double sigmoid); here the sigmoid is applied once,
inside the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DiceBCELoss(nn.Module):
    """Soft Dice loss plus binary cross-entropy, as Med-NCA trains.

    (B, 1, H, W) logits and (B, 1, H, W) {0, 1} targets -> scalar. The Dice term pools all pixels of the
    batch, with ``smooth`` added to numerator and denominator so empty targets give a finite loss.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(B, 1, H, W), (B, 1, H, W) -> scalar."""
        probabilities = torch.sigmoid(logits)
        intersection = (probabilities * targets).sum()
        dice = (2 * intersection + self.smooth) / (probabilities.sum() + targets.sum() + self.smooth)
        return (1 - dice) + F.binary_cross_entropy_with_logits(logits, targets)


class WeightedBCELoss(nn.Module):
    """Binary cross-entropy with a weight on the positive class (MRISeg used 25 against class imbalance).

    (B, 1, H, W) logits and targets -> scalar.
    """

    def __init__(self, pos_weight: float = 25.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(B, 1, H, W), (B, 1, H, W) -> scalar."""
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)


def build_loss(name: str, pos_weight: float = 25.0) -> nn.Module:
    """``dice_bce`` or ``weighted_bce``."""
    if name == "dice_bce":
        return DiceBCELoss()
    if name == "weighted_bce":
        return WeightedBCELoss(pos_weight)
    raise ValueError(f"unknown loss '{name}' (expected 'dice_bce' or 'weighted_bce')")
