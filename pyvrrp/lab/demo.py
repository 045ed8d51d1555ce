"""``pyvrrp lab demo``: a VRRP failover you can watch, in namespaces, in about 15 seconds.

1. build the lab (client, lb1, lb2, rs1, rs2 on bridge br0);
2. run a tiny HTTP responder on each LB ("lb1" / "lb2"): there is no IPVS in this kernel,
   so the client's requests to VIP:80 are answered by whichever LB the VIP resolves to;
3. capture VRRP/ARP on br0, start the daemon pair (lb1 prio 150, lb2 prio 100);
4. wait for lb1 to be MASTER, show both nodes' state, start the client probe;
5. fail lb1 (kill -9 by default), wait for lb2 to take over and for the client to follow;
6. print the failover timeline from the capture and the probe log, then tear it all down.

``--daemon keepalived`` runs the same scenario with keepalived 2.2.7 for comparison;
``--peer keepalived`` runs pyvrrp on lb1 against keepalived on lb2 (interop).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyvrrp.lab import probe
from pyvrrp.lab.capture import Capture, WireEvent, first, last
from pyvrrp.lab.keepalived import KeepalivedNode
from pyvrrp.lab.topology import (
    LAB_IFNAME,
    VIP4,
    DaemonNode,
    InstanceSpec,
    Lab,
    LabError,
    PyvrrpNode,
    wait_for,
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    daemon: str = "pyvrrp"  # lb1's daemon: "pyvrrp" or "keepalived"
    peer: str = ""  # lb2's daemon; "" = the same as ``daemon``
    version: int = 3
    advert_int_s: float = 1.0
    event: str = "kill9"  # "kill9", "sigterm", "linkdown"
    keep: bool = False
    probe_interval_s: float = 0.01
    probe_timeout_s: float = 0.1


def _daemon_of(opts: DemoOptions, host: str) -> str:
    return (opts.peer or opts.daemon) if host == "lb2" else opts.daemon


def master_down_s(priority: int, advert_int_s: float) -> float:
    """RFC 5798 §6.1 (RFC 3768 §6.1 for v2): 3 * Adver_Int + (256 - Priority) * Adver_Int / 256."""
    return 3 * advert_int_s + (256 - priority) * advert_int_s / 256


def skew_s(priority: int, advert_int_s: float) -> float:
    """RFC 5798 §6.1 Skew_Time."""
    return (256 - priority) * advert_int_s / 256


def _node(lab: Lab, opts: DemoOptions, host: str, priority: int) -> DaemonNode:
    inst = InstanceSpec(
        priority=priority,
        version=opts.version,
        advert_int_s=opts.advert_int_s,
        state="MASTER" if priority > 100 else "BACKUP",
    )
    if _daemon_of(opts, host) == "keepalived":
        return KeepalivedNode(lab, host, instances=[inst])
    return PyvrrpNode(lab, host, instances=[inst])


def _show_state(node: DaemonNode, say: Callable[[str], None]) -> None:
    if isinstance(node, PyvrrpNode):
        say(f"$ pyvrrp state --socket {node.socket_path}   # {node.host}")
        for line in node.state_text().rstrip().splitlines():
            say(f"  {line}")
    else:
        vip = "holds VIP" if node.holds_vip() else "no VIP"
        say(f"  {node.host}: keepalived state {node.state()}, {vip} (from its console log and ip addr)")


def _fail(node: DaemonNode, lab: Lab, event: str) -> None:
    if event == "kill9":
        node.kill9()
    elif event == "sigterm":
        node.stop()
    elif event == "linkdown":
        lab.link_set(node.host, LAB_IFNAME, False)
    else:
        raise ValueError(f"unknown event {event!r} (kill9, sigterm, linkdown)")


def _fmt(t: float | None, t0: float) -> str:
    return "      n/a" if t is None else f"{(t - t0) * 1000:+9.1f} ms"


def run_demo(opts: DemoOptions, say: Callable[[str], None] = print) -> int:
    """Run the demo; returns a process exit code (0 when the failover completed)."""
    lab = Lab(keep_run_dir=opts.keep)
    macs: dict[str, str] = {}
    try:
        t_up = time.monotonic()
        lab.up()
        macs = {h.mac: h.name for h in lab.hosts.values()}
        say(
            f"lab {lab.prefix} up in {(time.monotonic() - t_up) * 1000:.0f} ms: namespaces "
            + ", ".join(lab.namespaces)
        )
        say(
            f"  client {lab.ip('client')}  lb1 {lab.ip('lb1')}  lb2 {lab.ip('lb2')}  "
            f"rs1 {lab.ip('rs1')}  rs2 {lab.ip('rs2')}  VIP {VIP4}"
        )
        ready = [lab.start_http_responder(h, h) for h in ("lb1", "lb2")]
        for path in ready:
            wait_for(path.exists, 5.0, 0.01, what=str(path))
        cap = Capture(lab).start()
        lb1 = _node(lab, opts, "lb1", 150)
        lb2 = _node(lab, opts, "lb2", 100)
        say(
            f"starting {_daemon_of(opts, 'lb2')} on lb2 (priority 100) and {opts.daemon} on lb1 "
            f"(priority 150), VRRPv{opts.version}, "
            f"advert_int {opts.advert_int_s:g} s"
        )
        lb2.start()
        lb1.start()
        say(f"  lb1 config: {lb1.config_path}")
        limit_s = master_down_s(150, opts.advert_int_s) + 15.0
        try:
            waited = lb1.wait_state("MASTER", limit_s)
        except TimeoutError:
            say(f"lb1 did not become MASTER within {limit_s:.1f} s; its log ({lb1.log_path}):")
            say(lb1.log_text()[-3000:])
            return 1
        except LabError as exc:
            say(f"lb1 failed to start: {exc}")
            return 1
        wait_for(lambda: lab.holds_vip("lb1"), 5.0, what="VIP on lb1")
        say(
            f"lb1 is MASTER {waited:.2f} s after both daemons were started (start-up + Master_Down_Interval "
            f"for prio 150, {master_down_s(150, opts.advert_int_s):.3f} s) and holds {VIP4}"
        )
        _show_state(lb1, say)
        _show_state(lb2, say)

        probe_log = lab.run_dir / "client-probe.jsonl"
        client = lab.popen(
            "client",
            probe.command(
                VIP4,
                interval_s=opts.probe_interval_s,
                timeout_s=opts.probe_timeout_s,
                duration_s=master_down_s(100, opts.advert_int_s) + 20.0,
                out=probe_log,
                arp=True,
            ),
        )
        wait_for(lambda: probe.served(probe.read(probe_log), "lb1"), 5.0, what="client answered by lb1")
        time.sleep(1.0 + random.random() * opts.advert_int_s)
        say(f"client gets 'lb1' through {VIP4}; now {opts.event} lb1's {opts.daemon} ...")
        t0 = time.time()
        _fail(lb1, lab, opts.event)
        try:
            lb2.wait_state("MASTER", master_down_s(100, opts.advert_int_s) + 10.0)
            wait_for(lambda: probe.served(probe.read(probe_log), "lb2"), 10.0, what="client answered by lb2")
        except (TimeoutError, LabError) as exc:
            say(f"failover did not complete: {exc}; lb2 log ({lb2.log_path}):")
            say(lb2.log_text()[-3000:])
            return 1
        time.sleep(0.5)
        client.terminate()
        client.wait(timeout=5.0)
        cap.stop()
        say("lb2 took over:")
        _show_state(lb2, say)
        _print_timeline(lab, opts, cap.events(), probe.read(probe_log), t0, macs, say)
        if opts.keep:
            say(
                f"\n--keep: lab left running.  Try:  ip netns exec {lab.ns('client')} "
                f"{sys.executable} -c \"import urllib.request as u; print(u.urlopen('http://{VIP4}/').read())\""
            )
            say(f"  capture: {cap.path}   logs: {lab.run_dir}")
        return 0
    except (LabError, TimeoutError, subprocess.SubprocessError) as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        if opts.keep:
            say(f"lab {lab.prefix} left running (--keep); remove it with: pyvrrp lab down {lab.prefix}")
        else:
            lab.down()


def _print_timeline(
    lab: Lab,
    opts: DemoOptions,
    events: list[WireEvent],
    replies: list[probe.Reply],
    t0: float,
    macs: dict[str, str],
    say: Callable[[str], None],
) -> None:
    ip1, ip2 = lab.ip("lb1"), lab.ip("lb2")
    last1 = last(events, before=t0, kind="advert", src_ip=ip1)
    prio0 = first(events, after=t0, kind="advert", src_ip=ip1, priority=0)
    first2 = first(events, after=t0, kind="advert", src_ip=ip2)
    garp2 = first(events, after=t0, kind="garp", src_mac=lab.mac("lb2"))
    first_ok2 = probe.first_reply(replies, "lb2", after=t0)
    last_ok1 = probe.last_reply(replies, "lb1")
    gap = probe.longest_gap(replies)
    after = probe.tally(replies, since=t0)

    rows: list[tuple[float | None, str]] = [
        (
            last1.t if last1 else None,
            f"last advert from lb1 ({last1.describe(macs) if last1 else 'none seen'})",
        ),
        (t0, f"{opts.event} lb1 ({opts.daemon})"),
    ]
    if prio0:
        rows.append((prio0.t, "lb1 sends priority 0 (RFC 5798 §6.4.3 shutdown)"))
    rows.append((last_ok1.t1 if last_ok1 else None, "client's last reply from lb1"))
    rows.append(
        (
            first2.t if first2 else None,
            f"lb2's first advert as MASTER ({first2.describe(macs) if first2 else '-'})",
        )
    )
    rows.append((garp2.t if garp2 else None, f"lb2's first gratuitous ARP for {VIP4}"))
    rows.append((first_ok2.t1 if first_ok2 else None, "client's first reply from lb2 through the VIP"))
    rows.sort(key=lambda r: (r[0] is None, r[0] or 0.0))

    say("")
    say(
        f"failover timeline (lb1 {opts.daemon}, lb2 {_daemon_of(opts, 'lb2')}, VRRPv{opts.version}, "
        f"advert_int {opts.advert_int_s:g} s; t=0 is the failure; frames from the br0 capture)"
    )
    for t, what in rows:
        say(f"  {_fmt(t, t0)}  {what}")
    if opts.event == "sigterm":
        expect, base = skew_s(100, opts.advert_int_s), prio0
        label = "Skew_Time after lb1's priority-0 advert"
    else:
        expect, base = master_down_s(100, opts.advert_int_s), last1
        label = "Master_Down_Interval after lb1's last advert"
    if first2 and base:
        since = "its priority-0 advert" if base is prio0 else "its last advert"
        say(
            f"  lb2 took over {(first2.t - base.t) * 1000:.1f} ms after {since} "
            f"(expected {label}: {expect * 1000:.1f} ms)"
        )
    if gap is not None:
        say(
            f"  client: {len(replies)} requests, {after.failed} failed after the event, "
            f"longest gap between successful replies {gap * 1000:.1f} ms"
        )
    if opts.event == "kill9":
        say(
            "  note: after kill -9 the VIP stays on lb1 (nothing removes it) and lb1's responder keeps "
            "answering until lb2's GARP moves the client: no outage.  A request in flight at the GARP "
            "can fail: its connection moves to a different responder (IPVS with sync would keep it)."
        )
