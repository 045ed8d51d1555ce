"""keepalived ``use_vmac``: a macvlan with the VRRP virtual MAC that carries an instance's VIPs.

Theory of operation (keepalived's vrrp_vmac.c and vrrp_if_config.c, read, not copied):

* The macvlan (default name ``vrrp.VRID``) sits on the instance's interface in
  **private** mode with MAC 00:00:5e:00:01:VRID (IPv6 00:00:5e:00:02:VRID, RFC 5798
  §7.3, ARP-01); the VIPs on it answer ARP with that MAC only (ARP-03).
  Private mode matters: every router of the VRID has a macvlan with the same
  MAC, and a multicast frame whose *source* is one of our macvlans' MACs (the
  master's advert, sent from its own VMAC) is delivered to that macvlan only, as if
  it were looped back.  So adverts are received on the macvlan (which joins the
  VRRP group), not on the base interface - unless ``vmac_xmit_base`` sends and
  receives them on the base.
* It is created and brought up at instance start, on MASTER and BACKUP alike
  (keepalived does the same: a backup has to hear the master on it); only the VIPs
  come and go with the state.  Clients keep one neighbour entry across a failover:
  the VIP's MAC never changes, only the switch port that answers for it.
* Before it goes up (so the kernel sends nothing from it first) it gets the sysctls
  keepalived sets: ``arp_ignore=1`` (answer ARP only for its own addresses, the VIPs,
  not for the base's), ``accept_local=1``, ``rp_filter=0`` (adverts arrive on it from
  a source routed through the base), ``promote_secondaries=1``; an IPv4 instance's
  macvlan has IPv6 disabled (no MLD/RS/DAD frames from the shared MAC), an IPv6
  instance's gets ``addr_gen_mode=1`` (no EUI-64 link-local from the VMAC, ARP-08) and
  the daemon adds the base's link-local to it (the adverts' source, RFC 5798 §5.1.2.1).  The base gets
  ``arp_ignore=1`` and ``arp_filter=1`` (so it does not answer for the VIPs) and
  ``arp_announce=2`` (see :data:`VMAC_BASE_SYSCTLS`), restored when the last macvlan on it
  is removed.
* A macvlan left by a crashed run is reused when it has the right base, MAC and mode,
  and re-created otherwise; a link of that name that is not a macvlan is never touched
  (:class:`VmacError`).  Stop removes the macvlan; one deleted under a running
  instance puts it in FAULT until the daemon has made it again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

from pyvrrp.adapters.netlink import Netlink

__all__ = ["VMAC_BASE_SYSCTLS", "VMAC_SYSCTLS", "VmacError", "VmacManager", "read_sysctl", "write_sysctl"]

_log = structlog.get_logger("pyvrrp.adapters.vmac")

SYSCTL_ROOT = Path("/proc/sys/net")

VMAC_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("arp_ignore", "1"),
    ("accept_local", "1"),
    ("rp_filter", "0"),
    ("promote_secondaries", "1"),
)
"""net.ipv4.conf.VMAC.* (keepalived vrrp_if_config.c ``vmac_sysctl``)."""

VMAC_BASE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("arp_ignore", "1"),
    ("arp_filter", "1"),
    ("arp_announce", "2"),
)
"""net.ipv4.conf.BASE.* while a macvlan is on it, restored after: keepalived's ``parent_sysctl``
(arp_ignore, arp_filter) and, pyvrrp's own, ``arp_announce=2``: a master answering a client from
a VIP resolves the client from the base with the VIP as the ARP sender address otherwise, and
the client's neighbour entry for the VIP flips to the base's MAC (and to a dead one after a
failover, until the GARPs)."""


class VmacError(OSError):
    """The macvlan cannot be made (message names it and says what to do)."""


def read_sysctl(family: Literal["ipv4", "ipv6"], ifname: str, key: str) -> str:
    return (SYSCTL_ROOT / family / "conf" / ifname / key).read_text().strip()


def write_sysctl(family: Literal["ipv4", "ipv6"], ifname: str, key: str, value: str) -> None:
    (SYSCTL_ROOT / family / "conf" / ifname / key).write_text(value + "\n")


@dataclass
class VmacManager:
    """Creates, reuses and removes the macvlans of ``use_vmac`` instances."""

    netlink: Netlink
    _base_saved: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _base_users: dict[str, set[str]] = field(default_factory=dict)
    _owned: dict[str, str] = field(default_factory=dict)
    """macvlan -> base, for every macvlan this run set up."""

    def ensure(self, name: str, base: str, mac: str, family: int) -> Literal["created", "reused", "replaced"]:
        """Make ``name`` a private macvlan on ``base`` with ``mac``, configured and up.

        Raises:
            VmacError: ``name`` is another kind of link, or the kernel refused.
            InterfaceNotFound: ``base`` does not exist.
        """
        mac = mac.lower()
        base_index = self.netlink.link_index(base)
        info = self.netlink.macvlan(name)
        outcome: Literal["created", "reused", "replaced"] = "created"
        if info is not None:
            if info.kind != "macvlan":
                raise VmacError(
                    f"{name} exists and is {'a ' + info.kind if info.kind else 'a device'}, not a macvlan: "
                    "pyvrrp leaves it alone; choose another vmac_name"
                )
            if info.base_index == base_index and info.mac == mac and info.mode == "private":
                outcome = "reused"
            else:
                _log.warning(
                    "vmac_replaced",
                    vmac=name,
                    reason=f"base ifindex {info.base_index}, MAC {info.mac}, mode {info.mode}; "
                    f"wanted {base} ({base_index}), {mac}, private",
                )
                self.netlink.delete_link(name)
                outcome = "replaced"
        try:
            if outcome != "reused":
                self.netlink.add_macvlan(name, base, mac, mode="private")
            self._configure(name, base, family)
            self.netlink.set_link_up(name)
        except OSError as exc:
            raise VmacError(f"macvlan {name} on {base}: {exc}") from None
        self._owned[name] = base
        _log.info("vmac_ready", vmac=name, base=base, mac=mac, outcome=outcome)
        return outcome

    def _configure(self, name: str, base: str, family: int) -> None:
        for key, value in VMAC_SYSCTLS:
            write_sysctl("ipv4", name, key, value)
        if family == 4:
            with contextlib.suppress(FileNotFoundError):  # a kernel booted with ipv6.disable=1
                write_sysctl("ipv6", name, "disable_ipv6", "1")
        else:
            write_sysctl("ipv6", name, "disable_ipv6", "0")
            write_sysctl("ipv6", name, "addr_gen_mode", "1")  # IN6_ADDR_GEN_MODE_NONE
        if base not in self._base_saved:
            saved = [(key, read_sysctl("ipv4", base, key)) for key, _ in VMAC_BASE_SYSCTLS]
            for key, value in VMAC_BASE_SYSCTLS:
                write_sysctl("ipv4", base, key, value)
            self._base_saved[base] = saved
        self._base_users.setdefault(base, set()).add(name)
        try:
            strict = read_sysctl("ipv4", "all", "rp_filter") == "1"
        except OSError:
            strict = False
        if strict:
            _log.warning(
                "vmac_rp_filter",
                vmac=name,
                note="net.ipv4.conf.all.rp_filter=1 (strict) overrides the macvlan's rp_filter=0 and drops "
                "adverts arriving on it; set all.rp_filter to 0 or 2",
            )

    def remove(self, name: str) -> bool:
        """Delete the macvlan and, with the last one on its base, restore the base's sysctls."""
        base = self._owned.pop(name, None)
        try:
            deleted = self.netlink.delete_link(name)
        except OSError as exc:
            _log.error("vmac_remove_failed", vmac=name, error=str(exc))
            deleted = False
        if base is not None:
            users = self._base_users.get(base, set())
            users.discard(name)
            if not users:
                for key, value in self._base_saved.pop(base, []):
                    try:
                        write_sysctl("ipv4", base, key, value)
                    except OSError as exc:  # the base went away meanwhile
                        _log.warning("vmac_base_restore_failed", base=base, key=key, error=str(exc))
        if deleted:
            _log.info("vmac_removed", vmac=name)
        return deleted

    def record(self) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """(macvlan -> base, base -> its sysctls from before): what a crash would leave behind."""
        return dict(self._owned), {b: dict(kv) for b, kv in self._base_saved.items()}

    def adopt(self, base_sysctls: dict[str, dict[str, str]]) -> None:
        """An earlier run's record: the values its macvlans' bases had before (restored at the end)."""
        for base, kv in base_sysctls.items():
            self._base_saved.setdefault(base, list(kv.items()))

    def release_unused(self) -> None:
        """Restore the adopted bases that no macvlan of this run uses."""
        for base in [b for b in self._base_saved if not self._base_users.get(b)]:
            for key, value in self._base_saved.pop(base):
                try:
                    write_sysctl("ipv4", base, key, value)
                except OSError as exc:
                    _log.warning("vmac_base_restore_failed", base=base, key=key, error=str(exc))

    def remove_stale(self, name: str) -> bool:
        """Delete a macvlan an earlier run made (only if it is one)."""
        info = self.netlink.macvlan(name)
        if info is None or info.kind != "macvlan":
            return False
        return self.netlink.delete_link(name)

    def remove_all(self) -> None:
        for name in list(self._owned):
            self.remove(name)
