"""Loading and validating the pipeline configuration against its JSON schema.

The schema (``mednca/schemas/config.schema.yaml``, shipped with the package; the workflow's
``workflow/schemas/config.schema.yaml`` links to it) is the single source of defaults and documentation;
this module fills the defaults in and turns schema violations into one-line errors that name the key.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mednca.data.preprocessing import CONFIG_KEYS
from mednca.errors import ConfigError
from mednca.names import TRANSFER_SEPARATOR, base_model

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


def load_yaml(path: Path) -> Any:
    """Read a YAML file, naming the file when it cannot be read or parsed."""
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())  # YAML errors span several lines
        raise ConfigError(f"cannot read {path}: {reason}") from error


def _resolve(schema: dict, root: dict) -> dict:
    """Follow a local ``$ref`` (``#/$defs/name``) to the schema it points at."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node, root)


def _merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``, recursively for nested mappings."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_dicts else value
    return merged


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Return a copy of ``instance`` with the schema's ``default`` values filled in, recursively.

    Descends into ``properties``, schema-valued ``additionalProperties`` and array ``items``. A mapping
    default is a base that the given mapping overrides key by key (so a model's own training defaults
    survive setting one training key).
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if isinstance(instance, dict) and schema.get("type") in ("object", ["object", "null"], None):
        filled = dict(instance)
        for key, child in schema.get("properties", {}).items():
            has_default, default = "default" in child, child.get("default")
            child = _resolve(child, root)
            if not has_default:
                has_default, default = "default" in child, child.get("default")
            if key not in filled and has_default:
                filled[key] = copy.deepcopy(default)
            elif isinstance(default, dict) and isinstance(filled.get(key), dict):
                filled[key] = _merge(default, filled[key])
            if key in filled:
                filled[key] = fill_defaults(filled[key], child, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(filled) - set(schema.get("properties", {})):
                filled[key] = fill_defaults(filled[key], extra, root)
        return filled
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [fill_defaults(item, schema["items"], root) for item in instance]
    return instance


@functools.lru_cache(maxsize=4)
def _schema_defaults(schema_path: Path) -> dict:
    # One dataset entry (named "*") with a synthetic block, so that the dataset defaults are filled in too.
    return fill_defaults({"dataset_settings": {"*": {"synthetic": {}}}}, load_yaml(schema_path))


def schema_default(key: str, schema_path: Path = SCHEMA_PATH) -> Any:
    """The schema's default of a dotted config key, as a filled-in config holds it.

    ``evaluation.nca_runs`` -> 10; ``model_settings.unet.training.lr`` -> 1e-4 (a model's own training
    defaults over the shared ones); ``dataset_settings.*.synthetic.cases`` for a dataset's settings.
    Raises KeyError for a key without a default.
    """
    value: Any = _schema_defaults(Path(schema_path))
    for part in key.split("."):
        value = value[part]
    return copy.deepcopy(value)


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def validate_config(config: dict, schema_path: Path) -> dict:
    """Check ``config`` against the schema and return it with defaults filled in and keys sorted.

    Raises ConfigError naming the first offending key, e.g. ``config key 'seeds[1]': 'x' is not of type
    'integer'``, or a dataset listed in ``datasets`` without settings.
    """
    schema = load_yaml(schema_path)
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a mapping of keys to values")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"config key '{_key_path(error)}': {error.message}")
    filled = expand_home(fill_defaults(config, schema))
    missing = [name for name in filled["datasets"] if name not in filled["dataset_settings"]]
    if missing:
        raise ConfigError(f"config key 'datasets': no entry in 'dataset_settings' for {', '.join(missing)}")
    check_semantics(filled)
    return canonical(filled)


PATH_KEYS = ("data_dir", "results_dir", "report_html", "ablation_records", "edge_record")
"""The config keys that name files or folders: a leading ``~`` is expanded as a shell would."""


def expand_home(config: dict) -> dict:
    """``config`` with ``~`` and ``~user`` at the start of its path keys expanded; a ConfigError names a key
    whose ``~user`` is not a known user (nothing would be created under a literal ``~`` folder)."""
    expanded = dict(config)
    for key in PATH_KEYS:
        value = config.get(key)
        if not isinstance(value, str) or not value.startswith("~"):
            continue
        home = os.path.expanduser(value)
        if home.startswith("~"):
            user = value[1:].split("/", 1)[0]
            raise _invalid(key, f"'{value}': no home folder for user '{user}'; give the folder's full path")
        expanded[key] = home
    return expanded


def _invalid(key: str, problem: str) -> ConfigError:
    """The one-line error for a config key whose value the schema accepts but the pipeline cannot use."""
    return ConfigError(f"config key '{key}': {problem}")


def _names(values: list) -> str:
    """``values`` as a comma-separated list for a message."""
    return ", ".join(str(value) for value in values)


def dataset_models(config: dict, dataset: str) -> list[str]:
    """Models trained on ``dataset`` (filled-in config): its own ``models`` list, else the top-level one."""
    return config["dataset_settings"][dataset]["models"] or config["models"]


def input_channels(settings: dict) -> int:
    """Image channels of a dataset's slices: its ``modalities`` (msd layout) or ``sequences`` (brats)."""
    return len(settings["modalities"] if settings["layout"] == "msd" else settings["sequences"])


def model_runs(config: dict) -> list[tuple[str, str, str]]:
    """(dataset, model, config key that puts the model there) of every model that runs on a dataset:
    trained on it, fine-tuned on it by a ``transfer`` entry, or trained in the data-efficiency study."""
    runs = []
    for dataset in config["datasets"]:
        key = (
            "models"
            if config["dataset_settings"][dataset]["models"] is None
            else f"dataset_settings.{dataset}.models"
        )
        runs += [(dataset, model, key) for model in dataset_models(config, dataset)]
    runs += [
        (entry["target"], entry["model"], f"transfer[{index}]")
        for index, entry in enumerate(config["transfer"])
    ]
    study = config["data_efficiency"]
    if study["dataset"] is not None:
        runs += [(study["dataset"], base_model(model), "data_efficiency.models") for model in study["models"]]
    return runs


def check_semantics(config: dict) -> None:
    """Raise ConfigError for values that pass the schema but that the pipeline cannot run, naming the key.

    Checked on the filled-in config, before anything is planned: the device name, every dataset's model
    list, intensity window and synthetic channels, the ``transfer`` entries and the data-efficiency study's
    models, the robustness levels (the first must be the study's clean value), each model's architecture
    and the image sizes its models can take.
    """
    _check_device(config["device"])
    for dataset in config["datasets"]:
        _check_dataset(dataset, config["dataset_settings"][dataset], config)
    _check_transfer(config)
    _check_efficiency(config)
    _check_levels(config["robustness"]["levels"])
    _check_architectures(config)
    from mednca.memory import check_memory

    for warning in check_memory(config):
        logging.getLogger("mednca.memory").warning("%s", warning)


def _check_device(device: str) -> None:
    from mednca.device import DEVICE_PATTERN

    if not DEVICE_PATTERN.match(device):
        raise _invalid(
            "device", f"'{device}' is not a device; use auto, cpu, cuda, cuda:N (e.g. cuda:0) or mps"
        )


def _check_dataset(dataset: str, settings: dict, config: dict) -> None:
    key = f"dataset_settings.{dataset}"
    if not dataset_models(config, dataset):
        raise _invalid(f"{key}.models", "no model runs on this dataset; list at least one model")
    intensity = settings["intensity"]
    if intensity["method"] == "percentile" and intensity["lower"] >= intensity["upper"]:
        raise _invalid(
            f"{key}.intensity",
            f"lower percentile {intensity['lower']} must be below upper percentile {intensity['upper']}",
        )
    held_out = settings["test_fraction"] + settings["validation_fraction"]
    if held_out >= 1:
        raise _invalid(
            f"{key}.validation_fraction",
            f"test_fraction {settings['test_fraction']} + validation_fraction "
            f"{settings['validation_fraction']} = {held_out:g} leaves no training case",
        )
    synthetic = settings["synthetic"]
    if synthetic is not None and settings["layout"] == "msd":
        beyond = [index for index in settings["modalities"] if index >= synthetic["modalities"]]
        if beyond:
            raise _invalid(
                f"{key}.modalities",
                f"channel(s) {_names(beyond)} do not exist: 'synthetic.modalities' generates "
                f"{synthetic['modalities']} channel(s), numbered from 0",
            )


def _check_transfer(config: dict) -> None:
    datasets = config["datasets"]
    seen: dict[tuple[str, str, str], int] = {}
    for index, entry in enumerate(config["transfer"]):
        key = f"transfer[{index}]"
        if entry["target"] not in datasets:
            raise _invalid(f"{key}.target", f"'{entry['target']}' is not in 'datasets' ({_names(datasets)})")
        _check_source(key, entry["model"], entry["source"], entry["target"], config)
        triple = (entry["model"], entry["source"], entry["target"])
        if triple in seen:
            raise _invalid(key, f"repeats transfer[{seen[triple]}] (same model, source and target)")
        seen[triple] = index


def _check_source(key: str, model: str, source: str, target: str, config: dict) -> None:
    """Raise unless ``model``, trained on dataset ``source`` by this run, can be fine-tuned on ``target``."""
    datasets = config["datasets"]
    if source not in datasets:
        raise _invalid(f"{key}.source", f"'{source}' is not in 'datasets' ({_names(datasets)})")
    source_models = dataset_models(config, source)
    if model not in source_models:
        raise _invalid(
            f"{key}.model",
            f"'{model}' is not trained on source '{source}' (its models: {_names(source_models)})",
        )
    source_channels = input_channels(config["dataset_settings"][source])
    target_channels = input_channels(config["dataset_settings"][target])
    if target_channels not in (1, source_channels):
        raise _invalid(
            f"{key}.target",
            f"'{target}' has {target_channels} input channels but source '{source}' has {source_channels}; "
            "fine-tuning needs equal channels or a single-channel target",
        )


def efficiency_runs(config: dict) -> list[tuple[str, str, int]]:
    """(model, cases, seed) of every run of the data-efficiency study (none while it is off).

    ``cases`` is k as a path part ("2", ..., "all"); every seed runs up to ``all_seeds_up_to`` cases, only
    the first seed above that.
    """
    study = config["data_efficiency"]
    if study["dataset"] is None:
        return []
    runs = []
    for cases in study["cases"]:
        few = cases != "all" and cases <= study["all_seeds_up_to"]
        seeds = study["seeds"] if few else study["seeds"][:1]
        runs += [(model, str(cases), seed) for model in study["models"] for seed in seeds]
    return runs


def _check_efficiency(config: dict) -> None:
    study = config["data_efficiency"]
    dataset = study["dataset"]
    if dataset is None:
        return
    if dataset not in config["datasets"]:
        raise _invalid(
            "data_efficiency.dataset", f"'{dataset}' is not in 'datasets' ({_names(config['datasets'])})"
        )
    for index, model in enumerate(study["models"]):
        base, _, source = model.partition(TRANSFER_SEPARATOR)
        if source:
            _check_source(f"data_efficiency.models[{index}]", base, source, dataset, config)


def _check_levels(levels: dict[str, list[float]]) -> None:
    if not levels:
        return
    # The clean value is the study registry's (the schema checks the study names and value ranges).
    from mednca.studies import STUDIES

    for study, values in levels.items():
        clean = STUDIES[study].clean
        if float(values[0]) != clean:
            raise _invalid(
                f"robustness.levels.{study}",
                f"the first level must be the clean (unperturbed) value {clean:g} of study '{study}', "
                f"got {values[0]:g}",
            )


def _check_architectures(config: dict) -> None:
    """Build every model that runs (on PyTorch's ``meta`` device: no memory, no compute), so that bad
    architecture arguments fail here; then check every dataset's image size against its models."""
    runs = model_runs(config)
    if not runs:
        return
    import torch

    from mednca.models.registry import build_model, image_size_problem

    for model in dict.fromkeys(model for _, model, _ in runs):
        architecture = config["model_settings"][model]["architecture"]
        try:
            with torch.device("meta"):
                build_model(model, 1, **architecture)
        except Exception as error:  # a constructor rejects bad arguments in its own ways
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise _invalid(f"model_settings.{model}.architecture", reason) from None
    for dataset, model, reason in runs:
        size = config["dataset_settings"][dataset]["image_size"]
        problem = image_size_problem(model, config["model_settings"][model]["architecture"], size)
        if problem is not None:
            raise _invalid(
                f"dataset_settings.{dataset}.image_size",
                f"{size} cannot be fed to model '{model}' (listed in '{reason}'): {problem}",
            )


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively), so that rule parameters derived from the
    config do not change when a YAML file lists the same keys in another order."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


PREPROCESSING_KEYS = CONFIG_KEYS
"""The keys of a dataset block that make up a trained model's ``Preprocessing``."""


def preprocessing_of(dataset_settings: dict) -> dict:
    """The part of a (validated) dataset block a trained model must keep to segment new images alike, as
    plain values (a rule parameter); ``Preprocessing.from_mapping`` makes it typed."""
    return {key: copy.deepcopy(dataset_settings[key]) for key in PREPROCESSING_KEYS}
