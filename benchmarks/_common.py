"""Shared helpers for the lab benchmarks: the VRRP flood, statistics and process
accounting.  Root-only (everything runs inside the namespace lab, pyvrrp/lab; the client
probe is :mod:`pyvrrp.lab.probe`).

The flooder is a stdlib-only Python program run with ``ip netns exec`` in the client
namespace; its source lives here as a string so nothing needs installing there.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The flood (issue #3 §5): malformed or hostile VRRP from the client at ``pps`` packets per
# second for ``duration`` seconds, through a raw IPPROTO_RAW socket so TTL and lengths can be
# wrong.  Shapes (RX-01..RX-09, PKT-): wrong TTL, bad checksum, version 1/4, type 2, short,
# count > addresses, other VRIDs, random bytes, v2 interval mismatch, priority 255 with a bad
# checksum.  None is a valid advert for the lab's VRID, so no transition is legitimate.
FLOOD_SRC = r"""
import os, random, socket, struct, sys, time
src, pps, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
vrid, version = int(sys.argv[4]), int(sys.argv[5])
dst = "224.0.0.18"
vip = socket.inet_aton("192.168.233.200")
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
def pseudo(payload):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(payload))
def vrrp(ver=version, typ=1, vid=vrid, prio=100, count=1, interval=None, addrs=(vip,), good=True):
    if ver == 2:
        body = struct.pack("!BBBBBBH", (ver << 4) | typ, vid, prio, count, 0, interval or 1, 0)
        body += b"".join(addrs) + bytes(8)
        c = csum(body)
    else:
        body = struct.pack("!BBBBHH", (ver << 4) | typ, vid, prio, count, interval or 10, 0) + b"".join(addrs)
        c = csum(pseudo(body) + body)
    if not good: c ^= 0x5A5A
    return body[:6] + struct.pack("!H", c) + body[8:]
def ip(payload, ttl=255, proto=112):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), random.getrandbits(16), 0,
                      ttl, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return hdr + payload
shapes = [
    lambda: ip(vrrp(), ttl=64),                              # RX-01 TTL != 255
    lambda: ip(vrrp(good=False)),                            # RX-05 checksum
    lambda: ip(vrrp(prio=255, good=False)),                  # checksum, tempting priority
    lambda: ip(vrrp(ver=1)),                                 # PKT-03 version
    lambda: ip(vrrp(ver=4)),
    lambda: ip(vrrp(typ=2)),                                 # RX-03 type
    lambda: ip(vrrp()[:6]),                                  # RX-04 too short
    lambda: ip(vrrp(count=5)),                               # count > addresses
    lambda: ip(vrrp(vid=(vrid % 255) + 1, prio=254)),        # RX-06 another VRID (valid for it)
    lambda: ip(os.urandom(random.randint(1, 60))),           # random bytes
    # RX-08 v2 interval mismatch (v2 lab) / a version the instance does not run (v3 lab)
    lambda: ip(vrrp(ver=2, interval=7)) if version == 2 else ip(vrrp(ver=2)),
]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
pkts = [f() for f in shapes for _ in range(20)]
random.shuffle(pkts)
sent, t_start = 0, time.monotonic()
batch = max(1, int(pps / 500))  # send in small batches every 2 ms
while True:
    now = time.monotonic() - t_start
    if now >= duration: break
    due = int(now * pps)
    while sent < due:
        s.sendto(pkts[sent % len(pkts)], (dst, 0))
        sent += 1
    time.sleep(0.002)
print(sent)
"""


@dataclass(frozen=True, slots=True)
class Spread:
    """min / median / max of a sample (None when empty)."""

    n: int
    lo: float | None
    med: float | None
    hi: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        vals = sorted(v for v in values if v is not None)
        if not vals:
            return cls(0, None, None, None)
        return cls(len(vals), vals[0], statistics.median(vals), vals[-1])

    def fmt(self, digits: int = 1) -> str:
        if self.n == 0:
            return "-"
        return f"{self.lo:.{digits}f} / {self.med:.{digits}f} / {self.hi:.{digits}f}"


def cpu_ticks_s(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` (and their reaped children are not counted) in seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / hz


def cpu_sched_s(pids: Sequence[int]) -> float:
    """CPU time from /proc/PID/schedstat (ns resolution; what the baseline used)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total / 1e9


def rss_kb(pids: Sequence[int]) -> int:
    """Sum of VmRSS over ``pids`` in kB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def descendants(pid: int) -> list[int]:
    """``pid`` and every live descendant (via /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
