"""Rules learning_curve and validation_curve: Dice and HD95 of a run's snapshots and trained model on the
test or validation split."""

import torch

from mednca.evaluate.curve import learning_curve_stage
from mednca.logs import run_logged

torch.set_num_threads(snakemake.threads)
run_logged(
    lambda: learning_curve_stage(
        model_path=snakemake.input.model,
        snapshots_dir=snakemake.input.snapshots,
        manifest_csv=snakemake.input.manifest,
        cases_csv=snakemake.input.cases,
        source_json=snakemake.input.source,
        curve_csv=snakemake.output[0],
        seed=int(snakemake.wildcards.seed),
        device_name=snakemake.config["device"],
        batch_size=snakemake.params.batch_size,
        split=snakemake.params.split,
    ),
    snakemake.log[0],
)
