"""Speakers: one interface (announce / withdraw / session state), one adapter per speaker.

:class:`ExabgpSpeaker` is the daemon's side of ExaBGP.  ExaBGP runs ``pyvrrp
exabgp-process`` as its API process (:mod:`pyvrrp.bgp.exabgp_process`); that process
*follows* the daemon over the control socket with the ``bgp_follow`` op, a long poll:

    request  {"op": "bgp_follow", "generation": G, "applied": A, "session": {...}, "wait": 1.0}
    reply    {"generation": G2, "routes": [{"prefix", "announce", "med", "next_hop",
              "orphan_hold_s"}, ...], "poll_s": 1.0}

The reply comes at once when the daemon's routes are newer than ``G``, else after ``wait``
seconds (a heartbeat both ways); ``bgp_ack`` (a short connection of its own) reports
ExaBGP's acks at once, while the long poll is still waiting.  ``applied`` is the newest
generation ExaBGP acknowledged (``done`` for every command); ``session`` is what ExaBGP
reported of its neighbours.  A process that stops polling for :data:`LOST_AFTER_S` is
*lost* (ExaBGP died, or its process did); so is one whose ExaBGP does not answer its pings
(``"answering": false`` in the session: ExaBGP stopped or hung, while its process still
polls).  The process side, for its part, withdraws when it
loses the daemon (:mod:`pyvrrp.bgp.exabgp_process`).

This module does no I/O of its own: the control server calls :meth:`ExabgpSpeaker.follow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["LOST_AFTER_S", "ExabgpSpeaker", "Route", "Speaker"]

LOST_AFTER_S = 3.0
"""A follower that has not polled for this long is lost (it polls at least every second)."""
MAX_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    """One prefix as the speaker should carry it."""

    prefix: str
    med: int | None
    next_hop: str = "self"
    orphan_hold_s: float = 0.0
    as_path: tuple[int, ...] = ()
    """Empty: the speaker's default (its own AS); else the whole path (AS-path prepend)."""


class Speaker(Protocol):
    """What the runtime needs of a speaker."""

    name: str

    def announce(self, route: Route) -> None: ...

    def withdraw(self, prefix: str) -> None: ...

    def session(self) -> dict[str, Any]: ...

    def up_to_date(self) -> bool:
        """The speaker acknowledged the current announcements and withdrawals."""
        ...


class ExabgpSpeaker:
    """The daemon side of ``pyvrrp exabgp-process`` (see the module docstring)."""

    name = "exabgp"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.routes: dict[str, Route] = {}
        self.withdrawn: set[str] = set()
        """Prefixes this daemon configures and does not announce (withdrawn on every sync)."""
        self.generation = 0
        self.applied = -1
        self._changed = asyncio.Event()
        self.last_poll: float | None = None
        self.follower: dict[str, Any] = {}
        self.ever_connected = False
        self._gone = False
        self.polls = 0

    # ------------------------------------------------------------------ Speaker

    def announce(self, route: Route) -> None:
        if self.routes.get(route.prefix) == route:
            return
        self.routes[route.prefix] = route
        self.withdrawn.discard(route.prefix)
        self._bump()

    def withdraw(self, prefix: str) -> None:
        if prefix in self.withdrawn and prefix not in self.routes:
            return
        self.routes.pop(prefix, None)
        self.withdrawn.add(prefix)
        self._bump()

    def polling(self) -> bool:
        return self.last_poll is not None and self._clock() - self.last_poll < LOST_AFTER_S

    def answering(self) -> bool:
        """ExaBGP acks its process's commands (a stopped ExaBGP does not; its process still polls)."""
        return self.follower.get("answering", True) is not False

    def connected(self) -> bool:
        return self.polling() and self.answering()

    def up_to_date(self) -> bool:
        return self.connected() and self.applied >= self.generation

    def session(self) -> dict[str, Any]:
        age = None if self.last_poll is None else round(self._clock() - self.last_poll, 3)
        if self.connected():
            state = "connected"
        elif self.polling():
            state = "not answering"
        else:
            state = "lost" if self.ever_connected else "never connected"
        peers = self.follower.get("peers") if self.connected() else None
        return {
            "speaker": self.name,
            "process": state,
            "last_poll_age_s": age,
            "pid": self.follower.get("pid"),
            "peers": peers or {},
            "generation": self.generation,
            "applied": self.applied,
            "errors": self.follower.get("errors", 0),
        }

    def established(self) -> bool | None:
        """Some BGP neighbour of ExaBGP is up (None: nothing reported yet)."""
        if not self.connected():
            return False
        peers = self.follower.get("peers") or {}
        if not peers:
            return None
        return any(p == "up" for p in peers.values())

    # --------------------------------------------------------------- the long poll

    def _bump(self) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def _reply(self) -> dict[str, Any]:
        routes = [{"announce": True, **asdict(r)} for r in self.routes.values()]
        routes += [{"announce": False, "prefix": p} for p in sorted(self.withdrawn)]
        return {"generation": self.generation, "routes": routes, "poll_s": 1.0}

    async def ack(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``bgp_ack`` control op: ExaBGP acknowledged everything up to ``applied``."""
        applied = params.get("applied")
        if isinstance(applied, int) and applied <= self.generation:
            self.applied = max(self.applied, applied)
        return {"generation": self.generation, "applied": self.applied}

    async def gone(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``bgp_gone`` control op: ExaBGP closed the process's stdin (it is exiting)."""
        if self.last_poll is not None:
            self.last_poll = self._clock() - LOST_AFTER_S - 1.0
        self._gone = True  # a long poll still waiting must not make it look alive again
        self.follower = {**self.follower, "peers": {}}
        return {"lost": True}

    async def follow(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``bgp_follow`` control op."""
        self.last_poll = self._clock()
        self._gone = False
        self.ever_connected = True
        self.polls += 1
        applied = params.get("applied")
        if isinstance(applied, int):
            self.applied = applied
        session = params.get("session")
        if isinstance(session, dict):
            self.follower = session
        seen = params.get("generation")
        wait = params.get("wait", 1.0)
        wait = min(max(float(wait), 0.0), MAX_WAIT_S) if isinstance(wait, int | float) else 1.0
        if seen == self.generation:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
        if not self._gone:
            self.last_poll = self._clock()
        return self._reply()
