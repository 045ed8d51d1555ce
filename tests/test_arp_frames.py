"""GARP / ARP probe builders and the ARP parser, cross-checked with scapy."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

scapy_l2 = pytest.importorskip("scapy.layers.l2")
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402

from pyvrrp.adapters.arp import (  # noqa: E402
    GARP_FRAME_LEN,
    build_arp_probe,
    build_garp,
    mac_to_bytes,
    mac_to_str,
    parse_arp,
)

MAC = "52:54:00:ab:cd:ef"


def test_garp_matches_keepalived_format_per_scapy() -> None:
    """ARP-02: broadcast ARP request, hwsrc = MAC, psrc = pdst = VIP, hwdst ff:..:ff, 42 bytes."""
    frame = build_garp(MAC, IPv4Address("192.0.2.10"))
    assert len(frame) == GARP_FRAME_LEN == 42
    pkt = Ether(frame)
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt.src == MAC
    assert pkt.type == 0x0806
    arp = pkt[ARP]
    assert arp.op == 1
    assert arp.hwtype == 1 and arp.ptype == 0x0800 and arp.hwlen == 6 and arp.plen == 4
    assert arp.hwsrc == MAC
    assert arp.psrc == "192.0.2.10"
    assert arp.pdst == "192.0.2.10"
    assert arp.hwdst == "ff:ff:ff:ff:ff:ff"


def test_garp_accepts_interface_and_string_vip() -> None:
    """ARP-02: the VIP may be given as an IPv4Interface (as in AnnounceVips) or a string."""
    a = build_garp(MAC, IPv4Interface("198.51.100.7/24"))
    b = build_garp(mac_to_bytes(MAC), "198.51.100.7")
    assert a == b
    assert Ether(a)[ARP].pdst == "198.51.100.7"


def test_garp_equals_scapy_built_frame() -> None:
    """ARP-02: byte-identical to the frame scapy builds with the same fields."""
    ref = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC)
        / ARP(op=1, hwsrc=MAC, psrc="10.1.2.3", hwdst="ff:ff:ff:ff:ff:ff", pdst="10.1.2.3")
    )
    assert build_garp(MAC, "10.1.2.3") == ref


def test_arp_probe_per_rfc5227() -> None:
    """ARP probe (RFC 5227 §2.1.1): sender IP 0.0.0.0, target MAC zero, broadcast."""
    frame = build_arp_probe(MAC, "192.0.2.10")
    pkt = Ether(frame)
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt[ARP].op == 1
    assert pkt[ARP].psrc == "0.0.0.0"
    assert pkt[ARP].hwdst == "00:00:00:00:00:00"
    assert pkt[ARP].pdst == "192.0.2.10"
    parsed = parse_arp(frame)
    assert parsed is not None and parsed.is_probe and not parsed.is_gratuitous


def test_parse_arp_reads_scapy_reply_with_padding() -> None:
    """Parser handles an is-at reply padded to 60 bytes, as seen on the wire."""
    raw = bytes(
        Ether(dst=MAC, src="02:00:00:00:00:02")
        / ARP(op=2, hwsrc="02:00:00:00:00:02", psrc="192.0.2.10", hwdst=MAC, pdst="192.0.2.1")
    ).ljust(60, b"\x00")
    p = parse_arp(raw)
    assert p is not None
    assert p.op == 2
    assert mac_to_str(p.sender_mac) == "02:00:00:00:00:02"
    assert p.sender_ip == IPv4Address("192.0.2.10")
    assert p.target_ip == IPv4Address("192.0.2.1")
    assert mac_to_str(p.eth_dst) == MAC
    assert not p.is_gratuitous


def test_parse_arp_vlan_tagged() -> None:
    """Parser accepts one 802.1Q tag and reports the VLAN id."""
    raw = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC)
        / Dot1Q(vlan=42)
        / ARP(op=1, hwsrc=MAC, psrc="192.0.2.10", pdst="192.0.2.10")
    )
    p = parse_arp(raw)
    assert p is not None and p.vlan == 42 and p.is_gratuitous


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 13,
        build_garp(MAC, "192.0.2.10")[:41],  # truncated
        bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC, type=0x0800) / (b"\x45" + b"\x00" * 40)),
        build_garp(MAC, "192.0.2.10")[:14] + b"\x00\x06" + build_garp(MAC, "192.0.2.10")[16:],  # htype 6
    ],
)
def test_parse_arp_rejects_non_arp(frame: bytes) -> None:
    """Parser returns None (never raises) for short, non-ARP or non-Ethernet/IPv4 frames."""
    assert parse_arp(frame) is None


def test_parse_arp_never_raises_on_random_bytes() -> None:
    """Parser is total over arbitrary input."""
    import random

    rng = random.Random(1234)
    for _ in range(2000):
        n = rng.randrange(0, 80)
        data = bytes(rng.randrange(256) for _ in range(n))
        if n >= 14 and rng.random() < 0.5:
            data = data[:12] + b"\x08\x06" + data[14:]
        parse_arp(data)


def test_mac_helpers_validate() -> None:
    """MAC parsing rejects malformed input with a message naming it."""
    assert mac_to_bytes("52-54-00-AB-CD-EF") == bytes.fromhex("525400abcdef")
    with pytest.raises(ValueError, match="zz"):
        mac_to_bytes("zz:54:00:ab:cd:ef")
    with pytest.raises(ValueError):
        mac_to_bytes(b"\x00" * 5)
