"""``pyvrrp realserver up|down --vip VIP [--dev lo]``: LVS-DR real-server setup."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    rs_app = typer.Typer(
        help="Prepare this host as an LVS-DR real server (VIP on lo, arp_ignore/arp_announce).",
        no_args_is_help=True,
    )

    def _run(action: str, vip: str, dev: str, state_dir: str) -> None:
        from pyvrrp.realserver import RealServerError, RealServerSetup

        setup = RealServerSetup(state_dir=Path(state_dir), log=lambda m: typer.echo(m))
        try:
            changes = setup.up(vip, dev) if action == "up" else setup.down(vip, dev)
        except (RealServerError, ValueError, OSError) as exc:
            typer.echo(f"pyvrrp realserver {action}: {exc}", err=True)
            raise typer.Exit(1) from None
        if not changes:
            typer.echo("nothing to do")

    @rs_app.command("up")
    def up(
        vip: str = typer.Option(..., "--vip", help="Virtual IP served by the director."),
        dev: str = typer.Option("lo", "--dev", help="Interface for the VIP (not ARPing)."),
        state_dir: str = typer.Option("/run/pyvrrp", "--state-dir", help="Where previous sysctls are saved."),
    ) -> None:
        """Add VIP/32 on DEV and set arp_ignore=1, arp_announce=2 (idempotent)."""
        _run("up", vip, dev, state_dir)

    @rs_app.command("down")
    def down(
        vip: str = typer.Option(..., "--vip", help="Virtual IP to remove."),
        dev: str = typer.Option("lo", "--dev", help="Interface holding the VIP."),
        state_dir: str = typer.Option("/run/pyvrrp", "--state-dir", help="Where previous sysctls are saved."),
    ) -> None:
        """Remove the VIP; restore the saved sysctls when it was the last one."""
        _run("down", vip, dev, state_dir)

    app.add_typer(rs_app, name="realserver")
