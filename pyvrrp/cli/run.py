"""``pyvrrp run -f CONFIG``: the daemon.

Two front doors share :func:`run_daemon_cli`: the typer command (``pyvrrp --help``
lists it) and :func:`main_fast`, which ``pyvrrp.cli.entry`` calls for ``pyvrrp run``
so that a (re)starting daemon does not pay for importing typer and every other
command (~60-100 ms before the engine runs).  :data:`OPTIONS` is the one list of
options both build from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer


@dataclass(frozen=True)
class Option:
    name: str  # parameter name
    flags: tuple[str, ...]
    help: str
    default: Any = None
    is_flag: bool = False
    required: bool = False


OPTIONS = (
    Option("file", ("-f", "--file"), "Config file (TOML or keepalived.conf).", required=True),
    Option("config_id", ("--config-id",), "keepalived @id selector."),
    Option("socket", ("--socket",), "Override global_defs.control_socket."),
    Option("log_format", ("--log-format",), "auto, json or console."),
    Option("log_level", ("--log-level",), "debug, info, warning or error.", default="info"),
    Option(
        "keep_ipvs",
        ("--keep-ipvs",),
        "Leave pyvrrp's IPVS services in the kernel on stop (keepalived -I).",
        default=False,
        is_flag=True,
    ),
)


def run_daemon_cli(
    file: str,
    *,
    config_id: str | None = None,
    socket: str | None = None,
    log_format: str | None = None,
    log_level: str = "info",
    keep_ipvs: bool = False,
) -> int:
    """Run the daemon; every error is one message on stderr.  Returns the exit code."""
    from pyvrrp.runtime.logging import configure_logging

    try:
        configure_logging(fmt=log_format or "auto", level=log_level)
    except ValueError as exc:
        print(f"pyvrrp run: {exc}", file=sys.stderr)
        return 2

    from pyvrrp.config.errors import ConfigError
    from pyvrrp.runtime.daemon import StartupError, run_daemon

    try:
        code = run_daemon(file, config_id=config_id, control_socket=socket, keep_ipvs=keep_ipvs)
    except ConfigError as exc:
        print(f"pyvrrp: {file}: invalid configuration:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    except (StartupError, OSError) as exc:
        print(f"pyvrrp: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        code = 0
    sys.stdout.flush()
    return code


def main_fast(argv: list[str]) -> int:
    """``pyvrrp run ARGV`` without typer (argparse, same options and exit codes)."""
    import argparse

    parser = argparse.ArgumentParser(prog="pyvrrp run", description="Run the VRRP agent.")
    for opt in OPTIONS:
        if opt.is_flag:
            parser.add_argument(*opt.flags, dest=opt.name, action="store_true", help=opt.help)
        else:
            parser.add_argument(
                *opt.flags, dest=opt.name, default=opt.default, required=opt.required, help=opt.help
            )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error
        return int(exc.code or 0)
    kwargs = vars(args)
    return run_daemon_cli(kwargs.pop("file"), **kwargs)


def register(app: typer.Typer) -> None:
    import typer

    @app.command("run")
    def run(
        file: str = typer.Option(..., *OPTIONS[0].flags, help=OPTIONS[0].help),
        config_id: str | None = typer.Option(None, *OPTIONS[1].flags, help=OPTIONS[1].help),
        socket: str | None = typer.Option(None, *OPTIONS[2].flags, help=OPTIONS[2].help),
        log_format: str | None = typer.Option(None, *OPTIONS[3].flags, help=OPTIONS[3].help),
        log_level: str = typer.Option(OPTIONS[4].default, *OPTIONS[4].flags, help=OPTIONS[4].help),
        keep_ipvs: bool = typer.Option(OPTIONS[5].default, *OPTIONS[5].flags, help=OPTIONS[5].help),
    ) -> None:
        """Run the VRRP agent until SIGTERM/SIGINT (SIGHUP reloads the config)."""
        code = run_daemon_cli(
            file,
            config_id=config_id,
            socket=socket,
            log_format=log_format,
            log_level=log_level,
            keep_ipvs=keep_ipvs,
        )
        raise typer.Exit(code)
