"""Synthetic phantom dataset: MSD layout, geometry, labels, intensities, determinism and atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from mednca.data.phantom import generate_phantom_dataset

SHAPE = (32, 40, 24)
N_CASES = 6


def load(path: Path) -> tuple[np.ndarray, nibabel.Nifti1Image]:
    """Stored voxels (in their on-disk dtype) and the NIfTI image of ``path``."""
    image = nibabel.load(path)
    return np.asanyarray(image.dataobj), image


def case_paths(root: Path) -> list[tuple[Path, Path]]:
    """(image, label) paths of every case listed in ``root/dataset.json``."""
    training = json.loads((root / "dataset.json").read_text())["training"]
    return [(root / entry["image"], root / entry["label"]) for entry in training]


def case_arrays(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, label) voxel arrays of every case of ``root``."""
    return [(load(image)[0], load(label)[0]) for image, label in case_paths(root)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default single-modality phantom of ``N_CASES`` cases, shared by read-only tests."""
    return generate_phantom_dataset(tmp_path_factory.mktemp("phantom") / "Phantom", N_CASES, seed=7)


@pytest.fixture(scope="module")
def multimodal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-modality phantom of 3 cases, shared by read-only tests."""
    return generate_phantom_dataset(tmp_path_factory.mktemp("phantom") / "Multi", 3, seed=3, n_modalities=3)


@pytest.mark.parametrize(("n_modalities", "tensor_size"), [(1, "3D"), (2, "4D")])
def test_layout_and_dataset_json(tmp_path: Path, n_modalities: int, tensor_size: str) -> None:
    out = generate_phantom_dataset(tmp_path / "Phantom", 3, seed=0, n_modalities=n_modalities)
    assert out == tmp_path / "Phantom"
    description = json.loads((out / "dataset.json").read_text())
    assert description["name"] == "Phantom (synthetic)"
    assert "synthetic" in description["description"].lower()
    assert description["labels"] == {"0": "background", "1": "anterior", "2": "posterior"}
    assert description["modality"] == {str(m): "synthetic MRI" for m in range(n_modalities)}
    assert description["tensorImageSize"] == tensor_size
    assert (description["numTraining"], description["numTest"], description["test"]) == (3, 0, [])
    assert {"reference", "licence", "release"} <= description.keys()
    names = [f"phantom_{i:03d}.nii.gz" for i in range(3)]
    expected = [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names]
    assert description["training"] == expected
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == names
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == names


@pytest.mark.parametrize("shape", [SHAPE, (8, 8, 8), (20, 9, 13)])
def test_no_jitter_gives_exact_shape(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    out = generate_phantom_dataset(tmp_path / "p", 3, seed=1, shape=shape, shape_jitter=0)
    for image, label in case_arrays(out):
        assert image.shape == label.shape == shape


def test_jittered_shapes_stay_within_bounds(dataset: Path) -> None:
    shapes = [label.shape for _, label in case_arrays(dataset)]
    offsets = np.array(shapes) - np.array(SHAPE)
    assert np.abs(offsets).max() <= 4
    assert len(set(shapes)) > 1


def test_labels_are_two_part_structures_inside_the_volume(dataset: Path) -> None:
    for _, label in case_arrays(dataset):
        assert label.dtype == np.uint8
        assert set(np.unique(label).tolist()) == {0, 1, 2}
        assert 0.02 <= np.mean(label > 0) <= 0.2
        interior = np.zeros(label.shape, dtype=bool)
        interior[1:-1, 1:-1, 1:-1] = True
        assert not label[~interior].any()


def test_smallest_volumes_still_have_both_labels(tmp_path: Path) -> None:
    out = generate_phantom_dataset(tmp_path / "p", 12, seed=5, shape=(8, 8, 8), shape_jitter=0)
    for _, label in case_arrays(out):
        assert set(np.unique(label).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.75, 1.0, 1.5)])
def test_image_and_label_share_geometry(tmp_path: Path, spacing: tuple[float, float, float]) -> None:
    out = generate_phantom_dataset(tmp_path / "p", 2, seed=2, n_modalities=2, spacing=spacing)
    for image_path, label_path in case_paths(out):
        image_voxels, image = load(image_path)
        label_voxels, label = load(label_path)
        assert image_voxels.shape[:3] == label_voxels.shape
        np.testing.assert_array_equal(image.affine, label.affine)
        np.testing.assert_allclose(np.diag(image.affine)[:3], spacing, rtol=1e-6)
        assert np.abs(image.affine[:3, 3]).max() > 0
        np.testing.assert_allclose(image.header.get_zooms()[:3], spacing, rtol=1e-6)
        np.testing.assert_allclose(label.header.get_zooms(), spacing, rtol=1e-6)


def test_structure_has_clear_but_imperfect_contrast(dataset: Path) -> None:
    for image, label in case_arrays(dataset):
        foreground, background = image[label > 0].astype(float), image[label == 0].astype(float)
        separation = (foreground.mean() - background.mean()) / background.std()
        assert separation > 1.0
        assert foreground.min() < np.quantile(background, 0.99)


def test_intensities_are_finite_and_non_negative(dataset: Path, multimodal: Path) -> None:
    for root in (dataset, multimodal):
        for image, _ in case_arrays(root):
            assert np.isfinite(image).all()
            assert image.min() >= 0
            assert image.max() > image.min()


def test_same_seed_gives_identical_arrays_and_other_seed_differs(tmp_path: Path) -> None:
    first, again, other = (
        case_arrays(generate_phantom_dataset(tmp_path / name, 3, seed=seed, n_modalities=2))
        for name, seed in (("a", 11), ("b", 11), ("c", 12))
    )
    for (image, label), (image_again, label_again) in zip(first, again, strict=True):
        assert image.dtype == image_again.dtype
        np.testing.assert_array_equal(image, image_again)
        np.testing.assert_array_equal(label, label_again)
    for (image, label), (image_other, label_other) in zip(first, other, strict=True):
        assert image.shape != image_other.shape or not np.array_equal(image, image_other)
        assert label.shape != label_other.shape or not np.array_equal(label, label_other)


def test_multimodal_images_are_channels_last_with_distinct_contrasts(multimodal: Path) -> None:
    for image, label in case_arrays(multimodal):
        assert image.ndim == 4
        assert image.shape == (*label.shape, 3)
        channels, inside = image.reshape(-1, 3).astype(float), label.ravel() > 0
        correlation = np.corrcoef(channels.T)
        assert correlation[np.triu_indices(3, k=1)].max() < 0.99
        contrast = channels[inside].mean(axis=0) - channels[~inside].mean(axis=0)
        assert contrast[0] > 0 > contrast[1]


@pytest.mark.parametrize("root_fixture", ["dataset", "multimodal"])
def test_dtypes_are_mixed_like_the_real_data(request: pytest.FixtureRequest, root_fixture: str) -> None:
    root = request.getfixturevalue(root_fixture)
    for index, (image, _) in enumerate(case_arrays(root)):
        if index % 3 == 2:
            assert image.dtype == np.uint8
            assert (image.min(), image.max()) == (0, 255)
        else:
            assert image.dtype == np.float32


def test_existing_out_dir_raises_and_is_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "Phantom"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="Phantom"):
        generate_phantom_dataset(out, 2, seed=0)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["Phantom"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_cases": 0}, "n_cases"),
        ({"n_modalities": 0}, "n_modalities"),
        ({"seed": -1}, "seed"),
        ({"shape": (7, 40, 24), "shape_jitter": 0}, "at least 8"),
        ({"shape": (32, 10, 24), "shape_jitter": 4}, "at least 8"),
        ({"shape_jitter": -1}, "shape_jitter"),
        ({"shape": (32, 40)}, "3 entries"),
        ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
    ],
)
def test_invalid_arguments_raise_value_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"n_cases": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_phantom_dataset(tmp_path / "sub" / "Phantom", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_success_creates_parents_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    out = generate_phantom_dataset(tmp_path / "a" / "b" / "Phantom", 1, seed=0, progress=True)
    assert out.is_dir()
    assert [p.name for p in out.parent.iterdir()] == ["Phantom"]


def test_failure_midway_removes_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = nibabel.save
    calls = []

    def failing_save(image: nibabel.Nifti1Image, path: Path) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real_save(image, path)

    monkeypatch.setattr(nibabel, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_phantom_dataset(tmp_path / "Phantom", 3, seed=0)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def _fetch(data_dir: Path, spec) -> dict:
    from mednca.data.stages import fetch_stage

    fetch_stage(data_dir, "Phantom", data_dir / "source.json", phantom=spec)
    return json.loads((data_dir / "source.json").read_text())


def test_fetch_reuses_a_phantom_only_if_its_settings_are_the_configured_ones(tmp_path: Path) -> None:
    from mednca.data.stages import PhantomSpec

    small = PhantomSpec(cases=2, shape=(12, 12, 8), shape_jitter=0)
    assert _fetch(tmp_path, small)["origin"] == "generated"
    label = tmp_path / "Phantom" / "labelsTr" / "phantom_000.nii.gz"
    written = label.stat().st_mtime_ns
    assert _fetch(tmp_path, small)["origin"] == "present" and label.stat().st_mtime_ns == written
    larger = PhantomSpec(cases=3, shape=(12, 12, 8), shape_jitter=0)
    assert _fetch(tmp_path, larger)["origin"] == "generated"
    assert len(list((tmp_path / "Phantom" / "imagesTr").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Phantom", "source.json"]


def test_fetch_never_overwrites_real_data_nor_takes_a_phantom_for_it(tmp_path: Path) -> None:
    from conftest import write_msd_dataset

    from mednca.data.stages import PhantomSpec, fetch_stage
    from mednca.errors import DataError

    write_msd_dataset(tmp_path / "Phantom")
    before = sorted(p.name for p in (tmp_path / "Phantom" / "imagesTr").iterdir())
    with pytest.raises(DataError, match="Phantom: exists and is not a phantom generated by mednca"):
        _fetch(tmp_path, PhantomSpec(cases=2))
    assert sorted(p.name for p in (tmp_path / "Phantom" / "imagesTr").iterdir()) == before
    generate_phantom_dataset(tmp_path / "Synthetic", 2, seed=0, shape=(12, 12, 8), shape_jitter=0)
    with pytest.raises(DataError, match="Synthetic: holds a synthetic phantom"):
        fetch_stage(tmp_path, "Synthetic", tmp_path / "source.json")


def test_source_record_is_relative_to_the_data_dir_so_a_moved_checkout_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mednca.data.stages import PhantomSpec, dataset_folder

    checkout = tmp_path / "checkout"
    (checkout / "data").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    record = _fetch(Path("data"), PhantomSpec(cases=2, shape=(12, 12, 8), shape_jitter=0))
    assert (record["data_dir"], record["folder"]) == ("data", "Phantom")
    moved = tmp_path / "moved"
    checkout.rename(moved)
    monkeypatch.chdir(moved)
    assert (dataset_folder(Path("data") / "source.json") / "dataset.json").is_file()
