"""Kernel I/O adapters: raw VRRP sockets, netlink, AF_PACKET GARP/NA, notify scripts.

Each adapter is a thin shell with an asyncio-friendly API; decisions live in
``pyvrrp.proto`` and the runtime supervisor wires the two together.
"""

from __future__ import annotations
