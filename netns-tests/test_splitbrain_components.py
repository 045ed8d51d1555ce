"""Split-brain guard components on real sockets in the namespace lab (issue #4 §2, §4).

Root only (network namespaces; the conftest marks and skips).  Each test builds its own lab
with a unique ``pv<hex>`` prefix that the ``lab_factory`` fixture tears down even on failure.
The components run inside a lab host through ``ip netns exec <ns> python -c DRIVER``, talking
JSON lines on stdout, so no socket is ever opened in the root namespace.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyvrrp.lab.topology import LAB_IFNAME, Lab

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parent.parent
VIP = "192.168.233.200"

# Drivers log (structlog) to stderr so stdout carries only the JSON lines.
_PRELUDE = (
    "import sys, structlog\nstructlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))\n"
)

GATEWAY_DRIVER = r"""
import asyncio, json, sys
from pyvrrp.config.models import GatewayCheck
from pyvrrp.splitbrain.gateway import GatewayMonitor

async def main():
    cfg = GatewayCheck.model_validate(json.loads(sys.argv[1]))
    loop = asyncio.get_running_loop()
    mon = None
    def changed(isolated):
        print(json.dumps({"isolated": isolated, "snapshot": mon.snapshot()}), flush=True)
    mon = GatewayMonitor("eth0", cfg, changed)
    await mon.start()
    await loop.run_in_executor(None, sys.stdin.readline)  # the test closes stdin to stop us
    await mon.stop()

asyncio.run(main())
"""

CONFLICT_DRIVER = r"""
import asyncio, json, sys
from pyvrrp.splitbrain.conflict import ConflictMonitor

async def main():
    args = json.loads(sys.argv[1])
    def conflict(vip, mac):
        print(json.dumps({"event": "conflict", "vip": str(vip), "peer_mac": mac}), flush=True)
    def clear(vip):
        print(json.dumps({"event": "clear", "vip": str(vip)}), flush=True)
    mon = ConflictMonitor("eth0", None, lambda: [args["vip"]], args["interval"], conflict, clear,
                          quiet_intervals=args["quiet"])
    await mon.start()
    print(json.dumps({"event": "ready"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await mon.stop()
    print(json.dumps({"event": "stopped", "probes_sent": mon.probes_sent}), flush=True)

asyncio.run(main())
"""

PROBE_VIP_DRIVER = r"""
import asyncio, json, sys
from pyvrrp.splitbrain.conflict import probe_vip_once
args = json.loads(sys.argv[1])
t = asyncio.run(probe_vip_once("eth0", args["vip"], timeout=args["timeout"]))
print(json.dumps({"peer_mac": t}), flush=True)
"""

ONE_SHOT_PROBE_DRIVER = r"""
import asyncio, json, sys
from pyvrrp.adapters.arping import ArpProber
from pyvrrp.adapters.icmp import IcmpProber
args = json.loads(sys.argv[1])
async def main():
    prober = ArpProber("eth0") if args["method"] == "arp" else IcmpProber()
    try:
        return [await prober.probe(args["target"], args["timeout"]) for _ in range(args["count"])]
    finally:
        prober.close()
print(json.dumps({"rtts": asyncio.run(main())}), flush=True)
"""


class _Driver:
    """A driver process plus a thread that queues its stdout lines.

    (``select`` on the pipe is not enough: two lines can arrive in one read and the second
    would then sit in Python's buffer while the descriptor looks idle.)
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)


def _spawn(lab: Lab, host: str, driver: str, args: dict[str, Any]) -> _Driver:
    proc = lab.popen(
        host,
        [sys.executable, "-c", _PRELUDE + driver, json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    return _Driver(proc)


def _stderr_of(proc: subprocess.Popen[str]) -> str:
    """Kill the driver if needed and return the tail of its stderr (stdout belongs to the pump)."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "<driver did not exit>"
    return (proc.stderr.read() if proc.stderr else "")[-2000:]


def _next_json(drv: _Driver, timeout_s: float) -> dict[str, Any]:
    """The next JSON line the driver prints, or fail with its stderr after ``timeout_s``."""
    try:
        line = drv.lines.get(timeout=max(timeout_s, 0.001))
    except queue.Empty:
        raise AssertionError(
            f"driver printed nothing within {timeout_s:.1f}s; stderr: {_stderr_of(drv.proc)}"
        ) from None
    if line is None:
        rc = drv.proc.wait()
        raise AssertionError(f"driver exited rc={rc}: {_stderr_of(drv.proc)}")
    return json.loads(line)


def _wait_json(
    proc: _Driver, pred: Callable[[dict[str, Any]], bool], timeout_s: float
) -> tuple[dict[str, Any], float]:
    """Skip lines until ``pred`` holds; returns (line, seconds waited)."""
    start = time.monotonic()
    while True:
        left = timeout_s - (time.monotonic() - start)
        msg = _next_json(proc, max(left, 0.001))
        if pred(msg):
            return msg, time.monotonic() - start


def _finish(drv: _Driver, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Close the driver's stdin (its stop signal) and return the JSON lines it prints until exit."""
    assert drv.proc.stdin is not None
    drv.proc.stdin.close()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            out.append(_next_json(drv, deadline - time.monotonic()))
    except AssertionError as exc:
        if "exited rc=0" not in str(exc):
            raise
    return out


def _run_once(
    lab: Lab, host: str, driver: str, args: dict[str, Any], timeout_s: float = 20
) -> dict[str, Any]:
    res = lab.exec(
        host, [sys.executable, "-c", _PRELUDE + driver, json.dumps(args)], timeout=timeout_s, cwd=str(REPO)
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _nft(lab: Lab, host: str, ruleset: str) -> None:
    lab.exec(host, ["nft", "-f", "-"], input=ruleset)


DROP_ECHO = """
table inet pvsb {
  chain input {
    type filter hook input priority 0; policy accept;
    icmp type echo-request drop
    icmpv6 type echo-request drop
  }
}
"""

DROP_ARP = """
table arp pvsb {
  chain input {
    type filter hook input priority 0; policy drop;
  }
}
"""


def test_icmp_gateway_reachable_then_isolated_after_drop(lab_factory: Callable[..., Lab]) -> None:
    """Issue #4 §2 (S3/S4): ICMP arbitration sees the gateway, then isolation after an nft drop in gw."""
    lab = lab_factory(gateway=True, real_servers=False)
    cfg = {
        "targets": [lab.ip("gw")],
        "method": "icmp",
        "interval": 0.2,
        "timeout": 0.15,
        "rise": 2,
        "fall": 2,
    }
    proc = _spawn(lab, "lb1", GATEWAY_DRIVER, cfg)
    first = _next_json(proc, 10)
    assert first["isolated"] is True  # unknown counts as isolated at start
    up, took_s = _wait_json(proc, lambda m: m["isolated"] is False, 5)
    assert took_s < 2.0
    (target,) = up["snapshot"]["targets"]
    assert target["target"] == lab.ip("gw") and target["ok"] is True and target["state"] == "up"
    assert target["rtt_ms"] is not None and 0 <= target["rtt_ms"] < 150

    _nft(lab, "gw", DROP_ECHO)
    down, took_s = _wait_json(proc, lambda m: m["isolated"] is True, 5)
    # fall=2 probes at 0.2 s intervals, each with a 0.15 s timeout
    assert took_s < 1.5
    (target,) = down["snapshot"]["targets"]
    assert target["ok"] is False and target["state"] == "down" and target["rtt_ms"] is None
    assert down["snapshot"]["verdict"] == "isolated"
    _finish(proc)


def test_icmp_prober_ipv6_and_arp_prober(lab_factory: Callable[..., Lab]) -> None:
    """Issue #4 §2: ICMPv6 echo and the ARP method both reach the gateway; ARP fails once gw drops ARP."""
    lab = lab_factory(gateway=True, real_servers=False, ipv6=True)
    v6 = _run_once(
        lab,
        "lb1",
        ONE_SHOT_PROBE_DRIVER,
        {"method": "icmp", "target": lab.ip("gw", 6), "timeout": 1.0, "count": 3},
    )
    assert all(r is not None and r < 0.5 for r in v6["rtts"]), v6
    # a link-local gateway (the usual IPv6 default route) with its scope
    out = lab.ip_cmd("gw", "-6", "-o", "addr", "show", "dev", LAB_IFNAME, "scope", "link").stdout
    gw_ll = out.split()[3].split("/")[0]
    ll = _run_once(
        lab,
        "lb1",
        ONE_SHOT_PROBE_DRIVER,
        {"method": "icmp", "target": f"{gw_ll}%{LAB_IFNAME}", "timeout": 1.0, "count": 2},
    )
    assert all(r is not None and r < 0.5 for r in ll["rtts"]), ll
    arp = _run_once(
        lab,
        "lb1",
        ONE_SHOT_PROBE_DRIVER,
        {"method": "arp", "target": lab.ip("gw"), "timeout": 1.0, "count": 3},
    )
    assert all(r is not None and r < 0.5 for r in arp["rtts"]), arp
    # a host that does not exist never answers
    none = _run_once(
        lab,
        "lb1",
        ONE_SHOT_PROBE_DRIVER,
        {"method": "arp", "target": "192.168.233.99", "timeout": 0.3, "count": 2},
    )
    assert none["rtts"] == [None, None]
    _nft(lab, "gw", DROP_ARP)
    dropped = _run_once(
        lab,
        "lb1",
        ONE_SHOT_PROBE_DRIVER,
        {"method": "arp", "target": lab.ip("gw"), "timeout": 0.3, "count": 2},
    )
    assert dropped["rtts"] == [None, None]


def test_conflict_monitor_reports_other_holder_mac_and_clears(lab_factory: Callable[..., Lab]) -> None:
    """Issue #4 §4 (S1): lb1 and lb2 both hold the VIP -> lb1's monitor names lb2's MAC; clears after."""
    lab = lab_factory(real_servers=False)
    for host in ("lb1", "lb2"):
        lab.ip_cmd(host, "addr", "add", f"{VIP}/24", "dev", LAB_IFNAME)
    proc = _spawn(lab, "lb1", CONFLICT_DRIVER, {"vip": VIP, "interval": 0.2, "quiet": 3})
    assert _next_json(proc, 10)["event"] == "ready"
    msg, took_s = _wait_json(proc, lambda m: m["event"] == "conflict", 3)
    assert msg == {"event": "conflict", "vip": VIP, "peer_mac": lab.mac("lb2")}
    assert took_s < 1.0  # the first probe goes out at start
    assert lab.mac("lb2") != lab.mac("lb1")

    lab.ip_cmd("lb2", "addr", "del", f"{VIP}/24", "dev", LAB_IFNAME)
    msg, took_s = _wait_json(proc, lambda m: m["event"] in ("clear", "conflict"), 3)
    assert msg == {"event": "clear", "vip": VIP}
    assert took_s < 1.5  # 3 quiet intervals of 0.2 s
    # lb1 alone holds the VIP now: it keeps probing for a second and finds no new conflict
    time.sleep(1.0)
    events = _finish(proc)
    assert [e["event"] for e in events] == ["stopped"]
    assert events[0]["probes_sent"] >= 8


def test_probe_vip_once_sees_holder_only(lab_factory: Callable[..., Lab]) -> None:
    """Issue #4 §4: before takeover, a BACKUP asks who holds the VIP: lb2's MAC if it does, None if nobody."""
    lab = lab_factory(real_servers=False)
    nobody = _run_once(lab, "lb1", PROBE_VIP_DRIVER, {"vip": VIP, "timeout": 0.5})
    assert nobody == {"peer_mac": None}
    lab.ip_cmd("lb2", "addr", "add", f"{VIP}/24", "dev", LAB_IFNAME)
    holder = _run_once(lab, "lb1", PROBE_VIP_DRIVER, {"vip": VIP, "timeout": 1.0})
    assert holder == {"peer_mac": lab.mac("lb2")}
    # the daemon's budget before a takeover is tight (50 ms): still enough on a LAN
    fast = _run_once(lab, "lb1", PROBE_VIP_DRIVER, {"vip": VIP, "timeout": 0.05})
    assert fast == {"peer_mac": lab.mac("lb2")}
    # the probe used sender IP 0.0.0.0: lb2 must not have learned a neighbour entry for it
    neigh = lab.ip_cmd("lb2", "neigh", "show", "dev", LAB_IFNAME).stdout
    assert lab.mac("lb1") not in neigh.lower()
