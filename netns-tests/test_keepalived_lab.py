"""keepalived 2.2.7 in the lab: the reference behaviour the interop tests compare against."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from pyvrrp.lab.capture import Capture, first, last
from pyvrrp.lab.keepalived import KeepalivedNode
from pyvrrp.lab.topology import VIP4, DaemonNode, InstanceSpec, Lab, list_netns

pytestmark = pytest.mark.keepalived


def master_down_s(version: int, priority: int, advert_int_s: float) -> float:
    """RFC 5798 §6.1: Master_Down_Interval = 3 * Adver_Int + Skew_Time,
    Skew_Time = ((256 - Priority) * Adver_Int) / 256 (RFC 3768 §6.1 for v2: (256-Prio)/256 s)."""
    return 3 * advert_int_s + (256 - priority) * advert_int_s / 256


def start_pair(lab: Lab, version: int, advert_int_s: float) -> tuple[KeepalivedNode, KeepalivedNode]:
    lb1 = KeepalivedNode(
        lab,
        "lb1",
        instances=[InstanceSpec(priority=150, version=version, advert_int_s=advert_int_s, state="MASTER")],
    )
    lb2 = KeepalivedNode(
        lab, "lb2", instances=[InstanceSpec(priority=100, version=version, advert_int_s=advert_int_s)]
    )
    lb2.start()
    lb1.start()
    return lb1, lb2


@pytest.mark.parametrize(("version", "advert_int_s"), [(3, 0.1), (2, 1.0)])
def test_pair_elects_lb1_and_kill9_moves_vip(lab: Lab, version: int, advert_int_s: float) -> None:
    """TMR-, SM-: lb1 (prio 150) becomes MASTER with the VIP; after kill -9 lb2 takes over within
    Master_Down_Interval (+ margin) of lb1's last advert, then sends GARP (ARP-02)."""
    with Capture(lab) as cap:
        lb1, lb2 = start_pair(lab, version, advert_int_s)
        lb1.wait_state("MASTER", master_down_s(version, 150, advert_int_s) + 5.0)
        assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
        assert lb2.state() == "BACKUP"
        assert lab.arping("client", VIP4, count=1, timeout_s=1.0) == [lab.mac("lb1")]
        time.sleep(advert_int_s * 1.5)
        t_kill = time.time()
        lb1.kill9()
        limit_s = master_down_s(version, 100, advert_int_s) + 0.5
        waited = lb2.wait_state("MASTER", limit_s + 2.0)
        assert waited <= limit_s, f"lb2 took {waited:.3f} s, limit {limit_s:.3f} s"
        assert lab.holds_vip("lb2")
        assert lab.holds_vip("lb1")  # kill -9 leaves the VIP on the dead node (baseline §3)
        time.sleep(0.05)
    events = cap.events()
    last_lb1 = last(events, before=t_kill, kind="advert", src_ip=lab.ip("lb1"))
    first_lb2 = first(events, after=t_kill, kind="advert", src_ip=lab.ip("lb2"))
    garp = first(events, after=t_kill, kind="garp", src_mac=lab.mac("lb2"))
    assert last_lb1 is not None and first_lb2 is not None and garp is not None
    assert last_lb1.priority == 150 and last_lb1.version == version
    assert first_lb2.priority == 100 and first_lb2.addresses == (VIP4,)
    gap_s = first_lb2.t - last_lb1.t
    expected = master_down_s(version, 100, advert_int_s)
    assert expected - 0.02 <= gap_s <= expected + 0.1 + advert_int_s * 0.05, (gap_s, expected)
    assert 0 <= garp.t - first_lb2.t < 0.05


def test_sigterm_sends_priority_zero_and_backup_takes_over_after_skew(
    lab: Lab, vrrp_pair: Callable[..., tuple[DaemonNode, DaemonNode]]
) -> None:
    """SM-, TMR-: SIGTERM on the MASTER sends a priority-0 advert; the backup becomes MASTER
    after Skew_Time (RFC 5798 §6.4.2), not Master_Down_Interval."""
    advert_int_s = 0.1
    with Capture(lab) as cap:
        lb1, lb2 = vrrp_pair("keepalived", "keepalived", version=3, advert_int_s=advert_int_s)
        lb1.wait_state("MASTER", 5.0)
        t_stop = time.time()
        lb1.stop()
        lb2.wait_state("MASTER", 2.0)
        assert not lab.holds_vip("lb1")
        assert lab.holds_vip("lb2")
        time.sleep(0.05)
    events = cap.events()
    prio0 = first(events, after=t_stop, kind="advert", src_ip=lab.ip("lb1"), priority=0)
    assert prio0 is not None
    first_lb2 = first(events, after=prio0.t, kind="advert", src_ip=lab.ip("lb2"))
    assert first_lb2 is not None
    skew_s = (256 - 100) * advert_int_s / 256
    assert skew_s - 0.01 <= first_lb2.t - prio0.t <= skew_s + 0.05


def test_demo_runs_with_keepalived_and_prints_the_timeline() -> None:
    """The main job (`pyvrrp lab demo`) end to end against keepalived: exit 0, a timeline with
    lb2's takeover close to Master_Down_Interval (RFC 5798 §6.1), and no lab left behind."""
    from pyvrrp.lab.demo import DemoOptions, run_demo

    lines: list[str] = []
    code = run_demo(DemoOptions(daemon="keepalived", version=3, advert_int_s=0.1), lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    assert "lb2's first advert as MASTER" in text
    assert "client's first reply from lb2 through the VIP" in text
    took = next(line for line in lines if "lb2 took over" in line and "ms after" in line)
    took_ms = float(took.split("lb2 took over", 1)[1].split("ms", 1)[0])
    assert 340.0 <= took_ms <= 460.0, took  # Master_Down for prio 100 at 0.1 s: 360.9 ms
    prefix = re.search(r"^lab (pv[0-9a-f]{6}) up", text, re.M)
    assert prefix is not None, text
    assert not [n for n in list_netns() if n.startswith(f"{prefix[1]}-")], "the demo left its lab behind"


VARIANTS = {
    "v2-multicast": InstanceSpec(priority=150),
    "v2-unicast-auth": InstanceSpec(
        priority=150, unicast_src="192.168.233.10", unicast_peers=("192.168.233.11",), auth_pass="kbsecret"
    ),
    "v3-fast-nopreempt": InstanceSpec(priority=100, version=3, advert_int_s=0.01, preempt=False),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_generated_configs_are_accepted_by_both_daemons(lab: Lab, variant: str) -> None:
    """The lab's config writers produce files keepalived 2.2.7 (`keepalived -t`) and
    `pyvrrp check-config` both accept, with the same meaning."""
    from pyvrrp.lab.topology import PyvrrpNode

    spec = VARIANTS[variant]
    ka = KeepalivedNode(lab, "lb1", instances=[spec])
    res = lab.exec("lb1", ["keepalived", "-t", "-f", str(ka.config_path)], check=False)
    assert res.returncode == 0, (ka.config_path.read_text(), res.stdout, res.stderr)
    if variant.startswith("v2-unicast"):
        text = ka.config_path.read_text()
        assert "auth_type PASS" in text and "unicast_peer" in text
    py = PyvrrpNode(lab, "lb1", instances=[spec])
    chk = py.check()
    assert chk.returncode == 0, (py.config_path.read_text(), chk.stdout, chk.stderr)
    assert f"v{spec.version}" in chk.stdout and str(spec.priority) in chk.stdout


def test_unicast_auth_pair_sends_adverts_to_the_peer(lab: Lab) -> None:
    """keepalived with unicast_peer + PASS auth: lb1 is elected and its v2 adverts go to
    lb2's address, not 224.0.0.18 (baseline §2 table, v2 unicast row)."""
    specs = {
        "lb1": InstanceSpec(
            priority=150, unicast_src=lab.ip("lb1"), unicast_peers=(lab.ip("lb2"),), auth_pass="pw"
        ),
        "lb2": InstanceSpec(
            priority=100, unicast_src=lab.ip("lb2"), unicast_peers=(lab.ip("lb1"),), auth_pass="pw"
        ),
    }
    with Capture(lab) as cap:
        lb2 = KeepalivedNode(lab, "lb2", instances=[specs["lb2"]]).start()
        lb1 = KeepalivedNode(lab, "lb1", instances=[specs["lb1"]]).start()
        lb1.wait_state("MASTER", master_down_s(2, 150, 1.0) + 5.0)
        assert lb2.state() == "BACKUP"
        t_master = time.time()
        time.sleep(1.2)
    adverts = [
        e for e in cap.events() if e.kind == "advert" and e.src_ip == lab.ip("lb1") and e.t >= t_master
    ]
    assert adverts, "no advert from lb1 after it became MASTER"
    assert {e.dst_ip for e in adverts} == {lab.ip("lb2")}
    assert all(e.version == 2 and e.priority == 150 for e in adverts)


def test_ipv6_pair_elects_lb1_and_sends_unsolicited_na(lab_factory: Callable[..., Lab]) -> None:
    """ARP-07, PKT-: in an IPv6 lab keepalived's VRRPv3/IPv6 master (prio 150) holds the IPv6
    VIP, advertises from its link-local address to ff02::12, sends unsolicited NAs (S=0) for
    the VIP, and the client resolves the VIP to lb1's MAC."""
    from pyvrrp.lab.topology import VIP6

    lab = lab_factory(ipv6=True)
    with Capture(lab) as cap:
        for host, prio in (("lb2", 100), ("lb1", 150)):
            spec = InstanceSpec(
                priority=prio, version=3, advert_int_s=0.1, vips=(f"{VIP6}/64",), name="VI_6", vrid=61
            )
            KeepalivedNode(lab, host, instances=[spec]).start()
        wait_for_vip = time.monotonic() + 5.0
        while not lab.holds_vip("lb1", VIP6) and time.monotonic() < wait_for_vip:
            time.sleep(0.05)
        assert lab.holds_vip("lb1", VIP6) and not lab.holds_vip("lb2", VIP6)
        res = lab.http_get("client", f"http://[{VIP6}]/", timeout=1.0)
        assert not res.ok and "refused" in res.error.lower()  # lb1 answered at L2, no listener
        assert lab.client_arp_mac(VIP6) == lab.mac("lb1")
    events = cap.events()
    adverts = [e for e in events if e.kind == "advert" and e.priority == 150]
    assert adverts and all(e.src_ip.startswith("fe80::") and e.dst_ip == "ff02::12" for e in adverts)
    assert adverts[0].addresses == (VIP6,)
    nas = [e for e in events if e.kind == "na" and e.src_mac == lab.mac("lb1")]
    assert nas and all(e.target == VIP6 and "S" not in e.flags for e in nas)
