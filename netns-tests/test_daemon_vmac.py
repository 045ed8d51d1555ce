"""use_vmac on real links: the macvlan, its MAC on the wire, failover, stop, interop (issue 16).

Kernel facts only: the macvlan pyvrrp creates (kind, mode, MAC, sysctls), the MAC a
client's ARP gets for the VIP, the source MAC of adverts and GARPs on the bridge, and the
link gone after stop.  keepalived 2.2.7 with ``use_vmac`` runs on the other side for the
interop cases, both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _daemon_helpers import sighup, write_config

from pyvrrp.lab import make_node
from pyvrrp.lab.capture import Capture
from pyvrrp.lab.topology import LAB_IFNAME, VIP4, VIP6, DaemonNode, InstanceSpec, Lab, PyvrrpNode, wait_for

pytestmark = [pytest.mark.netns]

VRID = 51
VMAC = f"00:00:5e:00:01:{VRID:02x}"
VMAC_IF = f"vrrp.{VRID}"


def spec(daemon: str, priority: int, *, xmit_base: bool = False, version: int = 3, **kw: Any) -> InstanceSpec:
    extra: dict[str, Any]
    if daemon == "pyvrrp":
        extra = {"use_vmac": True} | ({"vmac_xmit_base": True} if xmit_base else {})
    else:
        extra = {"use_vmac": ""} | ({"vmac_xmit_base": ""} if xmit_base else {})
    advert = 0.1 if version == 3 else 1.0
    return InstanceSpec(priority=priority, version=version, advert_int_s=advert, extra=extra, **kw)


def link(lab: Lab, host: str, ifname: str) -> dict[str, Any] | None:
    proc = lab.ip_cmd(host, "-d", "-j", "link", "show", ifname, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def addrs(lab: Lab, host: str, ifname: str) -> list[str]:
    proc = lab.ip_cmd(host, "-j", "addr", "show", "dev", ifname, check=False)
    if proc.returncode != 0:
        return []
    return [a["local"] for i in json.loads(proc.stdout) for a in i.get("addr_info", [])]


def sysctl(lab: Lab, host: str, key: str) -> str:
    """``net.ipv4.conf.IF.key`` read from /proc (an interface name may contain dots)."""
    net, fam, conf, *ifparts, leaf = key.split(".")
    path = "/".join(["/proc/sys", net, fam, conf, ".".join(ifparts), leaf])
    return lab.exec(host, ["cat", path]).stdout.strip()


def holds_vip(lab: Lab, host: str) -> bool:
    return VIP4 in addrs(lab, host, VMAC_IF)


def start_pair(lab: Lab, d1: str, d2: str, **kw: Any) -> tuple[DaemonNode, DaemonNode]:
    """lb1 (priority 150) starts first and becomes MASTER, then lb2 (100) as BACKUP."""
    n1 = make_node(lab, "lb1", d1, [spec(d1, 150, **kw)])
    n1.start()
    n1.wait_state("MASTER", 15.0)
    n2 = make_node(lab, "lb2", d2, [spec(d2, 100, **kw)])
    n2.start()
    n2.wait_state("BACKUP", 15.0)
    return n1, n2


def test_vmac_link_sysctls_arp_failover_and_stop(lab: Lab) -> None:
    """ARP-01, ARP-03, ARP-04: the master answers ARP for the VIP with the VMAC only, the backup
    not at all; GARPs and adverts leave the macvlan; kill -9, takeover, same MAC; stop removes it."""
    lb1, lb2 = start_pair(lab, "pyvrrp", "pyvrrp")
    # the macvlan as keepalived makes it: private mode on eth0, virtual MAC, up on both nodes
    for host in ("lb1", "lb2"):
        info = link(lab, host, VMAC_IF)
        assert info is not None, f"{host}: no {VMAC_IF}"
        assert info["address"] == VMAC
        assert info["linkinfo"]["info_kind"] == "macvlan"
        assert info["linkinfo"]["info_data"]["mode"] == "private"
        assert info["link"] == LAB_IFNAME
        assert "UP" in info["flags"]
        assert sysctl(lab, host, f"net.ipv4.conf.{VMAC_IF}.arp_ignore") == "1"
        assert sysctl(lab, host, f"net.ipv4.conf.{VMAC_IF}.accept_local") == "1"
        assert sysctl(lab, host, f"net.ipv4.conf.{VMAC_IF}.rp_filter") == "0"
        assert sysctl(lab, host, f"net.ipv6.conf.{VMAC_IF}.disable_ipv6") == "1"
        assert sysctl(lab, host, f"net.ipv4.conf.{LAB_IFNAME}.arp_ignore") == "1"
        assert sysctl(lab, host, f"net.ipv4.conf.{LAB_IFNAME}.arp_filter") == "1"
        assert sysctl(lab, host, f"net.ipv4.conf.{LAB_IFNAME}.arp_announce") == "2"
    assert holds_vip(lab, "lb1") and not holds_vip(lab, "lb2")
    assert VIP4 not in addrs(lab, "lb1", LAB_IFNAME)
    view = lb1.instance("VI_51")  # type: ignore[attr-defined]
    assert view is not None and view["vmac"] == {"interface": VMAC_IF, "mac": VMAC, "xmit": VMAC_IF}

    # the client's ARP for the VIP gets the virtual MAC, from the master only
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    lab.exec("client", ["ping", "-c", "1", "-W", "2", VIP4])
    assert lab.client_arp_mac() == VMAC

    # kill -9 the master: lb2 takes over, the client's neighbour entry stays right
    with Capture(lab) as cap:
        time.sleep(0.3)  # a few of lb1's adverts on the capture first
        lb1.kill9()
        lb2.wait_state("MASTER", 10.0)
        wait_for(lambda: holds_vip(lab, "lb2"), 5.0, what="lb2 holds the VIP on its macvlan")
        lab.exec("client", ["ping", "-c", "1", "-W", "2", VIP4])
        time.sleep(0.5)
    assert lab.client_arp_mac() == VMAC
    events = cap.events()
    lb2_mac = lab.mac("lb2")
    garps = [e for e in events if e.kind == "garp" and e.target == VIP4]
    assert garps and {e.src_mac for e in garps} == {VMAC}, garps
    lb2_adverts = [e for e in events if e.kind == "advert" and e.vrid == VRID and e.priority == 100]
    assert lb2_adverts and {e.src_mac for e in lb2_adverts} == {VMAC}, "adverts leave the macvlan"
    assert lb2_mac not in {e.src_mac for e in lb2_adverts}
    # takeover timing through the macvlan: RFC 5798 §6.4.2 Master_Down_Interval after lb1's last
    # advert (3 x 0.1 s + skew 0.061 s), wide margin for a loaded VM
    lb1_last = max(e.t for e in events if e.kind == "advert" and e.priority == 150)
    took_s = min(e.t for e in lb2_adverts) - lb1_last
    first_garp_s = min(e.t for e in garps) - min(e.t for e in lb2_adverts)
    print(f"vmac takeover {took_s * 1000:.1f} ms after lb1's last advert (expected 361 ms); "
          f"first GARP {first_garp_s * 1000:.2f} ms after the first advert")  # fmt: skip
    assert 0.3 < took_s < 2.5, took_s

    # SIGTERM: the macvlan goes, the base's ARP sysctls come back
    assert lb2.stop() == 0
    assert link(lab, "lb2", VMAC_IF) is None
    assert sysctl(lab, "lb2", f"net.ipv4.conf.{LAB_IFNAME}.arp_ignore") == "0"
    assert sysctl(lab, "lb2", f"net.ipv4.conf.{LAB_IFNAME}.arp_filter") == "0"
    assert sysctl(lab, "lb2", f"net.ipv4.conf.{LAB_IFNAME}.arp_announce") == "0"


def test_vmac_xmit_base_sends_adverts_from_the_base(lab: Lab) -> None:
    with Capture(lab) as cap:
        _lb1, lb2 = start_pair(lab, "pyvrrp", "pyvrrp", xmit_base=True)
        time.sleep(1.0)
    assert lb2.state() == "BACKUP"  # it hears lb1's adverts on the base
    events = cap.events()
    ads = [e for e in events if e.kind == "advert" and e.vrid == VRID and e.priority == 150]
    assert ads and {e.src_mac for e in ads} == {lab.mac("lb1")}
    garps = [e for e in events if e.kind == "garp" and e.target == VIP4]
    assert garps and {e.src_mac for e in garps} == {VMAC}
    assert holds_vip(lab, "lb1")


def test_stale_vmac_is_replaced_and_a_foreign_link_refused(lab: Lab) -> None:
    # a macvlan of that name with a wrong MAC (an earlier run with another config): replaced
    lab.ip_cmd("lb1", "link", "add", VMAC_IF, "link", LAB_IFNAME, "type", "macvlan", "mode", "bridge")
    node = PyvrrpNode(lab, "lb1", instances=[spec("pyvrrp", 150)])
    node.start()
    node.wait_state("MASTER", 15.0)
    info = link(lab, "lb1", VMAC_IF)
    assert info is not None and info["address"] == VMAC and info["linkinfo"]["info_data"]["mode"] == "private"
    assert "vmac_replaced" in node.log_text()
    node.stop()
    assert link(lab, "lb1", VMAC_IF) is None

    # a link that is not a macvlan: never touched, the daemon says so and does not start
    lab.ip_cmd("lb2", "link", "add", VMAC_IF, "type", "veth", "peer", "name", "vmacpeer")
    node2 = PyvrrpNode(lab, "lb2", instances=[spec("pyvrrp", 100)])
    node2.start()
    assert node2.proc is not None
    rc = node2.proc.wait(timeout=20)
    assert rc != 0
    log = node2.log_text()
    assert f"vrrp_instance.VI_51.use_vmac: {VMAC_IF} exists and is a veth, not a macvlan" in log, log[-2000:]
    assert link(lab, "lb2", VMAC_IF) is not None
    assert "Traceback" not in log


@pytest.mark.keepalived
@pytest.mark.parametrize("xmit_base", [False, True], ids=["vmac", "xmit_base"])
@pytest.mark.parametrize("pv_role", ["master", "backup"])
def test_vmac_interop_keepalived(lab: Lab, pv_role: str, xmit_base: bool) -> None:
    """pyvrrp and keepalived 2.2.7, both with use_vmac (both with vmac_xmit_base, or neither):
    election, kill -9 the master, takeover."""
    d1, d2 = ("pyvrrp", "keepalived") if pv_role == "master" else ("keepalived", "pyvrrp")
    lb1, lb2 = start_pair(lab, d1, d2, version=2, xmit_base=xmit_base)
    for host in ("lb1", "lb2"):
        info = link(lab, host, VMAC_IF)
        assert info is not None and info["address"] == VMAC, f"{host}: {info}"
    wait_for(lambda: holds_vip(lab, "lb1"), 5.0, what="lb1 holds the VIP on its macvlan")
    time.sleep(3.5)  # longer than lb2's Master_Down_Interval (v2, 1 s): it accepts lb1's adverts
    assert lb2.state() == "BACKUP"
    assert not holds_vip(lab, "lb2")
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    lb1.kill9()
    lb2.wait_state("MASTER", 10.0)
    wait_for(lambda: holds_vip(lab, "lb2"), 5.0, what="lb2 holds the VIP on its macvlan")
    lab.flush_neigh()
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    lab.exec("client", ["ping", "-c", "1", "-W", "2", VIP4])


# ----------------------------------------------------------------------------- FRR vrrpd

FRR_BIN = Path("/usr/lib/frr")
FRR_VMAC = f"vrrp4-2-{VRID}"


class FrrNode:
    """zebra + vrrpd (Debian's FRR 8.4) in a lab host, with every path under a private dir.

    FRR never creates macvlans: as its docs tell the operator, the test creates
    ``vrrp4-2-VRID`` (bridge mode, the virtual MAC) on eth0 with the VIP on it; vrrpd finds
    it by MAC and holds it protodown while BACKUP.  FRR adds no address either: the VIP
    stays on the macvlan, and the base gets arp_ignore=1 / arp_announce=2 so that it does not
    answer for it with its own MAC.
    """

    def __init__(self, lab: Lab, host: str, priority: int) -> None:
        self.lab, self.host, self.priority = lab, host, priority
        self.dir = Path(tempfile.mkdtemp(prefix="pvfrr-"))
        self.dir.chmod(0o777)  # zebra and vrrpd drop to the frr user
        self.vrrpd: subprocess.Popen[Any] | None = None
        self.zebra: subprocess.Popen[Any] | None = None

    def common(self, daemon: str) -> list[str]:
        d = self.dir
        return [
            str(FRR_BIN / daemon),
            "-f", str(d / f"{daemon}.conf"),
            "-i", str(d / f"{daemon}.pid"),
            "-z", str(d / "zserv.api"),
            "--vty_socket", str(d),
            "-P", "0",
            "--log", f"file:{d / (daemon + '.log')}",
            "-u", "frr", "-g", "frr",
        ]  # fmt: skip

    def start(self) -> None:
        lab = self.lab
        lab.ip_cmd(
            self.host, "link", "add", FRR_VMAC, "link", LAB_IFNAME, "type", "macvlan", "mode", "bridge"
        )
        lab.ip_cmd(self.host, "link", "set", FRR_VMAC, "address", VMAC)
        lab.ip_cmd(self.host, "addr", "add", f"{VIP4}/32", "dev", FRR_VMAC)
        lab.ip_cmd(self.host, "link", "set", FRR_VMAC, "up")
        # the operator's part too: the base must not answer ARP for the VIP on the macvlan
        # (the sysctls keepalived and pyvrrp set themselves)
        for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
            lab.exec(self.host, ["sh", "-c", f"echo {value} > /proc/sys/net/ipv4/conf/{LAB_IFNAME}/{key}"])
        (self.dir / "zebra.conf").write_text(f"hostname frr-{self.host}\n")
        (self.dir / "vrrpd.conf").write_text(
            f"hostname frr-{self.host}\ninterface {LAB_IFNAME}\n vrrp {VRID} version 3\n"
            f" vrrp {VRID} priority {self.priority}\n vrrp {VRID} advertisement-interval 100\n"
            f" vrrp {VRID} ip {VIP4}\n!\n"
        )
        for f in self.dir.iterdir():
            f.chmod(0o666)
        out = subprocess.DEVNULL
        self.zebra = lab.popen(self.host, self.common("zebra"), stdout=out, stderr=out)
        wait_for(lambda: (self.dir / "zserv.api").exists(), 10.0, what="zebra's zserv socket")
        self.start_vrrpd()

    def start_vrrpd(self) -> None:
        out = subprocess.DEVNULL
        self.vrrpd = self.lab.popen(self.host, self.common("vrrpd"), stdout=out, stderr=out)
        wait_for(lambda: (self.dir / "vrrpd.vty").exists(), 10.0, what="vrrpd's vty socket")

    def state(self) -> str | None:
        proc = subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "-c", f"show vrrp {VRID} json"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        entry = data[0] if isinstance(data, list) and data else data
        return str(entry.get("v4", {}).get("status", "")).upper() or None

    def wait_state(self, want: str, timeout_s: float) -> None:
        wait_for(lambda: self.state() == want, timeout_s, what=f"FRR on {self.host} {want}")

    def kill9_vrrpd(self) -> None:
        assert self.vrrpd is not None
        os.killpg(self.vrrpd.pid, signal.SIGKILL)
        self.vrrpd.wait(timeout=5)

    def close(self) -> None:
        for proc in (self.vrrpd, self.zebra):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(self.dir.glob("*.log")))


@pytest.fixture
def frr(lab: Lab) -> Iterator[Callable[[str, int], FrrNode]]:
    if not (FRR_BIN / "vrrpd").exists():
        pytest.skip("FRR (frr package: /usr/lib/frr/vrrpd) is not installed")
    nodes: list[FrrNode] = []

    def make(host: str, priority: int) -> FrrNode:
        node = FrrNode(lab, host, priority)
        nodes.append(node)
        node.start()
        return node

    yield make
    for node in nodes:
        node.close()


def test_vmac_interop_frr_master_pyvrrp_backup(lab: Lab, frr: Callable[[str, int], FrrNode]) -> None:
    f = frr("lb1", 150)
    f.wait_state("MASTER", 15.0)
    pv = PyvrrpNode(lab, "lb2", instances=[spec("pyvrrp", 100)])
    pv.start()
    pv.wait_state("BACKUP", 15.0)
    time.sleep(1.0)  # ~3 x its Master_Down_Interval (0.36 s): it accepts FRR's adverts
    assert pv.state() == "BACKUP", pv.log_text()[-2000:]
    assert not holds_vip(lab, "lb2")
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    f.kill9_vrrpd()
    pv.wait_state("MASTER", 10.0)
    assert holds_vip(lab, "lb2")
    # FRR comes back with the higher priority and preempts: pyvrrp drops the VIP
    f.start_vrrpd()
    f.wait_state("MASTER", 15.0)
    pv.wait_state("BACKUP", 10.0)
    wait_for(lambda: not holds_vip(lab, "lb2"), 5.0, what="pyvrrp released the VIP")


def test_vmac_interop_pyvrrp_master_frr_backup(lab: Lab, frr: Callable[[str, int], FrrNode]) -> None:
    pv = PyvrrpNode(lab, "lb1", instances=[spec("pyvrrp", 150)])
    pv.start()
    pv.wait_state("MASTER", 15.0)
    f = frr("lb2", 100)
    f.wait_state("BACKUP", 15.0)
    time.sleep(1.0)
    assert f.state() == "BACKUP", f.log()
    assert pv.state() == "MASTER"
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    pv.stop()  # priority 0: FRR takes over after Skew_Time
    assert link(lab, "lb1", VMAC_IF) is None
    f.wait_state("MASTER", 10.0)
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    lab.exec("client", ["ping", "-c", "1", "-W", "2", VIP4])


def test_vmac_ipv6(lab_factory: Callable[..., Lab]) -> None:
    """ARP-07, ARP-08: an IPv6 instance: MAC 00:00:5e:00:02:VRID, the base's link-local on the macvlan (the
    adverts' source), the VIP and unsolicited NAs on it; kill -9, the backup takes over."""
    lab = lab_factory(ipv6=True)
    vmac6 = f"00:00:5e:00:02:{VRID:02x}"
    vips = (f"{VIP6}/128",)
    n1 = PyvrrpNode(lab, "lb1", instances=[spec("pyvrrp", 150, vips=vips)])
    n1.start()
    n1.wait_state("MASTER", 15.0)
    n2 = PyvrrpNode(lab, "lb2", instances=[spec("pyvrrp", 100, vips=vips)])
    n2.start()
    n2.wait_state("BACKUP", 15.0)
    info = link(lab, "lb1", VMAC_IF)
    assert info is not None and info["address"] == vmac6
    base_ll = [a for a in addrs(lab, "lb1", LAB_IFNAME) if a.startswith("fe80:")]
    assert base_ll and base_ll[0] in addrs(lab, "lb1", VMAC_IF)
    assert VIP6 in addrs(lab, "lb1", VMAC_IF) and VIP6 not in addrs(lab, "lb2", VMAC_IF)
    # only the configured link-local: no EUI-64 address from the virtual MAC (addr_gen_mode 1)
    assert [a for a in addrs(lab, "lb1", VMAC_IF) if a.startswith("fe80:")] == base_ll[:1]
    time.sleep(1.0)
    assert n2.state() == "BACKUP"
    with Capture(lab) as cap:
        n1.kill9()
        n2.wait_state("MASTER", 10.0)
        wait_for(lambda: VIP6 in addrs(lab, "lb2", VMAC_IF), 5.0, what="lb2 holds the IPv6 VIP")
        time.sleep(0.3)
    events = cap.events()
    nas = [e for e in events if e.kind == "na" and e.target == VIP6]
    assert nas and {e.src_mac for e in nas} == {vmac6}, nas
    ads = [e for e in events if e.kind == "advert" and e.priority == 100]
    assert ads and {e.src_mac for e in ads} == {vmac6}
    lab.exec("client", ["ping", "-6", "-c", "1", "-W", "2", VIP6])
    assert n2.stop() == 0
    assert link(lab, "lb2", VMAC_IF) is None


def test_vmac_deleted_under_the_master_is_recreated(lab: Lab) -> None:
    lb1, lb2 = start_pair(lab, "pyvrrp", "pyvrrp")
    lab.ip_cmd("lb1", "link", "del", VMAC_IF)
    # FAULT (lb2 takes over), then the macvlan is back and lb1 preempts again
    wait_for(lambda: link(lab, "lb1", VMAC_IF) is not None, 10.0, what="lb1 re-created its macvlan")
    lb1.wait_state("MASTER", 15.0)
    wait_for(lambda: holds_vip(lab, "lb1"), 5.0, what="lb1 holds the VIP again")
    lb2.wait_state("BACKUP", 10.0)
    assert "vmac_deleted_externally" in lb1.log_text()
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}


def test_vmac_unicast_with_xmit_base(lab: Lab) -> None:
    """Unicast peers with use_vmac need vmac_xmit_base (keepalived.conf(5)): adverts go unicast
    from the base, the VIP and its GARPs still use the virtual MAC; kill -9, takeover."""
    ip1, ip2 = lab.ip("lb1"), lab.ip("lb2")
    n1 = PyvrrpNode(
        lab, "lb1", instances=[spec("pyvrrp", 150, xmit_base=True, unicast_src=ip1, unicast_peers=(ip2,))]
    )
    n1.start()
    n1.wait_state("MASTER", 15.0)
    n2 = PyvrrpNode(
        lab, "lb2", instances=[spec("pyvrrp", 100, xmit_base=True, unicast_src=ip2, unicast_peers=(ip1,))]
    )
    n2.start()
    n2.wait_state("BACKUP", 15.0)
    time.sleep(1.0)
    assert n2.state() == "BACKUP"
    assert set(lab.arping("client", VIP4, count=2)) == {VMAC}
    with Capture(lab) as cap:
        time.sleep(0.3)
        n1.kill9()
        n2.wait_state("MASTER", 10.0)
        time.sleep(0.3)
    ads = [e for e in cap.events() if e.kind == "advert" and e.vrid == VRID]
    assert ads and all(e.dst_ip in (ip1, ip2) for e in ads)
    assert {e.src_mac for e in ads if e.priority == 100} == {lab.mac("lb2")}
    assert holds_vip(lab, "lb2")


def _base_arp(lab: Lab, host: str) -> list[str]:
    return [
        sysctl(lab, host, f"net.ipv4.conf.{LAB_IFNAME}.{k}")
        for k in ("arp_ignore", "arp_filter", "arp_announce")
    ]


def test_vmac_after_kill9_reused_then_cleaned_and_sysctls_restored(lab: Lab) -> None:
    """kill -9 leaves the macvlan and the base's sysctls; a restart with the same config reuses
    it, and its clean stop restores the values from before the crash; after another kill -9,
    `pyvrrp cleanup` deletes it and restores them; a restart without use_vmac deletes it too."""
    assert _base_arp(lab, "lb1") == ["0", "0", "0"]
    node = PyvrrpNode(lab, "lb1", instances=[spec("pyvrrp", 150)])
    node.start()
    node.wait_state("MASTER", 15.0)
    node.kill9()
    assert link(lab, "lb1", VMAC_IF) is not None and _base_arp(lab, "lb1") == ["1", "1", "2"]
    node.start()  # same config: reused, the stale VIP on it removed before the election
    node.wait_state("MASTER", 15.0)
    assert "reused" in node.log_text()
    assert node.stop() == 0
    assert link(lab, "lb1", VMAC_IF) is None and _base_arp(lab, "lb1") == ["0", "0", "0"]

    node.start()
    node.wait_state("MASTER", 15.0)
    node.kill9()
    python = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python")
    out = lab.exec("lb1", [python, "-m", "pyvrrp", "cleanup", "--socket", str(node.socket_path)]).stdout
    assert f"removed: macvlan {VMAC_IF}" in out, out
    assert link(lab, "lb1", VMAC_IF) is None and _base_arp(lab, "lb1") == ["0", "0", "0"]

    node.start()
    node.wait_state("MASTER", 15.0)
    node.kill9()
    plain = PyvrrpNode(lab, "lb1", instances=[InstanceSpec(priority=150, version=3, advert_int_s=0.1)])
    plain.start()
    plain.wait_state("MASTER", 15.0)
    assert "stale_vmac_removed" in plain.log_text()
    assert link(lab, "lb1", VMAC_IF) is None and _base_arp(lab, "lb1") == ["0", "0", "0"]
    assert VIP4 in addrs(lab, "lb1", LAB_IFNAME)


def test_reload_turns_use_vmac_on_and_off(lab: Lab) -> None:
    """SIGHUP: an instance that gains use_vmac restarts on a new macvlan; losing it deletes it."""
    plain = InstanceSpec(priority=150, version=3, advert_int_s=0.1)
    node = PyvrrpNode(lab, "lb1", instances=[plain])
    node.start()
    node.wait_state("MASTER", 15.0)
    assert VIP4 in addrs(lab, "lb1", LAB_IFNAME)
    write_config(node, [spec("pyvrrp", 150)])
    sighup(node)
    wait_for(lambda: holds_vip(lab, "lb1"), 10.0, what="the VIP on the new macvlan")
    assert VIP4 not in addrs(lab, "lb1", LAB_IFNAME)
    node.wait_state("MASTER", 10.0)
    write_config(node, [plain])
    sighup(node)
    wait_for(lambda: link(lab, "lb1", VMAC_IF) is None, 10.0, what="the macvlan deleted")
    wait_for(lambda: VIP4 in addrs(lab, "lb1", LAB_IFNAME), 10.0, what="the VIP back on eth0")
    assert _base_arp(lab, "lb1") == ["0", "0", "0"]
