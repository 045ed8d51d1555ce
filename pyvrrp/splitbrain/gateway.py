"""Gateway arbitration: "am I isolated, or is my peer dead?" (issue #4 §2).

Theory: VRRP alone cannot tell "the master died" from "I was cut off": in
both cases the adverts stop and the BACKUP takes over (S1, S4 in issue #4).
keepalived's recipe is a gateway-ping ``vrrp_script`` with a negative weight,
which only helps once adverts flow again (ANCHORS §3.1).  pyvrrp makes the
question first class, like Pacemaker's ``fence_heuristics_ping`` and qdevice
heuristics (ANCHORS §4.4, §5 item 3): a set of *targets* (the default gateway
and others) is probed by ICMP echo or ARP; each target has rise/fall
hysteresis; the node is *isolated* while fewer than ``min_reachable`` targets
are up.

An isolated node

* never takes the VIP: :meth:`GatewayArbiter.takeover_verdict` answers the
  engine's takeover gate with ``allow=False``;
* gives the VIP up if it holds it: :meth:`GatewayArbiter.tracker_update` maps
  isolation to the engine's ``TrackerChanged(name, delta, fault)`` input,
  policy ``on_isolated = "fault"`` -> ``fault=True``, ``"demote"`` ->
  ``delta=-weight``.

**Start-up choice: unknown counts as unreachable.**  Every target starts
``unknown`` and only a run of ``rise`` successes makes it ``up``; so a node is
isolated from the moment it starts until ``min_reachable`` targets have proven
themselves.  The alternative ("not isolated until proven") would let a node
that boots cut off (S4 after a reboot, or a priority-255 owner that goes
straight INIT -> MASTER without any takeover gate) grab the VIP during its
first ``fall`` intervals, which is exactly the dual master the guard exists to
prevent.  The cost is small and bounded: the first probe round runs at start,
so a healthy node is proven after ``(rise - 1) * interval`` plus one RTT,
normally well inside the 3 x advert-interval Master_Down_Interval a BACKUP
waits anyway (RFC 5798 §6.1).  With ``on_isolated = "fault"`` the engine
therefore shows FAULT (reason ``gateway``) for that short moment at start.
:attr:`GatewayArbiter.verdict` distinguishes ``"unknown"`` (not proven yet)
from ``"isolated"`` (proven unreachable) for ``pyvrrp state``.

Three layers, one module each:

* :mod:`pyvrrp.splitbrain.arbiter`: :class:`GatewayArbiter`, pure (time is an
  argument), rise/fall by :class:`pyvrrp.health.fsm.RiseFall`;
* :mod:`pyvrrp.adapters.icmp` / :mod:`pyvrrp.adapters.arping`: the probers,
  non-blocking raw sockets driven by ``loop.add_reader`` (never blocking the
  loop; CAP_NET_RAW, which the daemon has);
* here, :class:`GatewayMonitor`: the asyncio loop that probes all targets
  concurrently every ``interval`` with ``timeout`` and feeds the arbiter.

The settings are the config model's :class:`pyvrrp.config.models.GatewayCheck`
(seconds: ``interval``, ``timeout``); there is no second config type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from pyvrrp.adapters.arping import ArpProber
from pyvrrp.adapters.icmp import IcmpProber
from pyvrrp.base.clock import Clock, MonotonicClock, to_wall_time
from pyvrrp.config.models import GatewayCheck
from pyvrrp.splitbrain.arbiter import GatewayArbiter, TargetState, TargetStatus

__all__ = [
    "ArpProber",
    "GatewayArbiter",
    "GatewayMonitor",
    "IcmpProber",
    "TargetState",
    "TargetStatus",
    "snapshot_of",
]

_log = structlog.get_logger("pyvrrp.splitbrain.gateway")


@dataclass(slots=True)
class _MonitorState:
    task: asyncio.Task[None] | None = None
    rounds: int = 0


class GatewayMonitor:
    """Runs the probes of one instance's ``gateway_check`` and feeds a :class:`GatewayArbiter`.

    ``on_change(isolated)`` is called once right after :meth:`start` (the
    initial verdict: isolated, since nothing is proven yet) and then every time
    :attr:`isolated` flips; the caller turns it into
    ``TrackerChanged("gateway", *monitor.tracker_update())``.  A probe round
    starts every ``interval`` (the first at once); all targets are probed
    concurrently, each bounded by ``timeout``.  A callback that raises is
    logged and does not stop the monitor.
    """

    def __init__(
        self,
        ifname: str,
        config: GatewayCheck,
        on_change: Callable[[bool], None] | None = None,
        *,
        clock: Clock | None = None,
        prober: IcmpProber | ArpProber | None = None,
    ) -> None:
        self.ifname = ifname
        self.config = config
        self.on_change = on_change
        self.clock: Clock = clock or MonotonicClock()
        self.arbiter = GatewayArbiter(
            self.targets, self.config.min_reachable, self.config.rise, self.config.fall
        )
        self._prober = prober
        self._state = _MonitorState()

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets as the arbiter and ``pyvrrp state`` name them (``fe80::1%eth0`` keeps its scope)."""
        return tuple(str(t) for t in self.config.targets)

    @property
    def isolated(self) -> bool:
        return self.arbiter.isolated

    @property
    def running(self) -> bool:
        return self._state.task is not None and not self._state.task.done()

    def tracker_update(self) -> tuple[int, bool]:
        """``(delta, fault)`` for ``TrackerChanged("gateway", ...)`` under the configured policy."""
        return self.arbiter.tracker_update(self.config.on_isolated, self.config.weight)

    def takeover_verdict(self) -> tuple[bool, str]:
        return self.arbiter.takeover_verdict()

    def _make_prober(self) -> IcmpProber | ArpProber:
        if self.config.method == "arp":
            return ArpProber(self.ifname)
        return IcmpProber()

    async def start(self) -> None:
        """Start probing (idempotent); reports the initial verdict through ``on_change``."""
        if self.running:
            return
        if self._prober is None:
            self._prober = self._make_prober()
        self._notify()
        self._state.task = asyncio.create_task(self._run(), name=f"gateway-check:{self.ifname}")

    async def stop(self) -> None:
        """Stop probing and close the sockets."""
        task, self._state.task = self._state.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._prober is not None:
            self._prober.close()
            self._prober = None

    async def probe_round(self) -> None:
        """Probe every target once, concurrently, and record the results."""
        prober = self._prober
        if prober is None:
            prober = self._prober = self._make_prober()
        targets = list(self.targets)
        results = await asyncio.gather(
            *(prober.probe(t, self.config.timeout) for t in targets), return_exceptions=True
        )
        now = self.clock.now()
        changed = False
        for target, res in zip(targets, results, strict=True):
            if isinstance(res, BaseException):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                _log.warning("gateway_probe_error", target=target, error=repr(res))
                res = None
            changed |= self.arbiter.record(target, res is not None, now, res)
        self._state.rounds += 1
        if changed:
            _log.warning(
                "gateway_isolation_changed",
                iface=self.ifname,
                isolated=self.arbiter.isolated,
                verdict=self.arbiter.verdict,
                reachable=self.arbiter.reachable_count,
                min_reachable=self.arbiter.min_reachable,
            )
            self._notify()

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.arbiter.isolated)
        except Exception as exc:  # a buggy callback must not kill the monitor; it is logged
            _log.error("gateway_on_change_failed", error=repr(exc))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.probe_round()
            next_at += self.config.interval
            delay = next_at - loop.time()
            if delay < 0:  # a round overran (timeout >= interval): start the next one now
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    def snapshot(self) -> dict[str, Any]:
        """``gateway_check`` object of ``pyvrrp state --json`` (``at`` is wall-clock seconds)."""
        return snapshot_of(self.arbiter, self.config, clock=self.clock)


def snapshot_of(
    arbiter: GatewayArbiter, config: GatewayCheck, *, clock: Clock | None = None
) -> dict[str, Any]:
    """Render an arbiter for ``pyvrrp state``."""
    clk = clock or MonotonicClock()
    targets = []
    for st in arbiter.targets:
        targets.append(
            {
                "target": st.target,
                "ok": st.last_ok,
                "state": st.state.value,
                "rtt_ms": None if st.last_rtt_s is None else round(st.last_rtt_s * 1000.0, 3),
                "at": None if st.last_at is None else round(to_wall_time(st.last_at, clock=clk), 3),
            }
        )
    return {
        "isolated": arbiter.isolated,
        "verdict": arbiter.verdict,
        "method": config.method,
        "reachable": arbiter.reachable_count,
        "min_reachable": arbiter.min_reachable,
        "on_isolated": config.on_isolated,
        "targets": targets,
    }
