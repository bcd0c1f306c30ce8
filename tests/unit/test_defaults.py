"""The schema owns the defaults: stages take its values as required arguments, every other copy equals it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import mednca
from mednca.cli import build_parser
from mednca.config import schema_default
from mednca.data.stages import PhantomSpec
from mednca.models.registry import MODELS
from mednca.train.loop import TrainingSettings

#: The only defaulted parameters of the stage functions: optional inputs (None) and settings the schema does
#: not hold; where the schema does hold one, the key whose default it must equal.
STAGE_DEFAULTS = {
    ("fetch_stage", "archive"): "dataset_settings.*.archive",
    ("fetch_stage", "url"): "dataset_settings.*.url",
    ("fetch_stage", "md5"): "dataset_settings.*.md5",
    ("fetch_stage", "phantom"): None,
    ("train_stage", "max_cases"): None,
    ("train_stage", "init_model"): None,
    ("trajectory_stage", "snapshots"): None,
    ("report_stage", "repository"): None,
    ("report_stage", "ablation_records"): "ablation_records",
    ("report_stage", "edge_record"): "edge_record",
    ("report_stage", "efficiency_csv"): None,
    ("split_stage", "validation_fraction"): "dataset_settings.*.validation_fraction",
    ("evaluate_stage", "split"): None,
    ("learning_curve_stage", "split"): None,
    ("evaluate_stage", "slices_npz"): None,
    ("evaluate_stage", "predictions_dir"): None,
    ("robustness_stage", "split"): None,
    ("robustness_stage", "calibration_json"): None,
}


def _stage_functions() -> dict[str, object]:
    """Every ``*_stage`` function defined in the package, by name."""
    stages = {}
    for module_info in pkgutil.walk_packages(mednca.__path__, "mednca."):
        module = importlib.import_module(module_info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.endswith("_stage") and function.__module__ == module.__name__:
                stages[name] = function
    return stages


def _plain(value):
    """Tuples as lists, as the YAML schema writes them."""
    return [_plain(item) for item in value] if isinstance(value, tuple | list) else value


def test_stage_functions_default_only_what_the_schema_does_not_own() -> None:
    stages = _stage_functions()
    assert {"evaluate_stage", "robustness_stage", "train_stage", "validate_stage"} <= set(stages)
    defaulted = {
        (name, parameter.name): parameter.default
        for name, function in stages.items()
        for parameter in inspect.signature(function).parameters.values()
        if parameter.default is not inspect.Parameter.empty
    }
    assert set(defaulted) == set(STAGE_DEFAULTS), "a stage parameter the schema owns must be required"
    for (name, parameter), key in STAGE_DEFAULTS.items():
        if key is not None:
            assert defaulted[name, parameter] == schema_default(key), f"{name}({parameter})"


def test_training_settings_defaults_equal_the_schema() -> None:
    schema = schema_default("model_settings.med_nca.training")
    fields = {field.name: field for field in dataclasses.fields(TrainingSettings)}
    assert set(fields) == set(schema)
    for name, field in fields.items():
        if field.default is not dataclasses.MISSING:
            assert _plain(field.default) == schema[name], name


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_constructor_defaults_equal_the_schema(model: str) -> None:
    schema = schema_default(f"model_settings.{model}.architecture")
    parameters = inspect.signature(MODELS[model].__init__).parameters
    assert set(schema) <= set(parameters), "every architecture key is a constructor argument"
    for name, value in schema.items():
        assert _plain(parameters[name].default) == value, f"{model}({name})"


def test_phantom_spec_defaults_equal_the_schema() -> None:
    schema = schema_default("dataset_settings.*.synthetic")
    for field in dataclasses.fields(PhantomSpec):
        if field.default is not dataclasses.MISSING:
            assert _plain(field.default) == schema[field.name], field.name


@pytest.mark.parametrize(
    ("argv", "option", "key"),
    [
        (["evaluate", "m.pt", "data", "out"], "runs", "evaluation.nca_runs"),
        (["evaluate", "m.pt", "data", "out"], "batch_size", "evaluation.batch_size"),
        (["evaluate", "m.pt", "data", "out"], "device", "device"),
        (["predict", "--model", "m.pt", "--input", "i", "--output", "o"], "runs", "evaluation.nca_runs"),
        (["train", "data", "m.pt", "--model", "unet"], "device", "device"),
        (["validate", "folder"], "modalities", "dataset_settings.*.modalities"),
        (["validate", "folder"], "sequences", "dataset_settings.*.sequences"),
        (["phantom", "out"], "shape", "dataset_settings.*.synthetic.shape"),
        (["phantom", "out"], "shape_jitter", "dataset_settings.*.synthetic.shape_jitter"),
        (["phantom", "out"], "modalities", "dataset_settings.*.synthetic.modalities"),
    ],
)
def test_command_line_defaults_equal_the_schema(argv: list[str], option: str, key: str) -> None:
    assert _plain(getattr(build_parser().parse_args(argv), option)) == schema_default(key)


def test_schema_default_reads_model_specific_training_defaults() -> None:
    assert schema_default("evaluation.nca_runs") == 10
    assert schema_default("model_settings.unet.training.lr") == pytest.approx(1e-4)
    assert schema_default("model_settings.med_nca.training.lr") == pytest.approx(1.6e-3)
    with pytest.raises(KeyError):
        schema_default("evaluation.no_such_key")


def test_the_schema_lists_exactly_the_registered_models() -> None:
    from mednca.config import SCHEMA_PATH, load_yaml
    from mednca.models.registry import is_stochastic
    from mednca.names import MODEL_NAMES, NCA_MODELS

    schema = load_yaml(SCHEMA_PATH)
    assert schema["$defs"]["model_name"]["enum"] == list(MODEL_NAMES) == list(MODELS)
    assert list(schema["properties"]["model_settings"]["properties"]) == list(MODEL_NAMES)
    stochastic = [name for name, model in MODELS.items() if is_stochastic(_tiny(name, model))]
    assert stochastic == list(NCA_MODELS)


def _tiny(name: str, model_class):
    """A model of ``model_class`` built on the meta device (no memory, no compute)."""
    import torch

    with torch.device("meta"):
        return model_class(**schema_default(f"model_settings.{name}.architecture"))
