"""How an NCA rule's steps are computed: the formulations behind one interface, and the one function that
chooses among them.

``NCARule`` owns the single step loop (``NCARule.run``): it draws each step's (B, 1, H, W) fire mask from
the run's generator (or takes it from given noise), and asks its formulation for the next working tensor.
A formulation implements only what differs between ways of computing the same rule:

- ``prepare``: the (B, C, H, W) float32 state -> the working tensor it steps on;
- ``context``: what a run shares between its steps (e.g. a neighbour table), from the state's shape;
- ``weights``: the rule's parameters arranged for it (differentiable; computed inside a checkpoint segment);
- ``update``: the working tensor after one step, given the (B, 1, H, W) boolean fire mask;
- ``finish``: the working tensor -> the (B, C, H, W) state.

Every formulation keeps the image channels fixed the same way: the rule's output rows for them are zero.
The production formulations are ``gather`` and ``folded`` (the firing cells only, ``mednca.models.cells``)
and ``dense`` (every cell as channels-last convolutions, then the mask, ``mednca.models.dense``); tests and
benchmarks add the original code's computation (``mednca.models.reference``). A new formulation is one
class in this file, added to ``FORMULATIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mednca.device import has_native_bf16
from mednca.models.cells import (
    apply_updates,
    cell_updates,
    fold,
    folded_cell_updates,
    from_cells,
    reflected_neighbours,
    to_cells,
)
from mednca.models.dense import dense_changes

PRECISIONS = ("fp32", "bf16", "auto")
CELL_RULES = ("auto", "gather", "folded", "dense")
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Formulation:
    """A way of computing an NCA rule's steps, its matrix products in ``dtype`` (the state stays float32).
    The base class is the identity on the (B, C, H, W) state; subclasses override what they change."""

    dtype: torch.dtype = torch.float32
    name: ClassVar[str] = ""

    def prepare(self, state: Tensor) -> Tensor:
        return state

    def context(self, shape: torch.Size, device: torch.device) -> Any:
        return None

    def weights(self, rule: nn.Module) -> Any:
        raise NotImplementedError

    def update(self, work: Tensor, weights: Any, fire: Tensor, context: Any) -> Tensor:
        raise NotImplementedError

    def finish(self, work: Tensor, shape: torch.Size) -> Tensor:
        return work

    def describe(self) -> dict[str, str]:
        """``{"cell_rule": name, "dtype": "fp32" | "bf16"}``, as model files and records keep it."""
        return {"cell_rule": self.name, "dtype": DTYPE_NAMES[self.dtype]}


@dataclass(frozen=True)
class Gathered(Formulation):
    """The firing cells only, on flat (B * H * W, C) channels-last cells; products in float32."""

    name: ClassVar[str] = "gather"

    def prepare(self, state: Tensor) -> Tensor:
        return to_cells(state)

    def context(self, shape: torch.Size, device: torch.device) -> Tensor:
        batch, _, height, width = shape
        return reflected_neighbours(batch, height, width, device)

    def weights(self, rule: nn.Module) -> Any:
        return rule.rule_weights()

    def changes(self, cells: Tensor, firing: Tensor, neighbours: Tensor, weights: Any) -> Tensor:
        """(N, C) changes of the (N,) firing rows."""
        return cell_updates(cells, firing, neighbours, weights)

    def update(self, work: Tensor, weights: Any, fire: Tensor, context: Tensor) -> Tensor:
        firing = torch.nonzero(fire.reshape(-1)).squeeze(1)
        return apply_updates(work, firing, self.changes(work, firing, context, weights))

    def finish(self, work: Tensor, shape: torch.Size) -> Tensor:
        return from_cells(work, shape)


@dataclass(frozen=True)
class Folded(Gathered):
    """The firing cells with the (linear) perception folded into the first layer: one wide product per
    step, in ``dtype``."""

    name: ClassVar[str] = "folded"

    def weights(self, rule: nn.Module) -> Any:
        return fold(rule.rule_weights())

    def changes(self, cells: Tensor, firing: Tensor, neighbours: Tensor, weights: Any) -> Tensor:
        return folded_cell_updates(cells, firing, neighbours, weights, self.dtype)


@dataclass(frozen=True)
class Dense(Formulation):
    """Every cell as channels-last convolutions in ``dtype``, then the fire mask: no data-dependent shapes
    (no host-device synchronisation per step on a GPU; exportable to ONNX)."""

    name: ClassVar[str] = "dense"

    def prepare(self, state: Tensor) -> Tensor:
        return state.contiguous(memory_format=torch.channels_last)

    def weights(self, rule: nn.Module) -> Any:
        return rule.conv_weights().to(self.dtype)

    def update(self, work: Tensor, weights: Any, fire: Tensor, context: Any) -> Tensor:
        change = dense_changes(work.to(self.dtype), weights).to(work.dtype)
        return work + change * fire.to(work.dtype)


FORMULATIONS: dict[str, type[Formulation]] = {cls.name: cls for cls in (Gathered, Folded, Dense)}


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the rule's matrix products: ``fp32``, ``bf16``, or ``auto`` (bf16 where ``device``
    runs it natively, see ``has_native_bf16``, else fp32)."""
    if precision == "bf16" or (precision == "auto" and has_native_bf16(device)):
        return torch.bfloat16
    return torch.float32


def check_compute(precision: str, cell_rule: str) -> None:
    """Raise ValueError for an unknown precision or cell rule, or bf16 with the (fp32-only) gather rule."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if cell_rule not in CELL_RULES:
        raise ValueError(f"cell_rule must be one of {', '.join(CELL_RULES)}, got {cell_rule!r}")
    if precision == "bf16" and cell_rule == "gather":
        raise ValueError(
            "precision bf16 needs cell_rule folded, dense or auto (the gather rule computes in fp32)"
        )


def resolve_formulation(cell_rule: str, precision: str, device: torch.device, training: bool) -> Formulation:
    """The formulation that computes a rule of ``cell_rule`` and ``precision`` on ``device``.

    ``auto`` is a fixed table, not a timing at run time, so that a config and seed give the same numbers
    whatever the machine's load: on a GPU the dense rule; on a CPU in fp32 the gathered rule; on a CPU in
    bf16 the dense rule for ``training`` and the folded rule for inference (the fastest of the three where
    bf16 is native; ``benchmarks/speed.py`` measures every candidate). The dtype is the one the products
    really run in: the gathered rule computes in fp32 whatever ``auto`` would allow.
    """
    check_compute(precision, cell_rule)
    dtype = compute_dtype(precision, device)
    name = cell_rule
    if cell_rule == "auto":
        if device.type != "cpu":
            name = "dense"
        elif dtype != torch.bfloat16:
            name = "gather"
        else:
            name = "dense" if training else "folded"
    if name == "gather":
        dtype = torch.float32
    return FORMULATIONS[name](dtype)


def formulation_from_record(facts: Any) -> Formulation:
    """The formulation a model file or record describes (``describe``'s mapping); ValueError if unknown."""
    if not isinstance(facts, dict) or facts.get("cell_rule") not in FORMULATIONS:
        raise ValueError(f"unknown formulation {facts!r}")
    dtypes = {name: dtype for dtype, name in DTYPE_NAMES.items()}
    if facts.get("dtype") not in dtypes:
        raise ValueError(f"unknown formulation dtype in {facts!r}")
    return FORMULATIONS[facts["cell_rule"]](dtypes[facts["dtype"]])
