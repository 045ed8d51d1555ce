"""The namespace lab: topology, daemons (pyvrrp, keepalived), captures and the demo.

Root-only.  ``from pyvrrp.lab import Lab, PyvrrpNode, KeepalivedNode, InstanceSpec``.
Nothing here is imported by the daemon itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_available, keepalived_conf
from pyvrrp.lab.topology import (
    HOSTS,
    VIP4,
    VIP6,
    DaemonNode,
    HostSpec,
    HttpResult,
    InstanceSpec,
    Lab,
    LabError,
    PyvrrpNode,
    pyvrrp_toml,
    wait_for,
)

__all__ = [
    "HOSTS",
    "VIP4",
    "VIP6",
    "DaemonNode",
    "HostSpec",
    "HttpResult",
    "InstanceSpec",
    "KeepalivedNode",
    "Lab",
    "LabError",
    "PyvrrpNode",
    "keepalived_available",
    "keepalived_conf",
    "make_node",
    "pyvrrp_toml",
    "wait_for",
]


def make_node(lab: Lab, host: str, daemon: str, instances: Sequence[InstanceSpec]) -> DaemonNode:
    """A ``PyvrrpNode`` or ``KeepalivedNode`` (``daemon`` = "pyvrrp" / "keepalived") for
    ``instances``; interop tests parametrize over the pair of daemons with this."""
    if daemon == "pyvrrp":
        return PyvrrpNode(lab, host, instances=instances)
    if daemon == "keepalived":
        return KeepalivedNode(lab, host, instances=instances)
    raise ValueError(f"unknown daemon {daemon!r} (pyvrrp, keepalived)")
