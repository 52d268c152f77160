"""The layers between convolution and locally connected, and the transposed layers.

Each layer against its float64 reference (``tests.between_reference``) and the special cases the
issue names: regions=1 is a convolution and regions=output_size a locally connected layer; the
mapped layer reproduces the four classical maps; low-rank one-hot mixes are locally connected,
its initialisation is a convolution, its kernels have rank <= K; the transposed layer is the
adjoint and, with one kernel everywhere, ConvTranspose.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import locality
from tests.between_reference import (
    apply_per_position,
    lowrank_kernels,
    mapped_kernels,
    region_kernels,
    region_of,
    transpose_loop,
)

D = (1, 2, 3)
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
REGION = {1: locality.RegionConv1d, 2: locality.RegionConv2d, 3: locality.RegionConv3d}
MAPPED = {1: locality.MappedConv1d, 2: locality.MappedConv2d, 3: locality.MappedConv3d}
LOWRANK = {
    1: locality.LowRankLocallyConnected1d,
    2: locality.LowRankLocallyConnected2d,
    3: locality.LowRankLocallyConnected3d,
}
LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}
LCT = {
    1: locality.LocallyConnectedTranspose1d,
    2: locality.LocallyConnectedTranspose2d,
    3: locality.LocallyConnectedTranspose3d,
}
TCT = {
    1: locality.TiledConvTranspose1d,
    2: locality.TiledConvTranspose2d,
    3: locality.TiledConvTranspose3d,
}
F64 = torch.float64


def _randomise(layer: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    return layer


def _np(t: torch.Tensor | None):
    return None if t is None else t.detach().numpy()


@pytest.mark.parametrize("d", D)
@pytest.mark.parametrize("bias", ["bank", "shared", None])
def test_region_layer_equals_its_reference(d, bias):
    size = (7, 6, 5)[:d]
    padding = ((1, 2), 0, (0, 1))[:d]
    layer = _randomise(
        REGION[d](
            4,
            4,
            2,
            input_size=size,
            regions=(3, 2, 2)[:d],
            stride=(1, 2, 1)[:d],
            padding=padding,
            groups=2,
            bias=bias is not None,
            shared_bias=bias == "shared",
            padding_mode="reflect",
            dtype=F64,
        )
    )
    x = torch.randn(2, 4, *size, dtype=F64)
    pads = tuple((p, p) if isinstance(p, int) else p for p in padding)
    kernels, biases = region_kernels(_np(layer.weight), layer.output_size, _np(layer.bias))
    expected = apply_per_position(
        x.numpy(), kernels, biases, layer.stride, pads, layer.dilation, 2, "reflect"
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_np(layer.kernels()), kernels, rtol=0, atol=0)


@pytest.mark.parametrize("d", D)
def test_region_special_cases_and_array_split(d):
    x = torch.randn(2, 3, *(6,) * d, dtype=F64)
    one = _randomise(REGION[d](3, 4, 3, input_size=6, regions=1, padding=1, dtype=F64))
    expected = CONV[d](x, one.weight[(0,) * d], one.bias[(0,) * d], padding=1)
    torch.testing.assert_close(one(x), expected, rtol=0, atol=1e-12)
    every = _randomise(REGION[d](3, 4, 3, input_size=6, regions=4, dtype=F64))
    local = LOCAL[d](3, 4, 3, input_size=6, dtype=F64)
    local.load_state_dict(every.state_dict())
    torch.testing.assert_close(every(x), local(x), rtol=0, atol=1e-12)
    uneven = REGION[d](3, 4, 1, input_size=(7, 5, 4)[:d], regions=(3, 2, 3)[:d])
    labels = region_of(uneven.output_size, uneven.regions)
    flat = np.ravel_multi_index(np.moveaxis(labels, -1, 0), uneven.regions)
    np.testing.assert_array_equal(uneven.connectivity.kernel_index().numpy(), flat)


@pytest.mark.parametrize("d", D)
def test_mapped_layer_equals_its_reference_and_the_four_maps(d):
    size, out = (6,) * d, (4,) * d
    kernel_map = torch.randint(0, 5, out)
    layer = _randomise(MAPPED[d](2, 4, 3, kernel_map, num_kernels=6, groups=2, dtype=F64))
    x = torch.randn(3, 2, *size, dtype=F64)
    kernels, biases = mapped_kernels(_np(layer.weight), kernel_map.numpy(), _np(layer.bias))
    expected = apply_per_position(
        x.numpy(), kernels, biases, (1,) * d, ((0, 0),) * d, (1,) * d, 2, "zeros"
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=0, atol=1e-12)
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in out), indexing="ij"))
    tile = (2, 3, 1)[:d]
    others = {
        "conv": (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[d - 1](2, 4, 3, dtype=F64),
        "tiled": TILED[d](2, 4, 3, tile_size=tile, dtype=F64),
        "region": REGION[d](2, 4, 3, input_size=size, regions=2, dtype=F64),
        "local": LOCAL[d](2, 4, 3, input_size=size, dtype=F64),
    }
    maps = {
        "conv": torch.zeros(out, dtype=torch.long),
        "tiled": torch.from_numpy(
            np.ravel_multi_index(tuple((grid[j] % tile[j]).numpy() for j in range(d)), tile)
        ),
        "region": others["region"].connectivity.kernel_index(),
        "local": torch.arange(int(np.prod(out))).reshape(out),
    }
    for name, other in others.items():
        _randomise(other)
        bank = other.weight.reshape(-1, 4, 2, *(3,) * d)
        mapped = MAPPED[d](2, 4, 3, maps[name], num_kernels=bank.shape[0], dtype=F64)
        mapped.load_state_dict(
            {
                "weight": bank,
                "bias": other.bias.reshape(-1, 4) if name != "conv" else other.bias.expand(1, 4),
                "kernel_map": maps[name],
            }
        )
        torch.testing.assert_close(mapped(x), other(x), rtol=0, atol=1e-12, msg=name)


def test_mapped_map_is_a_buffer_checked_at_construction_and_load():
    kernel_map = torch.tensor([[0, 1], [1, 0]])
    layer = locality.MappedConv2d(1, 2, 3, kernel_map)
    other = torch.tensor([[1, 1], [0, 0]])
    layer.load_state_dict({**layer.state_dict(), "kernel_map": other})
    x = torch.randn(1, 1, 4, 4)
    expected = F.conv2d(x, layer.weight[1], layer.bias[1])
    torch.testing.assert_close(layer(x)[..., 0, :], expected[..., 0, :])
    for bad, message in (
        (torch.tensor([[0, -1]]), "kernel_map values must be non-negative, got -1"),
        (torch.tensor([[0.0, 1.0]]), "kernel_map must hold integers, got dtype torch.float32"),
        (torch.tensor([0, 1]), r"kernel_map must have 2 dims .* got shape \(2,\)"),
    ):
        with pytest.raises((ValueError, TypeError), match=message):
            locality.MappedConv2d(1, 2, 3, bad)
    with pytest.raises(
        ValueError, match=r"MappedConv2d: kernel_map values must be in \[0, num_kernels=2\), got 2"
    ):
        locality.MappedConv2d(1, 2, 3, torch.tensor([[0, 2]]), num_kernels=2)
    with pytest.raises(ValueError, match="load_state_dict: kernel_map values must be in"):
        layer.load_state_dict({**layer.state_dict(), "kernel_map": torch.tensor([[5, 0], [0, 0]])})
    with pytest.raises(
        ValueError,
        match=r"MappedConv2d: input of spatial size \(5, 4\) gives output size \(3, 2\), but "
        r"kernel_map covers output size \(2, 2\)",
    ):
        layer(torch.randn(1, 1, 5, 4))


@pytest.mark.parametrize("d", D)
def test_lowrank_layer_equals_its_reference_and_special_cases(d):
    size = (6,) * d
    layer = _randomise(LOWRANK[d](2, 4, 3, input_size=size, rank=3, padding=1, dtype=F64))
    x = torch.randn(2, 2, *size, dtype=F64)
    mix = torch.softmax(layer.combining_weights, -1)
    kernels = lowrank_kernels(_np(layer.weight), _np(mix))
    expected = apply_per_position(
        x.numpy(), kernels, _np(layer.bias), (1,) * d, ((1, 1),) * d, (1,) * d, 1, "zeros"
    )
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_np(layer.kernels()), kernels, rtol=0, atol=1e-12)
    # At initialisation: a convolution with the mean basis kernel, for both normalisations.
    for normalize in ("softmax", None):
        fresh = LOWRANK[d](
            2, 4, 3, input_size=size, rank=3, shared_bias=True, normalize=normalize, dtype=F64
        )
        conv = CONV[d](x, fresh.weight.mean(0), fresh.bias)
        torch.testing.assert_close(fresh(x), conv, rtol=0, atol=1e-12)
    # One-hot mixes, normalize=None: a locally connected layer whose kernels are the picks.
    positions = 4**d
    onehot = LOWRANK[d](2, 4, 3, input_size=size, rank=positions, normalize=None, dtype=F64)
    _randomise(onehot)
    with torch.no_grad():
        onehot.combining_weights.copy_(
            torch.eye(positions, dtype=F64).reshape(*(4,) * d, positions)
        )
    local = LOCAL[d](2, 4, 3, input_size=size, dtype=F64)
    local.load_state_dict(
        {"weight": onehot.weight.reshape(local.weight.shape), "bias": onehot.bias}
    )
    torch.testing.assert_close(onehot(x), local(x), rtol=0, atol=1e-12)


def test_lowrank_kernels_have_rank_at_most_k_and_are_differentiable():
    layer = _randomise(locality.LowRankLocallyConnected2d(3, 4, 3, input_size=8, rank=2, dtype=F64))
    matrix = layer.kernels().reshape(36, -1)
    assert torch.linalg.matrix_rank(matrix.detach()) == 2
    layer.kernels().sum().backward()
    assert layer.combining_weights.grad is not None and layer.weight.grad is not None
    with pytest.raises(ValueError, match="normalize must be 'softmax' or None, got 'sum'"):
        locality.LowRankLocallyConnected2d(3, 4, 3, input_size=8, rank=2, normalize="sum")


@pytest.mark.parametrize("d", D)
def test_transposed_layer_equals_its_reference_is_the_adjoint_and_conv_transpose(d):
    size = (3, 4, 2)[:d]
    kw = dict(stride=(2, 1, 3)[:d], padding=((1, 0), 1, 0)[:d], dilation=(1, 2, 1)[:d], groups=2)
    layer = _randomise(
        LCT[d](4, 6, 3, input_size=size, output_padding=(1, 0, 2)[:d], **kw, dtype=F64)
    )
    y = torch.randn(2, 4, *size, dtype=F64)
    pads = tuple((p, p) if isinstance(p, int) else p for p in kw["padding"])
    expected = transpose_loop(
        y.numpy(),
        _np(layer.weight),
        _np(layer.bias),
        kw["stride"],
        pads,
        layer.output_padding,
        kw["dilation"],
        2,
    )
    out = layer(y)
    assert tuple(out.shape[2:]) == layer.output_size
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-12)
    # <LC(x), z> == <x, LCT(z)>: the LC from this output size back to the input size.
    local = LOCAL[d](
        6,
        4,
        3,
        input_size=layer.output_size,
        bias=False,
        padding_mode="zeros",
        **{**kw, "padding": kw["padding"]},
        dtype=F64,
    )
    assert local.output_size == size
    with torch.no_grad():
        local.weight.copy_(layer.weight)
    x = torch.randn(2, 6, *layer.output_size, dtype=F64)
    no_bias = LCT[d](
        4, 6, 3, input_size=size, output_padding=(1, 0, 2)[:d], bias=False, **kw, dtype=F64
    )
    no_bias.load_state_dict({"weight": layer.weight})
    torch.testing.assert_close((local(x) * y).sum(), (x * no_bias(y)).sum(), rtol=1e-12, atol=1e-12)
    # One kernel everywhere: ConvTranspose, output_padding and groups included.
    kernel = torch.randn(4, 3, *(3,) * d, dtype=F64)
    with torch.no_grad():
        no_bias.weight.copy_(kernel.expand_as(no_bias.weight))
    expected_t = CONV_T[d](y, kernel, None, output_padding=(1, 0, 2)[:d], **{**kw, "padding": 0})
    crop = tuple(slice(lo, expected_t.shape[2 + j] - hi) for j, (lo, hi) in enumerate(pads))
    torch.testing.assert_close(
        no_bias(y), expected_t[(slice(None), slice(None), *crop)], rtol=0, atol=1e-12
    )
    tiled = TCT[d](4, 6, 3, tile_size=1, output_padding=(1, 0, 2)[:d], bias=False, **kw, dtype=F64)
    with torch.no_grad():
        tiled.weight.copy_(kernel.expand_as(tiled.weight))
    torch.testing.assert_close(tiled(y), no_bias(y), rtol=0, atol=1e-12)


def test_counts_and_kernels_come_from_the_connectivity():
    km = torch.tensor([[0, 1, 1], [2, 2, 0]])
    layers = [
        locality.RegionConv2d(4, 6, 3, input_size=(7, 8), regions=(2, 3), groups=2),
        locality.MappedConv2d(4, 6, 3, km, shared_bias=True),
        locality.LowRankLocallyConnected2d(4, 6, 3, input_size=(7, 8), rank=3),
        locality.LocallyConnectedTranspose2d(4, 6, 3, input_size=(3, 2), stride=2, groups=2),
        locality.TiledConvTranspose2d(4, 6, 3, tile_size=2, stride=2, shared_bias=True),
    ]
    for layer in layers:
        connectivity = locality.Connectivity.of(layer)
        assert connectivity.parameters == sum(p.numel() for p in layer.parameters()), layer
    region, mapped = layers[0], layers[1]
    assert region.kernels().shape == (*region.output_size, 6, 2, 3, 3)
    torch.testing.assert_close(mapped.kernels()[1, 0], mapped.weight[2], rtol=0, atol=0)
    assert locality.Connectivity.of(layers[2]).map.soft


def test_region_count_larger_than_the_output_is_refused():
    with pytest.raises(
        ValueError, match=r"RegionConv2d: regions=\(5, 2\) must not exceed the output size \(4, 4\)"
    ):
        locality.RegionConv2d(1, 1, 3, input_size=6, regions=(5, 2))
    with pytest.raises(
        ValueError, match=r"RegionConv1d: expected input of spatial size \(6,\), got \(7,\)"
    ):
        locality.RegionConv1d(1, 1, 3, input_size=6, regions=2)(torch.randn(1, 1, 7))
    with pytest.raises(ValueError, match="LocallyConnectedTranspose1d: padding must be an int"):
        locality.LocallyConnectedTranspose1d(1, 1, 3, input_size=6, padding="same")


@pytest.mark.parametrize("batch", [0, 1])
def test_layers_take_batch_zero_one_and_unbatched_input(batch):
    layers_inputs = [
        (locality.RegionConv2d(2, 3, 3, input_size=5, regions=2), (2, 5, 5)),
        (locality.MappedConv1d(2, 3, 3, torch.tensor([0, 1, 0])), (2, 5)),
        (locality.LowRankLocallyConnected3d(2, 3, 2, input_size=3, rank=2), (2, 3, 3, 3)),
        (locality.LocallyConnectedTranspose2d(2, 3, 3, input_size=2, stride=2), (2, 2, 2)),
    ]
    for layer, shape in layers_inputs:
        x = torch.randn(batch, *shape)
        out = layer(x)
        assert out.shape[0] == batch
        torch.testing.assert_close(layer(torch.randn(*shape)).shape, out.shape[1:])


@pytest.mark.parametrize(
    "lazy, eager, args, x",
    [
        (locality.LazyRegionConv2d, locality.RegionConv2d, (6, 3, 2), (2, 4, 9, 8)),
        (
            locality.LazyLowRankLocallyConnected1d,
            locality.LowRankLocallyConnected1d,
            (6, 3, 2),
            (2, 4, 9),
        ),
        (
            locality.LazyLocallyConnectedTranspose3d,
            locality.LocallyConnectedTranspose3d,
            (6, 2),
            (2, 4, 3, 2, 2),
        ),
    ],
)
def test_lazy_variants_infer_channels_and_input_size(lazy, eager, args, x):
    layer = lazy(*args, dtype=F64)
    inputs = torch.randn(*x, dtype=F64)
    out = layer(inputs)
    assert type(layer) is eager and layer.in_channels == 4 and layer.input_size == x[2:]
    assert locality.Connectivity.of(layer).parameters == sum(p.numel() for p in layer.parameters())
    fresh = lazy(*args, dtype=F64)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(inputs), out, rtol=0, atol=0)
