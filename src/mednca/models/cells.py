"""The NCA cell rule computed for the firing cells only, on a flat channels-last state.

A state of B images of H x W cells with C channels is held as ``cells``, a (B * H * W, C) tensor (row
``b * H * W + y * W + x``), for a whole run of steps: no padding, transposing or concatenation per step.
A firing cell's 3x3 neighbourhood is gathered straight from ``cells`` through a table of reflected
neighbour positions, which is what reflect padding computes. Perception and the per-cell network are then
matrix multiplications over the gathered rows, in chunks that stay in the CPU's cache.

``CellUpdate`` is the autograd function of one step's updates with a hand-written backward pass: it keeps
only the activations the gradients need (the neighbourhood rows are looked up again from the firing rows and
the run's shared neighbour table, not stored per step) and accumulates the weight gradients of all chunks in
place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

ROWS_PER_CHUNK = 4096
"""Cells whose perception and per-cell network run as one set of matrix multiplications: their (4096, 9C)
neighbourhoods and (4096, hidden) activations stay in the CPU's cache, which is several times faster than
one multiplication over every cell of the batch."""


def reflected_neighbours(batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """(B * H * W, 9) rows of each cell's 3x3 neighbours in a (B * H * W, C) state, in (dy, dx) order,
    with reflection at the border as in reflect padding by one cell (row -1 is row 1, row H is H - 2)."""
    if height < 2 or width < 2:
        raise ValueError(f"the 3x3 reflect-padded perception needs at least 2x2 cells, got {height}x{width}")

    def reflect(index: Tensor, size: int) -> Tensor:
        return torch.where(index < 0, -index, torch.where(index >= size, 2 * (size - 1) - index, index))

    offsets = torch.arange(-1, 2, device=device)
    ys = reflect(torch.arange(height, device=device)[:, None] + offsets, height)  # (H, 3)
    xs = reflect(torch.arange(width, device=device)[:, None] + offsets, width)  # (W, 3)
    in_image = (ys[:, None, :, None] * width + xs[None, :, None, :]).reshape(height * width, 9)
    image_start = torch.arange(batch, device=device) * (height * width)
    return (image_start[:, None, None] + in_image).reshape(-1, 9)


@dataclass(frozen=True)
class RuleWeights:
    """The cell rule's parameters as matrices over gathered neighbourhoods.

    perception: (2C, 9C) the two 3x3 convolutions in the (dy, dx, channel) order of a neighbourhood row;
    perception_bias: (2C,); state_to_hidden: (hidden, C), perception_to_hidden: (hidden, 2C) and
    hidden_bias: (hidden,) the first per-cell layer on [state, perception]; output: (C, hidden) the second
    layer, with zero rows for the image channels so that they never change.
    """

    perception: Tensor
    perception_bias: Tensor
    state_to_hidden: Tensor
    perception_to_hidden: Tensor
    hidden_bias: Tensor
    output: Tensor

    def as_tuple(self) -> tuple[Tensor, ...]:
        return (
            self.perception,
            self.perception_bias,
            self.state_to_hidden,
            self.perception_to_hidden,
            self.hidden_bias,
            self.output,
        )


def _chunks(firing: Tensor, neighbours: Tensor) -> list[tuple[slice, Tensor]]:
    """(N,) firing rows, (M, 9) neighbour table -> per chunk of ``ROWS_PER_CHUNK`` firing cells: their
    slice of ``firing`` and their (n, 9) neighbourhood rows."""
    parts = [slice(start, start + ROWS_PER_CHUNK) for start in range(0, len(firing), ROWS_PER_CHUNK)]
    return [(part, neighbours[firing[part]]) for part in parts]


def _gather(cells: Tensor, rows: Tensor) -> Tensor:
    """(M, C) cells, (n, 9) rows -> (n, 9C) neighbourhoods."""
    return cells.index_select(0, rows.reshape(-1)).reshape(len(rows), -1)


def _centre(neighbourhoods: Tensor, channels: int) -> Tensor:
    """(n, 9C) neighbourhoods -> (n, C) view of the cells' own states."""
    return neighbourhoods[:, 4 * channels : 5 * channels]


def _chunk_forward(neighbourhoods: Tensor, weights: RuleWeights, changes: Tensor) -> tuple[Tensor, Tensor]:
    """(n, 9C) neighbourhoods -> (n, 2C) perception and (n, hidden) ReLU activations; writes the (n, C)
    updates into ``changes``. The first layer is split into its state and perception parts so that the
    [state, perception] concatenation is never built."""
    conv = torch.addmm(weights.perception_bias, neighbourhoods, weights.perception.t())
    centre = _centre(neighbourhoods, changes.shape[1])
    hidden = torch.addmm(weights.hidden_bias, centre, weights.state_to_hidden.t())
    hidden.addmm_(conv, weights.perception_to_hidden.t()).relu_()
    torch.mm(hidden, weights.output.t(), out=changes)
    return conv, hidden


def cell_updates(cells: Tensor, firing: Tensor, neighbours: Tensor, weights: RuleWeights) -> Tensor:
    """(M, C) state, (N,) firing rows, (M, 9) neighbour table -> (N, C) proposed changes of the
    firing cells. Differentiable with respect to ``cells`` and the weights when gradients are enabled."""
    if torch.is_grad_enabled() and (cells.requires_grad or weights.output.requires_grad):
        return CellUpdate.apply(cells, firing, neighbours, *weights.as_tuple())
    changes = cells.new_empty((len(firing), cells.shape[1]))
    for part, rows in _chunks(firing, neighbours):
        _chunk_forward(_gather(cells, rows), weights, changes[part])
    return changes


class CellUpdate(torch.autograd.Function):
    """``cell_updates`` with a backward pass that reuses the saved perception and activations."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, cells: Tensor, firing: Tensor, neighbours: Tensor, *parameters: Tensor
    ) -> Tensor:
        weights = RuleWeights(*parameters)
        changes = cells.new_empty((len(firing), cells.shape[1]))
        saved = []
        for part, rows in _chunks(firing, neighbours):
            saved += _chunk_forward(_gather(cells, rows), weights, changes[part])
        ctx.save_for_backward(cells, firing, neighbours, *parameters, *saved)
        return changes

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_changes: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        cells, firing, neighbours, *saved = ctx.saved_tensors
        weights = RuleWeights(*saved[:6])
        activations = saved[6:]  # (n, 2C) perception and (n, hidden) activations of each chunk
        channels = cells.shape[1]
        grads = [torch.zeros_like(parameter) for parameter in weights.as_tuple()]
        grad_perception, grad_perception_bias, grad_state_to_hidden, grad_perception_to_hidden = grads[:4]
        grad_hidden_bias, grad_output = grads[4:]
        grad_cells = torch.zeros_like(cells) if ctx.needs_input_grad[0] else None
        for index, (part, rows) in enumerate(_chunks(firing, neighbours)):
            conv, hidden = activations[2 * index : 2 * index + 2]
            neighbourhoods = _gather(cells, rows)
            grad_change = grad_changes[part]
            grad_output.addmm_(grad_change.t(), hidden)
            grad_hidden = torch.ops.aten.threshold_backward(grad_change @ weights.output, hidden, 0)
            grad_state_to_hidden.addmm_(grad_hidden.t(), _centre(neighbourhoods, channels))
            grad_perception_to_hidden.addmm_(grad_hidden.t(), conv)
            grad_hidden_bias += grad_hidden.sum(0)
            grad_conv = grad_hidden @ weights.perception_to_hidden
            grad_perception.addmm_(grad_conv.t(), neighbourhoods)
            grad_perception_bias += grad_conv.sum(0)
            if grad_cells is not None:
                grad_neighbourhoods = grad_conv @ weights.perception
                _centre(grad_neighbourhoods, channels).addmm_(grad_hidden, weights.state_to_hidden)
                grad_cells.index_add_(0, rows.reshape(-1), grad_neighbourhoods.reshape(-1, channels))
        return (grad_cells, None, None, *grads)


def apply_updates(cells: Tensor, firing: Tensor, changes: Tensor) -> Tensor:
    """(M, C) state plus (N, C) changes at rows ``firing``; in place when no gradient is recorded."""
    if torch.is_grad_enabled() and (cells.requires_grad or changes.requires_grad):
        return cells.index_add(0, firing, changes)
    return cells.index_add_(0, firing, changes)


def to_cells(state: Tensor) -> Tensor:
    """(B, C, H, W) state -> (B * H * W, C) cells in new memory (steps may update them in place)."""
    batch, channels, height, width = state.shape
    cells = state.new_empty((batch * height * width, channels))
    cells.view(batch, height, width, channels).copy_(state.permute(0, 2, 3, 1))
    return cells


def from_cells(cells: Tensor, shape: torch.Size) -> Tensor:
    """(B * H * W, C) cells -> (B, C, H, W) state of ``shape``."""
    batch, channels, height, width = shape
    return cells.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class FoldedWeights:
    """The rule with its perception folded into the first per-cell layer, which is linear in both.

    first: (hidden, 9C) = perception_to_hidden @ perception, plus state_to_hidden on the centre cell's
    columns; first_bias: (hidden,) = hidden_bias + perception_to_hidden @ perception_bias;
    output: (C, hidden).
    One wide product per step then replaces four narrow ones (about 1.6x the arithmetic, in the shapes that
    AVX-512 and AMX run fastest, and in bfloat16 at several times the fp32 rate where the CPU has it).
    """

    first: Tensor
    first_bias: Tensor
    output: Tensor

    def as_tuple(self) -> tuple[Tensor, ...]:
        return (self.first, self.first_bias, self.output)


def fold(weights: RuleWeights) -> FoldedWeights:
    """``RuleWeights`` -> ``FoldedWeights`` (differentiable: gradients reach the rule's own parameters)."""
    channels = weights.output.shape[0]
    centre = torch.nn.functional.pad(weights.state_to_hidden, (4 * channels, 4 * channels))
    return FoldedWeights(
        first=weights.perception_to_hidden @ weights.perception + centre,
        first_bias=weights.hidden_bias + weights.perception_to_hidden @ weights.perception_bias,
        output=weights.output,
    )


def _folded_chunk(neighbourhoods: Tensor, weights: FoldedWeights, changes: Tensor) -> Tensor:
    """(n, 9C) neighbourhoods in the compute dtype -> (n, hidden) ReLU activations; writes the (n, C)
    updates (in the state's dtype) into ``changes``."""
    hidden = torch.addmm(weights.first_bias, neighbourhoods, weights.first.t()).relu_()
    changes.copy_(hidden @ weights.output.t())
    return hidden


def folded_cell_updates(
    cells: Tensor, firing: Tensor, neighbours: Tensor, weights: FoldedWeights, dtype: torch.dtype
) -> Tensor:
    """``cell_updates`` through the folded rule, its products computed in ``dtype`` (float32 or
    bfloat16; the state, the updates and the weight gradients stay in the state's dtype)."""
    if torch.is_grad_enabled() and (cells.requires_grad or weights.output.requires_grad):
        return FoldedCellUpdate.apply(cells, firing, neighbours, dtype, *weights.as_tuple())
    compute = FoldedWeights(*(weight.to(dtype) for weight in weights.as_tuple()))
    changes = cells.new_empty((len(firing), cells.shape[1]))
    cells_in_dtype = cells.to(dtype)  # one conversion of the state instead of one per gathered copy
    for part, rows in _chunks(firing, neighbours):
        _folded_chunk(_gather(cells_in_dtype, rows), compute, changes[part])
    return changes


class FoldedCellUpdate(torch.autograd.Function):
    """``folded_cell_updates`` with a hand-written backward pass (products in the compute dtype, gradients
    accumulated in the state's dtype)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, cells: Tensor, firing: Tensor, neighbours: Tensor, dtype: torch.dtype, *parameters
    ) -> Tensor:
        compute = FoldedWeights(*(weight.to(dtype) for weight in parameters))
        changes = cells.new_empty((len(firing), cells.shape[1]))
        cells_in_dtype = cells.to(dtype)
        saved = [
            _folded_chunk(_gather(cells_in_dtype, rows), compute, changes[part])
            for part, rows in _chunks(firing, neighbours)
        ]
        ctx.state_dtype = cells.dtype
        ctx.save_for_backward(cells_in_dtype, firing, neighbours, *compute.as_tuple(), *saved)
        return changes

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_changes: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        cells, firing, neighbours, first, first_bias, output, *activations = ctx.saved_tensors
        state_dtype, channels = ctx.state_dtype, cells.shape[1]
        grad_first = torch.zeros(first.shape, dtype=state_dtype, device=cells.device)
        grad_bias = torch.zeros(first_bias.shape, dtype=state_dtype, device=cells.device)
        grad_output = torch.zeros(output.shape, dtype=state_dtype, device=cells.device)
        grad_cells = torch.zeros(cells.shape, dtype=state_dtype, device=cells.device)
        for (part, rows), hidden in zip(_chunks(firing, neighbours), activations, strict=True):
            neighbourhoods = _gather(cells, rows)
            grad_change = grad_changes[part].to(cells.dtype)
            grad_output += grad_change.t() @ hidden
            grad_hidden = torch.ops.aten.threshold_backward(grad_change @ output, hidden, 0)
            grad_first += grad_hidden.t() @ neighbourhoods
            grad_bias += grad_hidden.sum(0, dtype=state_dtype)
            if ctx.needs_input_grad[0]:
                grad_neighbourhoods = (grad_hidden @ first).to(state_dtype)
                grad_cells.index_add_(0, rows.reshape(-1), grad_neighbourhoods.reshape(-1, channels))
        grad_cells = grad_cells if ctx.needs_input_grad[0] else None
        return (grad_cells, None, None, None, grad_first, grad_bias, grad_output)
