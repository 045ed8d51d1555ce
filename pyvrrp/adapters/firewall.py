"""nftables drop rules for instances without accept mode (RFC 5798 §6.1, Accept_Mode = False).

Theory of operation
-------------------
RFC 5798 §6.4.3: a master that is not the address owner and runs without accept mode
"MUST NOT accept packets addressed to the IPvX address(es) associated with the virtual
router".  The VIP is on the interface all the same (it must answer ARP and be routed
through), so the kernel would deliver such packets; keepalived drops them with a firewall
(``vrrp_nftables``, or ``vrrp_iptables`` where iptables still is iptables).  pyvrrp does
the same with nftables only, in a table of its own that it creates at start and deletes
at stop; nothing outside that table is touched.

The table holds one input chain and two sets, ``vips4`` and ``vips6``, with **every**
VIP of every instance that runs without accept mode (owners, priority 255, accept
always).  The sets do not follow the VRRP state: on a backup the address is not local,
so no packet for it reaches the input hook and the rule changes nothing; on a master it
drops them.  So a failover changes no firewall state and costs nothing; the ruleset
changes only at start, reload and stop.  Each change is one ``nft -f -`` transaction
that creates the table if absent, deletes it and writes it anew: a table left behind by
a crashed daemon is replaced, never doubled, and a reader never sees half a ruleset.

Only the plan (:func:`ruleset`) is pure; :class:`Nft` runs the ``nft`` command (Debian's
nftables package), which is how nftables documents atomic rule replacement.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

__all__ = ["DropPlan", "FirewallError", "Nft", "removal", "ruleset"]

#: nft identifiers: a letter, then letters, digits, '_', '-' (nft(8) "identifier").
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

NFT_TIMEOUT_S = 10.0


class FirewallError(RuntimeError):
    """``nft`` is missing or refused the ruleset (the message says which, with nft's words)."""


@dataclass(frozen=True, slots=True)
class DropPlan:
    """What the table must hold: its name, hook priority, counters, and the VIPs to drop."""

    table: str
    priority: int = -1
    counters: bool = False
    v4: frozenset[IPv4Address] = frozenset()
    v6: frozenset[IPv6Address] = frozenset()

    @classmethod
    def of(
        cls,
        table: str,
        addresses: Iterable[IPv4Address | IPv6Address],
        *,
        priority: int = -1,
        counters: bool = False,
    ) -> DropPlan:
        addrs = list(addresses)
        v4 = frozenset(a for a in addrs if isinstance(a, IPv4Address))
        v6 = frozenset(a for a in addrs if isinstance(a, IPv6Address))
        return cls(table, priority, counters, v4, v6)

    @property
    def empty(self) -> bool:
        return not self.v4 and not self.v6


def _elements(addresses: Iterable[IPv4Address | IPv6Address]) -> str:
    return ", ".join(str(a) for a in sorted(addresses))


def ruleset(plan: DropPlan) -> str:
    """The ``nft -f`` script that (re)creates ``plan.table`` atomically."""
    if not TABLE_NAME.match(plan.table):
        raise ValueError(f"invalid nftables table name {plan.table!r}")
    counter = " counter" if plan.counters else ""
    lines = [
        f"table inet {plan.table} {{}}",  # so that the delete below never fails
        f"delete table inet {plan.table}",
        f"table inet {plan.table} {{",
        "\tset vips4 {",
        "\t\ttype ipv4_addr",
    ]
    if plan.v4:
        lines.append(f"\t\telements = {{ {_elements(plan.v4)} }}")
    lines += ["\t}", "\tset vips6 {", "\t\ttype ipv6_addr"]
    if plan.v6:
        lines.append(f"\t\telements = {{ {_elements(plan.v6)} }}")
    lines += [
        "\t}",
        "\tchain input {",
        f"\t\ttype filter hook input priority {plan.priority}; policy accept;",
        f"\t\tip daddr @vips4{counter} drop",
        f"\t\tip6 daddr @vips6{counter} drop",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def removal(table: str) -> str:
    """The ``nft -f`` script that deletes ``table`` if it exists (and succeeds if it does not)."""
    if not TABLE_NAME.match(table):
        raise ValueError(f"invalid nftables table name {table!r}")
    return f"table inet {table} {{}}\ndelete table inet {table}\n"


class Nft:
    """Runs ``nft -f -`` with a script; raises :class:`FirewallError` with nft's own message."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("nft") or "/usr/sbin/nft"

    def apply(self, plan: DropPlan) -> None:
        self._run(ruleset(plan))

    def remove(self, table: str) -> None:
        self._run(removal(table))

    def _run(self, script: str) -> None:
        try:
            proc = subprocess.run(
                [self.binary, "-f", "-"],
                input=script,
                capture_output=True,
                text=True,
                timeout=NFT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError:
            raise FirewallError(f"{self.binary} not found: install nftables (apt install nftables)") from None
        except subprocess.TimeoutExpired:
            raise FirewallError(f"{self.binary} did not finish within {NFT_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise FirewallError(f"{self.binary}: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            words = " ".join((proc.stderr or proc.stdout).split())[:400]
            raise FirewallError(f"nft refused the ruleset (exit {proc.returncode}): {words}")
