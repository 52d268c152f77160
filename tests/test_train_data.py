"""Datasets: MNIST-1D and its shuffled variant, sklearn digits, the user's .npz and image folders,
and the messages for data that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from locality.train import data


def test_mnist1d_reads_its_cache(tmp_path):
    rng = np.random.RandomState(0)
    for name in ("mnist1d", "mnist1d-shuffled"):
        np.savez(
            tmp_path / f"{name}.npz",
            x=rng.randn(40, 40),
            y=rng.randint(10, size=40),
            x_test=rng.randn(10, 40),
            y_test=rng.randint(10, size=10),
        )
    plain, shuffled = (
        data.mnist1d(cache_dir=tmp_path),
        data.mnist1d(shuffled=True, cache_dir=tmp_path),
    )
    assert plain.x_train.shape == (40, 1, 40) and plain.name == "mnist1d"
    with np.load(tmp_path / "mnist1d-shuffled.npz") as arrays:
        assert torch.equal(shuffled.x_test[:, 0], torch.from_numpy(arrays["x_test"]).float())
    assert shuffled.name == "mnist1d-shuffled" and shuffled.num_classes == 10


def test_mnist1d_as_published_and_shuffled_positions():
    pytest.importorskip("mnist1d")
    plain, shuffled = data.load("mnist1d"), data.load("mnist1d-shuffled")
    assert (len(plain.y_train), len(plain.y_test), plain.input_shape) == (4000, 1000, (1, 40))
    assert torch.equal(plain.y_train, shuffled.y_train) and torch.equal(
        plain.y_test, shuffled.y_test
    )
    # Each shuffled position is exactly one original position, and the order is not the identity.
    columns = [
        [j for j in range(40) if torch.equal(shuffled.x_train[:, 0, i], plain.x_train[:, 0, j])]
        for i in range(40)
    ]
    order = [match[0] for match in columns if len(match) == 1]
    assert sorted(order) == list(range(40)) and order != list(range(40))
    assert torch.equal(shuffled.x_test[:, 0], plain.x_test[:, 0, order])


def test_digits_is_8x8_split_by_class():
    digits = data.load("digits")
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0
    assert set(digits.y_test.tolist()) == set(range(10))


def test_npz_with_and_without_test_split(tmp_path):
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "a.npz", x=rng.randn(30, 6, 6), y=np.arange(30) % 3)
    split = data.load(tmp_path / "a.npz")
    assert split.input_shape == (1, 6, 6) and split.num_classes == 3 and len(split.y_test) == 6
    np.savez(
        tmp_path / "b.npz",
        x=rng.randn(8, 2, 5, 5),
        y=np.arange(8) % 2,
        x_test=rng.randn(4, 2, 5, 5),
        y_test=np.arange(4) % 2,
    )
    given = data.load(tmp_path / "b.npz")
    assert (
        given.input_shape == (2, 5, 5)
        and len(given.y_test) == 4
        and given.x_train.dtype == torch.float32
    )


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.zeros((4, 5))}, r"missing \['y'\]"),
        ({"x": np.zeros((4, 5)), "y": np.zeros(3, dtype=int)}, "labels must have shape"),
        ({"x": np.zeros((4, 5)), "y": np.full(4, 0.5)}, "non-negative integers"),
        ({"x": np.zeros(4), "y": np.zeros(4, dtype=int)}, "must have shape"),
        (
            {"x": np.zeros((4, 5)), "y": np.zeros(4, dtype=int), "x_test": np.zeros((2, 5))},
            "both 'x_test'",
        ),
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


def test_npz_layouts_channels_last_is_moved_and_ambiguity_refused(tmp_path):
    rng = np.random.RandomState(1)
    keras = rng.randn(12, 6, 5, 3).astype(np.float32)  # (N, H, W, C), Keras' default
    np.savez(tmp_path / "keras.npz", x=keras, y=np.arange(12) % 2)
    for layout in ("auto", "channels_last"):
        loaded = data.load(tmp_path / "keras.npz", layout=layout)
        assert loaded.input_shape == (3, 6, 5)
        x = torch.cat([loaded.x_train, loaded.x_test])
        # every loaded example is one of the originals with its channels moved first
        reference = torch.from_numpy(np.stack([keras[i].transpose(2, 0, 1) for i in range(12)]))
        assert all(any(torch.equal(a, b) for b in reference) for a in x)
    assert data.load(tmp_path / "keras.npz", layout="channels_first").input_shape == (6, 5, 3)
    assert data.load(tmp_path / "keras.npz", layout="no_channels").input_shape == (1, 6, 5, 3)
    np.savez(tmp_path / "square.npz", x=rng.randn(12, 16, 8, 8), y=np.arange(12) % 2)
    with pytest.raises(ValueError, match="cannot tell the channel axis.*layout="):
        data.load(tmp_path / "square.npz")
    assert data.load(tmp_path / "square.npz", layout="channels_first").input_shape == (16, 8, 8)
    with pytest.raises(ValueError, match="layout must be one of"):
        data.load(tmp_path / "square.npz", layout="NHWC")


@pytest.mark.parametrize(
    "content, message",
    [(b"", "cannot read"), (b"not a zip", "cannot read")],
)
def test_unreadable_npz_is_named(tmp_path, content, message):
    (tmp_path / "broken.npz").write_bytes(content)
    with pytest.raises(ValueError, match=f"{message}.*broken.npz"):
        data.load(tmp_path / "broken.npz")
