"""`pyvrrp run --keep-ipvs`: the services pyvrrp programmed stay in the kernel when the daemon
stops (keepalived -I), so a restart adopts them without dropping connections; without the
flag they are removed (test_failover.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyvrrp.cli.run")
from test_failover import VS_TOML, _table, _wait_state

from pyvrrp.lab import VIP4, InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml


def test_keep_ipvs_leaves_services_on_stop() -> None:
    with Lab() as lab:
        node_dir = lab.run_dir / "pyvrrp-lb1"
        node_dir.mkdir(parents=True, exist_ok=True)
        text = pyvrrp_toml(
            "lb1",
            [InstanceSpec(priority=150, version=3, advert_int_s=0.1)],
            control_socket=str(node_dir / "control.sock"),
            state_dir=str(node_dir),
        )
        node = PyvrrpNode(lab, "lb1", text + VS_TOML, extra_args=["--keep-ipvs"]).start()
        _wait_state(node, "MASTER", 60)
        assert [t["service"] for t in _table(lab, "lb1")] == [f"TCP {VIP4}:80"]
        assert node.stop() == 0
        assert [t["service"] for t in _table(lab, "lb1")] == [f"TCP {VIP4}:80"], "kept on stop"
        # a restart adopts the table: still exactly one service, no duplicate, no flap
        node = PyvrrpNode(lab, "lb1", text + VS_TOML).start()
        _wait_state(node, "MASTER", 60)
        assert [t["service"] for t in _table(lab, "lb1")] == [f"TCP {VIP4}:80"]
        node.stop()
        assert _table(lab, "lb1") == [], "without --keep-ipvs the services are removed"


def test_cleanup_after_kill9_removes_the_recorded_services_and_vips() -> None:
    """Issue 14 item 6: after kill -9 the services and the VIP stay; `pyvrrp cleanup` (the
    unit's ExecStopPost) removes exactly what the daemon recorded, reading no config; a
    --keep-ipvs stop records nothing for it to remove."""
    import sys

    with Lab() as lab:
        node_dir = lab.run_dir / "pyvrrp-lb1"
        node_dir.mkdir(parents=True, exist_ok=True)
        sock = node_dir / "control.sock"
        text = pyvrrp_toml(
            "lb1",
            [InstanceSpec(priority=150, version=3, advert_int_s=0.1)],
            control_socket=str(sock),
            state_dir=str(node_dir),
        )
        cleanup = [sys.executable, "-m", "pyvrrp", "cleanup", "--socket", str(sock)]
        node = PyvrrpNode(lab, "lb1", text + VS_TOML).start()
        _wait_state(node, "MASTER", 60)
        node.kill9()
        assert [t["service"] for t in _table(lab, "lb1")] == [f"TCP {VIP4}:80"], "kill -9 leaves them"
        assert lab.holds_vip("lb1")
        proc = lab.exec("lb1", cleanup, check=False, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _table(lab, "lb1") == [] and not lab.holds_vip("lb1")

        node = PyvrrpNode(lab, "lb1", text + VS_TOML, extra_args=["--keep-ipvs"]).start()
        _wait_state(node, "MASTER", 60)
        assert node.stop() == 0
        proc = lab.exec("lb1", cleanup, check=False, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert [t["service"] for t in _table(lab, "lb1")] == [f"TCP {VIP4}:80"], "kept on purpose"
