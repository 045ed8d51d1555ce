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
- the IPVS services the daemon created are recorded by the IPVS manager in its
  own state file, whose path is kept here so ``cleanup`` can find it;
- the nftables table of the no_accept drop rules (adapters/firewall.py) is recorded
  by name, so ``cleanup`` deletes it and a start with another table name does too.

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
    nft_table: str | None = None

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
            table = data.get("nft_table")
            held.nft_table = str(table) if table else None
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
            "nft_table": self.nft_table,
        }
        tmp.write_text(json.dumps(body) + "\n")
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
