"""The supervisor: feeds the engines and keeps their timers, nothing else.

Theory of operation
-------------------
Data flows one way::

    VRRP socket --datagram--> decode --Advertisement--> engine --actions--> executor
                                                          ^
    netlink, trackers, guards, signals --inputs-----------'   timer (next_deadline)

:meth:`Supervisor.drain` is the receive path: each readiness event reads the socket
in a batch until it is empty (at most :data:`RX_BATCH`), each datagram dated from its
kernel arrival stamp (SO_TIMESTAMPNS).  The VRID byte picks the instance (a dict).  The
common case, a backup hearing its master's unchanged advert again, is recognised from
the raw bytes and goes to the engine's fast path
(:meth:`~pyvrrp.proto.router.VirtualRouter.refresh`: one deadline reset, no actions, no
log, proven equal to the full path); anything else is decoded by the pure codec and fed.
:meth:`Supervisor.feed` is the only way an input reaches an engine; it performs the
returned actions in order through the :class:`~pyvrrp.runtime.executor.Executor` and
then re-arms the instance at ``router.next_deadline()`` (aioquic's ``transmit()`` funnel).

Feeding is re-entrant safe: an action whose execution produces a new input
(a VIP that cannot be added becomes a fault, a sync-group member's transition
moves its siblings) queues that input in the instance's inbox, and it is handled
after the current action list, so actions of two inputs never interleave.

Timers: one heap of (fire time, instance) for every instance behind one loop timer
handle.  An advert moves a backup's deadline later without touching the heap: the old
entry fires, sees the later deadline and goes back in.  When the loop timer runs, it
first reads everything already queued on every VRRP socket (up to the first datagram
that arrived after it began), so an advert that arrived before a deadline holds the
takeover off even when the loop is behind (a CPU hog, a stop, a flood: issue 15);
then every due deadline fires, earliest first, in one sweep.  epoll sleeps in whole
milliseconds, so a BACKUP's entry is set :data:`TIMER_LEAD_S` early and the sweep spins
to the exact deadline, reading the sockets meanwhile.

Receive lag (:class:`RxStats`, ``pyvrrp state -v``, metrics): the age of the oldest
unread datagram when a batch begins, batch sizes, late timers, kernel drops.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

import structlog

from pyvrrp.adapters.vrrp_socket import RawDatagram, VrrpSocket
from pyvrrp.base import clock
from pyvrrp.base.ratelog import RateLimitedLogger
from pyvrrp.config.models import VrrpSyncGroup
from pyvrrp.proto import events as ev
from pyvrrp.proto.ah import AH_HEADER_LEN, IPPROTO_AH
from pyvrrp.proto.packet import DropReason, InvalidPacket, decode
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.proto.syncgroup import SyncGroup
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.instance import TIMER, At, Instance, TimerFired

__all__ = ["MAX_ARRIVAL_AGE_S", "TIMER_LEAD_S", "RxStats", "Supervisor"]

log = structlog.get_logger("pyvrrp")

TIMER_LEAD_S = 0.002
"""A BACKUP's timer fires this early and spins to the deadline (module docstring)."""

MAX_ARRIVAL_AGE_S = 0.5
"""A kernel arrival stamp older than this (or in the future) is a wall-clock step: use "now"."""
_MAX_ARRIVAL_AGE_NS = int(MAX_ARRIVAL_AGE_S * 1e9)

MAX_DRAIN = 20_000
"""At most this many datagrams per socket are read before a timer fires (a bound, never
reached in practice: the drain stops at the first datagram that arrived after it began)."""

RX_BATCH = 256
"""Datagrams read per readiness event (the loop's other callbacks run between batches)."""

TIMER_REFILE_AHEAD_S = 0.02
"""A timer wake-up also re-files entries due this soon whose deadline moved later (``_pop_due``)."""

LATE_TIMER_S = 0.005
"""A timer that runs this much after its time counts as late (the loop is behind)."""


def _arrived(stamp_ns: int, wall_ns: int, mono: float) -> float | None:
    """Kernel stamp ``stamp_ns`` (wall clock) on the monotonic clock, given one reading of
    both clocks (``wall_ns``, ``mono``); None when it is in the future or older than
    :data:`MAX_ARRIVAL_AGE_S` (a wall-clock step)."""
    age_ns = wall_ns - stamp_ns
    if not 0 <= age_ns <= _MAX_ARRIVAL_AGE_NS:
        return None
    return mono - age_ns / 1e9


def _bucket(n: int) -> str:
    """Batch-size histogram bucket (``pyvrrp state -v``, metrics)."""
    for top in (1, 4, 16, 64, 256):
        if n <= top:
            return f"le_{top}"
    return "gt_256"


@dataclass
class RxStats:
    """Receive lag (issue 15 item 5): how far behind the sockets the supervisor is."""

    fast: int = 0  # adverts handled by the fast path
    full: int = 0  # datagrams decoded and fed
    batches: int = 0
    batch_last: int = 0
    batch_max: int = 0
    batch_hist: collections.Counter[str] = field(default_factory=collections.Counter)
    lag_last_s: float = 0.0  # age of the oldest unread datagram when the last batch began
    lag_max_s: float = 0.0
    timers: int = 0
    timers_late: int = 0
    timer_late_max_s: float = 0.0
    drained_before_timer: int = 0  # datagrams read because a timer was due


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
        self._auth_log = RateLimitedLogger(log, burst=3, window_s=60.0, level="warning")
        self._demux: dict[tuple[SocketKey, int], tuple[Instance, object, VirtualRouter]] = {}
        self.rx = RxStats()
        # one timer for every instance: a heap of (fire at, seq, instance) behind one loop handle
        self._heap: list[tuple[float, int, Instance]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0

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
                sock.add_reader(
                    functools.partial(self.on_datagram, key), batch=functools.partial(self._on_readable, key)
                )
                self._readers.add(key)

    def add_socket(self, key: SocketKey, sock: VrrpSocket) -> None:
        self.sockets[key] = sock
        if self._reading:
            self.read_sockets()

    def remove_socket(self, key: SocketKey) -> None:
        """Close and forget the socket ``key`` (its link is about to go: a macvlan's)."""
        sock = self.sockets.pop(key, None)
        self._readers.discard(key)
        if sock is not None:
            sock.remove_reader()
            sock.close()

    def _on_readable(self, key: SocketKey) -> None:
        """Readiness: read a batch (until the socket is empty, at most :data:`RX_BATCH`)."""
        sock = self.sockets.get(key)
        if sock is not None:
            self.drain(key, sock, RX_BATCH)

    def drain(self, key: SocketKey, sock: VrrpSocket, limit: int, *, until_ns: int = 0) -> int:
        """Read and dispatch up to ``limit`` queued datagrams; returns how many were read.

        ``until_ns``: stop after the first datagram that arrived later than this
        (``time.time_ns()`` clock): what arrived before it is all read, a flood
        arriving meanwhile cannot keep us here.
        """
        stats = self.rx
        n = 0
        # One (wall, monotonic) anchor per batch dates every datagram from its kernel
        # stamp (:meth:`arrival`), instead of two clock reads per datagram; a datagram
        # stamped after the anchor (it arrived during the batch) re-anchors.
        wall_ns, mono = time.time_ns(), clock.monotonic()
        while n < limit:
            raw = sock.recv_raw()
            if raw is None:
                break
            n += 1
            if raw is False:
                continue
            stamp = sock.rx_stamp_ns
            at = None
            if stamp:
                if stamp > wall_ns:
                    wall_ns, mono = time.time_ns(), clock.monotonic()
                at = _arrived(stamp, wall_ns, mono)
                if n == 1:
                    lag = (wall_ns - stamp) / 1e9
                    stats.lag_last_s = lag
                    if lag > stats.lag_max_s:
                        stats.lag_max_s = lag
            try:
                self._dispatch(key, sock, raw, at)
            except Exception:  # a bug in one datagram's handling must not stop reception; be loud
                sock.stats.rx_errors += 1
                log.exception("vrrp_rx_failed", iface=key[0])
            if until_ns and stamp > until_ns:
                break
        if n:
            stats.batches += 1
            stats.batch_last = n
            if n > stats.batch_max:
                stats.batch_max = n
            stats.batch_hist[_bucket(n)] += 1
        return n

    def _dispatch(self, key: SocketKey, sock: VrrpSocket, raw: RawDatagram, at: float | None) -> None:
        """One datagram: the fast path when it repeats the advert its instance last accepted.

        Fast path (IPv4 with a 20-byte header and no padding): bytes 12.. (source,
        destination, VRRP message) and the TTL equal those of the last datagram fed to
        the instance, so decode would give the same advert: the same input object goes
        to the engine's :meth:`~pyvrrp.proto.router.VirtualRouter.refresh`, which handles
        it exactly as ``handle`` would (no actions, nothing logged).  Anything else takes
        the full path: parse, decode, :meth:`feed`.  ``at``: the datagram's arrival
        (:meth:`arrival`, computed by :meth:`drain`), None when unknown.
        """
        data = raw[0]
        if sock.protocol == IPPROTO_AH:
            self._dispatch_ah(key, sock, data)
            return
        if len(data) > 21 and data[0] == 0x45 and (data[2] << 8 | data[3]) == len(data):
            inst = self._instance_for(key, data[21])
            if (
                inst is not None
                and not inst.busy
                and inst.rx_event is not None
                and data[8] == inst.rx_ttl
                and data[12:] == inst.rx_key
            ):
                now = at if at is not None else clock.monotonic()
                router = inst.router
                if router.refresh(inst.rx_event, now=now):
                    self.rx.fast += 1
                    if inst.rx_lower:  # decided when the input was accepted; nothing changed since
                        self._lower_rx(inst, now)
                    inst.timer_at = router.next_deadline()  # later: the heap entry re-checks
                    if inst.heap_seq < 0:
                        self.arm(inst)
                    return
            if inst is not None:
                inst.rx_event = None
                item = sock.parse(*raw)
                if item is not False:
                    self.on_datagram(key, *item, inst=inst, fast_key=(data[12:], data[8]), at=at, dated=True)
                return
        item = sock.parse(*raw)
        if item is not False:
            self.on_datagram(key, *item, at=at, dated=True)

    def _dispatch_ah(self, key: SocketKey, sock: VrrpSocket, data: bytes) -> None:
        """One datagram of an IPPROTO_AH socket (keepalived's ``auth_type AH``).

        The VRID inside the VRRP message picks the instance; its
        :class:`~pyvrrp.proto.ah.AhSession` checks the ICV, the SPI and the sequence
        number (keepalived's order, :mod:`pyvrrp.proto.ah`); a failure is counted in the
        instance's drops and logged (rate limited, warning: a wrong ``auth_pass`` on a
        peer is a configuration error someone must see).  What passes goes on as any
        advert (:meth:`on_datagram`).
        """
        ihl = (data[0] & 0x0F) * 4 if data else 0
        at = ihl + AH_HEADER_LEN + 1
        vrid = data[at] if len(data) > at else 0
        inst = self._instance_for(key, vrid)
        if inst is None or inst.ah is None:
            self.socket_drops["vrid"] += 1
            self._rx_log.debug("vrid", "advert_dropped", reason="vrid", vrid=vrid, protocol=IPPROTO_AH)
            return
        result = inst.ah.open(data)
        if isinstance(result, InvalidPacket):
            sock.stats.rx_malformed += 1
            inst.router.count_drop(result.reason)
            src = ".".join(str(b) for b in data[12:16]) if len(data) >= 20 else "?"
            self._auth_log.warning(
                (inst.name, result.reason, result.detail[:24]),
                "advert_dropped",
                instance=inst.name,
                reason=result.reason.value,
                detail=result.detail,
                src=src,
            )
            return
        sock.stats.rx_packets += 1
        self.on_datagram(key, result.payload, result.src, result.dst, result.ttl, inst=inst, via_ah=True)

    def on_datagram(
        self,
        key: SocketKey,
        payload: bytes,
        src: IPAddress,
        dst: IPAddress | None,
        ttl: int | None,
        *,
        inst: Instance | None = None,
        fast_key: tuple[bytes, int] | None = None,
        via_ah: bool = False,
        at: float | None = None,
        dated: bool = False,
    ) -> None:
        """One datagram read from the socket ``key``: decode, date, feed its VRID's instance.

        The VRID (byte 1 of every VRRP version's header) picks the instance first, so the
        codec checks the datagram with that instance's parameters (a router without VIPs
        accepts keepalived's Count = 0 adverts, :func:`~pyvrrp.proto.packet.decode`).
        ``inst``, ``fast_key`` (from :meth:`_dispatch`): that instance, and the datagram's
        bytes 12.. and TTL: the input fed becomes the instance's fast-path input for them.
        ``via_ah``: the payload came out of a verified AH datagram (:meth:`_dispatch_ah`);
        a plain VRRP datagram for an ``auth_type AH`` instance is dropped (keepalived:
        "No AH header but auth type is AH").
        ``dated``: ``at`` is the arrival already computed (:meth:`drain`); else it is read
        from the socket's stamp here.
        """
        self.rx.full += 1
        if not dated:
            at = self.arrival(key)
        vrid = payload[1] if len(payload) > 1 else 0
        if inst is None:
            inst = self._instance_for(key, vrid)
            if inst is None and key[1] == 4:  # an auth_type AH instance of this VRID hears on its AH socket
                inst = self._instance_for((key[0], IPPROTO_AH), vrid)
        if inst is not None and inst.ah is not None and not via_ah:
            inst.router.count_drop(DropReason.AUTH)
            self._auth_log.warning(
                (inst.name, "no-ah"),
                "advert_dropped",
                instance=inst.name,
                reason=DropReason.AUTH.value,
                detail="a VRRP advert without an AH header, but auth_type is AH (RX-07)",
                src=str(src),
            )
            return
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
        lower = 0 < result.priority < inst.router.effective_priority
        if lower:
            self._lower_rx(inst, at if at is not None else clock.monotonic())
        event = ev.AdvertReceived(advert=result, src=src, ttl=ttl, dst=dst)
        if fast_key is not None:
            (inst.rx_key, inst.rx_ttl), inst.rx_event, inst.rx_lower = fast_key, event, lower
        else:
            inst.rx_event = None
        self.feed(inst, event, at=at)

    def _instance_for(self, key: SocketKey, vrid: int) -> Instance | None:
        """The instance of VRID ``vrid`` on socket ``key`` (a cache, checked against a reload:
        an entry holds while its instance still runs with the same spec and engine)."""
        entry = self._demux.get((key, vrid))
        if entry is not None:
            inst, spec, router = entry
            if inst.spec is spec and inst.router is router and self.instances.get(inst.name) is inst:
                return inst
        for inst in self.instances.values():
            if inst.key == key and inst.router.config.vrid == vrid:
                self._demux[(key, vrid)] = (inst, inst.spec, inst.router)
                return inst
        self._demux.pop((key, vrid), None)
        return None

    def arrival(self, key: SocketKey) -> float | None:
        """Monotonic time at which the datagram being handled reached the socket (None: unknown).

        RFC 5798 §6.4.2 resets Master_Down_Timer when an advert is received: the kernel's
        arrival stamp, not the moment Python got to the packet (0.1-0.5 ms later, more on a
        busy loop), so a backup's deadline is not pushed back by its own receive path.
        """
        sock = self.sockets.get(key)
        stamp = sock.rx_stamp_ns if sock is not None else 0
        return _arrived(stamp, time.time_ns(), clock.monotonic()) if stamp else None

    def drain_all(self) -> int:
        """Read everything queued on every VRRP socket before now (issue 15 item 1)."""
        until = time.time_ns()
        return sum(
            self.drain(key, sock, MAX_DRAIN, until_ns=until)
            for key, sock in list(self.sockets.items())
            if key in self._readers
        )

    def rx_view(self) -> dict[str, object]:
        """Receive-path figures for ``pyvrrp state -v`` and the metrics (issue 15 item 5)."""
        rx = self.rx
        recent = rx.lag_last_s if rx.batches else 0.0
        return {
            "adverts_fast": rx.fast,
            "adverts_full": rx.full,
            "batches": rx.batches,
            "batch_last": rx.batch_last,
            "batch_max": rx.batch_max,
            "batch_sizes": dict(rx.batch_hist),
            "oldest_unread_age_s": round(recent, 6),
            "oldest_unread_age_max_s": round(rx.lag_max_s, 6),
            "timers_fired": rx.timers,
            "timers_late": rx.timers_late,
            "timer_late_max_s": round(rx.timer_late_max_s, 6),
            "drained_before_timer": rx.drained_before_timer,
            "kernel_drops": sum(s.stats.rx_dropped_kernel for s in self.sockets.values()),
        }

    # ----------------------------------------------------------------- feeding

    def _lower_rx(self, inst: Instance, at: float) -> None:
        """An advert with a lower priority than ours (not 0) arrived at ``at``.

        A MASTER writes keepalived's ``MASTER_RX_LOWER_PRI`` line to the notify FIFOs
        (vrrp.c ``vrrp_state_master_rx``): the other node went MASTER during a partition.
        """
        inst.last_lower_rx = at
        fifos = self.executor.fifos if self.executor is not None else None
        if fifos is not None and fifos.wants_vrrp and inst.router.state is ev.State.MASTER:
            fifos.instance(inst.name, "MASTER_RX_LOWER_PRI", inst.router.effective_priority)

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

    # ------------------------------------------------------------------ timers

    def arm(self, inst: Instance) -> None:
        """Put the instance's next engine deadline in the one timer heap.

        One entry per instance: a deadline that moved later (an advert) keeps the earlier
        entry, which re-checks when it fires; only an earlier deadline pushes a new one.
        """
        deadline = inst.router.next_deadline()
        inst.timer_at = deadline
        if deadline is None:
            return
        fire = deadline - TIMER_LEAD_S if inst.router.state is ev.State.BACKUP else deadline
        if inst.heap_seq >= 0 and inst.heap_at <= fire:
            return
        self._push(inst, fire)

    def _push(self, inst: Instance, fire: float) -> None:
        seq = next(self._seq)
        inst.heap_seq, inst.heap_at = seq, fire
        heapq.heappush(self._heap, (fire, seq, inst))
        if self._handle is None or fire < self._handle_at:
            self._schedule(fire)

    def _schedule(self, fire: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle_at = fire
        self._handle = self.loop.call_at(fire, self._on_timer)

    @staticmethod
    def disarm(inst: Instance) -> None:
        """Forget the instance's deadline (its heap entry, if any, is skipped when it fires)."""
        inst.timer_at = None
        inst.heap_seq = -1

    def _on_timer(self) -> None:
        """The one loop timer: read what is queued, then fire every due deadline.

        Before any deadline fires, everything already queued on the VRRP sockets is read
        and fed (each advert dated by its kernel arrival stamp), so a master that kept
        advertising is never taken over because we were slow to read it (issue 15).
        Due deadlines fire together, earliest first: a mass failover is one sweep.
        """
        self._handle = None
        late = clock.monotonic() - self._handle_at
        self.rx.timers += 1
        if late > LATE_TIMER_S:
            self.rx.timers_late += 1
        if late > self.rx.timer_late_max_s:
            self.rx.timer_late_max_s = late
        # Most wake-ups only find entries whose deadline an advert moved later: they go
        # back in the heap and nothing is read.  When something is due, read the sockets
        # first; an advert read then moves its instance's deadline (and re-arms it), and
        # _fire skips a deadline that moved.
        due = self._pop_due(clock.monotonic())
        if due:
            self.rx.drained_before_timer += self.drain_all()
        sweep = self.executor if len(due) > 1 else None
        if sweep is not None:
            sweep.begin_sweep()
        try:
            for deadline, inst in due:
                self._fire(deadline, inst)
        finally:
            if sweep is not None:
                sweep.end_sweep()
        self._reschedule()

    def _pop_due(self, now: float) -> list[tuple[float, Instance]]:
        """Take the due entries off the heap; entries whose deadline moved later go back.

        The sweep looks :data:`TIMER_REFILE_AHEAD_S` ahead: entries in that window whose
        deadline an advert moved later are re-filed at the new time now, in this wake-up,
        instead of each waking the loop on its own (a backup's entries are all of that
        kind).  It stops at the first entry in the window that has not moved (it is not
        due yet: a master's advert timer), so a wake-up re-files at most one entry in vain.
        """
        heap, due, refile = self._heap, [], []
        horizon = now + TIMER_REFILE_AHEAD_S
        while heap and heap[0][0] <= horizon:
            at, seq, inst = heapq.heappop(heap)
            if seq != inst.heap_seq:
                continue  # superseded or disarmed
            inst.heap_seq = -1
            deadline = inst.timer_at
            if deadline is None or self.instances.get(inst.name) is not inst:
                continue
            fire = deadline - TIMER_LEAD_S if inst.router.state is ev.State.BACKUP else deadline
            if fire <= now:
                due.append((deadline, inst))
                continue
            refile.append((inst, fire))
            if fire <= at:  # in the window, not moved, not due: nothing further is stale for sure
                break
        for inst, fire in refile:
            self._push_quiet(inst, fire)
        due.sort(key=lambda d: d[0])
        return due

    def _push_quiet(self, inst: Instance, fire: float) -> None:
        seq = next(self._seq)
        inst.heap_seq, inst.heap_at = seq, fire
        heapq.heappush(self._heap, (fire, seq, inst))

    def _fire(self, deadline: float, inst: Instance) -> None:
        if inst.timer_at != deadline or self.instances.get(inst.name) is not inst:
            return  # an advert read meanwhile moved it (or the instance is gone)
        if inst.router.state is ev.State.BACKUP:
            # Spin to the exact deadline (epoll sleeps in whole ms), reading the sockets meanwhile.
            while clock.monotonic() < deadline:
                if self.drain_all() and inst.timer_at != deadline:
                    self.arm(inst)
                    return
            self.drain_all()
            if inst.timer_at != deadline:
                self.arm(inst)
                return
        inst.timer_at = None
        self.feed(inst, TIMER)

    def _reschedule(self) -> None:
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].heap_seq:
            heapq.heappop(heap)  # drop stale entries at the top
        if not heap:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            return
        if self._handle is None or heap[0][0] != self._handle_at:
            self._schedule(heap[0][0])

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
