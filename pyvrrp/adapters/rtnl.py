"""A minimal hand-written rtnetlink client: VIP add/remove, interface facts, link/address monitor.

Why not pyroute2 here:

* Hot path: becoming MASTER must add the VIPs, send the advert and send GARPs
  in that order (RFC 5798 §6.4.1) within about a millisecond.  A pyroute2
  ``AsyncIPRoute`` call from the daemon's loop (through a helper thread, since
  the synchronous ``IPRoute`` cannot run inside a running loop) measured
  0.7-16 ms per address.  One ``RTM_NEWADDR``/``RTM_DELADDR`` request with an
  ACK on a plain ``AF_NETLINK`` socket takes ~0.05 ms (:class:`FastAddr`).
* Start-up: ``import pyroute2`` alone costs ~90-150 ms (its package imports
  ipdb, ndb, nftables, ...).  A restarted node preempts back one
  Master_Down_Interval after it starts (~340 ms at VRRPv3 100 ms), so the
  daemon's start path must not pay for it.  The daemon needs only four
  queries and a monitor: :class:`RtnlFacts` (``RTM_GETLINK`` /
  ``RTM_GETADDR``), :class:`RtnlMonitor` (RTMGRP_LINK / IPV4_IFADDR /
  IPV6_IFADDR) and the facade :class:`RtnlNetlink` combining them.

pyroute2 stays for IPVS, the lab and :mod:`pyvrrp.adapters.netlink` users; the
events and errors here are the same objects (:mod:`pyvrrp.adapters.netlink_events`).

The parsers (:func:`split_messages`, :func:`parse_link`, :func:`parse_addr`,
:class:`Reply`) are pure functions of bytes, tested without root.

Message layout (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)::

    nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid }
    nlmsgerr  { i32 error; nlmsghdr request }          (NLMSG_ERROR; error 0 = ACK)
    ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change }
    ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index }
    rtattr    { u16 len; u16 type } + payload, padded to 4 bytes
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from ipaddress import IPv4Interface, IPv6Interface
from typing import NamedTuple

import structlog

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink_events import (
    LinkEvent,
    LinkTable,
    NetlinkEvent,
    NetlinkOperationError,
    link_up,
)
from pyvrrp.adapters.rtnl_wire import (  # noqa: F401  (re-exported)
    _ERR,
    _IFADDRMSG,
    _IFINFOMSG,
    _NLA_TYPE_MASK,
    _NLMSGHDR,
    _RTATTR,
    IFA_ADDRESS,
    IFA_F_NODAD,
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    IFA_FLAGS,
    IFA_LABEL,
    IFA_LOCAL,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFNAMSIZ,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_MATCH,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLM_F_ROOT,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    NLMSG_OVERRUN,
    RT_SCOPE_UNIVERSE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    SCOPES,
    SO_RCVBUFFORCE,
    FastAddr,
    IPAddress,
    IPInterface,
    _attr,
    build_addr_request,
)

# ---------------------------------------------------------------------------------------------
# Pure parsing (bytes in, tuples/dataclasses out)

_log = structlog.get_logger("pyvrrp.adapters.rtnl")
_RECV_BUF = 1 << 16  # the kernel packs dumps into skbs of at most ~32 KiB
_DUMP_RETRIES = 5  # NLM_F_DUMP_INTR: the table changed during the dump, read it again


class LinkInfo(NamedTuple):  # NamedTuple, not a dataclass: cheaper to define at import time
    """One ``RTM_NEWLINK``/``RTM_DELLINK`` message."""

    ifindex: int
    ifname: str
    flags: int  # ifi_flags (IFF_UP, IFF_RUNNING, ...)
    mac: str | None  # IFLA_ADDRESS as "aa:bb:..", None if the link has none (tun, wireguard)

    @property
    def up(self) -> bool:
        """Admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
        return link_up(self.flags)


class AddrInfo(NamedTuple):
    """One ``RTM_NEWADDR``/``RTM_DELADDR`` message."""

    ifindex: int
    family: int  # AF_INET / AF_INET6
    prefixlen: int
    flags: int  # IFA_FLAGS (32 bits) when present, else ifa_flags
    scope: int
    address: IPInterface | None  # IFA_LOCAL, else IFA_ADDRESS (None: unknown family / malformed)
    label: str | None = None


def split_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """One datagram -> ``[(type, flags, seq, payload)]``; a truncated tail is dropped."""
    out = []
    offset, end = 0, len(data)
    while offset + _NLMSGHDR.size <= end:
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            break
        out.append((kind, flags, seq, bytes(data[offset + _NLMSGHDR.size : offset + length])))
        offset += (length + 3) & ~3
    return out


def parse_attrs(payload: bytes, offset: int) -> dict[int, bytes]:
    """rtattrs from ``offset`` on -> ``{type: data}`` (first occurrence wins)."""
    attrs: dict[int, bytes] = {}
    end = len(payload)
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size or offset + length > end:
            break
        attrs.setdefault(kind & _NLA_TYPE_MASK, payload[offset + _RTATTR.size : offset + length])
        offset += (length + 3) & ~3
    return attrs


def _cstr(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_link(payload: bytes) -> LinkInfo:
    """ifinfomsg + IFLA_IFNAME / IFLA_ADDRESS (raises ValueError if too short)."""
    if len(payload) < _IFINFOMSG.size:
        raise ValueError(f"ifinfomsg too short: {len(payload)} bytes")
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload, _IFINFOMSG.size)
    hw = attrs.get(IFLA_ADDRESS)
    return LinkInfo(
        ifindex=index,
        ifname=_cstr(attrs.get(IFLA_IFNAME)) or "",
        flags=flags,
        mac=":".join(f"{b:02x}" for b in hw) if hw else None,
    )


def _interface(family: int, raw: bytes | None, prefixlen: int) -> IPInterface | None:
    try:
        if family == socket.AF_INET and raw is not None and len(raw) == 4:
            return IPv4Interface((raw, prefixlen))
        if family == socket.AF_INET6 and raw is not None and len(raw) == 16:
            return IPv6Interface((raw, prefixlen))
    except ValueError:  # prefixlen out of range
        return None
    return None


def parse_addr(payload: bytes) -> AddrInfo:
    """ifaddrmsg + IFA_LOCAL / IFA_ADDRESS / IFA_FLAGS / IFA_LABEL (raises ValueError if too short).

    The address is IFA_LOCAL when present (IPv4: with a point-to-point peer,
    IFA_ADDRESS is the *peer*), else IFA_ADDRESS (IPv6 sends only that).
    """
    if len(payload) < _IFADDRMSG.size:
        raise ValueError(f"ifaddrmsg too short: {len(payload)} bytes")
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(payload)
    attrs = parse_attrs(payload, _IFADDRMSG.size)
    raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
    ext = attrs.get(IFA_FLAGS)
    if ext is not None and len(ext) >= 4:
        flags = struct.unpack_from("=I", ext)[0]
    return AddrInfo(
        ifindex=index,
        family=family,
        prefixlen=prefixlen,
        flags=flags,
        scope=scope,
        address=_interface(family, raw, prefixlen),
        label=_cstr(attrs.get(IFA_LABEL)),
    )


def parse_error(payload: bytes) -> int:
    """NLMSG_ERROR (or NLMSG_DONE) payload -> positive errno (0 = ACK / no error)."""
    if len(payload) < _ERR.size:
        return 0
    return -int(_ERR.unpack_from(payload)[0])


class Reply:
    """The answer to request ``seq``, fed one datagram at a time (pure: no I/O).

    Messages of other sequence numbers (a late answer to a timed-out request,
    which the kernel never sends on a socket without multicast groups anyway)
    are ignored.  ``done`` after NLMSG_DONE, an ACK, or a single (non
    NLM_F_MULTI) answer; an NLMSG_ERROR raises ``OSError(errno)``.
    ``interrupted``: the kernel flagged the dump inconsistent (NLM_F_DUMP_INTR).
    """

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.messages: list[tuple[int, bytes]] = []
        self.done = False
        self.interrupted = False

    def feed(self, data: bytes) -> bool:
        for kind, flags, seq, payload in split_messages(data):
            if seq != self.seq or self.done:
                continue
            if kind in (NLMSG_ERROR, NLMSG_DONE):
                self.done = True
                code = parse_error(payload)
                if code > 0:
                    raise OSError(code, os.strerror(code))
                continue
            if kind in (NLMSG_NOOP, NLMSG_OVERRUN):
                continue
            if flags & NLM_F_DUMP_INTR:
                self.interrupted = True
            self.messages.append((kind, payload))
            if not flags & NLM_F_MULTI:
                self.done = True
        return self.done


def build_getlink_request(seq: int, *, ifname: str | None = None, index: int = 0) -> bytes:
    """RTM_GETLINK for one link (by name or index), or a dump of all links (neither given)."""
    flags = NLM_F_REQUEST
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if ifname is not None:
        body += _attr(IFLA_IFNAME, ifname.encode() + b"\0")
    elif not index:
        flags |= NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK, flags, seq, 0) + body


def build_getaddr_dump(seq: int, family: int = socket.AF_UNSPEC, index: int = 0) -> bytes:
    """RTM_GETADDR dump of ``family`` (AF_UNSPEC: both).  ``index`` is only a hint (the kernel
    filters by it only on strict-checking sockets): callers filter the answer themselves."""
    body = _IFADDRMSG.pack(family, 0, 0, 0, index)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def select_primary(
    addrs: Iterable[AddrInfo], family: int, exclude: Iterable[IPAddress | IPInterface] = ()
) -> IPAddress | None:
    """The advert source (RFC 5798 §5.1.1.1 / §5.1.2.1, PKT-09) among one link's addresses.

    IPv4: the first address of global scope that is not a secondary; IPv6: the
    first link-local that is not tentative.  ``exclude`` (addresses or
    interfaces we put there ourselves: VIPs) are skipped.  Kernel order.
    """
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, got {family!r}")
    skip = {a.ip if isinstance(a, IPv4Interface | IPv6Interface) else a for a in exclude}
    for info in addrs:
        iface = info.address
        if iface is None or iface.version != family or iface.ip in skip:
            continue
        if family == 4:
            if info.scope == RT_SCOPE_UNIVERSE and not info.flags & IFA_F_SECONDARY:
                return iface.ip
        elif iface.ip.is_link_local and not info.flags & IFA_F_TENTATIVE:
            return iface.ip
    return None


def _family(version: int) -> int:
    if version == 4:
        return socket.AF_INET
    if version == 6:
        return socket.AF_INET6
    raise ValueError(f"family must be 4 or 6, got {version!r}")


# ---------------------------------------------------------------------------------------------
# Queries


class RtnlFacts:
    """Blocking interface facts (``RTM_GETLINK`` / ``RTM_GETADDR``), each a sub-millisecond round trip.

    Same methods, results and errors as :class:`pyvrrp.adapters.netlink.SyncNetlink`'s
    queries: a missing interface raises :class:`InterfaceNotFound`, another kernel
    refusal :class:`NetlinkOperationError`, a stuck kernel call ``TimeoutError``.
    Safe to call from inside a running loop (it never touches it) and from threads.
    """

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(timeout_s)
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtnlFacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, build: Callable[[int], bytes]) -> list[tuple[int, bytes]]:
        """Send one request, return its answer's messages (raises OSError from NLMSG_ERROR)."""
        with self._lock:
            for _attempt in range(_DUMP_RETRIES):
                self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
                reply = Reply(self._seq)
                self._sock.send(build(self._seq))
                try:
                    while not reply.feed(self._sock.recv(_RECV_BUF)):
                        pass
                except TimeoutError:
                    raise TimeoutError(f"netlink request took longer than {self.timeout_s}s") from None
                if not reply.interrupted:
                    break
            return reply.messages

    # ------------------------------------------------------------ links

    def link(self, ifname: str) -> LinkInfo:
        """One link by name (raises InterfaceNotFound)."""
        if not ifname or len(ifname.encode()) >= IFNAMSIZ or "\0" in ifname:
            raise InterfaceNotFound(ifname)
        try:
            msgs = self._query(lambda seq: build_getlink_request(seq, ifname=ifname))
        except TimeoutError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                raise InterfaceNotFound(ifname) from None
            raise NetlinkOperationError(exc.errno, f"link get {ifname!r}: {exc.strerror}") from exc
        for kind, payload in msgs:
            if kind == RTM_NEWLINK:
                return parse_link(payload)
        raise InterfaceNotFound(ifname)

    def links(self) -> list[LinkInfo]:
        """Every link in this namespace (one dump)."""
        return [parse_link(p) for kind, p in self._query(build_getlink_request) if kind == RTM_NEWLINK]

    def link_index(self, ifname: str) -> int:
        """ifindex of ``ifname`` (raises InterfaceNotFound)."""
        return self.link(ifname).ifindex

    def link_mac(self, ifname: str) -> str:
        """Hardware address as ``"aa:bb:cc:dd:ee:ff"`` (raises InterfaceNotFound)."""
        mac = self.link(ifname).mac
        if not mac:
            raise NetlinkOperationError(errno.EINVAL, f"interface {ifname!r} has no hardware address")
        return mac

    def link_is_up(self, ifname: str) -> bool:
        """Admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
        return self.link(ifname).up

    def link_names(self) -> dict[int, str]:
        """ifindex -> name for every link in this namespace."""
        return {info.ifindex: info.ifname for info in self.links()}

    # ------------------------------------------------------------ addresses

    def addresses(self, index: int, family: int = socket.AF_UNSPEC) -> list[AddrInfo]:
        """The address messages of link ``index`` (AF_INET / AF_INET6 / AF_UNSPEC), kernel order."""
        out = []
        for kind, payload in self._query(lambda seq: build_getaddr_dump(seq, family, index)):
            if kind == RTM_NEWADDR:
                info = parse_addr(payload)
                if info.ifindex == index:
                    out.append(info)
        return out

    def list_addresses(self, ifname: str) -> list[IPInterface]:
        """Every address on ``ifname`` in kernel order (IPv4 first)."""
        return [a.address for a in self.addresses(self.link_index(ifname)) if a.address is not None]

    def primary_address(
        self, ifname: str, family: int, *, exclude: Iterable[IPAddress | IPInterface] = ()
    ) -> IPAddress | None:
        """The advert source (PKT-09): first primary global IPv4, or the IPv6 link-local.

        ``exclude`` skips addresses we put there ourselves (VIPs).  Tentative
        IPv6 addresses are skipped.  None if the interface has none.
        """
        af = _family(family)
        return select_primary(self.addresses(self.link_index(ifname), af), family, exclude)


# ---------------------------------------------------------------------------------------------
# Monitor


def _set_rcvbuf(sock: socket.socket, size: int) -> None:
    """SO_RCVBUFFORCE (root: beyond net.core.rmem_max), else SO_RCVBUF (capped by rmem_max)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class RtnlMonitor:
    """Link and address events from RTMGRP_LINK / IPV4_IFADDR / IPV6_IFADDR on a non-blocking socket.

    The same observable behaviour as :class:`pyvrrp.adapters.netlink.NetlinkMonitor`:
    ``await mon.start()`` subscribes (events after that are never lost), then
    ``async for ev in mon.events(): ...``.
    ``ifnames`` restricts events to those interfaces (None = all).
    LinkEvents are emitted only when a link's up state changes (or it is deleted).
    Note: Linux flushes IPv6 addresses of a link that goes down unless
    ``keep_addr_on_down`` is set, so a link-down is followed by AddressEvents.

    ``rcvbuf`` is the socket's receive buffer (a storm of address changes must
    not overflow it; if it does anyway, see :meth:`events`).  ``facts`` is used
    for the link dumps (a private :class:`RtnlFacts` otherwise).
    """

    GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

    def __init__(
        self,
        ifnames: Iterable[str] | None = None,
        *,
        rcvbuf: int = 4 << 20,
        facts: RtnlFacts | None = None,
    ) -> None:
        self._links = LinkTable(ifnames)
        self.rcvbuf = rcvbuf
        self._facts = facts
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader_fd: int | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.resyncs = 0

    async def start(self) -> None:
        self._closed = False
        self._open()

    def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            _set_rcvbuf(sock, self.rcvbuf)
            sock.bind((0, self.GROUPS))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        # Seed names/up-state after subscribing: a change in between shows up as an event.
        if self._facts is not None:
            links = self._facts.links()
        else:
            with RtnlFacts() as facts:
                links = facts.links()
        for info in links:
            self._links.seed(info.ifindex, info.ifname, info.up)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if self._reader_fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._reader_fd)
        self._reader_fd = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)  # wake events(): it sees the socket gone
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._close_socket()

    async def __aenter__(self) -> RtnlMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def is_up(self, ifname: str) -> bool | None:
        """Last known up state of ``ifname`` (None if unknown)."""
        return self._links.is_up(ifname)

    def translate(self, kind: int, payload: bytes) -> NetlinkEvent | None:
        """One rtnetlink message -> event (or None if filtered / unchanged / not ours)."""
        try:
            if kind in (RTM_NEWLINK, RTM_DELLINK):
                link = parse_link(payload)
                return self._links.link(link.ifindex, link.ifname, link.up, deleted=kind == RTM_DELLINK)
            if kind in (RTM_NEWADDR, RTM_DELADDR):
                addr = parse_addr(payload)
                return self._links.address(addr.ifindex, addr.label, addr.address, added=kind == RTM_NEWADDR)
        except ValueError:  # malformed message: nothing to report
            return None
        return None

    def _drain(self, limit: int = 64) -> tuple[list[bytes], OSError | None]:
        """Up to ``limit`` queued datagrams without blocking, and the socket error that stopped it."""
        out: list[bytes] = []
        sock = self._sock
        while sock is not None and len(out) < limit:
            try:
                out.append(sock.recv(_RECV_BUF))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                return out, exc
        return out, None

    async def _readable(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiter = fut
        fd = sock.fileno()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, wake)
        self._reader_fd = fd
        try:
            await fut
        finally:
            self._waiter = None
            if self._reader_fd == fd and self._sock is sock:
                loop.remove_reader(fd)
                self._reader_fd = None

    async def events(self) -> AsyncIterator[NetlinkEvent]:
        """Yield events until cancelled or closed.

        If the socket fails (typically ENOBUFS: the kernel dropped events
        during a storm), the monitor resubscribes, re-reads every link and
        yields a LinkEvent for each link whose up state changed meanwhile
        (address events lost in the overflow are not replayed).
        """
        if self._sock is None:
            await self.start()
        while not self._closed:
            batch, error = self._drain()
            for data in batch:
                for kind, _flags, _seq, payload in split_messages(data):
                    ev = self.translate(kind, payload)
                    if ev is not None:
                        yield ev
            if error is not None:
                _log.warning("netlink_monitor_resync", error=str(error))
                for ev in await self._resync():
                    yield ev
            elif not batch:
                await self._readable()
            else:
                await asyncio.sleep(0)  # a long burst must not starve the loop

    async def _resync(self) -> list[LinkEvent]:
        self.resyncs += 1
        old = self._links.forget()
        self._close_socket()
        await asyncio.sleep(0.1)  # no tight loop if the socket keeps failing
        if self._closed:
            return []
        self._open()
        return self._links.lost_events(old)


class RtnlNetlink(RtnlFacts):
    """What the daemon needs from netlink: the facts of :class:`RtnlFacts` plus :meth:`events`.

    A drop-in for :class:`pyvrrp.adapters.netlink.SyncNetlink` on the daemon's
    path (``link_is_up``, ``link_mac``, ``primary_address``, ``events()``,
    ``close()``) without importing pyroute2.  VIPs go through :class:`FastAddr`.
    """

    async def events(self, ifnames: Iterable[str] | None = None) -> AsyncIterator[NetlinkEvent]:
        """Link/address events in the caller's loop (see :class:`RtnlMonitor`)."""
        mon = RtnlMonitor(ifnames, facts=self)
        await mon.start()
        try:
            async for ev in mon.events():
                yield ev
        finally:
            mon.close()
