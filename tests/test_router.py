"""Single-engine tests of pyvrrp.proto.router.VirtualRouter, driven with explicit ``now``."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface
from typing import Any

import pytest

from pyvrrp.proto.events import (
    AddVips,
    AdvertReceived,
    AnnounceVips,
    ConflictDetected,
    LinkChanged,
    RemoveVips,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
    TakeoverPending,
    TakeoverVerdict,
    TrackerChanged,
)
from pyvrrp.proto.packet import Advertisement, decode
from pyvrrp.proto.router import RouterConfig, VirtualRouter, advert_datagrams, effective_priority, peer_wins
from pyvrrp.proto.states import ProtocolViolation
from pyvrrp.testing import make_config, make_router

VIP = ip_interface("192.0.2.100/24")
PEER = ip_address("192.0.2.9")  # greater than our 192.0.2.5
LOW_PEER = ip_address("192.0.2.2")
MDI_150 = 3 + 106 / 256


def adv(
    priority: int, *, version: int = 2, vrid: int = 1, interval_cs: int = 100, **kw: Any
) -> Advertisement:
    kw.setdefault("addresses", (VIP.ip,))
    return Advertisement(version=version, vrid=vrid, priority=priority, interval_cs=interval_cs, **kw)


def rx(advert: Advertisement, src: Any = PEER, ttl: int | None = 255) -> AdvertReceived:
    return AdvertReceived(advert, src=src, ttl=ttl)


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def backup(priority: int = 100, **kw: Any) -> VirtualRouter:
    r = make_router("r", priority, "192.0.2.5", **kw)
    r.handle(Startup(), now=0.0)
    assert r.state is State.BACKUP
    return r


def master(priority: int = 100, **kw: Any) -> VirtualRouter:
    r = backup(priority, **kw)
    deadline = r.next_deadline()
    assert deadline is not None
    r.handle_timer(now=deadline)
    assert r.state is State.MASTER
    return r


# ------------------------------------------------------------------ startup


def test_owner_startup_goes_master_with_ordered_actions() -> None:
    """SM-01, ARP-02: owner (255) Startup -> MASTER: StateChanged, SendAdvert, AddVips, AnnounceVips."""
    r = make_router("r", 255, "192.0.2.5", epoch=41)
    actions = r.handle(Startup(), now=10.0)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "AddVips", "AnnounceVips"]
    sc, send, add, ann = actions
    assert isinstance(sc, StateChanged) and (sc.old, sc.new, sc.priority, sc.epoch) == (
        State.INIT,
        State.MASTER,
        255,
        42,
    )
    assert isinstance(add, AddVips) and add.vips == (VIP,)
    assert isinstance(send, SendAdvert) and send.advert.priority == 255 and send.advert.addresses == (VIP.ip,)
    assert isinstance(ann, AnnounceVips) and ann.repeat == 5 and ann.reason == "master"
    assert r.next_deadline() == 11.0  # Adver_Timer (TMR-08)


def test_backup_startup_arms_master_down() -> None:
    """SM-02, TMR-03: prio 100 v2 at 1 s enters BACKUP with Master_Down at +3.609375 s."""
    r = make_router("r", 100, "192.0.2.5")
    actions = r.handle(Startup(), now=2.0)
    assert kinds(actions) == ["StateChanged"]
    assert r.state is State.BACKUP
    assert r.next_deadline() == 5.609375


def test_start_as_master_hint_still_waits_master_down() -> None:
    """SM-02: start_as_master (keepalived `state MASTER`) below 255 waits the full MDI, as measured."""
    r = make_router("r", 150, "192.0.2.5", start_as_master=True)
    r.handle(Startup(), now=0.0)
    assert r.state is State.BACKUP
    assert r.next_deadline() == 3 + 106 / 256


def test_master_down_fires_exactly_and_emits_entry_actions() -> None:
    """SM-05, ARP-02: BACKUP + Master_Down_Timer -> MASTER with entry actions in order."""
    r = backup()
    assert r.handle_timer(now=3.6) == []  # not yet due
    actions = r.handle_timer(now=3.609375)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "AddVips", "AnnounceVips"]
    assert r.snapshot(now=3.609375).last_transition == (State.BACKUP, State.MASTER, "master_down", 3.609375)


def test_master_advertises_every_interval() -> None:
    """SM-10, TMR-08: MASTER sends an advert and re-arms Adver_Timer every interval."""
    r = master(garp_master_delay_s=0)
    start = r.snapshot(now=0).last_transition
    assert start is not None
    t0 = start[3]
    for i in range(1, 4):
        assert r.next_deadline() == t0 + i
        actions = r.handle_timer(now=t0 + i)
        assert kinds(actions) == ["SendAdvert"]
    assert r.snapshot(now=t0 + 3).counters["adverts_tx"] == 4


def test_garp_second_burst_and_refresh() -> None:
    """ARP-02: second GARP burst after garp_master_delay_s; periodic refresh when configured."""
    r = make_router("r", 255, "192.0.2.5", garp_master_delay_s=5.0, garp_master_refresh_s=7.0)
    r.handle(Startup(), now=0.0)
    garps: list[tuple[float, AnnounceVips]] = []
    now = 0.0
    while now < 15:
        deadline = r.next_deadline()
        assert deadline is not None
        now = deadline
        garps += [(now, a) for a in r.handle_timer(now=now) if isinstance(a, AnnounceVips)]
    assert [(t, a.reason, a.repeat) for t, a in garps] == [
        (5.0, "master_delayed", 5),
        (7.0, "refresh", 1),
        (14.0, "refresh", 1),
    ]


def test_delayed_garp_cancelled_when_leaving_master() -> None:
    """ARP-02, SM-12: the delayed burst never fires after leaving MASTER (keepalived's bug avoided)."""
    r = master()
    now = 4.0
    r.handle(rx(adv(200)), now=now)
    assert r.state is State.BACKUP
    # only the Master_Down deadline remains (MDI uses *our* priority for the skew)
    assert r.next_deadline() == now + 3.609375
    r.handle(rx(adv(200)), now=7.0)
    # the burst was due at 3.609375 + 5 = 8.609375: nothing fires
    assert r.handle_timer(now=9.0) == []


# ------------------------------------------------------------------ backup


def test_backup_priority_zero_arms_skew_time() -> None:
    """SM-06, TMR-07: BACKUP hearing priority 0 sets Master_Down_Timer to Skew_Time."""
    r = backup()
    r.handle(rx(adv(0)), now=1.0)
    assert r.next_deadline() == 1.609375
    assert r.snapshot(now=1.0).counters["prio_zero_rx"] == 1


def test_backup_resets_timer_on_higher_or_equal() -> None:
    """SM-07: priority >= local resets Master_Down_Timer to MDI (no address tie-break in Backup)."""
    r = backup()
    r.handle(rx(adv(150)), now=2.0)
    assert r.next_deadline() == 5.609375
    r.handle(rx(adv(100), src=LOW_PEER), now=3.0)
    assert r.next_deadline() == 6.609375
    snap = r.snapshot(now=3.0)
    assert snap.master_ip == LOW_PEER and snap.master_priority == 100 and snap.last_advert_rx_at == 3.0


def test_backup_ignores_lower_priority_when_preempting() -> None:
    """SM-07: with Preempt_Mode a lower priority is discarded; the timer runs out and we preempt."""
    r = backup(150)
    before = r.next_deadline()
    r.handle(rx(adv(100)), now=1.0)
    assert r.next_deadline() == before
    assert r.snapshot(now=1.0).counters["lower_prio_rx"] == 1


def test_nopreempt_backup_accepts_lower_master() -> None:
    """SM-07, SM-14: Preempt_Mode false: any advert resets the timer."""
    r = backup(150, preempt=False)
    r.handle(rx(adv(100)), now=1.0)
    assert r.next_deadline() == 1.0 + 3 + 106 / 256


def test_owner_always_preempts_even_with_nopreempt() -> None:
    """SM-14: the owner ignores preempt=False (discards lower adverts)."""
    r = make_router("r", 255, "192.0.2.5", preempt=False)
    r.handle(Startup(), now=0.0)
    assert r.state is State.MASTER
    r.handle(rx(adv(255)), now=0.5)  # duplicate owner with greater address -> BACKUP (EID 8298)
    assert r.state is State.BACKUP
    deadline = r.next_deadline()
    r.handle(rx(adv(100)), now=1.0)
    assert r.next_deadline() == deadline


def test_v3_backup_learns_master_interval_and_recomputes_skew() -> None:
    """TMR-06 (RFC 9568): BACKUP adopts the advert's interval, recomputes Skew and MDI."""
    r = backup(100, version=3)
    r.handle(rx(adv(200, version=3, interval_cs=50)), now=1.0)
    snap = r.snapshot(now=1.0)
    assert snap.master_adver_interval_s == 0.5
    assert snap.skew_time_s == 0.3046875
    assert snap.master_down_interval_s == 1.8046875
    assert r.next_deadline() == 2.8046875
    assert snap.counters["interval_mismatch"] == 1  # RX-09: logged, not dropped
    assert snap.drops == {}


def test_v3_interval_resets_to_own_after_fault() -> None:
    """TMR-06: entering Backup from Init/Fault sets Master_Adver_Interval := Advertisement_Interval."""
    r = backup(100, version=3)
    r.handle(rx(adv(200, version=3, interval_cs=50)), now=1.0)
    r.handle(LinkChanged(up=False), now=2.0)
    r.handle(LinkChanged(up=True), now=3.0)
    assert r.snapshot(now=3.0).master_adver_interval_s == 1.0
    assert r.next_deadline() == 6.609375


def test_preempt_delay_window_after_startup() -> None:
    """TMR-11 (keepalived preempt_delay): lower adverts reset the timer until the window closes."""
    r = backup(150, preempt_delay_s=10.0)
    for t in range(1, 10):
        r.handle(rx(adv(100)), now=float(t))
        assert r.next_deadline() == t + 3 + 106 / 256
    r.handle(rx(adv(100)), now=10.0)  # window closed: discarded
    assert r.next_deadline() == 9 + 3 + 106 / 256


# ------------------------------------------------------------------ master


def test_master_priority_zero_readvertises_and_rearms() -> None:
    """SM-11: MASTER hearing priority 0 advertises at once and re-arms Adver_Timer."""
    r = master()
    actions = r.handle(rx(adv(0)), now=4.0)
    assert kinds(actions) == ["SendAdvert"]
    assert r.next_deadline() == 5.0


def test_master_yields_to_higher_priority() -> None:
    """SM-12: higher priority -> BACKUP: StateChanged, RemoveVips (no priority 0)."""
    r = master()
    actions = r.handle(rx(adv(101, version=2)), now=4.0)
    assert kinds(actions) == ["StateChanged", "RemoveVips"]
    assert isinstance(actions[1], RemoveVips) and actions[1].vips == (VIP,)
    assert r.state is State.BACKUP
    assert r.next_deadline() == 4.0 + 3.609375
    assert r.snapshot(now=4.0).master_ip == PEER


@pytest.mark.parametrize(("src", "yields"), [(PEER, True), (LOW_PEER, False)])
def test_master_tie_break_by_address(src: Any, yields: bool) -> None:
    """SM-12: equal priority -> the greater primary address wins (unsigned, network order)."""
    r = master()
    r.handle(rx(adv(100), src=src), now=4.0)
    assert (r.state is State.BACKUP) is yields


def test_tie_break_is_unsigned_network_order() -> None:
    """SM-12: 200.0.0.1 > 10.0.0.1 although a signed 32-bit compare would say otherwise."""
    assert peer_wins(100, ip_address("200.0.0.1"), 100, ip_address("10.0.0.1"))
    assert not peer_wins(100, ip_address("10.0.0.1"), 100, ip_address("200.0.0.1"))
    assert peer_wins(100, ip_address("fe80::2"), 100, ip_address("fe80::1"))
    assert not peer_wins(99, ip_address("fe80::2"), 100, ip_address("fe80::1"))


def test_master_lower_priority_readvertises_without_rearming() -> None:
    """SM-13 (RFC 9568 §6.4.3): advertise at once, announce VIPs, do NOT reset Adver_Timer."""
    r = master(garp_lower_prio_repeat=3)
    deadline = r.next_deadline()
    actions = r.handle(rx(adv(50)), now=4.0)
    assert kinds(actions) == ["SendAdvert", "AnnounceVips"]
    assert isinstance(actions[1], AnnounceVips)
    assert (actions[1].repeat, actions[1].reason) == (3, "lower_prio")
    assert r.next_deadline() == deadline


def test_master_lower_priority_flood_is_not_amplified() -> None:
    """SM-13: a flood of lower-priority adverts gets at most one re-advert per 10 ms and one GARP
    burst per garp_lower_prio_delay (keepalived garp_lower_prio_delay); the burst is allowed
    again after the delay and in every new MASTER term."""
    r = master(garp_lower_prio_repeat=5, garp_lower_prio_delay_s=5.0)
    sent = garps = 0
    for i in range(1000):  # 1000 adverts in one second
        for a in r.handle(rx(adv(50)), now=4.0 + i * 0.001):
            sent += isinstance(a, SendAdvert)
            garps += isinstance(a, AnnounceVips)
    assert garps == 1
    assert 90 <= sent <= 101
    assert r.snapshot(now=5.0).counters["lower_prio_garp_limited"] == 999
    assert kinds(r.handle(rx(adv(50)), now=9.1)) == ["SendAdvert", "AnnounceVips"]


def test_master_lower_priority_silent_when_disabled() -> None:
    """SM-13: lower_prio_advert=False restores the RFC 5798 discard."""
    r = master(lower_prio_advert=False)
    assert r.handle(rx(adv(50)), now=4.0) == []


def test_shutdown_from_master_sends_priority_zero() -> None:
    """SM-09: MASTER + Shutdown: StateChanged, priority-0 advert, RemoveVips; no timers left."""
    r = master()
    actions = r.handle(Shutdown(), now=5.0)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "RemoveVips"]
    assert isinstance(actions[1], SendAdvert) and actions[1].advert.priority == 0
    assert r.state is State.INIT and r.next_deadline() is None
    assert r.snapshot(now=5.0).counters["prio_zero_tx"] == 1


def test_shutdown_from_backup_cancels_timer() -> None:
    """SM-04: BACKUP + Shutdown -> INIT, Master_Down_Timer cancelled, nothing sent."""
    r = backup()
    actions = r.handle(Shutdown(), now=1.0)
    assert kinds(actions) == ["StateChanged"]
    assert r.state is State.INIT and r.next_deadline() is None
    assert r.handle(Shutdown(), now=1.0) == []


def test_restart_after_shutdown() -> None:
    """SM-02: INIT again after Shutdown; a new Startup works."""
    r = backup()
    r.handle(Shutdown(), now=1.0)
    r.handle(Startup(), now=2.0)
    assert r.state is State.BACKUP and r.next_deadline() == 5.609375


# ------------------------------------------------------------------ fault


def test_link_down_master_sends_prio0_then_removes_vips() -> None:
    """SM-16: MASTER link down -> FAULT: StateChanged, priority 0, RemoveVips; link up -> BACKUP."""
    r = master()
    actions = r.handle(LinkChanged(up=False), now=5.0)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "RemoveVips"]
    assert r.state is State.FAULT and r.next_deadline() is None
    assert r.snapshot(now=5.0).faults == ("link",)
    actions = r.handle(LinkChanged(up=True), now=6.0)
    assert kinds(actions) == ["StateChanged"] and r.state is State.BACKUP
    assert r.next_deadline() == 9.609375


def test_link_down_before_startup_starts_in_fault() -> None:
    """SM-16: a known fault at Startup goes INIT -> FAULT."""
    r = make_router("r", 255, "192.0.2.5")
    assert r.handle(LinkChanged(up=False), now=0.0) == []
    actions = r.handle(Startup(), now=0.0)
    assert r.state is State.FAULT and kinds(actions) == ["StateChanged"]


def test_tracker_fault_and_recovery() -> None:
    """SM-16: any tracker fault -> FAULT; all clear -> BACKUP (re-election)."""
    r = backup()
    r.handle(TrackerChanged("chk", fault=True), now=1.0)
    assert r.state is State.FAULT
    r.handle(TrackerChanged("other", fault=True), now=1.5)
    r.handle(TrackerChanged("chk", fault=False), now=2.0)
    assert r.state is State.FAULT and r.snapshot(now=2.0).faults == ("other",)
    r.handle(TrackerChanged("other"), now=3.0)
    assert r.state is State.BACKUP


def test_fault_ignores_adverts() -> None:
    """SM-16: FAULT takes no part in elections."""
    r = backup()
    r.handle(LinkChanged(up=False), now=1.0)
    assert r.handle(rx(adv(0)), now=1.5) == []
    assert r.next_deadline() is None


# ------------------------------------------------------------------ priority


def test_effective_priority_recomputed_and_clamped() -> None:
    """TMR-10, SM-15: clamp(base + sum(deltas), 1, 254), owner exempt, latest per tracker wins."""
    assert effective_priority(100, [50, 200]) == 254
    assert effective_priority(100, [-150]) == 1
    assert effective_priority(255, [-100]) == 255
    r = backup(100)
    r.handle(TrackerChanged("a", delta=-30), now=0.1)
    r.handle(TrackerChanged("a", delta=-20), now=0.2)
    r.handle(TrackerChanged("b", delta=5), now=0.3)
    assert r.effective_priority == 85
    r.handle(rx(adv(90)), now=1.0)
    # TMR-10: the effective priority (85) feeds Skew_Time
    assert r.next_deadline() == 1.0 + 3 + (256 - 85) / 256


def test_effective_priority_is_advertised() -> None:
    """TMR-10: MASTER advertises the effective priority."""
    r = master(100)
    r.handle(TrackerChanged("w", delta=20), now=4.0)
    deadline = r.next_deadline()
    assert deadline is not None
    sends = [a for a in r.handle_timer(now=deadline) if isinstance(a, SendAdvert)]
    assert [s.advert.priority for s in sends] == [120]


# ------------------------------------------------------------------ receive checks


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (rx(adv(150), ttl=64), "ttl"),
        (rx(adv(150, version=3)), "version"),
        (rx(adv(150, vrid=2)), "vrid"),
        (rx(adv(150), src=ip_address("192.0.2.5")), "self"),
        (rx(adv(150, auth_type=1, auth_data=b"secret")), "auth"),
        (rx(adv(150, interval_cs=200)), "interval"),
        (rx(adv(150, addresses=(ip_address("192.0.2.101"),))), "address_list"),
        (rx(adv(150, addresses=())), "address_list"),
    ],
)
def test_meaning_checks_drop_and_count(event: AdvertReceived, reason: str) -> None:
    """RX-01, RX-02, RX-06, RX-07, RX-08, RX-10: meaning checks drop and count by DropReason."""
    r = backup()
    deadline = r.next_deadline()
    assert r.handle(event, now=1.0) == []
    assert r.next_deadline() == deadline
    snap = r.snapshot(now=1.0)
    assert snap.drops == {reason: 1}
    assert "adverts_rx" not in snap.counters


def test_v2_auth_password_must_match() -> None:
    """RX-07: simple password compared on its first 8 bytes (NUL padding ignored)."""
    r = backup(auth_type=1, auth_data=b"secret")
    r.handle(rx(adv(150, auth_type=1, auth_data=b"secret")), now=1.0)
    r.handle(rx(adv(150, auth_type=1, auth_data=b"secreT")), now=1.0)
    r.handle(rx(adv(150)), now=1.0)
    snap = r.snapshot(now=1.0)
    assert snap.counters["adverts_rx"] == 1 and snap.drops == {"auth": 2}


def test_v2_address_mismatch_accepted_from_owner() -> None:
    """RX-10: v2 drops a list mismatch unless the sender is the owner (255)."""
    r = backup()
    r.handle(rx(adv(255, addresses=(ip_address("192.0.2.7"),))), now=1.0)
    snap = r.snapshot(now=1.0)
    assert snap.drops == {} and snap.counters["address_list_mismatch"] == 1
    assert r.next_deadline() == 1.0 + 3.609375


def test_v3_address_mismatch_is_counted_not_dropped() -> None:
    """RX-10: v3 logs an address list mismatch only (order does not matter)."""
    r = backup(version=3, vips=("192.0.2.100/24", "192.0.2.101/24"))
    r.handle(
        rx(adv(150, version=3, addresses=(ip_address("192.0.2.101"), ip_address("192.0.2.100")))), now=1.0
    )
    assert "address_list_mismatch" not in r.snapshot(now=1.0).counters
    r.handle(rx(adv(150, version=3, addresses=(ip_address("192.0.2.100"),))), now=2.0)
    snap = r.snapshot(now=2.0)
    assert snap.drops == {} and snap.counters["address_list_mismatch"] == 1
    assert r.next_deadline() == 2.0 + 3.609375


def test_unicast_source_must_be_a_peer() -> None:
    """RX-13: in unicast mode a source outside unicast_peers is dropped."""
    r = backup(unicast_peers=(PEER,))
    r.handle(rx(adv(150), src=LOW_PEER), now=1.0)
    r.handle(rx(adv(150), src=PEER), now=1.0)
    snap = r.snapshot(now=1.0)
    assert snap.drops == {"unicast_peer": 1} and snap.counters["adverts_rx"] == 1


def test_ttl_check_can_be_disabled_and_unknown_ttl_passes() -> None:
    """RX-01: check_ttl=False (unicast, as keepalived) accepts any TTL; ttl=None is not checked."""
    r = backup(check_ttl=False)
    r.handle(rx(adv(150), ttl=3), now=1.0)
    s = backup()
    s.handle(rx(adv(150), ttl=None), now=1.0)
    assert r.snapshot(now=1).drops == {} and s.snapshot(now=1).drops == {}


def test_owner_keeps_processing_adverts() -> None:
    """RX-06 (RFC 9568 EID 8298), SM-15: an owner is not discarded; duplicate owners are counted."""
    r = make_router("r", 255, "192.0.2.5")
    r.handle(Startup(), now=0.0)
    actions = r.handle(rx(adv(255), src=LOW_PEER), now=0.5)
    assert kinds(actions) == ["SendAdvert", "AnnounceVips"]  # we win the tie, assert MASTER
    assert r.snapshot(now=0.5).counters["owner_conflict"] == 1


# ------------------------------------------------------------------ epoch, snapshot


def test_epoch_increments_on_each_master_entry() -> None:
    """SM-05: epoch (fencing token) +1 per MASTER entry, in StateChanged and snapshot."""
    r = master(epoch=7)
    assert r.epoch == 8
    r.handle(rx(adv(200)), now=4.0)
    changes = [a for a in r.handle_timer(now=4.0 + 3.609375) if isinstance(a, StateChanged)]
    assert [(c.new, c.epoch) for c in changes] == [(State.MASTER, 9)]
    assert r.snapshot(now=8).epoch == 9


def test_snapshot_counters() -> None:
    """RX-12: counters for tx/rx/transitions/garp and drops by reason."""
    r = master()
    r.handle(rx(adv(50)), now=4.0)
    r.handle(rx(adv(50), ttl=1), now=4.1)
    snap = r.snapshot(now=4.1)
    assert snap.counters["adverts_tx"] == 2
    assert snap.counters["adverts_rx"] == 1
    assert snap.counters["transitions"] == 2
    assert snap.counters["garp_bursts"] == 2
    assert snap.drops == {"ttl": 1}
    assert snap.vips_held and snap.state is State.MASTER


# ------------------------------------------------------------------ reconfigure


def test_reconfigure_unchanged_keeps_everything() -> None:
    """SIGHUP reload: the same config changes no state, timer or VIP."""
    r = master()
    deadline = r.next_deadline()
    assert r.reconfigure(r.config, now=4.0) == []
    assert r.state is State.MASTER and r.next_deadline() == deadline


def test_reconfigure_master_applies_vip_difference_only() -> None:
    """SIGHUP reload: MASTER removes/adds only the changed VIPs and announces the new ones."""
    r = master(vips=("192.0.2.100/24", "192.0.2.101/24"))
    new = make_config("r", 100, "192.0.2.5", vips=("192.0.2.101/24", "192.0.2.102/24"))
    actions = r.reconfigure(new, now=4.0)
    assert kinds(actions) == ["RemoveVips", "AddVips", "AnnounceVips"]
    assert actions[0] == RemoveVips((ip_interface("192.0.2.100/24"),))
    assert actions[1] == AddVips((ip_interface("192.0.2.102/24"),))
    assert r.state is State.MASTER


def test_reconfigure_backup_priority_keeps_state_and_timer() -> None:
    """SIGHUP reload: a BACKUP keeps its state and deadline when only the priority changes."""
    r = backup()
    deadline = r.next_deadline()
    assert r.reconfigure(make_config("r", 120, "192.0.2.5"), now=1.0) == []
    assert r.state is State.BACKUP and r.next_deadline() == deadline
    assert r.effective_priority == 120


def test_reconfigure_new_vrid_restarts() -> None:
    """SIGHUP reload: a different VRID is a different router: Shutdown then Startup."""
    r = master()
    actions = r.reconfigure(make_config("r", 100, "192.0.2.5", vrid=9), now=4.0)
    changes = [(a.old, a.new) for a in actions if isinstance(a, StateChanged)]
    assert changes == [(State.MASTER, State.INIT), (State.INIT, State.BACKUP)]
    assert r.config.vrid == 9


# ------------------------------------------------------------------ takeover gate, conflict


def test_takeover_gate_allow() -> None:
    """Issue #4: Master_Down with the gate on asks first; allow -> MASTER with that epoch."""
    r = backup(takeover_gate=True, epoch=3)
    actions = r.handle_timer(now=3.609375)
    assert actions == [TakeoverPending(epoch=4, reason="master_down")]
    assert r.state is State.BACKUP and r.snapshot(now=3.7).takeover_pending
    assert r.next_deadline() is None
    actions = r.handle(TakeoverVerdict(allow=True, reason="witness ok"), now=3.8)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "AddVips", "AnnounceVips"]
    assert isinstance(actions[0], StateChanged) and actions[0].epoch == 4
    assert "witness ok" in actions[0].reason


def test_takeover_gate_deny_retries() -> None:
    """Issue #4: a denial stays BACKUP and re-arms Master_Down (retry)."""
    r = backup(takeover_gate=True)
    r.handle_timer(now=3.609375)
    assert r.handle(TakeoverVerdict(allow=False, reason="no quorum"), now=4.0) == []
    assert r.state is State.BACKUP and not r.takeover_pending
    assert r.next_deadline() == 4.0 + 3.609375
    assert r.handle_timer(now=7.609375) == [TakeoverPending(epoch=1, reason="master_down")]


def test_takeover_gate_cancelled_by_master_advert() -> None:
    """Issue #4: a valid master's advert cancels the pending takeover; a late verdict is ignored."""
    r = backup(takeover_gate=True)
    r.handle_timer(now=3.609375)
    r.handle(rx(adv(150)), now=3.7)
    assert not r.takeover_pending and r.next_deadline() == 3.7 + 3.609375
    assert r.handle(TakeoverVerdict(allow=True), now=3.8) == []
    assert r.state is State.BACKUP
    assert r.snapshot(now=3.8).counters["takeover_cancelled"] == 1


@pytest.mark.parametrize(
    ("ours", "theirs", "yields"),
    [(b"\x00\x00\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x02", True), (b"\x02" * 6, b"\x01" * 6, False)],
)
def test_conflict_lower_mac_yields(ours: bytes, theirs: bytes, yields: bool) -> None:
    """Issue #4: dual-master conflict: the lower MAC yields, the survivor re-announces."""
    r = master(conflict_resolve=True)
    actions = r.handle(ConflictDetected(our_mac=ours, peer_mac=theirs), now=4.0)
    if yields:
        assert kinds(actions) == ["StateChanged", "RemoveVips"]
        assert isinstance(actions[0], StateChanged) and actions[0].reason == "dual-master conflict"
        assert r.state is State.BACKUP
    else:
        assert actions == [AnnounceVips((VIP,), repeat=5, reason="conflict")]
        assert r.state is State.MASTER


def test_conflict_never_makes_the_vrrp_winner_yield_while_the_election_runs() -> None:
    """Issue 13 item 5: after a split heals both masters hear each other; the better one
    must not yield by MAC (its MAC is the lower here) while VRRP decides; once the lower
    master's adverts have gone on for 1.5 intervals it does not hear ours (one-way loss,
    S6) and the MAC rule decides again."""
    r = master(conflict_resolve=True)  # priority 100, 1 s adverts
    low, high = b"\x00" * 5 + b"\x01", b"\x00" * 5 + b"\x02"
    r.handle(rx(adv(50)), now=4.0)  # the first advert of a lower-priority master: SM-13
    actions = r.handle(ConflictDetected(our_mac=low, peer_mac=high), now=4.9)
    assert actions == [AnnounceVips((VIP,), repeat=5, reason="conflict")] and r.state is State.MASTER
    assert r.snapshot(now=4.9).counters["conflict_vrrp_decides"] == 1
    r.handle(rx(adv(50)), now=5.0)  # it did not step down: it does not hear us
    yielded_at = None
    while yielded_at is None:
        t = r.next_deadline()
        assert t is not None and t < 8.0, "the deferred conflict was never decided"
        if "StateChanged" in kinds(r.handle_timer(now=t)):
            yielded_at = t
        else:
            r.handle(rx(adv(50)), now=t + 0.01)
    assert r.state is State.BACKUP and 4.0 + 1.5 < yielded_at <= 4.0 + 1.5 + 1.0  # at the next advert


def test_a_deferred_conflict_ends_when_the_other_master_steps_down() -> None:
    """The heal case: the lower master hears us and goes quiet; nobody yields by MAC."""
    r = master(conflict_resolve=True)
    r.handle(rx(adv(50)), now=4.0)
    r.handle(ConflictDetected(our_mac=b"\x00" * 6, peer_mac=b"\x01" * 6), now=4.2)
    for _ in range(6):  # its adverts stopped at 4.0: six of our advert periods later, still MASTER
        t = r.next_deadline()
        assert t is not None
        assert "StateChanged" not in kinds(r.handle_timer(now=t))
    assert r.state is State.MASTER


def test_conflict_ignored_without_resolution() -> None:
    """Issue #4: conflict_resolve=False only counts the conflict."""
    r = master()
    assert r.handle(ConflictDetected(b"\x00" * 6, b"\x01" * 6), now=4.0) == []
    assert r.snapshot(now=4.0).counters["conflicts_detected"] == 1


# ------------------------------------------------------------------ config, misuse


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vrid": 0}, "vrid"),
        ({"priority": 0}, "priority"),
        ({"advert_interval_cs": 150}, "whole seconds"),
        ({"version": 3, "advert_interval_cs": 4096}, "1..4095"),
        ({"version": 3, "advert_interval_cs": 0}, "1..4095"),
        ({"auth_type": 3}, "auth_type"),
        ({"down_timer_adverts": 0}, "down_timer_adverts"),
        ({"version": 4}, "version"),
        ({"family": 5}, "family"),
        ({"family": 6}, "not IPv6"),
        ({"advert_interval_cs": 25600}, "<= 255 s"),
        ({"primary_address": ip_address("fe80::1")}, "not IPv4"),
        ({"vips": (ip_interface("2001:db8::1/64"),)}, "not IPv4"),
        ({"preempt_delay_s": -1.0}, "preempt_delay_s"),
        ({"version": 3, "auth_type": 1}, "only in VRRPv2"),
        ({"garp_master_repeat": -1}, "garp_master_repeat"),
        ({"garp_master_delay_s": -1.0}, "garp_master_delay_s"),
        ({"mcast_group": ip_address("ff02::12")}, "not an IPv4 multicast group"),
        ({"mcast_group": ip_address("192.0.2.9")}, "not an IPv4 multicast group"),
    ],
)
def test_config_validation(changes: dict[str, Any], message: str) -> None:
    """TMR-01, PKT-04 (EID 8301: interval 1..4095 cs; v2 whole seconds)."""
    base: dict[str, Any] = {
        "name": "r",
        "vrid": 1,
        "version": 2,
        "family": 4,
        "priority": 100,
        "advert_interval_cs": 100,
        "vips": (VIP,),
        "primary_address": ip_address("192.0.2.5"),
    }
    with pytest.raises(ValueError, match=message):
        RouterConfig(**(base | changes))


def test_unknown_input_is_a_protocol_violation() -> None:
    """STYLE rule 4/8: misuse is a bug that names the input and the state."""
    r = backup()
    with pytest.raises(ProtocolViolation, match=r"object.*BACKUP"):
        r.handle(object(), now=1.0)  # type: ignore[arg-type]


def test_scoped_ipv6_source_is_recognised_as_self() -> None:
    """PKT-09, SM-12: an IPv6 link-local source with a scope id still matches our primary address."""
    r = make_router("r", 100, "fe80::5")
    r.handle(Startup(), now=0.0)
    advert = Advertisement(
        version=3,
        vrid=1,
        priority=100,
        addresses=tuple(v.ip for v in r.config.vips),
        interval_cs=100,
    )
    r.handle(AdvertReceived(advert, src=ip_address("fe80::5%eth0")), now=1.0)
    assert r.snapshot(now=1.0).drops == {"self": 1}


def test_reconfigure_removing_gate_releases_pending_takeover() -> None:
    """Issue #4: a reload that turns the takeover gate off while pending takes over at once."""
    r = backup(takeover_gate=True)
    r.handle_timer(now=3.609375)
    assert r.takeover_pending
    assert r.reconfigure(make_config("r", 100, "192.0.2.5"), now=4.0) == []
    assert r.next_deadline() == 4.0
    actions = r.handle_timer(now=4.0)
    assert r.state is State.MASTER and isinstance(actions[0], StateChanged)


def test_startup_twice_is_ignored() -> None:
    """SM-02: Startup outside INIT changes nothing (counted)."""
    r = backup()
    deadline = r.next_deadline()
    assert r.handle(Startup(), now=1.0) == []
    assert r.next_deadline() == deadline
    assert r.snapshot(now=1.0).counters["startup_ignored"] == 1


def test_tracker_fault_in_master_sends_priority_zero() -> None:
    """SM-16 (keepalived #1367): MASTER -> FAULT on a tracker fault sends priority 0 first."""
    r = master()
    actions = r.handle(TrackerChanged("chk", fault=True), now=5.0)
    assert kinds(actions) == ["StateChanged", "SendAdvert", "RemoveVips"]
    assert isinstance(actions[1], SendAdvert) and actions[1].advert.priority == 0


def test_preempt_window_reopens_after_a_higher_master() -> None:
    """TMR-11 (keepalived preempt_delay): the window reopens when a lower master follows a higher one."""
    r = backup(150, preempt_delay_s=10.0)
    r.handle(rx(adv(200)), now=20.0)  # a higher master: window closed/reset
    r.handle(rx(adv(100)), now=30.0)  # first lower master seen now: window 30..40
    assert r.next_deadline() == 30.0 + MDI_150
    r.handle(rx(adv(100)), now=39.0)
    assert r.next_deadline() == 39.0 + MDI_150
    r.handle(rx(adv(100)), now=40.0)
    assert r.next_deadline() == 39.0 + MDI_150


def test_owner_ignores_preempt_delay() -> None:
    """SM-14: the owner preempts at once; preempt_delay does not hold it back."""
    r = make_router("r", 255, "192.0.2.5", preempt_delay_s=30.0)
    r.handle(LinkChanged(up=False), now=0.0)
    r.handle(Startup(), now=0.0)
    r.handle(LinkChanged(up=True), now=1.0)
    deadline = r.next_deadline()
    r.handle(rx(adv(100)), now=2.0)
    assert r.next_deadline() == deadline


def test_no_announce_without_vips_or_repeat() -> None:
    """ARP-02: garp_master_repeat=0 or no VIPs: no AnnounceVips, no AddVips for an empty list."""
    r = make_router("r", 255, "192.0.2.5", garp_master_repeat=0)
    assert kinds(r.handle(Startup(), now=0.0)) == ["StateChanged", "SendAdvert", "AddVips"]
    r = make_router("r", 255, "192.0.2.5", vips=())
    assert kinds(r.handle(Startup(), now=0.0)) == ["StateChanged", "SendAdvert"]
    assert kinds(r.handle(Shutdown(), now=1.0)) == ["StateChanged", "SendAdvert"]


def test_reconfigure_master_priority_and_refresh() -> None:
    """SIGHUP reload: a MASTER advertises a new priority at once; GARP refresh can be turned on and off."""
    r = master(garp_master_delay_s=0)
    actions = r.reconfigure(make_config("r", 120, "192.0.2.5", garp_master_refresh_s=2.0), now=4.0)
    assert kinds(actions) == ["SendAdvert"]
    assert isinstance(actions[0], SendAdvert) and actions[0].advert.priority == 120
    assert r.next_deadline() == 5.0
    assert [a for a in r.handle_timer(now=6.0) if isinstance(a, AnnounceVips)] == [
        AnnounceVips((VIP,), repeat=1, reason="refresh")
    ]
    r.reconfigure(make_config("r", 120, "192.0.2.5"), now=6.5)
    assert r.next_deadline() == 7.0
    assert not any(isinstance(a, AnnounceVips) for a in r.handle_timer(now=9.0))


def test_late_adver_timer_does_not_slow_the_advert_rate() -> None:
    """TMR-08, SM-10: the Adver_Timer is re-armed from its deadline, so a runtime that fires
    every timer 2 ms late still sends one advert per interval on average (no drift); after a
    stall longer than an interval the timer starts afresh instead of sending a burst."""
    r = master(garp_master_delay_s=0.0)
    first = r.next_deadline()
    assert first is not None
    t = first
    for _ in range(100):
        deadline = r.next_deadline()
        assert deadline is not None
        t = deadline + 0.002
        assert kinds(r.handle_timer(now=t)) == ["SendAdvert"]
    assert r.next_deadline() == pytest.approx(first + 100 * 1.0)
    stalled = t + 5.0
    assert kinds(r.handle_timer(now=stalled)) == ["SendAdvert"]
    assert r.next_deadline() == pytest.approx(stalled + 1.0)


@pytest.mark.parametrize(
    ("address", "group", "want"),
    [
        ("192.0.2.5", None, "224.0.0.18"),
        ("192.0.2.5", "224.0.0.19", "224.0.0.19"),
        ("fe80::5", None, "ff02::12"),
        ("fe80::5", "ff02::1:12", "ff02::1:12"),
    ],
)
def test_adverts_go_to_the_configured_group(address: str, group: str | None, want: str) -> None:
    """keepalived vrrp_mcast_group4/6: adverts go to the configured group (RFC 5798 §5.1.1.2 /
    §5.1.2.2 otherwise), and the v3 checksum covers that destination (PKT-07)."""
    cfg = make_config("r", 100, address, version=3, mcast_group=ip_address(group) if group else None)
    adv = Advertisement(
        version=3, vrid=1, priority=100, addresses=tuple(v.ip for v in cfg.vips), interval_cs=100
    )
    ((dst, payload),) = advert_datagrams(cfg, adv)
    assert dst == ip_address(want)
    got = decode(payload, src=cfg.primary_address, dst=dst)
    assert isinstance(got, Advertisement) and (got.priority, got.addresses) == (100, adv.addresses)
    assert got.checksum_form.startswith("v3-")  # the pseudo-header with this destination
