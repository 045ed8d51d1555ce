"""Pure IPVS reconciliation planner: observed kernel table + desired table -> operations.

No I/O here.  :func:`plan` compares what the kernel has (``observed``) with what the
configuration and the health checks want (``desired``) and returns the smallest list of
operations that makes the kernel match -- touching only services pyvrrp owns.

Ownership: ``owned`` is the set of service keys pyvrrp may change or delete (the
manager passes the keys it desires plus those it recorded as created by itself).  A
service in the kernel that is not owned (created by ipvsadm, another daemon...) is never
edited or deleted, even if it has the same VIP as one of ours -- except that a *desired*
key is always owned, so configuring a service adopts an existing identical entry
(after a restart, a matching table yields no operations at all).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Literal

Method = Literal["DR", "NAT", "TUN"]

#: IPVS forwarding method numbers (include/uapi/linux/ip_vs.h IP_VS_CONN_F_*).
FWD_METHOD: dict[str, int] = {"NAT": 0, "TUN": 2, "DR": 3}
FWD_METHOD_NAME: dict[int, str] = {v: k for k, v in FWD_METHOD.items()}
#: Service flags (IP_VS_SVC_F_*).
SVC_F_PERSISTENT = 0x1
SVC_F_HASHED = 0x2
SVC_F_ONEPACKET = 0x4


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """Identity of an IPVS service: (family, protocol, address, port) or (family, fwmark).

    ``family`` is 4 or 6; for fwmark services ``protocol`` is "FWM", ``address`` is "" and
    ``port`` 0 (the kernel keys fwmark services by family and mark only).
    """

    family: int
    protocol: str
    address: str
    port: int
    fwmark: int = 0

    @classmethod
    def addr(cls, address: str, port: int, protocol: str = "TCP") -> ServiceKey:
        ip = ipaddress.ip_address(address)
        return cls(ip.version, protocol.upper(), ip.compressed, port)

    @classmethod
    def mark(cls, fwmark: int, family: int = 4) -> ServiceKey:
        return cls(family, "FWM", "", 0, fwmark)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark}" + (" IPv6" if self.family == 6 else "")
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{self.protocol} {host}:{self.port}"


@dataclass(frozen=True, slots=True, order=True)
class Dest:
    """A real server (IPVS destination) of a service."""

    address: str
    port: int
    weight: int = 1
    method: Method = "DR"
    u_threshold: int = 0  # keepalived uthreshold: no new connections above it (0: no limit)
    l_threshold: int = 0  # keepalived lthreshold: used again below it (0: the kernel's 3/4 of u)

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        limits = f" u={self.u_threshold} l={self.l_threshold}" if self.u_threshold or self.l_threshold else ""
        return f"{host}:{self.port} {self.method} w={self.weight}{limits}"


@dataclass(frozen=True, slots=True)
class Service:
    """An IPVS service with its scheduling attributes and destinations.

    ``netmask`` is the persistence granularity: a dotted IPv4 mask for IPv4 services, a
    prefix length as a string ("128", "64") for IPv6 ones; ``None`` means the default
    (255.255.255.255 / 128).
    """

    key: ServiceKey
    sched: str = "wlc"
    persistence_timeout_s: int = 0
    netmask: str | None = None
    ops: bool = False
    dests: tuple[Dest, ...] = ()

    def __post_init__(self) -> None:
        if self.netmask is None:  # normalise so kernel reads compare equal to desired
            object.__setattr__(self, "netmask", "128" if self.key.family == 6 else "255.255.255.255")

    def attrs(self) -> tuple[str, int, str, bool]:
        """Attributes that an EditService can change (compared by the planner)."""
        return (self.sched, self.persistence_timeout_s, self.effective_netmask(), self.ops)

    def effective_netmask(self) -> str:
        if self.netmask is not None:
            return self.netmask
        return "128" if self.key.family == 6 else "255.255.255.255"

    def dest_map(self) -> dict[tuple[str, int], Dest]:
        return {d.key: d for d in self.dests}


Table = dict[ServiceKey, Service]
KernelTable = Table
DesiredTable = Table


# ----------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class AddService:
    service: Service  # without dests: AddDest ops follow

    def __str__(self) -> str:
        s = self.service
        extra = f" persistent {s.persistence_timeout_s}" if s.persistence_timeout_s else ""
        return f"add service {s.key} sched {s.sched}{extra}"


@dataclass(frozen=True, slots=True)
class EditService:
    service: Service
    changes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"edit service {self.service.key} ({', '.join(self.changes)})"


@dataclass(frozen=True, slots=True)
class DelService:
    key: ServiceKey

    def __str__(self) -> str:
        return f"delete service {self.key}"


@dataclass(frozen=True, slots=True)
class AddDest:
    key: ServiceKey
    dest: Dest

    def __str__(self) -> str:
        return f"add dest {self.dest} to {self.key}"


@dataclass(frozen=True, slots=True)
class EditDest:
    key: ServiceKey
    dest: Dest
    changes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return f"edit dest {self.dest} of {self.key} ({', '.join(self.changes)})"


@dataclass(frozen=True, slots=True)
class DelDest:
    key: ServiceKey
    dest: Dest

    def __str__(self) -> str:
        return f"delete dest {self.dest.address}:{self.dest.port} from {self.key}"


Op = AddService | EditService | DelService | AddDest | EditDest | DelDest


def op_to_dict(op: Op) -> dict[str, object]:
    """JSON-friendly form of an operation (``pyvrrp ipvs plan --json``)."""
    kind = type(op).__name__
    out: dict[str, object] = {"op": kind, "text": str(op)}
    if isinstance(op, AddService | EditService):
        out["service"] = str(op.service.key)
        out["sched"] = op.service.sched
        out["persistence_timeout_s"] = op.service.persistence_timeout_s
    else:
        out["service"] = str(op.key)
    if isinstance(op, AddDest | EditDest | DelDest):
        dest: dict[str, object] = {
            "address": op.dest.address,
            "port": op.dest.port,
            "weight": op.dest.weight,
            "method": op.dest.method,
        }
        if op.dest.u_threshold or op.dest.l_threshold:
            dest |= {"u_threshold": op.dest.u_threshold, "l_threshold": op.dest.l_threshold}
        out["dest"] = dest
    if isinstance(op, EditService | EditDest):
        out["changes"] = list(op.changes)
    return out


# ----------------------------------------------------------------------------- planner


def _service_changes(have: Service, want: Service) -> tuple[str, ...]:
    changes: list[str] = []
    if have.sched != want.sched:
        changes.append(f"sched {have.sched}->{want.sched}")
    if have.persistence_timeout_s != want.persistence_timeout_s:
        changes.append(f"persistence {have.persistence_timeout_s}->{want.persistence_timeout_s}")
    if have.effective_netmask() != want.effective_netmask():
        changes.append(f"netmask {have.effective_netmask()}->{want.effective_netmask()}")
    if have.ops != want.ops:
        changes.append(f"ops {have.ops}->{want.ops}")
    return tuple(changes)


def _dest_changes(have: Dest, want: Dest) -> tuple[str, ...]:
    changes: list[str] = []
    if have.weight != want.weight:
        changes.append(f"weight {have.weight}->{want.weight}")
    if have.method != want.method:
        changes.append(f"method {have.method}->{want.method}")
    if have.u_threshold != want.u_threshold:
        changes.append(f"uthreshold {have.u_threshold}->{want.u_threshold}")
    if have.l_threshold != want.l_threshold:
        changes.append(f"lthreshold {have.l_threshold}->{want.l_threshold}")
    return tuple(changes)


def plan(observed: KernelTable, desired: DesiredTable, owned: set[ServiceKey]) -> list[Op]:
    """Operations turning ``observed`` into ``desired`` for the services we own.

    Order: deletions of services no longer wanted first, then per desired service (sorted
    by key, so the output is deterministic): add/edit the service, delete stale
    destinations, add new ones, edit changed ones.  Keys of ``desired`` are owned by
    definition; services in ``observed`` that are neither desired nor in ``owned`` are
    left untouched.
    """
    ops: list[Op] = []
    for key in sorted(observed):
        if key in owned and key not in desired:
            ops.append(DelService(key))
    for key in sorted(desired):
        want = desired[key]
        have = observed.get(key)
        if have is None:
            ops.append(AddService(replace(want, dests=())))
            ops.extend(AddDest(key, d) for d in sorted(want.dests))
            continue
        changes = _service_changes(have, want)
        if changes:
            ops.append(EditService(replace(want, dests=()), changes))
        have_d, want_d = have.dest_map(), want.dest_map()
        ops.extend(DelDest(key, have_d[dk]) for dk in sorted(have_d) if dk not in want_d)
        ops.extend(AddDest(key, want_d[dk]) for dk in sorted(want_d) if dk not in have_d)
        for dk in sorted(want_d):
            if dk in have_d:
                dchanges = _dest_changes(have_d[dk], want_d[dk])
                if dchanges:
                    ops.append(EditDest(key, want_d[dk], dchanges))
    return ops


def apply_to_table(table: Table, ops: list[Op]) -> Table:
    """Pure simulation of ``ops`` on a table (tests and ``--dry-run`` previews)."""
    out: dict[ServiceKey, Service] = dict(table)
    for op in ops:
        if isinstance(op, AddService):
            if op.service.key in out:
                raise ValueError(f"{op}: service exists")
            out[op.service.key] = replace(op.service, dests=())
        elif isinstance(op, EditService):
            old = out[op.service.key]
            out[op.service.key] = replace(op.service, dests=old.dests)
        elif isinstance(op, DelService):
            del out[op.key]
        else:
            svc = out[op.key]
            dmap = svc.dest_map()
            if isinstance(op, AddDest):
                if op.dest.key in dmap:
                    raise ValueError(f"{op}: dest exists")
                dmap[op.dest.key] = op.dest
            elif isinstance(op, EditDest):
                if op.dest.key not in dmap:
                    raise ValueError(f"{op}: no such dest")
                dmap[op.dest.key] = op.dest
            else:
                del dmap[op.dest.key]
            out[op.key] = replace(svc, dests=tuple(sorted(dmap.values())))
    return out
