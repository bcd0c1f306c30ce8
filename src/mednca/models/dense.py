"""The NCA cell rule computed densely: every cell, as channels-last convolutions, then the fire mask.

The firing-cells rule (``mednca.models.cells``) does half the arithmetic, but it picks the firing cells with
``torch.nonzero``, whose result size the host must know: on a GPU that is a host-device synchronisation per
step, and the gathers and scatters it needs are what GPUs do worst. The dense rule has no data-dependent
shapes: a reflect-padded 3x3 convolution to both perception maps at once, two 1x1 convolutions, and the
update multiplied by the fire mask, all on the device and all recorded by autograd. On a CPU it is a
candidate measured by ``benchmarks/speed.py`` (oneDNN convolutions in channels-last layout). The step loop
is the rule's (``NCARule.run``); ``mednca.models.formulations.Dense`` applies these kernels in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ConvWeights:
    """The rule's parameters as convolution kernels.

    perception: (2C, C, 3, 3) both perception convolutions; perception_bias: (2C,); first: (hidden, 3C, 1, 1)
    and first_bias: (hidden,) the first per-cell layer on [state, perception]; output: (C, hidden, 1, 1) the
    second layer, with zero rows for the image channels so that they never change.
    """

    perception: Tensor
    perception_bias: Tensor
    first: Tensor
    first_bias: Tensor
    output: Tensor

    def to(self, dtype: torch.dtype) -> ConvWeights:
        """The same kernels in ``dtype`` (differentiable: gradients reach the float32 parameters)."""
        return ConvWeights(*(weight.to(dtype) for weight in vars(self).values()))


def dense_changes(state: Tensor, weights: ConvWeights) -> Tensor:
    """(B, C, H, W) state in the compute dtype -> (B, C, H, W) proposed change of every cell."""
    perception = F.conv2d(
        F.pad(state, (1, 1, 1, 1), mode="reflect"), weights.perception, weights.perception_bias
    )
    hidden = F.relu(F.conv2d(torch.cat([state, perception], dim=1), weights.first, weights.first_bias))
    return F.conv2d(hidden, weights.output)
