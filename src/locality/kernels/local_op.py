"""The locally connected op and its two backward products as ``torch.library`` custom ops.

``locality::locally_connected`` runs :mod:`locality.kernels.chunked_bmm` (plain PyTorch, so any
device). Each op has a fake (meta) implementation, a flop formula and an autograd formula made of
the other two, so torch.compile, FlopCounterMode and higher derivatives (gradgradcheck) see
through it:

- ``locally_connected(x, W)``: d/dx -> ``grad_input(g, W)``, d/dW -> ``grad_weight(g, x)``;
- ``grad_input(g, W)``: d/dg -> ``locally_connected(xi, W)``, d/dW -> ``grad_weight(g, xi)``;
- ``grad_weight(g, x)``: d/dg -> ``locally_connected(x, G)``, d/dx -> ``grad_input(g, G)``

(all three are bilinear).

All three cost ``2 * N * weight.numel()`` FLOPs (one multiply-add per weight per sample).

Shapes (d spatial dimensions): x (N, C, *S) padded; weight (*out_size, O, C // g, *kernel_size);
bias None, (O,) or (*out_size, O); grad_out (N, O, *out_size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from locality.kernels import chunked_bmm


@torch.library.custom_op("locality::locally_connected", mutates_args=())
def locally_connected(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, C, *S) -> (N, O, *out_size)."""
    return chunked_bmm.forward(x, weight, bias, stride, dilation, groups)


@torch.library.custom_op("locality::locally_connected_grad_input", mutates_args=())
def grad_input(
    grad_out: torch.Tensor,
    weight: torch.Tensor,
    spatial: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, O, *out_size) -> (N, C, *spatial)."""
    return chunked_bmm.grad_input(grad_out, weight, spatial, stride, dilation, groups)


@torch.library.custom_op("locality::locally_connected_grad_weight", mutates_args=())
def grad_weight(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """(N, O, *out_size), (N, C, *S) -> (*out_size, O, C // g, *kernel_size)."""
    return chunked_bmm.grad_weight(grad_out, x, kernel_size, stride, dilation, groups)


def register_op_family(forward_name: str, output_dtype: bool = False) -> None:
    """Give an op family with this module's signatures its fakes, autograd and flop formulas.

    ``forward_name`` is the forward op's qualified name (``"locality::locally_connected"``); its
    backward products are the ops of the same name with ``_grad_input`` and ``_grad_weight``
    appended. The autograd formulas are made of the family's own ops (the three are bilinear, so
    this closes under differentiation: higher derivatives work). All three cost
    ``2 * N * weight.numel()`` FLOPs. ``output_dtype``: the grad_input fake takes the weight's
    dtype rather than the output gradient's (for kernels that accumulate in another dtype).
    """
    namespace, name = forward_name.split("::")
    ops = getattr(torch.ops, namespace)
    forward, grad_input, grad_weight = (
        getattr(ops, name + suffix) for suffix in ("", "_grad_input", "_grad_weight")
    )

    @torch.library.register_fake(forward_name)
    def _(x, weight, bias, stride, dilation, groups):
        d = (weight.dim() - 2) // 2
        return x.new_empty((x.shape[0], weight.shape[d], *weight.shape[:d]))

    @torch.library.register_fake(forward_name + "_grad_input")
    def _(grad_out, weight, spatial, stride, dilation, groups):
        d = (weight.dim() - 2) // 2
        dtype = weight.dtype if output_dtype else grad_out.dtype
        shape = (grad_out.shape[0], weight.shape[d + 1] * groups, *spatial)
        return grad_out.new_empty(shape, dtype=dtype)

    @torch.library.register_fake(forward_name + "_grad_weight")
    def _(grad_out, x, kernel_size, stride, dilation, groups):
        channels = x.shape[1] // groups
        return x.new_empty((*grad_out.shape[2:], grad_out.shape[1], channels, *kernel_size))

    def setup_forward(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias, stride, dilation, groups = inputs
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, dilation, groups)
        ctx.bias_dim = None if bias is None else bias.dim()

    def backward_forward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, dilation, groups = ctx.geometry
        d = (weight.dim() - 2) // 2
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_input(grad, weight, x.shape[2:], stride, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = grad_weight(grad, x, weight.shape[d + 2 :], stride, dilation, groups)
        if ctx.needs_input_grad[2]:
            per_position = ctx.bias_dim != 1
            grad_b = grad.sum(0).movedim(0, -1) if per_position else grad.sum((0, *range(2, 2 + d)))
        return grad_x, grad_w, grad_b, None, None, None

    def setup_grad_input(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        grad_out, weight, _, stride, dilation, groups = inputs
        ctx.save_for_backward(grad_out, weight)
        ctx.geometry = (stride, dilation, groups)

    def backward_grad_input(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_out, weight = ctx.saved_tensors
        stride, dilation, groups = ctx.geometry
        d = (weight.dim() - 2) // 2
        grad_g = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_g = forward(grad, weight, None, stride, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = grad_weight(grad_out, grad, weight.shape[d + 2 :], stride, dilation, groups)
        return grad_g, grad_w, None, None, None, None

    def setup_grad_weight(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        grad_out, x, _, stride, dilation, groups = inputs
        ctx.save_for_backward(grad_out, x)
        ctx.geometry = (stride, dilation, groups)

    def backward_grad_weight(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_out, x = ctx.saved_tensors
        stride, dilation, groups = ctx.geometry
        grad_g = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_g = forward(x, grad, None, stride, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_x = grad_input(grad_out, grad, x.shape[2:], stride, dilation, groups)
        return grad_g, grad_x, None, None, None, None

    torch.library.register_autograd(forward_name, backward_forward, setup_context=setup_forward)
    torch.library.register_autograd(
        forward_name + "_grad_input", backward_grad_input, setup_context=setup_grad_input
    )
    torch.library.register_autograd(
        forward_name + "_grad_weight", backward_grad_weight, setup_context=setup_grad_weight
    )

    @register_flop_formula([forward, grad_input])
    def _(in_shape, w_shape, *args, **kwargs) -> int:
        """One multiply-add per weight and example (the bias is not counted)."""
        return 2 * in_shape[0] * math.prod(w_shape)

    @register_flop_formula(grad_weight)
    def _(grad_shape, x_shape, *args, out_shape, **kwargs) -> int:
        """One multiply-add per weight-gradient entry and example."""
        return 2 * grad_shape[0] * math.prod(out_shape)


register_op_family("locality::locally_connected")
