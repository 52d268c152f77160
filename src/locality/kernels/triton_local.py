"""Triton kernels for the locally connected op: forward, grad_input and grad_weight.

Each program owns one output position ``p`` and computes its small matrix product
``x_patch[p] (N x C/g*K) @ weight[p]^T (C/g*K x O/g)`` by gathering the patch straight from the
padded input while it streams ``weight[p]`` once: no patch tensor exists in memory. Every rank is
run as 3-D (missing leading dimensions have size 1), so one kernel serves d = 1, 2 and 3.

This module imports triton; :mod:`locality.kernels.local_op` imports it only when a kernel runs.
Compatible with Triton 3.6 (the kernels use only ``tl.load/store/dot/atomic_add``), and runnable on
CPU tensors under ``TRITON_INTERPRET=1``.

Shapes (as 3-D, P = OD * OH * OW, K = KD * KH * KW, g = groups):
    x:      (N, C, D, H, W) padded, contiguous
    weight: (P, O, C // g, K) contiguous
    out:    (N, O, P)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _patch_offsets(k, p, OH, OW, H, W, KH, KW, SD, SH, SW, DD, DH, DW, DHW, KVOL):
    """Offsets into one (C, D, H, W) image of patch column ``k`` (c, kd, kh, kw) at position p."""
    c = k // KVOL
    kr = k % KVOL
    kd = kr // (KH * KW)
    kh = (kr // KW) % KH
    kw = kr % KW
    pd = p // (OH * OW)
    ph = (p // OW) % OH
    pw = p % OW
    return c * DHW + (pd * SD + kd * DD) * (H * W) + (ph * SH + kh * DH) * W + (pw * SW + kw * DW)


@triton.jit
def _forward_kernel(
    x_ptr, w_ptr, out_ptr,
    N, C, O, OG, CGK, P, OH, OW, H, W, KH, KW, DHW, KVOL,
    SD, SH, SW, DD, DH, DW, O_BLOCKS,
    IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_K: tl.constexpr,
):
    p = tl.program_id(0)
    nb = tl.program_id(1)
    group = tl.program_id(2) // O_BLOCKS
    ob = tl.program_id(2) % O_BLOCKS
    n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    o = ob * BLOCK_O + tl.arange(0, BLOCK_O)
    cg = CGK // KVOL
    x_base = x_ptr + n.to(tl.int64)[:, None] * (C * DHW) + group * cg * DHW
    w_base = w_ptr + (p.to(tl.int64) * O + group * OG + o)[None, :] * CGK
    acc = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)
    for k0 in range(0, CGK, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        offs = _patch_offsets(k, p, OH, OW, H, W, KH, KW, SD, SH, SW, DD, DH, DW, DHW, KVOL)
        a = tl.load(x_base + offs[None, :], mask=(n[:, None] < N) & (k[None, :] < CGK), other=0.0)
        b = tl.load(w_base + k[:, None], mask=(k[:, None] < CGK) & (o[None, :] < OG), other=0.0)
        if IEEE:
            acc += tl.dot(a, b, input_precision="ieee")
        else:
            acc += tl.dot(a, b)
    out = out_ptr + n.to(tl.int64)[:, None] * (O * P) + (group * OG + o)[None, :] * P + p
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(n[:, None] < N) & (o[None, :] < OG))


@triton.jit
def _grad_weight_kernel(
    x_ptr, gy_ptr, gw_ptr,
    N, C, O, OG, CGK, P, OH, OW, H, W, KH, KW, DHW, KVOL,
    SD, SH, SW, DD, DH, DW, O_BLOCKS,
    IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """grad_weight[p, o, k] = sum_n grad_out[n, o, p] * x_patch[n, p, k]."""
    p = tl.program_id(0)
    kb = tl.program_id(1)
    group = tl.program_id(2) // O_BLOCKS
    ob = tl.program_id(2) % O_BLOCKS
    o = ob * BLOCK_O + tl.arange(0, BLOCK_O)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    cg = CGK // KVOL
    offs = _patch_offsets(k, p, OH, OW, H, W, KH, KW, SD, SH, SW, DD, DH, DW, DHW, KVOL)
    acc = tl.zeros((BLOCK_O, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        gy = tl.load(gy_ptr + n.to(tl.int64)[None, :] * (O * P) + (group * OG + o)[:, None] * P + p,
                     mask=(o[:, None] < OG) & (n[None, :] < N), other=0.0)
        a = tl.load(x_ptr + n.to(tl.int64)[:, None] * (C * DHW) + group * cg * DHW + offs[None, :],
                    mask=(n[:, None] < N) & (k[None, :] < CGK), other=0.0)
        if IEEE:
            acc += tl.dot(gy, a, input_precision="ieee")
        else:
            acc += tl.dot(gy, a)
    gw = gw_ptr + (p.to(tl.int64) * O + group * OG + o)[:, None] * CGK + k[None, :]
    tl.store(gw, acc.to(gw_ptr.dtype.element_ty), mask=(o[:, None] < OG) & (k[None, :] < CGK))


@triton.jit
def _grad_input_kernel(
    gy_ptr, w_ptr, gx_ptr,
    N, C, O, OG, CGK, P, OH, OW, H, W, KH, KW, DHW, KVOL,
    SD, SH, SW, DD, DH, DW, K_BLOCKS,
    IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """grad_x[n, patch(p, k)] += sum_o grad_out[n, o, p] * weight[p, o, k], by fp32 atomics.

    Overlapping windows write the same input element from different programs, hence atomics.
    """
    p = tl.program_id(0)
    nb = tl.program_id(1)
    group = tl.program_id(2) // K_BLOCKS
    kb = tl.program_id(2) % K_BLOCKS
    n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    cg = CGK // KVOL
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for o0 in range(0, OG, BLOCK_O):
        o = o0 + tl.arange(0, BLOCK_O)
        gy = tl.load(gy_ptr + n.to(tl.int64)[:, None] * (O * P) + (group * OG + o)[None, :] * P + p,
                     mask=(n[:, None] < N) & (o[None, :] < OG), other=0.0)
        b = tl.load(w_ptr + (p.to(tl.int64) * O + group * OG + o)[:, None] * CGK + k[None, :],
                    mask=(o[:, None] < OG) & (k[None, :] < CGK), other=0.0)
        if IEEE:
            acc += tl.dot(gy, b, input_precision="ieee")
        else:
            acc += tl.dot(gy, b)
    offs = _patch_offsets(k, p, OH, OW, H, W, KH, KW, SD, SH, SW, DD, DH, DW, DHW, KVOL)
    gx = gx_ptr + n.to(tl.int64)[:, None] * (C * DHW) + group * cg * DHW + offs[None, :]
    tl.atomic_add(gx, acc, mask=(n[:, None] < N) & (k[None, :] < CGK))


def _block(size: int, low: int, high: int) -> int:
    """A power of two covering ``size`` within [low, high] (tl.dot needs at least 16)."""
    return max(low, min(high, triton.next_power_of_2(size)))


def _as_3d(x: torch.Tensor, weight: torch.Tensor, stride, dilation):
    """View a d-D problem as 3-D: size-1 leading spatial dimensions, stride and dilation 1."""
    d = (weight.dim() - 2) // 2
    lead = 3 - d
    x3 = x.reshape(*x.shape[:2], *(1,) * lead, *x.shape[2:])
    out_size = (1,) * lead + tuple(weight.shape[:d])
    kernel = (1,) * lead + tuple(weight.shape[d + 2 :])
    return x3, out_size, kernel, (1,) * lead + tuple(stride), (1,) * lead + tuple(dilation)


def _args(x3, weight, groups, out_size, kernel, stride, dilation):
    d = (weight.dim() - 2) // 2
    n, c, _, h, w = x3.shape
    o = weight.shape[d]
    kvol = kernel[0] * kernel[1] * kernel[2]
    cgk = (c // groups) * kvol
    p = out_size[0] * out_size[1] * out_size[2]
    dhw = x3.shape[2] * h * w
    return (n, c, o, o // groups, cgk, p, out_size[1], out_size[2], h, w, kernel[1], kernel[2],
            dhw, kvol, *stride, *dilation)


def _ieee(dtype: torch.dtype) -> bool:
    # Match torch.matmul: float32 products use TF32 only where the user allowed it.
    return dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32


def forward(x: torch.Tensor, weight: torch.Tensor, stride, dilation, groups: int) -> torch.Tensor:
    """(N, C, *padded) x (*out, O, C/g, *k) -> (N, O, *out), no bias."""
    d = (weight.dim() - 2) // 2
    x3, out_size, kernel, s3, d3 = _as_3d(x.contiguous(), weight, stride, dilation)
    weight = weight.contiguous()
    args = _args(x3, weight, groups, out_size, kernel, s3, d3)
    n, og, cgk, p = args[0], args[3], args[4], args[5]
    out = x.new_empty((n, weight.shape[d], *weight.shape[:d]))
    block_n, block_o = _block(n, 16, 64), _block(og, 16, 64)
    o_blocks = triton.cdiv(og, block_o)
    grid = (p, triton.cdiv(n, block_n), groups * o_blocks)
    _forward_kernel[grid](x3, weight, out, *args, o_blocks, IEEE=_ieee(x.dtype),
                          BLOCK_N=block_n, BLOCK_O=block_o, BLOCK_K=_block(cgk, 16, 64))
    return out


def grad_weight(grad_out: torch.Tensor, x: torch.Tensor, weight_shape, stride, dilation,
                groups: int) -> torch.Tensor:
    """Per-position outer products summed over the batch, in the weight's own layout."""
    weight_meta = torch.empty(weight_shape, device="meta")
    x3, out_size, kernel, s3, d3 = _as_3d(x.contiguous(), weight_meta, stride, dilation)
    args = _args(x3, weight_meta, groups, out_size, kernel, s3, d3)
    n, og, cgk, p = args[0], args[3], args[4], args[5]
    gw = x.new_empty(weight_shape)
    block_o, block_k = _block(og, 16, 64), _block(cgk, 16, 64)
    o_blocks = triton.cdiv(og, block_o)
    grid = (p, triton.cdiv(cgk, block_k), groups * o_blocks)
    _grad_weight_kernel[grid](x3, grad_out.contiguous(), gw, *args, o_blocks, IEEE=_ieee(x.dtype),
                              BLOCK_N=_block(n, 16, 64), BLOCK_O=block_o, BLOCK_K=block_k)
    return gw


def grad_input(grad_out: torch.Tensor, weight: torch.Tensor, x_shape, stride, dilation,
               groups: int) -> torch.Tensor:
    """Scatter each position's (N x C/g*K) patch gradient onto the padded input."""
    weight = weight.contiguous()
    gx = torch.zeros(x_shape, device=weight.device, dtype=torch.float32)
    x3, out_size, kernel, s3, d3 = _as_3d(gx, weight, stride, dilation)
    args = _args(x3, weight, groups, out_size, kernel, s3, d3)
    n, og, cgk, p = args[0], args[3], args[4], args[5]
    block_n, block_k = _block(n, 16, 64), _block(cgk, 16, 64)
    k_blocks = triton.cdiv(cgk, block_k)
    grid = (p, triton.cdiv(n, block_n), groups * k_blocks)
    _grad_input_kernel[grid](grad_out.contiguous(), weight, x3, *args, k_blocks,
                             IEEE=_ieee(weight.dtype), BLOCK_N=block_n,
                             BLOCK_O=_block(og, 16, 64), BLOCK_K=block_k)
    return gx.to(weight.dtype)
