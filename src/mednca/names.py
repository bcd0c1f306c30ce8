"""The models' names: the one list that the configuration, the workflow, the command line and the report use.

Kept free of heavy imports so that the command line and the workflow's planning can read it quickly; the
classes behind the names are in ``mednca.models.registry``.
"""

from __future__ import annotations

MODEL_NAMES: dict[str, str] = {
    "med_nca": "Med-NCA",
    "nca": "single-level NCA",
    "unet": "UNet",
    "segnet": "SegNet",
}
"""Each model's configuration name and its name for readers, in the order figures colour them."""

MODEL_MODULES: dict[str, tuple[str, ...]] = {
    "med_nca": ("mednca.models.nca",),
    "nca": ("mednca.models.nca",),
    "unet": ("mednca.models.unet",),
    "segnet": ("mednca.models.segnet",),
}
"""The module defining each model's class: a job of one model depends on its own architecture code only."""

NCA_MODELS: tuple[str, ...] = ("med_nca", "nca")
"""The stochastic models (their predictions depend on the seed; several runs give the NQM)."""

PAPER_MODEL, BASELINE = "med_nca", "unet"
"""The models whose comparison is the paper's headline claim."""

TRANSFER_SEPARATOR = "_from_"
"""A fine-tuned model is named ``{model}_from_{source}`` (e.g. 'segnet_from_brats')."""


def transfer_name(model: str, source: str) -> str:
    """The name of ``model`` fine-tuned from its training on dataset ``source``."""
    return f"{model}{TRANSFER_SEPARATOR}{source}"


def base_model(model: str) -> str:
    """The architecture of a model name: 'segnet_from_brats' -> 'segnet'."""
    return model.partition(TRANSFER_SEPARATOR)[0]


def is_nca(model: str) -> bool:
    """Whether a model name (possibly fine-tuned) is a stochastic NCA."""
    return base_model(model) in NCA_MODELS


def display_name(model: str) -> str:
    """A model's name for readers, e.g. 'med_nca' -> 'Med-NCA', 'segnet_from_x' -> 'SegNet (from x)'."""
    base, _, source = model.partition(TRANSFER_SEPARATOR)
    name = MODEL_NAMES.get(base, base)
    return f"{name} (from {source})" if source else name


def name_pattern(names: tuple[str, ...] | list[str], fine_tuned: bool = False) -> str:
    """A regular expression matching exactly ``names`` (and their fine-tuned names if ``fine_tuned``)."""
    pattern = "(" + "|".join(names) + ")"
    return pattern + f"({TRANSFER_SEPARATOR}[A-Za-z0-9_]+)?" if fine_tuned else pattern
