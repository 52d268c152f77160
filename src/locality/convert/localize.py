"""Whole-model surgery towards less sharing: every convolution of a model becomes an unshared kind.

The opposite move to ``fully_convolutional``. Pogodin et al. (NeurIPS 2021, "Towards biologically
plausible convolutional networks") train networks whose convolutions are swapped for locally
connected layers after one forward pass has recorded each layer's input size; ``localize`` does
that for any model and any of the less-shared kinds, initialising each new layer from its
convolution so that the converted model computes exactly the same function (until ``noise`` or
training moves it away).

The swap is done on the modules (not on a traced graph), so models that ``torch.fx`` cannot trace
work too: a copy of the model is run once on ``example_input`` in eval mode (BatchNorm statistics
and the original model are untouched) with forward hooks recording each convolution's input size,
then each convolution is replaced at every place it is referenced.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from locality._arguments import check_flag, check_int, ntuple, output_size, padding_amounts
from locality.convert.lattice import to_locally_connected, to_tiled
from locality.layers.lowrank import (
    LowRankLocallyConnected1d,
    LowRankLocallyConnected2d,
    LowRankLocallyConnected3d,
    _LowRankLocallyConnectedNd,
)
from locality.layers.region import RegionConv1d, RegionConv2d, RegionConv3d
from locality.layers.tiled import _TiledConvNd

__all__ = ["localize", "keep_first", "keep_1x1", "KINDS"]

WHERE = "localize"

Keep = Callable[[str, nn.Module], bool]
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
REGION = {1: RegionConv1d, 2: RegionConv2d, 3: RegionConv3d}
LOWRANK = {1: LowRankLocallyConnected1d, 2: LowRankLocallyConnected2d, 3: LowRankLocallyConnected3d}

# The keyword arguments each target kind takes (required ones first), and its conversion.
_ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "locally_connected": ((), ("shared_bias",)),
    "tiled": (("tile_size",), ("shared_bias",)),
    "region": (("regions",), ("shared_bias",)),
    "lowrank": (("rank",), ("normalize", "shared_bias")),
}
KINDS = tuple(_ARGUMENTS)


def localize(
    model: nn.Module,
    example_input: torch.Tensor,
    to: str = "locally_connected",
    *,
    keep: Keep | None = None,
    noise: float = 0.0,
    library_layers: bool = False,
    generator: torch.Generator | None = None,
    **kind_args: Any,
) -> nn.Module:
    """A copy of ``model`` in which every convolution is a less-shared layer computing the same.

    Every ``nn.Conv1d/2d/3d`` (and with ``library_layers=True`` every ``TiledConv1d/2d/3d``) that
    ``keep`` does not exempt is replaced by a layer of kind ``to`` whose kernels are the
    convolution's at every position, so ``localize(model, x, ...)(y) == model(y)`` for inputs
    ``y`` of ``example_input``'s size (up to rounding). ``model`` itself is not changed.

    Args:
        model: any ``nn.Module``; its convolutions must be initialised (run lazy modules first).
        example_input: one input ``model`` accepts (a batch); one forward pass on a copy in eval
            mode records each convolution's input size. Kinds with a weight per position only
            work on inputs of that size afterwards.
        to: ``"locally_connected"`` (one kernel per output position), ``"tiled"`` (needs
            ``tile_size``), ``"region"`` (needs ``regions``) or ``"lowrank"`` (needs ``rank``).
        keep: predicate ``(qualified_name, module) -> bool``; ``True`` leaves that layer as it is.
            See :func:`keep_first` and :func:`keep_1x1`; combine them with a lambda.
        noise: standard deviation of independent Gaussian noise added to every kernel of every new
            layer (each position's copy separately), in units of the standard deviation of the
            source convolution's weights: ``0`` (default) keeps the function exact, a small value
            (Pogodin et al. start from ``eps`` = 0 to 1) breaks the symmetry between positions.
        library_layers: also convert this library's tiled convolutions (exactly; a tiled layer
            is left alone when ``to`` is its own kind).
        generator: the random generator for ``noise`` (default: torch's global one).
        **kind_args: arguments of the target kind: ``shared_bias`` (every kind; default keeps
            the convolution's one bias per channel), ``tile_size`` (tiled), ``regions``
            (region; capped per layer at that layer's output size, where every position is its
            own region), ``rank`` and ``normalize`` (lowrank).

    How each kind starts: a locally connected layer holds the convolution's kernel at every
    position, a tiled one in every tile entry, a region-shared one in every region. A low-rank
    layer keeps its default uniform mix (every position the mean basis kernel, as Elsayed et
    al. initialise it) and its own random basis shifted so that the mean basis kernel is the
    convolution's: exact, yet the basis kernels differ, so training can move the positions apart
    (with equal basis kernels it never could). ``noise`` goes to each kernel of the new bank, and
    for a low-rank layer to each position's mixing logits (standard deviation ``noise``).

    Returns:
        The converted copy, in the same training mode as ``model``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
        >>> x = torch.randn(2, 3, 8, 8)
        >>> local = localize(net, x, keep=keep_1x1)
        >>> type(local[0]).__name__, type(local[2]).__name__
        ('LocallyConnected2d', 'Conv2d')
        >>> torch.allclose(local(x), net(x), atol=1e-6)
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{WHERE}: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(
            f"{WHERE}: example_input must be a torch.Tensor, got {type(example_input).__name__}"
        )
    _check_kind(to, kind_args)
    if keep is not None and not callable(keep):
        raise TypeError(f"{WHERE}: keep must be a callable (name, module) -> bool, got {keep!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"{WHERE}: noise must be a number >= 0, got {noise!r}")
    check_flag(library_layers, "library_layers", WHERE)

    copied = copy.deepcopy(model)
    targets = _targets(copied, to, keep, library_layers)
    sizes = _input_sizes(copied, example_input, targets)
    replacements: dict[int, nn.Module] = {}
    for name, module in targets.items():
        if name not in sizes:
            raise ValueError(
                f"{WHERE}: layer {name!r} ({type(module).__name__}) was not called by the forward "
                f"pass on example_input, so its input size is unknown; exempt it with keep="
            )
        new = _convert(module, to, sizes[name], kind_args, name)
        if noise:
            _add_noise(new, module, float(noise), generator)
        new.train(module.training)
        replacements[id(module)] = new
    if "" in targets:  # the model is itself a convolution
        return replacements[id(copied)]
    _swap(copied, replacements)
    return copied


def keep_first(model: nn.Module, n: int) -> Keep:
    """A ``keep`` predicate exempting the first ``n`` convolutions of ``model``.

    "First" is the order of ``model.named_modules()`` (registration order), which for the usual
    models is the order of the forward pass: ``keep_first(resnet, 1)`` keeps the stem, as
    Pogodin et al.'s ``--n-first-conv 1`` does.
    """
    check_int(n, "n", "keep_first", minimum=0)
    names = [name for name, module in model.named_modules() if isinstance(module, _CONVS)][:n]
    first = frozenset(names)
    return lambda name, module: name in first


def keep_1x1(name: str, module: nn.Module) -> bool:
    """A ``keep`` predicate exempting 1x1 convolutions (pointwise maps: nothing to localize)."""
    return isinstance(module, _CONVS) and all(k == 1 for k in module.kernel_size)


def _check_kind(to: object, kind_args: Mapping[str, Any]) -> None:
    if to not in _ARGUMENTS:
        raise ValueError(f"{WHERE}: to must be one of {', '.join(map(repr, KINDS))}, got {to!r}")
    required, optional = _ARGUMENTS[str(to)]
    missing = [name for name in required if name not in kind_args]
    unknown = [name for name in kind_args if name not in required + optional]
    if missing:
        raise ValueError(f"{WHERE}: to={to!r} needs {', '.join(missing)}")
    if unknown:
        allowed = ", ".join(required + optional)
        raise TypeError(
            f"{WHERE}: unexpected argument {', '.join(unknown)} for to={to!r} (it takes {allowed})"
        )


def _targets(model: nn.Module, to: str, keep: Keep | None, library_layers: bool) -> dict:
    """The layers to replace, by qualified name (each module once, under its first name)."""
    targets: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        convertible = isinstance(module, _CONVS) or (
            library_layers and isinstance(module, _TiledConvNd) and to != "tiled"
        )
        if not convertible or (keep is not None and keep(name, module)):
            continue
        targets[name] = module
    return targets


def _input_sizes(
    model: nn.Module, example_input: torch.Tensor, targets: Mapping[str, nn.Module]
) -> dict[str, tuple[int, ...]]:
    """Spatial input size of each target, from one eval-mode forward pass of ``model``.

    The training flags are restored afterwards; a module called with two different sizes is
    refused, since a layer with a weight per position takes one size only.
    """
    sizes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            d = len(module.kernel_size)  # type: ignore[arg-type]  # a Conv*d's tuple
            size = tuple(args[0].shape[-d:])
            if sizes.setdefault(name, size) != size:
                raise ValueError(
                    f"{WHERE}: layer {name!r} is called on inputs of spatial sizes {sizes[name]} "
                    f"and {size}; a layer with a weight per position takes one size (exempt it "
                    f"with keep=)"
                )

        return hook

    modes = {module: module.training for module in model.modules()}
    handles = [m.register_forward_pre_hook(recorder(name)) for name, m in targets.items()]
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return sizes


def _convert(
    module: nn.Module, to: str, size: tuple[int, ...], kind_args: Mapping[str, Any], name: str
) -> nn.Module:
    shared_bias = kind_args.get("shared_bias")
    if to == "locally_connected":
        return to_locally_connected(module, size, shared_bias=shared_bias)
    if to == "tiled":
        return to_tiled(module, kind_args["tile_size"], shared_bias=shared_bias)
    if not isinstance(module, _CONVS):
        raise ValueError(
            f"{WHERE}: to={to!r} converts convolutions only; layer {name!r} is a "
            f"{type(module).__name__} (leave library_layers=False or exempt it with keep=)"
        )
    check_flag(shared_bias, "shared_bias", WHERE, allow_none=True)
    conv: Any = module  # torch types a Module's attributes as Tensor | Module
    d = len(conv.kernel_size)
    share = True if shared_bias is None else shared_bias
    common: dict[str, Any] = dict(
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        shared_bias=share,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    args = (conv.in_channels, conv.out_channels, conv.kernel_size, size)
    if to == "region":
        out = output_size(
            size,
            tuple(conv.kernel_size),
            tuple(conv.stride),
            padding_amounts(conv.padding, conv.kernel_size, conv.stride, conv.dilation, WHERE),
            tuple(conv.dilation),
            where=WHERE,
        )
        wanted = ntuple(kind_args["regions"], d, "regions", where=WHERE)
        regions = tuple(min(r, n) for r, n in zip(wanted, out, strict=True))
        layer: Any = REGION[d](*args, regions, **common)
        basis_offset = None
    else:
        layer = LOWRANK[d](
            *args, kind_args["rank"], normalize=kind_args.get("normalize", "softmax"), **common
        )
        # The layer's own random basis, shifted so that its mean is the convolution's kernel: at
        # the default (uniform) mix every position computes the convolution, and the basis
        # kernels still differ, so training can move them apart.
        basis = layer.weight.detach()
        basis_offset = basis - basis.mean(0, keepdim=True)
    with torch.no_grad():
        layer.weight.copy_(conv.weight.expand_as(layer.weight))
        if basis_offset is not None:
            layer.weight.add_(basis_offset)
        if conv.bias is not None:
            layer.bias.copy_(conv.bias.expand_as(layer.bias))
    return layer


def _add_noise(
    new: nn.Module, source: nn.Module, noise: float, generator: torch.Generator | None
) -> None:
    """Independent noise on every kernel of the new bank; for a low-rank layer, whose basis
    kernels are shared by all positions, on each position's mix instead."""
    layer: Any = new
    target = (
        layer.combining_weights if isinstance(new, _LowRankLocallyConnectedNd) else layer.weight
    )
    scale = noise
    if target is layer.weight:
        scale *= source.weight.detach().double().std().item()  # type: ignore[operator]
    draw = torch.randn(target.shape, generator=generator, dtype=target.dtype)
    with torch.no_grad():
        target.add_(draw.to(target.device), alpha=scale)


def _swap(model: nn.Module, replacements: Mapping[int, nn.Module]) -> None:
    """Put each replacement at every place its module is referenced (shared modules included)."""
    for parent in list(model.modules()):
        # _modules, not named_children(): the latter skips a second name for the same module
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacements:
                setattr(parent, child_name, replacements[id(child)])
