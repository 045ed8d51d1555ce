"""IPv6 unsolicited Neighbor Advertisement frames (RFC 5798/9568 §6.4.1, ANCHORS ARP-07).

On becoming master a VRRPv3 router sends, for each IPv6 VIP, an unsolicited
NA (RFC 4861 §7.2.6) to all-nodes ff02::1 with hop limit 255 (RFC 4861 §7.1.2
requires 255 on receive), flags Router=1 Solicited=0 Override=1 (RFC 5798
§6.4.1/§6.4.2, RFC 9568 same), the VIP as target and a Target Link-Layer
Address option carrying the router's MAC.  The IPv6 source defaults to the
VIP itself (keepalived's choice), which is an address of the interface once
it is added (RFC 4861 §7.2.6: "an address assigned to the interface").

Pure builders only; :class:`pyvrrp.adapters.arp.AnnounceSender` sends them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface

from pyvrrp.adapters.arp import ETH_HEADER_LEN, ETH_P_IPV6, mac_to_bytes

IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LL_ADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000
ND_HOP_LIMIT = 255  # RFC 4861 §7.1.2
ALL_NODES = IPv6Address("ff02::1")
IPV6_HEADER_LEN = 40
NA_LEN = 24
TLLA_OPT_LEN = 8
NA_FRAME_LEN = ETH_HEADER_LEN + IPV6_HEADER_LEN + NA_LEN + TLLA_OPT_LEN  # 86 bytes


def multicast_mac(group: IPv6Address) -> bytes:
    """Ethernet address of an IPv6 multicast group: 33:33 + low 32 bits (RFC 2464 §7)."""
    return b"\x33\x33" + group.packed[-4:]


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, icmp: bytes) -> int:
    """RFC 4443 §2.3 checksum with the RFC 8200 §8.1 pseudo-header (next header 58)."""
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(icmp), IPPROTO_ICMPV6)
    data = pseudo + icmp
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def build_unsolicited_na(
    mac: str | bytes,
    target: IPv6Address | IPv6Interface | str,
    *,
    src: IPv6Address | str | None = None,
    router: bool = True,
) -> bytes:
    """Unsolicited NA for ``target`` (ARP-07): R=1 S=0 O=1, TLLA option = ``mac``.

    Args:
        mac: link-layer address to advertise (interface MAC or VMAC), also the Ethernet source.
        target: the VIP.
        src: IPv6 source; defaults to the VIP (keepalived's behaviour).
        router: the Router flag (True for a VRRP router, RFC 5798 §6.4.1).
    Returns:
        the 86-byte Ethernet frame.
    """
    hw = mac_to_bytes(mac)
    tgt = target.ip if isinstance(target, IPv6Interface) else IPv6Address(target)
    source = IPv6Address(src) if src is not None else tgt
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    body = struct.pack("!I", flags) + tgt.packed + struct.pack("!BB", ND_OPT_TARGET_LL_ADDR, 1) + hw
    icmp_wo_sum = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + body
    csum = icmpv6_checksum(source, ALL_NODES, icmp_wo_sum)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, csum) + body
    ip6 = (
        struct.pack("!IHBB", 6 << 28, len(icmp), IPPROTO_ICMPV6, ND_HOP_LIMIT)
        + source.packed
        + ALL_NODES.packed
    )
    eth = multicast_mac(ALL_NODES) + hw + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + icmp


@dataclass(frozen=True, slots=True)
class NeighborAdvert:
    """A decoded Neighbor Advertisement (for tests and conflict detection)."""

    eth_src: bytes
    src: IPv6Address
    dst: IPv6Address
    hop_limit: int
    router: bool
    solicited: bool
    override: bool
    target: IPv6Address
    target_mac: bytes | None
    checksum_ok: bool


def parse_na(frame: bytes) -> NeighborAdvert | None:
    """Decode an Ethernet/IPv6/ICMPv6 NA frame; None for anything else.  Never raises."""
    if len(frame) < ETH_HEADER_LEN + IPV6_HEADER_LEN + NA_LEN:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype != ETH_P_IPV6:
        return None
    ip = ETH_HEADER_LEN
    vtf, plen, nh, hlim = struct.unpack_from("!IHBB", frame, ip)
    if vtf >> 28 != 6 or nh != IPPROTO_ICMPV6:
        return None
    src = IPv6Address(bytes(frame[ip + 8 : ip + 24]))
    dst = IPv6Address(bytes(frame[ip + 24 : ip + 40]))
    icmp = bytes(frame[ip + IPV6_HEADER_LEN : ip + IPV6_HEADER_LEN + plen])
    if len(icmp) < NA_LEN or len(icmp) != plen or icmp[0] != ND_NEIGHBOR_ADVERT:
        return None
    (flags,) = struct.unpack_from("!I", icmp, 4)
    target = IPv6Address(icmp[8:24])
    tlla: bytes | None = None
    opt = NA_LEN
    while opt + 2 <= len(icmp):
        otype, olen = icmp[opt], icmp[opt + 1]
        if olen == 0:
            break
        if otype == ND_OPT_TARGET_LL_ADDR and olen == 1 and opt + 8 <= len(icmp):
            tlla = icmp[opt + 2 : opt + 8]
        opt += olen * 8
    return NeighborAdvert(
        eth_src=bytes(frame[6:12]),
        src=src,
        dst=dst,
        hop_limit=hlim,
        router=bool(flags & NA_FLAG_ROUTER),
        solicited=bool(flags & NA_FLAG_SOLICITED),
        override=bool(flags & NA_FLAG_OVERRIDE),
        target=target,
        target_mac=tlla,
        checksum_ok=icmpv6_checksum(src, dst, icmp) == 0,
    )
