"""Failover between two real ``pyvrrp run`` daemons, measured on the wire (issue #3 §4).

Timings come from tcpdump on the lab bridge (:mod:`pyvrrp.lab.capture`), so they
include everything a real peer would see: timer accuracy, the event loop, the
raw socket and the kernel.
"""

from __future__ import annotations

import signal
import time

import pytest
from _daemon_helpers import (
    adverts,
    capture,
    inst,
    ipv4_frame,
    log_transitions,
    send_once,
    sighup,
    signal_node,
    start_pair,
    v2,
    v3,
    vrrp_payload,
    wait_view,
    write_config,
)

from pyvrrp.lab.topology import Lab

pytestmark = pytest.mark.netns


def mdi_s(interval_s: float, priority: int, version: int) -> float:
    """Master_Down_Interval: RFC 3768 §6.1 (v2 skew in seconds), RFC 5798 §6.1 (v3, scaled)."""
    skew = (256 - priority) / 256 if version == 2 else (256 - priority) * interval_s / 256
    return 3 * interval_s + skew


@pytest.mark.parametrize(
    ("version", "interval_s"), [pytest.param(3, 0.1, id="v3-100ms"), pytest.param(2, 1.0, id="v2-1s")]
)
def test_kill9_failover_after_master_down_interval(lab: Lab, version: int, interval_s: float) -> None:
    """TMR-03, TMR-05, SM-05, SM-10, TMR-08: after ``kill -9`` of the MASTER (no priority 0
    sent), the BACKUP's first advert follows the master's last advert on the wire by
    Master_Down_Interval (-20 ms / +50 ms), and the BACKUP takes the VIP."""
    mk = v3 if version == 3 else v2
    n1, n2 = start_pair(lab, mk(150, advert_int_s=interval_s), mk(100, advert_int_s=interval_s))
    cap = capture(lab)
    try:
        time.sleep(max(0.25, 1.2 * interval_s))  # at least one advert from lb1 on the capture
        n1.kill9()
        n2.wait_state("MASTER", 3 * mdi_s(interval_s, 100, version))
        time.sleep(0.1)
    finally:
        cap.stop()
    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    assert old and new, f"adverts lb1={len(old)} lb2={len(new)}"
    assert all(e.priority == 150 for e in old), "kill -9 must not send priority 0"
    gap = new[0].t - old[-1].t
    expected = mdi_s(interval_s, 100, version)
    assert expected - 0.020 <= gap <= expected + 0.050, f"failover gap {gap:.4f}s, MDI {expected:.4f}s"
    assert new[0].priority == 100 and new[0].version == version
    assert n2.holds_vip()
    view = inst(n2)
    assert view["last_transition"]["from"] == "BACKUP" and view["last_transition"]["reason"] == "master_down"


@pytest.mark.parametrize(
    ("version", "interval_s"), [pytest.param(3, 0.1, id="v3-100ms"), pytest.param(2, 1.0, id="v2-1s")]
)
def test_sigterm_sends_priority_zero_and_backup_takes_over_at_skew(
    lab: Lab, version: int, interval_s: float
) -> None:
    """SM-09, SM-06, TMR-07, TMR-02, TMR-04: SIGTERM on the MASTER puts a priority-0 advert
    on the wire; the BACKUP advertises Skew_Time later, not Master_Down_Interval (v3:
    (256-100)*0.1/256 = 61 ms; v2: (256-100)/256 = 609 ms whatever the interval); the
    stopped daemon exits 0 within 1 s and has removed its VIP."""
    mk = v3 if version == 3 else v2
    n1, n2 = start_pair(lab, mk(150, advert_int_s=interval_s), mk(100, advert_int_s=interval_s))
    cap = capture(lab)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        rc = n1.stop(timeout_s=5)
        exit_s = time.monotonic() - t0
        n2.wait_state("MASTER", 2)
        time.sleep(0.15)
    finally:
        cap.stop()
    assert rc == 0, n1.log_text()[-2000:]
    assert exit_s <= 1.0, f"daemon took {exit_s:.2f}s to exit"
    assert not lab.holds_vip("lb1") and n2.holds_vip()
    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    zero = [e for e in old if e.priority == 0]
    assert len(zero) == 1 and zero[0] is old[-1], [e.priority for e in old]
    skew = (256 - 100) / 256 * (interval_s if version == 3 else 1.0)
    gap = new[0].t - zero[0].t
    assert skew - 0.020 <= gap <= skew + 0.050, f"takeover {gap:.4f}s after priority 0, skew {skew:.4f}s"
    assert inst(n2)["counters"]["adverts_rx"] >= 1


def test_preempt_back_when_master_returns(lab: Lab) -> None:
    """SM-14, SM-07, SM-12: lb1 (150) is killed, lb2 (100) takes over; when lb1 comes back
    it enters BACKUP, ignores the lower-priority adverts and preempts: lb1 MASTER with the
    VIP, lb2 BACKUP (reason: preempted by lb1) without it."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    n1.kill9()
    n2.wait_state("MASTER", 2)
    n1.start()
    n1.wait_state("MASTER", 3)
    n2.wait_state("BACKUP", 2)
    assert n1.holds_vip() and not n2.holds_vip()
    assert log_transitions(n1)[-2:] == [("INIT", "BACKUP", "startup"), ("BACKUP", "MASTER", "master_down")]
    reason = inst(n2)["last_transition"]["reason"]
    assert "192.168.233.10" in reason and "150" in reason, reason


def test_nopreempt_keeps_the_current_master(lab: Lab) -> None:
    """SM-07, SM-14: with ``preempt = false`` on lb1 (150), after lb1 restarts it stays
    BACKUP under lb2 (100) and holds no VIP (the copy left by kill -9 is cleaned at start)."""
    n1, n2 = start_pair(lab, v3(150, preempt=False), v3(100))
    n1.kill9()
    n2.wait_state("MASTER", 2)
    assert lab.holds_vip("lb1"), "kill -9 leaves the VIP behind (test precondition)"
    n1.start()
    n1.wait_state("BACKUP", 3)
    time.sleep(1.2)  # > 3 Master_Down_Intervals
    a, b = inst(n1), inst(n2)
    assert a["state"] == "BACKUP" and b["state"] == "MASTER"
    assert a["master_ip"] == "192.168.233.11"
    assert not n1.holds_vip() and n2.holds_vip()
    assert b["counters"]["transitions"] == 2


def test_link_down_fault_then_preempt_back(lab: Lab) -> None:
    """SM-16, SM-05, SM-14: link down on the MASTER -> FAULT (``faults`` says why), VIP
    removed, the peer takes over; link up -> BACKUP, then the higher priority preempts
    back."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    lab.link_set("lb1", "eth0", False)
    view = wait_view(n1, lambda v: v["state"] == "FAULT", 3, what="lb1 FAULT")
    assert view["faults"], view
    assert view["vips_held"] is False and not n1.holds_vip()
    n2.wait_state("MASTER", 2)
    assert n2.holds_vip()
    lab.link_set("lb1", "eth0", True)
    n1.wait_state("MASTER", 5)
    n2.wait_state("BACKUP", 2)
    assert n1.holds_vip() and not n2.holds_vip()
    assert [t[:2] for t in log_transitions(n1)][-3:] == [
        ("MASTER", "FAULT"),
        ("FAULT", "BACKUP"),
        ("BACKUP", "MASTER"),
    ]
    assert inst(n1)["faults"] == []


def test_unicast_peers_failover_and_foreign_source_dropped(lab: Lab) -> None:
    """RX-13, PKT-02, SM-05, TMR-03: with ``unicast_src_ip``/``unicast_peer`` the adverts go
    to the peer's address (not 224.0.0.18); an otherwise valid priority-200 advert sent to
    the MASTER from a host that is not a peer is dropped and counted (``unicast_peer``),
    the MASTER stays MASTER; after kill -9 the BACKUP takes over and advertises to lb1;
    lb1 preempts back when restarted and its SIGTERM priority 0 goes to the peer (SM-09)."""
    ip1, ip2, ipc = lab.ip("lb1"), lab.ip("lb2"), lab.ip("client")
    n1, n2 = start_pair(
        lab,
        v3(150, unicast_src=ip1, unicast_peers=(ip2,)),
        v3(100, unicast_src=ip2, unicast_peers=(ip1,)),
    )
    cap = capture(lab)
    try:
        hostile = vrrp_payload(priority=200, src=ipc, dst=ip1)
        frame = ipv4_frame(
            hostile,
            src=ipc,
            dst=ip1,
            src_mac=lab.mac("client"),
            dst_mac=bytes.fromhex(lab.mac("lb1").replace(":", "")),
        )
        assert send_once(lab, "client", [("foreign", frame)]) == {"foreign": 1}
        view = wait_view(n1, lambda v: v["drops"].get("unicast_peer", 0) >= 1, 2, what="unicast_peer drop")
        time.sleep(0.2)
        n1.kill9()
        n2.wait_state("MASTER", 2)
        time.sleep(0.25)
    finally:
        cap.stop()
    assert view["drops"] == {"unicast_peer": 1} and view["state"] == "MASTER"
    assert view["counters"]["transitions"] == 2
    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    assert old and new
    assert {(e.src_ip, e.dst_ip) for e in old} == {(ip1, ip2)}
    assert {(e.src_ip, e.dst_ip) for e in new} == {(ip2, ip1)}
    assert not [e for e in events if e.kind == "advert" and e.dst_ip == "224.0.0.18"]
    gap = new[0].t - old[-1].t
    expected = mdi_s(0.1, 100, 3)
    assert expected - 0.020 <= gap <= expected + 0.050, f"failover gap {gap:.4f}s, MDI {expected:.4f}s"
    assert n2.holds_vip()

    # lb1 returns and preempts over unicast; SIGTERM then sends priority 0 to the peer only.
    n1.start()
    n1.wait_state("MASTER", 3)
    n2.wait_state("BACKUP", 1)
    cap = capture(lab)
    try:
        assert n1.stop(timeout_s=5) == 0
        n2.wait_state("MASTER", 1)
        time.sleep(0.1)
    finally:
        cap.stop()
    zero = [e for e in adverts(cap.events(), lab, "lb1") if e.priority == 0]
    assert [(e.src_ip, e.dst_ip) for e in zero] == [(ip1, ip2)]
    takeover = adverts(cap.events(), lab, "lb2")[0]
    assert takeover.t - zero[0].t <= 0.061 + 0.05 and takeover.dst_ip == ip1


def test_backup_sigterm_is_silent_and_link_flap_on_backup(lab: Lab) -> None:
    """SM-04, SM-16: link down on the BACKUP -> FAULT, link up -> BACKUP again without
    disturbing the MASTER; SIGTERM on the BACKUP exits 0 and sends nothing (no priority
    0: only a MASTER sends it, SM-09); the MASTER never changes state."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    before = inst(n1)
    cap = capture(lab)
    try:
        lab.link_set("lb2", "eth0", False)
        wait_view(n2, lambda v: v["state"] == "FAULT" and bool(v["faults"]), 3, what="lb2 FAULT")
        lab.link_set("lb2", "eth0", True)
        n2.wait_state("BACKUP", 3)
        time.sleep(0.5)  # > Master_Down_Interval: lb2 must not take over
        assert n2.stop(timeout_s=5) == 0
        time.sleep(0.2)
    finally:
        cap.stop()
    assert [t[:2] for t in log_transitions(n2)] == [
        ("INIT", "BACKUP"),
        ("BACKUP", "FAULT"),
        ("FAULT", "BACKUP"),
        ("BACKUP", "INIT"),
    ]
    assert not adverts(cap.events(), lab, "lb2")
    after = inst(n1)
    assert after["state"] == "MASTER" and after["last_transition"] == before["last_transition"]
    assert n1.holds_vip() and not lab.holds_vip("lb2")


def test_v3_backup_adopts_master_interval(lab: Lab) -> None:
    """TMR-06, RX-09, TMR-05: lb1 reloads its advert_int from 0.1 s to 0.2 s (SIGHUP); the
    v3 BACKUP (configured 0.1 s) logs/counts the mismatch without dropping, adopts the
    master's interval (Master_Down_Interval 3*0.2 + 156*0.2/256 s) and, after kill -9,
    takes over that long after lb1's last advert."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    write_config(n1, [v3(150, advert_int_s=0.2)])
    sighup(n1)
    mdi = 0.6 + 156 * 0.2 / 256
    view = wait_view(
        n2, lambda v: v["master_adver_interval_s"] == pytest.approx(0.2), 2, what="lb2 adopts 0.2 s"
    )
    assert view["advert_interval_s"] == pytest.approx(0.1)
    assert view["master_down_interval_s"] == pytest.approx(mdi, abs=0.011)
    assert view["drops"] == {} and view["counters"].get("interval_mismatch", 0) >= 1
    cap = capture(lab)
    try:
        time.sleep(0.5)
        n1.kill9()
        n2.wait_state("MASTER", 3)
        time.sleep(0.1)
    finally:
        cap.stop()
    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    assert all(e.interval_cs == 20 for e in old)
    gap = new[0].t - old[-1].t
    assert mdi - 0.020 <= gap <= mdi + 0.050, f"failover gap {gap:.4f}s, adopted MDI {mdi:.4f}s"
    assert new[0].interval_cs == 10  # the new master advertises its own configured interval


def test_frozen_master_resumes_and_dual_master_heals(lab: Lab) -> None:
    """SM-12, SM-13, SM-05: the MASTER is frozen (SIGSTOP) longer than Master_Down_Interval,
    so lb2 takes over; on SIGCONT lb1 still believes it is MASTER (dual master) and
    advertises priority 150: lb2 yields (preempted by lb1), and within half a second
    exactly one node is MASTER and holds the VIP."""
    n1, n2 = start_pair(lab, v3(150), v3(100))
    signal_node(n1, signal.SIGSTOP)
    try:
        n2.wait_state("MASTER", 2)
        time.sleep(0.3)
    finally:
        signal_node(n1, signal.SIGCONT)
    n2.wait_state("BACKUP", 0.5)
    time.sleep(0.3)
    a, b = inst(n1), inst(n2)
    assert (a["state"], b["state"]) == ("MASTER", "BACKUP")
    assert n1.holds_vip() and not n2.holds_vip()
    assert log_transitions(n1) == [("INIT", "BACKUP", "startup"), ("BACKUP", "MASTER", "master_down")]
    assert log_transitions(n2)[-1] == ("MASTER", "BACKUP", "preempted by 192.168.233.10 prio 150")
