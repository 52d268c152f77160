"""The examples in the public docstrings run and print what they say (``doctest``)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

import locality

MODULES = [
    "locality.connectivity",
    "locality.layers.local",
    "locality.layers.tiled",
    "locality.layers.lazy",
    "locality.layers.region",
    "locality.layers.mapped",
    "locality.layers.lowrank",
    "locality.layers.transposed",
    "locality.layers.lazy_between",
    "locality._arguments",
    "locality.analysis.summary",
    "locality.analysis.counts",
]


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    globs = {
        "torch": torch,
        "locality": locality,
        **{n: getattr(locality, n) for n in locality.__all__},
    }
    tests = []
    # the modules named above, and every module that defines a public layer
    layers = {getattr(locality.layers, name).__module__ for name in locality.layers.__all__}
    for name in sorted(set(MODULES) | layers):
        module = importlib.import_module(name)
        found = finder.find(module, globs={**vars(module), **globs})
        tests += [t for t in found if t.examples]
    return tests


EXAMPLES = _examples()


def test_the_public_layers_have_examples():
    names = {test.name.rsplit(".", 1)[-1] for test in EXAMPLES}
    for layer in locality.layers.__all__:
        assert layer in names, f"{layer}'s docstring has no example"
    assert "Connectivity" in names


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example_runs(test):
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    if runner.run(test, out=report.append).failed:
        pytest.fail("".join(report))
