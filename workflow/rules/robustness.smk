rule robustness_studies:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        calibration=calibration_input,
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
        split="test",
    conda:
        TORCH_ENV
    script:
        "../../scripts/robustness_studies.py"


# The NQM failure threshold of an NCA, calibrated on the same studies of the validation split's cases;
# the test robustness above is judged with it (calibration_input).
use rule robustness_studies as calibrate_nqm with:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
        code=code("robustness_studies.py", per_model=True),
    output:
        tables=robustness_tables(f"{VALIDATION}/"),
        gallery=directory(run_output("robustness", f"{VALIDATION}/gallery")),
        quality=calibration_output(),
    log:
        run_log("calibrate_nqm"),
    benchmark:
        run_benchmark("calibrate_nqm")
    wildcard_constraints:
        model=name_pattern(NCA_MODELS, fine_tuned=True),
    params:
        studies=config["robustness"]["studies"],
        levels=config["robustness"]["levels"],
        fill=config["robustness"]["fill"],
        max_cases=config["robustness"]["max_cases"],
        batch_size=config["evaluation"]["batch_size"],
        nca_runs=config["evaluation"]["nca_runs"],
        split=VALIDATION,
