"""Raw IPPROTO_VRRP (112) sockets, one per (interface, address family).

Theory of operation
-------------------
* Transmit (RFC 5798 §5.1, ANCHORS PKT-01/PKT-02/PKT-09): the kernel builds
  the IP header.  TTL / hop limit is 255 for multicast *and* unicast; the
  source is the interface's primary address (first IPv4 / IPv6 link-local),
  fixed per datagram with an IP_PKTINFO / IPV6_PKTINFO control message (not
  ``bind()``, which would filter multicast on IPv4) so the checksum the codec computes over the IPv6
  pseudo-header (and the v3/IPv4 pseudo-header form) matches what goes on
  the wire.  Multicast goes out of this interface only (IP_MULTICAST_IF /
  IPV6_MULTICAST_IF) and is not looped back to us.
* Receive (RFC 5798 §7.1): the socket is bound to the device
  (SO_BINDTODEVICE) and joins 224.0.0.18 / ff02::12 on that ifindex only;
  IP_MULTICAST_ALL is turned off so groups joined elsewhere leak nothing in.
  An IPv4 raw socket delivers the IP header: ihl, TTL, src and dst are parsed
  from it (the IP_TTL control message is a fallback).  An IPv6 raw socket
  delivers the payload only: hop limit (RX-01) and dst come from
  IPV6_HOPLIMIT / IPV6_PKTINFO control messages, src from the peer address.
* Floods: each readiness event drains at most ``max_batch`` datagrams so the
  loop's timers keep running while someone sprays VRRP at us.
* Unicast mode (RX-13, keepalived ``unicast_peer``): no group join;
  ``send()`` without a destination sends one copy to each peer.
* keepalived's ``auth_type AH`` (``protocol=51``, IPv4 only): the socket is an
  IPPROTO_AH raw socket with IP_HDRINCL, because the AH ICV covers the IP
  header (its identification included), so the datagram is built whole by
  :func:`pyvrrp.proto.ah.build_datagram` and sent with :meth:`VrrpSocket.send_datagram`;
  the kernel only fills in the header checksum.  Received datagrams are handed
  over whole (:meth:`VrrpSocket.recv_raw`): :func:`pyvrrp.proto.ah.verify_datagram`
  needs the IP header.  Linux delivers AH to raw sockets whether or not an
  IPsec policy exists (raw delivery comes before the AH protocol handler).

The callback gets ``(payload, src, dst, ttl)`` with ``payload`` the VRRP
message (no IP header) ready for ``pyvrrp.proto.packet.decode``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

import structlog

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.base.ratelog import RateLimitedLogger
from pyvrrp.proto.ah import IPPROTO_AH
from pyvrrp.proto.constants import IPPROTO_VRRP, MCAST_GROUP_V4, MCAST_GROUP_V6, VRRP_TTL
from pyvrrp.proto.packet import parse_ipv4_datagram

IPAddress = IPv4Address | IPv6Address
Datagram = tuple[bytes, IPAddress, IPAddress, "int | None"]  # payload, src, dst, TTL / hop limit
RawDatagram = tuple[bytes, list[tuple[int, int, bytes]], tuple[object, ...]]  # recvmsg: data, ancdata, addr
ReceiveCallback = Callable[[bytes, IPAddress, IPAddress, "int | None"], None]

# Linux socket options missing from Python's socket module on some builds.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_TTL = socket.IP_TTL
IP_HDRINCL = getattr(socket, "IP_HDRINCL", 3)
IP_MULTICAST_ALL = 49
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_MULTICAST_ALL = 29
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IP_TOS = getattr(socket, "IP_TOS", 1)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
# DSCP CS6 "network control" (RFC 4594): IPv4 TOS / IPv6 Traffic Class 0xc0, as
# keepalived and FRR send adverts, so QoS on a congested link queues them first.
TOS_NETWORK_CONTROL = 0xC0

RECV_BUFSIZE = 65535
ANC_BUFSIZE = 512
DEFAULT_MAX_BATCH = 64
RCVBUF_BYTES = 4 << 20
"""Receive buffer: ~4,000 queued adverts, so a backup that stalls (a CPU hog, a stop) for a
moment reads them late instead of losing them (the default ~200 KiB holds ~270)."""

_log = structlog.get_logger("pyvrrp.adapters.vrrp_socket")


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
    keepalived and FRR set 0xc0 (DSCP CS6), and so does pyvrrp (issue 14).
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


@dataclass
class SocketStats:
    """Counters for ``pyvrrp state``."""

    rx_packets: int = 0
    rx_errors: int = 0
    rx_malformed: int = 0  # truncated IP header / not protocol 112
    rx_batches_full: int = 0  # readiness events that hit max_batch (flood indicator)
    rx_dropped_kernel: int = 0  # datagrams the kernel dropped, receive buffer full (SO_RXQ_OVFL)
    tx_packets: int = 0
    tx_errors: int = 0


class VrrpSocket:
    """A raw VRRP socket for one interface and one family (4 or 6).

    Usage::

        sock = await VrrpSocket("eth0", 4, src=primary).open()
        sock.add_reader(on_packet)          # on_packet(payload, src, dst, ttl)
        sock.send(payload)                  # group, or every unicast peer
        sock.close()

    The constructor only validates; :meth:`open` creates the socket.
    """

    def __init__(
        self,
        ifname: str,
        family: int,
        *,
        src: IPAddress | str | None = None,
        unicast_peers: Iterable[IPAddress | str] = (),
        group: IPAddress | str | None = None,
        ttl: int = VRRP_TTL,
        max_batch: int = DEFAULT_MAX_BATCH,
        protocol: int = IPPROTO_VRRP,
    ) -> None:
        """Validate the settings (no I/O).

        Args:
            ifname: the VRRP interface.
            family: 4 or 6.
            src: source address of every advert (the primary address; IPv6: link-local),
                set per datagram with IP_PKTINFO / IPV6_PKTINFO.  None lets the kernel
                choose (then a checksum computed over a pseudo-header may not match).
            unicast_peers: non-empty = unicast mode (no group join).
            group: multicast group (default 224.0.0.18 / ff02::12, RFC 5798 §5.1.1.2/§5.1.2.2).
            ttl: TTL / hop limit of every packet sent (PKT-02: 255; keepalived ``unicast_ttl``).
            max_batch: datagrams drained per readiness event.
            protocol: 112 (VRRP), or 51 for keepalived's ``auth_type AH`` (IPv4 only;
                module docstring).

        Raises:
            ValueError: bad family, protocol, or an address of the other family.
        """
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, got {family!r}")
        if protocol not in (IPPROTO_VRRP, IPPROTO_AH) or (protocol == IPPROTO_AH and family != 4):
            raise ValueError(f"protocol {protocol!r}: 112, or 51 (AH) over IPv4")
        src_ip = ip_address(src) if isinstance(src, str) else src
        peers = tuple(ip_address(p) if isinstance(p, str) else p for p in unicast_peers)
        grp = ip_address(group) if isinstance(group, str) else group
        if grp is None:
            grp = MCAST_GROUP_V4 if family == 4 else MCAST_GROUP_V6
        for addr in (src_ip, *peers, grp):
            if addr is not None and addr.version != family:
                raise ValueError(f"address {addr} is not IPv{family}")
        self.ifname = ifname
        self.family = family
        self.ifindex = 0
        self.src = src_ip
        self.unicast_peers = peers
        self.group: IPAddress = grp
        self.ttl = ttl
        self.max_batch = max_batch
        self.protocol = protocol
        self.stats = SocketStats()
        self.opened_ns = 0
        # Kernel arrival time (time.time_ns() clock) of the datagram being delivered to the
        # reader callback, 0 if unknown: the receiver dates the advert from its arrival,
        # not from when Python got to it (SO_TIMESTAMPNS).
        self.rx_stamp_ns = 0
        self._sock: socket.socket | None = None
        self._pktinfo: list[tuple[int, int, bytes]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: ReceiveCallback | None = None
        self._batch: Callable[[], None] | None = None
        self._err_log = RateLimitedLogger(_log, burst=5, window_s=60.0, level="warning")
        self._log = _log.bind(iface=ifname, family=family)

    # ------------------------------------------------------------ open

    async def open(self) -> VrrpSocket:
        """Create, configure and (for multicast) join; returns ``self``.

        Raises:
            InterfaceNotFound: no such interface.
            PermissionError: no CAP_NET_RAW.
            OSError: other socket errors (message names the interface).
        """
        if self._sock is not None:
            return self
        try:
            self.ifindex = socket.if_nametoindex(self.ifname)
        except OSError:
            raise InterfaceNotFound(self.ifname, "cannot open VRRP socket") from None
        self._pktinfo = self._src_cmsg(self.src)
        try:
            self._sock = self._make_socket(self.ttl)
        except OSError as exc:
            if isinstance(exc, PermissionError):
                raise PermissionError(
                    exc.errno, f"raw VRRP socket on {self.ifname!r} needs CAP_NET_RAW: {exc.strerror}"
                ) from exc
            raise OSError(
                exc.errno, f"VRRP socket on {self.ifname!r} (IPv{self.family}): {exc.strerror}"
            ) from exc
        self.opened_ns = time.time_ns()  # every packet stamped later reaches this socket
        self._log.info(
            "vrrp_socket_open",
            ifindex=self.ifindex,
            src=str(self.src) if self.src else None,
            group=None if self.unicast_peers else str(self.group),
            unicast_peers=[str(p) for p in self.unicast_peers],
            protocol=self.protocol,
        )
        return self

    def _make_socket(self, ttl: int) -> socket.socket:
        if self.family == 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, self.protocol)
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            try:  # CAP_NET_ADMIN may exceed net.core.rmem_max; else as much as it allows
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            if self.family == 4:
                self._setup_v4(sock, ttl)
            else:
                self._setup_v6(sock, ttl)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _setup_v4(self, sock: socket.socket, ttl: int) -> None:
        src = self.src.packed if isinstance(self.src, IPv4Address) else b"\x00" * 4
        set_send_options(sock, 4, ttl)
        # struct ip_mreqn {in_addr multiaddr; in_addr address; int ifindex}
        sock.setsockopt(
            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("=4s4si", b"\0" * 4, src, self.ifindex)
        )
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        if self.protocol == IPPROTO_AH:
            sock.setsockopt(socket.IPPROTO_IP, IP_HDRINCL, 1)  # we write the IP header (the ICV covers it)
        if not self.unicast_peers:
            mreqn = struct.pack("=4s4si", self.group.packed, b"\0" * 4, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)

    def _setup_v6(self, sock: socket.socket, ttl: int) -> None:
        set_send_options(sock, 6, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        if not self.unicast_peers:
            mreq = struct.pack("=16sI", self.group.packed, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)

    def _src_cmsg(self, src: IPAddress | None) -> list[tuple[int, int, bytes]]:
        """IP_PKTINFO / IPV6_PKTINFO control message fixing source address and interface.

        The socket is deliberately *not* bound to the source address: a raw
        IPv4 socket bound to a unicast address only receives datagrams sent
        to that address, which would filter out the 224.0.0.18 adverts.
        """
        return [] if src is None else pktinfo(self.ifindex, src)

    # ------------------------------------------------------------ receive

    def fileno(self) -> int:
        if self._sock is None:
            raise RuntimeError("VrrpSocket is closed")
        return self._sock.fileno()

    def add_reader(self, callback: ReceiveCallback, *, batch: Callable[[], None] | None = None) -> None:
        """Deliver every received advert to ``callback(payload, src, dst, ttl)`` from the running loop.

        The callback runs synchronously inside the readiness handler; an
        exception it raises is logged and counted, never propagated to the loop.
        ``batch``: readiness calls ``batch()`` instead, which reads the socket itself
        (:meth:`recv_raw`; the supervisor's receive path); :meth:`poll` still uses ``callback``.
        """
        if self._sock is None:
            raise RuntimeError("VrrpSocket is closed")
        self._loop = asyncio.get_running_loop()
        self._callback = callback
        self._batch = batch
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def remove_reader(self) -> None:
        if self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._callback = None
        self._batch = None

    def _on_readable(self) -> None:
        if self._batch is not None:
            try:
                self._batch()
            except Exception:
                self.stats.rx_errors += 1
                self._log.exception("vrrp_rx_callback_failed")
            return
        for _ in range(self.max_batch):
            item = self.recv_one()
            if item is None:
                return
            if item is False or self._callback is None:
                continue
            try:
                self._callback(*item)
            except Exception:  # a bug in the consumer must not stop reception; make it loud
                self.stats.rx_errors += 1
                self._log.exception("vrrp_rx_callback_failed")
        self.stats.rx_batches_full += 1  # more may be pending; the loop calls us again

    def recv_one(
        self,
    ) -> tuple[bytes, IPAddress, IPAddress, int | None] | Literal[False] | None:
        """Read one datagram without blocking.

        Returns:
            ``(payload, src, dst, ttl)``; ``None`` when nothing is pending;
            ``False`` when a datagram was consumed but unusable (error or malformed).
        """
        raw = self.recv_raw()
        if raw is None or raw is False:
            return raw
        return self.parse(*raw)

    def recv_raw(self) -> RawDatagram | Literal[False] | None:
        """Read one datagram as ``recvmsg`` returns it, ``(data, ancdata, addr)``, without blocking.

        Sets :attr:`rx_stamp_ns` (SO_TIMESTAMPNS) and the kernel drop count (SO_RXQ_OVFL).
        ``None`` when nothing is pending, ``False`` on an error (counted).
        """
        if self._sock is None:
            return None
        try:
            data, ancdata, _flags, addr = self._sock.recvmsg(RECV_BUFSIZE, ANC_BUFSIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.stats.rx_errors += 1
            self._err_log.log(("recv", exc.errno), "vrrp_recv_error", iface=self.ifname, error=str(exc))
            if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                return None
            return False
        self.rx_stamp_ns = 0
        for level, ctype, cdata in ancdata:
            if level == socket.SOL_SOCKET:
                if ctype == SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("=qq", cdata[:16])
                    self.rx_stamp_ns = sec * 1_000_000_000 + nsec
                elif ctype == SO_RXQ_OVFL and len(cdata) >= 4:
                    (self.stats.rx_dropped_kernel,) = struct.unpack("=I", cdata[:4])
        return data, ancdata, addr

    def parse(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[object, ...]
    ) -> tuple[bytes, IPAddress, IPAddress, int | None] | Literal[False]:
        """One datagram of this socket's family as ``recvmsg`` returned it -> ``(payload, src, dst, ttl)``.

        ``False`` when malformed (counted).
        """
        item = split_datagram(self.family, data, ancdata, addr, group=self.group)
        if item is None:
            self.stats.rx_malformed += 1
            if self.family == 4:
                self._err_log.log("malformed_v4", "vrrp_rx_malformed", iface=self.ifname, length=len(data))
            return False
        self.stats.rx_packets += 1
        return item

    def poll(self) -> bool:
        """Deliver one pending datagram to the reader callback now; False when none was pending.

        For a caller that must not miss a packet while it busy-waits (the daemon's
        Master_Down spin).
        """
        if self._sock is None:
            return False
        item = self.recv_one()
        if item is None:
            return False
        if item is not False and self._callback is not None:
            try:
                self._callback(*item)
            except Exception:
                self.stats.rx_errors += 1
                self._log.exception("vrrp_rx_callback_failed")
        return True

    # ------------------------------------------------------------ send

    def destinations(self) -> tuple[IPAddress, ...]:
        """Where ``send(payload)`` goes: every unicast peer, else the group."""
        return self.unicast_peers if self.unicast_peers else (self.group,)

    def send(self, payload: bytes, dst: IPAddress | None = None, *, src: IPAddress | None = None) -> int:
        """Send ``payload`` (a VRRP message, no IP header) now.

        ``dst`` None sends to the group, or to each unicast peer in unicast
        mode.  ``src`` overrides the socket's source address for this call.
        Returns the number of datagrams sent; errors are counted and logged
        (rate limited), never raised, so a transient ENOBUFS or a downed link
        cannot kill the caller.
        """
        if self._sock is None:
            raise RuntimeError("VrrpSocket is closed")
        cmsg = self._pktinfo if src is None or src == self.src else self._src_cmsg(src)
        sent = 0
        for target in (dst,) if dst is not None else self.destinations():
            try:
                self._sock.sendmsg([payload], cmsg, 0, sockaddr(target, self.ifindex))
                sent += 1
            except OSError as exc:
                self.stats.tx_errors += 1
                self._err_log.log(
                    ("send", exc.errno), "vrrp_send_error", iface=self.ifname, dst=str(target), error=str(exc)
                )
        self.stats.tx_packets += sent
        return sent

    def send_datagram(self, datagram: bytes, dst: IPAddress) -> bool:
        """Send a whole IPv4 datagram (IP header included: the AH socket, IP_HDRINCL) to ``dst``.

        The kernel fills in the header checksum only (the identification is non-zero, the
        source set).  Errors are counted and logged (rate limited), never raised; returns
        whether it was sent.
        """
        if self._sock is None:
            raise RuntimeError("VrrpSocket is closed")
        try:
            self._sock.sendto(datagram, (str(dst), 0))
        except OSError as exc:
            self.stats.tx_errors += 1
            self._err_log.log(
                ("send", exc.errno), "vrrp_send_error", iface=self.ifname, dst=str(dst), error=str(exc)
            )
            return False
        self.stats.tx_packets += 1
        return True

    # ------------------------------------------------------------ close

    def close(self) -> None:
        if self._sock is None:
            return
        self.remove_reader()
        self._sock.close()
        self._sock = None
        self._log.info("vrrp_socket_closed")

    async def reopen(self) -> VrrpSocket:
        """Close and open again, keeping the reader callback.

        Needed when the interface was deleted and re-created: SO_BINDTODEVICE
        and the group membership refer to the old ifindex, so the old socket
        would stay silent forever.  Call it on ``LinkEvent(deleted=True)``
        followed by the link reappearing.
        """
        callback, batch = self._callback, self._batch
        self.close()
        await self.open()
        if callback is not None:
            self.add_reader(callback, batch=batch)
        return self

    @property
    def closed(self) -> bool:
        return self._sock is None

    async def __aenter__(self) -> VrrpSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
