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
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
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
            "d": {"layout": "msd", "folder": "D", "foreground_labels": [1], "image_size": [8, 8]}
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
