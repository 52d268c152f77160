"""``locality summary``: the per-layer table of a model given as ``module:function``."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from locality.cli.shapes import shape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="per-layer kind, output shape, parameters, MACs and receptive field of a model",
        description="Build a model and print one row per leaf module: kind (dense / "
        "locally_connected / tiled / conv / ... / other), output shape, parameters, "
        "multiply-accumulates, receptive field and cumulative stride, with totals. FLOPs = "
        "2 x MACs; the total is checked against torch.utils.flop_counter.FlopCounterMode.",
        epilog="examples:\n"
        "  locality summary torchvision.models:resnet18 --input 3x224x224 --meta\n"
        "  locality summary my_models.py:make_net --input 1x28x28 --arg width=64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="module:callable or path/to/file.py:callable that returns the model "
        "(a class, a function or a module instance)",
    )
    parser.add_argument(
        "--input",
        type=shape,
        required=True,
        metavar="SHAPE",
        help="one example's shape without the batch, e.g. 3x224x224",
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument for the callable (Python literal); repeatable",
    )
    parser.add_argument(
        "--meta",
        action="store_true",
        help="build the model on the meta device: nothing is allocated, so "
        "models of any size can be summarised",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def load(spec: str) -> object:
    """The object named by ``module:name`` or ``path/to/file.py:name`` (dots allowed in name)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(f"MODEL must look like module:callable or file.py:callable, got {spec!r}")
    if where.endswith(".py") or Path(where).is_file():
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"MODEL: no file {str(path)!r}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules.setdefault(path.stem, module)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"MODEL: cannot import {where!r}: {error}") from error
    target: object = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise ValueError(f"MODEL: {where!r} has no attribute {name!r}")
        target = getattr(target, part)
    return target


def _keywords(pairs: list[str]) -> dict[str, object]:
    keywords: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--arg must look like name=value, got {pair!r}")
        try:
            keywords[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            keywords[key] = value  # a bare word is a string
    return keywords


def build(target: object, spec: str, keywords: dict[str, object]) -> object:
    """``target(**keywords)``, with the callable's complaint (a wrong or missing argument, a value
    of the wrong type) as a ValueError naming the call."""
    call = f"{spec}({', '.join(f'{k}={v!r}' for k, v in keywords.items())})"
    try:
        return target(**keywords)  # type: ignore[operator]  # callable() was checked
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"MODEL: {call} failed: {type(error).__name__}: {error} (pass its arguments with "
            f"--arg NAME=VALUE)"
        ) from error


def run(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    from locality.analysis.summary import summary

    target = load(args.model)
    keywords = _keywords(args.arg)
    model: object
    if isinstance(target, nn.Module):
        model = target.to("meta") if args.meta else target
    elif callable(target):
        with torch.device("meta") if args.meta else torch.device("cpu"):
            model = build(target, args.model, keywords)
    else:
        raise ValueError(f"MODEL: {args.model!r} is neither a module nor callable")
    if not isinstance(model, nn.Module):
        raise ValueError(f"MODEL: {args.model!r} returned {type(model).__name__}, not a Module")
    try:
        result = summary(model.eval(), args.input)
    except RuntimeError as error:
        raise ValueError(f"--input {'x'.join(map(str, args.input))}: {error}") from error
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0
