"""The configuration schema: shipped configs are valid, defaults fill in, bad keys are named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from monai.apps import DecathlonDataset
from snakemake.utils import update_config

from mednca.config import load_yaml, validate_config
from mednca.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "src" / "mednca" / "schemas" / "config.schema.yaml"
PAPER = load_yaml(ROOT / "config" / "config.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_shipped_configs_are_valid_over_the_default(name: str) -> None:
    """Like Snakemake, a --configfile is merged over config/config.yaml before validation."""
    config = copy.deepcopy(PAPER)
    update_config(config, load_yaml(ROOT / "config" / name))
    validate_config(config, SCHEMA)


def test_paper_config_runs_hippocampus_and_prostate() -> None:
    assert PAPER["datasets"] == ["hippocampus", "prostate"]


@pytest.mark.parametrize(
    ("dataset", "task"), [("hippocampus", "Task04_Hippocampus"), ("prostate", "Task05_Prostate")]
)
def test_msd_urls_and_checksums_are_the_ones_monai_uses(dataset: str, task: str) -> None:
    settings = PAPER["dataset_settings"][dataset]
    assert settings["url"] == DecathlonDataset.resource[task]
    assert settings["md5"] == DecathlonDataset.md5[task]


def test_defaults_are_filled_in_nested_blocks() -> None:
    config = {
        "datasets": ["d"],
        "dataset_settings": {
            "d": {"layout": "msd", "folder": "D", "foreground_labels": [1], "image_size": [16, 16]}
        },
    }
    filled = validate_config(config, SCHEMA)
    assert filled["data_dir"] == "data/raw" and filled["results_dir"] == "results" and filled["seeds"] == [0]
    assert filled["dataset_settings"]["d"]["intensity"] == {
        "method": "percentile",
        "lower": 0.5,
        "upper": 99.5,
    }
    assert filled["dataset_settings"]["d"]["test_fraction"] == 0.3
    assert "data_dir" not in config


def _broken(change) -> dict:
    config = copy.deepcopy(PAPER)
    change(config)
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(modles=["unet"]), "'modles' was unexpected"),
        (lambda c: c.update(seeds=[0, "x"]), "config key 'seeds[1]'"),
        (lambda c: c.update(models=["resnet"]), "config key 'models[0]'"),
        (
            lambda c: c["dataset_settings"]["hippocampus"].update(image_size=[64]),
            "dataset_settings.hippocampus.image_size",
        ),
        (lambda c: c["dataset_settings"]["prostate"].update(md5="xyz"), "dataset_settings.prostate.md5"),
        (lambda c: c["dataset_settings"]["prostate"].update(slice_axs=2), "'slice_axs' was unexpected"),
        (lambda c: c.update(datasets=["hippocampus", "liver"]), "no entry in 'dataset_settings' for liver"),
    ],
)
def test_invalid_configs_name_the_key(change, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(_broken(change), SCHEMA)
    assert message in str(error.value)


def test_setting_one_training_key_keeps_the_models_own_defaults() -> None:
    config = copy.deepcopy(PAPER)
    config["model_settings"] = {"unet": {"training": {"epochs": 5}}, "segnet": {}}
    filled = validate_config(config, SCHEMA)["model_settings"]
    assert filled["unet"]["training"]["epochs"] == 5
    assert (filled["unet"]["training"]["lr"], filled["unet"]["training"]["betas"]) == (1e-4, [0.9, 0.99])
    assert filled["segnet"]["training"]["optimizer"] == "sgd"
    assert filled["med_nca"]["architecture"]["channels"] == 16
    assert filled["med_nca"]["training"]["lr"] == 1.6e-3


def test_validated_config_does_not_depend_on_key_order() -> None:
    from mednca.config import canonical

    assert list(canonical({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": 0})) == ["a", "b"]
    assert canonical({"b": {"z": 1, "a": [{"y": 2, "x": 3}]}}) == {"b": {"a": [{"x": 3, "y": 2}], "z": 1}}
    assert list(canonical({"b": {"z": 1, "a": 2}})["b"]) == ["a", "z"]


DEMO = load_yaml(ROOT / "config" / "demo.yaml")


def _demo(change) -> dict:
    """The demo configuration as the workflow sees it (merged over config/config.yaml), then ``change``d."""
    config = copy.deepcopy(PAPER)
    update_config(config, copy.deepcopy(DEMO))
    change(config)
    return config


def _levels(**levels):
    return lambda c: c["robustness"]["levels"].update(levels)


def _dataset(name, **settings):
    return lambda c: c["dataset_settings"][name].update(settings)


def _architecture(model, **settings):
    return lambda c: c["model_settings"][model]["architecture"].update(settings)


def _training(model, **settings):
    return lambda c: c["model_settings"][model]["training"].update(settings)


def _transfer(**settings):
    return lambda c: c["transfer"][0].update(settings)


def _study(**settings):
    return lambda c: c["data_efficiency"].update(settings)


def _both(*changes):
    return lambda c: [change(c) for change in changes]


SEMANTIC_ERRORS = {
    # robustness levels must start at the study's clean value (0, or 1 for scale factors and anisotropy)
    "shift_not_clean": (_levels(shift=[0.1, 0.3]), "robustness.levels.shift", "clean (unperturbed) value 0"),
    "noise_not_clean": (_levels(noise=[0.05, 0.1]), "robustness.levels.noise", "value 0 of study 'noise'"),
    "scale_not_clean": (_levels(scale_resize=[0.5, 1.0]), "robustness.levels.scale_resize", "value 1"),
    "fixed_not_clean": (_levels(scale_fixed=[2.0, 1.0]), "robustness.levels.scale_fixed", "value 1"),
    "anisotropy_not_clean": (_levels(anisotropy=[2, 3]), "robustness.levels.anisotropy", "value 1"),
    "gibbs_not_clean": (_levels(gibbs=[0.5, 0.0]), "robustness.levels.gibbs", "value 0"),
    "anisotropy_below_1": (_levels(anisotropy=[0, 1]), "robustness.levels.anisotropy[0]", "minimum of 1"),
    "negative_level": (_levels(spike=[0, -1]), "robustness.levels.spike[1]", "minimum of 0"),
    "zero_scale": (_levels(scale_fixed=[1, 0]), "robustness.levels.scale_fixed[1]", "minimum of 0"),
    "motion_above_1": (_levels(motion=[0, 1.5]), "robustness.levels.motion[1]", "maximum of 1"),
    "repeated_level": (_levels(noise=[0, 0.1, 0.1]), "robustness.levels.noise", "non-unique"),
    "one_level": (_levels(noise=[0]), "robustness.levels.noise", "too short"),
    "unknown_study": (_levels(shfit=[0, 0.1]), "robustness.levels", "'shfit' is not one of"),
    # image sizes every model run on the dataset can take
    "segnet_below_32": (
        _dataset("phantom_multimodal", image_size=[16, 16]),
        "dataset_settings.phantom_multimodal.image_size",
        "at least 32",
    ),
    "segnet_one_side": (
        _dataset("phantom_multimodal", image_size=[24, 40]),
        "dataset_settings.phantom_multimodal.image_size",
        "model 'segnet'",
    ),
    "med_nca_downscale": (
        _both(_dataset("phantom", image_size=[30, 30], models=["med_nca"]), lambda c: c.update(transfer=[])),
        "dataset_settings.phantom.image_size",
        "multiples of 4",
    ),
    "med_nca_larger_downscale": (
        _both(_architecture("med_nca", downscale=3), _dataset("phantom", models=["med_nca"])),
        "dataset_settings.phantom.image_size",
        "multiples of 3",
    ),
    "unet_strides": (
        _both(_architecture("unet", strides=[2, 2, 3]), _dataset("phantom", models=["unet"])),
        "dataset_settings.phantom.image_size",
        "multiples of 12",
    ),
    "transfer_target_size": (
        _dataset("phantom", image_size=[28, 28], models=["med_nca"]),
        "dataset_settings.phantom.image_size",
        "'segnet' (listed in 'transfer[0]')",
    ),
    "unet_architecture": (
        _architecture("unet", strides=[2, 2]),
        "model_settings.unet.architecture",
        "len(strides) == len(channels) - 1",
    ),
    # device
    "device_gpu": (lambda c: c.update(device="gpu"), "device", "use auto, cpu, cuda, cuda:N"),
    "device_cuda_x": (lambda c: c.update(device="cuda:x"), "device", "'cuda:x' is not a device"),
    # transfer entries
    "transfer_source": (_transfer(source="brats"), "transfer[0].source", "'brats' is not in 'datasets'"),
    "transfer_target": (_transfer(target="nowhere"), "transfer[0].target", "'nowhere' is not in 'datasets'"),
    "transfer_model": (_transfer(model="unet"), "transfer[0].model", "not trained on source"),
    "transfer_repeated": (
        lambda c: c["transfer"].append(dict(c["transfer"][0])),
        "transfer[1]",
        "repeats transfer[0]",
    ),
    "transfer_channels": (
        _both(
            _dataset("phantom", modalities=[0, 1]),
            lambda c: c["dataset_settings"]["phantom"]["synthetic"].update(modalities=2),
        ),
        "transfer[0].target",
        "fine-tuning needs equal channels or a single-channel target",
    ),
    "transfer_lr": (_transfer(lr=0), "transfer[0].lr", "minimum of 0"),
    "transfer_epochs": (_transfer(epochs=0), "transfer[0].epochs", "minimum of 1"),
    # the data-efficiency study
    "study_dataset": (_study(dataset="nowhere"), "data_efficiency.dataset", "'nowhere' is not in 'datasets'"),
    "study_source": (
        _study(models=["med_nca", "segnet_from_nowhere"]),
        "data_efficiency.models[1].source",
        "'nowhere' is not in 'datasets'",
    ),
    "study_source_model": (
        _study(models=["unet_from_phantom_multimodal"]),
        "data_efficiency.models[0].model",
        "'unet' is not trained on source 'phantom_multimodal'",
    ),
    "study_unknown_model": (_study(models=["vnet"]), "data_efficiency.models[0]", "does not match"),
    "study_no_cases": (_study(cases=[0]), "data_efficiency.cases[0]", "minimum of 1"),
    "study_cases_word": (_study(cases=["most"]), "data_efficiency.cases[0]", "is not valid"),
    "study_no_iterations": (_study(iterations=0), "data_efficiency.iterations", "minimum of 1"),
    "study_image_size": (
        _both(
            _dataset("phantom", image_size=[28, 28], models=["med_nca"]),
            lambda c: c.update(transfer=[]),
            _study(models=["med_nca", "segnet"]),
        ),
        "dataset_settings.phantom.image_size",
        "'segnet' (listed in 'data_efficiency.models')",
    ),
    # model lists
    "no_models": (lambda c: c.update(models=[]), "models", "should be non-empty"),
    "dataset_no_models": (_dataset("phantom", models=[]), "dataset_settings.phantom.models", "non-empty"),
    "dataset_models_repeated": (
        _dataset("phantom", models=["unet", "unet"]),
        "dataset_settings.phantom.models",
        "non-unique",
    ),
    # other values that would only fail late
    "no_seeds": (lambda c: c.update(seeds=[]), "seeds", "should be non-empty"),
    "repeated_seeds": (lambda c: c.update(seeds=[0, 0]), "seeds", "non-unique"),
    "zero_epochs": (_training("unet", epochs=0), "model_settings.unet.training.epochs", "minimum of 1"),
    "zero_batch": (_training("segnet", batch_size=0), "model_settings.segnet.training.batch_size", "minimum"),
    "zero_lr": (_training("med_nca", lr=0), "model_settings.med_nca.training.lr", "minimum of 0"),
    "negative_lr": (_training("nca", lr=-1e-3), "model_settings.nca.training.lr", "minimum of 0"),
    "zero_checkpoint_every": (_training("unet", checkpoint_every=0), "checkpoint_every", "minimum of 1"),
    "zero_image_side": (
        _dataset("phantom", image_size=[0, 32]),
        "dataset_settings.phantom.image_size[0]",
        "4",
    ),
    "one_image_side": (
        _dataset("phantom", image_size=[32]),
        "dataset_settings.phantom.image_size",
        "too short",
    ),
    "slice_axis_3": (_dataset("phantom", slice_axis=3), "dataset_settings.phantom.slice_axis", "[0, 1, 2]"),
    "fire_rate_0": (
        _architecture("nca", fire_rate=0),
        "model_settings.nca.architecture.fire_rate",
        "minimum",
    ),
    "fire_rate_above_1": (_architecture("med_nca", fire_rate=1.5), "fire_rate", "maximum of 1"),
    "zero_downscale": (_architecture("med_nca", downscale=0), "architecture.downscale", "minimum of 1"),
    "percentiles_swapped": (
        _dataset("phantom", intensity={"lower": 99.5, "upper": 0.5}),
        "dataset_settings.phantom.intensity",
        "must be below upper percentile",
    ),
    "synthetic_channel_missing": (
        _dataset("phantom", modalities=[0, 1]),
        "dataset_settings.phantom.modalities",
        "'synthetic.modalities' generates 1 channel(s)",
    ),
    "empty_results_dir": (lambda c: c.update(results_dir=""), "results_dir", "non-empty"),
    "empty_folder": (_dataset("phantom", folder=""), "dataset_settings.phantom.folder", "non-empty"),
    "zero_nca_runs": (lambda c: c["evaluation"].update(nca_runs=0), "evaluation.nca_runs", "minimum of 1"),
    "zero_test_fraction": (_dataset("phantom", test_fraction=0), "test_fraction", "minimum of 0"),
}


@pytest.mark.parametrize(("change", "key", "problem"), SEMANTIC_ERRORS.values(), ids=SEMANTIC_ERRORS.keys())
def test_unusable_values_fail_at_validation_naming_the_key(change, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(_demo(change), SCHEMA)
    message = str(error.value)
    assert message.startswith("config key '") and "\n" not in message
    assert f"config key '{key}'" in message or key in message.split("'")[1], message
    assert problem in message, message


def test_the_unmodified_demo_validates() -> None:
    validate_config(_demo(lambda c: None), SCHEMA)


def test_the_study_runs_every_seed_up_to_its_limit_and_the_first_above() -> None:
    from mednca.config import efficiency_runs

    config = validate_config(
        _demo(_study(models=["unet", "med_nca"], cases=[2, 5, "all"], seeds=[3, 1])), SCHEMA
    )
    assert config["data_efficiency"]["all_seeds_up_to"] == 2
    assert efficiency_runs(config) == [
        ("unet", "2", 3), ("unet", "2", 1), ("med_nca", "2", 3), ("med_nca", "2", 1),
        ("unet", "5", 3), ("med_nca", "5", 3), ("unet", "all", 3), ("med_nca", "all", 3),
    ]  # fmt: skip
    assert efficiency_runs(validate_config(copy.deepcopy(PAPER), SCHEMA)) == []


def test_clean_levels_come_from_the_perturbation_code() -> None:
    from mednca.perturb.studies import DEFAULT_LEVELS, identity_value

    levels = {
        study: [identity_value(study), 0.5 if identity_value(study) == 0 else 2] for study in DEFAULT_LEVELS
    }
    validated = validate_config(_demo(lambda c: c["robustness"].update(levels=levels)), SCHEMA)
    assert validated["robustness"]["levels"] == levels


def test_brats_in_the_paper_config_takes_mriseg_slices() -> None:
    """MRISeg feeds 240 x 240 BraTS slices to its SegNet (5 poolings, 240 -> 7 and back): a valid config."""
    validated = validate_config(_broken(lambda c: c.update(datasets=["hippocampus", "brats"])), SCHEMA)
    assert validated["dataset_settings"]["brats"]["image_size"] == [240, 240]


@pytest.mark.parametrize("name", ["med_nca", "nca", "unet", "segnet"])
def test_the_config_size_rule_is_the_models_own(name: str) -> None:
    """The size rules of the architecture (``image_size_problem``) are what the built model checks."""
    import torch

    from mednca.models import MODELS, build_model, min_side, size_multiple
    from mednca.models.registry import image_size_problem

    architecture = _demo(lambda c: None)["model_settings"][name]["architecture"]
    model = build_model(name, 1, **architecture).eval()
    multiple = MODELS[name].size_multiple_for(**architecture)
    assert size_multiple(model) == multiple
    side = max(2 * multiple, min_side(model))
    with torch.no_grad():
        assert image_size_problem(name, architecture, (side, side)) is None
        model(torch.zeros(1, 1, side, side))
        for bad in ((side + 1, side), (min_side(model) - 1, side)):
            if image_size_problem(name, architecture, bad) is not None and min(bad) > 0:
                with pytest.raises(ValueError, match="divisible|below"):
                    model(torch.zeros(1, 1, *bad))


def test_mednca_config_command_prints_one_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("transfer:\n  - {model: segnet, source: nowhere, target: phantom}\n")
    command = [sys.executable, "-m", "mednca.cli", "config", "--config", str(ROOT / "config" / "demo.yaml")]
    run = subprocess.run([*command, "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "config key 'transfer[0].source': 'nowhere' is not in 'datasets'" in lines[0]
    assert "Traceback" not in run.stderr


def test_the_schema_names_the_studies_of_the_registry_with_their_ranges() -> None:
    from mednca.studies import STUDIES, STUDY_NAMES

    robustness = load_yaml(SCHEMA)["properties"]["robustness"]["properties"]
    assert robustness["studies"]["items"]["enum"] == list(STUDY_NAMES)
    assert robustness["studies"]["default"] == list(STUDY_NAMES)
    levels = robustness["levels"]
    assert levels["propertyNames"]["enum"] == list(STUDY_NAMES)
    for name, study in STUDIES.items():
        items = levels["properties"].get(name, levels["patternProperties"][""])["items"]
        if study.positive:
            assert items.get("exclusiveMinimum") == 0, name
        else:
            assert items.get("minimum") == study.minimum, name
        assert items.get("maximum") == study.maximum, name
        assert min(study.levels) >= study.minimum and (
            study.maximum is None or max(study.levels) <= study.maximum
        )
        validate_config(
            {**copy.deepcopy(PAPER), "robustness": {"levels": {name: list(study.levels)}}}, SCHEMA
        )
