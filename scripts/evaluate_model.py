"""Rules evaluate_model and evaluate_on_validation: segment a held-out split and measure every case."""

import torch

from mednca.evaluate.evaluation import evaluate_stage
from mednca.logs import run_logged

torch.set_num_threads(snakemake.threads)
run_logged(
    lambda: evaluate_stage(
        model_path=snakemake.input.model,
        manifest_csv=snakemake.input.manifest,
        cases_csv=snakemake.input.cases,
        source_json=snakemake.input.source,
        per_case_csv=snakemake.output.per_case,
        summary_json=snakemake.output.summary,
        slices_npz=snakemake.output.get("slices"),
        predictions_dir=snakemake.output.get("predictions"),
        split=snakemake.params.split,
        seed=int(snakemake.wildcards.seed),
        device_name=snakemake.config["device"],
        batch_size=snakemake.params.batch_size,
        nca_runs=snakemake.params.nca_runs,
    ),
    snakemake.log[0],
)
