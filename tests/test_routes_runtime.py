"""virtual_routes / virtual_rules / excluded VIPs on MASTER, VIP dev and options (no root).

The executor with a fake netlink: what is added when the instance becomes MASTER, in which
order, what is removed when it leaves MASTER; and the netlink encoding of routes and rules
(decoded back with pyroute2's own message classes).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import structlog
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWRULE
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pyvrrp.adapters import netlink as nl
from pyvrrp.adapters.notify import NotifyRunner
from pyvrrp.config.models import Route, Rule, VrrpInstance
from pyvrrp.proto import events as ev
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.runtime import routes
from pyvrrp.runtime.daemon import router_config
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.instance import Extras, Instance
from pyvrrp.runtime.supervisor import Supervisor


def in_loop(fn: Any) -> Any:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


@dataclass
class FakeNetlink:
    journal: list[str]
    fail_route: bool = False
    held: set[str] = field(default_factory=set)

    def add(
        self, ifname: str, address: Any, *, label: Any = None, scope: Any = None, brd: Any = None
    ) -> bool:
        opts = "".join(f" {k} {v}" for k, v in (("label", label), ("scope", scope), ("brd", brd)) if v)
        self.journal.append(f"add {address} dev {ifname}{opts}")
        new = f"{ifname} {address}" not in self.held
        self.held.add(f"{ifname} {address}")
        return new

    def remove(self, ifname: str, address: Any) -> bool:
        self.journal.append(f"remove {address} dev {ifname}")
        gone = f"{ifname} {address}" in self.held
        self.held.discard(f"{ifname} {address}")
        return gone

    def add_route(self, req: nl.RouteRequest) -> None:
        if self.fail_route:
            raise nl.NetlinkOperationError(22, f"cannot add route {req}: Invalid argument")
        self.journal.append(f"route add {req}")

    def remove_route(self, req: nl.RouteRequest) -> bool:
        self.journal.append(f"route del {req}")
        return True

    def add_rule(self, req: nl.RuleRequest) -> bool:
        self.journal.append(f"rule add {req}")
        return True

    def remove_rule(self, req: nl.RuleRequest) -> bool:
        self.journal.append(f"rule del {req}")
        return True


@dataclass
class FakeAnnouncer:
    journal: list[str]

    def announce(self, ifname: str, vips: Any, *, repeat: int = 1) -> None:
        self.journal.append(f"garp {ifname} {' '.join(map(str, vips))}")


@dataclass
class FakeSocket:
    journal: list[str]

    def send(self, payload: bytes, dst: Any = None, *, src: Any = None) -> int:
        self.journal.append("advert")
        return len(payload)


SPEC = {
    "interface": "eth0",
    "virtual_router_id": 7,
    "priority": 255,  # the owner: MASTER at Startup
    "virtual_ipaddress": ["192.0.2.100/32", "10.99.0.1/32 dev lo scope host", "192.0.2.101/24 label eth0:x"],
    "virtual_ipaddress_excluded": ["198.51.100.1/24 dev eth1"],
    "virtual_routes": ["203.0.113.0/24 via 192.0.2.254 table 100", "blackhole 10.66.0.0/16"],
    "virtual_rules": ["from 192.0.2.100 table 100 priority 100"],
}


def _rig(loop: asyncio.AbstractEventLoop, **kw: Any) -> tuple[Supervisor, Instance, list[str], FakeNetlink]:
    journal: list[str] = []
    sup = Supervisor(loop)
    fake = FakeNetlink(journal, **kw)
    executor = Executor(
        loop=loop,
        netlink=fake,
        announcer=FakeAnnouncer(journal),  # type: ignore[arg-type]
        notifier=NotifyRunner(timeout_s=1.0),
        epochs=None,
        feed=sup.feed,
        on_takeover_pending=lambda inst, action: None,
        on_state_changed=lambda inst, action: journal.append(f"state {action.new.value}"),
    )
    sup.bind(executor)
    spec = VrrpInstance.model_validate(SPEC)
    router = VirtualRouter(router_config("VI", spec, ipaddress.ip_address("192.0.2.10"), in_group=False))
    sock = FakeSocket(journal)
    inst = Instance(name="VI", spec=spec, router=router, sock=sock, log=structlog.get_logger().bind())  # type: ignore[arg-type]
    sup.instances["VI"] = inst
    sup.sockets[inst.key] = sock  # type: ignore[assignment]
    return sup, inst, journal, fake


@in_loop
async def test_master_adds_vips_on_their_dev_then_excluded_routes_rules_and_removes_them_in_reverse() -> None:
    sup, inst, journal, fake = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    assert inst.router.state is ev.State.MASTER
    hot = [j for j in journal if not j.startswith("state")]
    assert hot[:4] == [
        "advert",
        "add 192.0.2.100/32 dev eth0",
        "add 10.99.0.1/32 dev lo scope host",  # dev lo: on lo, not on the instance's interface
        "add 192.0.2.101/24 dev eth0 label eth0:x",
    ]
    assert hot[4] == "garp eth0 192.0.2.100/32 192.0.2.101/24"  # no ARP on loopback
    assert not any(j.startswith("route") for j in journal)  # not before the VIPs' feed is done
    await asyncio.sleep(0)
    extras = journal[journal.index(hot[4]) + 1 :]
    assert [j for j in extras if not j.startswith("state")] == [
        "add 198.51.100.1/24 dev eth1",
        "garp eth1 198.51.100.1/24",
        "route add 203.0.113.0/24 via 192.0.2.254 table 100",
        "route add blackhole 10.66.0.0/16",
        "rule add from 192.0.2.100/32 table 100 priority 100",
    ]

    journal.clear()
    sup.feed(inst, ev.TrackerChanged(name="t", fault=True))  # MASTER -> FAULT
    assert inst.router.state is ev.State.FAULT
    assert [j for j in journal if not j.startswith(("state", "advert"))] == [
        "rule del from 192.0.2.100/32 table 100 priority 100",
        "route del blackhole 10.66.0.0/16",
        "route del 203.0.113.0/24 via 192.0.2.254 table 100",
        "remove 198.51.100.1/24 dev eth1",
        "remove 192.0.2.100/32 dev eth0",
        "remove 10.99.0.1/32 dev lo",
        "remove 192.0.2.101/24 dev eth0",
    ]
    assert fake.held == set() and inst.extras is None


@in_loop
async def test_leaving_master_before_the_extras_ran_installs_nothing() -> None:
    sup, inst, journal, _ = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    sup.feed(inst, ev.TrackerChanged(name="t", fault=True))  # same loop turn: gone again
    await asyncio.sleep(0)
    assert not any(j.startswith(("route", "rule")) for j in journal)
    assert inst.extras is None


@in_loop
async def test_a_failed_route_is_logged_and_the_rest_installed() -> None:
    sup, inst, journal, _ = _rig(asyncio.get_running_loop(), fail_route=True)
    with structlog.testing.capture_logs() as logs:
        sup.feed(inst, ev.Startup())
        await asyncio.sleep(0)
    assert inst.router.state is ev.State.MASTER  # keepalived too: a route does not fault the instance
    failed = [e for e in logs if e["event"] == "route_add_failed"]
    assert [e["route"] for e in failed] == [
        "203.0.113.0/24 via 192.0.2.254 table 100",
        "blackhole 10.66.0.0/16",
    ]
    assert "rule add from 192.0.2.100/32 table 100 priority 100" in journal
    assert inst.extras is not None and inst.extras.routes == []  # nothing to remove for them


def test_route_and_rule_requests_from_the_config() -> None:
    r = routes.route_request(
        Route.model_validate("2001:db8::/64 dev eth1 src 2001:db8::15 scope link table 1")
    )
    assert (r.ifname, str(r.prefsrc), r.scope, r.table, r.proto) == ("eth1", "2001:db8::15", "link", 1, 18)
    r = routes.route_request(Route.model_validate("default via 10.0.0.1 protocol static metric 5"))
    assert (str(r.dst), r.table, r.proto, r.metric, str(r)) == (
        "0.0.0.0/0",
        254,
        4,
        5,
        "default via 10.0.0.1 metric 5",
    )
    q = routes.rule_request(Rule.model_validate("fwmark 0x10/0xff iif eth0 lookup 7"))
    assert (q.fwmark, q.fwmask, q.iifname, q.table, q.family) == (16, 255, "eth0", 7, 4)
    q = routes.rule_request(Rule.model_validate("from 2001:db8::15/128 table 1 priority 100"))
    assert (q.family, str(q.src), q.priority) == (6, "2001:db8::15/128", 100)


def test_uninstall_of_planned_extras_removes_an_earlier_runs_leftovers() -> None:
    journal: list[str] = []
    spec = VrrpInstance.model_validate(SPEC)
    excluded = [(spec.vip_dev(v), v) for v in spec.virtual_ipaddress_excluded]
    plan = routes.planned(excluded, spec.virtual_routes, spec.virtual_rules)
    with structlog.testing.capture_logs() as logs:
        routes.uninstall(FakeNetlink(journal), plan, structlog.get_logger(), stale=True)
    assert journal[0].startswith("rule del") and journal[-1] == "remove 198.51.100.1/24 dev eth1"
    assert {e["event"] for e in logs} == {
        "stale_rule_removed",
        "stale_route_removed",
    }  # the address was not there
    assert plan == Extras()


def _decode(cls: Any, data: bytes) -> Any:
    msg = cls(data)
    msg.decode()
    return msg


def test_route_encoding_keepalived_defaults() -> None:
    """proto keepalived (18), scope global unless given (keepalived, not iproute2's link),
    table > 255 only in RTA_TABLE, replace on add, scope nowhere on delete."""
    req = nl.RouteRequest(dst=ipaddress.ip_network("10.5.0.0/16"), ifname="eth0", table=70000)
    add = _decode(rtmsg, nl._route_request(RTM_NEWROUTE, req, 3))
    assert (add["proto"], add["scope"], add["table"], add["type"]) == (18, 0, 0, 1)
    assert add.get_attr("RTA_TABLE") == 70000 and add.get_attr("RTA_OIF") == 3
    assert add.get_attr("RTA_DST") == "10.5.0.0" and add["dst_len"] == 16
    assert add["header"]["flags"] & nl.NLM_F_REPLACE
    delete = _decode(rtmsg, nl._route_request(RTM_DELROUTE, req, 3))
    assert delete["scope"] == 255 and not delete["header"]["flags"] & nl.NLM_F_REPLACE
    onlink = nl.RouteRequest(
        dst=ipaddress.ip_network("0.0.0.0/0"),
        gateway=ipaddress.ip_address("10.0.0.1"),
        onlink=True,
        scope="link",
    )
    msg = _decode(rtmsg, nl._route_request(RTM_NEWROUTE, onlink, None))
    assert (msg["flags"], msg["scope"], msg["dst_len"], msg.get_attr("RTA_DST")) == (4, 253, 0, None)
    assert msg.get_attr("RTA_GATEWAY") == "10.0.0.1"


def test_rule_and_address_encoding() -> None:
    rule = nl.RuleRequest(
        family=6, src=ipaddress.ip_network("2001:db8::15/128"), table=1, priority=100, fwmark=5, fwmask=255
    )
    msg = _decode(fibmsg, nl._rule_request(RTM_NEWRULE, rule))
    assert (msg["src_len"], msg.get_attr("FRA_SRC"), msg.get_attr("FRA_PRIORITY")) == (
        128,
        "2001:db8::15",
        100,
    )
    assert (msg.get_attr("FRA_TABLE"), msg.get_attr("FRA_FWMARK"), msg.get_attr("FRA_FWMASK")) == (1, 5, 255)
    vip = ipaddress.ip_interface("10.9.0.5/32")
    brd = ipaddress.ip_address("10.9.0.255")
    addr = _decode(ifaddrmsg, nl._address_request(RTM_NEWADDR, 2, vip, "eth0:v", 253, brd))
    assert (addr["scope"], addr.get_attr("IFA_LABEL"), addr.get_attr("IFA_BROADCAST")) == (
        253,
        "eth0:v",
        "10.9.0.255",
    )


def test_convert_writes_rules_with_their_keepalived_keys() -> None:
    """``pyvrrp convert`` output loads back: a rule's ``from`` is written ``from``, not ``from_``."""
    from pyvrrp.config.models import Config
    from pyvrrp.config.toml_loader import loads_toml
    from pyvrrp.config.toml_writer import config_to_toml

    spec = dict(SPEC, virtual_rules=["from 192.0.2.100 table 100 priority 100", "inet6 fwmark 7 table 5"])
    cfg = Config.model_validate({"vrrp_instance": {"VI": spec}})
    text = config_to_toml(cfg)
    assert "from_" not in text and "family_hint" not in text
    again = loads_toml(text).vrrp_instance["VI"]
    assert again.virtual_rules == cfg.vrrp_instance["VI"].virtual_rules
    assert again.virtual_routes == cfg.vrrp_instance["VI"].virtual_routes
    assert again.virtual_ipaddress == cfg.vrrp_instance["VI"].virtual_ipaddress


def test_the_interfaces_of_vips_and_routes_are_tracked_unless_no_track() -> None:
    """keepalived: an address or route on another interface tracks it (down -> FAULT), unless no_track."""
    from pyvrrp.config.models import Config
    from pyvrrp.runtime.trackers import Trackers

    spec = dict(
        SPEC,
        virtual_ipaddress=["192.0.2.100/32", "192.0.2.7/32 dev eth2 no_track"],
        virtual_routes=["10.1.0.0/16 dev eth3", "10.2.0.0/16 dev eth4 no_track"],
        track_interface=[{"name": "eth3", "weight": -10}],
    )
    cfg = Config.model_validate({"vrrp_instance": {"VI": spec}})
    assert cfg.vrrp_instance["VI"].tracked_devs == ("eth1", "eth3")  # eth1: the excluded VIP
    reports: list[tuple[str, str, int, bool]] = []
    trackers = Trackers.from_config(cfg, lambda *a: reports.append(a), lambda ifname: False)
    trackers.report_all()
    assert sorted(reports) == [("VI", "iface:eth1", 0, True), ("VI", "iface:eth3", -10, False)]


def test_toml_bad_route_names_key_path_and_line(tmp_path: Any) -> None:
    from pyvrrp.config.errors import ConfigError
    from pyvrrp.config.load import load_config

    p = tmp_path / "pyvrrp.toml"
    p.write_text(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\nvirtual_ipaddress = ["10.0.0.1"]\n'
        'virtual_routes = ["10.1.0.0/16 dev eth0 realms 5"]\n'
        'virtual_rules = [{from = "10.0.0.1", table = 0}]\n'
        '[[static_rules]]\nfrom = "10.0.0.0/8"\ntable = "nosuch"\n'
    )
    try:
        load_config(str(p))
    except ConfigError as exc:
        got = {(i.path, i.line) for i in exc.issues}
        msgs = " ".join(i.message for i in exc.issues)
    else:
        raise AssertionError("loaded")
    assert got == {
        ("vrrp_instance.VI_1.virtual_routes[0]", 5),
        ("vrrp_instance.VI_1.virtual_rules[0].table", 6),
        ("static_rules[0].table", 9),
    }, got
    assert "route option 'realms' is not supported" in msgs and "unknown table name 'nosuch'" in msgs


def test_resync_touches_only_what_changed() -> None:
    """A reload: a kept route is neither removed nor re-added (no forwarding gap)."""
    journal: list[str] = []
    fake = FakeNetlink(journal)
    extras = Extras()
    log = structlog.get_logger()
    a, b, c = (Route.model_validate(f"10.{i}.0.0/16 via 192.0.2.254") for i in (1, 2, 3))
    rule = Rule.model_validate("from 10.9.0.1 table 9 priority 9")
    routes.install(fake, routes=[a, b], rules=[rule], into=extras, bound=log)
    journal.clear()
    routes.resync(fake, extras, addresses=[], routes=[b, c], rules=[rule], bound=log)
    assert journal == ["route del 10.1.0.0/16 via 192.0.2.254", "route add 10.3.0.0/16 via 192.0.2.254"]
    assert [str(r.dst) for r in extras.routes] == ["10.2.0.0/16", "10.3.0.0/16"] and len(extras.rules) == 1


def test_held_record_keeps_routes_and_rules_round_trip(tmp_path: Any) -> None:
    from pyvrrp.runtime.held import HeldState

    spec = VrrpInstance.model_validate(SPEC)
    reqs = [routes.route_request(r) for r in spec.virtual_routes]
    reqs.append(routes.route_request(Route.model_validate("2001:db8::/64 dev eth1 src 2001:db8::15 onlink")))
    rules = [routes.rule_request(Rule.model_validate("fwmark 0x10/0xff iif eth0 table 7"))]
    held = HeldState.in_dir(tmp_path)
    held.routes = {routes.route_key(r) for r in reqs}
    held.rules = {routes.rule_key(r) for r in rules}
    held.save()
    back = HeldState.load(held.path)
    assert sorted(map(str, (routes.route_from_key(k) for k in back.routes))) == sorted(map(str, reqs))
    assert {routes.route_from_key(k) for k in back.routes} == set(reqs)
    assert [routes.rule_from_key(k) for k in back.rules] == rules
    journal: list[str] = []
    assert (
        routes.release_recorded(
            FakeNetlink(journal), back.routes, {*back.rules, "{}"}, structlog.get_logger()
        )
        == 1
    )
    assert journal[0] == "rule del iif eth0 fwmark 0x10/0xff table 7" and len(journal) == 4


@in_loop
async def test_the_executor_records_what_a_master_holds_for_crash_cleanup(tmp_path: Any) -> None:
    from pyvrrp.runtime.held import HeldState

    sup, inst, _journal, _ = _rig(asyncio.get_running_loop())
    held = HeldState.in_dir(tmp_path)
    assert sup.executor is not None
    sup.executor.held = held
    sup.feed(inst, ev.Startup())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    saved = HeldState.load(held.path)
    assert len(saved.routes) == 2 and len(saved.rules) == 1
    assert ("eth1", "198.51.100.1/24") in saved.vips and ("lo", "10.99.0.1/32") in saved.vips
    sup.feed(inst, ev.TrackerChanged(name="t", fault=True))
    await asyncio.sleep(0)
    saved = HeldState.load(held.path)
    assert (saved.routes, saved.rules, saved.vips) == (set(), set(), set())


@in_loop
async def test_a_vip_dropped_by_a_reload_comes_off_the_dev_it_was_added_on() -> None:
    sup, inst, journal, fake = _rig(asyncio.get_running_loop())
    sup.feed(inst, ev.Startup())
    assert "add 10.99.0.1/32 dev lo scope host" in journal
    new = VrrpInstance.model_validate(dict(SPEC, virtual_ipaddress=["192.0.2.100/32"]))
    inst.spec = new  # what Daemon._apply does before reconfigure
    cfg = router_config("VI", new, ipaddress.ip_address("192.0.2.10"), in_group=False)
    assert sup.executor is not None
    for action in inst.router.reconfigure(cfg, now=asyncio.get_running_loop().time()):
        sup.executor.execute(inst, action)
    assert "remove 10.99.0.1/32 dev lo" in journal
    assert "lo 10.99.0.1/32" not in fake.held
