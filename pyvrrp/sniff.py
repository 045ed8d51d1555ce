"""``pyvrrp sniff``: decode VRRP on the wire with pyvrrp's own codec, and spot conflicts.

The frames come from a capture file (classic pcap read here with the stdlib;
pcapng through scapy, imported only then) or from a live AF_PACKET socket
bound to one interface.  Every IP protocol 112 packet (PKT-01) is cut to its
IP length (so Ethernet padding never reaches the codec, RX-04) and passed to
:func:`pyvrrp.proto.packet.decode`; the result becomes a :class:`SniffRecord`
(one output line).  :class:`Analyzer` collects the records and reports, per
(address family, VRID), which routers advertised and what looks wrong:

* ``two-masters``: two sources advertising non-zero priority at the same time
  (split brain; each sent at least 2 adverts inside the overlap, so a single
  pair of crossing adverts during a normal preemption is not flagged);
* ``interval-mismatch`` (RX-08 drops these in v2; v3 logs, RX-09);
* ``address-mismatch`` / ``address-order`` (RX-10, PKT-10);
* ``ttl`` (RX-01: receivers drop TTL/Hop Limit != 255 in multicast mode; each
  such packet is also marked ``valid: false, reason: "ttl"`` on its own, as a
  receiver would drop it, while its router still shows in the summary);
* ``version-mismatch`` (RX-02), ``auth-mismatch`` (RX-07), ``duplicate-owner``
  (two routers with priority 255, RX-06 / EID 8298);
* ``invalid``: packets the codec refused, by drop reason.
"""

from __future__ import annotations

import bisect
import json
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, BinaryIO

from pyvrrp.proto.constants import IPPROTO_VRRP, VRRP_TTL
from pyvrrp.proto.packet import Advertisement, DropReason, InvalidPacket, decode
from pyvrrp.proto.timing import master_down_interval_s

IPAddress = IPv4Address | IPv6Address

# pcap link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
_RAW_ALIASES = (12, 14, LINKTYPE_RAW)  # DLT_RAW differs between BSDs
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_PCAP_RECORD = {"<": struct.Struct("<IIII"), ">": struct.Struct(">IIII")}


class SniffError(Exception):
    """A capture cannot be read or opened (bad file, no permission, no such interface)."""


# ---------------------------------------------------------------- link / IP layers


@dataclass(frozen=True, slots=True)
class IpPacket:
    """The part of an IP packet the sniffer needs.  ``payload`` is cut to the IP length."""

    src: IPAddress
    dst: IPAddress
    ttl: int
    protocol: int
    payload: bytes


def ip_from_frame(frame: bytes, linktype: int) -> bytes | None:
    """Strip the link-layer header of one captured frame; None if it is not IP."""
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 12, -1
        while len(frame) >= offset + 2:
            (ethertype,) = struct.unpack_from("!H", frame, offset)
            if ethertype not in _VLAN_TPIDS:
                break
            offset += 4  # 802.1Q / 802.1ad tag
        return frame[offset + 2 :] if ethertype in (ETH_P_IP, ETH_P_IPV6) else None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 14)
        return frame[16:] if ethertype in (ETH_P_IP, ETH_P_IPV6) else None
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 0)
        return frame[20:] if ethertype in (ETH_P_IP, ETH_P_IPV6) else None
    if linktype == LINKTYPE_NULL:
        return frame[4:]
    if linktype in _RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return frame
    return None


def parse_ip(data: bytes) -> IpPacket | None:
    """Parse an IPv4 or IPv6 header; None if malformed, a fragment, or too short.

    The payload is cut to the IPv4 total length / IPv6 payload length, which
    removes link-layer padding (RX-04).  IPv6 extension headers are not
    walked: VRRP is sent with next header 112 directly (RFC 5798 §5.1.2.4).
    """
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            return None
        vihl, _tos, total, _ident, frag, ttl, proto, _ck, src, dst = _IPV4.unpack_from(data)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or total < ihl or total > len(data) or frag & 0x3FFF:
            return None  # malformed, truncated, or a fragment
        return IpPacket(IPv4Address(src), IPv4Address(dst), ttl, proto, data[ihl:total])
    if version == 6:
        if len(data) < 40:
            return None
        _vtf, plen, nh, hlim, src, dst = _IPV6.unpack_from(data)
        if 40 + plen > len(data):
            return None
        return IpPacket(IPv6Address(src), IPv6Address(dst), hlim, nh, data[40 : 40 + plen])
    return None


# ---------------------------------------------------------------- capture sources


def read_pcap(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(time_s, linktype, frame)`` for each record of a capture file.

    Classic pcap (either byte order, micro- or nanosecond) is read with the
    stdlib; anything else (pcapng) is handed to scapy.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed in finally; the generator outlives a with block)
    except OSError as exc:
        raise SniffError(f"cannot open {path}: {exc.strerror}") from None
    try:
        head = fh.read(24)
        magic = head[:4]
        formats = {
            b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
            b"\xa1\xb2\xc3\xd4": (">", 1e-6),
            b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
            b"\xa1\xb2\x3c\x4d": (">", 1e-9),
        }
        if magic in formats and len(head) == 24:
            order, unit = formats[magic]
            (linktype,) = struct.unpack_from(order + "I", head, 20)
            yield from _read_pcap_records(fh, _PCAP_RECORD[order], unit, linktype & 0x0FFFFFFF)
        elif magic == b"\x0a\x0d\x0d\x0a":
            yield from _read_with_scapy(path)
        else:
            raise SniffError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'empty'})")
    finally:
        fh.close()


def _read_pcap_records(
    fh: BinaryIO, record: struct.Struct, unit: float, linktype: int
) -> Iterator[tuple[float, int, bytes]]:
    while True:
        header = fh.read(16)
        if len(header) < 16:
            return  # end of file (a torn last record is ignored, like tcpdump -r)
        sec, frac, incl_len, _orig_len = record.unpack(header)
        frame = fh.read(incl_len)
        if len(frame) < incl_len:
            return
        yield sec + frac * unit, linktype, frame


def _read_with_scapy(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """pcapng through scapy's raw reader (frames as bytes, no dissection); scapy is imported only here."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(str(path))
    except Scapy_Exception as exc:
        raise SniffError(f"{path}: {exc}") from None
    with reader:
        for frame, meta in reader:
            info: Any = meta  # PacketMetadataNg (the stdlib reads classic pcap)
            # Simple Packet Blocks carry no timestamp (tshigh None).
            time_s = 0.0 if info.tshigh is None else ((info.tshigh << 32) + info.tslow) / info.tsresol
            yield time_s, int(info.linktype), frame


# Classic BPF programs: accept only IP protocol 112 (PKT-01), so the live
# socket does not wake the process for unrelated traffic.  (code, jt, jf, k)
_BPF_ETHERNET = [
    (0x28, 0, 0, 12),  # ldh [12]             ethertype
    (0x15, 0, 2, ETH_P_IP),  # jeq #0x800
    (0x30, 0, 0, 23),  # ldb [23]             IPv4 protocol
    (0x15, 3, 4, IPPROTO_VRRP),  # jeq #112 -> accept / reject
    (0x15, 0, 3, ETH_P_IPV6),  # jeq #0x86dd
    (0x30, 0, 0, 20),  # ldb [20]             IPv6 next header
    (0x15, 0, 1, IPPROTO_VRRP),  # jeq #112
    (0x06, 0, 0, 0x40000),  # ret accept
    (0x06, 0, 0, 0),  # ret reject
]
_BPF_RAW_IP = [
    (0x30, 0, 0, 0),  # ldb [0]
    (0x54, 0, 0, 0xF0),  # and #0xf0             version nibble
    (0x15, 0, 2, 0x40),  # jeq #0x40
    (0x30, 0, 0, 9),  # ldb [9]              IPv4 protocol
    (0x15, 3, 4, IPPROTO_VRRP),
    (0x15, 0, 3, 0x60),  # jeq #0x60
    (0x30, 0, 0, 6),  # ldb [6]              IPv6 next header
    (0x15, 0, 1, IPPROTO_VRRP),
    (0x06, 0, 0, 0x40000),
    (0x06, 0, 0, 0),
]
_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_ALLMULTI = 2
_ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26


def _attach_bpf(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    import ctypes

    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def live_frames(iface: str, *, timeout_s: float | None = None) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(time_s, linktype, frame)`` from a live AF_PACKET socket on ``iface`` (root).

    Sees the adverts this host sends as well as the ones it receives, like
    tcpdump.  All-multicast reception is enabled for the socket's lifetime so
    224.0.0.18 / ff02::12 frames reach us without joining the group.
    Stops after ``timeout_s`` seconds (None: forever).
    """
    try:
        hatype = int(Path(f"/sys/class/net/{iface}/type").read_text())
        ifindex = socket.if_nametoindex(iface)
    except (OSError, ValueError):
        raise SniffError(f"no such interface: {iface}") from None
    ethernet = hatype in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK)
    linktype = LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    except PermissionError:
        raise SniffError("live capture needs root (CAP_NET_RAW)") from None
    with sock:
        _attach_bpf(sock, _BPF_ETHERNET if ethernet else _BPF_RAW_IP)
        sock.bind((iface, 0))
        mreq = struct.pack("iHH8s", ifindex, _PACKET_MR_ALLMULTI, 0, b"")
        sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, mreq)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            frame = sock.recv(65535)
            yield time.time(), linktype, frame


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SniffRecord:
    """One VRRP packet seen on the wire and what pyvrrp's codec made of it."""

    time_s: float
    src: IPAddress
    dst: IPAddress
    ttl: int
    result: Advertisement | InvalidPacket
    raw: bytes

    @property
    def ttl_dropped(self) -> bool:
        """A decoded advert a receiver drops anyway: multicast with TTL/Hop Limit != 255 (RX-01).

        Unicast adverts are exempt, as in keepalived's unicast mode (RX-01 note).
        """
        return isinstance(self.result, Advertisement) and self.dst.is_multicast and self.ttl != VRRP_TTL

    @property
    def valid(self) -> bool:
        return isinstance(self.result, Advertisement) and not self.ttl_dropped

    @property
    def reason(self) -> str | None:
        """The drop reason (``DropReason`` value), None for a valid advert."""
        if isinstance(self.result, InvalidPacket):
            return self.result.reason.value
        return DropReason.TTL.value if self.ttl_dropped else None

    @property
    def detail(self) -> str | None:
        if isinstance(self.result, InvalidPacket):
            return self.result.detail
        if self.ttl_dropped:
            return f"TTL/hop limit {self.ttl} != {VRRP_TTL} on a multicast advert: receivers drop it (RX-01)"
        return None

    @property
    def family(self) -> int:
        return self.src.version

    @property
    def version(self) -> int | None:
        """The version nibble, also for invalid packets (None when empty)."""
        return self.raw[0] >> 4 if self.raw else None

    @property
    def vrid(self) -> int | None:
        return self.raw[1] if len(self.raw) > 1 else None

    @property
    def priority(self) -> int | None:
        return self.raw[2] if len(self.raw) > 2 else None

    def to_json(self) -> dict[str, Any]:
        """One JSON object per packet (``pyvrrp sniff --json``)."""
        adv = self.result if isinstance(self.result, Advertisement) else None
        return {
            "type": "packet",
            "time": round(self.time_s, 9),
            "src": str(self.src),
            "dst": str(self.dst),
            "ttl": self.ttl,
            "version": self.version,
            "vrid": self.vrid,
            "priority": self.priority,
            "addresses": [str(a) for a in adv.addresses] if adv else [],
            "interval_s": adv.interval_s if adv else None,
            "interval_cs": adv.interval_cs if adv else None,
            "auth_type": adv.auth_type if adv and adv.version == 2 else None,
            "checksum_form": adv.checksum_form if adv else None,
            "valid": self.valid,
            "reason": self.reason,
            "detail": self.detail,
        }

    def format_line(self) -> str:
        """One human-readable line (``pyvrrp sniff``)."""
        head = f"{_timestamp(self.time_s)} {self.src} > {self.dst} ttl {self.ttl}"
        if isinstance(self.result, InvalidPacket):
            return (
                f"{head} INVALID v{self.version} vrid {self.vrid} prio {self.priority}: "
                f"{self.result.reason.value}: {self.result.detail}"
            )
        adv = self.result
        text = (
            f"{head} VRRPv{adv.version} vrid {adv.vrid} prio {adv.priority} "
            f"int {_interval(adv.interval_cs)} addrs {','.join(map(str, adv.addresses))}"
        )
        if adv.version == 2:
            text += {0: " auth none", 1: f" auth pass {adv.auth_data!r}"}.get(adv.auth_type, "")
        text += f" [{adv.checksum_form}]"
        return f"{text} INVALID ttl: {self.detail}" if self.ttl_dropped else text


def _timestamp(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _interval(interval_cs: int) -> str:
    return f"{interval_cs / 100:g}s"


def records(frames: Iterable[tuple[float, int, bytes]]) -> Iterator[SniffRecord]:
    """Decode every IP protocol 112 packet among ``frames`` with pyvrrp's codec."""
    for time_s, linktype, frame in frames:
        data = ip_from_frame(frame, linktype)
        if data is None:
            continue
        ip = parse_ip(data)
        if ip is None or ip.protocol != IPPROTO_VRRP:
            continue
        result = decode(ip.payload, src=ip.src, dst=ip.dst)
        yield SniffRecord(time_s, ip.src, ip.dst, ip.ttl, result, ip.payload)


# ---------------------------------------------------------------- analysis


@dataclass(slots=True)
class _Run:
    """Consecutive non-zero-priority adverts of one source (it acted as master)."""

    times: list[float]
    priority: int


@dataclass(slots=True, eq=False)  # identity hash: used as a dict key
class _Router:
    """What one source address advertised for one (family, VRID)."""

    src: IPAddress
    adverts: int = 0
    priority_zero: int = 0
    first_s: float = 0.0
    last_s: float = 0.0
    versions: Counter[int] = field(default_factory=Counter)
    priorities: Counter[int] = field(default_factory=Counter)
    intervals_cs: Counter[int] = field(default_factory=Counter)
    address_lists: Counter[tuple[str, ...]] = field(default_factory=Counter)
    ttls: Counter[int] = field(default_factory=Counter)
    auth: Counter[tuple[int, bytes]] = field(default_factory=Counter)
    checksum_forms: Counter[str] = field(default_factory=Counter)
    runs: list[_Run] = field(default_factory=list)
    run_open: bool = False
    last_priority: int = 0

    def add(self, rec: SniffRecord, adv: Advertisement) -> None:
        if not self.adverts:
            self.first_s = rec.time_s
        self.adverts += 1
        self.last_s = rec.time_s
        self.versions[adv.version] += 1
        self.priorities[adv.priority] += 1
        self.intervals_cs[adv.interval_cs] += 1
        self.address_lists[tuple(map(str, adv.addresses))] += 1
        self.ttls[rec.ttl] += 1
        self.checksum_forms[adv.checksum_form] += 1
        if adv.version == 2:
            self.auth[(adv.auth_type, adv.auth_data)] += 1
        self.last_priority = adv.priority
        if adv.priority == 0:  # the master is leaving (SM-09): its run ends here
            self.priority_zero += 1
            self.run_open = False
            return
        # A run continues unless a priority-0 advert ended it or the silence was longer
        # than the longest Master_Down_Interval any backup could use (priority 0 skew,
        # TMR-03/05): after that a backup has taken over, so this is a new mastership.
        gap_s = master_down_interval_s(adv.version, 0, adv.interval_cs)
        if self.run_open and rec.time_s - self.runs[-1].times[-1] <= gap_s:
            self.runs[-1].times.append(rec.time_s)
            self.runs[-1].priority = adv.priority
        else:
            self.runs.append(_Run([rec.time_s], adv.priority))
            self.run_open = True

    def to_json(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "adverts": self.adverts,
            "priority_zero": self.priority_zero,
            "first": round(self.first_s, 9),
            "last": round(self.last_s, 9),
            "versions": sorted(self.versions),
            "priorities": sorted(self.priorities),
            "last_priority": self.last_priority,
            "intervals_s": [cs / 100 for cs in sorted(self.intervals_cs)],
            "address_lists": [list(a) for a in self.address_lists],
            "ttls": sorted(self.ttls),
            "checksum_forms": sorted(self.checksum_forms),
        }


@dataclass(frozen=True, slots=True)
class Conflict:
    """Something in one (family, VRID) that breaks or endangers the election."""

    kind: str
    detail: str
    sources: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "sources": list(self.sources)}


class Analyzer:
    """Accumulates :class:`SniffRecord` s and reports routers and conflicts per (family, VRID)."""

    def __init__(self) -> None:
        self.packets = 0
        self.valid = 0
        self.invalid_by_reason: Counter[str] = Counter()
        self._routers: dict[tuple[int, int], dict[IPAddress, _Router]] = {}
        self._invalid: dict[tuple[int, int | None], Counter[str]] = {}

    def add(self, rec: SniffRecord) -> None:
        self.packets += 1
        if isinstance(rec.result, InvalidPacket):
            reason = rec.result.reason.value
            self.invalid_by_reason[reason] += 1
            self._invalid.setdefault((rec.family, rec.vrid), Counter())[reason] += 1
            return
        if rec.ttl_dropped:  # a receiver drops it, but the router is on the wire: keep it listed
            self.invalid_by_reason[DropReason.TTL.value] += 1
        else:
            self.valid += 1
        adv = rec.result
        group = self._routers.setdefault((rec.family, adv.vrid), {})
        router = group.get(rec.src)
        if router is None:
            router = group[rec.src] = _Router(rec.src)
        router.add(rec, adv)

    def groups(self) -> list[tuple[int, int]]:
        return sorted(self._routers)

    def routers(self, family: int, vrid: int) -> list[_Router]:
        return sorted(self._routers[(family, vrid)].values(), key=lambda r: (r.src.version, r.src))

    def conflicts(self, family: int, vrid: int) -> list[Conflict]:
        """Every conflict found in one (family, VRID)."""
        routers = self.routers(family, vrid)
        found: list[Conflict] = []
        found += _two_masters(routers)
        found += _mismatch("version-mismatch", "versions", routers, lambda r: r.versions, str)
        found += _mismatch("interval-mismatch", "intervals", routers, lambda r: r.intervals_cs, _interval)
        found += _address_conflicts(routers)
        found += _mismatch(
            "auth-mismatch", "v2 auth", routers, lambda r: r.auth, lambda a: f"type {a[0]} {a[1]!r}"
        )
        owners = [r for r in routers if 255 in r.priorities]
        if len(owners) > 1:
            found.append(
                Conflict(
                    "duplicate-owner",
                    "several routers advertise priority 255 (address owner): "
                    + ", ".join(str(r.src) for r in owners)
                    + " (RX-06, RFC 9568 EID 8298)",
                    tuple(str(r.src) for r in owners),
                )
            )
        for r in routers:
            bad = {ttl: n for ttl, n in sorted(r.ttls.items()) if ttl != VRRP_TTL}
            if bad:
                seen = ", ".join(f"{ttl} ({n} packets)" for ttl, n in bad.items())
                found.append(
                    Conflict(
                        "ttl",
                        f"{r.src} sent with TTL/hop limit {seen}, not 255: "
                        "multicast receivers drop these (RX-01, PKT-02)",
                        (str(r.src),),
                    )
                )
        invalid = self._invalid.get((family, vrid))
        if invalid:
            found.append(
                Conflict(
                    "invalid",
                    "packets dropped by the codec: "
                    + ", ".join(f"{k} {n}" for k, n in sorted(invalid.items())),
                )
            )
        return found

    def _orphans(self) -> list[tuple[tuple[int, int | None], Counter[str]]]:
        """Invalid packets of a (family, VRID) that sent no valid advert (or with no VRID byte)."""
        return sorted(
            ((key, counts) for key, counts in self._invalid.items() if key not in self._routers),
            key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1]),
        )

    def to_json(self) -> dict[str, Any]:
        groups: list[dict[str, Any]] = []
        for family, vrid in self.groups():
            groups.append(
                {
                    "family": family,
                    "vrid": vrid,
                    "routers": [r.to_json() for r in self.routers(family, vrid)],
                    "conflicts": [c.to_json() for c in self.conflicts(family, vrid)],
                }
            )
        orphans = {
            f"{fam}/{'?' if vid is None else vid}": dict(counts) for (fam, vid), counts in self._orphans()
        }
        return {
            "type": "summary",
            "packets": self.packets,
            "valid": self.valid,
            "invalid": self.packets - self.valid,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "invalid_without_valid_group": orphans,
            "groups": groups,
            "conflicts": sum(len(g["conflicts"]) for g in groups),
        }

    def format_summary(self) -> str:
        invalid = self.packets - self.valid
        lines = [f"--- {self.packets} VRRP packets, {self.valid} valid, {invalid} invalid"]
        if self.invalid_by_reason:
            lines[0] += f" ({_counts(self.invalid_by_reason)})"
        for family, vrid in self.groups():
            lines.append(f"IPv{family} VRID {vrid}:")
            for r in self.routers(family, vrid):
                lines.append(
                    f"  {r.src}  v{'/'.join(map(str, sorted(r.versions)))} "
                    f"prio {'/'.join(map(str, sorted(r.priorities)))} "
                    f"int {'/'.join(_interval(cs) for cs in sorted(r.intervals_cs))} "
                    f"ttl {'/'.join(map(str, sorted(r.ttls)))} "
                    f"adverts {r.adverts} (prio-0 {r.priority_zero}) "
                    f"addrs {' | '.join(','.join(a) for a in r.address_lists)} "
                    f"{_timestamp(r.first_s)} .. {_timestamp(r.last_s)}"
                )
            conflicts = self.conflicts(family, vrid)
            lines.extend(f"  CONFLICT {c.kind}: {c.detail}" for c in conflicts)
            if not conflicts:
                lines.append("  no conflicts")
        for (fam, vid), counts in self._orphans():
            lines.append(f"IPv{fam} VRID {'?' if vid is None else vid}: only invalid: {_counts(counts)}")
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counter.items()))


def _two_masters(routers: list[_Router]) -> list[Conflict]:
    """Split brain: two sources were masters (non-zero priority adverts) at the same time.

    Each pair of mastership runs is intersected; the pair is flagged when each
    source sent at least 2 adverts inside the intersection, so adverts crossing
    once during a normal preemption (RFC 5798 §6.4.3) are not reported.
    """
    found: list[Conflict] = []
    for i, a in enumerate(routers):
        for b in routers[i + 1 :]:
            for run_a in a.runs:
                for run_b in b.runs:
                    start = max(run_a.times[0], run_b.times[0])
                    end = min(run_a.times[-1], run_b.times[-1])
                    if start > end:
                        continue
                    n_a = _count_between(run_a.times, start, end)
                    n_b = _count_between(run_b.times, start, end)
                    if n_a >= 2 and n_b >= 2:
                        found.append(
                            Conflict(
                                "two-masters",
                                f"{a.src} (prio {run_a.priority}, {n_a} adverts) and {b.src} "
                                f"(prio {run_b.priority}, {n_b} adverts) both advertised as master "
                                f"from {_timestamp(start)} to {_timestamp(end)} ({end - start:.3f} s)",
                                (str(a.src), str(b.src)),
                            )
                        )
    return found


def _count_between(times: list[float], start: float, end: float) -> int:
    return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)


def _mismatch(
    kind: str,
    label: str,
    routers: list[_Router],
    values: Callable[[_Router], Counter[Any]],
    show: Callable[[Any], str],
) -> list[Conflict]:
    """Flag a field whose (most common) value differs between routers of one VRID."""
    per_router = {r: values(r) for r in routers if values(r)}
    distinct = {value for counter in per_router.values() for value in counter}
    if len(per_router) < 2 or len(distinct) < 2:
        return []
    parts = [f"{r.src}: {'/'.join(show(v) for v in sorted(c))}" for r, c in per_router.items()]
    return [Conflict(kind, f"{label} differ: " + "; ".join(parts), tuple(str(r.src) for r in per_router))]


def _address_conflicts(routers: list[_Router]) -> list[Conflict]:
    """RX-10 / PKT-10: routers of one VRID should send the same addresses, in the same order."""
    lists = {r: r.address_lists.most_common(1)[0][0] for r in routers if r.address_lists}
    if len(lists) < 2 or len(set(lists.values())) < 2:
        return []
    parts = "; ".join(f"{r.src}: {','.join(a)}" for r, a in lists.items())
    sources = tuple(str(r.src) for r in lists)
    if len({frozenset(a) for a in lists.values()}) == 1:
        return [Conflict("address-order", f"same addresses in a different order (PKT-10): {parts}", sources)]
    return [
        Conflict(
            "address-mismatch",
            f"address lists differ (keepalived 2.2.7 drops these, RX-10): {parts}",
            sources,
        )
    ]


# ---------------------------------------------------------------- driver


def sniff(
    frames: Iterable[tuple[float, int, bytes]],
    *,
    as_json: bool,
    emit: Any,
    count: int | None = None,
    vrid: int | None = None,
    analyzer: Analyzer | None = None,
) -> Analyzer:
    """Decode ``frames``, call ``emit(line)`` per VRRP packet, and return the analysis.

    Stops after ``count`` VRRP packets (after the ``vrid`` filter) when given.
    Pass ``analyzer`` to keep what was collected if the loop is interrupted.
    The caller prints the summary (``Analyzer.format_summary`` / ``to_json``).
    """
    analyzer = analyzer if analyzer is not None else Analyzer()
    for rec in records(frames):
        if vrid is not None and rec.vrid != vrid:
            continue
        analyzer.add(rec)
        emit(json.dumps(rec.to_json(), sort_keys=True) if as_json else rec.format_line())
        if count is not None and analyzer.packets >= count:
            break
    return analyzer
