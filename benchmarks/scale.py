"""Scale: many VRIDs on one segment, pyvrrp beside keepalived 2.2.7 in one run (issue 15 item 4).

Usage::

    python benchmarks/scale.py [--cells 0.01:200,0.1:800,1:1000] [--runs 2] [--hold 10]
                               [--failover 1:1000] [--daemons pyvrrp,keepalived] [--quick]

Each cell is ``advert interval (s) : N instances``.  A pair in a fresh namespace lab: lb1
(priority 150) is MASTER of N instances, lb2 (priority 100) their BACKUP, VRRPv3, one /32
VIP per instance.  A VRID is one byte, so instances 1..250 run on eth0 (bridge br0) and
every further 250 on one more link of the pair (eth1 on br1, eth2 on br2, ...).
Once both have settled, the br0 capture records ``--hold`` seconds
of steady state, then (failover cells) lb1 is killed with SIGKILL (keepalived: its VRRP
child and parent) and lb2 takes every VRID over.

Order: for each cell the daemons alternate ABBA (run 0: A B, run 1: B A, ...), so a load
change on this shared machine hits both alike; the 1-minute load average is recorded
with every row.  keepalived runs as the lab starts it (``pyvrrp.lab.keepalived``): ``-n -l
-G -D -P``, console log to a file, never syslog (a missing /dev/log made it 10x slower).

Columns (per daemon and run):

* ``false``: state changes of lb2 (and of lb1) during the hold, while lb1 advertises: a
  correct pair has 0;
* ``rate``: adverts lb1 put on the wire / the N x hold / interval it should have;
* ``gap``: the worst interval between two adverts of one VRID from lb1 (ms);
* ``cpu1``/``cpu2``: CPU of lb1 / lb2 in % of one core; ``us/adv``: lb2's CPU per advert
  received (µs); ``rss2``: lb2's resident memory (MB);
* failover cells: ``all VIPs``: the last VRID's first GARP from lb2 after the kill (s) and
  ``late``: per-VRID lateness of that GARP over Master_Down_Interval after lb1's last
  advert of the VRID (median / max, ms).

The capture is read back with ``tcpdump -r`` (text), fast for a few hundred thousand frames.
``--quick`` runs one small cell (0.1 s, N = 20, 3 s hold, one run each): the smoke run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._common import cpu_ticks_s, descendants, rss_kb  # noqa: E402
from benchmarks.failover import make_node  # noqa: E402
from pyvrrp.lab.capture import Capture  # noqa: E402
from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_available  # noqa: E402
from pyvrrp.lab.topology import (  # noqa: E402
    BRIDGE,
    LAB_IFNAME,
    SWITCH,
    DaemonNode,
    InstanceSpec,
    Lab,
    PyvrrpNode,
    wait_for,
)
from pyvrrp.proto.timing import master_down_interval_s  # noqa: E402

PRIO_HIGH, PRIO_LOW = 150, 100
BPF = "ip proto 112 or arp"
PER_LINK = 250
"""Instances per link: VRIDs 1..250 on eth0, then on eth1, ..."""
_ADVERT = re.compile(r"^(\d+\.\d+) IP (\S+) > 224\.0\.0\.18: VRRPv3, Advertisement, vrid (\d+), prio (\d+)")
_GARP = re.compile(
    r"^(\d+\.\d+) ARP, (?:Request who-has|Reply) (198\.18\.\d+\.\d+) (?:\(\S+\) )?(?:tell|is-at) "
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def vip(v: int) -> str:
    return f"198.18.{v // 250}.{v % 250 + 1}"


def link_of(v: int) -> tuple[int, int]:
    """Instance ``v`` (1..N) -> (link index, VRID on that link)."""
    return (v - 1) // PER_LINK, (v - 1) % PER_LINK + 1


def ifname(link: int) -> str:
    return LAB_IFNAME if link == 0 else f"eth{link}"


def n_links(n: int) -> int:
    return (n - 1) // PER_LINK + 1


def link_ip(lab: Lab, host: str, link: int) -> str:
    return lab.ip(host) if link == 0 else f"10.250.{link}.{1 if host == 'lb1' else 2}"


def add_links(lab: Lab, n: int) -> None:
    """The links instances beyond the first 250 run on: bridge brK in the switch, ethK in lb1 and lb2."""
    for link in range(1, n_links(n)):
        br = f"br{link}"
        lab.ip_cmd(SWITCH, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        lab.ip_cmd(SWITCH, "link", "set", br, "up")
        for host in ("lb1", "lb2"):
            port, dev = f"k{link}-{host}", ifname(link)
            peer = ("peer", "name", dev, "netns", lab.ns(host))
            lab.ip_cmd(SWITCH, "link", "add", port, "type", "veth", *peer)
            lab.ip_cmd(SWITCH, "link", "set", port, "master", br, "up")
            lab.ip_cmd(host, "addr", "add", f"{link_ip(lab, host, link)}/24", "dev", dev)
            lab.ip_cmd(host, "link", "set", dev, "up")


def specs(n: int, interval_s: float, priority: int) -> list[InstanceSpec]:
    out = []
    for v in range(1, n + 1):
        link, vrid = link_of(v)
        out.append(
            InstanceSpec(
                priority=priority,
                name=f"VI_{v}",
                vrid=vrid,
                interface=ifname(link),
                version=3,
                advert_int_s=interval_s,
                vips=(f"{vip(v)}/32",),
            )
        )
    return out


def states(node: DaemonNode) -> list[str]:
    if isinstance(node, PyvrrpNode):
        data = node.state_json(timeout_s=20.0) or {}
        return [str(i.get("state")) for i in data.get("instances", [])]
    assert isinstance(node, KeepalivedNode)
    return list(node.states().values()) if node.alive() else []


def all_in(node: DaemonNode, n: int, state: str) -> bool:
    got = states(node)
    return len(got) == n and all(s == state for s in got)


def transitions(node: DaemonNode) -> int:
    if isinstance(node, PyvrrpNode):
        data = node.state_json(timeout_s=20.0) or {}
        return sum(int(i.get("counters", {}).get("transitions", 0)) for i in data.get("instances", []))
    assert isinstance(node, KeepalivedNode)
    return node.log_text()[getattr(node, "_log_offset", 0) :].count(" STATE")


def pids(node: DaemonNode) -> list[int]:
    return descendants(node.proc.pid) if node.proc is not None and node.proc.poll() is None else []


@dataclass
class Row:
    daemon: str
    interval_s: float
    n: int
    run: int
    load1: float
    false1: int = 0
    false2: int = 0
    rate: float = 0.0
    gap_ms: float = 0.0
    cpu1: float = 0.0
    cpu2: float = 0.0
    us_per_advert: float = 0.0
    rss2_mb: float = 0.0
    adverts: int = 0
    all_vips_s: float | None = None
    late_ms: list[float] = field(default_factory=list)
    missing: int = 0
    receive: dict[str, object] = field(default_factory=dict)


Wire = tuple[dict[int, list[float]], dict[int, float], dict[str, list[float]]]


def wire(pcaps: list[Path], lb1_ips: dict[str, int], lb2_ips: dict[str, int]) -> Wire:
    """(lb1's advert times per instance, lb2's first advert per instance, GARP times per VIP).

    ``lb1_ips``/``lb2_ips``: source address -> link index (instance = link x 250 + VRID).
    """
    out = ""
    for p in pcaps:
        argv = ["tcpdump", "-nn", "-tt", "-r", str(p)]
        out += subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    lb1: dict[int, list[float]] = defaultdict(list)
    lb2: dict[int, float] = {}
    garp: dict[str, list[float]] = defaultdict(list)
    for line in out.splitlines():
        m = _ADVERT.match(line)
        if m:
            t, src, vrid = float(m[1]), m[2], int(m[3])
            if src in lb1_ips:
                lb1[lb1_ips[src] * PER_LINK + vrid].append(t)
            elif src in lb2_ips:
                v = lb2_ips[src] * PER_LINK + vrid
                lb2[v] = min(t, lb2.get(v, t))
            continue
        g = _GARP.match(line)
        if g:
            garp[g[2]].append(float(g[1]))
    return lb1, lb2, garp


def measure(daemon: str, interval_s: float, n: int, run: int, hold_s: float, failover: bool) -> Row:
    row = Row(daemon, interval_s, n, run, load1=os.getloadavg()[0])
    start_s = 30.0 + n * 0.05
    with Lab(real_servers=False) as lab:
        add_links(lab, n)
        lb1 = make_node(daemon, lab, "lb1", specs(n, interval_s, PRIO_HIGH))
        lb1.start()
        wait_for(lambda: all_in(lb1, n, "MASTER"), start_s, 0.5, what=f"lb1 {daemon} MASTER x{n}")
        lb2 = make_node(daemon, lab, "lb2", specs(n, interval_s, PRIO_LOW))
        lb2.start()
        wait_for(lambda: all_in(lb2, n, "BACKUP"), start_s, 0.5, what=f"lb2 {daemon} BACKUP x{n}")
        time.sleep(max(2.0, 4 * interval_s))
        caps = [
            Capture(lab, lab.run_dir / f"scale-{br}.pcap", bpf=BPF, iface=br).start()
            for br in (BRIDGE, *(f"br{k}" for k in range(1, n_links(n))))
        ]
        t1, t2 = transitions(lb1), transitions(lb2)
        p1, p2 = pids(lb1), pids(lb2)
        c1, c2, w0 = cpu_ticks_s(p1), cpu_ticks_s(p2), time.time()
        time.sleep(hold_s)
        c1, c2, w1 = cpu_ticks_s(p1) - c1, cpu_ticks_s(p2) - c2, time.time()
        row.rss2_mb = rss_kb(p2) / 1024
        row.false1, row.false2 = transitions(lb1) - t1, transitions(lb2) - t2
        if isinstance(lb2, PyvrrpNode):
            data = lb2.state_json(timeout_s=20.0) or {}
            row.receive = dict((data.get("instances") or [{}])[0].get("receive") or {})
        kill_at = None
        if failover:
            kill_at = time.time()
            lb1.kill9()
            try:
                wait_for(lambda: all_in(lb2, n, "MASTER"), 30.0, 0.2, what=f"lb2 {daemon} MASTER x{n}")
            except Exception as exc:  # report, do not abort the run
                log(f"failover incomplete: {exc}")
            time.sleep(0.5)
        pcaps = [cap.stop() for cap in caps]
        links = range(n_links(n))
        lb1_times, _lb2_first, garp = wire(
            pcaps, {link_ip(lab, "lb1", k): k for k in links}, {link_ip(lab, "lb2", k): k for k in links}
        )
        window = [t for ts in lb1_times.values() for t in ts if w0 <= t <= w1]
        row.adverts = len(window)
        span = w1 - w0
        row.rate = len(window) / (n * span / interval_s) if span > 0 else 0.0
        gaps = []
        for ts in lb1_times.values():
            inside = [t for t in ts if w0 <= t <= w1]
            gaps += [b - a for a, b in itertools.pairwise(inside)]
        row.gap_ms = 1000 * max(gaps, default=0.0)
        row.cpu1, row.cpu2 = 100 * c1 / span, 100 * c2 / span
        row.us_per_advert = 1e6 * c2 / len(window) if window else 0.0
        if kill_at is not None:
            down = master_down_interval_s(3, PRIO_LOW, round(interval_s * 100))
            ends = []
            for v in range(1, n + 1):
                last = max((t for t in lb1_times.get(v, []) if t <= kill_at + 0.05), default=None)
                got = min((t for t in garp.get(vip(v), []) if t > kill_at), default=None)
                if last is None or got is None:
                    row.missing += 1
                    continue
                row.late_ms.append(1000 * (got - last - down))
                ends.append(got)
            row.all_vips_s = max(ends) - kill_at if ends else None
        lb2.stop()
        lb1.stop()
    return row


def fmt(row: Row) -> str:
    late = "-"
    if row.late_ms:
        late = f"{statistics.median(row.late_ms):.0f} / {max(row.late_ms):.0f}"
    vips = "-" if row.all_vips_s is None else f"{row.all_vips_s:.2f}"
    miss = f" ({row.missing} missing)" if row.missing else ""
    return (
        f"| {row.interval_s:g} s | {row.n} | {row.daemon} | {row.run} | {row.load1:.2f} | "
        f"{row.false2} / {row.false1} | {row.rate:.3f} | {row.gap_ms:.0f} | "
        f"{row.cpu1:.0f} / {row.cpu2:.0f} | {row.us_per_advert:.1f} | {row.rss2_mb:.0f} | "
        f"{vips}{miss} | {late} |"
    )


HEADER = (
    "| interval | N | daemon | run | load1 | false lb2 / lb1 | rate | gap ms | CPU % lb1 / lb2 | "
    "lb2 µs/advert | RSS lb2 MB | all VIPs s | late ms med / max |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def parse_cells(text: str) -> list[tuple[float, int]]:
    out = []
    for part in filter(None, text.split(",")):
        interval, n = part.split(":")
        out.append((float(interval), int(n)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cells", default="0.01:200,0.1:800,1:1000", help="interval_s:N,...")
    ap.add_argument("--failover", default="1:1000", help="cells that end with kill -9 of lb1")
    ap.add_argument("--runs", type=int, default=2, help="runs per daemon and cell (ABBA order)")
    ap.add_argument("--hold", type=float, default=10.0, help="steady-state seconds measured")
    ap.add_argument("--daemons", default="pyvrrp,keepalived")
    ap.add_argument("--quick", action="store_true", help="one small cell, one run (smoke)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/scale.py needs root (network namespaces)", file=sys.stderr)
        return 2
    cells = parse_cells(args.cells)
    failover = set(parse_cells(args.failover))
    runs, hold = args.runs, args.hold
    if args.quick:
        cells, failover, runs, hold = [(0.1, 20)], {(0.1, 20)}, 1, 3.0
    daemons = [d for d in args.daemons.split(",") if d]
    if "keepalived" in daemons and not keepalived_available():
        log("keepalived not installed: pyvrrp alone")
        daemons.remove("keepalived")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rows: list[Row] = []
    print(HEADER, flush=True)
    for interval, n in cells:
        for run in range(runs):
            order = daemons if run % 2 == 0 else list(reversed(daemons))
            for daemon in order:
                log(f"{daemon} interval {interval:g} s N {n} run {run}")
                try:
                    row = measure(daemon, interval, n, run, hold, (interval, n) in failover)
                except Exception as exc:  # one broken cell must not lose the others
                    log(f"{daemon} {interval:g}:{n} run {run} failed: {exc}")
                    continue
                rows.append(row)
                print(fmt(row), flush=True)
                if row.receive:
                    log(f"  lb2 receive: {row.receive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
