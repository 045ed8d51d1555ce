"""virtual_routes / virtual_rules / static_* / VIP dev, and an interface without IPv4 (issue 16).

Two pyvrrp daemons in the lab (lb1 priority 150, lb2 100).  Kernel facts only, read with
``ip -n NS route|rule|addr`` inside each namespace:

* the MASTER has the virtual routes (a gateway route, a blackhole, a ``src VIP`` route) and
  the virtual rule, the BACKUP has none; they move with a failover (SIGTERM of the master),
  back on preemption (the BACKUP side removes them on leaving MASTER), and are gone after stop;
* static_ipaddress / static_routes / static_rules are on both nodes from the start and gone
  after stop;
* a VIP with ``dev lo`` lands on lo, not on eth0;
* an instance whose interface exists but has no IPv4 address sits in FAULT (``state`` says
  why), and becomes MASTER when an address is added (netlink address event).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from _daemon_helpers import inst, sighup, start, v3, wait_view

from pyvrrp.lab.topology import VIP4, VIP6, InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml, wait_for

pytestmark = pytest.mark.netns

LO_VIP = "10.99.0.1"
ROUTES = [
    "10.50.0.0/16 via 192.168.233.1 dev eth0 table 100",
    "blackhole 10.66.0.0/16 table 100",
    f"10.51.0.0/16 dev eth0 src {VIP4} scope link table 101",
]
RULE = f"from {VIP4} table 100 priority 100"
STATICS = (
    'static_ipaddress = ["10.88.0.1/32 dev lo"]\n'
    'static_routes = ["10.77.0.0/16 via 192.168.233.1 dev eth0 table 102"]\n'
    'static_rules = ["fwmark 7 table 102 priority 200"]\n'
)


def _spec(priority: int) -> InstanceSpec:
    return v3(
        priority,
        vips=(f"{VIP4}/32", f"{LO_VIP}/32 dev lo"),
        extra={"virtual_routes": ROUTES, "virtual_rules": [RULE]},
    )


def _node(lab: Lab, host: str, priority: int) -> PyvrrpNode:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    text = STATICS + pyvrrp_toml(
        host, [_spec(priority)], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir)
    )
    node = PyvrrpNode(lab, host, text)
    node.start()
    return node


def _table(lab: Lab, host: str, table: int) -> str:
    return lab.ip_cmd(host, "route", "show", "table", str(table), check=False).stdout


def _rules(lab: Lab, host: str) -> str:
    return lab.ip_cmd(host, "rule", "show").stdout


def _has_virtual(lab: Lab, host: str) -> bool:
    """Every virtual route and the rule present (all or nothing is asserted by the callers)."""
    t100, t101 = _table(lab, host, 100), _table(lab, host, 101)
    return (
        "10.50.0.0/16 via 192.168.233.1 dev eth0 proto keepalived" in t100
        and "blackhole 10.66.0.0/16 proto keepalived" in t100
        and f"10.51.0.0/16 dev eth0 proto keepalived scope link src {VIP4}" in t101
        and f"100:\tfrom {VIP4} lookup 100" in _rules(lab, host)
    )


def _has_none_virtual(lab: Lab, host: str) -> bool:
    return (
        not _table(lab, host, 100).strip()
        and not _table(lab, host, 101).strip()
        and f"from {VIP4} lookup 100" not in _rules(lab, host)
    )


def _has_statics(lab: Lab, host: str) -> bool:
    return (
        "10.77.0.0/16 via 192.168.233.1 dev eth0 proto keepalived" in _table(lab, host, 102)
        and "200:\tfrom all fwmark 0x7 lookup 102" in _rules(lab, host)
        and lab.holds_vip(host, "10.88.0.1", ifname="lo")
    )


def test_virtual_routes_follow_the_master_statics_stay_and_all_go_at_stop(lab: Lab) -> None:
    n1 = _node(lab, "lb1", 150)
    n1.wait_state("MASTER", 8)
    n2 = _node(lab, "lb2", 100)
    n2.wait_state("BACKUP", 8)
    wait_view(n2, lambda v: v["master_ip"] is not None, 5, what="lb2 hears lb1")

    wait_for(lambda: _has_virtual(lab, "lb1"), 5, 0.05, what="lb1 (MASTER) has the virtual routes and rule")
    assert _has_none_virtual(lab, "lb2"), (_table(lab, "lb2", 100), _rules(lab, "lb2"))
    for host in ("lb1", "lb2"):
        wait_for(lambda h=host: _has_statics(lab, h), 5, 0.05, what=f"{host} has the static entries")
    # the VIP with dev lo is on lo, not on the instance's interface; the other on eth0
    assert lab.holds_vip("lb1", LO_VIP, ifname="lo")
    assert not lab.holds_vip("lb1", LO_VIP, ifname="eth0")
    assert lab.holds_vip("lb1", VIP4) and not lab.holds_vip("lb2", LO_VIP, ifname="lo")

    # failover: lb1 stops (priority 0); lb2 takes the VIPs and the routes; lb1 keeps nothing
    assert n1.stop() == 0
    n2.wait_state("MASTER", 5)
    wait_for(lambda: _has_virtual(lab, "lb2"), 5, 0.05, what="lb2 (new MASTER) has the virtual routes")
    assert lab.holds_vip("lb2", LO_VIP, ifname="lo")
    assert _has_none_virtual(lab, "lb1")
    assert not _table(lab, "lb1", 102).strip(), "static route left after stop"
    assert "lookup 102" not in _rules(lab, "lb1"), "static rule left after stop"
    assert not lab.holds_vip("lb1", "10.88.0.1", ifname="lo"), "static address left after stop"
    assert not lab.holds_vip("lb1", LO_VIP, ifname="lo"), "VIP on lo left after stop"

    # lb1 back (preempts): lb2 leaves MASTER and removes exactly its virtual entries
    n1 = _node(lab, "lb1", 150)
    n1.wait_state("MASTER", 8)
    n2.wait_state("BACKUP", 5)
    wait_for(lambda: _has_virtual(lab, "lb1"), 5, 0.05, what="lb1 MASTER again with the routes")
    wait_for(lambda: _has_none_virtual(lab, "lb2"), 5, 0.05, what="lb2 (BACKUP) removed them")
    assert not lab.holds_vip("lb2", LO_VIP, ifname="lo")
    assert _has_statics(lab, "lb2")  # statics stay whatever the state
    log = n2.log_text()
    assert "route_removed" in log and "rule_removed" in log

    for node, host in ((n1, "lb1"), (n2, "lb2")):
        assert node.stop() == 0
        assert _has_none_virtual(lab, host)
        assert not _table(lab, host, 102).strip() and "lookup 102" not in _rules(lab, host)
        assert not lab.holds_vip(host, LO_VIP, ifname="lo")


def test_interface_without_ipv4_waits_in_fault_and_comes_up_when_an_address_appears(lab: Lab) -> None:
    """keepalived's behaviour: no address to send adverts from is a FAULT that says why, not a
    refusal to start; the netlink address event brings the instance up."""
    lab.ip_cmd("lb1", "link", "add", "vx0", "type", "veth", "peer", "name", "vx1")  # inside lb1 only
    for ifname in ("vx1", "vx0"):
        lab.ip_cmd("lb1", "link", "set", ifname, "up")
    spec = v3(150, name="VI_60", vrid=60, interface="vx0", vips=("10.60.0.100/32",))
    n1 = start(lab, "lb1", v3(150), spec)
    n1.wait_state("MASTER", 5, "VI_51")
    view = wait_view(n1, lambda v: v["state"] == "FAULT", 5, name="VI_60", what="VI_60 FAULT")
    assert "has no IPv4 address" in (view["waiting_for"] or ""), view
    assert n1.alive() and "instance_waiting" in n1.log_text()
    assert not lab.holds_vip("lb1", "10.60.0.100", ifname="vx0")

    lab.ip_cmd("lb1", "addr", "add", "10.60.0.1/24", "dev", "vx0")
    view = wait_view(n1, lambda v: v["state"] == "MASTER", 5, name="VI_60", what="VI_60 MASTER")
    assert view["waiting_for"] is None
    assert lab.holds_vip("lb1", "10.60.0.100", ifname="vx0")
    assert "interface_ready" in n1.log_text()
    assert inst(n1)["state"] == "MASTER"  # VI_51 untouched


def test_reload_swaps_a_masters_virtual_routes_and_the_static_ones(lab: Lab) -> None:
    """SIGHUP with other routes: the MASTER removes exactly the old virtual and static entries
    and installs the new ones, without leaving MASTER."""
    n1 = _node(lab, "lb1", 150)
    n1.wait_state("MASTER", 8)
    wait_for(lambda: _has_virtual(lab, "lb1") and _has_statics(lab, "lb1"), 5, 0.05, what="installed")
    spec = v3(
        150,
        vips=(f"{VIP4}/32", f"{LO_VIP}/32 dev lo"),
        extra={"virtual_routes": ["10.52.0.0/16 via 192.168.233.1 dev eth0 table 100"]},
    )
    statics = 'static_routes = ["10.78.0.0/16 via 192.168.233.1 dev eth0 table 102"]\n'
    text = statics + pyvrrp_toml(
        "lb1", [spec], control_socket=str(n1.socket_path), state_dir=str(n1.socket_path.parent)
    )
    n1.config_path.write_text(text)
    sighup(n1)

    def swapped() -> bool:
        t100, t102 = _table(lab, "lb1", 100), _table(lab, "lb1", 102)
        return (
            "10.52.0.0/16 via 192.168.233.1" in t100
            and "10.50.0.0/16" not in t100
            and "blackhole" not in t100
            and not _table(lab, "lb1", 101).strip()
            and f"from {VIP4} lookup 100" not in _rules(lab, "lb1")
            and "10.78.0.0/16" in t102
            and "10.77.0.0/16" not in t102
            and "lookup 102" not in _rules(lab, "lb1")
            and not lab.holds_vip("lb1", "10.88.0.1", ifname="lo")
        )

    wait_for(swapped, 5, 0.05, what="the reload swapped the routes")
    assert inst(n1)["state"] == "MASTER" and lab.holds_vip("lb1", LO_VIP, ifname="lo")
    assert n1.stop() == 0
    assert not _table(lab, "lb1", 100).strip() and not _table(lab, "lb1", 102).strip()


def test_ipv6_route_with_the_vip_as_src_and_a_source_rule_as_octavia_writes_them(
    lab_factory: Callable[..., Lab],
) -> None:
    """Corpus file 26 (octavia amphora): an IPv6 route with ``src VIP scope link table 1`` and
    ``from VIP/128 table 1 priority 100``, on the MASTER only, gone after stop."""
    lab = lab_factory(ipv6=True)
    spec = v3(
        150,
        vips=(f"{VIP6}/128",),
        extra={
            "virtual_routes": [f"fd00:99::/64 dev eth0 src {VIP6} scope link table 1"],
            "virtual_rules": [f"from {VIP6}/128 table 1 priority 100"],
        },
    )
    n1 = start(lab, "lb1", spec)
    n1.wait_state("MASTER", 8)

    def installed() -> bool:
        t1 = lab.ip_cmd("lb1", "-6", "route", "show", "table", "1", check=False).stdout
        rules = lab.ip_cmd("lb1", "-6", "rule", "show").stdout
        return (
            f"fd00:99::/64 dev eth0 proto keepalived src {VIP6}" in t1
            and f"100:\tfrom {VIP6} lookup 1" in rules
        )

    wait_for(installed, 5, 0.05, what="the IPv6 route and rule on the MASTER")
    assert n1.stop() == 0
    assert not lab.ip_cmd("lb1", "-6", "route", "show", "table", "1", check=False).stdout.strip()
    assert f"from {VIP6}" not in lab.ip_cmd("lb1", "-6", "rule", "show").stdout


def test_after_kill9_cleanup_removes_the_recorded_routes_rules_and_addresses(lab: Lab) -> None:
    """Crash hygiene (issue 14 item 6) for routes: a MASTER killed with -9 leaves its routes,
    rules and addresses; ``pyvrrp cleanup`` (ExecStopPost) removes exactly those, from the
    held-state record, without reading any config."""
    n1 = _node(lab, "lb1", 150)
    n1.wait_state("MASTER", 8)
    wait_for(lambda: _has_virtual(lab, "lb1") and _has_statics(lab, "lb1"), 5, 0.05, what="installed")
    held = n1.socket_path.parent / "held.json"
    wait_for(lambda: held.exists() and '"routes": ["' in held.read_text(), 5, 0.05, what="routes recorded")
    n1.kill9()
    assert _has_virtual(lab, "lb1") and _has_statics(lab, "lb1"), "kill -9 leaves them (nothing runs)"
    cmd = [sys.executable, "-m", "pyvrrp", "cleanup", "--socket", str(n1.socket_path)]
    proc = lab.exec("lb1", cmd, check=False, env=n1.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _has_none_virtual(lab, "lb1")
    assert not _table(lab, "lb1", 102).strip() and "lookup 102" not in _rules(lab, "lb1")
    assert not lab.holds_vip("lb1", "10.88.0.1", ifname="lo") and not lab.holds_vip(
        "lb1", LO_VIP, ifname="lo"
    )
    assert not lab.holds_vip("lb1", VIP4)
