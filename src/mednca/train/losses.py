"""Segmentation losses on foreground logits. Every loss takes logits, never probabilities.

MRISeg applied a sigmoid and then ``BCEWithLogitsLoss`` (a double sigmoid); here the sigmoid is applied once,
inside the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DiceBCELoss(nn.Module):
    """Soft Dice loss plus binary cross-entropy, as Med-NCA trains: ``dice_weight`` * Dice loss +
    ``bce_weight`` * BCE (1 and 1 in the paper).

    (B, 1, H, W) logits and (B, 1, H, W) {0, 1} targets -> scalar. The Dice term pools all pixels of the
    batch, with ``smooth`` added to numerator and denominator so empty targets give a finite loss.
    """

    def __init__(self, smooth: float = 1.0, dice_weight: float = 1.0, bce_weight: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth
        self.dice_weight = dice_weight
        self.bce_weight = bce_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(B, 1, H, W), (B, 1, H, W) -> scalar."""
        probabilities = torch.sigmoid(logits)
        intersection = (probabilities * targets).sum()
        dice = (2 * intersection + self.smooth) / (probabilities.sum() + targets.sum() + self.smooth)
        bce = F.binary_cross_entropy_with_logits(logits, targets)
        return self.dice_weight * (1 - dice) + self.bce_weight * bce


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


def build_loss(name: str, pos_weight: float, dice_weight: float = 1.0, bce_weight: float = 1.0) -> nn.Module:
    """``dice_bce`` (with its two terms' weights) or ``weighted_bce`` (with ``pos_weight``)."""
    if name == "dice_bce":
        return DiceBCELoss(dice_weight=dice_weight, bce_weight=bce_weight)
    if name == "weighted_bce":
        return WeightedBCELoss(pos_weight)
    raise ValueError(f"unknown loss '{name}' (expected 'dice_bce' or 'weighted_bce')")
