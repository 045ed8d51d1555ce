"""``pyvrrp cleanup``: remove what a stopped or crashed daemon held, without reading any config.

The daemon records the VIPs it adds and the IPVS state file of the services it creates in
``held.json`` in its runtime directory (:mod:`pyvrrp.runtime.held`); this command removes
exactly that.  conf/pyvrrp.service runs it as ``ExecStopPost``.  It refuses while a daemon
answers on the control socket (the record is that daemon's, and it is still using it).
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_interface
from pathlib import Path

import typer

from pyvrrp.cli.state import DEFAULT_SOCKET


def register(app: typer.Typer) -> None:
    @app.command("cleanup")
    def cleanup(
        socket: str = typer.Option(DEFAULT_SOCKET, "--socket", help="The daemon's control socket."),
        run_dir: str | None = typer.Option(
            None, "--run-dir", help="Where held.json is (default: the control socket's directory)."
        ),
    ) -> None:
        """Remove the VIPs, IPVS services and nftables table a stopped daemon left (exit 1 if one runs)."""
        from pyvrrp.adapters.netlink import Netlink
        from pyvrrp.runtime.control import DaemonUnreachable, request_sync
        from pyvrrp.runtime.daemon import release_ipvs
        from pyvrrp.runtime.held import HeldState

        try:
            request_sync(socket, "ping", timeout=1.0)
        except DaemonUnreachable:
            pass
        except Exception as exc:  # an answer of any kind: something is there
            typer.echo(f"pyvrrp: {socket}: {exc}; not cleaning up", err=True)
            raise typer.Exit(1) from None
        else:
            typer.echo(f"pyvrrp: a daemon is running on {socket}; stop it first", err=True)
            raise typer.Exit(1)
        held_dir = Path(run_dir) if run_dir else Path(socket).parent
        try:
            held = HeldState.load(HeldState.in_dir(held_dir).path)
        except ValueError as exc:
            typer.echo(f"pyvrrp: {exc}", err=True)
            raise typer.Exit(1) from None
        failed = 0
        with Netlink() as netlink:
            for ifname, vip in sorted(held.vips):
                try:
                    removed = netlink.remove(ifname, ip_interface(vip))
                except (OSError, ValueError) as exc:
                    typer.echo(f"pyvrrp: cannot remove {vip} from {ifname}: {exc}", err=True)
                    failed += 1
                    continue
                typer.echo(f"{'removed' if removed else 'already gone'}: {vip} on {ifname}")
        if held.ipvs_state:
            asyncio.run(release_ipvs(held.ipvs_state))
            typer.echo(f"IPVS services recorded in {held.ipvs_state}: removed")
        if held.nft_table:
            from pyvrrp.adapters.firewall import FirewallError, Nft

            try:
                Nft().remove(held.nft_table)
            except FirewallError as exc:
                typer.echo(f"pyvrrp: cannot delete nftables table inet {held.nft_table}: {exc}", err=True)
                failed += 1
            else:
                typer.echo(f"removed: nftables table inet {held.nft_table}")
        if failed:
            raise typer.Exit(1)
        held.remove()
