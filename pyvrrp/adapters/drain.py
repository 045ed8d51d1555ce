"""Connection draining before a VIP is released: no new connections, count the open ones.

Theory of operation
-------------------
At SIGTERM with BGP announcements (issue 17) the routes are withdrawn first, and the router
moves the traffic to the backup within milliseconds.  That alone does not keep connections:
in active-backup the backup forwards what it receives for the VIP to the VIP holder over the
VRRP segment, so *new* connections keep arriving here for as long as this node holds the VIP,
and any connection still open when the VIP moves is cut (its next packet reaches a node with
no socket for it: a reset, or a timeout).  So, between the withdraw and the release:

1. :func:`syn_drop_ruleset`: an nftables table of its own that drops *new* TCP connections
   (a SYN without ACK) to the VIPs, in the input hook before IPVS.  The client retransmits
   its SYN after its initial RTO (1 s on Linux), by when the VIP is on the backup: the
   connection is late, not failed.  Packets of open connections pass.
2. :func:`open_connections`: TCP sockets with a VIP as local address that can still carry
   data (``/proc/net/tcp``, ``tcp6``), and IPVS connections to a VIP (``/proc/net/ip_vs_conn``),
   polled until none is left or the drain time is up.
3. The VIP is released, then the table is removed (:func:`removal` from the firewall adapter).

Only the parsing and the ruleset are pure; the daemon runs ``nft`` (the firewall adapter's
:class:`~pyvrrp.adapters.firewall.Nft`) and reads the files.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from pyvrrp.adapters.firewall import TABLE_NAME

__all__ = ["DRAIN_TABLE", "count_ip_vs", "count_sockets", "open_connections", "syn_drop_ruleset"]

DRAIN_TABLE = "pyvrrp_drain"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# /proc/net/tcp states (include/net/tcp_states.h) in which the socket may still send or
# receive data: ESTABLISHED, SYN_RECV, FIN_WAIT1, CLOSE_WAIT, LAST_ACK, CLOSING.  Not LISTEN,
# TIME_WAIT, CLOSE, nor FIN_WAIT2 (we have sent everything and the peer acked it).
_LIVE = {0x01, 0x03, 0x04, 0x08, 0x09, 0x0B}


def syn_drop_ruleset(addresses: Iterable[Address], table: str = DRAIN_TABLE) -> str:
    """The ``nft -f`` script that (re)creates ``table``: drop new TCP connections to ``addresses``."""
    if not TABLE_NAME.match(table):
        raise ValueError(f"invalid nftables table name {table!r}")
    addrs = sorted(set(addresses), key=lambda a: (a.version, a))
    v4 = ", ".join(str(a) for a in addrs if a.version == 4)
    v6 = ", ".join(str(a) for a in addrs if a.version == 6)
    lines = [
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority -1; policy accept;",
    ]
    if v4:
        lines.append(f"\t\tip daddr {{ {v4} }} tcp flags & (syn | ack) == syn counter drop")
    if v6:
        lines.append(f"\t\tip6 daddr {{ {v6} }} tcp flags & (syn | ack) == syn counter drop")
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def _proc_addr(hexaddr: str) -> Address | None:
    """``/proc/net/tcp{,6}`` local address: 32-bit words in host (little-endian) order."""
    try:
        raw = bytes.fromhex(hexaddr)
    except ValueError:
        return None
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    if len(raw) == 16:
        return ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return None


def count_sockets(text: str, addresses: set[Address]) -> int:
    """Live TCP sockets (``_LIVE``) in ``/proc/net/tcp`` or ``tcp6`` with a local address in ``addresses``."""
    n = 0
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or ":" not in cols[1]:
            continue
        try:
            state = int(cols[3], 16)
        except ValueError:
            continue
        if state in _LIVE and _proc_addr(cols[1].rsplit(":", 1)[0]) in addresses:
            n += 1
    return n


def count_ip_vs(text: str, addresses: set[Address]) -> int:
    """IPVS connections in ``/proc/net/ip_vs_conn`` to one of ``addresses``, ESTABLISHED or SYN_RECV."""
    n = 0
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8 or cols[7] not in ("ESTABLISHED", "SYN_RECV"):
            continue
        addr: Address | None = None
        try:  # IPv4 as 8 hex digits in network order, IPv6 written out with colons
            vip = cols[3]
            addr = ipaddress.ip_address(vip) if ":" in vip else ipaddress.IPv4Address(int(vip, 16))
        except ValueError:
            continue
        if addr in addresses:
            n += 1
    return n


def open_connections(addresses: Iterable[Address], proc: Path = Path("/proc")) -> int:
    """Connections to ``addresses`` that a VIP move would cut, sockets and IPVS together."""
    wanted = set(addresses)
    n = 0
    for name in ("net/tcp", "net/tcp6"):
        try:
            n += count_sockets((proc / name).read_text(), wanted)
        except OSError:
            continue
    with contextlib.suppress(OSError):
        n += count_ip_vs((proc / "net/ip_vs_conn").read_text(), wanted)
    return n
