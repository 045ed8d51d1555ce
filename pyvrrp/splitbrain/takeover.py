"""The takeover gate: may this BACKUP become MASTER now?  (issue #4, docs/split-brain.md)

Theory: an instance with a guard configured (``gateway_check``,
``probe_vip_before_takeover``, ``fence_script``) does not go MASTER on its own
when Master_Down_Timer fires; the engine emits ``TakeoverPending`` and waits for
a ``TakeoverVerdict``.  :func:`decide_takeover` is that verdict, the guards in
a fixed order, cheapest and most decisive first:

1. **gateway arbitration**: an isolated node never takes over (it would be the
   second master of a network it cannot reach);
2. **preemption is not failure**: when a lower-priority master is still
   advertising (SM-07), it is alive and yields on our first advert (SM-12), so
   the VIP probe and the fence hook do not apply;
3. **VIP probe**: if another MAC still answers ARP for an IPv4 VIP, the master's
   host is alive and only the VRRP path is broken: stay BACKUP;
4. **quorum witness** (``witness = true``, issue 13): acquire the instance's key in
   etcd (:mod:`pyvrrp.splitbrain.witness`); it applies to preemption too (the
   key is held by the master being preempted until it leaves MASTER);
5. **fence hook**: make sure the old master is really gone (or accept its
   failure as configured by ``fence_failure``); it gets the witness key's
   revision as ``PYVRRP_WITNESS_REVISION``.

Any guard error denies the takeover (fail safe: a BACKUP that stays BACKUP can
be retried at the next Master_Down; a second master cannot be undone).

:func:`confirm_conflict` is the other side: a MASTER that saw another MAC
answer for its VIP waits one advert interval (a normal handover has a few ms of
overlap) and probes again before the engine is told about a dual master.

The supervisor calls these; they never feed an engine themselves.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

import structlog

from pyvrrp.adapters.arp import mac_to_bytes
from pyvrrp.config.models import VrrpInstance
from pyvrrp.splitbrain.conflict import probe_vip_once
from pyvrrp.splitbrain.fence import run_fence
from pyvrrp.splitbrain.gateway import GatewayMonitor

__all__ = [
    "VIP_PROBE_TIMEOUT_S",
    "ConflictOutcome",
    "Verdict",
    "confirm_conflict",
    "decide_takeover",
    "is_guarded",
    "is_preempting",
]

log = structlog.get_logger("pyvrrp.splitbrain.takeover")

VIP_PROBE_TIMEOUT_S = 0.05
"""How long the pre-takeover VIP probe waits for an answer (two ARP probes)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to ``TakeoverPending``."""

    allow: bool
    reason: str


def is_guarded(spec: VrrpInstance) -> bool:
    """Does this instance wait for a verdict before taking over?"""
    return bool(spec.fence_script or spec.probe_vip_before_takeover or spec.gateway_check)


def is_preempting(last_lower_rx: float | None, *, now: float, master_down_interval_s: float) -> bool:
    """A lower-priority master advertised within the last Master_Down_Interval."""
    return last_lower_rx is not None and now - last_lower_rx < master_down_interval_s


async def decide_takeover(
    spec: VrrpInstance,
    *,
    name: str,
    gateway: GatewayMonitor | None,
    preempting: bool,
    epoch: int,
    old_master: str,
    witness: Callable[[], Awaitable[tuple[bool, str, int | None]]] | None = None,
) -> Verdict:
    """Run the guards in order (module docstring) and return the verdict.

    ``witness``: acquires the witness key; returns ``(allowed, reason, revision)``.
    """
    allow, reason = True, "no guard configured"
    revision: int | None = None
    try:
        if gateway is not None:
            allow, reason = gateway.takeover_verdict()
        if allow and preempting:
            reason = "preempting a lower-priority master"
        if allow and not preempting and spec.probe_vip_before_takeover:
            for vip in spec.vips:
                if vip.version != 4:
                    continue
                mac = await probe_vip_once(spec.interface, vip.ip, timeout=VIP_PROBE_TIMEOUT_S)
                if mac is not None:
                    allow, reason = False, f"{vip.ip} still answered by {mac}: master host alive"
                    break
        if allow and witness is not None:
            allow, why, revision = await witness()
            reason = why if not allow else f"{reason}; {why}" if reason != "no guard configured" else why
        if allow and not preempting and spec.fence_script:
            result = await run_fence(
                spec.fence_script,
                timeout_s=float(spec.fence_timeout),
                name=name,
                epoch=epoch,
                old_master=old_master,
                env={"PYVRRP_WITNESS_REVISION": str(revision)} if revision is not None else None,
            )
            if result.ok:
                reason = "fence succeeded"
            elif spec.fence_failure == "proceed":
                log.warning("fence_failed_proceeding", instance=name, reason=result.reason)
                reason = f"fence failed ({result.reason}); proceeding as configured"
            else:
                allow, reason = False, f"fence failed: {result.reason}"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a guard that breaks denies; it never kills the daemon
        log.error("takeover_guard_error", instance=name, error=str(exc))
        allow, reason = False, f"takeover guard error: {exc}"
    return Verdict(allow, reason)


class ConflictOutcome(enum.Enum):
    """What :func:`confirm_conflict` found."""

    CONFIRMED = "confirmed"
    RESOLVED_BY_VRRP = "resolved_by_vrrp"  # we are no longer MASTER: VRRP settled it
    GONE = "gone"  # nobody else answers any more


async def confirm_conflict(
    ifname: str,
    vip: IPv4Address,
    *,
    our_mac: bytes,
    grace_s: float,
    still_master: Callable[[], bool],
) -> tuple[ConflictOutcome, bytes | None]:
    """Wait ``grace_s`` (one advert interval, 0.05..1 s), then probe ``vip`` once more.

    Returns the outcome and, when confirmed, the other holder's MAC.
    """
    await asyncio.sleep(grace_s)
    if not still_master():
        return ConflictOutcome.RESOLVED_BY_VRRP, None
    answer = await probe_vip_once(ifname, vip, timeout=0.1, our_macs=[our_mac])
    if answer is None:
        return ConflictOutcome.GONE, None
    if not still_master():
        return ConflictOutcome.RESOLVED_BY_VRRP, None
    return ConflictOutcome.CONFIRMED, mac_to_bytes(answer)
