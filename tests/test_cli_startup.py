"""What the command imports: ``--help`` without torch, the tour without matplotlib, and the
subpackages as attributes of ``locality`` (issue 13, item 23). Each runs in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from locality.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_help_imports_no_torch():
    commands = [[], *([name] for name in SUBCOMMANDS)]
    result = python(
        "import sys\n"
        "from locality.cli import main\n"
        f"for argv in {commands!r}:\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules), "
        "file=sys.stderr)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "commands:" in result.stdout


def test_subpackages_are_attributes():
    result = python(
        "import locality\n"
        "print(locality.analysis.summary.__name__, locality.convert.fully_convolutional.__name__,"
        " locality.layers.TiledConv2d.__name__, locality.LocallyConnected2d.__name__,"
        " 'analysis' in dir(locality))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "summary", "fully_convolutional", "TiledConv2d", "LocallyConnected2d", "True",
    ]  # fmt: skip


HIDE_MATPLOTLIB = """
import functools, importlib.abc, json, sys

class HideMatplotlib(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideMatplotlib())
import importlib.util
importlib.util.find_spec = lambda name, *a, _find=importlib.util.find_spec: (
    None if name.split(".")[0] == "matplotlib" else _find(name, *a)
)
from locality.cli import main, tour
tour.fc_to_conv_demo = functools.partial(tour.fc_to_conv_demo, batch=2, repeats=1)
sys.exit(main(ARGV))
"""


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_tour_without_matplotlib_prints_the_text_and_names_the_skipped_figures(as_json, tmp_path):
    argv = ["tour", "--out", str(tmp_path / "t"), *(["--json"] if as_json else [])]
    result = python(HIDE_MATPLOTLIB.replace("ARGV", repr(argv)))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    names = ("four_panel.png", "tile_map.png", "receptive_field.png")
    if as_json:
        skipped = json.loads(result.stdout)["skipped_figures"]
        assert skipped["files"] == list(names) and "matplotlib" in skipped["reason"]
    else:
        assert "4 TB" in result.stdout and "speedup" in result.stdout
        last = result.stdout.split("6. Files")[1]
        assert "Figures skipped" in last and all(name in last for name in names)
        assert "pip install 'locality[plot]'" in last
    assert not list((tmp_path / "t").iterdir())


def test_tour_kernel_grid_is_the_tiled_layers():
    pytest.importorskip("matplotlib")
    from locality import TiledConv2d
    from locality.cli.tour import tiled_kernel_index
    from locality.draw import kernel_map

    for tile in (1, 2, 3):
        layer = TiledConv2d(1, 1, 3, tile_size=tile)
        assert kernel_map(layer, (8, 9)).tolist() == tiled_kernel_index((6, 7), tile).tolist()
