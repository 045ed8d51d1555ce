"""Issue 16: keepalived.conf as people write it -- leniency where keepalived is lenient,
refusals that say what to do, and the keywords the real-config corpus uses.

Each test names the keepalived behaviour it copies (measured with keepalived 2.2.7 ``-t``,
or keepalived.conf(5)).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.config import keepalived as ka
from pyvrrp.config import models
from pyvrrp.config.errors import ConfigError, ConfigIssue
from pyvrrp.config.load import load_config
from pyvrrp.config.toml_loader import loads_toml


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "keepalived.conf"
    p.write_text(text)
    return p


def _inst(body: str = "", head: str = "") -> str:
    return (
        f"{head}vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n"
        f" virtual_ipaddress {{\n  10.0.0.1/24\n }}\n{body}\n}}\n"
    )


def _errors(tmp_path: Path, text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as ei:
        load_config(_write(tmp_path, text))
    return [i for i in ei.value.issues if i.severity == "error"]


def _warnings(tmp_path: Path, text: str) -> tuple[models.Config, list[ConfigIssue]]:
    cfg = load_config(_write(tmp_path, text))
    return cfg, cfg.warnings()


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["check-config", *args])
    return res.exit_code, res.output


# ------------------------------------------------------------------------------ check-config


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, _inst(" nat_mask 255.255.255.0"))
    code, out = _cli("-f", str(p))
    assert code == 0 and "warning:" in out and f"{p}:7:" in out
    code, out = _cli("-f", str(p), "--strict")
    assert code == 1
    assert f"error: {p}:7: vrrp_instance.VI_1.nat_mask: unknown keyword 'nat_mask'" in out
    assert "(--strict: warnings count as errors)" in out
    code, out = _cli("-f", str(p), "--strict", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["strict"] and [e["line"] for e in doc["errors"]] == [7]


def test_strict_passes_a_clean_file(tmp_path: Path) -> None:
    text = "global_defs {\n router_id x\n}\n" + _inst()
    code, _out = _cli("-f", str(_write(tmp_path, text)), "--strict")
    assert code == 0


def test_auth_pass_warning_printed_once(tmp_path: Path) -> None:
    p = _write(tmp_path, _inst(" authentication {\n  auth_type PASS\n  auth_pass longerthan8\n }"))
    code, out = _cli("-f", str(p))
    assert code == 0
    assert [line for line in out.splitlines() if "auth_pass:" in line] == [
        f"warning: {p}:9: vrrp_instance.VI_1.authentication.auth_pass: "
        "longer than 8 characters: only the first 8 are used (as keepalived)"
    ]


# ------------------------------------------------------------------------------ unknown keywords


def test_misspelt_auth_pass_is_an_error(tmp_path: Path) -> None:
    """keepalived would run without the password (and so never agree with its peers): refuse."""
    errs = _errors(tmp_path, _inst(" authentication {\n  auth_type PASS\n  auth_pas secret\n }"))
    (e,) = errs
    assert (e.path, e.line) == ("vrrp_instance.VI_1.authentication.auth_pas", 9)
    assert "did you mean 'auth_pass'?" in e.message


def test_unknown_block_is_skipped_whole(tmp_path: Path) -> None:
    """keepalived skips an unknown block with its contents: one warning, nothing read from inside."""
    cfg, warnings = _warnings(tmp_path, _inst(" frobnicate {\n  priority 200\n }"))
    assert cfg.vrrp_instance["VI_1"].priority == 100
    assert [(w.line, w.path) for w in warnings if "unknown" in w.message] == [
        (7, "vrrp_instance.VI_1.frobnicate")
    ]


# ------------------------------------------------------------------------------ virtual_server line


@pytest.mark.parametrize(
    ("head", "word"),
    [
        ("virtual_server 10.0.0.300 80", "'10.0.0.300' is not an IP address"),
        ("virtual_server 10.0.0.1 http", "'http' is not a port"),
        ("virtual_server 10.0.0.1 70000", "'70000' is not a port"),
        ("virtual_server fwmark x1", "fwmark 'x1' is not a number"),
    ],
)
def test_cannot_read_virtual_server_names_the_word(tmp_path: Path, head: str, word: str) -> None:
    (e,) = _errors(tmp_path, f"{head} {{\n protocol TCP\n}}\n")
    assert e.line == 1 and "cannot read virtual_server" in e.message and word in e.message


def test_virtual_server_extra_words_warn(tmp_path: Path) -> None:
    """keepalived 2.2.7 ignores words after `IP PORT` (`dev eth0.53` in a real config)."""
    text = "virtual_server 10.0.0.1 53 dev eth0.53 {\n protocol UDP\n}\n" + _inst()
    cfg, warnings = _warnings(tmp_path, text)
    assert list(cfg.virtual_server) == ["10.0.0.1:53"]
    (w,) = [w for w in warnings if "extra words" in w.message]
    assert w.line == 1 and "'dev eth0.53'" in w.message


def test_invalid_scheduler_is_ignored_like_keepalived(tmp_path: Path) -> None:
    """keepalived: "Invalid lvs_scheduler 'loadbalance' - ignoring" and then wlc."""
    text = "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo loadbalance\n}\n" + _inst()
    cfg, warnings = _warnings(tmp_path, text)
    assert cfg.virtual_server["10.0.0.1:80"].lvs_sched == "wlc"
    assert any(w.line == 3 and "'loadbalance' is not an IPVS scheduler" in w.message for w in warnings)
    # pyvrrp's own TOML stays strict
    with pytest.raises(ConfigError) as ei:
        loads_toml('[virtual_server."10.0.0.1:80"]\nprotocol = "TCP"\nlvs_sched = "loadbalance"\n')
    assert ei.value.issues[0].path == 'virtual_server."10.0.0.1:80".lvs_sched'


# ------------------------------------------------------------------------------ one-line lists


def test_one_line_track_interface_keeps_the_authentication(tmp_path: Path) -> None:
    """`track_interface eth0` without braces (a real config): read as a one-item list; the
    authentication block after it is kept (keepalived would swallow it into the list)."""
    body = " track_interface eth1\n authentication {\n  auth_type PASS\n  auth_pass secret\n }"
    cfg, warnings = _warnings(tmp_path, _inst(body))
    inst = cfg.vrrp_instance["VI_1"]
    assert [t.name for t in inst.track_interface] == ["eth1"]
    assert inst.authentication is not None and inst.authentication.auth_pass == "secret"
    (w,) = [w for w in warnings if "has no { }" in w.message]
    assert w.line == 7 and "add the braces" in w.message


def test_one_line_unicast_peer(tmp_path: Path) -> None:
    cfg, warnings = _warnings(tmp_path, _inst(" unicast_peer 10.0.0.2"))
    assert [str(p) for p in cfg.vrrp_instance["VI_1"].unicast_peer] == ["10.0.0.2"]
    assert any(w.line == 7 and "unicast_peer { 10.0.0.2 }" in w.message for w in warnings)


# ------------------------------------------------------------------------------ instances without VIPs


def test_instance_without_vips_loads(tmp_path: Path) -> None:
    text = (
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n"
        " unicast_src_ip fe80::1\n notify_master /bin/true\n}\n"
    )
    cfg, warnings = _warnings(tmp_path, text)
    inst = cfg.vrrp_instance["VI_1"]
    assert inst.vip_list == () and inst.vip_interfaces == ("eth0",)
    assert inst.family == 6 and inst.version == 3  # from unicast_src_ip, as keepalived
    (w,) = [w for w in warnings if w.path == "vrrp_instance.VI_1"]
    assert w.line == 1 and "No VIP specified" in w.message


def test_no_virtual_ipaddress_keyword(tmp_path: Path) -> None:
    text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n no_virtual_ipaddress\n}\n"
    cfg, warnings = _warnings(tmp_path, text)
    assert cfg.vrrp_instance["VI_1"].no_virtual_ipaddress
    assert not [w for w in warnings if w.path == "vrrp_instance.VI_1"]


# ------------------------------------------------------------------------------ small keywords


def test_bare_preempt_delay_keeps_the_default(tmp_path: Path) -> None:
    """keepalived -t: "missing a parameter after keyword `preempt_delay`", then runs with 0."""
    cfg, warnings = _warnings(tmp_path, _inst(" preempt_delay"))
    assert cfg.vrrp_instance["VI_1"].preempt_delay == 0
    assert any(w.line == 7 and "without a value" in w.message for w in warnings)
    cfg, _ = _warnings(tmp_path, _inst(" preempt_delay 12.5"))
    assert cfg.vrrp_instance["VI_1"].preempt_delay == 12.5
    (e,) = _errors(tmp_path, _inst(" preempt_delay 2000"))
    assert (e.path, e.line) == ("vrrp_instance.VI_1.preempt_delay", 7)


def test_lvs_timeouts(tmp_path: Path) -> None:
    cfg, warnings = _warnings(tmp_path, "global_defs {\n lvs_timeouts tcp 7200 udp 300\n}\n" + _inst())
    t = cfg.global_defs.lvs_timeouts
    assert t is not None and (t.tcp, t.tcpfin, t.udp) == (7200, None, 300)
    assert not [w for w in warnings if "lvs_timeouts" in w.path]  # set by the IPVS manager
    (e,) = _errors(tmp_path, "global_defs {\n lvs_timeouts tcp 7200 sctp 3\n}\n" + _inst())
    assert (e.path, e.line) == ("global_defs.lvs_timeouts", 2) and "'sctp'" in e.message
    (e,) = _errors(tmp_path, "global_defs {\n lvs_timeouts udp 0\n}\n" + _inst())
    assert (e.path, e.line) == ("global_defs.lvs_timeouts.udp", 2)


def test_mcast_groups(tmp_path: Path) -> None:
    """The RFC groups written out load, and so does another group (the daemon advertises to it
    and joins it); a non-multicast address is refused."""
    head = "global_defs {\n vrrp_mcast_group4 224.0.0.18\n vrrp_mcast_group6 ff02::12\n}\n"
    cfg, warnings = _warnings(tmp_path, head + _inst())
    assert str(cfg.global_defs.vrrp_mcast_group4) == "224.0.0.18"
    assert not [w for w in warnings if "group" in w.path]
    other = head.replace("224.0.0.18", "224.0.0.19").replace("ff02::12", "ff02::1:12")
    cfg, warnings = _warnings(tmp_path, other + _inst())
    assert (str(cfg.global_defs.vrrp_mcast_group4), str(cfg.global_defs.vrrp_mcast_group6)) == (
        "224.0.0.19",
        "ff02::1:12",
    )
    assert not [w for w in warnings if "group" in w.path]
    (e,) = _errors(tmp_path, head.replace("224.0.0.18", "10.0.0.1") + _inst())
    assert e.path == "global_defs" and "must be an IPv4 multicast address" in e.message


def test_thresholds(tmp_path: Path) -> None:
    text = (
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n"
        "  uthreshold 100\n  lthreshold 10\n }\n}\n" + _inst()
    )
    cfg, warnings = _warnings(tmp_path, text)
    rs = cfg.virtual_server["10.0.0.1:80"].real_server[0]
    assert (rs.uthreshold, rs.lthreshold) == (100, 10)
    assert not [w for w in warnings if "threshold" in w.message]  # programmed (u_thresh / l_thresh)
    (e,) = _errors(tmp_path, text.replace("uthreshold 100", "uthreshold -1"))
    assert e.path.endswith("real_server[0].uthreshold") and e.line == 4
    (e,) = _errors(tmp_path, text.replace("uthreshold 100", "uthreshold 5"))
    assert e.path.endswith("real_server[0]") and e.line == 3
    assert "lthreshold 10 is above uthreshold 5" in e.message


def test_vrrp_iptables_means_nftables(tmp_path: Path) -> None:
    cfg, warnings = _warnings(tmp_path, "global_defs {\n vrrp_iptables IN OUT\n}\n" + _inst(" no_accept"))
    (w,) = [w for w in warnings if w.line == 2]
    assert "nftables" in w.message and "approximated" in w.message
    assert cfg.global_defs.vrrp_nftables == "pyvrrp" and not cfg.vrrp_instance["VI_1"].accept


def test_nftables_keywords(tmp_path: Path) -> None:
    text = "global_defs {\n nftables ka_fw\n nftables_priority -5\n nftables_counters\n}\n"
    cfg, _w = _warnings(tmp_path, text + _inst(" no_accept"))
    g = cfg.global_defs
    assert (g.vrrp_nftables, g.vrrp_nftables_priority, g.vrrp_nftables_counters) == ("ka_fw", -5, True)
    cfg, _w = _warnings(tmp_path, "global_defs {\n nftables\n}\n" + _inst())
    assert cfg.global_defs.vrrp_nftables == "pyvrrp"  # bare: the default table
    (e,) = _errors(tmp_path, "global_defs {\n nftables 9bad\n}\n" + _inst())
    assert (e.path, e.line) == ("global_defs.vrrp_nftables", 2) and "table name" in e.message


def test_v3_authentication_is_ignored_like_keepalived(tmp_path: Path) -> None:
    body = " authentication {\n  auth_type PASS\n  auth_pass x\n }"
    cfg, warnings = _warnings(tmp_path, _inst(" version 3\n" + body))
    assert cfg.vrrp_instance["VI_1"].authentication is None
    assert any(w.path == "vrrp_instance.VI_1.authentication" and w.line == 8 for w in warnings)
    cfg, _ = _warnings(tmp_path, _inst(body))  # v2 keeps it
    assert cfg.vrrp_instance["VI_1"].authentication is not None


# ------------------------------------------------------------------------------ routes and rules


def test_virtual_routes_read_into_the_model(tmp_path: Path) -> None:
    body = (
        " virtual_routes {\n  2001:db8::/64 dev eth1 src 2001:db8::15 scope link table 1\n"
        "  src 10.0.0.1 to 192.0.2.0/24 via 10.0.0.254 dev eth0 metric 5 onlink\n"
        "  blackhole 198.51.100.0/24\n  default gw 10.0.0.254 table 100 no_track\n"
        "  10.7.0.0/16 via 10.0.0.254 protocol bird preference 7 table main\n }"
    )
    cfg = load_config(_write(tmp_path, _inst(body)))
    r = cfg.vrrp_instance["VI_1"].virtual_routes
    assert (str(r[0].to), r[0].dev, str(r[0].src), r[0].scope, r[0].table) == (
        "2001:db8::/64",
        "eth1",
        "2001:db8::15",
        "link",
        1,
    )
    assert (str(r[1].to), str(r[1].via), r[1].metric, r[1].onlink) == ("192.0.2.0/24", "10.0.0.254", 5, True)
    assert (r[2].type, str(r[3].to), r[3].table, r[3].no_track) == ("blackhole", "0.0.0.0/0", 100, True)
    assert (r[4].proto, r[4].metric, r[4].table) == (12, 7, 254)
    assert ka.KEYWORDS["vrrp_instance"]["virtual_routes"].status == "supported"


def test_route_with_a_word_keepalived_cannot_read_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """keepalived reads `link` as a destination, logs "unknown route keyword link" and skips the
    route (corpus 37); pyvrrp skips it too, with a warning at its line, and the rest loads."""
    body = (
        " virtual_routes {\n  10.1.0.0/16 dev eth0\n  10.2.0.0/16 via 10.0.0.1 dev eth0 link src 10.0.0.2\n"
        "  10.3.0.0/16 via 10.0.0.1\n }"
    )
    cfg, warnings = _warnings(tmp_path, _inst(body))
    assert [str(r.to) for r in cfg.vrrp_instance["VI_1"].virtual_routes] == ["10.1.0.0/16", "10.3.0.0/16"]
    (w,) = [w for w in warnings if "unknown route keyword" in w.message]
    assert (w.path, w.line) == ("vrrp_instance.VI_1.virtual_routes", 9)
    assert "'link'" in w.message and "10.2.0.0/16 via 10.0.0.1" in w.message


@pytest.mark.parametrize(
    ("option", "word"),
    [
        ("mtu lock 1400", "mtu"),
        ("realms 5", "realms"),
        ("pref high", "pref"),
        ("nexthop via 10.0.0.2", "nexthop"),
    ],
)
def test_keepalived_route_option_pyvrrp_lacks_is_refused_by_name(
    tmp_path: Path, option: str, word: str
) -> None:
    """An option keepalived applies and pyvrrp does not: refused (never silently dropped), at its line."""
    (e,) = _errors(
        tmp_path, _inst(f" virtual_routes {{\n  10.1.0.0/16 dev eth0\n  10.2.0.0/16 dev eth0 {option}\n }}")
    )
    assert (e.path, e.line) == ("vrrp_instance.VI_1.virtual_routes[1]", 9)
    assert f"route option {word!r} is not supported by pyvrrp" in e.message


def test_route_bad_values_name_path_and_line(tmp_path: Path) -> None:
    body = " virtual_routes {\n  10.1.0.1/16 dev eth0\n  10.2.0.0/16 via 2001:db8::1\n }"
    errs = _errors(tmp_path, _inst(body))
    got = {(e.path, e.line): e.message for e in errs}
    assert "host bits must be zero" in got[("vrrp_instance.VI_1.virtual_routes[0].to", 8)]
    assert "is not of the family" in got[("vrrp_instance.VI_1.virtual_routes[1]", 9)]


def test_virtual_rules(tmp_path: Path) -> None:
    body = " virtual_rules {\n  from 2001:db8::15 table 1 priority 100\n  fwmark 0x10/0xff table 2\n }"
    data, issues, _ = ka.to_model_dict(_write(tmp_path, _inst(body)))
    assert not [i for i in issues if i.severity == "error"]
    rules = [models.Rule.model_validate(r) for r in data["vrrp_instance"]["VI_1"]["virtual_rules"]]
    assert (str(rules[0].from_), rules[0].table, rules[0].priority) == ("2001:db8::15/128", 1, 100)
    assert (rules[1].fwmark, rules[1].table) == ("0x10/0xff", 2)
    (e,) = _errors(tmp_path, _inst(body.replace("table 2", "table 2 goto 5")))
    assert e.line == 9 and "rule option 'goto' is not supported" in e.message


def test_static_blocks(tmp_path: Path) -> None:
    text = (
        "static_ipaddress {\n 192.0.2.1/24 dev eth1 scope link\n 192.0.2.2/24\n}\n"
        "static_routes {\n 198.51.100.0/24 via 192.0.2.254 dev eth1\n 198.51.101.0/24 table 7\n}\n"
        "static_rules {\n from 192.0.2.0/24 table 5\n iif bad/name table 5\n}\n" + _inst()
    )
    errs = _errors(tmp_path, text)
    got = {(e.path, e.line): e.message for e in errs}
    assert "needs dev" in got[("static_ipaddress[1]", 3)]
    assert "needs via or dev" in got[("static_routes[1]", 7)]
    assert "not a valid interface name" in got[("static_rules[1].iif", 11)]
    assert len(got) == 3
    good = text.replace(" 192.0.2.2/24\n", "").replace(" 198.51.101.0/24 table 7\n", "")
    cfg = load_config(_write(tmp_path, good.replace(" iif bad/name table 5\n", "")))
    assert [str(a.address) for a in cfg.static_ipaddress] == ["192.0.2.1/24"]
    assert (str(cfg.static_routes[0].via), cfg.static_rules[0].table) == ("192.0.2.254", 5)


def test_toml_routes_and_statics() -> None:
    """The same model from pyvrrp's own format (a string or a table per entry)."""
    cfg = loads_toml(
        'static_routes = ["10.9.0.0/16 dev eth1", {to = "10.8.0.0/16", via = "10.0.0.1"}]\n'
        'static_ipaddress = [{address = "192.0.2.9/32", dev = "lo"}]\n'
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
        'virtual_ipaddress = ["10.0.0.1", {address = "10.99.0.1/32", dev = "lo", scope = "host"}]\n'
        'virtual_routes = [{to = "default", via = "10.0.0.254", table = 100}]\n'
        'virtual_rules = [{from = "10.0.0.1", table = 100, priority = 100}]\n'
    )
    inst = cfg.vrrp_instance["VI_1"]
    assert [str(r.to) for r in cfg.static_routes] == ["10.9.0.0/16", "10.8.0.0/16"]
    assert (inst.virtual_ipaddress[1].dev, inst.virtual_ipaddress[1].scope) == ("lo", "host")
    assert (str(inst.virtual_routes[0].to), inst.virtual_routes[0].table) == ("0.0.0.0/0", 100)
    assert (str(inst.virtual_rules[0].from_), inst.virtual_rules[0].priority) == ("10.0.0.1/32", 100)
    with pytest.raises(ConfigError) as ei:
        loads_toml(
            '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
            'virtual_routes = [{to = "10.0.0.0/8", dev = "eth0", mtu = 1400}]\n'
        )
    assert [i.path for i in ei.value.issues] == ["vrrp_instance.VI_1.virtual_routes[0].mtu"]


def test_net_namespace(tmp_path: Path) -> None:
    """The daemon enters the namespace (adapters/netns.py); the config takes it as keepalived does."""
    cfg = load_config(_write(tmp_path, "net_namespace blue\n" + _inst()))
    assert cfg.global_defs.net_namespace == "blue" and not cfg.warnings()
    assert ka.KEYWORDS["(top)"]["net_namespace"].status == "supported"
    (e,) = _errors(tmp_path, "net_namespace blue {\n}\n" + _inst())
    assert e.path == "global_defs.net_namespace" and "takes a name" in e.message


# ------------------------------------------------------------------------------ the model for the daemon


def test_vip_model_properties() -> None:
    cfg = loads_toml(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
        'virtual_ipaddress = ["10.0.0.1/24 label eth0:1", "10.99.0.1/32 dev lo", '
        '{address = "10.0.0.2", dev = "eth0", brd = "10.0.0.255"}]\n'
        'virtual_ipaddress_excluded = ["192.0.2.1/24 dev eth2"]\n'
    )
    inst = cfg.vrrp_instance["VI_1"]
    assert [(str(a), label) for a, label in inst.vip_list] == [
        ("10.0.0.1/24", "eth0:1"),
        ("10.99.0.1/32", None),
        ("10.0.0.2/32", None),
    ]
    assert inst.vip_interfaces == ("eth0", "lo", "eth2")
    assert inst.family == 4


def test_brd_must_be_ipv4() -> None:
    with pytest.raises(ConfigError) as ei:
        loads_toml(
            '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
            'virtual_ipaddress = ["fe80::1/64", "2001:db8::1/64 brd 10.0.0.255"]\n'
        )
    (i,) = ei.value.issues
    assert i.path == "vrrp_instance.VI_1.virtual_ipaddress[1]" and "IPv4 broadcast address" in i.message


# ------------------------------------------------------------------------------ nothing loosened elsewhere


@pytest.mark.parametrize(
    ("body", "path", "line"),
    [
        (" priority 300", "vrrp_instance.VI_1.priority", 7),
        (" priority high", "vrrp_instance.VI_1.priority", 7),
        (" advert_int 0", "vrrp_instance.VI_1.advert_int", 7),
        (" advert_int 1.5", "vrrp_instance.VI_1.advert_int", 7),
        (" state PRIMARY", "vrrp_instance.VI_1.state", 1),
        (" unicast_peer {\n  10.0.0.300\n }", "vrrp_instance.VI_1.unicast_peer[0]", 8),
        (
            " virtual_ipaddress_excluded {\n  10.0.0.1 scope galaxy\n }",
            "vrrp_instance.VI_1.virtual_ipaddress_excluded[0].scope",
            8,
        ),
        (" virtual_routes {\n  10.1.0.0/16 table -1\n }", "vrrp_instance.VI_1.virtual_routes[0].table", 8),
        (" virtual_rules {\n  from 10.0.0.1 fwmark x\n }", "vrrp_instance.VI_1.virtual_rules[0]", 8),
        (
            " virtual_routes {\n  10.1.0.0/16 dev eth0 table nosuch\n }",
            "vrrp_instance.VI_1.virtual_routes[0].table",
            8,
        ),
        (
            " virtual_routes {\n  10.1.0.0/16 dev eth0 protocol ospf3\n }",
            "vrrp_instance.VI_1.virtual_routes[0].proto",
            8,
        ),
        (" virtual_routes {\n  10.1.0.0/16 table 5\n }", "vrrp_instance.VI_1.virtual_routes[0]", 8),
        (
            " virtual_routes {\n  blackhole 10.1.0.0/16 dev eth0\n }",
            "vrrp_instance.VI_1.virtual_routes[0]",
            8,
        ),
        (
            " virtual_routes {\n  10.1.0.0/16 dev eth0 scope galaxy\n }",
            "vrrp_instance.VI_1.virtual_routes[0].scope",
            8,
        ),
        (" virtual_routes {\n  10.1.0.0/16 dev eth0/x\n }", "vrrp_instance.VI_1.virtual_routes[0].dev", 8),
        (" virtual_rules {\n  from 10.0.0.1 table 1 goto 5\n }", "vrrp_instance.VI_1.virtual_rules[0]", 8),
        (" virtual_rules {\n  table 1\n }", "vrrp_instance.VI_1.virtual_rules[0]", 8),
        (
            " virtual_ipaddress_excluded {\n  10.0.0.9/24 brd 2001:db8::1\n }",
            "vrrp_instance.VI_1.virtual_ipaddress_excluded[0]",
            8,
        ),
        (" preempt_delay soon", "vrrp_instance.VI_1.preempt_delay", 7),
        (
            " authentication {\n  auth_type MD5\n  auth_pass x\n }",
            "vrrp_instance.VI_1.authentication.auth_type",
            8,
        ),
        (" use_vmac a b c", "vrrp_instance.VI_1.use_vmac", 7),
        (" use_vmac vrrp.1 01:00:5e:00:01:01", "vrrp_instance.VI_1.vmac_address", 7),
    ],
)
def test_bad_values_still_name_key_path_and_line(tmp_path: Path, body: str, path: str, line: int) -> None:
    """Leniency is for what keepalived ignores; a bad value is still an error at its key and line."""
    errs = _errors(tmp_path, _inst(body))
    assert [(e.path, e.line) for e in errs] == [(path, line)], [str(e) for e in errs]
    assert all(e.file is not None and e.file.endswith("keepalived.conf") for e in errs)


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("global_defs {\n vrrp_mcast_group6 ff02::12x\n}\n", "global_defs.vrrp_mcast_group6", 2),
        ("global_defs {\n vrrp_version 4\n}\n", "global_defs.vrrp_version", 2),
        (
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n  weight -1\n }\n}\n",
            'virtual_server."10.0.0.1:80".real_server[0].weight',
            4,
        ),
        ("static_routes {\n 10.0.0.0/8 via 10.0.0.300\n}\n", "static_routes[0].via", 2),
    ],
)
def test_bad_global_values_name_key_path_and_line(tmp_path: Path, text: str, path: str, line: int) -> None:
    errs = _errors(tmp_path, text + _inst())
    assert (path, line) in [(e.path, e.line) for e in errs], [str(e) for e in errs]


def test_sync_group_without_members_is_removed(tmp_path: Path) -> None:
    """Old syntax without `group { }`: keepalived warns "Unknown keyword 'VI_1'" and "Sync group G
    has no virtual router(s). removing", then runs the instance on its own."""
    cfg, warnings = _warnings(tmp_path, "vrrp_sync_group G {\n VI_1\n}\n" + _inst())
    assert not cfg.vrrp_sync_group and "VI_1" in cfg.vrrp_instance
    assert {(w.line, w.path) for w in warnings} >= {(2, "vrrp_sync_group.G.VI_1"), (1, "vrrp_sync_group.G")}


def test_v3_by_family_drops_authentication(tmp_path: Path) -> None:
    """An IPv6 instance is VRRPv3 without saying so: its authentication is ignored too."""
    text = (
        "vrrp_instance VI_6 {\n interface eth0\n virtual_router_id 51\n"
        " authentication {\n  auth_type PASS\n  auth_pass x\n }\n"
        " virtual_ipaddress {\n  fe80::1/64\n }\n}\n"
    )
    cfg, warnings = _warnings(tmp_path, text)
    inst = cfg.vrrp_instance["VI_6"]
    assert inst.version == 3 and inst.authentication is None
    assert any(w.path == "vrrp_instance.VI_6.authentication" and w.line == 4 for w in warnings)


def test_vsg_entry_with_a_host_prefix_reads_the_address_and_a_network_is_refused(tmp_path: Path) -> None:
    """Corpus 44: keepalived 2.2.7 takes `10.45.58.59/32 27` in a virtual_server_group silently."""
    vsg = "virtual_server_group G {{\n 192.0.2.1 80\n {entry} 27\n}}\n"
    vs = "virtual_server group G {\n protocol TCP\n}\n"
    cfg, warnings = _warnings(tmp_path, vsg.format(entry="10.45.58.59/32") + vs + _inst())
    assert "10.45.58.59:27" in cfg.virtual_server_group["G"].address
    assert any(w.line == 3 and "redundant" in w.message for w in warnings)
    (e,) = _errors(tmp_path, vsg.format(entry="10.45.58.0/24") + vs + _inst())
    assert e.line == 3 and "not a network" in e.message


def test_a_repeated_notify_script_keeps_the_first_as_keepalived(tmp_path: Path) -> None:
    """Found in a public config: three `notify_master` lines (master, backup, fault) meant as
    the three roles; keepalived runs the first ("already specified - ignoring" the others)."""
    body = "".join(f' notify_master "/etc/keepalived/mail.sh {r}"\n' for r in ("master", "backup", "fault"))
    cfg, warnings = _warnings(tmp_path, _inst(body))
    assert cfg.vrrp_instance["VI_1"].notify_master == "/etc/keepalived/mail.sh master"
    again = [w for w in warnings if "given again" in w.message]
    assert [w.path for w in again] == ["vrrp_instance.VI_1.notify_master"] * 2


def test_garp_refresh_without_a_value_keeps_the_default_as_keepalived(tmp_path: Path) -> None:
    """Found in a public template: a bare `vrrp_garp_master_refresh`; keepalived reports the
    missing parameter and runs with the default (no refresh)."""
    cfg, warnings = _warnings(tmp_path, "global_defs {\n vrrp_garp_master_refresh\n}\n" + _inst())
    assert cfg.global_defs.vrrp_garp_master_refresh == 0
    assert any(w.line == 2 and "without a value" in w.message for w in warnings)
