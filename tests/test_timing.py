"""Timer formulas: RFC 3768 §6.1 (v2) and RFC 5798/9568 §6.1 (v3), exact arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pyvrrp.proto.timing import (
    master_down_interval_cs,
    master_down_interval_s,
    skew_time_cs,
    skew_time_s,
)


def test_v2_skew_and_master_down_at_prio_100() -> None:
    """TMR-02, TMR-03: v2 prio 100 at 1 s: Skew 0.609375 s, MDI 3.609375 s (not truncated)."""
    assert skew_time_s(2, 100, 100) == 0.609375
    assert master_down_interval_s(2, 100, 100) == 3.609375
    assert skew_time_s(2, 100, 100) != 0.60  # no truncation to centiseconds


def test_v2_skew_does_not_scale_with_interval() -> None:
    """TMR-02: v2 Skew_Time is in seconds, independent of Advertisement_Interval."""
    assert skew_time_s(2, 100, 300) == 0.609375
    assert master_down_interval_s(2, 100, 300) == 9.609375


def test_v3_skew_scales_with_master_interval() -> None:
    """TMR-04, TMR-05: v3 100 cs prio 100: 60.9375 cs and 360.9375 cs; 10 cs scales by 1/10."""
    assert skew_time_cs(3, 100, 100) == Fraction(609375, 10000)
    assert master_down_interval_cs(3, 100, 100) == Fraction(3609375, 10000)
    assert master_down_interval_s(3, 100, 100) == 3.609375
    assert skew_time_s(3, 100, 10) == pytest.approx(0.0609375, abs=0)
    assert master_down_interval_s(3, 100, 10) == float(Fraction(3609375, 10**7))


@pytest.mark.parametrize(
    ("version", "priority", "interval_cs", "skew_cs"),
    [
        (2, 255, 100, Fraction(100, 256)),
        (2, 254, 100, Fraction(200, 256)),
        (2, 1, 100, Fraction(25500, 256)),
        (3, 255, 1, Fraction(1, 256)),
        (3, 254, 1, Fraction(2, 256)),
        (3, 1, 1, Fraction(255, 256)),
        (3, 1, 4095, Fraction(255 * 4095, 256)),
        (3, 0, 100, Fraction(100)),
    ],
)
def test_boundaries_are_exact(version: int, priority: int, interval_cs: int, skew_cs: Fraction) -> None:
    """TMR-04 / ANCHORS §6.2 #4: boundary priorities (0, 1, 254, 255) and intervals (1, 4095 cs)."""
    assert skew_time_cs(version, priority, interval_cs) == skew_cs
    assert skew_time_s(version, priority, interval_cs) == float(skew_cs / 100)
    assert master_down_interval_cs(version, priority, interval_cs) == 3 * interval_cs + skew_cs


def test_down_timer_adverts_multiplier() -> None:
    """TMR-11: keepalived down_timer_adverts replaces the RFC multiplier 3."""
    assert master_down_interval_s(2, 100, 100, down_timer_adverts=5) == 5.609375
    assert master_down_interval_s(3, 100, 100, 1) == 1.609375


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, 100, 100), "version"),
        ((2, 256, 100), "priority"),
        ((2, -1, 100), "priority"),
        ((3, 100, 0), "interval"),
    ],
)
def test_rejects_bad_arguments(args: tuple[int, int, int], message: str) -> None:
    """TMR-01: interval 0 and out-of-range values are refused (ANCHORS §6.2 #2)."""
    with pytest.raises(ValueError, match=message):
        skew_time_s(*args)


def test_rejects_zero_down_timer_adverts() -> None:
    """TMR-11: down_timer_adverts must be >= 1."""
    with pytest.raises(ValueError, match="down_timer_adverts"):
        master_down_interval_s(2, 100, 100, 0)
