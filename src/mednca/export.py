"""Exporting a trained model to ONNX or TorchScript, and running an exported ONNX file like a model file.

An NCA's random fire masks are **inputs** of the exported graph: one (steps, B, 1, h, w) tensor of uniform
noise per level, a cell firing where its noise is below the fire rate. ``mednca`` draws that noise from the
case's generator in the order the PyTorch model draws it, so ONNX Runtime and PyTorch use the same masks and
give the same segmentation up to float rounding; a runtime without PyTorch can draw the noise from any
uniform generator (the prediction is then another sample of the same stochastic model). The graph computes
the rule densely (``mednca.models.dense``: every cell, then the mask), the formulation without
data-dependent shapes, which equals the firing-cells rule up to rounding; the graph takes any batch and
image size the model's levels can take (an NCA's: sides divisible by its downscale). The model's
preprocessing, architecture and training facts travel with it: in the ONNX file's metadata (``mednca``), or
in a JSON file beside a TorchScript file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mednca.data.preprocessing import Preprocessing
from mednca.data.ranges import ranges_problem
from mednca.errors import DataError
from mednca.io import atomic_path
from mednca.models.formulations import Dense
from mednca.models.nca import MedNCA, NCARule, SingleLevelNCA, initial_state
from mednca.train import checkpoint

FORMATS = ("onnx", "torchscript")
METADATA_KEY = "mednca"
OPSET = 17


def _level(rule: NCARule, state: Tensor, noise: Tensor, fire_rate: float) -> Tensor:
    """(B, C, h, w) state and (steps, B, 1, h, w) noise -> the state after the steps, by the rule's own step
    loop with the dense formulation pinned (every cell computed: no data-dependent shapes in the graph)."""
    pinned = rule.pinned
    rule.pin(Dense(torch.float32))
    try:
        return rule.run(state, noise.shape[0], fire_rate, None, noise=noise)
    finally:
        rule.pin(pinned)


class NoiseInputNCA(nn.Module):
    """A trained NCA whose fire masks are inputs: (B, C_in, H, W) images and one (steps, B, 1, h, w) uniform
    noise tensor per level -> (B, 1, H, W) foreground logits (``h, w``: the level's size)."""

    def __init__(self, model: MedNCA | SingleLevelNCA) -> None:
        super().__init__()
        self.model = model

    @property
    def two_level(self) -> bool:
        return isinstance(self.model, MedNCA)

    def noise_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, ...]]:
        """The noise inputs' shapes for a batch of H x W images, in the order the model draws them."""
        steps = self.model.steps
        if not self.two_level:
            return [(steps, batch, 1, height, width)]
        scale = self.model.downscale
        return [(steps, batch, 1, height // scale, width // scale), (steps, batch, 1, height, width)]

    def draw_noise(self, generator: torch.Generator, batch: int, height: int, width: int) -> list[Tensor]:
        """A batch's noise as the model draws it from ``generator``: level 1's steps, then level 2's."""
        noise = []
        for steps, *shape in self.noise_shapes(batch, height, width):
            draws = [torch.rand(shape, generator=generator, device=generator.device) for _ in range(steps)]
            noise.append(torch.stack(draws) if draws else torch.zeros((0, *shape)))
        return noise

    def forward(self, images: Tensor, *noise: Tensor) -> Tensor:
        model = self.model
        if not self.two_level:
            state = _level(model.rule, initial_state(images, model.channels), noise[0], model.fire_rate)
            return state[:, model.in_channels : model.in_channels + 1]
        coarse = _level(model.level1, model.level1_input(images), noise[0], model.fire_rate)
        state = _level(model.level2, model.level2_input(images, coarse), noise[1], model.fire_rate)
        return state[:, model.in_channels : model.in_channels + 1]


def _graph(model: nn.Module) -> nn.Module:
    """The module to export: an NCA with its noise as inputs, any other model as it is."""
    return NoiseInputNCA(model) if isinstance(model, MedNCA | SingleLevelNCA) else model


def export_model(model_file: Path, output: Path, fmt: str) -> Path:
    """Export a trained model file to ``output`` (``onnx`` or ``torchscript``) with its metadata."""
    if fmt not in FORMATS:
        raise DataError(f"export format '{fmt}' is unknown; use {' or '.join(FORMATS)}")
    model, payload = checkpoint.load_model(Path(model_file), torch.device("cpu"))
    graph = _graph(model).eval()
    preprocessing: Preprocessing = payload["preprocessing"]
    height, width = preprocessing.image_size
    images = torch.rand(2, model.in_channels, height, width)
    noise = graph.draw_noise(torch.Generator().manual_seed(0), 2, height, width) if graph is not model else []
    metadata = {
        "format": checkpoint.MODEL_FORMAT,
        "model": payload["model"],
        "in_channels": payload["in_channels"],
        "arguments": payload["arguments"],
        "preprocessing": preprocessing.as_mapping(),
        "training": payload.get("training", {}),
        "input_ranges": payload.get("input_ranges"),
        "noise_inputs": len(noise),
        "source": str(model_file),
    }
    output = Path(output)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes
        if fmt == "onnx":
            _export_onnx(graph, (images, *noise), output, metadata)
        else:
            traced = torch.jit.trace(graph, (images, *noise), check_trace=False)
            with atomic_path(output) as temporary:
                torch.jit.save(traced, str(temporary))
            with atomic_path(output.with_name(output.name + ".json")) as temporary:
                temporary.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
    return output


def _export_onnx(graph: nn.Module, example: tuple[Tensor, ...], output: Path, metadata: dict) -> None:
    import onnx

    names = ["images", *(f"noise{level + 1}" for level in range(len(example) - 1))]
    image_axes = {0: "batch", 2: "height", 3: "width"}  # any image size the model's levels can take
    noise_axes = {name: {1: "batch", 3: f"{name}_height", 4: f"{name}_width"} for name in names[1:]}
    axes = {"images": image_axes, "logits": image_axes} | noise_axes
    with atomic_path(output) as temporary:
        torch.onnx.export(
            graph, example, str(temporary), input_names=names, output_names=["logits"],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        exported = onnx.load(str(temporary))
        entry = exported.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True, default=str)
        onnx.save(exported, str(temporary))


class OnnxModel(nn.Module):
    """An exported ONNX model run by ONNX Runtime behind the models' interface: ``forward(images,
    generator)`` on (B, C_in, H, W) images -> (B, 1, H, W) logits, an NCA's noise drawn from ``generator``
    as the PyTorch model draws it."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        super().__init__()
        import onnxruntime

        self.path = Path(path)
        self.metadata = metadata
        self.in_channels = int(metadata["in_channels"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.stochastic = int(metadata.get("noise_inputs", 0)) > 0
        self.noise = _noise_model(metadata) if self.stochastic else None

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        feeds = {"images": images.detach().cpu().numpy().astype(np.float32)}
        if self.noise is not None:
            generator = generator if generator is not None else torch.Generator().manual_seed(0)
            batch, _, height, width = images.shape
            for level, noise in enumerate(self.noise.draw_noise(generator, batch, height, width)):
                feeds[f"noise{level + 1}"] = noise.cpu().numpy()
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])


def _noise_model(metadata: dict[str, Any]) -> NoiseInputNCA:
    """The noise shapes' source for an exported NCA: its architecture rebuilt without weights."""
    from mednca.models import build_model

    model = build_model(metadata["model"], int(metadata["in_channels"]), **metadata["arguments"])
    return NoiseInputNCA(model)


def load_onnx(path: Path) -> tuple[OnnxModel, dict[str, Any]]:
    """An exported ONNX file as a model and its payload (``preprocessing`` as a ``Preprocessing``)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises several types for a file that is not a model
        raise DataError(f"{path}: cannot read the ONNX model ({type(error).__name__})") from error
    found = {entry.key: entry.value for entry in proto.metadata_props}
    if METADATA_KEY not in found:
        raise DataError(f"{path}: an ONNX file without mednca metadata; export it with `mednca export`")
    metadata = json.loads(found[METADATA_KEY])
    checkpoint.check_format(path, metadata.get("format", 1))
    if (problem := ranges_problem(metadata.get("input_ranges") or {})) is not None:
        raise DataError(f"{path}: damaged mednca metadata: its training input ranges {problem}")
    payload = {**metadata, "preprocessing": Preprocessing.from_mapping(metadata["preprocessing"])}
    return OnnxModel(Path(path), metadata), payload
