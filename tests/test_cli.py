"""The ``locality`` command, run in-process through ``main(argv)``."""

from __future__ import annotations

import functools
import json
import unicodedata

import pytest
import torch

from locality.analysis.compare import compare
from locality.cli import build_parser, main

pytest.importorskip("matplotlib")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


@pytest.mark.parametrize("command", ["tour", "compare", "summary", "draw"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert command in capsys.readouterr().out


def test_subcommands_are_listed_in_order():
    text = build_parser().format_help().split("commands:")[1]
    positions = [text.index(name) for name in ("tour", "compare", "summary", "draw")]
    assert positions == sorted(positions)


def test_compare_json_is_the_analysis_result(capsys):
    code, out, _ = run(
        capsys,
        "compare",
        "--input",
        "32x32",
        "--in-channels",
        "3",
        "--out-channels",
        "64",
        "--kernel",
        "3",
        "--bias",
        "--json",
    )
    assert code == 0
    expected = compare((32, 32), 3, out_channels=64, kernel_size=3, bias=True).to_dict()
    assert json.loads(out) == expected


def test_compare_text_fits_80_columns(capsys):
    code, out, _ = run(
        capsys,
        "compare",
        "--input",
        "1000x1000",
        "--units",
        "10^6",
        "--kernel",
        "10",
        "--stride",
        "10",
    )
    assert code == 0
    assert max(columns(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--input", "1000x1000", "--units", "999", "--kernel", "10", "--stride", "10"], "units"),
        (["--input", "10x10", "--kernel", "20"], "kernel_size"),
        (["--input", "10x10", "--kernel", "3x3x3"], "--kernel"),
    ],
)
def test_compare_errors_go_to_stderr(argv, message, capsys):
    code, out, err = run(capsys, "compare", *argv)
    assert code == 2 and not out and message in err


def test_count_syntax():
    with pytest.raises(SystemExit):
        main(["compare", "--input", "10xfoo"])


def test_summary_of_a_model_file(tmp_path, capsys):
    source = tmp_path / "models_for_test.py"
    source.write_text(
        "from torch import nn\nimport locality\n"
        "def make(width=4):\n"
        "    return nn.Sequential(locality.TiledConv2d(3, width, 3, tile_size=2), nn.ReLU(),\n"
        "                         nn.Flatten(), nn.Linear(width * 6 * 6, 10))\n"
    )
    code, out, _ = run(
        capsys, "summary", f"{source}:make", "--input", "3x8x8", "--arg", "width=5", "--json"
    )
    assert code == 0
    result = json.loads(out)
    params = (2 * 2 * 5 * 3 * 9 + 2 * 2 * 5) + (5 * 36 * 10 + 10)
    assert result["total_params"] == params
    assert [layer["kind"] for layer in result["layers"]] == ["tiled", "other", "other", "dense"]
    code, out, _ = run(
        capsys, "summary", f"{source}:make", "--input", "3x8x8", "--arg", "width=5", "--meta"
    )
    assert code == 0 and "total" in out and f"{params:,}" in out


def test_summary_bad_spec(capsys):
    code, _, err = run(capsys, "summary", "no_such_module_xyz:f", "--input", "3x8x8")
    assert code == 2 and "cannot import" in err


@pytest.mark.parametrize("figure", ["four-panel", "tile-map", "receptive-field"])
def test_draw_writes_files(figure, tmp_path, capsys):
    code, out, _ = run(capsys, "draw", figure, "--out", str(tmp_path), "--format", "png")
    assert code == 0
    (written,) = list(tmp_path.iterdir())
    assert written.suffix == ".png" and str(written) in out


@pytest.fixture(scope="module")
def fast_tour():
    """The tour with a smaller FC -> conv timing run, so that the tests stay fast."""
    from locality.cli import tour

    original = tour.fc_to_conv_demo
    tour.fc_to_conv_demo = functools.partial(original, batch=2, repeats=1)
    yield
    tour.fc_to_conv_demo = original


def test_tour_text(fast_tour, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "tour")
    assert code == 0
    assert max(columns(line) for line in out.splitlines()) <= 80
    files = out.split("6. Files")[1]
    for name in ("four_panel.png", "tile_map.png", "receptive_field.png"):
        assert (tmp_path / "locality-tour" / name).read_bytes()[:4] == b"\x89PNG"
        assert f"locality-tour/{name}" in files
    assert out.rstrip().splitlines()[-1].startswith("locality draw")
    assert "4 TB" in out and "speedup" in out


def test_tour_json(fast_tour, tmp_path, capsys):
    code, out, _ = run(capsys, "tour", "--out", str(tmp_path), "--json")
    assert code == 0
    result = json.loads(out)
    fc = result["fc_to_conv"]
    assert fc["score_map_shape"] == [10, 5, 5]
    assert fc["max_difference"] < 1e-4
    assert fc["windows_flops"] > fc["fcn_flops"]
    assert [c["agrees"] for c in result["note_checks"]].count(False) == 1
    assert len(result["files"]) == 3
    assert torch.tensor(result["tiled_kernel_map"]).shape == (6, 6)


def test_compare_huge_counts_are_exact_integers(capsys):
    """Issue 13, items 12 and 24: 10^100 units print exact integers, 10^400 does not overflow."""
    from locality._memory import format_bytes

    assert format_bytes(32 * 10**100) == f"{32 * 10**82:,} EB"
    assert format_bytes(999_600) == "1 MB" and format_bytes(1_612_800) == "1.61 MB"
    code, out, _ = run(capsys, "compare", "--input", "8", "--units", "10^100")
    assert code == 0 and f"{32 * 10**82:,} EB" in out
    code, out, err = run(capsys, "compare", "--input", "8", "--units", "10^400")
    assert code == 0 and not err and f"{8 * 10**400:,}" in out
