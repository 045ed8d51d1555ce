"""Dual-master detection (issue #4 §4): should_yield, ConflictTracker/Monitor logic, VRID collisions."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pyvrrp.adapters.arp import build_arp_probe, build_garp, parse_arp
from pyvrrp.splitbrain.conflict import (
    ConflictMonitor,
    ConflictTracker,
    VridCollisionLog,
    flag_vrid_collision,
    probe_vip_once,
    should_yield,
)

OURS = "02:00:00:00:00:0a"
PEER = "02:00:00:00:00:0b"
OTHER = "02:00:00:00:00:0c"
VIP = IPv4Address("192.168.233.100")
VIP2 = IPv4Address("192.168.233.101")


def _reply(sender_mac: str, sender_ip: str, target_mac: str = OURS, target_ip: str = "0.0.0.0"):
    """An ARP reply frame as Linux sends it to an RFC 5227 probe."""
    sm = bytes.fromhex(sender_mac.replace(":", ""))
    tm = bytes.fromhex(target_mac.replace(":", ""))
    frame = (
        tm
        + sm
        + b"\x08\x06"
        + bytes.fromhex("0001080006040002")
        + sm
        + IPv4Address(sender_ip).packed
        + tm
        + IPv4Address(target_ip).packed
    )
    pkt = parse_arp(frame)
    assert pkt is not None
    return pkt


# ------------------------------------------------------------------ yielding

macs = st.binary(min_size=6, max_size=6)


@given(macs, macs)
def test_exactly_one_node_yields(a, b):
    """Issue #4 §4: both nodes apply should_yield independently; for distinct MACs exactly one yields."""
    assume(a != b)
    assert should_yield(a, b) != should_yield(b, a)


def test_lower_mac_yields_and_string_forms_agree():
    """Issue #4 §4: the deterministic rule is 'lower MAC yields', whatever the MAC spelling."""
    assert should_yield(OURS, PEER) is True
    assert should_yield(PEER, OURS) is False
    assert should_yield("02-00-00-00-00-0A", "02:00:00:00:00:0B") is True
    assert should_yield(bytes.fromhex("ff0000000000"), bytes.fromhex("00ffffffffff")) is False


def test_should_yield_rejects_equal_or_bad_macs():
    """Issue #4 §4: our own MAC is not a conflict; malformed MACs are errors."""
    with pytest.raises(ValueError):
        should_yield(OURS, OURS.upper())
    with pytest.raises(ValueError):
        should_yield(OURS, "zz:00:00:00:00:00")


# ------------------------------------------------------------------ tracking


def test_reply_from_other_mac_for_held_vip_is_conflict():
    """Issue #4 §4: another MAC answering our probe for a held VIP = dual master."""
    tr = ConflictTracker([OURS], interval_s=1.0, quiet_intervals=2)
    rec = tr.observe(_reply(PEER, str(VIP)), {VIP}, now=5.0)
    assert rec is not None
    assert (rec.vip, rec.peer_mac, rec.since) == (VIP, PEER, 5.0)
    assert tr.detected_total == 1
    # the same peer again: no new record, bookkeeping only
    assert tr.observe(_reply(PEER, str(VIP)), {VIP}, now=5.5) is None
    assert tr.conflicts[VIP].frames == 2 and tr.conflicts[VIP].last_seen == 5.5


def test_gratuitous_arp_from_other_mac_is_conflict():
    """Issue #4 §4: a GARP (another master's announcement) for our VIP is a conflict."""
    tr = ConflictTracker([OURS], interval_s=1.0)
    pkt = parse_arp(build_garp(PEER, VIP))
    assert pkt is not None
    rec = tr.observe(pkt, {VIP}, now=1.0)
    assert rec is not None and rec.peer_mac == PEER


def test_not_conflicts():
    """Issue #4 §4: our own frames, probes (sender 0.0.0.0), and VIPs we don't hold are not conflicts."""
    tr = ConflictTracker([OURS], interval_s=1.0)
    assert tr.observe(_reply(OURS, str(VIP)), {VIP}, now=0.0) is None
    probe = parse_arp(build_arp_probe(PEER, VIP))  # a BACKUP's pre-takeover probe
    assert probe is not None
    assert tr.observe(probe, {VIP}, now=0.0) is None
    assert tr.observe(_reply(PEER, str(VIP2)), {VIP}, now=0.0) is None
    assert tr.observe(_reply(PEER, "192.168.233.7"), {VIP}, now=0.0) is None
    assert tr.conflicts == {} and tr.detected_total == 0


def test_peer_mac_change_is_a_new_conflict():
    """Issue #4 §4: a different MAC claiming the VIP is reported again."""
    tr = ConflictTracker([OURS], interval_s=1.0)
    assert tr.observe(_reply(PEER, str(VIP)), {VIP}, now=0.0) is not None
    rec = tr.observe(_reply(OTHER, str(VIP)), {VIP}, now=1.0)
    assert rec is not None and rec.peer_mac == OTHER and rec.since == 1.0
    assert tr.detected_total == 2


def test_conflict_clears_after_quiet_intervals():
    """Issue #4 §4: a conflict clears after N probe intervals without a claim."""
    tr = ConflictTracker([OURS], interval_s=1.0, quiet_intervals=3)
    tr.observe(_reply(PEER, str(VIP)), {VIP}, now=10.0)
    tr.observe(_reply(PEER, str(VIP)), {VIP}, now=11.0)
    assert tr.expire(13.9) == []
    gone = tr.expire(14.0)
    assert [r.vip for r in gone] == [VIP]
    assert tr.conflicts == {}


def test_monitor_feed_and_tick_callbacks_and_snapshot():
    """Issue #4 §4: ConflictMonitor reports (vip, peer_mac), clears when quiet, and shows it in state."""
    events: list[tuple] = []
    held = [IPv4Interface("192.168.233.100/24"), VIP2, IPv6Interface("2001:db8::1/64")]

    class Clock:
        t = 50.0

        def now(self) -> float:
            return self.t

    mon = ConflictMonitor(
        "eth0",
        OURS,
        lambda: held,
        1.0,
        on_conflict=lambda vip, mac: events.append(("conflict", vip, mac)),
        on_clear=lambda vip: events.append(("clear", vip)),
        quiet_intervals=2,
        clock=Clock(),
    )
    assert mon.snapshot() is None
    mon.feed([_reply(PEER, str(VIP)), _reply(OURS, str(VIP2))], now=50.0)
    assert events == [("conflict", VIP, PEER)]
    snap = mon.snapshot()
    assert snap is not None
    assert snap["peer_mac"] == PEER and snap["vips"] == [str(VIP)] and isinstance(snap["since"], float)
    mon.tick(51.0)
    assert events[-1][0] == "conflict"
    mon.tick(52.0)
    assert events[-1] == ("clear", VIP)
    assert mon.snapshot() is None


def test_monitor_ignores_frames_when_not_holding_and_survives_callback_errors():
    """Issue #4 §4: not MASTER (no VIPs held) -> nothing conflicts; a raising callback is logged only."""
    held: list = []

    def boom(vip, mac):
        raise RuntimeError("hook bug")

    mon = ConflictMonitor("eth0", [OURS], lambda: held, 1.0, on_conflict=boom)
    mon.feed([_reply(PEER, str(VIP))], now=0.0)
    assert mon.conflicts == {}
    held.append(VIP)
    mon.feed([_reply(PEER, str(VIP))], now=1.0)
    assert VIP in mon.conflicts


def test_monitor_rejects_bad_interval():
    """Issue #4 §4: conflict_detection.interval must be positive."""
    with pytest.raises(ValueError):
        ConflictMonitor("eth0", OURS, list, 0)


@pytest.mark.parametrize(
    ("vip", "kwargs"),
    [(VIP, {}), (VIP, {"timeout": 0}), ("2001:db8::1", {"timeout": 1.0})],
)
def test_probe_vip_once_argument_errors(vip, kwargs):
    """Issue #4 §4: the pre-takeover probe needs a positive timeout and an IPv4 VIP (checked before I/O)."""
    with pytest.raises(ValueError):
        asyncio.run(probe_vip_once("eth0", vip, **kwargs))


# ------------------------------------------------------------ VRID collisions


def test_vrid_collision_unknown_router_in_unicast_mode():
    """Issue #4 §4, RX-10: an advert for our VRID from a router that is not a unicast peer is flagged."""
    c = flag_vrid_collision(
        vrid=51,
        src="192.168.233.50",
        addresses=[VIP],
        our_addresses=[IPv4Interface("192.168.233.100/24")],
        unicast_peers=["192.168.233.12"],
    )
    assert c is not None and c.reason == "unknown_router" and c.src == "192.168.233.50"


def test_vrid_collision_address_list_and_clean_peer():
    """Issue #4 §4, RX-10: a different address list is flagged; our peer with the same list is not."""
    ours = [IPv4Interface("192.168.233.100/24"), IPv4Interface("192.168.233.101/24")]
    c = flag_vrid_collision(vrid=51, src="192.168.233.12", addresses=[VIP], our_addresses=ours)
    assert c is not None and c.reason == "address_list"
    assert c.their_addresses == (str(VIP),) and c.our_addresses == (str(VIP), str(VIP2))
    assert (
        flag_vrid_collision(
            vrid=51,
            src="192.168.233.12",
            addresses=[VIP2, VIP],  # order does not matter
            our_addresses=ours,
            unicast_peers=["192.168.233.12"],
        )
        is None
    )


def test_vrid_collision_log_dedupes_and_counts():
    """Issue #4 §4: a repeated collision is logged once and counted."""
    log = VridCollisionLog()
    c = flag_vrid_collision(vrid=7, src="10.0.0.9", addresses=["10.0.0.1"], our_addresses=["10.0.0.2"])
    assert c is not None
    assert log.record(c, 1.0) is True
    assert log.record(c, 2.0) is False
    snap = log.snapshot(now=3.0)
    assert snap == [
        {
            "vrid": 7,
            "src": "10.0.0.9",
            "reason": "address_list",
            "their_addresses": ["10.0.0.1"],
            "count": 2,
            "age_s": 1.0,
        }
    ]


def test_conflict_is_reported_again_in_the_next_master_term():
    """Issue #4 §4 (S1): after we yield (VIPs no longer held) and later retake the VIP, the same
    peer MAC claiming it again is a new conflict, so the node yields again within one interval."""
    events: list[tuple] = []
    held: list = [VIP]
    mon = ConflictMonitor(
        "eth0", OURS, lambda: held, 0.5, on_conflict=lambda vip, mac: events.append((vip, mac))
    )
    mon.feed([_reply(PEER, str(VIP))], now=10.0)
    assert events == [(VIP, PEER)]
    held.clear()  # we yielded: BACKUP holds nothing
    mon.feed([_reply(PEER, str(VIP))], now=10.3)
    assert mon.conflicts == {}
    held.append(VIP)  # Master_Down fired while adverts are still blocked: MASTER again
    mon.feed([_reply(PEER, str(VIP))], now=10.7)
    assert events == [(VIP, PEER), (VIP, PEER)]
