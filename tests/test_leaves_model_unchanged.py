"""Property (hypothesis): analysis and conversion functions leave the model they are given
bit-identical: its state_dict (BatchNorm statistics and ``num_batches_tracked`` included) and
every submodule's training mode (issue 13, "Proof")."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from locality import LocallyConnected2d, TiledConv2d
from locality.analysis import receptive_field, summary
from locality.convert import (
    conv1x1_to_linear,
    fully_convolutional,
    linear_to_conv,
    linear_to_conv1x1,
    project,
    to_dense,
    to_locally_connected,
    to_tiled,
)


def snapshot(model: nn.Module) -> tuple[dict, dict]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, {name: m.training for name, m in model.named_modules()}


def assert_unchanged(model: nn.Module, before: tuple[dict, dict]) -> None:
    state, modes = snapshot(model)
    assert state.keys() == before[0].keys()
    for key, value in state.items():
        assert torch.equal(value, before[0][key]), key
    assert modes == before[1]


@st.composite
def classifiers(draw) -> tuple[nn.Module, tuple[int, int, int]]:
    """A small conv / BatchNorm / flatten / Linear / BatchNorm1d classifier with trained-looking
    statistics and a random training mode per module."""
    torch.manual_seed(draw(st.integers(0, 2**16)))
    channels, size, width = (
        draw(st.integers(1, 3)),
        draw(st.integers(5, 8)),
        draw(st.integers(2, 4)),
    )
    model = nn.Sequential(
        nn.Conv2d(channels, width, 3),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(width * (size - 2) ** 2, 6),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(draw(st.integers(0, 100)))
    for module in model.modules():
        module.training = draw(st.booleans())
    return model, (channels, size, size)


@settings(max_examples=15, deadline=None)
@given(classifiers())
def test_fully_convolutional_leaves_the_model_unchanged(case):
    model, shape = case
    before = snapshot(model)
    fully_convolutional(model, shape)
    assert_unchanged(model, before)


@pytest.mark.parametrize("analyse", [summary, receptive_field], ids=["summary", "receptive_field"])
@settings(max_examples=10, deadline=None)
@given(case=classifiers())
def test_analysis_leaves_the_model_unchanged(analyse, case):
    model, shape = case
    before = snapshot(model)
    analyse(model, shape)
    assert_unchanged(model, before)


@st.composite
def layers(draw) -> tuple[str, nn.Module]:
    torch.manual_seed(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["conv", "tiled", "local", "linear", "conv1x1"]))
    c, o, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    layer: nn.Module
    if kind == "conv":
        layer = nn.Conv2d(c, o, k, bias=draw(st.booleans()))
    elif kind == "tiled":
        layer = TiledConv2d(c, o, k, tile_size=draw(st.integers(1, 3)))
    elif kind == "local":
        layer = LocallyConnected2d(c, o, k, input_size=draw(st.integers(k, 5)))
    elif kind == "linear":
        layer = nn.Linear(c * 4, o)
    else:
        layer = nn.Conv2d(c, o, 1)
    layer.training = draw(st.booleans())
    return kind, layer


def conversions(kind: str, layer: nn.Module) -> list:
    c = getattr(layer, "in_channels", None)
    if kind == "linear":
        return [
            lambda: linear_to_conv(layer, (layer.in_features // 4, 2, 2)),
            lambda: linear_to_conv1x1(layer),
        ]
    calls = [lambda: to_dense(layer, (c, 5, 5) if kind != "local" else (c, *layer.input_size))]
    if kind in ("conv", "conv1x1"):
        calls += [lambda: to_locally_connected(layer, (5, 5)), lambda: to_tiled(layer, 2)]
    if kind == "conv1x1":
        calls.append(lambda: conv1x1_to_linear(layer))
    if kind in ("tiled", "local"):
        calls.append(lambda: project(layer, to="conv"))
    return calls


@settings(max_examples=25, deadline=None)
@given(layers())
def test_conversions_leave_the_layer_unchanged(case):
    kind, layer = case
    before = snapshot(layer)
    for convert in conversions(kind, layer):
        convert()
        assert_unchanged(layer, before)
