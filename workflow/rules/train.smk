# A training job's resume state (checkpoint.pt, checkpoint_snapshots/, tensorboard/) lives beside its model
# and is deliberately not an output: Snakemake deletes a job's outputs before running it, which would discard
# what an interrupted run resumes from. The published snapshots/ folder is the output the learning curve reads.
rule train_model:
    input:
        slices=rules.preprocess_dataset.output.slices,
        manifest=rules.split_dataset.output[0],
        code=code("train_model.py", per_model=True),
    output:
        model=run_output("models", "model.pt"),
        summary=run_output("models", "training.json"),
        history=run_output("models", "train_log.csv"),
        snapshots=directory(run_output("models", "snapshots")),
    log:
        run_log("train"),
    benchmark:
        run_benchmark("train")
    wildcard_constraints:
        model=BASE_MODELS,
    params:
        architecture=lambda wildcards: model_settings(wildcards)["architecture"],
        training=lambda wildcards: model_settings(wildcards)["training"],
        preprocessing=preprocessing,
        max_cases=None,
    conda:
        TORCH_ENV
    script:
        "../../scripts/train_model.py"


rule finetune_model:
    input:
        init_model=run_output("models", "model.pt", dataset="{source}"),
        slices=rules.preprocess_dataset.output.slices,
        manifest=rules.split_dataset.output[0],
        code=code("train_model.py", per_model=True),
    output:
        model=run_output("models", "model.pt", FINE_TUNED),
        summary=run_output("models", "training.json", FINE_TUNED),
        history=run_output("models", "train_log.csv", FINE_TUNED),
        snapshots=directory(run_output("models", "snapshots", FINE_TUNED)),
    log:
        run_log("train", FINE_TUNED),
    benchmark:
        run_benchmark("train", FINE_TUNED)
    wildcard_constraints:
        model=BASE_MODELS,
        source="|".join(DATASETS),
    params:
        architecture=lambda wildcards: model_settings(wildcards)["architecture"],
        training=finetune_training,
        preprocessing=preprocessing,
        max_cases=lambda wildcards: transfer_settings(wildcards)["cases"],
    conda:
        TORCH_ENV
    script:
        "../../scripts/train_model.py"
