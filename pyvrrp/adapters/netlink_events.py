"""Netlink event and error types shared by both netlink clients (no pyroute2 import).

:mod:`pyvrrp.adapters.netlink` (pyroute2) and :mod:`pyvrrp.adapters.rtnl`
(hand-written, used by the daemon) emit the same :class:`LinkEvent` /
:class:`AddressEvent` objects and raise the same errors.  They live here so
that importing them costs nothing: ``import pyroute2`` alone takes ~90-150 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface

TYPE_CHECKING = False  # mypy reads it as True: the fast-start path imports this module (link_up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "IFF_RUNNING",
    "IFF_UP",
    "AddressEvent",
    "LinkEvent",
    "LinkTable",
    "NetlinkEvent",
    "NetlinkOperationError",
    "link_up",
    "resync_events",
]

IFF_UP = 0x1
IFF_RUNNING = 0x40  # carrier (RFC 2863 operational), keepalived's "IFF_UP && IFF_RUNNING"


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
    address: IPv4Interface | IPv6Interface
    added: bool


NetlinkEvent = LinkEvent | AddressEvent


def link_up(flags: int) -> bool:
    """``ifi_flags`` -> usable: admin up and carrier (IFF_UP && IFF_RUNNING, as keepalived)."""
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


def resync_events(
    old_up: dict[int, bool],
    old_names: dict[int, str],
    up: dict[int, bool],
    names: dict[int, str],
    wanted: Callable[[str], bool],
) -> list[LinkEvent]:
    """The LinkEvents a monitor lost in a socket overflow, from link dumps before and after.

    A link whose up state differs (or that is new) yields its current state; a link
    that vanished yields ``deleted``.  Lost address events cannot be rebuilt this way.
    """
    out = [
        LinkEvent(names[idx], idx, state)
        for idx, state in up.items()
        if old_up.get(idx) != state and wanted(names[idx])
    ]
    out += [
        LinkEvent(old_names[idx], idx, False, deleted=True)
        for idx in old_up.keys() - up.keys()
        if wanted(old_names[idx])
    ]
    return out


class LinkTable:
    """What a link monitor knows: each link's name and up state, and the events that follow.

    Both monitors (:mod:`pyvrrp.adapters.rtnl`, :mod:`pyvrrp.adapters.netlink`) decode
    their own messages and feed the result here, so they agree on when an event is due:
    a LinkEvent only when a link's up state (or name) changes or it is deleted; an
    AddressEvent named after the link (its label, or ``if<index>``, when the link is
    unknown); nothing for interfaces outside ``ifnames`` (None = all).
    """

    def __init__(self, ifnames: Iterable[str] | None = None) -> None:
        self.filter = set(ifnames) if ifnames is not None else None
        self.names: dict[int, str] = {}
        self.up: dict[int, bool] = {}

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

    def link(self, idx: int, ifname: str | None, up: bool, *, deleted: bool = False) -> LinkEvent | None:
        """RTM_NEWLINK / RTM_DELLINK of link ``idx`` -> the event due, if any."""
        name = ifname or self.names.get(idx, f"if{idx}")
        old_name = self.names.get(idx)
        self.names[idx] = name
        if deleted:
            self.up.pop(idx, None)
            self.names.pop(idx, None)
            return LinkEvent(name, idx, False, deleted=True) if self.wanted(name) else None
        if self.up.get(idx) == up and old_name == name:
            return None
        self.up[idx] = up
        return LinkEvent(name, idx, up) if self.wanted(name) else None

    def address(
        self, idx: int, label: str | None, address: IPv4Interface | IPv6Interface | None, *, added: bool
    ) -> AddressEvent | None:
        """RTM_NEWADDR / RTM_DELADDR on link ``idx`` -> the event due, if any."""
        name = self.names.get(idx) or label or f"if{idx}"
        if address is None or not self.wanted(name):
            return None
        return AddressEvent(name, idx, address, added=added)

    def forget(self) -> tuple[dict[int, bool], dict[int, str]]:
        """Empty the table before a fresh dump (after a socket overflow); returns what it held."""
        old = (dict(self.up), dict(self.names))
        self.up.clear()
        self.names.clear()
        return old

    def lost_events(self, old: tuple[dict[int, bool], dict[int, str]]) -> list[LinkEvent]:
        """The LinkEvents between ``old`` (from :meth:`forget`) and the table now."""
        return resync_events(old[0], old[1], self.up, self.names, self.wanted)
