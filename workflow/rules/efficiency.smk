# The data-efficiency study (config data_efficiency): each model trained on k training cases of one dataset
# with the same budget of optimiser steps, scored on that dataset's whole test split. The rules are the
# training and learning-curve rules with the study's paths, budget and number of cases.


wildcard_constraints:
    cases=r"\d+|all",


use rule train_model as train_for_efficiency with:
    output:
        model=efficiency_output("model.pt"),
        summary=efficiency_output("training.json"),
        history=efficiency_output("train_log.csv"),
        snapshots=directory(efficiency_output("snapshots")),
    log:
        efficiency_log("efficiency_train"),
    benchmark:
        efficiency_benchmark("efficiency_train")
    params:
        training=efficiency_training,
        max_cases=efficiency_cases,


use rule finetune_model as finetune_for_efficiency with:
    input:
        init_model=pretrained_source,
        slices=rules.preprocess_dataset.output.slices,
        manifest=rules.split_dataset.output[0],
        code=code("train_model.py", per_model=True),
    output:
        model=efficiency_output("model.pt", FINE_TUNED),
        summary=efficiency_output("training.json", FINE_TUNED),
        history=efficiency_output("train_log.csv", FINE_TUNED),
        snapshots=directory(efficiency_output("snapshots", FINE_TUNED)),
    log:
        efficiency_log("efficiency_train", FINE_TUNED),
    benchmark:
        efficiency_benchmark("efficiency_train", FINE_TUNED)
    params:
        training=efficiency_training,
        max_cases=efficiency_cases,


use rule learning_curve as score_for_efficiency with:
    input:
        model=efficiency_output("model.pt"),
        snapshots=efficiency_output("snapshots"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("learning_curve.py", per_model=True),
    output:
        efficiency_output("score.csv"),
    log:
        efficiency_log("efficiency_score"),
    benchmark:
        efficiency_benchmark("efficiency_score")


rule data_efficiency_table:
    input:
        scores=efficiency_files("score.csv"),
        trainings=efficiency_files("training.json"),
        code=code("data_efficiency_table.py"),
    output:
        f"{RESULTS}/efficiency/data_efficiency.csv",
    log:
        f"{RESULTS}/logs/data_efficiency_table.log",
    params:
        runs=efficiency_runs(config),
        dataset=config["data_efficiency"]["dataset"],
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/data_efficiency_table.py"
