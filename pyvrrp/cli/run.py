"""``pyvrrp run [-f CONFIG]``: the daemon.

Without ``-f`` it reads /etc/pyvrrp/pyvrrp.toml, else /etc/keepalived/keepalived.conf (a
keepalived host switches over without editing its unit), and logs which it took.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import typer

DEFAULT_CONFIGS = (Path("/etc/pyvrrp/pyvrrp.toml"), Path("/etc/keepalived/keepalived.conf"))


class DefaultConfigMissing(Exception):
    """No ``-f`` and none of the default config files exists."""


def resolve_config(file: str | None, defaults: Sequence[Path] | None = None) -> str:
    """``file`` when given, else the first of ``defaults`` that exists.

    Raises:
        DefaultConfigMissing: no ``file`` and no default exists (the message names them all).
    """
    if file is not None:
        return file
    defaults = DEFAULT_CONFIGS if defaults is None else defaults
    for path in defaults:
        if path.is_file():
            return str(path)
    raise DefaultConfigMissing(
        f"no config file: neither {' nor '.join(map(str, defaults))} exists; give one with -f FILE"
    )


def run_daemon_cli(
    file: str | None,
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
    try:
        path = resolve_config(file)
    except DefaultConfigMissing as exc:
        print(f"pyvrrp run: {exc}", file=sys.stderr)
        return 1
    if file is None:
        import structlog

        structlog.get_logger("pyvrrp.cli").info(
            "config_default", file=path, searched=list(map(str, DEFAULT_CONFIGS))
        )
    file = path

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


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        file: str | None = typer.Option(
            None,
            "-f",
            "--file",
            help="Config file (TOML or keepalived.conf); default /etc/pyvrrp/pyvrrp.toml, "
            "else /etc/keepalived/keepalived.conf.",
        ),
        config_id: str | None = typer.Option(None, "--config-id", help="keepalived @id selector."),
        socket: str | None = typer.Option(None, "--socket", help="Override global_defs.control_socket."),
        log_format: str | None = typer.Option(None, "--log-format", help="auto, json or console."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
        keep_ipvs: bool = typer.Option(
            False, "--keep-ipvs", help="Leave pyvrrp's IPVS services in the kernel on stop (keepalived -I)."
        ),
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
