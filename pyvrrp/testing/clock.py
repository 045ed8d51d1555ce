"""A virtual monotonic clock for tests (the runtime's Clock, without time)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Monotonic seconds that only move when the test says so.

    ``monotonic()`` mirrors ``time.monotonic`` so it can stand in for the
    runtime clock.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock can't go back ({seconds} s)")
        self._now += seconds
        return self._now

    def set(self, when: float) -> float:
        """Jump to the absolute time ``when`` (not earlier than now)."""
        if when < self._now:
            raise ValueError(f"a monotonic clock can't go back from {self._now} to {when}")
        self._now = when
        return self._now
