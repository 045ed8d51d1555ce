"""``pyvrrp lab``: the namespace lab (root only): ``demo``, ``up``, ``down``, ``list``."""

from __future__ import annotations

import os

import typer


def _need_root() -> None:
    if os.geteuid() != 0:
        typer.echo("pyvrrp lab: needs root (it creates network namespaces); try sudo", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    lab_app = typer.Typer(
        help="Throw-away LVS-DR lab in network namespaces (client, lb1, lb2, rs1, rs2).",
        no_args_is_help=True,
    )

    @lab_app.command("demo")
    def demo(
        version: int = typer.Option(3, "--version", help="VRRP version, 2 or 3."),
        advert_int: float = typer.Option(1.0, "--advert-int", help="Advertisement interval in seconds."),
        daemon: str = typer.Option("pyvrrp", "--daemon", help="pyvrrp or keepalived (for comparison)."),
        peer: str = typer.Option("", "--peer", help="lb2's daemon if different: pyvrrp or keepalived."),
        event: str = typer.Option("kill9", "--event", help="How lb1 fails: kill9, sigterm or linkdown."),
        keep: bool = typer.Option(False, "--keep", help="Leave the lab running afterwards."),
    ) -> None:
        """Start a VRRP pair on lb1/lb2, fail the MASTER and print the failover timeline."""
        from pyvrrp.lab.demo import DemoOptions, run_demo

        _need_root()
        if version not in (2, 3):
            raise typer.BadParameter("--version must be 2 or 3")
        if daemon not in ("pyvrrp", "keepalived"):
            raise typer.BadParameter("--daemon must be pyvrrp or keepalived")
        if peer not in ("", "pyvrrp", "keepalived"):
            raise typer.BadParameter("--peer must be pyvrrp or keepalived")
        if event not in ("kill9", "sigterm", "linkdown"):
            raise typer.BadParameter("--event must be kill9, sigterm or linkdown")
        opts = DemoOptions(
            daemon=daemon, peer=peer, version=version, advert_int_s=advert_int, event=event, keep=keep
        )
        raise typer.Exit(run_demo(opts, typer.echo))

    @lab_app.command("up")
    def up(
        ipv6: bool = typer.Option(False, "--ipv6", help="Keep IPv6 on (fd00:233::/64)."),
        gateway: bool = typer.Option(False, "--gateway", help="Add host gw 192.168.233.1."),
    ) -> None:
        """Build a lab and leave it running; prints its prefix (for ``pyvrrp lab down``)."""
        from pyvrrp.lab.topology import Lab

        _need_root()
        lab = Lab(ipv6=ipv6, gateway=gateway, keep_run_dir=True).up()
        typer.echo(lab.prefix)
        for name, spec in lab.hosts.items():
            typer.echo(f"  {lab.ns(name):<20} {spec.ipv4:<16} {spec.mac}")
        typer.echo(f"  {lab.ns('sw'):<20} bridge br0")
        typer.echo(f"run dir {lab.run_dir}; remove with: pyvrrp lab down {lab.prefix}")

    @lab_app.command("down")
    def down(prefix: str = typer.Argument(..., help="Lab prefix printed by `pyvrrp lab up`.")) -> None:
        """Kill everything in a lab's namespaces and delete them."""
        from pyvrrp.lab.topology import destroy_prefix

        _need_root()
        removed = destroy_prefix(prefix)
        if not removed:
            typer.echo(f"no namespace starts with {prefix}-", err=True)
            raise typer.Exit(1)
        typer.echo("deleted " + " ".join(removed))

    @lab_app.command("list")
    def list_labs() -> None:
        """Labs (namespace prefixes pv<6 hex>) present on this machine."""
        from pyvrrp.lab.topology import labs_present

        for prefix, names in sorted(labs_present().items()):
            typer.echo(f"{prefix}  {' '.join(names)}")

    app.add_typer(lab_app, name="lab")
