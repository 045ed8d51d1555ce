"""The quorum witness at run time: one etcd lease for the node, its keys, the deadline timer.

:class:`WitnessRuntime` performs what :class:`~pyvrrp.splitbrain.witness.WitnessGate`
decides: it keeps the node's lease alive (a keepalive every :attr:`renew_interval_s`),
arms one loop timer at the gate's deadline and, when it fires without a renewal, tells
the daemon which keys to give up (``on_give_up``: the daemon puts their instances in
FAULT, which removes the VIPs).  Takeovers call :meth:`acquire`; a MASTER that leaves
MASTER calls :meth:`release` (the key is deleted at once, so a planned failover is as
fast as without the witness).

Preemption: the preempting node (higher priority, hearing a lower-priority master) cannot
acquire a key the master holds, and the master hears no advert from a BACKUP.  So the
preempting node writes a *claim* (``<prefix>/claim/<key>`` = its router id and priority,
bound to its lease) and keeps polling; the holder reads the claims of its keys after each
renewal and, when the claimant's priority is higher, leaves MASTER (``on_claim``), which
releases the key.  Preemption takes about one renewal interval longer than without the
witness.  The etcd client is :mod:`pyvrrp.adapters.witness_etcd`,
imported only when ``global_defs.witness`` is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from pyvrrp.base import clock
from pyvrrp.base.ratelog import RateLimitedLogger
from pyvrrp.config.models import Witness
from pyvrrp.splitbrain.witness import KeyValue, Step, WitnessGate

if TYPE_CHECKING:
    from pyvrrp.adapters.witness_etcd import EtcdWitness

__all__ = ["WitnessRuntime"]

log = structlog.get_logger("pyvrrp.witness")

RELEASE_WAIT_S = 1.0
"""A takeover finding the key held waits this long for the holder's release (a clean stop
or a priority-0 hand-over deletes it a few ms after its last advert)."""
POLL_FAST_S, POLL_S, POLL_FAST_FOR_S = 0.01, 0.05, 0.2
"""While waiting for a holder's release: every 10 ms for the first 0.2 s (a clean stop's delete
is a few ms behind its priority-0 advert), then every 50 ms."""


class WitnessRuntime:
    """The node's witness session (module docstring)."""

    def __init__(
        self,
        cfg: Witness,
        client: EtcdWitness,
        *,
        router_id: str,
        on_give_up: Callable[[str, str], None],
        on_back: Callable[[], None],
        on_claim: Callable[[str, KeyValue], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.router_id = router_id
        self.gate = WitnessGate(float(cfg.ttl), float(cfg.margin), cfg.on_unavailable)
        self.on_give_up = on_give_up
        self.on_back = on_back
        self.on_claim = on_claim
        self.renew_interval_s = min(1.0, (cfg.ttl - cfg.margin) / 4)
        self.renewals = 0
        self.renew_failures = 0
        self.lease_grants = 0
        self.give_ups = 0
        self.last_error: str | None = None
        self.last_deadline_late_s: float | None = None
        """How late the deadline timer ran the last time it fired (the margin must cover it)."""
        self._loop_task: asyncio.Task[None] | None = None
        self._deadline_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._was_available = False
        self._orphans: dict[str, int] = {}  # keys given up at the deadline -> their revision
        self._holders: dict[str, str] = {}  # key -> who holds it, as last seen (state view)
        self._warn = RateLimitedLogger(log, burst=3, window_s=30.0, level="warning")
        self._stopped = False

    def full_key(self, key: str) -> str:
        return f"{self.cfg.prefix.rstrip('/')}/{key}"

    def claim_key(self, key: str) -> str:
        return f"{self.cfg.prefix.rstrip('/')}/claim/{key}"

    # --------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Grant the first lease (one attempt, bounded), then keep it alive in the background."""
        await self._renew_once()
        self._loop_task = asyncio.ensure_future(self._lease_loop())

    async def close(self, *, budget_s: float = 0.5) -> None:
        """Clean stop: delete the keys we hold and revoke the lease (bounded by ``budget_s``)."""
        self._stopped = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()

        async def finish() -> None:
            pending = [t for t in self._tasks if not t.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            lease = self.gate.lease.lease_id
            if lease is not None:
                await self.client.revoke(lease)
                log.info("witness_lease_revoked", lease=lease)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(finish(), timeout=budget_s)
        self.gate.lease.lost()
        with contextlib.suppress(Exception):
            await self.client.close()

    # ------------------------------------------------------------------ leases

    async def _lease_loop(self) -> None:
        while not self._stopped:
            ok = await self._renew_once()
            await asyncio.sleep(self.renew_interval_s if ok else self.renew_interval_s / 2)

    async def _renew_once(self) -> bool:
        from pyvrrp.adapters.witness_etcd import WitnessUnavailable

        gate, lease = self.gate, self.gate.lease
        sent = clock.monotonic()
        try:
            if lease.lease_id is None:
                lease_id, ttl = await self.client.grant(self.cfg.ttl)
                lease.granted(lease_id, ttl, sent_at=sent)
                self.lease_grants += 1
                log.info("witness_lease_granted", lease=lease_id, ttl=ttl, endpoint=self.client.endpoint)
            else:
                lease_id = lease.lease_id
                ttl = await self.client.keepalive(lease_id)
                if not lease.renewed(lease_id, ttl, sent_at=sent):
                    log.warning("witness_lease_lost", lease=lease_id, note="etcd expired or revoked it")
                    self._give_up(gate.lease_lost(), "witness lease expired in etcd")
                    self._arm()
                    self._check_available()  # unavailable until a new lease: on_back then
                    return False
                self.renewals += 1
        except WitnessUnavailable as exc:
            self.renew_failures += 1
            self.last_error = str(exc)
            auth = type(exc).__name__ == "WitnessAuthFailed"  # a config error: say so, not "renew failed"
            self._warn.warning(
                "auth" if auth else "renew",
                "witness_auth_failed" if auth else "witness_renew_failed",
                error=str(exc),
                policy=self.cfg.on_unavailable,
                deadline_in_s=_round(lease.remaining_s(clock.monotonic())),
            )
            self._arm()
            self._check_available()
            return False
        self.last_error = None
        self._arm()
        self._check_available()
        if self.on_claim is not None and gate.held:
            await self._check_claims()
        return True

    async def _check_claims(self) -> None:
        """Does a higher-priority node want one of our keys (preemption, module docstring)?"""
        from pyvrrp.adapters.witness_etcd import WitnessUnavailable

        for key in sorted(self.gate.held):
            try:
                info = await self.client.get(self.claim_key(key))
            except WitnessUnavailable:
                return  # the next round tries again
            claimant = KeyValue.decode(info.value) if info is not None else None
            if claimant is not None and claimant.router_id != self.router_id and self.on_claim is not None:
                self.on_claim(key, claimant)

    def _check_available(self) -> None:
        now = clock.monotonic()
        avail = self.gate.available(now)
        if avail and not self._was_available:
            log.info("witness_available", endpoint=self.client.endpoint, lease=self.gate.lease.lease_id)
            self._was_available = True
            orphans, self._orphans = self._orphans, {}
            for key, revision in orphans.items():
                if key not in self.gate.held:
                    self._spawn(self._delete(self.full_key(key), revision))
            self.on_back()
        elif not avail and self._was_available:
            self._was_available = False
            log.warning("witness_unavailable", policy=self.cfg.on_unavailable, error=self.last_error)

    def _arm(self) -> None:
        """One loop timer at the gate's deadline (re-armed after every change)."""
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
            self._deadline_handle = None
        deadline = self.gate.lease.deadline
        if deadline is None or self._stopped:
            return
        self._deadline_handle = asyncio.get_running_loop().call_at(deadline, self._on_deadline)

    def stale(self, key: str) -> bool:
        """Is ``key`` past its deadline right now?  Then give it up at once (True).

        The deadline timer may not have run yet (a frozen process resumed, a busy loop):
        the executor asks before each MASTER advert of a witnessed instance.
        """
        if key not in self.gate.held or self.gate.lease.valid(clock.monotonic()):
            return False
        self._on_deadline()  # policy vrrp: nothing is given up (a fallback holding)
        return self.cfg.on_unavailable == "release"

    def _on_deadline(self) -> None:
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
        self._deadline_handle = None
        now = clock.monotonic()
        if self.gate.lease.valid(now):
            self._arm()  # renewed meanwhile
            return
        self.last_deadline_late_s = now - (self.gate.lease.deadline or now)
        before = dict(self.gate.held)
        keys = self.gate.expire(now)
        for key in keys:  # still in etcd while our lease lives on: delete them when etcd answers
            self._orphans[key] = before[key].revision
        self._give_up(keys, "witness deadline passed without a lease renewal")
        self._check_available()

    def _give_up(self, keys: list[str], reason: str) -> None:
        for key in keys:
            self.give_ups += 1
            log.warning("witness_give_up", key=self.full_key(key), reason=reason)
            self.on_give_up(key, reason)

    # ------------------------------------------------------------------- keys

    def revision(self, key: str) -> int | None:
        h = self.gate.held.get(key)
        return h.revision if h is not None else None

    async def acquire(
        self, key: str, value: KeyValue, *, wait_s: float = RELEASE_WAIT_S, claim: bool = False
    ) -> tuple[bool, str]:
        """May we take over ``key``'s VIPs?  Acquires the key in etcd first (module docstring).

        Returns ``(allow, reason)``.  A key held by another node is polled for up to
        ``wait_s`` (its holder may be releasing it right now: a clean stop).  ``claim``
        (preemption): write a claim first and wait one renewal interval longer.
        """
        if not claim:
            return await self._acquire(key, value, wait_s=wait_s, claim=False)
        try:
            return await self._acquire(key, value, wait_s=wait_s + 2 * self.renew_interval_s, claim=True)
        finally:
            lease = self.gate.lease.lease_id
            if lease is not None:
                self._spawn(self._drop_claim(key))

    async def _drop_claim(self, key: str) -> None:
        from pyvrrp.adapters.witness_etcd import WitnessUnavailable

        with contextlib.suppress(WitnessUnavailable):
            info = await self.client.get(self.claim_key(key))
            mine = info is not None and (KeyValue.decode(info.value) or _NOBODY).router_id == self.router_id
            if info is not None and mine:
                await self.client.delete(self.claim_key(key), info.mod_revision)

    async def _acquire(self, key: str, value: KeyValue, *, wait_s: float, claim: bool) -> tuple[bool, str]:
        from pyvrrp.adapters.witness_etcd import WitnessUnavailable

        claimed = False
        start = clock.monotonic()
        while True:
            now = clock.monotonic()
            step, reason = self.gate.takeover(key, now)
            if step is Step.ALLOW:
                return True, reason
            if step is Step.FALLBACK:
                self.gate.hold_unwitnessed(key)
                log.warning("witness_fallback_takeover", key=self.full_key(key), reason=reason)
                return True, reason
            if step is Step.DENY:
                return False, reason
            lease_id = self.gate.lease.lease_id
            assert lease_id is not None
            full = self.full_key(key)
            try:
                created, rev, info = await self.client.create(full, value.encode(), lease_id)
                if not created and info is not None:
                    holder = KeyValue.decode(info.value)
                    if holder is not None and holder.router_id == self.router_id:
                        # ours (an earlier lease of this node, e.g. before a restart): take it over
                        created, rev = await self.client.replace(
                            full, value.encode(), lease_id, info.mod_revision
                        )
                    else:
                        who = holder.router_id if holder is not None else "another writer"
                        self._holders[key] = who
                        if claim and not claimed:
                            await self.client.put(self.claim_key(key), value.encode(), lease_id)
                            claimed = True
                            log.info("witness_claimed", key=full, holder=who, priority=value.priority)
                        waited = clock.monotonic() - start
                        if waited < wait_s:
                            await asyncio.sleep(POLL_FAST_S if waited < POLL_FAST_FOR_S else POLL_S)
                            continue
                        return False, f"witness key {full} held by {who} (revision {info.mod_revision})"
            except WitnessUnavailable as exc:
                return False, f"witness request failed: {exc}"
            if not created:
                if clock.monotonic() - start < wait_s:
                    await asyncio.sleep(POLL_S)
                    continue
                return False, f"witness key {full} changed meanwhile"
            if not self.gate.acquired(key, rev, lease_id, now=clock.monotonic()):
                self._spawn(self._delete(full, rev))
                return False, "witness key acquired after the lease deadline: given back"
            self._holders[key] = self.router_id
            self._arm()
            log.info("witness_acquired", key=full, revision=rev, lease=lease_id)
            return True, f"witness key acquired (revision {rev})"

    def release(self, key: str) -> None:
        """We left MASTER for ``key``: delete it in etcd now (only at our revision)."""
        holding = self.gate.released(key)
        if holding is not None:
            self._holders.pop(key, None)
            self._spawn(self._delete(self.full_key(key), holding.revision))
        if not self.gate.held:
            self._arm()

    async def _delete(self, full: str, revision: int) -> None:
        from pyvrrp.adapters.witness_etcd import WitnessUnavailable

        try:
            deleted = await self.client.delete(full, revision)
            log.info("witness_released", key=full, revision=revision, deleted=deleted)
        except WitnessUnavailable as exc:
            log.warning("witness_release_failed", key=full, error=str(exc), note="the lease expiry frees it")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ views

    def snapshot(self, key: str | None = None) -> dict[str, Any]:
        """For ``pyvrrp state``: endpoint, lease, seconds to the deadline, counters, this key."""
        now = clock.monotonic()
        lease = self.gate.lease
        out: dict[str, Any] = {
            "endpoint": self.client.endpoint,
            "lease_id": lease.lease_id,
            "ttl_s": self.cfg.ttl,
            "margin_s": self.cfg.margin,
            "on_unavailable": self.cfg.on_unavailable,
            "available": self.gate.available(now),
            "deadline_in_s": _round(lease.remaining_s(now)),
            "renewals": self.renewals,
            "renew_failures": self.renew_failures,
            "lease_grants": self.lease_grants,
            "give_ups": self.give_ups,
            "last_deadline_late_s": _round(self.last_deadline_late_s),
            "last_error": self.last_error,
            "reauths": getattr(self.client, "reauths", 0),
        }
        if key is not None:
            out["key"] = self.full_key(key)
            out["held"] = self.gate.may_hold(key, now)
            out["revision"] = self.revision(key)
            out["holder"] = self.router_id if key in self.gate.held else self._holders.get(key)
            out["unwitnessed"] = key in self.gate.fallback
        return out


_NOBODY = KeyValue("", "", 0, "", 0)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
