"""The package's layering holds: no module imports one from a higher layer.

cli -> (train | convert | analysis | draw | interop | inpaint) -> layers -> (functional |
connectivity | geometry) -> kernels -> (_arguments | _memory). Every import statement of every
module under src/locality is read (also those inside functions, which run later but still
couple the layers), and ``import locality`` is checked not to load the CLI.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Higher imports lower; modules of one layer may import each other.
RANKS = {
    "locality._arguments": 0,
    "locality._memory": 0,
    "locality._atomic": 0,
    "locality.kernels": 1,
    "locality.functional": 2,
    "locality.connectivity": 2,
    "locality.geometry": 2,
    "locality.layers": 3,
    "locality.train": 4,
    "locality.convert": 4,
    "locality.analysis": 4,
    "locality.draw": 4,
    "locality.interop": 4,
    "locality.inpaint": 4,
    "locality.cli": 5,
    "locality.__main__": 6,
    "locality": 5,  # the package's __init__: the public names, which the CLI may import
}


def _rank(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return RANKS[prefix]
    raise AssertionError(f"{module} has no layer: add its package to RANKS in {__file__}")


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "locality").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The locality modules ``module`` imports (``from locality import X``: X if a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in modules else base)
    return {name for name in names if name == "locality" or name.startswith("locality.")}


def _upward() -> set[tuple[str, str]]:
    modules = _modules()
    return {
        (module, imported)
        for module, path in modules.items()
        for imported in _imports(module, path, modules)
        if _rank(imported) > _rank(module)
    }


def test_no_module_imports_a_higher_layer():
    unexpected = _upward()
    assert not unexpected, "upward imports: " + ", ".join(f"{a} -> {b}" for a, b in unexpected)


def test_the_walker_sees_an_upward_import(tmp_path):
    # the test above can fail: a layers module importing convert is caught
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from locality.convert import to_dense\n")
    modules = _modules()
    imported = _imports("locality.layers.bad", path, modules)
    assert imported == {"locality.convert"}
    assert _rank("locality.convert") > _rank("locality.layers.bad")


def test_import_locality_loads_no_cli():
    code = "import sys, locality; print(sorted(m for m in sys.modules if m.startswith('locality')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = eval(result.stdout)
    assert loaded and not [m for m in loaded if m.startswith("locality.cli")]
    assert all(_rank(m) < 5 or m == "locality" for m in loaded)
