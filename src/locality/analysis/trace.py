"""One forward pass with a hook on every leaf module: how the analyses see a model."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from locality._arguments import check_module, check_shape
from locality._memory import check_allocation

__all__ = ["example_input", "left_unchanged", "run_with_hooks"]

LeafCallback = Callable[[str, nn.Module, torch.Tensor, torch.Tensor], None]


def example_input(model: nn.Module, input_shape: Sequence[int], where: str) -> torch.Tensor:
    """Zeros of shape ``(1, *input_shape)`` on the device and in the dtype of ``model``.

    Takes both from the model's first floating-point parameter (``float32`` on the CPU when it
    has none), so a model built on ``device="meta"`` is analysed without allocating anything.
    Errors name ``where``, the public function that was called.
    """
    check_module(model, "model", where)
    shape = check_shape(input_shape, "input_shape (without the batch dimension)", where)
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    device, dtype = (None, None) if param is None else (param.device, param.dtype)
    check_allocation((1, *shape), dtype, device, where)
    return torch.zeros(1, *shape, device=device, dtype=dtype)


@contextmanager
def left_unchanged(model: nn.Module) -> Iterator[nn.Module]:
    """The module to run an analysis on, so that ``model`` comes back as it was.

    ``model`` itself in eval mode (BatchNorm's running statistics and ``num_batches_tracked``
    stay as they are; every module's training flag is restored afterwards), or a copy of it
    when it holds lazy modules, which a forward pass would materialise.
    """
    lazy = any(
        isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules()
    )
    run = copy.deepcopy(model) if lazy else model
    modes = {module: module.training for module in run.modules()}
    run.eval()
    try:
        yield run
    finally:
        for module, training in modes.items():
            module.training = training


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def run_with_hooks(model: nn.Module, x: torch.Tensor, callback: LeafCallback, where: str) -> object:
    """Run ``model(x)`` without gradients, calling ``callback`` after every leaf module.

    ``callback(name, module, input, output)`` gets the module's qualified name, its first
    tensor input and its first tensor output, in execution order (a module called twice is
    reported twice). Leaf modules whose input or output holds no tensor are skipped. A model
    that cannot take ``x`` raises a ValueError naming ``where`` and the input shape.
    """

    def hook(name: str) -> Callable[[nn.Module, tuple, object], None]:
        def after(module: nn.Module, inputs: tuple, output: object) -> None:
            first_in, first_out = _first_tensor(inputs), _first_tensor(output)
            if first_in is not None and first_out is not None:
                callback(name, module, first_in, first_out)

        return after

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if not any(True for _ in module.children())
    ]
    try:
        with torch.no_grad():
            return model(x)
    except Exception as error:  # the model's own complaint, whatever its type
        raise ValueError(
            f"{where}: running the model on input_shape {tuple(x.shape[1:])} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
