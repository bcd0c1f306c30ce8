rule build_report:
    input:
        # Lists of per-run files follow report_runs() (robustness: the studies inner; trajectories: NCA
        # runs only); the report reads nothing else.
        manifests=expand(data_output("manifest.csv"), dataset=DATASETS),
        slices=expand(data_output("slices"), dataset=DATASETS),
        per_case=per_run([run_output("metrics", "per_case.csv")]),
        summaries=per_run([run_output("metrics", "summary.json")]),
        train_logs=per_run([run_output("models", "train_log.csv")]),
        learning_curves=learning_curve_outputs(),
        test_slices=per_run([run_output("metrics", "test_slices.npz")]),
        robustness=robustness_outputs(),
        quality=robustness_run_outputs("nqm_failure_detection.json"),
        galleries=robustness_run_outputs("gallery"),
        trajectories=trajectory_outputs(),
        benchmarks=list(benchmark_files().values()),
        ablation=ablation_inputs(),
        edge=edge_inputs(),
        efficiency=efficiency_table_outputs(),
        records=record_outputs(),
        code=code("build_report.py"),
    output:
        report(
            report_output(),
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    params:
        runs=report_runs(),
        datasets=DATASETS,
        benchmark_jobs=list(benchmark_files()),
        studies=config["robustness"]["studies"],
        paper_results=config["paper_results"],
        paper_parameters=config["paper_parameters"],
        config=config,
        nca_runs=config["evaluation"]["nca_runs"],
        repository=Path(workflow.basedir).parent,
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/build_report.py"


rule summarise_run:
    input:
        summaries=per_run([run_output("metrics", "summary.json")]),
        train_logs=per_run([run_output("models", "train_log.csv")]),
        learning_curves=learning_curve_outputs(),
        robustness=robustness_outputs(),
        code=code("summarise_run.py"),
    output:
        metrics=f"{RESULTS}/summary/metrics.json",
        training=f"{RESULTS}/summary/training.csv",
        learning_curve=f"{RESULTS}/summary/learning_curve.csv",
        robustness=f"{RESULTS}/summary/robustness.csv",
    log:
        f"{RESULTS}/logs/summary.log",
    params:
        runs=report_runs(),
        studies=config["robustness"]["studies"],
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/summarise_run.py"


# A run's record (results/records/): what the documents quote, collected by `mednca records collect`.
use rule write_model_card as record_run with:
    input:
        training=run_output("models", "training.json"),
        history=run_output("models", "train_log.csv"),
        manifest=rules.split_dataset.output[0],
        test=run_output("metrics", "summary.json"),
        validation=validation_summary,
        quality=lambda wildcards: robustness_quality(wildcards),
        learning_curve=run_output("metrics", "learning_curve.csv"),
        validation_curve=validation_curve,
        robustness=lambda wildcards: robustness_inputs(wildcards),
        code=code("record_run.py"),
    output:
        record=f"{RESULTS}/records/{{dataset}}/{{model}}/seed{{seed}}.json",
    log:
        run_log("record"),
    params:
        settings=lambda wildcards: run_settings(wildcards) | {"robustness": config["robustness"]},
        config_files=config_file_names(),
        config_sha256=CONFIG_SHA256,
        studies=config["robustness"]["studies"] if studies_run() else [],
