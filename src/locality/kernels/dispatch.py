"""Choose the implementation of each connectivity op for the inputs at hand.

Inputs arrive validated and zero padded; see :mod:`locality.kernels.reference` for the shapes.

Locally connected:

- while ``torch.export`` (and so the ONNX exporter) traces, or under a ``torch.func`` transform
  (vmap, grad), :func:`locality.kernels.reference.locally_connected`: ATen ops only, which every
  exporter and functorch transform understands;
- CUDA with Triton: :func:`locality.kernels.triton_local.locally_connected` (fused kernels);
- otherwise (CPU, CUDA without Triton, torch.compile): the ``locality::locally_connected`` custom
  op (:mod:`locality.kernels.local_op`).

Under autocast the custom-op paths get their operands cast to the autocast dtype.

Tiled: a locally connected layer when every position has its own kernel, else the formulation
``locality.kernels.tiled.CHOSEN``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from locality.kernels import local_op, reference, tiled


def _functorch_wrapped(*tensors: torch.Tensor | None) -> bool:
    """Whether any tensor is a torch.func (vmap/grad) wrapper, which custom ops do not support."""
    return any(
        t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors
    )


def locally_connected_path(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    """The name of the implementation :func:`locally_connected` runs for these tensors."""
    if torch.compiler.is_exporting():
        return "reference"
    if not torch.compiler.is_compiling() and _functorch_wrapped(x, weight, bias):
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
    whole = all(t >= o for t, o in zip(weight.shape[:d], out_size, strict=True))
    if whole and any(o > 1 for o in out_size):
        # Every output position has a kernel of its own: a locally connected layer.
        crop = tuple(slice(0, o) for o in out_size)
        if bias is not None and bias.dim() > 1:
            bias = bias[crop]
        return locally_connected(x, weight[crop], bias, stride, dilation, groups)
    return tiled.FORMULATIONS[tiled.CHOSEN](x, weight, bias, stride, dilation, groups, out_size)
