"""``pyvrrp reload``: reload a running daemon's config and say what happened (or why not)."""

from __future__ import annotations

import typer

from pyvrrp.cli.state import DEFAULT_SOCKET, ask_daemon


def register(app: typer.Typer) -> None:
    @app.command("reload")
    def reload(
        socket: str = typer.Option(DEFAULT_SOCKET, "--socket", help="Control socket."),
        allow_empty: bool = typer.Option(
            False, "--allow-empty", help="Accept a config that removes every instance (releases every VIP)."
        ),
    ) -> None:
        """Re-read the config (as SIGHUP does); exit 1 with the reasons when it is rejected."""
        result = ask_daemon(socket, "reload", allow_empty=allow_empty)
        if not result.get("reloaded"):
            for error in result.get("errors", []):
                typer.echo(f"error: {error}", err=True)
            typer.echo("reload rejected; the running config is unchanged", err=True)
            raise typer.Exit(1)
        for key in ("added", "removed", "changed"):
            typer.echo(f"{key}: {', '.join(result.get(key) or []) or '-'}")
