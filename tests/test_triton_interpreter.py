"""The Triton kernels of ``locality.kernels.triton_local``, run on CPU by Triton's interpreter.

Forward, grad_input and grad_weight are compared with ``reference.locally_connected`` (autograd
through ATen ops) on tiny shapes covering 1-D/2-D/3-D, stride, dilation, groups, the three bias
layouts and more than one block along N, O and C/g*K. Skipped when triton is not installed.
bfloat16 is not checked here: the interpreter (Triton 3.7) computes bfloat16 ``tl.dot`` wrongly
on CPU; float16 runs the same reduced-precision code path.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are decorated, at import

import pytest  # noqa: E402

pytest.importorskip("triton")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from locality.kernels import reference, triton_local  # noqa: E402

NAMES = ["out", "grad_x", "grad_w", "grad_b"]

# (N, C, O, spatial, kernel, stride, dilation, groups, bias: None | "shared" | "local")
CASES = [
    (3, 4, 6, (7, 8), (3, 2), (2, 3), (1, 2), 2, "local"),
    (2, 3, 5, (9,), (3,), (2,), (2,), 1, "shared"),
    (16, 2, 4, (4, 5, 5), (2, 3, 2), (2, 2, 1), (1, 1, 2), 2, None),  # N % 16 == 0: aligned
    (70, 3, 70, (4, 5), (2, 3), (1, 1), (1, 1), 1, "shared"),  # 2 blocks along N and O, CGK 18
    (2, 9, 3, (4, 4), (3, 3), (1, 1), (1, 1), 1, None),  # C/g*K = 81: 2 blocks along K
]


def _inputs(case, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x (N, C, *S), weight (*out, O, C/g, *k), bias, all requiring grad."""
    n, c, o, spatial, kernel, stride, dilation, groups, bias_kind = case
    sizes = zip(spatial, kernel, stride, dilation, strict=True)
    out = [(s - dl * (k - 1) - 1) // st + 1 for s, k, st, dl in sizes]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, *spatial, generator=gen).to(dtype).requires_grad_()
    weight = torch.randn(*out, o, c // groups, *kernel, generator=gen).to(dtype).requires_grad_()
    bias_shape = {None: None, "shared": (o,), "local": (*out, o)}[bias_kind]
    bias = None if bias_shape is None else torch.randn(bias_shape, generator=gen).to(dtype)
    return x, weight, None if bias is None else bias.requires_grad_()


def _run(fn, case, x, weight, bias) -> list[torch.Tensor]:
    """[output, grad x, grad weight(, grad bias)] for a fixed random output gradient."""
    stride, dilation, groups = case[5], case[6], case[7]
    y = fn(x, weight, bias, stride, dilation, groups)
    inputs = [x, weight] + ([bias] if bias is not None else [])
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype)
    return [y.detach(), *torch.autograd.grad(y, inputs, grad_out)]


def test_kernels_run_interpreted():
    """If triton_local was imported before TRITON_INTERPRET was set, every test here is void."""
    assert isinstance(triton_local._forward_kernel, InterpretedFunction)
    assert triton_local.available()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c[3])}d-g{c[7]}-{c[8]}-n{c[0]}")
def test_matches_reference_float32(case):
    x, weight, bias = _inputs(case, torch.float32)
    assert triton_local.supported(x, weight, bias)
    got = _run(triton_local.locally_connected, case, x, weight, bias)
    want = _run(reference.locally_connected, case, x, weight, bias)
    for name, g, w in zip(NAMES[: len(want)], got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5, msg=name)


def test_matches_reference_float16():
    case = CASES[0]
    x, weight, bias = _inputs(case, torch.float16)
    got = _run(triton_local.locally_connected, case, x, weight, bias)
    x32, w32, b32 = (t.detach().float().requires_grad_() for t in (x, weight, bias))
    want = _run(reference.locally_connected, case, x32, w32, b32)
    for name, g, w in zip(NAMES[: len(want)], got, want, strict=True):
        assert g.dtype == torch.float16, name
        torch.testing.assert_close(g.float(), w, rtol=1e-2, atol=1e-2, msg=name)


@pytest.mark.parametrize("case", CASES[:2], ids=["2d-local-bias", "1d-shared-bias"])
def test_second_derivatives_match_reference(case):
    """A gradient penalty: d/d(x, W, b) of |dL/dW|^2 through the Triton ops' own autograd."""
    x, weight, bias = _inputs(case, torch.float32)
    stride, dilation, groups = case[5], case[6], case[7]

    def penalty_grads(fn):
        y = fn(x, weight, bias, stride, dilation, groups)
        (grad_w,) = torch.autograd.grad(y.square().sum(), weight, create_graph=True)
        return torch.autograd.grad(grad_w.square().sum(), [x, weight, bias])

    got = penalty_grads(triton_local.locally_connected)
    want = penalty_grads(reference.locally_connected)
    for name, g, w in zip(["x", "weight", "bias"], got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-3 * w.abs().max().item(), msg=name)


def test_custom_op_registrations():
    """Fake tensors, autograd and schema as torch.compile/export rely on (opcheck)."""
    case = CASES[0]
    x, weight, bias = _inputs(case, torch.float32)
    args = (x, weight, bias, list(case[5]), list(case[6]), case[7])
    torch.library.opcheck(torch.ops.locality.locally_connected_triton.default, args)


def test_flop_counter_counts_forward_and_backward():
    case = CASES[0]
    x, weight, bias = _inputs(case, torch.float32)
    with FlopCounterMode(display=False) as counter:
        y = triton_local.locally_connected(x, weight, bias, case[5], case[6], case[7])
        y.sum().backward()
    per_product = 2 * x.shape[0] * math.prod(weight.shape)
    assert counter.get_total_flops() == 3 * per_product


def test_unsupported_dtype_falls_back_to_reference():
    case = CASES[1]
    x, weight, bias = _inputs(case, torch.float64)
    assert not triton_local.supported(x, weight, bias)
    got = triton_local.locally_connected(x, weight, bias, case[5], case[6], case[7])
    want = reference.locally_connected(x, weight, bias, case[5], case[6], case[7])
    torch.testing.assert_close(got, want)


def test_available_honours_disable_switch(monkeypatch):
    monkeypatch.setenv(triton_local.DISABLE_ENV, "1")
    assert not triton_local.available()


def test_module_imports_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "from locality.kernels import triton_local\n"
        "assert not triton_local.available()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
