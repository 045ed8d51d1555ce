"""`pyvrrp doctor`'s checks against fake readers, and `pyvrrp run`'s default config paths.

The firewall fixture is real ``nft -j list ruleset`` output (nftables 1.0.6, captured in a
throw-away network namespace) so the parser is tested on what nft prints, not on what
we think it prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from pyvrrp import doctor as d
from pyvrrp.cli import run as run_cli
from pyvrrp.cli.app import app
from pyvrrp.config.load import load_config
from pyvrrp.proto.packet import Advertisement, encode

runner = CliRunner()
RealProbes = d.Probes  # FakeHost builds real Probes even while d.Probes is patched
IFF_UP_MC = d.IFF_UP | d.IFF_MULTICAST


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


# ------------------------------------------------------------------ capabilities


def _status(capeff: int) -> str:
    return f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{capeff:016x}\nCapBnd:\t000001ffffffffff\n"


def test_capabilities_root_is_ok() -> None:
    assert d.check_capabilities(_status(0x1FFFFFFFFFF)).status == "ok"


def test_capabilities_missing_net_raw_fails_and_names_it() -> None:
    c = d.check_capabilities(_status(1 << d.CAP_NET_ADMIN))
    assert c.status == "fail"
    assert "CAP_NET_RAW" in c.detail and "CAP_NET_ADMIN" not in c.detail.split("(")[0]
    assert "AmbientCapabilities" in c.fix


def test_capabilities_unreadable_is_unknown() -> None:
    assert d.check_capabilities(None).status == "skip"
    assert d.check_capabilities("Name: x\n").status == "skip"


# ------------------------------------------------------------------ interfaces


def _link(
    name: str = "eth0", flags: int = IFF_UP_MC, oper: str = "up", mtu: int = 1500, *addrs: str
) -> d.LinkInfo:
    return d.LinkInfo(name, flags, oper, mtu, tuple(ip_address(a) for a in addrs))


def _by_status(checks: Sequence[d.Check]) -> dict[str, list[d.Check]]:
    out: dict[str, list[d.Check]] = {}
    for c in checks:
        out.setdefault(c.status, []).append(c)
    return out


def test_missing_interface_fails_with_a_hint() -> None:
    [c] = d.check_interface("eth9", None, family=4, sends=True, multicast=True)
    assert c.status == "fail" and "eth9" in c.detail and "ip -br link" in c.fix


def test_interface_down_and_no_carrier_fail() -> None:
    down = d.check_interface(
        "eth0", _link(flags=d.IFF_MULTICAST, oper="down"), family=4, sends=False, multicast=True
    )
    assert down[0].status == "fail" and "ip link set eth0 up" in down[0].fix
    nocarrier = d.check_interface("eth0", _link(oper="lowerlayerdown"), family=4, sends=False, multicast=True)
    assert nocarrier[0].status == "fail" and "carrier" in nocarrier[0].detail


def test_interface_ok_reports_mtu_and_source() -> None:
    checks = d.check_interface(
        "eth0",
        _link("eth0", IFF_UP_MC, "up", 9000, "10.0.0.5", "10.0.0.100"),
        family=4,
        sends=True,
        multicast=True,
        vips=[IPv4Address("10.0.0.100")],
    )
    assert [c.status for c in checks] == ["ok", "ok"]
    assert "MTU 9000" in checks[0].detail and "10.0.0.5" in checks[1].detail


def test_only_a_vip_is_no_source_address() -> None:
    checks = d.check_interface(
        "eth0",
        _link("eth0", IFF_UP_MC, "up", 1500, "10.0.0.100"),
        family=4,
        sends=True,
        multicast=True,
        vips=[IPv4Address("10.0.0.100")],
    )
    assert checks[-1].status == "fail" and "no IPv4 address other than a VIP" in checks[-1].detail


def test_ipv6_needs_a_link_local_source() -> None:
    global_only = _link("eth0", IFF_UP_MC, "up", 1500, "fd00::5")
    assert d.check_interface("eth0", global_only, family=6, sends=True, multicast=True)[-1].status == "fail"
    with_ll = _link("eth0", IFF_UP_MC, "up", 1500, "fd00::5", "fe80::1")
    last = d.check_interface("eth0", with_ll, family=6, sends=True, multicast=True)[-1]
    assert last.status == "ok" and "fe80::1" in last.detail and last.name == "source eth0 IPv6"


def test_configured_source_must_be_on_the_interface() -> None:
    checks = d.check_interface(
        "eth0",
        _link("eth0", IFF_UP_MC, "up", 1500, "10.0.0.5"),
        family=4,
        sends=True,
        multicast=False,
        src=IPv4Address("10.0.0.6"),
    )
    assert checks[-1].status == "fail" and "10.0.0.6" in checks[-1].detail


def test_no_multicast_flag_fails_in_multicast_mode_only() -> None:
    link = _link("eth0", d.IFF_UP, "up", 1500, "10.0.0.5")
    assert any(
        c.name == "multicast eth0" and c.status == "fail"
        for c in d.check_interface("eth0", link, family=4, sends=True, multicast=True)
    )
    assert all(
        c.status == "ok" for c in d.check_interface("eth0", link, family=4, sends=True, multicast=False)
    )


def test_small_mtu_warns() -> None:
    checks = d.check_interface("eth0", _link(mtu=1000), family=6, sends=False, multicast=True)
    assert any(c.status == "warn" and "1280" in c.detail for c in checks)


# ------------------------------------------------------------------ firewall

NFT_REAL = json.loads(
    '{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, '
    '{"table": {"family": "inet", "name": "filter", "handle": 1}}, '
    '{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", '
    '"hook": "input", "prio": 0, "policy": "drop"}}, '
    '{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": [{"match": '
    '{"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, '
    '{"accept": null}]}}, '
    '{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3, "expr": [{"match": '
    '{"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, '
    '{"accept": null}]}}, '
    '{"table": {"family": "ip", "name": "other", "handle": 2}}, '
    '{"chain": {"family": "ip", "table": "other", "name": "in2", "handle": 1, "type": "filter", '
    '"hook": "input", "prio": 10, "policy": "accept"}}, '
    '{"rule": {"family": "ip", "table": "other", "chain": "in2", "handle": 2, "expr": [{"match": '
    '{"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, '
    '{"drop": null}]}}]}'
)


def _without(
    ruleset: dict[str, Any], *, table: str | None = None, handle: int | None = None
) -> dict[str, Any]:
    items = []
    for item in ruleset["nftables"]:
        body = next(iter(item.values()))
        if table is not None and body.get("table", body.get("name")) == table and "metainfo" not in item:
            continue
        if handle is not None and "rule" in item and body["handle"] == handle and body["table"] == "filter":
            continue
        items.append(item)
    return {"nftables": items}


def test_nft_rule_dropping_112_fails() -> None:
    c = d.check_nft(NFT_REAL)
    assert c.status == "fail" and "ip other in2: a rule drops protocol 112" in c.detail


def test_nft_accepting_112_before_the_drop_policy_is_ok() -> None:
    assert d.check_nft(_without(NFT_REAL, table="other")).status == "ok"


def test_nft_drop_policy_without_an_accept_warns() -> None:
    c = d.check_nft(_without(_without(NFT_REAL, table="other"), handle=3))
    assert c.status == "warn" and "policy drop" in c.detail and "ip protocol vrrp accept" in c.fix


def test_nft_set_and_l4proto_numbers_count_as_112() -> None:
    expr = [
        {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["tcp", 112]}}},
        {"accept": None},
    ]
    ruleset = {
        "nftables": [
            {"chain": {"family": "inet", "table": "t", "name": "in", "hook": "input", "policy": "drop"}},
            {"rule": {"family": "inet", "table": "t", "chain": "in", "expr": expr}},
        ]
    }
    assert d.check_nft(ruleset).status == "ok"


def test_nft_catch_all_drop_fails() -> None:
    ruleset = {
        "nftables": [
            {"chain": {"family": "inet", "table": "t", "name": "in", "hook": "input", "policy": "accept"}},
            {"rule": {"family": "inet", "table": "t", "chain": "in", "expr": [{"drop": None}]}},
        ]
    }
    assert d.check_nft(ruleset).status == "fail"


def test_nft_without_input_chain_is_ok() -> None:
    assert d.check_nft({"nftables": [{"metainfo": {}}]}).status == "ok"


def test_iptables_save() -> None:
    accept = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p vrrp -j ACCEPT\nCOMMIT\n"
    drop = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p 112 -j DROP\nCOMMIT\n"
    policy = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n"
    nat_only = "*nat\n:INPUT DROP [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
    assert d.check_iptables(accept).status == "ok"
    assert d.check_iptables(drop).status == "fail"
    assert d.check_iptables(policy).status == "warn"
    assert d.check_iptables(nat_only).status == "ok"


def test_firewall_prefers_nft_and_says_unknown() -> None:
    assert d.check_firewall(json.dumps(NFT_REAL), "*filter\n:INPUT ACCEPT [0:0]\n").status == "fail"
    assert d.check_firewall(None, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").status == "ok"
    unknown = d.check_firewall(None, None)
    assert unknown.status == "skip" and unknown.detail.startswith("unknown")
    assert d.check_firewall("not json", None).status == "skip"


# ------------------------------------------------------------------ sysctls


def _sysctl(values: dict[str, str]) -> Any:
    return lambda key: values.get(key)


def test_director_sysctls() -> None:
    good = {
        "net.ipv4.conf.all.rp_filter": "0",
        "net.ipv4.conf.eth0.rp_filter": "2",
        "net.ipv4.conf.all.arp_ignore": "1",
        "net.ipv4.conf.eth1.arp_ignore": "0",
        "net.ipv4.conf.all.arp_announce": "0",
        "net.ipv4.conf.eth1.arp_announce": "2",
        "net.ipv4.ip_nonlocal_bind": "1\n",
        "net.ipv6.ip_nonlocal_bind": "0\n",
    }
    checks = d.check_sysctls(_sysctl(good), ["eth0"], vip_ifs=["eth1"], vip_families={4}, unicast=True)
    assert [(c.name, c.status) for c in checks] == [
        ("rp_filter eth0", "ok"),
        ("arp eth1", "ok"),
        ("ip_nonlocal_bind", "ok"),
    ]
    bad = dict(
        good,
        **{
            "net.ipv4.conf.eth0.rp_filter": "1",
            "net.ipv4.conf.all.arp_ignore": "0",
            "net.ipv4.ip_nonlocal_bind": "0\n",
        },
    )
    checks = d.check_sysctls(_sysctl(bad), ["eth0"], vip_ifs=["eth1"], vip_families={4, 6}, unicast=True)
    by = {c.name: c for c in checks}
    assert by["rp_filter eth0"].status == "warn" and "rp_filter=2" in by["rp_filter eth0"].fix
    assert by["arp eth1"].status == "warn" and "eth1.arp_ignore=1" in by["arp eth1"].fix
    assert by["ip_nonlocal_bind"].status == "warn"
    assert (
        by["ip_nonlocal_bind IPv6"].status == "warn"
        and "net.ipv6.ip_nonlocal_bind=1" in by["ip_nonlocal_bind IPv6"].fix
    )
    # strict rp_filter only matters for unicast peers; no VIPs: no ARP / nonlocal checks
    multicast = d.check_sysctls(_sysctl(bad), ["eth0"], unicast=False)
    assert [(c.name, c.status) for c in multicast] == [("rp_filter eth0", "ok")]
    assert d.check_sysctls(_sysctl({}), ["eth0"])[0].status == "skip"


def test_ipvs() -> None:
    assert d.check_ipvs(True, "").status == "ok"
    missing = d.check_ipvs(False, "kernel has no IPVS")
    assert missing.status == "fail" and "modprobe ip_vs" in missing.fix
    assert d.check_ipvs(None, "boom").status == "skip"


# ------------------------------------------------------------------ the wire

PEER = IPv4Address("10.0.0.6")
ME = IPv4Address("10.0.0.5")
GROUP = IPv4Address("224.0.0.18")


def _heard(
    src: IPv4Address | IPv6Address = PEER,
    *,
    vrid: int = 51,
    addrs: Sequence[str] = ("10.0.0.100",),
    interval_cs: int = 100,
    ttl: int = 255,
    version: int = 3,
    ifname: str = "eth0",
) -> d.Heard:
    dst = GROUP
    adv = Advertisement(
        version=version,
        vrid=vrid,
        priority=100,
        addresses=tuple(ip_address(a) for a in addrs),
        interval_cs=interval_cs,
    )
    return d.Heard(ifname, src, dst, ttl, encode(adv, src=src, dst=dst), 0.0)


def _to_me(src: IPv4Address = PEER) -> d.Heard:
    """A unicast advert from ``src`` to this host (keepalived ``unicast_peer``)."""
    adv = Advertisement(
        version=3, vrid=51, priority=100, addresses=(IPv4Address("10.0.0.100"),), interval_cs=100
    )
    return d.Heard("eth0", src, ME, 255, encode(adv, src=src, dst=ME), 0.0)


def _inst(**kw: Any) -> d.InstanceWire:
    base: dict[str, Any] = dict(
        name="VI_51", ifname="eth0", family=4, vrid=51, version=3, advert_int_cs=100, vips=("10.0.0.100",)
    )
    return d.InstanceWire(**(base | kw))


def test_peer_heard_is_ok_and_own_adverts_are_ignored() -> None:
    wire = d.summarize([_heard(), _heard(), _heard(ME)], local={ME})
    [c] = d.check_adverts(_inst(), wire, 3.0)
    assert (
        c.status == "ok" and "10.0.0.6" in c.detail and "2 adverts" in c.detail and "10.0.0.5" not in c.detail
    )


def test_silence_warns() -> None:
    [c] = d.check_adverts(_inst(), d.summarize([_heard(ME)], local={ME}), 3.0)
    assert c.status == "warn" and "no advert" in c.detail and "IGMP snooping" in c.fix


def test_duplicate_vrid_with_other_addresses_fails() -> None:
    wire = d.summarize([_heard(addrs=("10.9.9.9",))], local=set())
    checks = d.check_adverts(_inst(), wire, 3.0)
    dup = [c for c in checks if c.status == "fail"]
    assert dup and "10.9.9.9" in dup[0].detail and "virtual_router_id" in dup[0].fix


def test_interval_version_and_ttl_mismatches() -> None:
    wire = d.summarize([_heard(interval_cs=200, ttl=254)], local=set())
    by = _by_status(d.check_adverts(_inst(), wire, 3.0))
    assert any("every 2s" in c.detail for c in by["warn"])
    assert any("TTL 254" in c.detail for c in by["fail"])
    v2 = d.summarize([_heard(version=2)], local=set())
    assert any("VRRPv2" in c.detail for c in d.check_adverts(_inst(), v2, 3.0) if c.status == "fail")


def test_unicast_peer_missing_warns() -> None:
    other = IPv4Address("10.0.0.7")
    wire = d.summarize([_to_me()], local={ME})
    [c] = d.check_adverts(_inst(unicast_peers=(PEER, other)), wire, 3.0)
    assert c.status == "warn" and "10.0.0.7" in c.detail and "heard 10.0.0.6" in c.detail


def test_unicast_and_multicast_mixed_on_one_vrid_warns() -> None:
    multicast_peer = d.summarize([_heard()], local=set())
    checks = d.check_adverts(_inst(unicast_peers=(PEER,)), multicast_peer, 3.0)
    assert [c.status for c in checks] == ["ok", "warn"] and "by multicast" in checks[1].detail
    to_me = _to_me()
    checks = d.check_adverts(_inst(), d.summarize([to_me], local={ME}), 3.0)
    assert [c.status for c in checks] == ["ok", "warn"] and "by unicast" in checks[1].detail
    assert (
        d.check_adverts(_inst(unicast_peers=(PEER,)), d.summarize([to_me], local={ME}), 3.0)[0].status == "ok"
    )


def test_foreign_vrids_are_reported_not_failed() -> None:
    wire = d.summarize([_heard(vrid=52, addrs=("10.0.0.200",)), _heard()], local=set())
    [c] = d.check_foreign_vrids(wire, {("eth0", 4, 51)})
    assert c.status == "ok" and "VRID 52" in c.detail


def test_two_masters_among_the_peers_fail_through_the_sniff_analysis() -> None:
    other = IPv4Address("10.0.0.7")
    heard = []
    for i in range(4):  # both advertise non-zero priority at the same time: split brain
        for src in (PEER, other):
            h = _heard(src)
            heard.append(d.Heard(h.ifname, h.src, h.dst, h.ttl, h.payload, 100.0 + i))
    [c] = d.check_wire_conflicts(heard, local=set())
    assert c.status == "fail" and c.detail.startswith("two-masters") and c.name == "wire IPv4 VRID 51"
    # one master and our own adverts: nothing to report
    assert d.check_wire_conflicts([h for h in heard if h.src == PEER], local=set()) == []
    assert d.check_wire_conflicts(heard, local={other}) == []


def test_invalid_packets_are_not_counted_as_peers() -> None:
    bad = _heard()
    bad = d.Heard(bad.ifname, bad.src, bad.dst, bad.ttl, bad.payload[:-1] + b"\x00", 0.0)
    assert d.summarize([bad], local=set()) == {}


# ------------------------------------------------------------------ run_checks

CONFIG = """
[vrrp_instance.VI_51]
interface = "eth0"
virtual_router_id = 51
version = 3
advert_int = 0.5
virtual_ipaddress = ["10.0.0.100/32"]

[vrrp_instance.VI_52]
interface = "eth9"
virtual_router_id = 52
version = 3
virtual_ipaddress = ["10.0.1.100/32"]
"""


class FakeHost:
    """Probes for a host with eth0 (10.0.0.5) and a peer 10.0.0.6 advertising VRID 51."""

    def __init__(self) -> None:
        self.listened: list[tuple[Sequence[tuple[str, int]], float]] = []

    def listen(self, sockets: Sequence[tuple[str, int]], seconds: float) -> Any:
        self.listened.append((sockets, seconds))
        return [_heard(interval_cs=50), _heard(ME, interval_cs=50)], []

    def probes(self) -> d.Probes:
        links = {"eth0": _link("eth0", IFF_UP_MC, "up", 1500, "10.0.0.5")}
        return RealProbes(
            proc_status=lambda: _status(0x3000),
            link=links.get,
            sysctl=_sysctl({}),
            nft_ruleset=lambda: None,
            iptables_save=lambda: None,
            ipvs=lambda: (True, ""),
            listen=self.listen,
        )


def test_run_checks_flags_the_missing_interface_and_hears_the_peer(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(CONFIG)
    host = FakeHost()
    checks = d.run_checks(load_config(path), host.probes())
    by = {c.name: c for c in checks}
    assert by["interface eth9"].status == "fail"
    assert by["adverts VI_51"].status == "ok" and "10.0.0.6" in by["adverts VI_51"].detail
    assert by["adverts VI_52"].status == "skip"
    assert by["time sync"].status == "skip" and by["ip_vs"].status == "skip"
    assert by["arp eth0"].status == "skip" and "arp eth9" not in by  # unreadable here; eth9 absent
    assert d.exit_code(checks) == 1
    # one socket, on the interface that exists, for three advert intervals (1.5 s)
    assert host.listened == [([("eth0", 4)], 1.5)]


def test_run_checks_listen_zero_does_not_listen(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(CONFIG.split("[vrrp_instance.VI_52]")[0])
    host = FakeHost()
    checks = d.run_checks(load_config(path), host.probes(), listen_s=0)
    assert host.listened == []
    assert d.exit_code(checks) == 0
    assert any(c.name == "adverts" and c.status == "skip" for c in checks)


def test_doctor_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_cli, "DEFAULT_CONFIGS", (tmp_path / "a.toml", tmp_path / "b.conf"))
    missing = runner.invoke(app, ["doctor"])
    assert missing.exit_code == 2 and "a.toml" in missing.output and "b.conf" in missing.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[vrrp_instance.X]\ninterface = 'eth0'\n")
    assert runner.invoke(app, ["doctor", "-f", str(bad)]).exit_code == 2
    good = tmp_path / "p.toml"
    good.write_text(CONFIG)
    host = FakeHost()
    monkeypatch.setattr(d, "Probes", host.probes)
    result = runner.invoke(app, ["doctor", "-f", str(good), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["counts"]["fail"] >= 1
    assert {"name", "status", "detail", "fix"} <= set(doc["checks"][0])
    text = runner.invoke(app, ["doctor", "-f", str(good)])
    assert "FAIL  interface eth9" in text.output and "fix: " in text.output


# ------------------------------------------------------------------ run's default config


def test_resolve_config_prefers_the_flag_then_pyvrrp_then_keepalived(tmp_path: Path) -> None:
    toml, conf = tmp_path / "pyvrrp.toml", tmp_path / "keepalived.conf"
    assert run_cli.resolve_config("/x.toml", (toml, conf)) == "/x.toml"
    conf.write_text("")
    assert run_cli.resolve_config(None, (toml, conf)) == str(conf)
    toml.write_text("")
    assert run_cli.resolve_config(None, (toml, conf)) == str(toml)


def test_resolve_config_names_both_paths_when_neither_exists(tmp_path: Path) -> None:
    paths = (tmp_path / "pyvrrp.toml", tmp_path / "keepalived.conf")
    with pytest.raises(run_cli.DefaultConfigMissing) as exc:
        run_cli.resolve_config(None, paths)
    assert str(paths[0]) in str(exc.value) and str(paths[1]) in str(exc.value)


def test_run_without_f_and_no_default_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_cli, "DEFAULT_CONFIGS", (tmp_path / "pyvrrp.toml", tmp_path / "keepalived.conf"))
    result = runner.invoke(app, ["run", "--log-format", "json"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pyvrrp.toml" in lines[0] and "keepalived.conf" in lines[0]


def test_run_without_f_uses_and_logs_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 0\n}\n")  # invalid: vrid 0
    monkeypatch.setattr(run_cli, "DEFAULT_CONFIGS", (tmp_path / "pyvrrp.toml", conf))
    result = runner.invoke(app, ["run", "--log-format", "json"])
    assert result.exit_code == 1
    assert '"event": "config_default"' in result.output and str(conf) in result.output
    assert "invalid configuration" in result.output
