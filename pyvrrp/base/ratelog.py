"""A rate-limited logger for events a peer or the kernel can repeat at line rate.

:class:`RateLimitedLogger` implements RFC 9568 §7.1 "SHOULD log the event"
with rate limiting (RX-12): at most ``burst`` events per key per
``window_s``; when a later event for that key opens a new window, one summary
field ``suppressed=K`` reports what was dropped meanwhile.  Part of the leaf
package :mod:`pyvrrp.base` (imports only :mod:`pyvrrp.base.clock`), so the
adapters' receive paths can use it without importing the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from pyvrrp.base.clock import monotonic

__all__ = ["RateLimitedLogger"]


@dataclass
class _Window:
    started_s: float
    emitted: int = 0
    suppressed: int = 0


class RateLimitedLogger:
    """Emit at most ``burst`` events per key per ``window_s`` seconds (RFC 9568 §7.1, RX-12).

    ``log(key, event, **kw)`` logs through the wrapped structlog logger at
    ``level``.  Events beyond the budget are counted, not logged.  The first
    event of a key after its window expired carries ``suppressed=K`` when K
    events were dropped in the previous window, so nothing disappears silently.
    ``flush()`` emits pending summaries (e.g. on shutdown).
    """

    def __init__(
        self,
        logger: Any | None = None,
        *,
        burst: int = 5,
        window_s: float = 60.0,
        level: str = "info",
        now: Callable[[], float] = monotonic,
        per_key: int | None = None,
    ) -> None:
        if per_key is not None:  # alias of burst
            burst = per_key
        if burst < 1:
            raise ValueError("burst must be >= 1")
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self._logger = logger if logger is not None else structlog.get_logger("pyvrrp")
        self._burst = burst
        self._window_s = window_s
        self._level = level
        self._now = now
        self._windows: dict[Any, _Window] = {}

    def debug(self, key: Any, event: str, **fields: Any) -> bool:
        """:meth:`log` at debug level."""
        return self.log(key, event, _level="debug", **fields)

    def info(self, key: Any, event: str, **fields: Any) -> bool:
        """:meth:`log` at info level."""
        return self.log(key, event, _level="info", **fields)

    def warning(self, key: Any, event: str, **fields: Any) -> bool:
        """:meth:`log` at warning level."""
        return self.log(key, event, _level="warning", **fields)

    def log(self, key: Any, event: str, *, _level: str | None = None, **fields: Any) -> bool:
        """Log ``event`` unless ``key`` is over budget.  Returns True if it was emitted.

        The budget is counted per key whatever the level, and a filtered-out
        level (e.g. debug in production) still counts as emitted.
        """
        now_s = self._now()
        win = self._windows.get(key)
        if win is None or now_s - win.started_s >= self._window_s:
            carried = win.suppressed if win is not None else 0
            win = _Window(started_s=now_s)
            self._windows[key] = win
            if carried:
                fields = {**fields, "suppressed": carried}
        if win.emitted >= self._burst:
            win.suppressed += 1
            return False
        win.emitted += 1
        getattr(self._logger, _level or self._level)(event, **fields)
        return True

    def suppressed(self, key: Any) -> int:
        """Events dropped for ``key`` in its current window."""
        win = self._windows.get(key)
        return win.suppressed if win is not None else 0

    def flush(self, event: str = "log_suppressed") -> None:
        """Emit one summary per key that has suppressed events, then reset."""
        for key, win in list(self._windows.items()):
            if win.suppressed:
                getattr(self._logger, self._level)(event, key=str(key), suppressed=win.suppressed)
            del self._windows[key]
