"""Metrics and losses on hand-made masks, including empty ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mednca.evaluate.metrics import dice_score, hd95
from mednca.train.losses import DiceBCELoss, WeightedBCELoss, build_loss


def _box(shape=(20, 20, 10), start=(5, 5, 2), size=(5, 5, 3)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = True
    return mask


EMPTY = np.zeros((20, 20, 10), dtype=bool)


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        (_box(), _box(), 1.0),
        (_box(), _box(start=(7, 5, 2)), 2 * 45 / 150),
        (_box(), _box(start=(12, 12, 6)), 0.0),
        (EMPTY, EMPTY, 1.0),
        (_box(), EMPTY, 0.0),
        (EMPTY, _box(), 0.0),
    ],
)
def test_dice(prediction, truth, expected) -> None:
    assert dice_score(prediction, truth) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("prediction", "truth", "spacing", "expected"),
    [
        (_box(), _box(), (1, 1, 1), 0.0),
        (_box(), _box(start=(7, 5, 2)), (1, 1, 1), 2.0),
        (_box(), _box(start=(7, 5, 2)), (1.5, 1, 1), 3.0),
        (EMPTY, EMPTY, (1, 1, 1), 0.0),
        (_box(), EMPTY, (1, 1, 2), math.sqrt(20**2 + 20**2 + 20**2)),
        (EMPTY, _box(), (1, 1, 1), math.sqrt(20**2 + 20**2 + 10**2)),
    ],
)
def test_hd95_in_mm_with_empty_conventions(prediction, truth, spacing, expected) -> None:
    assert hd95(prediction, truth, spacing) == pytest.approx(expected, abs=1e-4)


def test_metrics_reject_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_score(_box(), _box(shape=(20, 20, 11)))


def test_dice_bce_on_hand_made_values() -> None:
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    logits = torch.zeros_like(targets)
    dice = (2 * 1.0 + 1) / (2.0 + 2.0 + 1)
    assert float(DiceBCELoss()(logits, targets)) == pytest.approx((1 - dice) + math.log(2), abs=1e-6)
    confident = (targets * 2 - 1) * 20
    assert float(DiceBCELoss()(confident, targets)) < 1e-6


def test_dice_bce_on_empty_target_is_finite_and_rewards_empty_prediction() -> None:
    targets = torch.zeros(1, 1, 4, 4)
    assert float(DiceBCELoss()(torch.full_like(targets, -20.0), targets)) < 1e-6
    assert float(DiceBCELoss()(torch.full_like(targets, 20.0), targets)) > 1


def test_weighted_bce_weighs_missed_foreground() -> None:
    target = torch.ones(1, 1, 1, 1)
    logit = torch.zeros(1, 1, 1, 1)
    assert float(WeightedBCELoss(25.0)(logit, target)) == pytest.approx(25 * math.log(2), rel=1e-6)
    assert float(WeightedBCELoss(25.0)(logit, 1 - target)) == pytest.approx(math.log(2), rel=1e-6)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal", 25.0)


def test_dice_bce_weights_scale_its_two_terms() -> None:
    from mednca.train.losses import DiceBCELoss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 1, 8, 8), generator=generator)
    targets = (torch.rand((2, 1, 8, 8), generator=generator) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    dice = DiceBCELoss(bce_weight=0.0)(logits, targets)
    torch.testing.assert_close(DiceBCELoss(dice_weight=0.0)(logits, targets), bce)
    torch.testing.assert_close(
        DiceBCELoss(dice_weight=1.2, bce_weight=0.8)(logits, targets), 1.2 * dice + 0.8 * bce
    )
    torch.testing.assert_close(DiceBCELoss()(logits, targets), dice + bce)
