"""LVS-DR real-server setup: the VIP on a non-ARPing interface plus the ARP sysctls.

In LVS direct routing the director forwards frames addressed to the VIP to a real server's
MAC; the real server must accept the VIP locally *without* answering ARP for it (else it
steals the VIP from the director).  The classic recipe (LVS-DR HOWTO, ipvsadm(8)):

* the VIP as a /32 (IPv6: /128) on ``lo`` (or a dummy interface);
* ``net.ipv4.conf.{all,<dev>}.arp_ignore = 1``: answer ARP only for addresses configured on
  the interface the request came in on (so never for the VIP on lo);
* ``net.ipv4.conf.{all,<dev>}.arp_announce = 2``: never use the VIP as ARP source address.

:func:`up` is idempotent and saves the previous sysctl values in a state file the first
time; :func:`down` removes the VIP and, when no VIP set up through this module remains on
that interface, restores the saved values and deletes the state file.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

DEFAULT_STATE_DIR = Path("/run/pyvrrp")
PROC_SYS = Path("/proc/sys")
WANTED = {"arp_ignore": "1", "arp_announce": "2"}


class AddressBackend(Protocol):
    def has(self, dev: str, address: str, prefixlen: int) -> bool: ...

    def add(self, dev: str, address: str, prefixlen: int) -> None: ...

    def delete(self, dev: str, address: str, prefixlen: int) -> None: ...


class IPRouteBackend:
    """Addresses through pyroute2 (netlink) in the current network namespace."""

    def _index(self, ipr: object, dev: str) -> int:
        links = ipr.link_lookup(ifname=dev)  # type: ignore[attr-defined]
        if not links:
            raise RealServerError(f"no interface named {dev!r}")
        return int(links[0])

    def has(self, dev: str, address: str, prefixlen: int) -> bool:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            idx = self._index(ipr, dev)
            for msg in ipr.get_addr(index=idx):
                if msg.get_attr("IFA_ADDRESS") == address and msg["prefixlen"] == prefixlen:
                    return True
        return False

    def add(self, dev: str, address: str, prefixlen: int) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.addr("add", index=self._index(ipr, dev), address=address, prefixlen=prefixlen)

    def delete(self, dev: str, address: str, prefixlen: int) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.addr("del", index=self._index(ipr, dev), address=address, prefixlen=prefixlen)


class RealServerError(RuntimeError):
    pass


@dataclass
class RealServerState:
    """What ``up`` did on one interface (persisted as JSON)."""

    dev: str
    saved: dict[str, str] = field(default_factory=dict)  # sysctl path (relative) -> old value
    vips: list[str] = field(default_factory=list)


@dataclass
class RealServerSetup:
    """Apply/undo the LVS-DR real-server recipe; paths and backend injectable for tests."""

    state_dir: Path = DEFAULT_STATE_DIR
    proc_sys: Path = PROC_SYS
    backend: AddressBackend = field(default_factory=IPRouteBackend)
    log: Callable[[str], None] = lambda msg: None

    def _state_path(self, dev: str) -> Path:
        return self.state_dir / f"realserver-{dev}.json"

    def load(self, dev: str) -> RealServerState | None:
        p = self._state_path(dev)
        if not p.exists():
            return None
        data = json.loads(p.read_text())
        return RealServerState(dev=data["dev"], saved=dict(data["saved"]), vips=list(data["vips"]))

    def _store(self, st: RealServerState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path(st.dev).with_suffix(".tmp")
        tmp.write_text(json.dumps({"dev": st.dev, "saved": st.saved, "vips": st.vips}, indent=1) + "\n")
        tmp.replace(self._state_path(st.dev))

    def _sysctls(self, dev: str) -> list[str]:
        return [f"net/ipv4/conf/{iface}/{name}" for iface in ("all", dev) for name in WANTED]

    def _read(self, rel: str) -> str:
        try:
            return (self.proc_sys / rel).read_text().strip()
        except FileNotFoundError:
            raise RealServerError(
                f"sysctl {rel.replace('/', '.')} does not exist (no such interface?)"
            ) from None

    def _write(self, rel: str, value: str) -> None:
        (self.proc_sys / rel).write_text(value + "\n")

    def up(self, vip: str, dev: str = "lo") -> list[str]:
        """Configure ``vip`` on ``dev`` for LVS-DR; returns what changed (empty = nothing)."""
        ip = ipaddress.ip_address(vip)
        prefix = 32 if ip.version == 4 else 128
        changes: list[str] = []
        st = self.load(dev) or RealServerState(dev=dev)
        currents = {rel: self._read(rel) for rel in self._sysctls(dev)}  # all exist before any write
        for rel, current in currents.items():
            want = WANTED[rel.rsplit("/", 1)[1]]
            if rel not in st.saved:
                st.saved[rel] = current  # first time only: the values to restore
            if current != want:
                self._write(rel, want)
                changes.append(f"{rel.replace('/', '.')} {current} -> {want}")
        if not self.backend.has(dev, ip.compressed, prefix):
            self.backend.add(dev, ip.compressed, prefix)
            changes.append(f"added {ip.compressed}/{prefix} on {dev}")
        if ip.compressed not in st.vips:
            st.vips.append(ip.compressed)
        self._store(st)
        for c in changes:
            self.log(c)
        return changes

    def down(self, vip: str, dev: str = "lo") -> list[str]:
        """Remove ``vip`` from ``dev``; restore the saved sysctls once no VIP remains."""
        ip = ipaddress.ip_address(vip)
        prefix = 32 if ip.version == 4 else 128
        changes: list[str] = []
        if self.backend.has(dev, ip.compressed, prefix):
            self.backend.delete(dev, ip.compressed, prefix)
            changes.append(f"removed {ip.compressed}/{prefix} from {dev}")
        st = self.load(dev)
        if st is not None:
            if ip.compressed in st.vips:
                st.vips.remove(ip.compressed)
            if st.vips:
                self._store(st)
            else:
                for rel, old in st.saved.items():
                    try:
                        current = self._read(rel)
                    except RealServerError:
                        continue
                    if current != old:
                        self._write(rel, old)
                        changes.append(f"{rel.replace('/', '.')} {current} -> {old} (restored)")
                self._state_path(dev).unlink()
        for c in changes:
            self.log(c)
        return changes
