"""Every implementation behind the functional ops against the reference and explicit definitions.

All in float64 on fresh random inputs. The locally connected custom op runs with a tiny chunk size
so that every product spans several chunks. No timings here: benchmarks/connectivity.py measures.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import locality
from benchmarks import tiled_formulations
from locality.kernels import chunked_bmm, dispatch, local_op, reference, tiled, tiled_gemm

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
F64 = torch.float64

# d, padded input size, kernel, stride, dilation, groups, in channels, out channels
GEOMETRIES = [
    (1, (11,), (3,), (2,), (1,), 2, 4, 6),
    (1, (9,), (2,), (1,), (3,), 1, 3, 2),
    (2, (9, 8), (3, 2), (1, 2), (2, 1), 1, 3, 4),
    (2, (7, 7), (3, 3), (2, 2), (1, 1), 3, 6, 3),
    (3, (6, 5, 6), (2, 2, 3), (1, 1, 2), (1, 2, 1), 2, 4, 4),
    # windows that do not overlap: the fold is one copy (kernel == stride, 1x1, dilated)
    (2, (8, 9), (2, 3), (2, 3), (1, 1), 1, 3, 4),
    (1, (10,), (1,), (1,), (1,), 2, 4, 6),
    (2, (9, 9), (2, 1), (3, 2), (2, 1), 1, 2, 3),
]


def out_size(size, kernel, stride, dilation):
    return tuple(
        (n - dl * (k - 1) - 1) // s + 1
        for n, k, s, dl in zip(size, kernel, stride, dilation, strict=False)
    )


def biases(grid, out_channels):
    return [
        None,
        torch.randn(out_channels, dtype=F64, requires_grad=True),
        torch.randn(*grid, out_channels, dtype=F64, requires_grad=True),
    ]


def explicit_local(x, weight, bias, stride, dilation, groups):
    """Each output position p: a convolution of its own window with its own kernel weight[p]."""
    d = (weight.dim() - 2) // 2
    out = weight.shape[:d]
    kernel = weight.shape[d + 2 :]
    y = x.new_zeros((x.shape[0], weight.shape[d], *out))
    for p in itertools.product(*(range(o) for o in out)):
        window = x[
            (
                slice(None),
                slice(None),
                *(
                    slice(i * s, i * s + dl * (k - 1) + 1)
                    for i, s, dl, k in zip(p, stride, dilation, kernel, strict=False)
                ),
            )
        ]
        value = CONV[d](window, weight[p], None, 1, 0, tuple(dilation), groups)  # (N, O, 1, ...)
        y[(slice(None), slice(None), *p)] = value.flatten(1)
    if bias is not None:
        y = y + (bias.view(-1, *(1,) * d) if bias.dim() == 1 else bias.movedim(-1, 0))
    return y


@pytest.fixture
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(chunked_bmm, "CHUNK_BYTES", 64)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_custom_op_matches_reference_and_explicit_definition(geometry, tiny_chunks):
    d, size, kernel, stride, dilation, groups, cin, cout = geometry
    out = out_size(size, kernel, stride, dilation)
    x = torch.randn(3, cin, *size, dtype=F64, requires_grad=True)
    weight = torch.randn(*out, cout, cin // groups, *kernel, dtype=F64, requires_grad=True)
    for bias in biases(out, cout):
        args = (list(stride), list(dilation), groups)
        got = local_op.locally_connected(x, weight, bias, *args)
        expected = reference.locally_connected(x, weight, bias, *args)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(got, explicit_local(x, weight, bias, *args))
        grad = torch.randn_like(got)
        inputs = [x, weight] + ([bias] if bias is not None else [])
        for g, e in zip(
            torch.autograd.grad(got, inputs, grad),
            torch.autograd.grad(expected, inputs, grad),
            strict=False,
        ):
            torch.testing.assert_close(g, e)


def test_custom_op_equals_convolution_when_all_kernels_are_equal(tiny_chunks):
    x = torch.randn(2, 4, 10, 9, dtype=F64)
    kernel = torch.randn(6, 2, 3, 2, dtype=F64)
    bias = torch.randn(6, dtype=F64)
    expected = F.conv2d(x, kernel, bias, (2, 1), 0, (1, 2), 2)
    weight = kernel.expand(*expected.shape[2:], *kernel.shape).contiguous()
    got = local_op.locally_connected(x, weight, bias, [2, 1], [1, 2], 2)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[4]])
def test_custom_op_gradcheck_and_gradgradcheck(geometry, tiny_chunks):
    d, size, kernel, stride, dilation, groups, cin, cout = geometry
    out = out_size(size, kernel, stride, dilation)
    x = torch.randn(2, cin, *size, dtype=F64, requires_grad=True)
    weight = torch.randn(*out, cout, cin // groups, *kernel, dtype=F64, requires_grad=True)
    bias = torch.randn(*out, cout, dtype=F64, requires_grad=True)

    def f(x, w, b):
        return local_op.locally_connected(x, w, b, list(stride), list(dilation), groups)

    # Fast mode compares random projections of the derivatives: a wrong one still fails.
    assert torch.autograd.gradcheck(f, (x, weight, bias), fast_mode=True)
    assert torch.autograd.gradgradcheck(f, (x, weight, bias), fast_mode=True)


def test_custom_ops_pass_opcheck():
    x = torch.randn(2, 4, 7, 7, dtype=F64, requires_grad=True)
    weight = torch.randn(3, 5, 6, 2, 3, 2, dtype=F64, requires_grad=True)
    bias = torch.randn(6, dtype=F64, requires_grad=True)
    geometry = ([2, 1], [1, 2], 2)
    torch.library.opcheck(
        torch.ops.locality.locally_connected.default, (x, weight, bias, *geometry)
    )
    grad = torch.randn(2, 6, 3, 5, dtype=F64, requires_grad=True)
    torch.library.opcheck(
        torch.ops.locality.locally_connected_grad_input.default, (grad, weight, [7, 7], *geometry)
    )
    torch.library.opcheck(
        torch.ops.locality.locally_connected_grad_weight.default, (grad, x, [3, 2], *geometry)
    )


def test_flop_counter_counts_one_multiply_add_per_weight_and_sample():
    n, (x_size, kernel, stride, dilation, groups) = 3, ((8, 9), (3, 2), (1, 2), (2, 1), 2)
    out = out_size(x_size, kernel, stride, dilation)
    x = torch.randn(n, 4, *x_size, requires_grad=True)
    weight = torch.randn(*out, 6, 2, *kernel, requires_grad=True)
    forward_flops = 2 * n * weight.numel()
    with FlopCounterMode(display=False) as forward:
        y = local_op.locally_connected(x, weight, None, list(stride), list(dilation), groups)
    with FlopCounterMode(display=False) as backward:
        y.sum().backward()
    assert forward.get_total_flops() == forward_flops
    assert backward.get_total_flops() == 2 * forward_flops
    x.requires_grad_(False)
    with FlopCounterMode(display=False) as weight_only:
        local_op.locally_connected(
            x, weight, None, list(stride), list(dilation), groups
        ).sum().backward()
    assert weight_only.get_total_flops() == 2 * forward_flops  # forward + weight gradient


def test_dispatch_picks_the_chunked_op_on_cpu_and_aten_under_vmap():
    x = torch.randn(2, 3, 6)
    weight = torch.randn(4, 2, 3, 3)
    assert dispatch.locally_connected_path(x, weight, None) == "chunked_bmm"
    seen = []
    torch.func.vmap(lambda w: seen.append(dispatch.locally_connected_path(x, w, None)) or w)(
        torch.stack([weight, weight])
    )
    assert seen == ["reference"]


# ------------------------------------------------------------------------------------------------
# Tiled formulations.

# d, input size (padded), kernel, stride, dilation, groups, in, out, tile
TILED = [
    (1, (12,), (3,), (1,), (1,), 1, 3, 4, (2,)),
    (1, (13,), (2,), (2,), (2,), 2, 4, 2, (3,)),
    (2, (9, 8), (3, 2), (1, 2), (1, 1), 1, 2, 3, (2, 3)),
    (2, (10, 7), (2, 2), (2, 1), (2, 1), 2, 4, 4, (4, 2)),
    (2, (6, 9), (3, 3), (1, 1), (1, 1), 1, 2, 2, (5, 2)),  # tile taller than the output
    (3, (5, 6, 5), (2, 2, 2), (1, 1, 2), (1, 1, 1), 1, 2, 3, (2, 2, 1)),
]


def tiled_as_local(weight, bias, out):
    """The explicit definition: position i uses kernel i mod t (a locally connected weight)."""
    d = (weight.dim() - 2) // 2
    index = [torch.arange(o) % t for o, t in zip(out, weight.shape[:d], strict=False)]
    local = weight[torch.meshgrid(*index, indexing="ij")]
    if bias is not None and bias.dim() > 1:
        bias = bias[torch.meshgrid(*index, indexing="ij")]
    return local, bias


#: Every exact formulation: the two dispatch chooses between and the two kept for the benchmark.
ALL_TILED = {**tiled.FORMULATIONS, **tiled_formulations.FORMULATIONS}


@pytest.fixture
def tiny_tiled_chunks(monkeypatch):
    """batched_gemm's products span several chunks (one tile row each)."""
    monkeypatch.setattr(tiled_gemm, "CHUNK_BYTES", 64)


@pytest.mark.parametrize("name", sorted(ALL_TILED))
@pytest.mark.parametrize("geometry", TILED)
def test_tiled_formulations_match_explicit_definition(name, geometry, tiny_tiled_chunks):
    d, size, kernel, stride, dilation, groups, cin, cout, tile = geometry
    out = out_size(size, kernel, stride, dilation)
    x = torch.randn(2, cin, *size, dtype=F64, requires_grad=True)
    weight = torch.randn(*tile, cout, cin // groups, *kernel, dtype=F64, requires_grad=True)
    for bias in biases(tile, cout):
        got = ALL_TILED[name](x, weight, bias, stride, dilation, groups, out)
        local, local_bias = tiled_as_local(weight, bias, out)
        expected = reference.locally_connected(x, local, local_bias, stride, dilation, groups)
        torch.testing.assert_close(got, expected)
        grad = torch.randn_like(got)
        inputs = [x, weight] + ([bias] if bias is not None else [])
        for g, e in zip(
            torch.autograd.grad(got, inputs, grad),
            torch.autograd.grad(expected, inputs, grad),
            strict=False,
        ):
            torch.testing.assert_close(g, e)


@pytest.mark.parametrize("name", sorted(ALL_TILED))
def test_tiled_formulations_equal_convolution_with_one_kernel(name):
    x = torch.randn(2, 4, 11, 10, dtype=F64)
    kernel = torch.randn(6, 2, 3, 2, dtype=F64)
    bias = torch.randn(6, dtype=F64)
    expected = F.conv2d(x, kernel, bias, (1, 2), 0, (2, 1), 2)
    weight = kernel.expand(3, 2, *kernel.shape)
    got = ALL_TILED[name](x, weight, bias, (1, 2), (2, 1), 2, expected.shape[2:])
    torch.testing.assert_close(got, expected)


# batched_gemm is an autograd.Function written with in-place chunk writes: under torch.func
# transforms dispatch runs per_offset instead (checked below).
@pytest.mark.parametrize("name", ["per_offset", *sorted(tiled_formulations.FORMULATIONS)])
def test_tiled_formulations_vmap_over_weights(name):
    x = torch.randn(2, 3, 9, 7, dtype=F64)
    weights = torch.randn(3, 2, 2, 4, 3, 3, 2, dtype=F64)
    bias = torch.randn(3, 2, 2, 4, dtype=F64)
    out = (7, 6)
    f = ALL_TILED[name]
    got = torch.func.vmap(lambda w, b: f(x, w, b, (1, 1), (1, 1), 1, out))(weights, bias)
    for i in range(3):
        torch.testing.assert_close(got[i], f(x, weights[i], bias[i], (1, 1), (1, 1), 1, out))


def test_embedded_kernel_places_each_dilated_kernel_at_its_offset():
    weight = torch.randn(2, 3, 1, 2, dtype=F64)  # tile 2, O=3, C=1, k=2
    big = tiled_formulations.embedded_kernel(weight, stride=(3,), dilation=(2,))
    assert big.shape == (6, 1, 3 + 2 + 1)  # extent (t-1)*s + (k-1)*dl + 1
    for o, r in itertools.product(range(3), range(2)):
        expected = torch.zeros(6, dtype=F64)
        expected[3 * r] = weight[r, o, 0, 0]
        expected[3 * r + 2] = weight[r, o, 0, 1]
        torch.testing.assert_close(big[2 * o + r, 0], expected)


def test_embedded_flop_ratio():
    assert math.isclose(
        tiled_formulations.embedded_flop_ratio((2, 2), (3, 3), (1, 1), (1, 1)), 16 / 9
    )


def test_tiled_dispatch_rule_by_kernel_count_and_aten_under_transforms_and_flop_counting():
    x = torch.randn(2, 3, 34, 34)
    small, large = torch.randn(2, 2, 4, 3, 3, 3), torch.randn(4, 4, 4, 3, 3, 3)
    assert dispatch.tiled_path(x, small, None, (32, 32)) == "per_offset"
    assert dispatch.tiled_path(x, small, None, (8, 8)) == "batched_gemm"  # 16 positions each
    assert dispatch.tiled_path(x, large, None, (32, 32)) == "batched_gemm"
    with FlopCounterMode(display=False):
        assert dispatch.tiled_path(x, large, None, (32, 32)) == "per_offset"
    seen = []
    torch.func.vmap(lambda w: seen.append(dispatch.tiled_path(x, w, None, (32, 32))) or w)(
        torch.stack([large, large])
    )
    assert seen == ["per_offset"]


@pytest.mark.parametrize("bias_shape", [None, "shared", "tiled"])
def test_batched_gemm_forward_mode_ad_matches_the_convolutions(bias_shape):
    """The hand-written jvp against torch.func.jvp through per_offset (ATen convolutions)."""
    x = torch.randn(2, 4, 9, 8, dtype=F64)
    weight = torch.randn(3, 2, 4, 2, 3, 2, dtype=F64)
    bias = {None: None, "shared": torch.randn(4, dtype=F64), "tiled": torch.randn(3, 2, 4)}
    b = bias[bias_shape]
    b = None if b is None else b.to(F64)
    primals = (x, weight) if b is None else (x, weight, b)
    tangents = tuple(torch.randn_like(p) for p in primals)

    def run(f):
        return lambda x, w, b=None: f(x, w, b, (1, 2), (1, 1), 2, (7, 4))

    with torch.autograd.forward_ad.dual_level():
        duals = [
            torch.autograd.forward_ad.make_dual(p, t)
            for p, t in zip(primals, tangents, strict=True)
        ]
        got = torch.autograd.forward_ad.unpack_dual(run(tiled_gemm.batched_gemm)(*duals)).tangent
    _, expected = torch.func.jvp(run(tiled.per_offset), primals, tangents)
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------------------------------------


def _quick_benchmark(name: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<name>.py --quick --repeats 1``; fails on a non-zero exit."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    return subprocess.run(
        [sys.executable, str(script), "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


@pytest.mark.slow
def test_benchmark_quick_runs_and_prints_one_table():
    done = _quick_benchmark("connectivity")
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    methods = {line.split("|")[2].strip() for line in lines[2:]}
    expected = {"locality", "unfold+einsum", "F.conv", "bmm floor", "embedded", "per_offset"}
    assert expected | {"batched_gemm", "unfold_matmul"} <= methods
    assert "| target | measured | met |" in done.stdout
    assert "chunked_bmm" in done.stdout


def test_floors_benchmark_quick_prints_both_tables():
    done = _quick_benchmark("floors")
    rows = {line.split("|")[1].strip() for line in done.stdout.splitlines() if line[:1] == "|"}
    assert {"L4-like", "L5-like", "1-D", "blocks"} <= rows
    assert {"F.conv2d", "4 stride-2 convolutions, NCHW", "locality tiled t=2"} <= rows


@pytest.mark.parametrize("path", ["per_offset", "batched_gemm"])
@pytest.mark.parametrize("tile", [2, 4])
def test_tiled_output_takes_in_place_ops_on_every_path(tile, path, monkeypatch):
    # an output that autograd sees as a view of a custom Function's result refuses in-place ops
    monkeypatch.setattr(dispatch, "tiled_path", lambda *args: path)
    torch.manual_seed(0)
    layer = locality.TiledConv2d(3, 4, 3, tile_size=tile, padding=1)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)  # the output a whole number of tiles
    out = layer(x)
    expected = torch.relu(out.detach().clone())
    torch.relu_(out)
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    assert x.grad is not None


def test_scaling_benchmark_builds_every_kind_for_its_input_size():
    spec = importlib.util.spec_from_file_location(
        "scaling", Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
    )
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)
    kinds = {kind for kind, *_ in scaling.points()}
    assert kinds == set(scaling.KINDS)
    for kind in scaling.KINDS:
        x = torch.randn(2, scaling.CHANNELS, 8, 8)
        layer = scaling.build(kind, 8)
        out = layer(x)
        assert out.numel() == x.numel(), kind  # every kind maps 8 -> 8 channels at 8x8
        module = layer[1] if kind == "dense" else layer  # dense: Flatten, then Linear
        assert locality.analysis.kind_of(module) == kind.split()[0], kind
