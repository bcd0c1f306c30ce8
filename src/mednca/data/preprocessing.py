"""What a trained model remembers of its data's preprocessing, to segment a new image as it was trained.

``Preprocessing`` is built once from a validated dataset block of the config and stored in ``model.pt``
as a plain mapping (``as_mapping``), which keeps model files loadable with ``torch.load(weights_only=True)``;
``load_model`` checks the stored mapping against the schema and turns it back into a ``Preprocessing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Intensity:
    """Intensity normalisation: ``percentile`` (clip to lower/upper percentiles, rescale to [0, 1]) or
    ``zscore`` (zero mean, unit variance over non-zero voxels)."""

    method: str
    lower: float
    upper: float


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing of a model's training data.

    ``modalities`` index the channels of a 4D image (MSD layout), ``sequences`` name the files of a case
    (BraTS layout); ``image_size`` is the (H, W) model input; ``repeat_channels`` > 1 when a model trained
    on that many channels was fine-tuned on single-channel data (the channel is repeated).
    """

    layout: str
    modalities: tuple[int, ...]
    sequences: tuple[str, ...]
    foreground_labels: tuple[int, ...]
    slice_axis: int
    image_size: tuple[int, int]
    resize_mode: str
    intensity: Intensity
    repeat_channels: int = 1

    @classmethod
    def from_settings(cls, dataset_settings: Mapping[str, Any]) -> Preprocessing:
        """The preprocessing of a validated dataset block of the config (its channels not repeated)."""
        return cls.from_mapping({**{key: dataset_settings[key] for key in CONFIG_KEYS}, "repeat_channels": 1})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Preprocessing:
        """From the mapping ``as_mapping`` gives (as a model file stores it); other keys are ignored."""
        intensity = Intensity(
            str(values["intensity"]["method"]),
            float(values["intensity"]["lower"]),
            float(values["intensity"]["upper"]),
        )
        return cls(
            layout=str(values["layout"]),
            modalities=tuple(int(index) for index in values["modalities"]),
            sequences=tuple(str(name) for name in values["sequences"]),
            foreground_labels=tuple(int(label) for label in values["foreground_labels"]),
            slice_axis=int(values["slice_axis"]),
            image_size=(int(values["image_size"][0]), int(values["image_size"][1])),
            resize_mode=str(values["resize_mode"]),
            intensity=intensity,
            repeat_channels=int(values["repeat_channels"]),
        )

    def as_mapping(self) -> dict[str, Any]:
        """Plain lists, numbers and strings, as a model file stores them."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    @property
    def data_channels(self) -> int:
        """Image channels of the data: its ``modalities`` (MSD layout) or ``sequences`` (BraTS layout)."""
        return len(self.modalities if self.layout == "msd" else self.sequences)

    @property
    def model_channels(self) -> int:
        """Input channels of the model: the data's, times ``repeat_channels``."""
        return self.data_channels * self.repeat_channels

    def repeated(self, repeat: int) -> Preprocessing:
        """The same preprocessing with its single channel repeated ``repeat`` times."""
        return replace(self, repeat_channels=repeat)


CONFIG_KEYS = tuple(field.name for field in fields(Preprocessing) if field.name != "repeat_channels")
"""The keys of a dataset block of the config that make up a model's preprocessing."""
