"""The NCA trajectory stage: how an NCA's segmentation grows over its steps, on one test slice.

For the report's "intermediate states" figure: the first test case is preprocessed as in evaluation, its
slice with the most foreground is segmented once, and the foreground probability is recorded at evenly
spaced steps of each level. The random cell updates come from the evaluation's per-case generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mednca.data.preprocess import most_foreground_slice, volume_to_slices
from mednca.errors import MednCAError
from mednca.evaluate.evaluation import held_out_cases, load_segmenter, load_test_case
from mednca.evaluate.inference import case_generator, prepare_slices
from mednca.io import atomic_path
from mednca.models import MedNCA, SingleLevelNCA, probability_trajectory


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
