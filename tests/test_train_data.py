"""Datasets: the shuffled MNIST-1D permutation, sklearn digits, the user's .npz and image folders,
and the messages for data that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locality.train import data


@pytest.fixture
def mnist1d_cache(tmp_path):
    """A stand-in for the generated MNIST-1D arrays, so these tests need not run the generator."""
    rng = np.random.RandomState(0)
    arrays = {"x": rng.randn(40, 40), "y": rng.randint(10, size=40), "x_test": rng.randn(10, 40),
              "y_test": rng.randint(10, size=10)}
    np.savez(tmp_path / "mnist1d.npz", **arrays)
    return tmp_path, arrays


def test_mnist1d_shuffled_is_the_published_permutation(mnist1d_cache):
    cache, arrays = mnist1d_cache
    plain, shuffled = data.mnist1d(cache_dir=cache), data.mnist1d(shuffled=True, cache_dir=cache)
    np.random.seed(42)  # the MNIST-1D benchmark notebook's shuffle
    order = np.random.permutation(40)
    assert plain.x_train.shape == (40, 1, 40) and plain.name == "mnist1d"
    assert torch.equal(shuffled.x_test[:, 0], torch.tensor(arrays["x_test"][:, order], dtype=torch.float32))
    assert torch.equal(shuffled.y_train, plain.y_train) and shuffled.name == "mnist1d-shuffled"


def test_digits_is_8x8_split_by_class():
    digits = data.load("digits")
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    assert set(digits.y_test.tolist()) == set(range(10))


def test_npz_with_and_without_test_split(tmp_path):
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "a.npz", x=rng.randn(30, 6, 6), y=np.arange(30) % 3)
    split = data.load(tmp_path / "a.npz")
    assert split.input_shape == (1, 6, 6) and split.num_classes == 3 and len(split.y_test) == 6
    np.savez(tmp_path / "b.npz", x=rng.randn(8, 2, 5, 5), y=np.arange(8) % 2, x_test=rng.randn(4, 2, 5, 5),
             y_test=np.arange(4) % 2)
    given = data.load(tmp_path / "b.npz")
    assert given.input_shape == (2, 5, 5) and len(given.y_test) == 4 and given.x_train.dtype == torch.float32


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.zeros((4, 5))}, r"missing \['y'\]"),
        ({"x": np.zeros((4, 5)), "y": np.zeros(3, dtype=int)}, "labels must have shape"),
        ({"x": np.zeros((4, 5)), "y": np.full(4, 0.5)}, "non-negative integers"),
        ({"x": np.zeros(4), "y": np.zeros(4, dtype=int)}, "must have shape"),
        ({"x": np.zeros((4, 5)), "y": np.zeros(4, dtype=int), "x_test": np.zeros((2, 5))}, "both 'x_test'"),
    ],
)
def test_npz_errors_name_what_is_wrong(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        data.load(tmp_path / "bad.npz")


def test_image_folder_by_class(tmp_path):
    image = pytest.importorskip("PIL.Image")
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            array = np.full((4, 6), 20 * i + (100 if label == "dog" else 0), dtype=np.uint8)
            image.fromarray(array).save(tmp_path / label / f"{i}.png")
    folder = data.load(tmp_path)
    assert folder.input_shape == (1, 4, 6) and folder.num_classes == 2
    assert len(folder.y_train) + len(folder.y_test) == 10
    (tmp_path / "dog" / "big.png").unlink(missing_ok=True)
    image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(tmp_path / "dog" / "big.png")
    with pytest.raises(ValueError, match="same size"):
        data.load(tmp_path)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="no such file or folder"):
        data.load("mnist2d")
    with pytest.raises(ValueError, match="test_fraction"):
        data.load("digits", test_fraction=1.5)
