"""IPv6 unsolicited NA builder, cross-checked with scapy's IPv6/ICMPv6ND_NA parsers."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Interface

import pytest

pytest.importorskip("scapy.layers.inet6")
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import Ether

from pyvrrp.adapters.ndisc import (
    NA_FRAME_LEN,
    build_unsolicited_na,
    icmpv6_checksum,
    multicast_mac,
    parse_na,
)

MAC = "52:54:00:ab:cd:ef"
VIP = "2001:db8::10"


def test_unsolicited_na_fields_per_scapy() -> None:
    """ARP-07: NA to ff02::1, hop limit 255, R=1 S=0 O=1, target = VIP, TLLA = MAC."""
    frame = build_unsolicited_na(MAC, IPv6Interface(f"{VIP}/64"))
    assert len(frame) == NA_FRAME_LEN == 86
    pkt = Ether(frame)
    assert pkt.dst == "33:33:00:00:00:01"
    assert pkt.src == MAC
    ip6 = pkt[IPv6]
    assert ip6.dst == "ff02::1"
    assert ip6.hlim == 255
    assert ip6.nh == 58
    assert ip6.src == VIP
    na = pkt[ICMPv6ND_NA]
    assert na.type == 136 and na.code == 0
    assert (na.R, na.S, na.O) == (1, 0, 1)
    assert na.tgt == VIP
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC


def test_na_checksum_matches_scapy() -> None:
    """ARP-07: ICMPv6 checksum equals the one scapy computes for the same packet."""
    frame = build_unsolicited_na(MAC, VIP, src="fe80::1")
    pkt = Ether(frame)
    ours = pkt[ICMPv6ND_NA].cksum
    del pkt[ICMPv6ND_NA].cksum
    rebuilt = Ether(bytes(pkt))
    assert rebuilt[ICMPv6ND_NA].cksum == ours
    assert rebuilt[IPv6].src == "fe80::1"


def test_na_equals_scapy_built_frame() -> None:
    """ARP-07: byte-identical to scapy's NA with the same fields."""
    ref = bytes(
        Ether(dst="33:33:00:00:00:01", src=MAC)
        / IPv6(src=VIP, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(R=1, S=0, O=1, tgt=VIP)
        / ICMPv6NDOptDstLLAddr(lladdr=MAC)
    )
    assert build_unsolicited_na(MAC, VIP) == ref


def test_router_flag_can_be_cleared() -> None:
    """ARP-07: router=False clears only R (override stays set)."""
    na = Ether(build_unsolicited_na(MAC, VIP, router=False))[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1)


def test_parse_na_roundtrip_and_checksum() -> None:
    """parse_na decodes our frame and verifies the checksum; a flipped bit fails it."""
    frame = build_unsolicited_na(MAC, VIP)
    p = parse_na(frame)
    assert p is not None
    assert p.target == IPv6Address(VIP)
    assert p.target_mac == bytes.fromhex("525400abcdef")
    assert p.hop_limit == 255 and p.router and p.override and not p.solicited
    assert p.checksum_ok
    bad = bytearray(frame)
    bad[-1] ^= 0x01
    q = parse_na(bytes(bad))
    assert q is not None and not q.checksum_ok
    assert parse_na(frame[:60]) is None
    assert parse_na(b"") is None


def test_multicast_mac_and_checksum_helpers() -> None:
    """RFC 2464 §7 multicast MAC mapping; RFC 4443 checksum of an all-zero body is well defined."""
    assert multicast_mac(IPv6Address("ff02::1:ff00:10")) == bytes.fromhex("3333ff000010")
    c = icmpv6_checksum(IPv6Address("::1"), IPv6Address("::1"), b"\x00" * 8)
    assert 0 <= c <= 0xFFFF and c != 0
