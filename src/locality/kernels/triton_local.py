"""Triton kernels for the locally connected op: forward, grad_input and grad_weight.

Each output position ``p`` is a small matrix product. The kernels read the input in a batch-last
layout ``xt = (*S, C, N)`` (one input-sized copy), so patch column ``(c, k)`` of position ``p`` is
a contiguous run of N values at ``origin(p) + column(c, k)``: the origin is computed per program,
the column offsets come from a (C/g*K,) int32 table cached per geometry (no integer divisions in
the inner loops). No patch tensor is ever materialised.

- forward, one program per (position, group and O block, N block), looping over C/g*K:
  ``out[:, o, p] = weight[p] (O/g x C/g*K) @ patch[p] (C/g*K x N)`` (+ bias);
- grad_weight, one program per (position, group and O block, K block), looping over N:
  ``grad_weight[p] = grad_out[p] (O/g x N) @ patch[p]^T (N x C/g*K)``;
- grad_input, one program per (position, group and K block, N block), looping over O/g:
  ``weight[p]^T @ grad_out[p]`` added onto the input window with fp32 atomics (windows overlap).

Products accumulate in fp32; bf16 and fp16 are read and written as such. float32 uses IEEE
products unless ``torch.backends.cuda.matmul.allow_tf32`` allows TF32, as ``torch.matmul`` does.
Every rank is run as 3-D (missing leading dimensions of size 1), so d = 1, 2 and 3 share kernels.
Other devices (unless interpreted), other dtypes, ranks above 3 and tensors too large for int32
indexing fall back to
:func:`locality.kernels.reference.locally_connected`.

The entry point is the custom op ``locality::locally_connected_triton`` (with
``..._grad_input``/``..._grad_weight`` for its backward), with fake implementations, autograd
(to any order) and flop formulas, so torch.compile, torch.export and FlopCounterMode see
through it. Triton is imported only if installed; :func:`available` says whether it is. The kernels
use Triton 3.6 APIs and run on CPU tensors under ``TRITON_INTERPRET=1`` (set before import).

Shapes (d spatial dimensions, P = prod(out_size), K = prod(kernel_size), g = groups):
    x:        (N, C, *S), zero padding applied
    weight:   (*out_size, O, C // g, *kernel_size)
    bias:     None, (O,) or (*out_size, O)
    grad_out: (N, O, *out_size)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import torch

from locality.kernels import local_op, reference
from locality.kernels.chunked_bmm import batch_last

#: Set to 1 to make :func:`available` report False (dispatch then uses the PyTorch path).
DISABLE_ENV = "LOCALITY_DISABLE_TRITON"

#: Software-pipeline depth of the forward's loop over C/g*K. Its input loads are indirect (through
#: the column table), and Triton 3.6 double-buffers them only from 5 stages on (read off the sm_90
#: PTX: 3 or 4 stages wait on every copy each iteration). Not tuned on a GPU yet.
FORWARD_STAGES = 5

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_INT32_MAX = 2**31 - 1

try:
    import triton
    import triton.language as tl
except ImportError:
    _HAS_TRITON = False
else:
    _HAS_TRITON = True

if _HAS_TRITON:

    @triton.jit
    def _origin(p, OH, OW, H, W, SD, SH, SW, CN):
        """Offset into xt (D, H, W, C, N), C * N = CN, of the first element of window p."""
        pd = p // (OH * OW)
        ph = (p // OW) % OH
        pw = p % OW
        return ((pd * SD * H + ph * SH) * W + pw * SW) * CN

    @triton.jit
    def _columns(cols_ptr, k, k_ok, ALIGNED: tl.constexpr):
        """Offsets of patch columns k from their window's origin (a table: no divisions here)."""
        cols = tl.load(cols_ptr + k, mask=k_ok, other=0)
        if ALIGNED:  # N % 16 == 0: every column starts 16-element aligned, so loads vectorize
            cols = tl.multiple_of(cols, 16)
        return cols

    @triton.jit
    def _forward_kernel(
        xt_ptr,
        w_ptr,
        b_ptr,
        cols_ptr,
        out_ptr,
        N,
        CN,
        CG,
        OC,
        OG,
        CGK,
        P,
        OH,
        OW,
        H,
        W,
        SD,
        SH,
        SW,
        O_BLOCKS,
        BIAS_STRIDE,
        HAS_BIAS: tl.constexpr,
        ALIGNED: tl.constexpr,
        PRECISION: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_O: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        """out[n, g*OG + o, p] = sum_k weight[p, g*OG + o, k] * xt[window(p, k), g, n] (+ bias)."""
        p = tl.program_id(0)
        g = tl.program_id(1) // O_BLOCKS
        o = (tl.program_id(1) % O_BLOCKS) * BLOCK_O + tl.arange(0, BLOCK_O)
        n = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        o_ok, n_ok = o < OG, n < N
        channel = g * OG + o
        w_rows = w_ptr + (p.to(tl.int64) * OC + channel)[:, None] * CGK
        x_window = xt_ptr + _origin(p, OH, OW, H, W, SD, SH, SW, CN) + g * CG * N + n[None, :]
        # tl.full, a builtin, not tl.zeros, a @triton.jit library function: the interpreter cannot
        # call those when triton.language was imported before TRITON_INTERPRET=1 was set.
        acc = tl.full((BLOCK_O, BLOCK_N), 0.0, dtype=tl.float32)
        for k0 in range(0, CGK, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            k_ok = k < CGK
            cols = _columns(cols_ptr, k, k_ok, ALIGNED)
            w = tl.load(w_rows + k[None, :], mask=o_ok[:, None] & k_ok[None, :], other=0.0)
            xs = tl.load(x_window + cols[:, None], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            acc = tl.dot(w, xs, acc, input_precision=PRECISION)
        if HAS_BIAS:
            bias = tl.load(b_ptr + p * BIAS_STRIDE + channel, mask=o_ok, other=0.0)
            acc += bias.to(tl.float32)[:, None]
        out = out_ptr + n[None, :] * (OC * P) + channel[:, None] * P + p
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=o_ok[:, None] & n_ok[None, :])

    @triton.jit
    def _grad_weight_kernel(
        xt_ptr,
        gyt_ptr,
        cols_ptr,
        gw_ptr,
        N,
        CN,
        CG,
        OC,
        OG,
        CGK,
        P,
        OH,
        OW,
        H,
        W,
        SD,
        SH,
        SW,
        O_BLOCKS,
        ALIGNED: tl.constexpr,
        PRECISION: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_O: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        """grad_weight[p, g*OG + o, k] = sum_n gyt[p, g*OG + o, n] * xt[window(p, k), g, n]."""
        p = tl.program_id(0)
        g = tl.program_id(1) // O_BLOCKS
        o = (tl.program_id(1) % O_BLOCKS) * BLOCK_O + tl.arange(0, BLOCK_O)
        k = tl.program_id(2) * BLOCK_K + tl.arange(0, BLOCK_K)
        o_ok, k_ok = o < OG, k < CGK
        channel = g * OG + o
        cols = _columns(cols_ptr, k, k_ok, ALIGNED)
        x_cols = xt_ptr + _origin(p, OH, OW, H, W, SD, SH, SW, CN) + g * CG * N + cols[None, :]
        gy_rows = gyt_ptr + (p * OC + channel)[:, None] * N
        acc = tl.full((BLOCK_O, BLOCK_K), 0.0, dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            n = n0 + tl.arange(0, BLOCK_N)
            n_ok = n < N
            gy = tl.load(gy_rows + n[None, :], mask=o_ok[:, None] & n_ok[None, :], other=0.0)
            xs = tl.load(x_cols + n[:, None], mask=n_ok[:, None] & k_ok[None, :], other=0.0)
            acc = tl.dot(gy, xs, acc, input_precision=PRECISION)
        gw = gw_ptr + (p.to(tl.int64) * OC + channel)[:, None] * CGK + k[None, :]
        tl.store(gw, acc.to(gw_ptr.dtype.element_ty), mask=o_ok[:, None] & k_ok[None, :])

    @triton.jit
    def _grad_input_kernel(
        gyt_ptr,
        w_ptr,
        cols_ptr,
        gxt_ptr,
        N,
        CN,
        CG,
        OC,
        OG,
        CGK,
        P,
        OH,
        OW,
        H,
        W,
        SD,
        SH,
        SW,
        K_BLOCKS,
        ALIGNED: tl.constexpr,
        PRECISION: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_O: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        """gxt[window(p, k), g, n] += sum_o weight[p, g*OG + o, k] * gyt[p, g*OG + o, n] (fp32)."""
        p = tl.program_id(0)
        g = tl.program_id(1) // K_BLOCKS
        k = (tl.program_id(1) % K_BLOCKS) * BLOCK_K + tl.arange(0, BLOCK_K)
        n = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        k_ok, n_ok = k < CGK, n < N
        acc = tl.full((BLOCK_K, BLOCK_N), 0.0, dtype=tl.float32)
        for o0 in range(0, OG, BLOCK_O):
            o = o0 + tl.arange(0, BLOCK_O)
            o_ok = o < OG
            channel = g * OG + o
            w = tl.load(
                w_ptr + (p.to(tl.int64) * OC + channel)[None, :] * CGK + k[:, None],
                mask=k_ok[:, None] & o_ok[None, :],
                other=0.0,
            )
            gy = tl.load(
                gyt_ptr + (p * OC + channel)[:, None] * N + n[None, :],
                mask=o_ok[:, None] & n_ok[None, :],
                other=0.0,
            )
            acc = tl.dot(w, gy, acc, input_precision=PRECISION)
        cols = _columns(cols_ptr, k, k_ok, ALIGNED)
        window = gxt_ptr + _origin(p, OH, OW, H, W, SD, SH, SW, CN) + g * CG * N
        gx = window + cols[:, None] + n[None, :]
        tl.atomic_add(gx, acc, mask=k_ok[:, None] & n_ok[None, :], sem="relaxed")


#: Whether the kernels were built for Triton's CPU interpreter (TRITON_INTERPRET=1 at import).
_INTERPRETED = _HAS_TRITON and not isinstance(_forward_kernel, triton.runtime.JITFunction)


def available() -> bool:
    """Whether Triton is importable and not disabled by ``LOCALITY_DISABLE_TRITON=1``."""
    return _HAS_TRITON and os.environ.get(DISABLE_ENV, "0") != "1"


def supported(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether the kernels handle these tensors (else :func:`locally_connected` runs the reference).

    Needs CUDA tensors (any device under the interpreter), 1 to 3 spatial dimensions, x and
    weight (and bias) of one dtype among float32, bfloat16 and float16, and input, output and
    grad tensors addressable by int32.
    """
    d = (weight.dim() - 2) // 2
    dtypes = {x.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
    out_numel = x.shape[0] * weight.shape[d] * math.prod(weight.shape[:d])
    return (
        (x.device.type == "cuda" or _INTERPRETED)
        and 1 <= d <= 3
        and len(dtypes) == 1
        and x.dtype in _DTYPES
        and max(x.numel(), out_numel) <= _INT32_MAX
    )


def _block(size: int, high: int) -> int:
    """A power of two covering ``size`` within [16, high] (tl.dot needs at least 16)."""
    return max(16, min(high, 1 << max(0, size - 1).bit_length()))


def _precision(dtype: torch.dtype) -> str:
    """IEEE float32 products unless TF32 is allowed, as for torch.matmul."""
    tf32 = dtype != torch.float32 or torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else "ieee"


def _geometry(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    device: torch.device,
) -> dict[str, Any]:
    """The arguments shared by the three kernels, the problem lifted to 3-D."""
    d = len(stride)
    lead = (1,) * (3 - d)
    spatial = lead + tuple(x_shape[2:])
    out_size = lead + tuple(w_shape[:d])
    strides = lead + tuple(stride)
    n, cg, oc = x_shape[0], w_shape[d + 1], w_shape[d]
    cols = _column_table(
        spatial, n, x_shape[1], cg, tuple(w_shape[d + 2 :]), tuple(dilation), device
    )
    return dict(
        cols_ptr=cols,
        N=n,
        CN=x_shape[1] * n,
        CG=cg,
        OC=oc,
        OG=oc // groups,
        CGK=cols.numel(),
        P=math.prod(out_size),
        OH=out_size[1],
        OW=out_size[2],
        H=spatial[1],
        W=spatial[2],
        SD=strides[0],
        SH=strides[1],
        SW=strides[2],
        ALIGNED=n % 16 == 0,
    )


@functools.lru_cache(maxsize=64)
def _column_table(
    spatial: tuple[int, ...],
    n: int,
    channels: int,
    group_channels: int,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    device: torch.device,
) -> torch.Tensor:
    """(C/g * K,) int32: offset in xt (*S, C, N) of patch column (c, *k) from its window's origin.

    ``spatial`` is the 3-D padded size; ``kernel`` and ``dilation`` have d entries.
    """
    lead = 3 - len(kernel)
    steps = [torch.arange(k) * dl for k, dl in zip(kernel, dilation, strict=True)]
    offsets = torch.zeros((), dtype=torch.int64)
    for step, size in zip(steps, spatial[lead:], strict=True):
        offsets = offsets[..., None] * size + step
    columns = torch.arange(group_channels)[:, None] * n + offsets.flatten() * (channels * n)
    return columns.flatten().to(device=device, dtype=torch.int32)


@torch.library.custom_op("locality::locally_connected_triton", mutates_args=())
def _forward_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) -> (N, O, *out_size)."""
    d = len(stride)
    geo = _geometry(x.shape, weight.shape, stride, dilation, groups, x.device)
    out = x.new_empty((x.shape[0], weight.shape[d], *weight.shape[:d]))
    block_n, block_o = _block(geo["N"], 64), _block(geo["OG"], 64)
    o_blocks = triton.cdiv(geo["OG"], block_o)
    grid = (geo["P"], groups * o_blocks, triton.cdiv(geo["N"], block_n))
    bias_arg = weight if bias is None else bias.contiguous()
    _forward_kernel[grid](
        xt_ptr=batch_last(x),
        w_ptr=weight.contiguous(),
        b_ptr=bias_arg,
        out_ptr=out,
        **geo,
        O_BLOCKS=o_blocks,
        BIAS_STRIDE=0 if bias is None or bias.dim() == 1 else geo["OC"],
        HAS_BIAS=bias is not None,
        PRECISION=_precision(x.dtype),
        BLOCK_N=block_n,
        BLOCK_O=block_o,
        BLOCK_K=_block(geo["CGK"], 64),
        num_stages=FORWARD_STAGES,
    )
    return out


@torch.library.custom_op("locality::locally_connected_triton_grad_input", mutates_args=())
def _grad_input_op(
    grad_out: torch.Tensor,
    weight: torch.Tensor,
    spatial: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, O, *out_size) -> (N, C, *spatial)."""
    d = len(stride)
    channels = weight.shape[d + 1] * groups
    x_shape = (grad_out.shape[0], channels, *spatial)
    geo = _geometry(x_shape, weight.shape, stride, dilation, groups, weight.device)
    gxt = grad_out.new_zeros((*spatial, channels, grad_out.shape[0]), dtype=torch.float32)
    block_n, block_k = _block(geo["N"], 64), _block(geo["CGK"], 64)
    k_blocks = triton.cdiv(geo["CGK"], block_k)
    grid = (geo["P"], groups * k_blocks, triton.cdiv(geo["N"], block_n))
    _grad_input_kernel[grid](
        gyt_ptr=batch_last(grad_out),
        w_ptr=weight.contiguous(),
        gxt_ptr=gxt,
        **geo,
        K_BLOCKS=k_blocks,
        PRECISION=_precision(weight.dtype),
        BLOCK_N=block_n,
        BLOCK_O=_block(geo["OG"], 64),
        BLOCK_K=block_k,
    )
    return gxt.permute(d + 1, d, *range(d)).to(weight.dtype, memory_format=torch.contiguous_format)


@torch.library.custom_op("locality::locally_connected_triton_grad_weight", mutates_args=())
def _grad_weight_op(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, O, *out_size), (N, C, *S) -> (*out_size, O, C // g, *kernel_size)."""
    w_shape = (*grad_out.shape[2:], grad_out.shape[1], x.shape[1] // groups, *kernel_size)
    geo = _geometry(x.shape, w_shape, stride, dilation, groups, x.device)
    gw = x.new_empty(w_shape)
    block_o, block_k = _block(geo["OG"], 64), _block(geo["CGK"], 64)
    o_blocks = triton.cdiv(geo["OG"], block_o)
    grid = (geo["P"], groups * o_blocks, triton.cdiv(geo["CGK"], block_k))
    _grad_weight_kernel[grid](
        xt_ptr=batch_last(x),
        gyt_ptr=batch_last(grad_out),
        gw_ptr=gw,
        **geo,
        O_BLOCKS=o_blocks,
        PRECISION=_precision(x.dtype),
        BLOCK_N=_block(geo["N"], 64),
        BLOCK_O=block_o,
        BLOCK_K=block_k,
    )
    return gw


# Fakes, autograd to any order and flop formulas, as for the PyTorch path's op family.
local_op.register_op_family("locality::locally_connected_triton", output_dtype=True)


def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *out_size) by the Triton kernels, differentiable to any order.

    Falls back to :func:`locality.kernels.reference.locally_connected` where :func:`supported`
    says no. Autocast casting is the caller's (:mod:`locality.kernels.dispatch`).
    """
    if not supported(x, weight, bias):
        return reference.locally_connected(x, weight, bias, stride, dilation, groups)
    return _forward_op(x, weight, bias, list(stride), list(dilation), groups)
