"""``localize``: whole-model surgery from convolutions to less-shared kinds, exactly."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import locality
from locality.convert import keep_1x1, keep_first, localize

F32, F64 = torch.float32, torch.float64
TOLERANCE = {F32: dict(rtol=1e-5, atol=1e-5), F64: dict(rtol=1e-12, atol=1e-12)}
CONV = {1: nn.Conv1d, 2: nn.Conv2d}
NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class Block(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus a (1x1 conv + BN when needed) shortcut."""

    def __init__(self, d: int, channels: int, out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = CONV[d](channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = NORM[d](out)
        self.conv2 = CONV[d](out, out, 3, padding=1, bias=False)
        self.bn2 = NORM[d](out)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels != out:
            self.shortcut = nn.Sequential(
                CONV[d](channels, out, 1, stride=stride, bias=False), NORM[d](out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.stem = CONV[d](2, 4, 3, padding=1)
        self.blocks = nn.Sequential(Block(d, 4, 4, 1), Block(d, 4, 6, 2))
        self.pool = nn.AdaptiveAvgPool1d(1) if d == 1 else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(torch.relu(self.stem(x)))).flatten(1))


def _trained_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Give BatchNorm non-trivial running statistics, then leave the model in eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x + torch.randn_like(x))
    model.eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(before: dict, model: nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("d", [1, 2])
def test_residual_model_with_batchnorm_is_exact_and_original_untouched(d, dtype):
    torch.manual_seed(d)
    size = (12,) if d == 1 else (8, 7)
    model = SmallResNet(d).to(dtype)
    _trained_statistics(model, torch.randn(4, 2, *size, dtype=dtype))
    before = _state(model)
    example = torch.randn(2, 2, *size, dtype=dtype)

    model.train()  # the recording pass must still leave the BatchNorm statistics alone
    local = localize(model, example)

    _assert_same_state(before, model)
    assert local.training and model.training
    local.eval()
    model.eval()
    convs = [m for m in local.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert convs == []
    kinds = {type(m).__name__ for m in local.modules()}
    assert f"LocallyConnected{d}d" in kinds
    x = torch.randn(5, 2, *size, dtype=dtype)
    torch.testing.assert_close(local(x), model(x), **TOLERANCE[dtype])
    _assert_same_state(before, model)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_sequential_to_tiled_is_exact_on_any_input(dtype):
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(5, 4, 3, stride=2, dilation=1, groups=1),
    ).to(dtype)
    tiled = localize(model, torch.randn(1, 3, 9, 9, dtype=dtype), to="tiled", tile_size=2)
    assert isinstance(tiled[0], locality.TiledConv2d) and tiled[0].tile_size == (2, 2)
    x = torch.randn(2, 3, 13, 11, dtype=dtype)  # tiled layers take any size
    torch.testing.assert_close(tiled(x), model(x), **TOLERANCE[dtype])


def test_weights_at_every_position_are_the_convolution_kernel():
    torch.manual_seed(4)
    conv = nn.Conv1d(2, 3, 3, stride=2, padding=1, groups=1)
    local = localize(nn.Sequential(conv), torch.randn(1, 2, 10), shared_bias=False)[0]
    assert local.weight.shape == (5, 3, 2, 3) and local.bias.shape == (5, 3)
    for p in range(5):
        assert torch.equal(local.weight[p], conv.weight)
        assert torch.equal(local.bias[p], conv.bias)


def test_keep_predicates_exempt_the_first_and_the_pointwise_convolutions():
    torch.manual_seed(5)
    model = SmallResNet(2).eval()
    first = keep_first(model, 1)
    local = localize(
        model,
        torch.randn(1, 2, 8, 8),
        keep=lambda name, module: first(name, module) or keep_1x1(name, module),
    )
    assert isinstance(local.stem, nn.Conv2d)
    assert isinstance(local.blocks[1].shortcut[0], nn.Conv2d)  # 1x1
    assert isinstance(local.blocks[0].conv1, locality.LocallyConnected2d)
    assert isinstance(local.blocks[1].conv2, locality.LocallyConnected2d)
    x = torch.randn(3, 2, 8, 8)
    torch.testing.assert_close(local(x), model(x), rtol=1e-5, atol=1e-5)
    names = {"stem", "blocks.1.shortcut.0"}
    kept = {n for n, m in model.named_modules() if (first(n, m) or keep_1x1(n, m))}
    assert kept == names


def test_noise_breaks_the_symmetry_between_positions_reproducibly():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1))
    x = torch.randn(1, 2, 6, 6)
    noisy = localize(model, x, noise=0.1, generator=torch.Generator().manual_seed(0))
    again = localize(model, x, noise=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy[0].weight, again[0].weight)
    deviation = noisy[0].weight - model[0].weight
    assert 0.05 < (deviation.std() / model[0].weight.std()).item() < 0.15
    assert not torch.equal(noisy[0].weight[0, 0], noisy[0].weight[0, 1])


def test_a_module_used_twice_is_replaced_at_both_places():
    conv = nn.Conv1d(2, 2, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    local = localize(model, torch.randn(1, 2, 7))
    assert local[0] is local[2] and isinstance(local[0], locality.LocallyConnected1d)
    x = torch.randn(2, 2, 7)
    torch.testing.assert_close(local(x), model(x))


def test_a_bare_convolution_and_the_training_mode():
    conv = nn.Conv2d(1, 2, 3)
    local = localize(conv, torch.randn(1, 1, 5, 5))
    assert isinstance(local, locality.LocallyConnected2d) and local.training
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model[1].eval()
    converted = localize(model, torch.randn(2, 1, 5, 5))
    assert converted.training and converted[0].training and not converted[1].training


def test_library_layers_are_converted_only_when_asked():
    torch.manual_seed(7)
    model = nn.Sequential(locality.TiledConv1d(2, 3, 3, tile_size=2, padding=1), nn.Conv1d(3, 1, 1))
    x = torch.randn(2, 2, 8)
    assert isinstance(localize(model, x)[0], locality.TiledConv1d)
    local = localize(model, x, library_layers=True)
    assert isinstance(local[0], locality.LocallyConnected1d)
    torch.testing.assert_close(local(x), model(x))


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_torchvision_resnet18():
    import torchvision

    torch.manual_seed(8)
    model = torchvision.models.resnet18(num_classes=10).eval()
    before = _state(model)
    x = torch.randn(1, 3, 32, 32)
    local = localize(model, x, keep=keep_1x1)
    _assert_same_state(before, model)
    torch.testing.assert_close(local(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(to="conv"), ValueError, "to must be one of"),
        (dict(to="tiled"), ValueError, "needs tile_size"),
        (dict(tile_size=2), TypeError, "unexpected argument tile_size"),
        (dict(noise=-1.0), ValueError, "noise must be a number >= 0"),
        (dict(keep=3), TypeError, "keep must be a callable"),
        (dict(to="region"), ValueError, "needs regions"),
        (dict(to="lowrank", rank=2, regions=2), TypeError, "unexpected argument regions"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        localize(nn.Sequential(nn.Conv2d(1, 1, 3)), torch.randn(1, 1, 5, 5), **kwargs)


def test_layers_not_called_or_called_at_two_sizes_are_refused():
    class TwoSizes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 3, padding=1)
            self.unused = nn.Conv1d(1, 1, 3)

        def forward(self, x):
            return self.conv(x).sum() + self.conv(x[..., :4]).sum()

    model = TwoSizes()
    with pytest.raises(ValueError, match="spatial sizes"):
        localize(model, torch.randn(1, 1, 6), keep=lambda n, m: n == "unused")
    with pytest.raises(ValueError, match="'unused'.*not called"):
        localize(model, torch.randn(1, 1, 6), keep=lambda n, m: n == "conv")


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("d", [1, 2])
def test_region_and_lowrank_are_exact_on_the_residual_model(d, dtype):
    torch.manual_seed(10 + d)
    size = (12,) if d == 1 else (8, 8)
    model = SmallResNet(d).to(dtype)
    _trained_statistics(model, torch.randn(4, 2, *size, dtype=dtype))
    before = _state(model)
    x = torch.randn(3, 2, *size, dtype=dtype)
    region = localize(model, x[:1], to="region", regions=2, shared_bias=False)
    lowrank = localize(model, x[:1], to="lowrank", rank=3)
    lowrank_plain = localize(model, x[:1], to="lowrank", rank=2, normalize=None)
    _assert_same_state(before, model)
    for converted in (region, lowrank, lowrank_plain):
        torch.testing.assert_close(converted.eval()(x), model(x), **TOLERANCE[dtype])
    layer = region.blocks[1].conv2
    assert type(layer).__name__ == f"RegionConv{d}d" and layer.regions == (2,) * d
    assert layer.weight.shape[:d] == (2,) * d
    basis = lowrank.blocks[0].conv1.weight
    assert basis.shape[0] == 3 and not torch.equal(basis[0], basis[1])  # free to move apart
    torch.testing.assert_close(basis.mean(0), model.blocks[0].conv1.weight, **TOLERANCE[dtype])


def test_region_count_is_capped_at_each_layers_output_and_noise_reaches_lowrank_mixes():
    torch.manual_seed(12)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, stride=4))
    x = torch.randn(1, 1, 8, 8)
    region = localize(model, x, to="region", regions=4)
    assert region[0].regions == (4, 4) and region[1].regions == (2, 2)  # output 2x2
    torch.testing.assert_close(region(x), model(x))
    noisy = localize(model, x, to="lowrank", rank=2, noise=0.5)
    mixes = noisy[0].combining_weights
    assert mixes.std() > 0.3 and not torch.allclose(noisy(x), model(x), atol=1e-3)


@pytest.mark.parametrize("name", ["locality.convert.localize", "locality.train.sharing"])
def test_docstring_examples_run(name):
    import doctest

    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0
