"""The namespace lab itself: addressing, LVS-DR real servers, ARP behaviour, teardown, capture."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyvrrp.lab.capture import Capture, first
from pyvrrp.lab.topology import HOSTS, LAB_IFNAME, VIP4, VIP6, Lab, list_netns, wait_for


def test_lab_up_client_reaches_each_real_server(lab: Lab) -> None:
    """Every host namespace exists and the client gets each RS's page over HTTP by its own IP."""
    existing = set(list_netns())
    assert set(lab.namespaces) <= existing
    for rs in ("rs1", "rs2"):
        res = lab.http_get("client", f"http://{lab.ip(rs)}/", timeout=2.0)
        assert res.ok, res.error
        assert res.body.strip() == f"{rs} {lab.ip(rs)}"


def test_fixed_macs_addresses_and_ipv6_off(lab: Lab) -> None:
    """Each host has its fixed MAC and /24 address on eth0, and no IPv6 at all by default."""
    for spec in HOSTS:
        link = lab.ip_cmd(spec.name, "-br", "link", "show", LAB_IFNAME).stdout
        assert spec.mac in link, link
        assert lab.addresses(spec.name, LAB_IFNAME) == [spec.ipv4]
        off = lab.exec(spec.name, ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip()
        assert off == "1"
    bridge = lab.ip_cmd("sw", "-d", "link", "show", "br0").stdout
    assert "stp_state 0" in bridge and "forward_delay 0" in bridge and "mcast_snooping 0" in bridge


def test_real_servers_are_dr_configured(lab: Lab) -> None:
    """RS: VIP/32 on lo, arp_ignore=1 and arp_announce=2 on all, eth0 and lo."""
    for rs in ("rs1", "rs2"):
        assert lab.holds_vip(rs, VIP4, ifname="lo")
        assert not lab.holds_vip(rs, VIP4)  # not on eth0
        for dev in ("all", LAB_IFNAME, "lo"):
            out = lab.exec(
                rs, ["sysctl", "-n", f"net.ipv4.conf.{dev}.arp_ignore", f"net.ipv4.conf.{dev}.arp_announce"]
            ).stdout.split()
            assert out == ["1", "2"], (rs, dev, out)


def test_nobody_answers_arp_for_vip_while_no_lb_holds_it(lab: Lab) -> None:
    """ARP-04 (lab precondition): with the VIP only on the RS loopbacks, no ARP reply comes back."""
    assert not lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    assert lab.arping("client", VIP4, count=2, timeout_s=1.5) == []
    res = lab.http_get("client", f"http://{VIP4}/", timeout=0.5)
    assert not res.ok
    assert lab.client_arp_mac(VIP4) is None


def test_vip_on_lb1_resolves_to_lb1_mac(lab: Lab) -> None:
    """Adding the VIP to lb1 makes the client resolve it to lb1's MAC, and only lb1 answers ARP.

    Without IPVS the scheduler does not forward: the connection is refused until a responder
    listens on lb1; then the client's GET to VIP:80 is answered by lb1.
    """
    lab.ip_cmd("lb1", "addr", "add", f"{VIP4}/32", "dev", LAB_IFNAME)
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    refused = lab.http_get("client", f"http://{VIP4}/", timeout=1.0)
    assert not refused.ok and "refused" in refused.error.lower()
    assert lab.client_arp_mac(VIP4) == lab.mac("lb1")
    assert lab.arping("client", VIP4, count=2, timeout_s=1.5) == [lab.mac("lb1")]
    ready = lab.start_http_responder("lb1", "lb1")
    deadline = time.monotonic() + 5.0
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    res = lab.http_get("client", f"http://{VIP4}/", timeout=2.0)
    assert res.ok and res.body.strip() == "lb1"


def test_link_set_cuts_host_off(lab: Lab) -> None:
    """link_set(host, eth0, False) takes the host off the LAN; True brings it back."""
    lab.link_set("rs1", LAB_IFNAME, False)
    assert not lab.http_get("client", f"http://{lab.ip('rs1')}/", timeout=0.5).ok
    lab.link_set("rs1", LAB_IFNAME, True)
    res = lab.http_get("client", f"http://{lab.ip('rs1')}/", timeout=3.0)
    assert res.ok, res.error


def test_capture_sees_garp_with_sender_mac(lab: Lab) -> None:
    """ARP-02 (parser): an unsolicited ARP for the VIP sent from lb1 is parsed as a GARP from lb1."""
    with Capture(lab) as cap:
        t0 = time.time()
        lab.ip_cmd("lb1", "addr", "add", f"{VIP4}/32", "dev", LAB_IFNAME)
        lab.exec("lb1", ["arping", "-U", "-c", "1", "-I", LAB_IFNAME, VIP4], check=False)
    events = cap.events()
    garp = first(events, after=t0 - 0.01, kind="garp", src_mac=lab.mac("lb1"))
    assert garp is not None, events
    assert garp.target == VIP4 and garp.src_ip == VIP4


def test_teardown_kills_processes_and_deletes_namespaces() -> None:
    """down() kills every process in the lab (even one ignoring SIGTERM) and leaves nothing."""
    from conftest import make_lab

    lab = make_lab()
    try:
        lab.up()
        stubborn = lab.popen(
            "client",
            [
                sys.executable,
                "-c",
                "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
            ],
        )
        # `ip netns exec` enters the namespace just after the fork: wait until it shows up.
        wait_for(lambda: stubborn.pid in lab.pids("client"), 5.0)
        pids = [p for h in lab.hosts for p in lab.pids(h)]
        assert len(pids) >= 3  # two HTTP servers + the sleeper
        run_dir = Path(lab.run_dir)
        lab.down(term_wait_s=0.5)
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert not [n for n in list_netns() if n.startswith(f"{lab.prefix}-")]
        assert not run_dir.exists()
        for pid in pids:
            alive = subprocess.run(["kill", "-0", str(pid)], capture_output=True, check=False).returncode == 0
            assert not alive, pid
    finally:
        lab.down()  # idempotent


def test_ipv6_lab_and_gateway(lab_factory: Callable[..., Lab]) -> None:
    """ipv6=True: link-local + fd00:233::/64, RS answer over IPv6; gateway=True adds gw .1."""
    lab = lab_factory(ipv6=True, gateway=True)
    assert "gw" in lab.hosts and lab.ip("gw") == "192.168.233.1"
    addrs = lab.addresses("client", LAB_IFNAME)
    assert "fd00:233::20" in addrs
    assert any(a.startswith("fe80::") for a in addrs)
    assert lab.holds_vip("rs1", VIP6, ifname="lo")
    res = lab.http_get("client", "http://[fd00:233::100]/", timeout=3.0)
    assert res.ok, res.error
    assert res.body.startswith("rs1")
    assert lab.arping("client", lab.ip("gw"), count=1, timeout_s=1) == [lab.mac("gw")]


def test_pyvrrp_lab_demo_cli_fails_over_with_pyvrrp() -> None:
    """The main job through the CLI, `pyvrrp lab demo --advert-int 0.1` with the pyvrrp daemon:
    exit 0, lb1 elected then lb2 takes over within Master_Down_Interval (RFC 5798 §6.1:
    360.9 ms for prio 100 at 0.1 s) + margin of lb1's last advert, and the lab is removed."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyvrrp", "lab", "demo", "--version", "3", "--advert-int", "0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = text = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "lb1 is MASTER" in out and "client's first reply from lb2 through the VIP" in out
    took = next(line for line in out.splitlines() if "lb2 took over" in line and "ms after" in line)
    took_ms = float(took.split("lb2 took over", 1)[1].split("ms", 1)[0])
    assert 340.0 <= took_ms <= 460.0, took
    prefix = re.search(r"^lab (pv[0-9a-f]{6}) up", text, re.M)
    assert prefix is not None, text
    assert not [n for n in list_netns() if n.startswith(f"{prefix[1]}-")], "the demo left its lab behind"
