"""Every model family trains and beats chance, in 1-D and 2-D, on a budget of seconds; the
families share their skeleton and differ only in connectivity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from locality import LocallyConnected1d, TiledConv2d
from locality.train.loop import TrainConfig, train_family
from locality.train.models import FullyConnected, build_model, count_parameters
from tests.bumps import bumps

MODELS = [("dense", None), ("locally_connected", None), ("tiled", 4), ("tiled", 2), ("conv", None)]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("family,tile_size", MODELS)
def test_each_family_beats_chance(d, family, tile_size):
    data = bumps(d, size=16 if d == 1 else 8, max_offset=3 if d == 1 else 1)
    config = TrainConfig(steps=40, batch_size=50, lr=1e-2, eval_every=40)
    _, result = train_family(
        family, data, config, tile_size=tile_size, device="cpu", progress=False
    )
    assert result.test_accuracy > 0.5, f"{family}: {result.test_accuracy} (chance 0.25)"
    assert result.parameters > 0 and len(result.history) == 1


def test_families_share_activation_shapes():
    shapes = {}
    for family, tile_size in MODELS:
        model = build_model(family, (1, 40), 10, tile_size=tile_size)
        x, out = torch.randn(2, 1, 40), []
        for layer in model:
            x = layer(x)
            out.append(tuple(x.shape))
        shapes[family] = out
    assert len({tuple(v) for v in shapes.values()}) == 1
    assert shapes["conv"][:3:2] == [(2, 25, 19), (2, 25, 10)]


def test_conv_family_is_the_published_cnn():
    model = build_model("conv", (1, 40), 10)
    assert count_parameters(model) == 5210  # the MNIST-1D authors' ConvBase
    assert isinstance(build_model("locally_connected", (1, 40), 10)[0], LocallyConnected1d)
    assert isinstance(build_model("dense", (1, 40), 10)[0], FullyConnected)


def test_tile_is_capped_at_the_output_size():
    model = build_model("tiled", (1, 8, 8), 10, tile_size=4)
    tiled = [m for m in model if isinstance(m, TiledConv2d)]
    assert [m.tile_size for m in tiled] == [(4, 4), (4, 4), (2, 2)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"family": "mlp"}, "family must be one of"),
        ({"family": "tiled"}, "positive int tile_size"),
        ({"family": "conv", "tile_size": 2}, "only for family 'tiled'"),
        ({"family": "conv", "input_shape": (40,)}, "1 to 3 spatial"),
        ({"family": "conv", "num_classes": 1}, "num_classes"),
    ],
)
def test_build_model_rejects_bad_arguments(kwargs, message):
    arguments = {"input_shape": (1, 40), "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(arguments.pop("family"), **arguments)


def test_fully_connected_maps_shapes():
    layer = FullyConnected((3, 5), (4, 2))
    assert layer(torch.randn(7, 3, 5)).shape == (7, 4, 2)
    assert isinstance(layer.linear, nn.Linear) and layer.linear.in_features == 15
