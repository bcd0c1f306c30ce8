"""Training and test slices of a split, read from the preprocessed ``.npz`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mednca.data.preprocess import load_slices
from mednca.data.stages import read_table
from mednca.errors import DataError


def split_case_ids(manifest_csv: Path, split: str) -> list[str]:
    """Sorted case ids of one split (``train`` or ``test``) of the manifest."""
    manifest = read_table(manifest_csv, "manifest")
    ids = sorted(manifest.loc[manifest["split"] == split, "case_id"])
    if not ids:
        raise DataError(f"{manifest_csv}: no case in the '{split}' split")
    return ids


def choose_cases(case_ids: list[str], max_cases: int | None, seed: int) -> list[str]:
    """All ids, or ``max_cases`` of them drawn with ``seed`` (for fine-tuning on a few cases); sorted."""
    if max_cases is None or max_cases >= len(case_ids):
        return sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(case_ids))[:max_cases]
    return sorted(case_ids[i] for i in order)


def repeat_channels(images: Tensor, repeat: int) -> Tensor:
    """(N, C, H, W) -> (N, C * repeat, H, W): a single-modality image fed to a model trained on several."""
    return images if repeat == 1 else images.repeat_interleave(repeat, dim=1)


def load_training_slices(slices_dir: Path, case_ids: list[str]) -> tuple[Tensor, Tensor]:
    """Every slice of the given cases: (N, C, H, W) float32 images and (N, 1, H, W) float32 {0, 1} labels."""
    images, labels = [], []
    for case_id in case_ids:
        path = Path(slices_dir) / f"{case_id}.npz"
        if not path.exists():
            raise DataError(
                f"{path}: preprocessed slices of case {case_id} are missing; re-run preprocessing"
            )
        image, label, _ = load_slices(path)
        images.append(image)
        labels.append(label)
    image_tensor = torch.from_numpy(np.concatenate(images)).float()
    label_tensor = torch.from_numpy(np.concatenate(labels)).float()[:, None]
    return image_tensor, label_tensor
