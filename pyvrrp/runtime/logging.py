"""structlog configuration for the process.

JSON lines when stderr is not a TTY (journald, files), a console renderer on
a TTY; ``log_format`` ("json" | "console" | "auto") overrides the choice.

:class:`~pyvrrp.base.ratelog.RateLimitedLogger` lives in the leaf package
:mod:`pyvrrp.base` (the adapters use it and must not import the runtime).

:func:`install_asyncio_logging` sends asyncio's own error reports through structlog, so
JSON logging never gets a bare multi-line traceback.
"""

from __future__ import annotations

import asyncio
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
