"""``locality experiment`` killed (SIGKILL) at random moments and rerun gives the table of an
uninterrupted run (issue 13, item 11): finished runs are whole files, unfinished ones are redone.

The killed experiments run in child processes; the reruns and the uninterrupted reference run
in this one (same code, same settings), which keeps the test to two process start-ups.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from locality.train.experiment import parse_models, run_experiment
from locality.train.loop import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(seeds=2, models="conv,tiled-2", steps=4, batch_size=50, max_shift=2)


def _start(out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "locality", "experiment", "digits", "--no-progress"]
    for key, value in SETTINGS.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _run_here(out: Path) -> list[dict]:
    config = TrainConfig(
        steps=SETTINGS["steps"], batch_size=SETTINGS["batch_size"], eval_every=SETTINGS["steps"]
    )
    rows = run_experiment(
        "digits",
        seeds=SETTINGS["seeds"],
        config=config,
        models=parse_models(SETTINGS["models"]),
        max_shift=SETTINGS["max_shift"],
        out_dir=out,
        progress=False,
    )
    assert json.loads((out / "digits.json").read_text()) == rows
    return [{k: v for k, v in row.items() if k != "train_seconds"} for row in rows]


def _wait_for(condition, victim: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
        assert time.monotonic() < deadline, "the experiment made no progress"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> list[dict]:
    return _run_here(tmp_path_factory.mktemp("straight"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("seed", [0, 1])
def test_killed_experiment_reruns_to_the_same_table(seed, expected, tmp_path):
    pick = random.Random(seed)
    out = tmp_path / "killed"
    victim = _start(out)
    # Kill at a random moment while runs are being trained and written: after the first
    # finished run (seed 0) or the second (seed 1), plus a random fraction of a second.
    _wait_for(lambda: len(list((out / "runs").glob("*.json"))) > seed, victim)
    time.sleep(pick.uniform(0.0, 0.5))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the experiment finished before the kill"
    assert _run_here(out) == expected
