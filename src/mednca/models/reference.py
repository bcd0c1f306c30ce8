"""The NCA cell rule as the original Med-NCA code computes it, as a reference for tests and benchmarks.

The original updates every cell: two separate reflect-padded perception convolutions, the state transposed
to channels-last, per-cell ``Linear`` layers on all cells, a random fire mask drawn as a full tensor, and
transposes back. ``reference_steps`` does exactly that with the parameters of an ``NCARule``, drawing the
same random numbers, so the fast formulations must give the same states (up to floating-point rounding).
An ``NCARule`` with ``cell_rule="reference"`` runs it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REFERENCE_RULE = "reference"
"""The ``cell_rule`` of an ``NCARule`` that computes its steps with ``reference_steps``."""


def reference_steps(
    rule: nn.Module, state: Tensor, steps: int, fire_rate: float, generator: torch.Generator
) -> Tensor:
    """(B, C, H, W) state -> the state after ``steps`` updates of every cell with ``rule``'s parameters
    (its ``p0``, ``p1``, ``fc0``, ``fc1`` and ``input_channels``), as the original code computes them."""
    batch, _, height, width = state.shape
    for _ in range(steps):
        p0 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), rule.p0.weight, rule.p0.bias)
        p1 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), rule.p1.weight, rule.p1.bias)
        perception = torch.cat([state, p0, p1], dim=1).transpose(1, 3)
        hidden = F.relu(F.linear(perception, rule.fc0.weight[:, :, 0, 0], rule.fc0.bias))
        dx = F.linear(hidden, rule.fc1.weight[:, :, 0, 0]).transpose(1, 3)
        noise = torch.rand(
            (batch, 1, height, width), generator=generator, device=state.device, dtype=state.dtype
        )
        updated = state + dx * (noise < fire_rate).to(state.dtype)
        state = torch.cat([state[:, : rule.input_channels], updated[:, rule.input_channels :]], dim=1)
    return state


def with_reference_rules(model: nn.Module) -> nn.Module:
    """A copy of an NCA model (or rule) whose rules compute the original way (weights copied by value)."""
    from mednca.models.nca import NCARule  # nca imports this module for reference_steps

    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, NCARule):
            module.cell_rule = REFERENCE_RULE
    return reference
