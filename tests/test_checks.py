"""Health checkers against real servers on 127.0.0.1 (ANCHORS §2.10).  No root needed,
except PING_CHECK which needs an ICMP socket (skipped when the OS refuses one)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pyvrrp.config import lvs
from pyvrrp.health import checks
from pyvrrp.health.checks import CheckResult, Target, make_checker


def run(coro: Awaitable[CheckResult]) -> CheckResult:
    return asyncio.run(coro)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- TCP


def test_tcp_check_up_and_down() -> None:
    """ANCHORS §2.10 TCP_CHECK: a listening port is up, a closed one down."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        c = make_checker(lvs.TcpCheck(connect_timeout=1), Target("127.0.0.1", port))
        assert run(c.check()).ok
    finally:
        srv.close()
    c = make_checker(lvs.TcpCheck(connect_timeout=1, retry=0), Target("127.0.0.1", port))
    res = run(c.check())
    assert (not res.ok and "Connection" in res.detail) or "refused" in res.detail.lower()


def test_connect_port_overrides_target() -> None:
    """ANCHORS §2.10 common connect_port / connect_ip override the real server's."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        conf = lvs.TcpCheck(connect_ip="127.0.0.1", connect_port=srv.getsockname()[1], connect_timeout=1)
        c = make_checker(conf, Target("192.0.2.1", free_port()))
        assert run(c.check()).ok
    finally:
        srv.close()


def test_retry_counts_and_delay() -> None:
    """ANCHORS §2.10 retry/delay_before_retry: retry=2 means 3 attempts spaced by the delay."""
    port = free_port()
    c = make_checker(
        lvs.TcpCheck(connect_timeout=1, retry=2, delay_before_retry=0.2), Target("127.0.0.1", port)
    )
    t0 = time.monotonic()
    res = run(c.check())
    elapsed = time.monotonic() - t0
    assert not res.ok
    assert "after 3 attempts" in res.detail
    assert 0.38 <= elapsed < 1.5


def test_retry_succeeds_when_server_comes_back() -> None:
    """A failed probe followed by a successful retry makes the round succeed."""
    port = free_port()

    async def scenario() -> CheckResult:
        c = make_checker(
            lvs.TcpCheck(connect_timeout=1, retry=3, delay_before_retry=0.2), Target("127.0.0.1", port)
        )
        task = asyncio.create_task(c.check())
        await asyncio.sleep(0.1)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            return await task
        finally:
            server.close()

    assert run(scenario()).ok


def test_tcp_timeout_does_not_block_loop() -> None:
    """connect_timeout bounds a probe to a server that never answers (full backlog), and the
    loop keeps running meanwhile."""

    async def scenario() -> tuple[CheckResult, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        # a "server" that accepts the TCP handshake but never answers HTTP
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = asyncio.create_task(ticker())
        c = make_checker(lvs.HttpGet(connect_timeout=0.5, retry=0), Target("127.0.0.1", port))
        res = await c.check()
        t.cancel()
        server.close()
        return res, ticks

    res, ticks = asyncio.run(scenario())
    assert not res.ok and res.detail == "timeout"
    assert ticks >= 5


# --------------------------------------------------------------------------- HTTP


Handler = Callable[[str, dict[str, str]], tuple[int, bytes]]


async def http_server(handler: Handler, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        status, body = handler(path, headers)
        writer.write(f"HTTP/1.0 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)


def http_check(conf: lvs.HttpGet, handler: Handler, tls: ssl.SSLContext | None = None) -> CheckResult:
    async def scenario() -> CheckResult:
        server = await http_server(handler, tls)
        port = server.sockets[0].getsockname()[1]
        try:
            return await make_checker(conf, Target("127.0.0.1", port, virtualhost="vs.example")).check()
        finally:
            server.close()

    return asyncio.run(scenario())


def pages(path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    if path == "/":
        return 200, b"hello from rs1\n"
    if path == "/health":
        return 503, b"draining"
    if path == "/host":
        return 200, headers.get("host", "").encode()
    return 404, b"nope"


def test_http_status_default_2xx_and_explicit() -> None:
    """ANCHORS §2.10 HTTP_GET status_code: default any 2xx; explicit code or list."""
    assert http_check(lvs.HttpGet(url=[{"path": "/"}], retry=0), pages).ok
    assert http_check(lvs.HttpGet(url=[{"path": "/", "status_code": 200}], retry=0), pages).ok
    res = http_check(lvs.HttpGet(url=[{"path": "/health"}], retry=0), pages)
    assert not res.ok and "503" in res.detail
    assert http_check(lvs.HttpGet(url=[{"path": "/health", "status_code": [200, 503]}], retry=0), pages).ok
    # every url must pass
    res = http_check(lvs.HttpGet(url=[{"path": "/"}, {"path": "/missing"}], retry=0), pages)
    assert not res.ok and "/missing" in res.detail


def test_http_digest() -> None:
    """ANCHORS §2.10 HTTP_GET digest: MD5 of the body (genhash)."""
    good = hashlib.md5(b"hello from rs1\n").hexdigest()
    assert http_check(lvs.HttpGet(url=[{"path": "/", "digest": good}], retry=0), pages).ok
    res = http_check(lvs.HttpGet(url=[{"path": "/", "digest": "0" * 32}], retry=0), pages)
    assert not res.ok and "digest" in res.detail


def test_http_regex_and_no_match() -> None:
    """ANCHORS §2.10 HTTP_GET regex / regex_no_match."""
    assert http_check(lvs.HttpGet(url=[{"path": "/", "regex": r"rs\d"}], retry=0), pages).ok
    assert not http_check(lvs.HttpGet(url=[{"path": "/", "regex": "^error"}], retry=0), pages).ok
    conf = lvs.HttpGet(url=[{"path": "/", "regex": "error", "regex_no_match": True}], retry=0)
    assert http_check(conf, pages).ok


def test_http_virtualhost_header() -> None:
    """ANCHORS §2.10 virtualhost: checker's own beats the inherited one."""
    seen: list[str] = []

    def handler(path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        seen.append(headers.get("host", ""))
        return 200, b""

    assert http_check(lvs.HttpGet(retry=0), handler).ok
    assert http_check(lvs.HttpGet(virtualhost="www.example.org", retry=0), handler).ok
    assert seen == ["vs.example", "www.example.org"]


@pytest.fixture(scope="module")
def tls_server_ctx(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI needed to make a test certificate")
    d: Path = tmp_path_factory.mktemp("tls")
    key, cert = str(d / "key.pem"), str(d / "cert.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rs.test"]
    subprocess.run(
        [*argv, "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def test_ssl_get(tls_server_ctx: ssl.SSLContext) -> None:
    """ANCHORS §2.10 SSL_GET: HTTP over TLS, self-signed certificate accepted (keepalived)."""
    assert http_check(lvs.SslGet(url=[{"path": "/", "regex": "rs1"}], retry=0), pages, tls_server_ctx).ok
    res = http_check(
        lvs.SslGet(url=[{"path": "/health", "status_code": 200}], retry=0), pages, tls_server_ctx
    )
    assert not res.ok and "503" in res.detail


def test_ssl_get_against_plain_http_fails() -> None:
    """SSL_GET to a plain HTTP server fails instead of hanging or raising."""
    res = http_check(lvs.SslGet(retry=0, connect_timeout=1), pages)
    assert not res.ok


# --------------------------------------------------------------------------- MISC


def misc(path: str, **kw: object) -> CheckResult:
    conf = lvs.MiscCheck(misc_path=path, **kw)  # type: ignore[arg-type]
    return run(make_checker(conf, Target("127.0.0.1", 80, delay_loop_s=5)).check())


def test_misc_exit_codes() -> None:
    """ANCHORS §2.10 MISC_CHECK: exit 0 ok, anything else fails."""
    assert misc("/bin/true").ok
    assert not misc("/bin/false").ok
    assert not misc("sh -c 'exit 7'").ok


def test_misc_dynamic_weight() -> None:
    """ANCHORS §2.10 MISC_CHECK misc_dynamic: exit 2..255 = up with weight exit-2; 1 = down."""
    res = misc("sh -c 'exit 7'", misc_dynamic=True)
    assert res.ok and res.weight == 5
    res = misc("sh -c 'exit 2'", misc_dynamic=True)
    assert res.ok and res.weight == 0
    assert not misc("sh -c 'exit 1'", misc_dynamic=True).ok
    res = misc("/bin/true", misc_dynamic=True)
    assert res.ok and res.weight is None


def test_misc_timeout_kills_script(tmp_path: Path) -> None:
    """ANCHORS §2.10 MISC_CHECK misc_timeout: the script (and its children) are killed."""
    marker = tmp_path / "survived"
    t0 = time.monotonic()
    res = misc(f"sh -c 'sleep 3; touch {marker}'", misc_timeout=0.3)
    assert not res.ok and "timed out" in res.detail
    assert time.monotonic() - t0 < 2
    time.sleep(3.2)
    assert not marker.exists()


def test_misc_missing_script_fails_cleanly() -> None:
    res = misc("/nonexistent/check-script")
    assert not res.ok and "FileNotFoundError" in res.detail


# --------------------------------------------------------------------------- PING


def _icmp_allowed() -> bool:
    try:
        s, _ = checks._icmp_socket(socket.AF_INET)
    except PermissionError:
        return False
    s.close()
    return True


@pytest.mark.skipif(not _icmp_allowed(), reason="no ICMP socket permission (ping_group_range / root)")
def test_ping_check_loopback() -> None:
    """ANCHORS §2.10 PING_CHECK: echo reply from 127.0.0.1."""
    res = run(make_checker(lvs.PingCheck(connect_timeout=1), Target("127.0.0.1", 0)).check())
    assert res.ok, res.detail


def test_icmp_checksum_known_value() -> None:
    """RFC 1071 checksum of an echo request header (verified against the folding rule)."""
    hdr = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"abc"
    csum = checks._icmp_checksum(hdr)
    # re-checksumming with the checksum inserted gives 0
    full = struct.pack("!BBHHH", 8, 0, csum, 0x1234, 1) + b"abc"
    assert checks._icmp_checksum(full) == 0


# --------------------------------------------------------------------------- DNS


class FakeDns(asyncio.DatagramProtocol):
    """Answers A queries for ok.test with one record, anything else with NXDOMAIN."""

    def __init__(self) -> None:
        self.queries: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queries.append(data)
        qid, _flags = struct.unpack("!HH", data[:4])
        question = data[12:]
        if question.startswith(b"\x02ok\x04test\x00"):
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 1])
            reply = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
        else:
            reply = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


def dns(name: str, qtype: str = "A", **kw: object) -> tuple[CheckResult, list[bytes]]:
    async def scenario() -> tuple[CheckResult, list[bytes]]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(FakeDns, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            conf = lvs.DnsCheck(name=name, type=qtype, connect_port=port, connect_timeout=1, retry=0, **kw)  # type: ignore[arg-type]
            return await make_checker(conf, Target("127.0.0.1", 80)).check(), proto.queries
        finally:
            transport.close()

    return asyncio.run(scenario())


def test_dns_check_answer_and_nxdomain() -> None:
    """ANCHORS §2.10 DNS_CHECK: NOERROR with an answer = up; NXDOMAIN = down."""
    res, queries = dns("ok.test")
    assert res.ok, res.detail
    assert queries[0][12:] == b"\x02ok\x04test\x00\x00\x01\x00\x01"
    res, _ = dns("missing.test")
    assert not res.ok and "NXDOMAIN" in res.detail


def test_dns_check_timeout_when_nobody_answers() -> None:
    port = free_port()
    conf = lvs.DnsCheck(name="ok.test", connect_port=port, connect_timeout=0.3, retry=0)
    res = run(make_checker(conf, Target("127.0.0.1", 80)).check())
    assert not res.ok


def test_dns_query_encoding() -> None:
    q = checks.build_dns_query(0xABCD, "www.example.org.", "AAAA")
    assert q[:12] == bytes.fromhex("abcd01000001000000000000")
    assert q[12:] == b"\x03www\x07example\x03org\x00\x00\x1c\x00\x01"
    assert checks.build_dns_query(1, ".", "SOA")[12:] == b"\x00\x00\x06\x00\x01"


# --------------------------------------------------------------------------- warmup


def test_warmup_first_delay_bounds() -> None:
    """ANCHORS §2.10 warmup: first check delayed by a random 0..warmup; none by default."""
    import random

    rng = random.Random(1)
    c = make_checker(lvs.TcpCheck(warmup=2.0), Target("127.0.0.1", 80))
    delays = [c.first_delay_s(rng) for _ in range(50)]
    assert all(0 <= d <= 2.0 for d in delays) and max(delays) > 1.0
    assert make_checker(lvs.TcpCheck(), Target("127.0.0.1", 80)).first_delay_s(rng) == 0.0
