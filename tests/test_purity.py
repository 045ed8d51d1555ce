"""STYLE rule 1 and the layer rules, read from the source with ``ast`` (nothing is imported).

Two kinds of check:

* **Purity**: pyvrrp/proto, pyvrrp/health/fsm.py and the gateway arbiter
  (pyvrrp/splitbrain/arbiter.py) do no I/O and read no clock, so they
  import none of asyncio, socket, subprocess, time, pyroute2 or structlog.
* **Layers** (docs/architecture.md, issue 12 §4): which package may import
  which.  Every ``import`` counts wherever it stands (module level, inside a
  function, under ``if TYPE_CHECKING:``), and so do ``__import__("x")`` and
  ``importlib.import_module("x")`` with a literal or a module-level string
  constant.  TYPE_CHECKING-only imports count too, in every package: they
  are still a dependency a reader and mypy follow, and an annotation-only
  cycle is a cycle the runtime merely hides.  The one module outside
  pyvrrp/cli allowed to import it is pyvrrp/__main__.py, the ``python -m
  pyvrrp`` entry point.

A broken rule fails the test named after it with ``module:line`` and the
offending statement.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "pyvrrp"
FORBIDDEN = {"asyncio", "socket", "subprocess", "time", "pyroute2", "structlog"}
PURE_FILES = [
    *sorted((ROOT / "proto").glob("*.py")),
    ROOT / "health" / "fsm.py",
    ROOT / "health" / "process.py",
    ROOT / "splitbrain" / "arbiter.py",
    ROOT / "splitbrain" / "witness.py",
    ROOT / "bgp" / "decide.py",
]


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Top-level names of every import from outside pyvrrp in ``path`` (incl. inside functions)."""
    return {t.split(".")[0] for imp in imports_of(path, root) for t in imp.targets if not within(t, "pyvrrp")}


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_no_io(path: Path) -> None:
    """STYLE rule 1: no asyncio, socket, subprocess, time, pyroute2 or structlog in the pure core."""
    assert path.exists(), path
    bad = imported_modules(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_pure_core_is_covered() -> None:
    """The scan sees the engine files (guards against an empty glob)."""
    names = {p.name for p in PURE_FILES}
    assert {"router.py", "states.py", "timing.py", "events.py", "packet.py", "fsm.py", "arbiter.py"} <= names


def test_detector_catches_forbidden_imports(tmp_path: Path) -> None:
    """The purity checker itself: every import form is seen, relative ones are ours."""
    sample = tmp_path / "pyvrrp" / "x.py"
    sample.parent.mkdir()
    sample.write_text(
        "import os, time\nfrom asyncio import sleep\ndef f():\n    import socket\n"
        "    __import__('subprocess')\nfrom . import structlog\n",
        encoding="utf-8",
    )
    assert imported_modules(sample, sample.parent) & FORBIDDEN == {"time", "asyncio", "socket", "subprocess"}


# ---------------------------------------------------------------- import scan


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement (or dynamic import call) of a pyvrrp module."""

    module: str  # the importing module, e.g. "pyvrrp.adapters.notify"
    path: str  # relative to the repository, e.g. "pyvrrp/adapters/notify.py"
    line: int
    targets: tuple[str, ...]  # absolute module names it may load
    text: str  # the statement as written (ast.unparse)


def module_name(path: Path, root: Path = ROOT) -> str:
    """``pyvrrp/a/b.py`` -> ``pyvrrp.a.b``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """Absolute name of a relative ``from`` import (``level`` leading dots)."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "literal"`` assignments (for ``import_module(NAME)``)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for tgt in node.targets:
                if isinstance(tgt, ast.Name):
                    found[tgt.id] = node.value.value
    return found


def _dynamic_target(node: ast.Call, constants: dict[str, str]) -> str | None:
    """The module of ``__import__(x)`` / ``importlib.import_module(x)`` / ``import_module(x)``."""
    func = node.func
    is_import = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if not is_import or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name):
        return constants.get(arg.id)
    return None


def imports_of(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every import in ``path``, at any depth, relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    rel = str(path.relative_to(root.parent))
    constants = _string_constants(tree)
    for node in ast.walk(tree):
        targets: tuple[str, ...]
        if isinstance(node, ast.Import):
            targets = tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            # ``from pkg import name`` may load the submodule pkg.name
            targets = (base, *(f"{base}.{a.name}" for a in node.names if a.name != "*"))
        elif isinstance(node, ast.Call) and (dyn := _dynamic_target(node, constants)) is not None:
            targets = (dyn,)
        else:
            continue
        yield Import(module, rel, node.lineno, targets, ast.unparse(node))


def all_imports(root: Path = ROOT) -> list[Import]:
    return [imp for path in sorted(root.rglob("*.py")) for imp in imports_of(path, root)]


# ---------------------------------------------------------------- layer rules


def within(name: str, *packages: str) -> bool:
    """``name`` is one of ``packages`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in packages)


def _pkg(short: str) -> str:
    return f"pyvrrp.{short}"


PROTO, ADAPTERS, SPLITBRAIN, RUNTIME, CLI, LAB, CONFIG, IPVS, BASE = (
    _pkg(p) for p in ("proto", "adapters", "splitbrain", "runtime", "cli", "lab", "config", "ipvs", "base")
)
ENTRY_POINT = "pyvrrp.__main__"  # ``python -m pyvrrp``: the one importer of cli outside cli


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


@dataclass(frozen=True, slots=True)
class Rule:
    """``applies(importer)`` and ``forbids(target)``: a statement breaks it when both hold."""

    name: str
    applies: Callable[[str], bool]
    forbids: Callable[[str], bool]


RULES = [
    Rule(
        "proto imports nothing outside proto and the stdlib",
        lambda m: within(m, PROTO),
        lambda t: not (within(t, PROTO) or _is_stdlib(t)),
    ),
    Rule(
        "adapters import neither runtime nor cli",
        lambda m: within(m, ADAPTERS),
        lambda t: within(t, RUNTIME, CLI),
    ),
    Rule(
        "splitbrain imports neither runtime nor cli",
        lambda m: within(m, SPLITBRAIN),
        lambda t: within(t, RUNTIME, CLI),
    ),
    Rule(
        "bgp (decision, speakers, the ExaBGP process) imports nothing from pyvrrp",
        lambda m: within(m, "pyvrrp.bgp"),
        lambda t: within(t, "pyvrrp") and not within(t, "pyvrrp.bgp"),
    ),
    Rule("lab imports no cli", lambda m: within(m, LAB), lambda t: within(t, CLI)),
    Rule(
        "config starts nothing: it imports no runtime, adapters, cli, lab, splitbrain or ipvs",
        lambda m: within(m, CONFIG),
        lambda t: within(t, RUNTIME, ADAPTERS, CLI, LAB, SPLITBRAIN, IPVS),
    ),
    Rule(
        "nothing but cli (and the python -m entry point) imports cli",
        lambda m: not within(m, CLI) and m != ENTRY_POINT,
        lambda t: within(t, CLI),
    ),
    Rule(
        "base (clock, rate-limited logger) imports nothing from pyvrrp outside base",
        lambda m: within(m, BASE),
        lambda t: within(t, "pyvrrp") and not within(t, BASE),
    ),
]

# Violations known when the rules were written, each to be deleted with the
# import it names: (rule name, path, statement).  An entry whose import is
# gone fails test_known_violations_still_exist, so the list only shrinks.
def violations(rule: Rule, imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if rule.applies(imp.module) and any(rule.forbids(t) for t in imp.targets)]


@pytest.fixture(scope="module")
def tree_imports() -> list[Import]:
    return all_imports()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_layer_rule(rule: Rule, tree_imports: list[Import]) -> None:
    """No statement in pyvrrp/ breaks ``rule`` (bar the listed known violations)."""
    bad = violations(rule, tree_imports)
    assert not bad, f"layer rule {rule.name!r} broken by:\n" + "\n".join(
        f"  {v.path}:{v.line}: {v.text}" for v in bad
    )


def test_scan_sees_the_tree(tree_imports: list[Import]) -> None:
    """Every package is scanned (guards against an empty walk or a moved root)."""
    scanned = {imp.module for imp in tree_imports}
    for pkg in (PROTO, ADAPTERS, SPLITBRAIN, RUNTIME, CLI, LAB, CONFIG, IPVS, BASE):
        assert any(within(m, pkg) for m in scanned), pkg


# The whiteboard's "never" arrows (importer package, imported package, why);
# each must be refused by at least one rule above.
NEVER = [
    ("proto", "runtime", "the protocol core does no I/O and reads no clock"),
    ("proto", "adapters", "the protocol core does no I/O"),
    ("proto", "config", "the engine takes plain parameters, not the config model"),
    ("proto", "cli", "the core knows no screen"),
    ("adapters", "runtime", "adapters are called, they do not orchestrate"),
    ("adapters", "cli", "no screen in the kernel edges"),
    ("splitbrain", "runtime", "guards are called by the supervisor, not the reverse"),
    ("splitbrain", "cli", "no screen in the guards"),
    ("config", "runtime", "the model does not start anything"),
    ("runtime", "cli", "the daemon does not depend on the command line"),
    ("lab", "cli", "the lab is a library the CLI uses"),
]


@pytest.mark.parametrize(("src", "dst", "why"), NEVER, ids=[f"{s}->{d}" for s, d, _ in NEVER])
def test_never_arrow_is_covered(src: str, dst: str, why: str) -> None:
    """An import along a forbidden arrow is refused by some rule."""
    imp = Import(f"pyvrrp.{src}.x", f"pyvrrp/{src}/x.py", 1, (f"pyvrrp.{dst}.y",), f"import pyvrrp.{dst}.y")
    assert any(violations(rule, [imp]) for rule in RULES), f"no rule forbids {src} -> {dst} ({why})"


def test_allowed_arrows_pass() -> None:
    """The rules are not blanket bans: the architecture's allowed arrows pass every rule."""
    allowed = [
        ("runtime", "splitbrain"),
        ("splitbrain", "adapters"),
        ("splitbrain", "config"),
        ("splitbrain", "base"),
        ("adapters", "proto"),
        ("adapters", "base"),
        ("lab", "runtime"),
        ("cli", "runtime"),
        ("cli", "lab"),
        ("base", "base"),
        ("proto", "proto"),
    ]
    for src, dst in allowed:
        imp = Import(f"pyvrrp.{src}.x", f"pyvrrp/{src}/x.py", 1, (f"pyvrrp.{dst}.y",), "")
        assert not [r.name for r in RULES if violations(r, [imp])], f"{src} -> {dst}"
    stdlib = Import("pyvrrp.proto.x", "pyvrrp/proto/x.py", 1, ("enum", "__future__"), "")
    assert not any(violations(r, [stdlib]) for r in RULES)


def test_detector_sees_every_import_form(tmp_path: Path) -> None:
    """The scanner: function-level, TYPE_CHECKING, relative, __import__ and import_module forms."""
    pkg = tmp_path / "pyvrrp" / "proto"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import x\n", encoding="utf-8")
    sample = pkg / "x.py"
    sample.write_text(
        "import os, time\n"
        "from asyncio import sleep\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pyvrrp.config.models import Config\n"
        "MOD = 'pyvrrp.adapters.arp'\n"
        "def f():\n"
        "    import socket\n"
        "    __import__('subprocess')\n"
        "    importlib.import_module(MOD)\n"
        "from . import events\n"
        "from ..runtime import clock\n",
        encoding="utf-8",
    )
    got = {imp.line: imp.targets for imp in imports_of(sample, tmp_path / "pyvrrp")}
    assert got == {
        1: ("os", "time"),
        2: ("asyncio", "asyncio.sleep"),
        3: ("typing", "typing.TYPE_CHECKING"),
        5: ("pyvrrp.config.models", "pyvrrp.config.models.Config"),
        8: ("socket",),
        9: ("subprocess",),
        10: ("pyvrrp.adapters.arp",),
        11: ("pyvrrp.proto", "pyvrrp.proto.events"),
        12: ("pyvrrp.runtime", "pyvrrp.runtime.clock"),
    }
    init = {imp.targets for imp in imports_of(pkg / "__init__.py", tmp_path / "pyvrrp")}
    assert init == {("pyvrrp.proto", "pyvrrp.proto.x")}
    proto_rule = RULES[0]
    bad = {v.line for v in violations(proto_rule, list(imports_of(sample, tmp_path / "pyvrrp")))}
    assert bad == {5, 10, 12}
