"""The functional ops between convolution and locally connected against float64 references.

Region-shared, mapped and low-rank ops against the dense matrix of their per-position kernels
(written from each definition in ``tests.between_reference``); the transposed ops against a
nested scatter loop; both over random small configurations of every argument, then gradcheck
and gradgradcheck.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from locality import functional as LF
from locality.kernels import lowrank
from tests.between_reference import (
    apply_per_position,
    lowrank_kernels,
    mapped_kernels,
    out_size_of,
    region_kernels,
    transpose_loop,
)

MODES = ["zeros", "reflect", "replicate", "circular"]


def _pads(padding, kernel, dilation):
    if padding == "same":
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def _padding(rng: random.Random, d: int):
    choice = rng.choice(["ints", "pairs", "mixed", "same", "valid"])
    if choice == "same" or choice == "valid":
        return choice
    if choice == "ints":
        return tuple(rng.choice([0, 1, 2]) for _ in range(d))
    if choice == "pairs":
        return tuple((rng.choice([0, 1, 2]), rng.choice([0, 1, 2])) for _ in range(d))
    return tuple(rng.choice([1, (0, 2), (2, 1)]) for _ in range(d))


def _configs(kind: str, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    configs: list[dict] = []
    while len(configs) < count:
        i = len(configs)
        d = (1, 2, 3, 1, 2)[i % 5]
        groups = rng.choice([1, 2])
        kernel = tuple(rng.choice([1, 2, 3]) for _ in range(d))
        dilation = tuple(rng.choice([1, 1, 2]) for _ in range(d))
        padding = _padding(rng, d)
        stride = (1,) * d if padding == "same" else tuple(rng.choice([1, 2]) for _ in range(d))
        size = tuple(rng.choice([4, 5, 6]) if d < 3 else rng.choice([3, 4]) for _ in range(d))
        mode = MODES[i % 4]
        pads = _pads(padding, kernel, dilation)
        fits = all(
            dl * (k - 1) + 1 <= n + lo + hi
            and not (mode == "reflect" and max(lo, hi) >= n)
            and not (mode == "circular" and max(lo, hi) > n)
            for n, (lo, hi), k, dl in zip(size, pads, kernel, dilation, strict=True)
        )
        if not fits:
            continue
        out = out_size_of(size, kernel, stride, pads, dilation)
        configs.append(
            dict(
                kind=kind,
                d=d,
                groups=groups,
                kernel=kernel,
                dilation=dilation,
                padding=padding,
                pads=pads,
                stride=stride,
                size=size,
                out=out,
                mode=mode,
                batch=(3, 1, 0)[i % 3],
                bias=rng.choice(["bank", "shared", None]),
                regions=tuple(rng.randint(1, min(3, o)) for o in out),
                num_kernels=rng.randint(1, 4),
                rank=rng.randint(1, 3),
            )
        )
    return configs


CONFIGS = [
    c
    for kind, seed in (("region", 1), ("mapped", 2), ("lowrank", 3))
    for c in _configs(kind, 20, seed)
]


def _run(cfg: dict, input_grad: bool = False):
    """(result of the op, float64 reference) for one configuration; ``input_grad``: the input
    requires a gradient (region_conv then cuts its crops differently)."""
    g = torch.Generator().manual_seed(hash(str(cfg)) % 2**31)
    cin, cout = 2 * cfg["groups"], 2 * cfg["groups"]
    cg, k, out = 2, cfg["kernel"], cfg["out"]
    x = torch.randn(cfg["batch"], cin, *cfg["size"], dtype=torch.float64, generator=g)
    x.requires_grad_(input_grad)
    common = dict(
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        padding_mode=cfg["mode"],
    )
    args = (cfg["stride"], cfg["pads"], cfg["dilation"], cfg["groups"], cfg["mode"])
    if cfg["kind"] == "region":
        bank = cfg["regions"]
    elif cfg["kind"] == "mapped":
        bank = (cfg["num_kernels"],)
    else:
        bank = out
    weight_bank = (cfg["rank"],) if cfg["kind"] == "lowrank" else bank
    weight = torch.randn(*weight_bank, cout, cg, *k, dtype=torch.float64, generator=g)
    bias = None
    if cfg["bias"] == "shared":
        bias = torch.randn(cout, dtype=torch.float64, generator=g)
    elif cfg["bias"] == "bank":
        bias = torch.randn(*bank, cout, dtype=torch.float64, generator=g)
    b = None if bias is None else bias.numpy()
    if cfg["kind"] == "region":
        got = LF.region_conv(x, weight, bias, **common)
        kernels, biases = region_kernels(weight.numpy(), out, b)
    elif cfg["kind"] == "mapped":
        kernel_map = torch.randint(0, cfg["num_kernels"], out, generator=g)
        got = LF.mapped_conv(x, weight, kernel_map, bias, **common)
        kernels, biases = mapped_kernels(weight.numpy(), kernel_map.numpy(), b)
    else:
        mixing = torch.randn(*out, cfg["rank"], dtype=torch.float64, generator=g)
        got = LF.lowrank_locally_connected(x, weight, mixing, bias, **common)
        kernels, biases = lowrank_kernels(weight.numpy(), mixing.numpy()), b
    return got.detach(), apply_per_position(x.detach().numpy(), kernels, biases, *args)


@pytest.mark.parametrize(
    "cfg", CONFIGS, ids=lambda c: f"{c['kind']}{c['d']}d-{c['mode']}-n{c['batch']}"
)
def test_op_equals_its_reference(cfg):
    got, expected = _run(cfg)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "cfg",
    [c for c in CONFIGS if c["kind"] == "region"],
    ids=lambda c: f"{c['kind']}{c['d']}d-{c['mode']}-n{c['batch']}",
)
def test_region_with_an_input_gradient_equals_its_reference(cfg):
    got, expected = _run(cfg, input_grad=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "cfg",
    [c for c in CONFIGS if c["kind"] == "lowrank" and c["rank"] > 1],
    ids=lambda c: f"{c['kind']}{c['d']}d-{c['mode']}-n{c['batch']}-rank{c['rank']}",
)
@pytest.mark.parametrize("chunk", [1, 2])
def test_lowrank_in_chunks_of_the_rank_equals_its_reference(cfg, chunk, monkeypatch):
    # one basis kernel's output: N * O * positions float64 values (O = 2 * groups in _run)
    per_rank = cfg["batch"] * 2 * cfg["groups"] * math.prod(cfg["out"]) * 8
    monkeypatch.setattr(lowrank, "MAX_OUTPUT_BYTES", chunk * max(1, per_rank))
    got, expected = _run(cfg)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_configurations_cover_every_argument():
    for kind in ("region", "mapped", "lowrank"):
        mine = [c for c in CONFIGS if c["kind"] == kind]
        assert {c["d"] for c in mine} == {1, 2, 3}
        assert {c["mode"] for c in mine} == set(MODES)
        assert {c["batch"] for c in mine} == {0, 1, 3}
        assert {c["bias"] for c in mine} == {"bank", "shared", None}
    assert any(c["pads"][0][0] != c["pads"][0][1] for c in CONFIGS)  # asymmetric pairs
    assert any(c["padding"] == "same" for c in CONFIGS)
    assert any(max(c["stride"]) > 1 and max(c["dilation"]) > 1 for c in CONFIGS)
    assert any(r > 1 for c in CONFIGS if c["kind"] == "region" for r in c["regions"])
    assert any(
        o % r
        for c in CONFIGS
        if c["kind"] == "region"
        for o, r in zip(c["out"], c["regions"], strict=True)
    )  # uneven splits


def _transpose_configs(count: int) -> list[dict]:
    rng = random.Random(4)
    configs = []
    for i in range(count):
        d = (1, 2, 3, 1, 2)[i % 5]
        stride = tuple(rng.choice([1, 2, 3]) for _ in range(d))
        dilation = tuple(rng.choice([1, 1, 2]) for _ in range(d))
        output_padding = tuple(
            rng.randrange(max(s, dl)) if i % 2 else 0
            for s, dl in zip(stride, dilation, strict=True)
        )
        padding = tuple(rng.choice([0, 1, (0, 1), (1, 0)]) for _ in range(d))
        configs.append(
            dict(
                d=d,
                tiled=bool(i % 3 == 2),
                groups=rng.choice([1, 2]),
                kernel=tuple(rng.choice([1, 2, 3]) for _ in range(d)),
                stride=stride,
                dilation=dilation,
                output_padding=output_padding,
                padding=padding,
                size=tuple(rng.choice([2, 3, 4]) for _ in range(d)),
                tile=tuple(rng.choice([1, 2]) for _ in range(d)),
                batch=(3, 1, 0)[i % 3],
                bias=rng.choice(["bank", "shared", None]),
            )
        )
    return configs


@pytest.mark.parametrize(
    "cfg",
    _transpose_configs(15),
    ids=lambda c: f"{'tiled' if c['tiled'] else 'local'}{c['d']}d-n{c['batch']}",
)
def test_transposed_op_equals_its_scatter_loop(cfg):
    g = torch.Generator().manual_seed(hash(str(cfg)) % 2**31)
    groups, d = cfg["groups"], cfg["d"]
    cin, cout_g = 2 * groups, 2
    pads = tuple((p, p) if isinstance(p, int) else p for p in cfg["padding"])
    out = tuple(
        (m - 1) * s - lo - hi + dl * (k - 1) + op + 1
        for m, s, (lo, hi), dl, k, op in zip(
            cfg["size"],
            cfg["stride"],
            pads,
            cfg["dilation"],
            cfg["kernel"],
            cfg["output_padding"],
            strict=True,
        )
    )
    bank = cfg["tile"] if cfg["tiled"] else cfg["size"]
    y = torch.randn(cfg["batch"], cin, *cfg["size"], dtype=torch.float64, generator=g)
    weight = torch.randn(*bank, cin, cout_g, *cfg["kernel"], dtype=torch.float64, generator=g)
    bias = None
    if cfg["bias"] == "shared":
        bias = torch.randn(cout_g * groups, dtype=torch.float64, generator=g)
    elif cfg["bias"] == "bank":
        bias_bank = cfg["tile"] if cfg["tiled"] else out
        bias = torch.randn(*bias_bank, cout_g * groups, dtype=torch.float64, generator=g)
    op = LF.tiled_conv_transpose if cfg["tiled"] else LF.locally_connected_transpose
    got = op(
        y,
        weight,
        bias,
        stride=cfg["stride"],
        padding=cfg["padding"],
        output_padding=cfg["output_padding"],
        dilation=cfg["dilation"],
        groups=groups,
    )
    expected = transpose_loop(
        y.numpy(),
        weight.numpy(),
        None if bias is None else bias.numpy(),
        cfg["stride"],
        pads,
        cfg["output_padding"],
        cfg["dilation"],
        groups,
        tile=cfg["tile"] if cfg["tiled"] else None,
    )
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    assert d in (1, 2, 3)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_transposed_is_the_adjoint_and_conv_transpose_for_equal_kernels(d):
    x = torch.randn(2, 4, *(7,) * d, dtype=torch.float64)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    weight = torch.randn(*(4,) * d, 6, 2, *(3,) * d, dtype=torch.float64)
    lc = LF.locally_connected(x, weight, None, **kw)
    y = torch.randn_like(lc)
    # LC maps 4 -> 6 channels; its adjoint maps 6 -> 4 with the same weight.
    lct = LF.locally_connected_transpose(y, weight, None, output_padding=0, **kw)
    torch.testing.assert_close((lc * y).sum(), (x * lct).sum(), rtol=1e-12, atol=1e-12)
    kernel = torch.randn(6, 2, *(3,) * d, dtype=torch.float64)
    equal = kernel.expand(*(4,) * d, *kernel.shape).contiguous()
    conv_t = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[d]
    bias = torch.randn(4, dtype=torch.float64)
    got = LF.locally_connected_transpose(y, equal, bias, output_padding=1, **kw)
    expected = conv_t(y, kernel, bias, output_padding=1, **kw)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def _gradcheck_cases():
    x1 = torch.randn(2, 2, 5, dtype=torch.float64)
    x2 = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    yield (
        "region",
        lambda x, w, b: LF.region_conv(x, w, b, padding=((1, 0),), groups=2),
        (
            x1,
            torch.randn(2, 2, 1, 2, dtype=torch.float64),
            torch.randn(2, 2, dtype=torch.float64),
        ),
    )
    yield (
        "region 2-D, uneven, windows with a gap",
        lambda x, w, b: LF.region_conv(x, w, b, stride=(1, 2)),
        (
            x2,
            torch.randn(2, 2, 2, 2, 2, 1, dtype=torch.float64),
            torch.randn(2, 2, 2, dtype=torch.float64),
        ),
    )
    kernel_map = torch.tensor([[0, 1, 1, 0], [2, 2, 0, 1], [1, 0, 2, 2]])
    for name, formulation in (("grouped", "grouped"), ("gathered", "gathered")):

        def mapped_op(x, w, b, formulation=formulation):
            from locality.kernels import mapped

            return mapped.FORMULATIONS[formulation](x, w, kernel_map, b, (1, 1), (1, 1), 1)

        yield (
            name,
            mapped_op,
            (
                x2,
                torch.randn(3, 2, 2, 2, 2, dtype=torch.float64),
                torch.randn(3, 2, dtype=torch.float64),
            ),
        )
    yield (
        "lowrank",
        lambda x, w, m: LF.lowrank_locally_connected(x, w, m, stride=2),
        (
            x2,
            torch.randn(2, 3, 2, 2, 2, dtype=torch.float64),
            torch.randn(2, 2, 2, dtype=torch.float64),
        ),
    )
    yield (
        "transpose",
        lambda y, w, b: LF.locally_connected_transpose(y, w, b, stride=2, output_padding=1),
        (
            torch.randn(2, 2, 3, dtype=torch.float64),
            torch.randn(3, 2, 2, 2, dtype=torch.float64),
            torch.randn(2, dtype=torch.float64),
        ),
    )


@pytest.mark.parametrize("case", list(_gradcheck_cases()), ids=lambda c: c[0])
def test_gradcheck_and_gradgradcheck(case):
    _, op, inputs = case
    inputs = tuple(t.requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(op, inputs)
    assert torch.autograd.gradgradcheck(op, inputs)


def test_lowrank_in_uneven_rank_chunks_passes_gradcheck_and_gradgradcheck(monkeypatch):
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    mixing = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    per_rank = 1 * 2 * 3 * 4 * 8  # one basis kernel's output: N * O * positions * float64 bytes
    monkeypatch.setattr(lowrank, "MAX_OUTPUT_BYTES", 2 * per_rank)  # chunks of rank 2 and 1
    op = lambda x, w, m: LF.lowrank_locally_connected(x, w, m)  # noqa: E731
    assert torch.autograd.gradcheck(op, (x, weight, mixing))
    assert torch.autograd.gradgradcheck(op, (x, weight, mixing))
    chunked = op(x, weight, mixing)
    monkeypatch.setattr(lowrank, "MAX_OUTPUT_BYTES", 16 << 20)  # one call
    torch.testing.assert_close(chunked, op(x, weight, mixing), rtol=0, atol=1e-12)


def test_transposed_under_vmap_uses_the_aten_scatter():
    y = torch.randn(3, 2, 2, 3, dtype=torch.float64)
    weight = torch.randn(2, 3, 2, 3, 2, 2, dtype=torch.float64)
    batched = torch.func.vmap(lambda t: LF.locally_connected_transpose(t, weight, stride=2))(y)
    one_by_one = torch.stack([LF.locally_connected_transpose(t, weight, stride=2) for t in y])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-12)
