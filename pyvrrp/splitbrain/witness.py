"""The quorum witness's decisions: may this node hold a witnessed VIP now?  (issue 13)

Theory of operation
-------------------
VRRP elects; the witness only gates who may *hold* the VIPs.  A node holds a
witnessed instance's VIPs only while it holds that instance's key in etcd
(``<prefix>/instance/<name>`` or ``<prefix>/group/<name>``), put there in one
transaction bound to this node's lease.  etcd deletes the key when the lease
expires; a key is created only when absent, so two nodes never hold it at once
*in etcd*.  What remains is the gap between etcd's view and the VIPs on the
wire: the holder must have removed its VIPs before etcd could let anybody else
create the key.  That is the local deadline kept here:

    deadline = start of the last successful keepalive (or grant) + TTL - margin

measured on this node's monotonic clock.  The keepalive *request* was sent at
``sent_at``; etcd renewed the lease when the request arrived, which is no
earlier, so etcd's expiry is at least ``TTL`` (by etcd's clock) after
``sent_at``.  With clock rates within ``1 +- rho`` of true time, the holder has
given up its VIPs by true time ``sent_at + (TTL - margin)/(1 - rho) + removal``
and etcd expires no earlier than ``sent_at + TTL/(1 + rho)``.  So at most one
holder exists whenever::

    margin > removal + scheduling delay + 2 * rho * TTL        (rho << 1)

(:func:`minimum_margin` gives the exact bound; tests/test_witness_gate.py checks
it against a simulated etcd with Hypothesis).  etcd only ever makes expiry
*later* than this (its lessor checks every 500 ms, a new leader extends every
lease), which is the safe direction.

The gate (:class:`WitnessGate`) is pure: every method takes ``now``; the
runtime (:mod:`pyvrrp.runtime.witness`) sends the requests, reports their
results here and acts on the answers.  Policy when etcd is unreachable
(``on_unavailable``): ``release`` gives the VIPs up at the deadline and denies
takeovers until the lease is back; ``vrrp`` keeps VRRP's decision (the holder
keeps its VIPs, a takeover is allowed unwitnessed) and, when etcd returns,
every unwitnessed MASTER must acquire its key or give its VIPs up.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Holding",
    "KeyValue",
    "LeaseClock",
    "Step",
    "WitnessGate",
    "lease_deadline",
    "minimum_margin",
]

Policy = Literal["release", "vrrp"]


def lease_deadline(sent_at: float, ttl_s: float, margin_s: float) -> float:
    """The local monotonic time by which the holder must have given its VIPs up."""
    return sent_at + ttl_s - margin_s


def minimum_margin(ttl_s: float, *, drift: float, removal_s: float) -> float:
    """The smallest safe margin for clock rates within ``1 +- drift`` and a VIP removal of ``removal_s``.

    Solves ``(ttl - m)/(1 - drift) + removal < ttl/(1 + drift)`` for ``m`` (module docstring).
    """
    return ttl_s - (1 - drift) * (ttl_s / (1 + drift) - removal_s)


@dataclass(frozen=True, slots=True)
class KeyValue:
    """What a witness key holds: who holds the VIPs and since which term (JSON in etcd)."""

    router_id: str
    address: str
    priority: int
    instance: str
    epoch: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "router_id": self.router_id,
                "address": self.address,
                "priority": self.priority,
                "instance": self.instance,
                "epoch": self.epoch,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> KeyValue | None:
        """None when the value is not ours (another tool wrote the key, or garbage)."""
        try:
            d = json.loads(raw)
            return cls(
                str(d["router_id"]),
                str(d["address"]),
                int(d["priority"]),
                str(d["instance"]),
                int(d["epoch"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class LeaseClock:
    """One etcd lease as this node sees it: its id and the local deadline (module docstring)."""

    ttl_s: float
    margin_s: float
    lease_id: int | None = None
    deadline: float | None = None

    def granted(self, lease_id: int, ttl_s: float, *, sent_at: float) -> None:
        """A LeaseGrant sent at ``sent_at`` returned ``lease_id`` with ``ttl_s``."""
        self.lease_id = lease_id
        self.deadline = lease_deadline(sent_at, min(ttl_s, self.ttl_s), self.margin_s)

    def renewed(self, lease_id: int, ttl_s: float, *, sent_at: float) -> bool:
        """A LeaseKeepAlive sent at ``sent_at`` returned ``ttl_s``; False: the lease is gone.

        A late answer to an older request never shortens the deadline (each answer is a
        valid lower bound of etcd's expiry; the latest is the best).
        """
        if lease_id != self.lease_id:
            return self.lease_id is not None  # an answer about a lease we dropped already
        if ttl_s <= 0:
            self.lost()
            return False
        deadline = lease_deadline(sent_at, min(ttl_s, self.ttl_s), self.margin_s)
        if self.deadline is None or deadline > self.deadline:
            self.deadline = deadline
        return True

    def lost(self) -> None:
        self.lease_id = None
        self.deadline = None

    def valid(self, now: float) -> bool:
        return self.deadline is not None and now < self.deadline

    def remaining_s(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now


@dataclass(frozen=True, slots=True)
class Holding:
    """A key this node holds: the fencing token is the revision of our put."""

    key: str
    revision: int
    lease_id: int


class Step(enum.Enum):
    """What a takeover needs (:meth:`WitnessGate.takeover`)."""

    ACQUIRE = "acquire"  # ask etcd for the key first
    ALLOW = "allow"  # we hold it already (a sync group's second member)
    FALLBACK = "fallback"  # etcd unreachable, policy vrrp: VRRP decides, unwitnessed
    DENY = "deny"  # etcd unreachable, policy release


@dataclass
class WitnessGate:
    """Every key of this node, one lease: answers "may this node hold key K now?"."""

    ttl_s: float
    margin_s: float
    policy: Policy = "release"
    lease: LeaseClock = field(init=False)
    held: dict[str, Holding] = field(default_factory=dict)
    fallback: set[str] = field(default_factory=set)
    """Keys whose VIPs are held without the key (policy ``vrrp`` while etcd was down)."""

    def __post_init__(self) -> None:
        self.lease = LeaseClock(self.ttl_s, self.margin_s)

    # ----------------------------------------------------------------- queries

    def may_hold(self, key: str, now: float) -> bool:
        """May the instances gated by ``key`` hold their VIPs at ``now``?"""
        if self.lease.valid(now):
            h = self.held.get(key)
            return h is not None and h.lease_id == self.lease.lease_id
        return self.policy == "vrrp" and (key in self.fallback or key in self.held)

    def available(self, now: float) -> bool:
        """Do we have a lease whose deadline has not passed (etcd reachable lately)?"""
        return self.lease.valid(now)

    def takeover(self, key: str, now: float) -> tuple[Step, str]:
        """A BACKUP wants to become MASTER for ``key``: what must happen first."""
        if self.lease.valid(now):
            if self.may_hold(key, now):
                return Step.ALLOW, "witness key held already"
            return Step.ACQUIRE, "acquire the witness key"
        if self.policy == "vrrp":
            return Step.FALLBACK, "witness unavailable; on_unavailable = vrrp: VRRP decides (unwitnessed)"
        return Step.DENY, "witness unavailable; on_unavailable = release: no takeover without the key"

    def next_deadline(self) -> float | None:
        """When the holder must give its VIPs up (None: nothing held, or nothing to lose)."""
        if self.held and self.lease.deadline is not None:
            return self.lease.deadline
        return None

    # ------------------------------------------------------------------ inputs

    def acquired(self, key: str, revision: int, lease_id: int, *, now: float) -> bool:
        """etcd put ``key`` for us at ``revision``, bound to ``lease_id``.

        False when the answer came too late (the deadline passed meanwhile) or for a lease
        we no longer have: do not take over; the caller deletes the key again.
        """
        if lease_id != self.lease.lease_id or not self.lease.valid(now):
            return False
        self.held[key] = Holding(key, revision, lease_id)
        self.fallback.discard(key)
        return True

    def released(self, key: str) -> Holding | None:
        """We are no longer MASTER for ``key`` (the caller deletes it in etcd)."""
        self.fallback.discard(key)
        return self.held.pop(key, None)

    def hold_unwitnessed(self, key: str) -> None:
        """Policy vrrp: ``key``'s instances became MASTER while etcd was unreachable."""
        self.fallback.add(key)

    def expire(self, now: float) -> list[str]:
        """The deadline passed (call at :meth:`next_deadline`): the keys to give up now.

        Policy ``release``: every held key (their VIPs go now, before etcd can expire the
        lease).  Policy ``vrrp``: none; the keys are kept as fallback holdings, which must
        be re-acquired when etcd is back (:meth:`to_reacquire`).
        """
        if self.lease.valid(now):
            return []
        keys = sorted(self.held)
        if self.policy == "vrrp":
            self.fallback.update(keys)
            self.held.clear()
            return []
        self.held.clear()
        return keys

    def lease_lost(self) -> list[str]:
        """etcd says our lease is gone (TTL 0 / not found): as :meth:`expire`, at once."""
        self.lease.lost()
        return self.expire(float("-inf"))

    def to_reacquire(self, now: float) -> list[str]:
        """Policy vrrp, etcd back: the keys our MASTERs hold unwitnessed (acquire or give up)."""
        return sorted(self.fallback) if self.lease.valid(now) else []
