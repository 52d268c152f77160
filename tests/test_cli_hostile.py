"""Every subcommand against a table of hostile arguments (issue 13, items 8, 12, 13 and 24).

Each must end with exit status 2 and one line ``locality CMD: error: ...`` on stderr naming the
argument, before any work (nothing on stdout, no file written) and without a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locality.cli import main

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The files the table refers to by ``{NAME}``: datasets, a model file, an existing file."""
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)

    def save(name: str, **arrays: np.ndarray) -> str:
        (folder / name).parent.mkdir(exist_ok=True)
        np.savez(folder / name, **arrays)
        return str(folder / name)

    x = rng.random((40, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    nan = x.copy()
    nan[3, 2, 1] = np.nan
    (folder / "text.npz").write_text("not an archive\n")
    (folder / "taken").write_text("an existing file\n")
    (folder / "m.py").write_text(
        "import torch\n"
        "def make(width=4):\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, width, 3), torch.nn.ReLU())\n"
    )
    return {
        "NPZ": save("d.npz", x=x, y=y),
        "NAN": save("nan.npz", x=nan, y=y),
        # Same file name, other examples: told apart by the checkpoint's digest of the data.
        "OTHER": save("other/d.npz", x=x[::-1].copy(), y=y[::-1].copy()),
        "EMPTY": save("empty.npz", x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, np.int64)),
        "HUGE": save("huge.npz", x=x, y=np.where(y == 1, 10**7, 0)),
        "SINGLES": save("singles.npz", x=x[:3], y=np.arange(3)),
        "SQUARE": save("square.npz", x=rng.random((40, 16, 8, 8)), y=y),
        "TEXT": str(folder / "text.npz"),
        "FILE": str(folder / "taken"),
        "UNDER_FILE": str(folder / "taken" / "sub"),
        "MODEL": str(folder / "m.py"),
    }


TRAIN = ["--steps", "2", "--batch-size", "4", "--no-progress", "--device", "cpu"]


def quick_training(argv: list[str]) -> list[str]:
    """The options of ``TRAIN`` that ``argv`` does not set itself."""
    extra: list[str] = []
    for i, option in enumerate(TRAIN):
        if option.startswith("--") and option not in argv:
            value = (
                TRAIN[i + 1] if i + 1 < len(TRAIN) and not TRAIN[i + 1].startswith("--") else None
            )
            extra += [option] if value is None else [option, value]
    return extra


# (argv, what the message must name). ``{NAME}`` is a path from the ``files`` fixture.
HOSTILE: list[tuple[list[str], str]] = [
    (["train", "{NPZ}", "--model", "tiled", "--tile-size", "0"], "--tile-size"),
    (["train", "{NPZ}", "--model", "tiled"], "--tile-size"),
    (["train", "{NPZ}", "--tile-size", "2"], "--tile-size"),
    (["train", "{NPZ}", "--steps", "0"], "--steps"),
    (["train", "{NPZ}", "--steps", "ten"], "--steps"),
    (["train", "{NPZ}", "--batch-size", "1000"], "batch_size"),
    (["train", "{NPZ}", "--lr", "nan"], "lr"),
    (["train", "{NPZ}", "--weight-decay", "inf"], "weight_decay"),
    (["train", "{NPZ}", "--seed", "-1"], "--seed"),
    (["train", "{NPZ}", "--resume"], "--resume"),
    (["train", "{NPZ}", "--device", "gpu"], "device"),
    (["train", "{NPZ}", "--out", "{FILE}"], "--out"),
    (["train", "{NPZ}", "--out", "{UNDER_FILE}"], "--out"),
    (["train", "{NPZ}", "--out", "{FILE}x", "--resume", "--overwrite"], "--overwrite"),
    (["train", "{NPZ}", "--layout", "sideways"], "--layout"),
    (["train", "{SQUARE}"], "layout"),
    (["train", "{NAN}"], "finite"),
    (["train", "{EMPTY}"], "no examples"),
    (["train", "{HUGE}"], "classes"),
    (["train", "{SINGLES}"], "test set is empty"),
    (["train", "{TEXT}"], "text.npz"),
    (["train", "{FILE}x.npz"], "x.npz"),
    (["experiment", "digits", "--models", "dense,tiled"], "tiled-T"),
    (["experiment", "digits", "--device", "meta"], "device"),
    (["experiment", "digits", "--seeds", "0"], "--seeds"),
    (["experiment", "digits", "--max-shift", "8"], "max_shift"),
    (["experiment", "digits", "--weight-decay", "inf"], "weight_decay"),
    (["experiment", "digits", "--out", "{FILE}"], "--out"),
    (["summary", "torch.nn:Conv2d", "--input", "3x32x32"], "Conv2d"),
    (["summary", "{MODEL}:make", "--input", "1x8x8", "--arg", "nope=1"], "nope"),
    (["summary", "{MODEL}:make", "--input", "1x8x8", "--arg", "width=abc"], "width"),
    (["summary", "{MODEL}:make", "--input", "1x8x8", "--arg", "=1"], "--arg"),
    (["summary", "{MODEL}:make", "--input", "0x8x8"], "--input"),
    (["summary", "{MODEL}:nothing", "--input", "1x8x8"], "nothing"),
    (["summary", "no_such_module_xyz:f", "--input", "3x8x8"], "no_such_module_xyz"),
    (["compare", "--input", "0x5"], "must be a positive integer"),
    (["compare", "--input", "10xfoo"], "--input"),
    (["compare", "--input", "8", "--units", "10^99999"], "--units"),
    (["compare", "--input", "10x10", "--kernel", "20"], "kernel"),
    (["compare", "--input", "10x10", "--kernel", "3x3x3"], "--kernel"),
    (["draw", "four-panel", "--out", "{FILE}"], "--out"),
    (["draw", "four-panel", "--out", "{UNDER_FILE}"], "--out"),
    (["draw", "four-panel", "--inputs", "0"], "--inputs"),
    (["draw", "tile-map", "--output", "8"], "--output"),
    (["draw", "receptive-field", "--model", "no_such_module_xyz:f"], "no_such_module_xyz"),
    (["tour", "--out", "{FILE}"], "--out"),
    (["tour", "--out", "{UNDER_FILE}"], "--out"),
    (["nosuchcommand"], "nosuchcommand"),
]


def run_main(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` as the shell would see it: status, stdout and stderr."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, out: str, err: str, command: str, names: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"locality {command}: error: ".replace(" :", ":")), err
    assert names in last, (names, last)
    assert not out, out


@pytest.mark.parametrize(
    "argv, names", HOSTILE, ids=[" ".join(argv).replace("/", "_") for argv, _ in HOSTILE]
)
def test_hostile_arguments(argv, names, files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # commands that would write, would write here
    argv = [part.format(**files) for part in argv]
    if argv[0] == "train":
        argv += quick_training(argv)
    code, out, err = run_main(capsys, argv)
    assert_user_error(code, out, err, argv[0] if argv[0] != "nosuchcommand" else "", names)
    assert not list(tmp_path.iterdir()), "a refused command wrote files"


def test_a_user_error_in_a_fresh_process_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "locality", "compare", "--input", "0x5"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert_user_error(result.returncode, result.stdout, result.stderr, "compare", "'0'")


@pytest.fixture()
def finished_run(files, tmp_path, capsys) -> list[str]:
    """A 3-step tiled run in ``tmp_path/run``; returns its command line."""
    argv = ["train", files["NPZ"], "--model", "tiled", "--tile-size", "2", "--steps", "3"]
    argv += ["--out", str(tmp_path / "run")]
    argv += quick_training(argv)
    assert run_main(capsys, argv)[0] == 0
    return argv


def _with(argv: list[str], option: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(option) + 1] = value
    return argv


def _swap(argv: list[str], old: str, new: str) -> list[str]:
    return [new if part == old else part for part in argv]


@pytest.mark.parametrize(
    "change, names",
    [
        (lambda a, f: a, "--resume"),  # a fresh run into the old run directory
        (lambda a, f: [*_with(a, "--steps", "2"), "--resume"], "step 3"),
        (lambda a, f: [*_with(a, "--batch-size", "8"), "--resume"], "batch_size"),
        (lambda a, f: [*_with(a, "--tile-size", "3"), "--resume"], "tiled-3"),
        (lambda a, f: [*_swap(a, f["NPZ"], f["OTHER"]), "--resume"], "another dataset"),
    ],
    ids=["fresh-into-old", "fewer-steps", "other-batch", "other-tile", "other-dataset"],
)
def test_resuming_a_run_with_something_else(change, names, finished_run, files, capsys):
    code, out, err = run_main(capsys, change(finished_run, files))
    assert_user_error(code, out, err, "train", names)


def test_a_truncated_checkpoint_is_named(finished_run, tmp_path, capsys):
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    code, out, err = run_main(capsys, [*_with(finished_run, "--steps", "4"), "--resume"])
    assert_user_error(code, out, err, "train", str(checkpoint))


def test_overwrite_replaces_an_old_run(finished_run, tmp_path, capsys):
    assert run_main(capsys, [*_with(finished_run, "--steps", "2"), "--overwrite"])[0] == 0
    assert '"steps": 2' in (tmp_path / "run" / "metrics.json").read_text()
