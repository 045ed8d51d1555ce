"""The pyvrrp configuration model (pydantic v2), in keepalived's vocabulary.

Every front-end (TOML, keepalived.conf) produces a plain ``dict`` and hands it to
:func:`build_config`, which validates each section on its own, then runs the cross-field
("semantic") checks, and raises one :class:`~pyvrrp.config.errors.ConfigError` listing
**every** problem found.  :func:`check` returns the warnings of a valid config.

Key names are keepalived's (keepalived.conf(5), ANCHORS §2) wherever keepalived has one;
the split-brain guards (``gateway_check``, ``conflict_detection``, ``fence_*``,
``probe_vip_before_takeover``) are pyvrrp's own.  Units: seconds as floats unless a name says
otherwise.  docs/config.md documents every key.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from pyvrrp.config.announce import Announce
from pyvrrp.config.errors import (
    ConfigError,
    ConfigIssue,
    Loc,
    Locator,
    format_path,
    issues_from_validation_error,
    show_value,
)

if TYPE_CHECKING:
    from pyvrrp.config.lvs import VirtualServer, VirtualServerGroup

    _VirtualServers = dict[str, VirtualServer]
    _VirtualServerGroups = dict[str, VirtualServerGroup]
else:
    # The LVS models (pyvrrp.config.lvs) cost ~40 ms of schema building at import and
    # most configs have no virtual_server: build_config validates those entries with
    # the LVS models, imported on first use, and Config holds the validated objects.
    _VirtualServers = _VirtualServerGroups = dict[str, Any]

__all__ = [
    "SECTIONS",
    "Authentication",
    "Config",
    "ConflictDetection",
    "GatewayCheck",
    "GlobalDefs",
    "LvsSyncDaemon",
    "NotifyFifo",
    "TrackFile",
    "TrackFileRef",
    "TrackInterfaceRef",
    "TrackProcessRef",
    "TrackScriptRef",
    "VirtualIPAddress",
    "VrrpInstance",
    "VrrpScript",
    "VrrpSyncGroup",
    "VrrpTrackProcess",
    "build_config",
    "check",
    "parse_listen",
    "validate_config",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface

# --------------------------------------------------------------------------- scalar types


def _no_bool(kind: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        # pydantic's lax mode reads true as 1; a boolean where a number belongs is a mistake
        if isinstance(v, bool):
            raise ValueError(f"must be {kind}, got {show_value(v)}")
        return v

    return check


def _between(lo: float, hi: float, unit: str = "") -> AfterValidator:
    def check(v: float) -> float:
        if not lo <= v <= hi:
            shown = int(v) if isinstance(v, float) and v.is_integer() else v
            raise ValueError(f"must be {_num(lo)}..{_num(hi)}{unit}, got {shown}")
        return v

    return AfterValidator(check)


def _at_least(lo: float, unit: str = "", *, strict: bool = False) -> AfterValidator:
    def check(v: float) -> float:
        if v < lo or (strict and v == lo):
            raise ValueError(f"must be {'>' if strict else '>='} {_num(lo)}{unit}, got {_num(v)}")
        return v

    return AfterValidator(check)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _parse_ip(v: Any) -> IPAddress:
    if isinstance(v, IPv4Address | IPv6Address):
        return v
    if not isinstance(v, str):
        raise ValueError(f"must be an IP address string, got {show_value(v)}")
    try:
        return ipaddress.ip_address(v.strip())
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address") from None


def _parse_interface(v: Any) -> IPInterface:
    if isinstance(v, IPv4Interface | IPv6Interface):
        return v
    if isinstance(v, IPv4Address | IPv6Address):
        return ipaddress.ip_interface(v)
    if not isinstance(v, str):
        raise ValueError(f"must be an address string like '192.0.2.1/32', got {show_value(v)}")
    try:
        return ipaddress.ip_interface(v.strip())
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address[/prefix]") from None


def _intish(v: Any) -> Any:
    """keepalived.conf hands over strings: '3' → 3 for Literal[2, 3] fields."""
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    return v


def _upper(v: Any) -> Any:
    return v.strip().upper() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


def _as_bool(v: Any) -> bool | None:
    """A bool as pydantic reads one (true/yes/on/1 ...), or None if it is not one."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "yes", "on", "1", "t", "y"):
            return True
        if low in ("false", "no", "off", "0", "f", "n"):
            return False
    return None


def _one_or_many(v: Any) -> Any:
    """A single value where a list is expected becomes a one-item list."""
    if isinstance(v, str | Mapping | IPv4Address | IPv6Address | IPv4Interface | IPv6Interface):
        return [v]
    return v


Int = Annotated[int, BeforeValidator(_no_bool("an integer"))]
Seconds = Annotated[float, BeforeValidator(_no_bool("a number of seconds"))]
NonNegSeconds = Annotated[Seconds, _at_least(0, " s")]
PosSeconds = Annotated[Seconds, _at_least(0, " s", strict=True)]
NonNegInt = Annotated[Int, _at_least(0)]
PosInt = Annotated[Int, _at_least(1)]
ScriptWeight = Annotated[Int, _between(-253, 253)]
InterfaceWeight = Annotated[Int, _between(-254, 254)]
Version = Annotated[Literal[2, 3], BeforeValidator(_intish)]
IPAddr = Annotated[IPAddress, PlainValidator(_parse_ip), PlainSerializer(str, return_type=str)]
IPIface = Annotated[IPInterface, PlainValidator(_parse_interface), PlainSerializer(str, return_type=str)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _parse_mac(v: object) -> str:
    if not isinstance(v, str) or not _MAC.match(v.strip().lower()):
        raise ValueError(f"expected a MAC address like 00:00:5e:00:01:0c, got {v!r}")
    mac = v.strip().lower()
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{mac} is a multicast MAC: an interface needs a unicast one")
    return mac


MacAddr = Annotated[str, PlainValidator(_parse_mac)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- global_defs


class LvsTimeouts(_Model):
    """``lvs_timeouts [tcp S] [tcpfin S] [udp S]``: IPVS connection timeouts in whole seconds."""

    tcp: Annotated[Int, _between(1, 2147483)] | None = None
    tcpfin: Annotated[Int, _between(1, 2147483)] | None = None
    udp: Annotated[Int, _between(1, 2147483)] | None = None

    @model_validator(mode="after")
    def _one(self) -> LvsTimeouts:
        if self.tcp is None and self.tcpfin is None and self.udp is None:
            raise ValueError("give at least one of tcp, tcpfin, udp")
        return self


IFNAME_MAX = 15
"""Longest interface name the kernel takes (IFNAMSIZ 16, IPVS's IP_VS_IFNAME_MAXLEN 16, with the NUL)."""


def _ifname(v: Any) -> Any:
    if isinstance(v, str) and len(v) > IFNAME_MAX:
        raise ValueError(f"{v!r} is longer than an interface name can be ({IFNAME_MAX} characters)")
    return v


class LvsSyncDaemon(_Model):
    """``lvs_sync_daemon IF [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]``.

    The kernel's IPVS connection-sync daemon (``ipvsadm --start-daemon``): the master sends
    the connections of its IPVS table to the group, the backup adds them to its own, so a
    director that takes over keeps the established connections.  With ``instance`` the
    daemon follows that instance: master while it is MASTER, backup in every other state;
    without one both run for as long as pyvrrp runs (keepalived.conf(5)).
    """

    interface: Annotated[NonEmptyStr, AfterValidator(_ifname)]
    """Interface the sync messages are sent / received on (``--mcast-interface``)."""
    instance: NonEmptyStr | None = None
    """The vrrp_instance whose state the daemon follows (none: master and backup always run)."""
    sync_id: Annotated[Int, _between(0, 255)] | None = None
    """``--syncid``; default: the instance's virtual_router_id, 0 without an instance.  0 on a
    backup accepts every sync id."""
    maxlen: Annotated[Int, _between(1, 65507)] | None = None
    """Largest sync message payload in bytes (kernel default: from the interface MTU)."""
    port: Annotated[Int, _between(1, 65535)] | None = None
    """UDP port of the sync messages (kernel default 8848)."""
    ttl: Annotated[Int, _between(1, 255)] | None = None
    """Multicast TTL of the sync messages (kernel default 1)."""
    group: IPAddr | None = None
    """Multicast group (IPv4 or IPv6) of the sync messages (kernel default 224.0.0.81)."""

    @field_validator("group")
    @classmethod
    def _multicast(cls, v: IPAddress | None) -> IPAddress | None:
        if v is not None and not v.is_multicast:
            raise ValueError(f"must be a multicast address, got {v}")
        return v


def _absolute(p: Path) -> Path:
    if not p.is_absolute():
        raise ValueError(f"{str(p)!r} is not an absolute path")
    return p


class NotifyFifo(_Model):
    """``notify_fifo`` / ``vrrp_notify_fifo`` / ``lvs_notify_fifo``: a FIFO that gets one line per event.

    The daemon creates the FIFO if it does not exist (mode 0644, owned by ``user``/``group``
    when given), starts ``script`` with the FIFO's path as its last argument, and writes
    keepalived's lines (``INSTANCE "VI_1" MASTER 100``, ``GROUP "G1" BACKUP 0``,
    ``VS [10.0.0.1]:tcp:80 UP``, ``RS [192.168.1.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN``) without
    ever blocking: a full FIFO drops the line (counted, logged).
    """

    path: Annotated[Path, AfterValidator(_absolute)]
    script: NonEmptyStr | None = None
    """Command line started once at start-up with the FIFO path appended; it reads the FIFO."""
    user: NonEmptyStr | None = None
    """Owner given to a FIFO the daemon creates (keepalived ``FIFO [USER [GROUP]]``)."""
    group: NonEmptyStr | None = None


def parse_listen(text: str) -> tuple[str, int]:
    """``"ADDR:PORT"`` or ``"[ADDR6]:PORT"`` -> (address, port); ValueError says what is wrong.

    The address must be a literal IP (a name would need a resolver at start-up and could
    change under a running daemon); ``0.0.0.0`` / ``[::]`` listen on every address.
    """
    host, sep, port_s = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f'{text!r} is not ADDR:PORT (for example "127.0.0.1:9165" or "[::1]:9165")')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"{text!r}: brackets are for IPv6 addresses only")
    elif ":" in host:
        raise ValueError(f'{text!r}: write an IPv6 address in brackets, as "[{host}]:{port_s}"')
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (names are not resolved)") from None
    if not (port_s.isascii() and port_s.isdigit()) or not 1 <= int(port_s) <= 65535:
        raise ValueError(f"{text!r}: port must be 1-65535, got {port_s!r}")
    return str(addr), int(port_s)


def _endpoint(text: str) -> str:
    """``http://ADDR:PORT`` / ``https://ADDR:PORT`` (a literal IP; IPv6 in brackets) -> normalised."""
    if not isinstance(text, str):
        raise ValueError('must be a string like "http://192.0.2.1:2379"')
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"{text!r} must start with http:// or https:// (etcd's client URL)")
    rest = rest.rstrip("/")
    if "/" in rest:
        raise ValueError(f"{text!r}: give the client URL only, no path")
    host, port = parse_listen(rest)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


Endpoint = Annotated[str, AfterValidator(_endpoint)]


class Witness(_Model):
    """``global_defs.witness``: the quorum witness on etcd (pyvrrp, issue 13).

    A witnessed instance (``witness = true`` on a ``vrrp_instance`` or ``vrrp_sync_group``)
    holds its VIPs only while this node holds the instance's key in etcd, bound to a
    lease of ``ttl`` seconds; the holder gives the VIPs up ``margin`` seconds before the
    lease could expire.  Runtime: :mod:`pyvrrp.splitbrain.witness` (the pure gate),
    :mod:`pyvrrp.adapters.witness_etcd` (the client), :mod:`pyvrrp.runtime.witness`.
    """

    endpoints: Annotated[list[Endpoint], BeforeValidator(_one_or_many), Field(min_length=1)]
    """etcd client URLs of the members (``http://ADDR:2379``); tried in order."""
    ca: Path | None = None
    """CA bundle that signed the members' certificates (https endpoints)."""
    cert: Path | None = None
    """Client certificate (etcd ``--client-cert-auth``); needs ``key``."""
    key: Path | None = None
    user: NonEmptyStr | None = None
    """etcd user (``etcdctl user add``); needs ``password``."""
    password: str | None = None
    prefix: NonEmptyStr = "/pyvrrp"
    """Keys are ``<prefix>/instance/<name>`` and ``<prefix>/group/<name>``."""
    ttl: Annotated[Int, _between(2, 3600, " s")] = 5
    """Lease TTL in whole seconds (etcd's unit): a crashed holder is replaced after about this long."""
    margin: PosSeconds = 1.0
    """The holder gives its VIPs up this long before its lease could expire (see docs/split-brain.md)."""
    timeout: PosSeconds | None = None
    """Seconds one etcd request may take (default: a quarter of ttl - margin, at most 1 s)."""
    on_unavailable: Literal["release", "vrrp"] = "release"
    """etcd unreachable: ``release`` gives the VIPs up at the deadline (safe); ``vrrp`` falls back."""

    _low = field_validator("on_unavailable", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @model_validator(mode="after")
    def _consistent(self) -> Witness:
        if self.margin >= self.ttl:
            raise ValueError(f"margin ({_num(self.margin)} s) must be smaller than ttl ({self.ttl} s)")
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: give both or neither")
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together: give both or neither")
        if not self.prefix.startswith("/") or (self.prefix.endswith("/") and self.prefix != "/"):
            raise ValueError(f"prefix must start with '/' and not end with one, got {self.prefix!r}")
        tls = [e for e in self.endpoints if e.startswith("https://")]
        if (self.ca or self.cert) and not tls:
            raise ValueError("ca / cert are set but every endpoint is http://; use https:// endpoints")
        if tls and len(tls) != len(self.endpoints):
            raise ValueError("mix of http:// and https:// endpoints; use one scheme for every member")
        if self.timeout is not None and self.timeout >= self.ttl - self.margin:
            raise ValueError(
                f"timeout ({_num(self.timeout)} s) must be shorter than ttl - margin "
                f"({_num(self.ttl - self.margin)} s)"
            )
        return self

    @property
    def request_timeout_s(self) -> float:
        """Seconds one request may take before it counts as failed."""
        if self.timeout is not None:
            return float(self.timeout)
        return min(1.0, (self.ttl - self.margin) / 4)


class GlobalDefs(_Model):
    """``global_defs``: daemon-wide settings and defaults for every instance."""

    router_id: str | None = None
    """Name of this node in logs and notify events (keepalived default: the hostname)."""
    control_socket: Path = Path("/run/pyvrrp/pyvrrp.sock")
    """Unix socket of the control API (``pyvrrp state``).  pyvrrp only."""
    state_dir: Path = Path("/var/lib/pyvrrp")
    """Where persistent state lives (mastership epoch files).  pyvrrp only."""
    vrrp_version: Version = 2
    """Default ``version`` of instances (IPv6 instances are always 3)."""
    vrrp_garp_master_delay: NonNegSeconds = 5.0
    """Seconds after becoming master before the second GARP/NA burst (0 = none)."""
    vrrp_garp_master_repeat: NonNegInt = 5
    """GARPs / unsolicited NAs per burst."""
    vrrp_garp_master_refresh: NonNegSeconds = 0.0
    """Re-announce the VIPs every N seconds while master (0 = never)."""
    vrrp_garp_lower_prio_repeat: NonNegInt = 5
    vrrp_garp_lower_prio_delay: NonNegSeconds | None = None
    """At most one lower-priority GARP burst per this many seconds (default: vrrp_garp_master_delay)."""
    """GARPs sent when the master hears a lower priority (split-brain healing)."""
    vrrp_lower_prio_no_advert: bool = False
    """Default of ``lower_prio_no_advert``."""
    script_user: str | None = None
    """``user [group]`` that runs scripts (keepalived: ``keepalived_script``, else root)."""
    enable_script_security: bool = False
    """Refuse scripts that a non-root user could modify."""
    notify_timeout: PosSeconds = 10.0
    """Seconds a notify script may run before it is killed.  pyvrrp only."""
    vrrp_startup_delay: NonNegSeconds = 0.0
    """Seconds to wait after start before taking part in elections."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """Log rendering: ``auto`` = console on a TTY, JSON otherwise.  pyvrrp only."""
    vrrp_mcast_group4: IPAddr = IPv4Address("224.0.0.18")
    """Group of IPv4 multicast adverts (RFC 5798 §5.1.1.2 default); every node must use the same one."""
    vrrp_mcast_group6: IPAddr = IPv6Address("ff02::12")
    """Group of IPv6 multicast adverts (RFC 5798 §5.1.2.2 default)."""
    lvs_timeouts: LvsTimeouts | None = None
    """IPVS connection timeouts (``ipvsadm --set``), set when the IPVS manager starts (a config
    with virtual servers); unset values are left as they are."""
    lvs_sync_daemon: LvsSyncDaemon | None = None
    """The IPVS connection-sync daemon pyvrrp runs (master on MASTER, backup otherwise)."""
    notify_fifo: NotifyFifo | None = None
    """FIFO for every event: VRRP (INSTANCE/GROUP lines) and LVS (VS/RS lines)."""
    vrrp_notify_fifo: NotifyFifo | None = None
    """FIFO for VRRP events only (``INSTANCE "VI_1" MASTER 100``, ``GROUP "G1" BACKUP 0``)."""
    lvs_notify_fifo: NotifyFifo | None = None
    """FIFO for LVS events only (``VS ... UP``, ``RS ... DOWN``)."""
    vrrp_notify_priority_changes: bool = False
    """Also write ``MASTER_PRIORITY`` / ``BACKUP_PRIORITY`` lines when the effective priority changes."""
    fifo_write_vrrp_states_on_reload: bool = False
    """After a reload, write every instance's current state line to the VRRP FIFOs."""
    net_namespace: NonEmptyStr | None = None
    """Run VRRP and IPVS inside this network namespace (keepalived's top-level ``net_namespace``)."""
    vrrp_nftables: str = "pyvrrp"
    """nftables table (family inet) that drops traffic to the VIPs of instances without accept mode."""
    vrrp_nftables_priority: Int = -1
    """Priority of that table's input hook (keepalived ``nftables_priority``)."""
    vrrp_nftables_counters: bool = False
    """Count the dropped packets (``nft list table inet TABLE``); keepalived ``nftables_counters``."""
    metrics_listen: str | None = None
    """``"ADDR:PORT"`` / ``"[ADDR6]:PORT"`` of the Prometheus ``/metrics`` listener (unset: off)."""
    metrics_keepalived_names: bool = True
    """Also serve mehdy/keepalived-exporter's ``keepalived_*`` metric names.  pyvrrp only."""
    witness: Witness | None = None
    """The quorum witness on etcd (pyvrrp only, issue 13); instances opt in with ``witness = true``."""

    @field_validator("vrrp_nftables")
    @classmethod
    def _nft_table(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", v):
            raise ValueError(
                f"{v!r} is not an nftables table name: a letter, then up to 63 letters, digits, '_' or '-'"
            )
        return v

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, v: str | None) -> str | None:
        if v is None:
            return None
        host, port = parse_listen(v)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @model_validator(mode="after")
    def _groups(self) -> GlobalDefs:
        for key, fam in (("vrrp_mcast_group4", 4), ("vrrp_mcast_group6", 6)):
            grp = getattr(self, key)
            if grp.version != fam or not grp.is_multicast:
                raise ValueError(f"{key} must be an IPv{fam} multicast address, got {grp}")
        return self

    _low = field_validator("log_format", mode="before")(classmethod(lambda cls, v: _lower(v)))


# --------------------------------------------------------------------------- trackers


class VrrpScript(_Model):
    """``vrrp_script NAME``: a periodic check whose result moves the priority (or FAULT)."""

    script: NonEmptyStr
    interval: PosSeconds = 1.0
    timeout: PosSeconds | None = None
    """Seconds before a run counts as failed (keepalived default: ``interval``)."""
    rise: PosInt = 1
    fall: PosInt = 1
    weight: ScriptWeight = 0
    """0: failure means FAULT.  <0: subtract while failing.  >0: add while succeeding."""
    weight_reverse: bool = False
    init_fail: bool = False
    """Start in the failed state until the first success."""
    user: str | None = None


class TrackFile(_Model):
    """``track_file NAME`` (keepalived ``vrrp_track_file``): an integer in a file, times weight."""

    file: Path
    weight: InterfaceWeight = 1
    weight_reverse: bool = False
    init_file: Int | None = None
    """If set, create the file with this value when it does not exist."""


QuorumCount = Annotated[Int, _between(0, 65535)]
ProcessDelay = Annotated[Seconds, _between(0, 3600, " s")]


class VrrpTrackProcess(_Model):
    """``vrrp_track_process NAME``: is a process running (quorum of matching processes)?

    keepalived semantics (keepalived.conf(5)): ``process`` is compared exactly with the
    kernel's process name (``/proc/PID/comm``, at most 15 characters); ``params`` or
    ``param_match`` compare the command line instead (``full_command`` implied).
    """

    process: NonEmptyStr
    """Process name (``comm``), or the command's first word with ``full_command``/``params``."""
    params: list[str] | None = None
    """Command-line parameters after ``process`` (keepalived: the words after the name)."""
    param_match: Literal["exact", "partial", "initial"] | None = None
    """``exact`` (default with params): exactly these; ``partial``: the first N;
    ``initial``: the first N, the last may be longer.  Without params, ``exact`` = none."""
    full_command: bool = False
    """Compare ``process`` with argv[0] of /proc/PID/cmdline instead of the process name."""
    weight: InterfaceWeight = 0
    """0 (keepalived's default): quorum lost means FAULT.  >0: add while up; <0: add while down."""
    weight_reverse: bool = False
    quorum: Annotated[Int, _between(1, 65535)] = 1
    """Minimum number of matching processes for "up"."""
    quorum_max: QuorumCount | None = None
    """Maximum number for "up" (0: up only while none runs).  Unset: no maximum."""
    delay: ProcessDelay | None = None
    """Sets both fork_delay and terminate_delay (each given one wins)."""
    fork_delay: ProcessDelay | None = None
    """Seconds a quorum gained through a fork of a tracked process waits before counting."""
    terminate_delay: ProcessDelay | None = None
    """Seconds a quorum lost through a process exit waits (a restart does not bounce the instance)."""

    _low = field_validator("param_match", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @field_validator("process")
    @classmethod
    def _no_nul(cls, v: str) -> str:
        if "\0" in v:
            raise ValueError("must not contain a NUL character")
        return v

    @model_validator(mode="after")
    def _quorum_window(self) -> VrrpTrackProcess:
        qmax = self.quorum_max
        if qmax is not None and qmax < self.effective_quorum:
            if qmax == 0:
                raise ValueError(
                    "quorum_max 0 means 'up while no such process runs': remove quorum (or set it "
                    f"to 1), or raise quorum_max to at least quorum ({self.quorum})"
                )
            raise ValueError(f"quorum_max ({qmax}) is less than quorum ({self.quorum})")
        return self

    @property
    def effective_quorum(self) -> int:
        """keepalived: ``quorum_max 0`` makes the quorum 0 (``quorum`` above 1 is an error)."""
        if self.quorum_max == 0 and self.quorum <= 1:
            return 0
        return self.quorum

    @property
    def fork_delay_s(self) -> float:
        return float(self.fork_delay if self.fork_delay is not None else self.delay or 0.0)

    @property
    def terminate_delay_s(self) -> float:
        return float(self.terminate_delay if self.terminate_delay is not None else self.delay or 0.0)

    @property
    def uses_cmdline(self) -> bool:
        return self.full_command or bool(self.params) or self.param_match is not None


class _NamedRef(_Model):
    accepts_string: ClassVar[bool] = True  # errors.py: "must be a string or a table"

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class TrackScriptRef(_NamedRef):
    """An entry of ``track_script``: a name, or ``{name, weight}`` overriding the script's."""

    name: NonEmptyStr
    weight: ScriptWeight | None = None
    reverse: bool = False


class TrackInterfaceRef(_NamedRef):
    """An entry of ``track_interface``: down with weight 0 → FAULT, else priority ± weight."""

    name: NonEmptyStr
    weight: InterfaceWeight = 0
    reverse: bool = False


class TrackFileRef(_NamedRef):
    """An entry of an instance's ``track_file`` list."""

    name: NonEmptyStr
    weight: InterfaceWeight | None = None
    reverse: bool = False


class TrackProcessRef(_NamedRef):
    """An entry of ``track_process``: a name, or ``{name, weight, reverse}`` overriding the
    vrrp_track_process's own weight."""

    name: NonEmptyStr
    weight: InterfaceWeight | None = None
    reverse: bool = False


# --------------------------------------------------------------------------- addresses


_VIP_SCOPES = ("global", "site", "link", "host", "nowhere")


class VirtualIPAddress(_Model):
    """One ``virtual_ipaddress`` entry.

    Written as a string ``"ADDR[/PREFIX] [dev IF] [label L] [scope S]"`` or a table
    ``{address, dev, label, scope}``.  Without a prefix the address is a host route
    (/32 or /128), as in keepalived.
    """

    accepts_string: ClassVar[bool] = True

    address: IPIface
    dev: str | None = None
    """Interface to add it on (default: the instance's ``interface``)."""
    label: str | None = None
    scope: Literal["global", "site", "link", "host", "nowhere"] | None = None
    brd: IPAddr | None = None
    """IPv4 broadcast address (keepalived ``brd``/``broadcast``)."""
    no_track: bool = False
    """keepalived: the state of ``dev`` does not move the instance to FAULT."""

    _low = field_validator("scope", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        words = v.split()
        if not words:
            raise ValueError("empty address")
        out: dict[str, Any] = {"address": words[0]}
        rest = words[1:]
        while rest:
            opt = rest.pop(0).lower()
            if opt == "no_track":
                out["no_track"] = True
                continue
            opt = "brd" if opt == "broadcast" else opt
            if opt not in ("dev", "label", "scope", "brd"):
                raise ValueError(f"unknown address option {opt!r} (known: dev, label, scope, brd, no_track)")
            if not rest:
                raise ValueError(f"{opt!r} needs a value")
            out[opt] = rest.pop(0)
        return out

    @model_validator(mode="after")
    def _brd_is_v4(self) -> VirtualIPAddress:
        if self.brd is not None and (self.brd.version != 4 or self.address.version != 4):
            raise ValueError("brd is an IPv4 broadcast address of an IPv4 address")
        return self

    @property
    def family(self) -> int:
        return self.address.version

    def __str__(self) -> str:
        return str(self.address)


_ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "throw")
#: keepalived route/rule options pyvrrp reads (keepalived.conf(5) static_routes /
#: static_rules); any other option is refused by name.
ROUTE_OPTIONS = (
    "src",
    "via",
    "gw",
    "dev",
    "oif",
    "scope",
    "table",
    "metric",
    "priority",
    "preference",
    "protocol",
    "proto",
    "onlink",
    "no_track",
    "inet",
    "inet6",
)
RULE_OPTIONS = (
    "from",
    "to",
    "table",
    "lookup",
    "priority",
    "preference",
    "pref",
    "prio",
    "iif",
    "dev",
    "oif",
    "fwmark",
    "no_track",
    "inet",
    "inet6",
)
#: ``/etc/iproute2/rt_tables`` names every system has (others: give the number).
TABLE_NAMES = {"main": 254, "local": 255, "default": 253}
#: ``/etc/iproute2/rt_protos`` names (others: give the number).
PROTO_NAMES = {
    "boot": 3,
    "static": 4,
    "ra": 9,
    "zebra": 11,
    "bird": 12,
    "dhcp": 16,
    "keepalived": 18,
    "babel": 42,
    "bgp": 186,
    "isis": 187,
    "ospf": 188,
    "rip": 189,
}


def _route_words(v: str) -> dict[str, Any]:
    """keepalived's route syntax: ``[TYPE] [src IP] [to] DEST [via GW] [dev IF] [scope S] [table N] ...``."""
    words = v.split()
    out: dict[str, Any] = {}
    alias = {"gw": "via", "oif": "dev", "priority": "metric", "preference": "metric", "protocol": "proto"}
    while words:
        w = words.pop(0)
        low = w.lower()
        if low in _ROUTE_TYPES and "to" not in out:
            out["type"] = low
            continue
        if low in ("onlink", "no_track"):
            out[low] = True
            continue
        if low in ("inet", "inet6"):  # keepalived's family hint: the destination gives it here
            continue
        if low == "to":
            if not words:
                raise ValueError("'to' needs a destination")
            out["to"] = words.pop(0)
            continue
        if low in ROUTE_OPTIONS:
            if not words:
                raise ValueError(f"{low!r} needs a value")
            out[alias.get(low, low)] = words.pop(0)
            continue
        if "to" not in out and (low == "default" or low[:1].isdigit() or ":" in low):
            out["to"] = w
            continue
        raise ValueError(
            f"route option {w!r} is not supported by pyvrrp; it reads: "
            f"{', '.join(o for o in ROUTE_OPTIONS if o not in ('inet', 'inet6'))} and a route type "
            f"({', '.join(_ROUTE_TYPES)}); remove it, or add this route from a notify script"
        )
    return out


def _rule_words(v: str) -> dict[str, Any]:
    """keepalived's rule syntax: ``[from IP] [to IP] [iif IF] [oif IF] [fwmark N] [table N] [priority N]``."""
    words = v.split()
    out: dict[str, Any] = {}
    alias = {"preference": "priority", "pref": "priority", "prio": "priority"}
    alias |= {"lookup": "table", "dev": "iif"}
    while words:
        w = words.pop(0)
        low = w.lower()
        if low == "no_track":
            out["no_track"] = True
            continue
        if low in ("inet", "inet6"):
            out["family"] = 6 if low == "inet6" else 4
            continue
        if low in RULE_OPTIONS:
            if not words:
                raise ValueError(f"{low!r} needs a value")
            out[alias.get(low, low)] = words.pop(0)
            continue
        raise ValueError(
            f"rule option {w!r} is not supported by pyvrrp; it reads: "
            f"{', '.join(o for o in RULE_OPTIONS if o not in ('inet', 'inet6'))}; remove it, or add "
            "this rule from a notify script"
        )
    return out


def _named_number(names: Mapping[str, int], what: str) -> Callable[[Any], Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, str) and not v.strip().isdigit():
            key = v.strip().lower()
            if key not in names:
                raise ValueError(f"unknown {what} name {v!r} (known: {', '.join(names)}); give the number")
            return names[key]
        return v

    return conv


def _parse_network(v: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A prefix (host bits zero); ``default`` is 0.0.0.0/0, as in ``ip route``."""
    if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return v
    if not isinstance(v, str):
        raise ValueError(f"must be a prefix string like '192.0.2.0/24', got {show_value(v)}")
    if v.strip().lower() == "default":
        return ipaddress.IPv4Network("0.0.0.0/0")
    try:
        return ipaddress.ip_network(v.strip(), strict=True)
    except ValueError:
        raise ValueError(f"{v!r} is not a network prefix (host bits must be zero)") from None


IPNet = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    PlainValidator(_parse_network),
    PlainSerializer(str, return_type=str),
]
RouteTable = Annotated[Int, BeforeValidator(_named_number(TABLE_NAMES, "table")), _between(1, 4294967295)]
RouteProto = Annotated[Int, BeforeValidator(_named_number(PROTO_NAMES, "protocol")), _between(0, 255)]


class Route(_Model):
    """A ``static_routes`` / ``virtual_routes`` entry: a string in keepalived's syntax or a table.

    ``"10.1.0.0/16 via 192.0.2.254 dev eth1 table 100"``; ``default`` is 0.0.0.0/0.
    Options: ``src via(gw) dev(oif) scope table metric(priority) proto(protocol) onlink
    no_track`` and a type (``blackhole`` ...); anything else is refused by name.  Routes are
    added with ``proto keepalived`` (18) unless ``proto`` says otherwise, as keepalived does.
    """

    accepts_string: ClassVar[bool] = True

    to: IPNet
    via: IPAddr | None = None
    dev: str | None = None
    src: IPAddr | None = None
    scope: Literal["global", "site", "link", "host", "nowhere"] | None = None
    table: RouteTable | None = None
    metric: Annotated[Int, _between(0, 4294967295)] | None = None
    proto: RouteProto | None = None
    type: Literal["unicast", "blackhole", "unreachable", "prohibit", "throw"] = "unicast"
    onlink: bool = False
    no_track: bool = False

    _low = field_validator("scope", "type", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        return _route_words(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _families(self) -> Route:
        fam = self.to.version
        for key in ("via", "src"):
            addr = getattr(self, key)
            if addr is not None and addr.version != fam:
                raise ValueError(f"{key} {addr} is not of the family of {self.to}")
        if self.type == "unicast" and self.via is None and self.dev is None:
            raise ValueError(f"route to {self.to} needs via or dev (or a type such as blackhole)")
        if self.type != "unicast" and (self.via is not None or self.dev is not None):
            raise ValueError(f"a {self.type} route takes no via or dev")
        return self

    @property
    def family(self) -> int:
        return self.to.version


class Rule(_Model):
    """A ``static_rules`` / ``virtual_rules`` entry: ``"from 192.0.2.15/32 table 1 priority 100"``.

    Options: ``from to iif(dev) oif fwmark table(lookup) priority(preference, pref, prio)
    no_track``; anything else is refused by name.
    """

    accepts_string: ClassVar[bool] = True

    from_: IPNet | None = Field(None, alias="from")
    to: IPNet | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: str | None = None
    """``N`` or ``N/MASK`` (decimal or 0x hex), as ``ip rule``."""
    table: RouteTable | None = None
    priority: Annotated[Int, _between(0, 4294967295)] | None = None
    no_track: bool = False
    family_hint: Literal[4, 6] | None = Field(None, alias="family")
    """``inet6``: the family of a rule without from/to (default IPv4, as keepalived)."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = _rule_words(v)
        if isinstance(v, Mapping):
            v = {k: (_host_prefix(x) if k in ("from", "from_", "to") else x) for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.from_ is None and self.to is None and self.iif is None and self.fwmark is None:
            raise ValueError("a rule needs a selector: from, to, iif or fwmark")
        if self.from_ is not None and self.to is not None and self.from_.version != self.to.version:
            raise ValueError("from and to are of different families")
        if self.fwmark is not None:
            mark, _, mask = self.fwmark.partition("/")
            try:
                int(mark, 0)
                if mask:
                    int(mask, 0)
            except ValueError:
                raise ValueError(f"fwmark {self.fwmark!r} is not N or N/MASK") from None
        return self

    @property
    def family(self) -> int:
        net = self.from_ or self.to
        return net.version if net is not None else (self.family_hint or 4)

    @model_serializer(mode="wrap")
    def _keys_as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        """``from`` and ``family`` as a config writes them (``pyvrrp convert``), not ``from_``."""
        data = handler(self)
        if isinstance(data, dict):
            for attr, key in (("from_", "from"), ("family_hint", "family")):
                if attr in data:
                    data[key] = data.pop(attr)
        return data

    @property
    def fwmark_mask(self) -> tuple[int, int | None] | None:
        """``fwmark`` as ``(mark, mask)`` numbers (mask None when not given)."""
        if self.fwmark is None:
            return None
        mark, _, mask = self.fwmark.partition("/")
        return int(mark, 0), (int(mask, 0) if mask else None)


def _host_prefix(v: Any) -> Any:
    """``192.0.2.15`` in a rule is ``192.0.2.15/32`` (``ip rule`` reads it so)."""
    if isinstance(v, str) and v.strip().lower() in ("all", "default"):
        return "0.0.0.0/0"
    if isinstance(v, str) and "/" not in v:
        return v.strip() + ("/128" if ":" in v else "/32")
    return v


class Authentication(_Model):
    """``authentication``: VRRPv2 only, not in RFC 3768 (SEC-01); keepalived interop.

    ``PASS``: RFC 2338 §5.3.6.2 simple text password.  ``AH``: keepalived's IPsec
    Authentication Header form (IPv4 only): adverts go as IP protocol 51 with an
    HMAC-MD5-96 keyed with the password (pyvrrp/proto/ah.py, docs/config.md).
    """

    auth_type: Literal["PASS", "AH"] = "PASS"
    auth_pass: NonEmptyStr
    """Only the first 8 characters are used (RFC 2338 §5.3.10)."""

    _up = field_validator("auth_type", mode="before")(classmethod(lambda cls, v: _upper(v)))


# --------------------------------------------------------------------------- split-brain guards


class GatewayCheck(_Model):
    """``gateway_check``: am I isolated, or is my peer dead?  (pyvrrp, issue #4)

    Probes ``targets`` every ``interval`` s; the node is *isolated* after ``fall``
    consecutive rounds with fewer than ``min_reachable`` answering targets and healthy
    again after ``rise`` good rounds.  An isolated node goes FAULT (``on_isolated =
    "fault"``) or loses ``abs(weight)`` priority (``"demote"``; written negative, as in
    keepalived).  Runtime: ``pyvrrp.splitbrain.gateway.GatewayMonitor`` reads this model.
    """

    targets: Annotated[list[IPAddr], BeforeValidator(_one_or_many), Field(min_length=1)]
    method: Literal["icmp", "arp"] = "icmp"
    interval: PosSeconds = 1.0
    timeout: PosSeconds = 1.0
    min_reachable: PosInt = 1
    rise: PosInt = 2
    fall: PosInt = 3
    on_isolated: Literal["fault", "demote"] = "fault"
    weight: ScriptWeight = 0

    _low = field_validator("method", "on_isolated", mode="before")(classmethod(lambda cls, v: _lower(v)))


class ConflictDetection(_Model):
    """``conflict_detection``: watch for a second master of our VIPs (pyvrrp, issue #4).

    Every ``interval`` s while master, ARP-probe each held IPv4 VIP (RFC 5227 probe form) and
    watch ARP on the interface: an answer or announcement for a VIP from another MAC is a
    second master.  ``notify_conflict`` runs; with ``resolve`` a fixed order on the two MACs
    picks the node that yields, and the survivor re-announces its VIPs, without needing the
    adverts (which are what is broken).  Runtime: ``pyvrrp.splitbrain.conflict``.
    """

    interval: PosSeconds = 1.0
    resolve: bool = True


# --------------------------------------------------------------------------- vrrp_instance


_Notify = str | None


class VrrpInstance(_Model):
    """``vrrp_instance NAME``: one virtual router (one VRID on one interface and family)."""

    interface: NonEmptyStr
    virtual_router_id: Annotated[Int, _between(1, 255)]
    priority: Annotated[Int, _between(1, 255)] = 100
    advert_int: Seconds = 1.0
    """Seconds (fractions allowed with version 3: 0.01..40.95, multiples of 0.01)."""
    version: Version = 2
    """Default: ``global_defs.vrrp_version`` (3 for IPv6)."""
    preempt: bool = True
    nopreempt: bool | None = Field(None, exclude=True, repr=False)
    """keepalived spelling; ``nopreempt = true`` is ``preempt = false``."""
    preempt_delay: Annotated[Seconds, _between(0, 1000, " s")] = 0.0
    state: Literal["MASTER", "BACKUP"] | None = None
    """keepalived's start-up hint; only a priority-255 owner starts as master at once."""
    virtual_ipaddress: Annotated[list[VirtualIPAddress], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    virtual_ipaddress_excluded: Annotated[list[VirtualIPAddress], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    no_virtual_ipaddress: bool = False
    """keepalived >= 2.2.8: no VIPs on purpose (notify scripts move the address); no warning."""
    virtual_routes: Annotated[list[Route], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    """Routes added while MASTER, removed on leaving it (keepalived ``virtual_routes``)."""
    virtual_rules: Annotated[list[Rule], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    """Policy rules added while MASTER, removed on leaving it (keepalived ``virtual_rules``)."""
    unicast_src_ip: IPAddr | None = None
    unicast_peer: Annotated[list[IPAddr], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    mcast_src_ip: IPAddr | None = None
    authentication: Authentication | None = None
    notify_master: _Notify = None
    notify_backup: _Notify = None
    notify_fault: _Notify = None
    notify_stop: _Notify = None
    notify: _Notify = None
    notify_conflict: _Notify = None
    notify_priority_changes: bool | None = None
    """MASTER_PRIORITY / BACKUP_PRIORITY lines on the notify FIFOs for this instance (default:
    ``global_defs.vrrp_notify_priority_changes``)."""
    garp_master_delay: NonNegSeconds = 5.0
    garp_master_repeat: NonNegInt = 5
    garp_master_refresh: NonNegSeconds = 0.0
    garp_lower_prio_repeat: NonNegInt = 5
    garp_lower_prio_delay: NonNegSeconds = 5.0
    lower_prio_no_advert: bool = False
    track_interface: Annotated[list[TrackInterfaceRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    track_script: Annotated[list[TrackScriptRef], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    track_file: Annotated[list[TrackFileRef], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    track_process: Annotated[list[TrackProcessRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    accept: bool = True
    """Accept packets to the VIPs while master.  keepalived's default, not RFC 5798's (AM-02)."""
    no_accept: bool | None = Field(None, exclude=True, repr=False)
    v3_checksum_as_v2: bool = False
    """v3/IPv4 checksum without the pseudo-header (RFC 9568 §5.2.8); default as keepalived."""
    down_timer_adverts: Annotated[Int, _between(1, 100)] = 3
    dont_track_primary: bool = False
    gateway_check: GatewayCheck | None = None
    conflict_detection: ConflictDetection | None = None
    fence_script: _Notify = None
    fence_timeout: PosSeconds = 10.0
    fence_failure: Literal["stay-backup", "proceed"] = "stay-backup"
    probe_vip_before_takeover: bool = False
    use_vmac: bool = False
    """keepalived ``use_vmac``: a macvlan with the VRRP virtual MAC (RFC 5798 §7.3) carries the VIPs."""
    vmac_name: str | None = None
    """The macvlan's name (keepalived ``use_vmac NAME``); default ``vrrp.VRID``."""
    vmac_address: MacAddr | None = None
    """Its MAC (keepalived ``use_vmac NAME MAC``); default 00:00:5e:00:01:VRID (IPv6 00:00:5e:00:02:VRID)."""
    vmac_xmit_base: bool = False
    """Send and receive adverts on ``interface`` instead of the macvlan (keepalived ``vmac_xmit_base``)."""
    witness: bool = False
    """Hold the VIPs only while holding this instance's key in etcd (``global_defs.witness``)."""
    announce: Announce | None = None
    """Announce the VIPs upstream through a BGP speaker (issue 17; docs/lvs-at-scale.md)."""

    _up = field_validator("state", mode="before")(classmethod(lambda cls, v: _upper(v)))
    _low = field_validator("fence_failure", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @model_validator(mode="before")
    @classmethod
    def _negations(cls, data: Any) -> Any:
        """keepalived's ``nopreempt`` / ``no_accept`` set ``preempt`` / ``accept``."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for neg, pos in (("nopreempt", "preempt"), ("no_accept", "accept")):
            flag = _as_bool(data.get(neg))
            if pos not in data and flag is not None:
                data[pos] = not flag
        return data

    @model_validator(mode="after")
    def _negations_agree(self) -> VrrpInstance:
        if self.nopreempt is not None and self.nopreempt == self.preempt:
            raise ValueError("preempt and nopreempt contradict each other; keep one")
        if self.no_accept is not None and self.no_accept == self.accept:
            raise ValueError("accept and no_accept contradict each other; keep one")
        return self

    @property
    def family(self) -> int:
        """4 or 6: the family of the first VIP, else of the first unicast peer, else of
        ``unicast_src_ip`` / ``mcast_src_ip``, else 4 (an instance without VIPs has a family too)."""
        if self.virtual_ipaddress:
            return self.virtual_ipaddress[0].family
        if self.unicast_peer:
            return self.unicast_peer[0].version
        for addr in (self.unicast_src_ip, self.mcast_src_ip):
            if addr is not None:
                return addr.version
        return 4

    def vip_dev(self, vip: VirtualIPAddress) -> str:
        """The interface ``vip`` goes on: its ``dev``, else the use_vmac macvlan or ``interface``."""
        return vip.dev or self.vmac_ifname or self.interface

    @property
    def vip_list(self) -> tuple[tuple[IPInterface, str | None], ...]:
        """``(address, label)`` of every VIP, in order (what the daemon adds and announces)."""
        return tuple((v.address, v.label) for v in self.virtual_ipaddress)

    @property
    def vip_interfaces(self) -> tuple[str, ...]:
        """Every interface a VIP (or an excluded VIP) goes on, the instance's first; no repeats."""
        out = [self.interface]
        for v in (*self.virtual_ipaddress, *self.virtual_ipaddress_excluded):
            dev = self.vip_dev(v)
            if dev not in out:
                out.append(dev)
        return tuple(out)

    @property
    def tracked_devs(self) -> tuple[str, ...]:
        """Other interfaces this instance's addresses and routes use, unless ``no_track``.

        keepalived tracks them as ``track_interface`` with weight 0: one that goes down (or
        does not exist) puts the instance in FAULT.
        """
        out: list[str] = []
        entries: list[VirtualIPAddress | Route] = [
            *self.virtual_ipaddress,
            *self.virtual_ipaddress_excluded,
            *self.virtual_routes,
        ]
        for e in entries:
            if e.dev and e.dev != self.interface and not e.no_track and e.dev not in out:
                out.append(e.dev)
        return tuple(out)

    @property
    def vmac_ifname(self) -> str | None:
        """The macvlan's name when ``use_vmac`` is on (default ``vrrp.VRID``, as keepalived)."""
        if not self.use_vmac:
            return None
        return self.vmac_name or f"vrrp.{self.virtual_router_id}"

    @property
    def vmac_mac(self) -> str | None:
        """The macvlan's MAC: ``vmac_address``, else the VRRP virtual MAC (RFC 5798 §7.3)."""
        if not self.use_vmac:
            return None
        if self.vmac_address is not None:
            return self.vmac_address
        return f"00:00:5e:00:{'02' if self.family == 6 else '01'}:{self.virtual_router_id:02x}"

    @property
    def advert_int_cs(self) -> int:
        """``advert_int`` in centiseconds (RFC 5798 §5.2.7 units)."""
        return round(self.advert_int * 100)

    @property
    def vips(self) -> tuple[IPInterface, ...]:
        return tuple(v.address for v in self.virtual_ipaddress)


class VrrpSyncGroup(_Model):
    """``vrrp_sync_group NAME``: instances that change state together."""

    group: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many), Field(min_length=1)]
    notify_master: _Notify = None
    notify_backup: _Notify = None
    notify_fault: _Notify = None
    notify_stop: _Notify = None
    notify: _Notify = None
    track_script: Annotated[list[TrackScriptRef], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    track_interface: Annotated[list[TrackInterfaceRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    track_file: Annotated[list[TrackFileRef], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    track_process: Annotated[list[TrackProcessRef], BeforeValidator(_one_or_many)] = Field(
        default_factory=list
    )
    witness: bool = False
    """The group holds one key in etcd for all its members (``global_defs.witness``)."""


# --------------------------------------------------------------------------- Config


#: Top-level tables and the model of each entry; ``None``: an LVS model, imported on
#: first use (see :func:`section_model`).
SECTIONS: dict[str, type[BaseModel] | None] = {
    "global_defs": GlobalDefs,
    "vrrp_script": VrrpScript,
    "track_file": TrackFile,
    "vrrp_track_process": VrrpTrackProcess,
    "vrrp_instance": VrrpInstance,
    "vrrp_sync_group": VrrpSyncGroup,
    "virtual_server_group": None,
    "virtual_server": None,
    "static_ipaddress": VirtualIPAddress,
    "static_routes": Route,
    "static_rules": Rule,
}
#: Top-level *lists* (keepalived's static_* blocks): each item is one entry of the model.
_LIST_SECTIONS = ("static_ipaddress", "static_routes", "static_rules")
_NAMED_SECTIONS = tuple(s for s in SECTIONS if s != "global_defs" and s not in _LIST_SECTIONS)


def section_model(section: str) -> type[BaseModel]:
    """The model of one entry of ``section`` (LVS models are imported here, lazily)."""
    model = SECTIONS[section]
    if model is None:
        from pyvrrp.config import lvs

        model = lvs.VirtualServer if section == "virtual_server" else lvs.VirtualServerGroup
        SECTIONS[section] = model
    return model


def _lvs_entries(section: str, value: Any) -> Any:
    """Validate raw LVS entries given to ``Config`` directly (build_config passes models)."""
    if not isinstance(value, Mapping) or not value:
        return value
    model = section_model(section)
    out = {}
    for name, item in value.items():
        try:
            out[name] = item if isinstance(item, model) else model.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"{section}.{name}: {exc}") from None
    return out


class Config(_Model):
    """A whole configuration.  Build it with :func:`build_config` (or ``load_config``)."""

    global_defs: GlobalDefs = Field(default_factory=GlobalDefs)
    vrrp_script: dict[str, VrrpScript] = Field(default_factory=dict)
    track_file: dict[str, TrackFile] = Field(default_factory=dict)
    vrrp_track_process: dict[str, VrrpTrackProcess] = Field(default_factory=dict)
    vrrp_instance: dict[str, VrrpInstance] = Field(default_factory=dict)
    vrrp_sync_group: dict[str, VrrpSyncGroup] = Field(default_factory=dict)
    virtual_server_group: _VirtualServerGroups = Field(default_factory=dict)
    virtual_server: _VirtualServers = Field(default_factory=dict)
    static_ipaddress: list[VirtualIPAddress] = Field(default_factory=list)
    """Addresses added at start and removed at stop, whatever the VRRP state (``dev`` required)."""
    static_routes: list[Route] = Field(default_factory=list)
    """Routes added at start and removed at stop."""
    static_rules: list[Rule] = Field(default_factory=list)
    """Policy rules added at start and removed at stop."""

    _source_file: str | None = PrivateAttr(default=None)
    _source_format: str | None = PrivateAttr(default=None)
    _locate: Locator | None = PrivateAttr(default=None)
    _frontend_warnings: list[ConfigIssue] = PrivateAttr(default_factory=list)
    """Set by a front-end (keepalived.conf: ignored/approximated keywords)."""

    @field_validator("virtual_server", "virtual_server_group", mode="before")
    @classmethod
    def _lvs(cls, value: Any, info: ValidationInfo) -> Any:
        return _lvs_entries(str(info.field_name), value)

    @model_validator(mode="before")
    @classmethod
    def _instance_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("vrrp_instance"), Mapping):
            data = dict(data)
            g = _globals_or_default(data.get("global_defs"))
            data["vrrp_instance"] = {
                k: inject_instance_defaults(v, g) for k, v in data["vrrp_instance"].items()
            }
        return data

    @property
    def source_file(self) -> str | None:
        """The file this config was loaded from, if any."""
        return self._source_file

    @property
    def source_format(self) -> str | None:
        """``"toml"`` or ``"keepalived"`` when loaded from a file."""
        return self._source_format

    def witness_key(self, instance: str) -> str | None:
        """The etcd key (under ``global_defs.witness.prefix``) gating ``instance``; None: unwitnessed.

        ``instance/<name>`` for ``witness = true`` on the instance, ``group/<name>`` when its
        ``vrrp_sync_group`` has it (one key for every member: they hold their VIPs together).
        """
        if self.global_defs.witness is None or instance not in self.vrrp_instance:
            return None
        group = self.sync_group_of(instance)
        if group is not None and self.vrrp_sync_group[group].witness:
            return f"group/{group}"
        return f"instance/{instance}" if self.vrrp_instance[instance].witness else None

    def sync_group_of(self, instance: str) -> str | None:
        """Name of the sync group ``instance`` belongs to, or None."""
        for name, group in self.vrrp_sync_group.items():
            if instance in group.group:
                return name
        return None

    def warnings(self) -> list[ConfigIssue]:
        """The front-end's warnings, then things that are legal but probably wrong (:func:`check`)."""
        return [*self._frontend_warnings, *check(self)]


def _globals_or_default(raw: Any) -> GlobalDefs:
    if isinstance(raw, GlobalDefs):
        return raw
    if isinstance(raw, Mapping):
        try:
            return GlobalDefs.model_validate(raw)
        except ValidationError:
            return GlobalDefs()  # its errors are reported where global_defs is validated
    return GlobalDefs()


def _looks_v6(raw: Mapping[str, Any]) -> bool:
    """The family VrrpInstance.family will find, read from the raw dict (before validation)."""
    for key in ("virtual_ipaddress", "unicast_peer", "unicast_src_ip", "mcast_src_ip"):
        items = raw.get(key)
        if isinstance(items, str | Mapping | IPv4Address | IPv6Address | IPv4Interface | IPv6Interface):
            items = [items]
        if isinstance(items, list) and items:
            first = items[0]
            if isinstance(first, Mapping):
                first = first.get("address")
            if isinstance(first, IPv6Address | IPv6Interface):
                return True
            if isinstance(first, str):
                return ":" in first.split()[0] if first.split() else False
            return False
    return False


def inject_instance_defaults(raw: Any, g: GlobalDefs) -> Any:
    """Fill an instance's unset keys from ``global_defs`` (keepalived's inheritance).

    ``version``: ``vrrp_version``, but 3 for IPv6 (RFC 3768 is IPv4 only);
    ``garp_master_*``, ``garp_lower_prio_repeat``, ``lower_prio_no_advert``: the ``vrrp_``
    globals.  Only plain dicts are touched; model instances are taken as they are.
    """
    if not isinstance(raw, Mapping):
        return raw
    out = dict(raw)
    out.setdefault("version", 3 if _looks_v6(raw) else g.vrrp_version)
    out.setdefault("garp_master_delay", g.vrrp_garp_master_delay)
    out.setdefault("garp_master_repeat", g.vrrp_garp_master_repeat)
    out.setdefault("garp_master_refresh", g.vrrp_garp_master_refresh)
    out.setdefault("garp_lower_prio_repeat", g.vrrp_garp_lower_prio_repeat)
    lower_delay = g.vrrp_garp_lower_prio_delay
    out.setdefault("garp_lower_prio_delay", out["garp_master_delay"] if lower_delay is None else lower_delay)
    out.setdefault("lower_prio_no_advert", g.vrrp_lower_prio_no_advert)
    return out


# --------------------------------------------------------------------------- building


@dataclass
class _Parts:
    """What validated, plus every name that was defined (valid or not)."""

    g: GlobalDefs = field(default_factory=GlobalDefs)
    items: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in _NAMED_SECTIONS})
    names: dict[str, set[str]] = field(default_factory=lambda: {s: set() for s in _NAMED_SECTIONS})
    dropped: dict[Loc, set[str]] = field(default_factory=dict)
    """(section, name) → fields that failed validation (the object holds placeholders)."""
    statics: dict[str, list[Any]] = field(default_factory=dict)
    """static_ipaddress / static_routes / static_rules entries that validated."""

    @classmethod
    def of(cls, cfg: Config) -> _Parts:
        parts = cls(g=cfg.global_defs)
        parts.statics = {sec: list(getattr(cfg, sec)) for sec in _LIST_SECTIONS}
        for sec in _NAMED_SECTIONS:
            parts.items[sec] = dict(getattr(cfg, sec))
            parts.names[sec] = set(parts.items[sec])
        return parts


_Dep = tuple[str, str, str]  # (section, name, field) a semantic error depends on
_Found = list[tuple[Loc, str, tuple[_Dep, ...]]]

#: Stand-ins for required fields that failed validation, so the rest can still be checked.
_PLACEHOLDERS: dict[type[BaseModel], dict[str, Any]] = {
    VrrpInstance: {"interface": "?", "virtual_router_id": 1},
}


def _partial(model: type[BaseModel], raw: Any, exc: ValidationError) -> tuple[BaseModel | None, set[str]]:
    """Re-validate ``raw`` without its failing keys: the semantic checks of the rest still run.

    Returns the object (or None when that is not possible) and the dropped key names; a
    semantic error that depends on a dropped key is not reported (it would be a guess).
    """
    if not isinstance(raw, Mapping):
        return None, set()
    dropped: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = err.get("loc", ())
        if not loc or not isinstance(loc[0], str):
            return None, set()  # a whole-object error: nothing sensible to keep
        dropped.add(loc[0])
    rest = {k: v for k, v in raw.items() if k not in dropped}
    placeholders = _PLACEHOLDERS.get(model, {})
    for name, info in model.model_fields.items():
        if name in dropped and info.is_required():
            if name not in placeholders:
                return None, set()
            rest[name] = placeholders[name]
    try:
        return model.model_validate(rest), dropped
    except ValidationError:
        return None, set()


def build_config(
    data: Mapping[str, Any],
    *,
    file: str | None = None,
    fmt: str | None = None,
    locate: Locator | None = None,
) -> Config:
    """Validate ``data`` (a front-end's dict) into a :class:`Config`, or raise :class:`ConfigError`.

    Each top-level table and each named entry is validated on its own, so one bad instance
    does not hide another's errors; then the semantic checks run over everything that
    validated.  The error lists every problem, sorted by line when ``locate`` knows lines.
    ``locate`` maps a key path tuple to ``(file, line)``; ``file``/``fmt`` are remembered on the
    config (``Config.source_file`` / ``source_format``) and ``locate`` is reused by
    :meth:`Config.warnings`.
    """
    found: list[ConfigIssue] = []

    def add(loc: Loc, message: str) -> None:
        where = locate(loc) if locate is not None else (file, None)
        found.append(ConfigIssue(format_path(loc), message, file=where[0] or file, line=where[1]))

    def validate(model: type[BaseModel], raw: Any, prefix: Loc) -> BaseModel | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for _, issue in issues_from_validation_error(exc, model=model, prefix=prefix, locate=locate):
                found.append(issue.located(file, None))
            obj, dropped = _partial(model, raw, exc)
            if obj is not None:
                parts.dropped[prefix] = dropped
            return obj

    if not isinstance(data, Mapping):
        raise ConfigError([ConfigIssue("", "the configuration must be a table of sections", file=file)])

    for key in data:
        if key not in SECTIONS:
            add((str(key),), f"unknown section{_suggest(str(key), SECTIONS)} (known: {', '.join(SECTIONS)})")

    parts = _Parts()
    raw_g = data.get("global_defs", {})
    g = validate(GlobalDefs, raw_g, ("global_defs",))
    parts.g = g if isinstance(g, GlobalDefs) else _globals_or_default(raw_g)

    for sec in _NAMED_SECTIONS:
        raw_sec = data.get(sec, {})
        if not isinstance(raw_sec, Mapping):
            add((sec,), f"must be a table of named entries ([{sec}.NAME]), got {show_value(raw_sec)}")
            continue
        for name, raw in raw_sec.items():
            name = str(name)
            parts.names[sec].add(name)
            if sec not in ("virtual_server",) and (not name or any(c.isspace() for c in name)):
                add((sec, name), "names must be non-empty and contain no blanks")
            if sec == "vrrp_instance":
                raw = inject_instance_defaults(raw, parts.g)
            obj = validate(section_model(sec), raw, (sec, name))
            if obj is not None:
                parts.items[sec][name] = obj

    statics: dict[str, list[Any]] = {}
    for sec in _LIST_SECTIONS:
        raw_list = data.get(sec)
        if raw_list is None:
            continue
        if isinstance(raw_list, str | Mapping):
            raw_list = [raw_list]
        if not isinstance(raw_list, list):
            add((sec,), f"must be a list, got {show_value(raw_list)}")
            continue
        good = []
        for i, raw in enumerate(raw_list):
            obj = validate(section_model(sec), raw, (sec, i))
            if obj is not None:
                good.append(obj)
        statics[sec] = good
    parts.statics = statics

    for loc, message, deps in _semantic_errors(parts):
        if not any(f in parts.dropped.get((sec, name), ()) for sec, name, f in deps):
            add(loc, message)

    if found:
        raise ConfigError(_sorted(found))
    cfg = Config.model_validate({"global_defs": parts.g, **parts.items, **statics})
    cfg._source_file = file
    cfg._source_format = fmt
    cfg._locate = locate
    return cfg


def validate_config(cfg: Config) -> None:
    """Run the semantic checks on an already-built :class:`Config`; raise :class:`ConfigError`."""
    errs = _semantic_errors(_Parts.of(cfg))
    if errs:
        raise ConfigError(ConfigIssue(format_path(loc), msg) for loc, msg, _ in errs)


def _sorted(issues: Iterable[ConfigIssue]) -> list[ConfigIssue]:
    indexed = list(enumerate(issues))
    indexed.sort(key=lambda p: (p[1].file or "", p[1].line if p[1].line is not None else 1 << 30, p[0]))
    return [i for _, i in indexed]


def _suggest(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fam(family: int) -> str:
    return "IPv6" if family == 6 else "IPv4"


# --------------------------------------------------------------------------- semantic errors


def _semantic_errors(p: _Parts) -> _Found:
    out: _Found = []
    instances: dict[str, VrrpInstance] = p.items["vrrp_instance"]
    for name, inst in instances.items():
        out.extend(_instance_errors(name, inst, p))
    out.extend(_vrid_clashes(instances))
    out.extend(_vmac_clashes(instances))
    out.extend(_sync_group_errors(p))
    out.extend(_witness_errors(p))
    out.extend(_lvs_errors(p))
    out.extend(_static_errors(p))
    out.extend(_sync_daemon_errors(p))
    out.extend(_announce_errors(p))
    return out


def _announce_errors(p: _Parts) -> _Found:
    """``announce`` tables: what each needs from the rest of the config (issue 17)."""
    out: _Found = []
    instances: dict[str, VrrpInstance] = p.items["vrrp_instance"]
    for name, inst in instances.items():
        a = inst.announce
        if a is None:
            continue
        base: Loc = ("vrrp_instance", name, "announce")
        for key in ("vrrp_instance", "primary", "quorum"):
            if key in a.model_fields_set:
                why = {
                    "vrrp_instance": "this table already follows its own instance",
                    "primary": "the VRRP role decides who is preferred",
                    "quorum": "it counts healthy real servers; a vrrp_instance has none "
                    "(put announce on the virtual_server)",
                }[key]
                out.append(((*base, key), f"not allowed in a vrrp_instance's announce: {why}", ()))
        if not a.prefixes and not inst.virtual_ipaddress:
            msg = "nothing to announce: the instance has no virtual_ipaddress; give prefixes"
            out.append((base, msg, ()))
    for key, vs in p.items["virtual_server"].items():
        a = getattr(vs, "announce", None)
        if a is None:
            continue
        base = ("virtual_server", key, "announce")
        if a.vrrp_instance is not None and a.vrrp_instance not in p.names["vrrp_instance"]:
            have = ", ".join(sorted(p.names["vrrp_instance"])) or "none"
            msg = f"no vrrp_instance named {a.vrrp_instance!r} (have: {have})"
            out.append(((*base, "vrrp_instance"), msg, ()))
        if a.mode == "active-backup" and a.vrrp_instance is None and "primary" not in a.model_fields_set:
            out.append(
                (
                    base,
                    "active-backup needs a role: vrrp_instance = NAME (MASTER is preferred) or "
                    "primary = true / false (without VRRP)",
                    (),
                )
            )
        if "on_speaker_lost" in a.model_fields_set and a.vrrp_instance is None:
            msg = "needs vrrp_instance (the instance that would go FAULT)"
            out.append(((*base, "on_speaker_lost"), msg, ()))
        if not a.prefixes and key.startswith(("fwmark:", "group:")):
            msg = "a fwmark or group virtual_server has no single address: give prefixes"
            out.append(((*base, "prefixes"), msg, ()))
    return out


def _static_errors(p: _Parts) -> _Found:
    out: _Found = []
    for i, vip in enumerate(p.statics.get("static_ipaddress", [])):
        if vip.dev is None:
            out.append(
                (("static_ipaddress", i), "needs dev (keepalived would use default_interface, eth0)", ())
            )
    addrs = p.statics.get("static_ipaddress", [])
    names: list[tuple[Loc, str | None]] = [
        *((("static_ipaddress", i, "dev"), v.dev) for i, v in enumerate(addrs)),
        *((("static_routes", i, "dev"), r.dev) for i, r in enumerate(p.statics.get("static_routes", []))),
        *((("static_rules", i, "iif"), r.iif) for i, r in enumerate(p.statics.get("static_rules", []))),
        *((("static_rules", i, "oif"), r.oif) for i, r in enumerate(p.statics.get("static_rules", []))),
    ]
    for loc, ifname in names:
        bad = _ifname_problem(ifname)
        if bad:
            out.append((loc, bad, ()))
    return out


def _advert_int_error(inst: VrrpInstance) -> str | None:
    """TMR-01: v2 whole seconds 1..255; v3 1..4095 centiseconds; never 0 (RFC 9568 EID 8301)."""
    a = inst.advert_int
    if not math.isfinite(a) or a <= 0:
        return (
            f"must be > 0, got {_num(a)} (an interval of 0 makes every backup take over; "
            "RFC 9568 erratum 8301)"
        )
    if inst.version == 2:
        if not a.is_integer():
            return (
                f"VRRPv2 advertises whole seconds (RFC 3768 §5.3.7), got {_num(a)}; "
                "use version = 3 for sub-second intervals"
            )
        if not 1 <= a <= 255:
            return f"must be 1..255 s for VRRPv2 (RFC 3768 §5.3.7), got {_num(a)}"
        return None
    cs = a * 100
    if abs(cs - round(cs)) > 1e-6:
        return f"must be a multiple of 0.01 s (VRRPv3 counts centiseconds, RFC 5798 §5.2.7), got {a}"
    if not 1 <= round(cs) <= 4095:
        return f"must be 0.01..40.95 s for VRRPv3 (RFC 9568 §6.1), got {_num(a)}"
    return None


def _instance_errors(name: str, inst: VrrpInstance, p: _Parts) -> _Found:
    base: Loc = ("vrrp_instance", name)
    out: _Found = []

    def err(loc: Loc, message: str, *deps: str) -> None:
        out.append(((*base, *loc), message, tuple(("vrrp_instance", name, d) for d in deps)))

    msg = _advert_int_error(inst)
    if msg:
        err(("advert_int",), msg, "advert_int", "version")

    for loc, ifname in (
        (("interface",), inst.interface),
        *((("virtual_ipaddress", i, "dev"), v.dev) for i, v in enumerate(inst.virtual_ipaddress)),
        *(
            (("virtual_ipaddress_excluded", i, "dev"), v.dev)
            for i, v in enumerate(inst.virtual_ipaddress_excluded)
        ),
        *((("virtual_routes", i, "dev"), r.dev) for i, r in enumerate(inst.virtual_routes)),
        *((("virtual_rules", i, "iif"), r.iif) for i, r in enumerate(inst.virtual_rules)),
        *((("virtual_rules", i, "oif"), r.oif) for i, r in enumerate(inst.virtual_rules)),
        *((("track_interface", i, "name"), t.name) for i, t in enumerate(inst.track_interface)),
        (("vmac_name",), inst.vmac_name),
    ):
        bad = _ifname_problem(ifname)
        if bad:
            err(loc, bad, str(loc[0]))

    # use_vmac (keepalived.conf(5)): the macvlan is a link of its own on `interface`
    if inst.use_vmac:
        if inst.vmac_ifname == inst.interface:
            err(
                ("vmac_name",),
                f"is the instance's interface {inst.interface}: name the macvlan differently",
                "vmac_name",
                "interface",
            )
        for key in ("conflict_detection", "probe_vip_before_takeover"):
            if getattr(inst, key):
                err(
                    (key,),
                    "cannot work with use_vmac: every node answers ARP for the VIP with the same virtual "
                    "MAC, so an answer from the other node looks like our own; drop one of the two",
                    key,
                    "use_vmac",
                )
        if inst.unicast_peer and not inst.vmac_xmit_base:
            err(
                ("vmac_xmit_base",),
                "use_vmac with unicast_peer needs vmac_xmit_base = true (unicast adverts arrive on the base "
                "interface, not on the macvlan; keepalived sets it for you)",
                "use_vmac",
                "unicast_peer",
                "vmac_xmit_base",
            )
    else:
        for key in ("vmac_name", "vmac_address", "vmac_xmit_base"):
            if getattr(inst, key):
                err(
                    (key,),
                    "has no effect without use_vmac = true; add use_vmac or remove it",
                    key,
                    "use_vmac",
                )

    # addresses (PKT-08).  No VIPs is legal, as in keepalived (see check()).
    vips = inst.virtual_ipaddress
    if inst.no_virtual_ipaddress and vips:
        err(
            ("no_virtual_ipaddress",),
            "contradicts the virtual_ipaddress entries; keep one",
            "virtual_ipaddress",
        )
    family = inst.family
    for key, entries in (
        ("virtual_ipaddress", vips),
        ("virtual_ipaddress_excluded", inst.virtual_ipaddress_excluded),
    ):
        for i, vip in enumerate(entries):
            bad = _special_address(vip.address.ip)
            if bad:
                err(
                    (key, i),
                    f"{vip.address.ip} is {bad}: a virtual address must be an ordinary unicast one",
                    key,
                )
    for i, peer in enumerate(inst.unicast_peer):
        bad = _special_address(peer)
        if bad:
            err(
                ("unicast_peer", i),
                f"{peer} is {bad}: unicast peers are ordinary unicast addresses",
                "unicast_peer",
            )
    for i, vip in enumerate(vips):
        if vip.family != family:
            err(
                ("virtual_ipaddress", i),
                f"{_fam(vip.family)} address {vip.address} in an {_fam(family)} instance: one instance "
                "carries one family (RFC 5798 §5.2.9); use another instance or virtual_ipaddress_excluded",
                "virtual_ipaddress",
            )
    fam_deps = ("virtual_ipaddress", "unicast_peer")
    if family == 6 and inst.version == 2:
        err(("version",), "IPv6 needs VRRP version 3 (RFC 3768 is IPv4 only)", "version", *fam_deps)
    for key in ("unicast_src_ip", "mcast_src_ip"):
        addr = getattr(inst, key)
        if addr is not None and addr.version != family:
            err((key,), f"{_fam(addr.version)} address {addr} in an {_fam(family)} instance", key, *fam_deps)
    for i, peer in enumerate(inst.unicast_peer):
        if peer.version != family:
            err(
                ("unicast_peer", i),
                f"{_fam(peer.version)} peer {peer} in an {_fam(family)} instance: "
                "peers must be of the VIPs' family",
                *fam_deps,
            )

    # election: the owner always preempts (RFC 5798 §6.4.2 / §6.4.3)
    if inst.priority == 255 and not inst.preempt:
        err(
            ("nopreempt" if inst.nopreempt is not None else "preempt",),
            "priority 255 (address owner) always preempts; remove nopreempt or lower the priority",
            "priority",
            "preempt",
            "nopreempt",
        )

    # authentication (SEC-01)
    if inst.authentication is not None:
        if inst.version == 3:
            err(
                ("authentication",),
                "VRRPv3 has no authentication (RFC 5798 §9); remove it or use version = 2",
                "authentication",
                "version",
            )
        elif inst.authentication.auth_type == "AH" and inst.family == 6:
            err(
                ("authentication", "auth_type"),
                "auth_type 'AH' exists only for VRRPv2 over IPv4 (keepalived); use 'PASS' or none",
                "authentication",
            )

    out.extend(_ref_errors(base, inst.track_script, inst.track_file, p, inst.track_process))

    gc = inst.gateway_check
    if gc is not None:
        if gc.min_reachable > len(gc.targets):
            err(
                ("gateway_check", "min_reachable"),
                f"must be <= the number of targets ({len(gc.targets)}), got {gc.min_reachable}",
            )
        if gc.method == "arp":
            for i, t in enumerate(gc.targets):
                if t.version == 6:
                    err(
                        ("gateway_check", "targets", i), f"method 'arp' probes IPv4 only, got {t}; use 'icmp'"
                    )
        seen: set[IPAddress] = set()
        for i, t in enumerate(gc.targets):
            if t in seen:
                err(("gateway_check", "targets", i), f"{t} is listed twice")
            seen.add(t)
        if gc.on_isolated == "demote" and gc.weight == 0:
            err(
                ("gateway_check", "weight"),
                "must be non-zero with on_isolated = 'demote' (the priority an isolated node loses)",
            )
    return out


def _ifname_problem(name: str | None) -> str | None:
    """Linux link names: 1..15 bytes (IFNAMSIZ 16), no blanks, '/' or ':'."""
    if name is None:
        return None
    if not name or name in (".", ".."):
        return f"{name!r} is not a valid interface name"
    if len(name.encode()) > 15:
        return f"{name!r} is not a valid interface name (at most 15 characters)"
    if any(c.isspace() or c in "/:" for c in name):
        return f"{name!r} is not a valid interface name (no blanks, '/' or ':'; use label for aliases)"
    return None


def _special_address(addr: IPAddress) -> str | None:
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_loopback:
        return "a loopback address"
    if isinstance(addr, IPv4Address) and addr == IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def _ref_errors(
    base: Loc,
    scripts: list[TrackScriptRef],
    files: list[TrackFileRef],
    p: _Parts,
    processes: Sequence[TrackProcessRef] = (),
) -> _Found:
    out: _Found = []
    lists: tuple[tuple[str, Sequence[TrackScriptRef | TrackFileRef | TrackProcessRef], str], ...] = (
        ("track_script", scripts, "vrrp_script"),
        ("track_file", files, "track_file"),
        ("track_process", processes, "vrrp_track_process"),
    )
    for key, refs, sec in lists:
        known = p.names[sec]
        for i, ref in enumerate(refs):
            if ref.name not in known:
                have = (
                    f" (defined: {', '.join(sorted(known))})" if known else f" (no [{sec}.NAME] is defined)"
                )
                out.append(((*base, key, i), f"no {sec} named {ref.name!r}{have}", ()))
    return out


def _vmac_clashes(instances: Mapping[str, VrrpInstance]) -> _Found:
    """Two instances cannot own one macvlan (its name is one link)."""
    out: _Found = []
    owner: dict[str, str] = {}
    for name, inst in instances.items():
        vmac = inst.vmac_ifname
        if vmac is None:
            continue
        if vmac in owner:
            other = owner[vmac]
            deps = tuple(("vrrp_instance", n, f) for n in (name, other) for f in ("use_vmac", "vmac_name"))
            out.append(
                (
                    ("vrrp_instance", name, "vmac_name"),
                    f"macvlan {vmac} is already used by vrrp_instance.{format_path((other,))}; give each "
                    "instance its own vmac_name",
                    deps,
                )
            )
        else:
            owner[vmac] = name
    return out


def _vrid_clashes(instances: Mapping[str, VrrpInstance]) -> _Found:
    """A VRID is unique per interface and family (RFC 5798 §3; VMAC 00-00-5E-00-01-{VRID})."""
    out: _Found = []
    seen: dict[tuple[str, int, int], list[str]] = {}
    fields = ("interface", "virtual_router_id", "virtual_ipaddress", "unicast_peer")
    for name, inst in instances.items():
        key = (inst.interface, inst.virtual_router_id, inst.family)
        for other in seen.get(key, []):
            o = instances[other]
            disjoint_unicast = (
                inst.unicast_peer and o.unicast_peer and not set(inst.unicast_peer) & set(o.unicast_peer)
            )
            if not disjoint_unicast:
                deps = tuple(("vrrp_instance", n, f) for n in (name, other) for f in fields)
                out.append(
                    (
                        ("vrrp_instance", name, "virtual_router_id"),
                        f"VRID {inst.virtual_router_id} is already used on {inst.interface} "
                        f"({_fam(inst.family)}) by vrrp_instance.{format_path((other,))}; a VRID must be "
                        "unique per interface and address family",
                        deps,
                    )
                )
                break
        seen.setdefault(key, []).append(name)
    return out


def _sync_group_errors(p: _Parts) -> _Found:
    out: _Found = []
    member_of: dict[str, str] = {}
    instances = p.names["vrrp_instance"]
    groups: dict[str, VrrpSyncGroup] = p.items["vrrp_sync_group"]
    for gname, grp in groups.items():
        base: Loc = ("vrrp_sync_group", gname)
        for i, member in enumerate(grp.group):
            loc = (*base, "group", i)
            if member not in instances:
                out.append((loc, f"no vrrp_instance named {member!r}", ()))
            elif member in member_of:
                where = member_of[member]
                msg = f"{member!r} is listed twice"
                if where != gname:
                    msg = f"{member!r} is already in vrrp_sync_group {where!r} (one group per instance)"
                out.append((loc, msg, ()))
            else:
                member_of[member] = gname
        out.extend(_ref_errors(base, grp.track_script, grp.track_file, p, grp.track_process))
    return out


def _sync_daemon_errors(p: _Parts) -> _Found:
    syncd = p.g.lvs_sync_daemon
    if syncd is None or syncd.instance is None or syncd.instance in p.names["vrrp_instance"]:
        return []
    have = ", ".join(sorted(p.names["vrrp_instance"])) or "none"
    # keepalived logs "Unable to find vrrp instance ... clearing lvs_syncd config" and runs
    # without the sync daemon: established connections would then die at the next failover
    return [
        (
            ("global_defs", "lvs_sync_daemon", "instance"),
            f"no vrrp_instance named {syncd.instance!r} (have: {have}): name the instance the sync "
            "daemon follows, or leave it out to run master and backup daemons all the time",
            (),
        )
    ]


def _witness_errors(p: _Parts) -> _Found:
    """``witness = true`` needs ``global_defs.witness``; one key per VIP holder; no owner."""
    out: _Found = []
    instances: dict[str, VrrpInstance] = p.items["vrrp_instance"]
    groups: dict[str, VrrpSyncGroup] = p.items["vrrp_sync_group"]
    enabled = p.g.witness is not None
    if not enabled and "witness" in p.dropped.get(("global_defs",), set()):
        return out  # global_defs.witness is there but invalid: its own errors say why
    in_witnessed_group = {m: g for g, grp in groups.items() if grp.witness for m in grp.group}
    for gname, grp in groups.items():
        if grp.witness and not enabled:
            out.append(
                (
                    ("vrrp_sync_group", gname, "witness"),
                    "needs global_defs.witness (the etcd endpoints the key lives in)",
                    (),
                )
            )
    for name, inst in instances.items():
        base: Loc = ("vrrp_instance", name)
        witnessed = inst.witness or name in in_witnessed_group
        if inst.witness and not enabled:
            out.append(
                ((*base, "witness"), "needs global_defs.witness (the etcd endpoints the key lives in)", ())
            )
        if inst.witness and name in in_witnessed_group:
            out.append(
                (
                    (*base, "witness"),
                    f"this instance is witnessed through vrrp_sync_group {in_witnessed_group[name]!r} "
                    "already (one key for the group); remove one of the two",
                    (),
                )
            )
        if witnessed and enabled and inst.priority == 255:
            out.append(
                (
                    (*base, "priority"),
                    "an address owner (255) becomes MASTER at start without any gate (RFC 5798 §6.4.1), "
                    "so the witness could not stop it; use priority 254 or lower with witness",
                    (),
                )
            )
    return out


def _lvs_errors(p: _Parts) -> _Found:
    out: _Found = []
    if not p.names["virtual_server"]:
        return out
    from pyvrrp.config import lvs

    groups = p.names["virtual_server_group"]
    for key in sorted(p.names["virtual_server"]):
        try:
            vs_key = lvs.parse_vs_key(key)
        except ValueError as exc:
            out.append((("virtual_server", key), str(exc), ()))
            continue
        if vs_key.kind == "group" and vs_key.group not in groups:
            out.append((("virtual_server", key), f"no virtual_server_group named {vs_key.group!r}", ()))
    return out


# --------------------------------------------------------------------------- warnings


def check(cfg: Config, *, locate: Locator | None = None) -> list[ConfigIssue]:
    """Warnings: legal but probably wrong.  Each issue has ``severity == "warning"``."""
    locate = locate or cfg._locate
    found: list[ConfigIssue] = []

    def warn(loc: Loc, message: str) -> None:
        file, line = locate(loc) if locate is not None else (cfg.source_file, None)
        found.append(
            ConfigIssue(
                format_path(loc), message, file=file or cfg.source_file, line=line, severity="warning"
            )
        )

    if not cfg.vrrp_instance:
        warn((), "no vrrp_instance is defined: pyvrrp would have nothing to do")

    vs_addrs = _virtual_server_addresses(cfg)
    scripts_used: set[str] = set()
    files_used: set[str] = set()
    processes_used: set[str] = set()
    vip_owner: dict[Any, str] = {}
    has_scripts = bool(cfg.vrrp_script)
    first_script: Loc | None = ("vrrp_script", next(iter(cfg.vrrp_script))) if cfg.vrrp_script else None
    for name, inst in cfg.vrrp_instance.items():
        base: Loc = ("vrrp_instance", name)
        scripts_used.update(r.name for r in inst.track_script)
        files_used.update(r.name for r in inst.track_file)
        processes_used.update(r.name for r in inst.track_process)
        for k in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify", "fence_script"):
            if getattr(inst, k):
                has_scripts = True
                first_script = first_script or (*base, k)
        if not inst.virtual_ipaddress and not inst.no_virtual_ipaddress:
            warn(
                (*base,),
                "no virtual_ipaddress: adverts carry no address; notify scripts and state still work "
                "(keepalived: 'No VIP specified; at least one is sensible'; no_virtual_ipaddress says "
                "it is on purpose)",
            )
        if not inst.preempt and inst.state == "MASTER":
            warn(
                (*base, "state"),
                "state MASTER with nopreempt: a restarted node takes the VIPs back anyway; "
                "use state BACKUP on every node for a sticky master",
            )
        if not inst.preempt and inst.preempt_delay:
            warn((*base, "preempt_delay"), "has no effect with nopreempt")
        if not inst.accept:
            hits = sorted(str(a) for a in vs_addrs if any(a == v.ip for v in inst.vips))
            if hits:
                warn(
                    (*base, "no_accept" if inst.no_accept is not None else "accept"),
                    f"no_accept while virtual_server(s) use this instance's VIPs ({', '.join(hits)}): "
                    "IPVS needs the director to accept VIP traffic locally (AM-02); keep accept = true",
                )
        auth = inst.authentication
        if auth is not None and auth.auth_type == "AH" and inst.state == "MASTER":
            warn(
                (*base, "state"),
                "state MASTER with auth_type AH: started as BACKUP, as keepalived does (a new master "
                "must first hear the group's AH sequence number)",
            )
        if inst.authentication is not None and len(inst.authentication.auth_pass) > 8:
            warn(
                (*base, "authentication", "auth_pass"),
                "longer than 8 characters: only the first 8 are used (as keepalived)",
            )
        if inst.priority == 255 and (
            any(r.weight for r in inst.track_interface)
            or any(r.weight or cfg.vrrp_script.get(r.name, _NO_SCRIPT).weight for r in inst.track_script)
            or any(
                r.weight or (cfg.vrrp_track_process[r.name].weight if r.name in cfg.vrrp_track_process else 0)
                for r in inst.track_process
            )
        ):
            warn(
                (*base, "priority"),
                "an address owner (255) keeps its priority: tracking weights do not apply to it",
            )
        if inst.family == 6 and inst.vips and not inst.vips[0].ip.is_link_local:
            warn(
                (*base, "virtual_ipaddress"),
                f"the first IPv6 address should be link-local (RFC 5798 §5.2.9), got {inst.vips[0]}; "
                "keepalived sends it anyway and pyvrrp accepts that, but strict RFC 9568 routers "
                "(erratum 8300) discard such adverts: put e.g. 'fe80::1/64' first",
            )
        if inst.version == 2 and inst.v3_checksum_as_v2:
            warn((*base, "v3_checksum_as_v2"), "has no effect on a version 2 instance")
        if inst.unicast_src_ip is not None and inst.unicast_src_ip in inst.unicast_peer:
            warn((*base, "unicast_peer"), f"contains this node's own unicast_src_ip {inst.unicast_src_ip}")
        if inst.fence_script is None and "fence_failure" in inst.model_fields_set:
            warn((*base, "fence_failure"), "has no effect without fence_script")
        gc = inst.gateway_check
        if gc is not None:
            if gc.timeout > gc.interval:
                warn(
                    (*base, "gateway_check", "timeout"), "is longer than interval: probe rounds will overlap"
                )
            if gc.on_isolated == "fault" and gc.weight:
                warn((*base, "gateway_check", "weight"), "is only used with on_isolated = 'demote'")
        for i, vip in enumerate(inst.virtual_ipaddress):
            other = vip_owner.get(vip.address.ip)
            if other is not None and other != name:
                warn(
                    (*base, "virtual_ipaddress", i),
                    f"{vip.address.ip} is also a VIP of vrrp_instance.{format_path((other,))}",
                )
            vip_owner.setdefault(vip.address.ip, name)

    for gname, grp in cfg.vrrp_sync_group.items():
        scripts_used.update(r.name for r in grp.track_script)
        files_used.update(r.name for r in grp.track_file)
        processes_used.update(r.name for r in grp.track_process)
        if len(grp.group) == 1:
            warn(("vrrp_sync_group", gname, "group"), "has only one member; a sync group needs two or more")
    wit = cfg.global_defs.witness
    if wit is not None:
        if not any(cfg.witness_key(n) for n in cfg.vrrp_instance):
            warn(
                ("global_defs", "witness"),
                "no vrrp_instance or vrrp_sync_group has witness = true: the witness gates nothing",
            )
        if wit.on_unavailable == "vrrp":
            warn(
                ("global_defs", "witness", "on_unavailable"),
                "'vrrp': while etcd is unreachable the witnessed VIPs fall back to plain VRRP and the "
                "other guards, so the one-holder guarantee is void until etcd is back",
            )
    for sname in cfg.vrrp_script:
        if sname not in scripts_used:
            warn(("vrrp_script", sname), "is defined but not used by any track_script")
    for fname in cfg.track_file:
        if fname not in files_used:
            warn(("track_file", fname), "is defined but not used by any instance or sync group")
    for pname, tp in cfg.vrrp_track_process.items():
        if pname not in processes_used:
            warn(("vrrp_track_process", pname), "is defined but not used by any track_process")
        if not tp.uses_cmdline and len(tp.process.encode()) > _COMM_MAX_LEN:
            warn(
                ("vrrp_track_process", pname, "process"),
                f"{tp.process!r} is longer than the {_COMM_MAX_LEN} characters the kernel keeps as a "
                f"process name ({tp.process.encode()[:_COMM_MAX_LEN].decode(errors='replace')!r}), so it "
                "never matches (keepalived neither); set full_command to match the command line",
            )
    if has_scripts and not cfg.global_defs.enable_script_security:
        at: Loc = ("global_defs", "enable_script_security")
        if locate is not None and locate(at)[1] is None and first_script is not None:
            at = first_script  # no global_defs line to point at: point at the first script
        warn(
            at,
            "scripts are configured but global_defs.enable_script_security is off "
            "(keepalived refuses this in -t)",
        )
    return found


_NO_SCRIPT = VrrpScript(script="-")
_COMM_MAX_LEN = 15  # TASK_COMM_LEN 16 minus the NUL (pyvrrp.health.process.COMM_MAX_LEN)


def _virtual_server_addresses(cfg: Config) -> set[IPAddress]:
    addrs: set[IPAddress] = set()
    if not cfg.virtual_server:
        return addrs
    from pyvrrp.config import lvs

    for key in cfg.virtual_server:
        try:
            vs_key = lvs.parse_vs_key(key)
        except ValueError:
            continue
        if vs_key.kind == "addr" and vs_key.address is not None:
            addrs.add(vs_key.address)
        elif vs_key.kind == "group" and vs_key.group in cfg.virtual_server_group:
            for k in cfg.virtual_server_group[vs_key.group].keys():  # noqa: SIM118 (a method)
                if k.address is not None:
                    addrs.add(k.address)
    return addrs
