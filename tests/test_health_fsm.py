"""pyvrrp.health.fsm: rise/fall debouncing and keepalived weight rules (TMR-10, SM-16)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrp.health.fsm import (
    CheckState,
    RiseFall,
    ScriptTracker,
    file_effect,
    interface_effect,
    weight_effect,
)

S = CheckState


def run(rf: RiseFall, results: str) -> list[CheckState]:
    return [rf.observe(c == "1") for c in results]


def test_init_is_healthy_unless_init_fail() -> None:
    """keepalived vrrp_script: before the first result the script counts as OK, or failed with init_fail."""
    assert RiseFall().healthy
    assert not RiseFall(init_fail=True).healthy


def test_fall_needs_consecutive_failures() -> None:
    """SM-16: fall=3 -> three consecutive failures to go DOWN; a success in between resets."""
    rf = RiseFall(rise=2, fall=3)
    assert run(rf, "1") == [S.UP]
    assert run(rf, "00") == [S.FALLING, S.FALLING] and rf.healthy
    assert run(rf, "1") == [S.UP]
    assert run(rf, "000") == [S.FALLING, S.FALLING, S.DOWN] and not rf.healthy


def test_rise_needs_consecutive_successes() -> None:
    """SM-16: rise=2 from DOWN; a failure during RISING goes back to DOWN."""
    rf = RiseFall(rise=2, fall=1)
    assert run(rf, "0") == [S.DOWN]
    assert run(rf, "10") == [S.RISING, S.DOWN] and not rf.healthy
    assert run(rf, "11") == [S.RISING, S.UP] and rf.healthy


def test_init_fail_must_rise() -> None:
    """keepalived init_fail: starts failed; needs `rise` successes."""
    rf = RiseFall(rise=3, init_fail=True)
    assert run(rf, "111") == [S.RISING, S.RISING, S.UP]
    rf = RiseFall(rise=1, init_fail=True)
    assert run(rf, "1") == [S.UP]


def test_first_failure_from_init_starts_falling() -> None:
    """Without init_fail, INIT behaves as UP: one failure is FALLING when fall > 1."""
    assert run(RiseFall(fall=2), "00") == [S.FALLING, S.DOWN]
    assert run(RiseFall(fall=1), "0") == [S.DOWN]


def test_rejects_zero_rise_or_fall() -> None:
    with pytest.raises(ValueError, match="rise"):
        RiseFall(rise=0)


@given(st.integers(1, 5), st.integers(1, 5), st.lists(st.booleans(), max_size=40))
def test_healthy_matches_last_streak(rise: int, fall: int, results: list[bool]) -> None:
    """Debounce property: after `fall` failures in a row unhealthy, after `rise` (or 1 from UP) healthy."""
    rf = RiseFall(rise=rise, fall=fall)
    for ok in results:
        rf.observe(ok)
    tail = 0
    for ok in reversed(results):
        if ok != (results[-1] if results else True):
            break
        tail += 1
    if results and not results[-1] and tail >= fall:
        assert not rf.healthy
    if results and results[-1] and tail >= rise:
        assert rf.healthy


@pytest.mark.parametrize(
    ("healthy", "weight", "reverse", "effect"),
    [
        (True, 0, False, (0, False)),
        (False, 0, False, (0, True)),
        (True, 0, True, (0, True)),  # 'weight 0 reverse': down when the script is up
        (False, 0, True, (0, False)),
        (True, 20, False, (20, False)),
        (False, 20, False, (0, False)),
        (True, -30, False, (0, False)),
        (False, -30, False, (-30, False)),
        (True, 20, True, (-20, False)),  # reverse: decreased when up
        (False, -30, True, (30, False)),  # reverse: increased when down
    ],
)
def test_weight_rules(healthy: bool, weight: int, reverse: bool, effect: tuple[int, bool]) -> None:
    """TMR-10, SM-16: keepalived.conf(5) weight semantics for vrrp_script / track_interface."""
    assert weight_effect(healthy, weight, reverse) == effect


def test_interface_default_is_fault_on_down() -> None:
    """SM-16: track_interface without weight: link down => FAULT."""
    assert interface_effect(False) == (0, True)
    assert interface_effect(True) == (0, False)
    assert interface_effect(False, weight=-50) == (-50, False)


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "effect"),
    [
        (0, 1, False, (0, False)),
        (-50, 1, False, (-50, False)),
        (5, 10, False, (50, False)),
        (-253, 1, False, (-253, False)),
        (-254, 1, False, (0, True)),
        (-2, 254, False, (0, True)),
        (3, 0, False, (0, True)),
        (0, 0, False, (0, False)),
        (5, 10, True, (-50, False)),
    ],
)
def test_track_file(value: int, weight: int, reverse: bool, effect: tuple[int, bool]) -> None:
    """TMR-10, SM-16: track_file value x weight; below -253 => FAULT; weight 0: non-zero = failure."""
    assert file_effect(value, weight, reverse) == effect


def test_script_tracker_reports_changes_only() -> None:
    """TMR-10: a tracker emits (delta, fault) only when its contribution changes."""
    t = ScriptTracker("chk", weight=-20, checks=RiseFall(fall=2))
    assert t.observe(True) == (0, False)
    assert t.observe(True) is None
    assert t.observe(False) is None  # FALLING, still healthy
    assert t.observe(False) == (-20, False)
    assert t.observe(True) == (0, False)
