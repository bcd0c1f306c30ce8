rule evaluate_model:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("evaluate_model.py", per_model=True),
    output:
        per_case=run_output("metrics", "per_case.csv"),
        summary=run_output("metrics", "summary.json"),
        slices=run_output("metrics", "test_slices.npz"),
        predictions=directory(run_folder("predictions")),
    log:
        run_log("evaluate"),
    benchmark:
        run_benchmark("evaluate")
    wildcard_constraints:
        model=r"[A-Za-z0-9_]+",
    params:
        batch_size=config["evaluation"]["batch_size"],
        nca_runs=config["evaluation"]["nca_runs"],
        split="test",
    conda:
        TORCH_ENV
    script:
        "../../scripts/evaluate_model.py"


# The same evaluation on the validation split (datasets with validation_fraction > 0): what choices are
# made on, and the model card's validation metrics.
use rule evaluate_model as evaluate_on_validation with:
    output:
        per_case=run_output("metrics", f"{VALIDATION}/per_case.csv"),
        summary=run_output("metrics", f"{VALIDATION}/summary.json"),
    log:
        run_log("evaluate_validation"),
    benchmark:
        run_benchmark("evaluate_validation")
    params:
        batch_size=config["evaluation"]["batch_size"],
        nca_runs=config["evaluation"]["nca_runs"],
        split=VALIDATION,


rule learning_curve:
    input:
        model=run_output("models", "model.pt"),
        snapshots=run_output("models", "snapshots"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("learning_curve.py", per_model=True),
    output:
        run_output("metrics", "learning_curve.csv"),
    log:
        run_log("learning_curve"),
    benchmark:
        run_benchmark("learning_curve")
    wildcard_constraints:
        model=r"[A-Za-z0-9_]+",
    params:
        batch_size=config["evaluation"]["batch_size"],
        split="test",
    conda:
        TORCH_ENV
    script:
        "../../scripts/learning_curve.py"


# The same curve on the validation split: what the training length (and time to accuracy) is judged on.
use rule learning_curve as validation_curve with:
    output:
        run_output("metrics", f"{VALIDATION}/learning_curve.csv"),
    log:
        run_log("validation_curve"),
    benchmark:
        run_benchmark("validation_curve")
    params:
        batch_size=config["evaluation"]["batch_size"],
        split=VALIDATION,


rule nca_trajectory:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("nca_trajectory.py", per_model=True),
    output:
        run_output("metrics", "nca_trajectory.npz"),
    log:
        run_log("trajectory"),
    benchmark:
        run_benchmark("trajectory")
    wildcard_constraints:
        model=name_pattern(NCA_MODELS, fine_tuned=True),
    conda:
        TORCH_ENV
    script:
        "../../scripts/nca_trajectory.py"


# The model card beside each model.pt: data and split, recipe, validation and test metrics, compute.
rule write_model_card:
    input:
        training=run_output("models", "training.json"),
        history=run_output("models", "train_log.csv"),
        manifest=rules.split_dataset.output[0],
        test=run_output("metrics", "summary.json"),
        validation=validation_summary,
        code=code("record_run.py"),
    output:
        card=run_output("models", "model_card.md"),
    log:
        run_log("model_card"),
    wildcard_constraints:
        model=r"[A-Za-z0-9_]+",
    params:
        settings=run_settings,
        config_files=config_file_names(),
        config_sha256=CONFIG_SHA256,
        studies=[],
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/record_run.py"
