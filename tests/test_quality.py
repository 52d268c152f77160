"""The code stays lint-clean and formatted (ruff) and type-checked (mypy), as CI runs them.

Both tools come with the ``test`` extra; each test skips when its tool is not installed. The
settings are those of ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m module *args`` from the repository root, or skip when it is not installed."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ruff_is_clean():
    paths = [p for p in ("src", "tests", "benchmarks", "examples") if (ROOT / p).is_dir()]
    result = run_tool("ruff", "check", "--no-cache", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    paths = [p for p in ("src", "tests", "benchmarks", "examples") if (ROOT / p).is_dir()]
    result = run_tool("ruff", "format", "--check", "--no-cache", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    result = run_tool("mypy", "src/locality")
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_has_one_source():
    """``pyproject.toml`` reads the version from ``locality.__version__`` and states none itself."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "locality.__version__"
    import locality

    assert importlib.metadata.version("locality") == locality.__version__


@pytest.mark.slow
def test_sdist_and_wheel_build(tmp_path):
    """``python -m build`` makes an sdist and a wheel that carry the package and its version."""
    pytest.importorskip("setuptools")
    result = run_tool("build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    import locality

    (wheel,) = tmp_path.glob("locality-*.whl")
    (sdist,) = tmp_path.glob("locality-*.tar.gz")
    assert wheel.name.startswith(f"locality-{locality.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"locality-{locality.__version__}.dist-info/METADATA").decode()
    expected = {"locality/py.typed", "locality/layers/local.py", "locality/kernels/local_op.py"}
    assert expected <= names
    assert "locality/inpaint/partial_unet.pt" in names  # the shipped inpainting checkpoint
    assert not any(name.startswith("tests/") for name in names)
    assert "Requires-Dist: torch>=2.4" in metadata
    with tarfile.open(sdist) as archive:
        members = {Path(m).relative_to(Path(m).parts[0]).as_posix() for m in archive.getnames()}
    assert {"CHANGELOG.md", "README.md", "pyproject.toml", "src/locality/__init__.py"} <= members
