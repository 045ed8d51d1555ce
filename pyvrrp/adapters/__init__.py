"""Kernel I/O adapters: raw VRRP sockets, netlink, AF_PACKET GARP/NA, notify scripts.

Each adapter is a thin shell with an asyncio-friendly API; decisions live in
``pyvrrp.proto`` and the runtime supervisor wires the two together.
"""

from __future__ import annotations


class InterfaceNotFound(LookupError):
    """The named network interface does not exist (in this network namespace)."""

    def __init__(self, ifname: str, detail: str = "") -> None:
        msg = f"interface {ifname!r} not found"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.ifname = ifname


__all__ = ["InterfaceNotFound"]
