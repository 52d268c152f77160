"""Choose the implementation of each connectivity op for the inputs at hand.

Inputs arrive validated and zero padded; see :mod:`locality.kernels.reference` for the shapes.

Locally connected:

- while ``torch.export`` or ``torch.jit`` (and so either ONNX exporter) traces, under a
  ``torch.func`` transform (vmap, grad, jvp) or with forward-mode AD tangents
  (``torch.autograd.forward_ad``): :func:`locality.kernels.reference.locally_connected`, ATen ops
  only, which every exporter, functorch transform and forward-mode AD understands (custom ops
  have no forward-mode formula);
- CUDA with Triton: :func:`locality.kernels.triton_local.locally_connected` (fused kernels);
- otherwise (CPU, CUDA without Triton, torch.compile): the ``locality::locally_connected`` custom
  op (:mod:`locality.kernels.local_op`).

Under autocast the custom-op paths get their operands cast to the autocast dtype.

Tiled: a locally connected layer when every position has its own kernel, else the formulation
:func:`tiled_path` names (of ``locality.kernels.tiled.FORMULATIONS``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.autograd.forward_ad as forward_ad
from torch.utils._python_dispatch import _get_current_dispatch_mode

from locality.kernels import local_op, reference, tiled

#: A tile runs ``per_offset`` when it has at most ``PER_OFFSET_MAX_KERNELS`` kernels
#: (prod(tile_size)) and each kernel's strided convolution has at least
#: ``PER_OFFSET_MIN_POSITIONS`` output positions; otherwise ``batched_gemm``. Measured with
#: ``benchmarks/connectivity.py`` on an idle 2-core CPU (docs/performance.md), forward+backward:
#: ``per_offset`` was faster at 2 kernels x 128 positions (1-D t=2), 4 x 256 (CIFAR t=2) and
#: 8 x 512 (3-D t=2), ``batched_gemm`` at 8 x 32 (1-D t=8), 16 x 64 (CIFAR t=4), 64 x 16 (CIFAR
#: t=8) and 64 x 64 (3-D t=4): small strided convolutions run far below the shared one's rate and
#: ``per_offset`` pays R input-sized gradients, while ``batched_gemm`` costs about the same at
#: every tile.
PER_OFFSET_MAX_KERNELS = 8
PER_OFFSET_MIN_POSITIONS = 128


def _functorch_wrapped(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor is a torch.func (vmap/grad) wrapper, which custom ops do not support."""
    return any(
        t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors
    )


def _has_tangent(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor carries a forward-mode AD tangent (``torch.autograd.forward_ad``)."""
    return any(t is not None and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _aten_only(*tensors: torch.Tensor | None) -> bool:
    """Whether only ATen ops will do: exporting, TorchScript tracing, functorch, forward AD."""
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        return True
    if torch.compiler.is_compiling():
        return False
    return _functorch_wrapped(*tensors) or _has_tangent(*tensors)


def locally_connected_path(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    """The name of the implementation :func:`locally_connected` runs for these tensors."""
    if _aten_only(x, weight, bias):
        return "reference"
    if x.device.type == "cuda":
        try:
            from locality.kernels import triton_local
        except ImportError:  # triton is not installed
            pass
        else:
            if triton_local.available():
                return "triton"
    return "chunked_bmm"


def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *out_size); see the module docstring for the choice."""
    path = locally_connected_path(x, weight, bias)
    if path == "reference":
        return reference.locally_connected(x, weight, bias, stride, dilation, groups)
    # Custom ops are opaque to autocast: cast their operands here, as autocast does for matmul.
    if torch.amp.is_autocast_available(x.device.type) and torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    if path == "triton":
        from locality.kernels import triton_local

        return triton_local.locally_connected(x, weight, bias, stride, dilation, groups)
    return local_op.locally_connected(x, weight, bias, list(stride), list(dilation), groups)


def tiled_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    out_size: Sequence[int],
) -> torch.Tensor:
    """(N, C, *S) padded -> (N, O, *out_size)."""
    d = len(out_size)
    if torch.jit.is_tracing():
        # TorchScript tracing (torch.onnx.export(..., dynamo=False)) records sizes as constants
        # and ONNX has no slice_scatter: run the layer as locally connected, gathering kernel
        # i mod t for every position (exact; the exported graph holds that gather).
        tile, size = weight.shape[:d], [int(o) for o in out_size]
        if bias is not None and bias.dim() > 1:
            bias = reference.tile_over(bias, tile, size)
        kernels = reference.tile_over(weight, tile, size)
        return reference.locally_connected(x, kernels, bias, stride, dilation, groups)
    whole = all(t >= o for t, o in zip(weight.shape[:d], out_size, strict=True))
    if whole and any(o > 1 for o in out_size):
        # Every output position has a kernel of its own: a locally connected layer.
        crop = tuple(slice(0, o) for o in out_size)
        if bias is not None and bias.dim() > 1:
            bias = bias[crop]
        return locally_connected(x, weight[crop], bias, stride, dilation, groups)
    path = tiled_path(x, weight, bias, out_size)
    return tiled.FORMULATIONS[path](x, weight, bias, stride, dilation, groups, out_size)


def tiled_path(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_size: Sequence[int]
) -> str:
    """The formulation :func:`tiled_conv` runs when the tile does not cover the output.

    ``per_offset`` (convolutions, ATen only) while exporting, tracing or compiling, under
    ``torch.func`` transforms, and under a dispatch mode such as ``FlopCounterMode`` (which then
    counts the layer's own FLOPs); otherwise by the number of kernels and the output positions
    each one covers, see :data:`PER_OFFSET_MAX_KERNELS`.
    """
    if _aten_only(x, weight, bias) or torch.compiler.is_compiling():
        return "per_offset"
    if _get_current_dispatch_mode() is not None:
        return "per_offset"
    d = (weight.dim() - 2) // 2
    kernels = math.prod(weight.shape[:d])
    few = kernels <= PER_OFFSET_MAX_KERNELS
    large = math.prod(out_size) >= PER_OFFSET_MIN_POSITIONS * kernels
    return "per_offset" if few and large else "batched_gemm"
