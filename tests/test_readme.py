"""The README tells the truth: its commands are CI's, its example runs, its table is recomputed."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import locality

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_two_commands_come_first_and_ci_runs_the_test_command():
    install, test = (block.strip() for block in code_blocks("bash")[:2])
    assert install.endswith("locality tour") and "pip install" in install
    assert test.endswith("python -m pytest") and '".[test]"' in test
    ci_commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert test in ci_commands


def test_the_example_runs_and_is_short():
    (example,) = code_blocks("python")
    assert len(example.strip().splitlines()) <= 11  # ten lines and the imports
    exec(compile(example, "README example", "exec"), {})


def test_the_table_of_the_four_kinds_is_recomputed_from_real_modules():
    rows = re.findall(r"^\| [a-z ]+ \| `([^`]+)` \| [^|]+ \| ([\d,]+) \|$", README, flags=re.M)
    assert len(rows) == 4
    namespace = {"torch": torch, "locality": locality}
    for expression, claimed in rows:
        module = eval(expression, namespace)
        counted = sum(p.numel() for p in module.parameters())
        assert f"{counted:,}" == claimed, expression
