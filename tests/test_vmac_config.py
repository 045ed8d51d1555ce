"""use_vmac / vmac_xmit_base: keepalived.conf and TOML forms, defaults, errors (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrp.adapters import vmac as vmac_mod
from pyvrrp.adapters.netlink import MacvlanInfo
from pyvrrp.config.diff import diff as diff_configs
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.config.toml_loader import loads_toml


def _ka(tmp_path: Path, body: str, head: str = "", vip: str = "10.0.0.1/24") -> Path:
    p = tmp_path / "keepalived.conf"
    p.write_text(
        f"{head}vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 12\n"
        f" virtual_ipaddress {{\n  {vip}\n }}\n{body}\n}}\n"
    )
    return p


def _toml(extra: str, vip: str = "10.0.0.1/24") -> str:
    return (
        "[vrrp_instance.VI_1]\ninterface = 'eth0'\nvirtual_router_id = 12\n"
        f"virtual_ipaddress = ['{vip}']\n{extra}\n"
    )


def test_keepalived_use_vmac_defaults_to_vrrp_vrid_and_the_virtual_mac(tmp_path: Path) -> None:
    inst = load_config(_ka(tmp_path, " use_vmac")).vrrp_instance["VI_1"]
    assert inst.use_vmac and not inst.vmac_xmit_base
    assert inst.vmac_ifname == "vrrp.12"
    assert inst.vmac_mac == "00:00:5e:00:01:0c"  # RFC 5798 §7.3: 00-00-5E-00-01-{VRID}


def test_ipv6_instance_gets_the_ipv6_virtual_mac(tmp_path: Path) -> None:
    inst = load_config(_ka(tmp_path, " use_vmac\n version 3", vip="2001:db8::1/64")).vrrp_instance["VI_1"]
    assert inst.vmac_mac == "00:00:5e:00:02:0c"  # 00-00-5E-00-02-{VRID}


def test_keepalived_name_mac_and_xmit_base(tmp_path: Path) -> None:
    inst = load_config(_ka(tmp_path, " use_vmac vrrp12 02:11:22:33:44:55\n vmac_xmit_base")).vrrp_instance[
        "VI_1"
    ]
    assert (inst.vmac_ifname, inst.vmac_mac, inst.vmac_xmit_base) == ("vrrp12", "02:11:22:33:44:55", True)


def test_five_octet_mac_takes_the_vrid(tmp_path: Path) -> None:
    inst = load_config(_ka(tmp_path, " use_vmac 2:0:0:0:1")).vrrp_instance["VI_1"]
    assert inst.vmac_ifname == "vrrp.12" and inst.vmac_mac == "02:00:00:00:01:0c"


def test_vmac_prefix_names_the_default(tmp_path: Path) -> None:
    cfg = load_config(_ka(tmp_path, " use_vmac", head="global_defs {\n vmac_prefix vr\n}\n"))
    assert cfg.vrrp_instance["VI_1"].vmac_ifname == "vr.12"


def test_unicast_sets_xmit_base_with_a_warning_as_keepalived(tmp_path: Path) -> None:
    body = " use_vmac\n unicast_src_ip 10.0.0.2\n unicast_peer {\n  10.0.0.3\n }"
    cfg = load_config(_ka(tmp_path, body))
    assert cfg.vrrp_instance["VI_1"].vmac_xmit_base is True
    (w,) = [w for w in cfg.warnings() if "vmac_xmit_base" in w.message]
    assert w.path == "vrrp_instance.VI_1.use_vmac" and w.line == 7


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (" use_vmac a b", "vrrp_instance.VI_1.use_vmac", "extra words 'b'"),
        (" use_vmac vrrp.this.name.is.long", "vrrp_instance.VI_1.vmac_name", ""),
        (" use_vmac eth0", "vrrp_instance.VI_1.vmac_name", "is the instance's interface eth0"),
        (" use_vmac x 01:00:5e:00:00:01", "vrrp_instance.VI_1.vmac_address", "multicast MAC"),
        (" vmac_xmit_base", "vrrp_instance.VI_1.vmac_xmit_base", "without use_vmac"),
        (" use_vmac_addr", "vrrp_instance.VI_1.use_vmac_addr", "not supported"),
    ],
)
def test_bad_vmac_lines_name_key_and_line(tmp_path: Path, body: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(_ka(tmp_path, body))
    errs = [i for i in ei.value.issues if i.severity == "error"]
    assert [(e.path, e.line) for e in errs] == [(path, 7)], [str(e) for e in errs]
    assert words in errs[0].message


def test_toml_form() -> None:
    cfg = loads_toml(_toml("use_vmac = true\nvmac_name = 'vip12'\nvmac_xmit_base = true"))
    inst = cfg.vrrp_instance["VI_1"]
    assert (inst.vmac_ifname, inst.vmac_mac, inst.vmac_xmit_base) == ("vip12", "00:00:5e:00:01:0c", True)


def test_toml_unicast_without_xmit_base_is_refused() -> None:
    with pytest.raises(ConfigError) as ei:
        loads_toml(_toml("use_vmac = true\nunicast_peer = ['10.0.0.3']"))
    assert any(
        i.path == "vrrp_instance.VI_1.vmac_xmit_base" and "needs vmac_xmit_base = true" in i.message
        for i in ei.value.issues
    ), [str(i) for i in ei.value.issues]


def test_two_instances_cannot_share_a_macvlan() -> None:
    text = _toml("use_vmac = true\nvmac_name = 'v'") + (
        "[vrrp_instance.VI_2]\ninterface = 'eth1'\nvirtual_router_id = 13\n"
        "virtual_ipaddress = ['10.0.1.1/24']\nuse_vmac = true\nvmac_name = 'v'\n"
    )
    with pytest.raises(ConfigError) as ei:
        loads_toml(text)
    assert any("macvlan v is already used by vrrp_instance.VI_1" in i.message for i in ei.value.issues)


def test_changing_the_vmac_restarts_the_instance() -> None:
    old = loads_toml(_toml("use_vmac = true"))
    new = loads_toml(_toml("use_vmac = true\nvmac_name = 'other'"))
    assert diff_configs(old, new).restarted == ("VI_1",)
    assert diff_configs(old, loads_toml(_toml("use_vmac = true\npriority = 120"))).restarted == ()


# ------------------------------------------------------------------ VmacManager (fake kernel)


class _FakeNetlink:
    def __init__(self, links: dict[str, MacvlanInfo]) -> None:
        self.links = links
        self.calls: list[str] = []

    def link_index(self, ifname: str) -> int:
        if ifname == "eth0":
            return 2
        return self.links[ifname].ifindex

    def macvlan(self, ifname: str) -> MacvlanInfo | None:
        return self.links.get(ifname)

    def add_macvlan(self, ifname: str, base: str, mac: str, *, mode: str = "private") -> int:
        self.calls.append(f"add {ifname} {base} {mac} {mode}")
        self.links[ifname] = MacvlanInfo(9, "macvlan", 2, mac, mode, False)
        return 9

    def set_link_up(self, ifname: str, up: bool = True) -> None:
        self.calls.append(f"up {ifname}")

    def delete_link(self, ifname: str) -> bool:
        self.calls.append(f"del {ifname}")
        return self.links.pop(ifname, None) is not None


@pytest.fixture
def sysctls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for fam, ifname in (("ipv4", "eth0"), ("ipv4", "vrrp.12"), ("ipv6", "vrrp.12"), ("ipv4", "all")):
        d = tmp_path / fam / "conf" / ifname
        d.mkdir(parents=True)
        for key in ("arp_ignore", "arp_filter", "arp_announce", "rp_filter", "accept_local",
                    "promote_secondaries", "disable_ipv6", "addr_gen_mode"):  # fmt: skip
            (d / key).write_text("0\n")
    monkeypatch.setattr(vmac_mod, "SYSCTL_ROOT", tmp_path)
    return tmp_path


def _read(root: Path, fam: str, ifname: str, key: str) -> str:
    return (root / fam / "conf" / ifname / key).read_text().strip()


def test_manager_creates_configures_and_restores(sysctls: Path) -> None:
    nl = _FakeNetlink({})
    mgr = vmac_mod.VmacManager(nl)  # type: ignore[arg-type]
    (sysctls / "ipv4" / "conf" / "eth0" / "arp_announce").write_text("1\n")
    assert mgr.ensure("vrrp.12", "eth0", "00:00:5E:00:01:0C", 4) == "created"
    assert nl.calls == ["add vrrp.12 eth0 00:00:5e:00:01:0c private", "up vrrp.12"]  # sysctls before up
    assert [_read(sysctls, "ipv4", "vrrp.12", k) for k in ("arp_ignore", "accept_local", "rp_filter")] == [
        "1", "1", "0",
    ]  # fmt: skip
    assert _read(sysctls, "ipv6", "vrrp.12", "disable_ipv6") == "1"
    assert [_read(sysctls, "ipv4", "eth0", k) for k in ("arp_ignore", "arp_filter", "arp_announce")] == [
        "1", "1", "2",
    ]  # fmt: skip
    assert mgr.remove("vrrp.12") is True
    assert [_read(sysctls, "ipv4", "eth0", k) for k in ("arp_ignore", "arp_filter", "arp_announce")] == [
        "0", "0", "1",
    ]  # fmt: skip


def test_manager_reuses_a_matching_stale_macvlan_and_replaces_a_wrong_one(sysctls: Path) -> None:
    nl = _FakeNetlink({"vrrp.12": MacvlanInfo(7, "macvlan", 2, "00:00:5e:00:01:0c", "private", True)})
    assert vmac_mod.VmacManager(nl).ensure("vrrp.12", "eth0", "00:00:5e:00:01:0c", 4) == "reused"  # type: ignore[arg-type]
    assert nl.calls == ["up vrrp.12"]
    nl = _FakeNetlink({"vrrp.12": MacvlanInfo(7, "macvlan", 2, "00:00:5e:00:01:0c", "bridge", True)})
    assert vmac_mod.VmacManager(nl).ensure("vrrp.12", "eth0", "00:00:5e:00:01:0c", 4) == "replaced"  # type: ignore[arg-type]
    assert nl.calls[:2] == ["del vrrp.12", "add vrrp.12 eth0 00:00:5e:00:01:0c private"]


def test_manager_never_touches_another_kind_of_link(sysctls: Path) -> None:
    nl = _FakeNetlink({"vrrp.12": MacvlanInfo(7, "veth", 0, "02:00:00:00:00:01", "", True)})
    with pytest.raises(vmac_mod.VmacError, match=r"vrrp\.12 exists and is a veth, not a macvlan"):
        vmac_mod.VmacManager(nl).ensure("vrrp.12", "eth0", "00:00:5e:00:01:0c", 4)  # type: ignore[arg-type]
    assert nl.calls == []


def test_ipv6_macvlan_gets_no_generated_link_local(sysctls: Path) -> None:
    nl = _FakeNetlink({})
    vmac_mod.VmacManager(nl).ensure("vrrp.12", "eth0", "00:00:5e:00:02:0c", 6)  # type: ignore[arg-type]
    assert _read(sysctls, "ipv6", "vrrp.12", "addr_gen_mode") == "1"
    assert _read(sysctls, "ipv6", "vrrp.12", "disable_ipv6") == "0"


@pytest.mark.parametrize(
    ("extra", "key"),
    [("probe_vip_before_takeover = true", "probe_vip_before_takeover"),
     ("conflict_detection = { interval = 1 }", "conflict_detection")],
)  # fmt: skip
def test_guards_that_compare_macs_are_refused_with_use_vmac(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        loads_toml(_toml(f"use_vmac = true\n{extra}"))
    assert any(
        i.path == f"vrrp_instance.VI_1.{key}" and "same virtual MAC" in i.message for i in ei.value.issues
    )
