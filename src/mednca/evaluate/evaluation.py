"""The evaluation stage: segment every case of a held-out split in its original geometry and measure it.

The test split is scored once per final model; the validation split (where the dataset has one) is what
choices are made on, such as the NQM failure threshold.

Each case is read from the raw data, preprocessed as in training, segmented, mapped back into its own voxel
grid and compared with its original label map (foreground labels merged). The robustness studies run the
same code on perturbed cases, so their severity 0 reproduces this evaluation exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from mednca.data.preprocess import binarise_label, slices_to_volume
from mednca.data.preprocessing import Preprocessing
from mednca.data.ranges import CaseProfile, warn_outside
from mednca.data.stages import case_from_record, dataset_folder, read_table
from mednca.data.volumes import CaseVolume, load_case, save_label_map
from mednca.device import peak_memory_mb, resolve_device
from mednca.errors import ConfigError, DataError
from mednca.evaluate.inference import case_generator, predict_slices, prepare_slices
from mednca.evaluate.metrics import dice_score, hd95
from mednca.evaluate.overlays import case_slice, write_case_slices
from mednca.io import check_output, write_csv, write_json
from mednca.models import count_parameters
from mednca.train.checkpoint import load_model
from mednca.train.data import split_case_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segmentation:
    """A case's (X, Y, Z) uint8 {0, 1} prediction, the NQM of its runs, the inference time and the (X, Y, Z)
    float32 foreground probability it was thresholded from (the mean of the runs)."""

    label: np.ndarray
    nqm: float
    seconds: float
    probability: np.ndarray | None = None


@dataclass(frozen=True)
class Segmenter:
    """A trained model with everything needed to segment raw volumes as in training."""

    model: nn.Module
    preprocessing: Preprocessing
    device: torch.device
    model_path: Path
    runs: int = 1
    batch_size: int = 64
    training: dict[str, Any] = field(default_factory=dict)
    """What the model file records of its training (``train_stage``'s summary; epoch etc. for a snapshot)."""
    input_ranges: dict[str, Any] = field(default_factory=dict)
    """What the training cases spanned (``mednca.data.ranges``); empty when the model file records none."""

    def check_ranges(self, image: np.ndarray, affine: np.ndarray, case: str) -> str | None:
        """Warn (naming ``case``) when a raw (C, X, Y, Z) image lies far outside the training data's size,
        spacing or intensities; return the warning's text, or None."""
        return warn_outside(case, CaseProfile.of(image, affine), self.input_ranges)

    def check_channels(self, channels: int, source: str) -> None:
        """Refuse input of ``channels`` channels (from ``source``) unless the model was trained on as many."""
        expected = self.model.in_channels // self.preprocessing.repeat_channels
        if channels != expected:
            order = (
                f" ({', '.join(self.preprocessing.sequences)})"
                if self.preprocessing.layout == "brats"
                else ""
            )
            raise DataError(
                f"{self.model_path}: the model takes {expected} input channel(s){order}, "
                f"{source} has {channels}"
            )

    def segment(
        self,
        image: np.ndarray,
        affine: np.ndarray,
        generator: torch.Generator,
        size: tuple[int, int] | None = None,
        normalised: bool = False,
    ) -> Segmentation:
        """(C, X, Y, Z) image -> its segmentation in the same grid.

        ``size`` overrides the model input size; ``normalised`` says the intensities are already normalised.
        """
        slices, geometry = prepare_slices(image, affine, self.preprocessing, size, normalised)
        started = time.perf_counter()
        prediction = predict_slices(self.model, slices, self.device, generator, self.runs, self.batch_size)
        seconds = time.perf_counter() - started
        probability = slices_to_volume(prediction.probabilities, geometry).astype(np.float32)
        return Segmentation((probability >= 0.5).astype(np.uint8), prediction.nqm, seconds, probability)


def load_segmenter(model_path: Path, device_name: str, runs: int, batch_size: int) -> Segmenter:
    """A Segmenter from a model file (the NCA ``runs`` only apply to stochastic models)."""
    if runs < 1 or batch_size < 1:
        raise ConfigError(f"runs ({runs}) and batch size ({batch_size}) must be at least 1")
    device = resolve_device(device_name)
    if Path(model_path).suffix.lower() == ".onnx":
        from mednca.export import load_onnx

        device = torch.device("cpu")  # ONNX Runtime's CPU provider
        model, payload = load_onnx(Path(model_path))
    else:
        model, payload = load_model(model_path, device)
    training = payload.get("training") if isinstance(payload.get("training"), dict) else {}
    ranges = payload.get("input_ranges") or {}
    return Segmenter(
        model, payload["preprocessing"], device, Path(model_path), runs, batch_size, training, ranges
    )


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def score(prediction: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Dice, HD95 (mm) and voxel counts of a binary prediction against a binary label."""
    return {
        "dice": dice_score(prediction, truth),
        "hd95": hd95(prediction, truth, spacing),
        "predicted_voxels": int(prediction.sum()),
        "label_voxels": int(truth.sum()),
    }


def held_out_cases(
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    segmenter: Segmenter | None = None,
    split: str = "test",
) -> list:
    """The Case objects of a held-out split (test or validation), sorted by id; checked to have the
    channels a segmenter takes."""
    records = read_table(cases_csv, "table of valid cases").set_index("case_id", drop=False)
    root = dataset_folder(source_json)
    cases = []
    for case_id in split_case_ids(manifest_csv, split):
        if case_id not in records.index:
            raise DataError(
                f"{manifest_csv}: {split} case {case_id} is not in {cases_csv}; re-run the data stage"
            )
        cases.append(case_from_record(records.loc[case_id], root))
    for case in cases if segmenter is not None else []:
        segmenter.check_channels(len(case.channels), f"{split} case {case.case_id} of {root}")
    return cases


def segment_case(
    segmenter: Segmenter, case_id: str, image: np.ndarray, affine: np.ndarray, generator, **options
) -> Segmentation:
    """``segmenter.segment`` of a test case's (C, X, Y, Z) image; a problem with its voxels names the case."""
    try:
        return segmenter.segment(image, affine, generator, **options)
    except DataError as error:
        raise DataError(f"case {case_id}: {error}") from error


def load_test_case(case, foreground_labels: tuple[int, ...]) -> tuple[CaseVolume, np.ndarray]:
    """A test case's raw volume and its binarised (X, Y, Z) uint8 label."""
    volume = load_case(case)
    return volume, binarise_label(volume.label, foreground_labels)


@dataclass(frozen=True)
class ScoredCase:
    """A segmented test case: its raw volume, (X, Y, Z) binary label, segmentation and per-case row."""

    case: Any
    volume: CaseVolume
    truth: np.ndarray
    segmentation: Segmentation
    row: dict[str, Any]


def score_cases(segmenter: Segmenter, cases: list, seed: int) -> Iterator[ScoredCase]:
    """Segment each test case (draws seeded from ``seed`` and its id) and score it against its label.

    Each row holds case_id, dice, hd95, voxel counts, nqm and inference_seconds.
    """
    foreground = segmenter.preprocessing.foreground_labels
    for case in cases:
        volume, truth = load_test_case(case, foreground)
        generator = case_generator(seed, case.case_id, segmenter.device)
        result = segment_case(segmenter, case.case_id, volume.image, volume.affine, generator)
        metrics = score(result.label, truth, spacing_of(volume.affine))
        row = {"case_id": case.case_id, **metrics, "nqm": result.nqm, "inference_seconds": result.seconds}
        yield ScoredCase(case, volume, truth, result, row)


def summarise(per_case: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation of Dice and HD95 over cases, mean NQM and inference time."""
    return {
        "cases": len(per_case),
        "dice_mean": float(per_case["dice"].mean()),
        "dice_std": float(per_case["dice"].std(ddof=0)),
        "hd95_mean": float(per_case["hd95"].mean()),
        "hd95_std": float(per_case["hd95"].std(ddof=0)),
        "nqm_mean": float(per_case["nqm"].mean()),
        "inference_seconds_mean": float(per_case["inference_seconds"].mean()),
    }


def evaluate_stage(
    model_path: Path,
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    per_case_csv: Path,
    summary_json: Path,
    seed: int,
    device_name: str,
    batch_size: int,
    nca_runs: int,
    slices_npz: Path | None = None,
    predictions_dir: Path | None = None,
    split: str = "test",
) -> None:
    """Segment every case of ``split``, write per-case metrics and a summary (with the training facts the
    model file records); with ``predictions_dir`` its NIfTI predictions, with ``slices_npz`` each case's
    most-foreground slice for the report's overlays.

    ``nca_runs``: runs averaged for a stochastic model (gives the NQM); deterministic models run once.
    No output may be one of the inputs (the model, the data-stage tables, a case's files).
    """
    for output in (per_case_csv, summary_json, slices_npz):
        if output is not None:
            check_output(Path(output), [model_path, manifest_csv, cases_csv, source_json])
    segmenter = load_segmenter(model_path, device_name, nca_runs, batch_size)
    training = segmenter.training
    rows, slices = [], []
    cases = held_out_cases(manifest_csv, cases_csv, source_json, segmenter, split)
    axis = segmenter.preprocessing.slice_axis
    progress = tqdm(score_cases(segmenter, cases, seed), total=len(cases), desc=f"evaluating ({split})")
    for scored in progress:
        case, label = scored.case, scored.segmentation.label
        if predictions_dir is not None:
            prediction_path = Path(predictions_dir) / f"{case.case_id}.nii.gz"
            check_output(prediction_path, [model_path, case.label, *(ch.path for ch in case.channels)])
            save_label_map(prediction_path, label, scored.volume.affine)
        slices.append(case_slice(case.case_id, scored.volume.image, scored.truth, label, axis))
        rows.append(scored.row)
    per_case = pd.DataFrame(rows)
    summary = summarise(per_case)
    summary.update(
        split=split,
        model=training.get("model"),
        parameters=count_parameters(segmenter.model),
        device=str(segmenter.device),
        nca_runs=nca_runs,
        inference_peak_memory_mb=peak_memory_mb(segmenter.device),
        train_seconds=training.get("train_seconds"),
        train_peak_memory_mb=training.get("peak_memory_mb"),
        epochs=training.get("epochs"),
        iterations=training.get("iterations"),
    )
    log.info(
        "%s: Dice %.3f +- %.3f over %d %s cases",
        model_path, summary["dice_mean"], summary["dice_std"], len(rows), split,
    )  # fmt: skip
    write_csv(per_case_csv, per_case)
    if slices_npz is not None:
        write_case_slices(Path(slices_npz), slices)
    write_json(summary_json, summary)
