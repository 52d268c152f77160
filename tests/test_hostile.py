"""Hostile inputs: random (often invalid) configurations and inputs for every public layer and op.

Each example either gives the right answer (compared in float64 with the explicit dense matrix of
tests/dense_reference.py, or with a convolution when all kernels are equal) or raises a
ValueError/TypeError whose message names the layer or op and the argument at fault. Never another
exception, a message from deep inside torch, or a silently wrong shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import locality
from locality import functional
from locality._memory import check_allocation, format_bytes
from locality.interop import keras as kio
from tests.dense_reference import apply_dense as _apply_dense

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

ARGUMENT_WORDS = (
    "in_channels",
    "out_channels",
    "kernel",
    "input_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "tile_size",
    "padding_mode",
    "input",
    "channels",
    "weight",
    "bias",
    "spatial size",
    "size",
)
MODES = ("zeros", "reflect", "replicate", "circular")
LOCAL = {
    1: locality.LocallyConnected1d,
    2: locality.LocallyConnected2d,
    3: locality.LocallyConnected3d,
}
TILED = {1: locality.TiledConv1d, 2: locality.TiledConv2d, 3: locality.TiledConv3d}


def assert_clear(error: Exception, *where: str) -> None:
    """The message says who complained (layer or op) and about which argument."""
    message = str(error)
    assert any(w in message for w in where), f"message does not name {where}: {message}"
    assert any(word in message for word in ARGUMENT_WORDS), f"message names no argument: {message}"


def pads_of(padding, kernel, stride, dilation):
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding == "same":
        return tuple(
            (dl * (k - 1) // 2, dl * (k - 1) - dl * (k - 1) // 2)
            for k, dl in zip(kernel, dilation, strict=True)
        )
    return tuple((p, p) for p in padding)


def apply_dense(x, *args):
    """The dense reference; an empty batch is handled as a batch of one, then emptied."""
    if x.shape[0] == 0:
        return _apply_dense(np.zeros((1, *x.shape[1:])), *args)[:0]
    return _apply_dense(x, *args)


def expand(value, d):
    return (value,) * d if isinstance(value, int) else tuple(value)


def int_or_tuple(d, lo, hi):
    return st.one_of(st.integers(lo, hi), st.tuples(*[st.integers(lo, hi)] * d))


BAD_VALUES = {
    "in_channels": [0, -1, 2.0, None, True],
    "out_channels": [0, -3, "4"],
    "kernel_size": [0, (1, 2, 3, 4), -1, 1.5, None],
    "stride": [0, -1, (1,) * 5, "2", True],
    "padding": [-1, "full", (0,) * 5, 1.0, None],
    "dilation": [0, -2, (2,) * 5, None],
    "groups": [0, -1, True, 2.5, 5],
    "padding_mode": ["mirror", "", None],
    "tile_size": [0, -1, (2,) * 5, None],
}


@st.composite
def layer_cases(draw):
    """A valid configuration half the time; otherwise one argument is corrupted."""
    d = draw(st.integers(1, 3))
    hi = 4 if d == 3 else 6
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    case = {
        "kind": draw(st.sampled_from(["local", "tiled"])),
        "d": d,
        "in_channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(1, 2)),
        "kernel_size": draw(int_or_tuple(d, 1, 3 if d < 3 else 2)),
        "stride": draw(int_or_tuple(d, 1, 3)),
        "padding": draw(st.one_of(int_or_tuple(d, 0, 2), st.sampled_from(["same", "valid"]))),
        "dilation": draw(int_or_tuple(d, 1, 2)),
        "groups": groups,
        "bias": draw(st.booleans()),
        "shared_bias": draw(st.booleans()),
        "padding_mode": draw(st.sampled_from(MODES)),
        "size": draw(st.tuples(*[st.integers(1, hi)] * d)),
        "tile_size": draw(int_or_tuple(d, 1, 3)),
        "batch": draw(st.sampled_from([0, 1, 2, None])),  # None: unbatched
        "channel_offset": 0,
        "size_offset": 0,
    }
    corrupt = draw(st.sampled_from([None] * 9 + [*BAD_VALUES, "channel_offset", "size_offset"]))
    if corrupt in BAD_VALUES:
        case[corrupt] = draw(st.sampled_from(BAD_VALUES[corrupt]))
    elif corrupt is not None:
        case[corrupt] = 1
    return case


def build(case):
    common = dict(
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
        bias=case["bias"],
        shared_bias=case["shared_bias"],
        padding_mode=case["padding_mode"],
        dtype=torch.float64,
    )
    if case["kind"] == "local":
        cls = LOCAL[case["d"]]
        return cls, lambda: cls(
            case["in_channels"],
            case["out_channels"],
            case["kernel_size"],
            input_size=case["size"],
            **common,
        )
    cls = TILED[case["d"]]
    return cls, lambda: cls(
        case["in_channels"],
        case["out_channels"],
        case["kernel_size"],
        tile_size=case["tile_size"],
        **common,
    )


@settings(SETTINGS, max_examples=100)
@given(layer_cases())
def test_layers_are_right_or_refuse_clearly(case):
    cls, make = build(case)
    try:
        layer = make()
    except (ValueError, TypeError) as error:
        event("refused at construction")
        assert_clear(error, cls.__name__)
        return
    d = case["d"]
    size = tuple(n + case["size_offset"] for n in case["size"])
    channels = layer.in_channels + case["channel_offset"]
    shape = (channels, *size) if case["batch"] is None else (case["batch"], channels, *size)
    x = torch.randn(shape, dtype=torch.float64)
    try:
        out = layer(x)
    except (ValueError, TypeError) as error:
        event("refused at forward")
        assert_clear(error, cls.__name__, "locally_connected", "tiled_conv")
        return
    event("computed")
    # it ran: so the input was acceptable, and the answer must be the dense reference's
    assert case["channel_offset"] == 0
    pads = pads_of(
        layer.padding if isinstance(layer.padding, str) else layer.padding,
        layer.kernel_size,
        layer.stride,
        layer.dilation,
    )
    batched = x if case["batch"] is not None else x.unsqueeze(0)
    expected = apply_dense(
        batched.numpy(),
        layer.weight.detach().numpy(),
        None if layer.bias is None else layer.bias.detach().numpy(),
        layer.stride,
        pads,
        layer.dilation,
        layer.groups,
        layer.padding_mode,
    )
    if case["batch"] is None:
        expected = expected[0]
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-10)
    if case["kind"] == "local":
        assert tuple(out.shape[-d:]) == layer.output_size


@st.composite
def functional_cases(draw):
    d = draw(st.integers(1, 3))
    hi = 4 if d == 3 else 6
    groups = draw(st.sampled_from([1, 1, 1, 1, 2, 2, 2, 0, True]))
    g = groups if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 else 1
    kernel = draw(st.tuples(*[st.integers(1, 3)] * d))
    size = draw(st.tuples(*[st.integers(1, hi)] * d))
    stride = draw(
        st.one_of(int_or_tuple(d, 1, 2), int_or_tuple(d, 1, 2), st.sampled_from([0, (1,) * 4]))
    )
    dilation = draw(int_or_tuple(d, 1, 2))
    padding = draw(st.one_of(int_or_tuple(d, 0, 1), st.sampled_from(["same", "valid", -1])))
    op = draw(st.sampled_from(["locally_connected", "tiled_conv"]))
    # the grid: usually what the op needs (output size or a tile), sometimes not
    try:
        s_t, dl_t = expand(stride, d), expand(dilation, d)
        p_t = pads_of(
            padding if isinstance(padding, str) else expand(padding, d), kernel, s_t, dl_t
        )
        out = tuple(
            (n + lo + hi_ - dl * (k - 1) - 1) // s + 1
            for n, (lo, hi_), k, s, dl in zip(size, p_t, kernel, s_t, dl_t, strict=True)
        )
    except (TypeError, ValueError, ZeroDivisionError):
        out = (1,) * d
    if op == "locally_connected":
        grid = tuple(max(o, 1) + draw(st.sampled_from([0] * 9 + [1])) for o in out)
    else:
        grid = draw(st.tuples(*[st.integers(1, 3)] * d))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    weight_shape = (*grid, og * g + draw(st.sampled_from([0] * 7 + [1])), cg, *kernel)
    weight_rank_change = draw(st.sampled_from([0] * 10 + [-1, 1]))
    if weight_rank_change < 0:
        weight_shape = weight_shape[1:]
    elif weight_rank_change > 0:
        weight_shape = (1, *weight_shape)
    bias_kind = draw(st.sampled_from([None, "shared", "grid", "grid", "wrong"]))
    return {
        "op": op,
        "d": d,
        "size": size,
        "stride": stride,
        "dilation": dilation,
        "padding": padding,
        "groups": groups,
        "weight_shape": weight_shape,
        "cin": cg * g,
        "bias_kind": bias_kind,
        "padding_mode": draw(st.sampled_from(MODES)),
        "batch": draw(st.sampled_from([0, 2, None])),
        "dtype": draw(st.sampled_from([torch.float64] * 7 + [torch.int64])),
        "rank": draw(st.sampled_from([d] * 7 + [d - 1, 3 * d])),
    }


@settings(SETTINGS, max_examples=100)
@given(functional_cases(), st.sampled_from(["", "own", "own", "3d"]))
def test_functional_ops_are_right_or_refuse_clearly(case, suffix):
    name = case["op"] + (f"{case['d']}d" if suffix == "own" else suffix)
    op = getattr(functional, name)
    weight = torch.randn(case["weight_shape"], dtype=torch.float64)
    d_w = (weight.dim() - 2) // 2
    grid, out_channels = weight.shape[:d_w], weight.shape[d_w] if weight.dim() > d_w else 1
    bias = {
        None: None,
        "shared": torch.randn(out_channels, dtype=torch.float64),
        "grid": torch.randn(*grid, out_channels, dtype=torch.float64),
        "wrong": torch.randn(out_channels + 1, dtype=torch.float64),
    }[case["bias_kind"]]
    rank = max(case["rank"], 0)
    spatial = (tuple(case["size"]) + (2,) * rank)[:rank]
    shape = (
        (case["cin"], *spatial) if case["batch"] is None else (case["batch"], case["cin"], *spatial)
    )
    x = torch.randn(shape, dtype=torch.float64).to(case["dtype"])
    try:
        out = op(
            x,
            weight,
            bias,
            case["stride"],
            case["padding"],
            case["dilation"],
            case["groups"],
            case["padding_mode"],
        )
    except (ValueError, TypeError) as error:
        event("refused: " + str(error)[:70])
        assert_clear(error, case["op"])
        return
    event("computed")
    d = d_w
    stride, dilation = expand(case["stride"], d), expand(case["dilation"], d)
    kernel = tuple(weight.shape[d + 2 :])
    pads = pads_of(
        case["padding"] if isinstance(case["padding"], str) else expand(case["padding"], d),
        kernel,
        stride,
        dilation,
    )
    batched = x if case["batch"] is not None else x.unsqueeze(0)
    expected = apply_dense(
        batched.numpy(),
        weight.numpy(),
        None if bias is None else bias.numpy(),
        stride,
        pads,
        dilation,
        case["groups"],
        case["padding_mode"],
    )
    if case["batch"] is None:
        expected = expected[0]
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("junk", [None, 3, "x", np.zeros((1, 2, 5)), [1.0, 2.0]])
@pytest.mark.parametrize("where", ["input", "weight", "bias"])
@pytest.mark.parametrize("op", ["locally_connected1d", "tiled_conv1d"])
def test_functional_non_tensor_arguments(op, where, junk):
    args = {"input": torch.randn(1, 2, 5), "weight": torch.randn(3, 1, 2, 3), "bias": None}
    if where == "bias" and junk is None:
        return
    args[where] = junk
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(functional, op)(args["input"], args["weight"], args["bias"])
    assert_clear(info.value, op.replace("1d", ""))


@SETTINGS
@given(
    st.sampled_from(["local", "tiled"]),
    st.integers(1, 2),
    st.sampled_from(MODES),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    st.data(),
)
def test_nan_and_inf_propagate_as_through_a_convolution(kind, d, mode, bad, data):
    """With all kernels equal, the layer is a convolution: same NaN/inf pattern, same values."""
    size = data.draw(st.tuples(*[st.integers(3, 6)] * d))
    k, padding = data.draw(st.sampled_from([(1, 0), (2, 1), (3, 1)]))
    stride = data.draw(st.integers(1, 2))
    conv = torch.nn.Conv1d if d == 1 else torch.nn.Conv2d
    reference = conv(
        2, 3, k, stride=stride, padding=padding, padding_mode=mode, dtype=torch.float64
    )
    if kind == "local":
        layer = LOCAL[d](
            2,
            3,
            k,
            input_size=size,
            stride=stride,
            padding=padding,
            padding_mode=mode,
            shared_bias=True,
            dtype=torch.float64,
        )
    else:
        layer = TILED[d](
            2,
            3,
            k,
            tile_size=2,
            stride=stride,
            padding=padding,
            padding_mode=mode,
            shared_bias=True,
            dtype=torch.float64,
        )
    with torch.no_grad():
        layer.weight.copy_(reference.weight.expand_as(layer.weight))
        layer.bias.copy_(reference.bias)
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    for _ in range(data.draw(st.integers(1, 3))):
        index = tuple(data.draw(st.integers(0, n - 1)) for n in x.shape)
        x[index] = bad
    torch.testing.assert_close(layer(x), reference(x), equal_nan=True)


# ------------------------------------------------------------------------------------------------
# huge configurations fail fast, with the memory they need


def test_check_allocation_refuses_with_the_bytes_needed():
    with pytest.raises(
        ValueError, match=r"LocallyConnected2d: .*needs 4 TB \(4,000,000,000,000 bytes\)"
    ):
        check_allocation((10**6, 1, 1, 1000, 1000), torch.float32, "cpu", "LocallyConnected2d")
    check_allocation((10**6, 1, 1, 1000, 1000), torch.float32, "meta", "x")  # meta is free
    check_allocation((10, 10), torch.float64, None, "x")
    assert format_bytes(400_000_000) == "400 MB"


@pytest.mark.parametrize(
    "make",
    [
        lambda: locality.LocallyConnected2d(1, 1, 1000, input_size=1999),  # 10^12 weights
        lambda: locality.TiledConv2d(1000, 1000, 1000, tile_size=1),  # 10^12 weights
    ],
)
def test_huge_layer_fails_fast_before_allocating(make):
    with pytest.raises(ValueError, match=r"TB"):
        make()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_huge_layer_fails_fast_on_cuda():
    with pytest.raises(ValueError, match=r"needs 4 TB .* available on cuda"):
        locality.LocallyConnected2d(1, 1, 1000, input_size=1999, device="cuda")


def test_huge_lazy_layer_fails_fast_at_its_first_input():
    layer = locality.LazyLocallyConnected2d(1, 1000)
    with pytest.raises(ValueError, match=r"LocallyConnected2d: .*needs 4 TB"):
        layer(torch.zeros(1, 1, 1999, 1999))


def test_huge_layer_on_meta_is_fine():
    layer = locality.LocallyConnected2d(1, 1, 1000, input_size=1999, device="meta")
    assert math.prod(layer.weight.shape) == 10**12


# ------------------------------------------------------------------------------------------------
# lazy layers and Keras interop


@SETTINGS
@given(st.sampled_from(["local", "tiled"]), st.integers(1, 3), st.integers(0, 6), st.data())
def test_lazy_layers_infer_or_refuse(kind, d, rank, data):
    channels = data.draw(st.integers(0, 3))
    groups = data.draw(st.sampled_from([1, 2]))
    if kind == "local":
        cls = {
            1: locality.LazyLocallyConnected1d,
            2: locality.LazyLocallyConnected2d,
            3: locality.LazyLocallyConnected3d,
        }[d]
        layer = cls(2, 1, groups=groups, dtype=torch.float64)
    else:
        cls = {
            1: locality.LazyTiledConv1d,
            2: locality.LazyTiledConv2d,
            3: locality.LazyTiledConv3d,
        }[d]
        layer = cls(2, 1, 2, groups=groups, dtype=torch.float64)
    if rank == d + 2:
        shape = (1, channels) + (3,) * d
    elif rank == d + 1:
        shape = (channels,) + (3,) * d
    else:
        shape = (3,) * rank
    x = torch.randn(shape, dtype=torch.float64)
    try:
        out = layer(x)
    except (ValueError, TypeError) as error:
        assert_clear(error, cls.__name__, type(layer).__name__, "locally_connected", "tiled_conv")
        return
    assert rank in (d + 1, d + 2) and channels % groups == 0 and channels > 0
    assert out.shape[-d - 1] == 2


@SETTINGS
@given(
    st.sampled_from([1, 2, 3]),
    st.sampled_from(["channels_last", "channels_first"]),
    st.lists(st.integers(0, 40), min_size=0, max_size=6),
)
def test_keras_loader_refuses_wrong_shapes_clearly(implementation, data_format, shape):
    layer = locality.LocallyConnected2d(2, 3, 2, input_size=(3, 4))
    expected = kio.keras_kernel_shape(
        2, 3, 2, (3, 4), implementation=implementation, data_format=data_format
    )
    assume(tuple(shape) != expected)
    with pytest.raises(ValueError, match=r"has shape \(") as info:
        kio.load_keras_weights(
            layer, np.zeros(shape), implementation=implementation, data_format=data_format
        )
    assert str(expected) in str(info.value)
