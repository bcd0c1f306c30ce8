rule nca_trajectory:
    input:
        model=run_output("models", "model.pt"),
        manifest=rules.split_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        source=rules.fetch_dataset.output[0],
    output:
        run_output("metrics", "nca_trajectory.npz"),
    log:
        run_log("trajectory"),
    benchmark:
        run_benchmark("trajectory")
    wildcard_constraints:
        model=r"(med_nca|nca)(_from_[A-Za-z0-9_]+)?",
    params:
        device=config["device"],
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/nca_trajectory.py"


rule build_report:
    input:
        result_outputs(),
    output:
        report(
            report_output(),
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    params:
        results_dir=lambda wildcards, output: Path(output[0]).parent,
        runs=report_runs(),
        datasets=DATASETS,
        studies=config["robustness"]["studies"],
        dataset_settings={dataset: config["dataset_settings"][dataset] for dataset in DATASETS},
        paper_results=config["paper_results"],
        paper_parameters=config["paper_parameters"],
        config=config,
        nca_runs=config["evaluation"]["nca_runs"],
        repository=Path(workflow.basedir).parent,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/build_report.py"
