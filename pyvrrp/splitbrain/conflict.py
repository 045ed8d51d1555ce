"""Dual-master detection on the data plane, deterministic resolution, VRID collisions.

Theory (issue #4 §4): two VRRP masters for one VIP both answer ARP for it, so
clients and switches flip between two MACs.  VRRP itself cannot see this when
the adverts between the nodes are lost (S1, S5, S6), but the data plane can:
while MASTER, every ``interval`` we broadcast an ARP *probe* for each held IPv4
VIP, in the RFC 5227 §2.1.1 form (sender IP 0.0.0.0, target IP = VIP) so no
host updates its cache from it.  Whoever else holds the VIP answers (Linux
replies to probes for a local address, unicast to our MAC); we also watch every
ARP frame on the interface (AF_PACKET, ETH_P_ARP): a reply or announcement
(gratuitous ARP, any frame with sender IP = VIP) from a MAC that isn't ours is
a *dual-master conflict* for that VIP (RFC 5227 §2.4 "ongoing address conflict
detection").  Probes from others (sender IP 0.0.0.0) are **not** conflicts: a
BACKUP checks the VIP with :func:`probe_vip_once` before taking over, and that
must not look like a second master.  A conflict clears after
``quiet_intervals`` probe intervals without a conflicting frame.

Resolution without talking (issue #4 §4): :func:`should_yield` is a total
order on MAC addresses, so both nodes, each applying it to (ours, theirs),
reach opposite answers: exactly one yields.  The survivor re-announces (GARP
burst) so switches and clients converge on its MAC.  Adverts are not needed
for this, which is the point: they are the thing that is broken.

Limitation: with a virtual MAC (``use_vmac``) both masters answer with the
same VMAC (RFC 5798 §7.3), so a MAC-based detector cannot tell them apart;
pyvrrp's default (physical MAC, like keepalived) is detectable.

:class:`ConflictTracker` and the helpers are pure; :class:`ConflictMonitor`
and :func:`probe_vip_once` are the AF_PACKET I/O (CAP_NET_RAW).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Any

import structlog

from pyvrrp.adapters.arp import (
    ETH_P_ARP,
    ArpPacket,
    build_arp_probe,
    mac_to_bytes,
    mac_to_str,
    parse_arp,
)
from pyvrrp.base.clock import Clock, MonotonicClock, to_wall_time

__all__ = [
    "ConflictMonitor",
    "ConflictRecord",
    "ConflictTracker",
    "VridCollision",
    "VridCollisionLog",
    "flag_vrid_collision",
    "probe_vip_once",
    "should_yield",
]

_log = structlog.get_logger("pyvrrp.splitbrain.conflict")

_PACKET_OUTGOING = 4
_ZERO_IP = IPv4Address(0)

VipLike = IPv4Address | IPv4Interface | IPv6Address | IPv6Interface | str


# ---------------------------------------------------------------- resolution


def _mac_int(mac: str | bytes) -> int:
    return int.from_bytes(mac_to_bytes(mac), "big")


def should_yield(our_mac: str | bytes, peer_mac: str | bytes) -> bool:
    """Dual-master tie-break: the node with the numerically lower MAC yields.

    Both nodes evaluate it independently with (ours, theirs) swapped, so for
    any two distinct MACs exactly one of them yields.  (Lower yields so the
    rule matches VRRP's "higher address wins" tie-break, RFC 5798 §6.4.3.)

    Raises:
        ValueError: the MACs are equal (nothing to resolve: it is our own frame)
            or malformed.
    """
    ours, theirs = _mac_int(our_mac), _mac_int(peer_mac)
    if ours == theirs:
        raise ValueError(f"cannot resolve a conflict with our own MAC {mac_to_str(mac_to_bytes(our_mac))}")
    return ours < theirs


# ------------------------------------------------------------------ tracking


@dataclass(slots=True)
class ConflictRecord:
    """One VIP answered by another MAC (times are monotonic seconds)."""

    vip: IPv4Address
    peer_mac: str
    since: float
    last_seen: float
    frames: int = 1


def _v4_vips(vips: Iterable[VipLike]) -> set[IPv4Address]:
    out: set[IPv4Address] = set()
    for v in vips:
        if isinstance(v, IPv4Interface):
            out.add(v.ip)
        elif isinstance(v, IPv4Address):
            out.add(v)
        elif isinstance(v, str):
            addr = ip_address(v.split("/", 1)[0])
            if isinstance(addr, IPv4Address):
                out.add(addr)
    return out


class ConflictTracker:
    """Pure bookkeeping of dual-master conflicts per VIP.

    :meth:`observe` classifies one ARP frame against the VIPs we hold now;
    :meth:`expire` clears conflicts quiet for ``quiet_intervals * interval_s``.
    """

    def __init__(
        self, our_macs: Iterable[str | bytes], *, interval_s: float, quiet_intervals: int = 3
    ) -> None:
        self.our_macs = {mac_to_bytes(m) for m in our_macs}
        if not self.our_macs:
            raise ValueError("ConflictTracker needs at least one of our MACs")
        if interval_s <= 0 or quiet_intervals < 1:
            raise ValueError("interval_s must be > 0 and quiet_intervals >= 1")
        self.interval_s = interval_s
        self.quiet_intervals = quiet_intervals
        self.conflicts: dict[IPv4Address, ConflictRecord] = {}
        self.detected_total = 0

    def claims(self, pkt: ArpPacket, held: set[IPv4Address]) -> IPv4Address | None:
        """The held VIP ``pkt`` claims for another MAC, or None.

        A claim is any ARP frame (request, reply or announcement) whose sender
        IP is a held VIP and whose sender MAC (or Ethernet source) is not ours.
        Probes (sender IP 0.0.0.0) never claim anything.
        """
        if pkt.sender_ip == _ZERO_IP or pkt.sender_ip not in held:
            return None
        if pkt.sender_mac in self.our_macs and pkt.eth_src in self.our_macs:
            return None
        return pkt.sender_ip

    def observe(self, pkt: ArpPacket, held: set[IPv4Address], now: float) -> ConflictRecord | None:
        """Record ``pkt``; returns the record when a conflict starts (or its peer MAC changes)."""
        vip = self.claims(pkt, held)
        if vip is None:
            return None
        peer_raw = pkt.sender_mac if pkt.sender_mac not in self.our_macs else pkt.eth_src
        peer = mac_to_str(peer_raw)
        rec = self.conflicts.get(vip)
        if rec is not None and rec.peer_mac == peer:
            rec.last_seen = now
            rec.frames += 1
            return None
        rec = ConflictRecord(vip=vip, peer_mac=peer, since=now, last_seen=now)
        self.conflicts[vip] = rec
        self.detected_total += 1
        return rec

    def forget_unheld(self, held: set[IPv4Address]) -> list[ConflictRecord]:
        """Drop the records of VIPs we no longer hold (a conflict exists only while we hold the
        VIP), so the first claim of our next MASTER term is reported again."""
        gone = [r for r in self.conflicts.values() if r.vip not in held]
        for r in gone:
            del self.conflicts[r.vip]
        return gone

    def expire(self, now: float) -> list[ConflictRecord]:
        """Remove and return the conflicts with no claim for ``quiet_intervals`` intervals."""
        quiet_s = self.quiet_intervals * self.interval_s
        gone = [r for r in self.conflicts.values() if now - r.last_seen >= quiet_s]
        for r in gone:
            del self.conflicts[r.vip]
        return gone


# ------------------------------------------------------------------- sockets


def _open_arp_socket(ifname: str) -> tuple[socket.socket, bytes]:
    """Non-blocking AF_PACKET socket receiving every ARP frame on ``ifname``; returns (socket, our MAC)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((ifname, ETH_P_ARP))
        sock.setblocking(False)
        mac = bytes(sock.getsockname()[4])
    except OSError:
        sock.close()
        raise
    return sock, mac


def _drain(sock: socket.socket) -> list[ArpPacket]:
    """Read every queued frame (inbound only) and parse the ARP ones."""
    out: list[ArpPacket] = []
    while True:
        try:
            frame, addr = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError as exc:
            _log.debug("arp_recv_error", error=str(exc))
            return out
        if addr[2] == _PACKET_OUTGOING:
            continue
        pkt = parse_arp(frame)
        if pkt is not None:
            out.append(pkt)


async def probe_vip_once(
    ifname: str,
    vip: VipLike,
    timeout_s: float | None = None,
    *,
    timeout: float | None = None,
    our_macs: Iterable[str | bytes] = (),
    count: int = 2,
) -> str | None:
    """Ask "does anyone else hold ``vip``?" once: the other MAC, or None after ``timeout_s``.

    Used before a BACKUP takes over on master-down (issue #4 §4): if another
    MAC still answers for the VIP, the master's host is alive and only the VRRP
    path is broken, so the takeover is deferred instead of creating a dual
    master.  ``count`` RFC 5227 probes are spread over the timeout (loss
    tolerance); a gratuitous ARP from the holder seen meanwhile counts too.

    ``timeout`` is accepted as an alias of ``timeout_s``.

    Raises:
        OSError: the packet socket cannot be opened on ``ifname``.
        ValueError: no timeout given, or ``vip`` is not IPv4.
    """
    if timeout_s is None:
        timeout_s = timeout
    if timeout_s is None or timeout_s <= 0:
        raise ValueError(f"probe_vip_once needs a positive timeout, got {timeout_s!r}")
    v4 = _v4_vips([vip])
    if not v4:
        raise ValueError(f"probe_vip_once needs an IPv4 VIP, got {vip}")
    target = v4.pop()
    n = max(count, 1)
    sock, mac = _open_arp_socket(ifname)
    ours = {mac, *(mac_to_bytes(m) for m in our_macs)}
    loop = asyncio.get_running_loop()
    found: asyncio.Future[str] = loop.create_future()

    def on_readable() -> None:
        for pkt in _drain(sock):
            if pkt.sender_ip == target and pkt.sender_mac not in ours and not found.done():
                found.set_result(mac_to_str(pkt.sender_mac))

    loop.add_reader(sock.fileno(), on_readable)
    try:
        frame = build_arp_probe(mac, target)
        start = loop.time()
        deadline = start + timeout_s
        for i in range(n):
            try:
                sock.send(frame)
            except OSError as exc:
                _log.debug("vip_probe_send_failed", iface=ifname, vip=str(target), error=str(exc))
            end = deadline if i == n - 1 else min(deadline, start + (i + 1) * timeout_s / n)
            remaining = end - loop.time()
            if remaining > 0:
                try:
                    return await asyncio.wait_for(asyncio.shield(found), remaining)
                except TimeoutError:
                    continue
        return found.result() if found.done() else None
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
        if not found.done():
            found.cancel()


class ConflictMonitor:
    """While we hold VIPs: probe each every ``interval_s`` and report other MACs claiming them.

    Args:
        ifname: the VRRP interface (where the VIPs live).
        our_mac: our MAC(s) (str, bytes, or several); None = the interface MAC.
            Frames from any of these are ours.
        vips_fn: returns the VIPs held *now* (empty when not MASTER: no probes
            are sent and no frame can conflict).
        interval_s: probe interval (``conflict_detection.interval``).
        on_conflict: ``(vip, peer_mac)`` when a conflict starts (or the peer MAC changes).
        on_clear: ``(vip)`` after ``quiet_intervals`` intervals without a claim.

    Callback exceptions are logged and never stop the monitor.
    """

    def __init__(
        self,
        ifname: str,
        our_mac: str | bytes | Iterable[str | bytes] | None,
        vips_fn: Callable[[], Iterable[VipLike]],
        interval_s: float,
        on_conflict: Callable[[IPv4Address, str], None] | None = None,
        on_clear: Callable[[IPv4Address], None] | None = None,
        *,
        quiet_intervals: int = 3,
        clock: Clock | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"conflict_detection.interval must be > 0, got {interval_s}")
        self.ifname = ifname
        if our_mac is None:
            self._our_macs: list[bytes] = []
        elif isinstance(our_mac, str | bytes):
            self._our_macs = [mac_to_bytes(our_mac)]
        else:
            self._our_macs = [mac_to_bytes(m) for m in our_mac]
        self.vips_fn = vips_fn
        self.interval_s = interval_s
        self.on_conflict = on_conflict
        self.on_clear = on_clear
        self.quiet_intervals = quiet_intervals
        self.clock: Clock = clock or MonotonicClock()
        self.tracker: ConflictTracker | None = None
        if self._our_macs:
            self.tracker = ConflictTracker(
                self._our_macs, interval_s=interval_s, quiet_intervals=quiet_intervals
            )
        self.probes_sent = 0
        self._sock: socket.socket | None = None
        self._mac = b""
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Open the packet socket and start probing (idempotent).

        Raises:
            OSError: the socket cannot be opened on the interface.
        """
        if self.running:
            return
        sock, mac = _open_arp_socket(self.ifname)
        self._sock, self._mac = sock, mac
        if not self._our_macs:
            self._our_macs = [mac]
        if self.tracker is None:
            self.tracker = ConflictTracker(
                {mac, *self._our_macs}, interval_s=self.interval_s, quiet_intervals=self.quiet_intervals
            )
        else:
            self.tracker.our_macs.add(mac)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._task = asyncio.create_task(self._run(), name=f"conflict-detection:{self.ifname}")

    async def stop(self) -> None:
        """Stop probing and close the socket (current conflicts are kept for ``snapshot``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def held_vips(self) -> set[IPv4Address]:
        try:
            return _v4_vips(self.vips_fn())
        except Exception as exc:  # a buggy callback must not kill the monitor; it is logged
            _log.error("conflict_vips_fn_failed", error=repr(exc))
            return set()

    def _on_readable(self) -> None:
        assert self._sock is not None
        pkts = _drain(self._sock)
        if pkts:
            self.feed(pkts, self.clock.now())

    def feed(self, pkts: Iterable[ArpPacket], now: float) -> None:
        """Classify frames (the socket reader calls this; tests may too)."""
        assert self.tracker is not None
        held = self.held_vips()
        self.tracker.forget_unheld(held)
        if not held:
            return
        for pkt in pkts:
            rec = self.tracker.observe(pkt, held, now)
            if rec is None:
                continue
            _log.warning(
                "dual_master_conflict",
                iface=self.ifname,
                vip=str(rec.vip),
                peer_mac=rec.peer_mac,
                our_mac=mac_to_str(self._mac) if self._mac else None,
            )
            if self.on_conflict is not None:
                try:
                    self.on_conflict(rec.vip, rec.peer_mac)
                except Exception as exc:  # logged, monitor keeps running
                    _log.error("conflict_callback_failed", error=repr(exc))

    def tick(self, now: float) -> None:
        """Send one probe per held VIP and clear quiet conflicts."""
        assert self.tracker is not None
        held = self.held_vips()
        self.tracker.forget_unheld(held)
        if self._sock is not None and self._mac:
            for vip in sorted(held):
                try:
                    self._sock.send(build_arp_probe(self._mac, vip))
                    self.probes_sent += 1
                except OSError as exc:
                    _log.debug("conflict_probe_send_failed", iface=self.ifname, vip=str(vip), error=str(exc))
        for rec in self.tracker.expire(now):
            _log.warning(
                "dual_master_conflict_cleared", iface=self.ifname, vip=str(rec.vip), peer_mac=rec.peer_mac
            )
            if self.on_clear is not None:
                try:
                    self.on_clear(rec.vip)
                except Exception as exc:  # logged, monitor keeps running
                    _log.error("conflict_clear_callback_failed", error=repr(exc))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.tick(self.clock.now())
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    @property
    def conflicts(self) -> dict[IPv4Address, ConflictRecord]:
        return {} if self.tracker is None else dict(self.tracker.conflicts)

    def snapshot(self) -> dict[str, Any] | None:
        """``conflict`` of ``pyvrrp state --json``: None, or the other MAC and since when (wall clock)."""
        if self.tracker is None or not self.tracker.conflicts:
            return None
        recs = sorted(self.tracker.conflicts.values(), key=lambda r: r.since)
        first = recs[0]
        return {
            "peer_mac": first.peer_mac,
            "since": round(to_wall_time(first.since, clock=self.clock), 3),
            "vips": [str(r.vip) for r in recs],
            "peers": sorted({r.peer_mac for r in recs}),
            "detected_total": self.tracker.detected_total,
        }


# ------------------------------------------------------------ VRID collisions


@dataclass(frozen=True, slots=True)
class VridCollision:
    """An advert for our VRID that is not from our configured pair (issue #4 §4).

    ``reason``: ``"unknown_router"`` (unicast peers are configured and ``src``
    is not one of them) or ``"address_list"`` (its VIP list differs from ours:
    another virtual router uses our VRID, or a config rollout is half done,
    ANCHORS §3.2 RX-10).
    """

    vrid: int
    src: str
    reason: str
    their_addresses: tuple[str, ...]
    our_addresses: tuple[str, ...]


def flag_vrid_collision(
    *,
    vrid: int,
    src: IPv4Address | IPv6Address | str,
    addresses: Iterable[VipLike],
    our_addresses: Iterable[VipLike],
    unicast_peers: Iterable[IPv4Address | IPv6Address | str] = (),
) -> VridCollision | None:
    """Classify an advert for our VRID; None when it looks like our own pair's peer.

    The address lists are compared as sets of addresses (order and prefix
    lengths do not matter: the advert carries no prefix, RFC 5798 §5.2.9).
    """

    def norm(items: Iterable[VipLike]) -> tuple[str, ...]:
        out = set()
        for a in items:
            if isinstance(a, IPv4Interface | IPv6Interface):
                out.add(str(a.ip))
            else:
                out.add(str(ip_address(str(a).split("/", 1)[0])))
        return tuple(sorted(out))

    theirs, ours = norm(addresses), norm(our_addresses)
    src_s = str(ip_address(str(src)))
    peers = {str(ip_address(str(p))) for p in unicast_peers}
    if peers and src_s not in peers:
        return VridCollision(vrid, src_s, "unknown_router", theirs, ours)
    if theirs != ours:
        return VridCollision(vrid, src_s, "address_list", theirs, ours)
    return None


@dataclass(slots=True)
class _CollisionEntry:
    record: VridCollision
    first_seen: float
    last_seen: float
    count: int = 1


class VridCollisionLog:
    """Deduplicated collision flags: log once per (src, reason, addresses), count the rest."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str, str, tuple[str, ...]], _CollisionEntry] = {}

    def record(self, collision: VridCollision, now: float) -> bool:
        """Count ``collision``; True when it is new (the caller logs it then)."""
        key = (collision.vrid, collision.src, collision.reason, collision.their_addresses)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _CollisionEntry(collision, now, now)
            return True
        entry.last_seen = now
        entry.count += 1
        return False

    def snapshot(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Flags for ``pyvrrp state`` (``age_s`` since last seen when ``now`` is given)."""
        out = []
        for e in self._entries.values():
            item: dict[str, Any] = {
                "vrid": e.record.vrid,
                "src": e.record.src,
                "reason": e.record.reason,
                "their_addresses": list(e.record.their_addresses),
                "count": e.count,
            }
            if now is not None:
                item["age_s"] = round(now - e.last_seen, 3)
            out.append(item)
        return out
