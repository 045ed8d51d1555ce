"""Kernel facts for the I/O adapters, in two namespaces joined by a veth pair.

Every test builds its own ``pv-<random6>-a``/``-b`` namespaces (netns-tests/_ns.py)
and deletes them in ``finally``.  Adapter code runs in child processes started
with ``ip netns exec``; the pytest process stays in the root namespace and sends
no traffic.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from _ns import nsexec, recreate_link, veth_pair

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.timeout(120),
]


def _expect_ready(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if line != "ready":
        proc.kill()
        _out, err = proc.communicate(timeout=5)
        raise AssertionError(f"receiver not ready: {line!r}\n{err}")


def _finish(proc: subprocess.Popen[str], timeout_s: float = 15.0) -> list[dict]:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, f"child failed rc={proc.returncode}\n{err}"
    return [json.loads(line) for line in out.splitlines() if line.strip()]


RECEIVER = """
import asyncio, json
from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.proto.packet import decode, Advertisement
async def main():
    s = await VrrpSocket({ifname!r}, {family}, src={src!r}, unicast_peers={peers!r}).open()
    got = []
    done = asyncio.get_running_loop().create_future()
    def on_packet(payload, src, dst, ttl):
        adv = decode(payload, src=src, dst=dst)
        got.append(dict(src=str(src), dst=str(dst), ttl=ttl, ok=isinstance(adv, Advertisement),
                        prio=getattr(adv, "priority", None), detail=str(adv)))
        if len(got) >= {count} and not done.done():
            done.set_result(None)
    s.add_reader(on_packet)
    print("ready", flush=True)
    await asyncio.wait_for(done, 10)
    for g in got:
        print(json.dumps(g))
    print(json.dumps(dict(stats=vars(s.stats))))
    s.close()
asyncio.run(main())
"""

SENDER = """
import asyncio, json
from ipaddress import ip_address
from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.proto.packet import encode, Advertisement
async def main():
    s = VrrpSocket({ifname!r}, {family}, unicast_peers={peers!r})  # no default source ...
    await s.open()
    src = ip_address({src!r})
    vip = ip_address({vip!r})
    for prio in range({count}):
        adv = Advertisement(version=3, vrid=51, priority=100 + prio, addresses=(vip,), interval_cs=100)
        for dst in s.destinations():
            n = s.send(encode(adv, src=src, dst=dst), dst, src=src)  # ... but one per send
            assert n == 1, n
        await asyncio.sleep(0.01)
    print(json.dumps(vars(s.stats)))
    s.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("family", [4, 6])
def test_vrrp_socket_multicast_ttl_src_dst(family: int) -> None:
    """PKT-01, PKT-02, PKT-09, RX-01: adverts to the group arrive with TTL/hop limit 255 and our source."""
    with veth_pair() as p:
        src_a, src_b = (p.ip_a, p.ip_b) if family == 4 else (p.ll_a, p.ll_b)
        vip = "192.0.2.100" if family == 4 else "fe80::100"
        group = "224.0.0.18" if family == 4 else "ff02::12"
        rx = p.spawn("b", RECEIVER.format(ifname=p.if_b, family=family, src=src_b, peers=(), count=3))
        try:
            _expect_ready(rx)
            tx_out = p.run(
                "a", SENDER.format(ifname=p.if_a, family=family, src=src_a, peers=(), vip=vip, count=3)
            )
            rows = _finish(rx)
        finally:
            if rx.poll() is None:
                rx.kill()
        packets, stats = rows[:-1], rows[-1]["stats"]
        assert [r["prio"] for r in packets] == [100, 101, 102]
        for r in packets:
            assert r == {**r, "src": src_a, "dst": group, "ttl": 255, "ok": True}, r
        assert stats["rx_packets"] == 3 and stats["rx_errors"] == 0
        assert json.loads(tx_out)["tx_packets"] == 3


@pytest.mark.parametrize("family", [4, 6])
def test_vrrp_socket_unicast_peers(family: int) -> None:
    """PKT-02, RX-13: unicast mode sends one copy to each peer with TTL 255; dst is our address."""
    with veth_pair() as p:
        if family == 4:
            src_a, src_b, vip = p.ip_a, p.ip_b, "192.0.2.100"
        else:
            src_a, src_b, vip = p.ll_a, p.ll_b, "fe80::100"
        rx = p.spawn("b", RECEIVER.format(ifname=p.if_b, family=family, src=src_b, peers=(src_a,), count=2))
        try:
            _expect_ready(rx)
            p.run(
                "a",
                SENDER.format(ifname=p.if_a, family=family, src=src_a, peers=(src_b,), vip=vip, count=2),
            )
            rows = _finish(rx)
        finally:
            if rx.poll() is None:
                rx.kill()
        for r in rows[:-1]:
            assert (r["src"], r["dst"], r["ttl"], r["ok"]) == (src_a, src_b, 255, True), r


CAPTURE = """
import json, socket, time
from pyvrrp.adapters.arp import parse_arp, mac_to_str
from pyvrrp.adapters.ndisc import parse_na
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(({ifname!r}, 0))
s.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    t = time.monotonic()
    arp = parse_arp(frame)
    if arp is not None:
        print(json.dumps(dict(kind="arp", t=t, len=len(frame), op=arp.op, sha=mac_to_str(arp.sender_mac),
              spa=str(arp.sender_ip), tha=mac_to_str(arp.target_mac), tpa=str(arp.target_ip),
              eth_dst=mac_to_str(arp.eth_dst))), flush=True)
        continue
    na = parse_na(frame)
    if na is not None and na.src != na.target or na is not None:
        print(json.dumps(dict(kind="na", t=t, target=str(na.target), hlim=na.hop_limit, r=na.router,
              s=na.solicited, o=na.override, tlla=mac_to_str(na.target_mac or b""), ok=na.checksum_ok,
              dst=str(na.dst))), flush=True)
"""

ANNOUNCE = """
import asyncio, json, time
from ipaddress import ip_interface
from pyvrrp.adapters.arp import AnnounceSender, mac_to_str
async def main():
    async with await AnnounceSender.open({ifname!r}) as snd:
        t0 = time.perf_counter()
        n = await snd.announce([ip_interface("192.0.2.10/24"), ip_interface("2001:db8::10/64")], repeat=5)
        dt = time.perf_counter() - t0
        print(json.dumps(dict(sent=n, seconds=dt, mac=mac_to_str(snd.mac), errors=snd.send_errors)))
asyncio.run(main())
"""


def test_garp_and_na_burst_on_the_wire() -> None:
    """ARP-02, ARP-07: 5 GARPs (keepalived format) + 5 unsolicited NAs per VIP, sent back to back."""
    with veth_pair() as p:
        mac_a = p.mac("a")
        cap = p.spawn("b", CAPTURE.format(ifname=p.if_b, seconds=2.0))
        try:
            _expect_ready(cap)
            res = json.loads(p.run("a", ANNOUNCE.format(ifname=p.if_a)))
            rows = _finish(cap)
        finally:
            if cap.poll() is None:
                cap.kill()
        assert res["sent"] == 10 and res["errors"] == 0 and res["mac"] == mac_a
        assert res["seconds"] < 0.01  # a burst, not paced (typically ~0.2 ms for 10 frames)
        garps = [r for r in rows if r["kind"] == "arp" and r["sha"] == mac_a and r["op"] == 1]
        assert len(garps) == 5
        for g in garps:
            assert g["len"] == 42
            assert (g["spa"], g["tpa"], g["tha"], g["eth_dst"]) == (
                "192.0.2.10",
                "192.0.2.10",
                "ff:ff:ff:ff:ff:ff",
                "ff:ff:ff:ff:ff:ff",
            )
        nas = [r for r in rows if r["kind"] == "na" and r["target"] == "2001:db8::10"]
        assert len(nas) == 5
        for n in nas:
            assert (n["hlim"], n["r"], n["s"], n["o"], n["tlla"], n["ok"], n["dst"]) == (
                255,
                True,
                False,
                True,
                mac_a,
                True,
                "ff02::1",
            )
        times = [r["t"] for r in garps + nas]
        assert max(times) - min(times) < 0.05


NETLINK = """
import asyncio, json, subprocess
from ipaddress import ip_interface, ip_address
from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.netlink import Netlink, NetlinkMonitor, LinkEvent, AddressEvent
IF = {ifname!r}
def out(**kw):
    print(json.dumps(kw, default=str), flush=True)
async def main():
    with Netlink() as nl:
        out(step="facts", index=nl.link_index(IF), mac=nl.link_mac(IF),
            up=nl.link_is_up(IF), p4=nl.primary_address(IF, 4),
            p6=nl.primary_address(IF, 6))
        try:
            nl.link_index("nope0")
        except InterfaceNotFound as exc:
            out(step="missing", message=str(exc))
        try:
            nl.add("nope0", ip_interface("192.0.2.50/24"))
        except OSError as exc:
            out(step="missing_add", message=str(exc))
        v4, v6 = ip_interface("192.0.2.10/24"), ip_interface("2001:db8::10/64")
        added = [nl.add(IF, v4, label=IF + ":vip"), nl.add(IF, v6), nl.add(IF, v4), nl.add(IF, v6)]
        out(step="added", added=added, addrs=[str(a) for a in nl.list_addresses(IF)],
            p4_excl=nl.primary_address(IF, 4, exclude=[ip_address({ip!r})]))
        mon = NetlinkMonitor([IF])
        await mon.start()
        events = []
        async def collect():
            async for ev in mon.events():
                events.append(ev)
                if isinstance(ev, LinkEvent) and not ev.up:
                    return
        task = asyncio.create_task(collect())
        subprocess.run(["ip", "addr", "del", "192.0.2.10/24", "dev", IF], check=True)
        subprocess.run(["ip", "link", "set", IF, "down"], check=True)
        await asyncio.wait_for(task, 5)
        mon.close()
        out(step="events", events=[
            dict(type=type(e).__name__, **{{k: str(getattr(e, k)) for k in e.__slots__}}) for e in events
        ])
        out(step="removed", again=nl.remove(IF, v4), v6=nl.remove(IF, v6), up=nl.link_is_up(IF))
asyncio.run(main())
"""


def test_netlink_vips_facts_and_monitor() -> None:
    """SM-08, SM-03, SM-16, PKT-09: idempotent VIP add/remove, primary address, monitor (del, link down)."""
    with veth_pair() as p:
        rows = {
            r["step"]: r
            for r in map(json.loads, p.run("a", NETLINK.format(ifname=p.if_a, ip=p.ip_a)).splitlines())
        }
        facts = rows["facts"]
        assert facts["mac"] == p.mac("a")
        assert facts["up"] is True
        assert (facts["p4"], facts["p6"]) == (p.ip_a, p.ll_a)
        assert rows["missing"]["message"] == "interface 'nope0' not found"
        assert "nope0" in rows["missing_add"]["message"]
        added = rows["added"]
        assert added["added"] == [True, True, False, False]
        assert "192.0.2.10/24" in added["addrs"] and "2001:db8::10/64" in added["addrs"]
        # with the real primary excluded, the VIP (same /24, so a kernel "secondary") is not a primary
        assert added["p4_excl"] is None
        evs = rows["events"]["events"]
        assert {
            "type": "AddressEvent",
            "ifname": p.if_a,
            "index": str(facts["index"]),
            "address": "192.0.2.10/24",
            "added": "False",
        } in evs
        assert evs[-1]["type"] == "LinkEvent" and evs[-1]["up"] == "False" and evs[-1]["ifname"] == p.if_a
        removed = rows["removed"]
        assert removed["again"] is False  # already deleted by `ip addr del`
        assert removed["up"] is False


def test_ipv6_vip_nodad_flag() -> None:
    """ARP-07 prerequisite: an IPv6 VIP is added with nodad, so it is not tentative."""
    with veth_pair() as p:
        p.run(
            "a",
            f"""
from ipaddress import ip_interface
from pyvrrp.adapters.netlink import Netlink
with Netlink() as nl:
    assert nl.add({p.if_a!r}, ip_interface("2001:db8::20/64"))
""",
        )
        info = json.loads(nsexec(p.a, "ip", "-j", "-6", "addr", "show", "dev", p.if_a).stdout)
        addrs = {a["local"]: a for a in info[0]["addr_info"]}
        assert addrs["2001:db8::20"].get("nodad") is True
        assert not addrs["2001:db8::20"].get("tentative", False)


FLOOD_RX = """
import asyncio, json, time
from pyvrrp.adapters.vrrp_socket import VrrpSocket
async def main():
    loop = asyncio.get_running_loop()
    s = await VrrpSocket({ifname!r}, 4, src={src!r}, max_batch=8).open()
    n = 0
    def on_packet(payload, src, dst, ttl):
        nonlocal n
        n += 1
    s.add_reader(on_packet)
    late = []
    async def ticker():
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            late.append(loop.time() - t - 0.005)
    tick = asyncio.create_task(ticker())
    print("ready", flush=True)
    await asyncio.sleep(3.0)
    tick.cancel()
    print(json.dumps(dict(n=n, max_late=max(late), ticks=len(late), stats=vars(s.stats))))
asyncio.run(main())
"""

FLOOD_TX = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, 25, {ifname!r}.encode())
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
payload = bytes.fromhex("3101640100640000") + bytes(4)
end = time.monotonic() + 1.0
sent = 0
while time.monotonic() < end:
    for _ in range(200):
        try:
            s.sendto(payload, ("224.0.0.18", 0))
            sent += 1
        except OSError:
            pass
print(sent)
"""


def test_vrrp_socket_flood_keeps_timers_running() -> None:
    """RX-12 robustness: a VRRP flood is drained in bounded batches; loop timers keep firing."""
    with veth_pair() as p:
        rx = p.spawn("b", FLOOD_RX.format(ifname=p.if_b, src=p.ip_b))
        try:
            _expect_ready(rx)
            sent = int(p.run("a", FLOOD_TX.format(ifname=p.if_a)))
            row = _finish(rx)[0]
        finally:
            if rx.poll() is None:
                rx.kill()
        assert sent > 1000
        assert row["n"] > 1000
        assert row["stats"]["rx_batches_full"] > 0  # the drain loop yielded to the loop under load
        assert row["ticks"] > 100
        assert row["max_late"] < 0.1, row


SYNC_NETLINK = """
import asyncio, json, subprocess
from ipaddress import ip_interface
from pyvrrp.adapters.netlink import Netlink, InterfaceNotFound, LinkEvent
from pyvrrp.adapters.arp import Announcer
IF = {ifname!r}
async def main():
    nl = Netlink()              # blocking calls, made from inside the running loop
    ann = Announcer()
    vip = ip_interface("192.0.2.30/24")
    res = dict(up=nl.link_is_up(IF), p4=str(nl.primary_address(IF, 4)),
               added=[nl.add(IF, vip), nl.add(IF, vip)],
               garps=ann.announce(IF, [vip], repeat=3))
    try:
        nl.link_mac("nope0")
    except InterfaceNotFound as exc:
        res["missing"] = str(exc)
    events = []
    async def watch():
        async for ev in nl.events([IF]):
            events.append(repr(ev))
            if isinstance(ev, LinkEvent):
                return
    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    res["removed"] = [nl.remove(IF, vip), nl.remove(IF, vip)]
    await asyncio.to_thread(subprocess.run, ["ip", "link", "set", IF, "down"], check=True)
    await asyncio.wait_for(task, 5)
    res["events"] = events
    res["addrs"] = [str(a) for a in nl.list_addresses(IF)]
    ann.close()
    nl.close()
    print(json.dumps(res))
asyncio.run(main())
"""


def test_netlink_inside_running_loop_and_announcer() -> None:
    """SM-08, SM-03, SM-05, ARP-02: Netlink works inside a running loop; Announcer sends GARPs."""
    with veth_pair() as p:
        res = json.loads(p.run("a", SYNC_NETLINK.format(ifname=p.if_a)))
        assert res["up"] is True and res["p4"] == p.ip_a
        assert res["added"] == [True, False]
        assert res["removed"] == [True, False]
        assert res["garps"] == 3
        assert res["missing"] == "interface 'nope0' not found"
        assert any("192.0.2.30/24" in e and "added=False" in e for e in res["events"])
        assert res["events"][-1].startswith("LinkEvent(") and "up=False" in res["events"][-1]
        assert "192.0.2.30/24" not in res["addrs"]


RAW_TTL_TX = """
import socket
fam = {family}
if fam == 4:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, 25, {ifname!r}.encode())
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 64)
    s.sendto(bytes.fromhex("3101640100640000") + bytes(4), ("224.0.0.18", 0))
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
    s.setsockopt(socket.SOL_SOCKET, 25, {ifname!r}.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 64)
    idx = socket.if_nametoindex({ifname!r})
    s.sendto(bytes.fromhex("3101640100640000") + bytes(16), ("ff02::12", 0, 0, idx))
"""

SELF_RX = """
import asyncio, json
from ipaddress import ip_address
from pyvrrp.adapters.vrrp_socket import VrrpSocket
async def main():
    s = await VrrpSocket({ifname!r}, {family}, src={src!r}).open()
    got = []
    s.add_reader(lambda *a: got.append(a))
    sent = s.send(b"\\x31\\x01\\x64\\x01\\x00\\x64\\x00\\x00" + bytes({alen}))
    await asyncio.sleep(0.3)
    print(json.dumps(dict(sent=sent, own=len(got))))
asyncio.run(main())
"""


@pytest.mark.parametrize("family", [4, 6])
def test_reports_real_ttl_and_ignores_own_packets(family: int) -> None:
    """RX-01: a TTL/hop limit of 64 is reported as 64 (so the engine can drop it); our own adverts
    are not looped back to us (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP off)."""
    with veth_pair() as p:
        src_b = p.ip_b if family == 4 else p.ll_b
        rx = p.spawn("b", RECEIVER.format(ifname=p.if_b, family=family, src=src_b, peers=(), count=1))
        try:
            _expect_ready(rx)
            p.run("a", RAW_TTL_TX.format(ifname=p.if_a, family=family))
            rows = _finish(rx)
        finally:
            if rx.poll() is None:
                rx.kill()
        assert rows[0]["ttl"] == 64
        src_a = p.ip_a if family == 4 else p.ll_a
        res = json.loads(
            p.run("a", SELF_RX.format(ifname=p.if_a, family=family, src=src_a, alen=4 if family == 4 else 16))
        )
        assert res == {"sent": 1, "own": 0}


REOPEN_RX = """
import asyncio, json, sys
from pyvrrp.adapters.vrrp_socket import VrrpSocket
async def main():
    loop = asyncio.get_running_loop()
    s = await VrrpSocket({ifname!r}, 4, src={src!r}).open()
    got = []
    s.add_reader(lambda payload, src, dst, ttl: got.append(ttl))
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # link re-created meanwhile
    await asyncio.sleep(1.0)
    before = len(got)
    await s.reopen()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # second send done
    await asyncio.sleep(0.5)
    print(json.dumps(dict(before=before, after=len(got) - before)))
asyncio.run(main())
"""


def test_reopen_after_interface_recreated() -> None:
    """A socket bound to a deleted interface hears nothing from its namesake; reopen() fixes it."""
    with veth_pair() as p:
        rx = p.spawn("b", REOPEN_RX.format(ifname=p.if_b, src=p.ip_b), stdin=True)
        try:
            _expect_ready(rx)
            recreate_link(p)
            sender = SENDER.format(ifname=p.if_a, family=4, src=p.ip_a, peers=(), vip="192.0.2.100", count=3)
            p.run("a", sender)
            assert rx.stdin is not None
            rx.stdin.write("go\n")
            rx.stdin.flush()
            _expect_ready(rx)
            p.run("a", sender)
            rx.stdin.write("go\n")
            rx.stdin.flush()
            row = _finish(rx)[0]
        finally:
            if rx.poll() is None:
                rx.kill()
        assert row == {"before": 0, "after": 3}


RESYNC = """
import asyncio, errno, json, subprocess
from pyvrrp.adapters.netlink import NetlinkMonitor, LinkEvent
IF = {ifname!r}
class Overflowed:
    def __init__(self, real):
        self.real = real
    def get(self):
        raise OSError(errno.ENOBUFS, "No buffer space available")
    def close(self):
        self.real.close()
async def main():
    mon = NetlinkMonitor([IF])
    await mon.start()
    mon._ipr = Overflowed(mon._ipr)          # the kernel dropped our events ...
    subprocess.run(["ip", "link", "set", IF, "down"], check=True)   # ... including this one
    agen = mon.events()
    ev = await asyncio.wait_for(agen.__anext__(), 5)
    print(json.dumps(dict(ev=repr(ev), known=mon.is_up(IF))))
    await agen.aclose()
    mon.close()
asyncio.run(main())
"""


def test_monitor_resyncs_link_state_after_overflow() -> None:
    """After ENOBUFS the monitor re-reads links and reports the link-down it missed."""
    with veth_pair() as p:
        row = json.loads(p.run("a", RESYNC.format(ifname=p.if_a)))
        assert row["ev"].startswith("LinkEvent(") and "up=False" in row["ev"] and p.if_a in row["ev"]
        assert row["known"] is False
