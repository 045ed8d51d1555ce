"""Control socket: JSON-lines protocol, handler registry, probe of live/stale sockets, client errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.proto.events import State
from pyvrrp.runtime.control import (
    ControlError,
    ControlServer,
    DaemonUnreachable,
    ErrorReply,
    SocketInUse,
    request,
    request_reply,
    request_sync,
)


def _server(path: Path) -> ControlServer:
    srv = ControlServer(path)

    async def state(params: dict[str, Any]) -> dict[str, Any]:
        if params.get("instance") == "nope":
            raise ControlError("no_such_instance", "no instance 'nope'")
        return {
            "instance": params.get("instance"),
            "state": State.MASTER,
            "master_ip": IPv4Address("192.0.2.1"),
        }

    async def boom(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("kaput")

    async def lookup(params: dict[str, Any]) -> dict[str, Any]:
        raise KeyError(f"no instance named {params.get('instance')!r}")

    srv.register("state", state)
    srv.register("boom", boom)
    srv.register("lookup", lookup)
    return srv


async def _raw(path: Path, payload: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    out = [json.loads(line) for line in (await reader.read()).splitlines()]
    writer.close()
    return out


def test_state_roundtrip_and_permissions(tmp_path: Path) -> None:
    """Request/reply envelope v1; result encodes enums and IPs; socket is 0660 in a created dir."""
    path = tmp_path / "run" / "pyvrrp" / "control.sock"

    async def main() -> None:
        async with _server(path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o660
            reply = await request_reply(path, "state", instance=None)
            assert reply == {
                "v": 1,
                "ok": True,
                "result": {"instance": None, "state": "MASTER", "master_ip": "192.0.2.1"},
            }
            assert (await request(path, "state", instance="VI_1"))["instance"] == "VI_1"
        assert not path.exists()  # unlinked on close

    asyncio.run(main())


def test_error_replies_never_crash_server(tmp_path: Path) -> None:
    """Malformed JSON, non-object, missing op, bad version, unknown op, handler errors -> error replies."""
    path = tmp_path / "c.sock"

    async def main() -> None:
        async with _server(path):
            replies = await _raw(
                path,
                b"{not json\n"
                b"[1,2]\n"
                b'{"v":1}\n'
                b'{"v":2,"op":"state"}\n'
                b'{"v":1,"op":"frobnicate"}\n'
                b'{"v":1,"op":"boom"}\n'
                b'{"v":1,"op":"state","instance":"nope"}\n'
                b'{"v":1,"op":"lookup","instance":"VI_9"}\n'
                b"\n"
                b'{"v":1,"op":"state","instance":"VI_1"}\n',
            )
            codes = [r["error"]["code"] if not r["ok"] else "ok" for r in replies]
            assert codes == [
                "bad_request",
                "bad_request",
                "bad_request",
                "unsupported_version",
                "unknown_op",
                "internal",
                "no_such_instance",
                "not_found",
                "ok",
            ]
            assert replies[7]["error"]["message"] == "no instance named 'VI_9'"
            assert all(r["v"] == 1 for r in replies)
            assert "frobnicate" in replies[4]["error"]["message"]
            assert "kaput" in replies[5]["error"]["message"]
            # still serving after all that
            assert (await request(path, "state"))["state"] == "MASTER"

    asyncio.run(main())


def test_client_raises_error_reply(tmp_path: Path) -> None:
    """ok:false becomes ErrorReply carrying code and message."""
    path = tmp_path / "c.sock"

    async def main() -> None:
        async with _server(path):
            with pytest.raises(ErrorReply) as exc_info:
                await request(path, "state", instance="nope")
            assert exc_info.value.code == "no_such_instance"
            assert "nope" in exc_info.value.message

    asyncio.run(main())


def test_live_socket_refused(tmp_path: Path) -> None:
    """A second server on a path where a live daemon answers fails with 'another pyvrrp holds'."""
    path = tmp_path / "c.sock"

    async def main() -> None:
        async with _server(path):
            with pytest.raises(SocketInUse, match=f"another pyvrrp holds {path}"):
                await ControlServer(path).start()
            # the first server is untouched
            assert (await request(path, "state"))["state"] == "MASTER"

    asyncio.run(main())


def test_stale_socket_unlinked(tmp_path: Path) -> None:
    """A dead socket file (left by a crashed daemon) is replaced."""
    path = tmp_path / "c.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # file remains, nobody listening
    assert path.exists()

    async def main() -> None:
        async with _server(path):
            assert (await request(path, "state"))["state"] == "MASTER"

    asyncio.run(main())


def test_regular_file_not_replaced(tmp_path: Path) -> None:
    """A non-socket file at the path is never deleted."""
    path = tmp_path / "c.sock"
    path.write_text("precious")

    async def main() -> None:
        with pytest.raises(FileExistsError):
            await ControlServer(path).start()

    asyncio.run(main())
    assert path.read_text() == "precious"


def test_unreachable_messages(tmp_path: Path) -> None:
    """No socket / stale socket / silent listener -> DaemonUnreachable with a one-line message."""
    missing = tmp_path / "missing.sock"
    with pytest.raises(DaemonUnreachable, match="no control socket") as e1:
        request_sync(missing, "state")
    assert "\n" not in str(e1.value)

    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    with pytest.raises(DaemonUnreachable, match="nothing listening"):
        request_sync(stale, "state")

    silent = tmp_path / "silent.sock"
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(str(silent))
    ls.listen(1)
    try:
        with pytest.raises(DaemonUnreachable, match="did not answer"):
            request_sync(silent, "state", timeout=0.3)
    finally:
        ls.close()


def test_sync_wrapper_and_concurrent_clients(tmp_path: Path) -> None:
    """request_sync works from a thread while the server runs; many clients at once are served."""
    path = tmp_path / "c.sock"

    async def main() -> None:
        async with _server(path) as srv:
            results = await asyncio.gather(*(request(path, "state", instance=f"VI_{i}") for i in range(20)))
            assert [r["instance"] for r in results] == [f"VI_{i}" for i in range(20)]
            sync_result = await asyncio.to_thread(request_sync, path, "state", instance="X")
            assert sync_result["instance"] == "X"
            assert srv.requests_served == 21

    asyncio.run(main())
    assert not os.path.exists(path)


# ---------------------------------------------------------------------------
# logging helpers: runtime.logging set-up and base.ratelog


class _Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((level, event, kw))


def test_rate_limited_logger_budget_and_summary() -> None:
    """RX-12 (RFC 9568 §7.1): at most N events per key per window, then 'suppressed=K' on the next window."""
    from pyvrrp.base.ratelog import RateLimitedLogger

    now = [0.0]
    sink = _Sink()
    rl = RateLimitedLogger(sink, burst=2, window_s=10.0, now=lambda: now[0])
    emitted = [rl.debug("ttl", "advert_dropped", n=i) for i in range(5)]
    assert emitted == [True, True, False, False, False]
    assert rl.suppressed("ttl") == 3
    assert rl.warning("checksum", "advert_dropped", n=0)  # other keys have their own budget
    now[0] = 9.9
    assert not rl.debug("ttl", "advert_dropped", n=5)
    now[0] = 10.0
    assert rl.debug("ttl", "advert_dropped", n=6)
    assert sink.events[-1] == ("debug", "advert_dropped", {"n": 6, "suppressed": 4})
    assert ("warning", "advert_dropped", {"n": 0}) in sink.events
    assert len(sink.events) == 4
    rl.debug("ttl", "advert_dropped")
    rl.debug("ttl", "advert_dropped")
    rl.flush()
    assert sink.events[-1] == ("info", "log_suppressed", {"key": "ttl", "suppressed": 1})


def test_setup_logging_json_when_not_a_tty() -> None:
    """Logs are JSON lines on a non-TTY stream; console rendering on request; bad format rejected."""
    import structlog

    from pyvrrp.runtime.logging import configure_logging, setup_logging

    try:
        _check_setup_logging(setup_logging, configure_logging)
    finally:
        structlog.reset_defaults()


def _check_setup_logging(setup_logging: Any, configure_logging: Any) -> None:
    import io

    import structlog

    buf = io.StringIO()
    setup_logging(level="info", stream=buf)
    structlog.get_logger("t").info("state_changed", vrid=51)
    structlog.get_logger("t").debug("hidden")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["event"] == "state_changed" and rec["vrid"] == 51 and rec["level"] == "info"
    buf2 = io.StringIO()
    configure_logging(fmt="console", level="debug", stream=buf2)
    structlog.get_logger("t").debug("visible", a=1)
    assert "visible" in buf2.getvalue() and not buf2.getvalue().startswith("{")
    with pytest.raises(ValueError):
        setup_logging(log_format="xml")
