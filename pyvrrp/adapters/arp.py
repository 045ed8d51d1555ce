"""Gratuitous ARP / ARP probe frames, an ARP parser, and the AF_PACKET sender.

Theory: on becoming master the router broadcasts a gratuitous ARP for each
IPv4 VIP so hosts and switches move the VIP to its MAC (RFC 3768 §6.4.1,
RFC 5798 §6.4.1/§6.4.2, RFC 9568 errata 7947/7949; ANCHORS ARP-02).  We send
exactly what keepalived sends (KEEPALIVED-BASELINE §3): a 42-byte broadcast
ARP *request* (op 1) with sender IP = target IP = VIP, sender MAC = the
interface MAC (or the VMAC when one is used) and target MAC
ff:ff:ff:ff:ff:ff.  sender IP = target IP is the ordinary GARP convention
(RFC 5227 §3 "ARP Announcement"), not erratum text (ANCHORS §6 ARP-02).

The builders and :func:`parse_arp` are pure (bytes in, bytes out) so they are
unit-tested without root; :class:`AnnounceSender` is the only I/O here and
also sends IPv6 unsolicited NAs built by :mod:`pyvrrp.adapters.ndisc`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

import structlog

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_ALL = 0x0003
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ETH_HEADER_LEN = 14
ARP_PAYLOAD_LEN = 28
GARP_FRAME_LEN = ETH_HEADER_LEN + ARP_PAYLOAD_LEN  # 42 bytes, as keepalived (no padding)

log = structlog.get_logger("pyvrrp.adapters.arp")


def mac_to_bytes(mac: str | bytes) -> bytes:
    """``"52:54:00:12:34:56"`` (or 6 raw bytes) -> 6 bytes.

    Raises:
        ValueError: not a 6-octet MAC address.
    """
    if isinstance(mac, bytes | bytearray):
        if len(mac) != 6:
            raise ValueError(f"MAC address must be 6 bytes, got {len(mac)}")
        return bytes(mac)
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"invalid MAC address {mac!r}")
    try:
        out = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"invalid MAC address {mac!r}") from None
    return out


def mac_to_str(mac: bytes) -> str:
    """6 bytes -> ``"52:54:00:12:34:56"``."""
    return ":".join(f"{b:02x}" for b in mac)


def _ether(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return dst + src + struct.pack("!H", ethertype)


def _arp(op: int, sha: bytes, spa: IPv4Address, tha: bytes, tpa: IPv4Address) -> bytes:
    return struct.pack("!HHBBH", ARPHRD_ETHER, ETH_P_IP, 6, 4, op) + sha + spa.packed + tha + tpa.packed


def build_garp(mac: str | bytes, vip: IPv4Address | IPv4Interface | str) -> bytes:
    """Gratuitous ARP request for ``vip`` (RFC 5798 §6.4.1, ARP-02), 42 bytes.

    Ethernet dst broadcast, src ``mac``; ARP op 1, sha = ``mac``,
    spa = tpa = VIP, tha = ff:ff:ff:ff:ff:ff (keepalived's format).
    """
    sha = mac_to_bytes(mac)
    ip = _v4(vip)
    return _ether(BROADCAST_MAC, sha, ETH_P_ARP) + _arp(ARPOP_REQUEST, sha, ip, BROADCAST_MAC, ip)


def build_arp_probe(mac: str | bytes, target: IPv4Address | str) -> bytes:
    """ARP probe for ``target`` (RFC 5227 §2.1.1): spa 0.0.0.0, tha zero, broadcast.

    Used to ask "who holds this VIP?" without poisoning caches (split-brain
    detection); any reply or announcement naming ``target`` reveals a holder.
    """
    sha = mac_to_bytes(mac)
    return _ether(BROADCAST_MAC, sha, ETH_P_ARP) + _arp(
        ARPOP_REQUEST, sha, IPv4Address(0), ZERO_MAC, _v4(target)
    )


def _v4(addr: IPv4Address | IPv4Interface | str) -> IPv4Address:
    if isinstance(addr, IPv4Interface):
        return addr.ip
    if isinstance(addr, IPv4Address):
        return addr
    return IPv4Address(addr)


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """A decoded Ethernet/IPv4 ARP frame."""

    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address
    vlan: int | None = None

    @property
    def is_gratuitous(self) -> bool:
        """sender IP == target IP (announcement, RFC 5227 §3)."""
        return self.sender_ip == self.target_ip

    @property
    def is_probe(self) -> bool:
        """Probe: request with sender IP 0.0.0.0 (RFC 5227 §2.1.1)."""
        return self.op == ARPOP_REQUEST and self.sender_ip == IPv4Address(0)


def parse_arp(frame: bytes) -> ArpPacket | None:
    """Decode an Ethernet frame carrying Ethernet/IPv4 ARP; None for anything else.

    Never raises on arbitrary bytes.  Accepts one 802.1Q tag and trailing
    Ethernet padding (frames on the wire are padded to 60 bytes).
    """
    if len(frame) < ETH_HEADER_LEN:
        return None
    eth_dst, eth_src = frame[0:6], frame[6:12]
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    offset = ETH_HEADER_LEN
    vlan: int | None = None
    if ethertype == ETH_P_8021Q:
        if len(frame) < offset + 4:
            return None
        tci, ethertype = struct.unpack_from("!HH", frame, offset)
        vlan = tci & 0x0FFF
        offset += 4
    if ethertype != ETH_P_ARP or len(frame) < offset + ARP_PAYLOAD_LEN:
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, offset)
    if htype != ARPHRD_ETHER or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    p = offset + 8
    return ArpPacket(
        eth_dst=bytes(eth_dst),
        eth_src=bytes(eth_src),
        op=op,
        sender_mac=bytes(frame[p : p + 6]),
        sender_ip=IPv4Address(bytes(frame[p + 6 : p + 10])),
        target_mac=bytes(frame[p + 10 : p + 16]),
        target_ip=IPv4Address(bytes(frame[p + 16 : p + 20])),
        vlan=vlan,
    )


class AnnounceSender:
    """AF_PACKET/SOCK_RAW sender bound to one interface for GARP and unsolicited NA.

    ``announce(vips, repeat)`` sends ``repeat`` rounds of one frame per VIP
    back to back (keepalived sends its 5 GARPs within ~0.12 ms,
    KEEPALIVED-BASELINE §3); IPv4 VIPs get a GARP (ARP-02), IPv6 VIPs an
    unsolicited NA (ARP-07).  Needs CAP_NET_RAW.
    """

    def __init__(self, ifname: str, *, mac: str | bytes | None = None) -> None:
        self.ifname = ifname
        self._mac_override = mac_to_bytes(mac) if mac is not None else None
        self._sock: socket.socket | None = None
        self.mac: bytes = b""
        self.frames_sent = 0
        self.send_errors = 0

    @classmethod
    async def open(cls, ifname: str, *, mac: str | bytes | None = None) -> AnnounceSender:
        """Create and bind the packet socket (raises OSError naming the interface)."""
        self = cls(ifname, mac=mac)
        self._open()
        return self

    def _open(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # proto 0: send only, never receive
        try:
            sock.bind((self.ifname, 0))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot bind AF_PACKET socket to {self.ifname!r}: {exc.strerror}"
            ) from exc
        sock.setblocking(False)
        self._sock = sock
        # Import the NA builder now, not inside the first (time-critical) burst.
        from pyvrrp.adapters import ndisc  # noqa: F401  (circular at module level)

        # getsockname() of a bound packet socket carries the interface's hardware address.
        hw = sock.getsockname()[4]
        self.mac = self._mac_override or bytes(hw)
        if len(self.mac) != 6:
            raise OSError(f"interface {self.ifname!r} has no Ethernet address")

    def send_frames(self, frames: Iterable[bytes]) -> int:
        """Send raw frames now; returns how many went out (errors are counted and logged)."""
        if self._sock is None:
            raise RuntimeError("AnnounceSender is closed")
        sent = 0
        for frame in frames:
            try:
                self._sock.send(frame)
                sent += 1
            except OSError as exc:  # ENOBUFS/ENETDOWN/EAGAIN: count, log, keep going
                self.send_errors += 1
                log.warning("announce_send_failed", iface=self.ifname, error=str(exc))
        self.frames_sent += sent
        return sent

    def frames_for(
        self, vips: Iterable[IPv4Interface | IPv6Interface | IPv4Address | IPv6Address]
    ) -> list[bytes]:
        """One GARP (IPv4) or unsolicited NA (IPv6) per VIP, using this interface's MAC."""
        from pyvrrp.adapters.ndisc import build_unsolicited_na

        out: list[bytes] = []
        for vip in vips:
            ip = vip.ip if isinstance(vip, IPv4Interface | IPv6Interface) else vip
            if isinstance(ip, IPv4Address):
                out.append(build_garp(self.mac, ip))
            else:
                out.append(build_unsolicited_na(self.mac, ip))
        return out

    def announce_now(
        self,
        vips: Iterable[IPv4Interface | IPv6Interface | IPv4Address | IPv6Address],
        repeat: int = 1,
    ) -> int:
        """Synchronously send ``repeat`` rounds of frames for ``vips``; returns frames sent."""
        frames = self.frames_for(vips)
        sent = 0
        for _ in range(max(repeat, 0)):
            sent += self.send_frames(frames)
        return sent

    async def announce(
        self,
        vips: Iterable[IPv4Interface | IPv6Interface | IPv4Address | IPv6Address],
        repeat: int = 1,
    ) -> int:
        """Async wrapper of :meth:`announce_now` (the send itself never blocks)."""
        return self.announce_now(vips, repeat)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def __aenter__(self) -> AnnounceSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Announcer:
    """GARP/NA for any interface: one :class:`AnnounceSender` per interface, opened on first use.

    ``announce(ifname, vips, repeat)`` is synchronous (a packet-socket send
    never blocks the loop), so an in-order action executor can call it right
    after adding the VIPs.  Raises OSError (naming the interface) if the
    packet socket cannot be opened; send errors are counted, not raised.
    """

    def __init__(self, *, macs: dict[str, str | bytes] | None = None) -> None:
        self._senders: dict[str, AnnounceSender] = {}
        self._macs = dict(macs or {})

    def sender(self, ifname: str) -> AnnounceSender:
        snd = self._senders.get(ifname)
        if snd is None:
            snd = AnnounceSender(ifname, mac=self._macs.get(ifname))
            snd._open()
            self._senders[ifname] = snd
        return snd

    def announce(
        self,
        ifname: str,
        vips: Iterable[IPv4Interface | IPv6Interface | IPv4Address | IPv6Address],
        repeat: int = 1,
    ) -> int:
        """Send ``repeat`` rounds of GARP (IPv4) / unsolicited NA (IPv6) for ``vips`` on ``ifname``.

        If nothing at all could be sent (e.g. the interface was re-created and
        the old socket points at a dead ifindex), the socket is reopened once.
        """
        vip_list = list(vips)
        sent = self.sender(ifname).announce_now(vip_list, repeat)
        if sent == 0 and vip_list and repeat > 0:
            self.forget(ifname)
            sent = self.sender(ifname).announce_now(vip_list, repeat)
        return sent

    def forget(self, ifname: str) -> None:
        """Close the sender of ``ifname`` (after the link was deleted or its MAC changed)."""
        snd = self._senders.pop(ifname, None)
        if snd is not None:
            snd.close()

    def close(self) -> None:
        for snd in self._senders.values():
            snd.close()
        self._senders.clear()
