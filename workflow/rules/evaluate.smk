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
    conda:
        TORCH_ENV
    script:
        "../../scripts/evaluate_model.py"


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
    conda:
        TORCH_ENV
    script:
        "../../scripts/learning_curve.py"


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
