from pathlib import Path

from mednca.config import validate_config
from mednca.errors import ConfigError

try:
    config.update(validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml"))
except ConfigError as error:
    raise WorkflowError(f"Invalid configuration: {error}") from None

RESULTS = config["results_dir"]
DATASETS = config["datasets"]


wildcard_constraints:
    dataset="|".join(DATASETS),


def data_output(name):
    """Path pattern of a data-stage output of one dataset."""
    return f"{RESULTS}/data/{{dataset}}/{name}"


def log_output(stage):
    """Path pattern of a rule's log file."""
    return f"{RESULTS}/logs/{stage}/{{dataset}}.log"


def dataset_settings(wildcards):
    """The validated settings block of the dataset in the wildcards."""
    return config["dataset_settings"][wildcards.dataset]


def data_outputs():
    """Manifest and preprocessed slices of every configured dataset."""
    return expand([data_output("manifest.csv"), data_output("slices")], dataset=DATASETS)


def all_outputs():
    """Every final output of the configured run."""
    return data_outputs()
