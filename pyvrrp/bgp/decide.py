"""What to announce, with which attributes, and why: one pure function.

Theory of operation
-------------------
Each ``announce`` table becomes a :class:`Policy`.  The runtime gathers, for each one, the
facts pyvrrp already has (:class:`Facts`: the VRRP state of the instance it follows, how many
real servers of the virtual server are healthy, whether the gateway check says we are
isolated, whether the daemon is stopping) and :func:`decide` turns them into a
:class:`Decision`: announce or withdraw, the MED, and a sentence for ``pyvrrp state``.

The rules, first match wins:

1. stopping -> withdraw (at SIGTERM the withdraw goes out *before* the VIPs are released);
2. the followed instance is FAULT / not started -> withdraw;
3. the gateway check says isolated -> withdraw;
4. fewer than ``quorum`` healthy real servers -> withdraw;
5. active-active -> announce with ``med_preferred`` whatever the VRRP role;
6. active-backup -> announce; ``med_preferred`` on the MASTER (or the configured primary
   without VRRP), ``med_backup`` elsewhere.

No clock, no I/O: the same facts always give the same decision (tests/test_bgp_decide.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "Facts", "Policy", "decide"]

Mode = Literal["active-backup", "active-active"]
Role = Literal["MASTER", "BACKUP", "FAULT", "INIT"]


@dataclass(frozen=True, slots=True)
class Policy:
    """The parts of an ``announce`` table the decision needs."""

    mode: Mode = "active-backup"
    med_preferred: int = 100
    med_backup: int = 200
    quorum: int = 1
    primary: bool = False


@dataclass(frozen=True, slots=True)
class Facts:
    """What pyvrrp knows right now about one announcement's conditions."""

    role: Role | None = None
    """VRRP state of the followed instance; None: no VRRP (use ``Policy.primary``)."""
    instance: str | None = None
    healthy: int | None = None
    """Healthy real servers of the virtual server; None: no virtual server (a VIP)."""
    total: int | None = None
    isolated: bool = False
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    announce: bool
    med: int | None
    why: str
    preferred: bool = False


def _withdraw(why: str) -> Decision:
    return Decision(announce=False, med=None, why=why)


def decide(policy: Policy, facts: Facts) -> Decision:
    """Announce or withdraw, with which MED, and why (see the module docstring for the rules)."""
    if facts.stopping:
        return _withdraw("stopping: withdrawn before the VIPs are released")
    who = f"instance {facts.instance}" if facts.instance else "the instance"
    if facts.role == "FAULT":
        return _withdraw(f"{who} is FAULT")
    if facts.role == "INIT":
        return _withdraw(f"{who} has not started")
    if facts.isolated:
        return _withdraw("the gateway check says this node is isolated")
    if facts.healthy is not None and facts.healthy < policy.quorum:
        of = f" of {facts.total}" if facts.total is not None else ""
        return _withdraw(f"{facts.healthy}{of} real servers healthy, quorum is {policy.quorum}")
    health = ""
    if facts.healthy is not None:
        of = f"/{facts.total}" if facts.total is not None else ""
        health = f"; {facts.healthy}{of} real servers healthy (quorum {policy.quorum})"
    if policy.mode == "active-active":
        return Decision(
            True, policy.med_preferred, f"active-active: announced by every healthy node{health}", True
        )
    if facts.role == "MASTER" or (facts.role is None and policy.primary):
        role = f"{who} is MASTER" if facts.role == "MASTER" else "configured primary"
        return Decision(True, policy.med_preferred, f"active-backup: {role}, preferred MED{health}", True)
    role = f"{who} is BACKUP" if facts.role == "BACKUP" else "not the configured primary"
    return Decision(True, policy.med_backup, f"active-backup: {role}, backup MED{health}", False)
