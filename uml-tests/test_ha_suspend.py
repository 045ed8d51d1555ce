"""ha_suspend in the real kernel: real-server checks run only on the VRRP MASTER director
(keepalived semantics, ANCHORS §2.9); after a failover the new master starts checking and
the old one (stopped) no longer programs anything."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pyvrrp.cli.run")
from test_failover import VS_TOML, _ipvs_op, _wait_state

from pyvrrp.lab import InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml


def _rounds(node: PyvrrpNode) -> tuple[bool, int]:
    vs = _ipvs_op(node)["virtual_servers"][0]  # type: ignore[index]
    rounds = sum(c["rounds"] for rs in vs["real_servers"] for c in rs["checkers"])
    return bool(vs["checking"]), int(rounds)


def test_ha_suspend_checks_only_on_master() -> None:
    vs_toml = VS_TOML.replace("delay_loop = 1", "delay_loop = 1\nha_suspend = true")
    with Lab() as lab:
        nodes: dict[str, PyvrrpNode] = {}
        for host, prio in (("lb1", 150), ("lb2", 100)):
            node_dir = lab.run_dir / f"pyvrrp-{host}"
            node_dir.mkdir(parents=True, exist_ok=True)
            text = pyvrrp_toml(
                host,
                [InstanceSpec(priority=prio, version=3, advert_int_s=0.1)],
                control_socket=str(node_dir / "control.sock"),
                state_dir=str(node_dir),
            )
            nodes[host] = PyvrrpNode(lab, host, text + vs_toml)
        nodes["lb2"].start()
        nodes["lb1"].start()
        _wait_state(nodes["lb1"], "MASTER", 60)
        _wait_state(nodes["lb2"], "BACKUP", 60)

        m_checking, m_before = _rounds(nodes["lb1"])
        b_checking, b_before = _rounds(nodes["lb2"])
        time.sleep(2.5)  # more than two delay_loops
        _, m_after = _rounds(nodes["lb1"])
        _, b_after = _rounds(nodes["lb2"])
        assert m_checking and m_after > m_before, "the MASTER checks its real servers"
        assert not b_checking and b_after == b_before, "ha_suspend: the BACKUP does not check"

        nodes["lb1"].stop()
        _wait_state(nodes["lb2"], "MASTER", 10)
        _, start = _rounds(nodes["lb2"])
        time.sleep(2.5)
        checking, end = _rounds(nodes["lb2"])
        assert checking and end > start, "the new MASTER starts checking"
