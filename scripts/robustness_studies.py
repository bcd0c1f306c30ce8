"""Rules robustness_studies and calibrate_nqm: one model on every severity of each perturbation study."""

import torch

from mednca.logs import run_logged
from mednca.perturb.robustness import robustness_stage

torch.set_num_threads(snakemake.threads)
studies = dict(zip(snakemake.params.studies, snakemake.output.tables, strict=True))
run_logged(
    lambda: robustness_stage(
        model_path=snakemake.input.model,
        manifest_csv=snakemake.input.manifest,
        cases_csv=snakemake.input.cases,
        source_json=snakemake.input.source,
        studies=studies,
        gallery_dir=snakemake.output.gallery,
        quality_json=snakemake.output.quality,
        seed=int(snakemake.wildcards.seed),
        levels=snakemake.params.levels,
        fill=snakemake.params.fill,
        max_cases=snakemake.params.max_cases,
        device_name=snakemake.config["device"],
        batch_size=snakemake.params.batch_size,
        nca_runs=snakemake.params.nca_runs,
        split=snakemake.params.split,
        calibration_json=next(iter(snakemake.input.get("calibration") or []), None),
    ),
    snakemake.log[0],
)
