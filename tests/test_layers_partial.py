"""Partial convolution layers against the paper's formula, written here as float64 loops."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import locality

PARTIAL = {1: locality.PartialConv1d, 2: locality.PartialConv2d, 3: locality.PartialConv3d}
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TILED = {
    1: locality.PartialTiledConv1d,
    2: locality.PartialTiledConv2d,
    3: locality.PartialTiledConv3d,
}
LOCAL = {
    1: locality.PartialLocallyConnected1d,
    2: locality.PartialLocallyConnected2d,
    3: locality.PartialLocallyConnected3d,
}
REGION = {
    1: locality.PartialRegionConv1d,
    2: locality.PartialRegionConv2d,
    3: locality.PartialRegionConv3d,
}


def paper_partial_conv(x, mask, weight_at, bias_at, kernel, stride, padding, dilation, groups):
    """Liu et al. (2018), eq. 1-2, one output value at a time in float64.

    ``x``: (N, C, *S); ``mask``: (N or 1, 1 or C, *S); ``weight_at(p)`` the (O, C/g, *k) kernel and
    ``bias_at(p)`` the (O,) bias (or None) at output position ``p``; ``padding`` an int or a
    (before, after) pair per dimension. Zero padding pads the mask with holes. Returns the output
    and the one-channel updated mask.
    """
    x = np.asarray(x, dtype=np.float64)
    mask = np.broadcast_to(np.asarray(mask, dtype=np.float64), (x.shape[0], *mask.shape[1:]))
    d = x.ndim - 2
    pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
    pad = [(0, 0), (0, 0)] + pairs
    xp, mp = np.pad(x, pad), np.pad(mask, pad)
    spatial = x.shape[2:]
    out_size = [
        (n + lo + hi - dl * (k - 1) - 1) // s + 1
        for n, (lo, hi), dl, k, s in zip(spatial, pairs, dilation, kernel, stride, strict=True)
    ]
    n_batch, channels = x.shape[:2]
    out_channels = weight_at((0,) * d).shape[0]
    per_group, out_per_group = channels // groups, out_channels // groups
    window_volume = mask.shape[1] * math.prod(kernel)
    out = np.zeros((n_batch, out_channels, *out_size))
    new_mask = np.zeros((n_batch, 1, *out_size))
    for n in range(n_batch):
        for p in itertools.product(*(range(s) for s in out_size)):
            window = tuple(
                slice(pi * s, pi * s + dl * (k - 1) + 1, dl)
                for pi, s, dl, k in zip(p, stride, dilation, kernel, strict=True)
            )
            m = mp[(n, slice(None), *window)]
            total = m.sum()
            if total == 0:
                continue
            new_mask[(n, 0, *p)] = 1
            weight, bias = weight_at(p), bias_at(p)
            for o in range(out_channels):
                g = o // out_per_group
                group = slice(g * per_group, (g + 1) * per_group)
                xm = xp[(n, group, *window)] * (m if m.shape[0] == 1 else m[group])
                value = (weight[o] * xm).sum() * window_volume / total
                out[(n, o, *p)] = value + (0.0 if bias is None else bias[o])
    return out, new_mask


def _geometry(d, seed):
    rng = np.random.default_rng(seed)
    kernel = tuple(int(k) for k in rng.integers(1, 4, d))
    stride = tuple(int(s) for s in rng.integers(1, 3, d))
    dilation = tuple(int(s) for s in rng.integers(1, 3, d))
    padding = tuple(int(rng.integers(0, k + 1)) for k in kernel)
    size = tuple(int(s) for s in rng.integers(5, 9 if d < 3 else 7, d))
    return kernel, stride, padding, dilation, size


def _mask(shape, seed, hole_fraction=0.5):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) > hole_fraction).double()


VARIANTS = ((False, True, 1), (True, False, 1), (True, True, 1), (False, True, 2))
CASES = [(d, *variant, seed) for d in (1, 2, 3) for variant in VARIANTS for seed in (0, 1)]


@pytest.mark.parametrize(("d", "multi_channel", "bias", "groups", "seed"), CASES)
def test_partial_conv_matches_the_paper(d, multi_channel, bias, groups, seed):
    kernel, stride, padding, dilation, size = _geometry(d, seed + 10 * d)
    torch.manual_seed(seed)
    layer = PARTIAL[d](
        4,
        6,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        multi_channel=multi_channel,
        return_mask=True,
    ).double()
    x = torch.randn(3, 4, *size, dtype=torch.float64)
    mask = _mask((3, 4 if multi_channel else 1, *size), seed)
    out, new_mask = layer(x, mask)
    w = layer.weight.detach().numpy()
    b = None if layer.bias is None else layer.bias.detach().numpy()
    expected, expected_mask = paper_partial_conv(
        x, mask, lambda p: w, lambda p: b, kernel, stride, padding, dilation, groups
    )
    torch.testing.assert_close(out, torch.from_numpy(expected), rtol=1e-10, atol=1e-10)
    assert new_mask.shape[1] == (6 if multi_channel else 1)
    torch.testing.assert_close(
        new_mask, torch.from_numpy(expected_mask).expand_as(new_mask), rtol=0, atol=0
    )


@pytest.mark.parametrize("multi_channel", [False, True])
def test_same_padding_with_an_even_kernel_pads_the_mask_unevenly(multi_channel):
    torch.manual_seed(0)
    layer = locality.PartialConv2d(
        3, 2, (4, 3), padding="same", multi_channel=multi_channel, return_mask=True
    ).double()
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    mask = _mask((2, 3 if multi_channel else 1, 6, 7), 5)
    out, new_mask = layer(x, mask)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    expected, expected_mask = paper_partial_conv(
        x, mask, lambda p: w, lambda p: b, (4, 3), (1, 1), ((1, 2), (1, 1)), (1, 1), 1
    )
    torch.testing.assert_close(out, torch.from_numpy(expected), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(new_mask[:, :1], torch.from_numpy(expected_mask), rtol=0, atol=0)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("kind", ["tiled", "local", "region"])
def test_partial_mechanism_on_other_kinds_matches_the_paper(d, kind):
    kernel, stride, padding, dilation, size = _geometry(d, 40 + d)
    torch.manual_seed(d)
    if kind == "tiled":
        tile = (2,) * d
        layer = TILED[d](3, 5, kernel, tile_size=tile, stride=stride, padding=padding,
                         dilation=dilation, return_mask=True).double()  # fmt: skip
    elif kind == "local":
        layer = LOCAL[d](3, 5, kernel, input_size=size, stride=stride, padding=padding,
                         dilation=dilation, return_mask=True).double()  # fmt: skip
    else:
        layer = REGION[d](3, 5, kernel, input_size=size, regions=2, stride=stride,
                          padding=padding, dilation=dilation,
                          return_mask=True).double()  # fmt: skip
    grid = layer.weight.shape[:d]
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    # region j of an output axis of n positions: numpy.array_split's blocks, written out here
    out_size = layer.output_size if kind == "region" else None

    def at(p):
        if kind != "region":
            return tuple(pi % g for pi, g in zip(p, grid, strict=True))
        blocks = [np.array_split(np.arange(n), g) for n, g in zip(out_size, grid, strict=True)]
        return tuple(
            next(j for j, block in enumerate(axis) if pi in block)
            for pi, axis in zip(p, blocks, strict=True)
        )

    x = torch.randn(2, 3, *size, dtype=torch.float64)
    mask = _mask((2, 1, *size), 7 + d)
    out, new_mask = layer(x, mask)
    expected, expected_mask = paper_partial_conv(
        x, mask, lambda p: w[at(p)], lambda p: b[at(p)], kernel, stride, padding, dilation, 1
    )
    torch.testing.assert_close(out, torch.from_numpy(expected), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(new_mask, torch.from_numpy(expected_mask), rtol=0, atol=0)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("multi_channel", [False, True])
def test_all_ones_mask_equals_conv_in_the_interior(d, multi_channel):
    torch.manual_seed(d)
    layer = PARTIAL[d](3, 4, 3, padding=1, multi_channel=multi_channel).double()
    conv = CONV[d](3, 4, 3, padding=1).double()
    conv.load_state_dict(layer.state_dict(), strict=True)
    x = torch.randn(2, 3, *(6,) * d, dtype=torch.float64)
    ones = torch.ones(1, 3 if multi_channel else 1, *(6,) * d, dtype=torch.float64)
    interior = (slice(None), slice(None)) + (slice(1, -1),) * d
    expected = conv(x)
    for out in (layer(x, ones), layer(x)):
        torch.testing.assert_close(out[interior], expected[interior])
        assert not torch.allclose(out, expected)  # the border is renormalised
    unpadded = PARTIAL[d](3, 4, 3, multi_channel=multi_channel).double()
    conv = CONV[d](3, 4, 3).double()
    conv.load_state_dict(unpadded.state_dict(), strict=True)
    torch.testing.assert_close(unpadded(x, ones), conv(x))


def test_gradcheck_input_weight_bias():
    torch.manual_seed(0)
    layer = locality.PartialConv2d(2, 3, 3, stride=2, padding=1, multi_channel=True).double()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    mask = _mask((2, 2, 5, 6), 3)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()

    def f(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x, mask))

    assert torch.autograd.gradcheck(f, (x, weight, bias))
    tiled = locality.PartialTiledConv1d(2, 3, 3, tile_size=2, padding=1).double()
    xs = torch.randn(2, 2, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: tiled(v, _mask((1, 1, 7), 4)), (xs,))


def test_mask_then_no_mask_equals_a_fresh_no_mask_call():
    torch.manual_seed(0)
    layer = locality.PartialConv2d(3, 4, 3, padding=1, return_mask=True)
    fresh = locality.PartialConv2d(3, 4, 3, padding=1, return_mask=True)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 8, 8)
    layer(x, (torch.rand(2, 1, 8, 8) > 0.5).float())
    out, mask = layer(x)
    expected, expected_mask = fresh(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(mask, expected_mask.expand_as(mask))
    assert bool((mask == 1).all())


def test_batch_one_mask_broadcasts_and_unbatched_input_works():
    torch.manual_seed(0)
    layer = locality.PartialConv2d(3, 4, 3, padding=1, return_mask=True)
    x = torch.randn(3, 3, 7, 7)
    mask = (torch.rand(1, 1, 7, 7) > 0.4).float()
    out, new_mask = layer(x, mask)
    repeated, repeated_mask = layer(x, mask.expand(3, 1, 7, 7).clone())
    torch.testing.assert_close(out, repeated, rtol=0, atol=0)
    assert new_mask.shape == (3, 1, 7, 7)  # an expanded view of one mask
    torch.testing.assert_close(new_mask, repeated_mask, rtol=0, atol=0)
    single, single_mask = layer(x[1], mask[0])
    torch.testing.assert_close(single, out[1], rtol=1e-6, atol=1e-6)
    assert single_mask.shape == (1, 7, 7)


def test_mask_takes_no_gradient_and_holes_take_none_from_the_output():
    layer = locality.PartialConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    mask = (torch.rand(1, 1, 6, 6) > 0.5).float().requires_grad_()
    out = layer(x, mask)
    grad_x, grad_mask = torch.autograd.grad(out.sum(), (x, mask), allow_unused=True)
    assert grad_mask is None
    assert bool((grad_x[mask.detach().expand_as(x) == 0] == 0).all())


def test_holes_everywhere_give_zero_output_and_mask():
    layer = locality.PartialConv2d(2, 3, 3, padding=1, return_mask=True)
    out, mask = layer(torch.randn(2, 2, 5, 5), torch.zeros(2, 1, 5, 5))
    assert bool((out == 0).all()) and bool((mask == 0).all())


def test_state_dict_is_exactly_a_conv_state_dict():
    for d in (1, 2, 3):
        layer = PARTIAL[d](3, 4, 3, multi_channel=True)
        assert set(layer.state_dict()) == {"weight", "bias"}
        conv = CONV[d](3, 4, 3)
        conv.load_state_dict(layer.state_dict(), strict=True)
        layer.load_state_dict(CONV[d](3, 4, 3).state_dict(), strict=True)
    assert set(PARTIAL[2](3, 4, 3, bias=False).state_dict()) == {"weight"}


@pytest.mark.parametrize(
    ("mask", "multi_channel", "message"),
    [
        (torch.full((2, 1, 5, 5), 0.5), False, "binary"),
        (torch.ones(2, 3, 5, 5), False, "1 channel"),
        (torch.ones(2, 1, 5, 5), True, "3 channel"),
        (torch.ones(3, 1, 5, 5), False, "batch must be 1 or"),
        (torch.ones(2, 1, 4, 5), False, "spatial size"),
        (torch.ones(1, 5, 5), False, "dims"),
    ],
)
def test_bad_masks_are_refused_clearly(mask, multi_channel, message):
    layer = locality.PartialConv2d(3, 4, 3, multi_channel=multi_channel)
    with pytest.raises(ValueError, match=message) as info:
        layer(torch.randn(2, 3, 5, 5), mask)
    assert str(info.value).startswith("PartialConv2d: ")
    assert "\n" not in str(info.value)


def test_undefined_combinations_are_refused():
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        locality.PartialConv2d(3, 4, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="multi_channel=True needs groups=1"):
        locality.PartialConv2d(4, 4, 3, groups=2, multi_channel=True)
    with pytest.raises(TypeError, match="return_mask must be a bool"):
        locality.PartialConv2d(4, 4, 3, return_mask=1)


def test_signature_and_repr_name_the_partial_arguments():
    import inspect

    parameters = inspect.signature(locality.PartialConv2d).parameters
    assert list(parameters)[:3] == ["in_channels", "out_channels", "kernel_size"]
    assert parameters["multi_channel"].default is False
    assert parameters["return_mask"].default is False
    text = repr(locality.PartialConv2d(3, 4, 3, multi_channel=True))
    assert "multi_channel=True" in text and "return_mask" not in text


def test_rounded_counts_survive_a_large_window():
    # 7x7x64 windows: counts up to 3136, exact after rounding, so the ratio is exactly 1 inside.
    layer = locality.PartialConv2d(64, 2, 7, bias=False, multi_channel=True)
    x = torch.randn(1, 64, 9, 9)
    torch.testing.assert_close(layer(x, torch.ones(1, 64, 9, 9)), F.conv2d(x, layer.weight))
