"""Every layer equals its explicit dense matrix, and the lattice's special cases coincide."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import locality
from locality import functional as LF
from locality.kernels import dispatch, tiled
from tests.dense_reference import apply_dense

LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _pads(padding, kernel, dilation):
    if padding == "same":
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    return tuple((p, p) for p in padding)


def _configs(count: int) -> list[dict]:
    """Small random configurations covering every argument, drawn once per test session."""
    rng = random.Random(20261123)
    configs = []
    modes = ["zeros", "reflect", "replicate", "circular"]
    for i in range(count):
        d = (1, 2, 3, 1, 2)[i % 5]
        kind = ("local", "tiled")[i % 2]
        groups = rng.choice([1, 2])
        kernel = tuple(rng.choice([1, 2, 3]) for _ in range(d))
        dilation = tuple(rng.choice([1, 1, 2]) for _ in range(d))
        padding_choice = rng.choice(["int", "int", "same", "valid"])
        stride = tuple(rng.choice([1, 2]) for _ in range(d))
        if padding_choice == "same":
            stride = (1,) * d
            padding = "same"
        elif padding_choice == "valid":
            padding = "valid"
        else:
            padding = tuple(rng.choice([0, 1, 2]) for _ in range(d))
        size = tuple(rng.choice([4, 5, 6]) if d < 3 else rng.choice([3, 4]) for _ in range(d))
        configs.append(
            dict(
                d=d,
                kind=kind,
                in_channels=2 * groups,
                out_channels=2 * groups,
                kernel=kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                padding_mode=modes[i % 4],
                size=size,
                tile=tuple(rng.choice([1, 2, 3]) for _ in range(d)),
                bias=rng.choice(["untied", "shared", None]),
            )
        )
    return configs


def _build(cfg: dict) -> torch.nn.Module:
    cls = (LOCAL if cfg["kind"] == "local" else TILED)[cfg["d"]]
    fifth = dict(input_size=cfg["size"]) if cfg["kind"] == "local" else dict(tile_size=cfg["tile"])
    return cls(
        cfg["in_channels"],
        cfg["out_channels"],
        cfg["kernel"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        bias=cfg["bias"] is not None,
        shared_bias=cfg["bias"] == "shared",
        padding_mode=cfg["padding_mode"],
        dtype=torch.float64,
        **fifth,
    )


def _fits(cfg: dict) -> bool:
    pads = _pads(cfg["padding"], cfg["kernel"], cfg["dilation"])
    for n, (lo, hi), k, dl in zip(cfg["size"], pads, cfg["kernel"], cfg["dilation"], strict=True):
        if dl * (k - 1) + 1 > n + lo + hi:
            return False
        if cfg["padding_mode"] == "reflect" and max(lo, hi) >= n:
            return False
        if cfg["padding_mode"] == "circular" and max(lo, hi) > n:
            return False
    return True


CONFIGS = [c for c in _configs(60) if _fits(c)]


@pytest.fixture(params=sorted(tiled.FORMULATIONS))
def tiled_formulation(request, monkeypatch):
    """Force each formulation dispatch can choose for tiled layers (it picks by tile size)."""
    monkeypatch.setattr(dispatch, "tiled_path", lambda *tensors: request.param)
    return request.param


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['kind']}{c['d']}d-{c['padding_mode']}")
def test_layer_equals_its_dense_matrix(cfg, tiled_formulation):
    layer = _build(cfg)
    with torch.no_grad():  # nonzero everywhere, so a misplaced weight cannot hide
        layer.weight.normal_()
        if layer.bias is not None:
            layer.bias.normal_()
    x = torch.randn(3, cfg["in_channels"], *cfg["size"], dtype=torch.float64)
    expected = apply_dense(
        x.numpy(),
        layer.weight.detach().numpy(),
        None if layer.bias is None else layer.bias.detach().numpy(),
        cfg["stride"],
        _pads(cfg["padding"], cfg["kernel"], cfg["dilation"]),
        cfg["dilation"],
        cfg["groups"],
        cfg["padding_mode"],
    )
    out = layer(x)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-12)


def test_configurations_cover_every_argument():
    seen = {(c["kind"], c["d"], c["padding_mode"]) for c in CONFIGS}
    assert len(CONFIGS) >= 40
    assert {c["d"] for c in CONFIGS} == {1, 2, 3}
    assert {c["padding_mode"] for c in CONFIGS} == {"zeros", "reflect", "replicate", "circular"}
    assert {c["groups"] for c in CONFIGS} == {1, 2}
    assert any(c["padding"] == "same" for c in CONFIGS)
    assert any(max(c["stride"]) > 1 for c in CONFIGS) and any(
        max(c["dilation"]) > 1 for c in CONFIGS
    )
    assert len(seen) >= 12


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tile_size_one_is_a_convolution(d):
    x = torch.randn(2, 4, *(7,) * d, dtype=torch.float64)
    layer = TILED[d](
        4, 6, 3, tile_size=1, stride=2, padding=1, dilation=1, groups=2, dtype=torch.float64
    )
    kernel, bias = layer.weight.reshape(6, 2, *(3,) * d), layer.bias.reshape(6)
    expected = CONV[d](x, kernel, bias, stride=2, padding=1, groups=2)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_locally_connected_with_equal_kernels_is_a_convolution(d):
    x = torch.randn(2, 3, *(6,) * d, dtype=torch.float64)
    kernel = torch.randn(5, 3, *(3,) * d, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    out_size = (4,) * d  # (6 + 2 - 2*2 - 1) // 1 + 1 with dilation 2, padding 1
    weight = kernel.expand(*out_size, *kernel.shape).contiguous()
    got = LF.locally_connected(x, weight, bias, padding=1, dilation=2)
    torch.testing.assert_close(
        got, CONV[d](x, kernel, bias, padding=1, dilation=2), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tile_as_large_as_the_output_is_locally_connected(d):
    x = torch.randn(2, 2, *(5,) * d, dtype=torch.float64)
    local = LOCAL[d](2, 4, 2, input_size=5, stride=2, padding=1, dtype=torch.float64)
    out_size = local.output_size
    tiled = TILED[d](2, 4, 2, tile_size=out_size, stride=2, padding=1, dtype=torch.float64)
    tiled.load_state_dict(local.state_dict())
    torch.testing.assert_close(tiled(x), local(x), rtol=0, atol=1e-12)


def test_tiled_output_uses_kernel_i_mod_t():
    """Output position i equals a convolution with kernel i mod t, at that position."""
    x = torch.randn(1, 3, 11, 9, dtype=torch.float64)
    layer = locality.TiledConv2d(
        3, 4, (3, 2), tile_size=(3, 2), padding=(1, 0), dtype=torch.float64
    )
    out = layer(x)
    for r in range(3):
        for c in range(2):
            full = F.conv2d(x, layer.weight[r, c], layer.bias[r, c], padding=(1, 0))
            torch.testing.assert_close(
                out[..., r::3, c::2], full[..., r::3, c::2], rtol=0, atol=1e-12
            )


@pytest.mark.parametrize("d", [1, 2, 3])
def test_functional_fixed_rank_matches_n_d(d):
    x = torch.randn(2, 2, *(5,) * d, dtype=torch.float64)
    w = torch.randn(*(2,) * d, 3, 2, *(2,) * d, dtype=torch.float64)
    fixed = getattr(LF, f"tiled_conv{d}d")
    torch.testing.assert_close(fixed(x, w, stride=1), LF.tiled_conv(x, w), rtol=0, atol=0)
    with pytest.raises(ValueError, match=f"tiled_conv{d % 3 + 1}d: weight must have"):
        getattr(LF, f"tiled_conv{d % 3 + 1}d")(x, w)
