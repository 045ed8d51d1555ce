"""``pyvrrp ipvs plan|show``: preview IPVS changes, show the live table with health.

* ``pyvrrp ipvs plan -f CONFIG [--json]``: what the daemon would do to the kernel's IPVS
  table for this configuration, assuming every real server is healthy (``alpha`` servers
  are counted as down).  Reads the kernel table when IPVS is available, never writes.
* ``pyvrrp ipvs show [--json]``: the kernel table (like ``ipvsadm -Ln``) merged with the
  health state of a running daemon (control socket op ``"ipvs"``) when one answers.

Exit codes: 0 ok; 1 bad configuration or nothing to show; 2 usage.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

DEFAULT_SOCKET = "/run/pyvrrp/pyvrrp.sock"


def _kernel_status() -> tuple[bool, str]:
    from pyvrrp.ipvs.kernel import ipvs_available

    st = ipvs_available()
    return st.ok, st.reason


def _plan(config_path: str, state_file: str) -> dict[str, Any]:
    from pyvrrp.config.errors import ConfigError
    from pyvrrp.config.load import load_config
    from pyvrrp.ipvs import kernel
    from pyvrrp.ipvs.manager import IpvsManager, SimulatedKernel
    from pyvrrp.ipvs.plan import op_to_dict, plan

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for issue in exc.errors:
            typer.echo(f"pyvrrp ipvs plan: {issue}", err=True)
        raise typer.Exit(1) from None
    ok, reason = _kernel_status()
    observed = kernel.read_table() if ok else {}
    mgr = IpvsManager(config, apply=False, kernel=SimulatedKernel(observed), state_file=state_file)
    desired = mgr.desired_table()
    owned = mgr.recorded_keys | set(desired)
    ops = plan(observed, desired, owned)
    foreign = sorted(str(k) for k in observed if k not in owned)
    return {
        "kernel": "read" if ok else f"unavailable: {reason}",
        "ops": [op_to_dict(o) for o in ops],
        "foreign_services": foreign,
    }


def _render_show(services: list[dict[str, Any]], health: dict[str, Any] | None) -> str:
    up: dict[tuple[str, int], dict[str, Any]] = {}
    if health:
        for vs in health.get("virtual_servers", []):
            for rs in vs.get("real_servers", []):
                up[(rs["ip"], rs["port"])] = rs
    lines = [
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health",
    ]
    fwd = {"DR": "Route", "NAT": "Masq", "TUN": "Tunnel"}
    for s in services:
        flags = f" persistent {s['persistence_timeout_s']}" if s["persistence_timeout_s"] else ""
        lines.append(f"{s['key']} {s['sched']}{flags}")
        for d in s["dests"]:
            host = f"[{d['address']}]" if ":" in d["address"] else d["address"]
            rs = up.get((d["address"], d["port"]))
            if rs is None:
                hc = "-"
            else:
                hc = "up" if rs["up"] else "DOWN"
                if rs.get("held_by_floor"):
                    hc += " (held by depool_floor)"
            lines.append(
                f"  -> {host + ':' + str(d['port']):<28} {fwd.get(d['method'], d['method']):<7} "
                f"{d['weight']:<6} {d['active_conns']:<10} {d['inactive_conns']:<9} {hc}"
            )
    if health:
        down = [(rs["ip"], rs["port"]) for rs in up.values() if not rs["up"]]
        pooled = {(d["address"], d["port"]) for s in services for d in s["dests"]}
        for ip, port in down:
            if (ip, port) not in pooled:
                lines.append(f"  (not in table) {ip}:{port} DOWN")
    return "\n".join(lines)


def _kernel_services() -> list[dict[str, Any]]:
    from pyvrrp.ipvs import kernel

    out = []
    for sd in kernel.dump():
        s = sd.service
        out.append(
            {
                "key": str(s.key),
                "sched": s.sched,
                "persistence_timeout_s": s.persistence_timeout_s,
                "netmask": s.netmask,
                "conns": sd.stats.conns,
                "in_pkts": sd.stats.in_pkts,
                "out_pkts": sd.stats.out_pkts,
                "dests": [
                    {
                        "address": d.address,
                        "port": d.port,
                        "weight": d.weight,
                        "method": d.method,
                        "active_conns": sd.dest_stats[d.key].active_conns,
                        "inactive_conns": sd.dest_stats[d.key].inactive_conns,
                        "conns": sd.dest_stats[d.key].conns,
                    }
                    for d in s.dests
                ],
            }
        )
    return out


def _daemon_health(path: str) -> tuple[dict[str, Any] | None, str]:
    try:
        from pyvrrp.runtime.control import request
    except ImportError:
        return None, "control client not available"
    try:
        return asyncio.run(request(path, "ipvs")), ""
    except Exception as exc:  # unreachable, error reply, old daemon without the op
        return None, f"{type(exc).__name__}: {exc}"


def register(app: typer.Typer) -> None:
    ipvs_app = typer.Typer(
        help="IPVS (LVS) table: preview changes, show the live table.", no_args_is_help=True
    )

    @ipvs_app.command("plan")
    def plan_cmd(
        file: str = typer.Option(..., "-f", "--file", help="Configuration (TOML or keepalived.conf)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        state_file: str = typer.Option(
            "/run/pyvrrp/ipvs-owned.json", "--state-file", help="Services recorded as created by pyvrrp."
        ),
    ) -> None:
        """Print the IPVS operations this config implies (nothing is applied)."""
        result = _plan(file, state_file)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        if result["kernel"] != "read":
            typer.echo(f"# kernel IPVS {result['kernel']}; planning against an empty table")
        for op in result["ops"]:
            typer.echo(op["text"])
        if not result["ops"]:
            typer.echo("# nothing to do: the kernel table matches")
        for key in result["foreign_services"]:
            typer.echo(f"# left alone (not ours): {key}")

    @ipvs_app.command("show")
    def show_cmd(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        socket: str = typer.Option(DEFAULT_SOCKET, "--socket", help="Daemon control socket."),
    ) -> None:
        """Live IPVS table (like ipvsadm -Ln) with real-server health from the daemon."""
        ok, reason = _kernel_status()
        services = _kernel_services() if ok else []
        health, why = _daemon_health(socket)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "kernel": "read" if ok else f"unavailable: {reason}",
                        "services": services,
                        "daemon": health if health is not None else {"unavailable": why},
                    },
                    indent=2,
                )
            )
        else:
            if not ok:
                typer.echo(f"# kernel IPVS unavailable: {reason}")
            typer.echo(_render_show(services, health))
            if health is None:
                typer.echo(f"# no health data (daemon: {why})")
        if not ok and health is None:
            raise typer.Exit(1)

    app.add_typer(ipvs_app, name="ipvs")
