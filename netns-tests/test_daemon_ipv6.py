"""VRRPv3 over IPv6 between two real ``pyvrrp run`` daemons (issue #3 §4).

The lab runs with ``ipv6=True``: link-local addresses from the fixed MACs
(fe80::ff:fe00:10 / fe80::ff:fe00:11), fd00:233::/64, DAD off.  The VIP is
fd00:233::200/128.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

import pytest
from _daemon_helpers import (
    adverts,
    capture,
    inst,
    ipv6_frame,
    send_frames,
    start,
    start_pair,
    v3,
    vrrp_payload,
    wait_view,
)

from pyvrrp.lab.topology import VIP4, VIP6, InstanceSpec, Lab

pytestmark = pytest.mark.netns


def v6(priority: int, **kw: Any) -> InstanceSpec:
    """A VRRPv3 IPv6 instance holding fd00:233::200/128 (0.1 s interval)."""
    return v3(priority, vips=(f"{VIP6}/128",), **kw)


def test_ipv6_election_failover_and_unsolicited_na(lab_factory: Callable[..., Lab]) -> None:
    """PKT-01, PKT-02, PKT-09, PKT-08, SM-05, ARP-07, TMR-05: VRRPv3/IPv6 adverts go to
    ff02::12 from the sender's link-local address and list the IPv6 VIP; lb1 (150) holds
    fd00:233::200, lb2 does not; after kill -9 of lb1, lb2 advertises Master_Down_Interval
    after lb1's last advert, holds the VIP and sends unsolicited NAs for it (R=1 S=0 O=1)
    from its MAC right after its first advert."""
    lab = lab_factory(ipv6=True)
    n1, n2 = start_pair(lab, v6(150), v6(100))
    assert n1.holds_vip(VIP6) and not n2.holds_vip(VIP6)
    view = wait_view(n2, lambda v: v["master_ip"] is not None, 1, what="lb2 hears lb1")
    assert view["family"] == "ipv6" and ip_address(view["master_ip"]).is_link_local
    cap = capture(lab)
    try:
        time.sleep(0.3)
        n1.kill9()
        n2.wait_state("MASTER", 2)
        time.sleep(0.2)
    finally:
        cap.stop()
    events = cap.events()
    old, new = adverts(events, lab, "lb1"), adverts(events, lab, "lb2")
    assert old and new
    for ad, prio in [(a, 150) for a in old] + [(a, 100) for a in new]:
        assert ad.version == 3 and ad.priority == prio and ad.interval_cs == 10
        assert ad.dst_ip == "ff02::12" and ip_address(ad.src_ip).is_link_local
        assert VIP6 in ad.addresses
        assert not [a for a in ad.addresses if ip_address(a).version != 6]
    assert old[0].src_ip != new[0].src_ip
    assert view["master_ip"] == old[0].src_ip
    gap = new[0].t - old[-1].t
    mdi = 0.3 + 156 * 0.1 / 256
    assert mdi - 0.020 <= gap <= mdi + 0.050, f"failover gap {gap:.4f}s, MDI {mdi:.4f}s"
    nas = [e for e in events if e.kind == "na" and e.target == VIP6 and e.t >= new[0].t]
    assert nas, [e.describe() for e in events if e.kind != "advert"]
    assert all(e.src_mac == lab.mac("lb2") for e in nas)
    assert nas[0].t - new[0].t <= 0.05
    assert all(e.flags == "RO" for e in nas), [e.flags for e in nas]
    assert not [e for e in events if e.kind == "advert" and e.dst_ip == "224.0.0.18"]
    assert n2.holds_vip(VIP6)


def test_ipv6_sigterm_releases_vip_and_peer_takes_over(lab_factory: Callable[..., Lab]) -> None:
    """SM-09, SM-06, TMR-07 over IPv6: SIGTERM on the MASTER sends priority 0 to ff02::12,
    removes the IPv6 VIP and exits 0; the peer holds the VIP within Skew_Time + margin."""
    lab = lab_factory(ipv6=True)
    n1, n2 = start_pair(lab, v6(150), v6(100))
    cap = capture(lab)
    try:
        time.sleep(0.2)
        assert n1.stop(timeout_s=5) == 0
        n2.wait_state("MASTER", 2)
        time.sleep(0.1)
    finally:
        cap.stop()
    events = cap.events()
    zero = [e for e in adverts(events, lab, "lb1") if e.priority == 0]
    new = adverts(events, lab, "lb2")
    assert len(zero) == 1 and zero[0].dst_ip == "ff02::12"
    assert 0.061 - 0.02 <= new[0].t - zero[0].t <= 0.061 + 0.05
    assert not lab.holds_vip("lb1", VIP6) and n2.holds_vip(VIP6)


def test_ipv6_hostile_adverts_dropped_and_counted(lab_factory: Callable[..., Lab]) -> None:
    """RX-01, RX-05, RX-06, RX-11, PKT-08, PKT-03 over IPv6: priority-200 adverts from the
    client's link-local with hop limit 64, a bad checksum, an unconfigured VRID, count 0,
    IPv4 addresses in an IPv6 packet and VRRPv2 over IPv6 are all dropped, counted by
    reason, and the MASTER stays MASTER (no transition on either node)."""
    lab = lab_factory(ipv6=True)
    n1, n2 = start_pair(lab, v6(150), v6(100))
    src, mac = "fe80::ff:fe00:20", lab.mac("client")
    good = vrrp_payload(priority=200, addresses=(VIP6,), src=src, dst="ff02::12")
    bad_ck = bytearray(good)
    bad_ck[7] ^= 0x5A
    zero = bytearray(good[:8])
    zero[3] = 0
    zero[6:8] = _v6_checksum(bytes(zero), src)
    fam = bytearray(good[:8]) + bytes([192, 168, 233, 200]) * 4
    fam[3] = 4  # 4 IPv4 addresses = 16 bytes, the size of one IPv6 address
    fam[6:8] = _v6_checksum(bytes(fam), src)
    v2pkt = bytearray(good[:8]) + bytes(16 + 8)
    v2pkt[0] = 0x21
    frames = [
        ("hop_limit", ipv6_frame(good, src=src, src_mac=mac, hop_limit=64)),
        ("checksum", ipv6_frame(bytes(bad_ck), src=src, src_mac=mac)),
        (
            "other_vrid",
            ipv6_frame(
                vrrp_payload(vrid=99, addresses=(VIP6,), src=src, dst="ff02::12"), src=src, src_mac=mac
            ),
        ),
        ("count_zero", ipv6_frame(bytes(zero), src=src, src_mac=mac)),
        ("family", ipv6_frame(bytes(fam), src=src, src_mac=mac)),
        ("v2_over_v6", ipv6_frame(bytes(v2pkt), src=src, src_mac=mac)),
    ]
    before = inst(n1), inst(n2)
    sent = send_frames(lab, "client", frames, pps=2000.0, duration_s=1.0, max_count=1200)
    out, err = sent.communicate(timeout=20)
    assert sent.returncode == 0, err
    counts = json.loads(out)["sent"]
    assert sum(counts.values()) == 1200
    time.sleep(0.3)
    for node, old, state in ((n1, before[0], "MASTER"), (n2, before[1], "BACKUP")):
        view = inst(node)
        assert view["state"] == state and view["last_transition"] == old["last_transition"], node.host
        assert view["drops"] == {"ttl": counts["hop_limit"]}, (node.host, view["drops"])
        sock = view["drops_socket"]
        assert sock.get("checksum") == counts["checksum"], (node.host, sock)
        assert sock.get("vrid") == counts["other_vrid"], (node.host, sock)
        assert sock.get("address_count") == counts["count_zero"], (node.host, sock)
        assert sock.get("address_family") == counts["family"], (node.host, sock)
        assert sock.get("version") == counts["v2_over_v6"], (node.host, sock)
    assert n1.holds_vip(VIP6) and not n2.holds_vip(VIP6)


def _v6_checksum(payload: bytes, src: str, dst: str = "ff02::12") -> bytes:
    """VRRPv3/IPv6 checksum over the RFC 8200 §8.1 pseudo-header (RFC 5798 §5.2.8)."""
    body = payload[:6] + b"\0\0" + payload[8:]
    pseudo = ip_address(src).packed + ip_address(dst).packed + struct.pack("!I3xB", len(body), 112)
    data = pseudo + body + (b"\0" if len(body) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return struct.pack("!H", ~total & 0xFFFF)


def test_dual_stack_same_vrid_are_independent(lab_factory: Callable[..., Lab]) -> None:
    """ANCHORS §6.2 item 10, PKT-01, SM-05: an IPv4 and an IPv6 instance with the same VRID
    on one interface are independent routers: both elect lb1, each advertises in its own
    family, and after kill -9 both move to lb2 (IPv4 VIP by GARP, IPv6 VIP by NA)."""
    lab = lab_factory(ipv6=True)
    four = {"name": "VI_V4"}
    six = {"name": "VI_V6"}
    s1 = (v3(150, **four), v6(150, **six))
    s2 = (v3(100, **four), v6(100, **six))
    n1 = start(lab, "lb1", *s1)
    n1.wait_state("MASTER", 3, "VI_V4")
    n1.wait_state("MASTER", 3, "VI_V6")
    n2 = start(lab, "lb2", *s2)
    n2.wait_state("BACKUP", 3, "VI_V4")
    n2.wait_state("BACKUP", 3, "VI_V6")
    cap = capture(lab)
    try:
        time.sleep(0.3)
        n1.kill9()
        n2.wait_state("MASTER", 2, "VI_V4")
        n2.wait_state("MASTER", 2, "VI_V6")
        time.sleep(0.1)
    finally:
        cap.stop()
    events = cap.events()
    old = adverts(events, lab, "lb1")
    assert {e.dst_ip for e in old} == {"224.0.0.18", "ff02::12"}
    assert {e.addresses for e in old} == {(VIP4,), (VIP6,)}
    for name in ("VI_V4", "VI_V6"):
        view = inst(n2, name)
        assert view["drops"] == {} and view["counters"]["adverts_rx"] >= 2, (name, view)
    assert n2.holds_vip(VIP4) and n2.holds_vip(VIP6)
    assert [e for e in events if e.kind == "garp" and e.src_mac == lab.mac("lb2")]
    assert [e for e in events if e.kind == "na" and e.src_mac == lab.mac("lb2") and e.target == VIP6]


def test_ipv6_vip_deleted_by_hand_goes_through_election(lab_factory: Callable[..., Lab]) -> None:
    """SM-16, SM-08 over IPv6: ``ip -6 addr del`` of the VIP on the MASTER is detected; the
    instance leaves MASTER and, still the highest priority, holds the VIP again."""
    lab = lab_factory(ipv6=True)
    n1, n2 = start_pair(lab, v6(150), v6(100))
    lab.ip_cmd("lb1", "addr", "del", f"{VIP6}/128", "dev", "eth0")
    wait_view(
        n1,
        lambda v: v["counters"]["transitions"] >= 4 and v["state"] == "MASTER" and v["vips_held"],
        5,
        what="lb1 MASTER again after the IPv6 VIP was deleted",
    )
    assert n1.holds_vip(VIP6) and not n2.holds_vip(VIP6)
    assert inst(n2)["state"] == "BACKUP"
