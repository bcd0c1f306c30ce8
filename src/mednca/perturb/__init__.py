"""Perturbations for the robustness studies: geometric shifts and zooms, and MRI acquisition artefacts.

``studies`` turns a (study, severity) pair into a reproducible perturbation of one test case (image
(S, C, H, W), label (S, H, W)); ``geometry`` and ``artefacts`` hold the underlying deterministic operations
and their parameter draws.
"""

from mednca.perturb.artefacts import (
    ARTEFACT_KINDS,
    ARTEFACT_SEVERITIES,
    apply_artefact,
    draw_artefact_params,
)
from mednca.perturb.geometry import round_size, scale, shift
from mednca.perturb.studies import (
    STUDIES,
    Perturbation,
    perturb_case,
    perturbation_seed,
    study_levels,
    study_perturbations,
)

__all__ = [
    "ARTEFACT_KINDS",
    "ARTEFACT_SEVERITIES",
    "STUDIES",
    "Perturbation",
    "apply_artefact",
    "draw_artefact_params",
    "perturb_case",
    "perturbation_seed",
    "round_size",
    "scale",
    "shift",
    "study_levels",
    "study_perturbations",
]
