#!/usr/bin/env python3
"""Where the client's recovery time goes after a failover, split on the wire (root only).

benchmarks/failover.py's row (c), "backup's 1st advert -> 1st GET answered by it", comes from
a client probe with one GET every 5 ms and a 10 ms connect timeout, so its medians move by
several ms between runs. This script captures the client's TCP too and splits (c) into

  G-A  lb2's first GARP after its first advert                     (the daemon)
  S-G  the client's next SYN towards lb2's MAC after that GARP     (the probe's phase)
  K-S  lb2's SYN-ACK                                               (lb2's kernel)
  D-K  lb2's first HTTP data after the SYN-ACK                     (lb2's HTTP responder, CPU)
  D-A  the whole path, comparable to (c)

for ``--runs`` trials of ``--event`` (kill9 or linkdown on lb1) per daemon, with the same lab,
pair and probe as failover.py. Figures are printed (median and range), never asserted.

    sudo .venv/bin/python benchmarks/client_path.py                      # link down, v3 100 ms, 12 runs
    sudo .venv/bin/python benchmarks/client_path.py --config v3-10ms --event kill9 --runs 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.failover import (  # noqa: E402
    CONFIGS,
    DAEMONS,
    restore,
    start_pair,
    start_probe,
)
from pyvrrp.lab.capture import Capture  # noqa: E402
from pyvrrp.lab.keepalived import keepalived_available  # noqa: E402
from pyvrrp.lab.topology import Lab, wait_for  # noqa: E402

PARTS = ("G-A", "S-G", "K-S", "D-K", "D-A")


def split_trials(pcap: Path, marks: list[float], mac_lb2: str, mac_client: str) -> list[dict[str, float]]:
    """Per event time in ``marks``: the five intervals (ms) read from the capture."""
    from scapy.all import ARP, IP, TCP, Ether, PcapReader  # diagnostics only (not the daemon)

    pkts = [(float(p.time), p) for p in PcapReader(str(pcap)) if p.haslayer(Ether)]

    def first(after: float, match: object) -> float:
        for t, p in pkts:
            if t > after and match(p):  # type: ignore[operator]
                return t
        raise LookupError("not in the capture")

    def src(p: object, mac: str) -> bool:
        return p[Ether].src.lower() == mac  # type: ignore[index,no-any-return]

    out = []
    for t0 in marks:
        try:
            a = first(t0, lambda p: p.haslayer(IP) and p[IP].proto == 112 and src(p, mac_lb2))
            g = first(a - 1e-9, lambda p: p.haslayer(ARP) and src(p, mac_lb2))
            s = first(
                g,
                lambda p: (
                    p.haslayer(TCP)
                    and src(p, mac_client)
                    and p[Ether].dst.lower() == mac_lb2
                    and p[TCP].flags & 0x02
                ),
            )
            k = first(s, lambda p: p.haslayer(TCP) and src(p, mac_lb2) and p[TCP].flags & 0x12 == 0x12)
            d = first(k, lambda p: p.haslayer(TCP) and src(p, mac_lb2) and len(p[TCP].payload) > 0)
        except LookupError:
            continue
        ms = [(g - a), (s - g), (k - s), (d - k), (d - a)]
        out.append(dict(zip(PARTS, (x * 1000 for x in ms), strict=True)))
    return out


def run(daemon: str, config: str, event: str, runs: int) -> list[dict[str, float]]:
    version, adv_s = CONFIGS[config]
    with Lab(real_servers=False) as lab:
        readies = [lab.start_http_responder(h, h) for h in ("lb1", "lb2")]
        for ready in readies:
            wait_for(ready.exists, 10.0, 0.01, what=ready.name)
        cap = Capture(lab, lab.run_dir / "client_path.pcap", bpf="ip proto 112 or arp or tcp port 80").start()
        pair = start_pair(daemon, lab, version, adv_s)
        probe = start_probe(lab, version, lab.run_dir / "probe.jsonl")
        marks: list[float] = []
        try:
            for _ in range(runs):
                pair.wait_steady(adv_s * 4 + 10.0)
                time.sleep(0.2 + random.uniform(0.0, adv_s))
                marks.append(time.time())
                if event == "kill9":
                    pair.lb1.kill9()
                else:
                    lab.link_set("lb1", "eth0", False)
                pair.lb2.wait_state("MASTER", adv_s * 4 + 5.0)
                wait_for(lambda: lab.client_arp_mac() == lab.mac("lb2"), 5.0, 0.01, what="client ARP -> lb2")
                time.sleep(0.1)
                restore(pair, event)
            pair.wait_steady(adv_s * 4 + 10.0)
        finally:
            probe.terminate()
            probe.wait(timeout=5.0)
            for node in (pair.lb1, pair.lb2):
                node.stop(timeout_s=5.0)
            cap.stop()
        return split_trials(cap.path, marks, lab.mac("lb2").lower(), lab.mac("client").lower())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="v3-100ms")
    ap.add_argument("--event", choices=("linkdown", "kill9"), default="linkdown")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--daemons", default=",".join(DAEMONS))
    args = ap.parse_args(argv)
    daemons = [d for d in args.daemons.split(",") if d]
    if "keepalived" in daemons and not keepalived_available():
        print("keepalived is not installed: pyvrrp only", file=sys.stderr)
        daemons = [d for d in daemons if d != "keepalived"]
    print(f"{args.event} on lb1, {args.config}, {args.runs} runs per daemon; ms as min / median / max")
    print("| daemon | trials | " + " | ".join(PARTS) + " |")
    print("|---|---|" + "---|" * len(PARTS))
    for daemon in daemons:
        rows = run(daemon, args.config, args.event, args.runs)
        cells = []
        for part in PARTS:
            values = [r[part] for r in rows]
            cells.append(
                f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}" if values else "-"
            )
        print(f"| {daemon} | {len(rows)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
