"""Models that ship inside the package, used by name: ``mednca predict --model hippocampus``.

Each shipped model is a folder ``shipped_models/<name>/`` holding the workflow's ``model.pt`` (with the NQM
threshold calibrated on the validation split written into its training facts, so that a prediction can flag
a likely failure), its ``model_card.md`` and its run ``record.json``. ``ship_model`` copies a trained run
there from a results folder; only small models ship (the NCAs: about 100 kB), never the UNet or SegNet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mednca.errors import DataError
from mednca.io import atomic_path, read_json
from mednca.names import display_name, is_nca

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_models"
MAX_SHIPPED_BYTES = 1_000_000
"""A shipped model file's size limit: the package carries NCAs, not the baselines' millions of weights."""
DATA_LICENCES = {
    "hippocampus": "weights derived from MSD Task04 (Medical Segmentation Decathlon) data under CC-BY-SA "
    "4.0; attribute Antonelli et al., Nature Communications 2022, and Simpson et al., arXiv 1902.09063",
}
"""The licence of each dataset a shipped model may be trained on (the weights derive from the data)."""


@dataclass(frozen=True)
class ShippedModel:
    """A model in the package: its name, folder and run record."""

    name: str
    folder: Path
    record: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.folder / "model.pt"

    def summary(self) -> str:
        """One line: name, model, size, data and split, validation and test Dice."""
        run, metrics = self.record["run"], self.record["metrics"]
        split = self.record["split"]

        def dice(name: str) -> str:
            values = metrics.get(name) or {}
            if values.get("dice_mean") is None:
                return "n/a"
            return f"{values['dice_mean']:.3f} ({values['cases']} cases)"

        parameters = self.record["training"]["parameters"]
        return (
            f"{self.name}: {display_name(run['model'])} ({parameters:,} parameters), trained on "
            f"{split['train']['cases']} {run['dataset']} patients; validation Dice {dice('validation')}, "
            f"test Dice {dice('test')}"
        )


def shipped_models(folder: Path | None = None) -> dict[str, ShippedModel]:
    """The shipped models (of the package, or of ``folder``) by name; empty when none is installed."""
    found = {}
    for record_file in sorted(Path(folder or SHIPPED_DIR).glob("*/record.json")):
        name = record_file.parent.name
        found[name] = ShippedModel(name, record_file.parent, read_json(record_file, "shipped model record"))
    return found


def resolve_model(given: str | Path, folder: Path | None = None) -> Path:
    """A model file path, or the file of the shipped model of that name; a DataError names both options."""
    path = Path(given)
    if path.exists():
        return path
    models = shipped_models(folder)
    if str(given) in models:
        return models[str(given)].model_file
    known = ", ".join(models) or "none installed"
    raise DataError(f"{given}: no such model file, and no shipped model of that name (shipped: {known})")


def ship_model(
    model_file: Path,
    record_file: Path,
    card_file: Path,
    name: str,
    data_dir: Path,
    folder: Path | None = None,
) -> Path:
    """Copy a trained run into the package as shipped model ``name``: its model file with the calibrated NQM
    threshold and the data licence added to its training facts, its card and its record.

    ``data_dir`` is the run's data folder (``results/data/<dataset>``): a model file trained before model
    files recorded their training input ranges gets them from its training cases' raw volumes there.
    """
    import torch

    from mednca.train import checkpoint

    record = read_json(record_file, "run record")
    model = record["run"]["model"]
    if not is_nca(model):
        raise DataError(f"{model_file}: a {display_name(model)} does not ship (only NCAs are small enough)")
    if Path(model_file).stat().st_size > MAX_SHIPPED_BYTES:
        raise DataError(
            f"{model_file}: {Path(model_file).stat().st_size:,} bytes, over {MAX_SHIPPED_BYTES:,}"
        )
    if not name.replace("_", "").isalnum():
        raise DataError(f"shipped model name '{name}': use letters, digits and '_' only")
    payload = checkpoint.load(model_file)
    nqm = record.get("nqm") or {}
    licence = DATA_LICENCES.get(record["run"]["dataset"], "see the dataset's licence")
    payload["training"] = {
        **payload.get("training", {}),
        "nqm_threshold": nqm.get("nqm_threshold"),
        "nqm_threshold_fitted_on": nqm.get("threshold_fitted_on"),
        "data_licence": licence,
    }
    if "input_ranges" not in payload:
        payload["input_ranges"] = ranges_from_data(Path(data_dir), record)
    if "formulation" not in payload:
        payload["formulation"] = trained_formulation(payload)
    payload["format"] = checkpoint.MODEL_FORMAT
    target = Path(folder or SHIPPED_DIR) / name
    target.mkdir(parents=True, exist_ok=True)
    checkpoint.save(target / "model.pt", payload)
    checkpoint.load_model(target / "model.pt", torch.device("cpu"))  # the shipped file must load
    with atomic_path(target / "model_card.md") as temporary:
        temporary.write_text(Path(card_file).read_text() + f"\n## Licence of the weights\n\n{licence}.\n")
    with atomic_path(target / "record.json") as temporary:
        temporary.write_text(json.dumps({**record, "shipped_as": name}, indent=2, sort_keys=True) + "\n")
    return target


def ranges_from_data(data_dir: Path, record: dict[str, Any]) -> dict[str, list[list[float]]]:
    """The input ranges of a run's training cases, read from the raw volumes its data folder lists; the
    case list must be the one the run's record says it trained on."""
    from mednca import provenance
    from mednca.data.ranges import CaseProfile, training_ranges
    from mednca.data.stages import case_from_record, dataset_folder, read_table
    from mednca.data.volumes import load_case

    manifest = read_table(data_dir / "manifest.csv", "manifest")
    train = manifest[manifest["split"] == "train"]
    expected = record["training"].get("train_cases_sha256")
    if provenance.case_list_hash(sorted(train["case_id"])) != expected:
        raise DataError(f"{data_dir}: its training cases are not the ones the run's record names")
    root = dataset_folder(data_dir / "source.json")
    volumes = (load_case(case_from_record(row, root)) for _, row in train.iterrows())
    return training_ranges([CaseProfile.of(volume.image, volume.affine) for volume in volumes])


def trained_formulation(payload: dict[str, Any]) -> dict[str, str]:
    """The inference formulation of a model file written before files recorded it: what its architecture's
    cell rule and precision resolve to on the device it was trained on."""
    import torch

    from mednca.models.formulations import resolve_formulation

    arguments = payload["arguments"]
    device = torch.device(str((payload.get("training") or {}).get("device", "cpu")).split(":")[0])
    formulation = resolve_formulation(
        arguments.get("cell_rule", "auto"), arguments.get("precision", "fp32"), device, training=False
    )
    return formulation.describe()
