"""The UNet baseline: a thin wrapper of MONAI's residual 2D UNet with a single foreground logit."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class UNet2D(nn.Module):
    """MONAI 2D UNet: (B, C_in, H, W) images -> (B, 1, H, W) foreground logits.

    The Med-NCA paper compares against a "classic UNet" of about 37M parameters; the default here is the
    smaller MONAI configuration (channels 16..256, two residual units per level), whose size is reported
    by ``count_parameters``. H and W must be divisible by the product of ``strides``. Deterministic: the
    ``generator`` arguments are accepted for the common interface and ignored.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        strides: Sequence[int] = (2, 2, 2, 2),
        num_res_units: int = 2,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels, strides = tuple(channels), tuple(strides)
        if len(strides) != len(channels) - 1:
            raise ValueError(f"UNet2D needs len(strides) == len(channels) - 1, got {strides} and {channels}")
        self.in_channels = in_channels
        self.size_multiple = self.size_multiple_for(strides=strides)
        from monai.networks.nets import UNet  # MONAI takes seconds to import: only when a UNet is built

        self.net = UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            channels=channels,
            strides=strides,
            num_res_units=num_res_units,
            norm=norm,
            dropout=dropout,
        )

    @staticmethod
    def size_multiple_for(strides: Sequence[int] = (2, 2, 2, 2), **_architecture: object) -> int:
        """What image height and width must be a multiple of for these architecture arguments: the
        product of the ``strides`` (each encoder level divides the size by its stride)."""
        return math.prod(int(stride) for stride in strides)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, C_in, H, W) images -> (B, 1, H, W) foreground logits; ``generator`` is ignored."""
        height, width = images.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"UNet2D: image size {height}x{width} is not divisible by the stride product "
                f"{self.size_multiple}"
            )
        return self.net(images)

    def training_forward(
        self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, C_in, H, W) images, (B, 1, H, W) labels -> ((B, 1, H, W) logits, the labels)."""
        return self.forward(images), labels
