"""Control socket: versioned JSON lines over a Unix stream socket.

Protocol (docs/architecture.md, "pyvrrp state"): one JSON object per line.

Request::

    {"v": 1, "op": "state", "instance": null}

Replies::

    {"v": 1, "ok": true, "result": {...}}
    {"v": 1, "ok": false, "error": {"code": "unknown_op", "message": "..."}}

Every key other than ``v`` and ``op`` is passed to the handler as its
``params`` dict.  Error codes: ``bad_request`` (not JSON, not an object, no
``op``), ``unsupported_version``, ``unknown_op``, ``not_found`` (a handler raised
``LookupError``/``KeyError``, e.g. an unknown instance; the message is the
exception's first argument), ``internal`` (any other handler exception;
logged with traceback), or whatever a handler raises with
:class:`ControlError`.  A connection may carry several requests in sequence.

Start-up probe (ExaBGP's unixsocket habit): before binding, a live daemon
answering on the path is an error (:class:`SocketInUse`); a stale socket file
is unlinked.  The socket is chmod 0660 (group optional).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import grp
import json
import os
import stat
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

import structlog

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/pyvrrp/control.sock"
DEFAULT_TIMEOUT_S = 2.0
MAX_LINE_BYTES = 1 << 20
IDLE_TIMEOUT_S = 30.0

_log = structlog.get_logger("pyvrrp.runtime.control")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlError(Exception):
    """Raised by a handler to send ``{"ok": false, "error": {code, message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SocketInUse(RuntimeError):
    """Another live daemon answers on the control socket path."""


class DaemonUnreachable(ConnectionError):
    """Nothing answers on the control socket (CLI exit code 2).  ``str()`` is one line."""


class ErrorReply(Exception):
    """The daemon answered ``ok: false`` (CLI exit code 1)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProtocolMismatch(Exception):
    """The reply is not valid protocol JSON (wrong version, garbage)."""


def to_jsonable(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: IPs -> str, enums -> value, records and dataclasses -> dict."""
    if isinstance(obj, IPv4Address | IPv6Address | IPv4Interface | IPv6Interface | IPv4Network | IPv6Network):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(reply: dict[str, Any]) -> bytes:
    return (json.dumps(reply, default=to_jsonable, separators=(",", ":")) + "\n").encode()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": False, "error": {"code": code, "message": message}}


class ControlServer:
    """Unix-socket JSON-lines server dispatching ``op`` to registered async handlers."""

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_SOCKET_PATH,
        *,
        mode: int = 0o660,
        group: str | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.mode = mode
        self.group = group
        self.idle_timeout_s = idle_timeout_s
        self._handlers: dict[str, Handler] = {}
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.requests_served = 0

    def register(self, op: str, handler: Handler) -> None:
        """Dispatch requests with ``"op": op`` to ``await handler(params)``.

        The handler returns a JSON-serialisable value (``to_jsonable`` types
        allowed) that becomes ``result``; it raises :class:`ControlError` for
        an error reply.
        """
        self._handlers[op] = handler

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    async def start(self) -> None:
        """Probe, bind, chmod and start serving.

        Raises:
            SocketInUse: a live daemon answers on ``path``.
            FileExistsError: ``path`` exists and is not a socket.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await _probe_and_clear(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE_BYTES)
        os.chmod(self.path, self.mode)
        if self.group is not None:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            except (KeyError, PermissionError) as exc:
                _log.warning("control_socket_group_not_set", group=self.group, error=str(exc))
        _log.info("control_socket_listening", path=str(self.path), ops=list(self.ops))

    async def close(self) -> None:
        """Stop accepting, finish/cancel connections, unlink the socket file."""
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            for task in list(self._conns):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
                except TimeoutError:
                    break
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(_dumps(_error("bad_request", f"request longer than {MAX_LINE_BYTES} bytes")))
                    await writer.drain()
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply = await self.dispatch_line(line)
                writer.write(_dumps(reply))
                await writer.drain()
        except (ConnectionError, BrokenPipeError):
            pass  # client went away mid-reply; nothing to answer
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    async def dispatch_line(self, line: bytes) -> dict[str, Any]:
        """Decode one request line and return the reply object (never raises)."""
        try:
            req = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error("bad_request", f"invalid JSON: {exc}")
        if not isinstance(req, dict):
            return _error("bad_request", "request must be a JSON object")
        version = req.get("v", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            return _error(
                "unsupported_version", f"protocol version {version!r} not supported (want {PROTOCOL_VERSION})"
            )
        op = req.get("op")
        if not isinstance(op, str):
            return _error("bad_request", "missing string field 'op'")
        handler = self._handlers.get(op)
        if handler is None:
            return _error("unknown_op", f"unknown op {op!r}; known: {', '.join(self.ops)}")
        params = {k: v for k, v in req.items() if k not in ("v", "op")}
        self.requests_served += 1
        try:
            result = await handler(params)
            reply = {"v": PROTOCOL_VERSION, "ok": True, "result": result}
            _dumps(reply)  # fail here (as "internal"), not half-way through a write
            return reply
        except ControlError as exc:
            return _error(exc.code, exc.message)
        except LookupError as exc:  # convention: "no such instance/object" from a handler
            message = str(exc.args[0]) if exc.args else type(exc).__name__
            _log.info("control_not_found", op=op, message=message)
            return _error("not_found", message)
        except Exception as exc:  # a handler bug must not kill the daemon; reply and log it
            _log.exception("control_handler_failed", op=op)
            return _error("internal", f"{type(exc).__name__}: {exc}")


async def _probe_and_clear(path: Path) -> None:
    """Refuse a live socket, unlink a stale one (ExaBGP unixsocket probe)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
    if await _is_live(path):
        raise SocketInUse(f"another pyvrrp holds {path}")
    _log.info("control_socket_stale_removed", path=str(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _is_live(path: Path, timeout_s: float = 1.0) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout_s)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        return True  # backlog full: something is bound and alive
    writer.close()
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        await writer.wait_closed()
    return True


# ------------------------------------------------------------------ client


async def request_reply(
    path: str | os.PathLike[str], op: str, /, *, timeout: float = DEFAULT_TIMEOUT_S, **params: Any
) -> dict[str, Any]:
    """Send one request; return the whole reply object (``ok`` true or false).

    Raises:
        DaemonUnreachable: no socket, nobody listening, permission denied, or no reply in time.
        ProtocolMismatch: the reply is not a protocol object.
    """
    p = str(path)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(p, limit=MAX_LINE_BYTES), timeout
        )
    except FileNotFoundError:
        raise DaemonUnreachable(f"pyvrrp daemon not running: no control socket at {p}") from None
    except ConnectionRefusedError:
        raise DaemonUnreachable(f"pyvrrp daemon not running: nothing listening on {p}") from None
    except PermissionError:
        raise DaemonUnreachable(f"permission denied on {p} (need root or the socket's group)") from None
    except TimeoutError:
        raise DaemonUnreachable(f"pyvrrp daemon did not accept on {p} within {timeout}s") from None
    except OSError as exc:
        raise DaemonUnreachable(f"cannot connect to {p}: {exc.strerror or exc}") from None
    try:
        writer.write(_dumps({"v": PROTOCOL_VERSION, "op": op, **params}))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise DaemonUnreachable(f"pyvrrp daemon did not answer on {p} within {timeout}s") from None
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise DaemonUnreachable(f"connection to {p} lost: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await writer.wait_closed()
    if not line:
        raise DaemonUnreachable(f"pyvrrp daemon closed {p} without answering")
    try:
        reply = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolMismatch(f"reply is not JSON: {exc}") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ProtocolMismatch("reply is not a protocol object")
    if reply.get("v") != PROTOCOL_VERSION:
        raise ProtocolMismatch(f"reply has protocol version {reply.get('v')!r}, want {PROTOCOL_VERSION}")
    return reply


async def request(
    path: str | os.PathLike[str], op: str, /, *, timeout: float = DEFAULT_TIMEOUT_S, **params: Any
) -> Any:
    """Send one request and return its ``result``.

    Raises:
        DaemonUnreachable: nothing answers (one-line message).
        ErrorReply: the daemon answered ``ok: false``.
        ProtocolMismatch: unreadable reply.
    """
    reply = await request_reply(path, op, timeout=timeout, **params)
    if not reply["ok"]:
        err = reply.get("error") or {}
        raise ErrorReply(str(err.get("code", "error")), str(err.get("message", "")))
    return reply.get("result")


def request_sync(
    path: str | os.PathLike[str], op: str, /, *, timeout: float = DEFAULT_TIMEOUT_S, **params: Any
) -> Any:
    """Blocking :func:`request` for the CLI (must not be called from a running loop)."""
    return asyncio.run(request(path, op, timeout=timeout, **params))


def socket_exists(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a Unix socket file (it may still be stale)."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


__all__ = [
    "DEFAULT_SOCKET_PATH",
    "PROTOCOL_VERSION",
    "ControlError",
    "ControlServer",
    "DaemonUnreachable",
    "ErrorReply",
    "ProtocolMismatch",
    "SocketInUse",
    "request",
    "request_reply",
    "request_sync",
    "socket_exists",
    "to_jsonable",
]
