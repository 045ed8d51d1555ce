"""keepalived.conf front-end: keepalived's keywords → pyvrrp's config model.

The parser (:mod:`pyvrrp.config.kaconf_parser`) gives a node tree; this module walks it
with one table, :data:`KEYWORDS` (block → keyword → :class:`Keyword`), which says for
every keyword keepalived 2.2.7 accepts whether pyvrrp

* ``supported``    -- implements it (same meaning as keepalived),
* ``approximated`` -- maps it onto something close (a warning says what differs),
* ``ignored``      -- accepts and ignores it (a warning says so),
* ``refused``      -- cannot honour it safely: an error.

A keyword that is not in the table for its block is one keepalived itself does not know
("Unknown keyword"): keepalived ignores it and runs, and so does pyvrrp, with a warning
naming file:line and the keyword meant (difflib) or what an obsolete word was
(:data:`_OBSOLETE`).  A likely misspelling of a keyword that carries addresses, peers or
authentication (:data:`_LOAD_BEARING`) is an error: keepalived would run without it.
Likewise keepalived's other leniencies (undefined track_script names, empty sync groups, an
invalid scheduler, authentication on VRRPv3, words after ``virtual_server IP PORT``) are
warnings here; ``pyvrrp check-config --strict`` turns every warning into an error.

Nothing is dropped silently: every
warning is a :class:`~pyvrrp.config.errors.ConfigIssue` with ``severity="warning"``
and ``file``/``line``, returned by :func:`load_with_report` and surfaced by
``pyvrrp check-config``.  docs/migrating-from-keepalived.md is generated from the same
table (:func:`keyword_table_markdown`; a test keeps the doc in sync).

Defaults follow keepalived where it differs from the RFCs, and the loader writes them out
explicitly so a converted TOML file behaves the same: ``state BACKUP``, preemption on,
``vrrp_version 2``, accept mode **on** (RFC 5798 §6.1 default is off; keepalived turns it
on unless ``no_accept``/``vrrp_strict``), ``lvs_method NAT`` (ipvsadm's default is DR).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyvrrp.config.errors import ConfigError, ConfigIssue, format_path
from pyvrrp.config.kaconf_parser import KaConfSyntaxError, Node, parse_file

Status = Literal["supported", "approximated", "ignored", "refused"]
Severity = Literal["error", "warning"]

__all__ = [
    "KEYWORDS",
    "Issue",
    "KeepalivedLoadError",
    "Keyword",
    "frontend_warnings",
    "keyword_table_markdown",
    "load",
    "load_with_report",
    "to_model_dict",
]


@dataclass(frozen=True, slots=True)
class Keyword:
    """How pyvrrp treats one keepalived keyword in one block."""

    status: Status
    field: str | None = None  # model field it sets (None: none)
    note: str = ""
    conv: str = "str"  # how the value is read; see _CONVERTERS and the block handlers


@dataclass(frozen=True, slots=True)
class Issue:
    """A finding of the keepalived front-end (converted to ConfigIssue by :func:`load`)."""

    severity: Severity
    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{self.severity}: {self.path}: {self.message}"


class KeepalivedLoadError(ValueError):
    """Raised by :func:`to_model_dict` when there are errors (``issues`` holds all findings)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        errs = [i for i in issues if i.severity == "error"]
        super().__init__("\n".join(str(i) for i in errs) or "keepalived.conf has errors")


def _sup(field: str | None, conv: str = "str", note: str = "") -> Keyword:
    return Keyword("supported", field, note, conv)


def _approx(field: str | None, note: str, conv: str = "str") -> Keyword:
    return Keyword("approximated", field, note, conv)


def _ign(note: str, conv: str = "any") -> Keyword:
    return Keyword("ignored", None, note, conv)


def _ref(note: str, conv: str = "any") -> Keyword:
    return Keyword("refused", None, note, conv)


_NO_SMTP = "pyvrrp sends no e-mail; use notify scripts"
_NO_SNMP = "no SNMP agent; use `pyvrrp state --json`"
_TUNING = "keepalived process/socket tuning; pyvrrp sizes its own sockets"
_NOT_NEEDED = "not needed by pyvrrp"

# ----------------------------------------------------------------------------------------
# The table.  Block names: "(top)" is the file level; checker blocks share "checker".
# ----------------------------------------------------------------------------------------

_GLOBAL_IGNORED_TUNING = [
    "bfd_cpu_affinity",
    "bfd_no_swap",
    "bfd_priority",
    "bfd_process_name",
    "bfd_rlimit_rttime",
    "bfd_rt_priority",
    "checker_cpu_affinity",
    "checker_no_swap",
    "checker_priority",
    "checker_process_name",
    "checker_rlimit_rttime",
    "checker_rt_priority",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "max_auto_priority",
    "min_auto_priority_delay",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "process_name",
    "process_names",
    "vrrp_cpu_affinity",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_no_swap",
    "vrrp_priority",
    "vrrp_process_name",
    "vrrp_rlimit_rttime",
    "vrrp_rt_priority",
    "vrrp_rx_bufs_multiplier",
    "vrrp_rx_bufs_policy",
    "umask",
    "random_seed",
    "tmp_config_directory",
    "config_save_dir",
    "data_use_instance",
    "include_check",
]

_GLOBAL_IGNORED_SMTP = [
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "no_email_faults",
    "no_checker_emails",
]

_GLOBAL_IGNORED_SNMP = [
    "enable_snmp_vrrp",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_traps",
    "snmp_socket",
    "enable_dbus",
    "dbus_service_name",
]

KEYWORDS: dict[str, dict[str, Keyword]] = {
    "(top)": {
        "global_defs": _sup("global_defs", "block"),
        "vrrp_script": _sup("vrrp_script", "block", "named block; see vrrp_script"),
        "vrrp_track_file": _sup("track_file", "block", "old name of track_file"),
        "track_file": _sup("track_file", "block", "named block; see track_file"),
        "vrrp_instance": _sup("vrrp_instance", "block"),
        "vrrp_sync_group": _sup("vrrp_sync_group", "block"),
        "virtual_server": _sup("virtual_server", "block", "`IP PORT`, `fwmark N` or `group NAME`"),
        "virtual_server_group": _sup("virtual_server_group", "block"),
        "net_namespace": _sup(
            "net_namespace", "str", "the daemon enters /run/netns/NAME before it opens any socket"
        ),
        "net_namespace_ipvs": _ref("IPVS in another namespace is not implemented"),
        "namespace_with_ipsets": _ign(_NOT_NEEDED),
        "instance": _ign("keepalived pid-file naming; give each pyvrrp its own control socket (--socket)"),
        "use_pid_dir": _ign("keepalived pid-file placement; not used by pyvrrp"),
        "linkbeat_use_polling": _ign("pyvrrp always follows netlink link events"),
        "linkbeat_interfaces": _ign("pyvrrp always follows netlink link events"),
        "child_wait_time": _ign(_TUNING),
        "static_ipaddress": _sup(
            "static_ipaddress", "vips", "`ADDR[/LEN] dev IF [label L] [scope S] [brd B]`"
        ),
        "static_routes": _sup("static_routes", "routes", "see virtual_routes"),
        "static_rules": _sup("static_rules", "rules", "see virtual_rules"),
        "track_group": _ref("static track groups are not implemented"),
        "interface_up_down_delays": _ref("link debouncing is not implemented"),
        "garp_group": _ign("per-switch GARP rate limits are not implemented; pyvrrp's own spacing applies"),
        "vrrp_track_process": _sup(
            "vrrp_track_process", "block", "named block; proc connector events, /proc polling without them"
        ),
        "bfd_instance": _ref("BFD is not implemented"),
        "SSL": _ign("TLS client certificates for SSL_GET are not used; certificates are not verified"),
    },
    "global_defs": {
        "router_id": _sup("router_id"),
        "vrrp_version": _sup("vrrp_version", "int", "default 2, as keepalived"),
        "vrrp_garp_master_delay": _sup("vrrp_garp_master_delay", "float"),
        "vrrp_garp_master_repeat": _sup("vrrp_garp_master_repeat", "int"),
        "vrrp_garp_master_refresh": _sup("vrrp_garp_master_refresh", "float_or_default"),
        "vrrp_garp_lower_prio_repeat": _sup("vrrp_garp_lower_prio_repeat", "int"),
        "vrrp_lower_prio_no_advert": _sup("vrrp_lower_prio_no_advert", "flag"),
        "vrrp_startup_delay": _sup("vrrp_startup_delay", "float"),
        "script_user": _sup("script_user", "words"),
        "enable_script_security": _sup("enable_script_security", "flag"),
        "vrrp_min_garp": _sup(
            None, "min_garp", "sets vrrp_garp_master_repeat = 1 and vrrp_garp_master_delay = 0"
        ),
        "vrrp_down_timer_adverts": _sup(None, "int", "copied to every instance's down_timer_adverts"),
        "vrrp_strict": _approx(
            None, "only its no_accept part: instances without accept/no_accept get accept = false", "flag"
        ),
        "vrrp_garp_master_refresh_repeat": _approx(None, "one GARP/NA per refresh"),
        "vrrp_garp_lower_prio_delay": _sup("vrrp_garp_lower_prio_delay", "float"),
        "vrrp_garp_interval": _approx(None, "pyvrrp's fixed spacing between GARPs is used"),
        "vrrp_gna_interval": _approx(None, "pyvrrp's fixed spacing between NAs is used"),
        "vrrp_check_unicast_src": _approx(None, "unicast adverts are always checked against unicast_peer"),
        "vrrp_skip_check_adv_addr": _ign("the advert's address list is always checked (RFC 5798 §6.4.3)"),
        "vrrp_higher_prio_send_advert": _ign("not implemented; see conflict_detection"),
        "vrrp_notify_priority_changes": _sup(
            "vrrp_notify_priority_changes",
            "flag",
            "MASTER_PRIORITY / BACKUP_PRIORITY lines on the notify FIFOs",
        ),
        "vrrp_mcast_group4": _sup("vrrp_mcast_group4", "str", "default 224.0.0.18"),
        "vrrp_mcast_group6": _sup("vrrp_mcast_group6", "str", "default ff02::12"),
        "vrrp_garp_extra_if": _ref("GARP on non-VRRP interfaces is not implemented"),
        "vrrp_notify_fifo": _sup("vrrp_notify_fifo", "fifo", "`FIFO [USER [GROUP]]`; INSTANCE/GROUP lines"),
        "vrrp_notify_fifo_script": _sup(None, "script", "started with the FIFO path as last argument"),
        "notify_fifo": _sup("notify_fifo", "fifo", "`FIFO [USER [GROUP]]`; VRRP and LVS lines"),
        "notify_fifo_script": _sup(None, "script", "started with the FIFO path as last argument"),
        "lvs_notify_fifo": _sup("lvs_notify_fifo", "fifo", "`FIFO [USER [GROUP]]`; VS/RS lines"),
        "lvs_notify_fifo_script": _sup(None, "script", "started with the FIFO path as last argument"),
        "fifo_write_vrrp_states_on_reload": _sup(
            "fifo_write_vrrp_states_on_reload", "flag", "every instance's state line after a reload"
        ),
        "startup_script": _ref("startup/shutdown hooks are not implemented; use systemd ExecStartPre"),
        "startup_script_timeout": _ref("startup/shutdown hooks are not implemented"),
        "shutdown_script": _ref("startup/shutdown hooks are not implemented; use systemd ExecStopPost"),
        "shutdown_script_timeout": _ref("startup/shutdown hooks are not implemented"),
        "lvs_sync_daemon": _sup(
            "lvs_sync_daemon",
            "lvs_sync_daemon",
            "`IF [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`: master while INSTANCE "
            "is MASTER, backup otherwise; without INSTANCE both always run",
        ),
        "lvs_timeouts": _sup("lvs_timeouts", "lvs_timeouts", "`[tcp S] [tcpfin S] [udp S]`"),
        "lvs_flush": _ign("pyvrrp manages only the IPVS services it configured"),
        "lvs_flush_on_stop": _ign("pyvrrp manages only the IPVS services it configured"),
        "rs_init_notifies": _ign("real-server notifies are sent on state changes only"),
        "checker_log_all_failures": _ign("every checker failure is logged"),
        "default_interface": _ign("every instance names its interface; VIPs without dev use it"),
        "dynamic_interfaces": _ign("interfaces that come and go are handled as link down/up"),
        "log_unknown_vrids": _ign("adverts for unknown VRIDs are counted in `pyvrrp state`"),
        "vrrp_iptables": _approx(
            None,
            "pyvrrp drops traffic to no_accept VIPs with nftables (table global_defs.vrrp_nftables), "
            "as keepalived does where iptables is nftables-based; its chain names are not used",
            "none",
        ),
        "vrrp_ipsets": _ref("ipsets are not managed"),
        "nftables": _sup(
            "vrrp_nftables", "opt_str", "table for the no_accept drop rules (pyvrrp's default name: pyvrrp)"
        ),
        "nftables_priority": _sup("vrrp_nftables_priority", "int"),
        "nftables_counters": _sup("vrrp_nftables_counters", "flag"),
        "nftables_ifindex": _ign("pyvrrp keeps no IPv6 link-local sets (no VMAC IGMP/MLD rules)"),
        "nftables_ipvs": _ref("per-group fwmarks via nftables are not implemented"),
        "nftables_ipvs_priority": _ref("per-group fwmarks via nftables are not implemented"),
        "nftables_ipvs_start_fwmark": _ref("per-group fwmarks via nftables are not implemented"),
        "disable_local_igmp": _ign("no VMAC, so no IGMP hygiene needed"),
        "vmac_prefix": _sup(None, "str", "default macvlan names PREFIX.VRID (default vrrp)"),
        "vmac_addr_prefix": _ign("use_vmac_addr is not implemented"),
        "reload_check_config": _ign("a reload with an invalid config keeps the running one"),
        "reload_time_file": _ref("scheduled reloads are not implemented"),
        "reload_repeat": _ref("scheduled reloads are not implemented"),
        "reload_file": _ign(_NOT_NEEDED),
        **{k: _ign(_TUNING) for k in _GLOBAL_IGNORED_TUNING},
        **{k: _ign(_NO_SMTP) for k in _GLOBAL_IGNORED_SMTP},
        **{k: _ign(_NO_SNMP) for k in _GLOBAL_IGNORED_SNMP},
    },
    "vrrp_script": {
        "script": _sup("script", "cmdline"),
        "interval": _sup("interval", "float", "seconds, default 1"),
        "timeout": _sup("timeout", "float"),
        "weight": _sup("weight", "weight", "`reverse` sets weight_reverse"),
        "rise": _sup("rise", "int"),
        "fall": _sup("fall", "int"),
        "user": _sup("user", "words"),
        "init_fail": _sup("init_fail", "flag"),
    },
    "vrrp_track_process": {
        "process": _sup("process", "process", "`NAME [PARAM ...]`; parameters set params (full_command)"),
        "param_match": _sup("param_match", "param_match", "`exact` without a value"),
        "weight": _sup("weight", "weight", "default 0 (quorum lost: FAULT); `reverse` sets weight_reverse"),
        "quorum": _sup("quorum", "int"),
        "quorum_max": _sup("quorum_max", "int"),
        "delay": _sup("delay", "float", "sets fork_delay and terminate_delay"),
        "fork_delay": _sup("fork_delay", "float"),
        "terminate_delay": _sup("terminate_delay", "float"),
        "full_command": _sup("full_command", "flag"),
    },
    "track_file": {
        "file": _sup("file"),
        "weight": _sup("weight", "weight", "`reverse` sets weight_reverse"),
        "init_file": _sup("init_file", "init_file", "`init_file [VALUE]`; `overwrite` is ignored"),
    },
    "vrrp_instance": {
        "state": _sup("state", "upper", "start-up hint; default BACKUP"),
        "interface": _sup("interface"),
        "virtual_router_id": _sup("virtual_router_id", "int"),
        "priority": _sup("priority", "int"),
        "advert_int": _sup("advert_int", "float", "seconds, default 1"),
        "version": _sup("version", "int", "default: global vrrp_version (2); 3 for IPv6"),
        "nopreempt": _sup("preempt", "false", "sets preempt = false"),
        "preempt": _sup("preempt", "flag", "default on"),
        "preempt_delay": _sup(
            "preempt_delay", "float_or_default", "seconds; without a value: 0, as keepalived"
        ),
        "virtual_ipaddress": _sup(
            "virtual_ipaddress",
            "vips",
            "`ADDR[/LEN] [dev IF] [label L] [scope S] [brd B] [no_track]`; the daemon honours label; "
            "a dev other than interface, scope, brd, no_track: a warning until it applies them",
        ),
        "virtual_ipaddress_excluded": _sup("virtual_ipaddress_excluded", "vips"),
        "unicast_src_ip": _sup("unicast_src_ip"),
        "unicast_peer": _sup("unicast_peer", "peers", "per-peer `min_ttl`/`max_ttl` are ignored"),
        "mcast_src_ip": _sup("mcast_src_ip"),
        "authentication": _sup(
            "authentication", "auth", "PASS, and AH in keepalived's IPsec-AH form (protocol 51, HMAC-MD5-96)"
        ),
        "track_interface": _sup("track_interface", "track_list"),
        "track_script": _sup("track_script", "track_list"),
        "track_file": _sup("track_file", "track_list"),
        "dont_track_primary": _sup("dont_track_primary", "flag"),
        "notify_master": _sup("notify_master", "script", "a trailing `user [group]` is ignored"),
        "notify_backup": _sup("notify_backup", "script"),
        "notify_fault": _sup("notify_fault", "script"),
        "notify_stop": _sup("notify_stop", "script"),
        "notify": _sup("notify", "script"),
        "garp_master_delay": _sup("garp_master_delay", "float"),
        "garp_master_repeat": _sup("garp_master_repeat", "int"),
        "garp_master_refresh": _sup("garp_master_refresh", "float"),
        "garp_lower_prio_repeat": _sup("garp_lower_prio_repeat", "int"),
        "lower_prio_no_advert": _sup("lower_prio_no_advert", "flag"),
        "down_timer_adverts": _sup("down_timer_adverts", "int"),
        "accept": _sup("accept", "flag", "default on, as keepalived (RFC 5798 default is off)"),
        "no_accept": _sup("accept", "false", "sets accept = false"),
        "v3_checksum_as_v2": _sup("v3_checksum_as_v2", "flag", "keepalived >= 2.2.8"),
        "strict_mode": _approx(
            None, "only its no_accept part: accept = false unless accept is given", "flag"
        ),
        "garp_master_refresh_repeat": _approx(None, "one GARP/NA per refresh"),
        "garp_lower_prio_delay": _sup("garp_lower_prio_delay", "float"),
        "check_unicast_src": _approx(None, "unicast adverts are always checked against unicast_peer", "flag"),
        "unicast_ttl": _ign("adverts always carry TTL 255 (RFC 5798 §5.1.1.3)"),
        "unicast_fault_no_peer": _ign("an empty unicast_peer list means multicast"),
        "notify_deleted": _ign("instances removed by a reload run notify_stop"),
        "notify_master_rx_lower_pri": _ign("not implemented; see conflict_detection / notify_conflict"),
        "notify_priority_changes": _sup(
            "notify_priority_changes",
            "flag",
            "MASTER_PRIORITY / BACKUP_PRIORITY FIFO lines for this instance",
        ),
        "higher_prio_send_advert": _ign("not implemented; see conflict_detection"),
        "skip_check_adv_addr": _ign("the advert's address list is always checked (RFC 5798 §6.4.3)"),
        "native_ipv6": _ign("IPv6 instances are always native VRRPv3"),
        "track_src_ip": _ign("not implemented"),
        "promote_secondaries": _ign("not implemented: set net.ipv4.conf.IF.promote_secondaries yourself"),
        "smtp_alert": _ign(_NO_SMTP),
        "debug": _ign("use `pyvrrp run --log-level debug`"),
        "kernel_rx_buf_size": _ign(_TUNING),
        "linkbeat_use_polling": _ign("pyvrrp always follows netlink link events"),
        "mcast_dst_ip": _ref("pyvrrp uses the RFC multicast group only"),
        "track_process": _sup("track_process", "track_list"),
        "track_bfd": _ref("BFD is not implemented"),
        "no_virtual_ipaddress": _sup("no_virtual_ipaddress", "flag", "an instance without VIPs, on purpose"),
        "garp_extra_if": _ref("GARP on non-VRRP interfaces is not implemented"),
        "old_unicast_checksum": _ref("the pre-1.3.8 unicast checksum is not implemented"),
        "use_vmac": _sup(
            "use_vmac",
            "vmac",
            "`use_vmac [NAME] [MAC]`: a private-mode macvlan (default vrrp.VRID, 00:00:5e:00:01:VRID) "
            "carries the VIPs and sends the adverts",
        ),
        "vmac_xmit_base": _sup(
            "vmac_xmit_base", "flag", "adverts on the base interface, VIPs on the macvlan"
        ),
        "use_vmac_addr": _ref(
            "a macvlan per VIP interface is not implemented; use_vmac puts the instance's VIPs on its macvlan"
        ),
        "use_ipvlan": _ref("ipvlan is not implemented"),
        "virtual_routes": _sup(
            "virtual_routes",
            "routes",
            "`[TYPE] [src IP] DEST [via GW] [dev IF] [scope S] [table N] [metric N] [onlink] [no_track]`; "
            "other options are refused by name",
        ),
        "virtual_rules": _sup(
            "virtual_rules",
            "rules",
            "`[from P] [to P] [iif IF] [oif IF] [fwmark N[/M]] [table N] [priority N] [no_track]`; "
            "other options are refused by name",
        ),
        "lvs_sync_daemon_interface": _sup(
            None,
            "lvs_sync_daemon",
            "deprecated form of global_defs `lvs_sync_daemon IF INSTANCE` (a warning, as in keepalived); "
            "the first sync daemon line of the file counts, later ones are ignored with a warning",
        ),
        "vrf": _ref("VRFs are not implemented"),
    },
    "vrrp_sync_group": {
        "group": _sup("group", "names"),
        "notify_master": _sup("notify_master", "script"),
        "notify_backup": _sup("notify_backup", "script"),
        "notify_fault": _sup("notify_fault", "script"),
        "notify_stop": _sup("notify_stop", "script"),
        "notify": _sup("notify", "script"),
        "track_interface": _sup("track_interface", "track_list"),
        "track_script": _sup("track_script", "track_list"),
        "track_file": _sup("track_file", "track_list"),
        "notify_priority_changes": _ign("priority changes are in `pyvrrp state` and the logs"),
        "sync_group_tracking_weight": _ign("tracking weights of sync group members always apply"),
        "global_tracking": _ign("tracking weights of sync group members always apply"),
        "smtp_alert": _ign(_NO_SMTP),
        "track_process": _sup("track_process", "track_list"),
        "track_bfd": _ref("BFD is not implemented"),
    },
    "virtual_server_group": {},  # value block: `IP[-last] PORT` or `fwmark N` lines (see _vsg)
    "virtual_server": {
        "delay_loop": _sup("delay_loop", "float"),
        "lvs_sched": _sup("lvs_sched", "lower"),
        "lb_algo": _sup("lvs_sched", "lower", "old name of lvs_sched"),
        "lvs_method": _sup("lvs_method", "lvs_method", "default NAT, as keepalived"),
        "lb_kind": _sup("lvs_method", "lvs_method", "old name of lvs_method"),
        "protocol": _sup("protocol", "upper", "default UDP, as keepalived 2.2.7 (a warning says so)"),
        "persistence_timeout": _sup("persistence_timeout", "persistence", "default 360 s without value"),
        "persistence_granularity": _sup("persistence_granularity"),
        "persistence_engine": _ref("IPVS persistence engines (sip) are not implemented"),
        "quorum": _sup("quorum", "int"),
        "hysteresis": _sup("hysteresis", "int"),
        "quorum_up": _sup("quorum_up", "script"),
        "quorum_down": _sup("quorum_down", "script"),
        "sorry_server": _sup("sorry_server", "words"),
        "sorry_server_inhibit": _sup("sorry_server_inhibit", "flag"),
        "sorry_server_lvs_method": _sup("sorry_server_lvs_method", "lvs_method"),
        "inhibit_on_failure": _sup("inhibit_on_failure", "flag"),
        "alpha": _sup("alpha", "flag"),
        "omega": _sup("omega", "flag"),
        "ha_suspend": _sup("ha_suspend", "flag"),
        "virtualhost": _sup("virtualhost"),
        "ops": _sup("ops", "flag"),
        "real_server": _sup("real_server", "block"),
        "ip_family": _ign("the family follows the addresses"),
        "smtp_alert": _ign(_NO_SMTP),
        "snmp_name": _ign(_NO_SNMP),
        "flag-1": _ref("scheduler flags are not implemented"),
        "flag-2": _ref("scheduler flags are not implemented"),
        "flag-3": _ref("scheduler flags are not implemented"),
        "sh-port": _ref("scheduler flags are not implemented"),
        "sh-fallback": _ref("scheduler flags are not implemented"),
        "mh-port": _ref("scheduler flags are not implemented"),
        "mh-fallback": _ref("scheduler flags are not implemented"),
        "connect_timeout": _approx(
            None, "checker default set on the virtual server is applied to each checker"
        ),
        "retry": _approx(None, "checker default set on the virtual server is applied to each checker"),
        "delay_before_retry": _approx(None, "checker default applied to each checker"),
        "warmup": _approx(None, "checker default applied to each checker"),
    },
    "real_server": {
        "weight": _sup("weight", "int"),
        "lvs_method": _sup("lvs_method", "lvs_method"),
        "inhibit_on_failure": _sup("inhibit_on_failure", "flag"),
        "notify_up": _sup("notify_up", "script"),
        "notify_down": _sup("notify_down", "script"),
        "TCP_CHECK": _sup("tcp_check", "checker"),
        "HTTP_GET": _sup("http_get", "checker"),
        "SSL_GET": _sup("ssl_get", "checker"),
        "MISC_CHECK": _sup("misc_check", "checker"),
        "PING_CHECK": _sup("ping_check", "checker"),
        "DNS_CHECK": _sup("dns_check", "checker"),
        "SMTP_CHECK": _approx(
            "tcp_check",
            "checked as TCP_CHECK (connect to the SMTP port, default 25; no HELO dialogue)",
            "checker",
        ),
        "UDP_CHECK": _ref("UDP_CHECK is not implemented; use a MISC_CHECK script"),
        "FILE_CHECK": _ref("FILE_CHECK is not implemented; use a MISC_CHECK script"),
        "BFD_CHECK": _ref("BFD is not implemented"),
        "alpha": _approx(None, "per-server alpha: the virtual server's alpha applies", "flag"),
        "uthreshold": _sup("uthreshold", "int", "maximum connections (IPVS upper threshold)"),
        "lthreshold": _sup("lthreshold", "int", "connections below which the server is used again"),
        "smtp_alert": _ign(_NO_SMTP),
        "virtualhost": _approx(None, "applied to this server's HTTP_GET/SSL_GET checkers"),
        "connect_timeout": _approx(None, "checker default set on the real server is applied to each checker"),
        "retry": _approx(None, "checker default set on the real server is applied to each checker"),
        "delay_before_retry": _approx(None, "checker default applied to each checker"),
        "warmup": _approx(None, "checker default applied to each checker"),
        "delay_loop": _approx(None, "applied to each checker of this server"),
    },
    "checker": {  # keywords every checker block accepts (MISC_CHECK too)
        "retry": _sup("retry", "int"),
        "delay_before_retry": _sup("delay_before_retry", "float"),
        "warmup": _sup("warmup", "float"),
        "delay_loop": _sup("delay_loop", "float"),
        "alpha": _ign("per-checker alpha: the virtual server's alpha applies"),
        "log_all_failures": _ign("every checker failure is logged"),
    },
    "connect": {  # connection options of TCP_CHECK, HTTP_GET, SSL_GET, PING_CHECK, DNS_CHECK
        "connect_ip": _sup("connect_ip"),
        "connect_port": _sup("connect_port", "int"),
        "bindto": _sup("bindto"),
        "bind_port": _sup("bind_port", "int"),
        "bind_if": _ign("the route to connect_ip picks the interface"),
        "connect_timeout": _sup("connect_timeout", "float"),
        "fwmark": _ref("marking checker packets is not implemented"),
    },
    "HTTP_GET": {  # also SSL_GET
        "url": _sup("url", "block"),
        "nb_get_retry": _sup("retry", "int", "old name of retry"),
        "virtualhost": _sup("virtualhost"),
        "http_protocol": _ign("HTTP/1.1 with Host header is always used"),
        "fast_recovery": _ign("failed servers are always checked at delay_before_retry"),
        "enable_sni": _sup("enable_sni", "flag"),
        "sni_name": _ref("a separate SNI name is not implemented"),
        "tls_compliant": _ign(_NOT_NEEDED),
    },
    "url": {
        "path": _sup("path"),
        "digest": _sup("digest"),
        "status_code": _sup("status_code", "status_codes", "ranges `200-299` expand to lists"),
        "virtualhost": _approx(None, "per-url virtualhost: the checker's virtualhost applies"),
        "regex": _sup("regex"),
        "regex_no_match": _sup("regex_no_match", "flag"),
        "regex_options": _ign("Python `re` semantics are used"),
        "regex_stack": _ign(_NOT_NEEDED),
        "regex_min_offset": _ign(_NOT_NEEDED),
        "regex_max_offset": _ign(_NOT_NEEDED),
    },
    "MISC_CHECK": {
        "misc_path": _sup("misc_path", "cmdline"),
        "misc_timeout": _sup("misc_timeout", "float"),
        "misc_dynamic": _sup("misc_dynamic", "flag"),
        "user": _ign("scripts run as script_user / the daemon's user"),
    },
    "DNS_CHECK": {
        "type": _sup("type", "upper"),
        "name": _sup("name"),
    },
    "SMTP_CHECK": {
        "helo_name": _ign("no HELO dialogue (approximated by TCP_CHECK)"),
        "host": _approx(None, "only the first host's connect_ip/connect_port/bindto is checked", "block"),
    },
    "TCP_CHECK": {},
    "PING_CHECK": {},
}

#: Words keepalived 2.2.7 does not know ("Unknown keyword") that real configs carry: what
#: each was, for the warning.  keepalived ignores them; so does pyvrrp.
_OBSOLETE: dict[str, str] = {
    "nat_mask": "an LVS-NAT netmask of keepalived 1.x, without effect since; remove it",
    "net_mask": "a misspelt nat_mask (a keepalived 1.x LVS-NAT option without effect since); remove it",
    "lvs_id": "the keepalived 1.x name of router_id; use router_id",
    "nb_get_retry": "only HTTP_GET/SSL_GET know this old name; use retry",
    "notify_primary": "keepalived 2.2.7 has no notify_primary, so this script does not run; "
    "use notify_master",
    "lvs_sync_daemon_inteface": "a misspelt lvs_sync_daemon_interface: no IPVS sync daemon is started; "
    "spell it lvs_sync_daemon_interface (or use global_defs lvs_sync_daemon) to run one",
    "ha_suspend": "a virtual_server keyword, not a vrrp_instance one",
}

#: A likely misspelling of one of these is an error, not a warning: keepalived would ignore
#: it and run without the VIPs, peers, authentication or block it carries.
_LOAD_BEARING = frozenset(
    {
        "virtual_ipaddress",
        "virtual_ipaddress_excluded",
        "unicast_peer",
        "authentication",
        "auth_pass",
        "auth_type",
        "virtual_routes",
        "virtual_rules",
        "static_ipaddress",
        "static_routes",
        "static_rules",
        "vrrp_instance",
        "virtual_server",
        "real_server",
        "vrrp_sync_group",
    }
)

# Blocks whose keywords may appear as a `{}` block (others are value keywords).
_BLOCK_CONVS = {"block", "vips", "peers", "track_list", "names", "auth", "checker", "routes", "rules"}
_AUTH_KEYWORDS = {"auth_type", "auth_pass"}


# ----------------------------------------------------------------------------------------
# Walker
# ----------------------------------------------------------------------------------------


def _q(key: str) -> str:
    """A key as it appears in a dotted path (TOML dotted-key syntax, as errors.format_path)."""
    return format_path((key,))


_Handler = Callable[["_Ctx", str, Node, dict[str, Any]], None]


class _Ctx:
    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.locs: dict[str, tuple[str, int]] = {}
        self.syncd: list[tuple[str, Node, dict[str, Any]]] = []
        """Sync daemon lines in file order: (key path, node, lvs_sync_daemon dict); the first counts."""

    def error(self, path: str, msg: str, node: Node | None) -> None:
        self.issues.append(
            Issue("error", path, msg, node.file if node else None, node.line if node else None)
        )

    def warn(self, path: str, msg: str, node: Node | None) -> None:
        self.issues.append(
            Issue("warning", path, msg, node.file if node else None, node.line if node else None)
        )

    def warn_at(self, path: str, msg: str) -> None:
        """A warning at the line :meth:`mark` recorded for ``path`` (none recorded: no line)."""
        loc = self.locs.get(path)
        self.issues.append(Issue("warning", path, msg, loc[0] if loc else None, loc[1] if loc else None))

    def mark(self, path: str, node: Node) -> None:
        self.locs.setdefault(path, (node.file, node.line))

    def unknown(self, path: str, node: Node, where: str, known: Iterable[str]) -> None:
        """A keyword keepalived does not know in ``where``: it ignores it, and so do we (a warning).

        The warning names the keyword meant when one is close (difflib) or when the word is a
        known obsolete spelling.  A likely misspelling of a keyword that carries addresses,
        peers or authentication is an error instead: keepalived would run without that block.
        """
        kw = node.keyword
        hint = _OBSOLETE.get(kw)
        close = difflib.get_close_matches(kw, sorted(set(known)), n=1, cutoff=0.6)
        meant = close[0] if close else None
        if meant in _LOAD_BEARING and hint is None:
            self.error(
                path,
                f"unknown keyword '{kw}' in {where}: did you mean '{meant}'? keepalived ignores unknown "
                f"keywords and would run without this {'block' if node.children is not None else 'line'}; "
                "fix the spelling",
                node,
            )
            return
        what = f"unknown keyword '{kw}' in {where} ignored (keepalived ignores it too)"
        if hint:
            what += f": {hint}"
        elif meant:
            what += f"; did you mean '{meant}'?"
        self.warn(path, what, node)


def _need_arg(ctx: _Ctx, path: str, node: Node) -> str | None:
    if not node.args:
        ctx.error(path, f"'{node.keyword}' needs a value", node)
        return None
    return node.args[0]


_TRUE = {"true", "on", "yes"}
_FALSE = {"false", "off", "no"}


def _conv_scalar(ctx: _Ctx, path: str, node: Node, conv: str) -> Any:
    """Read a keyword's value; returns _SKIP when it could not be read (error recorded)."""
    if conv in ("flag", "min_garp"):
        if not node.args:
            return True
        a = node.args[0].lower()
        if a in _TRUE:
            return True
        if a in _FALSE:
            return False
        ctx.error(path, f"'{node.keyword}' takes no value or on/off, got {node.args[0]!r}", node)
        return _SKIP
    if conv == "false":
        return False
    if conv == "words":
        if not node.args:
            ctx.error(path, f"'{node.keyword}' needs a value", node)
            return _SKIP
        return " ".join(node.args)
    if conv == "cmdline":
        # vrrp_script `script`, `misc_path`: keepalived re-reads the whole raw line, so an
        # unquoted command with arguments is one command line.
        if not node.args:
            ctx.error(path, f"'{node.keyword}' needs a command", node)
            return _SKIP
        return " ".join(_requote(a) for a in node.args) if len(node.args) > 1 else node.args[0]
    if conv == "script":
        # notify*: the first (possibly quoted) word is the command line; the rest is
        # `username [groupname]` (keepalived.conf(5)).
        if not node.args:
            ctx.error(path, f"'{node.keyword}' needs a script", node)
            return _SKIP
        if len(node.args) > 1:
            ctx.warn(
                path,
                f"'{node.keyword}': run-as user {' '.join(node.args[1:])!r} is ignored "
                "(scripts run as script_user); quote the command if these were arguments",
                node,
            )
        return node.args[0]
    if conv == "none":
        return _SKIP  # read and reported (approximated); sets nothing
    if conv == "opt_str" and not node.args:
        return _SKIP  # `nftables` without a name: the default table
    if conv == "init_file" and not node.args:
        return 0
    if conv == "float_or_default":
        if not node.args:
            ctx.warn(
                path,
                f"'{node.keyword}' without a value: keepalived reports a missing parameter and keeps "
                "the default 0; so does pyvrrp",
                node,
            )
            return _SKIP
        conv = "float"
    if conv == "lvs_timeouts":
        return _lvs_timeouts(ctx, path, node)
    if conv == "fifo":
        return _fifo(ctx, path, node)
    val = _need_arg(ctx, path, node)
    if val is None:
        return _SKIP
    if len(node.args) > 1 and conv not in ("persistence", "weight", "init_file", "lvs_method"):
        ctx.warn(path, f"'{node.keyword}': extra words {' '.join(node.args[1:])!r} ignored", node)
    try:
        if conv == "int":
            return int(val, 10)
        if conv == "float":
            f = float(val)
            return int(f) if f.is_integer() and "." not in val else f
        if conv == "weight":
            return int(val, 10)
        if conv == "init_file":
            if "overwrite" in node.args:
                ctx.warn(path, "'init_file ... overwrite' approximated: an existing file is kept", node)
            return 0 if val == "overwrite" else int(val, 10)
        if conv == "persistence":
            return int(val, 10)
    except ValueError:
        ctx.error(path, f"'{node.keyword}': {val!r} is not a number", node)
        return _SKIP
    if conv == "upper":
        return val.upper()
    if conv == "lower":
        return val.lower()
    if conv == "lvs_method":
        up = val.upper()
        if up == "TUN" and len(node.args) > 1:
            ctx.warn(path, f"tunnel options {' '.join(node.args[1:])!r} ignored (plain IPIP)", node)
        return up
    return val


class _Skip:
    pass


_SKIP = _Skip()


def _requote(word: str) -> str:
    return word if word and not any(c in word for c in " \t'\"") else "'" + word.replace("'", "'\\''") + "'"


def _walk_block(
    ctx: _Ctx,
    block: str,
    path: str,
    node: Node,
    out: dict[str, Any],
    handlers: Mapping[str, _Handler] | None = None,
    extra_tables: tuple[str, ...] = (),
) -> None:
    """Apply KEYWORDS[block] (plus extra tables) to every child of ``node``."""
    tables = [KEYWORDS[block], *(KEYWORDS[t] for t in extra_tables)]
    for child in node.children or []:
        kw = child.keyword
        entry = next((t[kw] for t in tables if kw in t), None)
        cpath = f"{path}.{kw}"
        if entry is None:
            ctx.unknown(cpath, child, block, [k for t in tables for k in t])
            continue
        _apply(ctx, entry, block, cpath, child, out, handlers or {})


#: List blocks that real configs write on one line (`track_interface eth0`, `unicast_peer IP`).
_ONE_LINE_LISTS = {"track_list", "peers", "vips", "names"}


def _one_line_list(ctx: _Ctx, path: str, node: Node) -> Node:
    """``kw A B`` without braces, read as ``kw { A B }`` (one item), with a warning.

    keepalived 2.2.7 says "Block kw has extra parameters" and reads the lines that follow
    into the list, up to the next closing brace: with `authentication { ... }` after it, the
    instance loses its authentication (and, for unicast_peer, its peers).  pyvrrp reads what
    the author meant and says how keepalived differs, so both can be made to agree.
    """
    words = " ".join(node.args)
    ctx.warn(
        path,
        f"'{node.keyword} {words}' has no {{ }}: pyvrrp reads it as `{node.keyword} {{ {words} }}`; "
        "keepalived instead reads the lines that follow into this list (swallowing the next block, "
        "e.g. authentication): add the braces so both read it the same",
        node,
    )
    item = Node(node.args[0], node.args[1:], node.file, node.line)
    return Node(node.keyword, [], node.file, node.line, [item])


#: Blocks whose notify scripts keep the first of two lines (keepalived's vrrp_parser.c).
_FIRST_SCRIPT_WINS = ("vrrp_instance", "vrrp_sync_group")


def _apply(
    ctx: _Ctx,
    entry: Keyword,
    block: str,
    cpath: str,
    child: Node,
    out: dict[str, Any],
    handlers: Mapping[str, _Handler],
) -> None:
    kw = child.keyword
    if entry.status == "refused":
        ctx.error(cpath, f"'{kw}' is not supported by pyvrrp: {entry.note}", child)
        return
    if entry.status == "ignored":
        ctx.warn(cpath, f"'{kw}' ignored: {entry.note}", child)
        return
    if entry.status == "approximated":
        ctx.warn(cpath, f"'{kw}' approximated: {entry.note}", child)
    if entry.conv in _BLOCK_CONVS or kw in handlers:
        handler = handlers.get(kw) or _GENERIC_BLOCK.get(entry.conv)
        if handler is None:
            ctx.error(cpath, f"'{kw}' needs a block handler (pyvrrp bug)", child)
            return
        if child.children is None and entry.conv in _ONE_LINE_LISTS and child.args:
            child = _one_line_list(ctx, cpath, child)
        if child.children is None and entry.conv in _BLOCK_CONVS and entry.conv != "checker":
            ctx.error(cpath, f"'{kw}' needs a {{ }} block", child)
            return
        handler(ctx, cpath, child, out)
        return
    if child.children is not None:
        ctx.error(cpath, f"'{kw}' takes a value, not a {{ }} block", child)
        return
    if entry.conv == "vmac":
        _use_vmac(ctx, cpath, child, out)
        return
    if entry.conv == "script" and block in _FIRST_SCRIPT_WINS and entry.field in out:
        # keepalived: "(VI_1) notify_master script already specified - ignoring ..."
        ctx.warn(
            cpath,
            f"'{kw}' given again: the first ({out[entry.field]!r}) is kept and this one ignored, "
            "as keepalived does; remove one",
            child,
        )
        return
    val = _conv_scalar(ctx, cpath, child, entry.conv)
    if isinstance(val, _Skip):
        return
    if entry.field is None:
        # no model field of its own: kept for the post-processing in walk() (see _derived)
        out["_" + kw] = val
        return
    fpath = cpath.rsplit(".", 1)[0] + "." + entry.field
    ctx.mark(fpath, child)
    out[entry.field] = val
    if entry.conv == "weight" and "reverse" in child.args[1:]:
        out["weight_reverse"] = True


_MAC_WORD = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){4,5}$")


def _use_vmac(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``use_vmac [NAME] [MAC]`` (keepalived.conf(5)); a 5-octet MAC gets the VRID as its last octet."""
    base = path.rsplit(".", 1)[0]
    out["use_vmac"] = True
    ctx.mark(path, node)
    extra: list[str] = []
    for word in node.args:
        if _MAC_WORD.match(word) and "vmac_address" not in out:
            octets = [f"{int(o, 16):02x}" for o in word.split(":")]
            out["vmac_address"] = ":".join(octets) if len(octets) == 6 else ":".join(octets) + ":VRID"
            ctx.mark(f"{base}.vmac_address", node)
        elif "vmac_name" not in out and not _MAC_WORD.match(word):
            out["vmac_name"] = word
            ctx.mark(f"{base}.vmac_name", node)
        else:
            extra.append(word)
    if extra:
        ctx.error(path, f"'use_vmac' takes [NAME] [MAC], got the extra words {' '.join(extra)!r}", node)


# -- value blocks -------------------------------------------------------------------------

_VIP_OPTS_SUPPORTED = {"dev", "label", "scope", "brd", "broadcast"}
_VIP_FLAGS_IGNORED = {"-nodad", "nodad", "noprefixroute", "mngtmpaddr", "autojoin", "home"}


def _vips(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``virtual_ipaddress { ADDR[/LEN] [dev X] [label Y] [scope Z] [brd B] ... }``."""
    vips: list[dict[str, Any]] = []
    for i, line in enumerate(node.children or []):
        words = line.words()
        ipath = f"{path}[{i}]"
        if line.children is not None:
            ctx.error(ipath, "unexpected block in virtual_ipaddress", line)
            continue
        addr = words[0]
        try:
            iface = ipaddress.ip_interface(addr)
        except ValueError:
            ctx.error(ipath, f"{addr!r} is not an IP address", line)
            continue
        vip: dict[str, Any] = {"address": str(iface.ip) if "/" not in addr else str(iface)}
        j = 1
        while j < len(words):
            w = words[j]
            if w in _VIP_OPTS_SUPPORTED and j + 1 < len(words):
                vip["brd" if w == "broadcast" else w] = words[j + 1]
                j += 2
                continue
            if w == "no_track":
                vip["no_track"] = True
                j += 1
                continue
            if w in _VIP_FLAGS_IGNORED:
                ctx.warn(ipath, f"virtual_ipaddress option '{w}' ignored", line)
                j += 1
                continue
            if w in ("preferred_lft", "peer") and j + 1 < len(words):
                ctx.warn(ipath, f"virtual_ipaddress option '{w} {words[j + 1]}' ignored", line)
                j += 2
                continue
            if w == "use_vmac":
                ctx.error(
                    ipath,
                    "per-VIP use_vmac is not supported (a macvlan per VIP interface); "
                    "the instance's use_vmac puts its VIPs on its macvlan",
                    line,
                )
                j += 1
                continue
            ctx.error(ipath, f"unknown virtual_ipaddress option '{w}'", line)
            j += 1
        ctx.mark(ipath, line)
        vips.append(vip)
    ctx.mark(path, node)
    out[node.keyword] = vips


def _peers(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    peers: list[str] = []
    for i, line in enumerate(node.children or []):
        words = line.words()
        try:
            peers.append(str(ipaddress.ip_address(words[0])))
        except ValueError:
            ctx.error(f"{path}[{i}]", f"{words[0]!r} is not an IP address", line)
            continue
        if len(words) > 1:
            ctx.warn(f"{path}[{i}]", f"unicast_peer options {' '.join(words[1:])!r} ignored", line)
        ctx.mark(f"{path}[{i}]", line)
    ctx.mark(path, node)
    out["unicast_peer"] = peers


def _track_list(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``track_interface|track_script|track_file { NAME [weight W [reverse]] }``."""
    items: list[dict[str, Any]] = []
    for i, line in enumerate(node.children or []):
        words = line.words()
        item: dict[str, Any] = {"name": words[0]}
        rest = words[1:]
        if rest[:1] == ["weight"]:
            if len(rest) < 2:
                ctx.error(f"{path}[{i}]", "'weight' needs a value", line)
                continue
            try:
                item["weight"] = int(rest[1])
            except ValueError:
                ctx.error(f"{path}[{i}]", f"weight {rest[1]!r} is not an integer", line)
                continue
            if rest[2:3] == ["reverse"]:
                item["reverse"] = True
                rest = rest[3:]
            elif rest[2:3] == ["no_reverse"]:
                rest = rest[3:]
            else:
                rest = rest[2:]
        if rest:
            ctx.warn(f"{path}[{i}]", f"extra words {' '.join(rest)!r} ignored", line)
        ctx.mark(f"{path}[{i}]", line)
        items.append(item)
    ctx.mark(path, node)
    out[node.keyword] = items


def _names(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    names: list[str] = []
    for line in node.children or []:
        names.extend(line.words())
    ctx.mark(path, node)
    out["group"] = names


def _auth(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``authentication { auth_type PASS|AH; auth_pass X }`` (RFC 3768 §5.3.6, v2 only)."""
    auth: dict[str, Any] = {}
    for line in node.children or []:
        if line.keyword not in _AUTH_KEYWORDS:
            ctx.unknown(f"{path}.{line.keyword}", line, "authentication", _AUTH_KEYWORDS)
            continue
        val = _need_arg(ctx, f"{path}.{line.keyword}", line)
        if val is None:
            continue
        if line.keyword == "auth_type":
            auth["auth_type"] = val.upper()  # PASS, or AH (keepalived's IPsec AH form, proto/ah.py)
        else:
            auth["auth_pass"] = val  # longer than 8: models.check() warns (once)
        ctx.mark(f"{path}.{line.keyword}", line)
    ctx.mark(path, node)
    if auth:
        out["authentication"] = auth


def _lines(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``virtual_routes`` / ``virtual_rules`` / ``static_*``: one entry per line, read by the model.

    The model (:class:`~pyvrrp.config.models.Route` / ``Rule``) parses keepalived's syntax and
    refuses an option it does not know by name, at this line.  A route with a word keepalived
    itself does not know (it reads it as a destination, fails, logs "unknown route keyword"
    and skips the route) is skipped with a warning, as keepalived does.
    """
    items: list[str] = []
    routes = node.keyword in ("virtual_routes", "static_routes")
    for line in node.children or []:
        ipath = f"{path}[{len(items)}]"
        if line.children is not None:
            ctx.error(ipath, f"unexpected block in {node.keyword}", line)
            continue
        words = line.words()
        bad = _unknown_route_word(words) if routes else None
        if bad is not None:
            ctx.warn(
                path,
                f"unknown route keyword {bad!r}: keepalived skips the route '{' '.join(words)}', and so "
                "does pyvrrp (the other routes load); fix the line if the route is needed",
                line,
            )
            continue
        ctx.mark(ipath, line)
        items.append(" ".join(words))
    ctx.mark(path, node)
    out[node.keyword] = items


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: keepalived's route keywords that take a value (vrrp_iproute.c alloc_route);
#: ``_KA_ROUTE_LOCKABLE`` may put ``lock`` before the value.
_KA_ROUTE_ARGS = _wordset(
    "src via gw from tos dsfield table protocol scope metric priority preference dev oif expires mtu "
    "hoplimit advmss rtt rttvar reordering window cwnd ssthresh realms rto_min initcwnd initrwnd "
    "features quickack congctl pref ttl-propagate fastopen_no_cookie or track_group"
)
_KA_ROUTE_LOCKABLE = _wordset("mtu advmss rtt rttvar reordering cwnd ssthresh rto_min")
_KA_ROUTE_FLAGS = _wordset("inet inet6 onlink no_track")
_KA_ROUTE_TYPES = _wordset(
    "unicast local broadcast anycast multicast blackhole unreachable prohibit throw nat xresolve"
)


def _unknown_route_word(words: list[str]) -> str | None:
    """The first word of a route line that keepalived cannot read (None: it reads them all).

    keepalived takes any word that is not one of its keywords as ``[to] [TYPE] DEST``; one
    that is no prefix is "unknown route keyword" and the route is skipped.  ``nexthop`` and
    ``encap`` end the scan: their syntax is the model's to refuse, by name.
    """
    i = 0
    while i < len(words):
        w = words[i]
        if w in _KA_ROUTE_FLAGS:
            i += 1
            continue
        if w in ("nexthop", "encap"):
            return None
        if w in _KA_ROUTE_ARGS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            extra = (w in _KA_ROUTE_LOCKABLE and nxt == "lock") or (
                w in ("via", "gw") and nxt in ("inet", "inet6")
            )
            i += 2 + int(extra)
            continue
        if w == "to":
            i += 1
        if i < len(words) and words[i] in _KA_ROUTE_TYPES:
            i += 1
        dest = words[i] if i < len(words) else w
        if dest != "default":
            try:
                ipaddress.ip_network(dest, strict=False)
            except ValueError:
                return dest
        i += 1
    return None


def _lvs_timeouts(ctx: _Ctx, path: str, node: Node) -> Any:
    """``lvs_timeouts [tcp S] [tcpfin S] [udp S]`` → ``{tcp, tcpfin, udp}``."""
    words = list(node.args)
    out: dict[str, Any] = {}
    while words:
        w = words.pop(0)
        if w not in ("tcp", "tcpfin", "udp"):
            ctx.error(path, f"lvs_timeouts: unknown word {w!r} (known: tcp, tcpfin, udp)", node)
            return _SKIP
        if not words or not words[0].isdigit():
            ctx.error(path, f"lvs_timeouts: {w!r} needs a number of seconds", node)
            return _SKIP
        out[w] = int(words.pop(0))
    if not out:
        ctx.error(path, "'lvs_timeouts' needs at least one of tcp, tcpfin, udp", node)
        return _SKIP
    return out


_SYNCD_OPTIONS = {"id": "sync_id", "maxlen": "maxlen", "port": "port", "ttl": "ttl", "group": "group"}


def _lvs_sync_daemon(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """global_defs ``lvs_sync_daemon IF [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group A]``.

    keepalived >= 1.2.20 (global_parser.c lvs_syncd_handler): the third word is the instance
    (``inst`` may precede it); a bare number after the instance is the old SYNC_ID position
    (keepalived asks for ``id``; so do we, with a warning).  keepalived ignores a bad value
    and runs on (a sync id "defaulting to vrid" can differ between the two directors): here a
    bad value or an unknown word is an error naming this line.
    """
    if node.children is not None:
        ctx.error(path, "'lvs_sync_daemon' takes `IF [INSTANCE] [id N] ...`, not a { } block", node)
        return
    words = list(node.args)
    if not words:
        ctx.error(path, "'lvs_sync_daemon' needs an interface: `lvs_sync_daemon IF [INSTANCE] [id N]`", node)
        return
    spec: dict[str, Any] = {"interface": words[0]}
    i = 1
    ok = True
    while i < len(words):
        w = words[i]
        if w == "inst" or w in _SYNCD_OPTIONS:
            key = "instance" if w == "inst" else _SYNCD_OPTIONS[w]
            if i + 1 >= len(words):
                ctx.error(path, f"lvs_sync_daemon: {w!r} needs a value", node)
                return
            value: Any = words[i + 1]
            if key not in ("instance", "group"):
                if not value.isdigit():
                    ctx.error(f"{path}.{key}", f"lvs_sync_daemon {w}: {value!r} is not a number", node)
                    ok = False
                    i += 2
                    continue
                value = int(value)
            if key in spec:
                ctx.warn(path, f"lvs_sync_daemon: {w!r} given twice; the last one counts", node)
            spec[key] = value
            i += 2
            continue
        if i == 1 and "instance" not in spec:
            spec["instance"] = w
        elif i == 2 and w.isdigit() and "sync_id" not in spec and "instance" in spec:
            ctx.warn(
                path,
                f"lvs_sync_daemon: a bare sync id ({w}) after the instance is the old syntax; write "
                f"`id {w}` (keepalived asks for it too)",
                node,
            )
            spec["sync_id"] = int(w)
        else:
            known = "inst, " + ", ".join(_SYNCD_OPTIONS)
            ctx.error(path, f"lvs_sync_daemon: unknown word {w!r} (known: {known})", node)
            ok = False
        i += 1
    if ok:
        ctx.syncd.append((path, node, spec))


def _syncd_interface_handler(instance: str) -> _Handler:
    """vrrp_instance ``lvs_sync_daemon_interface IF``: keepalived's pre-1.2.20 form of
    ``lvs_sync_daemon IF INSTANCE`` (vrrp_parser.c: "deprecated. Please use global lvs_sync_daemon")."""

    def handler(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
        if node.children is not None or len(node.args) != 1:
            ctx.error(path, "'lvs_sync_daemon_interface' takes one interface name", node)
            return
        iface = node.args[0]
        ctx.warn(
            path,
            f"'lvs_sync_daemon_interface' is deprecated (keepalived warns too): write "
            f"`lvs_sync_daemon {iface} {instance}` in global_defs",
            node,
        )
        ctx.syncd.append((path, node, {"interface": iface, "instance": instance}))

    return handler


def _sync_daemon_choice(ctx: _Ctx, model: dict[str, Any]) -> None:
    """keepalived runs one sync daemon: the first line that asks for one counts, later ones are
    ignored ("has already been specified as IF - ignoring"), with a warning here too."""
    if not ctx.syncd:
        return
    _path, node, spec = ctx.syncd[0]
    for later_path, later, _spec in ctx.syncd[1:]:
        ctx.warn(
            later_path,
            f"a sync daemon is already configured ({node.keyword} {' '.join(node.args)} at "
            f"{node.file}:{node.line}): ignored, as keepalived does (it runs one sync daemon)",
            later,
        )
    target = "global_defs.lvs_sync_daemon"
    ctx.mark(target, node)
    for key in spec:
        ctx.mark(f"{target}.{key}", node)
    model.setdefault("global_defs", {})["lvs_sync_daemon"] = spec


_GENERIC_BLOCK: dict[str, _Handler] = {
    "routes": _lines,
    "rules": _lines,
    "vips": _vips,
    "peers": _peers,
    "track_list": _track_list,
    "names": _names,
    "auth": _auth,
}


# -- named blocks -------------------------------------------------------------------------


def _named(ctx: _Ctx, node: Node, section: str) -> str | None:
    if not node.args:
        ctx.error(section, f"'{node.keyword}' needs a name", node)
        return None
    if node.children is None:
        ctx.error(f"{section}.{_q(node.args[0])}", f"'{node.keyword}' needs a {{ }} block", node)
        return None
    if len(node.args) > 1:
        ctx.warn(f"{section}.{_q(node.args[0])}", f"extra words {' '.join(node.args[1:])!r} ignored", node)
    return node.args[0]


def _into(ctx: _Ctx, model: dict[str, Any], section: str, name: str, node: Node) -> dict[str, Any] | None:
    table = model.setdefault(section, {})
    if name in table:
        ctx.error(f"{section}.{_q(name)}", f"duplicate {node.keyword} '{name}'", node)
        return None
    table[name] = {}
    ctx.mark(f"{section}.{_q(name)}", node)
    return table[name]  # type: ignore[no-any-return]


def _vrrp_instance(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    name = _named(ctx, node, "vrrp_instance")
    if name is None:
        return
    out = _into(ctx, model, "vrrp_instance", name, node)
    if out is None:
        return
    # keepalived defaults written out explicitly (they differ from RFC 5798 §6.1 for accept)
    out.update({"state": "BACKUP", "preempt": True})  # accept: see _derived()
    handlers = {"lvs_sync_daemon_interface": _syncd_interface_handler(name)}
    _walk_block(ctx, "vrrp_instance", f"vrrp_instance.{_q(name)}", node, out, handlers)
    if out.get("state") not in ("MASTER", "BACKUP"):
        ctx.error(
            f"vrrp_instance.{_q(name)}.state", f"state must be MASTER or BACKUP, got {out['state']!r}", node
        )


def _simple_named(section: str, block: str) -> Callable[[_Ctx, Node, dict[str, Any]], None]:
    def handler(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
        name = _named(ctx, node, section)
        if name is None:
            return
        out = _into(ctx, model, section, name, node)
        if out is not None:
            _walk_block(ctx, block, f"{section}.{_q(name)}", node, out)

    return handler


def _fifo(ctx: _Ctx, path: str, node: Node) -> dict[str, str] | _Skip:
    """``notify_fifo FIFO [USER [GROUP]]`` (and the vrrp_/lvs_ forms)."""
    if not node.args:
        ctx.error(path, f"'{node.keyword}' needs the path of a FIFO", node)
        return _SKIP
    if len(node.args) > 3:
        ctx.warn(path, f"'{node.keyword}': extra words {' '.join(node.args[3:])!r} ignored", node)
    out = {"path": node.args[0]}
    for key, word in zip(("user", "group"), node.args[1:3], strict=False):
        out[key] = word
    return out


_FIFO_KEYWORDS = ("notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo")


def _fifo_scripts(ctx: _Ctx, node: Node, out: dict[str, Any]) -> None:
    """Attach ``*_fifo_script`` to its FIFO; keepalived runs no script without a FIFO."""
    for kw in _FIFO_KEYWORDS:
        script = out.pop(f"_{kw}_script", None)
        if script is None:
            continue
        if isinstance(out.get(kw), dict):
            out[kw]["script"] = script
            continue
        line = next((c for c in node.children or [] if c.keyword == f"{kw}_script"), node)
        ctx.warn(
            f"global_defs.{kw}_script",
            f"'{kw}_script' without '{kw}': ignored, as keepalived does (the script reads the FIFO)",
            line,
        )


def _global_defs(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    if node.children is None:
        ctx.error("global_defs", "'global_defs' needs a { } block", node)
        return
    out = model.setdefault("global_defs", {})
    ctx.mark("global_defs", node)
    _walk_block(ctx, "global_defs", "global_defs", node, out, {"lvs_sync_daemon": _lvs_sync_daemon})
    _fifo_scripts(ctx, node, out)


# -- LVS ----------------------------------------------------------------------------------


def _vs_key(ctx: _Ctx, node: Node) -> str | None:
    """``IP PORT``, ``fwmark N`` or ``group NAME``; words after those are ignored, as keepalived does."""
    a = node.args
    if len(a) < 2:
        ctx.error("virtual_server", "virtual_server needs `IP PORT`, `fwmark N` or `group NAME`", node)
        return None
    head = " ".join(a)
    if a[0] == "fwmark":
        if not a[1].isdigit():
            ctx.error(
                "virtual_server",
                f"cannot read virtual_server {head!r}: fwmark {a[1]!r} is not a number",
                node,
            )
            return None
        key = f"fwmark:{a[1]}"
    elif a[0] == "group":
        key = f"group:{a[1]}"
    else:
        try:
            ip = ipaddress.ip_address(a[0])
        except ValueError:
            ctx.error(
                "virtual_server", f"cannot read virtual_server {head!r}: {a[0]!r} is not an IP address", node
            )
            return None
        if not a[1].isdigit() or not 0 <= int(a[1]) <= 65535:
            ctx.error(
                "virtual_server",
                f"cannot read virtual_server {head!r}: {a[1]!r} is not a port (0..65535)",
                node,
            )
            return None
        key = f"[{ip}]:{a[1]}" if ip.version == 6 else f"{ip}:{a[1]}"
    if len(a) > 2:
        ctx.warn(
            f"virtual_server.{_q(key)}",
            f"extra words {' '.join(a[2:])!r} after {' '.join(a[:2])!r} ignored "
            "(keepalived ignores them too; an IPVS service is not bound to a device)",
            node,
        )
    return key


def _virtual_server(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    if node.children is None:
        ctx.error("virtual_server", "'virtual_server' needs a { } block", node)
        return
    key = _vs_key(ctx, node)
    if key is None:
        return
    out = _into(ctx, model, "virtual_server", key, node)
    if out is None:
        return
    path = f"virtual_server.{_q(key)}"
    out["lvs_method"] = "NAT"  # keepalived default (ipvsadm defaults to DR)
    out["real_server"] = []
    inherited: dict[str, Any] = {}
    rs_nodes: list[Node] = []
    for child in node.children:
        if child.keyword == "real_server":
            rs_nodes.append(child)
            continue
        entry = KEYWORDS["virtual_server"].get(child.keyword)
        cpath = f"{path}.{child.keyword}"
        if entry is None:
            ctx.unknown(cpath, child, "virtual_server", [*KEYWORDS["virtual_server"], "real_server"])
            continue
        if entry.field is None and entry.status == "approximated":
            ctx.warn(cpath, f"'{child.keyword}' approximated: {entry.note}", child)
            val = _conv_scalar(ctx, cpath, child, "float" if child.keyword != "retry" else "int")
            if not isinstance(val, _Skip):
                inherited[child.keyword] = val
            continue
        if child.keyword == "persistence_timeout" and not child.args:
            out["persistence_timeout"] = 360
            ctx.mark(f"{path}.persistence_timeout", child)
            continue
        if child.keyword in ("lvs_sched", "lb_algo") and child.args and child.children is None:
            from pyvrrp.config.lvs import SCHEDULERS

            if child.args[0].lower() not in SCHEDULERS:
                ctx.warn(
                    cpath,
                    f"{child.args[0]!r} is not an IPVS scheduler: ignored, as keepalived does "
                    f'("Invalid lvs_scheduler"), so the default wlc is used; known: {", ".join(SCHEDULERS)}',
                    child,
                )
                continue
        if child.keyword == "sorry_server":
            if len(child.args) not in (1, 2):
                ctx.error(cpath, "sorry_server needs `IP [PORT]`", child)
                continue
            out["sorry_server"] = " ".join(child.args)
            ctx.mark(cpath, child)
            continue
        _apply(ctx, entry, "virtual_server", cpath, child, out, {})
    proto_node = next((c for c in node.children if c.keyword == "protocol"), None)
    if proto_node is None and not key.startswith("fwmark:"):
        # measured: keepalived 2.2.7 -t says "no protocol set - defaulting to UDP"
        out["protocol"] = "UDP"
        ctx.mark(f"{path}.protocol", node)
        ctx.warn(
            f"{path}.protocol",
            "no 'protocol': keepalived defaults to UDP and so does pyvrrp here; add `protocol TCP` "
            "for a TCP service",
            node,
        )
    if key.startswith("fwmark:") and proto_node is not None:
        ctx.warn(
            f"{path}.protocol",
            "'protocol' has no effect on fwmark services (keepalived ignores it too)",
            proto_node,
        )
    vs_virtualhost = out.get("virtualhost")
    for i, rs in enumerate(rs_nodes):
        _real_server(ctx, rs, f"{path}.real_server[{i}]", out["real_server"], dict(inherited), vs_virtualhost)
    ctx.mark(f"{path}.real_server", node)


def _real_server(
    ctx: _Ctx,
    node: Node,
    path: str,
    servers: list[dict[str, Any]],
    inherited: dict[str, Any],
    vs_virtualhost: str | None,
) -> None:
    ctx.mark(path, node)
    if node.children is None:
        ctx.error(path, "'real_server' needs a { } block", node)
        return
    if not 1 <= len(node.args) <= 2:
        ctx.error(path, "real_server needs `IP [PORT]`", node)
        return
    rs: dict[str, Any] = {"ip": node.args[0]}
    if len(node.args) == 2:
        try:
            rs["port"] = int(node.args[1])
        except ValueError:
            ctx.error(path, f"port {node.args[1]!r} is not an integer", node)
            return
    checkers: list[tuple[Keyword, Node]] = []
    virtualhost = vs_virtualhost
    for child in node.children:
        entry = KEYWORDS["real_server"].get(child.keyword)
        cpath = f"{path}.{child.keyword}"
        if entry is None:
            ctx.unknown(cpath, child, "real_server", KEYWORDS["real_server"])
            continue
        if entry.conv == "checker":
            if entry.status == "refused":
                ctx.error(cpath, f"'{child.keyword}' is not supported by pyvrrp: {entry.note}", child)
                continue
            if entry.status == "approximated":
                ctx.warn(cpath, f"'{child.keyword}' approximated: {entry.note}", child)
            checkers.append((entry, child))
            continue
        if entry.field is None and entry.status == "approximated":
            ctx.warn(cpath, f"'{child.keyword}' approximated: {entry.note}", child)
            if child.keyword == "virtualhost":
                virtualhost = child.args[0] if child.args else None
            elif child.keyword != "alpha":
                val = _conv_scalar(ctx, cpath, child, "int" if child.keyword == "retry" else "float")
                if not isinstance(val, _Skip):
                    inherited[child.keyword] = val
            continue
        _apply(ctx, entry, "real_server", cpath, child, rs, {})
    for entry, child in checkers:
        _checker(ctx, child, entry, f"{path}.{entry.field}", rs, inherited, virtualhost)
    servers.append(rs)


def _checker(
    ctx: _Ctx,
    node: Node,
    entry: Keyword,
    path: str,
    rs: dict[str, Any],
    inherited: dict[str, Any],
    virtualhost: str | None,
) -> None:
    kind = node.keyword
    field = entry.field
    assert field is not None
    lst: list[dict[str, Any]] = rs.setdefault(field, [])
    cpath = f"{path}[{len(lst)}]"
    chk: dict[str, Any] = {
        k: v for k, v in inherited.items() if not (kind == "MISC_CHECK" and k == "connect_timeout")
    }
    ctx.mark(cpath, node)
    own = "HTTP_GET" if kind == "SSL_GET" else kind
    handlers: dict[str, _Handler] = {
        "url": _url,
        "host": _smtp_host,
    }
    if kind == "SMTP_CHECK":
        chk.setdefault("connect_port", 25)
    extra = (own,) if kind == "MISC_CHECK" else ("connect", own)
    _walk_block(ctx, "checker", cpath, node, chk, handlers, extra)
    if kind in ("HTTP_GET", "SSL_GET") and virtualhost and "virtualhost" not in chk:
        chk["virtualhost"] = virtualhost
    lst.append(chk)


def _url(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    urls = out.setdefault("url", [])
    upath = f"{path.rsplit('.', 1)[0]}.url[{len(urls)}]"
    url: dict[str, Any] = {}
    ctx.mark(upath, node)
    handlers = {"status_code": _status_codes}
    _walk_block(ctx, "url", upath, node, url, handlers)
    urls.append(url)


def _status_codes(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    codes: list[int] = []
    for word in node.args:
        try:
            if "-" in word:
                lo, hi = (int(x) for x in word.split("-", 1))
                codes.extend(range(lo, hi + 1))
            else:
                codes.append(int(word))
        except ValueError:
            ctx.error(path, f"status_code {word!r} is not a code or range", node)
            return
    if not codes:
        ctx.error(path, "'status_code' needs a value", node)
        return
    ctx.mark(path, node)
    out["status_code"] = codes[0] if len(codes) == 1 else codes


def _smtp_host(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    if out.get("_host_seen"):
        return
    out["_host_seen"] = True
    _walk_block(ctx, "connect", path, node, out)


def _vsg(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    """``virtual_server_group NAME { IP[-LAST] PORT | fwmark N }``."""
    name = _named(ctx, node, "virtual_server_group")
    if name is None:
        return
    out = _into(ctx, model, "virtual_server_group", name, node)
    if out is None:
        return
    path = f"virtual_server_group.{_q(name)}"
    addrs: list[str] = []
    marks: list[int] = []
    for i, line in enumerate(node.children or []):
        w = line.words()
        ipath = f"{path}[{i}]"
        ctx.mark(ipath, line)
        if w[0] == "fwmark" and len(w) >= 2:
            try:
                marks.append(int(w[1]))
            except ValueError:
                ctx.error(ipath, f"fwmark {w[1]!r} is not an integer", line)
            if len(w) > 2:
                ctx.warn(ipath, f"fwmark family {w[2]!r} ignored", line)
            continue
        if len(w) != 2:
            ctx.error(ipath, "expected `IP[-LAST] PORT` or `fwmark N`", line)
            continue
        host, port = w
        if "/" in host:
            host, _, plen = host.partition("/")
            full = "128" if ":" in host else "32"
            if plen != full:
                ctx.error(
                    ipath,
                    f"{w[0]!r}: a virtual_server_group entry is one address or a last-octet range "
                    f"(`10.0.0.1-20 {port}`), not a network; list the addresses",
                    line,
                )
                continue
            ctx.warn(ipath, f"{w[0]!r}: the /{plen} is redundant (one address), as keepalived reads it", line)
        if ":" in host and "-" in host:
            ctx.error(ipath, f"IPv6 address ranges ({host}) are not supported; list the addresses", line)
            continue
        if ":" in host:
            addrs.append(f"[{host}]:{port}")
        else:
            addrs.append(f"{host}:{port}")
    if addrs:
        out["address"] = addrs
    if marks:
        out["fwmark"] = marks


def _tp_process(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``process NAME [PARAM ...]``: quoted words stay one word (keepalived.conf(5))."""
    if node.children is not None or not node.args:
        ctx.error(path, "'process' needs a process name (and optional parameters)", node)
        return
    if "process" in out:
        ctx.warn(
            path, f"'process' given twice: the first ({out['process']!r}) is kept, as keepalived does", node
        )
        return
    base = path.rsplit(".", 1)[0]
    ctx.mark(f"{base}.process", node)
    out["process"] = node.args[0]
    if len(node.args) > 1:
        ctx.mark(f"{base}.params", node)
        out["params"] = list(node.args[1:])


def _tp_param_match(ctx: _Ctx, path: str, node: Node, out: dict[str, Any]) -> None:
    """``param_match [exact|partial|initial]``; no value is exact (a command with no parameters)."""
    if node.children is not None or len(node.args) > 1:
        ctx.error(path, "'param_match' takes at most one of exact, partial, initial", node)
        return
    ctx.mark(path, node)
    out["param_match"] = node.args[0] if node.args else "exact"


def _track_process_block(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    name = _named(ctx, node, "vrrp_track_process")
    if name is None:
        return
    out = _into(ctx, model, "vrrp_track_process", name, node)
    if out is None:
        return
    path = f"vrrp_track_process.{_q(name)}"
    handlers = {"process": _tp_process, "param_match": _tp_param_match}
    _walk_block(ctx, "vrrp_track_process", path, node, out, handlers)
    if "process" not in out:
        # keepalived: "track process NAME process name not specified" and drops the block
        ctx.error(path, "needs a 'process NAME' line (the process to track)", node)


def _net_namespace(ctx: _Ctx, node: Node, model: dict[str, Any]) -> None:
    """Top-level ``net_namespace NAME`` → ``global_defs.net_namespace`` (daemon-wide, as in keepalived)."""
    name = _need_arg(ctx, "global_defs.net_namespace", node)
    if name is None or node.children is not None:
        if node.children is not None:
            ctx.error("global_defs.net_namespace", "'net_namespace' takes a name, not a { } block", node)
        return
    ctx.mark("global_defs.net_namespace", node)
    model.setdefault("global_defs", {})["net_namespace"] = name


_TOP_HANDLERS: dict[str, Callable[[_Ctx, Node, dict[str, Any]], None]] = {
    "net_namespace": _net_namespace,
    "global_defs": _global_defs,
    "vrrp_instance": _vrrp_instance,
    "vrrp_script": _simple_named("vrrp_script", "vrrp_script"),
    "track_file": _simple_named("track_file", "track_file"),
    "vrrp_track_file": _simple_named("track_file", "track_file"),
    "vrrp_track_process": _track_process_block,
    "vrrp_sync_group": _simple_named("vrrp_sync_group", "vrrp_sync_group"),
    "virtual_server": _virtual_server,
    "virtual_server_group": _vsg,
}


def _cleanup(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _cleanup(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_cleanup(v) for v in obj]
    return obj


def walk(nodes: list[Node]) -> tuple[dict[str, Any], list[Issue], dict[str, tuple[str, int]]]:
    """Map a parsed tree to a keepalived-shaped model dict; never raises."""
    ctx = _Ctx()
    model: dict[str, Any] = {}
    for node in nodes:
        entry = KEYWORDS["(top)"].get(node.keyword)
        if entry is None:
            ctx.unknown(node.keyword, node, "the file (top level)", KEYWORDS["(top)"])
            continue
        handler = _TOP_HANDLERS.get(node.keyword)
        if handler is None:
            _apply(ctx, entry, "(top)", node.keyword, node, model, {})
            continue
        handler(ctx, node, model)
    _vmac_unicast(ctx, model)
    _derived(model)
    _sync_daemon_choice(ctx, model)
    _v3_authentication(ctx, model)
    _cross_checks(ctx, model)
    return _cleanup(model), ctx.issues, ctx.locs


def _family_words_v6(inst: Mapping[str, Any]) -> bool:
    """The instance is IPv6 by the rule of ``VrrpInstance.family`` (first VIP, else first peer,
    else unicast_src_ip / mcast_src_ip), read from the front-end's words."""
    for key in ("virtual_ipaddress", "unicast_peer", "unicast_src_ip", "mcast_src_ip"):
        value = inst.get(key)
        if isinstance(value, list):
            if not value:
                continue
            value = value[0]
        if isinstance(value, Mapping):
            value = value.get("address")
        if isinstance(value, str):
            return ":" in value
    return False


def _v3_authentication(ctx: _Ctx, model: dict[str, Any]) -> None:
    """keepalived ignores ``authentication`` on a VRRPv3 instance (RFC 5798 has none): so do we.

    (A TOML file, pyvrrp's own format, keeps refusing it.)
    """
    default = str(model.get("global_defs", {}).get("vrrp_version", 2))
    for name, inst in model.get("vrrp_instance", {}).items():
        if "authentication" not in inst:
            continue
        version = str(inst.get("version", 3 if _family_words_v6(inst) else default))
        if version == "3":
            ctx.warn_at(
                f"vrrp_instance.{_q(name)}.authentication",
                "ignored on a VRRPv3 instance (RFC 5798 has no authentication), as keepalived does; "
                "remove it",
            )
            del inst["authentication"]


def _vmac_unicast(ctx: _Ctx, model: dict[str, Any]) -> None:
    """keepalived: "unicast with use_vmac requires vmac_xmit_base - setting" (so do we, with a warning)."""
    for name, inst in model.get("vrrp_instance", {}).items():
        if inst.get("use_vmac") and inst.get("unicast_peer") and not inst.get("vmac_xmit_base"):
            ctx.warn_at(
                f"vrrp_instance.{_q(name)}.use_vmac",
                "use_vmac with unicast_peer needs vmac_xmit_base (unicast adverts arrive on the base "
                "interface); set, as keepalived does; add vmac_xmit_base to say so",
            )
            inst["vmac_xmit_base"] = True


def _derived(model: dict[str, Any]) -> None:
    """Keywords without a model field of their own, applied to the fields they imply."""
    g = model.get("global_defs", {})
    if g.pop("_vrrp_min_garp", False):
        g["vrrp_garp_master_repeat"] = 1
        g["vrrp_garp_master_delay"] = 0
    down_timer = g.pop("_vrrp_down_timer_adverts", None)
    global_strict = bool(g.pop("_vrrp_strict", False))
    vmac_prefix = g.pop("_vmac_prefix", None)
    for inst in model.get("vrrp_instance", {}).values():
        if inst.get("use_vmac") and "vmac_name" not in inst and vmac_prefix and "virtual_router_id" in inst:
            inst["vmac_name"] = f"{vmac_prefix}.{inst['virtual_router_id']}"
        mac = inst.get("vmac_address")
        if isinstance(mac, str) and mac.endswith(":VRID") and isinstance(inst.get("virtual_router_id"), int):
            inst["vmac_address"] = mac[: -len("VRID")] + f"{inst['virtual_router_id'] & 0xFF:02x}"
        if down_timer is not None:
            inst.setdefault("down_timer_adverts", down_timer)
        strict = inst.pop("_strict_mode", global_strict)
        # keepalived: accept unless no_accept or strict mode (RFC 5798 §6.1 default is off)
        inst.setdefault("accept", not strict)


def _cross_checks(ctx: _Ctx, model: dict[str, Any]) -> None:
    """References that keepalived resolves by name: it warns about unknown ones and drops them.

    So does pyvrrp (a warning with the reference's line), and the model never sees them: a
    TOML file, pyvrrp's own format, keeps refusing an unknown name.
    """

    scripts = set(model.get("vrrp_script", {}))
    files = set(model.get("track_file", {}))
    processes = set(model.get("vrrp_track_process", {}))
    instances = set(model.get("vrrp_instance", {}))
    refs = (("track_script", scripts), ("track_file", files), ("track_process", processes))
    for kind in ("vrrp_instance", "vrrp_sync_group"):
        for name, body in model.get(kind, {}).items():
            for field, known in refs:
                items = body.get(field, [])
                for i, item in enumerate(items):
                    if item["name"] not in known:
                        defined = f" (defined: {', '.join(sorted(known))})" if known else ""
                        ctx.warn_at(
                            f"{kind}.{_q(name)}.{field}[{i}]",
                            f"{field} '{item['name']}' is not defined{defined}: ignored, as keepalived "
                            "does, so nothing is tracked here",
                        )
                if items:
                    body[field] = [item for item in items if item["name"] in known]
    for name, body in model.get("vrrp_sync_group", {}).items():
        members = body.get("group", [])
        for member in members:
            if member not in instances:
                ctx.warn_at(
                    f"vrrp_sync_group.{_q(name)}.group",
                    f"sync group member '{member}' is not a vrrp_instance: ignored, as keepalived does",
                )
        kept = [m for m in members if m in instances]
        if not kept:  # keepalived: "Sync group G has no virtual router(s). removing"
            ctx.warn_at(
                f"vrrp_sync_group.{_q(name)}",
                "has no vrrp_instance (a `group { }` block names them): the group is removed, "
                "as keepalived does",
            )
            body["_drop"] = True
        else:
            body["group"] = kept
    groups = model.get("vrrp_sync_group")
    if groups:
        for name in [n for n, b in groups.items() if b.get("_drop")]:
            del groups[name]


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------


def to_model_dict(
    path: str | Path, *, config_id: str | None = None
) -> tuple[dict[str, Any], list[Issue], dict[str, tuple[str, int]]]:
    """Parse and map a keepalived.conf: ``(model_dict, issues, locations)``.

    Syntax errors become a single error issue.  The dict is what the pydantic model
    validates; ``locations`` maps dotted paths to ``(file, line)``.
    """
    try:
        res = parse_file(path, config_id=config_id)
    except KaConfSyntaxError as exc:
        return {}, [Issue("error", "(syntax)", exc.message, exc.file, exc.line)], {}
    model, issues, locs = walk(res.nodes)
    pre = [Issue("warning", "include", w.message, w.file, w.line) for w in res.warnings]
    return model, pre + issues, locs


def _issue_to_config_issue(issue: Issue) -> Any:
    from pyvrrp.config import errors

    kwargs: dict[str, Any] = {
        "path": issue.path,
        "message": issue.message,
        "file": issue.file,
        "line": issue.line,
    }
    fields = getattr(errors.ConfigIssue, "__dataclass_fields__", None) or getattr(
        errors.ConfigIssue, "model_fields", {}
    )
    if "severity" in fields:
        kwargs["severity"] = issue.severity
    return errors.ConfigIssue(**kwargs)


def _locate(locs: dict[str, tuple[str, int]], path: str) -> tuple[str | None, int | None]:
    """Best (file, line) for a dotted model path: the longest known prefix."""
    p = path
    while p:
        if p in locs:
            return locs[p]
        if p.endswith("]"):
            p = p[: p.rfind("[")]
            continue
        cut = max(p.rfind("."), p.rfind('."'))
        if cut <= 0:
            break
        p = p[:cut]
    return None, None


def load_with_report(path: str | Path, *, config_id: str | None = None) -> tuple[Any, list[ConfigIssue]]:
    """Load a keepalived.conf into a ``Config``; returns ``(config, front-end warnings)``.

    The warnings name every keyword pyvrrp ignores or approximates (file:line).  Raises
    ``ConfigError`` listing every error (and, after them, the warnings) when the file cannot
    be used.
    """
    from pyvrrp.config import models  # heavy; keep the parser importable on its own

    data, issues, locs = to_model_dict(path, config_id=config_id)
    warnings = [_issue_to_config_issue(i) for i in issues if i.severity == "warning"]
    errs = [_issue_to_config_issue(i) for i in issues if i.severity == "error"]

    def locate(loc: tuple[str | int, ...]) -> tuple[str | None, int | None]:
        return _locate(locs, format_path(loc))

    if not errs:
        try:
            cfg = models.build_config(data, file=str(path), fmt="keepalived", locate=locate)
        except ConfigError as exc:
            errs = list(exc.issues)
        else:
            # Config.warnings() (and so `pyvrrp check-config`) lists these first
            cfg._frontend_warnings = warnings
            return cfg, warnings
    errs.sort(key=lambda i: (i.file or "", i.line or 0))
    raise ConfigError([*errs, *warnings])


def frontend_warnings(cfg: Any) -> list[ConfigIssue]:
    """The keepalived front-end's warnings for a config returned by :func:`load`."""
    return list(getattr(cfg, "_frontend_warnings", []))


def load(path: str | Path, *, config_id: str | None = None) -> Any:
    """The ``load_config`` front-end for keepalived.conf (warnings: :func:`frontend_warnings`)."""
    cfg, _warnings = load_with_report(path, config_id=config_id)
    return cfg


# ----------------------------------------------------------------------------------------
# Documentation
# ----------------------------------------------------------------------------------------


def keyword_counts() -> dict[Status, int]:
    """How many (block, keyword) pairs of :data:`KEYWORDS` are in each status (the doc's summary)."""
    counts: dict[Status, int] = {"supported": 0, "approximated": 0, "ignored": 0, "refused": 0}
    for table in KEYWORDS.values():
        for entry in table.values():
            counts[entry.status] += 1
    return counts


def keyword_table_markdown() -> str:
    """The keyword table of docs/migrating-from-keepalived.md, generated from KEYWORDS."""
    n = keyword_counts()
    total = sum(n.values())
    lines: list[str] = [
        f"{total} (block, keyword) pairs: **{n['supported']} supported, {n['approximated']} approximated, "
        f"{n['ignored']} ignored with a warning, {n['refused']} refused**. Words keepalived itself "
        "does not know are not listed: they are ignored with a warning (section 1).",
        "",
    ]
    for block, table in KEYWORDS.items():
        if not table:
            continue
        title = "file level" if block == "(top)" else f"`{block}`"
        if block == "checker":
            title = "every checker block"
        if block == "connect":
            title = "connecting checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `PING_CHECK`, `DNS_CHECK`)"
        if block == "HTTP_GET":
            title = "`HTTP_GET` / `SSL_GET`"
        lines += [f"### {title}", "", "| keyword | pyvrrp | model field | note |", "|---|---|---|---|"]
        for kw in sorted(table):
            e = table[kw]
            field = f"`{e.field}`" if e.field else ""
            status, note = e.status, e.note
            note = note.replace("|", "\\|")
            lines.append(f"| `{kw}` | {status} | {field} | {note} |")
        lines.append("")
    return "\n".join(lines)


DOC_BEGIN = "<!-- BEGIN KEYWORD TABLE -->"
DOC_END = "<!-- END KEYWORD TABLE -->"


def update_doc(path: str | Path) -> bool:
    """Rewrite the generated table between the markers of ``path``; True if it changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    head, rest = text.split(DOC_BEGIN, 1)
    _old, tail = rest.split(DOC_END, 1)
    new = f"{head}{DOC_BEGIN}\n\n{keyword_table_markdown().strip()}\n\n{DOC_END}{tail}"
    if new != text:
        p.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # python -m pyvrrp.config.keepalived [--update-doc FILE]
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--update-doc":
        print("updated" if update_doc(sys.argv[2]) else "unchanged")
    else:
        print(keyword_table_markdown())
