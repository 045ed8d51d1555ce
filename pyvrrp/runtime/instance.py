"""One running ``vrrp_instance``: its engine and what the runtime keeps beside it.

The engine (:class:`~pyvrrp.proto.router.VirtualRouter`) holds every protocol
fact (state, timers, counters, VIPs held); :class:`Instance` holds only what the
engine must not know: the config block it came from, the socket it shares with
the other instances on its interface, its entry in the supervisor's timer heap, the inputs waiting to be
fed, and the split-brain guards wired to it.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvrrp.config.models import VrrpInstance
from pyvrrp.proto import events as ev
from pyvrrp.proto.router import VirtualRouter

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from pyvrrp.adapters.vrrp_socket import VrrpSocket
    from pyvrrp.splitbrain.conflict import ConflictMonitor
    from pyvrrp.splitbrain.gateway import GatewayMonitor

__all__ = ["TIMER", "At", "Instance", "Queued", "TimerFired"]


class TimerFired:
    """The inbox item for "the engine's deadline was reached" (``handle_timer``)."""

    def __repr__(self) -> str:
        return "TIMER"


TIMER = TimerFired()


@dataclass(frozen=True, slots=True)
class At:
    """An input dated earlier than now: an advert from its kernel arrival stamp."""

    event: ev.Input
    at: float


Queued = ev.Input | At | TimerFired


@dataclass(eq=False)
class Instance:
    """Runtime wrapper of one engine."""

    name: str
    spec: VrrpInstance
    router: VirtualRouter
    log: FilteringBoundLogger
    sock: VrrpSocket | None = None
    """None while the instance waits for its interface (``waiting_for``)."""
    waiting_for: str | None = None
    """Why the instance cannot run yet (interface missing, no address): it holds a FAULT."""
    mac: bytes = b""
    """The interface's MAC (conflict detection compares it with ARP answers)."""
    timer_at: float | None = None
    """The engine deadline the supervisor's timer heap holds for this instance (None: none)."""
    heap_seq: int = -1
    """Sequence number of this instance's live entry in the supervisor's timer heap (-1: none)."""
    heap_at: float = 0.0
    """When that entry fires (it may be earlier than the deadline: it then re-checks)."""
    rx_key: bytes | None = None
    """The receive fast path: bytes 12.. of the last advert datagram fed (IPv4 src, dst, VRRP)..."""
    rx_ttl: int = -1
    rx_event: ev.AdvertReceived | None = None
    """...its TTL and the input it became (the engine's ``refresh`` recognises this very object)."""
    rx_lower: bool = False
    """...and whether its priority was below ours then (preemption: ``last_lower_rx``)."""
    inbox: collections.deque[Queued] = field(default_factory=collections.deque)
    busy: bool = False
    removing_vips: set[str] = field(default_factory=set)
    """VIPs we are removing ourselves: their netlink removal event is not "deleted externally"."""
    pending_takeover: asyncio.Task[None] | None = None
    last_lower_rx: float | None = None
    """When an advert from a lower-priority router last arrived (preemption, SM-07)."""
    gateway: GatewayMonitor | None = None
    conflict: ConflictMonitor | None = None

    @property
    def ifname(self) -> str:
        return self.spec.interface

    @property
    def family(self) -> int:
        return self.spec.family

    @property
    def key(self) -> tuple[str, int]:
        """The socket this instance shares: (interface, address family)."""
        return (self.spec.interface, self.spec.family)

    def labels(self) -> dict[str, str | None]:
        """VIP -> ``label`` as configured."""
        return {str(v.address): v.label for v in self.spec.virtual_ipaddress}
