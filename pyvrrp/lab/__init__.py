"""The namespace lab: topology, daemons (pyvrrp, keepalived), captures and the demo.

Root-only.  ``from pyvrrp.lab import Lab, PyvrrpNode, KeepalivedNode, InstanceSpec``.
Nothing here is imported by the daemon itself.
"""

from __future__ import annotations

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
    "pyvrrp_toml",
    "wait_for",
]
