"""Two LVS-DR directors running the pyvrrp daemon inside the UML kernel.  Each daemon
programs its own IPVS table from the config (IpvsManager, TCP_CHECK on both real servers);
the VRRP master's IPVS balances the client's requests; when it stops (SIGTERM, priority-0
advert) it removes its services, the backup takes the VIP and its IPVS carries on
(ANCHORS SM-05/SM-06 + §2.9)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyvrrp.cli.run")
from pyvrrp.lab import VIP4, InstanceSpec, Lab, PyvrrpNode, probe, pyvrrp_toml

HERE = Path(__file__).resolve().parent
PY = sys.executable

VS_TOML = f"""
[virtual_server."{VIP4}:80"]
protocol = "TCP"
lb_algo = "rr"
lb_kind = "DR"
delay_loop = 1
[[virtual_server."{VIP4}:80".real_server]]
ip = "192.168.233.100"
port = 80
TCP_CHECK = {{ connect_timeout = 1 }}
[[virtual_server."{VIP4}:80".real_server]]
ip = "192.168.233.110"
port = 80
TCP_CHECK = {{ connect_timeout = 1 }}
"""


def _state(node: PyvrrpNode) -> str | None:
    """The instance state over the control socket, in-process (a ``pyvrrp state``
    subprocess is slow to start inside UML)."""
    from pyvrrp.runtime.control import request_sync

    try:
        result = request_sync(str(node.socket_path), "state", timeout=5)
    except Exception:  # daemon still starting / gone
        return None
    instances = result.get("instances") or []
    return str(instances[0].get("state")) if instances else None


def _wait_state(node: PyvrrpNode, want: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    while _state(node) != want:
        assert node.alive(), f"{node.host} exited: {node.log_text()[-2000:]}"
        assert time.monotonic() - t0 < timeout_s, f"{node.host} not {want} after {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - t0


def _get(lab: Lab, n: int) -> list[str]:
    """``n`` GETs to the VIP from the client, one after the other: who answered each."""
    argv = probe.command(VIP4, timeout_s=2.0, count=n)
    return probe.answers(probe.parse(lab.exec("client", argv, timeout=60).stdout))


def _table(lab: Lab, host: str) -> list[dict[str, object]]:
    """The IPVS services (with counters) of a director's namespace."""
    return list(json.loads(lab.exec(host, [PY, str(HERE / "ipvs_apply.py"), "stats"], timeout=60).stdout))


def _conns(lab: Lab, host: str) -> int:
    return sum(int(s["conns"]) for s in _table(lab, host))  # type: ignore[call-overload]


def _ipvs_op(node: PyvrrpNode) -> dict[str, object]:
    from pyvrrp.runtime.control import request_sync

    return dict(request_sync(str(node.socket_path), "ipvs", timeout=5))


def test_vip_failover_between_two_directors() -> None:
    with Lab() as lab:
        nodes: dict[str, PyvrrpNode] = {}
        for host, prio in (("lb1", 150), ("lb2", 100)):
            node_dir = lab.run_dir / f"pyvrrp-{host}"
            node_dir.mkdir(parents=True, exist_ok=True)
            text = (
                pyvrrp_toml(
                    host,
                    [InstanceSpec(priority=prio, version=3, advert_int_s=0.1)],
                    control_socket=str(node_dir / "control.sock"),
                    state_dir=str(node_dir),
                )
                + VS_TOML
            )
            nodes[host] = PyvrrpNode(lab, host, text)
        nodes["lb2"].start()
        nodes["lb1"].start()
        _wait_state(nodes["lb1"], "MASTER", 60)
        _wait_state(nodes["lb2"], "BACKUP", 60)

        # each daemon programmed its own namespace's IPVS table from the config
        for host in ("lb1", "lb2"):
            assert [t["service"] for t in _table(lab, host)] == [f"TCP {VIP4}:80"], host
        snap = _ipvs_op(nodes["lb2"])
        assert [r["ip"] for r in snap["virtual_servers"][0]["real_servers"]] == [  # type: ignore[index]
            "192.168.233.100",
            "192.168.233.110",
        ]

        replies = _get(lab, 4)
        assert replies == ["rs2", "rs1", "rs2", "rs1"] or replies == ["rs1", "rs2", "rs1", "rs2"], replies

        t0 = time.monotonic()
        nodes["lb1"].stop()
        _wait_state(nodes["lb2"], "MASTER", 10)
        took = time.monotonic() - t0
        replies = _get(lab, 4)
        assert sorted(set(replies)) == ["rs1", "rs2"], replies
        # the kernel folds per-CPU counters into the dump every 2 s
        time.sleep(2.5)
        assert _conns(lab, "lb2") == 4, "the new master's IPVS carried the traffic"
        assert _table(lab, "lb1") == [], "a stopped daemon removes the services it owns"
        print(f"\nfailover: lb2 MASTER {took:.2f} s after lb1's SIGTERM")
