"""Neural cellular automata for segmentation: the two-level Med-NCA and its single-level ablation.

Med-NCA (Kalkhof, González, Mukhopadhyay, IPMI 2023) runs one NCA rule on a downscaled image to spread
global context, upscales the cell states, and runs a second rule at full resolution. During training the
second level only sees one random patch per image, which keeps memory small.

Every cell state has ``channels`` channels: the first ``in_channels`` are the image (reset after every
step), the next one is read out as the foreground logit, the rest are free hidden channels.

Randomness (fire masks, patch positions) comes only from the ``generator`` argument, a ``torch.Generator``
on the images' device. When it is ``None`` a fresh generator seeded with 0 is created, so calls without a
generator are reproducible too. The global random state is never used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mednca.models.cells import RuleWeights
from mednca.models.dense import ConvWeights
from mednca.models.formulations import (
    Formulation,
    check_compute,
    formulation_from_record,
    resolve_formulation,
)


def training_steps(steps: int, min_steps: int | None, generator: torch.Generator) -> int:
    """The step count of one training batch: ``steps``, or with ``min_steps`` one uniform draw from
    [min_steps, steps] (from ``generator``; nothing is drawn when it is off)."""
    if min_steps is None:
        return steps
    return int(torch.randint(min_steps, steps + 1, (1,), generator=generator, device=generator.device))


def default_generator(device: torch.device, generator: torch.Generator | None) -> torch.Generator:
    """Return ``generator``, or a new generator on ``device`` seeded with 0 when it is ``None``."""
    if generator is not None:
        return generator
    return torch.Generator(device=device).manual_seed(0)


def _check_images(images: Tensor, in_channels: int) -> None:
    """Raise ValueError unless ``images`` is (B, in_channels, H, W)."""
    if images.dim() != 4 or images.shape[1] != in_channels:
        raise ValueError(f"expected images of shape (B, {in_channels}, H, W), got {tuple(images.shape)}")


def _check_channels(in_channels: int, channels: int) -> None:
    """Raise ValueError unless the state has at least one channel beyond the image channels."""
    if in_channels < 1 or channels <= in_channels:
        raise ValueError(
            f"channels ({channels}) must exceed in_channels ({in_channels}) to leave room for the logit"
        )


def initial_state(images: Tensor, channels: int) -> Tensor:
    """(B, C_in, H, W) images -> (B, channels, H, W) state: the images followed by zeros."""
    batch, in_channels, height, width = images.shape
    hidden = images.new_zeros((batch, channels - in_channels, height, width))
    return torch.cat([images, hidden], dim=1)


class NCARule(nn.Module):
    """One cell-update rule: learned 3x3 perception followed by a per-cell two-layer network.

    Perception concatenates the state with two learned 3x3 convolutions ``p0`` and ``p1`` (reflect
    padding): C -> 3C channels per cell. The update ``fc0`` -> ReLU -> ``fc1`` is the per-cell linear
    layers of the original, stored as 1x1 convolutions. ``fc1`` has no bias and starts at zero, so an
    untrained rule leaves the state unchanged.

    ``run`` is the one step loop: it draws the fire masks and leaves the computation of a step to a
    formulation (``mednca.models.formulations``): the firing cells only on flat channels-last cells
    (``gather``, ``folded``) or every cell and then the mask (``dense``), all equal to convolving and
    updating every cell and masking, up to rounding. ``precision`` (fp32, bf16, auto) sets the dtype of the
    products, the state stays float32; ``cell_rule`` (auto, gather, folded, dense) the formulation; both are
    resolved per device by ``resolve_formulation`` unless a formulation is pinned (``pin``).

    Parameters: 2 * (9C^2 + C) + (3C * hidden + hidden) + hidden * C.
    """

    def __init__(
        self,
        channels: int,
        hidden_size: int = 128,
        input_channels: int = 1,
        precision: str = "fp32",
        cell_rule: str = "auto",
    ) -> None:
        super().__init__()
        _check_channels(input_channels, channels)
        check_compute(precision, cell_rule)
        self.pinned: Formulation | None = None
        self.channels = channels
        self.input_channels = input_channels
        self.precision = precision
        self.cell_rule = cell_rule
        self.p0 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.p1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.fc0 = nn.Conv2d(3 * channels, hidden_size, 1)
        self.fc1 = nn.Conv2d(hidden_size, channels, 1, bias=False)
        nn.init.zeros_(self.fc1.weight)

    def rule_weights(self) -> RuleWeights:
        """The parameters as matrices over gathered neighbourhoods (differentiable views and copies)."""
        channels = self.channels
        output = self.fc1.weight[:, :, 0, 0]
        image_rows = output.new_zeros((self.input_channels, output.shape[1]))
        hidden = self.fc0.weight[:, :, 0, 0]
        return RuleWeights(
            perception=torch.cat([self.p0.weight, self.p1.weight])
            .permute(0, 2, 3, 1)
            .reshape(2 * channels, 9 * channels),
            perception_bias=torch.cat([self.p0.bias, self.p1.bias]),
            state_to_hidden=hidden[:, :channels].contiguous(),
            perception_to_hidden=hidden[:, channels:].contiguous(),
            hidden_bias=self.fc0.bias,
            output=torch.cat([image_rows, output[self.input_channels :]]),
        )

    def conv_weights(self) -> ConvWeights:
        """The parameters as convolution kernels for the dense rule (differentiable views and copies)."""
        output = self.fc1.weight
        image_rows = output.new_zeros((self.input_channels, *output.shape[1:]))
        return ConvWeights(
            perception=torch.cat([self.p0.weight, self.p1.weight]),
            perception_bias=torch.cat([self.p0.bias, self.p1.bias]),
            first=self.fc0.weight,
            first_bias=self.fc0.bias,
            output=torch.cat([image_rows, output[self.input_channels :]]),
        )

    def formulation(self, device: torch.device, training: bool | None = None) -> Formulation:
        """The formulation this rule runs with on ``device`` (``training``, default: whether gradients are
        enabled): the pinned one (``pin``), else ``resolve_formulation`` of its cell rule and precision."""
        if self.pinned is not None:
            return self.pinned
        training = torch.is_grad_enabled() if training is None else training
        return resolve_formulation(self.cell_rule, self.precision, device, training)

    def pin(self, formulation: Formulation | None) -> None:
        """Run with ``formulation`` whatever the device (a loaded model's recorded one, the dense rule of an
        export, the reference rule of a test); None goes back to resolving it."""
        self.pinned = formulation

    def step(self, state: Tensor, fire_rate: float, generator: torch.Generator) -> Tensor:
        """(B, C, H, W) state -> (B, C, H, W) state after one stochastic update.

        Each cell is updated with probability ``fire_rate`` (one mask value per cell, shared by its
        channels); the first ``input_channels`` channels are kept as they were.
        """
        return self.run(state, 1, fire_rate, generator)

    def run(
        self,
        state: Tensor,
        steps: int,
        fire_rate: float,
        generator: torch.Generator | None,
        checkpoint_steps: int = 0,
        noise: Tensor | None = None,
    ) -> Tensor:
        """(B, C, H, W) state -> (B, C, H, W) state after ``steps`` stochastic updates.

        Step k fires the cells whose uniform draw is below ``fire_rate``: one (B, 1, H, W) draw per step
        from ``generator``, or ``noise[k]`` of a given (steps, B, 1, H, W) ``noise`` (an exported graph's
        input). With ``checkpoint_steps`` > 0 and gradients enabled, only every ``checkpoint_steps``-th state
        is kept for backpropagation; the steps in between are recomputed in the backward pass with the same
        draws, so gradients are unchanged and memory no longer grows with every step.
        """
        formulation = self.formulation(state.device)
        work = formulation.prepare(state)
        if noise is not None or checkpoint_steps <= 0 or not torch.is_grad_enabled():
            work = self._steps(work, state.shape, steps, fire_rate, generator, formulation, noise)
        else:
            for start in range(0, steps, checkpoint_steps):
                count = min(checkpoint_steps, steps - start)
                work = self._checkpointed_steps(work, state.shape, count, fire_rate, generator, formulation)
        return formulation.finish(work, state.shape)

    def _steps(
        self,
        work: Tensor,
        shape: torch.Size,
        steps: int,
        fire_rate: float,
        generator: torch.Generator | None,
        formulation: Formulation,
        noise: Tensor | None = None,
    ) -> Tensor:
        """The step loop of every formulation: ``steps`` updates of its working tensor."""
        weights = formulation.weights(self)
        context = formulation.context(shape, work.device)
        batch, _, height, width = shape
        for step in range(steps):
            if noise is None:
                draw = torch.rand(
                    (batch, 1, height, width), generator=generator, device=work.device, dtype=torch.float32
                )
            else:
                draw = noise[step]
            work = formulation.update(work, weights, draw < fire_rate, context)
        return work

    def _checkpointed_steps(
        self,
        work: Tensor,
        shape: torch.Size,
        steps: int,
        fire_rate: float,
        generator: torch.Generator,
        formulation: Formulation,
    ) -> Tensor:
        """``steps`` steps under activation checkpointing, replaying the generator's draws when recomputed."""
        start_state = generator.get_state()
        end_state: list[Tensor] = []

        def segment(start: Tensor) -> Tensor:
            local = torch.Generator(device=generator.device)
            local.set_state(start_state)
            end = self._steps(start, shape, steps, fire_rate, local, formulation)
            end_state[:] = [local.get_state()]
            return end

        work = checkpoint(segment, work, use_reentrant=False, preserve_rng_state=False)
        generator.set_state(end_state[0])
        return work


def _check_rule_settings(
    steps: int, fire_rate: float, checkpoint_steps: int = 0, min_steps: int | None = None
) -> None:
    """Raise ValueError for a negative step count, a fire rate outside (0, 1], negative checkpointing or
    a ``min_steps`` outside [1, steps]."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if min_steps is not None and not 1 <= min_steps <= steps:
        raise ValueError(f"min_steps must be between 1 and steps ({steps}) or null, got {min_steps}")
    if not 0.0 < fire_rate <= 1.0:
        raise ValueError(f"fire_rate must be in (0, 1], got {fire_rate}")
    if checkpoint_steps < 0:
        raise ValueError(f"checkpoint_steps must be >= 0 (0 = off), got {checkpoint_steps}")


class MedNCA(nn.Module):
    """Two-level Med-NCA: (B, C_in, H, W) images -> (B, 1, H, W) foreground logits.

    Level 1 runs ``level1`` for ``steps`` steps on the image downscaled by ``downscale`` with area
    averaging (``F.avg_pool2d``, an exact box filter: antialiased and deterministic). Its state is
    upscaled by nearest interpolation, the image channels are replaced by the full-resolution image, and
    ``level2`` runs for ``steps`` steps. The logit is state channel ``in_channels``.

    H and W must be divisible by ``downscale``. In training, level 2 runs on one random patch per image
    of ``patch_size`` (default: the level-1 size, H/downscale x W/downscale, as in the paper).
    ``checkpoint_steps`` > 0 trades compute for memory in training (see ``NCARule.run``), which lets the
    full-resolution level train on larger patches. ``min_steps`` (None = off) makes each training batch run
    a random number of steps per level, drawn from [min_steps, steps]; inference always runs ``steps``.
    ``precision`` and ``cell_rule`` are passed to both rules (see ``NCARule``).
    25,920 parameters at channels=16, hidden_size=128, in_channels=1.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 16,
        hidden_size: int = 128,
        steps: int = 64,
        fire_rate: float = 0.5,
        downscale: int = 4,
        patch_size: int | None = None,
        checkpoint_steps: int = 0,
        precision: str = "fp32",
        cell_rule: str = "auto",
        min_steps: int | None = None,
    ) -> None:
        super().__init__()
        _check_rule_settings(steps, fire_rate, checkpoint_steps, min_steps)
        if downscale < 1:
            raise ValueError(f"downscale must be >= 1, got {downscale}")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 or None, got {patch_size}")
        self.in_channels = in_channels
        self.channels = channels
        self.steps = steps
        self.fire_rate = fire_rate
        self.downscale = downscale
        self.size_multiple = self.size_multiple_for(downscale=downscale)
        self.patch_size = patch_size
        self.checkpoint_steps = checkpoint_steps
        self.min_steps = min_steps
        self.level1 = NCARule(channels, hidden_size, in_channels, precision, cell_rule)
        self.level2 = NCARule(channels, hidden_size, in_channels, precision, cell_rule)

    @staticmethod
    def size_multiple_for(downscale: int = 4, **_architecture: object) -> int:
        """What image height and width must be a multiple of for these architecture arguments: the
        level-1 ``downscale`` factor (two levels, so one downscaling; level 2 runs at full size)."""
        return int(downscale)

    def check_images(self, images: Tensor) -> None:
        """Raise ValueError unless images are (B, C_in, H, W) with H, W divisible by ``downscale``."""
        _check_images(images, self.in_channels)
        height, width = images.shape[-2:]
        if height % self.downscale or width % self.downscale:
            raise ValueError(
                f"MedNCA: image size {height}x{width} is not divisible by downscale={self.downscale}"
            )

    def level1_input(self, images: Tensor) -> Tensor:
        """(B, C_in, H, W) images -> (B, C, H/downscale, W/downscale) initial level-1 state."""
        small = F.avg_pool2d(images, self.downscale) if self.downscale > 1 else images
        return initial_state(small, self.channels)

    def level2_input(self, images: Tensor, level1_state: Tensor) -> Tensor:
        """Level-1 state upscaled (nearest) to the images' size, its image channels replaced by the images."""
        upscaled = F.interpolate(level1_state, size=images.shape[-2:], mode="nearest")
        return torch.cat([images, upscaled[:, self.in_channels :]], dim=1)

    def coarse_state(self, images: Tensor, generator: torch.Generator, steps: int | None = None) -> Tensor:
        """(B, C_in, H, W) images -> (B, C, H, W) level-1 state after ``steps`` (default ``self.steps``)
        steps, upscaled, with the full image channels."""
        steps = self.steps if steps is None else steps
        state = self.level1.run(
            self.level1_input(images), steps, self.fire_rate, generator, self.checkpoint_steps
        )
        return self.level2_input(images, state)

    def _logits(self, state: Tensor, generator: torch.Generator, steps: int | None = None) -> Tensor:
        """(B, C, h, w) level-2 input state -> (B, 1, h, w) logits after the level-2 steps."""
        steps = self.steps if steps is None else steps
        state = self.level2.run(state, steps, self.fire_rate, generator, self.checkpoint_steps)
        return state[:, self.in_channels : self.in_channels + 1]

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, C_in, H, W) images -> (B, 1, H, W) foreground logits, level 2 on the whole image."""
        self.check_images(images)
        generator = default_generator(images.device, generator)
        return self._logits(self.coarse_state(images, generator), generator)

    def _patch_shape(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) of the level-2 training patch for an H x W image, clipped to the image."""
        if self.patch_size is None:
            return height // self.downscale, width // self.downscale
        return min(self.patch_size, height), min(self.patch_size, width)

    def training_forward(
        self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, C_in, H, W) images, (B, 1, H, W) labels -> (B, 1, P, P) patch logits and label patches.

        Level 1 runs on the whole downscaled image; level 2 runs on one random patch per image (corners
        drawn from ``generator`` independently per item). Gradients flow through both levels.
        """
        self.check_images(images)
        generator = default_generator(images.device, generator)
        steps = training_steps(self.steps, self.min_steps, generator)
        state = self.coarse_state(images, generator, steps)
        patch = self._patch_shape(*images.shape[-2:])
        corners = random_corners(images.shape, patch, generator)
        return self._logits(crop(state, corners, patch), generator, steps), crop(labels, corners, patch)


def random_corners(
    shape: torch.Size, patch: tuple[int, int], generator: torch.Generator
) -> list[tuple[int, int]]:
    """Top-left (y, x) corners of one random ``patch`` per item of a (B, C, H, W) ``shape``."""
    batch, _, height, width = shape
    ys = torch.randint(height - patch[0] + 1, (batch,), generator=generator, device=generator.device)
    xs = torch.randint(width - patch[1] + 1, (batch,), generator=generator, device=generator.device)
    return list(zip(ys.tolist(), xs.tolist(), strict=True))


def crop(tensor: Tensor, corners: list[tuple[int, int]], patch: tuple[int, int]) -> Tensor:
    """(B, C, H, W) tensor -> (B, C, h, w) patches, one per item at its (y, x) corner."""
    height, width = patch
    return torch.stack(
        [item[:, y : y + height, x : x + width] for item, (y, x) in zip(tensor, corners, strict=True)]
    )


class SingleLevelNCA(nn.Module):
    """Single-level NCA ablation: one rule at full resolution, (B, C_in, H, W) -> (B, 1, H, W) logits.

    The state starts as the image followed by zeros and runs for ``steps`` steps (in training, with
    ``min_steps``, a random count from [min_steps, steps] per batch); the logit is state channel
    ``in_channels``. 12,960 parameters at channels=16, hidden_size=128, in_channels=1.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 16,
        hidden_size: int = 128,
        steps: int = 64,
        fire_rate: float = 0.5,
        checkpoint_steps: int = 0,
        precision: str = "fp32",
        cell_rule: str = "auto",
        min_steps: int | None = None,
    ) -> None:
        super().__init__()
        _check_rule_settings(steps, fire_rate, checkpoint_steps, min_steps)
        self.min_steps = min_steps
        self.in_channels = in_channels
        self.channels = channels
        self.steps = steps
        self.fire_rate = fire_rate
        self.checkpoint_steps = checkpoint_steps
        self.size_multiple = self.size_multiple_for()
        self.rule = NCARule(channels, hidden_size, in_channels, precision, cell_rule)

    @staticmethod
    def size_multiple_for(**_architecture: object) -> int:
        """What image height and width must be a multiple of: 1, it runs at full resolution only."""
        return 1

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None, steps: int | None = None
    ) -> Tensor:
        """(B, C_in, H, W) images -> (B, 1, H, W) foreground logits after ``steps`` (default: ``steps``)."""
        _check_images(images, self.in_channels)
        generator = default_generator(images.device, generator)
        steps = self.steps if steps is None else steps
        state = self.rule.run(
            initial_state(images, self.channels), steps, self.fire_rate, generator, self.checkpoint_steps
        )
        return state[:, self.in_channels : self.in_channels + 1]

    def training_forward(
        self, images: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(B, C_in, H, W) images, (B, 1, H, W) labels -> ((B, 1, H, W) logits, the labels)."""
        generator = default_generator(images.device, generator)
        steps = training_steps(self.steps, self.min_steps, generator)
        return self.forward(images, generator, steps), labels


def nca_rules(model: nn.Module) -> list[NCARule]:
    """The NCA rules of a model (both levels of a Med-NCA), empty for any other model."""
    return [module for module in model.modules() if isinstance(module, NCARule)]


def resolved_formulations(model: nn.Module, device: torch.device) -> dict[str, dict[str, str]] | None:
    """How an NCA computes on ``device``: ``{"training": ..., "inference": ...}``, each the formulation's
    ``describe()``; None for a model without NCA rules."""
    rules = nca_rules(model)
    if not rules:
        return None
    rule = rules[0]
    return {
        "training": rule.formulation(device, training=True).describe(),
        "inference": rule.formulation(device, training=False).describe(),
    }


def pin_formulation(model: nn.Module, facts: dict[str, str]) -> None:
    """Pin the formulation ``facts`` describes (``Formulation.describe``) on every rule of ``model``;
    ValueError if it is unknown."""
    formulation = formulation_from_record(facts)
    for rule in nca_rules(model):
        rule.pin(formulation)
