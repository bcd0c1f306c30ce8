"""Rules train_model and finetune_model: train one model with one seed on one dataset's train split."""

import torch

from mednca.data.preprocessing import Preprocessing
from mednca.logs import run_logged
from mednca.train.loop import TrainingSettings
from mednca.train.stages import train_stage

torch.set_num_threads(snakemake.threads)
run_logged(
    lambda: train_stage(
        slices_dir=snakemake.input.slices,
        manifest_csv=snakemake.input.manifest,
        model_path=snakemake.output.model,
        model_name=snakemake.wildcards.model,
        arguments=dict(snakemake.params.architecture),
        settings=TrainingSettings.from_config(snakemake.params.training),
        seed=int(snakemake.wildcards.seed),
        preprocessing=Preprocessing.from_settings(snakemake.params.preprocessing),
        device_name=snakemake.config["device"],
        max_cases=snakemake.params.max_cases,
        init_model=snakemake.input.get("init_model"),
        summary_json=snakemake.output.summary,
        history_csv=snakemake.output.history,
        snapshots_dir=snakemake.output.snapshots,
    ),
    snakemake.log[0],
)
