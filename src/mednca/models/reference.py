"""The NCA cell rule as the original Med-NCA code computes it, as a reference for tests and benchmarks.

The original updates every cell: two separate reflect-padded perception convolutions, the state transposed
to channels-last, per-cell ``Linear`` layers on all cells, the fire mask applied to the full update, the
image channels put back, and transposes back. ``Reference`` is that computation as a formulation
(``mednca.models.formulations``), run by the rule's own step loop with the same random draws, so the fast
formulations must give the same states up to floating-point rounding. It is not a production formulation:
``with_reference_rules`` pins it on a copy of a model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mednca.models.formulations import Formulation


@dataclass(frozen=True)
class Reference(Formulation):
    """Every cell, the original way, in float32; ``weights`` is the rule itself (its p0, p1, fc0, fc1)."""

    name: ClassVar[str] = "reference"

    def weights(self, rule: nn.Module) -> Any:
        return rule

    def update(self, work: Tensor, weights: Any, fire: Tensor, context: Any) -> Tensor:
        rule, state = weights, work
        p0 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), rule.p0.weight, rule.p0.bias)
        p1 = F.conv2d(F.pad(state, (1, 1, 1, 1), mode="reflect"), rule.p1.weight, rule.p1.bias)
        perception = torch.cat([state, p0, p1], dim=1).transpose(1, 3)
        hidden = F.relu(F.linear(perception, rule.fc0.weight[:, :, 0, 0], rule.fc0.bias))
        dx = F.linear(hidden, rule.fc1.weight[:, :, 0, 0]).transpose(1, 3)
        updated = state + dx * fire.to(state.dtype)
        return torch.cat([state[:, : rule.input_channels], updated[:, rule.input_channels :]], dim=1)

    def describe(self) -> dict[str, str]:
        return {"cell_rule": self.name, "dtype": "fp32"}


def with_reference_rules(model: nn.Module) -> nn.Module:
    """A copy of an NCA model (or rule) whose rules compute the original way (weights copied by value)."""
    from mednca.models.nca import NCARule

    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, NCARule):
            module.pin(Reference())
    return reference
