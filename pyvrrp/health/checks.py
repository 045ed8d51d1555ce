"""Asynchronous real-server health checkers (keepalived's TCP_CHECK, HTTP_GET, SSL_GET,
MISC_CHECK, PING_CHECK, DNS_CHECK; ANCHORS §2.10).

Each checker is built from its config model (``pyvrrp.config.lvs``) plus the real server's
address, port and inherited settings (:class:`Target`).  ``await checker.check()`` runs one
*round*: a probe, and up to ``retry`` more probes ``delay_before_retry`` seconds apart while
they fail.  The round fails only if every probe failed.  Nothing here blocks the event
loop: sockets are asyncio streams/datagram endpoints, scripts run as subprocesses, and every
probe has a timeout.

``warmup`` (a random delay before the first round) and the ``delay_loop`` between rounds are
the manager's business (``pyvrrp.ipvs.manager``); :meth:`Checker.first_delay_s` helps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import random
import re
import shlex
import signal
import socket
import ssl
import struct
from dataclasses import dataclass

from pyvrrp.config import lvs

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one probe or round.  ``weight`` is set by MISC_CHECK ``misc_dynamic``."""

    ok: bool
    detail: str
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """What a checker probes, with the settings it inherits from its servers."""

    ip: str
    port: int
    delay_loop_s: float = 60.0
    virtualhost: str | None = None


class Checker:
    """Base class: :meth:`probe` is one attempt; :meth:`check` adds retries."""

    def __init__(self, config: lvs._CheckBase, target: Target) -> None:
        self.config = config
        self.target = target

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def delay_loop_s(self) -> float:
        return self.config.delay_loop or self.target.delay_loop_s

    @property
    def retry_delay_s(self) -> float:
        d = self.config.delay_before_retry
        return self.delay_loop_s if d is None else d

    def first_delay_s(self, rng: random.Random | None = None) -> float:
        """Delay before the first round: uniform in [0, warmup] (keepalived), else 0."""
        if not self.config.warmup:
            return 0.0
        return (rng or random).uniform(0.0, self.config.warmup)

    def describe(self) -> str:
        return f"{self.kind} {self.target.ip}:{self.target.port}"

    async def probe(self) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _safe_probe(self) -> CheckResult:
        try:
            return await self.probe()
        except TimeoutError:  # before OSError: TimeoutError is one of its subclasses
            return CheckResult(False, "timeout")
        except (OSError, ValueError, EOFError, UnicodeError, ssl.SSLError) as exc:
            return CheckResult(False, f"{type(exc).__name__}: {exc}")

    async def check(self) -> CheckResult:
        """One round: probe; while it fails, retry ``retry`` times after ``delay_before_retry``."""
        result = await self._safe_probe()
        attempts = 1
        while not result.ok and attempts <= self.config.retry:
            await asyncio.sleep(self.retry_delay_s)
            result = await self._safe_probe()
            attempts += 1
        if not result.ok and attempts > 1:
            return CheckResult(False, f"{result.detail} (after {attempts} attempts)", result.weight)
        return result


# ----------------------------------------------------------------------------- TCP


class _ConnectChecker(Checker):
    config: lvs._ConnectCheck

    @property
    def host(self) -> str:
        return str(self.config.connect_ip) if self.config.connect_ip else self.target.ip

    @property
    def port(self) -> int:
        return self.config.connect_port if self.config.connect_port is not None else self.target.port

    @property
    def timeout_s(self) -> float:
        return self.config.connect_timeout

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind} {host}:{self.port}"

    def _local_addr(self) -> tuple[str, int] | None:
        if self.config.bindto is None and self.config.bind_port is None:
            return None
        return (str(self.config.bindto) if self.config.bindto else "", self.config.bind_port or 0)

    async def _connect(
        self, ssl_ctx: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=ssl_ctx,
                server_hostname=server_hostname if ssl_ctx else None,
                local_addr=self._local_addr(),
            ),
            self.timeout_s,
        )


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


class TcpChecker(_ConnectChecker):
    """TCP_CHECK: the connection is accepted within connect_timeout."""

    async def probe(self) -> CheckResult:
        _, writer = await self._connect()
        await _close(writer)
        return CheckResult(True, "connected")


# ----------------------------------------------------------------------------- HTTP / SSL


class HttpChecker(_ConnectChecker):
    """HTTP_GET: each url's status, MD5 digest and regex (keepalived semantics)."""

    config: lvs.HttpGet
    use_tls = False

    @property
    def virtualhost(self) -> str | None:
        return self.config.virtualhost or self.target.virtualhost

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.use_tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # keepalived does not verify the server certificate
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def fetch(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; return (status, body).  HTTP/1.0 + Connection: close, body to EOF."""
        ctx = self._ssl_context()
        sni = None
        if ctx is not None and getattr(self.config, "enable_sni", True):
            sni = self.virtualhost or (self.host if not _is_ip(self.host) else None)
        host_header = self.virtualhost or (f"[{self.host}]" if ":" in self.host else self.host)

        async def _go() -> tuple[int, bytes]:
            reader, writer = await self._connect(ctx, sni)
            try:
                request = (
                    f"GET {path} HTTP/1.0\r\nHost: {host_header}\r\n"
                    "User-Agent: pyvrrp-checker\r\nConnection: close\r\n\r\n"
                )
                writer.write(request.encode("latin-1"))
                await writer.drain()
                raw = await reader.read(-1)
            finally:
                await _close(writer)
            head, sep, body = raw.partition(b"\r\n\r\n")
            if not sep:
                head, sep, body = raw.partition(b"\n\n")
            status_line = head.split(b"\n", 1)[0].decode("latin-1").strip()
            m = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", status_line)
            if not m:
                raise ValueError(f"bad HTTP status line {status_line[:60]!r}")
            headers = head.decode("latin-1").lower()
            if "transfer-encoding: chunked" in headers:
                body = _dechunk(body)
            return int(m.group(1)), body

        return await asyncio.wait_for(_go(), self.timeout_s)

    async def probe(self) -> CheckResult:
        for url in self.config.url:
            status, body = await self.fetch(url.path)
            if not url.accepts_status(status):
                return CheckResult(False, f"{url.path}: status {status}")
            if url.digest is not None:
                got = hashlib.md5(body, usedforsecurity=False).hexdigest()
                if got != url.digest:
                    return CheckResult(False, f"{url.path}: digest {got} != {url.digest}")
            if url.regex is not None:
                found = re.search(url.regex, body.decode("utf-8", "replace")) is not None
                if found == url.regex_no_match:
                    what = "matches" if found else "does not match"
                    return CheckResult(False, f"{url.path}: body {what} regex {url.regex!r}")
        return CheckResult(True, f"{len(self.config.url)} url(s) ok")


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SslChecker(HttpChecker):
    """SSL_GET: HTTP_GET over TLS without certificate verification (as keepalived)."""

    config: lvs.SslGet
    use_tls = True


# ----------------------------------------------------------------------------- MISC


class MiscChecker(Checker):
    """MISC_CHECK: run misc_path (no shell; split like a command line).

    Exit 0 = up.  With ``misc_dynamic``: 1 = down, 2..255 = up with weight ``status - 2``.
    The script is killed (its whole process group) after ``misc_timeout`` (default: the
    delay_loop) and the probe fails.
    """

    config: lvs.MiscCheck

    def describe(self) -> str:
        return f"MISC_CHECK {self.config.misc_path}"

    @property
    def timeout_s(self) -> float:
        return self.config.misc_timeout or self.delay_loop_s

    async def probe(self) -> CheckResult:
        argv = shlex.split(self.config.misc_path)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = await asyncio.wait_for(proc.wait(), self.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return CheckResult(False, f"timed out after {self.timeout_s:g}s")
        if rc < 0:
            return CheckResult(False, f"killed by signal {-rc}")
        if rc == 0:
            return CheckResult(True, "exit 0")
        if self.config.misc_dynamic and rc >= 2:
            return CheckResult(True, f"exit {rc}", weight=rc - 2)
        return CheckResult(False, f"exit {rc}")


# ----------------------------------------------------------------------------- PING


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _icmp_socket(family: int) -> tuple[socket.socket, bool]:
    """An ICMP socket: unprivileged datagram ("ping") socket if allowed, else raw (root)."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), True
    except PermissionError:
        return socket.socket(family, socket.SOCK_RAW, proto), False


class PingChecker(_ConnectChecker):
    """PING_CHECK: one ICMP/ICMPv6 echo request, a matching reply within connect_timeout."""

    def describe(self) -> str:
        return f"PING_CHECK {self.host}"

    async def probe(self) -> CheckResult:
        ip = ipaddress.ip_address(self.host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock, dgram = _icmp_socket(family)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        ident = random.randrange(1, 0xFFFF)
        seq = random.randrange(1, 0xFFFF)
        echo_req, echo_rep = (128, 129) if ip.version == 6 else (8, 0)
        payload = b"pyvrrp-ping-check"
        hdr = struct.pack("!BBHHH", echo_req, 0, 0, ident, seq)
        csum = 0 if ip.version == 6 else _icmp_checksum(hdr + payload)  # kernel fills ICMPv6
        packet = struct.pack("!BBHHH", echo_req, 0, csum, ident, seq) + payload
        try:
            if self.config.bindto is not None:
                sock.bind((str(self.config.bindto), 0))
            await loop.sock_sendto(sock, packet, (str(ip), 0))
            deadline = loop.time() + self.timeout_s
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return CheckResult(False, "no echo reply (timeout)")
                data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), remaining)
                if not dgram and ip.version == 4:
                    data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets include the IP header
                if len(data) < 8 or ipaddress.ip_address(addr[0].split("%")[0]) != ip:
                    continue
                rtype, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
                # datagram sockets rewrite the identifier: match on the sequence number
                if rtype == echo_rep and rseq == seq and (dgram or rid == ident):
                    return CheckResult(True, "echo reply")
        finally:
            sock.close()


# ----------------------------------------------------------------------------- DNS

DNS_TYPES: dict[str, int] = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def build_dns_query(qid: int, name: str, qtype: str) -> bytes:
    """A minimal RFC 1035 query (RD set, one question, class IN)."""
    labels = [p for p in name.strip(".").split(".") if p]
    qname = b"".join(bytes([len(p)]) + p.encode("idna") for p in labels) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", DNS_TYPES[qtype], 1)


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == self.qid and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class DnsChecker(_ConnectChecker):
    """DNS_CHECK: a UDP query for name/type answered with NOERROR and at least one record."""

    config: lvs.DnsCheck

    @property
    def port(self) -> int:
        return self.config.connect_port if self.config.connect_port is not None else 53

    async def probe(self) -> CheckResult:
        loop = asyncio.get_running_loop()
        qid = random.randrange(0, 0x10000)
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _DnsProtocol(qid),
            remote_addr=(self.host, self.port),
            local_addr=self._local_addr(),
        )
        try:
            transport.sendto(build_dns_query(qid, self.config.name, self.config.type))
            data = await asyncio.wait_for(proto.answer, self.timeout_s)
        finally:
            transport.close()
        _, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", data[:12])
        rcode = flags & 0x0F
        if not flags & 0x8000:
            return CheckResult(False, "reply is not a response")
        if rcode != 0:
            return CheckResult(False, f"rcode {DNS_RCODES.get(rcode, rcode)}")
        if ancount == 0:
            return CheckResult(False, f"no {self.config.type} record for {self.config.name}")
        return CheckResult(True, f"{ancount} answer(s)")


# ----------------------------------------------------------------------------- factory

_CLASSES: dict[type, type[Checker]] = {
    lvs.TcpCheck: TcpChecker,
    lvs.HttpGet: HttpChecker,
    lvs.SslGet: SslChecker,
    lvs.MiscCheck: MiscChecker,
    lvs.PingCheck: PingChecker,
    lvs.DnsCheck: DnsChecker,
}


def make_checker(config: lvs.Checker, target: Target) -> Checker:
    """The checker object for one checker config of a real server."""
    return _CLASSES[type(config)](config, target)
