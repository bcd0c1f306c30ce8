"""Rule nca_trajectory: record an NCA's foreground probability over its steps on one test slice."""

import torch

from mednca.evaluate.trajectory import trajectory_stage
from mednca.logs import run_logged

torch.set_num_threads(snakemake.threads)
run_logged(
    lambda: trajectory_stage(
        model_path=snakemake.input.model,
        manifest_csv=snakemake.input.manifest,
        cases_csv=snakemake.input.cases,
        source_json=snakemake.input.source,
        out_npz=snakemake.output[0],
        seed=int(snakemake.wildcards.seed),
        device_name=snakemake.config["device"],
    ),
    snakemake.log[0],
)
