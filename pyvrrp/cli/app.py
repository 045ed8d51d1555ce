"""The ``pyvrrp`` command.

Each sub-command lives in its own module under ``pyvrrp.cli`` and exposes
``register(app: typer.Typer) -> None``.  Modules are imported lazily here so a
heavy dependency of one command (scapy for ``sniff``) never slows another.
"""

from __future__ import annotations

import importlib

import typer

from pyvrrp import __version__

COMMAND_MODULES = (
    "pyvrrp.cli.check_config",
    "pyvrrp.cli.run",
    "pyvrrp.cli.state",
    "pyvrrp.cli.reload",
    "pyvrrp.cli.cleanup",
    "pyvrrp.cli.sniff",
    "pyvrrp.cli.convert",
    "pyvrrp.cli.ipvs",
    "pyvrrp.cli.realserver",
    "pyvrrp.cli.lab",
    "pyvrrp.cli.doctor",
    "pyvrrp.cli.exabgp_process",
)

app = typer.Typer(
    name="pyvrrp",
    help="VRRP (RFC 3768/5798/9568) high-availability agent for LVS scheduler pairs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pyvrrp {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """pyvrrp: keepalived-compatible VRRP with split-brain guards."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
