"""structlog configuration and a rate-limited logger for receive drops.

* JSON lines when stderr is not a TTY (journald, files), a console renderer on
  a TTY; ``log_format`` ("json" | "console" | "auto") overrides the choice.
* :class:`RateLimitedLogger` implements RFC 9568 §7.1 "SHOULD log the event"
  with rate limiting (RX-12): at most ``burst`` events per key per
  ``window_s``; when a later event for that key opens a new window, one
  summary field ``suppressed=K`` reports what was dropped meanwhile.
* :func:`install_asyncio_logging` sends asyncio's own error reports through
  structlog, so JSON logging never gets a bare multi-line traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import structlog

from pyvrrp.runtime.clock import monotonic

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def setup_logging(
    *,
    level: str = "info",
    log_format: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the whole process.

    Args:
        level: minimum level name ("debug", "info", ...).
        log_format: "json", "console", or "auto" (console iff ``stream`` is a TTY).
        stream: where to write; defaults to ``sys.stderr``.

    Raises:
        ValueError: unknown level or format.
    """
    out = stream if stream is not None else sys.stderr
    lvl = _LEVELS.get(level.lower())
    if lvl is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(_LEVELS)}")
    if log_format not in ("auto", "json", "console"):
        raise ValueError(f"unknown log_format {log_format!r}; expected auto, json or console")
    use_console = log_format == "console" or (log_format == "auto" and _isatty(out))
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=_isatty(out))
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def configure_logging(*, fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Alias of :func:`setup_logging` with the CLI's option names (``--log-format``/``--log-level``)."""
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; expected auto, json or console")
    setup_logging(level=level, log_format=fmt, stream=stream)  # type: ignore[arg-type]


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed stream
        return False


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


def asyncio_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Route what asyncio would print (``Task exception was never retrieved``, ...) through structlog.

    asyncio's default handler writes a multi-line traceback with the stdlib
    :mod:`logging` module, which bypasses the JSON renderer: one such report
    breaks every JSON-lines consumer of the log.  Here it becomes one
    ``asyncio_error`` event whose ``exception`` field carries the traceback
    as a string (``format_exc_info``), so the stream stays JSON lines.
    """
    exc = context.get("exception")
    fields: dict[str, Any] = {"message": str(context.get("message", "unhandled exception in event loop"))}
    for key in ("task", "future", "handle", "protocol", "transport", "socket"):
        if key in context:
            fields[key] = repr(context[key])[:200]
    log = structlog.get_logger("pyvrrp.asyncio")
    if isinstance(exc, BaseException):
        log.error("asyncio_error", exc_info=exc, **fields)
    else:
        log.error("asyncio_error", **fields)


def install_asyncio_logging(loop: asyncio.AbstractEventLoop | None = None, *, replace: bool = False) -> bool:
    """Make ``loop`` (default: the running loop) report through :func:`asyncio_exception_handler`.

    An exception handler someone else set is kept unless ``replace``.
    Returns True if the handler was installed.
    """
    target = loop if loop is not None else asyncio.get_running_loop()
    if target.get_exception_handler() is not None and not replace:
        return False
    target.set_exception_handler(asyncio_exception_handler)
    return True
