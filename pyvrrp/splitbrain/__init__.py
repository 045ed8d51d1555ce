"""Split-brain guards (issue #4): gateway arbitration, dual-master detection, fencing, epochs.

Each module is a component the daemon wires to the engine
(``pyvrrp.proto.router``); see docs/split-brain.md for which guard covers
which failure:

* :mod:`.arbiter` / :mod:`.gateway`: :class:`GatewayArbiter` (pure N-of-M
  reachability with rise/fall) and :class:`GatewayMonitor` (ICMP/ARP probes
  from :mod:`pyvrrp.adapters.icmp` and :mod:`pyvrrp.adapters.arping`) ->
  isolation -> ``TrackerChanged`` and the takeover gate.
* :mod:`.conflict`: :class:`ConflictMonitor` (ARP probes for held VIPs, other
  MACs answering = dual master), :func:`probe_vip_once` (pre-takeover check),
  :func:`should_yield` (deterministic resolution), VRID-collision flags.
* :mod:`.fence`: :func:`run_fence` (bounded, cancellable fence hook) and the
  ``fence_failure`` policy.
* :mod:`.epoch`: :class:`EpochStore` (persisted MASTER-term counters).
"""

from __future__ import annotations

from pyvrrp.splitbrain.conflict import (
    ConflictMonitor,
    ConflictRecord,
    ConflictTracker,
    VridCollision,
    VridCollisionLog,
    flag_vrid_collision,
    probe_vip_once,
    should_yield,
)
from pyvrrp.splitbrain.epoch import EpochStore
from pyvrrp.splitbrain.fence import FenceFailurePolicy, FenceResult, run_fence, takeover_allowed
from pyvrrp.splitbrain.gateway import (
    ArpProber,
    GatewayArbiter,
    GatewayMonitor,
    IcmpProber,
    TargetState,
)

__all__ = [
    "ArpProber",
    "ConflictMonitor",
    "ConflictRecord",
    "ConflictTracker",
    "EpochStore",
    "FenceFailurePolicy",
    "FenceResult",
    "GatewayArbiter",
    "GatewayMonitor",
    "IcmpProber",
    "TargetState",
    "VridCollision",
    "VridCollisionLog",
    "flag_vrid_collision",
    "probe_vip_once",
    "run_fence",
    "should_yield",
    "takeover_allowed",
]
