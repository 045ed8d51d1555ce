"""The supervisor: feeds the engines and keeps their timers, nothing else.

Theory of operation
-------------------
Data flows one way::

    VRRP socket --datagram--> decode --Advertisement--> engine --actions--> executor
                                                          ^
    netlink, trackers, guards, signals --inputs-----------'   timer (next_deadline)

:meth:`Supervisor.on_datagram` is the receive path: the datagram is decoded by
the pure codec (:func:`pyvrrp.proto.packet.decode`), dated from its kernel
arrival stamp, and fed to the instance of its VRID on that (interface, family)
socket.  :meth:`Supervisor.feed` is the only way an input reaches an engine; it
performs the returned actions in order through the
:class:`~pyvrrp.runtime.executor.Executor` and then re-arms the instance's one
loop timer at ``router.next_deadline()`` (aioquic's ``transmit()`` funnel).

Feeding is re-entrant safe: an action whose execution produces a new input
(a VIP that cannot be added becomes a fault, a sync-group member's transition
moves its siblings) queues that input in the instance's inbox, and it is handled
after the current action list, so actions of two inputs never interleave.

Timers: epoll sleeps in whole milliseconds, so a loop timer fires up to ~1.5 ms
late.  A BACKUP's Master_Down deadline decides failover time, so its timer is
set :data:`TIMER_LEAD_S` early and :meth:`_on_timer` spins to the exact instant,
polling the VRRP socket meanwhile: an advert that arrives in those last
milliseconds still holds the takeover off.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address

import structlog

from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.base import clock
from pyvrrp.base.ratelog import RateLimitedLogger
from pyvrrp.config.models import VrrpSyncGroup
from pyvrrp.proto import events as ev
from pyvrrp.proto.packet import InvalidPacket, decode
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.proto.syncgroup import SyncGroup
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.instance import TIMER, At, Instance, TimerFired

__all__ = ["MAX_ARRIVAL_AGE_S", "TIMER_LEAD_S", "Supervisor"]

log = structlog.get_logger("pyvrrp")

TIMER_LEAD_S = 0.002
"""A BACKUP's timer fires this early and spins to the deadline (module docstring)."""

MAX_ARRIVAL_AGE_S = 0.5
"""A kernel arrival stamp older than this (or in the future) is a wall-clock step: use "now"."""

MAX_DRAIN = 1024
"""At most this many queued datagrams are read before a timer fires (a flood cannot stall it)."""

SocketKey = tuple[str, int]
IPAddress = IPv4Address | IPv6Address


class Supervisor:
    """Owns the running instances, their sockets and timers; feeds inputs, runs actions."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.executor: Executor | None = None  # bound once by the daemon (it needs our feed)
        self.instances: dict[str, Instance] = {}
        self.sockets: dict[SocketKey, VrrpSocket] = {}
        self.socket_drops: collections.Counter[str] = collections.Counter()
        self.groups: dict[str, SyncGroup] = {}
        self.group_specs: dict[str, VrrpSyncGroup] = {}
        self.group_of: dict[str, str] = {}  # instance name -> group name
        self._group_state: dict[str, ev.State] = {}
        self._readers: set[SocketKey] = set()
        self._reading = False
        self._rx_log = RateLimitedLogger(log, burst=5, window_s=10.0, level="debug")

    def bind(self, executor: Executor) -> None:
        self.executor = executor

    # ------------------------------------------------------------- receive path

    def read_sockets(self) -> None:
        """Start reading every VRRP socket, now and for sockets opened later.

        At start-up the daemon calls this once every instance has had its Startup: an
        advert read earlier would reach an engine still in INIT, which ignores it, and
        the decision to take over would be made without it (the kernel queues meanwhile).
        """
        self._reading = True
        for key, sock in self.sockets.items():
            if key not in self._readers:
                sock.add_reader(functools.partial(self.on_datagram, key))
                self._readers.add(key)

    def add_socket(self, key: SocketKey, sock: VrrpSocket) -> None:
        self.sockets[key] = sock
        if self._reading:
            self.read_sockets()

    def on_datagram(
        self, key: SocketKey, payload: bytes, src: IPAddress, dst: IPAddress | None, ttl: int | None
    ) -> None:
        """One datagram read from the socket ``key``: decode, date, feed its VRID's instance.

        The VRID (byte 1 of every VRRP version's header) picks the instance first, so the
        codec checks the datagram with that instance's parameters (a router without VIPs
        accepts keepalived's Count = 0 adverts, :func:`~pyvrrp.proto.packet.decode`).
        """
        at = self.arrival(key)
        vrid = payload[1] if len(payload) > 1 else 0
        inst = self._instance_for(key, vrid)
        empty_ok = inst is not None and not inst.router.config.vips
        result = decode(payload, src=src, dst=dst, accept_empty=empty_ok)
        if isinstance(result, InvalidPacket):
            reason = result.reason.value
            self.socket_drops[reason] += 1
            self._rx_log.debug(reason, "advert_dropped", reason=reason, detail=result.detail, src=str(src))
            return
        if inst is None:
            self.socket_drops["vrid"] += 1
            self._rx_log.debug("vrid", "advert_dropped", reason="vrid", vrid=result.vrid, src=str(src))
            return
        if 0 < result.priority < inst.router.effective_priority:
            inst.last_lower_rx = clock.monotonic()
        self.feed(inst, ev.AdvertReceived(advert=result, src=src, ttl=ttl, dst=dst), at=at)

    def _instance_for(self, key: SocketKey, vrid: int) -> Instance | None:
        for inst in self.instances.values():
            if inst.key == key and inst.router.config.vrid == vrid:
                return inst
        return None

    def arrival(self, key: SocketKey) -> float | None:
        """Monotonic time at which the datagram being handled reached the socket (None: unknown).

        RFC 5798 §6.4.2 resets Master_Down_Timer when an advert is received: the kernel's
        arrival stamp, not the moment Python got to the packet (0.1-0.5 ms later, more on a
        busy loop), so a backup's deadline is not pushed back by its own receive path.
        """
        sock = self.sockets.get(key)
        stamp = sock.rx_stamp_ns if sock is not None else 0
        if not stamp:
            return None
        age = (time.time_ns() - stamp) / 1e9
        if not 0.0 <= age <= MAX_ARRIVAL_AGE_S:
            return None
        return clock.monotonic() - age

    # ----------------------------------------------------------------- feeding

    def feed(self, inst: Instance, event: ev.Input | TimerFired, *, at: float | None = None) -> None:
        """Give one input to an instance's engine and perform the resulting actions in order.

        ``at`` dates the input earlier than now (an advert from its kernel arrival stamp).
        """
        inst.inbox.append(At(event, at) if at is not None and not isinstance(event, TimerFired) else event)
        if inst.busy:
            return
        assert self.executor is not None, "Supervisor.bind() first"
        inst.busy = True
        try:
            while inst.inbox:
                item = inst.inbox.popleft()
                now = clock.monotonic()
                if isinstance(item, At):
                    now = min(item.at, now)
                    actions = inst.router.handle(item.event, now=now)
                elif isinstance(item, TimerFired):
                    actions = inst.router.handle_timer(now=now)
                else:
                    actions = inst.router.handle(item, now=now)
                for action in actions:
                    self.executor.execute(inst, action)
                self._after_feed(inst, actions, now)
        finally:
            inst.busy = False
        if inst.pending_takeover is not None and not inst.router.takeover_pending:
            # The old master came back while the guards ran: abandon the takeover
            # (cancelling kills the fence hook's process group).
            inst.log.info("takeover_abandoned", reason="a master is advertising again")
            inst.pending_takeover.cancel()
            inst.pending_takeover = None
        self.arm(inst)

    def arm(self, inst: Instance) -> None:
        """(Re)set the instance's one loop timer at the engine's next deadline."""
        deadline = inst.router.next_deadline()
        if deadline == inst.timer_at and inst.timer is not None:
            return
        self.disarm(inst)
        inst.timer_at = deadline
        if deadline is not None:
            early = deadline - TIMER_LEAD_S if inst.router.state is ev.State.BACKUP else deadline
            inst.timer = self.loop.call_at(early, self._on_timer, inst)

    @staticmethod
    def disarm(inst: Instance) -> None:
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        inst.timer_at = None

    def _on_timer(self, inst: Instance) -> None:
        deadline = inst.timer_at
        inst.timer = None
        inst.timer_at = None
        if self.instances.get(inst.name) is not inst:
            return
        sock = inst.sock
        if deadline is not None and sock is not None:
            # Spin to the exact deadline, reading the VRRP socket meanwhile.
            while clock.monotonic() < deadline:
                if sock.poll():
                    if inst.router.next_deadline() != deadline:
                        return  # the advert moved the deadline; feed() re-armed the timer
                    self.disarm(inst)  # same deadline: keep spinning here instead
            # A loop that is behind (a CPU hog, a flood) fires this timer late, with adverts
            # that arrived in time still queued: read them first (each is dated by its
            # kernel arrival stamp), so a master that kept advertising is never taken
            # over just because we were slow to read it.
            for _ in range(MAX_DRAIN):
                if not sock.poll():
                    break
            if inst.router.next_deadline() != deadline:
                return
            self.disarm(inst)
        self.feed(inst, TIMER)

    # ------------------------------------------------------------- sync groups

    def set_groups(
        self, specs: Mapping[str, VrrpSyncGroup], guarded: set[str], members_known: set[str]
    ) -> None:
        """vrrp_sync_group: members move together (:mod:`pyvrrp.proto.syncgroup`)."""
        self.groups, self.group_of, self.group_specs = {}, {}, dict(specs)
        for gname, group in specs.items():
            members = [m for m in group.group if m in members_known]
            self.groups[gname] = SyncGroup(gname, members, guarded=[m for m in members if m in guarded])
            for m in members:
                self.group_of[m] = gname

    def group_routers(self, gname: str) -> dict[str, VirtualRouter] | None:
        """Every member's engine, or None while some member does not run (yet)."""
        group = self.groups[gname]
        routers = {m: self.instances[m].router for m in group.members if m in self.instances}
        return routers if len(routers) == len(group.members) else None

    def request_group_takeover(self, inst: Instance) -> bool:
        """The guards allow ``inst`` to take over: let its group decide (False: not in a group)."""
        gname = self.group_of.get(inst.name)
        routers = self.group_routers(gname) if gname is not None else None
        if gname is None or routers is None:
            return False
        for member, item in self.groups[gname].request_takeover(inst.name, routers):
            self.feed(self.instances[member], item)
        return True

    def _after_feed(self, inst: Instance, actions: list[ev.Action], now: float) -> None:
        """Turn one member's transition into inputs for the others."""
        gname = self.group_of.get(inst.name)
        if gname is None:
            return
        routers = self.group_routers(gname)
        if routers is None:
            return
        for member, item in self.groups[gname].on_actions(inst.name, actions, routers, now=now):
            self.feed(self.instances[member], item)
        state = self.groups[gname].state(routers)
        old = self._group_state.get(gname, ev.State.INIT)
        if state is old:
            return
        self._group_state[gname] = state
        log.info("sync_group_state", group=gname, **{"from": old.value, "to": state.value})
        spec = self.group_specs.get(gname)
        if spec is not None and self.executor is not None:
            self.executor.notify_group(gname, spec, old, state)

    # ------------------------------------------------------------------ queries

    def any_master(self) -> bool:
        return any(i.router.state is ev.State.MASTER for i in self.instances.values())
