"""``pyvrrp install-launcher [PATH]``: write ``pyvrrpd``, the daemon's quick-start launcher.

``pyvrrpd ARGS`` is ``pyvrrp run ARGS`` started as ``python -S``: the interpreter skips
``site`` (site-packages, ``.pth`` files, sitecustomize: ~1.5 ms here) until
:mod:`pyvrrp.cli.entry` has begun listening for adverts and started the fast-start
engines, then runs ``site.main()`` before the daemon imports anything else.  A restarted
preferred node preempts back one Master_Down_Interval after it starts listening, so this
is the part of a restart (~34 ms at VRRPv3 10 ms adverts) that ``pyvrrp run`` cannot
shorten itself: the console script pip writes has no room for interpreter flags.

The launcher pins two paths, both checked when it is written: this interpreter
(``sys.executable``, the venv's ``python``) and the directory ``pyvrrp`` is imported from.
Write it again after moving or recreating the venv (``scripts/lib.sh`` does at every set-up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pyvrrp

if TYPE_CHECKING:
    import typer

TEMPLATE = """\
#!{python} -S
# pyvrrpd: `pyvrrp run ARGS` without site-packages at interpreter start (`python -S`);
# written by `pyvrrp install-launcher` for pyvrrp {version}.  pyvrrp.cli.entry adds
# site-packages once it listens for adverts.  Write it again after moving the venv.
import sys

sys.path.append({package_root!r})
from pyvrrp.cli.entry import main

sys.argv[1:1] = ["run"]
main()
"""


class LauncherError(Exception):
    """The launcher cannot be written (one line, for the operator)."""


def default_path() -> Path:
    """``pyvrrpd`` next to this interpreter (the venv's bin directory)."""
    return Path(sys.executable).parent / "pyvrrpd"


def render(python: str | None = None, package_root: str | None = None) -> str:
    """The launcher's text for ``python`` (default: this one) and pyvrrp's import directory."""
    python = python or sys.executable
    root = package_root or str(Path(pyvrrp.__file__).resolve().parent.parent)
    if not python or " " in python or len(python) > 120:
        raise LauncherError(f"cannot use {python!r} in a #! line (empty, has a space, or too long)")
    return TEMPLATE.format(python=python, version=pyvrrp.__version__, package_root=root)


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0755."""
    path = path.expanduser()
    if path.is_dir():
        raise LauncherError(f"{path} is a directory; give the launcher's file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LauncherError(f"cannot write {path}: {exc.strerror or exc}") from exc


def register(app: typer.Typer) -> None:
    import typer

    @app.command("install-launcher")
    def install_launcher(
        path: Path = typer.Argument(None, help="Where to write it (default: pyvrrpd next to this python)."),
    ) -> None:
        """Write pyvrrpd: `pyvrrp run` started as `python -S` (a quicker daemon start-up)."""
        target = path or default_path()
        try:
            write(target, render())
        except LauncherError as exc:
            typer.echo(f"pyvrrp install-launcher: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"wrote {target}: use `{target} -f CONFIG` where you would run `pyvrrp run -f CONFIG`")
