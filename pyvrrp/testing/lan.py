"""FakeLan: VRRP engines on an in-memory LAN with virtual time, loss and partitions.

Theory: every engine is a pure :class:`~pyvrrp.proto.router.VirtualRouter`.
The LAN plays the runtime's role for all of them at once: it turns each
``SendAdvert`` into an ``AdvertReceived`` queued for every peer that can hear
it (multicast to all, or only the configured unicast peers), and
:meth:`FakeLan.run_until` processes queued deliveries and engine deadlines in
time order (deliveries first on a tie, then nodes in name order), calling
``handle_timer(now=deadline)`` exactly at each deadline.  Time is a
:class:`~pyvrrp.testing.clock.FakeClock`; nothing sleeps.

Controls: ``loss`` (probability, seeded RNG) or ``drop`` (a predicate),
``partition(...)``/``heal()``, ``set_link()`` (LinkChanged into the engine and
the node stops sending/receiving), ``stop()`` (graceful Shutdown),
``crash()`` (silent death: no priority 0, the VIPs stay on the dead host),
``revive()``.

Records: ``transitions`` (every StateChanged with its time), per-node
:class:`~pyvrrp.testing.recorder.RecordingExecutor`, ``sent`` adverts.
``observers`` are called after every step with ``(lan, node, actions)`` so
property tests can check invariants continuously; ``hooks`` run just before
them (FakeNet uses one to drive sync groups).  ``next_event_at()`` and
``step()`` expose the loop one event at a time.

:class:`FakeNet`: several FakeLans on one clock (two interfaces: one router
per host per LAN) with a :class:`~pyvrrp.proto.syncgroup.SyncGroup` per host,
driven the way the daemon drives it.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface
from typing import Any

from pyvrrp.proto.constants import MCAST_GROUP_V4, MCAST_GROUP_V6, VRRP_TTL
from pyvrrp.proto.events import (
    Action,
    AdvertReceived,
    Input,
    IPInterface,
    LinkChanged,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
)
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.router import RouterConfig, VirtualRouter
from pyvrrp.proto.syncgroup import SyncGroup
from pyvrrp.testing.clock import FakeClock
from pyvrrp.testing.recorder import RecordingExecutor

__all__ = ["FakeLan", "FakeNet", "NetTransition", "Node", "Transition", "make_config", "make_router"]

_MAX_STEPS = 2_000_000
_MAX_STEPS_SAME_INSTANT = 10_000  # more than this at one timestamp is a livelock (advert ping-pong)


def make_config(
    name: str,
    priority: int,
    address: str,
    *,
    vrid: int = 1,
    version: int = 2,
    vips: tuple[str, ...] | None = None,
    advert_interval_cs: int = 100,
    **changes: Any,
) -> RouterConfig:
    """A RouterConfig for tests: family from ``address``, default VIP 192.0.2.100/24 (or 2001:db8::100/64)."""
    primary = ip_address(address)
    family = primary.version
    if vips is None:
        vips = ("192.0.2.100/24",) if family == 4 else ("fe80::100/64", "2001:db8::100/64")
    if family == 6:
        version = 3
    return RouterConfig(
        name=name,
        vrid=vrid,
        version=version,
        family=family,
        priority=priority,
        advert_interval_cs=advert_interval_cs,
        vips=tuple(ip_interface(v) for v in vips),
        primary_address=primary,
        **changes,
    )


def make_router(name: str, priority: int, address: str, *, epoch: int = 0, **kw: Any) -> VirtualRouter:
    """``VirtualRouter(make_config(...))``."""
    return VirtualRouter(make_config(name, priority, address, **kw), epoch=epoch)


@dataclass(frozen=True, slots=True)
class Transition:
    """One StateChanged as seen on the LAN."""

    time: float
    node: str
    old: State
    new: State
    reason: str
    priority: int
    epoch: int


@dataclass(slots=True)
class Node:
    name: str
    engine: VirtualRouter
    executor: RecordingExecutor = field(default_factory=RecordingExecutor)
    alive: bool = True
    link_up: bool = True


Observer = Callable[["FakeLan", Node, list[Action]], None]


class _LivelockGuard:
    """Raises when too many steps happen at one virtual instant (engines answering each other)."""

    def __init__(self, clock: FakeClock, what: str) -> None:
        self.clock, self.what = clock, what
        self.instant, self.same = clock.now, 0

    def tick(self) -> None:
        if self.clock.now == self.instant:
            self.same += 1
            if self.same > _MAX_STEPS_SAME_INSTANT:
                raise RuntimeError(
                    f"{self.what} livelock at t={self.instant}: engines keep answering each other"
                )
        else:
            self.instant, self.same = self.clock.now, 0


DropFn = Callable[[float, str, str, Advertisement], bool]


class FakeLan:
    """N engines on one in-memory L2 segment.

    Args:
        engines: the routers; names come from ``config.name`` and must be unique.
        latency_s: one-way delivery delay.
        loss: probability that one delivery (one sender -> one receiver) is lost.
        seed: seed of the loss RNG.
        loopback: also deliver a node's multicast adverts to itself (tests the
            engine's "self" drop).
    """

    def __init__(
        self,
        *engines: VirtualRouter,
        latency_s: float = 0.0,
        loss: float = 0.0,
        seed: int = 0,
        loopback: bool = False,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.nodes: dict[str, Node] = {}
        for engine in engines:
            self.add(engine)
        self.latency_s = latency_s
        self.loss = loss
        self.drop: DropFn | None = None
        self.loopback = loopback
        self.rng = random.Random(seed)
        self.transitions: list[Transition] = []
        self.sent: list[tuple[float, str, Advertisement]] = []
        self.observers: list[Observer] = []
        self.hooks: list[Observer] = []
        self._groups: dict[str, int] | None = None
        self._queue: list[tuple[float, int, str, AdvertReceived]] = []
        self._seq = 0

    # ------------------------------------------------------------- topology

    def add(self, engine: VirtualRouter) -> Node:
        name = engine.config.name
        if name in self.nodes:
            raise ValueError(f"duplicate node name {name!r}")
        node = Node(name, engine)
        self.nodes[name] = node
        return node

    def __getitem__(self, name: str) -> VirtualRouter:
        return self.nodes[name].engine

    @property
    def now(self) -> float:
        return self.clock.now

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the LAN: nodes hear each other only inside one group.

        Nodes named in no group are isolated.
        """
        self._groups = {}
        for index, group in enumerate(groups):
            for name in group:
                if name not in self.nodes:
                    raise KeyError(name)
                self._groups[name] = index

    def heal(self) -> None:
        self._groups = None

    def can_reach(self, src: str, dst: str) -> bool:
        a, b = self.nodes[src], self.nodes[dst]
        if not (a.alive and b.alive and a.link_up and b.link_up):
            return False
        if self._groups is None:
            return True
        return src in self._groups and self._groups.get(src) == self._groups.get(dst)

    # ------------------------------------------------------------- controls

    def start(self, *names: str) -> None:
        """Startup for the named nodes (default: all), at the current time, in order."""
        for name in names or tuple(self.nodes):
            self.inject(name, Startup())

    def inject(self, name: str, event: Input) -> list[Action]:
        """Feed one input to a node now and dispatch its actions."""
        node = self.nodes[name]
        actions = node.engine.handle(event, now=self.now)
        self._dispatch(node, actions)
        return actions

    def stop(self, name: str) -> list[Action]:
        """Graceful daemon stop: Shutdown (a MASTER sends priority 0), then the node is gone."""
        actions = self.inject(name, Shutdown())
        self.nodes[name].alive = False
        return actions

    def crash(self, name: str) -> None:
        """kill -9: the node silently stops sending, receiving and firing timers."""
        self.nodes[name].alive = False

    def revive(self, engine: VirtualRouter, *, start: bool = True) -> Node:
        """Replace a dead node by a fresh engine (a restarted daemon) and start it."""
        name = engine.config.name
        old = self.nodes[name]
        if old.alive:
            raise ValueError(f"node {name!r} is alive")
        node = Node(name, engine, executor=old.executor, link_up=old.link_up)
        # a restarted daemon starts by removing stale VIPs (keepalived does the same)
        node.executor.vips.clear()
        self.nodes[name] = node
        if start:
            self.inject(name, Startup())
        return node

    def set_link(self, name: str, up: bool) -> list[Action]:
        """Carrier change on a node: LinkChanged into the engine.

        With the link down the node neither sends nor receives: the
        priority-0 advert a MASTER emits on the way down is recorded in its
        executor but never reaches the wire.
        """
        node = self.nodes[name]
        if up:
            node.link_up = True
            return self.inject(name, LinkChanged(up=True))
        actions = node.engine.handle(LinkChanged(up=False), now=self.now)
        node.link_up = False
        self._dispatch(node, actions)
        return actions

    # ------------------------------------------------------------ the loop

    def _next_timer(self) -> tuple[float, Node] | None:
        best: tuple[float, Node] | None = None
        for node in self.nodes.values():
            if not node.alive:
                continue
            deadline = node.engine.next_deadline()
            if deadline is not None and (best is None or deadline < best[0]):
                best = (deadline, node)
        return best

    def next_event_at(self) -> float | None:
        """Time of the next queued delivery or engine deadline (None: nothing to do)."""
        timer = self._next_timer()
        delivery_at = self._queue[0][0] if self._queue else None
        if delivery_at is not None and (timer is None or delivery_at <= timer[0]):
            return delivery_at
        return timer[0] if timer is not None else None

    def step(self) -> bool:
        """Process exactly one event: the earliest delivery or deadline (a delivery wins a tie).

        Returns False when there was nothing to do.
        """
        timer = self._next_timer()
        delivery_at = self._queue[0][0] if self._queue else None
        if delivery_at is not None and (timer is None or delivery_at <= timer[0]):
            when, _, dst, event = heapq.heappop(self._queue)
            self.clock.set(max(when, self.now))
            node = self.nodes[dst]
            if node.alive and node.link_up:
                self._dispatch(node, node.engine.handle(event, now=self.now))
            return True
        if timer is not None:
            self.clock.set(max(timer[0], self.now))
            node = timer[1]
            self._dispatch(node, node.engine.handle_timer(now=self.now))
            return True
        return False

    def run_until(self, until: float) -> None:
        """Process every delivery and deadline up to and including ``until``.

        Raises:
            RuntimeError: a livelock (too many steps at one instant) or no
                progress within ``_MAX_STEPS``.
        """
        guard = _LivelockGuard(self.clock, "FakeLan")
        for _ in range(_MAX_STEPS):
            guard.tick()
            at = self.next_event_at()
            if at is None or at > until:
                break
            self.step()
        else:
            raise RuntimeError(f"FakeLan did not settle within {_MAX_STEPS} steps")
        self.clock.set(max(until, self.now))

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def _dispatch(self, node: Node, actions: list[Action]) -> None:
        node.executor.run(actions, now=self.now)
        for action in actions:
            if isinstance(action, StateChanged):
                self.transitions.append(
                    Transition(
                        self.now,
                        node.name,
                        action.old,
                        action.new,
                        action.reason,
                        action.priority,
                        action.epoch,
                    )
                )
            elif isinstance(action, SendAdvert):
                self._send(node, action.advert)
        for hook in self.hooks:
            hook(self, node, actions)
        for observer in self.observers:
            observer(self, node, actions)

    def _send(self, node: Node, advert: Advertisement) -> None:
        if not (node.alive and node.link_up):
            return
        self.sent.append((self.now, node.name, advert))
        cfg = node.engine.config
        group = MCAST_GROUP_V4 if cfg.family == 4 else MCAST_GROUP_V6
        for peer in self.nodes.values():
            if peer is node and not (self.loopback and not cfg.unicast_peers):
                continue
            peer_addr = peer.engine.config.primary_address
            if cfg.unicast_peers and peer_addr not in cfg.unicast_peers:
                continue
            if peer is not node and not self.can_reach(node.name, peer.name):
                continue
            if self.loss and self.rng.random() < self.loss:
                continue
            if self.drop is not None and self.drop(self.now, node.name, peer.name, advert):
                continue
            dst = peer_addr if cfg.unicast_peers else group
            event = AdvertReceived(advert, src=cfg.primary_address, ttl=VRRP_TTL, dst=dst)
            self._seq += 1
            heapq.heappush(self._queue, (self.now + self.latency_s, self._seq, peer.name, event))

    # ------------------------------------------------------------- queries

    def state(self, name: str) -> State:
        return self.nodes[name].engine.state

    def states(self) -> dict[str, State]:
        return {n: node.engine.state for n, node in self.nodes.items()}

    def masters(self) -> list[str]:
        """Alive nodes in MASTER."""
        return [n for n, node in self.nodes.items() if node.alive and node.engine.state is State.MASTER]

    def timeline(self, name: str) -> list[tuple[float, State]]:
        """``(time, new_state)`` for every transition of ``name``."""
        return [(t.time, t.new) for t in self.transitions if t.node == name]

    def became(self, name: str, state: State, *, after: float = float("-inf")) -> float | None:
        """Time of the first transition of ``name`` into ``state`` after ``after``."""
        for t in self.transitions:
            if t.node == name and t.new is state and t.time > after:
                return t.time
        return None


@dataclass(frozen=True, slots=True)
class NetTransition:
    """One StateChanged on a :class:`FakeNet`: the LAN it happened on and the transition."""

    lan: str
    transition: Transition

    @property
    def time(self) -> float:
        return self.transition.time

    @property
    def host(self) -> str:
        return self.transition.node


class FakeNet:
    """Several :class:`FakeLan` segments on one virtual clock, with per-host sync groups.

    A *host* is a node name that appears on several LANs: one router per LAN,
    each router's ``config.name`` being the host name.  :meth:`sync` gives a
    host a :class:`~pyvrrp.proto.syncgroup.SyncGroup` whose members are LAN
    names, and the net then plays the daemon's part: after every input or
    timer a member handled, it passes the actions to the group and feeds the
    returned inputs, first in first out, once the current step is complete
    (so each step's own actions are dispatched before the group reacts).

    :meth:`run_until` processes the earliest event over all LANs (LANs in the
    order they were added on a tie).  Don't call ``FakeLan.run_until`` on a
    LAN of a net: it would ignore the other LANs.
    """

    def __init__(self, *, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.lans: dict[str, FakeLan] = {}
        self.groups: dict[str, SyncGroup] = {}
        self.fed: list[tuple[float, str, str, Input]] = []
        self._pending: deque[tuple[str, str, Input]] = deque()
        self._draining = False

    @property
    def now(self) -> float:
        return self.clock.now

    # ------------------------------------------------------------- topology

    def add_lan(self, name: str, *engines: VirtualRouter, **kw: Any) -> FakeLan:
        """A new segment sharing the net's clock (``kw`` as for :class:`FakeLan`)."""
        if name in self.lans:
            raise ValueError(f"duplicate LAN {name!r}")
        lan = FakeLan(*engines, clock=self.clock, **kw)
        lan.hooks.append(lambda _lan, node, actions: self._after(name, node, actions))
        self.lans[name] = lan
        return lan

    def __getitem__(self, lan: str) -> FakeLan:
        return self.lans[lan]

    def sync(self, host: str, lans: Iterable[str] | None = None, *, group: str = "G") -> SyncGroup:
        """Put ``host``'s routers on ``lans`` (default: every LAN it is on) in one sync group.

        Raises:
            ValueError: a member router lacks ``takeover_gate`` (see
                :meth:`SyncGroup.member_config`).
        """
        members = (
            tuple(lans) if lans is not None else tuple(n for n, lan in self.lans.items() if host in lan.nodes)
        )
        sync_group = SyncGroup(group, members)
        self.groups[host] = sync_group
        sync_group.check(self.routers(host))
        return sync_group

    def routers(self, host: str) -> dict[str, VirtualRouter]:
        """``{lan: router}`` for the host's group members (every LAN it is on without a group)."""
        group = self.groups.get(host)
        names = group.members if group else tuple(n for n, lan in self.lans.items() if host in lan.nodes)
        return {n: self.lans[n][host] for n in names}

    # ------------------------------------------------------------- controls

    def start(self) -> None:
        """Startup for every node, LAN by LAN (the sync groups react as they go)."""
        for lan in self.lans.values():
            lan.start()

    def inject(self, lan: str, host: str, event: Input) -> list[Action]:
        return self.lans[lan].inject(host, event)

    def set_link(self, lan: str, host: str, up: bool) -> list[Action]:
        return self.lans[lan].set_link(host, up)

    def crash(self, host: str) -> None:
        """The host dies silently on every LAN."""
        for lan in self.lans.values():
            if host in lan.nodes:
                lan.crash(host)

    def revive(self, host: str, engines: dict[str, VirtualRouter]) -> None:
        """A restarted daemon: fresh engines (``{lan: router}``), a fresh coordinator, Startup."""
        for lan_name, engine in engines.items():
            self.lans[lan_name].revive(engine, start=False)
        old = self.groups.get(host)
        if old is not None:
            self.sync(host, old.members, group=old.name)
        for lan_name in engines:
            self.lans[lan_name].inject(host, Startup())

    # ------------------------------------------------------------ the loop

    def run_until(self, until: float) -> None:
        """Process every event of every LAN up to and including ``until``, in time order."""
        guard = _LivelockGuard(self.clock, "FakeNet")
        for _ in range(_MAX_STEPS):
            guard.tick()
            best: tuple[float, FakeLan] | None = None
            for lan in self.lans.values():
                at = lan.next_event_at()
                if at is not None and (best is None or at < best[0]):
                    best = (at, lan)
            if best is None or best[0] > until:
                break
            best[1].step()
        else:
            raise RuntimeError(f"FakeNet did not settle within {_MAX_STEPS} steps")
        self.clock.set(max(until, self.now))

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def _after(self, lan_name: str, node: Node, actions: list[Action]) -> None:
        group = self.groups.get(node.name)
        if group is None or lan_name not in group.members or not node.alive:
            return
        inputs = group.on_actions(lan_name, actions, self.routers(node.name), now=self.now)
        self._pending.extend((node.name, member, event) for member, event in inputs)
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending:
                host, member, event = self._pending.popleft()
                if self.lans[member].nodes[host].alive:
                    self.fed.append((self.now, host, member, event))
                    self.lans[member].inject(host, event)
        finally:
            self._draining = False

    # ------------------------------------------------------------- queries

    def transitions(self) -> list[NetTransition]:
        """Every StateChanged on every LAN, in time order (LAN order on a tie)."""
        merged = [NetTransition(name, t) for name, lan in self.lans.items() for t in lan.transitions]
        return sorted(merged, key=lambda nt: nt.time)

    def masters(self, lan: str) -> list[str]:
        return self.lans[lan].masters()

    def states(self, host: str) -> dict[str, State]:
        """``{lan: state}`` of the host's routers."""
        return {n: r.state for n, r in self.routers(host).items()}

    def vips(self, host: str) -> set[IPInterface]:
        """Every VIP the host holds, over all its LANs."""
        held: set[IPInterface] = set()
        for lan in self.lans.values():
            if host in lan.nodes:
                held |= lan.nodes[host].executor.vips
        return held
