"""The only clock read in pyvrrp (STYLE rule 2: time is an argument).

The engine (``pyvrrp.proto.router``) never reads a clock; the runtime passes
``now`` explicitly.  Everything that needs "now" (runtime, adapters,
split-brain guards) goes through this module or a :class:`Clock`, so tests can
substitute ``pyvrrp.testing.FakeClock``.  Stdlib only: see :mod:`pyvrrp.base`.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


def monotonic() -> float:
    """Monotonic seconds (the time base of every engine deadline).

    This is the single ``time.monotonic()`` call in the code base; asyncio's
    default ``loop.time()`` uses the same clock, so deadlines returned by the
    engine can be handed to ``loop.call_at`` unchanged.
    """
    return time.monotonic()


def wall_time() -> float:
    """Wall-clock seconds since the epoch (used only to render timestamps)."""
    return time.time()


@runtime_checkable
class Clock(Protocol):
    """Source of monotonic seconds."""

    def now(self) -> float:
        """Current monotonic time in seconds."""
        ...


class MonotonicClock:
    """The production :class:`Clock`: ``time.monotonic()``."""

    def now(self) -> float:
        return monotonic()


def to_wall_time(monotonic_s: float, *, clock: Clock | None = None) -> float:
    """Convert a monotonic timestamp to wall-clock seconds (for output only)."""
    now_mono = (clock or MonotonicClock()).now()
    return wall_time() - (now_mono - monotonic_s)
