"""The layers survive the PyTorch toolchain: compile, export, ONNX, autocast, torch.func,
checkpoints, the meta device, pickle and DDP. What is not supported fails loudly (see
docs/guide/toolchain.md).

Kept fast on a 2-core machine: the no-graph-break check uses the ``aot_eager`` backend (dynamo's
graph capture and AOTAutograd's backward tracing are what ``fullgraph=True`` tests; the backend
only generates code), and one layer goes through inductor.
"""

from __future__ import annotations

import io
import pickle

import pytest
import torch
from torch.func import functional_call, grad, vmap

from locality import (
    LazyLocallyConnected2d,
    LazyTiledConv1d,
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    TiledConv1d,
    TiledConv2d,
    TiledConv3d,
)


def make(kind: str):
    """A small layer of each kind, with a non-default argument or two, and an input for it."""
    torch.manual_seed(0)
    layers = {
        "local1d": (lambda: LocallyConnected1d(2, 3, 3, input_size=8, padding=1), (2, 2, 8)),
        "local2d": (
            lambda: LocallyConnected2d(2, 3, 3, input_size=(6, 5), stride=(2, 1)),
            (2, 2, 6, 5),
        ),
        "local3d": (lambda: LocallyConnected3d(2, 2, 2, input_size=4, groups=2), (2, 2, 4, 4, 4)),
        "tiled1d": (lambda: TiledConv1d(2, 3, 3, tile_size=2, padding=1), (2, 2, 9)),
        "tiled2d": (
            lambda: TiledConv2d(2, 3, 3, tile_size=(2, 3), padding="same", padding_mode="reflect"),
            (2, 2, 7, 8),
        ),
        "tiled3d": (lambda: TiledConv3d(2, 2, 2, tile_size=2, shared_bias=True), (2, 2, 4, 4, 4)),
    }
    factory, shape = layers[kind]
    return factory(), torch.randn(shape)


KINDS = ["local1d", "local2d", "local3d", "tiled1d", "tiled2d", "tiled3d"]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", KINDS)
def test_compile_fullgraph_forward_backward(kind):
    layer, x = make(kind)
    x.requires_grad_(True)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.square().sum().backward()
    got = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    x.grad = None
    layer.zero_grad()
    expected = layer(x)
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected)
    for g, e in zip(got, [x.grad] + [p.grad for p in layer.parameters()], strict=True):
        torch.testing.assert_close(g, e)


def test_compile_inductor():
    layer, x = make("local2d")
    compiled = torch.compile(layer, fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)
    assert layer.weight.grad is not None


@pytest.mark.parametrize("kind", KINDS)
def test_torch_export_dynamic_batch(kind):
    layer, x = make(kind)
    program = torch.export.export(
        layer, (x,), dynamic_shapes=({0: torch.export.Dim("batch", max=1024)},)
    )
    other = torch.randn(5, *x.shape[1:])
    torch.testing.assert_close(program.module()(other), layer(other))


def test_export_dynamic_spatial_size_of_local_layer_is_refused():
    """A locally connected layer has one kernel per position: its spatial size cannot vary."""
    layer, x = make("local2d")
    spatial = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h"), 3: torch.export.Dim("w")}
    with pytest.raises(Exception, match=r"(?i)specializ|constraint|guard"):
        torch.export.export(layer, (x,), dynamic_shapes=(spatial,))


def test_export_dynamic_spatial_size_of_tiled_layer():
    layer = TiledConv1d(2, 3, 3, tile_size=2, padding=1)
    x = torch.randn(2, 2, 10)
    length = torch.export.Dim("length", min=4, max=64)
    program = torch.export.export(
        layer, (x,), dynamic_shapes=({0: torch.export.Dim("batch"), 2: length},)
    )
    other = torch.randn(3, 2, 15)
    torch.testing.assert_close(program.module()(other), layer(other))


@pytest.mark.parametrize("kind", ["local2d", "tiled1d"])
def test_onnx_dynamo_export_matches_onnxruntime(kind):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    layer, x = make(kind)
    layer.eval()
    program = torch.onnx.export(
        layer, (x,), dynamo=True, dynamic_shapes=({0: "batch"},), verbose=False
    )
    session = ort.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for batch in (1, 5):
        other = torch.randn(batch, *x.shape[1:])
        (out,) = session.run(None, {session.get_inputs()[0].name: other.numpy()})
        torch.testing.assert_close(
            torch.from_numpy(out), layer(other).detach(), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("kind", ["local2d", "tiled2d", "tiled1d"])
def test_autocast_cpu_bfloat16(kind):
    layer, x = make(kind)
    expected = layer(x)
    scale = expected.abs().max()
    for inp in (x, x.bfloat16()):  # float32 input, and bfloat16 input into float32 weights
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(inp)
        assert out.dtype in (torch.bfloat16, torch.float32)
        assert out.shape == expected.shape
        assert ((out.float() - expected).abs().max() / scale) < 3e-2


@pytest.mark.parametrize("kind", KINDS)
def test_torch_func_grad_and_vmap_over_batch(kind):
    layer, x = make(kind)
    params = {name: p.detach() for name, p in layer.named_parameters()}
    per_sample = vmap(lambda xi: functional_call(layer, params, (xi,)))(x)
    torch.testing.assert_close(per_sample, layer(x))

    grads = grad(lambda p: functional_call(layer, p, (x,)).square().sum())(params)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)


@pytest.mark.parametrize(
    "kind",
    KINDS,
)
def test_vmap_over_parameters_ensemble(kind):
    layer, x = make(kind)
    params = {name: p.detach() for name, p in layer.named_parameters()}
    stacked = {name: torch.stack([p, 2 * p]) for name, p in params.items()}
    out = vmap(lambda p: functional_call(layer, p, (x,)))(stacked)
    torch.testing.assert_close(out[0], layer(x))
    torch.testing.assert_close(out[1], functional_call(layer, stacked_member(stacked, 1), (x,)))


def stacked_member(stacked, i):
    return {name: value[i] for name, value in stacked.items()}


@pytest.mark.parametrize("kind", ["local2d", "tiled3d"])
def test_state_dict_round_trip_weights_only(kind):
    layer, x = make(kind)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh, _ = make(kind)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), layer(x))


@pytest.mark.parametrize("kind", ["local3d", "tiled2d"])
def test_meta_then_to_empty(kind):
    layer, x = make(kind)
    cls = type(layer)
    with torch.device("meta"):
        meta_layer, _ = make(kind)
    assert meta_layer.weight.is_meta and isinstance(meta_layer, cls)
    out = meta_layer(x.to("meta"))
    assert out.is_meta and out.shape == layer(x).shape
    real = meta_layer.to_empty(device="cpu")
    real.reset_parameters()
    real.load_state_dict(layer.state_dict())
    torch.testing.assert_close(real(x), layer(x))


def test_huge_layer_builds_on_meta():
    layer = LocallyConnected2d(1, 1, 1000, input_size=1999, device="meta")  # 10^12 weights
    assert layer.weight.numel() == 10**12


@pytest.mark.parametrize("kind", ["local1d", "tiled2d"])
def test_pickle_whole_module(kind):
    layer, x = make(kind)
    clone = pickle.loads(pickle.dumps(layer))
    torch.testing.assert_close(clone(x), layer(x))


def test_ddp_after_lazy_initialisation(tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = torch.nn.Sequential(
            LazyLocallyConnected2d(4, 3),
            torch.nn.ReLU(),
            torch.nn.Flatten(2),
            LazyTiledConv1d(2, 3, 2),
        )
        x = torch.randn(2, 3, 6, 6)
        model(x)  # materialise
        assert isinstance(model[0], LocallyConnected2d) and not isinstance(
            model[0], LazyLocallyConnected2d
        )
        reference = pickle.loads(pickle.dumps(model))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        ddp(x).square().sum().backward()
        reference(x).square().sum().backward()
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)
    finally:
        dist.destroy_process_group()


def test_lazy_state_dict_into_lazy_module():
    lazy = LazyLocallyConnected2d(4, 3)
    lazy(torch.randn(1, 2, 6, 6))
    state = lazy.state_dict()
    other = LazyLocallyConnected2d(4, 3)
    other.load_state_dict(state)  # lazy modules materialise from a state dict, as LazyConv2d
    x = torch.randn(2, 2, 6, 6)
    torch.testing.assert_close(other(x), lazy(x))
