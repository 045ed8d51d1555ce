"""VRRP timer formulas (RFC 3768 §6.1, RFC 5798 §6.1, RFC 9568 §6.1).

Rounding choice (ANCHORS TMR-04, §6.2 #4): no RFC gives a rounding rule for
Skew_Time.  pyvrrp follows the formulas *exactly*: every value is computed as
a :class:`fractions.Fraction` of centiseconds and only converted to a float of
seconds at the end (a correctly rounded conversion).  For every
priority/interval pair of the protocol the result is a dyadic rational
(denominator 256 x 100), so e.g. v2 priority 100 gives exactly 0.609375 s and
Master_Down_Interval 3.609375 s, like keepalived's microsecond timers and
unlike a truncation to whole centiseconds (which would give 0.60 s).

Units: ``_cs`` are centiseconds, ``_s`` seconds (STYLE rule 6).  For v2,
``interval_cs`` is the Adver Int in seconds times 100 (``Advertisement``
carries it that way).
"""

from __future__ import annotations

from fractions import Fraction

from pyvrrp.proto.constants import DOWN_TIMER_ADVERTS

__all__ = [
    "master_down_interval_cs",
    "master_down_interval_s",
    "skew_time_cs",
    "skew_time_s",
]

_CS_PER_S = 100


def _check(version: int, priority: int, interval_cs: int) -> None:
    if version not in (2, 3):
        raise ValueError(f"VRRP version must be 2 or 3, got {version}")
    if not 0 <= priority <= 255:
        raise ValueError(f"priority must be 0..255, got {priority}")
    if interval_cs <= 0:
        raise ValueError(f"advertisement interval must be > 0 cs, got {interval_cs}")


def skew_time_cs(version: int, priority: int, interval_cs: int) -> Fraction:
    """Skew_Time in centiseconds, exact.

    * v2 (RFC 3768 §6.1, TMR-02): ``(256 - Priority) / 256`` **seconds**,
      independent of the advertisement interval.
    * v3 (RFC 5798/9568 §6.1, TMR-04): ``((256 - Priority) * Master_Adver_Interval) / 256``
      centiseconds: it scales with the (learned) master's interval.

    ``priority`` is the *effective* priority (TMR-10).
    """
    return Fraction(_skew_256ths_cs(version, priority, interval_cs), 256)


def _skew_256ths_cs(version: int, priority: int, interval_cs: int) -> int:
    """Skew_Time in 1/256 centiseconds (an exact integer)."""
    _check(version, priority, interval_cs)
    return (256 - priority) * (_CS_PER_S if version == 2 else interval_cs)


def master_down_interval_cs(
    version: int, priority: int, interval_cs: int, down_timer_adverts: int = DOWN_TIMER_ADVERTS
) -> Fraction:
    """Master_Down_Interval in centiseconds, exact.

    ``down_timer_adverts * Interval + Skew_Time`` (RFC 3768 §6.1 TMR-03,
    RFC 5798 §6.1 TMR-05; the RFC multiplier is 3, keepalived's
    ``down_timer_adverts`` makes it configurable, TMR-11).  For v3 the interval
    is Master_Adver_Interval (the master's advertised interval, TMR-06).
    """
    return Fraction(_master_down_256ths_cs(version, priority, interval_cs, down_timer_adverts), 256)


def _master_down_256ths_cs(version: int, priority: int, interval_cs: int, down_timer_adverts: int) -> int:
    if down_timer_adverts < 1:
        raise ValueError(f"down_timer_adverts must be >= 1, got {down_timer_adverts}")
    return down_timer_adverts * interval_cs * 256 + _skew_256ths_cs(version, priority, interval_cs)


def skew_time_s(version: int, priority: int, interval_cs: int) -> float:
    """:func:`skew_time_cs` in seconds (float)."""
    # int / int is correctly rounded: the same float as float(Fraction(...))
    return _skew_256ths_cs(version, priority, interval_cs) / (256 * _CS_PER_S)


def master_down_interval_s(
    version: int, priority: int, interval_cs: int, down_timer_adverts: int = DOWN_TIMER_ADVERTS
) -> float:
    """:func:`master_down_interval_cs` in seconds (float)."""
    return _master_down_256ths_cs(version, priority, interval_cs, down_timer_adverts) / (256 * _CS_PER_S)
