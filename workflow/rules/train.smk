rule train_model:
    input:
        slices=rules.preprocess_dataset.output.slices,
        manifest=rules.split_dataset.output[0],
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
        device=config["device"],
        max_cases=None,
    conda:
        TORCH_ENV
    script:
        "../../scripts/train_model.py"


rule finetune_model:
    input:
        init_model=f"{RESULTS}/models/{{source}}/{{model}}/seed{{seed}}/model.pt",
        slices=rules.preprocess_dataset.output.slices,
        manifest=rules.split_dataset.output[0],
    output:
        model=f"{RESULTS}/models/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}/model.pt",
        summary=f"{RESULTS}/models/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}/training.json",
        history=f"{RESULTS}/models/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}/train_log.csv",
        snapshots=directory(f"{RESULTS}/models/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}/snapshots"),
    log:
        f"{RESULTS}/logs/train/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{dataset}}/{{model}}_from_{{source}}/seed{{seed}}.tsv"
    wildcard_constraints:
        model=BASE_MODELS,
        source="|".join(DATASETS),
    params:
        architecture=lambda wildcards: model_settings(wildcards)["architecture"],
        training=lambda wildcards: model_settings(wildcards)["training"]
        | {
            "epochs": transfer_settings(wildcards)["epochs"],
            "lr": transfer_settings(wildcards)["lr"] or model_settings(wildcards)["training"]["lr"],
        },
        preprocessing=preprocessing,
        device=config["device"],
        max_cases=lambda wildcards: transfer_settings(wildcards)["cases"],
    conda:
        TORCH_ENV
    script:
        "../../scripts/train_model.py"
