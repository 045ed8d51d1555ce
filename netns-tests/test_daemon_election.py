"""Election between two real ``pyvrrp run`` daemons in the namespace lab (issue #3 §4).

lb1 (192.168.233.10) and lb2 (192.168.233.11) share the bridge; the VIP is
192.168.233.200.  VRRPv3 at 0.1 s keeps each test around a second or two.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from _daemon_helpers import (
    adverts,
    capture,
    cli_state,
    inst,
    log_transitions,
    start,
    start_pair,
    v2,
    v3,
    wait_view,
)

from pyvrrp.lab.topology import VIP4, Lab, PyvrrpNode

pytestmark = pytest.mark.netns


def test_higher_priority_wins_and_state_json(lab: Lab) -> None:
    """SM-02, SM-05, SM-07, SM-08, SM-03, ARP-04, TMR-04, TMR-05: priority 150 vs 100 on
    VRRPv3/0.1 s: lb1 becomes MASTER and holds the VIP, lb2 stays BACKUP without it, and
    ``pyvrrp state --json`` reports the documented fields with consistent values."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    time.sleep(0.5)  # a few adverts
    assert n1.holds_vip() and not n2.holds_vip()

    doc = cli_state(n1)
    assert doc["router_id"] == "lb1" and isinstance(doc["pid"], int)
    (m,) = doc["instances"]
    b = inst(n2)
    for view in (m, b):
        for key in (
            "name",
            "interface",
            "vrid",
            "version",
            "state",
            "priority",
            "effective_priority",
            "master_ip",
            "vips",
            "vips_held",
            "advert_interval_s",
            "master_down_interval_s",
            "last_transition",
            "counters",
            "drops",
        ):
            assert key in view, f"{key} missing from state --json: {sorted(view)}"
        assert view["name"] == "VI_51" and view["interface"] == "eth0"
        assert view["vrid"] == 51 and view["version"] == 3
        assert view["vips"] == [f"{VIP4}/32"]
        assert view["advert_interval_s"] == pytest.approx(0.1)
        assert set(view["last_transition"]) >= {"from", "to", "reason", "at"}
    assert m["state"] == "MASTER" and m["priority"] == m["effective_priority"] == 150
    assert m["vips_held"] is True and m["master_ip"] == "192.168.233.10"
    assert m["last_transition"]["from"] == "BACKUP" and m["last_transition"]["to"] == "MASTER"
    assert abs(m["last_transition"]["at"] - time.time()) < 30
    assert m["counters"]["adverts_tx"] >= 3
    assert b["state"] == "BACKUP" and b["priority"] == b["effective_priority"] == 100
    assert b["vips_held"] is False and b["master_ip"] == "192.168.233.10"
    assert b["last_transition"]["to"] == "BACKUP"
    assert b["counters"].get("adverts_tx", 0) == 0 and b["counters"]["adverts_rx"] >= 3
    # RFC 5798 §6.1: MDI = 3 * Master_Adver_Interval + (256 - prio) * MAI / 256 (prio 100)
    assert b["master_down_interval_s"] == pytest.approx(0.3 + 156 * 0.1 / 256, abs=0.011)
    assert b["drops"] == {} and m["drops"] == {}


def test_equal_priority_higher_address_wins(lab: Lab) -> None:
    """SM-12, SM-13: with equal priorities, a MASTER that hears an advert from a greater
    primary address steps down.  lb1 (.10) is MASTER alone; lb2 (.11) starts with its
    VRRP input blocked (nft) so it too becomes MASTER; lb1 hears lb2 and yields to the
    higher address, and lb2 stays MASTER when its input is unblocked."""
    n1 = start(lab, "lb1", v3(100))
    n1.wait_state("MASTER", 5)
    rules = "table inet pv { chain in { type filter hook input priority 0; meta l4proto 112 drop; }; }"
    lab.exec("lb2", ["nft", "-f", "-"], input=rules)
    n2 = start(lab, "lb2", v3(100))
    n2.wait_state("MASTER", 5)
    n1.wait_state("BACKUP", 2)
    lab.exec("lb2", ["nft", "delete", "table", "inet", "pv"])
    time.sleep(0.5)
    a, b = inst(n1), inst(n2)
    assert a["state"] == "BACKUP" and b["state"] == "MASTER"
    assert a["last_transition"]["from"] == "MASTER"
    assert a["master_ip"] == "192.168.233.11" and not n1.holds_vip() and n2.holds_vip()
    assert b["counters"]["transitions"] == 2  # INIT->BACKUP->MASTER, never back


def test_v2_election_and_wire_format(lab: Lab) -> None:
    """PKT-01, PKT-02, PKT-05, TMR-01, TMR-03, SM-02, SM-05: VRRPv2 (1 s interval) elects
    the higher priority; the MASTER's adverts on the wire are v2, multicast to 224.0.0.18
    from its primary address, carry its priority, the VIP and Adver Int 1 s."""
    cap = capture(lab)
    try:
        n1, n2 = start_pair(lab, v2(150), v2(100))
        time.sleep(1.2)
    finally:
        cap.stop()
    ads = adverts(cap.events(), lab, "lb1")
    assert len(ads) >= 2
    for ad in ads:
        assert (ad.version, ad.priority, ad.interval_cs) == (2, 150, 100)
        assert ad.src_ip == "192.168.233.10" and ad.dst_ip == "224.0.0.18"
        assert ad.addresses == (VIP4,)
    assert not adverts(cap.events(), lab, "lb2"), "a v2 BACKUP must stay silent"
    view = inst(n2)
    assert view["version"] == 2 and view["master_down_interval_s"] == pytest.approx(3 + 156 / 256, abs=0.011)
    assert n1.holds_vip() and not n2.holds_vip()


def test_invalid_config_exits_1_with_one_line(lab: Lab) -> None:
    """Startup: an invalid config stops ``pyvrrp run`` with exit status 1 and a one-line error
    naming the key (no traceback).  (A missing interface no longer stops it: the instance
    waits in FAULT, test_daemon_ops.py.)"""
    node = PyvrrpNode(lab, "lb1", instances=[v3(150, extra={"down_timer_adverts": 0})])
    argv = node.argv()
    proc = lab.exec("lb1", argv, check=False, timeout=30, env=node.env())
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in err_lines if "down_timer_adverts" in ln]
    assert len(errors) == 1, proc.stderr
    assert err_lines[0].startswith("pyvrrp:"), err_lines[0]
    assert not lab.holds_vip("lb1")


def test_state_cli_without_daemon_fails_cleanly(lab: Lab) -> None:
    """``pyvrrp state --json`` against a socket nobody serves exits non-zero with a message,
    not a traceback (operators run it on the BACKUP host too)."""
    sock = lab.run_dir / "nobody.sock"
    proc = subprocess.run(
        [sys.executable, "-m", "pyvrrp", "state", "--json", "--socket", str(sock)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_vip_deleted_by_hand_goes_through_election(lab: Lab) -> None:
    """SM-16, SM-08: ``ip addr del`` of the VIP on the MASTER is detected; the instance
    leaves MASTER (re-election, keepalived behaviour) and, still the highest priority,
    becomes MASTER again holding the VIP."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    before = inst(n1)["counters"]["transitions"]
    lab.ip_cmd("lb1", "addr", "del", f"{VIP4}/32", "dev", "eth0")
    view = wait_view(
        n1,
        lambda v: v["counters"]["transitions"] >= before + 2 and v["state"] == "MASTER" and v["vips_held"],
        5,
        what="lb1 back to MASTER after VIP deletion",
    )
    assert view["last_transition"]["to"] == "MASTER"
    assert n1.holds_vip() and not n2.holds_vip()
    assert inst(n2)["state"] == "BACKUP"


def test_second_daemon_on_same_control_socket_refused(lab: Lab) -> None:
    """Startup: a second ``pyvrrp run`` pointed at the control socket of a live daemon exits
    1 with a one-line error (no traceback) and does not disturb the running MASTER."""
    n1 = start(lab, "lb1", v3(150))
    n1.wait_state("MASTER", 3)
    before = inst(n1)
    second = PyvrrpNode(lab, "lb1", instances=[v3(150)])
    proc = lab.exec("lb1", second.argv(), check=False, timeout=30, env=second.env())
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("pyvrrp:")]
    assert len(lines) == 1 and "control.sock" in lines[0], proc.stderr
    after = inst(n1)
    assert n1.alive() and after["last_transition"] == before["last_transition"] and n1.holds_vip()


def test_address_owner_takes_over_at_startup(lab: Lab) -> None:
    """SM-01, SM-14, PKT-04: a priority-255 instance (address owner) goes INIT -> MASTER
    at startup without waiting Master_Down_Interval and displaces a running MASTER; its
    adverts carry priority 255, followed by GARPs.  (``preempt = false`` with 255 is a
    config error: the owner always preempts.)"""
    n2 = start(lab, "lb2", v3(100))
    n2.wait_state("MASTER", 3)
    cap = capture(lab)
    try:
        n1 = start(lab, "lb1", v3(255))
        n1.wait_state("MASTER", 5)
        n2.wait_state("BACKUP", 1)
        time.sleep(0.15)
    finally:
        cap.stop()
    assert log_transitions(n1) == [("INIT", "MASTER", "startup (address owner)")]
    assert log_transitions(n2)[-1][:2] == ("MASTER", "BACKUP")
    events = cap.events()
    owner = adverts(events, lab, "lb1")
    assert owner and all(e.priority == 255 for e in owner)
    garps = [e for e in events if e.kind == "garp" and e.src_mac == lab.mac("lb1")]
    assert garps and garps[0].t >= owner[0].t
    assert n1.holds_vip() and not n2.holds_vip()
