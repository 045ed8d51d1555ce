"""Raw VRRP datagrams on a protocol-112 socket: what arrives, and how to address a send.

Pure functions over ``recvmsg`` results and ``sendmsg`` arguments, shared by
:class:`pyvrrp.adapters.vrrp_socket.VrrpSocket` and the fast-start engine
(:mod:`pyvrrp.runtime.fast_start`), which runs before asyncio and structlog are
imported: stdlib C modules and :mod:`pyvrrp.proto` only.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enums cost ~1 ms (fast-start path)
import struct
from ipaddress import IPv4Address, IPv6Address

from pyvrrp.proto.constants import MCAST_GROUP_V6
from pyvrrp.proto.packet import parse_ipv4_datagram

IPAddress = IPv4Address | IPv6Address
Datagram = tuple[bytes, IPAddress, IPAddress, "int | None"]  # payload, src, dst, TTL / hop limit

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_TTL = socket.IP_TTL
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IP_TOS = getattr(socket, "IP_TOS", 1)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
# DSCP CS6 "network control" (RFC 4594): IPv4 TOS / IPv6 Traffic Class 0xc0, as
# keepalived and FRR send adverts, so QoS on a congested link queues them first.
TOS_NETWORK_CONTROL = 0xC0


def split_datagram(
    family: int,
    data: bytes,
    ancdata: list[tuple[int, int, bytes]],
    addr: tuple[object, ...],
    *,
    group: IPAddress = MCAST_GROUP_V6,
) -> Datagram | None:
    """One received datagram -> ``(payload, src, dst, ttl)``; None when malformed.

    IPv4 raw sockets deliver the IP header: payload, addresses and TTL come from it,
    the TTL preferably from the kernel's IP_TTL control message (RX-01).  IPv6 ones
    deliver the payload only: the source is the peer address, the destination and
    hop limit come from IPV6_PKTINFO / IPV6_HOPLIMIT (``group`` if absent).
    """
    if family == 4:
        parsed = parse_ipv4_datagram(data)
        if parsed is None:
            return None
        payload, src4, dst4, ttl = parsed
        for level, ctype, cdata in ancdata:
            if level == socket.IPPROTO_IP and ctype == IP_TTL and len(cdata) >= 4:
                (ttl,) = struct.unpack("=i", cdata[:4])
        return payload, src4, dst4, ttl
    hop: int | None = None
    dst6 = group
    for level, ctype, cdata in ancdata:
        if level != socket.IPPROTO_IPV6:
            continue
        if ctype == IPV6_HOPLIMIT and len(cdata) >= 4:
            (hop,) = struct.unpack("=i", cdata[:4])
        elif ctype == IPV6_PKTINFO and len(cdata) >= 20:
            dst6 = IPv6Address(cdata[:16])
    try:
        src6 = IPv6Address(str(addr[0]).split("%", 1)[0])
    except (ValueError, IndexError):
        return None
    return bytes(data), src6, dst6, hop


def set_send_options(sock: socket.socket, family: int, ttl: int = 255) -> None:
    """TTL / hop limit ``ttl`` for multicast and unicast adverts, no multicast loopback,
    IPv4 TOS / IPv6 Traffic Class 0xc0 (network control).

    RFC 5798 §5.1.1.3 / §5.1.2.3 (PKT-02): 255 for both.  The TOS is not in the RFCs;
    keepalived and FRR set 0xc0 (DSCP CS6), and so does pyvrrp (issue 14).  The daemon's
    VrrpSocket and the fast-start engine (which sends on the early listener's sockets)
    both set these.
    """
    if family == 4:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, IP_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IP, IP_TOS, TOS_NETWORK_CONTROL)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, TOS_NETWORK_CONTROL)


def pktinfo(ifindex: int, src: IPAddress) -> list[tuple[int, int, bytes]]:
    """IP_PKTINFO / IPV6_PKTINFO control message fixing a send's interface and source address."""
    if isinstance(src, IPv4Address):
        # struct in_pktinfo {int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr}
        return [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", ifindex, src.packed, b"\0" * 4))]
    # struct in6_pktinfo {in6_addr ipi6_addr; int ipi6_ifindex}
    return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("=16si", src.packed, ifindex))]


def sockaddr(dst: IPAddress, ifindex: int) -> tuple[str, int] | tuple[str, int, int, int]:
    """``sendmsg`` address of ``dst``; link-local and multicast IPv6 carry the interface as scope."""
    if isinstance(dst, IPv4Address):
        return (str(dst), 0)
    return (str(dst), 0, 0, ifindex if (dst.is_link_local or dst.is_multicast) else 0)
