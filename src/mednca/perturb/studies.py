"""Robustness studies: graded, reproducible perturbations of whole test cases.

A study is a named perturbation with a list of levels; severity ``i`` is the index of a level and severity
0 is always the unperturbed case. Test cases are image (S, C, H, W) float and label (S, H, W) binary arrays.
The random parts of a perturbation (shift direction, artefact positions, axes, coefficients, seeds) are
drawn once per (seed, case, study) from ``numpy.random.default_rng`` seeded by :func:`perturbation_seed`
with severity 0, and only the level's value changes between severities, so the severities of a case form
one graded line. Seeds come from SHA-256, hence are stable across processes and platforms.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mednca.perturb.artefacts import apply_artefact, draw_artefact_params
from mednca.perturb.geometry import draw_shift_params, scale, shift_pixels, translate
from mednca.studies import STUDIES as REGISTRY
from mednca.studies import STUDY_NAMES

DEFAULT_LEVELS: dict[str, list[float]] = {name: list(study.levels) for name, study in REGISTRY.items()}
STUDIES: tuple[str, ...] = STUDY_NAMES
SCALE_STUDIES = {"scale_resize": "resize", "scale_fixed": "fixed"}
SEED_BYTES = 8


@dataclass(frozen=True)
class Perturbation:
    """One level of one study: ``severity`` indexes the study's levels and ``value`` is that level's value.

    ``study`` is ``shift``, ``scale_resize``, ``scale_fixed`` or an artefact kind; ``value`` is a shift
    fraction, a zoom factor or an artefact severity value. Severity 0 must carry the identity value.
    """

    study: str
    severity: int
    value: float

    def __post_init__(self) -> None:
        """Reject unknown studies, negative severities and a non-identity value at severity 0."""
        identity = identity_value(self.study)
        if self.severity < 0:
            raise ValueError(f"severity must be >= 0, got {self.severity}")
        if self.severity == 0 and self.value != identity:
            raise ValueError(
                f"severity 0 of study {self.study!r} must have value {identity}, got {self.value}"
            )


def perturbation_seed(seed: int, case_id: str, study: str, severity: int) -> int:
    """Stable 64-bit seed: first 8 bytes (big-endian) of SHA-256 of JSON [seed, case_id, study, severity]."""
    key = json.dumps([int(seed), str(case_id), str(study), int(severity)]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:SEED_BYTES], "big")


def case_rng(seed: int, case_id: str, study: str) -> np.random.Generator:
    """Generator of the random draws of ``study`` on ``case_id``, shared by all its severities."""
    return np.random.default_rng(np.random.SeedSequence(perturbation_seed(seed, case_id, study, 0)))


def identity_value(study: str) -> float:
    """The level value of ``study`` that leaves a case unchanged (its default severity 0 value)."""
    if study not in DEFAULT_LEVELS:
        raise ValueError(f"unknown study {study!r}; expected one of {STUDIES}")
    return DEFAULT_LEVELS[study][0]


def study_levels(study: str, levels: list[float] | None = None) -> list[float]:
    """Levels of ``study``: ``levels`` if given (the first must be the identity value), else the defaults.

    The defaults are the registry's (``mednca.studies.STUDIES``).
    """
    identity = identity_value(study)
    chosen = [float(value) for value in (DEFAULT_LEVELS[study] if levels is None else levels)]
    if not chosen or chosen[0] != identity:
        raise ValueError(f"levels of study {study!r} must start with its identity value {identity}: {chosen}")
    return chosen


def study_perturbations(study: str, levels: list[float] | None = None) -> list[Perturbation]:
    """One :class:`Perturbation` per level of ``study`` (see :func:`study_levels`), severity 0 first."""
    return [Perturbation(study, index, value) for index, value in enumerate(study_levels(study, levels))]


def perturb_case(
    image: np.ndarray,
    label: np.ndarray,
    case_id: str,
    perturbation: Perturbation,
    seed: int,
    fill: str = "zeros",
    multiple: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply ``perturbation`` to the case image (S, C, H, W) and label (S, H, W).

    Returns the perturbed image (S, C, H', W'), label (S, H', W') and a flat dict of the applied parameters
    (JSON-serialisable). H', W' differ from H, W only for ``scale_resize``, whose size is rounded to a
    multiple of ``multiple``. ``fill`` (``zeros`` or ``reflect``) is used by ``shift`` only. Artefacts never
    change the label. Severity 0 returns copies equal to the inputs. The inputs are never modified.
    """
    rng = case_rng(seed, case_id, perturbation.study)
    if perturbation.study == "shift":
        return _shift_case(image, label, perturbation.value, rng, fill)
    if perturbation.study in SCALE_STUDIES:
        return _scale_case(image, label, perturbation.value, SCALE_STUDIES[perturbation.study], multiple)
    params = draw_artefact_params(perturbation.study, rng, perturbation.value)
    record = {f"{perturbation.study}_{name}": value for name, value in params.items()}
    return apply_artefact(perturbation.study, image, params), label.copy(), record


def _shift_case(
    image: np.ndarray, label: np.ndarray, fraction: float, rng: np.random.Generator, fill: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Shift image (S, C, H, W) and label (S, H, W) by ``fraction`` along the direction drawn from ``rng``."""
    direction = draw_shift_params(rng)
    dy, dx = shift_pixels(
        image.shape[-2], image.shape[-1], fraction, (direction["direction_dy"], direction["direction_dx"])
    )
    shifted_image, shifted_label = translate(image, label, dy, dx, fill)
    record = {
        "shift_fraction": float(fraction),
        "shift_direction_dy": direction["direction_dy"],
        "shift_direction_dx": direction["direction_dx"],
        "shift_dy_px": dy,
        "shift_dx_px": dx,
        "shift_fill": fill,
    }
    return shifted_image, shifted_label, record


def _scale_case(
    image: np.ndarray, label: np.ndarray, factor: float, protocol: str, multiple: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Zoom image (S, C, H, W) and label (S, H, W) by ``factor`` (``protocol``: see ``geometry.scale``)."""
    zoomed_image, zoomed_label, applied = scale(image, label, factor, protocol, multiple)
    record = {
        "scale_factor": float(factor),
        "effective_factor": applied,
        "scale_multiple": multiple if protocol == "resize" else 1,
        "height": int(zoomed_image.shape[-2]),
        "width": int(zoomed_image.shape[-1]),
    }
    return zoomed_image, zoomed_label, record
