"""The pyroute2 netlink adapter (pyvrrp.adapters.netlink) on real links.

iproute2 (``ip -j``) is the independent oracle for the facts; the events are
checked against the changes the test makes.  The overflow test blocks the loop
during a burst so the kernel drops events, then checks the monitor rebuilt the
link-down *and* the address removal it lost.  Each test runs in its own pair of
namespaces (``_ns.veth_pair``).
"""

from __future__ import annotations

import json
import os

import pytest
from _ns import veth_pair

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.timeout(120),
]

FACTS_AND_EVENTS = """
import asyncio, json, subprocess
from ipaddress import ip_address, ip_interface
from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink import Netlink, LinkEvent
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

def oracle(name):
    info = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", name], check=True,
                                     capture_output=True).stdout)[0]
    return dict(index=info["ifindex"], mac=info["address"], flags=info["flags"],
                addrs=[f"{{a['local']}}/{{a['prefixlen']}}" for a in info["addr_info"]])

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
    nl = Netlink()                                          # blocking calls inside the running loop
    added = [nl.add(IF, ip_interface("192.0.2.10/24"), label=IF + ":vip"),   # a secondary (same /24)
             nl.add(IF, ip_interface("2001:db8::10/64")),
             nl.add(IF, ip_interface("198.51.100.1/24")),                    # a second primary
             nl.add(IF, ip_interface("198.51.100.1/24"))]                    # already there
    ours = {{name: facts(nl, name) for name in (IF, "lo")}}
    theirs = {{name: oracle(name) for name in (IF, "lo")}}
    label = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", IF], check=True,
                                      capture_output=True).stdout)[0]["addr_info"]
    print(json.dumps(dict(step="facts", added=added, ours=ours, theirs=theirs, labels=label)), flush=True)

    events = []
    task = asyncio.create_task(collect(nl.events([IF]), events))
    await asyncio.sleep(0.2)   # the monitor subscribes when its generator first runs
    removed = [nl.remove(IF, ip_interface("192.0.2.10/24")), nl.remove(IF, ip_interface("192.0.2.10/24"))]
    await asyncio.to_thread(sh, "ip", "addr", "add", "192.0.2.20/24", "dev", IF)
    await asyncio.to_thread(sh, "ip", "link", "set", IF, "down")
    await asyncio.sleep(0.3)
    await asyncio.to_thread(sh, "ip", "link", "set", IF, "up")
    await asyncio.wait_for(task, 10)
    print(json.dumps(dict(step="events", removed=removed, events=events)), flush=True)
    nl.close()

asyncio.run(main())
"""


def test_facts_match_iproute2_and_events_follow_changes() -> None:
    """PKT-09, SM-08, SM-03, SM-16: facts as iproute2 sees them; idempotent VIP add/remove;
    address and link events in order."""
    with veth_pair() as p:
        rows = {
            r["step"]: r
            for r in map(
                json.loads, p.run("a", FACTS_AND_EVENTS.format(ifname=p.if_a, ip=p.ip_a)).splitlines()
            )
        }
        facts = rows["facts"]
        assert facts["added"] == [True, True, True, False]
        for name in (p.if_a, "lo"):
            ours, theirs = facts["ours"][name], facts["theirs"][name]
            assert (ours["index"], ours["mac"], ours["addrs"]) == (
                theirs["index"],
                theirs["mac"],
                theirs["addrs"],
            )
            assert ours["up"] == ("UP" in theirs["flags"] and "LOWER_UP" in theirs["flags"])
        mine = facts["ours"][p.if_a]
        assert mine["mac"] == p.mac("a") and mine["up"] is True
        assert (mine["p4"], mine["p6"]) == (p.ip_a, p.ll_a)
        assert (mine["p4_excl"], mine["p6_excl"]) == ("198.51.100.1", "None")  # .10 is a secondary
        assert "192.0.2.10/24" in mine["addrs"] and "2001:db8::10/64" in mine["addrs"]
        assert mine["missing"] == "interface 'nope0' not found"
        assert facts["ours"]["lo"]["p4"] == "None"  # 127.0.0.1 has host scope
        assert {a["local"]: a.get("label") for a in facts["labels"]}["192.0.2.10"] == p.if_a + ":vip"

        events = rows["events"]
        assert events["removed"] == [True, False]
        evs = events["events"]
        removed = next(i for i, e in enumerate(evs) if "192.0.2.10/24" in e and "added=False" in e)
        added = next(i for i, e in enumerate(evs) if "192.0.2.20/24" in e and "added=True" in e)
        down = next(i for i, e in enumerate(evs) if e.startswith("LinkEvent(") and "up=False" in e)
        assert removed < added < down
        assert evs[-1].startswith("LinkEvent(") and "up=True" in evs[-1] and p.if_a in evs[-1]
        # Linux flushes the IPv6 addresses of a link that goes down
        assert any("2001:db8::10/64" in e and "added=False" in e for e in evs[down:])


RESYNC_REAL = """
import asyncio, json, os, socket, subprocess, tempfile
from ipaddress import ip_interface
from pyvrrp.adapters.netlink import NetlinkMonitor, LinkEvent, AddressEvent
IF = {ifname!r}
VIP = ip_interface("10.66.0.1/32")

async def main():
    mon = NetlinkMonitor([IF], rcvbuf=1)     # the kernel's minimum: a burst overflows it
    await mon.start()
    rcvbuf = mon._ipr.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    events, agen = [], mon.events()
    async def until(pred):
        while True:
            ev = await agen.__anext__()
            events.append(repr(ev))
            if pred(ev):
                return ev
    subprocess.run(["ip", "addr", "add", str(VIP), "dev", IF], check=True)
    await asyncio.wait_for(until(lambda e: isinstance(e, AddressEvent) and e.address == VIP), 5)
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        for i in range(300):
            f.write(f"addr add 10.77.{{i // 200}}.{{i % 200 + 1}}/32 dev {{IF}}\\n")
        f.write(f"addr del {{VIP}} dev {{IF}}\\n")      # a VIP deleted in the storm ...
        f.write(f"link set {{IF}} down\\n")              # ... and a link-down
    subprocess.run(["ip", "-batch", f.name], check=True)   # blocks the loop: nobody reads the socket
    os.unlink(f.name)
    mark = len(events)
    await asyncio.wait_for(until(lambda e: isinstance(e, LinkEvent) and not e.up), 5)
    gone = await asyncio.wait_for(until(lambda e: isinstance(e, AddressEvent) and e.address == VIP), 5)
    after = dict(resyncs=mon.resyncs, known=mon.is_up(IF), vip_added=gone.added)
    subprocess.run(["ip", "link", "set", IF, "up"], check=True)     # the new socket still works
    await asyncio.wait_for(until(lambda e: isinstance(e, LinkEvent) and e.up), 5)
    await agen.aclose()
    mon.close()
    print(json.dumps(dict(rcvbuf=rcvbuf, after=after, known=mon.is_up(IF), last=events[-1],
                          burst=[e for e in events[mark:] if "10.77." in e])))

asyncio.run(main())
"""


def test_monitor_resyncs_after_a_real_overflow() -> None:
    """A storm overflows the monitor's socket (ENOBUFS): it resubscribes, re-reads links and
    addresses and reports the link-down and the VIP removal it lost; events flow again."""
    with veth_pair() as p:
        row = json.loads(p.run("a", RESYNC_REAL.format(ifname=p.if_a)))
        assert row["rcvbuf"] < 10000, row
        assert row["after"]["resyncs"] >= 1, row
        assert row["after"]["known"] is False
        assert row["after"]["vip_added"] is False  # the removal lost in the overflow was replayed
        assert row["last"].startswith("LinkEvent(") and "up=True" in row["last"]
        assert row["known"] is True
        # each burst address reported once, whether its event arrived or was rebuilt by the resync
        assert len(row["burst"]) == len(set(row["burst"])) == 300, len(row["burst"])
        assert all("added=True" in e for e in row["burst"])


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

def addrs():
    info = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", IF], check=True,
                                     capture_output=True).stdout)
    return [a["local"] for a in info[0]["addr_info"]]

async def main(tmp):
    conf = Path(tmp) / "pyvrrp.toml"
    conf.write_text(f'''
[global_defs]
router_id = "netlink-test"
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
    states, vip = [inst.router.state.value], ["192.0.2.200" in addrs()]
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", IF, "down"], check=True)
    await wait_state(inst, "FAULT")
    states.append(inst.router.state.value)
    vip.append("192.0.2.200" in addrs())
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", IF, "up"], check=True)
    await wait_state(inst, "MASTER")
    states.append(inst.router.state.value)
    vip.append("192.0.2.200" in addrs())
    daemon.stop_event.set()
    rc = await asyncio.wait_for(task, 5)
    print(json.dumps(dict(states=states, vip=vip, rc=rc, netlink=type(daemon.netlink).__name__)))

with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(tmp))
"""


def test_daemon_follows_links_and_holds_vips_through_netlink() -> None:
    """MASTER (VIP added), link down -> FAULT (VIP removed), link up -> MASTER (VIP back),
    all through pyvrrp.adapters.netlink."""
    with veth_pair() as p:
        row = json.loads(p.run("a", DAEMON_IN_PROCESS.format(ifname=p.if_a)))
        assert row["states"] == ["MASTER", "FAULT", "MASTER"]
        assert row["vip"] == [True, False, True]
        assert row["netlink"] == "Netlink"
        assert row["rc"] == 0


ADD_MANY = """
import json, subprocess
from ipaddress import ip_interface
from pyvrrp.adapters.netlink import Netlink
IF = {ifname!r}
vips = [ip_interface(f"198.18.{{i // 250}}.{{i % 250 + 1}}/32") for i in range(300)]
with Netlink() as nl:
    nl.add(IF, vips[0])
    out = nl.add_many([(IF, v, None) for v in vips] + [("nope0", vips[1], None)])
    have = subprocess.run(["ip", "-o", "addr", "show", "dev", IF], capture_output=True, text=True).stdout
print(json.dumps(dict(results=[r if isinstance(r, bool) else str(r) for r in out],
                      present=sum(f" {{v}} " in have for v in vips))))
"""


def test_add_many_adds_every_vip_in_one_batch_with_per_vip_results() -> None:
    """Issue 15 item 3: a mass failover's VIPs in one call; results per VIP, as add() reports them."""
    with veth_pair() as p:
        row = json.loads(p.run("a", ADD_MANY.format(ifname=p.if_a)).splitlines()[-1])
        results = row["results"]
        assert results[0] is False and all(r is True for r in results[1:300])  # the first was there
        assert results[300].endswith("cannot add 198.18.0.2/32 to 'nope0': interface not found")
        assert row["present"] == 300
