"""LVS config models (ANCHORS §2.9 virtual_server, §2.10 checkers)."""

from __future__ import annotations

import ipaddress
import tomllib

import pytest
from pydantic import ValidationError

from pyvrrp.config.lvs import (
    SCHEDULERS,
    DnsCheck,
    HttpGet,
    MiscCheck,
    TcpCheck,
    VirtualServer,
    VirtualServerGroup,
    VsKey,
    parse_vs_key,
)

ISSUE_TOML = """
[virtual_server."192.168.233.200:80"]
protocol = "TCP"
lb_algo = "rr"
lb_kind = "DR"
delay_loop = 2
[[virtual_server."192.168.233.200:80".real_server]]
ip = "192.168.233.100"
port = 80
weight = 1
TCP_CHECK = { connect_timeout = 1 }
[[virtual_server."192.168.233.200:80".real_server]]
ip = "192.168.233.110"
port = 80
HTTP_GET = { url = [{ path = "/", status_code = 200 }], connect_timeout = 1 }
"""


def test_issue_toml_shape() -> None:
    """ANCHORS §2.9: the issue's TOML (lb_algo/lb_kind synonyms, checker tables)."""
    doc = tomllib.loads(ISSUE_TOML)
    ((key, raw),) = doc["virtual_server"].items()
    assert parse_vs_key(key) == VsKey("addr", ipaddress.ip_address("192.168.233.200"), 80)
    vs = VirtualServer.model_validate(raw)
    assert (vs.protocol, vs.lvs_sched, vs.lvs_method, vs.delay_loop) == ("TCP", "rr", "DR", 2.0)
    rs1, rs2 = vs.real_server
    assert rs1.checkers == [TcpCheck(connect_timeout=1)]
    assert isinstance(rs2.checkers[0], HttpGet)
    assert rs2.checkers[0].url[0].status_code == 200
    assert rs2.weight == 1


def test_keepalived_defaults() -> None:
    """ANCHORS §2.9/§2.10: NAT default (keepalived), delay_loop 60, quorum 1, retry per checker."""
    vs = VirtualServer()
    assert vs.lvs_method == "NAT" and vs.delay_loop == 60 and vs.quorum == 1 and vs.hysteresis == 0
    assert TcpCheck().connect_timeout == 5 and TcpCheck().retry == 1
    assert DnsCheck().retry == 3 and DnsCheck().type == "SOA" and DnsCheck().name == "."
    assert MiscCheck(misc_path="/bin/true").retry == 0
    assert HttpGet().delay_before_retry == 3


@pytest.mark.parametrize("sched", SCHEDULERS)
def test_every_scheduler_accepted(sched: str) -> None:
    assert VirtualServer(lvs_sched=sched.upper()).lvs_sched == sched


def test_unknown_keys_and_values_rejected() -> None:
    with pytest.raises(ValidationError, match="lb_algo"):
        VirtualServer.model_validate({"lb_algo": "roundrobin"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        VirtualServer.model_validate({"delay_lop": 3})
    with pytest.raises(ValidationError):
        VirtualServer.model_validate({"real_server": [{"ip": "10.0.0.1", "TCP_CHEK": {}}]})
    with pytest.raises(ValidationError, match="digest"):
        HttpGet.model_validate({"url": [{"digest": "abc"}]})
    with pytest.raises(ValidationError, match="regex"):
        HttpGet.model_validate({"url": [{"regex": "("}]})


def test_several_checkers_and_lowercase_names() -> None:
    """ANCHORS §2.10: several checkers per real server (list of tables)."""
    vs = VirtualServer.model_validate(
        {
            "real_server": [
                {
                    "ip": "10.0.0.1",
                    "TCP_CHECK": [{"connect_port": 80}, {"connect_port": 443}],
                    "misc_check": {"misc_path": "/bin/true", "misc_dynamic": True},
                }
            ]
        }
    )
    kinds = [c.kind for c in vs.real_server[0].checkers]
    assert kinds == ["TCP_CHECK", "TCP_CHECK", "MISC_CHECK"]


def test_status_code_forms() -> None:
    h = HttpGet.model_validate({"url": {"path": "/x", "status_code": [200, 302]}})
    assert h.url[0].accepts_status(302) and not h.url[0].accepts_status(204)
    assert HttpGet().url[0].accepts_status(204) and not HttpGet().url[0].accepts_status(301)


def test_depool_floor_forms() -> None:
    """pyvrrp depool_floor (PyBal depool-threshold, ANCHORS §4.5): count, fraction or percent."""
    assert VirtualServer(depool_floor=2).depool_floor_count(5) == 2
    assert VirtualServer(depool_floor=2).depool_floor_count(1) == 1
    assert VirtualServer(depool_floor=0.5).depool_floor_count(5) == 3
    assert VirtualServer.model_validate({"depool_floor": "50%"}).depool_floor_count(4) == 2
    assert VirtualServer().depool_floor_count(4) == 0
    with pytest.raises(ValidationError):
        VirtualServer(depool_floor=1.5)
    with pytest.raises(ValidationError):
        VirtualServer(depool_floor=-1)


def test_sorry_server_forms() -> None:
    assert VirtualServer(sorry_server="10.0.0.9 8080").sorry_server.port == 8080  # type: ignore[union-attr]
    assert VirtualServer(sorry_server="10.0.0.9:81").sorry_server.port == 81  # type: ignore[union-attr]
    assert VirtualServer(sorry_server="10.0.0.9").sorry_server.port is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("10.0.0.1 80", "10.0.0.1:80"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("fwmark:7", "fwmark:7"),
        ("fwmark 0x10", "fwmark:16"),
        ("group:web", "group:web"),
    ],
)
def test_vs_key_forms(key: str, expected: str) -> None:
    assert str(parse_vs_key(key)) == expected


@pytest.mark.parametrize(
    "bad", ["10.0.0.1", "10.0.0.1:99999", "web:80", "fwmark:0", "group:", "2001:db8::1:80"]
)
def test_vs_key_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="virtual_server key"):
        parse_vs_key(bad)


def test_group_expansion() -> None:
    """ANCHORS §2.9 virtual_server_group: IP:PORT, last-octet ranges, fwmarks."""
    g = VirtualServerGroup(address=["10.0.0.1-3:80", "[2001:db8::1]:80"], fwmark=[5])
    assert [str(k) for k in g.keys()] == [  # noqa: SIM118 (our method, not dict.keys)
        "10.0.0.1:80",
        "10.0.0.2:80",
        "10.0.0.3:80",
        "[2001:db8::1]:80",
        "fwmark:5",
    ]
    with pytest.raises(ValidationError):
        VirtualServerGroup(address=["10.0.0.5-2:80"])


def test_persistence_granularity_forms() -> None:
    """ANCHORS §2.9 persistence_granularity: dotted mask or prefix length (IPv6)."""
    from pyvrrp.ipvs.manager import _netmask

    vs = VirtualServer(persistence_timeout=300, persistence_granularity="255.255.255.0")
    assert _netmask(vs, 4) == "255.255.255.0"
    assert _netmask(VirtualServer(persistence_granularity=24), 4) == "255.255.255.0"
    assert _netmask(VirtualServer(persistence_granularity=64), 6) == "64"
    assert _netmask(VirtualServer(persistence_granularity="ffff:ffff:ffff:ffff::"), 6) == "64"
    with pytest.raises(ValidationError, match="contiguous"):
        VirtualServer(persistence_granularity="255.0.255.0")
    with pytest.raises(ValidationError):
        VirtualServer(persistence_granularity=129)


def test_lvs_models_load_only_when_a_virtual_server_is_configured(tmp_path: object) -> None:
    """Start-up cost (#3 §6): a VRRP-only config never builds the LVS schemas."""
    import subprocess
    import sys
    from pathlib import Path

    base = Path(str(tmp_path))
    vrrp_only = base / "vrrp.toml"
    vrrp_only.write_text(
        '[vrrp_instance.VI]\ninterface = "eth0"\nvirtual_router_id = 1\npriority = 100\n'
        'virtual_ipaddress = ["192.0.2.1/32"]\n'
    )
    with_lvs = base / "lvs.toml"
    with_lvs.write_text(vrrp_only.read_text() + ISSUE_TOML)
    probe = (
        "import sys\nfrom pyvrrp.config import load_config\n"
        "cfg = load_config(sys.argv[1])\n"
        "first = next(iter(cfg.virtual_server.values()), None)\n"
        "print('pyvrrp.config.lvs' in sys.modules, type(first).__name__)"
    )
    out = [
        subprocess.run(
            [sys.executable, "-c", probe, str(p)], capture_output=True, text=True, check=True
        ).stdout.split()
        for p in (vrrp_only, with_lvs)
    ]
    assert out == [["False", "NoneType"], ["True", "VirtualServer"]]


def test_config_given_raw_lvs_entries_validates_them() -> None:
    from pyvrrp.config.models import Config

    raw = tomllib.loads(ISSUE_TOML)
    cfg = Config.model_validate(raw)
    vs = cfg.virtual_server["192.168.233.200:80"]
    assert isinstance(vs, VirtualServer) and len(vs.real_server) == 2
    raw["virtual_server"]["192.168.233.200:80"]["lb_algo"] = "fastest"
    with pytest.raises(ValidationError, match="lb_algo"):
        Config.model_validate(raw)
