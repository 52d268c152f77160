"""An independent reference for every connectivity layer: its explicit dense matrix.

Built with nested loops and index arithmetic straight from the definition (output position p uses
kernel p mod grid; padded coordinate p*s + k*dilation maps back to an input coordinate according
to the padding mode), in float64 numpy. Shares no code with the package under test.
"""

from __future__ import annotations

import itertools

import numpy as np


def source_coordinate(j: int, n: int, mode: str) -> int | None:
    """Input coordinate read at unpadded coordinate ``j`` (may be outside [0, n)), or None."""
    if 0 <= j < n:
        return j
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    if mode == "circular":
        return j % n
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, n -> n - 2
        period = 2 * (n - 1)
        j = j % period
        return j if j < n else period - j
    raise AssertionError(mode)


def dense_matrix(
    weight: np.ndarray,
    input_size: tuple[int, ...],
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
    padding_mode: str,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Matrix M with out.flatten() = M @ x.flatten() for one sample (bias excluded).

    ``weight`` has shape (*grid, O, C/g, *k). Rows are ordered (o, *out_pos), columns (c, *in_pos),
    i.e. C-order flattening of (O, *out) and (C, *in).
    """
    d = len(input_size)
    grid = weight.shape[:d]
    out_channels, cg = weight.shape[d], weight.shape[d + 1]
    kernel = weight.shape[d + 2 :]
    out_size = tuple(
        (n + lo + hi - dl * (k - 1) - 1) // s + 1
        for n, (lo, hi), k, s, dl in zip(input_size, pads, kernel, stride, dilation, strict=True)
    )
    in_channels = cg * groups
    og = out_channels // groups
    rows = out_channels * int(np.prod(out_size))
    cols = in_channels * int(np.prod(input_size))
    m = np.zeros((rows, cols))
    for o in range(out_channels):
        g = o // og
        for p in itertools.product(*map(range, out_size)):
            row = np.ravel_multi_index((o, *p), (out_channels, *out_size))
            bank = tuple(pi % gi for pi, gi in zip(p, grid, strict=True))
            for c in range(cg):
                for kk in itertools.product(*map(range, kernel)):
                    src = []
                    for dim in range(d):
                        padded = p[dim] * stride[dim] + kk[dim] * dilation[dim]
                        src.append(
                            source_coordinate(padded - pads[dim][0], input_size[dim], padding_mode)
                        )
                    if any(v is None for v in src):
                        continue
                    col = np.ravel_multi_index((g * cg + c, *src), (in_channels, *input_size))
                    m[row, col] += weight[(*bank, o, c, *kk)]
    return m, out_size


def apply_dense(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int,
    padding_mode: str,
) -> np.ndarray:
    """Apply the layer to a batch ``x`` of shape (N, C, *in) through its dense matrix."""
    d = x.ndim - 2
    m, out_size = dense_matrix(weight, x.shape[2:], stride, pads, dilation, groups, padding_mode)
    out_channels = weight.shape[d]
    out = (x.reshape(x.shape[0], -1) @ m.T).reshape(x.shape[0], out_channels, *out_size)
    if bias is not None:
        grid = weight.shape[:d]
        if bias.ndim == 1:
            out += bias.reshape(1, -1, *([1] * d))
        else:
            for p in itertools.product(*map(range, out_size)):
                bank = tuple(pi % gi for pi, gi in zip(p, grid, strict=True))
                out[(slice(None), slice(None), *p)] += bias[bank]
    return out
