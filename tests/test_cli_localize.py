"""``locality localize``: before/after summary, the converted state dict, one-line user errors."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import locality
from locality.cli import main
from locality.convert import localize

MODEL = textwrap.dedent(
    """
    from torch import nn

    def make(width=4):
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2, 1), nn.Flatten(), nn.Linear(2 * 6 * 6, 3),
        )
    """
)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    return path


def _model(width: int) -> nn.Module:
    namespace: dict = {}
    exec(MODEL, namespace)
    return namespace["make"](width)


def test_writes_the_state_dict_of_the_same_conversion(source, tmp_path, capsys):
    out = tmp_path / "local.pt"
    argv = [f"{source}:make", "--input", "3x6x6", "--arg", "width=5", "--keep-1x1"]
    code = main(["localize", *argv, "--seed", "3", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0 and err == ""
    before, after = printed.split("after (--to locally_connected):")
    assert "Conv2d" in before and "LocallyConnected2d" in after
    assert f"wrote the converted state dict to {out}" in printed

    torch.manual_seed(3)
    model = _model(5).eval()
    expected = localize(model, torch.randn(1, 3, 6, 6), keep=locality.convert.keep_1x1)
    state = torch.load(out, weights_only=True)
    assert state.keys() == expected.state_dict().keys()
    for key, value in expected.state_dict().items():
        assert torch.equal(state[key], value), key
    assert state["0.weight"].shape == (6, 6, 5, 3, 3, 3)  # a kernel per position
    assert not list(tmp_path.glob("*.tmp"))


def test_tiled_with_untied_bias(source, tmp_path, capsys):
    out = tmp_path / "tiled.pt"
    code = main(
        ["localize", f"{source}:make", "--input", "3x6x6", "--to", "tiled", "--tile-size", "2"]
        + ["--untie-bias", "--keep-first", "1", "--out", str(out)]
    )
    assert code == 0
    state = torch.load(out, weights_only=True)
    assert state["0.weight"].shape == (4, 3, 3, 3)  # kept: the first convolution
    assert state["3.weight"].shape == (2, 2, 2, 4, 1, 1) and state["3.bias"].shape == (2, 2, 2)
    assert "TiledConv2d" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rank", "3"], "--rank is not an argument of --to locally_connected"),
        (["--to", "tiled"], "--to tiled needs --tile-size"),
        (["--noise", "-1"], "noise must be a number >= 0"),
        (["--input", "3x7x6"], "summary: running the model"),
    ],
)
def test_user_errors_are_one_line_with_status_2(source, tmp_path, capsys, extra, message):
    out = tmp_path / "x.pt"
    argv = ["localize", f"{source}:make", "--input", "3x6x6", "--out", str(out), *extra]
    code = main(argv)
    printed, err = capsys.readouterr()
    assert code == 2 and printed == ""
    assert err.startswith("locality localize: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_the_output_path_is_checked_before_any_work(source, tmp_path, capsys):
    existing = tmp_path / "taken.pt"
    existing.write_text("keep me")
    cases = [
        (existing, "exists; pass --force"),
        (tmp_path, "is a directory"),
        (tmp_path / "missing" / "x.pt", "does not exist"),
    ]
    for path, message in cases:
        # a model spec that would fail if it were loaded: the path is refused first
        code = main(["localize", "nowhere:make", "--input", "3x6x6", "--out", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
    assert existing.read_text() == "keep me"
    assert (
        main(["localize", f"{source}:make", "--input", "3x6x6", "--out", str(existing), "--force"])
        == 0
    )


def test_lowrank_as_in_the_issue(source, tmp_path, capsys):
    out = tmp_path / "lowrank.pt"
    argv = [f"{source}:make", "--input", "3x6x6", "--to", "lowrank", "--rank", "4"]
    assert main(["localize", *argv, "--out", str(out)]) == 0
    assert "LowRankLocallyConnected2d" in capsys.readouterr().out
    state = torch.load(out, weights_only=True)
    assert state["0.weight"].shape == (4, 4, 3, 3, 3)
    assert state["0.combining_weights"].shape == (6, 6, 4)


def test_sharing_reports_snr_and_ranks_of_a_localized_trained_model(source, tmp_path, capsys):
    import json
    import math

    from locality.analysis import kernel_spectrum, weight_snr

    out = tmp_path / "noisy.pt"
    argv = [f"{source}:make", "--input", "3x6x6"]
    assert main(["localize", *argv, "--noise", "0.3", "--out", str(out)]) == 0
    capsys.readouterr()
    plot = tmp_path / "spectra.png"
    code = main(
        ["sharing", *argv, "--localized", "--state", str(out), "--json", "--plot", str(plot)]
    )
    printed = capsys.readouterr().out
    assert code == 0 and plot.stat().st_size > 1000
    rows = json.loads(printed[: printed.rindex("]") + 1])
    assert [row["layer"] for row in rows] == ["0", "3"]
    model = localize(_model(4).eval(), torch.zeros(1, 3, 6, 6))
    model.load_state_dict(torch.load(out, weights_only=True))
    assert rows[0]["snr"] == weight_snr(model[0]) and math.isfinite(rows[0]["snr"])
    assert rows[0]["rank_99"] == kernel_spectrum(model[0]).rank_99
    assert main(["sharing", *argv]) == 2
    assert "no layer other than convolutions" in capsys.readouterr().err
    assert main(["sharing", *argv, "--state", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_sharing_report_finds_tiled_layers_through_their_input_size():
    from locality.analysis import sharing_report

    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv1d(1, 2, 3), locality.TiledConv1d(2, 2, 3, tile_size=2))
    (row,) = sharing_report(model, (1, 12))
    assert (row.name, row.kind, row.output_size) == ("1", "tiled", (8,))
    assert row.spectrum.positions == 8 and row.spectrum.rank(0.999999) == 2
