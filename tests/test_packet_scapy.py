"""Cross-check pyvrrp's codec against scapy's VRRP / VRRPv3 layers in both directions."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3

from pyvrrp.proto.packet import Advertisement, decode, encode

V4_SRC = IPv4Address("192.168.233.10")
V4_GROUP = IPv4Address("224.0.0.18")
V6_SRC = IPv6Address("fe80::10")
V6_GROUP = IPv6Address("ff02::12")

V4_ADVERTS = [
    Advertisement(2, 51, 150, (IPv4Address("192.168.233.200"),), 100),
    Advertisement(2, 1, 0, (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")), 25500, 1, b"kbsecret"),
    Advertisement(3, 51, 150, (IPv4Address("192.168.233.200"),), 10),
    Advertisement(3, 255, 255, tuple(IPv4Address(f"10.0.1.{i}") for i in range(1, 21)), 4095),
]
V6_ADVERTS = [
    Advertisement(3, 51, 150, (IPv6Address("fe80::200"),), 100),
    Advertisement(3, 9, 1, (IPv6Address("fe80::1"), IPv6Address("2001:db8::1")), 1),
]


def _scapy_verifies(ip_layer: object) -> bool:
    """Rebuild the packet with scapy computing the checksum, compare with ours."""
    vrrp = ip_layer.payload  # type: ignore[attr-defined]
    ours = vrrp.chksum
    rebuilt_ip = ip_layer.copy()  # type: ignore[attr-defined]
    rebuilt_ip.payload.chksum = None
    if isinstance(rebuilt_ip, IP):
        rebuilt_ip.chksum = None
        rebuilt_ip.len = None
    else:
        rebuilt_ip.plen = None
    rebuilt = rebuilt_ip.__class__(bytes(rebuilt_ip))
    return bool(rebuilt.payload.chksum == ours)


@pytest.mark.parametrize("advert", V4_ADVERTS, ids=lambda a: f"v{a.version}-vrid{a.vrid}")
def test_scapy_parses_our_ipv4(advert: Advertisement) -> None:
    """PKT-05/06/07: scapy reads the fields we encode and computes the same checksum
    (scapy's v3/IPv4 checksum includes the IPv4 pseudo-header, our default)."""
    payload = encode(advert, src=V4_SRC, dst=V4_GROUP)
    pkt = IP(bytes(IP(src=str(V4_SRC), dst=str(V4_GROUP), ttl=255, proto=112) / payload))
    vrrp = pkt.payload
    assert isinstance(vrrp, VRRP if advert.version == 2 else VRRPv3)
    assert vrrp.version == advert.version
    assert vrrp.type == 1
    assert vrrp.vrid == advert.vrid
    assert vrrp.priority == advert.priority
    assert vrrp.ipcount == len(advert.addresses)
    assert [ip_address(a) for a in vrrp.addrlist] == list(advert.addresses)
    if advert.version == 2:
        assert vrrp.adv == advert.interval_cs // 100
        assert vrrp.authtype == advert.auth_type
        auth = (vrrp.auth1.to_bytes(4, "big") + vrrp.auth2.to_bytes(4, "big")).rstrip(b"\0")
        assert auth == advert.auth_data
    else:
        assert vrrp.adv == advert.interval_cs
        assert vrrp.res == 0
    assert _scapy_verifies(pkt)


@pytest.mark.parametrize("advert", V6_ADVERTS, ids=lambda a: f"v6-vrid{a.vrid}")
def test_scapy_parses_our_ipv6(advert: Advertisement) -> None:
    """PKT-06/07/08: scapy reads our VRRPv3/IPv6 fields and agrees on the RFC 8200 pseudo-header checksum."""
    payload = encode(advert, src=V6_SRC, dst=V6_GROUP)
    pkt = IPv6(bytes(IPv6(src=str(V6_SRC), dst=str(V6_GROUP), hlim=255, nh=112) / payload))
    vrrp = pkt.payload
    assert isinstance(vrrp, VRRPv3)
    assert (vrrp.vrid, vrrp.priority, vrrp.adv) == (advert.vrid, advert.priority, advert.interval_cs)
    assert [ip_address(a) for a in vrrp.addrlist] == list(advert.addresses)
    assert _scapy_verifies(pkt)


def test_scapy_detects_our_corruption() -> None:
    """RX-05 sanity: scapy's recomputed checksum differs once one of our bytes is flipped."""
    payload = bytearray(encode(V4_ADVERTS[2], src=V4_SRC, dst=V4_GROUP))
    payload[2] ^= 0x01
    pkt = IP(bytes(IP(src=str(V4_SRC), dst=str(V4_GROUP), proto=112) / bytes(payload)))
    assert not _scapy_verifies(pkt)


SCAPY_BUILT = [
    (
        "v2",
        IP(src="10.0.0.1", dst="224.0.0.18", ttl=255)
        / VRRP(vrid=7, priority=200, adv=3, addrlist=["10.0.0.100"]),
    ),
    (
        "v2-auth",
        IP(src="10.0.0.1", dst="224.0.0.18")
        / VRRP(
            vrid=7, priority=200, authtype=1, auth1=0x61626364, auth2=0, addrlist=["10.0.0.100", "10.0.0.101"]
        ),
    ),
    (
        "v3-v4",
        IP(src="10.0.0.1", dst="224.0.0.18")
        / VRRPv3(vrid=200, priority=100, adv=50, addrlist=["10.0.0.100"]),
    ),
    (
        "v3-v4-unicast",
        IP(src="10.0.0.1", dst="10.0.0.2") / VRRPv3(vrid=3, priority=0, adv=4095, addrlist=["10.0.0.100"]),
    ),
    (
        "v3-v6",
        IPv6(src="fe80::1", dst="ff02::12")
        / VRRPv3(vrid=1, priority=255, adv=100, addrlist=["fe80::100", "2001:db8::100"]),
    ),
]


@pytest.mark.parametrize(("name", "pkt"), SCAPY_BUILT, ids=[s[0] for s in SCAPY_BUILT])
def test_we_decode_scapy_packets(name: str, pkt: object) -> None:
    """PKT-05/06/07, RX-05: packets built by scapy (checksums computed by scapy) decode with the
    fields scapy was given."""
    wire = bytes(pkt)  # type: ignore[call-overload]
    parsed = (IP if name != "v3-v6" else IPv6)(wire)
    vrrp = parsed.payload
    got = decode(bytes(vrrp), src=ip_address(parsed.src), dst=ip_address(parsed.dst))
    assert isinstance(got, Advertisement), got
    assert got.vrid == vrrp.vrid
    assert got.priority == vrrp.priority
    assert [str(a) for a in got.addresses] == [str(ip_address(a)) for a in vrrp.addrlist]
    if vrrp.version == 2:
        assert got.checksum_form == "v2"
        assert got.interval_cs == vrrp.adv * 100
        assert got.auth_type == vrrp.authtype
    else:
        assert got.checksum_form == ("v3-ipv6" if name == "v3-v6" else "v3-pseudo")
        assert got.interval_cs == vrrp.adv
    assert (
        int.from_bytes(encode(got, src=got_src(parsed), dst=ip_address(parsed.dst))[6:8], "big")
        == vrrp.chksum
    )


def got_src(parsed: object) -> IPv4Address | IPv6Address:
    return ip_address(parsed.src)  # type: ignore[attr-defined]


def test_scapy_wrong_checksum_rejected() -> None:
    """RX-05: a scapy packet with a forced wrong checksum is dropped."""
    pkt = IP(
        bytes(IP(src="10.0.0.1", dst="224.0.0.18") / VRRPv3(vrid=1, addrlist=["10.0.0.100"], chksum=0x1234))
    )
    got = decode(bytes(pkt.payload), src=IPv4Address("10.0.0.1"), dst=IPv4Address("224.0.0.18"))
    assert not isinstance(got, Advertisement)
    assert got.reason == "checksum"
