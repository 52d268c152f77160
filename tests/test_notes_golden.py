"""Every worked number of the notes (and Keras's documented example), as published.

Each number is checked three ways: the closed forms of ``locality.analysis``, a real module's
``sum(p.numel())`` where one can be built (on the meta device when it is too large), and the
output of ``locality compare`` (text and JSON). Note 002's "约400MB" is the one published number
that is wrong: 10^12 float32 weights are 4 TB.
"""

from __future__ import annotations

import json

import pytest
from torch import nn

import locality
from locality.analysis import conv_cost, dense_cost, locally_connected_cost
from locality.analysis.compare import output_size_formula
from locality.cli import main


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def compare_cli(capsys, *argv: str) -> tuple[dict, str]:
    assert main(["compare", *argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["compare", *argv]) == 0
    return result, capsys.readouterr().out


# (note, compare arguments, kind, published number)
PARAMS = [
    (
        "001 dense 4x4x50 -> 500",
        ["--input", "4x4", "--in-channels", "50", "--units", "500"],
        "dense",
        400_000,
    ),
    ("001 dense 500 -> 10", ["--input", "500", "--units", "10"], "dense", 5_000),
    (
        "001 ten 10x10 kernels",
        ["--input", "100x100", "--out-channels", "10", "--kernel", "10"],
        "conv",
        1_000,
    ),
    (
        "001 4 -> 2 channels, 2x2",
        ["--input", "8x8", "--in-channels", "4", "--out-channels", "2", "--kernel", "2"],
        "conv",
        32,
    ),
    (
        "001 1x1, 6 -> 5 channels",
        ["--input", "8x8", "--in-channels", "6", "--out-channels", "5", "--kernel", "1"],
        "conv",
        30,
    ),
    (
        "002 dense",
        ["--input", "1000x1000", "--units", "10^6", "--kernel", "10", "--stride", "10"],
        "dense",
        10**12,
    ),
    (
        "002 local",
        ["--input", "1000x1000", "--units", "10^6", "--kernel", "10", "--stride", "10"],
        "locally_connected",
        10**8,
    ),
    (
        "003 dense",
        ["--input", "500x500", "--units", "10^5", "--kernel", "10"],
        "dense",
        25_000_000_000,
    ),
    (
        "003 local",
        ["--input", "500x500", "--units", "10^5", "--kernel", "10"],
        "locally_connected",
        10**7,
    ),
    ("003 shared", ["--input", "500x500", "--units", "10^5", "--kernel", "10"], "conv", 100),
    (
        "003 64 kernels",
        ["--input", "500x500", "--out-channels", "64", "--kernel", "10"],
        "conv",
        6_400,
    ),
    (
        "003 kernel 5x5x3x10",
        ["--input", "32x32", "--in-channels", "3", "--out-channels", "10", "--kernel", "5"],
        "conv",
        750,
    ),
    (
        "003 kernel 3x3x10x5",
        ["--input", "28x28", "--in-channels", "10", "--out-channels", "5", "--kernel", "3"],
        "conv",
        450,
    ),
    ("004 dense 48 x 10", ["--input", "4x4", "--in-channels", "3", "--units", "10"], "dense", 480),
    (
        "004 conv 4x4x3x10",
        ["--input", "4x4", "--in-channels", "3", "--units", "10"],
        "conv",
        480,
    ),
    (
        "Keras LocallyConnected2D",
        [
            "--input",
            "32x32",
            "--in-channels",
            "3",
            "--out-channels",
            "64",
            "--kernel",
            "3",
            "--bias",
        ],
        "locally_connected",
        1_612_800,
    ),
    (
        "Keras Conv2D",
        [
            "--input",
            "32x32",
            "--in-channels",
            "3",
            "--out-channels",
            "64",
            "--kernel",
            "3",
            "--bias",
        ],
        "conv",
        1_792,
    ),
]


@pytest.mark.parametrize("note, argv, kind, published", PARAMS, ids=[p[0] for p in PARAMS])
def test_cli_reproduces_the_published_number(note, argv, kind, published, capsys):
    result, text = compare_cli(capsys, *argv)
    assert result["kinds"][kind]["params"] == published
    assert f"{published:,}" in text


def test_closed_forms_and_real_modules():
    assert dense_cost(4 * 4 * 50, 500, bias=False).params == 400_000
    assert numel(nn.Linear(800, 500, bias=False)) == 400_000
    assert numel(nn.Linear(500, 10, bias=False)) == 5_000
    assert (
        numel(nn.Conv2d(1, 10, 10, bias=False))
        == conv_cost(1, 10, 10, (1, 1), bias=False).params
        == 1_000
    )
    assert numel(nn.Conv2d(4, 2, 2, bias=False)) == 32
    assert numel(nn.Conv2d(6, 5, 1, bias=False)) == 30
    assert numel(nn.Conv2d(3, 10, 5, bias=False)) == 750
    assert numel(nn.Conv2d(10, 5, 3, bias=False)) == 450
    big = nn.Linear(1000 * 1000, 10**6, bias=False, device="meta")
    assert numel(big) == dense_cost(10**6, 10**6, bias=False).params == 10**12
    local = locality.LocallyConnected2d(
        1, 100, 10, input_size=1000, stride=10, bias=False, device="meta"
    )
    assert numel(local) == 10**8
    assert dense_cost(500 * 500, 10**5, bias=False).params == 25_000_000_000
    assert numel(nn.Conv2d(1, 64, 10, bias=False)) == 6_400
    assert numel(nn.Linear(48, 10, bias=False)) == numel(nn.Conv2d(3, 10, 4, bias=False)) == 480
    keras = locality.LocallyConnected2d(3, 64, 3, input_size=32)
    assert numel(keras) == locally_connected_cost(3, 64, 3, (30, 30)).params == 1_612_800
    assert numel(nn.Conv2d(3, 64, 3)) == 1_792


def test_note_002_memory_is_4_tb_not_400_mb(capsys):
    result, text = compare_cli(
        capsys, "--input", "1000x1000", "--units", "10^6", "--kernel", "10", "--stride", "10"
    )
    assert result["kinds"]["dense"]["weight_bytes"] == 4 * 10**12
    dense_row = next(line for line in text.splitlines() if line.startswith("dense"))
    assert "4 TB" in dense_row and "400 MB" not in dense_row
    assert "10^12" in text and "10^8" in text


def test_note_003_ratio_is_one_in_2500(capsys):
    _, text = compare_cli(capsys, "--input", "500x500", "--units", "10^5", "--kernel", "10")
    local_row = next(line for line in text.splitlines() if line.startswith("local"))
    assert local_row.endswith("1/2,500")
    assert "2.5x10^10" in text


def test_output_size_formula_note_001(capsys):
    assert output_size_formula(32, 5, 1, 0) == "(32 + 2*0 - 5)/1 + 1 = 28"
    result, text = compare_cli(capsys, "--input", "32x32", "--out-channels", "6", "--kernel", "5")
    assert result["output_size"] == [28, 28]
    assert "(32 + 2*0 - 5)/1 + 1 = 28" in text


def test_note_004_score_map_is_5x5(capsys):
    result, text = compare_cli(
        capsys, "--input", "8x8", "--in-channels", "3", "--out-channels", "10", "--kernel", "4"
    )
    assert result["output_size"] == [5, 5]  # (8 - 4)/1 + 1: 25 windows of 32x32 at stride 8
    assert "(8 + 2*0 - 4)/1 + 1 = 5" in text
