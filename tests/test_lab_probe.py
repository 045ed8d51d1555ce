"""The lab's client probe (pyvrrp/lab/probe.py) without root: its log format, the figures
taken from a log, and the program itself against HTTP servers on loopback."""

from __future__ import annotations

import http.server
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvrrp.lab import probe
from pyvrrp.lab.probe import Reply

# --------------------------------------------------------------------------- one response


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nlb1\n", 200, "lb1"),
        (b"HTTP/1.1 200 OK\r\n\r\n  rs2 192.168.233.110 \n", 200, "rs2 192.168.233.110"),
        (b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy", 503, "busy"),
        (b"HTTP/1.0 200 OK\r\n\r\n", 200, ""),
        (b"SSH-2.0-OpenSSH_9.2\r\n", None, ""),
        (b"", None, ""),
        (b"HTTP/1.0 abc\r\n\r\nx", None, "x"),
    ],
)
def test_parse_response_status_and_body(raw: bytes, status: int | None, body: str) -> None:
    assert probe.parse_response(raw) == (status, body)


def test_parse_response_cuts_a_large_body() -> None:
    _, body = probe.parse_response(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000)
    assert len(body) == probe.BODY_MAX


def test_who_and_answer() -> None:
    served = Reply(1.0, 1.1, True, 200, "rs1 192.168.233.100")
    assert (served.who, served.answer) == ("rs1", "rs1")
    refused = Reply(1.0, 1.1, False, err="ConnectionRefusedError: [Errno 111] Connection refused")
    assert (refused.who, refused.answer) == ("", "ERR:ConnectionRefusedError")
    assert Reply(1.0, 1.1, False, 503, "busy", "HTTP 503").answer == "ERR:HTTP 503"
    assert Reply(1.0, 1.1, False).answer == "ERR:not served"
    assert probe.answers([served, refused]) == ["rs1", "ERR:ConnectionRefusedError"]


# --------------------------------------------------------------------------- the log format


def test_line_round_trip_with_and_without_mac() -> None:
    plain = Reply(1764687600.125, 1764687600.127, True, 200, "lb1")
    assert probe.parse_line(probe.to_line(plain)) == plain
    assert '"mac"' not in probe.to_line(plain)
    with_mac = Reply(2.0, 2.5, False, None, "", "TimeoutError: timed out", "02:00:00:00:00:10")
    assert probe.parse_line(probe.to_line(with_mac)) == with_mac


@pytest.mark.parametrize(
    "line",
    [
        '{"t0": 1.0, "t1": 1.1, "ok": tr',  # cut short by SIGTERM
        "",
        '{"t0": 1.0, "ok": true}',  # not the probe's (no t1)
        '{"t0": "soon", "t1": 1.1, "ok": true}',
        "[1, 2]",
        '{"t0": 1.0, "t1": 1.1, "ok": true, "status": "two hundred"}',
    ],
)
def test_parse_line_skips_what_is_not_a_record(line: str) -> None:
    assert probe.parse_line(line) is None


def test_parse_keeps_order_and_skips_a_cut_last_line(tmp_path: Path) -> None:
    a, b = Reply(1.0, 1.1, True, 200, "lb1"), Reply(2.0, 2.1, False, err="OSError: x")
    text = probe.to_line(a) + "\n" + probe.to_line(b) + '\n{"t0": 3.0, "t1'
    assert probe.parse(text) == [a, b]
    path = tmp_path / "probe.jsonl"
    assert probe.read(path) == []  # not written yet
    path.write_text(text)
    assert probe.read(path) == [a, b]


def test_arp_entry_from_proc_net_arp() -> None:
    table = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "192.168.233.1    0x1         0x2         02:00:00:00:00:01     *        eth0\n"
        "192.168.233.200  0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "192.168.233.20   0x1         0x2         02:00:00:00:00:20     *        eth0\n"
    )
    assert probe.arp_entry("192.168.233.1", table) == "02:00:00:00:00:01"
    assert probe.arp_entry("192.168.233.200", table) == ""  # incomplete entry
    assert probe.arp_entry("192.168.233.2", table) == ""
    assert probe.arp_entry("192.168.233.20", table.splitlines()[0]) == ""


# --------------------------------------------------------------------------- figures from a log

# A failover as the client sees it: lb1 serves, two failures, then lb2 (t0, t1, ok, body).
LOG = [
    Reply(10.00, 10.01, True, 200, "lb1"),
    Reply(10.05, 10.06, True, 200, "lb1"),
    Reply(10.10, 10.20, False, err="TimeoutError: timed out"),
    Reply(10.20, 10.30, False, err="TimeoutError: timed out"),
    Reply(10.30, 10.32, True, 200, "lb2 192.168.233.11"),
    Reply(10.35, 10.36, True, 200, "lb2 192.168.233.11"),
    Reply(10.40, 10.41, True, 200, "lb1"),
]


def test_first_and_last_reply_by_responder_and_window() -> None:
    assert probe.first_reply(LOG, "lb2", after=10.0) is LOG[4]
    assert probe.first_reply(LOG, "lb2", after=10.33) is LOG[5]
    assert probe.first_reply(LOG, "lb2", after=10.0, before=10.31) is None
    assert probe.first_reply(LOG, "lb1", after=10.02) is LOG[1]  # by completion, not start
    assert probe.first_reply(LOG, "rs1", after=0.0) is None
    assert probe.last_reply(LOG, "lb1") is LOG[6]
    assert probe.last_reply(LOG, "lb1", before=10.40) is LOG[1]
    assert probe.last_reply(LOG, "lb2", before=10.0) is None
    assert probe.served(LOG, "lb2") == [LOG[4], LOG[5]]
    assert len(probe.served(LOG)) == 5


def test_longest_gap_between_served_completions() -> None:
    assert probe.longest_gap(LOG) == pytest.approx(10.32 - 10.06)
    # the benchmark's window: from a second before the event to the first reply from lb2
    assert probe.longest_gap(LOG, since=10.05, until=10.32) == pytest.approx(10.32 - 10.06)
    assert probe.longest_gap(LOG, since=10.3) == pytest.approx(0.05)
    assert probe.longest_gap(LOG, since=10.35, until=10.37) is None  # one served reply
    assert probe.longest_gap([]) is None
    # out-of-order lines (not written by the probe, but a merged log) still measure gaps
    assert probe.longest_gap([LOG[4], LOG[0]]) == pytest.approx(10.32 - 10.01)


def test_tally_counts_attempts_started_in_the_window() -> None:
    assert probe.tally(LOG) == probe.Tally(7, 2)
    assert probe.tally(LOG, since=10.10) == probe.Tally(5, 2)
    assert probe.tally(LOG, since=10.15, until=10.30) == probe.Tally(2, 1)  # by t0
    assert probe.tally(LOG, since=11.0) == probe.Tally(0, 0)


def test_next_start_keeps_the_schedule_without_bunching() -> None:
    assert probe.next_start(100.0, 0.005, ended=100.001) == pytest.approx(100.005)
    assert probe.next_start(100.0, 0.005, ended=100.3) == 100.3  # a slow one delays, no burst
    assert probe.next_start(100.0, 0.0, ended=100.2) == 100.2


# --------------------------------------------------------------------------- the program


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"rs1 127.0.0.1\n"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)
        self.server.paths.append((self.path, self.headers["Host"]))  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[http.server.HTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    yield from _serve(_Handler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str]) -> list[Reply]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return probe.parse(proc.stdout)


def test_command_runs_from_its_file_isolated_and_counts(server: http.server.HTTPServer) -> None:
    """``-I`` from the file, cwd /: the probe needs nothing but the stdlib; 3 GETs, all served."""
    port = server.server_address[1]
    argv = probe.command("127.0.0.1", port=port, count=3, interval_s=0.01, timeout_s=2.0, path="/x")
    assert argv[:3] == [sys.executable, "-I", str(Path(probe.__file__).resolve())]
    replies = _run(argv)
    assert probe.answers(replies) == ["rs1", "rs1", "rs1"]
    assert all(r.status == 200 and r.body == "rs1 127.0.0.1" and not r.err for r in replies)
    assert all(r.t0 <= r.t1 for r in replies)
    assert replies[2].t0 - replies[0].t0 >= 0.02 - 1e-3  # the interval between starts
    assert abs(replies[0].t0 - time.time()) < 30  # the wall clock, like tcpdump's stamps
    assert server.paths == [("/x", "127.0.0.1")] * 3  # type: ignore[attr-defined]


def test_refused_and_not_served_are_failures(tmp_path: Path) -> None:
    (refused,) = _run(probe.command("127.0.0.1", port=_free_port(), count=1, timeout_s=1.0))
    assert not refused.ok and refused.status is None
    assert "refused" in refused.err.lower() and refused.answer == "ERR:ConnectionRefusedError"

    class Busy(_Handler):
        status = 503
        body = b"busy"

    class Empty(_Handler):
        body = b""

    for handler, status, answer in ((Busy, 503, "ERR:HTTP 503"), (Empty, 200, "ERR:empty body")):
        for srv in _serve(handler):
            (reply,) = _run(probe.command("127.0.0.1", port=srv.server_address[1], count=1))
            assert not reply.ok and reply.status == status and reply.answer == answer, reply

    with socket.socket() as listener:  # not HTTP: a banner, then close
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def banner() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        thread = threading.Thread(target=banner, daemon=True)
        thread.start()
        (reply,) = _run(probe.command("127.0.0.1", port=listener.getsockname()[1], count=1))
        thread.join(5)
    assert not reply.ok and reply.status is None and reply.answer == "ERR:no HTTP status line"
    assert "SSH-2.0" in reply.err


def test_out_file_duration_and_sigterm(server: http.server.HTTPServer, tmp_path: Path) -> None:
    """Until SIGTERM with --out: the file fills as it runs and the probe exits 0 when told."""
    out = tmp_path / "probe.jsonl"
    port = server.server_address[1]
    argv = probe.command("127.0.0.1", port=port, interval_s=0.01, out=out, arp=True)
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while len(probe.read(out)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    replies = probe.read(out)
    assert len(replies) >= 3 and all(r.ok for r in replies)
    assert out.read_text().endswith("\n")  # the last attempt was written whole

    t = time.monotonic()
    timed = _run(probe.command("127.0.0.1", port=port, interval_s=0.05, duration_s=0.3))
    assert time.monotonic() - t < 10
    assert 2 <= len(timed) <= 7, len(timed)
    assert math.isclose(timed[1].t0 - timed[0].t0, 0.05, abs_tol=0.04)


def test_bad_arguments_are_reported_without_traceback(tmp_path: Path) -> None:
    base = [sys.executable, "-I", probe.__file__, "127.0.0.1"]
    bad = subprocess.run([*base, "--timeout", "0"], capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "--timeout" in bad.stderr and "Traceback" not in bad.stderr
    unwritable = tmp_path / "missing" / "probe.jsonl"
    res = subprocess.run(
        [*base, "--out", str(unwritable)], capture_output=True, text=True, timeout=30, check=False
    )
    assert res.returncode == 1 and str(unwritable) in res.stderr and "Traceback" not in res.stderr


def test_a_short_connect_timeout_still_waits_for_the_reply() -> None:
    """The benchmarks connect with a 10 ms timeout; a reply 20 ms later still counts
    (reading waits max(timeout, 50 ms)), so a slow responder is not a client outage."""

    class Slow(_Handler):
        def do_GET(self) -> None:
            time.sleep(0.02)
            super().do_GET()

    for srv in _serve(Slow):
        reply = probe.attempt("127.0.0.1", srv.server_address[1], timeout_s=0.01)
        assert reply.ok and reply.who == "rs1", reply
        assert reply.t1 - reply.t0 >= 0.02
