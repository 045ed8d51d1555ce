"""keepalived's ``auth_type AH``: VRRPv2 adverts inside an IPsec Authentication Header.

Pure: stdlib only (``hmac``, ``hashlib``), no I/O, no clock, no logging.

RFC 2338 §5.3.6.3 (type 2) says the VRRP message is protected by the IP
Authentication Header (RFC 1826, now RFC 4302) with HMAC-MD5-96 (RFC 2403); RFC
3768 removed it.  keepalived still implements it its own way, without an IPsec
stack (``keepalived/vrrp/vrrp.c``, ``vrrp_ipsecah.c``), and that is the format
implemented here, checked byte for byte against packets captured from Debian's
keepalived 2.2.7 (tests/data/adverts/ah-*.json).

Theory of operation
-------------------
The datagram is a whole IPv4 packet, because the ICV covers the IP header::

    IPv4 header (20)  proto 51, TOS 0xc0, TTL 255, id != 0, no fragment flags
    AH (24)           next header 112, payload length 4, reserved 0,
                      SPI = the sender's IPv4 source address,
                      sequence number, ICV = HMAC-MD5-96 (12 bytes)
    VRRPv2 message    auth type 2, the 8 auth data bytes zero, checksum as usual

ICV (RFC 4302 §3.3.3.1, keepalived's reading): HMAC-MD5 keyed with the first 8
bytes of ``auth_pass`` (keepalived's ``auth_data[8]``, NUL padded: HMAC pads
the key with NULs to 64 bytes anyway, so trailing NULs change nothing) over the
IP header with TOS, flags/fragment offset and header checksum zeroed, the AH
header with the ICV zeroed, and the VRRP message; the first 96 bits are sent.
Deviation from RFC 4302 that keepalived makes and that interop needs: the TTL
is zeroed **only in unicast mode**; a multicast advert's TTL (255, RX-01) is
covered by the ICV as sent.  The IP identification is covered (immutable), so
the sender must build the IP header itself (IP_HDRINCL) with a non-zero id
the kernel leaves alone.

SPI: keepalived uses the sender's source address (there is no key exchange to
choose one), and a receiver drops an advert whose SPI differs from its source.

Sequence number (anti-replay): keepalived keeps **one** counter per instance
for both directions (:class:`AhSequence`).  Sending increments it first, so a
fresh daemon's first advert carries 1; an advert is accepted only if its
sequence number is strictly greater than the counter, which then takes that
value.  A backup therefore continues its master's sequence when it takes over,
and the whole group climbs one sequence.  A router that restarts starts at 0:
as a backup it catches up with the first advert it hears; if it becomes
master before hearing one (an owner, or nobody else alive) its low numbers are
dropped as replays by a router whose counter is higher, until it hears that
router's advert and jumps past it (keepalived behaves exactly so).

Receive checks, first failure wins (keepalived's order)::

    IPv4 header shape -> protocol 51 -> length (IP total length) -> AH next
    header 112 -> AH payload length 4 -> ICV -> SPI == source
    (then, stateful, AhSequence.accept: sequence > counter)

The VRRP message inside is then decoded by :func:`pyvrrp.proto.packet.decode`
as any other advert.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from pyvrrp.proto.constants import IPPROTO_VRRP, VRRP_TTL
from pyvrrp.proto.packet import DropReason, InvalidPacket

__all__ = [
    "AH_HEADER_LEN",
    "AH_KEY_LEN",
    "AH_PAYLOAD_LEN",
    "ICV_LEN",
    "IPPROTO_AH",
    "SEQ_MAX",
    "AhDatagram",
    "AhSequence",
    "AhSession",
    "ah_key",
    "build_datagram",
    "icv",
    "verify_datagram",
]

IPPROTO_AH = 51  # RFC 4302 §2 (keepalived IPPROTO_IPSEC_AH)
AH_HEADER_LEN = 24  # next header, payload length, reserved(2), SPI(4), sequence(4), ICV(12)
AH_PAYLOAD_LEN = 4  # RFC 4302 §2.2: AH length in 32-bit words minus 2 = 24 / 4 - 2
ICV_LEN = 12  # HMAC-MD5-96, RFC 2403 §2 (keepalived HMAC_MD5_TRUNC)
AH_KEY_LEN = 8  # keepalived: the first 8 bytes of auth_pass (vrrp->auth_data)
SEQ_MAX = 0xFFFFFFFE  # keepalived stops counting past 0xFFFFFFFD (136 years at 1 advert/s)
TOS_NETWORK_CONTROL = 0xC0  # keepalived's TOS for adverts (DSCP CS6)

_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")  # ver|ihl tos tot_len id frag ttl proto cksum src dst
_AH_FIXED = struct.Struct("!BBHII")  # next header, payload length, reserved, SPI, sequence
_IP_MIN = 20
_VRRP_MIN = 8


def ah_key(auth_pass: str | bytes) -> bytes:
    """The HMAC key keepalived derives from ``auth_pass``: its first 8 bytes (UTF-8)."""
    raw = auth_pass.encode() if isinstance(auth_pass, str) else auth_pass
    return raw[:AH_KEY_LEN]


def _ip_checksum(header: bytes) -> int:
    """RFC 791 header checksum (the kernel rewrites it with IP_HDRINCL; an oracle needs it right)."""
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icv(key: bytes, ip_header: bytes, ah_header: bytes, payload: bytes, *, unicast: bool) -> bytes:
    """HMAC-MD5-96 over a datagram's parts, mutable fields zeroed as keepalived does.

    Args:
        key: :func:`ah_key` of the password.
        ip_header: the IPv4 header as sent or received (options included).
        ah_header: the 24-byte AH header; its ICV bytes are ignored (zeroed).
        payload: the VRRP message.
        unicast: zero the TTL too (keepalived: unicast mode only; module docstring).

    Returns:
        The 12-byte ICV.
    """
    ip = bytearray(ip_header)
    ip[1] = 0  # TOS
    ip[6:8] = b"\0\0"  # flags + fragment offset
    ip[10:12] = b"\0\0"  # header checksum
    if unicast:
        ip[8] = 0  # TTL
    ah = bytes(ah_header[: AH_HEADER_LEN - ICV_LEN]) + bytes(ICV_LEN)
    mac = hmac.new(key, bytes(ip) + ah + payload, hashlib.md5)
    return mac.digest()[:ICV_LEN]


def build_datagram(
    payload: bytes,
    *,
    key: bytes,
    src: IPv4Address,
    dst: IPv4Address,
    seq: int,
    ip_id: int,
    ttl: int = VRRP_TTL,
    tos: int = TOS_NETWORK_CONTROL,
    unicast: bool = False,
) -> bytes:
    """The whole IPv4 datagram carrying the VRRP message ``payload`` under AH.

    Args:
        payload: the VRRPv2 message (:func:`pyvrrp.proto.packet.encode`, auth type 2).
        key: :func:`ah_key` of the password.
        src: source address, also the SPI.
        dst: destination (224.0.0.18 or a unicast peer).
        seq: AH sequence number (:meth:`AhSequence.next_tx`), 1..2**32-1.
        ip_id: IP identification, 1..65535 (0 would let the kernel choose one after the
            ICV was computed).
        ttl: IP TTL (255, PKT-02; keepalived ``unicast_ttl`` in unicast mode).
        tos: IP TOS (keepalived: 0xc0); not covered by the ICV.
        unicast: keepalived's unicast ICV form (TTL zeroed).

    Returns:
        The datagram, IP header checksum filled in.

    Raises:
        ValueError: a field out of range.
    """
    if not 1 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"AH sequence number {seq} outside 1..2**32-1")
    if not 1 <= ip_id <= 0xFFFF:
        raise ValueError(f"IP id {ip_id} outside 1..65535 (0 is filled in by the kernel)")
    if not 0 <= ttl <= 255 or not 0 <= tos <= 255:
        raise ValueError(f"ttl {ttl} / tos {tos} outside 0..255")
    total = _IP_MIN + AH_HEADER_LEN + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"datagram of {total} bytes does not fit IPv4")
    spi = int.from_bytes(src.packed, "big")
    ip = _IP_HEADER.pack(0x45, tos, total, ip_id, 0, ttl, IPPROTO_AH, 0, src.packed, dst.packed)
    ah = _AH_FIXED.pack(IPPROTO_VRRP, AH_PAYLOAD_LEN, 0, spi, seq) + bytes(ICV_LEN)
    ah = ah[: AH_HEADER_LEN - ICV_LEN] + icv(key, ip, ah, payload, unicast=unicast)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    return ip + ah + payload


@dataclass(frozen=True, slots=True)
class AhDatagram:
    """A received AH datagram whose ICV and SPI verified: the VRRP message and what surrounds it."""

    payload: bytes
    """The VRRP message (for :func:`pyvrrp.proto.packet.decode`)."""
    src: IPv4Address
    dst: IPv4Address
    ttl: int
    spi: int
    seq: int


def verify_datagram(data: bytes, *, key: bytes, unicast: bool) -> AhDatagram | InvalidPacket:
    """Check a received IPv4 datagram (IP header included) as keepalived does.

    Args:
        data: what the raw IPPROTO_AH socket returned.
        key: :func:`ah_key` of the configured password.
        unicast: the receiving instance uses unicast peers (TTL zeroed in the ICV).

    Returns:
        An :class:`AhDatagram`, or an :class:`InvalidPacket` naming what failed (the
        sequence number is the caller's check: :class:`AhSequence`).  Never raises.
    """
    data = bytes(data)
    size = len(data)
    if size < _IP_MIN or data[0] >> 4 != 4:
        return InvalidPacket(DropReason.LENGTH, f"{size} bytes: not an IPv4 header")
    ihl = (data[0] & 0x0F) * 4
    if ihl < _IP_MIN or size < ihl:
        return InvalidPacket(DropReason.LENGTH, f"IPv4 header length {ihl} in {size} bytes")
    (_, _, tot_len, _, _, ttl, proto, _, src_raw, dst_raw) = _IP_HEADER.unpack_from(data)
    if proto != IPPROTO_AH:
        return InvalidPacket(DropReason.AUTH, f"IP protocol {proto}, not 51 (AH): no AH header (RX-07)")
    if tot_len < ihl or tot_len > size:
        return InvalidPacket(DropReason.LENGTH, f"IP total length {tot_len} but {size} bytes received")
    data = data[:tot_len]
    if tot_len < ihl + AH_HEADER_LEN + _VRRP_MIN:
        return InvalidPacket(
            DropReason.LENGTH, f"IP total length {tot_len}: too short for AH ({AH_HEADER_LEN}) and VRRP"
        )
    next_header, payload_len, _, spi, seq = _AH_FIXED.unpack_from(data, ihl)
    if next_header != IPPROTO_VRRP:
        return InvalidPacket(DropReason.TYPE, f"AH next header {next_header} is not 112 (VRRP)")
    if payload_len != AH_PAYLOAD_LEN:
        return InvalidPacket(
            DropReason.LENGTH, f"AH payload length {payload_len}: HMAC-MD5-96 needs {AH_PAYLOAD_LEN}"
        )
    ah_end = ihl + AH_HEADER_LEN
    ah_header = data[ihl:ah_end]
    payload = data[ah_end:]
    expected = icv(key, data[:ihl], ah_header, payload, unicast=unicast)
    if not hmac.compare_digest(expected, ah_header[AH_HEADER_LEN - ICV_LEN :]):
        return InvalidPacket(
            DropReason.AUTH,
            "IPsec AH: HMAC-MD5-96 mismatch: a different auth_pass, or a covered field changed in transit",
        )
    if spi != int.from_bytes(src_raw, "big"):
        return InvalidPacket(
            DropReason.AUTH, f"IPsec AH: SPI 0x{spi:08x} is not the source address {IPv4Address(src_raw)}"
        )
    return AhDatagram(payload, IPv4Address(src_raw), IPv4Address(dst_raw), ttl, spi, seq)


class AhSequence:
    """keepalived's anti-replay counter: one per instance, for sending and receiving.

    ``last`` is the last sequence number sent or accepted (0 at start).
    """

    __slots__ = ("last",)

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next_tx(self) -> int:
        """The sequence number of the next advert sent (keepalived increments, then sends)."""
        if self.last < SEQ_MAX:
            self.last += 1
        return self.last

    def accept(self, seq: int) -> bool:
        """Replay check of a verified advert: True (and remembered) if ``seq`` is newer."""
        if seq > self.last:
            self.last = seq
            return True
        return False

    def __repr__(self) -> str:
        return f"AhSequence(last={self.last})"


class AhSession:
    """One instance's AH state: its key, ICV form, sequence counter and IP identification.

    :meth:`seal` wraps one advert (the VRRP message for each destination) and
    :meth:`open` checks one received datagram, replay check included.  The counter is
    shared by both directions (:class:`AhSequence`).
    """

    __slots__ = ("ip_id", "key", "seq", "unicast")

    def __init__(self, key: bytes, *, unicast: bool = False) -> None:
        self.key = key
        self.unicast = unicast
        self.seq = AhSequence()
        self.ip_id = 0

    def seal(
        self, datagrams: list[tuple[IPv4Address, bytes]], *, src: IPv4Address, ttl: int = VRRP_TTL
    ) -> list[tuple[IPv4Address, bytes]]:
        """One advert (``(dst, VRRP message)`` per destination) -> ``(dst, datagram)``.

        The sequence number and IP identification advance once per advert: every unicast
        peer gets the same two (keepalived's ``vrrp_update_pkt``).
        """
        seq = self.seq.next_tx()
        self.ip_id = self.ip_id % 0xFFFF + 1  # 1..65535: 0 would be replaced by the kernel
        return [
            (
                dst,
                build_datagram(
                    payload,
                    key=self.key,
                    src=src,
                    dst=dst,
                    seq=seq,
                    ip_id=self.ip_id,
                    ttl=ttl,
                    unicast=self.unicast,
                ),
            )
            for dst, payload in datagrams
        ]

    def open(self, data: bytes) -> AhDatagram | InvalidPacket:
        """:func:`verify_datagram`, then the replay check (:meth:`AhSequence.accept`)."""
        result = verify_datagram(data, key=self.key, unicast=self.unicast)
        if isinstance(result, InvalidPacket):
            return result
        if not self.seq.accept(result.seq):
            return InvalidPacket(
                DropReason.AUTH,
                f"IPsec AH: sequence number {result.seq} not above {self.seq.last} already seen "
                "(a replay, or a router that restarted and has not heard the current master yet)",
            )
        return result
