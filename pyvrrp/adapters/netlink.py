"""The one netlink client (pyroute2): interface facts, VIP add/remove, link/address monitor.

What the daemon needs and why it is shaped this way:

* :class:`Netlink` answers **synchronously**.  The executor performs
  SendAdvert -> AddVips -> AnnounceVips in order (RFC 5798 §6.4.1: the GARP
  must follow the address), and the daemon reads facts (``link_is_up``,
  ``primary_address``) from loop callbacks.  pyroute2's synchronous
  ``IPRoute`` cannot serve that: every call runs pyroute2's own event loop
  with ``run_until_complete``, which raises ``RuntimeError`` in a thread whose
  asyncio loop is already running (the daemon's thread; tested in
  tests/test_netlink.py).  So :class:`_LoopThread` - the one place that works
  around it - runs an ``AsyncIPRoute`` on a private thread and loop for the
  facts (dumps, link queries), and each call waits for its answer; the import
  of pyroute2 costs ~0.1 s at start-up.
* VIP add/remove, the takeover's hot path, needs no loop at all: one request
  and its ack on pyroute2's threadless ``IPRSocket`` (:class:`_AddressSocket`),
  ~0.05 ms in a netns against ~0.25-0.6 ms through the thread.
* VIPs: RFC 5798 §6.4.1 "for each IP address associated with the virtual
  router, add it" / §6.4.3 remove on leaving MASTER (SM-08/SM-03, FAULT
  SM-16).  Idempotent as the state machine needs: adding a VIP that is there
  and removing one that is gone answer False, not an error.  IPv6 VIPs get
  IFA_F_NODAD so they are usable at once (a master answers for them
  immediately; a tentative address would suppress the unsolicited NA).
* :class:`NetlinkMonitor` runs on the **caller's** loop (an ``AsyncIPRoute``
  bound to RTMGRP_LINK / IPV4_IFADDR / IPV6_IFADDR) and yields
  :class:`LinkEvent` (only when a link's usable state - IFF_UP and
  IFF_RUNNING, keepalived's rule - changes, or it is deleted) and
  :class:`AddressEvent`.  Linux flushes a link's IPv6 addresses when it goes
  down (unless ``keep_addr_on_down``), so a link-down is followed by
  AddressEvents.
* Overflow: pyroute2 reads its socket into an unbounded queue whenever the
  loop runs, so the kernel buffer overflows only while the loop is blocked;
  then every read raises ``OSError(ENOBUFS)`` and the socket is dead.  The
  monitor opens a new one, re-dumps links *and* addresses, and yields what
  was lost (:func:`resync_events`): link changes first (a FAULT before its
  address events, as the kernel orders them), then addresses that appeared
  or vanished - a VIP deleted during the storm is still noticed.
* pyroute2 0.9 ignores NLM_F_DUMP_INTR (a dump that raced a change);
  :meth:`_Requests.dump` repeats such a dump.

Errors: a missing interface raises :class:`~pyvrrp.adapters.InterfaceNotFound`
from the facts; VIP and other kernel refusals raise
:class:`NetlinkOperationError` (an ``OSError``) whose message names the
operation, the address and the interface; a stuck kernel call raises
``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
)
from typing import Any, NamedTuple, TypeVar

import structlog
from pyroute2 import AsyncIPRoute, IPRSocket
from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP_INTR,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pyvrrp.adapters import InterfaceNotFound

__all__ = [
    "IFF_RUNNING",
    "IFF_UP",
    "ROUTE_TYPES",
    "SCOPES",
    "AddrInfo",
    "AddressEvent",
    "InterfaceNotFound",
    "LinkEvent",
    "LinkTable",
    "MacvlanInfo",
    "Netlink",
    "NetlinkEvent",
    "NetlinkMonitor",
    "NetlinkOperationError",
    "RouteRequest",
    "RuleRequest",
    "link_up",
    "resync_events",
    "select_primary",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

IFF_UP = 0x1
IFF_RUNNING = 0x40  # carrier (RFC 2863 operational), keepalived's "IFF_UP && IFF_RUNNING"
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
IFNAMSIZ = 16
SO_RCVBUFFORCE = 33  # linux/asm-generic/socket.h; not exported by the socket module
_DUMP_RETRIES = 5

_log = structlog.get_logger("pyvrrp.adapters.netlink")
_T = TypeVar("_T")


class NetlinkOperationError(OSError):
    """The kernel refused an address/link operation (message names op, address and interface)."""


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A link's usable state (admin up AND carrier) changed, or the link was deleted."""

    ifname: str
    index: int
    up: bool
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class AddressEvent:
    """An address appeared on or disappeared from an interface."""

    ifname: str
    index: int
    address: IPInterface
    added: bool


NetlinkEvent = LinkEvent | AddressEvent


def link_up(flags: int) -> bool:
    """``ifi_flags`` -> usable: admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


# ---------------------------------------------------------------------------------------------
# pyroute2 messages -> plain values (pure)


class MacvlanInfo(NamedTuple):
    """A link as :meth:`Netlink.macvlan` sees it."""

    ifindex: int
    kind: str
    """IFLA_INFO_KIND: "macvlan", "veth", ...; "" for a device without link info."""
    base_index: int
    """IFLA_LINK: the lower device (0: none)."""
    mac: str
    mode: str
    """The macvlan mode ("private", "bridge", ...); "" for other kinds."""
    up: bool


class AddrInfo(NamedTuple):
    """What the primary-address rule needs from one RTM_NEWADDR message."""

    ifindex: int
    address: IPInterface
    flags: int  # IFA_FLAGS (32 bits) when present, else ifa_flags
    scope: int


def _iface_of(msg: Any) -> IPInterface | None:
    """IFA_LOCAL, else IFA_ADDRESS (IPv4 point-to-point: IFA_ADDRESS is the *peer*)."""
    addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    if addr is None:
        return None
    try:
        return ip_interface(f"{addr}/{msg['prefixlen']}")
    except ValueError:
        return None


def addr_info(msg: Any) -> AddrInfo | None:
    """One pyroute2 ``ifaddrmsg`` -> :class:`AddrInfo` (None without a usable address)."""
    iface = _iface_of(msg)
    if iface is None:
        return None
    ext = msg.get_attr("IFA_FLAGS")
    return AddrInfo(int(msg["index"]), iface, int(msg["flags"] if ext is None else ext), int(msg["scope"]))


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
        if iface.version != family or iface.ip in skip:
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


def _strerror(exc: NetlinkError) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 and exc.args[1] else errno.errorcode.get(exc.code, str(exc))


# ---------------------------------------------------------------------------------------------
# Link table: what a monitor knows, and the events lost in an overflow (pure)


@dataclass
class LinkTable:
    """Each link's name and up state and each address, and the events that follow a message.

    A LinkEvent only when a link's up state (or name) changes or it is deleted; an
    AddressEvent named after the link (its label, or ``if<index>``, when the link is
    unknown); nothing for interfaces outside ``filter`` (None = all).
    """

    filter: frozenset[str] | None = None
    names: dict[int, str] = field(default_factory=dict)
    up: dict[int, bool] = field(default_factory=dict)
    addrs: dict[int, set[IPInterface]] = field(default_factory=dict)

    @classmethod
    def watching(cls, ifnames: Iterable[str] | None) -> LinkTable:
        return cls(frozenset(ifnames) if ifnames is not None else None)

    def wanted(self, ifname: str) -> bool:
        return self.filter is None or ifname in self.filter

    def is_up(self, ifname: str) -> bool | None:
        """Last known up state of ``ifname`` (None if unknown)."""
        for idx, name in self.names.items():
            if name == ifname:
                return self.up.get(idx)
        return None

    def seed(self, idx: int, ifname: str, up: bool) -> None:
        """A link from a dump (no event)."""
        self.names[idx] = ifname
        self.up[idx] = up

    def seed_address(self, idx: int, address: IPInterface) -> None:
        """An address from a dump (no event)."""
        self.addrs.setdefault(idx, set()).add(address)

    def link(self, idx: int, ifname: str | None, up: bool, *, deleted: bool = False) -> LinkEvent | None:
        """RTM_NEWLINK / RTM_DELLINK of link ``idx`` -> the event due, if any."""
        name = ifname or self.names.get(idx, f"if{idx}")
        old_name = self.names.get(idx)
        self.names[idx] = name
        if deleted:
            self.up.pop(idx, None)
            self.names.pop(idx, None)
            self.addrs.pop(idx, None)
            return LinkEvent(name, idx, False, deleted=True) if self.wanted(name) else None
        if self.up.get(idx) == up and old_name == name:
            return None
        self.up[idx] = up
        return LinkEvent(name, idx, up) if self.wanted(name) else None

    def address(
        self, idx: int, label: str | None, address: IPInterface | None, *, added: bool
    ) -> AddressEvent | None:
        """RTM_NEWADDR / RTM_DELADDR on link ``idx`` -> the event due, if any."""
        if address is None:
            return None
        if added:
            self.addrs.setdefault(idx, set()).add(address)
        else:
            self.addrs.get(idx, set()).discard(address)
        name = self.names.get(idx) or label or f"if{idx}"
        return AddressEvent(name, idx, address, added=added) if self.wanted(name) else None

    def forget(self) -> LinkTable:
        """Empty the table before a fresh dump (after an overflow); returns what it held."""
        old = LinkTable(
            self.filter, dict(self.names), dict(self.up), {i: set(a) for i, a in self.addrs.items()}
        )
        self.names.clear()
        self.up.clear()
        self.addrs.clear()
        return old


def resync_events(old: LinkTable, new: LinkTable) -> list[NetlinkEvent]:
    """The events a monitor lost in an overflow, from its tables before and after a fresh dump.

    Links first: a link whose up state differs (or that is new) yields its
    current state, one that vanished yields ``deleted``.  Then addresses: each
    that vanished (also with its link) yields ``added=False``, each new one
    ``added=True``.  Interfaces outside ``new.filter`` yield nothing.
    """
    out: list[NetlinkEvent] = []
    for idx, state in new.up.items():
        if old.up.get(idx) != state and new.wanted(new.names[idx]):
            out.append(LinkEvent(new.names[idx], idx, state))
    for idx in old.up.keys() - new.up.keys():
        if new.wanted(old.names[idx]):
            out.append(LinkEvent(old.names[idx], idx, False, deleted=True))
    for idx in sorted(old.addrs.keys() | new.addrs.keys()):
        name = new.names.get(idx) or old.names.get(idx) or f"if{idx}"
        if not new.wanted(name):
            continue
        before, after = old.addrs.get(idx, set()), new.addrs.get(idx, set())
        out += [AddressEvent(name, idx, a, added=False) for a in sorted(before - after, key=_sort_key)]
        out += [AddressEvent(name, idx, a, added=True) for a in sorted(after - before, key=_sort_key)]
    return out


def _sort_key(iface: IPInterface) -> tuple[int, int, int]:
    return (iface.version, int(iface.ip), iface.network.prefixlen)


# ---------------------------------------------------------------------------------------------
# Requests (coroutines on whichever loop runs them)


class _Requests:
    """The queries and VIP changes on one ``AsyncIPRoute``, serialized (one request at a time)."""

    def __init__(self, ipr: Any) -> None:
        self.ipr = ipr
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls) -> _Requests:
        ipr = AsyncIPRoute()
        await ipr.setup_endpoint()
        return cls(ipr)

    def close(self) -> None:
        self.ipr.close()

    async def dump(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> list[Any]:
        """All messages of one dump, repeated while the kernel flags it interrupted."""
        async with self.lock:
            for _attempt in range(_DUMP_RETRIES):
                msgs = [msg async for msg in await call()]
                if not any(m["header"]["flags"] & NLM_F_DUMP_INTR for m in msgs):
                    break
            return msgs

    async def links(self) -> list[Any]:
        return await self.dump(lambda: self.ipr.link("dump"))

    async def addresses(self, index: int = 0, family: int = socket.AF_UNSPEC) -> list[AddrInfo]:
        """Address messages (of link ``index``; 0 = all), kernel order."""
        kw: dict[str, Any] = {"family": family} if family != socket.AF_UNSPEC else {}
        infos = [addr_info(m) for m in await self.dump(lambda: self.ipr.addr("dump", **kw))]
        return [i for i in infos if i is not None and (not index or i.ifindex == index)]

    async def link(self, ifname: str) -> Any:
        if not ifname or len(ifname.encode()) >= IFNAMSIZ or "\0" in ifname:
            raise InterfaceNotFound(ifname)  # cannot exist: no request
        async with self.lock:
            try:
                links = await self.ipr.link("get", ifname=ifname)
            except NetlinkError as exc:
                if exc.code in (errno.ENODEV, errno.ENOENT):
                    raise InterfaceNotFound(ifname) from None
                raise NetlinkOperationError(exc.code, f"link get {ifname!r}: {_strerror(exc)}") from exc
        if not links:
            raise InterfaceNotFound(ifname)
        return links[0]

    async def primary_address(
        self, ifname: str, family: int, exclude: Iterable[IPAddress | IPInterface]
    ) -> IPAddress | None:
        af = _family(family)
        index = int((await self.link(ifname))["index"])
        return select_primary(await self.addresses(index, af), family, exclude)

    async def list_addresses(self, ifname: str) -> list[IPInterface]:
        index = int((await self.link(ifname))["index"])
        return [a.address for a in await self.addresses(index)]


class _AddressSocket:
    """VIP add/remove on the caller's thread: pyroute2's threadless ``IPRSocket``, one request, one ack.

    The hot path of a takeover (AddVips -> AnnounceVips): rtnetlink handles a
    request inside ``send()``, so the ack is queued when it returns and the
    whole change costs ~0.05 ms, against ~0.25-0.6 ms through the loop thread
    (two thread wake-ups) and ~0.1 ms for pyroute2 to encode the message.  A
    VIP's requests never change, so each is encoded by pyroute2 once and kept
    (:func:`_address_request`).  The socket joins no multicast group: the
    only messages it receives are the acks of its own requests.  Routes and
    rules (:class:`RouteRequest`, :class:`RuleRequest`) go the same way.
    """

    def __init__(self, timeout_s: float) -> None:
        self._ipr = IPRSocket()
        self._sock = self._ipr.socket
        self._sock.settimeout(timeout_s)

    def close(self) -> None:
        self._ipr.close()

    def change(self, msg_type: int, ifname: str, vip: IPInterface, label: str | None, **opts: Any) -> int:
        """0, or the kernel's errno (ENODEV: no such interface)."""
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            return errno.ENODEV
        scope, brd = opts.get("scope"), opts.get("brd")
        return self.request(_address_request(msg_type, index, vip, label, scope, brd))

    def request(self, data: bytes) -> int:
        """Send one encoded request; 0 or the kernel's errno from its ack."""
        self._sock.send(data)
        for msg in self._ipr.marshal.parse(self._sock.recv(16384)):
            error = msg["header"]["error"]
            return int(error.code) if error is not None else 0
        return errno.EPROTO  # an empty read: no ack (never seen)


@functools.lru_cache(maxsize=4096)
def _address_request(
    msg_type: int,
    index: int,
    vip: IPInterface,
    label: str | None,
    scope: int | None = None,
    brd: IPAddress | None = None,
) -> bytes:
    """``ip addr add|del VIP dev INDEX [label L] [scope S] [brd B]``, encoded by pyroute2.

    IPv4: IFA_LOCAL; IPv6: NODAD.  ``scope`` is the numeric ``ifa_scope`` (RT_SCOPE_*).
    """
    msg = ifaddrmsg()
    msg["family"] = _family(vip.version)
    msg["prefixlen"] = vip.network.prefixlen
    msg["index"] = index
    attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", str(vip.ip))]
    flags = NLM_F_REQUEST | NLM_F_ACK
    if msg_type == RTM_NEWADDR:
        flags |= NLM_F_CREATE | NLM_F_EXCL  # an address that is there answers EEXIST
        if vip.version == 6:
            msg["flags"] = IFA_F_NODAD  # usable at once: a master answers for it immediately
        if scope is not None:
            msg["scope"] = scope
    if vip.version == 4:
        attrs.append(("IFA_LOCAL", str(vip.ip)))
        if label and msg_type == RTM_NEWADDR:
            attrs.append(("IFA_LABEL", label))
        if brd is not None and msg_type == RTM_NEWADDR:
            attrs.append(("IFA_BROADCAST", str(brd)))
    msg["attrs"] = attrs
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg.encode()
    return bytes(msg.data)


# ---------------------------------------------------------------------------------------------
# Routes and policy rules (keepalived virtual_routes / static_routes / *_rules)

RTPROT_KEEPALIVED = 18
"""The ``rtm_protocol`` keepalived gives its routes (``proto keepalived`` in ``ip route``); ours too."""
RT_TABLE_MAIN = 254
RT_TABLE_UNSPEC = 0  # the 8-bit table field when the table number does not fit (RTA_TABLE has it)
RT_SCOPE_NOWHERE = 255
RTNH_F_ONLINK = 4
RTN_UNICAST = 1
FR_ACT_TO_TBL = 1
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8, "throw": 9}
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One route, in the kernel's terms (``ip route replace|del ...``); plain values only.

    ``scope`` None: global (keepalived's default, where ``ip route`` would pick link for a
    route without a gateway).  ``type`` is a name of :data:`ROUTE_TYPES`.
    """

    dst: IPNetwork
    gateway: IPAddress | None = None
    ifname: str | None = None
    prefsrc: IPAddress | None = None
    scope: str | None = None
    table: int = RT_TABLE_MAIN
    metric: int | None = None
    proto: int = RTPROT_KEEPALIVED
    type: str = "unicast"
    onlink: bool = False

    def __str__(self) -> str:
        words = [] if self.type == "unicast" else [self.type]
        words.append("default" if self.dst.prefixlen == 0 and self.dst.version == 4 else str(self.dst))
        for key, val in (
            ("via", self.gateway),
            ("dev", self.ifname),
            ("src", self.prefsrc),
            ("scope", self.scope),
            ("metric", self.metric),
        ):
            if val is not None:
                words += [key, str(val)]
        if self.table != RT_TABLE_MAIN:
            words += ["table", str(self.table)]
        if self.onlink:
            words.append("onlink")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class RuleRequest:
    """One policy rule (``ip rule add|del ...``); plain values only."""

    family: int = 4
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    iifname: str | None = None
    oifname: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    table: int | None = None
    priority: int | None = None

    def __str__(self) -> str:
        words = []
        for key, val in (
            ("from", self.src),
            ("to", self.dst),
            ("iif", self.iifname),
            ("oif", self.oifname),
        ):
            if val is not None:
                words += [key, str(val)]
        if self.fwmark is not None:
            mask = f"/{hex(self.fwmask)}" if self.fwmask is not None else ""
            words += ["fwmark", hex(self.fwmark) + mask]
        if self.table is not None:
            words += ["table", str(self.table)]
        if self.priority is not None:
            words += ["priority", str(self.priority)]
        return " ".join(words)


def _route_request(msg_type: int, req: RouteRequest, index: int | None) -> bytes:
    """``ip route replace|del`` of ``req`` (``index``: the ifindex of ``req.ifname``), encoded."""
    msg = rtmsg()
    msg["family"] = _family(req.dst.version)
    msg["dst_len"] = req.dst.prefixlen
    msg["table"] = req.table if req.table < 256 else RT_TABLE_UNSPEC
    msg["proto"] = req.proto
    msg["type"] = ROUTE_TYPES[req.type]
    # keepalived: global scope unless the route says otherwise (not iproute2's "link without a
    # gateway"); a removal matches any scope, as `ip route del` does
    if req.scope is not None:
        scope = SCOPES[req.scope]
    else:
        scope = RT_SCOPE_NOWHERE if msg_type == RTM_DELROUTE else RT_SCOPE_UNIVERSE
    msg["scope"] = scope
    msg["flags"] = RTNH_F_ONLINK if req.onlink else 0
    attrs: list[tuple[str, Any]] = [("RTA_TABLE", req.table)]
    if req.dst.prefixlen:
        attrs.append(("RTA_DST", str(req.dst.network_address)))
    if req.gateway is not None:
        attrs.append(("RTA_GATEWAY", str(req.gateway)))
    if index is not None:
        attrs.append(("RTA_OIF", index))
    if req.prefsrc is not None:
        attrs.append(("RTA_PREFSRC", str(req.prefsrc)))
    if req.metric is not None:
        attrs.append(("RTA_PRIORITY", req.metric))
    msg["attrs"] = attrs
    flags = NLM_F_REQUEST | NLM_F_ACK
    if msg_type == RTM_NEWROUTE:
        flags |= NLM_F_CREATE | NLM_F_REPLACE  # idempotent: a route left by a crash is taken over
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg.encode()
    return bytes(msg.data)


def _rule_request(msg_type: int, req: RuleRequest) -> bytes:
    """``ip rule add|del`` of ``req``, encoded."""
    msg = fibmsg()
    msg["family"] = _family(req.family)
    table = RT_TABLE_MAIN if req.table is None else req.table
    msg["table"] = table if table < 256 else RT_TABLE_UNSPEC
    msg["action"] = FR_ACT_TO_TBL
    attrs: list[tuple[str, Any]] = [("FRA_TABLE", table)]
    if req.src is not None:
        msg["src_len"] = req.src.prefixlen
        if req.src.prefixlen:
            attrs.append(("FRA_SRC", str(req.src.network_address)))
    if req.dst is not None:
        msg["dst_len"] = req.dst.prefixlen
        if req.dst.prefixlen:
            attrs.append(("FRA_DST", str(req.dst.network_address)))
    if req.iifname is not None:
        attrs.append(("FRA_IIFNAME", req.iifname))
    if req.oifname is not None:
        attrs.append(("FRA_OIFNAME", req.oifname))
    if req.fwmark is not None:
        attrs.append(("FRA_FWMARK", req.fwmark))
        if req.fwmask is not None:
            attrs.append(("FRA_FWMASK", req.fwmask))
    if req.priority is not None:
        attrs.append(("FRA_PRIORITY", req.priority))
    msg["attrs"] = attrs
    flags = NLM_F_REQUEST | NLM_F_ACK
    if msg_type == RTM_NEWRULE:
        flags |= NLM_F_CREATE | NLM_F_EXCL  # the same rule twice answers EEXIST
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg.encode()
    return bytes(msg.data)


class _LoopThread:
    """A private asyncio loop on a daemon thread; :meth:`call` runs a coroutine there and waits.

    The one workaround for pyroute2's synchronous API, which cannot run in a
    thread whose loop is already running.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pyvrrp-netlink", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T], *, timeout_s: float | None = None) -> _T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return fut.result(limit)
        except TimeoutError:
            fut.cancel()
            raise TimeoutError(f"netlink request took longer than {limit}s") from None

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(self.timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


# ---------------------------------------------------------------------------------------------
# The daemon's facade


class Netlink:
    """Blocking interface facts and VIP add/remove, callable from inside a running loop.

    Each call is one or two netlink round trips on a private thread (see the
    module docstring).  ``events()`` monitors in the *caller's* loop.
    """

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self._thread = _LoopThread(timeout_s)
        try:
            self._req = self._thread.call(_Requests.open())
            self._addrs = _AddressSocket(timeout_s)
        except BaseException:
            self._thread.stop()
            raise

    @property
    def timeout_s(self) -> float:
        return self._thread.timeout_s

    def close(self) -> None:
        if self._thread.loop.is_closed():
            return

        async def _close() -> None:
            self._req.close()

        with contextlib.suppress(TimeoutError, RuntimeError):
            self._thread.call(_close())
        self._thread.stop()
        self._addrs.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ facts

    def link_index(self, ifname: str) -> int:
        """ifindex of ``ifname`` (raises InterfaceNotFound)."""
        return int(self._thread.call(self._req.link(ifname))["index"])

    def link_mac(self, ifname: str) -> str:
        """Hardware address as ``"aa:bb:cc:dd:ee:ff"`` (raises InterfaceNotFound)."""
        mac = self._thread.call(self._req.link(ifname)).get_attr("IFLA_ADDRESS")
        if not mac:
            raise NetlinkOperationError(errno.EINVAL, f"interface {ifname!r} has no hardware address")
        return str(mac)

    def link_is_up(self, ifname: str) -> bool:
        """Admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
        return link_up(int(self._thread.call(self._req.link(ifname))["flags"]))

    def link_names(self) -> dict[int, str]:
        """ifindex -> name for every link in this namespace."""
        return {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in self._thread.call(self._req.links())}

    def list_addresses(self, ifname: str) -> list[IPInterface]:
        """Every address on ``ifname`` in kernel order (IPv4 first)."""
        return self._thread.call(self._req.list_addresses(ifname))

    def primary_address(
        self, ifname: str, family: int, *, exclude: Iterable[IPAddress | IPInterface] = ()
    ) -> IPAddress | None:
        """The advert source (PKT-09): first primary global IPv4, or the IPv6 link-local.

        ``exclude`` skips addresses we put there ourselves (VIPs); tentative IPv6
        addresses are skipped.  None if the interface has none.
        """
        return self._thread.call(self._req.primary_address(ifname, family, tuple(exclude)))

    # ------------------------------------------------------------ VIPs

    def prepare(
        self, ifname: str, vips: Iterable[IPInterface], labels: Mapping[str, str | None] | None = None
    ) -> None:
        """Encode the add/remove requests of ``vips`` now, so the first takeover only sends bytes.

        A missing interface is skipped (its requests are encoded on first use).
        """
        try:
            index = socket.if_nametoindex(ifname)
        except OSError:
            return
        for vip in vips:
            _address_request(RTM_NEWADDR, index, vip, (labels or {}).get(str(vip)), None, None)
            _address_request(RTM_DELADDR, index, vip, None, None, None)

    def add(
        self,
        ifname: str,
        address: IPInterface | str,
        *,
        label: str | None = None,
        scope: str | None = None,
        brd: IPAddress | None = None,
    ) -> bool:
        """Add a VIP (RFC 5798 §6.4.1); True if added, False if it was already there.

        IPv6 VIPs get IFA_F_NODAD.  ``label`` (IPv4 only) must start with the
        interface name, as the kernel requires (keepalived ``label eth0:vip``);
        ``scope`` is a name of :data:`SCOPES`, ``brd`` an IPv4 broadcast address.
        """
        vip = ip_interface(address) if isinstance(address, str) else address
        scope_n = SCOPES[scope] if scope is not None else None
        code = self._addrs.change(RTM_NEWADDR, ifname, vip, label, scope=scope_n, brd=brd)
        if code == 0:
            return True
        if code == errno.EEXIST:
            return False
        reason = "interface not found" if code == errno.ENODEV else os.strerror(code)
        raise NetlinkOperationError(code, f"cannot add {vip} to {ifname!r}: {reason}")

    def add_many(
        self,
        items: Sequence[
            tuple[str, IPInterface, str | None]
            | tuple[str, IPInterface, str | None, str | None, IPAddress | None]
        ],
    ) -> list[bool | OSError]:
        """Add many VIPs at once (a mass failover): ``(ifname, vip, label[, scope, brd])`` each.

        The requests go back to back on the caller's thread, each already encoded
        (:meth:`prepare`) or encoded once now.  Per item, in order: True added,
        False already there, or the :class:`NetlinkOperationError` :meth:`add` would raise.
        """
        codes = []
        for item in items:
            ifname, vip, label = item[0], item[1], item[2]
            scope, brd = (item[3], item[4]) if len(item) == 5 else (None, None)
            scope_n = SCOPES[scope] if scope is not None else None
            codes.append(self._addrs.change(RTM_NEWADDR, ifname, vip, label, scope=scope_n, brd=brd))
        out: list[bool | OSError] = []
        for item, code in zip(items, codes, strict=True):
            ifname, vip = item[0], item[1]
            if code in (0, errno.EEXIST):
                out.append(code == 0)
            else:
                reason = "interface not found" if code == errno.ENODEV else os.strerror(code)
                out.append(NetlinkOperationError(code, f"cannot add {vip} to {ifname!r}: {reason}"))
        return out

    def remove(self, ifname: str, address: IPInterface | str) -> bool:
        """Remove a VIP (RFC 5798 §6.4.3); True if removed, False if it was not there.

        A missing interface also counts as "not there" (its addresses went with it).
        """
        vip = ip_interface(address) if isinstance(address, str) else address
        code = self._addrs.change(RTM_DELADDR, ifname, vip, None)
        if code == 0:
            return True
        if code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT, errno.ESRCH):
            return False
        raise NetlinkOperationError(code, f"cannot remove {vip} from {ifname!r}: {os.strerror(code)}")

    # ------------------------------------------------------------ routes and rules

    def add_route(self, req: RouteRequest) -> None:
        """``ip route replace`` (idempotent); raises :class:`NetlinkOperationError` naming the route."""
        index = self._index_for(req.ifname, f"cannot add route {req}")
        code = self._addrs.request(_route_request(RTM_NEWROUTE, req, index))
        if code:
            raise NetlinkOperationError(code, f"cannot add route {req}: {os.strerror(code)}")

    def remove_route(self, req: RouteRequest) -> bool:
        """``ip route del``; True if removed, False if it was not there (or its link is gone)."""
        try:
            index = self._index_for(req.ifname, "")
        except NetlinkOperationError:
            return False  # the link went, and its routes with it
        code = self._addrs.request(_route_request(RTM_DELROUTE, req, index))
        if code == 0:
            return True
        if code in (errno.ESRCH, errno.ENOENT, errno.ENODEV):
            return False
        raise NetlinkOperationError(code, f"cannot remove route {req}: {os.strerror(code)}")

    def add_rule(self, req: RuleRequest) -> bool:
        """``ip rule add``; True if added, False if the same rule was there already."""
        code = self._addrs.request(_rule_request(RTM_NEWRULE, req))
        if code == 0:
            return True
        if code == errno.EEXIST:
            return False
        raise NetlinkOperationError(code, f"cannot add rule {req}: {os.strerror(code)}")

    def remove_rule(self, req: RuleRequest) -> bool:
        """``ip rule del``; True if removed, False if it was not there."""
        code = self._addrs.request(_rule_request(RTM_DELRULE, req))
        if code == 0:
            return True
        if code in (errno.ENOENT, errno.ESRCH):
            return False
        raise NetlinkOperationError(code, f"cannot remove rule {req}: {os.strerror(code)}")

    @staticmethod
    def _index_for(ifname: str | None, what: str) -> int | None:
        if ifname is None:
            return None
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            raise NetlinkOperationError(errno.ENODEV, f"{what}: interface {ifname!r} not found") from None
    # ------------------------------------------------------------ macvlans (use_vmac)

    def macvlan(self, ifname: str) -> MacvlanInfo | None:
        """What the link ``ifname`` is (None: no such link); ``kind`` is '' for a plain device."""
        try:
            msg = self._thread.call(self._req.link(ifname))
        except InterfaceNotFound:
            return None
        info = msg.get_attr("IFLA_LINKINFO")
        kind = str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""
        mode = ""
        if kind == "macvlan":
            data = info.get_attr("IFLA_INFO_DATA")
            mode = str(data.get_attr("IFLA_MACVLAN_MODE") or "") if data is not None else ""
        return MacvlanInfo(
            ifindex=int(msg["index"]),
            kind=kind,
            base_index=int(msg.get_attr("IFLA_LINK") or 0),
            mac=str(msg.get_attr("IFLA_ADDRESS") or "").lower(),
            mode=mode,
            up=bool(int(msg["flags"]) & IFF_UP),
        )

    def add_macvlan(self, ifname: str, base: str, mac: str, *, mode: str = "private") -> int:
        """Create the macvlan ``ifname`` on ``base`` with ``mac`` (left down); returns its ifindex.

        keepalived's vrrp_vmac.c creates its VMACs the same way: kind macvlan, mode
        private, IFLA_LINK the base, IFLA_ADDRESS the virtual MAC.
        """
        base_index = self.link_index(base)

        async def _add() -> None:
            async with self._req.lock:
                await self._req.ipr.link(
                    "add", ifname=ifname, kind="macvlan", link=base_index, macvlan_mode=mode, address=mac
                )

        try:
            self._thread.call(_add())
        except NetlinkError as exc:
            raise NetlinkOperationError(
                exc.code, f"cannot create macvlan {ifname!r} on {base!r}: {_strerror(exc)}"
            ) from exc
        return self.link_index(ifname)

    def set_link_up(self, ifname: str, up: bool = True) -> None:
        """Admin up (or down) ``ifname``."""
        index = self.link_index(ifname)

        async def _set() -> None:
            async with self._req.lock:
                await self._req.ipr.link("set", index=index, state="up" if up else "down")

        try:
            self._thread.call(_set())
        except NetlinkError as exc:
            raise NetlinkOperationError(
                exc.code, f"cannot set {ifname!r} {'up' if up else 'down'}: {_strerror(exc)}"
            ) from exc

    def delete_link(self, ifname: str) -> bool:
        """Delete the link ``ifname``; True if deleted, False if it was not there."""
        try:
            index = self.link_index(ifname)
        except InterfaceNotFound:
            return False

        async def _del() -> None:
            async with self._req.lock:
                await self._req.ipr.link("del", index=index)

        try:
            self._thread.call(_del())
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return False
            raise NetlinkOperationError(exc.code, f"cannot delete {ifname!r}: {_strerror(exc)}") from exc
        return True

    # ------------------------------------------------------------ events

    async def events(self, ifnames: Iterable[str] | None = None) -> AsyncIterator[NetlinkEvent]:
        """Link/address events in the caller's loop (see :class:`NetlinkMonitor`)."""
        mon = NetlinkMonitor(ifnames)
        await mon.start()
        try:
            async for ev in mon.events():
                yield ev
        finally:
            mon.close()


# ---------------------------------------------------------------------------------------------
# Monitor


class NetlinkMonitor:
    """Link and address events from RTMGRP_LINK / IPV4_IFADDR / IPV6_IFADDR on the caller's loop.

    ``await mon.start()`` subscribes (events after that are never lost: they are
    queued), then ``async for ev in mon.events(): ...``.  ``ifnames`` restricts
    events to those interfaces (None = all).  ``rcvbuf`` is the kernel receive
    buffer (SO_RCVBUFFORCE when root); on an overflow see :meth:`events`.
    """

    GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

    def __init__(self, ifnames: Iterable[str] | None = None, *, rcvbuf: int = 4 << 20) -> None:
        self._links = LinkTable.watching(ifnames)
        self.rcvbuf = rcvbuf
        self._ipr: Any = None
        self._closed = False
        self.resyncs = 0

    async def start(self) -> None:
        self._closed = False
        await self._open()

    async def _open(self) -> None:
        ipr = AsyncIPRoute()
        try:
            try:
                ipr.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:  # not root: capped by net.core.rmem_max
                ipr.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            await ipr.bind(groups=self.GROUPS)
        except BaseException:
            ipr.close()
            raise
        self._ipr = ipr
        # Seed after subscribing: a change in between shows up as an event too.
        req = await _Requests.open()
        try:
            for msg in await req.links():
                self._links.seed(
                    int(msg["index"]), str(msg.get_attr("IFLA_IFNAME")), link_up(int(msg["flags"]))
                )
            for info in await req.addresses():
                self._links.seed_address(info.ifindex, info.address)
        finally:
            req.close()

    def _close_socket(self) -> None:
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            ipr.close()

    def close(self) -> None:
        self._closed = True
        self._close_socket()

    async def __aenter__(self) -> NetlinkMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def is_up(self, ifname: str) -> bool | None:
        """Last known up state of ``ifname`` (None if unknown)."""
        return self._links.is_up(ifname)

    def translate(self, msg: Any) -> NetlinkEvent | None:
        """One pyroute2 rtnetlink message -> event (or None if filtered / unchanged / not ours)."""
        kind = msg["header"]["type"]
        idx = int(msg.get("index", 0))
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            name = msg.get_attr("IFLA_IFNAME")
            up = kind == RTM_NEWLINK and link_up(int(msg["flags"]))
            return self._links.link(idx, str(name) if name else None, up, deleted=kind == RTM_DELLINK)
        if kind in (RTM_NEWADDR, RTM_DELADDR):
            label = msg.get_attr("IFA_LABEL")
            return self._links.address(
                idx, str(label) if label else None, _iface_of(msg), added=kind == RTM_NEWADDR
            )
        return None

    async def events(self) -> AsyncIterator[NetlinkEvent]:
        """Yield events until cancelled or closed.

        If the socket fails (ENOBUFS: the kernel dropped events while the loop
        was blocked), the monitor resubscribes, re-reads every link and address
        and yields what changed meanwhile (:func:`resync_events`).
        """
        if self._ipr is None and not self._closed:
            await self.start()
        while self._ipr is not None:
            try:
                async for msg in self._ipr.get():
                    ev = self.translate(msg)
                    if ev is not None:
                        yield ev
            except (OSError, NetlinkError) as exc:
                if self._closed:
                    return
                _log.warning("netlink_monitor_resync", error=str(exc) or repr(exc))
                for ev in await self._resync():
                    yield ev

    async def _resync(self) -> list[NetlinkEvent]:
        self.resyncs += 1
        old = self._links.forget()
        self._close_socket()
        await asyncio.sleep(0.1)  # no tight loop if the socket keeps failing
        if self._closed:
            return []
        await self._open()
        return resync_events(old, self._links)
