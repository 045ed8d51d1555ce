"""VRRP advertisement codec: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798 / RFC 9568).

Pure: stdlib only, no I/O, no clock, no logging.  ``encode`` turns an
:class:`Advertisement` into the VRRP message (the IP payload, no IP header);
``decode`` turns an IP payload back into an :class:`Advertisement` or an
:class:`InvalidPacket` naming the field and value that failed.

Theory of operation
-------------------
``decode`` does the *shape* checks of RFC 3768/5798/9568 §7.1 only: what can
be judged from the packet and its IP addresses alone.  Everything that needs
the local configuration (TTL 255 RX-01, configured version RX-02, configured
VRID RX-06, auth type/password RX-07, interval RX-08/RX-09, address list
RX-10, unicast peers RX-13) is the engine's job, as in FRR's
``vrrp_pkt_parse_datagram``.  The checks run in this order and the first
failure wins::

    length >= 8 (RX-04) -> version 2|3 (PKT-03) -> type 1 (RX-03)
    -> src/dst same family (PKT-08) -> v2 only over IPv4 ("version")
    -> vrid != 0 (PKT-04) -> length == count-derived length (RX-04; PKT-08
       when the length fits the other family's address size)
    -> checksum (RX-05) -> count != 0 (RX-11, EID 8299)
    -> interval != 0 (v3: EID 8301; v2: RFC 3768 gives no range but 0 can
       never equal a configured interval, so RX-08 would drop it anyway)
    -> v2 auth type 0|1|2 (RX-07: unknown types are "auth"; type 2 is
       keepalived's IPsec AH, whose ICV :mod:`pyvrrp.proto.ah` checked before)
    -> v6 first address link-local (EID 8300)

So every Advertisement that decode returns has vrid >= 1, at least one
address of the packet's family and interval_cs >= 1: the engine may divide
by the interval.  Count 0 is dropped for v2 as well (RFC 3768 gives no
minimum; an advert without addresses is keepalived's non-standard
``no_virtual_ipaddress``).

Length decision (RX-04): the payload must be *exactly* the length implied by
the address count (v2: 8 + 4n + 8; v3: 8 + 4n or 8 + 16n).  ``payload`` is
the IP payload, already cut to the IP total length / payload length by the
kernel (raw socket) or by :mod:`pyvrrp.sniff`, so Ethernet padding never
reaches this function.  Accepting trailing bytes would let a corrupted Count
byte pass whenever the dropped address words happen to cancel the count
change in the checksum; refusing them keeps Count covered.

Checksum (PKT-07, RX-05): v2 sums the VRRP message only (RFC 3768 §5.3.8,
auth data included).  v3/IPv6 prepends the RFC 8200 §8.1 pseudo-header with
next header 112 (RFC 5798/9568 §5.2.8).  v3/IPv4 is split in the field:
keepalived and FRR prepend the IPv4 pseudo-header (src, dst, 0, 112, length;
our ``"v3-pseudo"`` form, the default of ``encode``), RFC 9568 §5.2.8 says
no pseudo-header (``"v3-plain"``).  ``decode`` accepts both and records the
one that verified in ``Advertisement.checksum_form`` (pseudo tried first; a
packet that verifies both ways, possible only when the pseudo-header itself
sums to 0 mod 0xffff, is reported as ``"v3-pseudo"``).

The one's-complement sum uses the identity 2**16 == 1 (mod 0xffff): the sum
of the 16-bit words of an even-length string, folded, is
``int.from_bytes(data) % 0xffff`` (with 0 read as 0xffff for non-zero data).
That is one C call per packet instead of a Python loop over words.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

from pyvrrp.proto.constants import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_SIMPLE,
    IPPROTO_VRRP,
    MCAST_GROUP_V4,
    MCAST_GROUP_V6,
    V2_AUTH_DATA_LEN,
    V3_ADVER_INT_MAX_CS,
    VMAC_PREFIX_V4,
    VMAC_PREFIX_V6,
    VRRP_HEADER_LEN,
    VRRP_TYPE_ADVERTISEMENT,
)

__all__ = [
    "CHECKSUM_FORMS",
    "Advertisement",
    "DropReason",
    "InvalidPacket",
    "decode",
    "encode",
    "parse_ipv4_datagram",
    "vmac",
]

IPAddress = IPv4Address | IPv6Address

#: Values of ``Advertisement.checksum_form`` set by :func:`decode`.
CHECKSUM_FORMS = ("v2", "v3-pseudo", "v3-plain", "v3-ipv6")

_HEADER = struct.Struct("!BBBBBBH")  # ver|type, vrid, prio, count, auth|rsvd+int, int, cksum
_V3_HEADER = struct.Struct("!BBBBHH")  # ver|type, vrid, prio, count, rsvd(4)+int(12), cksum
_CKSUM = struct.Struct("!H")
_V4_PSEUDO_TAIL = struct.Struct("!BBH")  # zero, protocol, VRRP length (RFC 791 style)
_V6_PSEUDO_TAIL = struct.Struct("!IxxxB")  # upper-layer length, 3 zero bytes, next header (RFC 8200 §8.1)
_MOD = 0xFFFF
_V2_INTERVAL_MAX_S = 255
_V2_TRAILER_LEN = V2_AUTH_DATA_LEN
_MAX_COUNT = 255


class DropReason(StrEnum):
    """Why a received packet was dropped: the counter keys shown by ``pyvrrp state``.

    ``decode`` produces LENGTH, VERSION, TYPE, CHECKSUM, VRID (0 only), AUTH,
    INTERVAL, ADDRESS_COUNT, ADDRESS_LIST and ADDRESS_FAMILY; the engine and
    the receive adapter add TTL, VERSION (configured version), VRID
    (unconfigured), AUTH (mismatch), INTERVAL (v2 mismatch), ADDRESS_LIST,
    UNICAST_PEER and SELF.
    """

    TTL = "ttl"  # RX-01
    VERSION = "version"  # PKT-03, RX-02
    TYPE = "type"  # RX-03
    LENGTH = "length"  # RX-04
    CHECKSUM = "checksum"  # RX-05
    VRID = "vrid"  # RX-06
    AUTH = "auth"  # RX-07
    INTERVAL = "interval"  # RX-08 (v2), EID 8301 (v3 zero)
    ADDRESS_COUNT = "address_count"  # RX-11, EID 8299
    ADDRESS_LIST = "address_list"  # RX-10 (engine: v2 list mismatch from a non-owner)
    ADDRESS_FAMILY = "address_family"  # PKT-08
    UNICAST_PEER = "unicast_peer"  # RX-13
    SELF = "self"  # our own advert looped back


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP ADVERTISEMENT (RFC 3768 §5.1, RFC 5798 §5.1).

    ``interval_cs`` is always centiseconds: v2's Adver Int (seconds) times 100,
    v3's Max Adver Int as carried.  ``auth_*`` exist only in v2; ``decode``
    returns ``auth_data`` without its trailing NUL padding, and ``b""`` for
    auth type 0 (the data is ignored on receive, RFC 3768 §5.3.10).
    ``checksum_form`` is set by :func:`decode` and ignored by :func:`encode`.
    """

    version: int
    vrid: int
    priority: int
    addresses: tuple[IPv4Address | IPv6Address, ...]
    interval_cs: int
    auth_type: int = 0
    auth_data: bytes = b""
    checksum_form: str = ""

    @property
    def interval_s(self) -> float:
        """The advertised interval in seconds."""
        return self.interval_cs / 100


@dataclass(frozen=True, slots=True)
class InvalidPacket:
    """A packet ``decode`` refused: the drop counter key and a readable reason."""

    reason: DropReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


# ------------------------------------------------------------------ helpers


def vmac(vrid: int, family: int) -> bytes:
    """The virtual router MAC address (RFC 5798 §7.3, ARP-01).

    IPv4: 00-00-5E-00-01-{VRID}; IPv6: 00-00-5E-00-02-{VRID}.
    """
    if not 1 <= vrid <= 255:
        raise ValueError(f"vrid {vrid} outside 1..255")
    if family == 4:
        return VMAC_PREFIX_V4 + bytes((vrid,))
    if family == 6:
        return VMAC_PREFIX_V6 + bytes((vrid,))
    raise ValueError(f"family {family} is neither 4 nor 6")


def _checksum_of(total: int) -> int:
    """The checksum field value for a one's-complement sum given as a big integer.

    RFC 1071: the complement of the folded sum.  The folded sum of non-zero
    data is never 0, so ``total % 0xffff == 0`` means a folded sum of 0xffff.
    """
    return _MOD - (total % _MOD or _MOD)


def _pseudo_v4(src: IPv4Address, dst: IPv4Address, length: int) -> int:
    """IPv4 pseudo-header as an integer (keepalived/FRR v3 form; PKT-07)."""
    return int.from_bytes(src.packed + dst.packed + _V4_PSEUDO_TAIL.pack(0, IPPROTO_VRRP, length), "big")


def _pseudo_v6(src: IPv6Address, dst: IPv6Address, length: int) -> int:
    """RFC 8200 §8.1 pseudo-header, next header 112 (RFC 5798 §5.2.8)."""
    return int.from_bytes(src.packed + dst.packed + _V6_PSEUDO_TAIL.pack(length, IPPROTO_VRRP), "big")


# ------------------------------------------------------------------- encode


def encode(
    adv: Advertisement,
    *,
    src: IPAddress | None = None,
    dst: IPAddress | None = None,
    v3_ipv4_pseudo_header: bool = True,
) -> bytes:
    """Build the VRRP message (IP payload, no IP header) for ``adv``.

    Args:
        adv: the advertisement; ``checksum_form`` is ignored.
        src: IP source address.  Required for v3/IPv6 and for v3/IPv4 with
            the pseudo-header (PKT-07); ignored otherwise.
        dst: IP destination; defaults to the family's multicast group
            (224.0.0.18 / ff02::12, PKT-01) when a pseudo-header needs it.
        v3_ipv4_pseudo_header: v3/IPv4 only.  True (default) includes the
            IPv4 pseudo-header like keepalived and FRR; False follows
            RFC 9568 §5.2.8 (no pseudo-header).

    Returns:
        The message bytes, checksum filled in.

    Raises:
        ValueError: ``adv`` cannot be encoded into a packet that
            :func:`decode` accepts (bad version, VRID, priority, interval,
            address count/family, v6 first address not link-local, v2 auth
            type other than 0/1/2, or a missing ``src``).
    """
    version = adv.version
    addresses = adv.addresses
    count = len(addresses)
    if version not in (2, 3):
        raise ValueError(f"version {version}: only 2 and 3 exist (PKT-03)")
    if not 1 <= adv.vrid <= 255:
        raise ValueError(f"vrid {adv.vrid} outside 1..255 (PKT-04)")
    if not 0 <= adv.priority <= 255:
        raise ValueError(f"priority {adv.priority} outside 0..255 (PKT-04)")
    if not 0 <= count <= _MAX_COUNT:
        raise ValueError(f"{count} addresses: an advert carries 1..255 (RX-11)")
    if count:
        family = addresses[0].version
    elif src is not None:  # a router without VIPs (keepalived no_virtual_ipaddress): see decode()
        family = src.version
    else:
        raise ValueError("an advert without addresses needs src for its family")
    for address in addresses:
        if address.version != family:
            raise ValueError(f"address {address} mixes IPv4 and IPv6 in one advert (PKT-08)")
    for label, endpoint in (("src", src), ("dst", dst)):
        if endpoint is not None and endpoint.version != family:
            raise ValueError(f"{label} {endpoint} is not IPv{family} like the address list (PKT-08)")
    addr_bytes = b"".join([a.packed for a in addresses])

    if version == 2:
        if family != 4:
            raise ValueError("VRRPv2 carries IPv4 only (RFC 3768); use version 3 for IPv6")
        seconds, rest = divmod(adv.interval_cs, 100)
        if rest or not 1 <= seconds <= _V2_INTERVAL_MAX_S:
            raise ValueError(
                f"interval_cs {adv.interval_cs}: v2 needs whole seconds 1..255 (RFC 3768 §5.3.7)"
            )
        if adv.auth_type == AUTH_NONE:
            auth = bytes(V2_AUTH_DATA_LEN)  # SHOULD be zero on transmit, RFC 3768 §5.3.10
        elif adv.auth_type == AUTH_SIMPLE:
            auth = adv.auth_data[:V2_AUTH_DATA_LEN].ljust(V2_AUTH_DATA_LEN, b"\0")
        elif adv.auth_type == AUTH_AH:
            auth = bytes(V2_AUTH_DATA_LEN)  # keepalived: zero; the AH header carries the ICV (proto/ah.py)
        else:
            raise ValueError(f"auth_type {adv.auth_type}: only 0 (none), 1 (password) and 2 (AH) are sent")
        message = (
            _HEADER.pack(
                0x20 | VRRP_TYPE_ADVERTISEMENT, adv.vrid, adv.priority, count, adv.auth_type, seconds, 0
            )
            + addr_bytes
            + auth
        )
        # RFC 3768 §5.3.8: the whole VRRP message, auth data included.
        cksum = _checksum_of(int.from_bytes(message, "big"))
        return message[:6] + _CKSUM.pack(cksum) + message[8:]

    interval_cs = adv.interval_cs
    if not 1 <= interval_cs <= V3_ADVER_INT_MAX_CS:
        raise ValueError(f"interval_cs {interval_cs} outside 1..4095 (RFC 5798 §5.2.7, EID 8301)")
    message = (
        _V3_HEADER.pack(0x30 | VRRP_TYPE_ADVERTISEMENT, adv.vrid, adv.priority, count, interval_cs, 0)
        + addr_bytes
    )
    total = int.from_bytes(message, "big")
    if family == 6 or v3_ipv4_pseudo_header:
        if src is None:
            raise ValueError(f"v3/IPv{family} checksum needs src (pseudo-header, RFC 5798 §5.2.8)")
        if family == 6:
            total += _pseudo_v6(src, dst or MCAST_GROUP_V6, len(message))  # type: ignore[arg-type]
        else:
            total += _pseudo_v4(src, dst or MCAST_GROUP_V4, len(message))  # type: ignore[arg-type]
    return message[:6] + _CKSUM.pack(_checksum_of(total)) + message[8:]


def first_is_link_local(adv: Advertisement) -> bool:
    """RFC 9568 §5.2.9 / EID 8300: is an IPv6 advert's first address link-local (True for IPv4)."""
    first = adv.addresses[0] if adv.addresses else None
    return not isinstance(first, IPv6Address) or first.is_link_local


def _is_link_local_v6(raw: bytes) -> bool:
    """fe80::/10 test on the first 2 bytes of a raw IPv6 address (EID 8300)."""
    return raw[0] == 0xFE and (raw[1] & 0xC0) == 0x80


# ------------------------------------------------------------------- decode

# Decoded address lists are memoised by their raw bytes: the same master
# sends the same list several times per second, and building ipaddress
# objects is the most expensive step of decode().  Bounded; cleared when full.
_ADDR_CACHE: dict[bytes, tuple[IPv4Address | IPv6Address, ...]] = {}
_ADDR_CACHE_MAX = 1024


def _addresses(raw: bytes, family: int) -> tuple[IPv4Address | IPv6Address, ...]:
    key = raw if family == 4 else b"6" + raw
    cached = _ADDR_CACHE.get(key)
    if cached is not None:
        return cached
    result: tuple[IPv4Address | IPv6Address, ...]
    if family == 4:
        result = tuple(map(IPv4Address, struct.unpack(f"!{len(raw) // 4}I", raw)))
    else:
        result = tuple(IPv6Address(raw[i : i + 16]) for i in range(0, len(raw), 16))
    if len(_ADDR_CACHE) >= _ADDR_CACHE_MAX:
        _ADDR_CACHE.clear()
    _ADDR_CACHE[key] = result
    return result


def decode(
    payload: bytes,
    *,
    src: IPAddress,
    dst: IPAddress | None,
    accept_empty: bool = False,
) -> Advertisement | InvalidPacket:
    """Check the shape of a received VRRP message and decode it.

    Args:
        payload: the IP payload (VRRP message), cut to the IP length.
        src: IP source address; its family is the packet's family.
        dst: IP destination address, needed for the v3 pseudo-header checksum
            (always for IPv6; for IPv4 only to try the keepalived/FRR form).
        accept_empty: accept Count = 0.  RFC 9568 §5.2.5 (RX-11, EID 8299) says such an
            advert MUST be ignored; keepalived >= 2.2.8 sends exactly that for an instance
            without VIPs (``no_virtual_ipaddress``, the cloud pattern where notify scripts
            move a floating IP).  Deliberate deviation (IOP), and only for a receiving
            router that has no VIPs itself: every other router still ignores Count = 0.

    Returns:
        An :class:`Advertisement` (with ``checksum_form`` set), or an
        :class:`InvalidPacket` whose ``detail`` names the field and value.
        Never raises on arbitrary ``payload`` bytes.
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    size = len(payload)
    if size < VRRP_HEADER_LEN:
        return InvalidPacket(DropReason.LENGTH, f"length {size} shorter than the 8-byte VRRP header (RX-04)")
    ver_type, vrid, priority, count, byte4, byte5, _ = _HEADER.unpack_from(payload)
    version = ver_type >> 4
    if version != 2 and version != 3:
        return InvalidPacket(DropReason.VERSION, f"version {version} is neither 2 nor 3 (PKT-03)")
    if ver_type & 0x0F != VRRP_TYPE_ADVERTISEMENT:
        return InvalidPacket(DropReason.TYPE, f"type {ver_type & 0x0F} is not 1 ADVERTISEMENT (RX-03)")
    family = src.version
    if dst is not None and dst.version != family:
        return InvalidPacket(
            DropReason.ADDRESS_FAMILY, f"src {src} and dst {dst} are different IP families (PKT-08)"
        )
    if version == 2 and family != 4:
        return InvalidPacket(
            DropReason.VERSION, f"version 2 in an IPv{family} packet: VRRPv2 is IPv4-only (RFC 3768)"
        )
    if vrid == 0:
        return InvalidPacket(DropReason.VRID, "vrid 0 outside 1..255 (PKT-04)")

    addr_len = 4 if family == 4 else 16
    end = VRRP_HEADER_LEN + count * addr_len
    expected = end + _V2_TRAILER_LEN if version == 2 else end
    if size != expected:
        if version == 3 and count and size == VRRP_HEADER_LEN + count * (20 - addr_len):
            return InvalidPacket(
                DropReason.ADDRESS_FAMILY,
                f"length {size} fits {count} IPv{10 - family} addresses in an IPv{family} packet (PKT-08)",
            )
        what = "truncated" if size < expected else f"{size - expected} trailing bytes"
        return InvalidPacket(
            DropReason.LENGTH,
            f"length {size} but count {count} needs {expected} bytes: {what} (RX-04)",
        )

    # RX-05 checksum
    total = int.from_bytes(payload, "big")
    if version == 2:
        form = "v2"
        if total % _MOD:
            return _bad_checksum(payload, "v2 (RFC 3768 §5.3.8)", 0)
    elif family == 6:
        form = "v3-ipv6"
        if dst is None:
            return InvalidPacket(DropReason.CHECKSUM, "v3/IPv6 checksum needs dst for the pseudo-header")
        pseudo = _pseudo_v6(src, dst, size)  # type: ignore[arg-type]
        if (total + pseudo) % _MOD:
            return _bad_checksum(payload, "v3 IPv6 pseudo-header (RFC 5798 §5.2.8)", pseudo)
    else:
        pseudo = _pseudo_v4(src, dst, size) if dst is not None else 0  # type: ignore[arg-type]
        if dst is not None and (total + pseudo) % _MOD == 0:
            form = "v3-pseudo"
        elif total % _MOD == 0:
            form = "v3-plain"
        else:
            (received,) = _CKSUM.unpack_from(payload, 6)
            plain = _expected_checksum(payload, 0)
            if dst is None:
                detail = (
                    f"0x{plain:04x} (no pseudo-header, RFC 9568 §5.2.8; no dst for the pseudo-header form)"
                )
            else:
                detail = (
                    f"0x{_expected_checksum(payload, pseudo):04x} (IPv4 pseudo-header, keepalived/FRR)"
                    f" or 0x{plain:04x} (no pseudo-header, RFC 9568 §5.2.8)"
                )
            return InvalidPacket(DropReason.CHECKSUM, f"checksum 0x{received:04x} expected {detail} (RX-05)")

    if count == 0 and not accept_empty:
        return InvalidPacket(DropReason.ADDRESS_COUNT, "count 0: no addresses (RX-11, RFC 9568 EID 8299)")

    if version == 2:
        if byte5 == 0:
            return InvalidPacket(DropReason.INTERVAL, "adver_int 0 s (RFC 3768 §5.3.7)")
        interval_cs = byte5 * 100
        if byte4 == AUTH_NONE:
            auth_data = b""
        elif byte4 == AUTH_SIMPLE:
            auth_data = payload[end:].rstrip(b"\0")
        elif byte4 == AUTH_AH:
            auth_data = b""  # AH: the ICV is in the AH header (proto/ah.py); the engine checks the type
        else:
            return InvalidPacket(DropReason.AUTH, f"auth_type {byte4} is unknown (RFC 3768 §5.3.6, RX-07)")
        return Advertisement(
            2,
            vrid,
            priority,
            _addresses(payload[VRRP_HEADER_LEN:end], 4),
            interval_cs,
            byte4,
            auth_data,
            form,
        )

    interval_cs = ((byte4 & 0x0F) << 8) | byte5  # the high 4 bits are Reserve, ignored
    if interval_cs == 0:
        return InvalidPacket(DropReason.INTERVAL, "max_adver_int 0 cs (RFC 9568 §7.1, EID 8301)")
    raw = payload[VRRP_HEADER_LEN:end]
    # RFC 9568 EID 8300 says to discard an IPv6 advert whose first address is not
    # link-local.  Deliberate deviation (IOP): keepalived 2.2.7 sends its VIPs in
    # configured order (it only warns "the first IPv6 VIP address should be link
    # local"), so discarding would break every keepalived IPv6 pair.  Accepted;
    # `first_is_link_local()` lets callers count it.
    return Advertisement(3, vrid, priority, _addresses(raw, family), interval_cs, 0, b"", form)


def _expected_checksum(payload: bytes, pseudo: int) -> int:
    """The checksum ``payload`` should carry, given its pseudo-header sum."""
    return _checksum_of(pseudo + int.from_bytes(payload[:6] + b"\0\0" + payload[8:], "big"))


def _bad_checksum(payload: bytes, form: str, pseudo: int) -> InvalidPacket:
    """The RX-05 drop, naming the received and the expected checksum."""
    (received,) = _CKSUM.unpack_from(payload, 6)
    expected = _expected_checksum(payload, pseudo)
    return InvalidPacket(
        DropReason.CHECKSUM, f"checksum 0x{received:04x} expected 0x{expected:04x} {form} (RX-05)"
    )


def parse_ipv4_datagram(data: bytes) -> tuple[bytes, IPv4Address, IPv4Address, int] | None:
    """Split a raw-socket IPv4 datagram into (payload, src, dst, ttl); None if malformed.

    Linux raw sockets deliver the header with ``tot_len`` in network order.
    The payload is trimmed to ``tot_len`` (drops Ethernet padding, RX-04).
    """
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    if ihl < 20 or len(data) < ihl:
        return None
    (tot_len,) = struct.unpack_from("!H", data, 2)
    ttl, proto = data[8], data[9]
    if proto != IPPROTO_VRRP:
        return None
    end = min(len(data), tot_len) if tot_len >= ihl else len(data)
    return (
        bytes(data[ihl:end]),
        IPv4Address(bytes(data[12:16])),
        IPv4Address(bytes(data[16:20])),
        ttl,
    )
