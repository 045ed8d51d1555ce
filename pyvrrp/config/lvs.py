"""LVS (IPVS) configuration models: virtual servers, real servers and health checkers.

These mirror keepalived's ``virtual_server`` / ``real_server`` / ``*_CHECK`` blocks
(keepalived.conf(5)) with TOML-friendly names.  The top-level ``Config``
(``pyvrrp.config.models``) holds::

    virtual_server: dict[str, VirtualServer]             # key: "IP:PORT" | "fwmark:N" | "group:NAME"
    virtual_server_group: dict[str, VirtualServerGroup]

Use :func:`parse_vs_key` to interpret a ``virtual_server`` key.

Keepalived differences worth knowing:

* ``lb_kind``/``lvs_method`` defaults to **NAT** in keepalived; we keep that default so a
  converted keepalived.conf behaves the same, but LVS pairs in front of web farms almost
  always want ``DR`` -- say it explicitly.
* ``lb_algo``/``lvs_sched`` has no default in keepalived (the kernel then refuses); we default
  to ``wlc``, ipvsadm's default.
* ``depool_floor`` is pyvrrp's own: a minimum number (int) or fraction (float in [0, 1] or
  a ``"50%"`` string) of real servers that are never removed *because of a failing check*.
  It protects a farm from a checker that fails everywhere at once (a broken check URL, a
  DNS outage) emptying the pool.  When it holds servers in the pool it logs loudly.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from pyvrrp.config.announce import Announce

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Every scheduler of Linux IPVS (net/netfilter/ipvs/ip_vs_*.c) as of 6.x.
SCHEDULERS: tuple[str, ...] = (
    "rr",
    "wrr",
    "lc",
    "wlc",
    "lblc",
    "lblcr",
    "dh",
    "sh",
    "sed",
    "nq",
    "fo",
    "ovf",
    "mh",
    "twos",
)
Scheduler = Literal[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"
]
LvsMethod = Literal["DR", "NAT", "TUN"]
Protocol = Literal["TCP", "UDP", "SCTP"]
DnsType = Literal["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "PTR"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


# ----------------------------------------------------------------------------- checkers


class _CheckBase(_Model):
    """Fields every checker has (keepalived.conf(5) "checker common")."""

    kind: ClassVar[str] = ""

    retry: int = Field(1, ge=0, validation_alias=AliasChoices("retry", "nb_get_retry"))
    """Extra attempts after a failed one before the server is declared down."""
    delay_before_retry: float | None = Field(1.0, ge=0)
    """Seconds between a failed attempt and its retry (None: the delay_loop)."""
    warmup: float | None = Field(None, ge=0)
    """Random delay (0..warmup s) before the first check; default: none."""
    delay_loop: float | None = Field(None, gt=0)
    """Per-checker interval override; default: the virtual server's ``delay_loop``."""


class _ConnectCheck(_CheckBase):
    connect_ip: IPAddress | None = None
    """Address to check; default: the real server's ``ip``."""
    connect_port: int | None = Field(None, ge=0, le=65535)
    """Port to check; default: the real server's ``port`` (DNS: 53)."""
    connect_timeout: float = Field(5.0, gt=0)
    bindto: IPAddress | None = None
    bind_port: int | None = Field(None, ge=0, le=65535)


class TcpCheck(_ConnectCheck):
    """TCP_CHECK: a TCP connect succeeds within ``connect_timeout``."""

    kind: ClassVar[str] = "TCP_CHECK"


class UrlSpec(_Model):
    """One ``url`` of HTTP_GET / SSL_GET."""

    path: str = "/"
    status_code: int | list[int] | None = None
    """Accepted status(es); default: any 2xx (keepalived)."""
    digest: str | None = None
    """MD5 hex digest of the body (``genhash``)."""
    regex: str | None = None
    """The body must match this regular expression (Python ``re.search``)."""
    regex_no_match: bool = False
    """Invert ``regex``: the body must *not* match."""

    @field_validator("digest")
    @classmethod
    def _digest_hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", v):
            raise ValueError("digest must be 32 hex characters (MD5)")
        return v.lower() if v else v

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc
        return v

    @field_validator("status_code")
    @classmethod
    def _status_range(cls, v: int | list[int] | None) -> int | list[int] | None:
        codes = [v] if isinstance(v, int) else (v or [])
        for c in codes:
            if not 100 <= c <= 599:
                raise ValueError(f"status_code {c} is not an HTTP status")
        return v

    def accepts_status(self, status: int) -> bool:
        if self.status_code is None:
            return 200 <= status <= 299
        if isinstance(self.status_code, int):
            return status == self.status_code
        return status in self.status_code


class HttpGet(_ConnectCheck):
    """HTTP_GET: every ``url`` answers with an accepted status / digest / regex."""

    kind: ClassVar[str] = "HTTP_GET"
    delay_before_retry: float | None = Field(3.0, ge=0)  # keepalived's HTTP/SSL default
    url: list[UrlSpec] = Field(default_factory=lambda: [UrlSpec()], min_length=1)
    virtualhost: str | None = None
    """Host header; default: the virtual server's ``virtualhost``, else connect_ip."""

    @field_validator("url", mode="before")
    @classmethod
    def _one_url(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class SslGet(HttpGet):
    """SSL_GET: HTTP_GET over TLS (certificates are not verified, as in keepalived)."""

    kind: ClassVar[str] = "SSL_GET"
    enable_sni: bool = True


class MiscCheck(_CheckBase):
    """MISC_CHECK: run ``misc_path``; exit 0 = up.

    With ``misc_dynamic`` an exit status of 2..255 means up with weight ``status - 2``
    (keepalived.conf(5)); 1 means down.
    """

    kind: ClassVar[str] = "MISC_CHECK"
    retry: int = Field(0, ge=0, validation_alias=AliasChoices("retry", "nb_get_retry"))  # keepalived: 0
    misc_path: str = Field(min_length=1)
    misc_timeout: float | None = Field(None, gt=0)
    """Seconds before the script is killed (and counted as failed); default: delay_loop."""
    misc_dynamic: bool = False


class PingCheck(_ConnectCheck):
    """PING_CHECK: an ICMP echo reply within ``connect_timeout``."""

    kind: ClassVar[str] = "PING_CHECK"


class DnsCheck(_ConnectCheck):
    """DNS_CHECK: a UDP query for ``name``/``type`` gets a NOERROR answer with records."""

    kind: ClassVar[str] = "DNS_CHECK"
    retry: int = Field(3, ge=0, validation_alias=AliasChoices("retry", "nb_get_retry"))  # keepalived: 3
    delay_before_retry: float | None = Field(None, ge=0)  # keepalived: the delay_loop
    type: DnsType = "SOA"
    name: str = "."

    _up_type = field_validator("type", mode="before")(classmethod(lambda cls, v: _upper(v)))


Checker = TcpCheck | HttpGet | SslGet | MiscCheck | PingCheck | DnsCheck

CHECK_FIELDS: dict[str, str] = {
    "TCP_CHECK": "tcp_check",
    "HTTP_GET": "http_get",
    "SSL_GET": "ssl_get",
    "MISC_CHECK": "misc_check",
    "PING_CHECK": "ping_check",
    "DNS_CHECK": "dns_check",
}


def _one_or_many(v: Any) -> Any:
    if v is None:
        return []
    return [v] if isinstance(v, dict | _Model) else v


# ----------------------------------------------------------------------------- servers


class RealServer(_Model):
    """A ``real_server``: a destination of an IPVS service plus its health checkers.

    Each checker key may hold one table or a list of tables (keepalived allows several
    checkers per real server; the server is up only while *all* of them pass).
    """

    ip: IPAddress
    port: int | None = Field(None, ge=0, le=65535)
    """Destination port; default: the virtual server's port (0 for fwmark services)."""
    weight: int = Field(1, ge=0, le=65535)
    lvs_method: LvsMethod | None = Field(None, validation_alias=AliasChoices("lvs_method", "lb_kind"))
    """Per-server forwarding method override; default: the virtual server's."""
    inhibit_on_failure: bool | None = None
    """Set weight 0 instead of removing on failure; default: the virtual server's setting."""
    notify_up: str | None = None
    notify_down: str | None = None
    uthreshold: int | None = Field(None, ge=0, le=4294967295)
    """Upper connection threshold: IPVS sends no new connections above it (0 = none)."""
    lthreshold: int | None = Field(None, ge=0, le=4294967295)
    """Lower connection threshold: new connections resume below it."""

    tcp_check: list[TcpCheck] = Field(
        default_factory=list, validation_alias=AliasChoices("TCP_CHECK", "tcp_check")
    )
    http_get: list[HttpGet] = Field(
        default_factory=list, validation_alias=AliasChoices("HTTP_GET", "http_get")
    )
    ssl_get: list[SslGet] = Field(default_factory=list, validation_alias=AliasChoices("SSL_GET", "ssl_get"))
    misc_check: list[MiscCheck] = Field(
        default_factory=list, validation_alias=AliasChoices("MISC_CHECK", "misc_check")
    )
    ping_check: list[PingCheck] = Field(
        default_factory=list, validation_alias=AliasChoices("PING_CHECK", "ping_check")
    )
    dns_check: list[DnsCheck] = Field(
        default_factory=list, validation_alias=AliasChoices("DNS_CHECK", "dns_check")
    )

    _many = field_validator(
        "tcp_check", "http_get", "ssl_get", "misc_check", "ping_check", "dns_check", mode="before"
    )(classmethod(lambda cls, v: _one_or_many(v)))
    _up_method = field_validator("lvs_method", mode="before")(classmethod(lambda cls, v: _upper(v)))

    @model_validator(mode="after")
    def _thresholds(self) -> RealServer:
        # the kernel refuses a destination whose lower threshold is above its upper one (ERANGE)
        if (self.lthreshold or 0) > (self.uthreshold or 0):
            upper = self.uthreshold or 0
            raise ValueError(
                f"lthreshold {self.lthreshold} is above uthreshold {upper}: IPVS refuses it; "
                "set uthreshold above lthreshold, or drop lthreshold"
            )
        return self

    @property
    def checkers(self) -> list[Checker]:
        """All checkers of this server, in a stable order."""
        out: list[Checker] = []
        for field in CHECK_FIELDS.values():
            out.extend(getattr(self, field))
        return out


class SorryServer(_Model):
    ip: IPAddress
    port: int | None = Field(None, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        """Accept ``"IP PORT"`` (keepalived), ``"IP:PORT"``, ``"[v6]:PORT"`` or a bare IP."""
        if not isinstance(v, str):
            return v
        s = v.strip()
        if " " in s:
            ip, port = s.split(None, 1)
            return {"ip": ip, "port": int(port)}
        try:
            return {"ip": str(ipaddress.ip_address(s.strip("[]")))}
        except ValueError:
            key = parse_vs_key(s)
            return {"ip": key.address, "port": key.port}


class VirtualServer(_Model):
    """A ``virtual_server``: one IPVS service (or a group of them)."""

    protocol: Protocol = "TCP"
    lvs_sched: Scheduler = Field("wlc", validation_alias=AliasChoices("lvs_sched", "lb_algo"))
    lvs_method: LvsMethod = Field("NAT", validation_alias=AliasChoices("lvs_method", "lb_kind"))
    """Forwarding method. Keepalived's default is NAT; LVS-DR setups must say ``DR``."""
    persistence_timeout: int | None = Field(None, ge=0)
    """Seconds of client affinity (IPVS persistent service); None/0: not persistent."""
    persistence_granularity: IPAddress | int | None = None
    """Netmask grouping clients for persistence: a dotted mask (255.255.255.0) or a prefix
    length (24; the only form for IPv6 services, e.g. 64)."""
    quorum: int = Field(1, ge=0)
    """Minimum sum of weights of live servers; below it ``sorry_server`` takes over."""
    hysteresis: int = Field(0, ge=0)
    quorum_up: str | None = None
    quorum_down: str | None = None
    sorry_server: SorryServer | None = None
    sorry_server_inhibit: bool = False
    sorry_server_lvs_method: LvsMethod | None = None
    inhibit_on_failure: bool = False
    alpha: bool = False
    """Start every real server as *down* until its first successful check."""
    omega: bool = False
    """Run notify_down / quorum_down for every server when the service is removed."""
    ha_suspend: bool = False
    """Run checks (and own the service) only while a VRRP instance is MASTER."""
    delay_loop: float = Field(60.0, gt=0)
    """Seconds between two checks of a real server (keepalived default 60)."""
    virtualhost: str | None = None
    ops: bool = False
    """One-packet scheduling (UDP)."""
    depool_floor: int | float | None = None
    """pyvrrp: min count (int) or fraction (float 0..1, or "N%") of servers a failing check
    never removes."""
    real_server: list[RealServer] = Field(default_factory=list)
    announce: Announce | None = None
    """Announce this service's address upstream through a BGP speaker (issue 17)."""

    _up_proto = field_validator("protocol", "lvs_method", "sorry_server_lvs_method", mode="before")(
        classmethod(lambda cls, v: _upper(v))
    )
    _low_sched = field_validator("lvs_sched", mode="before")(classmethod(lambda cls, v: _lower(v)))

    @field_validator("depool_floor", mode="before")
    @classmethod
    def _floor(cls, v: Any) -> Any:
        if isinstance(v, str):
            s = v.strip()
            if s.endswith("%"):
                pct = float(s[:-1])
                if not 0 <= pct <= 100:
                    raise ValueError("depool_floor percentage must be within 0..100")
                return pct / 100.0
            v = float(s) if "." in s else int(s)
        if isinstance(v, bool):
            raise ValueError("depool_floor must be a count or a fraction")
        if isinstance(v, int) and v < 0:
            raise ValueError("depool_floor count must be >= 0")
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("depool_floor fraction must be within 0..1 (use an int for a count)")
        return v

    @field_validator("persistence_granularity")
    @classmethod
    def _granularity(cls, v: IPAddress | int | None) -> IPAddress | int | None:
        if isinstance(v, int) and not 0 <= v <= 128:
            raise ValueError("persistence_granularity prefix length must be within 0..128")
        if isinstance(v, ipaddress.IPv4Address):
            bits = f"{int(v):032b}"
            if "01" in bits:
                raise ValueError(f"persistence_granularity {v} is not a contiguous netmask")
        return v

    def depool_floor_count(self, total: int) -> int:
        """How many of ``total`` servers a failing check may never remove."""
        if self.depool_floor is None or total <= 0:
            return 0
        if isinstance(self.depool_floor, float):
            return min(total, math.ceil(self.depool_floor * total - 1e-9))
        return min(total, self.depool_floor)


class VirtualServerGroup(_Model):
    """A ``virtual_server_group``: several VIP:PORTs (or fwmarks) sharing one real-server set.

    ``address`` entries: ``"IP:PORT"``, ``"[v6]:PORT"`` or an IPv4 range ``"10.0.0.1-20:80"``
    (last octet range, as keepalived's ``10.0.0.1-20 80``).
    """

    address: list[str] = Field(default_factory=list)
    fwmark: list[int] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _parse_all(cls, v: list[str]) -> list[str]:
        for entry in v:
            _expand_group_entry(entry)
        return v

    @field_validator("fwmark")
    @classmethod
    def _marks(cls, v: list[int]) -> list[int]:
        for m in v:
            if not 1 <= m <= 0xFFFFFFFF:
                raise ValueError(f"fwmark {m} out of range 1..2^32-1")
        return v

    def keys(self) -> list[VsKey]:
        """Expanded service keys (addresses first, then fwmarks)."""
        out: list[VsKey] = []
        for entry in self.address:
            out.extend(_expand_group_entry(entry))
        out.extend(VsKey(kind="fwmark", fwmark=m) for m in self.fwmark)
        return out


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class VsKey:
    """A parsed ``virtual_server`` key."""

    kind: Literal["addr", "fwmark", "group"]
    address: IPAddress | None = None
    port: int = 0
    fwmark: int = 0
    group: str = ""

    def __str__(self) -> str:
        if self.kind == "fwmark":
            return f"fwmark:{self.fwmark}"
        if self.kind == "group":
            return f"group:{self.group}"
        if isinstance(self.address, ipaddress.IPv6Address):
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def parse_vs_key(key: str) -> VsKey:
    """Parse ``"IP:PORT"``, ``"[v6]:PORT"``, ``"fwmark:N"`` or ``"group:NAME"``.

    Also accepts keepalived's space form ``"IP PORT"`` / ``"fwmark N"`` / ``"group NAME"``.
    Raises ``ValueError`` with a readable message.
    """
    s = key.strip()
    low = s.lower()
    for prefix in ("fwmark:", "fwmark "):
        if low.startswith(prefix):
            try:
                mark = int(s[len(prefix) :].strip(), 0)
            except ValueError:
                raise ValueError(f"virtual_server key {key!r}: fwmark must be an integer") from None
            if not 1 <= mark <= 0xFFFFFFFF:
                raise ValueError(f"virtual_server key {key!r}: fwmark out of range 1..2^32-1")
            return VsKey(kind="fwmark", fwmark=mark)
    for prefix in ("group:", "group "):
        if low.startswith(prefix):
            name = s[len(prefix) :].strip()
            if not name:
                raise ValueError(f"virtual_server key {key!r}: empty group name")
            return VsKey(kind="group", group=name)
    if " " in s:
        host, _, port_s = s.rpartition(" ")
    elif s.startswith("["):
        host, sep, port_s = s[1:].partition("]:")
        if not sep:
            raise ValueError(f"virtual_server key {key!r}: expected [IPv6]:PORT")
    else:
        host, sep, port_s = s.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(
                f"virtual_server key {key!r}: expected IP:PORT, [IPv6]:PORT, fwmark:N or group:NAME"
            )
    try:
        addr = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        raise ValueError(f"virtual_server key {key!r}: {host!r} is not an IP address") from None
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"virtual_server key {key!r}: port {port_s!r} is not an integer") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"virtual_server key {key!r}: port {port} out of range")
    return VsKey(kind="addr", address=addr, port=port)


def _expand_group_entry(entry: str) -> list[VsKey]:
    m = re.fullmatch(r"\s*(\d+\.\d+\.\d+\.)(\d+)-(\d+)[:\s]\s*(\d+)\s*", entry)
    if m:
        prefix, first, last, port = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        if not first <= last <= 255:
            raise ValueError(f"virtual_server_group entry {entry!r}: bad range {first}-{last}")
        return [parse_vs_key(f"{prefix}{i}:{port}") for i in range(first, last + 1)]
    key = parse_vs_key(entry)
    if key.kind != "addr":
        raise ValueError(f"virtual_server_group entry {entry!r}: expected IP:PORT (use fwmark = [...])")
    return [key]


__all__ = [
    "CHECK_FIELDS",
    "SCHEDULERS",
    "Checker",
    "DnsCheck",
    "HttpGet",
    "LvsMethod",
    "MiscCheck",
    "PingCheck",
    "RealServer",
    "SorryServer",
    "SslGet",
    "TcpCheck",
    "UrlSpec",
    "VirtualServer",
    "VirtualServerGroup",
    "VsKey",
    "parse_vs_key",
]
