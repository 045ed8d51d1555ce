"""The configuration model: defaults, accepted spellings, semantic errors and warnings."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from pathlib import Path

import pytest

from pyvrrp.config import Config, ConfigError, ConfigIssue, VrrpInstance, build_config, check, loads_toml

ISSUE_EXAMPLE = """
[global_defs]
router_id = "lb1"
control_socket = "/run/pyvrrp/lb1.sock"

[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
priority = 150
advert_int = 1
version = 2
preempt = true
virtual_ipaddress = ["192.168.233.200/32"]
notify_master = "/etc/pyvrrp/notify.sh"
"""

BASE = """
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.168.233.200/32"]
"""


def load(text: str) -> Config:
    return loads_toml(textwrap.dedent(text))


def errors(text: str) -> dict[str, str]:
    """path -> message of every error (the test fails if the config is valid)."""
    with pytest.raises(ConfigError) as info:
        load(text)
    return {i.path: i.message for i in info.value.issues}


def instance(extra: str = "", *, head: str = "") -> str:
    return head + BASE + textwrap.dedent(extra)


def warnings_of(text: str) -> dict[str, str]:
    return {w.path: w.message for w in load(text).warnings()}


# --------------------------------------------------------------------------- good input


def test_issue_example_loads_with_its_values() -> None:
    cfg = load(ISSUE_EXAMPLE)
    assert cfg.global_defs.router_id == "lb1"
    assert cfg.global_defs.control_socket == Path("/run/pyvrrp/lb1.sock")
    vi = cfg.vrrp_instance["VI_1"]
    assert (vi.interface, vi.virtual_router_id, vi.priority, vi.version) == ("eth0", 51, 150, 2)
    assert vi.advert_int == 1.0 and vi.advert_int_cs == 100
    assert vi.preempt is True
    assert vi.vips == (IPv4Interface("192.168.233.200/32"),)
    assert vi.notify_master == "/etc/pyvrrp/notify.sh"
    assert cfg.source_format == "toml"


def test_defaults_follow_keepalived() -> None:
    """AM-02, PKT-07, SM-14, TMR-03: keepalived's defaults (accept, pseudo-header, preempt, 3 adverts)."""
    cfg = load(BASE)
    g = cfg.global_defs
    assert g.control_socket == Path("/run/pyvrrp/pyvrrp.sock")
    assert g.state_dir == Path("/var/lib/pyvrrp")
    assert (g.vrrp_version, g.notify_timeout, g.log_format) == (2, 10.0, "auto")
    vi = cfg.vrrp_instance["VI_1"]
    assert vi.priority == 100
    assert vi.version == 2
    assert vi.preempt is True
    assert vi.accept is True
    assert vi.v3_checksum_as_v2 is False
    assert vi.down_timer_adverts == 3
    assert (vi.garp_master_delay, vi.garp_master_repeat, vi.garp_master_refresh) == (5.0, 5, 0.0)
    assert vi.state is None


def test_instance_inherits_global_defaults() -> None:
    cfg = load(
        """
        [global_defs]
        vrrp_version = 3
        vrrp_garp_master_delay = 1
        vrrp_garp_master_repeat = 2
        vrrp_lower_prio_no_advert = true
        """
        + BASE
        + """
        [vrrp_instance.VI_2]
        interface = "eth0"
        virtual_router_id = 52
        version = 2
        garp_master_repeat = 7
        virtual_ipaddress = ["192.168.233.201"]
        """
    )
    vi1, vi2 = cfg.vrrp_instance["VI_1"], cfg.vrrp_instance["VI_2"]
    assert (vi1.version, vi1.garp_master_delay, vi1.garp_master_repeat) == (3, 1.0, 2)
    assert vi1.lower_prio_no_advert is True
    assert (vi2.version, vi2.garp_master_repeat) == (2, 7)


def test_ipv6_instance_defaults_to_version_3() -> None:
    """PKT-08: IPv6 is VRRPv3 only; the version is implied."""
    cfg = load(
        """
        [vrrp_instance.V6]
        interface = "eth0"
        virtual_router_id = 7
        virtual_ipaddress = ["fe80::7/64", "2001:db8::7"]
        """
    )
    vi = cfg.vrrp_instance["V6"]
    assert vi.version == 3 and vi.family == 6
    assert vi.vips == (IPv6Interface("fe80::7/64"), IPv6Interface("2001:db8::7/128"))


def test_vip_forms_string_options_and_table() -> None:
    cfg = load(
        """
        [vrrp_instance.VI_1]
        interface = "eth0"
        virtual_router_id = 51
        virtual_ipaddress = [
          "192.168.233.200",
          "192.168.233.201/24 dev eth1 label eth1:vip scope global",
          {address = "192.168.233.202/32", dev = "eth2", scope = "LINK"},
        ]
        virtual_ipaddress_excluded = "2001:db8::1/64"
        """
    )
    a, b, c = cfg.vrrp_instance["VI_1"].virtual_ipaddress
    assert a.address == IPv4Interface("192.168.233.200/32") and a.dev is None
    assert (str(b.address), b.dev, b.label, b.scope) == ("192.168.233.201/24", "eth1", "eth1:vip", "global")
    assert (c.dev, c.scope) == ("eth2", "link")
    assert [str(v) for v in cfg.vrrp_instance["VI_1"].virtual_ipaddress_excluded] == ["2001:db8::1/64"]


def test_keepalived_negations_and_case() -> None:
    """SM-14: nopreempt / no_accept are keepalived's spellings of preempt = false / accept = false."""
    cfg = load(instance('nopreempt = true\nno_accept = true\nstate = "backup"\n'))
    vi = cfg.vrrp_instance["VI_1"]
    assert vi.preempt is False and vi.accept is False and vi.state == "BACKUP"
    cfg = load(instance("nopreempt = false\n"))
    assert cfg.vrrp_instance["VI_1"].preempt is True


def test_contradicting_negation_is_an_error() -> None:
    errs = errors(instance("preempt = true\nnopreempt = true\n"))
    assert errs == {"vrrp_instance.VI_1": "preempt and nopreempt contradict each other; keep one"}


def test_trackers_by_name_or_table() -> None:
    cfg = load(
        """
        [vrrp_script.chk]
        script = "/bin/true"
        weight = -20

        [track_file.tf]
        file = "/run/prio"
        """
        + instance(
            """
            track_script = ["chk", {name = "chk", weight = 10, reverse = true}]
            track_interface = ["eth1", {name = "eth2", weight = -30}]
            track_file = "tf"
            """
        )
    )
    vi = cfg.vrrp_instance["VI_1"]
    assert [(r.name, r.weight, r.reverse) for r in vi.track_script] == [
        ("chk", None, False),
        ("chk", 10, True),
    ]
    assert [(r.name, r.weight) for r in vi.track_interface] == [("eth1", 0), ("eth2", -30)]
    assert [r.name for r in vi.track_file] == ["tf"]
    assert cfg.vrrp_script["chk"].interval == 1.0 and cfg.vrrp_script["chk"].weight == -20


def test_split_brain_guards_parse_with_defaults() -> None:
    cfg = load(
        instance(
            """
            fence_script = "/bin/fence"
            probe_vip_before_takeover = true
            gateway_check = {targets = ["192.168.233.1", "192.168.233.2"], min_reachable = 2}
            conflict_detection = {}
            """
        )
    )
    vi = cfg.vrrp_instance["VI_1"]
    gc = vi.gateway_check
    assert gc is not None
    assert gc.targets == [IPv4Address("192.168.233.1"), IPv4Address("192.168.233.2")]
    assert (gc.method, gc.on_isolated, gc.min_reachable, gc.interval) == ("icmp", "fault", 2, 1.0)
    assert vi.conflict_detection is not None and vi.conflict_detection.resolve is True
    assert (vi.fence_timeout, vi.fence_failure, vi.probe_vip_before_takeover) == (10.0, "stay-backup", True)


def test_json_dump_round_trips() -> None:
    cfg = load(ISSUE_EXAMPLE)
    dumped = cfg.model_dump(mode="json")
    assert dumped["vrrp_instance"]["VI_1"]["virtual_ipaddress"][0]["address"] == "192.168.233.200/32"
    assert "nopreempt" not in dumped["vrrp_instance"]["VI_1"]
    again = build_config(dumped)
    assert again.vrrp_instance["VI_1"] == cfg.vrrp_instance["VI_1"]


def test_models_are_frozen() -> None:
    vi = load(BASE).vrrp_instance["VI_1"]
    with pytest.raises(ValueError):
        vi.priority = 200  # type: ignore[misc]


def test_keepalived_front_end_strings_are_accepted() -> None:
    """The keepalived.conf front-end hands over strings; the model converts them."""
    cfg = build_config(
        {
            "global_defs": {"vrrp_version": "3"},
            "vrrp_instance": {
                "VI_1": {
                    "interface": "eth0",
                    "virtual_router_id": "51",
                    "priority": "150",
                    "advert_int": "0.5",
                    "nopreempt": True,
                    "virtual_ipaddress": ["192.168.233.200/32 dev eth0"],
                }
            },
        }
    )
    vi = cfg.vrrp_instance["VI_1"]
    assert (vi.version, vi.virtual_router_id, vi.priority, vi.advert_int_cs, vi.preempt) == (
        3,
        51,
        150,
        50,
        False,
    )


# --------------------------------------------------------------------------- field errors


def test_vrid_out_of_range_message() -> None:
    with pytest.raises(ConfigError) as info:
        load(instance().replace("virtual_router_id = 51", "virtual_router_id = 0"))
    (issue,) = info.value.issues
    assert issue.path == "vrrp_instance.VI_1.virtual_router_id"
    assert issue.message == "must be 1..255, got 0"
    assert str(issue).endswith("vrrp_instance.VI_1.virtual_router_id: must be 1..255, got 0")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("priority = 0", "must be 1..255, got 0"),
        ("priority = 256", "must be 1..255, got 256"),
        ('priority = "high"', "must be an integer, got 'high'"),
        ("priority = true", "must be an integer, got true"),
        ("priority = 1.5", "must be a whole number, got 1.5"),
    ],
)
def test_priority_errors(line: str, message: str) -> None:
    assert errors(instance(line + "\n")) == {"vrrp_instance.VI_1.priority": message}


def test_unknown_key_suggests_the_close_one() -> None:
    assert errors(instance("priorty = 100\n")) == {
        "vrrp_instance.VI_1.priorty": "unknown key (did you mean 'priority'?)"
    }


def test_missing_required_key() -> None:
    errs = errors('[vrrp_instance.VI_1]\nvirtual_router_id = 1\nvirtual_ipaddress = ["10.0.0.1"]\n')
    assert errs == {"vrrp_instance.VI_1.interface": "is required"}


def test_literal_and_bool_messages() -> None:
    errs = errors(instance('state = "PRIMARY"\naccept = "maybe"\nversion = 4\n'))
    assert errs["vrrp_instance.VI_1.state"] == "must be 'MASTER' or 'BACKUP', got 'PRIMARY'"
    assert errs["vrrp_instance.VI_1.accept"] == "must be true or false, got 'maybe'"
    assert errs["vrrp_instance.VI_1.version"] == "must be 2 or 3, got 4"


def test_bad_address() -> None:
    errs = errors(instance('unicast_peer = ["192.168.233.300"]\n'))
    assert errs == {"vrrp_instance.VI_1.unicast_peer[0]": "'192.168.233.300' is not an IP address"}


def test_unknown_section_and_bad_names() -> None:
    errs = errors(instance('[vrrp_instanse.X]\na = 1\n[vrrp_script."chk one"]\nscript = "/bin/true"\n'))
    assert errs["vrrp_instanse"].startswith("unknown section (did you mean 'vrrp_instance'?)")
    assert errs['vrrp_script."chk one"'] == "names must be non-empty and contain no blanks"


# --------------------------------------------------------------------------- semantic errors


def test_duplicate_vrid_on_one_interface() -> None:
    """RFC 5798 §3: a VRID names one virtual router per interface and family."""
    errs = errors(
        instance(
            '[vrrp_instance.VI_2]\ninterface = "eth0"\nvirtual_router_id = 51\n'
            'virtual_ipaddress = "10.0.0.2"\n'
        )
    )
    assert errs == {
        "vrrp_instance.VI_2.virtual_router_id": "VRID 51 is already used on eth0 (IPv4) by "
        "vrrp_instance.VI_1; a VRID must be unique per interface and address family"
    }


def test_same_vrid_is_fine_on_other_interface_other_family_or_disjoint_unicast() -> None:
    """RFC 9568 §1: IPv4 and IPv6 routers with one VRID are independent."""
    load(
        instance(
            """
            [vrrp_instance.OTHER_IF]
            interface = "eth1"
            virtual_router_id = 51
            virtual_ipaddress = "10.0.0.2"

            [vrrp_instance.V6]
            interface = "eth0"
            virtual_router_id = 51
            virtual_ipaddress = "fe80::51/64"
            """
        )
    )
    load(
        """
        [vrrp_instance.A]
        interface = "eth0"
        virtual_router_id = 9
        unicast_peer = ["10.0.0.2"]
        virtual_ipaddress = "10.0.0.100"

        [vrrp_instance.B]
        interface = "eth0"
        virtual_router_id = 9
        unicast_peer = ["10.0.0.3"]
        virtual_ipaddress = "10.0.0.101"
        """
    )


def test_owner_with_nopreempt_is_an_error() -> None:
    """SM-14: the address owner (255) always preempts."""
    errs = errors(instance("priority = 255\nnopreempt = true\n"))
    assert list(errs) == ["vrrp_instance.VI_1.nopreempt"]
    assert "always preempts" in errs["vrrp_instance.VI_1.nopreempt"]


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ("advert_int = 0.5\n", "VRRPv2 advertises whole seconds"),
        ("advert_int = 256\n", "must be 1..255 s for VRRPv2"),
        ("advert_int = 0\n", "must be > 0, got 0"),
        ("advert_int = -1\n", "must be > 0, got -1"),
        ("version = 3\nadvert_int = 0\n", "must be > 0, got 0"),
        ("version = 3\nadvert_int = 0.015\n", "must be a multiple of 0.01 s"),
        ("version = 3\nadvert_int = 0.001\n", "must be a multiple of 0.01 s"),
        ("version = 3\nadvert_int = 41\n", "must be 0.01..40.95 s for VRRPv3"),
    ],
)
def test_advert_int_limits(lines: str, fragment: str) -> None:
    """TMR-01: v2 whole seconds 1..255, v3 1..4095 cs; 0 rejected (RFC 9568 erratum 8301)."""
    errs = errors(instance(lines))
    assert list(errs) == ["vrrp_instance.VI_1.advert_int"]
    assert fragment in errs["vrrp_instance.VI_1.advert_int"]


@pytest.mark.parametrize("value", ["0.01", "0.1", "0.37", "40.95", "1"])
def test_v3_advert_int_accepted(value: str) -> None:
    """TMR-01: any whole number of centiseconds in 1..4095."""
    vi = load(instance(f"version = 3\nadvert_int = {value}\n")).vrrp_instance["VI_1"]
    assert vi.advert_int_cs == round(float(value) * 100)


def test_mixed_vip_families() -> None:
    """PKT-08: one advert carries one family."""
    errs = errors(instance().replace('["192.168.233.200/32"]', '["192.168.233.200/32", "2001:db8::1"]'))
    assert list(errs) == ["vrrp_instance.VI_1.virtual_ipaddress[1]"]
    assert errs["vrrp_instance.VI_1.virtual_ipaddress[1]"].startswith(
        "IPv6 address 2001:db8::1/128 in an IPv4"
    )


def test_no_vips_is_valid_with_a_warning() -> None:
    """An instance without VIPs is valid, as in keepalived (notify scripts move a cloud address):
    a warning says so; ``no_virtual_ipaddress`` makes it explicit (no warning)."""
    base = '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\nunicast_peer = ["2001:db8::2"]\n'
    cfg = loads_toml(base)
    inst = cfg.vrrp_instance["VI_1"]
    assert inst.virtual_ipaddress == [] and inst.vip_list == ()
    assert inst.family == 6 and inst.version == 3  # the family comes from the peers
    (w,) = [w for w in cfg.warnings() if w.path == "vrrp_instance.VI_1"]
    assert "no virtual_ipaddress" in w.message
    quiet = loads_toml(base + "no_virtual_ipaddress = true\n")
    assert not [w for w in quiet.warnings() if w.path == "vrrp_instance.VI_1"]
    errs = errors(
        '[vrrp_instance.VI_1]\ninterface = "eth0"\nvirtual_router_id = 1\n'
        'virtual_ipaddress = ["10.0.0.1"]\nno_virtual_ipaddress = true\n'
    )
    assert "contradicts" in errs["vrrp_instance.VI_1.no_virtual_ipaddress"]


def test_ipv6_rules() -> None:
    """PKT-08: IPv6 needs v3 and a link-local first address (RFC 9568 erratum 8300)."""
    errs = errors(
        """
        [vrrp_instance.V6]
        interface = "eth0"
        virtual_router_id = 7
        version = 2
        virtual_ipaddress = ["2001:db8::7", "fe80::7/64"]
        """
    )
    assert errs["vrrp_instance.V6.version"] == "IPv6 needs VRRP version 3 (RFC 3768 is IPv4 only)"
    assert "vrrp_instance.V6.virtual_ipaddress[0]" not in errs  # IOP: keepalived sends global first


def test_ipv6_global_first_address_is_a_warning() -> None:
    """PKT-08: a global first IPv6 VIP loads (keepalived does the same) but is warned about."""
    from pyvrrp.config.toml_loader import loads_toml as loads

    cfg = loads(
        '[vrrp_instance.V6]\ninterface = "eth0"\nvirtual_router_id = 7\nversion = 3\n'
        'virtual_ipaddress = ["fd00::200/64"]\n'
    )
    assert any("should be link-local" in w.message for w in cfg.warnings())


def test_authentication_rules() -> None:
    """SEC-01: authentication is v2-only; AH (keepalived's IPsec AH form) loads, and
    ``state MASTER`` with it is warned about (started as BACKUP, as keepalived does)."""
    errs = errors(instance('version = 3\nauthentication = {auth_type = "PASS", auth_pass = "x"}\n'))
    assert "VRRPv3 has no authentication" in errs["vrrp_instance.VI_1.authentication"]
    errs = errors(instance('version = 3\nauthentication = {auth_type = "AH", auth_pass = "x"}\n'))
    assert "VRRPv3 has no authentication" in errs["vrrp_instance.VI_1.authentication"]
    cfg = load(instance('state = "MASTER"\nauthentication = {auth_type = "ah", auth_pass = "x"}\n'))
    ah = cfg.vrrp_instance["VI_1"].authentication
    assert ah is not None and ah.auth_type == "AH"
    assert any("started as BACKUP" in w.message for w in cfg.warnings())
    vi = load(instance('authentication = {auth_type = "pass", auth_pass = "secret"}\n')).vrrp_instance["VI_1"]
    assert vi.authentication is not None and vi.authentication.auth_type == "PASS"


def test_unknown_tracker_names() -> None:
    errs = errors(
        '[vrrp_script.chk_a]\nscript = "/bin/true"\n'
        + instance('track_script = ["chk_a", "chk_b"]\ntrack_file = ["nofile"]\n')
        + '[vrrp_sync_group.G]\ngroup = ["VI_1"]\ntrack_script = ["chk_c"]\n'
    )
    assert errs == {
        "vrrp_instance.VI_1.track_script[1]": "no vrrp_script named 'chk_b' (defined: chk_a)",
        "vrrp_instance.VI_1.track_file[0]": "no track_file named 'nofile' (no [track_file.NAME] is defined)",
        "vrrp_sync_group.G.track_script[0]": "no vrrp_script named 'chk_c' (defined: chk_a)",
    }


def test_a_script_that_failed_validation_is_not_reported_as_unknown() -> None:
    errs = errors("[vrrp_script.chk_a]\ninterval = 1\n" + instance('track_script = ["chk_a"]\n'))
    assert errs == {"vrrp_script.chk_a.script": "is required"}


def test_sync_group_references() -> None:
    errs = errors(
        instance()
        + '[vrrp_sync_group.G1]\ngroup = ["VI_1", "VI_X"]\n'
        + '[vrrp_sync_group.G2]\ngroup = ["VI_1", "VI_1"]\n'
    )
    assert errs == {
        "vrrp_sync_group.G1.group[1]": "no vrrp_instance named 'VI_X'",
        "vrrp_sync_group.G2.group[0]": "'VI_1' is already in vrrp_sync_group 'G1' (one group per instance)",
        "vrrp_sync_group.G2.group[1]": "'VI_1' is already in vrrp_sync_group 'G1' (one group per instance)",
    }


def test_unicast_family_mismatch() -> None:
    errs = errors(instance('unicast_src_ip = "2001:db8::1"\nunicast_peer = ["10.0.0.2", "2001:db8::2"]\n'))
    assert errs == {
        "vrrp_instance.VI_1.unicast_src_ip": "IPv6 address 2001:db8::1 in an IPv4 instance",
        "vrrp_instance.VI_1.unicast_peer[1]": "IPv6 peer 2001:db8::2 in an IPv4 instance: "
        "peers must be of the VIPs' family",
    }


def test_gateway_check_rules() -> None:
    errs = errors(
        instance(
            'gateway_check = {targets = ["10.0.0.1", "2001:db8::1", "10.0.0.1"], method = "arp", '
            'min_reachable = 4, on_isolated = "demote"}\n'
        )
    )
    assert errs == {
        "vrrp_instance.VI_1.gateway_check.min_reachable": "must be <= the number of targets (3), got 4",
        "vrrp_instance.VI_1.gateway_check.targets[2]": "10.0.0.1 is listed twice",
        "vrrp_instance.VI_1.gateway_check.targets[1]": (
            "method 'arp' probes IPv4 only, got 2001:db8::1; use 'icmp'"
        ),
        "vrrp_instance.VI_1.gateway_check.weight": (
            "must be non-zero with on_isolated = 'demote' (the priority an isolated node loses)"
        ),
    }


def test_gateway_check_feeds_the_split_brain_runtime() -> None:
    """The model's defaults and names are what pyvrrp.splitbrain.gateway reads."""
    gateway = pytest.importorskip("pyvrrp.splitbrain.gateway")
    vi = load(
        instance(
            'gateway_check = {targets = ["10.0.0.1", "10.0.0.2"], on_isolated = "demote", weight = -30}\n'
        )
    )
    gc = vi.vrrp_instance["VI_1"].gateway_check
    assert gc is not None
    mon = gateway.GatewayMonitor("eth0", gc)
    assert (mon.targets, mon.arbiter.rise, mon.arbiter.fall, mon.arbiter.min_reachable) == (
        ("10.0.0.1", "10.0.0.2"),
        2,
        3,
        1,
    )
    assert mon.tracker_update() == (-30, False)  # isolated until proven; demote by abs(weight)


def test_virtual_server_keys_are_checked() -> None:
    errs = errors(instance('[virtual_server."nonsense"]\n[virtual_server."group:web"]\n'))
    assert set(errs) == {"virtual_server.nonsense", 'virtual_server."group:web"'}
    assert errs['virtual_server."group:web"'] == "no virtual_server_group named 'web'"


def test_semantic_checks_skip_fields_that_failed() -> None:
    """A bad version must not produce a guessed advert_int error on top."""
    errs = errors(instance('version = "three"\nadvert_int = 0.5\n'))
    assert list(errs) == ["vrrp_instance.VI_1.version"]


def test_many_errors_in_one_pass() -> None:
    """Field errors and semantic errors of several sections come together, sorted by line."""
    text = textwrap.dedent(
        """
        [global_defs]
        vrrp_version = 5
        log_format = "xml"

        [vrrp_script.chk]
        script = "/bin/true"
        weight = 300

        [vrrp_instance.VI_1]
        interface = "eth0"
        virtual_router_id = 300
        priority = 255
        nopreempt = true
        advert_int = 1.5
        virtual_ipaddress = ["192.168.233.200/32", "2001:db8::1"]
        track_script = ["missing"]

        [vrrp_instance.VI_2]
        interface = "eth0"
        virtual_router_id = 52
        version = 3
        advert_int = 0
        virtual_ipaddress = "10.0.0.2"
        authentication = {auth_pass = "x"}

        [vrrp_sync_group.G]
        group = ["VI_1", "VI_3"]
        """
    )
    with pytest.raises(ConfigError) as info:
        loads_toml(text, file="many.toml")
    issues = info.value.issues
    paths = [i.path for i in issues]
    assert paths == [
        "global_defs.vrrp_version",
        "global_defs.log_format",
        "vrrp_script.chk.weight",
        "vrrp_instance.VI_1.virtual_router_id",
        "vrrp_instance.VI_1.nopreempt",
        "vrrp_instance.VI_1.advert_int",
        "vrrp_instance.VI_1.virtual_ipaddress[1]",
        "vrrp_instance.VI_1.track_script[0]",
        "vrrp_instance.VI_2.advert_int",
        "vrrp_instance.VI_2.authentication",
        "vrrp_sync_group.G.group[1]",
    ]
    assert [i.line for i in issues] == [3, 4, 8, 12, 14, 15, 16, 17, 23, 25, 28]
    assert all(i.file == "many.toml" for i in issues)
    lines = str(info.value).splitlines()
    assert len(lines) == len(issues)
    assert lines[3] == "many.toml:12: vrrp_instance.VI_1.virtual_router_id: must be 1..255, got 300"


# --------------------------------------------------------------------------- warnings


def test_nopreempt_with_state_master_warns() -> None:
    """SM-14: keepalived's nopreempt needs state BACKUP."""
    warns = warnings_of(instance('state = "MASTER"\nnopreempt = true\n'))
    assert "sticky master" in warns["vrrp_instance.VI_1.state"]


def test_no_accept_with_virtual_server_warns() -> None:
    """AM-02: an LVS director must accept VIP traffic locally."""
    vs = '[virtual_server."192.168.233.200:80"]\nlvs_method = "DR"\n'
    warns = warnings_of(instance("no_accept = true\n") + vs)
    assert "AM-02" in warns["vrrp_instance.VI_1.no_accept"]
    assert "vrrp_instance.VI_1.no_accept" not in warnings_of(instance("no_accept = true\n"))
    other_vip = '[virtual_server."10.9.9.9:80"]\n'
    assert "vrrp_instance.VI_1.no_accept" not in warnings_of(instance("no_accept = true\n") + other_vip)


def test_other_warnings() -> None:
    text = (
        '[global_defs]\nenable_script_security = false\n[vrrp_script.unused]\nscript = "/bin/true"\n'
        + instance(
            'priority = 255\nauthentication = {auth_pass = "123456789"}\ntrack_interface = [{name = "eth1", '
            'weight = -10}]\nnotify = "/bin/notify"\n'
        )
        + '[vrrp_sync_group.G]\ngroup = ["VI_1"]\n'
    )
    cfg = load(text)
    warns = {w.path: w.message for w in check(cfg)}
    assert set(warns) == {
        "vrrp_script.unused",
        "vrrp_instance.VI_1.priority",
        "vrrp_instance.VI_1.authentication.auth_pass",
        "vrrp_sync_group.G.group",
        "global_defs.enable_script_security",
    }
    assert all(isinstance(w, ConfigIssue) and w.severity == "warning" for w in cfg.warnings())


def test_clean_config_has_no_warnings() -> None:
    assert load(BASE).warnings() == []


def test_no_instances_warns() -> None:
    assert [w.message for w in load("").warnings()] == [
        "no vrrp_instance is defined: pyvrrp would have nothing to do"
    ]


def test_direct_construction_of_an_instance() -> None:
    vi = VrrpInstance(interface="eth0", virtual_router_id=5, virtual_ipaddress=["10.0.0.5"])  # type: ignore[list-item]
    assert vi.vips == (IPv4Interface("10.0.0.5/32"),) and vi.family == 4


def test_messages_for_shapes_unions_and_non_finite_numbers() -> None:
    errs = errors(instance("track_script = [5]\nvirtual_ipaddress_excluded = [true]\nadvert_int = inf\n"))
    assert errs == {
        "vrrp_instance.VI_1.track_script[0]": "must be a string or a table, got 5",
        "vrrp_instance.VI_1.virtual_ipaddress_excluded[0]": "must be a string or a table, got true",
        "vrrp_instance.VI_1.advert_int": "must be a finite number, got inf",
    }
    errs = errors(
        '[virtual_server."10.0.0.1:80"]\n[[virtual_server."10.0.0.1:80".real_server]]\nip = "10.0.0.2"\n'
        'http_get = {url = {status_code = "ok"}}\n'
    )
    assert errs == {
        'virtual_server."10.0.0.1:80".real_server[0].http_get[0].url[0].status_code': (
            "must be an integer or a list, got 'ok'"
        )
    }


def test_interface_names_and_special_addresses() -> None:
    errs = errors(
        """
        [vrrp_instance.VI_1]
        interface = "a-very-long-interface-name"
        virtual_router_id = 1
        virtual_ipaddress = ["224.0.0.18", "10.0.0.1 dev eth0:1"]
        virtual_ipaddress_excluded = ["127.0.0.1"]
        unicast_peer = ["0.0.0.0"]
        track_interface = ["bond 0"]
        """
    )
    assert errs == {
        "vrrp_instance.VI_1.interface": "'a-very-long-interface-name' is not a valid interface name "
        "(at most 15 characters)",
        "vrrp_instance.VI_1.virtual_ipaddress[0]": "224.0.0.18 is a multicast address: a virtual "
        "address must be an ordinary unicast one",
        "vrrp_instance.VI_1.virtual_ipaddress[1].dev": "'eth0:1' is not a valid interface name "
        "(no blanks, '/' or ':'; use label for aliases)",
        "vrrp_instance.VI_1.virtual_ipaddress_excluded[0]": "127.0.0.1 is a loopback address: a virtual "
        "address must be an ordinary unicast one",
        "vrrp_instance.VI_1.unicast_peer[0]": "0.0.0.0 is the unspecified address: unicast peers are "
        "ordinary unicast addresses",
        "vrrp_instance.VI_1.track_interface[0].name": "'bond 0' is not a valid interface name "
        "(no blanks, '/' or ':'; use label for aliases)",
    }
