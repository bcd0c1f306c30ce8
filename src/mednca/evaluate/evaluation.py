"""The evaluation stage: segment every test case, put it back in its original geometry, measure it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mednca.data.preprocess import binarise_label, load_slices, slices_to_volume
from mednca.data.stages import case_from_record, dataset_folder, read_table
from mednca.data.volumes import read_nifti, read_voxels, save_label_map
from mednca.device import peak_memory_mb, resolve_device
from mednca.evaluate.inference import predict_slices
from mednca.evaluate.metrics import dice_score, hd95
from mednca.io import write_csv, write_json
from mednca.models import count_parameters
from mednca.train.checkpoint import load_model
from mednca.train.data import repeat_channels, split_case_ids

log = logging.getLogger(__name__)


def ground_truth(record: pd.Series, root: Path, foreground_labels: tuple[int, ...]) -> np.ndarray:
    """The case's original label map, binarised: (X, Y, Z) uint8."""
    label_path = case_from_record(record, root).label
    return binarise_label(read_voxels(read_nifti(label_path), label_path), foreground_labels)


def summarise(per_case: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation of Dice and HD95 over cases."""
    return {
        "cases": len(per_case),
        "dice_mean": float(per_case["dice"].mean()),
        "dice_std": float(per_case["dice"].std(ddof=0)),
        "hd95_mean": float(per_case["hd95"].mean()),
        "hd95_std": float(per_case["hd95"].std(ddof=0)),
        "inference_seconds_mean": float(per_case["inference_seconds"].mean()),
    }


def evaluate_stage(
    model_path: Path,
    slices_dir: Path,
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    per_case_csv: Path,
    summary_json: Path,
    predictions_dir: Path,
    seed: int = 0,
    device_name: str = "auto",
    batch_size: int = 64,
) -> None:
    """Predict every test case, write its NIfTI label map and per-case / summary metrics.

    Metrics compare the prediction, mapped back to the case's original voxel grid, with the original label
    map binarised with the foreground labels the model was trained with.
    """
    device = resolve_device(device_name)
    model, payload = load_model(model_path, device)
    repeat = payload["preprocessing"].get("repeat_channels", 1)
    foreground_labels = tuple(payload["preprocessing"]["foreground_labels"])
    records = read_table(cases_csv, "table of valid cases").set_index("case_id", drop=False)
    root = dataset_folder(source_json)
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for case_id in tqdm(split_case_ids(manifest_csv, "test"), desc="evaluating", unit="case"):
        images, _, geometry = load_slices(Path(slices_dir) / f"{case_id}.npz")
        images = repeat_channels(torch.from_numpy(images), repeat).numpy()
        started = time.perf_counter()
        probabilities = predict_slices(model, images, device, batch_size, generator)
        seconds = time.perf_counter() - started
        prediction = (slices_to_volume(probabilities, geometry) >= 0.5).astype(np.uint8)
        save_label_map(Path(predictions_dir) / f"{case_id}.nii.gz", prediction, geometry.affine)
        truth = ground_truth(records.loc[case_id], root, foreground_labels)
        spacing = tuple(np.sqrt((geometry.affine[:3, :3] ** 2).sum(axis=0)))
        rows.append(
            {
                "case_id": case_id,
                "dice": dice_score(prediction, truth),
                "hd95": hd95(prediction, truth, spacing),
                "predicted_voxels": int(prediction.sum()),
                "label_voxels": int(truth.sum()),
                "inference_seconds": seconds,
            }
        )
    per_case = pd.DataFrame(rows)
    summary = summarise(per_case)
    training_json = Path(model_path).parent / "training.json"
    training = json.loads(training_json.read_text()) if training_json.exists() else {}
    summary.update(
        model=payload["model"],
        parameters=count_parameters(model),
        device=str(device),
        inference_peak_memory_mb=peak_memory_mb(device),
        train_seconds=training.get("train_seconds"),
        train_peak_memory_mb=training.get("peak_memory_mb"),
        epochs=training.get("epochs"),
    )
    log.info(
        "%s: Dice %.3f +- %.3f over %d test case(s)",
        model_path,
        summary["dice_mean"],
        summary["dice_std"],
        len(rows),
    )
    write_csv(per_case_csv, per_case)
    write_json(summary_json, summary)
