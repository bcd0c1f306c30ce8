"""The NCA cell rule as the original Med-NCA code computes it, as a reference for tests and benchmarks.

The original updates every cell: two separate reflect-padded perception convolutions, the state transposed
to channels-last, per-cell ``Linear`` layers on all cells, a random fire mask drawn as a full tensor, and
transposes back. ``ReferenceRule`` does exactly that with the parameters of an ``NCARule``, drawing the same
random numbers, so the fast rule must give the same states (up to floating-point rounding).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mednca.models.cells import from_cells, to_cells
from mednca.models.nca import NCARule


class ReferenceRule(NCARule):
    """``NCARule`` with the original, unoptimised step (same parameters, same random stream)."""

    def step(self, state: Tensor, fire_rate: float, generator: torch.Generator) -> Tensor:
        """(B, C, H, W) state -> (B, C, H, W) state after one stochastic update of every cell."""
        p0 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), self.p0.weight, self.p0.bias)
        p1 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), self.p1.weight, self.p1.bias)
        perception = torch.cat([state, p0, p1], dim=1).transpose(1, 3)
        hidden = F.relu(F.linear(perception, self.fc0.weight[:, :, 0, 0], self.fc0.bias))
        dx = F.linear(hidden, self.fc1.weight[:, :, 0, 0]).transpose(1, 3)
        batch, _, height, width = state.shape
        noise = torch.rand(
            (batch, 1, height, width), generator=generator, device=state.device, dtype=state.dtype
        )
        updated = state + dx * (noise < fire_rate).to(state.dtype)
        return torch.cat([state[:, : self.input_channels], updated[:, self.input_channels :]], dim=1)

    def formulation(self, device: torch.device) -> tuple[str, torch.dtype]:
        """Always the cells path, whose ``_cell_steps`` this class replaces by the original loop."""
        return "gather", torch.float32

    def _cell_steps(
        self,
        cells: Tensor,
        shape: torch.Size,
        steps: int,
        fire_rate: float,
        generator: torch.Generator,
        formulation: tuple[str, torch.dtype],
    ) -> Tensor:
        """The original loop of ``step`` on the (B, C, H, W) state held by the (B * H * W, C) ``cells``."""
        state = from_cells(cells, shape)
        for _ in range(steps):
            state = self.step(state, fire_rate, generator)
        return to_cells(state)


def with_reference_rules(model: nn.Module) -> nn.Module:
    """A copy of an NCA model whose rules take the original step (weights shared by value)."""
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if type(module) is NCARule:
            module.__class__ = ReferenceRule
    return reference
