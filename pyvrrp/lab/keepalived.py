"""keepalived (Debian's 2.2.7) as a lab peer: config writer, start/stop/kill -9, state.

Started the way the baseline measured it (shared KEEPALIVED-BASELINE §2)::

    ip netns exec NS env TMPDIR=<node dir> keepalived -n -l -G -D -P -f CONF -p PIDFILE -r VRRPPID

i.e. foreground, console log, no syslog, detailed log, VRRP only.  The state is read from
the console log ("(VI_51) Entering MASTER STATE"); VIP ownership from ``ip addr``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Sequence

from pyvrrp.lab.topology import DaemonNode, InstanceSpec, Lab

KEEPALIVED = "keepalived"
_STATE_RE = re.compile(r"\((?P<inst>[^)]+)\) Entering (?P<state>[A-Z]+) STATE")


def keepalived_available() -> bool:
    return shutil.which(KEEPALIVED) is not None


def _advert_int(inst: InstanceSpec) -> str:
    if inst.version == 2:
        # RFC 3768 §5.3.7: whole seconds only; keepalived rounds 0.5 up to 1 with a warning.
        return str(max(1, round(inst.advert_int_s)))
    return f"{inst.advert_int_s:g}"


def keepalived_conf(
    router_id: str,
    instances: Sequence[InstanceSpec],
    *,
    notify: str | None = None,
    notify_fifo: str | None = None,
) -> str:
    """Render keepalived.conf for one node.

    ``vrrp_version`` is global (keepalived supports one version per instance via
    ``version`` too; we emit both so mixed labs are explicit).  ``v3_checksum_as_v2``
    does not exist in 2.2.7 and is never emitted.
    """
    versions = {i.version for i in instances} or {2}
    out = ["global_defs {", f"    router_id {router_id}", f"    vrrp_version {min(versions)}"]
    if notify or notify_fifo:
        out += ["    script_user root", "    enable_script_security"]
    if notify_fifo:
        out.append(f"    vrrp_notify_fifo {notify_fifo}")
    out.append("}")
    for inst in instances:
        out += [
            "",
            f"vrrp_instance {inst.name} {{",
            f"    state {inst.state}",
            f"    interface {inst.interface}",
            f"    virtual_router_id {inst.vrid}",
            f"    version {inst.version}",
            f"    priority {inst.priority}",
            f"    advert_int {_advert_int(inst)}",
        ]
        if not inst.preempt:
            out.append("    nopreempt")
        if inst.unicast_peers:
            if inst.unicast_src:
                out.append(f"    unicast_src_ip {inst.unicast_src}")
            out.append("    unicast_peer {")
            out += [f"        {peer}" for peer in inst.unicast_peers]
            out.append("    }")
        if inst.auth_pass is not None:
            # RFC 3768 §5.3.6.1 simple text password (v2 only), or keepalived's IPsec AH
            # form; keepalived truncates the password to 8.
            out += [
                "    authentication {",
                f"        auth_type {inst.auth_type}",
                f"        auth_pass {inst.auth_pass}",
                "    }",
            ]
        if notify:
            out.append(f'    notify "{notify}"')
        for key, value in inst.extra.items():
            out.append(f"    {key} {value}")
        out.append("    virtual_ipaddress {")
        out += [f"        {vip} dev {inst.interface}" for vip in inst.vips]
        out += ["    }", "}"]
    return "\n".join(out) + "\n"


class KeepalivedNode(DaemonNode):
    """keepalived running in ``host``; pid files and console log under the node dir."""

    kind = "keepalived"

    def __init__(
        self,
        lab: Lab,
        host: str,
        config_text: str | None = None,
        *,
        instances: Sequence[InstanceSpec] = (),
        notify: str | None = None,
    ) -> None:
        if config_text is None:
            config_text = keepalived_conf(host, instances, notify=notify)
        super().__init__(lab, host, config_text, config_name="keepalived.conf")
        self.pidfile = self.dir / "keepalived.pid"
        self.vrrp_pidfile = self.dir / "vrrp.pid"

    def argv(self) -> list[str]:
        return [
            KEEPALIVED,
            "-n",
            "-l",
            "-G",
            "-D",
            "-P",
            "-f",
            str(self.config_path),
            "-p",
            str(self.pidfile),
            "-r",
            str(self.vrrp_pidfile),
        ]

    def start(self) -> KeepalivedNode:
        for path in (self.pidfile, self.vrrp_pidfile):
            path.unlink(missing_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        super().start()
        return self

    def vrrp_pid(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(self.vrrp_pidfile.read_text().split()[0])
        return None

    def pids(self) -> list[int]:
        """VRRP child first, then the parent: killing the parent alone makes the child
        send priority 0 (baseline §3 "The kill -9 target matters")."""
        out: list[int] = []
        if self.alive():
            child = self.vrrp_pid()
            if child:
                out.append(child)
            out.append(self.proc.pid)  # type: ignore[union-attr]
        return out

    def states(self) -> dict[str, str]:
        """Last logged state per instance since the latest start."""
        text = self.log_text()[getattr(self, "_log_offset", 0) :]
        found: dict[str, str] = {}
        for match in _STATE_RE.finditer(text):
            found[match["inst"]] = match["state"]
        return found

    def state(self, instance: str | None = None) -> str | None:
        if not self.alive():
            return None
        states = self.states()
        if instance is not None:
            return states.get(instance)
        return next(iter(states.values()), None) if len(states) <= 1 else _merge(states)


def _merge(states: dict[str, str]) -> str:
    """One word for several instances: all equal -> that state, else "MIXED"."""
    values = set(states.values())
    return values.pop() if len(values) == 1 else "MIXED"
