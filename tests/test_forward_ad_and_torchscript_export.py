"""Forward-mode AD and the TorchScript ONNX exporter (``dynamo=False``) on every layer kind.

References: the layers are affine in the input and in the weight, so the tangent along ``dx`` is
the layer without bias applied to ``dx`` and the tangent along ``dW`` is the layer with weight
``dW`` and no bias; the exported ONNX graph (run by onnxruntime) must give the eager output.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
import torch.autograd.forward_ad as forward_ad

import locality

F64 = torch.float64
LAYERS = {
    "local1d": lambda: locality.LocallyConnected1d(2, 4, 3, input_size=9, padding=1, groups=2),
    "local2d": lambda: locality.LocallyConnected2d(2, 3, (3, 2), input_size=(6, 5), stride=2),
    "local3d": lambda: locality.LocallyConnected3d(2, 3, 2, input_size=4, padding=1),
    "tiled2d": lambda: locality.TiledConv2d(2, 3, 3, tile_size=2, padding=1),
    "tiled1d_large": lambda: locality.TiledConv1d(2, 3, 3, tile_size=4, dilation=2),
    # the tile covers the output: run as a locally connected layer
    "tiled2d_whole": lambda: locality.TiledConv2d(2, 3, 3, tile_size=6, shared_bias=False),
}
INPUTS = {"1d": (9,), "2d": (6, 5), "3d": (4, 4, 4)}


def _input(name: str, dtype=torch.float32) -> torch.Tensor:
    size = INPUTS[next(d for d in INPUTS if d in name)]
    if name == "tiled2d_whole":
        size = (8, 8)
    if name == "tiled1d_large":
        size = (14,)
    return torch.randn(2, 2, *size, dtype=dtype)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_forward_mode_ad_gives_the_directional_derivative(name):
    layer = LAYERS[name]().to(F64)
    x, dx = _input(name, F64), _input(name, F64)
    dw = torch.randn_like(layer.weight)
    no_bias = {"bias": torch.zeros_like(layer.bias)}
    expected_x = torch.func.functional_call(layer, no_bias, (dx,))
    expected_w = torch.func.functional_call(layer, {"weight": dw, **no_bias}, (x,))
    with forward_ad.dual_level():
        out = layer(forward_ad.make_dual(x, dx))
        got_x = forward_ad.unpack_dual(out).tangent
        dual_w = forward_ad.make_dual(layer.weight.detach(), dw)
        out_w = torch.func.functional_call(layer, {"weight": dual_w}, (x,))
        got_w = forward_ad.unpack_dual(out_w).tangent
    torch.testing.assert_close(got_x, expected_x)
    torch.testing.assert_close(got_w, expected_w)
    _, func_x = torch.func.jvp(layer, (x,), (dx,))
    torch.testing.assert_close(func_x, expected_x)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_torchscript_onnx_export_matches_eager(name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer = LAYERS[name]().eval()
    x = _input(name)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: sizes become constants of the trace
        torch.onnx.export(layer, (x,), buffer, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue())
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = layer(x)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)
