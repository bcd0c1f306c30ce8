"""Segmentation models: parameter counts, shapes, NCA update rules, randomness, gradients and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mednca.evaluate.trajectory import probability_trajectory
from mednca.models import (
    MODELS,
    MedNCA,
    NCARule,
    SegNet,
    SingleLevelNCA,
    UNet2D,
    build_model,
    cells,
    count_parameters,
    is_stochastic,
)
from mednca.models.reference import with_reference_rules

SMALL_NCA = {"channels": 8, "hidden_size": 16, "steps": 2}
SMALL_UNET = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1}


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randomise_fc1(model: nn.Module, seed: int = 1, scale: float = 0.1) -> None:
    """Give every NCA rule of ``model`` a non-zero ``fc1`` so that the cells actually change."""
    generator = seeded(seed)
    with torch.no_grad():
        for rule in (m for m in model.modules() if isinstance(m, NCARule)):
            rule.fc1.weight.copy_(torch.randn(rule.fc1.weight.shape, generator=generator) * scale)


def segnet_parameters(in_channels: int, base: int) -> int:
    """SegNet parameters: 9ab + 3b (conv bias, batch norm) per a -> b layer, 9 * base + 1 for the logit."""
    widths = [in_channels] + [base * f for f in (1, 2, 4, 8, 8)]
    layers = []
    for i, depth in enumerate((2, 2, 3, 3, 3)):
        wide = widths[i + 1]
        layers += [(widths[i], wide)] + [(wide, wide)] * (depth - 1)
        layers += [(wide, wide)] * (depth - 1) + ([(wide, widths[i])] if i > 0 else [])
    return sum(9 * a * b + 3 * b for a, b in layers) + 9 * base + 1


@pytest.mark.parametrize(
    ("model_class", "arguments", "expected"),
    [
        (MedNCA, {"channels": 16}, 25_920),
        (MedNCA, {"channels": 32}, 70_016),
        (SingleLevelNCA, {"channels": 16}, 12_960),
        (SegNet, {"in_channels": 3, "base_channels": 64}, segnet_parameters(3, 64)),
    ],
)
def test_parameter_counts(model_class: type[nn.Module], arguments: dict, expected: int) -> None:
    assert count_parameters(model_class(**arguments)) == expected


def test_segnet_and_unet_sizes() -> None:
    assert segnet_parameters(3, 64) == 29_443_585
    assert count_parameters(UNet2D()) > 0


FORWARD_CASES = [
    (MedNCA, SMALL_NCA, (2, 1, 32, 32)),
    (MedNCA, {**SMALL_NCA, "in_channels": 2, "downscale": 2}, (1, 2, 16, 24)),
    (SingleLevelNCA, SMALL_NCA, (2, 1, 16, 16)),
    (SingleLevelNCA, {**SMALL_NCA, "in_channels": 3}, (1, 3, 8, 12)),
    (UNet2D, SMALL_UNET, (2, 1, 16, 16)),
    (UNet2D, {**SMALL_UNET, "in_channels": 2, "channels": [4, 8, 16], "strides": [2, 2]}, (1, 2, 8, 12)),
    (SegNet, {"in_channels": 3, "base_channels": 2}, (2, 3, 32, 32)),
    (SegNet, {"in_channels": 1, "base_channels": 2}, (1, 1, 64, 32)),
]


@pytest.mark.parametrize(("model_class", "arguments", "shape"), FORWARD_CASES)
def test_forward_shapes(model_class: type[nn.Module], arguments: dict, shape: tuple[int, ...]) -> None:
    images = torch.rand(shape, generator=seeded(0))
    logits = model_class(**arguments)(images, seeded(0))
    assert logits.shape == (shape[0], 1, *shape[2:])


@pytest.mark.parametrize(
    ("model_class", "arguments", "shape"), [c for c in FORWARD_CASES if c[0] is not MedNCA]
)
def test_training_forward_of_whole_image_models(
    model_class: type[nn.Module], arguments: dict, shape: tuple[int, ...]
) -> None:
    images = torch.rand(shape, generator=seeded(0))
    labels = torch.zeros((shape[0], 1, *shape[2:]))
    logits, returned = model_class(**arguments).training_forward(images, labels, seeded(0))
    assert logits.shape == labels.shape
    assert returned is labels


@pytest.mark.parametrize(
    ("arguments", "shape", "patch"),
    [
        ({}, (2, 1, 32, 32), (8, 8)),
        ({"patch_size": 16}, (2, 1, 32, 32), (16, 16)),
        ({"patch_size": 64}, (1, 1, 32, 32), (32, 32)),
        ({}, (1, 1, 32, 16), (8, 4)),
        ({"downscale": 2, "in_channels": 2}, (3, 2, 16, 16), (8, 8)),
    ],
)
def test_med_nca_training_patch_shapes(
    arguments: dict, shape: tuple[int, ...], patch: tuple[int, int]
) -> None:
    images = torch.rand(shape, generator=seeded(0))
    labels = torch.zeros((shape[0], 1, *shape[2:]))
    logits, label_patches = MedNCA(**SMALL_NCA, **arguments).training_forward(images, labels, seeded(0))
    assert logits.shape == label_patches.shape == (shape[0], 1, *patch)


def test_med_nca_logit_patches_match_label_patches() -> None:
    """With level 2 copying the image into the logit, the logit patch must equal the label patch."""
    model = MedNCA(channels=4, hidden_size=2, steps=1, fire_rate=1.0)
    with torch.no_grad():
        for parameter in model.level2.parameters():
            parameter.zero_()
        model.level2.fc0.weight[0, 0] = 1.0
        model.level2.fc1.weight[1, 0] = 1.0
    images = torch.rand((4, 1, 32, 32), generator=seeded(0))
    logits, label_patches = model.training_forward(images, images.clone(), seeded(3))
    torch.testing.assert_close(logits, label_patches)
    corners = {tuple(torch.nonzero(images[i, 0] == label_patches[i, 0, 0, 0])[0].tolist()) for i in range(4)}
    assert len(corners) > 1


@pytest.mark.parametrize("input_channels", [1, 3])
def test_nca_rule_keeps_input_channels(input_channels: int) -> None:
    rule = NCARule(channels=8, hidden_size=16, input_channels=input_channels)
    randomise_fc1(rule)
    state = torch.rand((2, 8, 12, 12), generator=seeded(0))
    with torch.no_grad():
        final = rule.run(state, steps=5, fire_rate=0.5, generator=seeded(0))
    assert torch.equal(final[:, :input_channels], state[:, :input_channels])
    assert not torch.equal(final[:, input_channels:], state[:, input_channels:])


@pytest.mark.parametrize(("channels", "fire_rate", "size"), [(8, 0.5, 12), (16, 0.3, 70), (6, 1.0, 9)])
def test_fast_step_matches_the_reference_rule(channels: int, fire_rate: float, size: int) -> None:
    """Same weights and random stream: the firing-cells-only, chunked step equals the plain rule."""
    rule = NCARule(channels=channels, hidden_size=32, input_channels=2)
    randomise_fc1(rule)
    state = torch.rand((3, channels, size, size), generator=seeded(0), requires_grad=True)
    reference_rule = with_reference_rules(rule)
    fast = rule.step(state, fire_rate, seeded(4))
    reference = reference_rule.step(state, fire_rate, seeded(4))
    torch.testing.assert_close(fast, reference)
    fast_grads = torch.autograd.grad(fast.square().sum(), [state, *rule.parameters()])
    reference_grads = torch.autograd.grad(reference.square().sum(), [state, *reference_rule.parameters()])
    for fast_grad, reference_grad in zip(fast_grads, reference_grads, strict=True):
        # sums over thousands of cells in another order: float32 rounding, relative 1e-5
        torch.testing.assert_close(fast_grad, reference_grad, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("fire_rate", [0.25, 0.75])
def test_fire_rate_is_the_updated_fraction(fire_rate: float) -> None:
    rule = NCARule(channels=8, hidden_size=16)
    randomise_fc1(rule)
    state = torch.rand((4, 8, 64, 64), generator=seeded(0))
    with torch.no_grad():
        new = rule.step(state, fire_rate, seeded(0))
    changed = (new[:, 1:] != state[:, 1:]).any(dim=1).float().mean().item()
    assert changed == pytest.approx(fire_rate, abs=0.05)


@pytest.mark.parametrize("model_class", [MedNCA, SingleLevelNCA])
def test_untrained_nca_leaves_the_state_unchanged(model_class: type[nn.Module]) -> None:
    model = model_class(**SMALL_NCA)
    assert all(torch.count_nonzero(m.fc1.weight) == 0 for m in model.modules() if isinstance(m, NCARule))
    logits = model(torch.rand((1, 1, 16, 16), generator=seeded(0)), seeded(0))
    assert torch.count_nonzero(logits) == 0


@pytest.mark.parametrize("model_class", [MedNCA, SingleLevelNCA])
def test_nca_randomness_comes_from_the_generator(model_class: type[nn.Module]) -> None:
    model = model_class(**SMALL_NCA)
    randomise_fc1(model)
    images = torch.rand((2, 1, 16, 16), generator=seeded(0))
    with torch.no_grad():
        first, again, other = (model(images, seeded(s)) for s in (5, 5, 6))
        default = model(images)
        zero = model(images, seeded(0))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(default, zero)
    assert is_stochastic(model)


def test_med_nca_patches_come_from_the_generator() -> None:
    model = MedNCA(**SMALL_NCA)
    images = torch.rand((4, 1, 32, 32), generator=seeded(0))
    patches = [model.training_forward(images, images, seeded(s))[1] for s in (1, 1, 2)]
    assert torch.equal(patches[0], patches[1])
    assert not torch.equal(patches[0], patches[2])


@pytest.mark.parametrize(
    ("model_class", "arguments", "shape"),
    [(UNet2D, SMALL_UNET, (1, 1, 16, 16)), (SegNet, {"base_channels": 2}, (1, 3, 32, 32))],
)
def test_deterministic_models_ignore_the_generator(
    model_class: type[nn.Module], arguments: dict, shape: tuple[int, ...]
) -> None:
    model = model_class(**arguments).eval()
    images = torch.rand(shape, generator=seeded(0))
    with torch.no_grad():
        assert torch.equal(model(images, seeded(1)), model(images, seeded(2)))
        assert torch.equal(model(images), model(images, None))
    assert not is_stochastic(model)


def test_med_nca_gradients_reach_level_one() -> None:
    model = MedNCA(**SMALL_NCA)
    randomise_fc1(model)
    images = torch.rand((2, 1, 16, 16), generator=seeded(0))
    logits, labels = model.training_forward(images, (images > 0.5).float(), seeded(0))
    F.binary_cross_entropy_with_logits(logits, labels).backward()
    for parameter in (model.level1.fc1.weight, model.level1.fc0.weight, model.level1.p0.weight):
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0


@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (MedNCA(**SMALL_NCA), (1, 1, 30, 32), "not divisible by downscale=4"),
        (MedNCA(**SMALL_NCA), (1, 2, 32, 32), "expected images of shape"),
        (SegNet(base_channels=2), (1, 3, 48, 16), "16 is below 32 on a side"),
        (UNet2D(**SMALL_UNET), (1, 1, 18, 16), "18x16 is not divisible by the stride product 4"),
    ],
)
def test_bad_image_sizes_are_value_errors(model: nn.Module, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize(
    ("model_class", "arguments"),
    [
        (MedNCA, {"channels": 1}),
        (MedNCA, {"fire_rate": 0.0}),
        (MedNCA, {"downscale": 0}),
        (SingleLevelNCA, {"steps": -1}),
        (UNet2D, {"channels": (4, 8), "strides": (2, 2)}),
    ],
)
def test_bad_model_settings_are_value_errors(model_class: type[nn.Module], arguments: dict) -> None:
    with pytest.raises(ValueError):
        model_class(**arguments)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("med_nca", SMALL_NCA),
        ("nca", SMALL_NCA),
        ("unet", {"channels": [4, 8], "strides": [2]}),
        ("segnet", {}),
    ],
)
def test_build_model(name: str, arguments: dict) -> None:
    model = build_model(name, in_channels=2, **arguments)
    assert isinstance(model, MODELS[name])
    assert model.in_channels == 2


def test_build_model_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown model 'vnet'.*med_nca, nca, segnet, unet"):
        build_model("vnet", in_channels=1)
    with pytest.raises(ValueError, match="'segnet' does not accept argument.*: steps"):
        build_model("segnet", in_channels=1, steps=3)
    with pytest.raises(ValueError, match="model 'unet'"):
        build_model("unet", in_channels=1, channels=5)


def test_med_nca_overfits_one_image() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MedNCA(channels=8, hidden_size=32, steps=8, patch_size=16)
    label = torch.zeros((1, 1, 16, 16))
    label[..., 4:12, 4:12] = 1.0
    image = 0.2 + 0.6 * label + 0.1 * torch.rand(label.shape, generator=seeded(0))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = seeded(0)
    losses = []
    for _ in range(60):
        logits, target = model.training_forward(image, label, generator)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]


@pytest.mark.parametrize("model_class", [MedNCA, SingleLevelNCA])
def test_trajectory_ends_at_the_model_output(model_class: type[nn.Module]) -> None:
    model = model_class(channels=8, hidden_size=16, steps=6)
    randomise_fc1(model)
    image = torch.rand((1, 1, 16, 16), generator=seeded(0))
    trajectory = probability_trajectory(model, image, seeded(3), snapshots=4)
    levels = 2 if model_class is MedNCA else 1
    assert trajectory.probabilities.shape == (4 * levels, 16, 16)
    assert trajectory.steps.tolist() == [0, 2, 4, 6] * levels
    assert sorted(set(trajectory.levels.tolist())) == list(range(1, levels + 1))
    with torch.no_grad():
        expected = torch.sigmoid(model(image, seeded(3)))[0, 0].numpy()
    np.testing.assert_allclose(trajectory.probabilities[-1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cell_rule", "rows_per_chunk"),
    [
        ("gather", 37),
        ("gather", cells.ROWS_PER_CHUNK),
        ("folded", 37),
        ("folded", cells.ROWS_PER_CHUNK),
        ("dense", 0),
    ],
)
def test_fast_med_nca_matches_the_reference_model(rows_per_chunk: int, cell_rule: str, monkeypatch) -> None:
    """Inference and a training step (outputs and every gradient) of the fast rules, gathered or folded
    (split into chunks of 37 cells or not) or dense, equal the original rule with the same weights and
    random stream."""
    monkeypatch.setattr(cells, "ROWS_PER_CHUNK", rows_per_chunk or cells.ROWS_PER_CHUNK)
    model = MedNCA(in_channels=2, channels=8, hidden_size=16, steps=5, cell_rule=cell_rule)
    randomise_fc1(model)
    reference = with_reference_rules(model)
    images = torch.rand((3, 2, 32, 32), generator=seeded(0))
    labels = (images[:, :1] > 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(model(images, seeded(7)), reference(images, seeded(7)))
    trained = []
    for candidate in (model, reference):
        logits, targets = candidate.training_forward(images, labels, seeded(7))
        F.binary_cross_entropy_with_logits(logits, targets).backward()
        trained.append((logits.detach(), [parameter.grad for parameter in candidate.parameters()]))
    (fast_logits, fast_grads), (reference_logits, reference_grads) = trained
    torch.testing.assert_close(fast_logits, reference_logits)
    for fast_grad, reference_grad in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(fast_grad, reference_grad, rtol=2e-5, atol=1e-6)


def test_reflected_neighbours_are_what_reflect_padding_gathers() -> None:
    """Gathering through the table equals unfolding the reflect-padded state, including the corners."""
    batch, channels, height, width = 2, 3, 5, 4
    state = torch.rand((batch, channels, height, width), generator=seeded(0))
    table = cells.reflected_neighbours(batch, height, width, state.device)
    gathered = cells.to_cells(state)[table]  # (B * H * W, 9, C)
    unfolded = F.unfold(F.pad(state, (1, 1, 1, 1), mode="reflect"), 3)  # (B, C * 9, H * W)
    expected = (
        unfolded.reshape(batch, channels, 9, height * width).permute(0, 3, 2, 1).reshape(-1, 9, channels)
    )
    assert torch.equal(gathered, expected)
    with pytest.raises(ValueError, match="at least 2x2 cells, got 1x4"):
        cells.reflected_neighbours(1, 1, 4, state.device)


@pytest.mark.parametrize("cell_rule", ["gather", "folded", "dense", "reference"])
@pytest.mark.parametrize("model_class", [MedNCA, SingleLevelNCA])
def test_gradient_checkpointing_gives_the_same_output_and_gradients(
    model_class: type[nn.Module], cell_rule: str
) -> None:
    images = torch.rand((2, 1, 16, 16), generator=seeded(0))
    labels = (images > 0.5).float()
    results = []
    for checkpoint_steps in (0, 3):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = model_class(
                channels=8,
                hidden_size=16,
                steps=7,
                checkpoint_steps=checkpoint_steps,
                cell_rule="auto" if cell_rule == "reference" else cell_rule,
            )
        if cell_rule == "reference":
            model = with_reference_rules(model)
        randomise_fc1(model)
        generator = seeded(5)
        logits, targets = model.training_forward(images, labels, generator)
        F.binary_cross_entropy_with_logits(logits, targets).backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()], generator.get_state()))
    (plain, plain_grads, plain_state), (saved, saved_grads, saved_state) = results
    torch.testing.assert_close(saved, plain)
    for with_checkpoints, without in zip(saved_grads, plain_grads, strict=True):
        torch.testing.assert_close(with_checkpoints, without)
    assert torch.equal(saved_state, plain_state)


def _training_step(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and every parameter gradient of one Med-NCA training step on ``images``."""
    logits, targets = model.training_forward(images, (images[:, :1] > 0.5).float(), seeded(7))
    F.binary_cross_entropy_with_logits(logits, targets).backward()
    return logits.detach(), [parameter.grad for parameter in model.parameters()]


@pytest.mark.parametrize("cell_rule", ["folded", "dense"])
def test_bf16_rule_stays_close_to_the_reference_and_keeps_fp32_state(cell_rule: str) -> None:
    """bf16 products (on any CPU, emulated where not native) with fp32 state: outputs within bf16 rounding
    of the original rule, every gradient within a few percent, all tensors the model hands out fp32."""
    model = MedNCA(channels=8, hidden_size=16, steps=8, precision="bf16", cell_rule=cell_rule)
    randomise_fc1(model)
    reference = with_reference_rules(model)
    images = torch.rand((4, 1, 32, 32), generator=seeded(0))
    (logits, grads), (reference_logits, reference_grads) = (
        _training_step(candidate, images) for candidate in (model, reference)
    )
    assert logits.dtype == torch.float32 and all(grad.dtype == torch.float32 for grad in grads)
    torch.testing.assert_close(logits, reference_logits, rtol=0, atol=0.03)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        assert float((grad - reference_grad).norm()) <= 0.05 * float(reference_grad.norm()) + 1e-6
    with torch.no_grad():
        torch.testing.assert_close(model(images, seeded(3)), reference(images, seeded(3)), rtol=0, atol=0.03)


@pytest.mark.parametrize(
    ("precision", "native", "dtype"),
    [
        ("fp32", True, torch.float32),
        ("bf16", False, torch.bfloat16),
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float32),
    ],
)
def test_precision_dispatch(precision: str, native: bool, dtype: torch.dtype, monkeypatch) -> None:
    from mednca.models import formulations
    from mednca.models.formulations import resolve_formulation

    monkeypatch.setattr(formulations, "has_native_bf16", lambda device: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert formulations.compute_dtype(precision, cpu) == dtype
    bf16 = dtype == torch.bfloat16

    def resolved(cell_rule: str, device: torch.device, training: bool) -> dict[str, str]:
        return resolve_formulation(cell_rule, precision, device, training).describe()

    products = "bf16" if bf16 else "fp32"
    inference = {"cell_rule": "folded", "dtype": "bf16"} if bf16 else {"cell_rule": "gather", "dtype": "fp32"}
    training = {"cell_rule": "dense", "dtype": "bf16"} if bf16 else {"cell_rule": "gather", "dtype": "fp32"}
    assert resolved("auto", cpu, training=False) == inference
    assert resolved("auto", cpu, training=True) == training
    assert resolved("auto", cuda, training=True) == {"cell_rule": "dense", "dtype": products}
    for explicit in ("folded", "dense"):
        assert resolved(explicit, cuda, training=False) == {"cell_rule": explicit, "dtype": products}
    if precision != "bf16":  # the gathered rule computes in fp32, and says so, whatever auto allows
        assert resolved("gather", cpu, training=False) == {"cell_rule": "gather", "dtype": "fp32"}


def test_dense_rule_never_asks_the_host_for_the_firing_cells(monkeypatch) -> None:
    """The dense rule (what ``auto`` takes on a GPU) uses no ``torch.nonzero``, a host-device
    synchronisation per step on CUDA, in inference or in training."""

    def no_sync(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.nonzero called")

    model = MedNCA(channels=8, hidden_size=16, steps=4, cell_rule="dense")
    images = torch.rand((2, 1, 16, 16), generator=seeded(0))
    monkeypatch.setattr(torch, "nonzero", no_sync)
    _training_step(model, images)
    with torch.no_grad():
        model(images, seeded(1))
    with pytest.raises(AssertionError, match="nonzero"):
        MedNCA(channels=8, hidden_size=16, steps=1, cell_rule="gather")(images, seeded(1))


@pytest.mark.parametrize(
    ("flags", "native"), [({"avx2", "fma"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True)]
)
def test_native_bf16_is_read_from_the_cpu_flags(flags: set[str], native: bool, monkeypatch) -> None:
    from mednca import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(flags))
    assert device.has_native_bf16(torch.device("cpu")) == native


@pytest.mark.parametrize(
    "arguments",
    [{"precision": "fp16"}, {"cell_rule": "sparse"}, {"precision": "bf16", "cell_rule": "gather"}],
)
def test_bad_precision_settings_are_value_errors(arguments: dict) -> None:
    with pytest.raises(ValueError, match="precision|cell_rule"):
        MedNCA(**arguments)


@pytest.mark.parametrize("model_class", [MedNCA, SingleLevelNCA])
def test_random_step_counts_in_training_only(model_class: type[nn.Module], monkeypatch) -> None:
    """With ``min_steps`` a training batch runs one step count drawn from [min_steps, steps] for all its
    levels; inference always runs ``steps``, and so does training without it."""
    from mednca.models import nca

    runs: list[int] = []
    original_run = nca.NCARule.run

    def counting_run(self, state, steps, *args, **kwargs):
        runs.append(steps)
        return original_run(self, state, steps, *args, **kwargs)

    monkeypatch.setattr(nca.NCARule, "run", counting_run)
    model = model_class(channels=8, hidden_size=16, steps=9, min_steps=2)
    images = torch.rand((2, 1, 16, 16), generator=seeded(0))
    labels = (images > 0.5).float()
    drawn = set()
    for seed in range(12):
        runs.clear()
        model.training_forward(images, labels, seeded(seed))
        assert len(set(runs)) == 1 and 2 <= runs[0] <= 9  # one count for both levels
        drawn.add(runs[0])
    assert len(drawn) > 2
    runs.clear()
    with torch.no_grad():
        model(images, seeded(0))
    assert set(runs) == {9}
    runs.clear()
    model_class(channels=8, hidden_size=16, steps=9).training_forward(images, labels, seeded(0))
    assert set(runs) == {9}
    with pytest.raises(ValueError, match="min_steps"):
        model_class(steps=4, min_steps=5)
