"""``pyvrrp run -f CONFIG``: the daemon."""

from __future__ import annotations

import sys

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        file: str = typer.Option(..., "-f", "--file", help="Config file (TOML or keepalived.conf)."),
        config_id: str | None = typer.Option(None, "--config-id", help="keepalived @id selector."),
        socket: str | None = typer.Option(None, "--socket", help="Override global_defs.control_socket."),
        log_format: str | None = typer.Option(None, "--log-format", help="auto, json or console."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
        keep_ipvs: bool = typer.Option(
            False, "--keep-ipvs", help="Leave pyvrrp's IPVS services in the kernel on stop (keepalived -I)."
        ),
    ) -> None:
        """Run the VRRP agent until SIGTERM/SIGINT (SIGHUP reloads the config)."""
        from pyvrrp.config.errors import ConfigError
        from pyvrrp.runtime.daemon import StartupError, run_daemon
        from pyvrrp.runtime.logging import configure_logging

        configure_logging(fmt=log_format or "auto", level=log_level)
        try:
            code = run_daemon(file, config_id=config_id, control_socket=socket, keep_ipvs=keep_ipvs)
        except ConfigError as exc:
            typer.echo(f"pyvrrp: {file}: invalid configuration:", err=True)
            for issue in exc.issues:
                typer.echo(f"  {issue}", err=True)
            raise typer.Exit(1) from None
        except (StartupError, OSError) as exc:
            typer.echo(f"pyvrrp: cannot start: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            code = 0
        sys.stdout.flush()
        raise typer.Exit(code)
