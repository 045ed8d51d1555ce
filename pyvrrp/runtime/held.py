"""What this node holds in the kernel, recorded as it changes, for crash clean-up.

Theory: a daemon killed with SIGKILL (or a crash) cannot release its VIPs.
keepalived leaves them on the dead node until it starts again, and then removes
only the VIPs of the config it starts with: a VIP dropped from the config before
the restart stays forever, answering ARP beside the new master.  pyvrrp records
every VIP it adds (interface and address) in ``held.json`` in its runtime
directory (the control socket's directory, ``/run/pyvrrp`` under systemd: gone at
reboot, like the addresses themselves) and removes the entry when it removes the
address.  Then:

- a starting daemon, once its new config has passed validation, removes exactly
  what the file lists (a config that does not validate touches nothing);
- ``pyvrrp cleanup`` removes the same without parsing any config; the systemd
  unit runs it as ``ExecStopPost``, so a crashed daemon's VIPs go at once;
- ``use_vmac`` macvlans (and the base interfaces' ARP sysctls from before them) are
  recorded too: a start deletes the ones its config no longer has, and ``cleanup``
  deletes them all and restores the sysctls;
- the IPVS services the daemon created are recorded by the IPVS manager in its
  own state file, whose path is kept here so ``cleanup`` can find it;
- routes and policy rules (``virtual_routes`` of a MASTER, ``static_*``) are recorded
  too, each as an opaque key (:func:`pyvrrp.runtime.routes.route_key`), and so are the
  excluded and static addresses (as ``vips``);
- the nftables table of the no_accept drop rules (adapters/firewall.py) is recorded
  by name, so ``cleanup`` deletes it and a start with another table name does too.
- ``sync_daemon`` says the daemon runs the kernel's IPVS sync threads
  (``lvs_sync_daemon``): ``cleanup`` (and a start whose config has none) stops them.

Writes are atomic (temporary file + rename) and happen off the hot path: the
executor marks the record dirty and the loop flushes it after the GARPs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HELD_FILE", "HeldState"]

HELD_FILE = "held.json"


@dataclass
class HeldState:
    """The VIPs (``(ifname, "addr/prefix")``), IPVS state file and nftables table this node holds."""

    path: Path
    vips: set[tuple[str, str]] = field(default_factory=set)
    ipvs_state: str | None = None
    routes: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    vmacs: dict[str, str] = field(default_factory=dict)
    """use_vmac macvlans this node made: name -> base interface."""
    vmac_base_sysctls: dict[str, dict[str, str]] = field(default_factory=dict)
    """The base interfaces' net.ipv4.conf values before the macvlans changed them."""
    nft_table: str | None = None
    sync_daemon: bool = False

    @classmethod
    def in_dir(cls, run_dir: str | os.PathLike[str]) -> HeldState:
        return cls(Path(run_dir) / HELD_FILE)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HeldState:
        """The record at ``path`` (empty when absent).

        Raises:
            ValueError: the file is not a record this module wrote.
        """
        held = cls(Path(path))
        try:
            data = json.loads(held.path.read_text())
        except FileNotFoundError:
            return held
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{held.path}: unreadable ({exc})") from None
        try:
            held.vips = {(str(i), str(a)) for i, a in data.get("vips", [])}
            state = data.get("ipvs_state")
            held.ipvs_state = str(state) if state else None
            held.routes = {str(r) for r in data.get("routes", [])}
            held.rules = {str(r) for r in data.get("rules", [])}
            held.vmacs = {str(k): str(v) for k, v in dict(data.get("vmacs", {})).items()}
            held.vmac_base_sysctls = {
                str(b): {str(k): str(v) for k, v in dict(kv).items()}
                for b, kv in dict(data.get("vmac_base_sysctls", {})).items()
            }
            table = data.get("nft_table")
            held.nft_table = str(table) if table else None
            held.sync_daemon = data.get("sync_daemon") is True
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{held.path}: not a pyvrrp held-state record") from None
        return held

    def save(self) -> None:
        """Write the record atomically (the directory is created if needed).

        Raises:
            OSError: it cannot be written.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {
            "vips": sorted([i, a] for i, a in self.vips),
            "ipvs_state": self.ipvs_state,
            "routes": sorted(self.routes),
            "rules": sorted(self.rules),
            "vmacs": self.vmacs,
            "vmac_base_sysctls": self.vmac_base_sysctls,
            "nft_table": self.nft_table,
            "sync_daemon": self.sync_daemon,
        }
        tmp.write_text(json.dumps(body) + "\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
