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


class WallAnchor:
    """One fixed monotonic -> wall-clock offset, so a past instant renders the same twice.

    Reading ``time.time()`` and ``time.monotonic()`` one after the other gives an
    offset that wanders by milliseconds (NTP slewing, a VM stall between the two
    reads), so ``wall - (now - at)`` computed per call made ``last_transition.at``
    differ between two ``pyvrrp state`` calls with no transition in between.  The
    anchor keeps the first offset and re-anchors only on a wall-clock *step*
    (more than ``step_s`` away), e.g. after an operator sets the date.
    """

    def __init__(self, step_s: float = 1.0) -> None:
        self.step_s = step_s
        self._offset: float | None = None

    def offset(self, *, wall_now: float, mono_now: float) -> float:
        """Wall-clock seconds minus monotonic seconds, stable between steps."""
        current = wall_now - mono_now
        if self._offset is None or abs(current - self._offset) > self.step_s:
            self._offset = current
        return self._offset

    def to_wall(self, monotonic_s: float, *, wall_now: float, mono_now: float) -> float:
        """The wall-clock time of the monotonic instant ``monotonic_s``."""
        return monotonic_s + self.offset(wall_now=wall_now, mono_now=mono_now)


_ANCHOR = WallAnchor()


def to_wall_time(monotonic_s: float, *, clock: Clock | None = None) -> float:
    """Convert a monotonic timestamp to wall-clock seconds (for output only)."""
    now_mono = (clock or MonotonicClock()).now()
    return _ANCHOR.to_wall(monotonic_s, wall_now=wall_time(), mono_now=now_mono)
