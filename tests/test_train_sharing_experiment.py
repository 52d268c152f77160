"""Issue 16's experiment harness, smoke-tested with tiny budgets (the table is not run here)."""

from __future__ import annotations

import json

import pytest
import torch

from locality.cli import main
from locality.train import data as datasets
from locality.train.loop import TrainConfig
from locality.train.sharing_experiment import (
    ROWS,
    Row,
    build,
    digits_slots,
    parse_rows,
    run_sharing_experiment,
)

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

TINY = TrainConfig(steps=2, batch_size=20, eval_every=2)


@pytest.fixture(scope="module")
def slots():
    return digits_slots()


def test_digits_slots_places_each_digit_upright_left_or_transposed_right(slots):
    base = datasets.digits()
    assert slots.x_train.shape == (len(base.x_train), 1, 8, 16)
    assert torch.equal(slots.y_train, base.y_train) and torch.equal(slots.y_test, base.y_test)
    for x, canvas in ((base.x_train, slots.x_train), (base.x_test, slots.x_test)):
        left, right = canvas[..., :8], canvas[..., 8:]
        on_left = left.flatten(1).abs().sum(1) > 0
        for i in range(0, len(x), 37):
            if on_left[i]:
                assert torch.equal(left[i], x[i]) and not right[i].any()
            else:
                assert torch.equal(right[i], x[i].transpose(-1, -2)) and not left[i].any()
        assert 0.4 < on_left.float().mean() < 0.6


def test_rows_parse_and_bad_names_are_refused():
    rows = {row.name: row for row in parse_rows(ROWS)}
    assert rows["tiled-4"] == Row("tiled-4", "tiled", tile_size=4)
    assert rows["region-2"] == Row("region-2", "conv", kind="region", size=2)
    assert rows["locally_connected-share-100"].share_every == 100
    for bad in ("tiled", "region-0", "lowrank-x", "conv-3", "mapped-2"):
        with pytest.raises(ValueError, match="rows: each entry"):
            parse_rows(bad)


def test_region_and_lowrank_rows_start_as_the_conv_model(slots):
    x = slots.x_test[:16]
    torch.manual_seed(0)
    conv, _ = build(parse_rows("conv")[0], slots)
    for name in ("region-2", "lowrank-4"):
        torch.manual_seed(0)
        model, sharing = build(parse_rows(name)[0], slots)
        assert sharing is None
        torch.testing.assert_close(model(x), conv(x), rtol=1e-5, atol=1e-5)
    _, sharing = build(parse_rows("locally_connected-share-10")[0], slots)
    assert sharing is not None and sharing.every == 10


def test_the_harness_runs_resumes_and_writes_every_output(tmp_path, monkeypatch, slots):
    monkeypatch.setattr("locality.train.sharing_experiment.digits_slots", lambda: slots)
    rows = ("conv", "region-2", "lowrank-2", "locally_connected", "locally_connected-share-1")
    table = run_sharing_experiment(
        datasets=("digits-slots",),
        rows=rows,
        seeds=1,
        config=TINY,
        max_shift=1,
        out_dir=tmp_path,
        progress=False,
    )
    assert [row["model"] for row in table] == list(rows)
    assert json.loads((tmp_path / "sharing.json").read_text()) == table
    text = (tmp_path / "sharing.md").read_text()
    assert "Best row per dataset" in text and "region-2" in text
    assert "every input rolled round" in text and "padded with zeros" not in text
    for name in (
        "sharing_accuracy_vs_parameters",
        "sharing_accuracy_vs_shift_digits-slots",
        "sharing_spectrum",
    ):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    run = json.loads((tmp_path / "runs" / "digits-slots_locally_connected_seed-0.json").read_text())
    assert run["shift_mode"] == "roll"
    spectrum = run["first_layer_spectrum"]
    assert spectrum["positions"] == 8 * 16 and len(spectrum["singular_values"]) == 8 * 16
    stamp = (tmp_path / "runs" / "digits-slots_conv_seed-0.json").stat().st_mtime_ns
    run_sharing_experiment(
        datasets=("digits-slots",),
        rows=("conv",),
        seeds=1,
        config=TINY,
        max_shift=1,
        out_dir=tmp_path,
        progress=False,
    )
    assert (tmp_path / "runs" / "digits-slots_conv_seed-0.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="was trained with"):
        run_sharing_experiment(
            datasets=("digits-slots",),
            rows=("conv",),
            seeds=1,
            config=TrainConfig(steps=3, batch_size=20),
            max_shift=1,
            out_dir=tmp_path,
            progress=False,
        )


def test_locally_connected_with_instant_sharing_ends_tied(slots):
    torch.manual_seed(0)
    model, sharing = build(parse_rows("locally_connected-share-1")[0], slots)
    assert sharing is not None
    from locality.convert import project
    from locality.train.loop import train

    train(model, slots, TINY, progress=False, after_step=sharing)
    first = model[0]
    assert project(first, to="tiled", tile_size=first.kernel_size).relative_error < 1e-6


def test_cli(tmp_path, capsys, monkeypatch, slots):
    monkeypatch.setattr("locality.train.sharing_experiment.digits_slots", lambda: slots)
    argv = ["experiment", "sharing", "--datasets", "digits-slots", "--models", "conv,region-2"]
    argv += ["--seeds", "1", "--steps", "2", "--batch-size", "20", "--max-shift", "1"]
    assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == 0
    assert "region-2" in capsys.readouterr().out
    assert main([*argv[:3], "nowhere", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("locality experiment: error: run_sharing_experiment: datasets must be")
    assert "Traceback" not in err


def test_plots_give_each_of_the_twelve_rows_its_own_style():
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgba

    from locality.train import plots

    rows = [
        {
            "model": name,
            "tile_size": None,
            "dataset": "digits",
            "test_accuracy_mean": 0.5 + i / 100,
            "test_accuracy_std": 0.01,
            "parameters": 1000 * (i + 1),
        }
        for i, name in enumerate(ROWS)
    ]
    figure = plots.accuracy_vs_parameters(rows)
    legend = figure.legends[0]  # one legend of the models, below the panels
    assert [t.get_text() for t in legend.get_texts()] == list(ROWS)
    drawn = figure.axes[0].containers
    styles = {(to_rgba(h.lines[0].get_color()), h.lines[0].get_marker()) for h in drawn}
    assert len(drawn) == len(ROWS) and len(styles) == len(ROWS)
