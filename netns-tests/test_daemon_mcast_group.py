"""``vrrp_mcast_group4``: adverts to another group, with pyvrrp and with keepalived (issue 16).

Both nodes use 224.0.0.19 instead of RFC 5798's 224.0.0.18.  The capture on the lab
bridge shows where the adverts go; the election shows that each node joined the group
(a BACKUP that heard nothing would become MASTER after its Master_Down_Interval).
"""

from __future__ import annotations

import time

import pytest
from _daemon_helpers import adverts, capture, v3

from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_conf
from pyvrrp.lab.topology import DaemonNode, Lab, PyvrrpNode, pyvrrp_toml, wait_for

pytestmark = pytest.mark.netns

GROUP = "224.0.0.19"
INT_S = 0.1


def master_down_s(priority: int) -> float:
    """RFC 5798 §6.1: 3 * Advertisement_Interval + Skew_Time."""
    return 3 * INT_S + (256 - priority) * INT_S / 256


def _pyvrrp(lab: Lab, host: str, priority: int) -> PyvrrpNode:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    text = pyvrrp_toml(
        host, [v3(priority)], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir)
    )
    text = text.replace("[global_defs]\n", f'[global_defs]\nvrrp_mcast_group4 = "{GROUP}"\n', 1)
    return PyvrrpNode(lab, host, text)


def _keepalived(lab: Lab, host: str, priority: int) -> KeepalivedNode:
    spec = v3(priority, state="MASTER" if priority > 100 else "BACKUP")
    text = keepalived_conf(host, [spec]).replace(
        "global_defs {\n", f"global_defs {{\n    vrrp_mcast_group4 {GROUP}\n", 1
    )
    return KeepalivedNode(lab, host, text)


def _state(node: DaemonNode) -> str | None:
    return node.state()


@pytest.mark.parametrize(
    ("kind1", "kind2"),
    [
        pytest.param("pyvrrp", "pyvrrp", id="pyvrrp-pair"),
        pytest.param("pyvrrp", "keepalived", id="pyvrrp-master-keepalived-backup"),
        pytest.param("keepalived", "pyvrrp", id="keepalived-master-pyvrrp-backup"),
    ],
)
def test_election_and_failover_on_another_group(lab: Lab, kind1: str, kind2: str) -> None:
    make = {"pyvrrp": _pyvrrp, "keepalived": _keepalived}
    lb1, lb2 = make[kind1](lab, "lb1", 150), make[kind2](lab, "lb2", 100)
    cap = capture(lab)
    try:
        lb1.start()
        lb1.wait_state("MASTER", 20)
        lb2.start()
        lb2.wait_state("BACKUP", 20)
        # lb2 heard lb1 on the group: it stays BACKUP well past its own Master_Down_Interval
        time.sleep(1.0 + 5 * master_down_s(100))
        assert _state(lb2) == "BACKUP" and _state(lb1) == "MASTER"
        assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
        lb1.kill9()
        lb2.wait_state("MASTER", 10)
        wait_for(lambda: lab.holds_vip("lb2"), 5, what="lb2 holds the VIP")
        time.sleep(3 * INT_S)
    finally:
        cap.stop()
    sent = adverts(cap.events(), lab)
    by1, by2 = adverts(sent, lab, "lb1"), adverts(sent, lab, "lb2")
    assert by1 and by2, "both nodes advertised"
    assert {e.dst_ip for e in sent} == {GROUP}, "every advert went to the configured group"


def test_reload_that_changes_the_group_is_rejected(lab: Lab) -> None:
    """The sockets joined the group at start: a reload cannot move them, so it is rejected
    with the reason and the node keeps running on the old group."""
    import signal

    n1 = _pyvrrp(lab, "lb1", 150)
    n1.start()
    n1.wait_state("MASTER", 20)
    n1.config_path.write_text(n1.config_path.read_text().replace(GROUP, "224.0.0.20"))
    assert n1.proc is not None
    n1.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload_rejected" in n1.log_text(), 10, what="reload_rejected logged")
    assert "vrrp_mcast_group4 changes from 224.0.0.19 to 224.0.0.20" in n1.log_text()
    cap = capture(lab)
    try:
        time.sleep(5 * INT_S)
    finally:
        cap.stop()
    assert n1.state() == "MASTER"
    assert {e.dst_ip for e in adverts(cap.events(), lab, "lb1")} == {GROUP}
