"""structlog configuration for the process.

JSON lines when stderr is not a TTY (journald, files), a console renderer on
a TTY; ``log_format`` ("json" | "console" | "auto") overrides the choice.

:class:`~pyvrrp.base.ratelog.RateLimitedLogger` lives in the leaf package
:mod:`pyvrrp.base` (the adapters use it and must not import the runtime).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure_logging", "setup_logging"]

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
