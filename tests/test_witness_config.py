"""global_defs.witness and ``witness = true`` (issue 13): good configs load, bad ones name the key path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.config import ConfigError, loads_toml

BASE = """\
[global_defs]
router_id = "lb1"
{glob}

[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
priority = {prio}
virtual_ipaddress = ["192.168.233.200/32"]
{inst}

[vrrp_instance.VI_2]
interface = "eth0"
virtual_router_id = 52
virtual_ipaddress = ["192.168.233.201/32"]

[vrrp_instance.VI_3]
interface = "eth0"
virtual_router_id = 53
virtual_ipaddress = ["192.168.233.202/32"]

[vrrp_sync_group.G]
group = ["VI_2", "VI_3"]
{group}
"""

WITNESS = 'witness = { endpoints = ["http://10.0.0.1:2379", "http://[fd00::1]:2379"] }'


def cfg(glob: str = WITNESS, inst: str = "witness = true", group: str = "", prio: int = 150):  # type: ignore[no-untyped-def]
    return loads_toml(BASE.format(glob=glob, inst=inst, group=group, prio=prio), file="w.toml")


def errors(**kw: str | int) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfg(**kw)  # type: ignore[arg-type]
    return [str(i) for i in info.value.issues]


def test_defaults_and_keys() -> None:
    c = cfg(group="witness = true")
    w = c.global_defs.witness
    assert w is not None
    assert (w.ttl, w.margin, w.on_unavailable, w.prefix) == (5, 1.0, "release", "/pyvrrp")
    assert w.endpoints == ["http://10.0.0.1:2379", "http://[fd00::1]:2379"]
    assert w.request_timeout_s == 1.0  # min(1, (5 - 1) / 4)
    assert c.witness_key("VI_1") == "instance/VI_1"
    assert c.witness_key("VI_2") == c.witness_key("VI_3") == "group/G"
    assert c.witness_key("nope") is None


def test_unwitnessed_instance_has_no_key() -> None:
    c = cfg(inst="")
    assert [c.witness_key(n) for n in ("VI_1", "VI_2")] == [None, None]
    assert any("gates nothing" in str(w) for w in c.warnings())


def test_full_table() -> None:
    glob = textwrap.dedent("""\
        [global_defs.witness]
        endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        ca = "/etc/pyvrrp/ca.pem"
        cert = "/etc/pyvrrp/client.pem"
        key = "/etc/pyvrrp/client-key.pem"
        user = "pyvrrp"
        password = "s3cret"
        prefix = "/lb/pair1"
        ttl = 10
        margin = 2.5
        timeout = 0.5
        on_unavailable = "VRRP"
        """)
    c = cfg(glob=glob)
    w = c.global_defs.witness
    assert w is not None and w.on_unavailable == "vrrp" and w.request_timeout_s == 0.5
    warns = [str(x) for x in c.warnings()]
    assert any("global_defs.witness.on_unavailable" in x and "void" in x for x in warns)


@pytest.mark.parametrize(
    ("glob", "path", "fragment"),
    [
        ("witness = { endpoints = [] }", "global_defs.witness.endpoints", "at least 1"),
        ('witness = { endpoints = ["10.0.0.1:2379"] }', "global_defs.witness.endpoints[0]", "http://"),
        ('witness = { endpoints = ["http://etcd1:2379"] }', "global_defs.witness.endpoints[0]", "not an IP"),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379/v3"] }',
            "global_defs.witness.endpoints[0]",
            "no path",
        ),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], ttl = 1 }', "global_defs.witness.ttl", ""),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], ttl = 2.5 }', "global_defs.witness.ttl", ""),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379"], margin = 5 }',
            "global_defs.witness",
            "smaller than ttl",
        ),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], margin = 0 }', "global_defs.witness.margin", ""),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379"], on_unavailable = "hope" }',
            "global_defs.witness.on_unavailable",
            "release",
        ),
        (
            'witness = { endpoints = ["https://10.0.0.1:2379"], cert = "/c" }',
            "global_defs.witness",
            "cert and key",
        ),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379"], user = "u" }',
            "global_defs.witness",
            "user and password",
        ),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], ca = "/ca" }', "global_defs.witness", "https://"),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379", "https://10.0.0.2:2379"] }',
            "global_defs.witness",
            "mix",
        ),
        (
            'witness = { endpoints = ["http://10.0.0.1:2379"], prefix = "pyvrrp" }',
            "global_defs.witness",
            "prefix",
        ),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], timeout = 4 }', "global_defs.witness", "timeout"),
        ('witness = { endpoints = ["http://10.0.0.1:2379"], ttl_s = 4 }', "global_defs.witness.ttl_s", ""),
    ],
)
def test_bad_witness_table(glob: str, path: str, fragment: str) -> None:
    errs = errors(glob=glob)
    hit = [e for e in errs if f"{path}:" in e or e.split(": ", 2)[1:2] == [path]]
    assert hit, errs
    assert fragment in " ".join(hit)
    assert not any("needs global_defs.witness" in e for e in errs)  # no follow-on noise


def test_witness_true_needs_global_witness() -> None:
    errs = errors(glob="", group="witness = true")
    assert any("vrrp_instance.VI_1.witness" in e and "needs global_defs.witness" in e for e in errs)
    assert any("vrrp_sync_group.G.witness" in e and "needs global_defs.witness" in e for e in errs)


def test_one_key_per_holder_and_no_owner() -> None:
    text = BASE.format(glob=WITNESS, inst="", group="witness = true", prio=150).replace(
        'virtual_ipaddress = ["192.168.233.201/32"]',
        'virtual_ipaddress = ["192.168.233.201/32"]\nwitness = true',
    )
    with pytest.raises(ConfigError) as info:
        loads_toml(text, file="w.toml")
    assert any(
        "vrrp_instance.VI_2.witness" in str(i) and "vrrp_sync_group 'G'" in str(i) for i in info.value.issues
    )
    errs = errors(prio=255)
    assert any("vrrp_instance.VI_1.priority" in e and "owner" in e for e in errs)


def test_witness_is_not_a_bool_typo() -> None:
    errs = errors(inst='witness = "maybe"')
    assert any("vrrp_instance.VI_1.witness" in e for e in errs)


def test_check_config_says_which_instances_are_witnessed(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(BASE.format(glob=WITNESS, inst="witness = true", group="", prio=150))
    runner = CliRunner()
    out = runner.invoke(app, ["check-config", "-f", str(path)])
    assert out.exit_code == 0, out.output
    assert "VI_1: witnessed, key /pyvrrp/instance/VI_1" in out.output
    assert "VI_2: not witnessed" in out.output
    doc = json.loads(runner.invoke(app, ["check-config", "-f", str(path), "--json"]).output)
    assert doc["witness"]["witnessed"] == ["VI_1"]
    assert [r["witness_key"] for r in doc["instances"]] == ["/pyvrrp/instance/VI_1", None, None]


def test_every_bad_witness_value_in_one_pass() -> None:
    """Three bad values (global table, instance flag) are all reported at once, each at its key path."""
    errs = errors(
        glob='witness = { endpoints = ["http://10.0.0.1:2379"], ttl = 0, on_unavailable = "hope" }',
        inst='witness = "maybe"',
    )
    for path in (
        "global_defs.witness.ttl",
        "global_defs.witness.on_unavailable",
        "vrrp_instance.VI_1.witness",
    ):
        assert any(path in e for e in errs), (path, errs)
