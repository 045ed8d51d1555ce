"""LVS-DR real-server setup (ANCHORS §2.9 lvs_method DR): VIP on lo, ARP sysctls, restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrp.realserver import RealServerError, RealServerSetup


class FakeAddrs:
    def __init__(self) -> None:
        self.addrs: set[tuple[str, str, int]] = set()
        self.calls: list[str] = []

    def has(self, dev: str, address: str, prefixlen: int) -> bool:
        return (dev, address, prefixlen) in self.addrs

    def add(self, dev: str, address: str, prefixlen: int) -> None:
        self.calls.append(f"add {address}/{prefixlen} {dev}")
        self.addrs.add((dev, address, prefixlen))

    def delete(self, dev: str, address: str, prefixlen: int) -> None:
        self.calls.append(f"del {address}/{prefixlen} {dev}")
        self.addrs.discard((dev, address, prefixlen))


@pytest.fixture
def env(tmp_path: Path) -> tuple[RealServerSetup, Path, FakeAddrs]:
    proc = tmp_path / "proc"
    for iface, ign, ann in (("all", "0", "0"), ("lo", "0", "1")):
        d = proc / "net/ipv4/conf" / iface
        d.mkdir(parents=True)
        (d / "arp_ignore").write_text(ign + "\n")
        (d / "arp_announce").write_text(ann + "\n")
    backend = FakeAddrs()
    return RealServerSetup(state_dir=tmp_path / "state", proc_sys=proc, backend=backend), proc, backend


def sysctl(proc: Path, iface: str, name: str) -> str:
    return (proc / "net/ipv4/conf" / iface / name).read_text().strip()


def test_up_sets_sysctls_and_vip_idempotently(env: tuple[RealServerSetup, Path, FakeAddrs]) -> None:
    setup, proc, backend = env
    changes = setup.up("192.168.233.200")
    assert "added 192.168.233.200/32 on lo" in changes
    assert sysctl(proc, "all", "arp_ignore") == "1" and sysctl(proc, "all", "arp_announce") == "2"
    assert sysctl(proc, "lo", "arp_ignore") == "1" and sysctl(proc, "lo", "arp_announce") == "2"
    assert setup.up("192.168.233.200") == []
    assert backend.calls == ["add 192.168.233.200/32 lo"]


def test_down_restores_previous_values_after_last_vip(env: tuple[RealServerSetup, Path, FakeAddrs]) -> None:
    setup, proc, backend = env
    setup.up("192.168.233.200")
    setup.up("192.168.233.201")
    setup.down("192.168.233.200")
    assert sysctl(proc, "all", "arp_ignore") == "1"  # another VIP still needs them
    setup.down("192.168.233.201")
    assert sysctl(proc, "all", "arp_ignore") == "0" and sysctl(proc, "lo", "arp_announce") == "1"
    assert not backend.addrs
    assert setup.load("lo") is None
    assert setup.down("192.168.233.201") == []


def test_saved_values_are_the_original_ones(env: tuple[RealServerSetup, Path, FakeAddrs]) -> None:
    """A second `up` (values already 1/2) must not overwrite the saved originals."""
    setup, _proc, _ = env
    setup.up("10.0.0.1")
    setup.up("10.0.0.2")
    st = setup.load("lo")
    assert st is not None and st.saved["net/ipv4/conf/all/arp_ignore"] == "0"


def test_ipv6_vip_is_128(env: tuple[RealServerSetup, Path, FakeAddrs]) -> None:
    setup, _, backend = env
    setup.up("2001:db8::10")
    assert backend.calls == ["add 2001:db8::10/128 lo"]


def test_unknown_interface(env: tuple[RealServerSetup, Path, FakeAddrs]) -> None:
    setup, proc, backend = env
    with pytest.raises(RealServerError, match="does not exist"):
        setup.up("10.0.0.1", dev="nosuch0")
    assert sysctl(proc, "all", "arp_ignore") == "0"  # nothing half-done
    assert not backend.calls
