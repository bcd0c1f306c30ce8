localrules:
    fetch_dataset,


rule fetch_dataset:
    output:
        data_output("source.json"),
    log:
        log_output("fetch"),
    benchmark:
        benchmark_output("fetch")
    params:
        data_dir=config["data_dir"],
        settings=dataset_settings,
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/fetch_dataset.py"


rule validate_dataset:
    input:
        rules.fetch_dataset.output,
        code=code("validate_dataset.py"),
    output:
        data_output("cases.csv"),
    log:
        log_output("validate"),
    benchmark:
        benchmark_output("validate")
    params:
        settings=dataset_settings,
        on_bad_case=config["bad_cases"],
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/validate_dataset.py"


rule preprocess_dataset:
    input:
        source=rules.fetch_dataset.output[0],
        cases=rules.validate_dataset.output[0],
        code=code("preprocess_dataset.py"),
    output:
        slices=directory(data_output("slices")),
    log:
        log_output("preprocess"),
    benchmark:
        benchmark_output("preprocess")
    params:
        settings=dataset_settings,
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/preprocess_dataset.py"


rule split_dataset:
    input:
        rules.validate_dataset.output,
        code=code("split_dataset.py"),
    output:
        report(
            data_output("manifest.csv"),
            caption="../report/manifest.rst",
            category="Data",
            subcategory="{dataset}",
        ),
    log:
        log_output("split"),
    benchmark:
        benchmark_output("split")
    params:
        settings=dataset_settings,
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/split_dataset.py"
