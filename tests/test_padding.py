"""Padding as the peers have it: (before, after) pairs, and TF/JAX "SAME" at any stride."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import locality
from locality import functional as LF

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _flat(pairs):
    """F.pad's argument: last dimension first."""
    return [amount for pair in reversed(pairs) for amount in pair]


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pairs_equal_f_pad_then_convolution(d, mode):
    pairs = [((1, 2),), ((0, 2), (1, 0)), ((2, 1), (0, 0), (1, 1))][d - 1]
    mixed = [((1, 2),), (1, (0, 2)), ((2, 1), 0, 1)][d - 1]
    x = torch.randn(2, 4, *(5,) * d, dtype=torch.float64)
    kernel = torch.randn(6, 2, *(3,) * d, dtype=torch.float64)
    expected_pairs = [p if isinstance(p, tuple) else (p, p) for p in mixed]
    for padding, used in ((pairs, pairs), (mixed, expected_pairs)):
        padded = F.pad(x, _flat(used), mode="constant" if mode == "zeros" else mode)
        expected = CONV[d](padded, kernel, stride=2, groups=2)
        bank = kernel.expand(*(1,) * d, *kernel.shape)
        got = LF.tiled_conv(x, bank, stride=2, padding=padding, groups=2, padding_mode=mode)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
        layer = (
            locality.TiledConv2d
            if d == 2
            else {1: locality.TiledConv1d, 3: locality.TiledConv3d}[d]
        )
        tiled = layer(
            4,
            6,
            3,
            tile_size=1,
            stride=2,
            padding=padding,
            groups=2,
            bias=False,
            padding_mode=mode,
            dtype=torch.float64,
        )
        with torch.no_grad():
            tiled.weight.copy_(bank)
        torch.testing.assert_close(tiled(x), expected, rtol=0, atol=1e-12)


def test_layer_keeps_pairs_and_symmetric_pairs_as_ints():
    layer = locality.LocallyConnected2d(2, 3, 3, input_size=6, padding=(1, (0, 2)))
    assert layer.padding == ((1, 1), (0, 2))
    assert "padding=((1, 1), (0, 2))" in repr(layer)
    assert layer.output_size == (6, 6)
    assert locality.LocallyConnected1d(2, 3, 3, input_size=6, padding=((1, 1),)).padding == (1,)


@pytest.mark.parametrize(
    "padding, message",
    [
        (((1, 2, 3),), "pair must be an int or a tuple of 2 ints"),
        (((1, -1),), "pair must be non-negative"),
        (((1, 2), (0, 1)), "padding must hold 1 entries"),
        (((1.5, 2),), "must contain ints, got float"),
    ],
)
def test_bad_pairs_are_refused_naming_the_layer(padding, message):
    with pytest.raises((ValueError, TypeError), match=message) as error:
        locality.TiledConv1d(2, 3, 3, tile_size=2, padding=padding)
    assert str(error.value).startswith("TiledConv1d: ")


@pytest.mark.parametrize(
    "n, k, s, dl", list(itertools.product([1, 4, 7, 8], [1, 2, 3, 4], [1, 2, 3], [1, 2]))
)
def test_same_padding_is_the_tf_jax_convention(n, k, s, dl):
    """ceil(n / s) outputs, the least total padding that gives them, the smaller half before."""
    ((before, after),) = locality.same_padding((n,), k, s, dl)
    extent = dl * (k - 1) + 1
    out = (n + before + after - extent) // s + 1 if n + before + after >= extent else 0
    assert out == math.ceil(n / s)
    total = before + after
    assert total == 0 or (n + total - 1 - extent) // s + 1 < out  # one less would lose an output
    assert after - before in (0, 1)


def test_same_padding_broadcasts_and_runs_in_a_layer():
    pads = locality.same_padding((7, 8), kernel_size=4, stride=2)
    assert len(pads) == 2
    layer = locality.LocallyConnected2d(1, 2, 4, input_size=(7, 8), stride=2, padding=pads)
    assert layer.output_size == (4, 4)
    with pytest.raises(TypeError, match="same_padding: kernel_size must contain ints"):
        locality.same_padding((7, 8), kernel_size=(4, "3"))


def test_same_string_at_stride_two_points_to_the_helper():
    with pytest.raises(ValueError, match="locality.same_padding"):
        locality.TiledConv1d(2, 3, 3, tile_size=2, stride=2, padding="same")
