"""``locality keras-import``: a Keras 2 model file (.h5 or .keras) as a PyTorch module file."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keras-import",
        help="read a Keras 2 model (.h5 or .keras, no TensorFlow needed) into a PyTorch module",
        description="Read a Keras 2 model saved with model.save (HDF5 .h5 or Keras v3 .keras "
        "archive) with h5py only, translate it to a channels-first PyTorch module that computes "
        "the same function, print its summary and its parameter count next to the Keras "
        "config's, and save it with torch.save (load it back with torch.load(path, "
        "weights_only=False); it needs locality installed).",
        epilog="examples:\n"
        "  locality keras-import model.h5 --out model.pt\n"
        "  locality keras-import weights.h5 --config model.json --out model.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", type=Path, help="the .h5 or .keras file")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="where to write the module"
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="JSON",
        help="the architecture (model.to_json()) for a weights-only file (model.save_weights)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(run=run)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name such as model.pt")
    if out.exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--out {str(out)!r}: the folder {str(parent)!r} is not writable")


def _save(module: object, out: Path) -> None:
    import torch

    parent = out.parent if str(out.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
    os.close(handle)
    try:
        torch.save(module, temporary)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _count_differences(config: object) -> list[str]:
    """Why the two counts differ, for the layer kinds present in ``config``."""
    import json

    text = config if isinstance(config, str) else json.dumps(config)
    layers = list(json.loads(text).get("config", {}).get("layers", []))
    classes = {layer.get("class_name") for layer in layers}
    local = [
        layer.get("config", {})
        for layer in layers
        if str(layer.get("class_name", "")).startswith("LocallyConnected")
    ]
    reasons = []
    if "BatchNormalization" in classes:
        reasons.append("Keras counts BatchNormalization moving statistics (buffers here)")
    norms = [
        layer.get("config", {})
        for layer in layers
        if layer.get("class_name") == "BatchNormalization"
    ]
    if any(c.get("scale") is False or c.get("center") is False for c in norms):
        reasons.append(
            "the module's BatchNorm has a weight and a bias where Keras has scale=False or "
            "center=False (fixed to 1 and 0)"
        )
    if any(c.get("implementation") == 2 for c in local):
        reasons.append(
            "Keras counts the whole masked kernel of implementation-2 locally connected layers"
        )
    if any(c.get("implementation") == 3 and c.get("padding") == "same" for c in local):
        reasons.append(
            "the module keeps the kernel entries that read the zero padding of padding='same' "
            "locally connected layers, which Keras' implementation 3 leaves out"
        )
    return reasons


def run(args: argparse.Namespace) -> int:
    try:
        _check_out(args.out, args.overwrite)
        from locality.analysis.summary import summary
        from locality.interop.keras_file import read_keras_config
        from locality.interop.keras_model import count_keras_parameters, input_shapes, load_model

        config = read_keras_config(args.model) if args.config is None else None
        if args.config is not None:
            config_path = args.config
            if not config_path.is_file():
                raise ValueError(f"--config {str(config_path)!r}: no such file")
            config = config_path.read_text(encoding="utf8")
            model = load_model(args.model, config=config)
        else:
            model = load_model(args.model)
        assert config is not None
        shapes = input_shapes(config)
        keras_count = count_keras_parameters(config)
    except (ValueError, OSError, ImportError) as error:
        print(f"locality keras-import: error: {error}", file=sys.stderr)
        return 2
    if len(shapes) == 1:
        print(summary(model, shapes[0]))
    else:
        print(model)
    torch_count = sum(p.numel() for p in model.parameters())
    print(f"parameters: {torch_count:,} (PyTorch module), {keras_count:,} (Keras config)")
    if torch_count != keras_count:
        for reason in _count_differences(config):
            print(f"  {reason}")
    try:
        _save(model, args.out)
    except OSError as error:
        print(
            f"locality keras-import: error: cannot write {str(args.out)!r}: {error}",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {args.out}")
    return 0
