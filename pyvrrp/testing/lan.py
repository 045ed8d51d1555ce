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
property tests can check invariants continuously.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface
from typing import Any

from pyvrrp.proto.constants import MCAST_GROUP_V4, MCAST_GROUP_V6, VRRP_TTL
from pyvrrp.proto.events import (
    Action,
    AdvertReceived,
    Input,
    LinkChanged,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
)
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.router import RouterConfig, VirtualRouter
from pyvrrp.testing.clock import FakeClock
from pyvrrp.testing.recorder import RecordingExecutor

__all__ = ["FakeLan", "Node", "Transition", "make_config", "make_router"]

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

    def run_until(self, until: float) -> None:
        """Process every delivery and deadline up to and including ``until``.

        Raises:
            RuntimeError: a livelock (too many steps at one instant) or no
                progress within ``_MAX_STEPS``.
        """
        instant, same = self.now, 0
        for _ in range(_MAX_STEPS):
            if self.now == instant:
                same += 1
                if same > _MAX_STEPS_SAME_INSTANT:
                    raise RuntimeError(f"FakeLan livelock at t={instant}: engines keep answering each other")
            else:
                instant, same = self.now, 0
            timer = self._next_timer()
            delivery_at = self._queue[0][0] if self._queue else None
            if delivery_at is not None and (timer is None or delivery_at <= timer[0]):
                if delivery_at > until:
                    break
                when, _, dst, event = heapq.heappop(self._queue)
                self.clock.set(max(when, self.now))
                node = self.nodes[dst]
                if node.alive and node.link_up:
                    self._dispatch(node, node.engine.handle(event, now=self.now))
            elif timer is not None:
                if timer[0] > until:
                    break
                self.clock.set(max(timer[0], self.now))
                node = timer[1]
                self._dispatch(node, node.engine.handle_timer(now=self.now))
            else:
                break
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
