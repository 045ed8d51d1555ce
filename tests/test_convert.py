"""``pyvrrp convert`` and the TOML writer: keepalived.conf → native TOML that re-loads equal."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pyvrrp.cli.app import app
from pyvrrp.config import keepalived as ka
from pyvrrp.config.load import load_config
from pyvrrp.config.toml_loader import loads_toml
from pyvrrp.config.toml_writer import config_to_toml, dumps, format_key, format_value

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "conf" / "keepalived"
runner = CliRunner()


# ------------------------------------------------------------------------------- writer


def test_format_key_quotes_non_bare() -> None:
    assert format_key("vrrp_instance") == "vrrp_instance"
    assert format_key("10.0.0.1:80") == '"10.0.0.1:80"'
    assert format_key('a"b') == '"a\\"b"'


def test_format_value_scalars() -> None:
    assert format_value(True) == "true"
    assert format_value(3) == "3"
    assert format_value(1.0) == "1.0"
    assert format_value(1e20) == "1e+20"
    assert format_value("a\tb\n\x01") == '"a\\tb\\n\\u0001"'
    assert format_value([1, "x", {"a": 1}]) == '[1, "x", { a = 1 }]'


def test_dumps_nested_tables_and_arrays_of_tables() -> None:
    data = {
        "global_defs": {"router_id": "lb1"},
        "virtual_server": {
            "10.0.0.1:80": {
                "lvs_method": "DR",
                "real_server": [
                    {"ip": "10.0.0.2", "tcp_check": [{"connect_timeout": 2.0}]},
                    {"ip": "10.0.0.3", "http_get": [{"url": [{"path": "/"}]}]},
                ],
            }
        },
        "vrrp_instance": {"VI_1": {"virtual_ipaddress": [{"address": "10.0.0.9/32", "dev": "eth0"}]}},
    }
    text = dumps(data)
    assert tomllib.loads(text) == data
    assert '[[virtual_server."10.0.0.1:80".real_server.http_get]]' in text  # holds a list of tables
    assert "tcp_check = [{ connect_timeout = 2.0 }]" in text  # flat tables stay inline
    assert 'virtual_ipaddress = [{ address = "10.0.0.9/32", dev = "eth0" }]' in text


def test_dumps_wraps_long_arrays() -> None:
    data = {"t": {"codes": list(range(200, 240))}}
    text = dumps(data)
    assert "codes = [\n" in text
    assert tomllib.loads(text) == data


_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)
_values = st.recursive(
    _scalars | st.lists(_scalars, max_size=4),
    lambda inner: (
        st.dictionaries(_keys, inner, max_size=4)
        | st.lists(st.dictionaries(_keys, inner, max_size=3), max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_dumps_round_trips_through_tomllib(data: dict[str, object]) -> None:
    """Any nesting of tables, arrays of tables and scalars re-reads equal (floats compared exactly)."""
    text = dumps(data)
    back = tomllib.loads(text)

    def norm(v: object) -> object:
        if isinstance(v, float) and math.isinf(v):
            return ("inf", v > 0)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    assert norm(back) == norm(data)


# ------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    ("conf", "config_id"),
    [("lb1.conf", None), ("lb2.conf", None), ("lvs-dr.conf", "lb1"), ("lvs-dr.conf", "lb2")],
)
def test_lab_configs_round_trip(conf: str, config_id: str | None) -> None:
    """IOP-01: the lab keepalived.conf files convert to TOML that loads to an equal model."""
    cfg, warnings = ka.load_with_report(LAB / conf, config_id=config_id)
    assert warnings == []
    text = config_to_toml(cfg)
    again = loads_toml(text, file="converted.toml")
    assert again.model_dump() == cfg.model_dump()


def test_lab_pair_differs_only_where_intended() -> None:
    """lb1/lb2: same VRID 51, VIP 192.168.233.200/32 on eth0, priorities 150/100."""
    a = load_config(LAB / "lb1.conf").vrrp_instance["VI_51"]
    b = load_config(LAB / "lb2.conf").vrrp_instance["VI_51"]
    assert (a.virtual_router_id, a.interface, [str(v) for v in a.vips]) == (
        51,
        "eth0",
        ["192.168.233.200/32"],
    )
    assert (b.virtual_router_id, b.interface, b.vips) == (a.virtual_router_id, a.interface, a.vips)
    assert (a.priority, a.state, b.priority, b.state) == (150, "MASTER", 100, "BACKUP")


def test_lvs_dr_lab_per_node() -> None:
    lb1 = load_config(LAB / "lvs-dr.conf", config_id="lb1")
    lb2 = load_config(LAB / "lvs-dr.conf", config_id="lb2")
    i1, i2 = lb1.vrrp_instance["VI_51"], lb2.vrrp_instance["VI_51"]
    assert (i1.priority, str(i1.unicast_src_ip), [str(p) for p in i1.unicast_peer]) == (
        150,
        "192.168.233.10",
        ["192.168.233.11"],
    )
    assert (i2.priority, str(i2.unicast_src_ip), [str(p) for p in i2.unicast_peer]) == (
        100,
        "192.168.233.11",
        ["192.168.233.10"],
    )
    vs = lb1.virtual_server["192.168.233.200:80"]
    assert vs.lvs_method == "DR" and [str(r.ip) for r in vs.real_server] == [
        "192.168.233.100",
        "192.168.233.110",
    ]


def test_converted_toml_keeps_keepalived_defaults(tmp_path: Path) -> None:
    """AM-02: accept = true and lvs_method = NAT are written out, so the TOML keeps keepalived's meaning."""
    conf = tmp_path / "k.conf"
    conf.write_text(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n"
    )
    cfg, _ = ka.load_with_report(conf)
    data = tomllib.loads(config_to_toml(cfg))
    inst = data["vrrp_instance"]["VI_1"]
    assert inst["accept"] is True and inst["preempt"] is True and inst["state"] == "BACKUP"
    assert data["virtual_server"]["10.0.0.1:80"]["lvs_method"] == "NAT"


# ------------------------------------------------------------------------------- CLI


def test_cli_convert_prints_toml_that_reloads(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "-f", str(LAB / "lvs-dr.conf"), "--config-id", "lb2"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "lb2.toml"
    out.write_text(result.stdout)
    cfg = load_config(out)
    assert cfg.vrrp_instance["VI_51"].priority == 100
    assert result.stdout.startswith("# pyvrrp config converted from")


def test_cli_convert_lists_warnings_on_stderr_and_in_header(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(
        "global_defs {\n smtp_server 10.0.0.1\n}\n"
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n smtp_alert\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
    )
    result = runner.invoke(app, ["convert", "-f", str(conf), "-o", str(tmp_path / "out.toml")])
    assert result.exit_code == 0
    assert f"{conf}:2: global_defs.smtp_server" in result.stderr
    assert f"{conf}:7: vrrp_instance.VI_1.smtp_alert" in result.stderr
    text = (tmp_path / "out.toml").read_text()
    assert f"#   {conf}:7: vrrp_instance.VI_1.smtp_alert" in text
    assert loads_toml(text).vrrp_instance["VI_1"].virtual_router_id == 1


def test_cli_convert_refuses_with_file_line(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n use_ipvlan\n"
        " virtual_ipaddress {\n 10.0.0.1\n }\n}\n"
    )
    result = runner.invoke(app, ["convert", "-f", str(conf)])
    assert result.exit_code == 1
    assert f"error: {conf}:4: vrrp_instance.VI_1.use_ipvlan" in result.stderr
    assert result.stdout == ""


def test_cli_convert_syntax_error(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text("vrrp_instance VI_1 {\n interface eth0\n")
    result = runner.invoke(app, ["convert", "-f", str(conf)])
    assert result.exit_code == 1
    assert f"{conf}:1:" in result.stderr and "missing '}'" in result.stderr


def test_cli_convert_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "-f", str(tmp_path / "nope.conf")])
    assert result.exit_code == 1
    assert "cannot read" in result.stderr
