"""``pyvrrp cleanup``: remove what a stopped or crashed daemon held, without reading any config.

The daemon records the VIPs it adds, its use_vmac macvlans and the IPVS state file of the
services it creates in ``held.json`` in its runtime directory (:mod:`pyvrrp.runtime.held`);
this command removes exactly that (and restores the sysctls the macvlans changed).
conf/pyvrrp.service runs it as ``ExecStopPost``.  It refuses while a daemon
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
        """Remove the VIPs, routes, rules, macvlans, IPVS services, sync daemons and nft table left behind."""
        from pyvrrp.adapters.netlink import Netlink
        from pyvrrp.adapters.vmac import VmacManager, write_sysctl
        from pyvrrp.runtime.control import DaemonUnreachable, request_sync
        from pyvrrp.runtime.daemon import release_ipvs, release_sync_daemons
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
            if held.routes or held.rules:
                import structlog

                from pyvrrp.runtime.routes import release_recorded

                failed += release_recorded(netlink, held.routes, held.rules, structlog.get_logger("pyvrrp"))
                typer.echo(f"routes and rules recorded: {len(held.routes)} and {len(held.rules)}, removed")
            for ifname, vip in sorted(held.vips):
                try:
                    removed = netlink.remove(ifname, ip_interface(vip))
                except (OSError, ValueError) as exc:
                    typer.echo(f"pyvrrp: cannot remove {vip} from {ifname}: {exc}", err=True)
                    failed += 1
                    continue
                typer.echo(f"{'removed' if removed else 'already gone'}: {vip} on {ifname}")
            vmacs = VmacManager(netlink)
            for vmac in sorted(held.vmacs):
                try:
                    removed = vmacs.remove_stale(vmac)
                except OSError as exc:
                    typer.echo(f"pyvrrp: cannot remove macvlan {vmac}: {exc}", err=True)
                    failed += 1
                    continue
                typer.echo(f"{'removed' if removed else 'already gone'}: macvlan {vmac}")
            for base, values in sorted(held.vmac_base_sysctls.items()):
                for key, value in sorted(values.items()):
                    try:
                        write_sysctl("ipv4", base, key, value)
                    except OSError as exc:
                        typer.echo(f"pyvrrp: cannot restore net.ipv4.conf.{base}.{key}: {exc}", err=True)
                        continue
                typer.echo(f"restored: net.ipv4.conf.{base}.{{{','.join(sorted(values))}}}")
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
        if held.sync_daemon:
            errors = asyncio.run(release_sync_daemons())
            for error in errors:
                typer.echo(f"pyvrrp: {error}", err=True)
            failed += len(errors)
            typer.echo("IPVS sync daemons: stopped" if not errors else "IPVS sync daemons: not stopped")
        if failed:
            raise typer.Exit(1)
        held.remove()
