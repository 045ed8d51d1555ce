"""Pure tracker state machines: rise/fall debouncing and keepalived weight rules.

Pure like :mod:`pyvrrp.proto` (STYLE rule 1): no I/O, no clock, no logging.
The runtime runs the checks (scripts, interface events, files) and feeds the
results here; the output is ``(delta, fault)`` for
:class:`pyvrrp.proto.events.TrackerChanged`, which the engine folds into the
effective priority *from scratch* (TMR-10, SM-15).

Rise/fall (ExaBGP ``healthcheck`` states, keepalived ``rise``/``fall``)::

    INIT --ok--> UP (or RISING with init_fail and rise > 1)
    INIT --fail--> FALLING (DOWN when fall == 1, or with init_fail)
    UP --fail--> FALLING --(fall consecutive fails)--> DOWN
    DOWN --ok--> RISING --(rise consecutive oks)--> UP
    FALLING --ok--> UP, RISING --fail--> DOWN

``healthy`` is True in UP and FALLING, and in INIT unless ``init_fail``
(keepalived: "assume script initially is in failed state").

Weights (keepalived.conf(5), vrrp_script / track_interface / track_file):

* weight 0: failure means FAULT (``reverse``: success means FAULT);
* weight > 0: ``+weight`` while healthy; weight < 0: ``weight`` while unhealthy;
* ``reverse`` negates the adjustment, keeping its condition ("decreased when
  up and increased when down");
* track_file: the file's integer times the weight (negated by ``reverse``);
  a result below -253 means FAULT; with weight 0 any non-zero value is a
  failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "CheckState",
    "RiseFall",
    "ScriptTracker",
    "file_effect",
    "interface_effect",
    "weight_effect",
]

FILE_FAULT_BELOW = -253  # keepalived.conf(5) track_file: result < -253 => FAULT


class CheckState(enum.Enum):
    """ExaBGP healthcheck states (without DISABLED)."""

    INIT = "INIT"
    RISING = "RISING"
    UP = "UP"
    FALLING = "FALLING"
    DOWN = "DOWN"


@dataclass(slots=True)
class RiseFall:
    """Debounce check results: ``rise`` consecutive successes to go UP, ``fall`` failures to go DOWN."""

    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    state: CheckState = field(default=CheckState.INIT)
    _streak: int = 0

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"rise and fall must be >= 1 (got rise={self.rise}, fall={self.fall})")

    @property
    def healthy(self) -> bool:
        if self.state is CheckState.INIT:
            return not self.init_fail
        return self.state in (CheckState.UP, CheckState.FALLING)

    def observe(self, ok: bool) -> CheckState:
        """Feed one check result; returns the new state."""
        s = self.state
        if s is CheckState.INIT:
            if self.init_fail:
                s = CheckState.DOWN
            elif ok:
                self._go(CheckState.UP)
                return self.state
            else:
                s = CheckState.UP
        if ok:
            if s in (CheckState.UP, CheckState.FALLING):
                self._go(CheckState.UP)
            else:  # DOWN or RISING
                self._streak = self._streak + 1 if s is CheckState.RISING else 1
                self.state = CheckState.RISING
                if self._streak >= self.rise:
                    self._go(CheckState.UP)
        elif s in (CheckState.DOWN, CheckState.RISING):
            self._go(CheckState.DOWN)
        else:  # UP or FALLING
            self._streak = self._streak + 1 if s is CheckState.FALLING else 1
            self.state = CheckState.FALLING
            if self._streak >= self.fall:
                self._go(CheckState.DOWN)
        return self.state

    def _go(self, state: CheckState) -> None:
        self.state = state
        self._streak = 0


def weight_effect(healthy: bool, weight: int, reverse: bool = False) -> tuple[int, bool]:
    """``(delta, fault)`` of a vrrp_script / track_interface result (keepalived.conf(5))."""
    if weight == 0:
        return 0, (healthy if reverse else not healthy)
    applies = healthy if weight > 0 else not healthy
    if not applies:
        return 0, False
    return (-weight if reverse else weight), False


def interface_effect(up: bool, weight: int = 0, reverse: bool = False) -> tuple[int, bool]:
    """track_interface: weight 0 (default) means link down => FAULT."""
    return weight_effect(up, weight, reverse)


def file_effect(value: int, weight: int = 1, reverse: bool = False) -> tuple[int, bool]:
    """track_file: ``value * weight`` (negated by ``reverse``); below -253 => FAULT."""
    if weight == 0:
        failed = value != 0
        return 0, (not failed if reverse else failed)
    result = value * weight * (-1 if reverse else 1)
    if result < FILE_FAULT_BELOW:
        return 0, True
    return result, False


@dataclass(slots=True)
class ScriptTracker:
    """A vrrp_script as the engine sees it: rise/fall plus weight.

    ``observe(ok)`` returns the new ``(delta, fault)`` when it changed, else
    None, so the runtime sends a TrackerChanged only on change (PyBal's
    ``_resultUp``/``_resultDown`` habit).
    """

    name: str
    weight: int = 0
    reverse: bool = False
    checks: RiseFall = field(default_factory=RiseFall)
    _last: tuple[int, bool] | None = None

    def current(self) -> tuple[int, bool]:
        return weight_effect(self.checks.healthy, self.weight, self.reverse)

    def observe(self, ok: bool) -> tuple[int, bool] | None:
        self.checks.observe(ok)
        effect = self.current()
        if effect == self._last:
            return None
        self._last = effect
        return effect
