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
    ProtocolMismatch,
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


# ---------------------------------------------------------------------------
# issue 14 item 4: malformed input, connection cap, write timeout, EMFILE, JSON-only logs


def test_malformed_requests_get_bad_request_and_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Deep nesting, a 5000-digit int, NaN and wrong param types are bad_request; nothing on stderr."""
    path = tmp_path / "c.sock"
    deep = b'{"v":1,"op":"state","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    huge_int = b'{"v":1,"op":"state","instance":' + b"9" * 5000 + b"}\n"
    payload = (
        deep
        + huge_int
        + b'{"v":1,"op":"state","x":NaN}\n'
        + b'{"v":1,"op":"state","instance":{"a":1}}\n'
        + b'{"v":1,"op":"state","instance":5}\n'
        + b'{"v":1,"op":"state","instance":true}\n'
        + b'{"v":1,"op":"state","instance":"VI_1"}\n'
    )

    async def main() -> None:
        async with _server(path) as srv:
            # dispatch_line itself never raises
            assert (await srv.dispatch_line(deep))["error"]["code"] == "bad_request"
            replies = await _raw(path, payload)
            codes = [r["error"]["code"] if not r["ok"] else "ok" for r in replies]
            assert codes == ["bad_request"] * 6 + ["ok"]
            messages = [r["error"]["message"] for r in replies[:6]]
            assert "nested too deeply" in messages[0]
            assert "digit" in messages[1]
            assert "NaN" in messages[2]
            assert messages[3] == "param 'instance' must be a string or null, got an object"
            assert messages[4].endswith("got an integer") and messages[5].endswith("got a boolean")
            assert all("\n" not in m for m in messages)
            assert (await request(path, "state"))["state"] == "MASTER"

    asyncio.run(main())
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_connection_cap_answers_busy_and_closes(tmp_path: Path) -> None:
    """Past max_connections, a new client gets one 'busy' line and EOF; a freed slot is reused."""
    from pyvrrp.runtime.control import MAX_CONNECTIONS

    assert MAX_CONNECTIONS == 64  # the documented default (docs/operations.md)
    path = tmp_path / "c.sock"

    async def main() -> None:
        srv = _server(path)
        srv.max_connections = 3
        async with srv:
            held = [await asyncio.open_unix_connection(str(path)) for _ in range(3)]
            for _reader, writer in held:  # each held connection is really being served
                writer.write(b'{"v":1,"op":"state"}\n')
            for reader, _writer in held:
                assert json.loads(await reader.readline())["ok"] is True
            assert srv.connections == 3
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b'{"v":1,"op":"state"}\n')
            data = await asyncio.wait_for(reader.read(), 2.0)  # whole stream: one line then EOF
            lines = data.splitlines()
            assert len(lines) == 1
            assert json.loads(lines[0])["error"]["code"] == "busy"
            assert "limit 3" in json.loads(lines[0])["error"]["message"]
            writer.close()
            assert srv.connections_rejected == 1
            held[0][1].close()
            for _ in range(100):
                if srv.connections < 3:
                    break
                await asyncio.sleep(0.01)
            assert (await request(path, "state"))["state"] == "MASTER"
            for _reader, w in held[1:]:
                w.close()

    asyncio.run(main())


def test_client_that_never_reads_is_dropped_after_write_timeout(tmp_path: Path) -> None:
    """A reply the client does not take within write_timeout_s drops the connection (idle timeout is 30 s)."""
    path = tmp_path / "c.sock"

    async def main() -> None:
        srv = _server(path)
        srv.write_timeout_s = 0.3

        async def big(params: dict[str, Any]) -> str:
            return "x" * (4 << 20)  # far more than the socket buffers hold

        srv.register("big", big)
        async with srv:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(str(path))
            sock.sendall(b'{"v":1,"op":"big"}\n')  # ... and never read
            try:
                for _ in range(300):
                    await asyncio.sleep(0.01)
                    if srv.clients_dropped and srv.connections == 0:
                        break
                assert srv.clients_dropped == 1
                assert srv.connections == 0
                assert srv.idle_timeout_s == 30.0
            finally:
                sock.close()
            assert (await request(path, "state"))["state"] == "MASTER"

    asyncio.run(main())


_EMFILE_SERVER = r"""
import asyncio, os, resource, sys
from pyvrrp.runtime.logging import setup_logging
from pyvrrp.runtime.control import ControlServer

setup_logging(level="info", log_format="json", stream=sys.stderr)

async def main():
    srv = ControlServer(sys.argv[1], max_connections=1000)
    async def state(params):
        return {"ok": 1}
    srv.register("state", state)
    async with srv:
        in_use = len(os.listdir("/proc/self/fd"))
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 6, hard))
        print("ready", flush=True)
        await asyncio.sleep(30)

asyncio.run(main())
"""


def test_accept_backs_off_on_emfile_with_json_logs_only(tmp_path: Path) -> None:
    """Out of descriptors: one backoff line (JSON), no asyncio traceback storm, service resumes."""
    import subprocess
    import sys
    import time

    path = tmp_path / "c.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMFILE_SERVER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(30):  # the kernel queues them (backlog 128); the server runs out of fds
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(path))
            clients.append(c)
        time.sleep(1.5)
        for c in clients:
            c.close()
        clients.clear()
        assert request_sync(path, "state", timeout=5.0) == {"ok": 1}
        time.sleep(1.1)  # a quiet second ends the episode at the next accept
        assert request_sync(path, "state", timeout=5.0) == {"ok": 1}
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    lines = err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON: no bare traceback
    events = [r["event"] for r in records]
    assert events.count("control_accept_backoff") == 1
    assert "control_accept_resumed" in events
    assert len(lines) < 10


def test_asyncio_errors_go_through_structlog(tmp_path: Path) -> None:
    """Once the control socket starts, asyncio's exception reports are JSON log lines."""
    import io

    import structlog

    from pyvrrp.runtime.logging import setup_logging

    buf = io.StringIO()
    path = tmp_path / "c.sock"

    async def main() -> None:
        async with _server(path):
            loop = asyncio.get_running_loop()
            try:
                raise RuntimeError("kaput in a callback")
            except RuntimeError as exc:
                loop.call_exception_handler({"message": "Exception in callback", "exception": exc})

    try:
        setup_logging(level="info", log_format="json", stream=buf)
        asyncio.run(main())
    finally:
        structlog.reset_defaults()
    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    errors = [r for r in records if r["event"] == "asyncio_error"]
    assert len(errors) == 1
    assert errors[0]["message"] == "Exception in callback"
    assert "kaput in a callback" in errors[0]["exception"]


def test_a_reply_larger_than_a_request_may_be_is_read_whole(tmp_path: Path) -> None:
    """`state` of 1,000 instances is several MB on one line: the client reads it (a request
    stays capped at MAX_LINE_BYTES); found when `state --json` failed at N = 1000."""
    path = tmp_path / "c.sock"
    srv = ControlServer(path)
    big = [{"name": f"VI_{i}", "pad": "x" * 3000} for i in range(1000)]  # ~3 MB

    async def state(params: dict[str, Any]) -> dict[str, Any]:
        return {"instances": big}

    srv.register("state", state)

    async def main() -> None:
        async with srv:
            got = await request(path, "state")
            assert len(got["instances"]) == 1000 and got["instances"][-1] == big[-1]

    asyncio.run(main())


def test_a_reply_beyond_the_client_limit_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"v": 1, "ok": true, "result": "' + b"x" * 4096)  # never ends its line
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(serve, path=str(path))
        async with server:
            with pytest.raises(ProtocolMismatch, match="longer than"):
                await request_reply(path, "state", timeout=5, max_reply_bytes=1024)

    asyncio.run(main())
