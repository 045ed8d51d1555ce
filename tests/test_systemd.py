"""sd_notify over a fake $NOTIFY_SOCKET: message format, abstract names, watchdog from the loop."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from pyvrrp.adapters.systemd import SdNotifier, socket_address, watchdog_interval_s


def _listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    assert data.endswith("\n")
    return dict(line.split("=", 1) for line in data.splitlines())


def test_messages_on_a_path_socket(tmp_path: Path) -> None:
    """READY/STATUS/RELOADING+MONOTONIC_USEC/STOPPING/WATCHDOG, one datagram each, one-line values."""
    path = str(tmp_path / "notify")
    sock = _listener(path)
    env = {"NOTIFY_SOCKET": path, "OTHER": "kept"}
    notifier = SdNotifier.from_environ(env)
    try:
        assert env == {"OTHER": "kept"}  # children (notify scripts) do not inherit NOTIFY_SOCKET
        assert notifier.enabled
        assert notifier.ready(status="2 instances\nVI_1 MASTER")
        assert _fields(sock) == {"READY": "1", "STATUS": "2 instances VI_1 MASTER"}
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading()
        got = _fields(sock)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert got["RELOADING"] == "1"
        assert before <= int(got["MONOTONIC_USEC"]) <= after
        assert notifier.status("reloaded")
        assert _fields(sock) == {"STATUS": "reloaded"}
        assert notifier.stopping()
        assert _fields(sock) == {"STOPPING": "1"}
        assert notifier.watchdog()
        assert _fields(sock) == {"WATCHDOG": "1"}
        assert notifier.sent == 5
    finally:
        notifier.close()
        sock.close()


def test_abstract_socket_name() -> None:
    """'@name' is the abstract socket NUL+name."""
    name = f"pyvrrp-test-{secrets.token_hex(4)}"
    sock = _listener("\0" + name)
    notifier = SdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier.ready()
        assert _fields(sock) == {"READY": "1"}
    finally:
        notifier.close()
        sock.close()


def test_no_socket_is_a_no_op_and_errors_never_raise(tmp_path: Path) -> None:
    """Without NOTIFY_SOCKET nothing is sent; a dead socket is counted, not raised."""
    off = SdNotifier.from_environ({})
    assert not off.enabled and off.ready() is False and off.watchdog_ping_interval_s is None
    assert socket_address("relative/path") is None and socket_address("") is None
    assert SdNotifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled is False
    dead = SdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert dead.enabled
    assert dead.ready() is False and dead.watchdog() is False
    assert dead.errors == 2


def test_watchdog_interval_from_environment() -> None:
    """WATCHDOG_USEC in µs; WATCHDOG_PID, when set, must be this process."""
    pid = os.getpid()
    assert watchdog_interval_s({"WATCHDOG_USEC": "20000000"}) == 20.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(pid)}) == 0.5
    assert watchdog_interval_s({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_s({}) is None
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000"})
    assert n.watchdog_s == 4.0 and n.watchdog_ping_interval_s == 2.0


def test_watchdog_pings_come_from_the_event_loop(tmp_path: Path) -> None:
    """Pings every half timeout while the loop runs; none while the loop is blocked."""
    path = str(tmp_path / "notify")
    sock = _listener(path)
    sock.setblocking(False)
    notifier = SdNotifier.from_environ(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    )

    def drain() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096))
            except BlockingIOError:
                return out

    async def main() -> tuple[int, int, int]:
        task = asyncio.create_task(notifier.run_watchdog())
        await asyncio.sleep(0.45)  # pings at 0, 0.1, 0.2, 0.3, 0.4
        running = len(drain())
        time.sleep(0.35)  # the loop hangs: no ping may be sent meanwhile
        blocked = len(drain())
        await asyncio.sleep(0.15)
        after = len(drain())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running, blocked, after

    try:
        running, blocked, after = asyncio.run(main())
    finally:
        notifier.close()
        sock.close()
    assert 3 <= running <= 6
    assert blocked == 0
    assert after >= 1


def test_no_watchdog_returns_at_once(tmp_path: Path) -> None:
    notifier = SdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "n")})
    asyncio.run(asyncio.wait_for(notifier.run_watchdog(), 1.0))
