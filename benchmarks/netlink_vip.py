"""Cost of one VIP add/remove and of the daemon's netlink facts through pyvrrp.adapters.netlink.

Usage (root): ``python benchmarks/netlink_vip.py [--count N]``

Builds a throwaway namespace ``pvbench-<random6>`` with a veth pair (deleted in
``finally``), then, from inside a running asyncio loop as the daemon does, adds
and removes ``N`` /32 addresses one by one and times ``link_is_up`` and
``primary_address``.  Prints the median and the 90th percentile of each.

Reference figures (2-core VM, 200 each, issue 12): VIP add/remove on pyroute2's
threadless IPRSocket with the requests prepared (encoded once, as the daemon does
when it attaches an instance) 0.06-0.08 ms, unprepared 0.2 ms (pyroute2 encodes
in ~0.1 ms); through the private loop thread (the earlier design) 0.25-0.6 ms;
``AsyncIPRoute`` awaited on the caller's own loop 0.15 ms; the hand-written
rtnetlink client of issue 3 0.02 ms.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import textwrap

CHILD = """
import asyncio, statistics, sys, time
from ipaddress import ip_interface
from pyvrrp.adapters.netlink import Netlink
N, IF = int(sys.argv[1]), sys.argv[2]

def row(name, xs):
    xs = sorted(xs)
    med, p90 = statistics.median(xs) * 1e3, xs[int(0.9 * len(xs))] * 1e3
    print(f"{name:22s} median {med:6.3f} ms   p90 {p90:6.3f} ms")

async def main():
    nl = Netlink()
    add, rem, up, prim, cold = [], [], [], [], []
    vips = [ip_interface(f"10.99.{i // 250}.{i % 250 + 1}/32") for i in range(N)]
    for vip in vips:  # never prepared: pyroute2 encodes each request on the spot
        cold_vip = ip_interface(f"10.98.{vip.ip.packed[2]}.{vip.ip.packed[3]}/32")
        t = time.perf_counter(); nl.add(IF, cold_vip); cold.append(time.perf_counter() - t)
        nl.remove(IF, cold_vip)
    nl.prepare(IF, vips)  # as the daemon does when an instance is attached
    for vip in vips:
        t = time.perf_counter(); nl.add(IF, vip); add.append(time.perf_counter() - t)
        t = time.perf_counter(); nl.remove(IF, vip); rem.append(time.perf_counter() - t)
        t = time.perf_counter(); nl.link_is_up(IF); up.append(time.perf_counter() - t)
        t = time.perf_counter(); nl.primary_address(IF, 4); prim.append(time.perf_counter() - t)
    nl.close()
    rows = [("add /32 (unprepared)", cold), ("add /32", add), ("remove /32", rem),
            ("link_is_up", up), ("primary_address(4)", prim)]
    for name, xs in rows:
        row(name, xs)

asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (a network namespace)", file=sys.stderr)
        return 2
    ns = f"pvbench-{secrets.token_hex(3)}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        for cmd in (
            "link add bench0 type veth peer name bench1",
            "link set bench0 up",
            "link set bench1 up",
            "addr add 192.0.2.1/24 dev bench0",
        ):
            subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)
        child = [sys.executable, "-c", textwrap.dedent(CHILD), str(args.count), "bench0"]
        return subprocess.run(["ip", "netns", "exec", ns, *child], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
