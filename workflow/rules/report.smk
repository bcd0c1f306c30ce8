rule build_report:
    input:
        result_outputs(),
        ablation_inputs(),
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
        ablation_table=config["ablation_table"],
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/build_report.py"


rule summarise_run:
    input:
        evaluation_outputs(),
        learning_curve_outputs(),
        robustness_outputs(),
    output:
        metrics=f"{RESULTS}/summary/metrics.json",
        training=f"{RESULTS}/summary/training.csv",
        learning_curve=f"{RESULTS}/summary/learning_curve.csv",
        robustness=f"{RESULTS}/summary/robustness.csv",
    log:
        f"{RESULTS}/logs/summary.log",
    params:
        results_dir=lambda wildcards, output: Path(output.metrics).parent.parent,
        runs=report_runs(),
        studies=config["robustness"]["studies"],
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/summarise_run.py"
