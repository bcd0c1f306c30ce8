"""Exported models: the NCA with its fire masks as inputs, ONNX Runtime and TorchScript against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mednca.cli import main
from mednca.data.stages import dataset_folder
from mednca.errors import DataError
from mednca.export import NoiseInputNCA, export_model
from mednca.models.nca import MedNCA, SingleLevelNCA


@pytest.mark.parametrize(
    "model",
    [
        MedNCA(channels=8, hidden_size=16, steps=6, downscale=2),
        SingleLevelNCA(channels=8, hidden_size=16, steps=6),
    ],
)
def test_noise_inputs_reproduce_the_models_draws(model: torch.nn.Module) -> None:
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(1))
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    graph = NoiseInputNCA(model)
    with torch.no_grad():
        expected = model(images, torch.Generator().manual_seed(5))
        noise = graph.draw_noise(torch.Generator().manual_seed(5), 3, 16, 16)
        torch.testing.assert_close(graph(images, *noise), expected, atol=1e-4, rtol=1e-4)


def test_onnx_runtime_segments_as_pytorch(nca_file: Path, prepared_phantom: Path, tmp_path: Path) -> None:
    exported = tmp_path / "m.onnx"
    assert main(["export", "--model", str(nca_file), "--format", "onnx", "--output", str(exported)]) == 0
    image = dataset_folder(prepared_phantom / "source.json") / "imagesTr" / "phantom_000.nii.gz"
    maps = {}
    for name, model in (("torch", nca_file), ("onnx", exported)):
        output = tmp_path / f"{name}.nii.gz"
        assert (
            main(
                [
                    "predict",
                    "--model",
                    str(model),
                    "--input",
                    str(image),
                    "--output",
                    str(output),
                    "--runs",
                    "2",
                ]
            )
            == 0
        )
        maps[name] = np.asarray(nib.load(output).dataobj)
    assert (maps["torch"] == maps["onnx"]).mean() > 0.999  # the same masks: equal up to rounding at 0.5
    from mednca.export import load_onnx
    from mednca.train.checkpoint import load

    assert load_onnx(exported)[1]["input_ranges"] == load(nca_file)["input_ranges"]  # the range checks travel


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_keeps_the_graph_and_its_metadata(nca_file: Path, tmp_path: Path) -> None:
    exported = export_model(nca_file, tmp_path / "m.pt", "torchscript")
    metadata = json.loads((tmp_path / "m.pt.json").read_text())
    assert metadata["model"] == "med_nca" and metadata["preprocessing"]["image_size"] == [16, 16]
    traced = torch.jit.load(str(exported))
    from mednca.train.checkpoint import load_model

    model, _ = load_model(nca_file)
    graph = NoiseInputNCA(model)
    images = torch.rand(2, 1, 16, 16)
    noise = graph.draw_noise(torch.Generator().manual_seed(0), 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(traced(images, *noise), graph(images, *noise))


def test_bad_exports_are_one_line(nca_file: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="export format 'tflite' is unknown"):
        export_model(nca_file, tmp_path / "m.tflite", "tflite")
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not onnx")
    with pytest.raises(DataError, match=r"foreign\.onnx: cannot read the ONNX model"):
        from mednca.export import load_onnx

        load_onnx(foreign)


def test_the_onnx_graph_takes_other_image_sizes(nca_file: Path, tmp_path: Path) -> None:
    from mednca.export import load_onnx
    from mednca.train.checkpoint import load_model

    onnx_model, _ = load_onnx(export_model(nca_file, tmp_path / "m.onnx", "onnx"))
    model, _ = load_model(nca_file)
    images = torch.rand(1, 1, 40, 24, generator=torch.Generator().manual_seed(3))  # not the trained 16x16
    with torch.no_grad():
        expected = model(images, torch.Generator().manual_seed(7))
    torch.testing.assert_close(
        onnx_model(images, torch.Generator().manual_seed(7)), expected, atol=1e-4, rtol=1e-4
    )
