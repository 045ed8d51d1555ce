"""Netlink event and error types shared by both netlink clients (no pyroute2 import).

:mod:`pyvrrp.adapters.netlink` (pyroute2) and :mod:`pyvrrp.adapters.rtnl`
(hand-written, used by the daemon) emit the same :class:`LinkEvent` /
:class:`AddressEvent` objects and raise the same errors.  They live here so
that importing them costs nothing: ``import pyroute2`` alone takes ~90-150 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface

__all__ = [
    "IFF_RUNNING",
    "IFF_UP",
    "AddressEvent",
    "LinkEvent",
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
