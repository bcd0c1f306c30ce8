"""The NCA trajectory stage: how an NCA's segmentation grows over its steps, on one test slice.

For the report's "intermediate states" figure: the first test case is preprocessed as in evaluation, its
slice with the most foreground is segmented once, and the foreground probability is recorded at evenly
spaced steps of each level (``probability_trajectory``, which steps the model's rules one at a time). The
random cell updates come from the evaluation's per-case generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mednca.data.preprocess import most_foreground_slice, volume_to_slices
from mednca.errors import MednCAError
from mednca.evaluate.evaluation import held_out_cases, load_segmenter, load_test_case
from mednca.evaluate.inference import case_generator, prepare_slices
from mednca.io import atomic_path
from mednca.models import MedNCA, SingleLevelNCA
from mednca.models.nca import NCARule, initial_state


@dataclass(frozen=True)
class Trajectory:
    """Snapshots of an NCA's foreground probability: (K,) levels, (K,) steps, (K, H, W) probabilities."""

    levels: np.ndarray
    steps: np.ndarray
    probabilities: np.ndarray


def _snapshot_steps(steps: int, snapshots: int) -> set[int]:
    """``snapshots`` evenly spaced step counts from 0 to ``steps`` (both included)."""
    return {round(value) for value in np.linspace(0, steps, max(snapshots, 2))}


def _run_recording(
    rule: NCARule, state: Tensor, steps: int, fire_rate: float, generator: torch.Generator, snapshots: int
) -> tuple[Tensor, list[tuple[int, Tensor]]]:
    """``rule.run`` that also returns (step, (B, C, H, W) state) at evenly spaced steps."""
    record_at = _snapshot_steps(steps, snapshots)
    recorded = [(0, state)] if 0 in record_at else []
    for step in range(1, steps + 1):
        state = rule.step(state, fire_rate, generator)
        if step in record_at:
            recorded.append((step, state))
    return state, recorded


@torch.no_grad()
def probability_trajectory(
    model: MedNCA | SingleLevelNCA, images: Tensor, generator: torch.Generator, snapshots: int = 5
) -> Trajectory:
    """(1, C_in, H, W) image -> the foreground probability at ``snapshots`` steps of each level.

    Draws the same random numbers as ``model(images, generator)``, so the last snapshot is its output.
    Level-1 snapshots of Med-NCA are upscaled (nearest) to H x W.
    """
    logit = slice(model.in_channels, model.in_channels + 1)
    if isinstance(model, SingleLevelNCA):
        _, recorded = _run_recording(
            model.rule,
            initial_state(images, model.channels),
            model.steps,
            model.fire_rate,
            generator,
            snapshots,
        )
        records = [(1, step, state[:, logit]) for step, state in recorded]
    else:
        model.check_images(images)
        coarse, recorded = _run_recording(
            model.level1, model.level1_input(images), model.steps, model.fire_rate, generator, snapshots
        )
        records = [(1, step, model.level2_input(images, state)[:, logit]) for step, state in recorded]
        _, recorded = _run_recording(
            model.level2,
            model.level2_input(images, coarse),
            model.steps,
            model.fire_rate,
            generator,
            snapshots,
        )
        records += [(2, step, state[:, logit]) for step, state in recorded]
    return Trajectory(
        levels=np.array([level for level, _, _ in records]),
        steps=np.array([step for _, step, _ in records]),
        probabilities=torch.cat([torch.sigmoid(p[:, 0]) for _, _, p in records]).cpu().numpy(),
    )


def trajectory_stage(
    model_path: Path,
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    out_npz: Path,
    seed: int,
    device_name: str,
    snapshots: int = 6,
) -> None:
    """Write ``out_npz`` with case_id, slice_index, image (H, W), label (H, W) and the trajectory arrays.

    Raises MednCAError when the model is not an NCA or the dataset has no test case.
    """
    segmenter = load_segmenter(model_path, device_name, runs=1, batch_size=1)
    if not isinstance(segmenter.model, MedNCA | SingleLevelNCA):
        raise MednCAError(
            f"{model_path}: {type(segmenter.model).__name__} is not an NCA, it has no trajectory"
        )
    cases = held_out_cases(manifest_csv, cases_csv, source_json, segmenter)
    if not cases:
        raise MednCAError(f"{manifest_csv}: no test case to record an NCA trajectory on")
    case = cases[0]
    preprocessing = segmenter.preprocessing
    volume, truth = load_test_case(case, preprocessing.foreground_labels)
    slices, _ = prepare_slices(volume.image, volume.affine, preprocessing)
    _, label_slices, _ = volume_to_slices(
        volume.image,
        truth,
        volume.affine,
        preprocessing.slice_axis,
        preprocessing.image_size,
        preprocessing.resize_mode,
    )
    index = most_foreground_slice(label_slices, 0)
    image = torch.from_numpy(np.ascontiguousarray(slices[index : index + 1])).to(segmenter.device)
    generator = case_generator(seed, case.case_id, segmenter.device)
    trajectory = probability_trajectory(segmenter.model, image, generator, snapshots)
    with atomic_path(Path(out_npz)) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(
            handle,
            case_id=np.asarray(case.case_id),
            slice_index=np.asarray(index),
            image=slices[index, 0],
            label=label_slices[index],
            levels=trajectory.levels,
            steps=trajectory.steps,
            probabilities=trajectory.probabilities.astype(np.float16),
        )
