"""Loading files: TOML syntax errors, line numbers, format dispatch, unreadable files, shipped configs."""

from __future__ import annotations

import textwrap
import types
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

import pyvrrp.config.load as load_mod
from pyvrrp.config import Config, ConfigError, build_config, detect_format, load_config, loads_toml
from pyvrrp.config.toml_loader import TomlLocator

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*REPO.glob("conf/lab/*.toml"), *REPO.glob("conf/examples/*.toml")])

GOOD = """\
[global_defs]
router_id = "lb1"

[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.168.233.200/32"]
"""

KEEPALIVED = """\
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.168.233.200/32
    }
}
"""


def only_issue(exc: ConfigError) -> str:
    assert len(exc.issues) == 1
    return str(exc.issues[0])


# --------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load_without_errors(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.vrrp_instance
    assert cfg.source_format == "toml" and cfg.source_file == str(path)


def test_shipped_set_is_complete() -> None:
    names = {p.name for p in SHIPPED}
    assert {"lb1.toml", "lb2.toml", "unicast.toml", "v3-fast.toml", "ipv6-v3.toml"} <= names


def test_lab_pair_matches_the_seed_lab() -> None:
    lb1 = load_config(REPO / "conf/lab/lb1.toml").vrrp_instance
    lb2 = load_config(REPO / "conf/lab/lb2.toml").vrrp_instance
    (a,) = lb1.values()
    (b,) = lb2.values()
    for vi in (a, b):
        assert (vi.interface, vi.virtual_router_id, vi.version, vi.advert_int) == ("eth0", 51, 2, 1.0)
        assert vi.vips == (IPv4Interface("192.168.233.200/32"),)
    assert (a.priority, b.priority) == (150, 100)


def test_examples_say_what_their_names_promise() -> None:
    """TMR-01, PKT-08: v3 fast adverts; IPv6 with a link-local first address; unicast peers."""
    fast = load_config(REPO / "conf/examples/v3-fast.toml").vrrp_instance["VI_51"]
    assert (fast.version, fast.advert_int_cs) == (3, 10)
    v6 = load_config(REPO / "conf/examples/ipv6-v3.toml").vrrp_instance["VI_51_v6"]
    assert v6.version == 3 and v6.family == 6 and v6.vips[0].ip.is_link_local
    uni = load_config(REPO / "conf/examples/unicast.toml").vrrp_instance["VI_51"]
    assert uni.unicast_peer == [IPv4Address("192.168.233.11")]
    assert uni.unicast_src_ip == IPv4Address("192.168.233.10")


# --------------------------------------------------------------------------- TOML syntax and lines


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[global_defs]\nrouter_id = "lb1"\nvrrp_version = = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(f)
    (issue,) = info.value.issues
    assert issue.line == 3 and issue.file == str(f)
    assert issue.message.startswith("TOML syntax error: ")
    assert "(column 16)" in issue.message


def test_unterminated_toml_reports_end_of_file() -> None:
    with pytest.raises(ConfigError) as info:
        loads_toml("[vrrp_instance.A]\nvirtual_ipaddress = [\n", file="x.toml")
    assert "TOML syntax error" in only_issue(info.value)


def test_locator_maps_tables_keys_items_and_array_tables() -> None:
    text = textwrap.dedent(
        """\
        [vrrp_instance.VI_1]
        interface = "eth0"
        virtual_ipaddress = [
          "10.0.0.1",   # one
          {address = "10.0.0.2", dev = "eth1"},
        ]
        authentication.auth_pass = "x"
        gateway_check = { targets = ["10.0.0.254"], interval = 2 }
        notify = '''
        multi-line ] } string'''

        [vrrp_instance."VI 2"]
        'literal.key' = 1

        [[virtual_server."10.0.0.1:80".real_server]]
        ip = "10.0.0.10"
        [[virtual_server."10.0.0.1:80".real_server]]
        ip = "10.0.0.11"
        """
    )
    import tomllib

    tomllib.loads(text)  # the locator only ever sees valid TOML
    loc = TomlLocator(text, "f.toml")
    assert loc(("vrrp_instance", "VI_1")) == ("f.toml", 1)
    assert loc(("vrrp_instance", "VI_1", "interface"))[1] == 2
    assert loc(("vrrp_instance", "VI_1", "virtual_ipaddress"))[1] == 3
    assert loc(("vrrp_instance", "VI_1", "virtual_ipaddress", 0))[1] == 4
    assert loc(("vrrp_instance", "VI_1", "virtual_ipaddress", 1, "dev"))[1] == 5
    assert loc(("vrrp_instance", "VI_1", "authentication", "auth_pass"))[1] == 7
    assert loc(("vrrp_instance", "VI_1", "gateway_check", "interval"))[1] == 8
    assert loc(("vrrp_instance", "VI_1", "notify"))[1] == 9
    assert loc(("vrrp_instance", "VI_1", "priority"))[1] == 1  # not written: its table
    assert loc(("vrrp_instance", "VI 2", "literal.key"))[1] == 13
    assert loc(("virtual_server", "10.0.0.1:80", "real_server", 1, "ip"))[1] == 18
    assert loc(("virtual_server", "10.0.0.1:80", "real_server", 0))[1] == 15
    assert loc(("nowhere",)) == ("f.toml", None)


def test_errors_point_at_the_offending_line() -> None:
    text = GOOD + 'priority = 300\nunicast_peer = [\n  "10.0.0.1",\n  "bogus",\n]\n'
    with pytest.raises(ConfigError) as info:
        loads_toml(text, file="lb.toml")
    assert [str(i) for i in info.value.issues] == [
        "lb.toml:8: vrrp_instance.VI_1.priority: must be 1..255, got 300",
        "lb.toml:11: vrrp_instance.VI_1.unicast_peer[1]: 'bogus' is not an IP address",
    ]


# --------------------------------------------------------------------------- unreadable files


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/pyvrrp.toml")
    assert only_issue(info.value) == "/nonexistent/pyvrrp.toml: no such file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "is a directory" in only_issue(info.value)


def test_binary_garbage(tmp_path: Path) -> None:
    f = tmp_path / "garbage"
    f.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "binary data" in only_issue(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'[global_defs]\nrouter_id = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(f)
    issue = info.value.issues[0]
    assert "not UTF-8" in issue.message and issue.line == 2


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    f = tmp_path / "secret.toml"
    f.write_text(GOOD)
    f.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "permission denied" in only_issue(info.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_config(f).global_defs.router_id == "lb1"


# --------------------------------------------------------------------------- dispatch


def test_detect_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_mod, "_keepalived_available", lambda: True)
    assert detect_format(GOOD, "pyvrrp.conf") == "toml"
    assert detect_format("", "empty.conf") == "toml"
    assert detect_format(KEEPALIVED, "keepalived.conf") == "keepalived"
    assert detect_format(KEEPALIVED, "odd.toml") == "toml"  # the suffix wins
    assert detect_format(GOOD + "oops =\n", "typo.conf") == "toml"  # our own [tables]: a TOML typo
    monkeypatch.setattr(load_mod, "_keepalived_available", lambda: False)
    assert detect_format(KEEPALIVED, "keepalived.conf") == "toml"


def test_keepalived_text_goes_to_the_keepalived_front_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str | None]] = []
    sentinel = build_config({"global_defs": {"router_id": "from-ka"}})

    def fake_load(path: str | Path, *, config_id: str | None = None) -> Config:
        calls.append((str(path), config_id))
        return sentinel

    fake = types.ModuleType("pyvrrp.config.keepalived")
    fake.load = fake_load  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "pyvrrp.config.keepalived", fake)
    monkeypatch.setattr(load_mod, "_keepalived_available", lambda: True)
    f = tmp_path / "keepalived.conf"
    f.write_text(KEEPALIVED)
    assert load_config(f, config_id="lb2") is sentinel
    assert calls == [(str(f), "lb2")]
    g = tmp_path / "pyvrrp.conf"
    g.write_text(GOOD)
    assert load_config(g).global_defs.router_id == "lb1"  # TOML content: not the keepalived front-end
    assert len(calls) == 1


def test_keepalived_text_without_that_front_end_is_a_toml_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_mod, "_keepalived_available", lambda: False)
    f = tmp_path / "keepalived.conf"
    f.write_text(KEEPALIVED)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert "TOML syntax error" in only_issue(info.value)
