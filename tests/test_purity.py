"""STYLE rule 1: pyvrrp/proto and pyvrrp/health/fsm.py are pure (no I/O, clock, logging imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "pyvrrp"
FORBIDDEN = {"asyncio", "socket", "subprocess", "time", "pyroute2", "structlog"}
PURE_FILES = [*sorted((ROOT / "proto").glob("*.py")), ROOT / "health" / "fsm.py"]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module imported anywhere in ``path`` (incl. inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_no_io(path: Path) -> None:
    """STYLE rule 1: no asyncio, socket, subprocess, time, pyroute2 or structlog in the pure core."""
    assert path.exists(), path
    bad = imported_modules(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_pure_core_is_covered() -> None:
    """The scan sees the engine files (guards against an empty glob)."""
    names = {p.name for p in PURE_FILES}
    assert {"router.py", "states.py", "timing.py", "events.py", "packet.py", "fsm.py"} <= names


def test_detector_catches_forbidden_imports(tmp_path: Path) -> None:
    """The checker itself: every import form is seen."""
    sample = tmp_path / "x.py"
    sample.write_text(
        "import os, time\nfrom asyncio import sleep\ndef f():\n    import socket\n"
        "    __import__('subprocess')\nfrom . import structlog\n",
        encoding="utf-8",
    )
    assert imported_modules(sample) & FORBIDDEN == {"time", "asyncio", "socket", "subprocess"}
