"""Control socket: versioned JSON lines over a Unix stream socket.

Protocol (docs/architecture.md, "pyvrrp state"): one JSON object per line.

Request::

    {"v": 1, "op": "state", "instance": null}

Replies::

    {"v": 1, "ok": true, "result": {...}}
    {"v": 1, "ok": false, "error": {"code": "unknown_op", "message": "..."}}

Every key other than ``v`` and ``op`` is passed to the handler as its
``params`` dict, after a type check: a param named in :data:`PARAM_TYPES` (or
in the types given to :meth:`ControlServer.register`) with a value of
another JSON type is a ``bad_request``, so handlers never see
``"instance": {...}``.  Error codes: ``bad_request`` (not JSON, nested
deeper than Python can parse, an integer over Python's digit limit, NaN or
Infinity, not an object, no ``op``, a param of the wrong type),
``unsupported_version``, ``unknown_op``, ``not_found`` (a handler raised
``LookupError``/``KeyError``, e.g. an unknown instance; the message is the
exception's first argument), ``busy`` (connection cap reached, see below),
``internal`` (any other handler exception; logged with traceback, inside the
JSON log), or whatever a handler raises with :class:`ControlError`.  A
connection may carry several requests in sequence.

Resource bounds, because any member of the socket's group can connect:

* at most ``max_connections`` (:data:`MAX_CONNECTIONS`, 64) at once; one more
  is answered with a single ``busy`` error line and closed (its input is
  read and dropped for up to 1 s first, so the client sees the line and not
  a reset), so clients that hold connections cannot pile up descriptors;
* a connection idle for ``idle_timeout_s`` (30 s) is closed, and a reply not
  taken by the client within ``write_timeout_s`` (:data:`WRITE_TIMEOUT_S`,
  5 s) drops the connection (a client that never reads cannot pin it);
* ``accept()`` failing for lack of descriptors or memory (EMFILE, ENFILE,
  ENOBUFS, ENOMEM) backs off exponentially from 50 ms to 2 s and logs one
  ``control_accept_backoff`` line per episode (``control_accept_resumed``
  with the failure count at the first accept 1 s after the last failure),
  instead of asyncio's 100 tracebacks a second.  The accept loop is
  pyvrrp's own for that reason.

Start-up probe (ExaBGP's unixsocket habit): before binding, a live daemon
answering on the path is an error (:class:`SocketInUse`); a stale socket file
is unlinked.  The socket is chmod 0660 (group optional).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import errno
import grp
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

import structlog

from pyvrrp.base.ratelog import RateLimitedLogger
from pyvrrp.runtime.logging import install_asyncio_logging

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/pyvrrp/control.sock"
DEFAULT_TIMEOUT_S = 2.0
MAX_LINE_BYTES = 1 << 20
"""The longest request line the daemon reads."""
MAX_REPLY_BYTES = 1 << 28
"""The longest reply line a client reads (``state`` of 1,000 instances is several MB)."""
IDLE_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
LISTEN_BACKLOG = 128
ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 2.0
ACCEPT_RESUME_QUIET_S = 1.0
REJECT_LINGER_S = 1.0

# accept() errors that mean "out of descriptors or memory": back off, do not spin
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

ParamTypes = tuple[type, ...]

# Params every op may carry, with the JSON types they accept.
PARAM_TYPES: dict[str, ParamTypes] = {"instance": (str, type(None))}

_JSON_TYPE_NAMES = {
    str: "a string",
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
}

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
    """``json.dumps(default=...)`` hook: IPs -> str, enums -> value, dataclasses -> dict (one level)."""
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_request(line: bytes) -> Any:
    """``json.loads`` for one request line.

    Raises:
        ValueError: with a one-line message for anything that is not plain
            JSON Python can hold: bad syntax or encoding, NaN/Infinity,
            nesting deeper than the interpreter's recursion limit, or an
            integer longer than ``sys.get_int_max_str_digits()`` (4300).
    """
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # int over the digit limit, NaN/Infinity
        raise ValueError(f"invalid JSON: {str(exc).splitlines()[0]}") from None


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def check_params(params: dict[str, Any], types: dict[str, ParamTypes]) -> str | None:
    """The ``bad_request`` message for the first param whose JSON type is not allowed, else None."""
    for name, allowed in types.items():
        if name not in params:
            continue
        value = params[name]
        # bool is an int to isinstance(); a JSON true is not a number here
        ok = any(type(value) is t or (t is float and type(value) is int) for t in allowed)
        if not ok:
            want = " or ".join(_JSON_TYPE_NAMES.get(t, t.__name__) for t in allowed)
            return f"param {name!r} must be {want}, got {_type_name(value)}"
    return None


class ControlServer:
    """Unix-socket JSON-lines server dispatching ``op`` to registered async handlers."""

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_SOCKET_PATH,
        *,
        mode: int = 0o660,
        group: str | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.path = Path(path)
        self.mode = mode
        self.group = group
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self.max_connections = max_connections
        self._handlers: dict[str, Handler] = {}
        self._param_types: dict[str, dict[str, ParamTypes]] = {}
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._rejecting: set[asyncio.Task[None]] = set()
        self._rate_log = RateLimitedLogger(_log, burst=3, window_s=60.0, level="warning")
        self.requests_served = 0
        self.connections_rejected = 0
        self.clients_dropped = 0
        self.accept_failures = 0

    def register(self, op: str, handler: Handler, *, params: dict[str, ParamTypes] | None = None) -> None:
        """Dispatch requests with ``"op": op`` to ``await handler(params)``.

        The handler returns a JSON-serialisable value (``to_jsonable`` types
        allowed) that becomes ``result``; it raises :class:`ControlError` for
        an error reply.  ``params`` maps param names to the Python types of
        the JSON values allowed (on top of :data:`PARAM_TYPES`); any other
        type is answered with ``bad_request`` before the handler runs.
        """
        self._handlers[op] = handler
        self._param_types[op] = {**PARAM_TYPES, **(params or {})}

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._conns)

    async def start(self) -> None:
        """Probe, bind, chmod and start serving.

        Also routes the loop's exception reports through structlog
        (:func:`~pyvrrp.runtime.logging.install_asyncio_logging`) unless the
        loop already has a handler.

        Raises:
            SocketInUse: a live daemon answers on ``path``.
            FileExistsError: ``path`` exists and is not a socket.
        """
        loop = asyncio.get_running_loop()
        install_asyncio_logging(loop)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await _probe_and_clear(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        os.chmod(self.path, self.mode)
        if self.group is not None:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            except (KeyError, PermissionError) as exc:
                _log.warning("control_socket_group_not_set", group=self.group, error=str(exc))
        self._accept_task = loop.create_task(self._accept_loop(sock), name="control-accept")
        _log.info(
            "control_socket_listening",
            path=str(self.path),
            ops=list(self.ops),
            max_connections=self.max_connections,
        )

    async def close(self) -> None:
        """Stop accepting, cancel connections, unlink the socket file."""
        if self._listener is None:
            return
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        self._listener.close()
        self._listener = None
        tasks = [*self._conns, *self._rejecting]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ accepting

    async def _accept_loop(self, sock: socket.socket) -> None:
        """accept() forever; back off on descriptor/memory exhaustion instead of spinning.

        An episode starts at the first EMFILE-like failure (one warning) and
        ends (one info line) at the first accept that comes
        ``ACCEPT_RESUME_QUIET_S`` after the last failure.  Each failure
        doubles the retry delay (50 ms .. 2 s), each accepted connection
        halves it.  A listen queue that drains while descriptors come free
        flaps between failure and success; that stays one episode.
        """
        loop = asyncio.get_running_loop()
        delay_s = 0.0
        failures = 0
        last_failure_s = 0.0
        while True:
            try:
                conn, _addr = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    # ECONNABORTED and friends: that client is gone, the next one is not
                    self._rate_log.log("accept", "control_accept_failed", error=exc.strerror or str(exc))
                    continue
                failures += 1
                self.accept_failures += 1
                last_failure_s = loop.time()
                if failures == 1:
                    _log.warning(
                        "control_accept_backoff",
                        error=exc.strerror or str(exc),
                        errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                        open_connections=len(self._conns),
                        action="retrying with backoff up to 2 s; raise LimitNOFILE or find the fd leak",
                    )
                delay_s = min(ACCEPT_BACKOFF_MAX_S, max(ACCEPT_BACKOFF_MIN_S, delay_s * 2))
                await asyncio.sleep(delay_s)
                continue
            delay_s = delay_s / 2 if delay_s >= 2 * ACCEPT_BACKOFF_MIN_S else 0.0
            if failures and loop.time() - last_failure_s >= ACCEPT_RESUME_QUIET_S:
                _log.info("control_accept_resumed", failures=failures)
                failures = 0
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        if len(self._conns) < self.max_connections:
            task = loop.create_task(self._serve_socket(conn), name="control-conn")
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)
            return
        self.connections_rejected += 1
        self._rate_log.log(
            "busy",
            "control_connection_rejected",
            limit=self.max_connections,
            total=self.connections_rejected,
        )
        reply = _dumps(
            _error("busy", f"too many control connections (limit {self.max_connections}); try again later")
        )
        with contextlib.suppress(OSError):  # a fresh socket's buffer takes one short line
            conn.send(reply)
            conn.shutdown(socket.SHUT_WR)
        if len(self._rejecting) >= self.max_connections:
            conn.close()  # under a flood, no lingering: the client may see a reset instead
            return
        task = loop.create_task(self._linger(conn), name="control-reject")
        self._rejecting.add(task)
        task.add_done_callback(self._rejecting.discard)

    async def _linger(self, conn: socket.socket) -> None:
        """Read and discard what a rejected client sends, for at most ``REJECT_LINGER_S``.

        Closing a Unix socket with unread input resets the peer (ECONNRESET),
        and the client would lose the ``busy`` line it was sent.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(REJECT_LINGER_S):
                while await loop.sock_recv(conn, 4096):
                    pass
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()

    async def _serve_socket(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=conn, limit=MAX_LINE_BYTES)
        except OSError:
            conn.close()
            return
        try:
            await self._serve(reader, writer)
        except Exception as exc:  # never let a connection's failure reach asyncio's stderr report
            _log.error("control_connection_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        finally:
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # unsent bytes to a client that stopped reading: drop them
            else:
                writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    # ------------------------------------------------------------ serving

    async def _write(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> bool:
        """Send one reply; False (connection to drop) if the client does not take it in time."""
        writer.write(_dumps(reply))
        try:
            await asyncio.wait_for(writer.drain(), self.write_timeout_s)
        except TimeoutError:
            self.clients_dropped += 1
            self._rate_log.log(
                "write_timeout",
                "control_client_dropped",
                reason="client did not read its reply",
                write_timeout_s=self.write_timeout_s,
                total=self.clients_dropped,
            )
            writer.transport.abort()
            return False
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
                except TimeoutError:
                    break
                except (asyncio.LimitOverrunError, ValueError):
                    too_long = _error("bad_request", f"request longer than {MAX_LINE_BYTES} bytes")
                    await self._write(writer, too_long)
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply = await self.dispatch_line(line)
                if not await self._write(writer, reply):
                    break
        except (ConnectionError, BrokenPipeError):
            pass  # client went away mid-reply; nothing to answer

    async def dispatch_line(self, line: bytes) -> dict[str, Any]:
        """Decode one request line and return the reply object (never raises)."""
        try:
            req = decode_request(line)
        except ValueError as exc:
            return _error("bad_request", str(exc))
        if not isinstance(req, dict):
            return _error("bad_request", "request must be a JSON object")
        version = req.get("v", PROTOCOL_VERSION)
        if type(version) is not int or version != PROTOCOL_VERSION:
            return _error(
                "unsupported_version",
                f"protocol version {_short_repr(version)} not supported (want {PROTOCOL_VERSION})",
            )
        op = req.get("op")
        if not isinstance(op, str):
            return _error("bad_request", "missing string field 'op'")
        handler = self._handlers.get(op)
        if handler is None:
            return _error("unknown_op", f"unknown op {_short_repr(op)}; known: {', '.join(self.ops)}")
        params = {k: v for k, v in req.items() if k not in ("v", "op")}
        problem = check_params(params, self._param_types.get(op, PARAM_TYPES))
        if problem is not None:
            return _error("bad_request", problem)
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
            return _error("internal", f"{type(exc).__name__}: {str(exc)[:200]}")


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters (error messages echo client input)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past the digit limit cannot be repr'd
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    path: str | os.PathLike[str],
    op: str,
    /,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_reply_bytes: int = MAX_REPLY_BYTES,
    **params: Any,
) -> dict[str, Any]:
    """Send one request; return the whole reply object (``ok`` true or false).

    Raises:
        DaemonUnreachable: no socket, nobody listening, permission denied, or no reply in time.
        ProtocolMismatch: the reply is not a protocol object.
    """
    p = str(path)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(p, limit=max_reply_bytes), timeout
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
    except ValueError:  # asyncio's LimitOverrunError, re-raised by readline()
        raise ProtocolMismatch(f"reply longer than {max_reply_bytes} bytes") from None
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
