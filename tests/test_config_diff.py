"""config.diff: what a reload touches (pure; no root)."""

from __future__ import annotations

from typing import Any

from pyvrrp.config.diff import diff
from pyvrrp.config.models import Config


def _cfg(instances: dict[str, dict[str, Any]], groups: dict[str, list[str]] | None = None) -> Config:
    raw: dict[str, Any] = {
        "vrrp_instance": {
            name: {"interface": "eth0", "virtual_router_id": i + 1, "virtual_ipaddress": [f"192.0.2.{i + 1}"]}
            | body
            for i, (name, body) in enumerate(instances.items())
        }
    }
    if groups:
        raw["vrrp_sync_group"] = {g: {"group": members} for g, members in groups.items()}
    return Config.model_validate(raw)


def test_identical_configs_change_nothing() -> None:
    a = _cfg({"A": {}, "B": {}})
    d = diff(a, _cfg({"A": {}, "B": {}}))
    assert (d.added, d.removed, d.changed) == ((), (), ())
    assert d.unchanged == ("A", "B")
    assert not d.removes_everything


def test_added_removed_and_reconfigured_instances() -> None:
    d = diff(_cfg({"A": {}, "B": {}}), _cfg({"A": {"priority": 150}, "C": {}}))
    assert d.added == ("C",) and d.removed == ("B",)
    assert d.reconfigured == ("A",) and d.restarted == ()


def test_vip_change_is_a_reconfiguration_not_a_restart() -> None:
    d = diff(_cfg({"A": {}}), _cfg({"A": {"virtual_ipaddress": ["192.0.2.1", "192.0.2.50"]}}))
    assert d.reconfigured == ("A",)


def test_interface_or_family_change_restarts_the_instance() -> None:
    v6 = {"virtual_ipaddress": ["2001:db8::1"], "version": 3}
    d = diff(_cfg({"A": {}, "B": {}}), _cfg({"A": {"interface": "eth1"}, "B": v6}))
    assert d.restarted == ("A", "B") and d.reconfigured == ()


def test_guard_changes_are_flagged() -> None:
    d = diff(_cfg({"A": {}}), _cfg({"A": {"gateway_check": {"targets": ["192.0.2.254"]}}}))
    assert d.reconfigured == ("A",) and d.guards_changed == ("A",)
    d = diff(_cfg({"A": {}}), _cfg({"A": {"priority": 120}}))
    assert d.guards_changed == ()


def test_leaving_a_sync_group_reconfigures_an_otherwise_unchanged_instance() -> None:
    # The member's takeover gate comes from its group: it must be recomputed (earlier defect:
    # an unchanged instance kept the old group's gate after a reload).
    old = _cfg({"A": {}, "B": {}}, {"G": ["A", "B"]})
    new = _cfg({"A": {}, "B": {}}, {"G": ["A"]})
    d = diff(old, new)
    assert d.group_changed == ("B",)
    assert d.reconfigured == ("B",) and d.unchanged == ("A",)


def test_removing_every_instance_is_recognised() -> None:
    assert diff(_cfg({"A": {}}), Config.model_validate({})).removes_everything
    assert not diff(_cfg({"A": {}}), _cfg({"B": {}})).removes_everything


def test_a_vip_that_moves_to_another_dev_restarts_the_instance() -> None:
    """The engine moves VIPs by address: a kept VIP on a new dev (or with new options) needs a restart."""
    old = _cfg({"A": {"virtual_ipaddress": ["192.0.2.1"]}})
    assert diff(old, _cfg({"A": {"virtual_ipaddress": ["192.0.2.1 dev lo"]}})).restarted == ("A",)
    assert diff(old, _cfg({"A": {"virtual_ipaddress": ["192.0.2.1 scope link"]}})).restarted == ("A",)
    assert diff(old, _cfg({"A": {"virtual_ipaddress": ["192.0.2.1", "192.0.2.2 dev lo"]}})).reconfigured == (
        "A",
    )
