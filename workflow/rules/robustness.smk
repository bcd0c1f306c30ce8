rule robustness_studies:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("robustness_studies.py", per_model=True),
    output:
        tables=robustness_tables(),
        gallery=directory(run_output("robustness", "gallery")),
        quality=run_output("robustness", "nqm_failure_detection.json"),
    log:
        run_log("robustness"),
    benchmark:
        run_benchmark("robustness")
    wildcard_constraints:
        model=r"[A-Za-z0-9_]+",
    params:
        studies=config["robustness"]["studies"],
        levels=config["robustness"]["levels"],
        fill=config["robustness"]["fill"],
        max_cases=config["robustness"]["max_cases"],
        batch_size=config["evaluation"]["batch_size"],
        nca_runs=config["evaluation"]["nca_runs"],
    conda:
        TORCH_ENV
    script:
        "../../scripts/robustness_studies.py"
