"""Reading Keras model files with h5py and zipfile only: the architecture and each layer's arrays.

Two formats, told apart by the file's first bytes (not its extension: TF 2.12 writes HDF5 for
``model.save("m.keras")`` unless ``save_format="keras_v3"``):

- **HDF5** (``model.save("m.h5")``, Keras 2): the root attribute ``model_config`` (JSON) holds the
  architecture; the group ``model_weights`` holds one group per layer whose ``weight_names``
  attribute lists its datasets in the layer's ``get_weights()`` order. Long attributes are split
  into ``name0``, ``name1``, ... A ``save_weights`` file has the layer groups at the root and no
  ``model_config``. Compiled models add ``training_config`` and ``optimizer_weights``, ignored
  here; functional models add ``top_level_model_weights`` (empty for the layers read here).
- **Keras v3 zip** (``save_format="keras_v3"``, or ``.keras`` in Keras >= 2.13): ``config.json``
  and ``model.weights.h5``, whose groups are named by layer *class* and a counter in the order
  Keras visits the layers (``_layer_checkpoint_dependencies/conv2d_2/vars/0`` in Keras 2.12,
  ``layers/conv2d_1/vars/0`` later); a layer's arrays are ``vars/0``, ``vars/1``, ...

Every error names the file: h5py's and zipfile's own messages do not.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "KerasFile",
    "read_keras_file",
    "read_keras_config",
    "read_weights_only",
    "read_keras_h5",
]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
# HDF5 allows a user block before the superblock, at 0, 512, 1024, 2048, ... bytes.
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class KerasFile:
    """What a Keras model file holds, read into memory.

    Attributes:
        path: the file, as given.
        format: ``"h5"`` or ``"keras_v3"``.
        config: the model's architecture (``{"class_name": ..., "config": ...}``), or ``None``
            for a weights-only file.
        weights: each layer's arrays in Keras' ``get_weights()`` order, by layer name (HDF5) or
            by the v3 file's group name (``conv2d_2``).
        keras_version: the Keras version that wrote the file, where recorded.
    """

    path: str
    format: str
    config: dict[str, Any] | None
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    keras_version: str | None = None


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as error:
        raise ImportError(
            "reading Keras files needs h5py: pip install 'locality[keras]' (or pip install h5py)"
        ) from error
    return h5py


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _attribute_list(node: Any, name: str) -> list[str]:
    """A list attribute that Keras may have split into ``name0``, ``name1``, ... (long lists)."""
    if name in node.attrs:
        return [_text(v) for v in np.atleast_1d(node.attrs[name])]
    values: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in node.attrs:
        values += [_text(v) for v in np.atleast_1d(node.attrs[f"{name}{chunk}"])]
        chunk += 1
    return values


def _sniff(path: Path) -> str:
    where = f"keras: {str(path)!r}"
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise ValueError(
                f"{where} is a TensorFlow SavedModel folder, which needs TensorFlow to read; "
                "save the model as .h5 or .keras (model.save('model.h5')) and load that"
            )
        raise ValueError(f"{where} is a folder, not a Keras .h5 or .keras file")
    try:
        with open(path, "rb") as f:
            head = f.read(max(_HDF5_OFFSETS) + len(_HDF5_SIGNATURE))
    except OSError as error:
        raise OSError(f"{where}: cannot read the file: {error.strerror or error}") from error
    if head[:4] in _ZIP_SIGNATURES:
        return "keras_v3"
    if any(head[o : o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS):
        return "h5"
    what = "empty" if not head else "neither HDF5 nor a zip archive"
    raise ValueError(
        f"{where} is not a Keras model file ({what}; Keras writes .h5 files in HDF5 and .keras "
        "files as zip archives)"
    )


def _h5_arrays(h5py: Any, group: Any, layer: str, where: str) -> list[np.ndarray]:
    """The arrays of one HDF5 layer group, in its ``weight_names`` order."""
    if not isinstance(group, h5py.Group):
        raise ValueError(
            f"{where}: the entry for layer {layer!r} is a {type(group).__name__}, not a group of "
            "weights"
        )
    names = _attribute_list(group, "weight_names")
    arrays = []
    for name in names:
        if name not in group:
            raise ValueError(
                f"{where}: layer {layer!r} lists the weight {name!r} in weight_names, but the "
                f"file has no such dataset (found: {sorted(_datasets(h5py, group))})"
            )
        arrays.append(_dataset(h5py, group[name], f"{layer}/{name}", where))
    return arrays


def _datasets(h5py: Any, group: Any) -> Iterator[str]:
    found: list[str] = []
    group.visititems(lambda n, obj: found.append(n) if isinstance(obj, h5py.Dataset) else None)
    return iter(found)


def _dataset(h5py: Any, node: Any, name: str, where: str) -> np.ndarray:
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"{where}: the weight {name!r} is a {type(node).__name__}, not an array")
    value = np.asarray(node[()])
    if value.dtype.kind not in "fiu":
        raise ValueError(f"{where}: the weight {name!r} holds {value.dtype}, not numbers")
    return value


def _read_h5(path: Path, where: str) -> KerasFile:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
        root = f.get("model_weights", f)
        config = None
        if "model_config" in f.attrs:
            config = _json(_text(f.attrs["model_config"]), "the model_config attribute", where)
        layer_names = _attribute_list(root, "layer_names")
        if config is None:
            if layer_names or "_layer_checkpoint_dependencies" in f or "layers" in f:
                raise ValueError(
                    f"{where} holds weights only (it was written by model.save_weights): it has "
                    "no model_config attribute, so the architecture is missing; save the whole "
                    "model with model.save(...), or pass the architecture as config= "
                    "(model.to_json()) to load_model"
                )
            raise ValueError(
                f"{where} is an HDF5 file but not a Keras model: it has no model_config "
                "attribute and no layer weights"
            )
        weights = {}
        for name in layer_names:
            if name not in root:
                raise ValueError(
                    f"{where}: layer_names lists {name!r}, but the file has no group for it"
                )
            weights[name] = _h5_arrays(h5py, root[name], name, where)
    return KerasFile(str(path), "h5", config, weights, version)


def _read_h5_weights_only(path: Path, where: str) -> dict[str, list[np.ndarray]]:
    """The layer arrays of a ``save_weights`` (or ``model.save``) HDF5 file, by layer name."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)
        names = _attribute_list(root, "layer_names")
        if not names:
            raise ValueError(f"{where} has no layer_names attribute: not a Keras weights file")
        missing = [n for n in names if n not in root]
        if missing:
            raise ValueError(f"{where}: layer_names lists {missing}, but the file has no group")
        return {n: _h5_arrays(h5py, root[n], n, where) for n in names}


def _json(text: str, what: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: {what} is not valid JSON ({error})") from error
    if not isinstance(value, dict) or "class_name" not in value:
        raise ValueError(f"{where}: {what} is not a Keras model config")
    return value


_VARS = re.compile(r"^(?P<layer>.+)/vars/(?P<index>\d+)$")


def _read_v3_weights(h5py: Any, data: bytes, where: str) -> dict[str, list[np.ndarray]]:
    """``{group name: arrays}`` for the layer groups of a v3 ``model.weights.h5``."""
    found: dict[str, dict[int, np.ndarray]] = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        for container in ("_layer_checkpoint_dependencies", "layers"):
            if container not in f:
                continue
            top = f[container]
            for layer in top:
                node = top[layer]
                if not isinstance(node, h5py.Group):
                    raise ValueError(
                        f"{where}: the entry {container}/{layer} is a {type(node).__name__}, not "
                        "a layer group"
                    )
                arrays = found.setdefault(layer, {})
                if "vars" not in node:
                    continue
                for index in node["vars"]:
                    if not index.isdigit():
                        continue
                    name = f"{container}/{layer}/vars/{index}"
                    arrays[int(index)] = _dataset(h5py, node["vars"][index], name, where)
    weights = {}
    for layer, arrays in found.items():
        if sorted(arrays) != list(range(len(arrays))):
            raise ValueError(
                f"{where}: layer group {layer!r} has vars {sorted(arrays)}, not 0..n-1"
            )
        weights[layer] = [arrays[i] for i in range(len(arrays))]
    return weights


def _read_v3(path: Path, where: str) -> KerasFile:
    h5py = _h5py()
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
        if missing:
            raise ValueError(
                f"{where} is a zip archive without {' and '.join(missing)}: not a Keras v3 "
                "model file"
            )
        config = _json(archive.read("config.json").decode("utf8"), "config.json", where)
        version = None
        if "metadata.json" in names:
            metadata = json.loads(archive.read("metadata.json").decode("utf8"))
            version = metadata.get("keras_version") if isinstance(metadata, dict) else None
        weights = _read_v3_weights(h5py, archive.read("model.weights.h5"), where)
    return KerasFile(str(path), "keras_v3", config, weights, version)


def _read_errors() -> tuple[type[BaseException], ...]:
    return (OSError, KeyError, RuntimeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError)


def read_keras_file(path: str | os.PathLike) -> KerasFile:
    """Read a Keras model file (HDF5 ``.h5`` or v3 ``.keras`` zip) into memory.

    Raises:
        ValueError: for a weights-only file, a SavedModel folder, or a file that is not a Keras
            model; OSError when the file cannot be read (missing, truncated, damaged). Every
            message names the file.
    """
    file = Path(os.fspath(path))
    where = f"keras: {str(file)!r}"
    kind = _sniff(file)
    try:
        return _read_v3(file, where) if kind == "keras_v3" else _read_h5(file, where)
    except _read_errors() as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(f"{where} is damaged or truncated: {detail}") from error


def read_keras_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The architecture a Keras model file holds, without reading its weights (``None`` for a
    weights-only HDF5 file)."""
    file = Path(os.fspath(path))
    where = f"keras: {str(file)!r}"
    kind = _sniff(file)
    try:
        if kind == "keras_v3":
            with zipfile.ZipFile(file) as archive:
                if "config.json" not in archive.namelist():
                    raise ValueError(f"{where} is a zip archive without config.json")
                return _json(archive.read("config.json").decode("utf8"), "config.json", where)
        with _h5py().File(file, "r") as f:
            if "model_config" not in f.attrs:
                return None
            return _json(_text(f.attrs["model_config"]), "the model_config attribute", where)
    except _read_errors() as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(f"{where} is damaged or truncated: {detail}") from error


def read_weights_only(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Each layer's arrays of an HDF5 Keras file, ``save_weights`` or ``model.save``, by name."""
    file = Path(os.fspath(path))
    where = f"keras: {str(file)!r}"
    if _sniff(file) != "h5":
        raise ValueError(f"{where} is a Keras v3 archive, not an HDF5 weights file")
    try:
        return _read_h5_weights_only(file, where)
    except _read_errors() as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(f"{where} is damaged or truncated: {detail}") from error


def read_keras_h5(
    path: str | os.PathLike, layer_name: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One layer's ``(kernel, bias)`` from a Keras file: ``.h5`` (``save`` or ``save_weights``) or
    a v3 ``.keras`` archive.

    ``layer_name`` is the Keras layer's name (HDF5, e.g. ``"locally_connected2d_1"``) or its v3
    group name; it may be omitted when exactly one layer's name contains ``locally_connected``.
    The arrays are found by their names (``kernel``, ``bias``) where the file records them, else
    by position (kernel first). Needs h5py (``pip install 'locality[keras]'``).

    Raises:
        ValueError: naming the file, for an unknown or ambiguous layer, a layer without a kernel,
            or two arrays of the same name.
    """
    file = Path(os.fspath(path))
    where = f"read_keras_h5: {str(file)!r}"
    kind = _sniff(file)
    try:
        if kind == "keras_v3":
            layers = read_keras_file(file).weights
            named = {n: {str(i): a for i, a in enumerate(arrays)} for n, arrays in layers.items()}
        else:
            named = _named_h5_arrays(file, where)
    except _read_errors() as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(f"{where} is damaged or truncated: {detail}") from error
    names = list(named)
    if layer_name is None:
        candidates = [n for n in names if "locally_connected" in n.lower()]
        if len(candidates) != 1:
            raise ValueError(
                f"{where}: layer_name is needed to choose among the layers {names} "
                f"({len(candidates)} look locally connected)"
            )
        layer_name = candidates[0]
    if layer_name not in named:
        raise ValueError(f"{where}: no layer {layer_name!r}; layers: {names}")
    arrays = named[layer_name]
    if "kernel" in arrays:
        return arrays["kernel"], arrays.get("bias")
    if "0" in arrays:
        return arrays["0"], arrays.get("1")
    raise ValueError(f"{where}: layer {layer_name!r} has no kernel (weights: {sorted(arrays)})")


def _named_h5_arrays(file: Path, where: str) -> dict[str, dict[str, np.ndarray]]:
    h5py = _h5py()
    with h5py.File(file, "r") as f:
        root = f.get("model_weights", f)
        names = _attribute_list(root, "layer_names") or list(root.keys())
        named: dict[str, dict[str, np.ndarray]] = {}
        for layer in names:
            if layer not in root:
                raise ValueError(f"{where}: layer_names lists {layer!r}, but it has no group")
            group = root[layer]
            if not isinstance(group, h5py.Group):
                raise ValueError(
                    f"{where}: the entry for layer {layer!r} is a {type(group).__name__}, not a "
                    "group of weights"
                )
            weight_names = _attribute_list(group, "weight_names") or list(_datasets(h5py, group))
            arrays: dict[str, np.ndarray] = {}
            for weight_name in weight_names:
                if weight_name not in group:
                    raise ValueError(
                        f"{where}: layer {layer!r} lists the weight {weight_name!r}, but the "
                        "file has no such dataset"
                    )
                base = weight_name.rsplit("/", 1)[-1].split(":")[0]
                if base in arrays:
                    raise ValueError(
                        f"{where}: layer {layer!r} has two weights named {base!r} "
                        f"({weight_names}); which one is meant is ambiguous"
                    )
                arrays[base] = _dataset(h5py, group[weight_name], f"{layer}/{weight_name}", where)
            named[layer] = arrays
    return named
