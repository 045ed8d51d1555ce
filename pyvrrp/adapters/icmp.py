"""ICMP / ICMPv6 echo: the codec and an asyncio prober on raw sockets (gateway arbitration).

The codec (:func:`build_echo_request`, :func:`parse_echo_reply`) is pure and
never raises on received bytes; :class:`IcmpProber` is the I/O: one
non-blocking raw socket per family driven by ``loop.add_reader``, so probes
never block the loop.  Raw sockets need CAP_NET_RAW, which the daemon has.
The arbitration that consumes the round-trip times is
:mod:`pyvrrp.splitbrain.gateway` (this module knows nothing of it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import structlog

__all__ = ["IcmpProber", "build_echo_request", "inet_checksum", "parse_echo_reply"]

IPAddress = IPv4Address | IPv6Address

_log = structlog.get_logger("pyvrrp.adapters.icmp")

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
_PAYLOAD_MAGIC = b"pyvrrp-gw"


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo_request(family: int, ident: int, seq: int, payload: bytes = _PAYLOAD_MAGIC) -> bytes:
    """ICMP (RFC 792) or ICMPv6 (RFC 4443 §4.1) echo request.

    For ICMPv6 the checksum is left 0: the kernel fills it on raw ICMPv6
    sockets (RFC 3542 §3.1).
    """
    if family == 4:
        hdr = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
        csum = inet_checksum(hdr + payload)
        return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ident & 0xFFFF, seq & 0xFFFF) + payload
    if family == 6:
        return struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload
    raise ValueError(f"family must be 4 or 6, got {family}")


def parse_echo_reply(family: int, data: bytes) -> tuple[int, int] | None:
    """``(ident, seq)`` of an echo reply, None for anything else; never raises.

    IPv4 raw sockets deliver the IP header first (its length from IHL); IPv6
    raw sockets deliver the ICMPv6 message only.
    """
    if family == 4:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        off = (data[0] & 0x0F) * 4
        icmp = data[off:]
        if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REPLY or icmp[1] != 0:
            return None
        if inet_checksum(icmp) != 0:
            return None
    else:
        icmp = data
        if len(icmp) < 8 or icmp[0] != ICMP6_ECHO_REPLY or icmp[1] != 0:
            return None
    _, _, _, ident, seq = struct.unpack_from("!BBHHH", icmp)
    return ident, seq


_SOL_RAW = 255
_ICMP_FILTER = 1  # linux/icmp.h
_ICMP6_FILTER = 1  # linux/icmpv6.h


def _pass_only_echo_replies(sock: socket.socket, family: int) -> None:
    """Kernel-side filter so the raw socket only wakes us for echo replies (best effort)."""
    try:
        if family == 4:
            block = 0xFFFFFFFF & ~(1 << ICMP_ECHO_REPLY)
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", block))
        else:
            words = [0xFFFFFFFF] * 8  # a set bit blocks that type
            words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31)) & 0xFFFFFFFF
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
    except OSError as exc:  # not fatal: parse_echo_reply filters in user space too
        _log.debug("icmp_filter_unavailable", family=family, error=str(exc))


class IcmpProber:
    """ICMP echo prober: one raw socket per family, shared by all targets.

    Replies are matched by (source address, identifier, sequence), so many
    probes can be in flight at once and the raw socket's copies of unrelated
    ICMP traffic are ignored.
    """

    def __init__(self, *, bind_device: str | None = None, ident: int | None = None) -> None:
        self.bind_device = bind_device
        self.ident = (ident if ident is not None else int.from_bytes(os.urandom(2), "big")) & 0xFFFF
        self._seq = int.from_bytes(os.urandom(2), "big")
        self._socks: dict[int, socket.socket] = {}
        self._pending: dict[tuple[int, str, int], asyncio.Future[float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _sock(self, family: int) -> socket.socket:
        sock = self._socks.get(family)
        if sock is not None:
            return sock
        if family == 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setblocking(False)
            _pass_only_echo_replies(sock, family)
            if self.bind_device:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.bind_device.encode())
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        self._loop = loop
        loop.add_reader(sock.fileno(), self._on_readable, family, sock)
        self._socks[family] = sock
        return sock

    def _on_readable(self, family: int, sock: socket.socket) -> None:
        assert self._loop is not None
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors queued on the socket
                _log.debug("icmp_recv_error", error=str(exc))
                return
            parsed = parse_echo_reply(family, data)
            if parsed is None:
                continue
            ident, seq = parsed
            if ident != self.ident:
                continue
            src = str(ip_address(addr[0].split("%", 1)[0]))
            fut = self._pending.get((family, src, seq))
            if fut is not None and not fut.done():
                fut.set_result(self._loop.time())

    def _sockaddr(self, addr: IPAddress) -> tuple[str, tuple[Any, ...]]:
        """(address without scope, sockaddr); link-local IPv6 targets get their scope index.

        The scope comes from ``fe80::1%eth0`` / ``fe80::1%2``, else from ``bind_device``.

        Raises:
            OSError: the scope names an interface that does not exist.
        """
        if isinstance(addr, IPv6Address):
            plain = IPv6Address(addr.packed)
            scope = addr.scope_id
            index = 0
            if scope:
                index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
            elif plain.is_link_local and self.bind_device:
                index = socket.if_nametoindex(self.bind_device)
            return str(plain), (str(plain), 0, 0, index)
        return str(addr), (str(addr), 0)

    async def probe(self, target: str | IPAddress, timeout_s: float) -> float | None:
        """Send one echo request; RTT in seconds, or None (timeout or send error)."""
        addr = ip_address(target)
        family = 4 if isinstance(addr, IPv4Address) else 6
        loop = asyncio.get_running_loop()
        try:
            sock = self._sock(family)
        except OSError as exc:
            _log.warning("icmp_socket_failed", family=family, error=str(exc))
            return None
        try:
            plain, sockaddr = self._sockaddr(addr)
        except OSError as exc:  # unknown scope interface
            _log.warning("icmp_bad_target", target=str(addr), error=str(exc))
            return None
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        key = (family, plain, seq)
        fut: asyncio.Future[float] = loop.create_future()
        self._pending[key] = fut
        try:
            sent_at = loop.time()
            try:
                sock.sendto(build_echo_request(family, self.ident, seq), sockaddr)
            except OSError as exc:  # ENETUNREACH, EHOSTUNREACH, ENOBUFS: a failed probe
                _log.debug("icmp_send_failed", target=str(addr), error=str(exc))
                return None
            try:
                got_at = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                return None
            return max(got_at - sent_at, 0.0)
        finally:
            self._pending.pop(key, None)

    def close(self) -> None:
        for sock in self._socks.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
