"""``pyvrrp state``: live state of a running daemon over its control socket."""

from __future__ import annotations

import json

import typer

DEFAULT_SOCKET = "/run/pyvrrp/pyvrrp.sock"


def _socket_from_config(path: str) -> str:
    from pyvrrp.config.load import load_config

    return str(load_config(path).global_defs.control_socket)


def register(app: typer.Typer) -> None:
    @app.command("state")
    def state(
        instance: str | None = typer.Argument(None, help="Only this instance."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Timers, counters and guards."),
        socket: str | None = typer.Option(
            None, "--socket", help=f"Control socket (default {DEFAULT_SOCKET})."
        ),
        file: str | None = typer.Option(None, "-f", "--file", help="Take the socket path from this config."),
    ) -> None:
        """Show each instance's state, who is master and why (exit 2 when no daemon answers)."""
        from pyvrrp.runtime.control import DaemonUnreachable, ErrorReply, request_sync
        from pyvrrp.runtime.state_view import render_table

        try:
            path = socket or (_socket_from_config(file) if file else DEFAULT_SOCKET)
        except Exception as exc:  # a bad config file: say so in one line
            typer.echo(f"pyvrrp: cannot read {file}: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            result = request_sync(path, "state", instance=instance)
        except DaemonUnreachable as exc:
            typer.echo(f"pyvrrp: no daemon answers on {path}: {exc}", err=True)
            raise typer.Exit(2) from None
        except ErrorReply as exc:
            typer.echo(f"pyvrrp: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(result, indent=2, sort_keys=True))
        else:
            typer.echo(
                f"router_id={result.get('router_id')} pid={result.get('pid')} "
                f"uptime={result.get('uptime_s')}s"
            )
            typer.echo(render_table(result["instances"], verbose=verbose))
