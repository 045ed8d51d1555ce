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

from pyvrrp.config.models import VirtualIPAddress, VrrpInstance
from pyvrrp.proto import events as ev
from pyvrrp.proto.ah import IPPROTO_AH, AhSession
from pyvrrp.proto.router import VirtualRouter

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address

    from structlog.typing import FilteringBoundLogger

    from pyvrrp.adapters.netlink import RouteRequest, RuleRequest
    from pyvrrp.adapters.vrrp_socket import VrrpSocket
    from pyvrrp.splitbrain.conflict import ConflictMonitor
    from pyvrrp.splitbrain.gateway import GatewayMonitor

__all__ = ["TIMER", "At", "Extras", "Instance", "Queued", "TimerFired"]


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
    placed: dict[str, str] = field(default_factory=dict)
    """VIP -> the interface it was added on (a reload may drop it from the config: it still
    comes off that interface)."""
    extras: Extras | None = None
    """What the instance installed as MASTER besides its VIPs (None: nothing)."""
    _by_vip: tuple[VrrpInstance, dict[str, VirtualIPAddress]] | None = field(default=None, repr=False)
    witness_key: str | None = None
    """The etcd key (under the witness prefix) gating this instance's VIPs; None: unwitnessed."""
    witness_revision: int | None = None
    """The revision of that key while this node holds it (the fencing token); None: not held."""
    ah: AhSession | None = None
    """keepalived's ``auth_type AH``: key, sequence counter (None: no AH)."""

    @property
    def ifname(self) -> str:
        return self.spec.interface

    @property
    def vip_ifname(self) -> str:
        """Where the VIPs go and the GARPs/NAs leave: the ``use_vmac`` macvlan, else the interface."""
        return self.spec.vmac_ifname or self.spec.interface

    @property
    def xmit_ifname(self) -> str:
        """Where adverts are sent and received: the macvlan unless ``vmac_xmit_base``."""
        if self.spec.use_vmac and not self.spec.vmac_xmit_base:
            return self.vip_ifname
        return self.spec.interface

    @property
    def family(self) -> int:
        return self.spec.family

    @property
    def key(self) -> tuple[str, int]:
        """The socket this instance shares: (interface adverts use, address family), or
        (that interface, 51) for an ``auth_type AH`` instance (an IPPROTO_AH socket)."""
        if self.ah is not None:
            return (self.xmit_ifname, IPPROTO_AH)
        return (self.xmit_ifname, self.spec.family)

    def labels(self) -> dict[str, str | None]:
        """VIP -> ``label`` as configured."""
        return {str(v.address): v.label for v in self.spec.virtual_ipaddress}

    def vip_entry(self, vip: ev.IPInterface) -> VirtualIPAddress | None:
        """The configured ``virtual_ipaddress`` entry of ``vip`` (its dev, label, scope, brd)."""
        if self._by_vip is None or self._by_vip[0] is not self.spec:
            self._by_vip = (self.spec, {str(v.address): v for v in self.spec.virtual_ipaddress})
        return self._by_vip[1].get(str(vip))

    def vip_dev(self, vip: ev.IPInterface) -> str:
        """The interface ``vip`` goes on: its ``dev``, else the macvlan (use_vmac) or the interface."""
        entry = self.vip_entry(vip)
        return entry.dev if entry is not None and entry.dev else self.vip_ifname

    def vip_opts(
        self, vip: ev.IPInterface
    ) -> tuple[str, str | None, str | None, IPv4Address | IPv6Address | None]:
        """``(dev, label, scope, brd)`` of ``vip``, as netlink adds it."""
        entry = self.vip_entry(vip)
        if entry is None:
            return (self.vip_ifname, None, None, None)
        return (entry.dev or self.vip_ifname, entry.label, entry.scope, entry.brd)


@dataclass
class Extras:
    """Installed by a MASTER besides its VIPs (keepalived ``virtual_ipaddress_excluded``,
    ``virtual_routes``, ``virtual_rules``): exactly what to remove when it leaves MASTER."""

    addresses: list[tuple[str, ev.IPInterface]] = field(default_factory=list)
    routes: list[RouteRequest] = field(default_factory=list)
    rules: list[RuleRequest] = field(default_factory=list)
