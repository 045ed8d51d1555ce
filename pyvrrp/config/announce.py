"""The ``announce`` table: announce service IPs upstream through a BGP speaker (issue 17).

One model, used in two places::

    [vrrp_instance.VI_51]
    announce = { speaker = "exabgp", mode = "active-backup" }        # the VIPs, MED by VRRP role

    [virtual_server."198.51.100.10:80"]
    announce = { speaker = "exabgp", mode = "active-active", quorum = 1 }

pyvrrp never speaks BGP itself: it decides *what* to announce with *which* attributes
(:mod:`pyvrrp.bgp.decide`) and hands that to a speaker the operator already runs
(ExaBGP through ``pyvrrp exabgp-process``; see docs/lvs-at-scale.md).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = ["MED_MAX", "Announce", "Network"]

MED_MAX = 4294967295
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a prefix is a string like '198.51.100.10/32', got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a prefix: {exc}") from None


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


Prefix = Annotated[Network, BeforeValidator(_network)]
Med = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MED_MAX)]


class Announce(BaseModel):
    """``announce``: what to announce through which speaker, and when (docs/config.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    speaker: Literal["exabgp", "bird"]
    """The BGP speaker that carries the routes (``exabgp``: ``pyvrrp exabgp-process``;
    ``bird``: routes in ``kernel_table`` that BIRD 2 learns)."""
    mode: Literal["active-backup", "active-active"] = "active-backup"
    """``active-backup``: every node announces, the VRRP MASTER with ``med_preferred``, the
    others with ``med_backup``; ``active-active``: every healthy node announces ``med_preferred``
    and the router spreads flows by ECMP."""
    prefixes: list[Prefix] = Field(default_factory=list)
    """Default: the VIPs as /32 or /128 (a virtual_server: its address)."""
    med_preferred: Med = 100
    med_backup: Med = 200
    quorum: Annotated[int, BeforeValidator(_no_bool), Field(ge=0)] = 1
    """virtual_server only: announce while at least this many real servers are healthy."""
    vrrp_instance: str | None = None
    """virtual_server only: the instance whose role (MASTER/BACKUP), FAULT and gateway check
    the announcement follows.  Without it an active-backup virtual_server needs ``primary``."""
    primary: bool = False
    """Without VRRP: this node is the preferred one (active-backup)."""
    next_hop: (
        Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(str)] | Literal["self"]
    ) = "self"
    withdraw_drain: Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=60)] = 1.0
    """Seconds between the withdraw and the VIP release at stop (the router moves traffic away)."""
    orphan_hold: Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=600)] | None = None
    """Seconds the speaker keeps the last announcement after losing pyvrrp (kill -9) before it
    withdraws.  Default: active-backup following VRRP, 4 x advert_int + 1 s (the time the
    backup needs to take the VIP, so the router never prefers a node without it); otherwise 0."""
    kernel_table: Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=4294967295)] = 100
    """speaker = "bird": the kernel routing table pyvrrp writes and BIRD's kernel protocol learns."""
    bird_socket: str = "/run/bird/bird.ctl"
    """speaker = "bird": BIRD's control socket, for ``birdc show protocols`` (session state)."""
    prepend: Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=10)] = 0
    """active-backup, speaker = "exabgp": the backup's announcements carry ``local_as`` this
    many extra times in their AS path, for routers that ignore (or do not compare) the MED."""
    local_as: Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=4294967295)] | None = None
    """The director's AS (ExaBGP's ``local-as``): needed by ``prepend``, since ExaBGP sends an
    AS path it is given as it is."""
    bfd: bool = False
    """speaker = "bird": the BGP session runs BFD (BIRD's ``protocol bfd`` and ``bfd on`` in the
    operator's BIRD config; docs/lvs-at-scale.md), so the router drops this node's routes
    within BFD's detection time, not the hold time, when the node goes silent.  pyvrrp reads
    ``birdc show bfd sessions`` into ``state`` and counts the speaker lost without a BFD
    session that is up.  ExaBGP has no BFD."""
    on_speaker_lost: Literal["keep-vip", "fault"] = "keep-vip"
    """vrrp_instance only: when the speaker goes away, keep running (``keep-vip``) or go FAULT
    so the VRRP backup, whose speaker still announces, takes the VIP (``fault``)."""

    @field_validator("next_hop", mode="before")
    @classmethod
    def _next_hop(cls, value: Any) -> Any:
        if value == "self":
            return value
        if not isinstance(value, str):
            raise ValueError(f"next_hop is 'self' or an IP address, got {value!r}")
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"next_hop is 'self' or an IP address, got {value!r}") from None

    @model_validator(mode="after")
    def _meds(self) -> Announce:
        if self.kernel_table in (253, 254, 255):
            raise ValueError(
                f"kernel_table {self.kernel_table} is the kernel's default/main/local table: "
                "give BIRD a table of its own (e.g. 100)"
            )
        if self.prepend:
            if self.mode != "active-backup":
                raise ValueError('prepend is for mode = "active-backup" (it lengthens the backup\'s AS path)')
            if self.speaker != "exabgp":
                raise ValueError(
                    'prepend is for speaker = "exabgp"; with BIRD, prepend in its export filter by the '
                    "route's metric (if krt_metric = med_backup then bgp_path.prepend(YOUR_AS))"
                )
            if self.local_as is None:
                raise ValueError("prepend needs local_as (the AS ExaBGP announces from, its local-as)")
        if self.bfd and self.speaker != "bird":
            raise ValueError(
                f'bfd = true needs speaker = "bird": {self.speaker} has no BFD; with ExaBGP, shorten '
                "the hold time in its neighbor block instead (e.g. hold-time 3)"
            )
        for key in ("kernel_table", "bird_socket"):
            if self.speaker != "bird" and key in self.model_fields_set:
                raise ValueError(f'{key} is for speaker = "bird"')
        if self.mode == "active-backup" and self.med_backup <= self.med_preferred:
            raise ValueError(
                f"med_backup ({self.med_backup}) must be greater than med_preferred ({self.med_preferred}): "
                "BGP prefers the lower MED, so the backup would win"
            )
        return self
