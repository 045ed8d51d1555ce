"""base.clock.WallAnchor: a past monotonic instant renders as the same wall time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyvrrp.base.clock import WallAnchor


@given(jitter=st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=2, max_size=20))
def test_offset_is_stable_under_read_jitter(jitter: list[float]) -> None:
    """CI failure: ``at`` moved by 1-4 ms between two ``state`` calls; it must not move."""
    anchor = WallAnchor(step_s=1.0)
    at = 100.0
    seen = set()
    for i, j in enumerate(jitter):
        mono_now = 200.0 + i
        seen.add(anchor.to_wall(at, wall_now=1_000_000.0 + mono_now + j, mono_now=mono_now))
    assert len(seen) == 1


def test_wall_clock_step_reanchors() -> None:
    anchor = WallAnchor(step_s=1.0)
    assert anchor.to_wall(10.0, wall_now=1000.0, mono_now=20.0) == 990.0
    assert anchor.to_wall(10.0, wall_now=1000.4, mono_now=20.0) == 990.0
    # the operator sets the date one hour ahead: timestamps follow the new wall clock
    assert anchor.to_wall(10.0, wall_now=4600.0, mono_now=20.0) == 4590.0
