"""The robustness studies: the one list that the configuration schema, the perturbation code, the figures
and the report's findings use.

Kept free of heavy imports, like ``mednca.names``. Each study has its default severity levels (the first
is the clean value: 0, or 1 for zoom factors and anisotropy), the range its levels must lie in, the label
of its figure's x axis and whether that axis is logarithmic. The schema's lists of study names and their
level ranges are tested against this registry (``tests/unit/test_config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    """One robustness study: ``kind`` is ``geometric`` (applied to the model's slices) or ``artefact`` (to
    the raw volume before normalisation); ``levels`` its default severities, the first the clean value;
    ``minimum`` and ``maximum`` (None: unbounded) the range of any level; ``positive``: levels must be > 0."""

    name: str
    kind: str
    levels: tuple[float, ...]
    description: str
    axis_label: str = "severity value"
    log_axis: bool = False
    minimum: float = 0.0
    maximum: float | None = None
    positive: bool = False

    @property
    def clean(self) -> float:
        """The level that leaves the image unchanged."""
        return self.levels[0]


STUDIES: dict[str, Study] = {
    study.name: study
    for study in (
        Study("shift", "geometric", (0.0, 0.05, 0.1, 0.2, 0.3), "translation by a fraction of the image size",
              "shift fraction", maximum=1.0),
        Study("scale_resize", "geometric", (1.0, 0.5, 0.75, 1.5, 2.0),
              "zoom fed to the model at the new size", "zoom factor", log_axis=True, positive=True),
        Study("scale_fixed", "geometric", (1.0, 0.5, 0.75, 1.5, 2.0), "zoom kept at the trained size",
              "zoom factor", log_axis=True, positive=True),
        Study("noise", "artefact", (0.0, 0.025, 0.05, 0.1, 0.2), "TorchIO Rician noise (std)", "noise std"),
        Study("spike", "artefact", (0.0, 0.5, 1.0, 2.0, 4.0), "TorchIO k-space spike (intensity)"),
        Study("ghosting", "artefact", (0.0, 0.3, 0.6, 1.0, 1.5), "TorchIO ghosting (intensity)"),
        Study("bias_field", "artefact", (0.0, 0.2, 0.4, 0.6, 0.8), "TorchIO bias field (coefficients)"),
        Study("motion", "artefact", (0.0, 0.1, 0.2, 0.4, 0.6),
              "TorchIO motion (fraction of k-space acquired displaced)", maximum=1.0),
        Study("anisotropy", "artefact", (1.0, 2.0, 3.0, 4.0, 6.0), "TorchIO anisotropy (downsampling factor)",
              "downsampling factor", log_axis=True, minimum=1.0),
        Study("gibbs", "artefact", (0.0, 0.3, 0.5, 0.7, 0.9), "MONAI Gibbs ringing (alpha)", maximum=1.0),
    )
}  # fmt: skip
"""Every study by name, in the order the report shows them."""

STUDY_NAMES: tuple[str, ...] = tuple(STUDIES)
GEOMETRIC_STUDIES: tuple[str, ...] = tuple(
    name for name, study in STUDIES.items() if study.kind == "geometric"
)
ARTEFACT_STUDIES: tuple[str, ...] = tuple(name for name, study in STUDIES.items() if study.kind == "artefact")
