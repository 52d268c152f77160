"""The connectivity object agrees with what every layer computes, by autograd in float64.

For every kind and for ``nn.Conv*d`` / ``nn.Linear``: output position ``p`` depends on the input
window at ``p`` through exactly ``kernels()[p]`` (the Jacobian, taken by autograd, is rebuilt
tap by tap from the kernels and the geometry written out here), ``kernels() = mixing @ bank``,
and ``kernel_index`` names the bank entry of every position. A new kind joins by adding a factory
to ``LAYERS``.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
from torch import nn

import locality
from locality import Connectivity
from locality.connectivity import KINDS, bank_of, kernels_of

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}
LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}


def _geometry(rng: random.Random, d: int) -> dict:
    groups = rng.choice([1, 2])
    return dict(
        in_channels=2 * groups,
        out_channels=groups * rng.choice([1, 2]),
        kernel_size=tuple(rng.choice([1, 2, 3]) for _ in range(d)),
        stride=tuple(rng.choice([1, 2]) for _ in range(d)),
        padding=tuple(rng.choice([0, 1]) for _ in range(d)),
        dilation=tuple(rng.choice([1, 2] if d < 3 else [1]) for _ in range(d)),
        groups=groups,
        dtype=torch.float64,
    )


def _conv(rng: random.Random, d: int, size: tuple[int, ...]) -> nn.Module:
    return CONV[d](**_geometry(rng, d))


def _tiled(rng: random.Random, d: int, size: tuple[int, ...]) -> nn.Module:
    tile = tuple(rng.choice([1, 2, 3]) for _ in range(d))
    return TILED[d](tile_size=tile, shared_bias=rng.random() < 0.5, **_geometry(rng, d))


def _local(rng: random.Random, d: int, size: tuple[int, ...]) -> nn.Module:
    return LOCAL[d](input_size=size, shared_bias=rng.random() < 0.5, **_geometry(rng, d))


def _dense(rng: random.Random, d: int, size: tuple[int, ...]) -> nn.Module:
    return nn.Linear(3, 4, dtype=torch.float64)


# kind -> factory(rng, d, input_size); the tests below run over all of them.
LAYERS = {"conv": _conv, "tiled": _tiled, "locally_connected": _local, "dense": _dense}

CASES = [
    (kind, d, seed)
    for kind in LAYERS
    for d in ((1,) if kind == "dense" else (1, 2, 3))
    for seed in range(3)
]


def _build(kind: str, d: int, seed: int) -> tuple[nn.Module, torch.Tensor]:
    rng = random.Random(seed * 31 + d)
    torch.manual_seed(seed)
    size = tuple(rng.choice([5, 6]) if d < 3 else 4 for _ in range(d))
    layer = LAYERS[kind](rng, d, size)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    if kind == "dense":
        return layer, torch.randn(1, 3, dtype=torch.float64)
    return layer, torch.randn(1, layer.in_channels, *size, dtype=torch.float64)


def _jacobian_from_kernels(
    kernels: torch.Tensor, c: Connectivity, in_size: tuple[int, ...]
) -> torch.Tensor:
    """d out[o, p] / d in[c, q], tap by tap from the definition (zero padding)."""
    d = c.d
    out_size = tuple(kernels.shape[:d])
    cg, og = c.in_channels // c.groups, c.out_channels // c.groups
    expected = torch.zeros(c.out_channels, *out_size, c.in_channels, *in_size, dtype=kernels.dtype)
    for p in itertools.product(*(range(n) for n in out_size)):
        for tap in itertools.product(*(range(k) for k in c.kernel_size)):
            q = tuple(
                pi * s - lo + t * r
                for pi, s, (lo, _), t, r in zip(
                    p, c.stride, c.padding, tap, c.dilation, strict=True
                )
            )
            if not all(0 <= qi < n for qi, n in zip(q, in_size, strict=True)):
                continue
            for o in range(c.out_channels):
                g = o // og
                for ci in range(cg):
                    expected[(o, *p, g * cg + ci, *q)] += kernels[(*p, o, ci, *tap)]
    return expected


def _periodic_index(out_size: tuple[int, ...], bank: tuple[int, ...]) -> torch.Tensor:
    """Position i uses ravel(i mod bank), written with a loop."""
    index = torch.zeros(out_size, dtype=torch.int64)
    for p in itertools.product(*(range(n) for n in out_size)):
        flat = 0
        for pi, b in zip(p, bank, strict=True):
            flat = flat * b + pi % b
        index[p] = flat
    return index


@pytest.mark.parametrize(("kind", "d", "seed"), CASES)
def test_kernels_are_the_jacobian(kind, d, seed):
    layer, x = _build(kind, d, seed)
    c = Connectivity.of(layer)
    assert c.kind == kind and c.kind in KINDS
    y = layer(x)
    out_size = tuple(y.shape[2:])
    kernels = kernels_of(layer, out_size)
    assert kernels.shape == (*out_size, c.out_channels, c.in_channels // c.groups, *c.kernel_size)
    # (1, O, *out, 1, C, *in) -> (O, *out, C, *in)
    jacobian = torch.autograd.functional.jacobian(layer, x)[0].select(1 + c.d, 0)
    in_size = tuple(x.shape[2:])
    torch.testing.assert_close(jacobian, _jacobian_from_kernels(kernels, c, in_size))
    assert c.output_size(in_size) == out_size


@pytest.mark.parametrize(("kind", "d", "seed"), CASES)
def test_kernel_index_and_mixing_pick_the_bank(kind, d, seed):
    layer, x = _build(kind, d, seed)
    c = Connectivity.of(layer)
    out_size = tuple(layer(x).shape[2:])
    bank = bank_of(layer)
    assert bank.shape[: len(c.bank_shape)] == c.bank_shape
    flat = bank.reshape(c.num_kernels, -1)
    kernels = kernels_of(layer, out_size).reshape(math.prod(out_size), -1)
    mixing = c.mixing(out_size)
    assert mixing.shape == (math.prod(out_size), c.num_kernels)
    torch.testing.assert_close(kernels, mixing.to(flat.dtype) @ flat)
    index = c.kernel_index(out_size)
    assert index.dtype == torch.int64 and index.shape == out_size
    assert int(index.min()) >= 0 and int(index.max()) < c.num_kernels
    torch.testing.assert_close(kernels, flat[index.reshape(-1)])
    if kind in ("conv", "tiled", "locally_connected", "dense"):
        assert torch.equal(index, _periodic_index(out_size, c.bank_shape))


@pytest.mark.parametrize(("kind", "d", "seed"), CASES)
def test_closed_form_counts_are_the_modules(kind, d, seed):
    layer, x = _build(kind, d, seed)
    c = Connectivity.of(layer)
    y = layer(x)
    assert c.parameters == sum(p.numel() for p in layer.parameters())
    assert c.weight_bytes(torch.float64) == 8 * c.parameters
    if c.d == 0:
        assert c.macs() == c.in_channels * c.out_channels
        return
    # MACs are a convolution's with the same output size: what FlopCounterMode counts for it
    out_size = tuple(y.shape[2:])
    conv = CONV[d](
        c.in_channels,
        c.out_channels,
        c.kernel_size,
        stride=c.stride,
        dilation=c.dilation,
        groups=c.groups,
        bias=False,
    )
    size = [(n - 1) * s + e for n, s, e in zip(out_size, c.stride, c.sliding.extent, strict=True)]
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        assert conv(torch.zeros(1, c.in_channels, *size)).shape[2:] == out_size
    assert c.macs(out_size) == counter.get_total_flops() // 2


def test_the_layer_and_the_object_agree():
    layer = locality.TiledConv2d(3, 8, 3, tile_size=(2, 3), stride=2, padding="valid")
    c = layer.connectivity
    assert Connectivity.of(layer) == c
    assert c.kind == "tiled" and c.bank_shape == (2, 3) and c.num_kernels == 6
    assert c.padding == ((0, 0), (0, 0)) and c.input_size is None
    with pytest.raises(ValueError, match="kernel_index: a 'tiled' connectivity works on any"):
        c.kernel_index()
    local = locality.LocallyConnected2d(2, 4, 3, input_size=(5, 7), padding=(1, 0))
    assert local.connectivity.padding == ((1, 1), (0, 0))
    assert local.connectivity.kernel_index().shape == local.output_size == (5, 5)
    assert local.kernels().data_ptr() == local.weight.data_ptr()  # a view, not a copy
    with pytest.raises(ValueError, match="fixed output size"):
        local.kernels((4, 4))
    conv = nn.Conv2d(2, 4, 3, padding="same", dilation=2)
    assert Connectivity.of(conv).padding == ((2, 2), (2, 2))
    assert kernels_of(conv, (6, 6)).stride()[:2] == (0, 0)  # one kernel, expanded


def test_of_refuses_other_modules_clearly():
    with pytest.raises(TypeError, match=r"Connectivity.of: .* got ConvTranspose2d"):
        Connectivity.of(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(ValueError, match="not initialised"):
        Connectivity.of(nn.LazyConv2d(4, 3))
    with pytest.raises(ValueError, match="known once the first input"):
        _ = locality.LazyTiledConv2d(4, 3, 2).connectivity
    with pytest.raises(ValueError, match="kind must be one of"):
        Connectivity("convolution", 1, 1, (1,), (1,), ((0, 0),), (1,), (1,))


def test_model_families_are_named_by_their_layers_kind():
    from locality.analysis import kind_of
    from locality.train.models import FAMILIES, build_model

    assert set(FAMILIES) <= set(KINDS)
    for family in FAMILIES:
        model = build_model(family, (1, 16), 3, tile_size=2 if family == "tiled" else None)
        first = model[0].linear if family == "dense" else model[0]
        assert kind_of(first) == family


def test_lazy_classes_have_real_signatures_and_say_what_is_unknown():
    import inspect

    lazy = locality.LazyLocallyConnected2d(4, 3)
    with pytest.raises(ValueError, match="LazyLocallyConnected2d: output_size is known once"):
        _ = lazy.output_size
    parameters = list(inspect.signature(locality.LazyTiledConv2d).parameters)
    assert parameters[:3] == ["out_channels", "kernel_size", "tile_size"]
    assert "in_channels" not in parameters
    assert locality.LazyTiledConv2d.__module__ == "locality.layers.lazy"
