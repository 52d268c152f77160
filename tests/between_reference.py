"""Independent float64 references for the kinds between convolution and locally connected.

Each kind is written from its definition as a per-position kernel (region: the block of
``numpy.array_split`` a position falls in; mapped: the map's entry; low-rank: the mix of basis
kernels), and applied through the explicit dense matrix of ``tests.dense_reference``; the
transposed op is a nested scatter loop. Shares no code with the package under test.
"""

from __future__ import annotations

import itertools

import numpy as np

from tests.dense_reference import dense_matrix


def region_of(out_size: tuple[int, ...], regions: tuple[int, ...]) -> np.ndarray:
    """(*out_size, d) array: the region index of each output position, per dimension."""
    per_dim = []
    for n, r in zip(out_size, regions, strict=True):
        label = np.empty(n, dtype=int)
        for j, block in enumerate(np.array_split(np.arange(n), r)):
            label[block] = j
        per_dim.append(label)
    grids = np.meshgrid(*per_dim, indexing="ij")
    return np.stack(grids, axis=-1)


def out_size_of(input_size, kernel, stride, pads, dilation) -> tuple[int, ...]:
    return tuple(
        (n + lo + hi - dl * (k - 1) - 1) // s + 1
        for n, k, s, (lo, hi), dl in zip(input_size, kernel, stride, pads, dilation, strict=True)
    )


def apply_per_position(x, kernels, bias, stride, pads, dilation, groups, padding_mode):
    """Apply ``kernels`` (*out, O, C/g, *k), one per output position, and ``bias`` (*out, O),
    (O,) or None to a batch ``x`` (N, C, *in), N >= 0, through the explicit dense matrix."""
    d = x.ndim - 2
    m, out_size = dense_matrix(kernels, x.shape[2:], stride, pads, dilation, groups, padding_mode)
    out = (x.reshape(x.shape[0], m.shape[1]) @ m.T).reshape(x.shape[0], kernels.shape[d], *out_size)
    if bias is not None:
        out += bias.reshape(1, -1, *([1] * d)) if bias.ndim == 1 else np.moveaxis(bias, -1, 0)
    return out


def region_kernels(weight, out_size, bias=None):
    """Per-position kernels (and biases) of a region-shared layer with bank ``weight``."""
    d = len(out_size)
    labels = region_of(out_size, weight.shape[:d])
    kernels = np.empty((*out_size, *weight.shape[d:]))
    biases = None if bias is None or bias.ndim == 1 else np.empty((*out_size, bias.shape[-1]))
    for p in itertools.product(*map(range, out_size)):
        r = tuple(labels[p])
        kernels[p] = weight[r]
        if biases is not None:
            biases[p] = bias[r]
    return kernels, bias if biases is None else biases


def mapped_kernels(weight, kernel_map, bias=None):
    """Per-position kernels (and biases) of a mapped layer: position p uses weight[map[p]]."""
    kernels = np.empty((*kernel_map.shape, *weight.shape[1:]))
    biases = (
        None if bias is None or bias.ndim == 1 else np.empty((*kernel_map.shape, bias.shape[-1]))
    )
    for p in itertools.product(*map(range, kernel_map.shape)):
        kernels[p] = weight[kernel_map[p]]
        if biases is not None:
            biases[p] = bias[kernel_map[p]]
    return kernels, bias if biases is None else biases


def lowrank_kernels(weight, mixing):
    """Per-position kernels sum_r mixing[p, r] weight[r]."""
    out_size = mixing.shape[:-1]
    kernels = np.zeros((*out_size, *weight.shape[1:]))
    for p in itertools.product(*map(range, out_size)):
        for r in range(weight.shape[0]):
            kernels[p] += mixing[p][r] * weight[r]
    return kernels


def transpose_loop(y, weight, bias, stride, pads, output_padding, dilation, groups, tile=None):
    """Transposed op by its definition: input position p scatters weight[p] (or weight[p mod
    tile]) onto out[..., p*s + k*dl - before]; bias (*out, O), (*tile, O) or (O,)."""
    n, cin = y.shape[:2]
    d = y.ndim - 2
    in_size = y.shape[2:]
    kernel = weight.shape[d + 2 :]
    cg = weight.shape[d + 1]
    ig = cin // groups
    out_size = tuple(
        (m - 1) * s - lo - hi + dl * (k - 1) + op + 1
        for m, s, (lo, hi), dl, k, op in zip(
            in_size, stride, pads, dilation, kernel, output_padding, strict=True
        )
    )
    out = np.zeros((n, cg * groups, *out_size))
    for p in itertools.product(*map(range, in_size)):
        bank = p if tile is None else tuple(pi % t for pi, t in zip(p, tile, strict=True))
        w = weight[bank]
        for i in range(cin):
            g = i // ig
            for c in range(cg):
                for kk in itertools.product(*map(range, kernel)):
                    q = tuple(p[j] * stride[j] + kk[j] * dilation[j] - pads[j][0] for j in range(d))
                    if all(0 <= q[j] < out_size[j] for j in range(d)):
                        out[(slice(None), g * cg + c, *q)] += (
                            w[(i, c, *kk)] * y[(slice(None), i, *p)]
                        )
    if bias is not None:
        if bias.ndim == 1:
            out += bias.reshape(1, -1, *([1] * d))
        else:
            for q in itertools.product(*map(range, out_size)):
                bank = q if tile is None else tuple(qi % t for qi, t in zip(q, tile, strict=True))
                out[(slice(None), slice(None), *q)] += bias[bank]
    return out
