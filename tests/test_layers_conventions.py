"""The layers follow torch.nn.Conv*d's conventions: autograd, shapes, memory, dtypes, state."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import locality

KINDS = {
    ("local", 1): lambda **kw: locality.LocallyConnected1d(4, 6, 3, input_size=7, **kw),
    ("local", 2): lambda **kw: locality.LocallyConnected2d(4, 6, (3, 2), input_size=(6, 5), **kw),
    ("local", 3): lambda **kw: locality.LocallyConnected3d(4, 6, 2, input_size=(4, 3, 4), **kw),
    ("tiled", 1): lambda **kw: locality.TiledConv1d(4, 6, 3, tile_size=2, **kw),
    ("tiled", 2): lambda **kw: locality.TiledConv2d(4, 6, (3, 2), tile_size=(2, 3), **kw),
    ("tiled", 3): lambda **kw: locality.TiledConv3d(4, 6, 2, tile_size=2, **kw),
}
INPUT = {1: (7,), 2: (6, 5), 3: (4, 3, 4)}
IDS = [f"{k}{d}d" for k, d in KINDS]


@pytest.fixture(params=list(KINDS), ids=IDS)
def kind(request):
    return request.param


def _input(d, batch=2, dtype=torch.float64, **kw):
    return torch.randn(batch, 4, *INPUT[d], dtype=dtype, **kw)


GRAD_KINDS = {  # small enough for numerical Jacobians; groups=2 and padding stay covered
    ("local", 1): lambda **kw: locality.LocallyConnected1d(2, 2, 3, input_size=5, **kw),
    ("local", 2): lambda **kw: locality.LocallyConnected2d(2, 2, (2, 3), input_size=(3, 4), **kw),
    ("local", 3): lambda **kw: locality.LocallyConnected3d(2, 2, 2, input_size=(2, 3, 2), **kw),
    ("tiled", 1): lambda **kw: locality.TiledConv1d(2, 2, 3, tile_size=2, **kw),
    ("tiled", 2): lambda **kw: locality.TiledConv2d(2, 2, (2, 3), tile_size=(2, 3), **kw),
    ("tiled", 3): lambda **kw: locality.TiledConv3d(2, 2, 2, tile_size=2, **kw),
}


def test_gradcheck_and_gradgradcheck(kind):
    layer = GRAD_KINDS[kind](padding=1, groups=2, dtype=torch.float64)
    size = {1: (5,), 2: (3, 4), 3: (2, 3, 2)}[kind[1]]
    x = torch.randn(2, 2, *size, dtype=torch.float64, requires_grad=True)
    params = (layer.weight, layer.bias)

    def f(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, *params))
    # Fast mode compares random projections of the second derivatives: a wrong one still fails.
    assert torch.autograd.gradgradcheck(f, (x, *params), fast_mode=True)


def test_batch_size_zero(kind):
    layer = KINDS[kind](padding=1)
    x = torch.randn(0, 4, *INPUT[kind[1]], requires_grad=True)
    out = layer(x)
    assert out.shape[0] == 0 and out.shape[1] == 6
    out.sum().backward()
    assert x.grad.shape == x.shape and layer.weight.grad.abs().sum() == 0


def test_unbatched_input_equals_batch_of_one(kind):
    layer = KINDS[kind](dtype=torch.float64)
    x = _input(kind[1], batch=1)
    torch.testing.assert_close(layer(x[0]), layer(x)[0], rtol=0, atol=0)


def test_non_contiguous_and_channels_last_inputs(kind):
    d = kind[1]
    layer = KINDS[kind](padding=1, dtype=torch.float64)
    x = _input(d, batch=3)
    expected = layer(x)
    # The permute trick: the same values, batch and channel axes stored in another order.
    permuted = x.permute(1, 0, *range(2, d + 2)).contiguous().permute(1, 0, *range(2, d + 2))
    assert not permuted.is_contiguous()
    torch.testing.assert_close(layer(permuted), expected, rtol=0, atol=1e-12)
    strided = torch.randn(3, 8, *(2 * n for n in INPUT[d]), dtype=torch.float64)
    strided = strided[:, ::2][(..., *(slice(None, None, 2),) * d)]
    torch.testing.assert_close(layer(strided), layer(strided.contiguous()), rtol=0, atol=1e-12)
    if d in (2, 3):
        fmt = torch.channels_last if d == 2 else torch.channels_last_3d
        torch.testing.assert_close(layer(x.to(memory_format=fmt)), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_dtypes_match_float64(kind, dtype):
    reference = KINDS[kind](padding=1, dtype=torch.float64)
    layer = copy.deepcopy(reference).to(dtype)
    x = _input(kind[1])
    out = layer(x.to(dtype))
    assert out.dtype == dtype
    tol = {torch.float32: 1e-5, torch.bfloat16: 5e-2, torch.float16: 5e-3}[dtype]
    torch.testing.assert_close(out.double(), reference(x), rtol=tol, atol=tol)


def test_meta_construction_then_to_empty(kind):
    layer = KINDS[kind](device="meta")
    assert layer.weight.is_meta
    layer.to_empty(device="cpu")
    layer.reset_parameters()
    assert torch.isfinite(layer(_input(kind[1], dtype=torch.float32))).all()


def test_a_hundred_million_parameter_layer_builds_on_meta():
    layer = locality.LocallyConnected2d(64, 64, 3, input_size=(56, 56), device="meta")
    assert sum(p.numel() for p in layer.parameters()) > 10**8
    assert layer.weight.device.type == "meta"


def test_state_dict_deepcopy_and_pickle_round_trips(kind):
    layer = KINDS[kind](padding=1, padding_mode="circular", dtype=torch.float64)
    x = _input(kind[1])
    expected = layer(x)
    clone = KINDS[kind](padding=1, padding_mode="circular", dtype=torch.float64)
    clone.load_state_dict(layer.state_dict())
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    loaded = KINDS[kind](padding=1, padding_mode="circular", dtype=torch.float64)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    for other in (clone, loaded, copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        torch.testing.assert_close(other(x), expected, rtol=0, atol=0)
        assert repr(other) == repr(layer)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_initialisation_matches_conv_in_distribution(d):
    """Same U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as Conv*d, fan_in computed from the arguments."""
    torch.manual_seed(0)
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[d - 1](12, 9, 3, groups=3)
    layer = (locality.LocallyConnected1d, locality.LocallyConnected2d, locality.LocallyConnected3d)[
        d - 1
    ](12, 9, 3, input_size=(40 if d == 1 else 10 if d == 2 else 5), groups=3)
    bound = 1 / math.sqrt(12 // 3 * 3**d)
    for ours, theirs in ((layer.weight, conv.weight), (layer.bias, conv.bias)):
        assert ours.abs().max() <= bound
        assert ours.abs().max() > 0.95 * bound  # thousands of draws reach the bound
        assert theirs.abs().max() <= bound * (1 + 1e-6)
        # Uniform(-b, b) has standard deviation b / sqrt(3).
        assert ours.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert ours.mean().item() == pytest.approx(0, abs=0.05 * bound)
    tiled = locality.TiledConv2d(12, 9, 3, tile_size=4, groups=3)
    assert tiled.weight.abs().max() <= 1 / math.sqrt(12 // 3 * 9)


@pytest.mark.parametrize("shared_bias", [False, True])
def test_parameter_counts_equal_the_closed_forms(shared_bias):
    c, o, k, g = 6, 4, (3, 2), 2
    local = locality.LocallyConnected2d(
        c, o, k, input_size=(9, 7), stride=(2, 1), groups=g, shared_bias=shared_bias
    )
    positions = math.prod(local.output_size)
    assert local.output_size == ((9 - 3) // 2 + 1, 7 - 2 + 1)
    kernel = o * (c // g) * math.prod(k)
    bias = o if shared_bias else positions * o
    assert sum(p.numel() for p in local.parameters()) == positions * kernel + bias
    tiled = locality.TiledConv2d(c, o, k, tile_size=(2, 3), groups=g, shared_bias=shared_bias)
    bias = o if shared_bias else 6 * o
    assert sum(p.numel() for p in tiled.parameters()) == 6 * kernel + bias
    assert locality.TiledConv2d(c, o, k, tile_size=(2, 3), bias=False).bias is None


def test_locally_connected_bias_is_untied_per_position():
    layer = locality.LocallyConnected1d(2, 3, 3, input_size=6, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.zero_()
    out = layer(torch.randn(4, 2, 6, dtype=torch.float64))
    torch.testing.assert_close(out, layer.bias.T.expand(4, 3, 4), rtol=0, atol=0)


def test_tiled_layer_accepts_any_input_size():
    layer = locality.TiledConv2d(3, 5, 3, tile_size=(2, 3), padding="same")
    for size in [(3, 3), (8, 11), (17, 4)]:
        assert layer(torch.randn(2, 3, *size)).shape == (2, 5, *size)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_same_padding_keeps_the_size_and_pads_extra_after(d):
    """As torch.nn.Conv*d: an even kernel's extra padding element goes after (right/bottom)."""
    x = torch.randn(2, 3, *(5,) * d, dtype=torch.float64)
    tiled = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}[d]
    layer = tiled(3, 4, 4, tile_size=1, padding="same", dilation=1, dtype=torch.float64)
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    expected = conv(x, layer.weight.reshape(4, 3, *(4,) * d), layer.bias.reshape(4), padding="same")
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_lazy_layers_infer_channels_and_input_size(d):
    lazy = (
        locality.LazyLocallyConnected1d,
        locality.LazyLocallyConnected2d,
        locality.LazyLocallyConnected3d,
    )[d - 1](6, 3, padding=1)
    x = torch.randn(2, 5, *(4,) * d)
    out = lazy(x)
    target = (
        locality.LocallyConnected1d,
        locality.LocallyConnected2d,
        locality.LocallyConnected3d,
    )[d - 1]
    assert type(lazy) is target
    assert lazy.in_channels == 5 and lazy.input_size == (4,) * d and out.shape == (2, 6, *(4,) * d)
    assert lazy.weight.shape == (*(4,) * d, 6, 5, *(3,) * d)
    assert lazy.weight.abs().max() <= 1 / math.sqrt(5 * 3**d)
    tiled = (locality.LazyTiledConv1d, locality.LazyTiledConv2d, locality.LazyTiledConv3d)[d - 1](
        6, 3, 2
    )
    tiled(x)
    assert tiled.in_channels == 5 and tiled.weight.shape == (*(2,) * d, 6, 5, *(3,) * d)


def test_extra_repr_shows_only_what_differs_from_defaults():
    assert repr(locality.LocallyConnected2d(3, 8, 3, input_size=10)) == (
        "LocallyConnected2d(3, 8, kernel_size=(3, 3), input_size=(10, 10))"
    )
    assert repr(
        locality.TiledConv1d(4, 4, 3, 2, stride=2, padding="valid", groups=2, bias=False)
    ) == (
        "TiledConv1d(4, 4, kernel_size=(3,), tile_size=(2,), stride=(2,), padding='valid', "
        "groups=2, bias=False)"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(kind):
    layer = KINDS[kind](padding=1, dtype=torch.float64)
    x = _input(kind[1])
    torch.testing.assert_close(copy.deepcopy(layer).cuda()(x.cuda()).cpu(), layer(x))
