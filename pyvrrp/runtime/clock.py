"""Re-export of :mod:`pyvrrp.base.clock` for the daemon's ``from pyvrrp.runtime import clock``.

The clock lives in the leaf package :mod:`pyvrrp.base` so adapters and
splitbrain can read it without importing the runtime; new code imports it
from there.
"""

from __future__ import annotations

from pyvrrp.base.clock import Clock, MonotonicClock, monotonic, to_wall_time, wall_time

__all__ = ["Clock", "MonotonicClock", "monotonic", "to_wall_time", "wall_time"]
