import sys
from pathlib import Path

from mednca.cluster import memory_advice
from mednca.dependencies import library_files
from mednca.config import dataset_models, efficiency_runs, preprocessing_of, validate_config
from mednca.records import config_hash
from mednca.names import MODEL_NAMES, NCA_MODELS, base_model, is_nca, name_pattern, transfer_name
from mednca.errors import ConfigError

try:
    config.update(validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml"))
except ConfigError as error:
    sys.exit(f"Invalid configuration: {error}")

RESULTS = config["results_dir"]
PROJECT = Path(workflow.basedir).parent
CONFIG_SHA256 = config_hash(config)
"""The configuration's identity (without data and results folders or the device), for the runs' records."""


def config_file_names():
    """The configuration files of this run, relative to the project when inside it."""
    names = []
    for path in map(Path, workflow.configfiles):
        absolute = path if path.is_absolute() else Path.cwd() / path
        inside = absolute.resolve().is_relative_to(PROJECT.resolve())
        names.append(str(absolute.resolve().relative_to(PROJECT.resolve())) if inside else path.name)
    return names


def report_memory_failures(logs):
    """After a failed run: one line per job killed for its memory (on a cluster), naming the resource."""
    for log in [logs] if isinstance(logs, str) else logs:
        for advice in memory_advice(Path(log)):
            print(advice, file=sys.stderr)


# The device is a runtime setting, not part of a result's identity: the torch scripts read it from the
# config, not from rule params, so switching auto/cpu/cuda re-uses what is already computed.
DATASETS = config["datasets"]
BASE_MODELS = name_pattern(list(MODEL_NAMES))
# The torch rules' conda environment (`--sdm conda`): a CUDA build of torch when the config asks for a GPU.
TORCH_ENV = "../../envs/train-cuda.yaml" if config["device"].startswith("cuda") else "../../envs/train.yaml"


wildcard_constraints:
    dataset="|".join(DATASETS),
    seed=r"\d+",


SCRIPTS = Path(workflow.basedir).parent / "scripts"


def code(script, per_model=False):
    """Input of a rule: its script and every library file the script runs, so that a change of the code
    re-runs the jobs that execute it. ``per_model``: a function of the wildcards that leaves out the
    architecture code of the other models (a change of the UNet's code re-runs the UNet's jobs only)."""
    path = SCRIPTS / script
    if per_model:
        return lambda wildcards: local_paths([path, *library_files(path, wildcards.model)])
    return local_paths([path, *library_files(path)])


def local_paths(paths):
    """Paths relative to the working directory where they lie inside it (so a copied project, or one moved
    elsewhere, keeps the same inputs), absolute otherwise."""
    here = Path.cwd().resolve()
    resolved = [Path(path).resolve() for path in paths]
    return [str(p.relative_to(here)) if p.is_relative_to(here) else str(p) for p in resolved]


def data_output(name):
    """Path pattern of a data-stage output of one dataset."""
    return f"{RESULTS}/data/{{dataset}}/{name}"


def log_output(stage):
    """Path pattern of a data-stage rule's log file."""
    return f"{RESULTS}/logs/{stage}/{{dataset}}.log"


FINE_TUNED = transfer_name("{model}", "{source}")
"""The model part of a fine-tuning run's paths, for the ``model`` argument of the path patterns below."""


def run_folder(kind, model="{model}", dataset="{dataset}"):
    """Path pattern of a run's folder of one kind: models, metrics, predictions or robustness."""
    return f"{RESULTS}/{kind}/{dataset}/{model}/seed{{seed}}"


def run_output(kind, name, model="{model}", dataset="{dataset}"):
    """Path pattern of a per-run output file or folder in its run folder of ``kind``."""
    return f"{run_folder(kind, model, dataset)}/{name}"


def run_log(stage, model="{model}"):
    """Path pattern of a per-run rule's log file."""
    return f"{RESULTS}/logs/{stage}/{{dataset}}/{model}/seed{{seed}}.log"


def benchmark_output(stage):
    """Path pattern of a data-stage rule's Snakemake benchmark (wall time, peak memory)."""
    return f"{RESULTS}/benchmarks/{stage}/{{dataset}}.tsv"


def run_benchmark(stage, model="{model}"):
    """Path pattern of a per-run rule's Snakemake benchmark."""
    return f"{RESULTS}/benchmarks/{stage}/{{dataset}}/{model}/seed{{seed}}.tsv"


def dataset_settings(wildcards):
    """The validated settings block of the dataset in the wildcards."""
    return config["dataset_settings"][wildcards.dataset]


def model_settings(wildcards):
    """Architecture and training settings of the (base) model in the wildcards."""
    return config["model_settings"][wildcards.model]


def preprocessing(wildcards):
    """What a trained model must remember to segment a new image as it was trained."""
    return preprocessing_of(dataset_settings(wildcards))


def transfer_settings(wildcards):
    """The transfer entry that fine-tunes this model from this source on this dataset."""
    for entry in config["transfer"]:
        if (entry["model"], entry["source"], entry["target"]) == (
            wildcards.model,
            wildcards.source,
            wildcards.dataset,
        ):
            return entry
    raise WorkflowError(f"no transfer entry for {wildcards.model} from {wildcards.source} to {wildcards.dataset}")


def finetune_training(wildcards):
    """The model's training settings with the transfer entry's epochs and learning rate (if it sets one)."""
    training = model_settings(wildcards)["training"]
    transfer = transfer_settings(wildcards)
    return training | {"epochs": transfer["epochs"], "lr": transfer["lr"] or training["lr"]}


def models_of(dataset):
    """Models run on a dataset: its own list if it has one, else the top-level list."""
    return dataset_models(config, dataset)


def runs():
    """(dataset, model) pairs to evaluate, including fine-tuned models named {model}_from_{source}."""
    pairs = [(dataset, model) for dataset in DATASETS for model in models_of(dataset)]
    pairs += [(t["target"], transfer_name(t["model"], t["source"])) for t in config["transfer"]]
    return pairs


def data_outputs():
    """Manifest and preprocessed slices of every configured dataset."""
    return expand([data_output("manifest.csv"), data_output("slices")], dataset=DATASETS)


def report_runs():
    """[dataset, model, seed] of every run (trained or fine-tuned model and seed)."""
    return [[dataset, model, seed] for dataset, model in runs() for seed in config["seeds"]]


def per_run(patterns, nca_only=False, validated_only=False):
    """``patterns`` (with {dataset}, {model}, {seed}) filled in for every run, or every NCA run, or every
    run on a dataset with a validation split."""
    return [
        pattern.format(dataset=dataset, model=model, seed=seed)
        for dataset, model, seed in report_runs()
        if (is_nca(model) or not nca_only) and (has_validation(dataset) or not validated_only)
        for pattern in patterns
    ]


def has_validation(dataset):
    """Whether the dataset's split holds out validation patients (``validation_fraction`` > 0)."""
    return config["dataset_settings"][dataset]["validation_fraction"] > 0


VALIDATION = "validation"
"""The folder, inside a run's metrics and robustness folders, of what was measured on the validation split."""


def validation_outputs():
    """Per-case metrics and summary on the validation split of every run whose dataset has one."""
    names = [f"{VALIDATION}/per_case.csv", f"{VALIDATION}/summary.json"]
    return per_run([run_output("metrics", name) for name in names], validated_only=True)


def calibration_output(model="{model}", dataset="{dataset}"):
    """Path pattern of an NCA run's NQM failure detection on the validation split (its threshold)."""
    return run_output("robustness", f"{VALIDATION}/nqm_failure_detection.json", model, dataset)


def calibration_input(wildcards):
    """The NQM threshold the test robustness of an NCA is judged with: calibrated on validation if any."""
    if is_nca(wildcards.model) and has_validation(wildcards.dataset):
        return [calibration_output(wildcards.model, wildcards.dataset).format(seed=wildcards.seed)]
    return []


def model_outputs():
    """The trained (or fine-tuned) model of every (dataset, model, seed)."""
    return per_run([run_output("models", "model.pt")])


def evaluation_outputs():
    """Per-case metrics and summary of every (dataset, model, seed), on the test and validation splits."""
    test = per_run([run_output("metrics", "per_case.csv"), run_output("metrics", "summary.json")])
    return test + validation_outputs()


def run_settings(wildcards):
    """The configuration blocks that made one run: its dataset, its model (and transfer), the evaluation."""
    settings = {
        "dataset": config["dataset_settings"][wildcards.dataset],
        "model": config["model_settings"][base_model(wildcards.model)],
        "evaluation": config["evaluation"],
    }
    transfer = [t for t in config["transfer"] if transfer_name(t["model"], t["source"]) == wildcards.model]
    return settings | ({"transfer": transfer[0]} if transfer else {})


def validation_summary(wildcards):
    """The run's validation summary, if its dataset has a validation split."""
    if has_validation(wildcards.dataset):
        return [run_output("metrics", f"{VALIDATION}/summary.json").format(**wildcards)]
    return []


def card_outputs():
    """The model card beside every trained model."""
    return per_run([run_output("models", "model_card.md")])


def record_outputs():
    """The record of every run."""
    return per_run([f"{RESULTS}/records/{{dataset}}/{{model}}/seed{{seed}}.json"])


def learning_curve_outputs():
    """The learning curve of every (dataset, model, seed)."""
    return per_run([run_output("metrics", "learning_curve.csv")])


def validation_curve_outputs():
    """The validation learning curve of every run whose dataset has a validation split."""
    return per_run([run_output("metrics", f"{VALIDATION}/learning_curve.csv")], validated_only=True)


def validation_curve(wildcards):
    """The run's validation learning curve, if its dataset has a validation split."""
    if has_validation(wildcards.dataset):
        return [run_output("metrics", f"{VALIDATION}/learning_curve.csv").format(**wildcards)]
    return []


def studies_run():
    """Whether the configuration asks for any robustness study (the robustness rule runs only then)."""
    return bool(config["robustness"]["studies"])


def robustness_run_outputs(name):
    """One robustness output of every (dataset, model, seed), if any study is configured."""
    return per_run([run_output("robustness", name)]) if studies_run() else []


def robustness_tables(folder=""):
    """Path patterns of one run's robustness tables, one per configured study (in config order), in its
    robustness folder or a ``folder`` inside it."""
    return [run_output("robustness", f"{folder}{study}.csv") for study in config["robustness"]["studies"]]


def robustness_quality(wildcards):
    """An NCA run's NQM failure detection on the test robustness cases, if any study is configured."""
    if studies_run() and is_nca(wildcards.model):
        return [run_output("robustness", "nqm_failure_detection.json").format(**wildcards)]
    return []


def robustness_inputs(wildcards):
    """One run's robustness tables (in config order), if any study is configured."""
    return [path.format(**wildcards) for path in robustness_tables()] if studies_run() else []


def robustness_outputs():
    """Every robustness table of every (dataset, model, seed)."""
    return per_run(robustness_tables())


def trajectory_outputs():
    """The recorded NCA trajectory of every NCA (dataset, model, seed)."""
    return per_run([run_output("metrics", "nca_trajectory.npz")], nca_only=True)


def report_output():
    """The run's HTML report."""
    return config["report_html"] or f"{RESULTS}/report.html"


def result_outputs():
    """Every result the report is built from."""
    return (
        data_outputs()
        + evaluation_outputs()
        + learning_curve_outputs()
        + validation_curve_outputs()
        + robustness_outputs()
        + trajectory_outputs()
    )


DATA_STAGES = ("fetch", "validate", "preprocess", "split")
"""The data-stage rules that write a benchmark per dataset (see data.smk)."""


def benchmark_files():
    """{(stage, job): Snakemake benchmark file} of every job the results come from (job: its wildcards)."""
    jobs = {
        (stage, dataset): benchmark_output(stage).format(dataset=dataset)
        for stage in DATA_STAGES
        for dataset in DATASETS
    }
    run_stages = ["train", "evaluate", "learning_curve"] + (["robustness"] if studies_run() else [])
    for dataset, model, seed in report_runs():
        for stage in run_stages + (["trajectory"] if is_nca(model) else []):
            path = run_benchmark(stage).format(dataset=dataset, model=model, seed=seed)
            jobs[(stage, f"{dataset}/{model}/seed{seed}")] = path
    return jobs


def ablation_inputs():
    """The folder of recipe-ablation records the report shows, if the config names one."""
    return [config["ablation_records"]] if config["ablation_records"] else []


def edge_inputs():
    """The edge-profile record the report judges the Raspberry-Pi claim from, if the config names one."""
    return [config["edge_record"]] if config["edge_record"] else []


def summary_outputs():
    """The run-level metrics and curves that DVC compares between runs."""
    names = ("metrics.json", "training.csv", "learning_curve.csv", "robustness.csv")
    return [f"{RESULTS}/summary/{name}" for name in names]


def all_outputs():
    """Every final output of the configured run, ending with the report."""
    return (
        result_outputs()
        + card_outputs()
        + record_outputs()
        + efficiency_table_outputs()
        + summary_outputs()
        + [report_output()]
    )


def efficiency_output(name, model="{model}"):
    """Path pattern of an output of one study run ({cases} training cases, {seed})."""
    return f"{RESULTS}/efficiency/{{dataset}}/{model}/cases{{cases}}/seed{{seed}}/{name}"


def efficiency_log(stage, model="{model}"):
    """Path pattern of a study run's log file."""
    return f"{RESULTS}/logs/{stage}/{{dataset}}/{model}/cases{{cases}}/seed{{seed}}.log"


def efficiency_benchmark(stage, model="{model}"):
    """Path pattern of a study run's Snakemake benchmark."""
    return f"{RESULTS}/benchmarks/{stage}/{{dataset}}/{model}/cases{{cases}}/seed{{seed}}.tsv"


def efficiency_training(wildcards):
    """The model's own training settings with the study's budget of optimiser steps, without snapshots."""
    budget = config["data_efficiency"]["iterations"]
    return model_settings(wildcards)["training"] | {"iterations": budget, "snapshot_every": 0}


def efficiency_cases(wildcards):
    """The number of training cases of a study run (None: the whole train split)."""
    return None if wildcards.cases == "all" else int(wildcards.cases)


def pretrained_source(wildcards):
    """The model a fine-tuning study run starts from: trained on the source dataset with the first seed."""
    pattern = run_output("models", "model.pt", dataset=wildcards.source)
    return pattern.format(model=wildcards.model, seed=config["seeds"][0])


def efficiency_files(name):
    """Output ``name`` of every study run, in efficiency_runs() order."""
    dataset = config["data_efficiency"]["dataset"]
    return [
        efficiency_output(name).format(dataset=dataset, model=model, cases=cases, seed=seed)
        for model, cases, seed in efficiency_runs(config)
    ]


def efficiency_table_outputs():
    """The study's table, if the configuration asks for the study."""
    return [f"{RESULTS}/efficiency/data_efficiency.csv"] if efficiency_runs(config) else []
