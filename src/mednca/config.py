"""Loading and validating the pipeline configuration against its JSON schema.

The schema (``workflow/schemas/config.schema.yaml``) is the single source of defaults and documentation;
this module fills the defaults in and turns schema violations into one-line errors that name the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mednca.errors import ConfigError


def load_yaml(path: Path) -> Any:
    """Read a YAML file, naming the file when it cannot be read or parsed."""
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error


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
    filled = fill_defaults(config, schema)
    missing = [name for name in filled["datasets"] if name not in filled["dataset_settings"]]
    if missing:
        raise ConfigError(f"config key 'datasets': no entry in 'dataset_settings' for {', '.join(missing)}")
    return canonical(filled)


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively), so that rule parameters derived from the
    config do not change when a YAML file lists the same keys in another order."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


PREPROCESSING_KEYS = (
    "layout",
    "modalities",
    "sequences",
    "foreground_labels",
    "slice_axis",
    "image_size",
    "resize_mode",
    "intensity",
)


def preprocessing_of(dataset_settings: dict) -> dict:
    """The part of a (validated) dataset block a trained model must keep to segment new images alike."""
    return {key: copy.deepcopy(dataset_settings[key]) for key in PREPROCESSING_KEYS}


NCA_MODELS = ("med_nca", "nca")


def base_model(model: str) -> str:
    """The architecture of a model name: 'segnet_from_brats' -> 'segnet'."""
    return model.partition("_from_")[0]


def is_nca(model: str) -> bool:
    """Whether a model name (possibly ``{model}_from_{source}``) is a stochastic NCA."""
    return base_model(model) in NCA_MODELS
