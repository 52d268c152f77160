"""Whole Keras 2 models: ``load_model`` gives what Keras gave, on files Keras itself wrote.

The fixtures under tests/fixtures/keras/ were saved by TensorFlow 2.12 (Keras 2.12.0) with
``make_fixtures.py``, each next to a fixed input and Keras' own outputs on it; nothing here runs
TensorFlow. The expected numbers are therefore Keras', independent of the code under test.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from locality.cli import main
from locality.interop import keras as kio
from locality.interop.keras_file import read_keras_config
from locality.interop.keras_model import input_shapes
from locality.interop.keras_modules import from_keras, to_keras

h5py = pytest.importorskip("h5py")

FIXTURES = Path(__file__).parent / "fixtures" / "keras"

# (fixture, extensions saved): every supported layer class appears in at least one
MODELS = [
    ("conv_model", ("h5", "keras")),
    ("conv1d_model", ("h5", "keras")),
    ("locally_connected_model", ("h5", "keras")),
    ("channels_first_model", ("h5",)),
    ("functional_model", ("h5", "keras")),
    ("activations_model", ("h5",)),
    ("deepface_small", ("h5", "keras")),
    ("deepface_small_compiled", ("h5",)),
]
FILES = [(name, ext) for name, exts in MODELS for ext in exts]


def keras_io(name: str) -> tuple[list[torch.Tensor], list[np.ndarray], int]:
    """The fixture's inputs in the module's layout, Keras' outputs, and Keras' parameter count."""
    data = np.load(FIXTURES / f"{name}.npz")
    xs = [from_keras(torch.from_numpy(data[k])) for k in sorted(data) if k.startswith("x")]
    ys = [data[k] for k in sorted(data) if k.startswith("y")]
    return xs, ys, int(data["parameters"])


def assert_matches_keras(model: nn.Module, name: str) -> None:
    xs, ys, _ = keras_io(name)
    with torch.no_grad():
        out = model(*xs)
    outputs = out if isinstance(out, tuple) else (out,)
    assert len(outputs) == len(ys)
    for got, expected in zip(outputs, ys, strict=True):
        assert expected.std() > 1e-2  # the fixture's outputs do depend on the input
        np.testing.assert_allclose(to_keras(got).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "ext"), FILES)
def test_load_model_computes_what_keras_computed(name, ext):
    model = kio.load_model(FIXTURES / f"{name}.{ext}")
    assert not model.training
    assert_matches_keras(model, name)


@pytest.mark.parametrize(("name", "ext"), FILES)
def test_parameter_count_from_the_config_is_keras(name, ext):
    _, _, expected = keras_io(name)
    config = read_keras_config(FIXTURES / f"{name}.{ext}")
    assert config is not None
    assert kio.count_keras_parameters(config) == expected


def test_format_is_read_from_the_bytes_not_the_extension():
    # TF 2.12's model.save("m.keras") writes HDF5; a .h5 copy of a v3 archive is still a zip
    model = kio.load_model(FIXTURES / "deepface_small_compiled_hdf5.keras")
    assert_matches_keras(model, "deepface_small_compiled")


def test_v3_archive_renamed_to_h5_loads(tmp_path):
    path = tmp_path / "archive.h5"
    shutil.copy(FIXTURES / "conv_model.keras", path)
    assert_matches_keras(kio.load_model(path), "conv_model")


def test_sequential_children_are_named_as_the_keras_layers():
    model = kio.load_model(FIXTURES / "deepface_small.h5")
    assert isinstance(model, nn.Sequential)
    assert [n for n, _ in model.named_children()] == [
        "C1", "M2", "C3", "L4", "L5", "L6", "F0", "F7", "D0", "F8"
    ]  # fmt: skip
    functional = kio.load_model(FIXTURES / "functional_model.h5")
    assert isinstance(functional, torch.fx.GraphModule)


def test_full_fbdeepface_from_its_config_without_weights():
    config = json.loads((FIXTURES / "fbdeepface_config.json").read_text())
    keras_count = int(np.load(FIXTURES / "fbdeepface_count.npz")["parameters"])
    assert keras_count == 137_774_071  # the number the issue states, from Keras itself
    assert kio.count_keras_parameters(config) == keras_count
    model = kio.model_from_config(config, device="meta")
    assert sum(p.numel() for p in model.parameters()) == keras_count
    shapes = {}
    for name, child in model.named_children():
        child.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
    out = model(torch.empty(1, 3, 152, 152, device="meta"))
    assert tuple(out.shape) == (1, 8631)
    assert tuple(shapes["C1"]) == (1, 32, 142, 142)
    assert tuple(shapes["M2"]) == (1, 32, 71, 71)  # same pooling pads 0 before, 1 after
    assert tuple(shapes["L4"]) == (1, 16, 55, 55)
    assert tuple(shapes["L5"]) == (1, 16, 25, 25)
    assert tuple(shapes["L6"]) == (1, 16, 21, 21)


def test_model_from_config_gives_a_working_random_model():
    config = read_keras_config(FIXTURES / "deepface_small.h5")
    model = kio.model_from_config(config)
    x = torch.randn(2, 3, 40, 40)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert torch.allclose(out.sum(1), torch.ones(2))


def test_weights_only_file_is_refused_then_loads_with_config():
    path = FIXTURES / "deepface_small_weights_only.h5"
    with pytest.raises(ValueError, match="weights only") as info:
        kio.load_model(path)
    message = str(info.value)
    assert str(path) in message and "model_config" in message and "\n" not in message
    config = read_keras_config(FIXTURES / "deepface_small.h5")
    assert_matches_keras(kio.load_model(path, config=config), "deepface_small")
    assert_matches_keras(kio.load_model(path, config=json.dumps(config)), "deepface_small")


def test_unsupported_layer_names_layer_class_and_file():
    path = FIXTURES / "unsupported_lstm.h5"
    with pytest.raises(ValueError) as info:
        kio.load_model(path)
    message = str(info.value)
    for part in (str(path), "'lstm'", "LSTM", "supported:", "LocallyConnected2D", "Dense"):
        assert part in message
    assert "\n" not in message


def one_line_error(path, kinds=(ValueError, OSError)) -> str:
    with pytest.raises(kinds) as info:
        kio.load_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_files_that_are_not_keras_models(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert "empty" in one_line_error(empty)
    text = tmp_path / "notes.h5"
    text.write_text("not a model\n")
    assert "not a Keras model file" in one_line_error(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert "not a Keras model" in one_line_error(other)
    archive = tmp_path / "other.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    assert "config.json" in one_line_error(archive)
    assert "cannot read" in one_line_error(tmp_path / "missing.h5", OSError)
    saved_model = tmp_path / "saved"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"\x08\x01")
    assert "SavedModel" in one_line_error(saved_model, ValueError)


@pytest.mark.parametrize("name", ["deepface_small.h5", "deepface_small.keras"])
def test_truncated_files(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    for keep in (len(data) // 2, len(data) - 100):
        path = tmp_path / f"cut_{keep}_{name}"
        path.write_bytes(data[:keep])
        one_line_error(path)


def edited_copy(tmp_path: Path, edit) -> Path:
    path = tmp_path / "edited.h5"
    shutil.copy(FIXTURES / "deepface_small.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f["model_weights"])
    return path


def test_damaged_layer_entries_name_the_layer(tmp_path):
    def dataset_for_layer(weights):
        del weights["C1"]
        weights["C1"] = np.zeros(3)

    message = one_line_error(edited_copy(tmp_path, dataset_for_layer), ValueError)
    assert "'C1'" in message and "not a group" in message

    def missing_weight(weights):
        del weights["C3"]["C3"]["bias:0"]

    message = one_line_error(edited_copy(tmp_path, missing_weight), ValueError)
    assert "C3/bias:0" in message

    def kernel_is_group(weights):
        del weights["F7"]["F7"]["kernel:0"]
        weights["F7"]["F7"].create_group("kernel:0")

    message = one_line_error(edited_copy(tmp_path, kernel_is_group), ValueError)
    assert "F7/kernel:0" in message and "not an array" in message

    def wrong_shape(weights):
        del weights["F8"]["F8"]["bias:0"]
        weights["F8"]["F8"]["bias:0"] = np.zeros(11, np.float32)

    message = one_line_error(edited_copy(tmp_path, wrong_shape), ValueError)
    assert "'F8'" in message and "(11,)" in message and "(10,)" in message


def test_read_keras_h5_refuses_two_kernels(tmp_path):
    def two_kernels(weights):
        weights["L4"].attrs["weight_names"] = [b"L4/kernel:0", b"L4/bias:0", b"L4/kernel:0"]

    path = edited_copy(tmp_path, two_kernels)
    with pytest.raises(ValueError, match="two weights named 'kernel'"):
        kio.read_keras_h5(path, "L4")
    kernel, bias = kio.read_keras_h5(FIXTURES / "deepface_small.h5", "L4")
    kernel_v3, bias_v3 = kio.read_keras_h5(FIXTURES / "deepface_small.keras", "locally_connected2d")
    np.testing.assert_array_equal(kernel, kernel_v3)
    np.testing.assert_array_equal(bias, bias_v3)


def test_read_keras_h5_errors_name_the_file(tmp_path):
    """Issue 13, item 14: h5py's bare OSError, AttributeError, KeyError and empty kernels."""
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    text = tmp_path / "text.h5"
    text.write_text("kernel = [1, 2, 3]\n")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((FIXTURES / "deepface_small.h5").read_bytes()[:5000])
    for path in (empty, text, truncated):
        with pytest.raises((ValueError, OSError)) as info:
            kio.read_keras_h5(path, "L4")
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    def dataset_for_layer(weights):
        del weights["L5"]
        weights["L5"] = np.zeros(3)

    with pytest.raises(ValueError, match="'L5' is a Dataset, not a group"):
        kio.read_keras_h5(edited_copy(tmp_path, dataset_for_layer), "L4")

    def missing_weight(weights):
        del weights["L4"]["L4"]["kernel:0"]

    with pytest.raises(ValueError, match="lists the weight 'L4/kernel:0'"):
        kio.read_keras_h5(edited_copy(tmp_path, missing_weight), "L4")

    def kernel_is_group(weights):
        del weights["L4"]["L4"]["kernel:0"]
        weights["L4"]["L4"].create_group("kernel:0")

    with pytest.raises(ValueError, match="is a Group, not an array"):
        kio.read_keras_h5(edited_copy(tmp_path, kernel_is_group), "L4")


def test_layer_names_split_over_several_attributes(tmp_path):
    # Keras splits attributes longer than HDF5's 64 KiB header into layer_names0, layer_names1...
    def split(weights):
        names = list(weights.attrs["layer_names"])
        del weights.attrs["layer_names"]
        weights.attrs["layer_names0"] = names[:4]
        weights.attrs["layer_names1"] = names[4:]

    assert_matches_keras(kio.load_model(edited_copy(tmp_path, split)), "deepface_small")


def test_v3_archive_with_later_keras_group_names(tmp_path):
    # Keras >= 2.13 writes layers/<class>_<n>/vars/<i>, counting each class 0, 1, 2, ...
    source = zipfile.ZipFile(FIXTURES / "conv_model.keras")
    renamed = io.BytesIO()
    with (
        h5py.File(io.BytesIO(source.read("model.weights.h5")), "r") as old,
        h5py.File(renamed, "w") as new,
    ):
        groups = old["_layer_checkpoint_dependencies"]
        counts: dict[str, int] = {}
        for name in sorted(groups, key=lambda g: (g.rsplit("_", 1)[0], len(g), g)):
            base = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1].isdigit() else name
            index = counts.get(base, 0)
            counts[base] = index + 1
            target = base if index == 0 else f"{base}_{index}"
            old.copy(groups[name], new.require_group("layers"), name=target)
    path = tmp_path / "later.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", source.read("config.json"))
        z.writestr("model.weights.h5", renamed.getvalue())
    assert_matches_keras(kio.load_model(path), "conv_model")


# ----------------------------------------------------------------------------------------------
# export


def exported_model() -> nn.Sequential:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_export_fixture", FIXTURES / "make_export_fixture.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.exported_model()


def test_exported_file_keras_checked_loads_back():
    """make_fixtures.py checked with Keras 2.12 that this file gives these outputs."""
    model = kio.load_model(FIXTURES / "export_sequential.h5")
    data = np.load(FIXTURES / "export_sequential.npz")
    with torch.no_grad():
        got = model(from_keras(torch.from_numpy(data["x0"])))
    np.testing.assert_allclose(got.numpy(), data["y0"], rtol=1e-5, atol=1e-6)


def test_save_model_writes_keras_2_h5_and_round_trips(tmp_path):
    model = exported_model()
    path = tmp_path / "model.h5"
    model.train()
    kio.save_model(model, path, input_shape=(3, 12, 12))
    assert model.training  # exported in eval mode, handed back as it came
    model.eval()
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert f.attrs["keras_version"].startswith("2.")
        layers = config["config"]["layers"]
        assert layers[0]["config"]["batch_input_shape"] == [None, 12, 12, 3]
        weights = f["model_weights"]
        names = [n.decode() for n in weights.attrs["layer_names"]]
        assert names == [entry["config"]["name"] for entry in layers[1:]]
        conv = weights["conv2d"]
        assert [n.decode() for n in conv.attrs["weight_names"]] == [
            "conv2d/kernel:0",
            "conv2d/bias:0",
        ]
        np.testing.assert_allclose(
            conv["conv2d/kernel:0"][()], model[0].weight.detach().permute(2, 3, 1, 0).numpy()
        )
        assert weights["locally_connected2d"]["locally_connected2d/kernel:0"].shape == (4, 24, 4)
    x = torch.randn(3, 3, 12, 12)
    again = kio.load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exists"):
        kio.save_model(model, path, input_shape=(3, 12, 12))


def test_save_model_refuses_before_writing(tmp_path):
    path = tmp_path / "m.h5"
    with pytest.raises(ValueError, match=r"layer '1' \(LSTM\)"):
        kio.save_model(nn.Sequential(nn.Flatten(), nn.LSTM(3, 3)), path, input_shape=(3,))
    with pytest.raises(ValueError, match="flatten first"):
        kio.save_model(nn.Sequential(nn.Linear(4, 2)), path, input_shape=(3, 4, 4))
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# CLI


def test_cli_keras_import(tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["keras-import", str(FIXTURES / "deepface_small.h5"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    _, _, keras_count = keras_io("deepface_small")
    assert f"{keras_count:,} (PyTorch module), {keras_count:,} (Keras config)" in printed
    assert "L4" in printed
    assert_matches_keras(torch.load(out, weights_only=False), "deepface_small")


def test_cli_keras_import_weights_only_with_config(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(read_keras_config(FIXTURES / "deepface_small.h5")))
    out = tmp_path / "model.pt"
    weights = FIXTURES / "deepface_small_weights_only.h5"
    assert main(["keras-import", str(weights), "--config", str(config), "--out", str(out)]) == 0
    assert_matches_keras(torch.load(out, weights_only=False), "deepface_small")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["unsupported_lstm.h5", "--out", "{tmp}/m.pt"], "LSTM"),
        (["missing.h5", "--out", "{tmp}/m.pt"], "missing.h5"),
        (["deepface_small_weights_only.h5", "--out", "{tmp}/m.pt"], "weights only"),
        (["deepface_small.h5", "--out", "{tmp}/no/such/m.pt"], "does not exist"),
        (["deepface_small.h5", "--out", "{tmp}/exists.pt"], "exists"),
        (["deepface_small.h5", "--out", "{tmp}"], "folder"),
    ],
)
def test_cli_keras_import_user_errors(tmp_path, capsys, arguments, expected):
    (tmp_path / "exists.pt").write_bytes(b"keep")
    model, *rest = arguments
    argv = ["keras-import", str(FIXTURES / model), *(a.format(tmp=tmp_path) for a in rest)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("locality keras-import: error: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "exists.pt").read_bytes() == b"keep"
    assert not (tmp_path / "m.pt").exists()


def test_layers_do_not_import_interop():
    """Layering: interop imports layers, never the reverse (issue 12, item 5)."""
    import ast

    import locality.layers

    for source in Path(locality.layers.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            assert not any(n.startswith("locality.interop") for n in names), source.name
    from locality.layers.local import LocallyConnected2d

    assert not hasattr(LocallyConnected2d, "load_keras_weights")


def test_guide_fbdeepface_example_runs_and_prints_what_the_guide_shows(capsys):
    text = (Path(__file__).parents[1] / "docs" / "guide" / "keras.md").read_text()
    example = text.split("## Worked example: FbDeepFace")[1]
    code = example.split("```python\n")[1].split("```")[0]
    shown = example.split("```text\n")[1].split("```")[0]
    exec(compile(code, "docs/guide/keras.md", "exec"), {})
    printed = capsys.readouterr().out
    for line in shown.splitlines():
        if line != "...":
            assert line in printed


def test_channels_first_layers_against_torch_on_keras_layout():
    """Channels-first Conv2D/pooling (TF cannot run them on a CPU, so no fixture): the reference
    applies torch's channels-first ops to the Keras tensor itself, and flattens as Keras does."""

    def layer(class_name, **config):
        return {"class_name": class_name, "config": {"data_format": "channels_first", **config}}

    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 2, 7, 6]}},
                layer("Conv2D", filters=3, kernel_size=[3, 2], strides=2, padding="same"),
                layer("MaxPooling2D", pool_size=2, strides=1, padding="valid"),
                layer("Flatten"),
            ]
        },
    }
    model = kio.model_from_config(config)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(2, 2, 7, 6)  # Keras' channels-first tensor (N, C, H, W)
    # TF's same at stride 2: H 7 -> 4 (total pad 2: 1, 1), W 6 -> 3 (total 0)
    y = torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=2, padding=(1, 0))
    y = torch.nn.functional.max_pool2d(y, 2, 1)
    expected = y.permute(0, 2, 3, 1).flatten(1)  # Keras' Flatten(channels_first) order
    with torch.no_grad():
        torch.testing.assert_close(model(from_keras(x)), expected)


def test_batch_norm_without_scale_or_center_keeps_them_fixed():
    model = kio.load_model(FIXTURES / "functional_model.h5")
    no_scale, no_center = model.bn_no_scale, model.bn_no_center
    assert not no_scale.weight.requires_grad and no_scale.bias.requires_grad
    assert no_center.weight.requires_grad and not no_center.bias.requires_grad
    torch.testing.assert_close(no_scale.weight, torch.ones(8))
    torch.testing.assert_close(no_center.bias, torch.zeros(8))


def test_sequential_built_with_model_build_has_its_shape_in_the_config():
    config = read_keras_config(FIXTURES / "deepface_small.h5")
    assert config is not None
    layers = config["config"]["layers"]
    assert layers[0]["class_name"] == "InputLayer"
    shape = layers[0]["config"]["batch_input_shape"]
    # what Keras writes for Sequential() + model.build(shape): no InputLayer, no layer's shape
    layers = [dict(layers[1], config=dict(layers[1]["config"])), *layers[2:]]
    layers[0]["config"].pop("batch_input_shape", None)
    built = {
        "class_name": "Sequential",
        "config": {"layers": layers, "build_input_shape": shape},
    }
    assert input_shapes(built) == [(3, 40, 40)]
    assert kio.count_keras_parameters(built) == kio.count_keras_parameters(config)
