"""ARP reachability probe: who-has a target on one interface, timed until its reply (RFC 826).

Used by gateway arbitration's ``method = "arp"`` (IPv4 targets on the local
link, for networks that filter ICMP).  :func:`build_arp_request` is pure;
:class:`ArpProber` is the I/O, an AF_PACKET socket driven by
``loop.add_reader``.  The frames and parser are those of
:mod:`pyvrrp.adapters.arp`.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
from ipaddress import IPv4Address

import structlog

from pyvrrp.adapters.arp import (
    ARPOP_REPLY,
    ARPOP_REQUEST,
    BROADCAST_MAC,
    ETH_P_ARP,
    ZERO_MAC,
    parse_arp,
)

__all__ = ["ArpProber", "build_arp_request", "interface_ipv4"]

_log = structlog.get_logger("pyvrrp.adapters.arping")

_SIOCGIFADDR = 0x8915
_PACKET_OUTGOING = 4


def interface_ipv4(ifname: str) -> IPv4Address | None:
    """Primary IPv4 address of ``ifname`` (SIOCGIFADDR), None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return IPv4Address(res[20:24])


def build_arp_request(our_mac: bytes, our_ip: IPv4Address, target: IPv4Address) -> bytes:
    """Broadcast ARP who-has ``target`` tell ``our_ip`` (RFC 826); spa 0.0.0.0 makes it an RFC 5227 probe."""
    return (
        BROADCAST_MAC
        + our_mac
        + struct.pack("!H", ETH_P_ARP)
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARPOP_REQUEST)
        + our_mac
        + our_ip.packed
        + ZERO_MAC
        + target.packed
    )


class ArpProber:
    """ARP prober on one interface (AF_PACKET, ETH_P_ARP): who-has target, wait for its reply.

    The request's sender IP is the interface's IPv4 address when it has one,
    else 0.0.0.0 (an RFC 5227 probe, which hosts answer as well).  Any ARP
    reply whose sender IP is the target counts, so a target answering with a
    different MAC than last time is still reachable.
    """

    def __init__(self, ifname: str, *, source_ip: IPv4Address | None = None) -> None:
        self.ifname = ifname
        self._source_ip = source_ip
        self._sock: socket.socket | None = None
        self._mac = b""
        self._pending: dict[IPv4Address, list[asyncio.Future[float]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        try:
            sock.bind((self.ifname, ETH_P_ARP))
            sock.setblocking(False)
            self._mac = bytes(sock.getsockname()[4])
        except OSError:
            sock.close()
            raise
        if self._source_ip is None:
            self._source_ip = interface_ipv4(self.ifname)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._sock = sock
        return sock

    def _on_readable(self) -> None:
        assert self._sock is not None and self._loop is not None
        while True:
            try:
                frame, addr = self._sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _log.debug("arp_recv_error", iface=self.ifname, error=str(exc))
                return
            if addr[2] == _PACKET_OUTGOING:
                continue
            pkt = parse_arp(frame)
            if pkt is None or pkt.op != ARPOP_REPLY:
                continue
            for fut in self._pending.get(pkt.sender_ip, ()):
                if not fut.done():
                    fut.set_result(self._loop.time())

    async def probe(self, target: str | IPv4Address, timeout_s: float) -> float | None:
        """Send one who-has; RTT in seconds, or None (timeout or send error)."""
        tgt = IPv4Address(str(target))
        loop = asyncio.get_running_loop()
        try:
            sock = self._open()
        except OSError as exc:
            _log.warning("arp_socket_failed", iface=self.ifname, error=str(exc))
            return None
        fut: asyncio.Future[float] = loop.create_future()
        self._pending.setdefault(tgt, []).append(fut)
        try:
            sent_at = loop.time()
            try:
                sock.send(build_arp_request(self._mac, self._source_ip or IPv4Address(0), tgt))
            except OSError as exc:
                _log.debug("arp_send_failed", iface=self.ifname, target=str(tgt), error=str(exc))
                return None
            try:
                got_at = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                return None
            return max(got_at - sent_at, 0.0)
        finally:
            waiters = self._pending.get(tgt, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._pending.pop(tgt, None)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
