"""The robustness stage: evaluate one model on every severity of each perturbation study.

Perturbations act on each test case in its original voxel grid (slices along the slice axis): MRI artefacts
on the raw intensities, before the model's intensity normalisation, as in an acquisition; shifts and zooms on
the normalised intensities, so the space they uncover is filled with the darkest normalised value instead
of changing the normalisation itself. The prediction is mapped back into the perturbed grid and compared with
the equally perturbed label. For skull-stripped, z-scored data the background stays 0 after an artefact,
as the skull stripping after a scan would leave it (``strip_background``). Severity 0 runs exactly the code
of the evaluation stage, so it reproduces the unperturbed evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mednca.data.preprocess import most_foreground_slice
from mednca.evaluate.evaluation import (
    Segmentation,
    Segmenter,
    held_out_cases,
    load_segmenter,
    load_test_case,
    score,
    segment_case,
    spacing_of,
)
from mednca.evaluate.inference import case_generator, normalise
from mednca.evaluate.quality import failure_detection, nqm_threshold, quality_population
from mednca.io import atomic_path, read_json, write_csv, write_json
from mednca.models import min_side, size_multiple
from mednca.perturb.geometry import scaled_size
from mednca.perturb.studies import Perturbation, perturb_case, study_perturbations
from mednca.studies import GEOMETRIC_STUDIES

log = logging.getLogger(__name__)


def model_input_size(segmenter: Segmenter, perturbation: Perturbation) -> tuple[int, int] | None:
    """The model's input size for a perturbation: scaled for ``scale_resize``, else the trained size."""
    if perturbation.study != "scale_resize" or perturbation.severity == 0:
        return None
    height, width = segmenter.preprocessing.image_size
    model = segmenter.model
    return scaled_size(height, width, perturbation.value, size_multiple(model), min_side(model))


def strip_background(perturbed: np.ndarray, raw: np.ndarray, method: str) -> np.ndarray:
    """(C, X, Y, Z) raw image after an artefact, with the voxels that are 0 in ``raw`` set back to 0 when
    the model's normalisation (``zscore``) treats zero voxels as background; else ``perturbed`` unchanged.

    Z-scored data (BraTS) are skull-stripped: their background is exactly 0 and left out of the mean and
    standard deviation. The skull stripping that follows a scan would remove an acquisition artefact from
    the background; left in, the background would enter the normalisation's statistics, a change of
    preprocessing rather than of the image.
    """
    if method != "zscore":
        return perturbed
    return np.where(raw == 0, 0, perturbed).astype(perturbed.dtype, copy=False)


def run_case(
    segmenter: Segmenter,
    case,
    study: str,
    levels: list[float] | None,
    seed: int,
    fill: str,
    clean: dict[str, tuple[Segmentation, dict]] | None = None,
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every severity of ``study`` on one case: metric rows and gallery arrays (one slice per severity).

    ``clean`` caches each case's unperturbed (severity 0) segmentation and metrics across studies: they are
    the same for every study (it is the evaluation's), so a case is segmented clean once per stage.
    """
    clean = {} if clean is None else clean
    foreground = segmenter.preprocessing.foreground_labels
    axis = segmenter.preprocessing.slice_axis
    volume, truth = load_test_case(case, foreground)
    geometric = study in GEOMETRIC_STUDIES
    source = normalise(volume.image, segmenter.preprocessing) if geometric else volume.image
    image_slices, label_slices = np.moveaxis(source, axis + 1, 0), np.moveaxis(truth, axis, 0)
    rows, gallery = [], {}
    for perturbation in study_perturbations(study, levels):
        image, label, parameters = perturb_case(
            image_slices, label_slices, case.case_id, perturbation, seed, fill
        )
        image, label = np.moveaxis(image, 0, axis + 1), np.moveaxis(label, 0, axis)
        if not geometric:
            image = strip_background(image, volume.image, segmenter.preprocessing.intensity.method)
        if perturbation.severity == 0 and case.case_id in clean:
            result, metrics = clean[case.case_id]
        else:
            generator = case_generator(seed, case.case_id, segmenter.device)
            size = model_input_size(segmenter, perturbation)
            result = segment_case(
                segmenter, case.case_id, image, volume.affine, generator, size=size, normalised=geometric
            )
            metrics = score(result.label, label, spacing_of(volume.affine))
            if perturbation.severity == 0:
                clean[case.case_id] = (result, metrics)
        rows.append(
            {
                "case_id": case.case_id,
                "study": study,
                "severity": perturbation.severity,
                "value": perturbation.value,
                **metrics,
                "nqm": result.nqm,
                "inference_seconds": result.seconds,
                **parameters,
            }
        )
        index = most_foreground_slice(label, axis)
        gallery[f"image_{perturbation.severity}"] = np.take(image[0], index, axis=axis)
        gallery[f"label_{perturbation.severity}"] = np.take(label, index, axis=axis)
        gallery[f"prediction_{perturbation.severity}"] = np.take(result.label, index, axis=axis)
    return rows, gallery


def robustness_stage(
    model_path: Path,
    manifest_csv: Path,
    cases_csv: Path,
    source_json: Path,
    studies: dict[str, Path],
    gallery_dir: Path,
    quality_json: Path,
    seed: int,
    levels: dict[str, list[float]],
    fill: str,
    max_cases: int | None,
    device_name: str,
    batch_size: int,
    nca_runs: int,
    split: str = "test",
    calibration_json: Path | None = None,
) -> None:
    """Evaluate a model on every severity of each study for the first ``max_cases`` cases of ``split``
    (test, or validation to calibrate the NQM threshold), all if ``max_cases`` is None.

    ``studies`` maps each study to its output CSV: one row per (case, severity) with Dice, HD95, NQM and
    the perturbation's parameters. ``gallery_dir/{study}.npz`` holds, for the first case and each
    severity, the most-foreground slice of the perturbed image (first channel), its label and the prediction.
    ``quality_json`` says how well NQM flags the cases with Dice < 0.8, over each case once clean and every
    perturbed version of it (see ``quality``), with the threshold of ``calibration_json`` (the same
    stage's output on the validation split) when given, else one fitted on these cases.
    One process runs every study, so the model and the cases are loaded once.
    """
    segmenter = load_segmenter(model_path, device_name, nca_runs, batch_size)
    cases = held_out_cases(manifest_csv, cases_csv, source_json, segmenter, split)[:max_cases]
    tables, clean = [], {}
    for study, out_csv in studies.items():
        rows, gallery = [], {}
        for case in tqdm(cases, desc=f"robustness {study} ({split})", unit="case"):
            case_rows, case_gallery = run_case(segmenter, case, study, levels.get(study), seed, fill, clean)
            rows += case_rows
            gallery = gallery or {"case_id": np.asarray(case.case_id), **case_gallery}
        table = pd.DataFrame(rows)
        means = table.groupby("severity")["dice"].mean().round(3).to_dict()
        log.info("%s: mean Dice per severity %s", study, means)
        write_csv(Path(out_csv), table)
        with atomic_path(Path(gallery_dir) / f"{study}.npz") as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(handle, **gallery)
        tables.append(table)
    population = quality_population(pd.concat(tables))
    write_json(quality_json, quality_summary(population, split, calibration_json))


def quality_summary(population: pd.DataFrame, split: str, calibration_json: Path | None) -> dict:
    """NQM's failure detection on ``population`` (rows with dice and nqm) of ``split``, with the threshold
    calibrated on another split's population (``calibration_json``, this function's output there) if
    given; ``calibrated_threshold`` is this population's own, for the splits judged after it."""
    dice, nqm = population["dice"].to_numpy(), population["nqm"].to_numpy()
    own = {"split": split, "calibrated_threshold": nqm_threshold(dice, nqm)}
    if calibration_json is None:
        return {**own, **failure_detection(dice, nqm)}
    calibration = read_json(Path(calibration_json), "NQM calibration")
    threshold = calibration.get("calibrated_threshold")
    on = calibration.get("split", "validation")
    return {**own, **failure_detection(dice, nqm, calibrated=threshold, calibrated_on=on)}
