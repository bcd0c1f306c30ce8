"""The MRISeg baseline: a VGG16-style SegNet with a single whole-tumour logit.

MRISeg applied a sigmoid in the model and then ``BCEWithLogitsLoss`` (a double sigmoid); here the model
returns raw logits and the loss applies the sigmoid once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ENCODER_DEPTHS = (2, 2, 3, 3, 3)
WIDTH_FACTORS = (1, 2, 4, 8, 8)


def unpool(x: Tensor, indices: Tensor, output_size: torch.Size) -> Tensor:
    """(B, C, h, w) pooled values and max-pool indices -> (B, C, H, W) unpooled, H, W = output_size.

    ``max_unpool2d`` is not implemented on Apple MPS, so on that device the operation runs on the CPU and
    the result is moved back.
    """
    if x.device.type == "mps":
        return F.max_unpool2d(x.cpu(), indices.cpu(), 2, 2, output_size=output_size).to(x.device)
    return F.max_unpool2d(x, indices, 2, 2, output_size=output_size)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """(B, in, H, W) -> (B, out, H, W): 3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def encoder_block(in_channels: int, out_channels: int, depth: int) -> nn.Sequential:
    """(B, in, H, W) -> (B, out, H, W): ``depth`` conv-BN-ReLU layers (pooling is done by the caller)."""
    widths = [in_channels] + [out_channels] * depth
    return nn.Sequential(*(conv_bn_relu(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))


def decoder_block(in_channels: int, out_channels: int, depth: int, last: bool) -> nn.Sequential:
    """(B, in, H, W) -> (B, out, H, W): ``depth`` convs, the last one changing the width.

    When ``last`` the final conv is a plain 3x3 convolution (the output logit, no BN/ReLU).
    """
    layers = [conv_bn_relu(in_channels, in_channels) for _ in range(depth - 1)]
    layers.append(
        nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if last
        else conv_bn_relu(in_channels, out_channels)
    )
    return nn.Sequential(*layers)


class SegNet(nn.Module):
    """VGG16-style SegNet: (B, C_in, H, W) images -> (B, 1, H, W) foreground logits (no sigmoid).

    Encoder: 5 blocks of 2, 2, 3, 3, 3 conv-BN-ReLU layers with widths base * (1, 2, 4, 8, 8), each
    followed by 2x2 max pooling that keeps its indices. Decoder: 5 blocks, each unpooling with the matching
    indices and then 3, 3, 3, 2, 2 convs going back down in width; the last conv outputs the logit.
    H and W can be any size of at least 32 (unpooling restores each stage's size, as MRISeg feeds 240x240
    BraTS slices). About 29.4M parameters at base_channels=64 with 3 inputs.
    Deterministic: ``generator`` arguments are accepted for the common interface and ignored.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.size_multiple = self.size_multiple_for()
        self.min_side = self.min_side_for()
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        widths = [in_channels] + [base_channels * factor for factor in WIDTH_FACTORS]
        self.encoders = nn.ModuleList(
            encoder_block(widths[i], widths[i + 1], depth) for i, depth in enumerate(ENCODER_DEPTHS)
        )
        out_widths = [1] + widths[1:-1]
        self.decoders = nn.ModuleList(
            decoder_block(widths[i + 1], out_widths[i], depth, last=i == 0)
            for i, depth in reversed(list(enumerate(ENCODER_DEPTHS)))
        )

    @staticmethod
    def size_multiple_for(**_architecture: object) -> int:
        """What image height and width must be a multiple of: 1, since each unpooling restores the size
        its pooling saw (odd sizes included)."""
        return 1

    @staticmethod
    def min_side_for(**_architecture: object) -> int:
        """The smallest image height and width: 2 ** 5 = 32, so that the 5 halvings of the encoder leave at
        least one pixel (whatever the width)."""
        return 2 ** len(ENCODER_DEPTHS)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, C_in, H, W) images -> (B, 1, H, W) foreground logits; ``generator`` is ignored."""
        height, width = images.shape[-2:]
        if min(height, width) < self.min_side:
            raise ValueError(f"SegNet: image size {height}x{width} is below {self.min_side} on a side")
        x, pooled = images, []
        for encoder in self.encoders:
            x = encoder(x)
            size = x.shape
            x, indices = self.pool(x)
            pooled.append((indices, size))
        for decoder, (indices, size) in zip(self.decoders, reversed(pooled), strict=True):
            x = decoder(unpool(x, indices, size))
        return x

    def training_forward(
        self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, C_in, H, W) images, (B, 1, H, W) labels -> ((B, 1, H, W) logits, the labels)."""
        return self.forward(images), labels
