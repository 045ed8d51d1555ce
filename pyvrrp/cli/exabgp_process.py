"""``pyvrrp exabgp-process``: the API process ExaBGP runs (pyvrrp.bgp.exabgp_process)."""

from __future__ import annotations

import typer

from pyvrrp.cli.state import DEFAULT_SOCKET


def register(app: typer.Typer) -> None:
    @app.command("exabgp-process")
    def exabgp_process(
        socket: str = typer.Option(DEFAULT_SOCKET, "--socket", help="The pyvrrp daemon's control socket."),
    ) -> None:
        """Run by ExaBGP (``process { run pyvrrp exabgp-process; }``): announce what the daemon says."""
        from pyvrrp.bgp.exabgp_process import main

        raise typer.Exit(main(["--socket", socket]))
