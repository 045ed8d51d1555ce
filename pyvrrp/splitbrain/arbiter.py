"""The gateway arbiter: pure N-of-M reachability with per-target rise/fall (issue #4 §2).

Pure like :mod:`pyvrrp.proto` (STYLE rule 1): no I/O, no clock, no logging;
probe results come in with the time they were taken
(:meth:`GatewayArbiter.record`), the verdicts go out as plain values.  The
probing around it is :mod:`pyvrrp.splitbrain.gateway`.

Rise/fall is :class:`pyvrrp.health.fsm.RiseFall` (``init_fail``: a target
counts as unreachable until ``rise`` successes in a row prove it, see
"start-up choice" in :mod:`pyvrrp.splitbrain.gateway`).  What the arbiter
adds is only the *display* of a target that has not been proven either way:
:class:`TargetState` ``unknown`` until it has been up once or has failed
``fall`` times in a row, so ``pyvrrp state`` can tell "not proven yet" from
"proven unreachable".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from pyvrrp.health.fsm import RiseFall

__all__ = ["GatewayArbiter", "TargetState", "TargetStatus"]

IPAddress = IPv4Address | IPv6Address


class TargetState(enum.StrEnum):
    """Hysteresis state of one target."""

    UNKNOWN = "unknown"  # not yet ``rise`` successes nor ``fall`` failures in a row
    UP = "up"
    DOWN = "down"


@dataclass(slots=True)
class TargetStatus:
    """What ``pyvrrp state`` shows about one target (times are monotonic seconds)."""

    target: str
    checks: RiseFall
    last_ok: bool | None = None
    last_rtt_s: float | None = None
    last_at: float | None = None
    ok_in_row: int = 0
    fail_in_row: int = 0
    probes: int = 0
    successes: int = 0
    proven: bool = field(default=False, repr=False)  # has been up, or failed ``fall`` in a row

    @property
    def state(self) -> TargetState:
        if self.checks.healthy:
            return TargetState.UP
        return TargetState.DOWN if self.proven else TargetState.UNKNOWN


class GatewayArbiter:
    """Pure N-of-M reachability arbiter with per-target rise/fall hysteresis.

    A target becomes ``up`` after ``rise`` consecutive successes and ``down``
    after ``fall`` consecutive failures (from any state, including the initial
    ``unknown``); anything in between keeps its state.  The node is isolated
    while fewer than ``min_reachable`` targets are ``up`` (unknown counts as
    not up: see :mod:`pyvrrp.splitbrain.gateway`).

    Raises:
        ValueError: no targets, duplicate targets, ``min_reachable`` outside
            ``1..len(targets)``, ``rise`` or ``fall`` < 1.
    """

    def __init__(
        self, targets: Iterable[str | IPAddress], min_reachable: int = 1, rise: int = 1, fall: int = 1
    ) -> None:
        names = [str(t) for t in targets]
        if not names:
            raise ValueError("gateway_check needs at least one target")
        if len(set(names)) != len(names):
            raise ValueError(f"gateway_check targets must be distinct: {names}")
        if not 1 <= min_reachable <= len(names):
            raise ValueError(
                f"min_reachable must be in 1..{len(names)} (number of targets), got {min_reachable}"
            )
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1, got rise={rise} fall={fall}")
        self.min_reachable = min_reachable
        self.rise = rise
        self.fall = fall
        self._targets: dict[str, TargetStatus] = {
            n: TargetStatus(n, RiseFall(rise=rise, fall=fall, init_fail=True)) for n in names
        }

    # -- queries
    @property
    def targets(self) -> tuple[TargetStatus, ...]:
        return tuple(self._targets.values())

    def status(self, target: str | IPAddress) -> TargetStatus:
        return self._targets[str(target)]

    @property
    def reachable_count(self) -> int:
        return sum(1 for t in self._targets.values() if t.state is TargetState.UP)

    @property
    def isolated(self) -> bool:
        """True while fewer than ``min_reachable`` targets are up (unknown = not up)."""
        return self.reachable_count < self.min_reachable

    @property
    def verdict(self) -> str:
        """``"reachable"``, ``"isolated"`` (proven), or ``"unknown"`` (could still be proven reachable)."""
        if not self.isolated:
            return "reachable"
        unknown = sum(1 for t in self._targets.values() if t.state is TargetState.UNKNOWN)
        if self.reachable_count + unknown >= self.min_reachable and unknown > 0:
            return "unknown"
        return "isolated"

    # -- input
    def record(self, target: str | IPAddress, ok: bool, now: float, rtt_s: float | None = None) -> bool:
        """Feed one probe result taken at ``now``; returns True when :attr:`isolated` changed.

        Raises:
            KeyError: ``target`` is not one of the configured targets.
        """
        st = self._targets[str(target)]
        before = self.isolated
        st.probes += 1
        st.last_ok = ok
        st.last_at = now
        st.last_rtt_s = rtt_s if ok else None
        if ok:
            st.successes += 1
            st.ok_in_row += 1
            st.fail_in_row = 0
        else:
            st.fail_in_row += 1
            st.ok_in_row = 0
        st.checks.observe(ok)
        if st.checks.healthy or st.fail_in_row >= self.fall:
            st.proven = True
        return self.isolated != before

    # -- mapping to the engine
    def tracker_update(self, on_isolated: str, weight: int) -> tuple[int, bool]:
        """``(delta, fault)`` for the engine's ``TrackerChanged("gateway", delta, fault)``.

        Not isolated -> ``(0, False)``.  Isolated with ``on_isolated="fault"`` ->
        ``(0, True)`` (keepalived-style FAULT, the VIP is released); with
        ``"demote"`` -> ``(-abs(weight), False)`` (loses the election when
        adverts flow; the takeover gate still refuses the VIP).

        Raises:
            ValueError: unknown policy.
        """
        if on_isolated not in ("fault", "demote"):
            raise ValueError(f"on_isolated must be 'fault' or 'demote', got {on_isolated!r}")
        if not self.isolated:
            return 0, False
        if on_isolated == "fault":
            return 0, True
        return -abs(weight), False

    def takeover_verdict(self) -> tuple[bool, str]:
        """Answer for the engine's takeover gate: an isolated node never takes the VIP."""
        if not self.isolated:
            return True, f"gateway reachable ({self.reachable_count}/{len(self._targets)} targets up)"
        return False, (
            f"gateway {self.verdict}: {self.reachable_count}/{len(self._targets)} targets up, "
            f"{self.min_reachable} needed"
        )
