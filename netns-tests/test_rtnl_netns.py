"""The hand-written rtnetlink facts and monitor (pyvrrp.adapters.rtnl) on real links.

pyroute2 (``pyvrrp.adapters.netlink``) is the independent oracle: both clients
must report the same facts and, watching the same changes side by side, the
same events.  Each test runs in its own pair of namespaces (``_ns.veth_pair``).
"""

from __future__ import annotations

import json

from _ns import veth_pair

FACTS_AND_EVENTS = """
import asyncio, json, subprocess
from ipaddress import ip_address, ip_interface
from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink import SyncNetlink, NetlinkMonitor
from pyvrrp.adapters.rtnl import FastAddr, RtnlNetlink
from pyvrrp.adapters.netlink_events import LinkEvent
IF = {ifname!r}
PRIMARY = ip_address({ip!r})

def facts(nl, name):
    out = dict(index=nl.link_index(name), up=nl.link_is_up(name), mac=nl.link_mac(name),
               addrs=[str(a) for a in nl.list_addresses(name)])
    for fam in (4, 6):
        out[f"p{{fam}}"] = str(nl.primary_address(name, fam))
        out[f"p{{fam}}_excl"] = str(nl.primary_address(name, fam, exclude=[PRIMARY, ip_address("fe80::a")]))
    try:
        nl.link_is_up("nope0")
    except InterfaceNotFound as exc:
        out["missing"] = str(exc)
    return out

def sh(*argv):
    subprocess.run(list(argv), check=True)

async def collect(source, events):
    seen_down = False
    async for ev in source:
        events.append(repr(ev))
        if isinstance(ev, LinkEvent):
            if not ev.up:
                seen_down = True
            elif seen_down:
                return

async def main():
    nl, oracle, fast = RtnlNetlink(), SyncNetlink(), FastAddr()
    fast.add(IF, "192.0.2.10/24", label=IF + ":vip")     # a secondary (same /24)
    fast.add(IF, "2001:db8::10/64")
    fast.add(IF, "198.51.100.1/24")                        # a second primary
    ours = {{name: facts(nl, name) for name in (IF, "lo")}}
    theirs = {{name: facts(oracle, name) for name in (IF, "lo")}}
    print(json.dumps(dict(step="facts", ours=ours, theirs=theirs)), flush=True)

    rtnl_events, pyroute2_events = [], []
    mon = NetlinkMonitor([IF])
    await mon.start()
    tasks = [asyncio.create_task(collect(nl.events([IF]), rtnl_events)),
             asyncio.create_task(collect(mon.events(), pyroute2_events))]
    await asyncio.sleep(0.2)   # the facade's monitor subscribes when its generator first runs
    await asyncio.to_thread(sh, "ip", "addr", "del", "192.0.2.10/24", "dev", IF)
    await asyncio.to_thread(sh, "ip", "addr", "add", "192.0.2.20/24", "dev", IF)
    await asyncio.to_thread(sh, "ip", "link", "set", IF, "down")
    await asyncio.sleep(0.3)
    await asyncio.to_thread(sh, "ip", "link", "set", IF, "up")
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    mon.close()
    print(json.dumps(dict(step="events", ours=rtnl_events, theirs=pyroute2_events)), flush=True)
    nl.close(); oracle.close(); fast.close()

asyncio.run(main())
"""


def test_rtnl_facts_and_events_match_pyroute2() -> None:
    """PKT-09, SM-16: same interface facts as pyroute2; same link/address events side by side."""
    with veth_pair() as p:
        rows = {
            r["step"]: r
            for r in map(
                json.loads, p.run("a", FACTS_AND_EVENTS.format(ifname=p.if_a, ip=p.ip_a)).splitlines()
            )
        }
        facts = rows["facts"]
        assert facts["ours"] == facts["theirs"]
        mine = facts["ours"][p.if_a]
        assert mine["mac"] == p.mac("a") and mine["up"] is True
        assert (mine["p4"], mine["p6"]) == (p.ip_a, p.ll_a)
        assert (mine["p4_excl"], mine["p6_excl"]) == ("198.51.100.1", "None")  # .10 is a secondary
        assert "192.0.2.10/24" in mine["addrs"] and "2001:db8::10/64" in mine["addrs"]
        assert mine["missing"] == "interface 'nope0' not found"
        assert facts["ours"]["lo"]["p4"] == "None"  # 127.0.0.1 has host scope

        events = rows["events"]
        assert events["ours"] == events["theirs"]
        evs = events["ours"]
        removed = next(i for i, e in enumerate(evs) if "192.0.2.10/24" in e and "added=False" in e)
        added = next(i for i, e in enumerate(evs) if "192.0.2.20/24" in e and "added=True" in e)
        down = next(i for i, e in enumerate(evs) if e.startswith("LinkEvent(") and "up=False" in e)
        assert removed < added < down
        assert evs[-1].startswith("LinkEvent(") and "up=True" in evs[-1] and p.if_a in evs[-1]
        # Linux flushes the IPv6 addresses of a link that goes down
        assert any("2001:db8::10/64" in e and "added=False" in e for e in evs[down:])


RESYNC_REAL = """
import asyncio, json, os, socket, subprocess, tempfile
from pyvrrp.adapters.rtnl import RtnlMonitor
from pyvrrp.adapters.netlink_events import LinkEvent
IF = {ifname!r}

async def main():
    mon = RtnlMonitor([IF], rcvbuf=1)     # the kernel's minimum: a burst overflows it
    await mon.start()
    rcvbuf = mon._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        for i in range(300):
            f.write(f"addr add 10.77.{{i // 200}}.{{i % 200 + 1}}/32 dev {{IF}}\\n")
        f.write(f"link set {{IF}} down\\n")
    subprocess.run(["ip", "-batch", f.name], check=True)   # while nobody reads the monitor
    os.unlink(f.name)
    events, agen = [], mon.events()
    async def until(pred):
        while True:
            ev = await agen.__anext__()
            events.append(repr(ev))
            if pred(ev):
                return ev
    await asyncio.wait_for(until(lambda e: isinstance(e, LinkEvent) and not e.up), 5)
    after_overflow = dict(resyncs=mon.resyncs, known=mon.is_up(IF))
    subprocess.run(["ip", "link", "set", IF, "up"], check=True)     # the new socket still works
    await asyncio.wait_for(until(lambda e: isinstance(e, LinkEvent) and e.up), 5)
    await agen.aclose()
    mon.close()
    print(json.dumps(dict(rcvbuf=rcvbuf, after=after_overflow, known=mon.is_up(IF), last=events[-1],
                          n=len(events))))

asyncio.run(main())
"""


def test_rtnl_monitor_resyncs_after_a_real_overflow() -> None:
    """A storm overflows the monitor's socket (ENOBUFS): it resubscribes, re-reads the links
    and reports the link-down it lost; events flow again afterwards."""
    with veth_pair() as p:
        row = json.loads(p.run("a", RESYNC_REAL.format(ifname=p.if_a)))
        assert row["rcvbuf"] < 10000, row
        assert row["after"] == {"resyncs": row["after"]["resyncs"], "known": False}
        assert row["after"]["resyncs"] >= 1, row
        assert row["last"].startswith("LinkEvent(") and "up=True" in row["last"]
        assert row["known"] is True


DAEMON_IN_PROCESS = """
import asyncio, json, subprocess, sys, tempfile
from pathlib import Path
from pyvrrp.config.load import load_config
from pyvrrp.runtime.daemon import Daemon
IF = {ifname!r}

async def wait_state(inst, want, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while inst.router.state.value != want:
        if loop.time() > end:
            raise TimeoutError(f"{{inst.name}} still {{inst.router.state.value}}, want {{want}}")
        await asyncio.sleep(0.02)

async def main(tmp):
    conf = Path(tmp) / "pyvrrp.toml"
    conf.write_text(f'''
[global_defs]
router_id = "rtnl-test"
control_socket = "{{tmp}}/control.sock"
state_dir = "{{tmp}}"

[vrrp_instance.VI_1]
interface = "{{IF}}"
virtual_router_id = 51
version = 3
priority = 150
advert_int = 0.1
virtual_ipaddress = ["192.0.2.200/24"]
''')
    daemon = Daemon(str(conf), load_config(str(conf)))
    task = asyncio.create_task(daemon.run())
    while "VI_1" not in daemon.instances:
        await asyncio.sleep(0.01)
    inst = daemon.instances["VI_1"]
    await wait_state(inst, "MASTER")
    states = [inst.router.state.value]
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", IF, "down"], check=True)
    await wait_state(inst, "FAULT")
    states.append(inst.router.state.value)
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", IF, "up"], check=True)
    await wait_state(inst, "MASTER")
    states.append(inst.router.state.value)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2")
    daemon.stop_event.set()
    rc = await asyncio.wait_for(task, 5)
    print(json.dumps(dict(states=states, pyroute2=loaded, rc=rc, netlink=type(daemon.netlink).__name__)))

with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(tmp))
"""


def test_daemon_runs_without_pyroute2() -> None:
    """The daemon's start path and link monitoring never import pyroute2 (start-up cost):
    MASTER, link down -> FAULT, link up -> MASTER, all through the rtnl adapter."""
    with veth_pair() as p:
        row = json.loads(p.run("a", DAEMON_IN_PROCESS.format(ifname=p.if_a)))
        assert row["states"] == ["MASTER", "FAULT", "MASTER"]
        assert row["netlink"] == "RtnlNetlink"
        assert row["pyroute2"] == []
        assert row["rc"] == 0
