"""adapters.firewall and runtime.daemon.drop_plan: the no_accept drop rules (no root).

The ruleset is checked for what it must say here; that nft accepts it and that it
drops exactly the VIPs' traffic is proven in netns-tests/test_daemon_no_accept.py.
"""

from __future__ import annotations

import stat
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyvrrp.adapters.firewall import DropPlan, FirewallError, Nft, removal, ruleset
from pyvrrp.config.toml_loader import loads_toml
from pyvrrp.runtime.daemon import drop_plan


def _cfg(body: str, g: str = "") -> str:
    return f"[global_defs]\n{g}\n" + body


def _inst(name: str, vrid: int, extra: str) -> str:
    return (
        f'[vrrp_instance.{name}]\ninterface = "eth0"\nvirtual_router_id = {vrid}\n'
        f'virtual_ipaddress = ["192.0.2.{vrid}/24"]\n{extra}\n'
    )


def test_plan_holds_every_vip_of_non_owner_no_accept_instances_only() -> None:
    text = _cfg(
        _inst("A", 1, 'accept = false\nvirtual_ipaddress_excluded = ["198.51.100.7/32", "2001:db8::7/64"]')
        + _inst("B", 2, "accept = true")
        + _inst("OWNER", 3, "accept = false\npriority = 255")
    )
    plan = drop_plan(loads_toml(text))
    assert plan is not None
    assert plan.v4 == {ip_address("192.0.2.1"), ip_address("198.51.100.7")}
    assert plan.v6 == {ip_address("2001:db8::7")}
    assert (plan.table, plan.priority, plan.counters) == ("pyvrrp", -1, False)


def test_no_table_without_no_accept_and_settings_are_carried() -> None:
    assert drop_plan(loads_toml(_cfg(_inst("B", 2, "")))) is None  # accept is the default
    g = 'vrrp_nftables = "edge_fw"\nvrrp_nftables_priority = -10\nvrrp_nftables_counters = true'
    plan = drop_plan(loads_toml(_cfg(_inst("A", 1, "accept = false"), g)))
    assert plan is not None and (plan.table, plan.priority, plan.counters) == ("edge_fw", -10, True)


def test_ruleset_replaces_the_table_atomically_and_drops_the_sets() -> None:
    plan = DropPlan.of("pyvrrp", [ip_address("192.0.2.2"), ip_address("192.0.2.1")], counters=True)
    text = ruleset(plan)
    lines = [ln.strip() for ln in text.splitlines()]
    # create-if-absent, delete, recreate: one transaction, never a doubled or stale table
    assert lines[:3] == ["table inet pyvrrp {}", "delete table inet pyvrrp", "table inet pyvrrp {"]
    assert "elements = { 192.0.2.1, 192.0.2.2 }" in lines  # sorted, so reloads compare equal
    assert "type filter hook input priority -1; policy accept;" in lines
    assert "ip daddr @vips4 counter drop" in lines and "ip6 daddr @vips6 counter drop" in lines
    assert sum("elements" in ln for ln in lines) == 1  # an empty set has no elements line
    assert removal("pyvrrp") == "table inet pyvrrp {}\ndelete table inet pyvrrp\n"


@pytest.mark.parametrize("name", ["9x", "a b", "x;flush ruleset", ""])
def test_a_table_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        ruleset(DropPlan(name, v4=frozenset({ip_address("192.0.2.1")})))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="table name"):
        removal(name)


def test_config_refuses_a_bad_table_name_with_its_key() -> None:
    from pyvrrp.config.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        loads_toml(_cfg(_inst("A", 1, ""), 'vrrp_nftables = "bad name"'))
    assert "global_defs.vrrp_nftables" in str(info.value) and "table name" in str(info.value)


def test_nft_missing_or_refusing_is_a_firewall_error_with_nft_s_words(tmp_path: Path) -> None:
    plan = DropPlan.of("pyvrrp", [ip_address("192.0.2.1")])
    with pytest.raises(FirewallError, match="apt install nftables"):
        Nft(str(tmp_path / "no-such-nft")).apply(plan)
    fake = tmp_path / "nft"
    refuse = "echo 'Error: Could not process rule: Operation not permitted' >&2"
    fake.write_text(f"#!/bin/sh\ncat > /dev/null\n{refuse}\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(FirewallError, match=r"exit 1.*Operation not permitted"):
        Nft(str(fake)).apply(plan)
    seen = tmp_path / "seen"
    fake.write_text(f"#!/bin/sh\n[ \"$1 $2\" = '-f -' ] && cat > {seen}\n")
    Nft(str(fake)).remove("pyvrrp")
    assert seen.read_text() == removal("pyvrrp")
