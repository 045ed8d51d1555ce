"""Netlink adapter (pyroute2 ``AsyncIPRoute``): VIPs, interface facts, link/address monitor.

All calls are coroutines on the running loop (pyroute2's asyncio core), so
nothing here blocks the daemon.  Operations are idempotent where the VRRP
state machine needs them to be: adding a VIP that is already there and
removing one that is already gone both succeed (keepalived behaves the same;
after a crash or a manual ``ip addr del`` the state converges).

* VIPs: RFC 5798 §6.4.1 "for each IP address associated with the virtual
  router, add it" / §6.4.3 remove on leaving MASTER (SM-08/SM-03, FAULT SM-16).  IPv6 VIPs
  are added with IFA_F_NODAD so they are usable at once (a master must answer
  for them immediately, and the unsolicited NA must not be suppressed by a
  tentative address).
* ``primary_address``: the advert source (RFC 5798 §5.1.1.1 / §5.1.2.1,
  PKT-09): the first primary global IPv4 address, or the IPv6 link-local.
* Monitor: RTNLGRP_LINK / IPV4_IFADDR / IPV6_IFADDR as :class:`LinkEvent`
  (only when the up state of a link changes) and :class:`AddressEvent`.
  Note: Linux flushes IPv6 addresses of a link that goes down unless
  ``keep_addr_on_down`` is set, so a link-down is followed by AddressEvents.

Errors: a missing interface raises :class:`InterfaceNotFound` naming it;
other kernel refusals raise :class:`NetlinkOperationError` with the
operation, the address and the kernel's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_interface
from typing import Any, TypeVar

import structlog
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink_events import (  # re-exported: they live in a pyroute2-free module
    IFF_RUNNING,
    IFF_UP,
    AddressEvent,
    LinkEvent,
    LinkTable,
    NetlinkEvent,
    NetlinkOperationError,
    link_up,
)

__all__ = [
    "IFF_RUNNING",
    "IFF_UP",
    "AddressEvent",
    "InterfaceNotFound",
    "LinkEvent",
    "Netlink",
    "NetlinkEvent",
    "NetlinkMonitor",
    "NetlinkOperationError",
    "SyncNetlink",
    "netlink",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253

_log = structlog.get_logger("pyvrrp.adapters.netlink")
_T = TypeVar("_T")


def _link_up(flags: int) -> bool:
    return link_up(flags)


def _iface_of(msg: Any) -> IPInterface | None:
    addr = msg.get("address") or msg.get("IFA_ADDRESS")
    if addr is None:
        return None
    try:
        return ip_interface(f"{addr}/{msg['prefixlen']}")
    except ValueError:
        return None


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


class Netlink:
    """Request side: interface facts and VIP add/remove.

    ``async with await Netlink.open() as nl: ...`` or ``nl = await Netlink.open(); ...; nl.close()``.
    """

    def __init__(self, ipr: AsyncIPRoute) -> None:
        self._ipr = ipr
        self._lock = asyncio.Lock()  # one request at a time on the shared socket

    @classmethod
    async def open(cls) -> Netlink:
        ipr = AsyncIPRoute()
        await ipr.setup_endpoint()
        return cls(ipr)

    def close(self) -> None:
        self._ipr.close()

    async def __aenter__(self) -> Netlink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ links

    async def _link(self, ifname: str) -> Any:
        async with self._lock:
            try:
                links = await self._ipr.link("get", ifname=ifname)
            except NetlinkError as exc:
                if exc.code in (errno.ENODEV, errno.ENOENT):
                    raise InterfaceNotFound(ifname) from None
                raise NetlinkOperationError(exc.code, f"link get {ifname!r}: {exc}") from exc
        if not links:
            raise InterfaceNotFound(ifname)
        return links[0]

    async def link_index(self, ifname: str) -> int:
        """ifindex of ``ifname`` (raises InterfaceNotFound)."""
        return int((await self._link(ifname))["index"])

    async def link_mac(self, ifname: str) -> str:
        """Hardware address as ``"aa:bb:cc:dd:ee:ff"`` (raises InterfaceNotFound)."""
        mac = (await self._link(ifname)).get("address")
        if not mac:
            raise NetlinkOperationError(errno.EINVAL, f"interface {ifname!r} has no hardware address")
        return str(mac)

    async def link_is_up(self, ifname: str) -> bool:
        """Admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
        return _link_up(int((await self._link(ifname))["flags"]))

    async def link_names(self) -> dict[int, str]:
        """ifindex -> name for every link in this namespace."""
        out: dict[int, str] = {}
        async with self._lock:
            async for msg in await self._ipr.link("dump"):
                out[int(msg["index"])] = str(msg.get("ifname"))
        return out

    async def events(self, ifnames: Iterable[str] | None = None) -> AsyncIterator[NetlinkEvent]:
        """Link/address events on a separate monitor socket (see :class:`NetlinkMonitor`)."""
        mon = NetlinkMonitor(ifnames)
        await mon.start()
        try:
            async for ev in mon.events():
                yield ev
        finally:
            mon.close()

    # ------------------------------------------------------------ addresses

    async def _addr_msgs(self, index: int, family: int = socket.AF_UNSPEC) -> list[Any]:
        async with self._lock:
            kw: dict[str, Any] = {"index": index}
            if family != socket.AF_UNSPEC:
                kw["family"] = family
            return [msg async for msg in await self._ipr.addr("dump", **kw)]

    async def list_addresses(self, ifname: str) -> list[IPInterface]:
        """Every address on ``ifname`` in kernel order (IPv4 first)."""
        index = await self.link_index(ifname)
        out = []
        for msg in await self._addr_msgs(index):
            iface = _iface_of(msg)
            if iface is not None and int(msg.get("index", index)) == index:
                out.append(iface)
        return out

    async def primary_address(
        self, ifname: str, family: int, *, exclude: Iterable[IPAddress | IPInterface] = ()
    ) -> IPAddress | None:
        """The advert source (PKT-09): first primary global IPv4, or the IPv6 link-local.

        ``exclude`` skips addresses we put there ourselves (VIPs).  Tentative
        IPv6 addresses are skipped.  None if the interface has none.
        """
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, got {family!r}")
        skip = {a.ip if isinstance(a, IPv4Interface | IPv6Interface) else a for a in exclude}
        index = await self.link_index(ifname)
        for msg in await self._addr_msgs(index, _family(family)):
            iface = _iface_of(msg)
            if iface is None or iface.ip in skip or iface.version != family:
                continue
            flags = int(msg.get("IFA_FLAGS") or msg["flags"])
            if family == 4:
                if msg["scope"] == RT_SCOPE_UNIVERSE and not flags & IFA_F_SECONDARY:
                    return iface.ip
            elif iface.ip.is_link_local and not flags & IFA_F_TENTATIVE:
                return iface.ip
        return None

    async def add_vip(self, ifname: str, address: IPInterface | str, label: str | None = None) -> bool:
        """Add a VIP (RFC 5798 §6.4.1).  Returns True if added, False if it was already there.

        IPv6 VIPs get IFA_F_NODAD.  ``label`` (IPv4 only) must start with the
        interface name, as the kernel requires (keepalived ``label eth0:vip``).
        """
        iface = ip_interface(address) if isinstance(address, str) else address
        index = await self.link_index(ifname)
        kw: dict[str, Any] = {
            "index": index,
            "address": str(iface.ip),
            "prefixlen": iface.network.prefixlen,
            "family": _family(iface.version),
        }
        if iface.version == 6:
            kw["flags"] = IFA_F_NODAD
        elif label:
            kw["label"] = label
        async with self._lock:
            try:
                await self._ipr.addr("add", **kw)
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    return False
                if exc.code == errno.ENODEV:
                    raise InterfaceNotFound(ifname) from None
                raise NetlinkOperationError(exc.code, f"add {iface} on {ifname!r}: {exc.args[1]}") from exc
        _log.info("vip_added", iface=ifname, vip=str(iface))
        return True

    async def remove_vip(self, ifname: str, address: IPInterface | str) -> bool:
        """Remove a VIP (RFC 5798 §6.4.3).  True if removed, False if it was not there.

        A missing interface also counts as "not there" (its addresses are gone with it).
        """
        iface = ip_interface(address) if isinstance(address, str) else address
        try:
            index = await self.link_index(ifname)
        except InterfaceNotFound:
            return False
        async with self._lock:
            try:
                await self._ipr.addr(
                    "del",
                    index=index,
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    family=_family(iface.version),
                )
            except NetlinkError as exc:
                if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT, errno.ESRCH):
                    return False
                raise NetlinkOperationError(exc.code, f"delete {iface} on {ifname!r}: {exc.args[1]}") from exc
        _log.info("vip_removed", iface=ifname, vip=str(iface))
        return True


class NetlinkMonitor:
    """Link and address events from RTNLGRP_LINK / IPV4_IFADDR / IPV6_IFADDR.

    ``await mon.start()`` subscribes (events after that are never lost), then
    ``async for ev in mon.events(): ...`` or ``await mon.run(callback)``.
    ``ifnames`` restricts events to those interfaces (None = all).
    LinkEvents are emitted only when a link's up state changes (or it is deleted).
    """

    def __init__(self, ifnames: Iterable[str] | None = None) -> None:
        self._links = LinkTable(ifnames)
        self._ipr: AsyncIPRoute | None = None

    async def start(self) -> None:
        ipr = AsyncIPRoute()
        await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        self._ipr = ipr
        # Seed names/up-state after subscribing: a change in between shows up as an event.
        async with AsyncIPRoute() as req:
            async for msg in await req.link("dump"):
                self._links.seed(int(msg["index"]), str(msg.get("ifname")), _link_up(int(msg["flags"])))

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def __aenter__(self) -> NetlinkMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def is_up(self, ifname: str) -> bool | None:
        """Last known up state of ``ifname`` (None if unknown)."""
        return self._links.is_up(ifname)

    def translate(self, msg: Any) -> NetlinkEvent | None:
        """One rtnetlink message -> event (or None if filtered / unchanged)."""
        mtype = msg["header"]["type"]
        idx = int(msg.get("index", 0))
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            name = msg.get("ifname")
            up = mtype == RTM_NEWLINK and _link_up(int(msg["flags"]))
            return self._links.link(idx, str(name) if name else None, up, deleted=mtype == RTM_DELLINK)
        if mtype in (RTM_NEWADDR, RTM_DELADDR):
            label = msg.get("IFA_LABEL")
            return self._links.address(
                idx, str(label) if label else None, _iface_of(msg), added=mtype == RTM_NEWADDR
            )
        return None

    async def events(self) -> AsyncIterator[NetlinkEvent]:
        """Yield events until cancelled.

        If the socket fails (typically ENOBUFS: the kernel dropped events
        during a storm), the monitor resubscribes, re-reads every link and
        yields a LinkEvent for each link whose up state changed meanwhile
        (address events lost in the overflow are not replayed).
        """
        if self._ipr is None:
            await self.start()
        while self._ipr is not None:
            try:
                async for msg in self._ipr.get():
                    ev = self.translate(msg)
                    if ev is not None:
                        yield ev
            except (OSError, NetlinkError) as exc:
                _log.warning("netlink_monitor_resync", error=str(exc))
                for ev in await self._resync():
                    yield ev

    async def _resync(self) -> list[LinkEvent]:
        old = self._links.forget()
        self.close()
        await asyncio.sleep(0.1)  # no tight loop if the socket keeps failing
        await self.start()
        return self._links.lost_events(old)

    async def run(self, callback: Callable[[NetlinkEvent], Awaitable[None] | None]) -> None:
        """Feed every event to ``callback`` (sync or async) until cancelled."""
        async for ev in self.events():
            try:
                res = callback(ev)
                if asyncio.iscoroutine(res):
                    await res
            except Exception:  # a consumer bug must not stop link monitoring; make it loud
                _log.exception("netlink_event_callback_failed", event=repr(ev))


class SyncNetlink:
    """Blocking facade of :class:`Netlink` that is safe to call from inside a running loop.

    pyroute2's synchronous ``IPRoute`` cannot be used in a thread whose asyncio
    loop is running ("This event loop is already running").  This class runs
    an ``AsyncIPRoute``-based :class:`Netlink` on a private thread with its
    own loop and waits for each call (typically well under a millisecond; at
    most ``timeout_s``).  It exists for an in-order, synchronous action
    executor: ``AddVips`` must be done before the ``AnnounceVips`` that
    follows it (RFC 5798 §6.4.1 order).  Methods and errors are those of
    :class:`Netlink`; a stuck kernel call raises ``TimeoutError``.
    """

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pyvrrp-netlink", daemon=True)
        self._thread.start()
        self._nl: Netlink = self._call(Netlink.open())

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(self.timeout_s)
        except TimeoutError:
            fut.cancel()
            raise TimeoutError(f"netlink request took longer than {self.timeout_s}s") from None

    def link_index(self, ifname: str) -> int:
        return self._call(self._nl.link_index(ifname))

    def link_mac(self, ifname: str) -> str:
        return self._call(self._nl.link_mac(ifname))

    def link_is_up(self, ifname: str) -> bool:
        return self._call(self._nl.link_is_up(ifname))

    def list_addresses(self, ifname: str) -> list[IPInterface]:
        return self._call(self._nl.list_addresses(ifname))

    def primary_address(
        self, ifname: str, family: int, *, exclude: Iterable[IPAddress | IPInterface] = ()
    ) -> IPAddress | None:
        return self._call(self._nl.primary_address(ifname, family, exclude=tuple(exclude)))

    def add_vip(self, ifname: str, address: IPInterface | str, label: str | None = None) -> bool:
        return self._call(self._nl.add_vip(ifname, address, label=label))

    def remove_vip(self, ifname: str, address: IPInterface | str) -> bool:
        return self._call(self._nl.remove_vip(ifname, address))

    async def events(self, ifnames: Iterable[str] | None = None) -> AsyncIterator[NetlinkEvent]:
        """Link/address events, delivered in the *caller's* loop (see :class:`NetlinkMonitor`)."""
        mon = NetlinkMonitor(ifnames)
        await mon.start()
        try:
            async for ev in mon.events():
                yield ev
        finally:
            mon.close()

    def close(self) -> None:
        if not self._loop.is_running():
            return

        async def _close() -> None:
            self._nl.close()

        with contextlib.suppress(TimeoutError, RuntimeError):
            self._call(_close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


@contextlib.asynccontextmanager
async def netlink() -> AsyncIterator[Netlink]:
    """``async with netlink() as nl:`` convenience."""
    nl = await Netlink.open()
    try:
        yield nl
    finally:
        nl.close()
