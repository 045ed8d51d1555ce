"""Capture VRRP, ARP and ICMPv6 on the lab's bridge and turn the pcap into a timeline.

tcpdump runs in the switch namespace on br0, so it sees every host's frames without any
interface in the root namespace.  Parsing uses scapy only for the link/IP layers; the
VRRP header is read by hand (RFC 3768 §5.1, RFC 5798 §5.1) so both versions parse alike.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyvrrp.lab.topology import BRIDGE, SWITCH, Lab, LabError, wait_for

DEFAULT_FILTER = "ip proto 112 or ip6 proto 112 or arp or icmp6"


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One frame of interest.  ``t`` is wall-clock seconds (pcap timestamp)."""

    t: float
    kind: str  # "advert", "garp", "arp_request", "arp_reply", "na" (unsolicited), "na_solicited", "ns"
    src_mac: str
    src_ip: str = ""
    dst_ip: str = ""
    version: int = 0  # advert only
    vrid: int = 0
    priority: int = 0
    interval_cs: int = 0  # v2: seconds * 100; v3: Max Advert Int
    count: int = 0
    target: str = ""  # ARP target / NA target
    addresses: tuple[str, ...] = ()
    flags: str = ""  # NA only: "R", "S", "O" set (RFC 4861 §4.4)

    def describe(self, hosts: dict[str, str] | None = None) -> str:
        """One line; ``hosts`` maps MAC -> host name."""
        who = (hosts or {}).get(self.src_mac, self.src_mac)
        if self.kind == "advert":
            return (
                f"VRRPv{self.version} advert from {self.src_ip} ({who}) vrid {self.vrid} "
                f"prio {self.priority} int {self.interval_cs}cs"
            )
        if self.kind == "garp":
            return f"gratuitous ARP for {self.target} from {who}"
        if self.kind == "na":
            return f"unsolicited NA for {self.target} from {who} (flags {self.flags or '-'})"
        return f"{self.kind} {self.src_ip}->{self.target or self.dst_ip} from {who}"


class Capture:
    """``tcpdump -i br0 -w FILE`` in the switch namespace.  ``with Capture(lab, path):``."""

    def __init__(
        self, lab: Lab, path: str | Path | None = None, bpf: str = DEFAULT_FILTER, *, iface: str = BRIDGE
    ) -> None:
        self.lab = lab
        self.iface = iface
        self.path = Path(path) if path else lab.run_dir / f"{iface}.pcap"
        self.bpf = bpf
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_path = self.path.with_suffix(".tcpdump.log")

    def _tstamp_args(self) -> list[str]:
        args = ["--time-stamp-precision", "nano"]
        probe = self.lab.exec(SWITCH, ["tcpdump", "-J", "-i", self.iface], check=False)
        if "adapter_unsynced" in probe.stdout + probe.stderr:
            args = ["-j", "adapter_unsynced", *args]
        return args

    def start(self, timeout_s: float = 5.0) -> Capture:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        err = open(self.stderr_path, "w")  # noqa: SIM115 (tcpdump owns it)
        try:
            argv = [
                "tcpdump",
                "-i",
                self.iface,
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "256",
                *self._tstamp_args(),
            ]
            argv += ["-w", str(self.path), self.bpf]
            self.proc = self.lab.popen(SWITCH, argv, stdout=subprocess.DEVNULL, stderr=err, text=True)
        finally:
            err.close()

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabError(f"tcpdump exited: {self.stderr_path.read_text()}")
            return "listening on" in self.stderr_path.read_text()

        wait_for(listening, timeout_s, 0.01, what="tcpdump listening")
        return self

    def stop(self) -> Path:
        """SIGINT tcpdump (flushes the file) and return the pcap path."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        return self.path

    def events(self) -> list[WireEvent]:
        return parse_pcap(self.path)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _vrrp_event(t: float, src_mac: str, src: str, dst: str, payload: bytes, family: int) -> WireEvent | None:
    """Read the fixed VRRP header fields (RFC 3768 §5.1 / RFC 5798 §5.1)."""
    if len(payload) < 8:
        return None
    version = payload[0] >> 4
    vrid, priority, count = payload[1], payload[2], payload[3]
    if version == 2:
        interval_cs = payload[5] * 100
        addr_off = 8
    else:
        interval_cs = int.from_bytes(payload[4:6], "big") & 0x0FFF
        addr_off = 8
    size = 4 if family == 4 else 16
    addrs: list[str] = []
    for i in range(count):
        chunk = payload[addr_off + i * size : addr_off + (i + 1) * size]
        if len(chunk) == size:
            addrs.append(str(ipaddress.ip_address(chunk)))
    return WireEvent(
        t=t,
        kind="advert",
        src_mac=src_mac,
        src_ip=src,
        dst_ip=dst,
        version=version,
        vrid=vrid,
        priority=priority,
        interval_cs=interval_cs,
        count=count,
        addresses=tuple(addrs),
    )


def parse_pcap(path: str | Path) -> list[WireEvent]:
    """Events in capture order.  A GARP is an ARP request or reply whose sender IP equals
    its target IP (RFC 5227 §3 convention; ANCHORS ARP-02); is-at replies to a specific
    asker are ``arp_reply``."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import PcapReader

    events: list[WireEvent] = []
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return events
    with contextlib.closing(PcapReader(str(path))) as reader:
        for pkt in reader:
            t = float(pkt.time)
            if Ether not in pkt:
                continue
            src_mac = str(pkt[Ether].src).lower()
            if ARP in pkt:
                arp = pkt[ARP]
                if arp.psrc == arp.pdst:
                    events.append(WireEvent(t, "garp", src_mac, arp.psrc, target=arp.pdst))
                else:
                    kind = "arp_request" if arp.op == 1 else "arp_reply"
                    events.append(WireEvent(t, kind, src_mac, arp.psrc, target=arp.pdst))
            elif IP in pkt and pkt[IP].proto == 112:
                ip = pkt[IP]
                ev = _vrrp_event(t, src_mac, ip.src, ip.dst, bytes(ip.payload), 4)
                if ev:
                    events.append(ev)
            elif IPv6 in pkt:
                ip6 = pkt[IPv6]
                if ip6.nh == 112:
                    ev = _vrrp_event(t, src_mac, ip6.src, ip6.dst, bytes(ip6.payload), 6)
                    if ev:
                        events.append(ev)
                elif ICMPv6ND_NA in pkt:
                    na = pkt[ICMPv6ND_NA]
                    flags = "".join(f for f, on in (("R", na.R), ("S", na.S), ("O", na.O)) if on)
                    kind = "na_solicited" if na.S else "na"  # RFC 4861 §4.4: S=0 -> unsolicited
                    events.append(WireEvent(t, kind, src_mac, ip6.src, ip6.dst, target=na.tgt, flags=flags))
                elif ICMPv6ND_NS in pkt:
                    events.append(WireEvent(t, "ns", src_mac, ip6.src, ip6.dst, target=pkt[ICMPv6ND_NS].tgt))
    return events


def first(events: list[WireEvent], *, after: float = float("-inf"), **match: object) -> WireEvent | None:
    """First event at or after ``after`` whose attributes equal ``match``."""
    for ev in events:
        if ev.t >= after and all(getattr(ev, k) == v for k, v in match.items()):
            return ev
    return None


def last(events: list[WireEvent], *, before: float = float("inf"), **match: object) -> WireEvent | None:
    """Last event strictly before ``before`` whose attributes equal ``match``."""
    found = None
    for ev in events:
        if ev.t < before and all(getattr(ev, k) == v for k, v in match.items()):
            found = ev
    return found


def now() -> float:
    """Wall clock, the same clock tcpdump stamps frames with."""
    return time.time()


def timeline(
    events: list[WireEvent],
    t0: float,
    hosts: dict[str, str] | None = None,
    kinds: tuple[str, ...] = ("advert", "garp", "na"),
    *,
    start: float = float("-inf"),
    end: float = float("inf"),
) -> list[str]:
    """Printable lines ``"+361.2 ms  VRRPv3 advert from ..."`` relative to ``t0`` (wall clock),
    for events of ``kinds`` between ``start`` and ``end``; ``hosts`` maps MAC -> name."""
    return [
        f"{(ev.t - t0) * 1000:+10.1f} ms  {ev.describe(hosts)}"
        for ev in events
        if ev.kind in kinds and start <= ev.t <= end
    ]
