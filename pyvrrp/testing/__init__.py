"""Public test doubles for pyvrrp (modelled on ``trio.testing``).

* :class:`FakeClock`: virtual monotonic time, moved only by the test.
* :class:`RecordingExecutor`: performs nothing, records every action and
  which VIPs the engine would hold.
* :class:`FakeLan`: N engines on an in-memory LAN with loss and partitions;
  ``run_until(t)`` fires timers and deliveries in time order.
* :class:`FakeNet`: several FakeLans on one clock with a sync group per host.

No sockets, no sleeps: every scenario is a sequence of plain calls.
"""

from __future__ import annotations

from pyvrrp.testing.clock import FakeClock
from pyvrrp.testing.lan import FakeLan, FakeNet, NetTransition, Node, Transition, make_config, make_router
from pyvrrp.testing.recorder import RecordingExecutor

__all__ = [
    "FakeClock",
    "FakeLan",
    "FakeNet",
    "NetTransition",
    "Node",
    "RecordingExecutor",
    "Transition",
    "make_config",
    "make_router",
]
