"""``pyvrrp state``: live state of a running daemon over its control socket."""

from __future__ import annotations

import json
from typing import Any

import typer

DEFAULT_SOCKET = "/run/pyvrrp/pyvrrp.sock"


def _socket_from_config(path: str) -> str:
    from pyvrrp.config.load import load_config

    return str(load_config(path).global_defs.control_socket)


def ask_daemon(path: str, op: str, **params: Any) -> Any:
    """One control-socket request for a CLI command: the reply, or a one-line error and exit.

    Exit 2 when no daemon answers, 1 on an error reply (docs: exit codes).
    """
    from pyvrrp.runtime.control import DaemonUnreachable, ErrorReply, request_sync

    try:
        return request_sync(path, op, **params)
    except DaemonUnreachable as exc:
        typer.echo(f"pyvrrp: no daemon answers on {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    except ErrorReply as exc:
        typer.echo(f"pyvrrp: {exc}", err=True)
        raise typer.Exit(1) from None


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
        from pyvrrp.runtime.state_view import render_announce, render_table

        try:
            path = socket or (_socket_from_config(file) if file else DEFAULT_SOCKET)
        except Exception as exc:  # a bad config file: say so in one line
            typer.echo(f"pyvrrp: cannot read {file}: {exc}", err=True)
            raise typer.Exit(2) from None
        result = ask_daemon(path, "state", instance=instance)
        if as_json:
            typer.echo(json.dumps(result, indent=2, sort_keys=True))
        else:
            typer.echo(
                f"router_id={result.get('router_id')} pid={result.get('pid')} "
                f"uptime={result.get('uptime_s')}s"
            )
            typer.echo(render_table(result["instances"], verbose=verbose))
            syncd = result.get("lvs_sync_daemon")
            if isinstance(syncd, dict):
                running = ", ".join(syncd.get("running") or []) or "none"
                follows = f"follows {syncd.get('instance')} ({syncd.get('following_state')})"
                line = f"  lvs_sync_daemon {syncd.get('interface')} sync id {syncd.get('sync_id')}: "
                line += f"running {running}"
                line += f", {follows}" if syncd.get("instance") else ""
                if syncd.get("last_error"):
                    line += f"; last error: {syncd['last_error']}"
                typer.echo(line)
            if result.get("announce"):
                typer.echo("  BGP announcements:")
                typer.echo(render_announce(result["announce"]))
