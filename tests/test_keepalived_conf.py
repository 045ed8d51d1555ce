"""keepalived.conf → pyvrrp model mapping (pyvrrp.config.keepalived); IOP-: keepalived compatibility."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrp.config import keepalived as ka
from pyvrrp.config.errors import ConfigError, ConfigIssue
from pyvrrp.config.kaconf_parser import Node, parse_file
from pyvrrp.config.load import load_config
from pyvrrp.config.lvs import (
    DnsCheck,
    HttpGet,
    MiscCheck,
    RealServer,
    SslGet,
    TcpCheck,
    UrlSpec,
    VirtualServer,
)
from pyvrrp.config.models import (
    GlobalDefs,
    TrackFile,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "migrating-from-keepalived.md"

BASIC = """\
! lab lb1
global_defs {
    router_id lb1
}
vrrp_instance VI_51 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        192.168.233.200/32 dev eth0
    }
}
"""


def _write(tmp_path: Path, text: str, name: str = "keepalived.conf") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _load(tmp_path: Path, text: str, **kw: str) -> tuple[object, list[ConfigIssue]]:
    return ka.load_with_report(_write(tmp_path, text), **kw)


def _errors(tmp_path: Path, text: str, **kw: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text, **kw)
    return [i for i in ei.value.issues if i.severity == "error"]


def _inst(body: str, name: str = "VI_1") -> str:
    return (
        f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id 51\n"
        f" virtual_ipaddress {{\n  10.0.0.1/24\n }}\n{body}\n}}\n"
    )


# ------------------------------------------------------------------------------- VRRP


def test_lab_config_maps_to_model(tmp_path: Path) -> None:
    """IOP-01: the seed lab's keepalived.conf loads into the model with keepalived's meaning."""
    cfg, warnings = _load(tmp_path, BASIC)
    assert warnings == []
    inst = cfg.vrrp_instance["VI_51"]
    assert isinstance(inst, VrrpInstance)
    assert (inst.interface, inst.virtual_router_id, inst.priority, inst.advert_int) == ("eth0", 51, 150, 1.0)
    assert inst.state == "MASTER"
    assert inst.vips == (ipaddress.ip_interface("192.168.233.200/32"),)
    assert inst.virtual_ipaddress[0].dev == "eth0"
    assert cfg.global_defs.router_id == "lb1"


def test_keepalived_defaults_written_out(tmp_path: Path) -> None:
    """AM-02: keepalived defaults (accept on, preempt on, BACKUP, v2) rather than RFC 5798's accept off."""
    cfg, _ = _load(tmp_path, _inst(""))
    inst = cfg.vrrp_instance["VI_1"]
    assert inst.accept is True and inst.preempt is True
    assert inst.state == "BACKUP" and inst.version == 2
    data, _, _ = ka.to_model_dict(_write(tmp_path, _inst(""), "b.conf"))
    assert data["vrrp_instance"]["VI_1"]["accept"] is True
    assert data["vrrp_instance"]["VI_1"]["state"] == "BACKUP"


def test_instance_keywords(tmp_path: Path) -> None:
    """SM-02, AM-02, TMR-01: the election/timer keywords map one to one."""
    body = """
    nopreempt
    preempt_delay 30
    no_accept
    advert_int 0.5
    version 3
    dont_track_primary
    down_timer_adverts 5
    lower_prio_no_advert
    garp_master_delay 2
    garp_master_repeat 3
    garp_master_refresh 60
    garp_lower_prio_repeat 2
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.3
        10.0.0.4 min_ttl 250
    }
    virtual_ipaddress_excluded {
        10.0.1.1/24 dev eth1 label eth1:vip scope link
    }
    notify_master "/usr/local/bin/vrrp.sh MASTER VI_1"
    notify /bin/true
    """
    cfg, warnings = _load(tmp_path, _inst(body))
    inst = cfg.vrrp_instance["VI_1"]
    assert inst.preempt is False and inst.preempt_delay == 30
    assert inst.accept is False
    assert inst.advert_int == 0.5 and inst.version == 3
    assert inst.dont_track_primary and inst.down_timer_adverts == 5 and inst.lower_prio_no_advert
    assert (inst.garp_master_delay, inst.garp_master_repeat, inst.garp_master_refresh) == (2, 3, 60)
    assert inst.garp_lower_prio_repeat == 2
    assert str(inst.unicast_src_ip) == "10.0.0.2"
    assert [str(p) for p in inst.unicast_peer] == ["10.0.0.3", "10.0.0.4"]
    ex = inst.virtual_ipaddress_excluded[0]
    assert (str(ex.address), ex.dev, ex.label, ex.scope) == ("10.0.1.1/24", "eth1", "eth1:vip", "link")
    assert inst.notify_master == "/usr/local/bin/vrrp.sh MASTER VI_1"
    assert inst.notify == "/bin/true"
    # the per-peer TTL option is reported, with its line
    (w,) = [w for w in warnings if "min_ttl" in w.message]
    assert w.line == 23 and w.severity == "warning"


def test_vip_without_prefix_and_options(tmp_path: Path) -> None:
    """virtual_ipaddress lines: addr[/len] [dev X] [label Y] [scope Z] [brd B] [no_track], kept in the
    model and applied by the daemon (no warning)."""
    body = (
        "virtual_ipaddress {\n 192.168.1.1/24 dev eth0 label eth0:1\n"
        " 192.168.1.2 brd 192.168.1.255 no_track\n 10.99.0.1/32 dev lo scope host\n}"
    )
    text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 9\n" + body + "\n}\n"
    cfg = load_config(_write(tmp_path, text))
    inst = cfg.vrrp_instance["VI_1"]
    vips = inst.virtual_ipaddress
    assert [str(v.address) for v in vips] == ["192.168.1.1/24", "192.168.1.2/32", "10.99.0.1/32"]
    assert (vips[0].label, vips[0].dev) == ("eth0:1", "eth0")
    assert (str(vips[1].brd), vips[1].no_track) == ("192.168.1.255", True)
    assert (vips[2].dev, vips[2].scope) == ("lo", "host")
    assert inst.vip_interfaces == ("eth0", "lo")
    assert [inst.vip_dev(v) for v in vips] == ["eth0", "eth0", "lo"]
    # the daemon applies every option (dev, label, scope, brd, no_track): no warning about them
    assert not [w for w in cfg.warnings() if "virtual_ipaddress[" in w.path], cfg.warnings()


def test_bad_vip_is_error_with_line(tmp_path: Path) -> None:
    errs = _errors(tmp_path, _inst("virtual_ipaddress {\n 10.0.0.300\n}"))
    assert any(e.line == 8 and "10.0.0.300" in e.message for e in errs)


def test_authentication(tmp_path: Path) -> None:
    """SEC-01: PASS and AH map; an unknown auth_type is refused with its line."""
    cfg, _ = _load(tmp_path, _inst("authentication {\n auth_type PASS\n auth_pass 1111\n}"))
    auth = cfg.vrrp_instance["VI_1"].authentication
    assert auth is not None and (auth.auth_type, auth.auth_pass) == ("PASS", "1111")
    cfg, _ = _load(tmp_path, _inst("authentication {\n auth_type AH\n auth_pass 1111\n}"))
    auth = cfg.vrrp_instance["VI_1"].authentication
    assert auth is not None and (auth.auth_type, auth.auth_pass) == ("AH", "1111")
    errs = _errors(tmp_path, _inst("authentication {\n auth_type MD5\n auth_pass 1111\n}"))
    assert [(e.path, e.line) for e in errs] == [("vrrp_instance.VI_1.authentication.auth_type", 8)]


def test_trackers_scripts_and_files(tmp_path: Path) -> None:
    """vrrp_script / track_file blocks and their references with weights (reverse kept)."""
    text = """
vrrp_script chk {
    script "killall -0 haproxy"
    interval 2
    timeout 3
    weight -20 reverse
    rise 2
    fall 3
    user nobody
    init_fail
}
vrrp_script chk2 {
    script /usr/local/bin/check arg1 arg2
}
track_file tf {
    file /run/prio
    weight 10
    init_file 5 overwrite
}
""" + _inst(
        """
    track_interface {
        eth1 weight -10
        eth2
    }
    track_script {
        chk weight 5
        chk2 weight 3 reverse
    }
    track_file {
        tf
    }
    """
    )
    cfg, warnings = _load(tmp_path, text)
    s = cfg.vrrp_script["chk"]
    assert isinstance(s, VrrpScript)
    assert (s.script, s.interval, s.timeout, s.weight, s.weight_reverse) == (
        "killall -0 haproxy",
        2,
        3,
        -20,
        True,
    )
    assert (s.rise, s.fall, s.user, s.init_fail) == (2, 3, "nobody", True)
    assert cfg.vrrp_script["chk2"].script == "/usr/local/bin/check arg1 arg2"
    tf = cfg.track_file["tf"]
    assert isinstance(tf, TrackFile) and (str(tf.file), tf.weight, tf.init_file) == ("/run/prio", 10, 5)
    inst = cfg.vrrp_instance["VI_1"]
    assert [(t.name, t.weight) for t in inst.track_interface] == [("eth1", -10), ("eth2", 0)]
    assert [(t.name, t.weight, t.reverse) for t in inst.track_script] == [
        ("chk", 5, False),
        ("chk2", 3, True),
    ]
    assert [t.name for t in inst.track_file] == ["tf"]
    assert any("overwrite" in w.message and w.line == 18 for w in warnings)


def test_undefined_track_script_is_ignored_with_warning(tmp_path: Path) -> None:
    """keepalived: "track script nothere not found, ignoring..." -- so pyvrrp too, at the line."""
    cfg, warnings = _load(
        tmp_path, "vrrp_script chk {\n script /bin/true\n}\n" + _inst("track_script {\n nothere\n chk\n}")
    )
    (w,) = [w for w in warnings if "nothere" in w.message]
    assert (w.line, w.path) == (11, "vrrp_instance.VI_1.track_script[0]")
    assert "defined: chk" in w.message
    assert [t.name for t in cfg.vrrp_instance["VI_1"].track_script] == ["chk"]


def test_undefined_track_script_still_refused_in_toml(tmp_path: Path) -> None:
    """pyvrrp's own format stays strict: an unknown name there is an error."""
    p = tmp_path / "c.toml"
    p.write_text(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
        'virtual_ipaddress = ["10.0.0.1"]\ntrack_script = ["nothere"]\n'
    )
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert [i.path for i in ei.value.issues] == ["vrrp_instance.VI_1.track_script[0]"]


def test_sync_group_member_not_an_instance_is_ignored(tmp_path: Path) -> None:
    text = (
        _inst("", "VI_1")
        + _inst("", "VI_2").replace("51", "52")
        + ("vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n  nosuch\n }\n}\n")
    )
    cfg, warnings = _load(tmp_path, text)
    assert cfg.vrrp_sync_group["G"].group == ["VI_1", "VI_2"]
    assert any("'nosuch' is not a vrrp_instance" in w.message and w.line == 18 for w in warnings)


def test_sync_group(tmp_path: Path) -> None:
    text = (
        _inst("", "VI_1")
        + _inst("", "VI_2").replace("virtual_router_id 51", "virtual_router_id 52")
        + 'vrrp_sync_group G1 {\n group {\n  VI_1\n  VI_2\n }\n notify_master "/bin/x m"\n}\n'
    )
    cfg, _ = _load(tmp_path, text)
    g = cfg.vrrp_sync_group["G1"]
    assert isinstance(g, VrrpSyncGroup) and g.group == ["VI_1", "VI_2"] and g.notify_master == "/bin/x m"


def test_global_defs(tmp_path: Path) -> None:
    """vrrp_version, garp defaults, vrrp_min_garp, vrrp_down_timer_adverts and vrrp_strict's no_accept."""
    text = (
        "global_defs {\n router_id r\n vrrp_version 3\n vrrp_garp_master_refresh 30\n"
        " vrrp_min_garp\n vrrp_down_timer_adverts 4\n vrrp_strict\n script_user nobody nogroup\n"
        " enable_script_security\n}\n" + _inst("")
    )
    cfg, warnings = _load(tmp_path, text)
    g = cfg.global_defs
    assert isinstance(g, GlobalDefs)
    assert (g.vrrp_version, g.vrrp_garp_master_refresh) == (3, 30)
    assert (g.vrrp_garp_master_repeat, g.vrrp_garp_master_delay) == (1, 0)
    assert g.script_user == "nobody nogroup" and g.enable_script_security
    inst = cfg.vrrp_instance["VI_1"]
    assert inst.version == 3 and inst.down_timer_adverts == 4
    assert inst.accept is False  # vrrp_strict implies no_accept
    assert any(w.path == "global_defs.vrrp_strict" and w.line == 7 for w in warnings)


def test_explicit_accept_beats_strict(tmp_path: Path) -> None:
    cfg, _ = _load(tmp_path, "global_defs {\n vrrp_strict\n}\n" + _inst("accept"))
    assert cfg.vrrp_instance["VI_1"].accept is True


# ------------------------------------------------------------------------------- reporting


def test_ignored_keyword_is_warning_with_line(tmp_path: Path) -> None:
    """Ignored keywords are never silently dropped: a warning names keyword, file and line."""
    p = _write(
        tmp_path,
        "global_defs {\n notification_email {\n  a@b\n }\n smtp_server 1.2.3.4\n}\n" + _inst("smtp_alert"),
    )
    cfg, warnings = ka.load_with_report(p)
    got = {(w.path, w.line) for w in warnings}
    assert got == {
        ("global_defs.notification_email", 2),
        ("global_defs.smtp_server", 5),
        ("vrrp_instance.VI_1.smtp_alert", 13),
    }
    assert all(w.file == str(p) and w.severity == "warning" and "ignored" in w.message for w in warnings)
    assert ka.frontend_warnings(cfg) == warnings
    assert cfg.warnings()[: len(warnings)] == warnings  # what `pyvrrp check-config` prints


def test_refused_keyword_is_error_with_line(tmp_path: Path) -> None:
    errs = _errors(tmp_path, _inst("use_ipvlan"))
    assert [(e.path, e.line) for e in errs] == [("vrrp_instance.VI_1.use_ipvlan", 7)]
    assert "not supported" in errs[0].message


def test_unknown_keyword_is_ignored_with_warning_like_keepalived(tmp_path: Path) -> None:
    """keepalived ignores a keyword it does not know ('Unknown keyword'): a warning with file:line and
    the keyword meant; the value is not used (as in keepalived)."""
    p = _write(tmp_path, _inst("priorty 120"))
    cfg, warnings = ka.load_with_report(p)
    (w,) = [i for i in warnings if "unknown keyword" in i.message]
    assert (w.path, w.file, w.line, w.severity) == ("vrrp_instance.VI_1.priorty", str(p), 7, "warning")
    assert "did you mean 'priority'?" in w.message
    assert cfg.vrrp_instance["VI_1"].priority == 100


@pytest.mark.parametrize(
    ("kw", "block", "hint"),
    [
        ("nat_mask 255.255.255.0", "virtual_server", "keepalived 1.x"),
        ("lvs_id X", "global_defs", "use router_id"),
        ("notify_primary /bin/true", "vrrp_instance", "use notify_master"),
        ("lvs_sync_daemon_inteface eth1", "vrrp_instance", "lvs_sync_daemon_interface"),
    ],
)
def test_obsolete_keywords_warn_with_what_they_were(tmp_path: Path, kw: str, block: str, hint: str) -> None:
    text = {
        "virtual_server": f"virtual_server 10.0.0.1 80 {{\n protocol TCP\n {kw}\n}}\n",
        "global_defs": f"global_defs {{\n {kw}\n}}\n" + _inst(""),
        "vrrp_instance": _inst(kw),
    }[block]
    _cfg, warnings = _load(tmp_path, text)
    (w,) = [w for w in warnings if kw.split()[0] in w.path]
    assert hint in w.message and "ignored" in w.message and w.line is not None


def test_misspelt_address_block_is_an_error(tmp_path: Path) -> None:
    """A likely typo of a keyword that carries the VIPs: keepalived would run without them; refuse."""
    errs = _errors(tmp_path, _inst("virtual_ipadress {\n 10.0.0.2\n}"))
    (e,) = errs
    assert (e.path, e.line) == ("vrrp_instance.VI_1.virtual_ipadress", 7)
    assert "did you mean 'virtual_ipaddress'?" in e.message


def test_unknown_top_level_keyword(tmp_path: Path) -> None:
    """A misspelt vrrp_instance would lose the instance: an error, not a warning."""
    errs = _errors(tmp_path, "vrrp_instanse VI_1 {\n}\n")
    assert [(e.path, e.line) for e in errs] == [("vrrp_instanse", 1)]
    _cfg, warnings = _load(tmp_path, "frobnicate 1\n" + _inst(""))
    assert [(w.path, w.line) for w in warnings if "unknown" in w.message] == [("frobnicate", 1)]


def test_model_error_gets_keepalived_line(tmp_path: Path) -> None:
    """Range errors found by the model point at the keepalived.conf line."""
    errs = _errors(tmp_path, _inst("priority 300"))
    (e,) = errs
    assert e.path == "vrrp_instance.VI_1.priority" and e.line == 7


def test_syntax_error_reported_with_line(tmp_path: Path) -> None:
    errs = _errors(tmp_path, "vrrp_instance VI_1 {\n interface eth0\n")
    assert errs[0].line == 1 and "missing '}'" in errs[0].message


def test_config_id_selects_lines(tmp_path: Path) -> None:
    text = _inst("@lb1 priority 150\n@lb2 priority 100")
    cfg1, _ = _load(tmp_path, text, config_id="lb1")
    cfg2, _ = _load(tmp_path, text, config_id="lb2")
    assert cfg1.vrrp_instance["VI_1"].priority == 150
    assert cfg2.vrrp_instance["VI_1"].priority == 100


def test_load_config_dispatches_to_keepalived(tmp_path: Path) -> None:
    """load_config picks this front-end for keepalived syntax and passes config_id."""
    p = _write(tmp_path, _inst("@a priority 42"))
    cfg = load_config(p, config_id="a")
    assert cfg.vrrp_instance["VI_1"].priority == 42
    assert cfg.source_format == "keepalived"


def test_include_and_definitions_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vi.conf").write_text(_inst("priority $PRIO"))
    p = _write(tmp_path, "$PRIO=77\ninclude conf.d/*.conf\n")
    cfg, _ = ka.load_with_report(p)
    assert cfg.vrrp_instance["VI_1"].priority == 77


# ------------------------------------------------------------------------------- LVS


LVS = """
virtual_server 192.168.233.200 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout
    protocol TCP
    sorry_server 10.0.0.9 8080
    connect_timeout 4
    real_server 10.0.0.1 80 {
        weight 2
        inhibit_on_failure
        HTTP_GET {
            url {
                path /health
                status_code 200-202 204
                digest 640205b7b0fc66c1ea91c463fac6334d
            }
            retry 2
        }
        MISC_CHECK {
            misc_path "/bin/check arg"
            misc_timeout 5
            misc_dynamic
        }
    }
    real_server 10.0.0.2 {
        SSL_GET {
            url {
                path /
            }
            connect_port 443
        }
        DNS_CHECK {
            type a
            name example.org
        }
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server fwmark 7 {
    real_server 10.0.0.3 {
        PING_CHECK {
        }
    }
}
virtual_server_group G {
    10.0.0.10-12 80
    fwmark 9
}
virtual_server group G {
    real_server 10.0.0.4 80 {
        weight 1
    }
}
"""


def test_lvs_mapping(tmp_path: Path) -> None:
    """virtual_server (IP PORT | fwmark N | group NAME), real_server and checkers map onto lvs.py."""
    cfg, warnings = _load(tmp_path, LVS)
    vs = cfg.virtual_server["192.168.233.200:80"]
    assert isinstance(vs, VirtualServer)
    assert (vs.lvs_sched, vs.lvs_method, vs.persistence_timeout, vs.delay_loop) == ("wrr", "DR", 360, 6)
    assert vs.sorry_server is not None and (str(vs.sorry_server.ip), vs.sorry_server.port) == (
        "10.0.0.9",
        8080,
    )
    rs1, rs2 = vs.real_server
    assert isinstance(rs1, RealServer) and rs1.weight == 2 and rs1.inhibit_on_failure
    (http,) = rs1.http_get
    assert isinstance(http, HttpGet) and http.retry == 2 and http.connect_timeout == 4  # inherited from VS
    (url,) = http.url
    assert isinstance(url, UrlSpec) and url.path == "/health" and url.status_code == [200, 201, 202, 204]
    assert url.digest == "640205b7b0fc66c1ea91c463fac6334d"
    (misc,) = rs1.misc_check
    assert isinstance(misc, MiscCheck) and misc.misc_path == "/bin/check arg" and misc.misc_dynamic
    assert misc.misc_timeout == 5
    assert rs2.port is None
    assert isinstance(rs2.ssl_get[0], SslGet) and rs2.ssl_get[0].connect_port == 443
    assert isinstance(rs2.dns_check[0], DnsCheck) and (rs2.dns_check[0].type, rs2.dns_check[0].name) == (
        "A",
        "example.org",
    )
    assert isinstance(rs2.tcp_check[0], TcpCheck) and rs2.tcp_check[0].connect_timeout == 1
    assert cfg.virtual_server["fwmark:7"].real_server[0].ping_check
    grp = cfg.virtual_server_group["G"]
    keys = [str(k) for k in grp.keys()]  # noqa: SIM118 -- VirtualServerGroup.keys() expands ranges
    assert keys == ["10.0.0.10:80", "10.0.0.11:80", "10.0.0.12:80", "fwmark:9"]
    assert "group:G" in cfg.virtual_server
    assert any(w.path.endswith(".connect_timeout") and "approximated" in w.message for w in warnings)


def test_lvs_defaults_follow_keepalived(tmp_path: Path) -> None:
    """keepalived 2.2.7 -t: no lb_kind → NAT (ipvsadm: DR), no lb_algo → wlc, no protocol → UDP (warned)."""
    cfg, warnings = _load(tmp_path, "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n")
    vs = cfg.virtual_server["10.0.0.1:80"]
    assert (vs.lvs_method, vs.lvs_sched, vs.protocol) == ("NAT", "wlc", "UDP")
    assert [(w.path, w.line) for w in warnings] == [('virtual_server."10.0.0.1:80".protocol', 1)]
    cfg, warnings = _load(tmp_path, "virtual_server fwmark 3 {\n real_server 10.0.0.2 80 {\n }\n}\n")
    assert warnings == []  # fwmark services have no protocol


def test_smtp_check_approximated_udp_check_refused(tmp_path: Path) -> None:
    text = (
        "virtual_server 10.0.0.1 25 {\n real_server 10.0.0.2 25 {\n  SMTP_CHECK {\n"
        "   helo_name x\n   connect_timeout 3\n  }\n }\n}\n"
    )
    cfg, warnings = _load(tmp_path, text)
    (tcp,) = cfg.virtual_server["10.0.0.1:25"].real_server[0].tcp_check
    assert tcp.connect_port == 25 and tcp.connect_timeout == 3
    assert {w.line for w in warnings} >= {3, 4}
    errs = _errors(tmp_path, text.replace("SMTP_CHECK", "UDP_CHECK").replace("   helo_name x\n", ""))
    assert [(e.line, e.path) for e in errs] == [(3, 'virtual_server."10.0.0.1:25".real_server[0].UDP_CHECK')]


def test_unknown_checker_keyword_is_warning(tmp_path: Path) -> None:
    text = (
        "virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n"
        "   conect_port 81\n   nb_get_retry 3\n  }\n }\n}\n"
    )
    cfg, warnings = _load(tmp_path, text)
    unknown = {w.line: w.message for w in warnings if "unknown keyword" in w.message}
    assert set(unknown) == {5, 6}
    assert "did you mean 'connect_port'?" in unknown[5] and "use retry" in unknown[6]
    (tcp,) = cfg.virtual_server["10.0.0.1:80"].real_server[0].tcp_check
    assert tcp.retry != 3  # ignored, as keepalived ignores it in TCP_CHECK


# ------------------------------------------------------------------------------- the table


def _model_for_block() -> dict[str, type]:
    return {
        "global_defs": GlobalDefs,
        "vrrp_script": VrrpScript,
        "track_file": TrackFile,
        "vrrp_instance": VrrpInstance,
        "vrrp_sync_group": VrrpSyncGroup,
        "virtual_server": VirtualServer,
        "real_server": RealServer,
        "checker": MiscCheck,
        "connect": TcpCheck,
        "HTTP_GET": SslGet,
        "url": UrlSpec,
        "MISC_CHECK": MiscCheck,
        "DNS_CHECK": DnsCheck,
    }


def test_keyword_table_fields_exist_in_model() -> None:
    """Every keyword the table claims to support sets a field that the model really has."""
    models = _model_for_block()
    for block, table in ka.KEYWORDS.items():
        model = models.get(block)
        for kw, entry in table.items():
            assert entry.status in ("supported", "approximated", "ignored", "refused")
            if entry.status in ("ignored", "refused"):
                assert entry.field is None and entry.note, (block, kw)
            if entry.field is None or model is None or entry.conv in ("block",):
                continue
            assert entry.field in model.model_fields, (block, kw, entry.field)


def test_doc_keyword_table_in_sync() -> None:
    """docs/migrating-from-keepalived.md carries the table generated from KEYWORDS."""
    doc = DOC.read_text()
    begin, end = "<!-- BEGIN KEYWORD TABLE -->", "<!-- END KEYWORD TABLE -->"
    assert begin in doc and end in doc
    inside = doc.split(begin, 1)[1].split(end, 1)[0].strip()
    assert inside == ka.keyword_table_markdown().strip(), (
        "regenerate: python -m pyvrrp.config.keepalived --update-doc docs/migrating-from-keepalived.md"
    )


# ------------------------------------------------------------------------------- vs keepalived -t

KEEPALIVED = shutil.which("keepalived") or (
    "/usr/sbin/keepalived" if Path("/usr/sbin/keepalived").exists() else None
)
needs_keepalived = pytest.mark.skipif(
    KEEPALIVED is None, reason="Debian's keepalived binary is not installed"
)

#: keepalived keywords that are blocks (followed by { }) though the table reads no value from them
_KA_BLOCKS = {
    "notification_email", "static_ipaddress", "static_routes", "static_rules", "track_group",
    "linkbeat_interfaces", "interface_up_down_delays", "garp_group", "vrrp_track_process", "bfd_instance",
    "SSL", "virtual_routes", "virtual_rules", "track_process", "track_bfd", "host", "UDP_CHECK",
    "FILE_CHECK", "BFD_CHECK", "url", "global_defs", "vrrp_script", "vrrp_track_file", "track_file",
    "vrrp_instance", "vrrp_sync_group", "virtual_server", "virtual_server_group", "real_server",
}  # fmt: skip
_NAMED_TOP = {
    "vrrp_script", "vrrp_track_file", "track_file", "vrrp_instance", "vrrp_sync_group",
    "virtual_server_group", "track_group", "vrrp_track_process", "bfd_instance",
}  # fmt: skip
_RS = "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n"
_WRAP = {
    "(top)": ("", ""),
    "global_defs": ("global_defs {\n", "}\n"),
    "vrrp_instance": ("vrrp_instance VI_1 {\n", "}\n"),
    "vrrp_script": ("vrrp_script s {\n", "}\n"),
    "track_file": ("track_file f {\n", "}\n"),
    "vrrp_sync_group": ("vrrp_sync_group G {\n", "}\n"),
    "virtual_server": ("virtual_server 10.0.0.1 80 {\n", "}\n"),
    "real_server": (_RS, "}\n}\n"),
    "checker": (_RS + "MISC_CHECK {\n", "}\n}\n}\n"),
    "connect": (_RS + "TCP_CHECK {\n", "}\n}\n}\n"),
    "HTTP_GET": (_RS + "HTTP_GET {\n", "}\n}\n}\n"),
    "url": (_RS + "HTTP_GET {\nurl {\n", "}\n}\n}\n}\n"),
    "MISC_CHECK": (_RS + "MISC_CHECK {\n", "}\n}\n}\n"),
    "DNS_CHECK": (_RS + "DNS_CHECK {\n", "}\n}\n}\n"),
    "SMTP_CHECK": (_RS + "SMTP_CHECK {\n", "}\n}\n}\n"),
}
#: in the table on purpose though Debian's 2.2.7 build does not know them
_NEWER_OR_BUILD_OPTION = {
    ("global_defs", "vrrp_ipsets"),  # needs keepalived built with ipset support
    ("vrrp_instance", "v3_checksum_as_v2"),  # keepalived >= 2.2.8
    ("vrrp_instance", "no_virtual_ipaddress"),  # keepalived >= 2.2.8
    ("HTTP_GET", "sni_name"),  # keepalived >= 2.3
    ("HTTP_GET", "tls_compliant"),  # keepalived >= 2.3
}


def _ka_unknown(conf: Path) -> set[tuple[int, str]]:
    assert KEEPALIVED is not None
    out = subprocess.run(
        [KEEPALIVED, "-t", "-f", str(conf), "-l", "-D"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return {
        (int(n), kw)
        for n, kw in re.findall(r"Line (\d+)\) Unknown keyword '([^']+)'", out.stdout + out.stderr)
    }


@needs_keepalived
@pytest.mark.keepalived
@pytest.mark.parametrize("block", sorted(_WRAP))
def test_every_table_keyword_is_known_to_keepalived(block: str, tmp_path: Path) -> None:
    """The table lists keepalived 2.2.7's own vocabulary: `keepalived -t` knows every keyword in it."""
    head, tail = _WRAP[block]
    body: list[str] = []
    for kw, entry in ka.KEYWORDS[block].items():
        block_like = (entry.conv in ("block", "vips", "peers", "track_list", "names", "auth", "checker")) or (
            kw in _KA_BLOCKS
        )
        if block == "track_file":
            block_like = False
        if block_like:
            arg = " x" if block == "(top)" and kw in _NAMED_TOP else ""
            arg = " 10.0.0.9 80" if kw == "virtual_server" else " 10.0.0.3 80" if kw == "real_server" else arg
            body.append(f"{kw}{arg} {{\n}}")
        else:
            body.append(f"{kw} 1")
    conf = tmp_path / f"{block.strip('()')}.conf"
    conf.write_text(head + "\n".join(body) + "\n" + tail)
    unknown = {(block, kw) for _n, kw in _ka_unknown(conf)}
    assert unknown <= _NEWER_OR_BUILD_OPTION, unknown


@needs_keepalived
@pytest.mark.keepalived
def test_unknown_keywords_match_keepalived(tmp_path: Path) -> None:
    """Keywords we call unknown are the ones `keepalived -t` calls unknown, at the same lines
    (warnings: keepalived ignores them, and removes the sync group left without members)."""
    text = (
        "global_defs {\n router_idd x\n vrrp_version 2\n}\n"
        "vrrp_script chk {\n script /bin/true\n intervall 2\n}\n"
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 5\n priorty 100\n"
        " virtual_ipaddress {\n  10.9.9.9/32\n }\n track_script {\n  chk\n }\n}\n"
        "vrrp_sync_group G {\n VI_1\n}\n"
        "virtual_server 10.0.0.1 80 {\n lb_algoo rr\n real_server 10.0.0.2 80 {\n"
        "  weigth 1\n  TCP_CHECK {\n   conect_timeout 3\n  }\n }\n}\n"
    )
    conf = tmp_path / "typos.conf"
    conf.write_text(text)
    ours: set[tuple[int, str]] = set()
    cfg, warnings = ka.load_with_report(conf)
    assert not cfg.vrrp_sync_group  # "Sync group G has no virtual router(s). removing"
    for issue in warnings:
        if "unknown keyword" in issue.message:
            assert issue.line is not None and issue.severity == "warning"
            ours.add((issue.line, issue.message.split("'")[1]))
    theirs = _ka_unknown(conf)
    assert ours == theirs
    assert len(ours) == 7


# ------------------------------------------------------------------------------- a split site config

SITE = Path(__file__).resolve().parent / "data" / "keepalived" / "site" / "keepalived.conf"


@pytest.mark.parametrize(("node", "prio", "state"), [("lb1", 150, "MASTER"), ("lb2", 100, "BACKUP")])
def test_site_fixture_includes_definitions_conditionals(node: str, prio: int, state: str) -> None:
    """Includes, $VAR/${VAR}, a multi-line block definition, @id/@^id and ${_INSTANCE} together."""
    cfg, warnings = ka.load_with_report(SITE, config_id=node)
    assert cfg.global_defs.router_id == node
    inst = cfg.vrrp_instance["VI_51"]
    assert (inst.priority, inst.state, inst.interface) == (prio, state, "eth0")
    vip = inst.virtual_ipaddress[0]
    assert (str(vip.address), vip.dev, vip.label) == ("192.168.233.200/32", "eth0", "eth0:vip")
    assert inst.notify == "/usr/local/bin/vrrp-notify \\#1"  # inside quotes: no comment, no unescape
    assert [t.name for t in inst.track_script] == ["chk_ipvs"]
    vs = cfg.virtual_server["192.168.233.200:80"]
    assert [(str(r.ip), r.tcp_check[0].connect_timeout) for r in vs.real_server] == [
        ("192.168.233.100", 2),
        ("192.168.233.110", 2),
    ]
    # the only warning: no protocol → UDP, located in the included file
    (w,) = warnings
    assert w.file is not None and w.file.endswith("conf.d/30-lvs.conf") and w.line == 1


@needs_keepalived
@pytest.mark.keepalived
@pytest.mark.parametrize("node", ["lb1", "lb2"])
def test_site_fixture_is_valid_for_keepalived(node: str) -> None:
    """keepalived -t accepts the same fixture (no unknown keyword, no syntax complaint)."""
    assert KEEPALIVED is not None
    out = subprocess.run(
        [KEEPALIVED, "-t", "-f", str(SITE), "-i", node, "-l", "-D"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    log = out.stdout + out.stderr
    assert "Unknown keyword" not in log and "Missing" not in log and "Unexpected" not in log, log
    assert "defaulting to UDP" in log  # the default we copy


# ------------------------------------------------------------------------------- robustness

_ALL_KWS = sorted({kw for table in ka.KEYWORDS.values() for kw in table})
_ARGS = [
    "",
    "1",
    "-5",
    "x",
    "10.0.0.1",
    "10.0.0.1/24",
    "ae00::1",
    "weight",
    "reverse",
    "200-299",
    '"a b"',
    "on",
]


@st.composite
def _conf(draw: st.DrawFn, depth: int = 0) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        kw = draw(st.sampled_from(_ALL_KWS))
        args = " ".join(draw(st.lists(st.sampled_from(_ARGS), max_size=3)))
        if depth < 3 and draw(st.booleans()):
            lines.append(f"{kw} {args} {{\n{draw(_conf(depth + 1))}}}")
        else:
            lines.append(f"{kw} {args}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(_WRAP)), _conf())
def test_loader_never_crashes(tmp_path: Path, where: str, body: str) -> None:
    """Any soup of keepalived keywords, args and blocks, in any block, loads or raises ConfigError."""
    head, tail = _WRAP[where]
    p = tmp_path / "fuzz.conf"
    p.write_text(head + body + tail)
    try:
        cfg, warnings = ka.load_with_report(p)
    except ConfigError as exc:
        assert exc.issues
        assert all(i.severity in ("error", "warning") for i in exc.issues)
        return
    assert all(w.severity == "warning" and w.line is not None for w in warnings)
    assert cfg is not None


def test_block_keywords_are_read_as_blocks() -> None:
    """A keepalived block keyword the loader uses (supported/approximated) has a block reader."""
    block_convs = {"block", "vips", "peers", "track_list", "names", "auth", "checker", "routes", "rules"}
    for block, table in ka.KEYWORDS.items():
        for kw, entry in table.items():
            if kw in _KA_BLOCKS and entry.status in ("supported", "approximated") and block != "track_file":
                assert entry.conv in block_convs, (block, kw)


_DIFF_MAIN = """\
$K=kk
$M=m1 \\
m2
global_defs {
  a1 # comment
  a2#glued
  a3 ! bang
  e\\#1 escaped
  "qu oted" x
@lb1 c1
@lb2 c2
@^lb1 c3
@^lb2 c4
  $K
  ${K}x
  $M
  ~SEQ(i, 2) s$i
  ~SEQ(j, 4, -2, 0) d${j}
  include inc/*.conf
  t1 { t2 }
  t3
  {
  }
}
"""


@needs_keepalived
@pytest.mark.keepalived
def test_grammar_agrees_with_keepalived(tmp_path: Path) -> None:
    """Differential: every line keepalived reads as a keyword (it reports unknown ones, in order, with
    file and line) is a node of our tree, in the same order: comments, escapes, quotes, @id/@^id,
    $VAR/${VAR}, multi-line definitions, ~SEQ, include globs, braces on one line."""
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "b.conf").write_text("inc_b 1\n")
    (tmp_path / "inc" / "a.conf").write_text("inc_a 1\n")
    main = tmp_path / "main.conf"
    main.write_text(_DIFF_MAIN)
    assert KEEPALIVED is not None
    out = subprocess.run(
        [KEEPALIVED, "-t", "-f", str(main), "-i", "lb1", "-l", "-D"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    theirs = [
        (f or None, int(n), kw)
        for f, n, kw in re.findall(
            r"\((?:([^:()]+): )?Line (\d+)\) Unknown keyword '([^']*)'", out.stdout + out.stderr
        )
        if kw != "}"
    ]

    def flat(nodes: list[Node]) -> list[tuple[str | None, int, str]]:
        acc: list[tuple[str | None, int, str]] = []
        for n in nodes:
            rel = None if n.file == str(main) else str(Path(n.file).relative_to(tmp_path))
            acc.append((rel, n.line, n.keyword))
            acc.extend(flat(n.children or []))
        return acc

    ours = flat(parse_file(main, config_id="lb1").nodes[0].children or [])
    assert ours == theirs
    assert len(ours) == 21
