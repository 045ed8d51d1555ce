"""The IPVS connection-sync daemon (``lvs_sync_daemon``), run the way keepalived runs it.

The kernel has two sync threads per network namespace, started and stopped over generic
netlink (``IPVS_CMD_NEW_DAEMON`` / ``IPVS_CMD_DEL_DAEMON``; ``ipvsadm --start-daemon``):
the *master* multicasts the connections of its IPVS table, the *backup* adds what it hears
to its own table, so the director that takes over forwards established connections to the
real servers they were on instead of resetting them.

What keepalived does (keepalived 2.x, vrrp.c / vrrp_scheduler.c / vrrp_daemon.c /
check_daemon.c, read for this module) and so what pyvrrp does:

* at start, both sync threads are stopped first (errors ignored: "stop any instances of it
  that may have been running if we terminated abnormally");
* with an instance (``lvs_sync_daemon IF INSTANCE`` or the instance's
  ``lvs_sync_daemon_interface``): the backup thread runs while that instance is not MASTER
  (INIT, BACKUP, FAULT); entering MASTER stops the backup and then starts the master
  (``ipvs_syncd_master``); leaving MASTER stops the master and then starts the backup
  (``ipvs_syncd_backup``); the daemon never runs both;
* without an instance: master and backup both run for as long as the daemon runs;
* at stop: the threads pyvrrp started are stopped;
* a reload that changes the sync daemon's settings restarts it; an unchanged one leaves it.

:func:`wanted_roles` and :func:`plan` are pure (unit-tested: which commands on which
transition); :class:`SyncDaemonManager` is the thin async part that sends them, one
conversation at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

Role = Literal["master", "backup"]
ROLES: tuple[Role, Role] = ("master", "backup")

_log = structlog.get_logger("pyvrrp.ipvs.syncd")


@dataclass(frozen=True, slots=True)
class SyncDaemonSpec:
    """The sync daemon's settings, resolved from the config (sync id default applied)."""

    interface: str
    sync_id: int
    instance: str | None = None
    maxlen: int | None = None
    port: int | None = None
    ttl: int | None = None
    group: str | None = None

    @classmethod
    def from_config(cls, config: Any) -> SyncDaemonSpec | None:
        """``global_defs.lvs_sync_daemon`` of a :class:`~pyvrrp.config.models.Config` (None: off).

        The sync id defaults to the instance's virtual_router_id, or 0 without an instance
        (keepalived.conf(5)).
        """
        syncd = config.global_defs.lvs_sync_daemon
        if syncd is None:
            return None
        sync_id = syncd.sync_id
        if sync_id is None:
            inst = config.vrrp_instance.get(syncd.instance) if syncd.instance else None
            sync_id = inst.virtual_router_id if inst is not None else 0
        return cls(
            interface=syncd.interface,
            sync_id=int(sync_id),
            instance=syncd.instance,
            maxlen=syncd.maxlen,
            port=syncd.port,
            ttl=syncd.ttl,
            group=str(syncd.group) if syncd.group is not None else None,
        )

    def describe(self) -> str:
        """One line for check-config and logs."""
        follows = (
            f"master while {self.instance} is MASTER, backup otherwise"
            if self.instance
            else "master and backup always"
        )
        extra = [
            f"{k} {v}" for k in ("maxlen", "port", "ttl", "group") if (v := getattr(self, k)) is not None
        ]
        return f"{self.interface}, sync id {self.sync_id}: {follows}" + (
            f" ({', '.join(extra)})" if extra else ""
        )


@dataclass(frozen=True, slots=True)
class StartDaemon:
    role: Role
    spec: SyncDaemonSpec


@dataclass(frozen=True, slots=True)
class StopDaemon:
    role: Role
    ignore_missing: bool = True
    """Not running is fine (ESRCH): the wanted outcome holds."""


SyncdOp = StartDaemon | StopDaemon


def wanted_roles(spec: SyncDaemonSpec | None, state: str | None, *, running: bool = True) -> frozenset[Role]:
    """The sync threads that should run, given the followed instance's state.

    ``state`` is the instance's VRRP state name (``"MASTER"``, ``"BACKUP"``, ``"FAULT"``,
    ``"INIT"``) or None when no instance is followed; ``running`` is False once the daemon
    is stopping (nothing should run then).
    """
    if spec is None or not running:
        return frozenset()
    if spec.instance is None:
        return frozenset(ROLES)
    return frozenset({"master"} if state == "MASTER" else {"backup"})


def plan(
    running: Mapping[Role, SyncDaemonSpec], spec: SyncDaemonSpec | None, want: frozenset[Role]
) -> list[SyncdOp]:
    """Commands that take the kernel from ``running`` (what pyvrrp started) to ``want``.

    Stops come first, then starts, as keepalived's ``ipvs_syncd_master`` (stop backup, start
    master) and ``ipvs_syncd_backup`` (stop master, start backup) do; a thread running with
    settings other than ``spec`` (a reload changed them) is stopped and started again.
    """
    ops: list[SyncdOp] = []
    for role in ROLES:
        if role in running and (role not in want or running[role] != spec):
            ops.append(StopDaemon(role))
    for role in ROLES:
        if role in want and spec is not None and running.get(role) != spec:
            ops.append(StartDaemon(role, spec))
    return ops


def startup_ops() -> list[SyncdOp]:
    """What runs before the first :func:`plan`: both threads stopped, whoever started them."""
    return [StopDaemon("master"), StopDaemon("backup")]


# ----------------------------------------------------------------------------- the manager


class SyncdKernel(Protocol):
    """What the manager needs from the kernel (:class:`LinuxSyncd` or a test double)."""

    def start(self, role: Role, spec: SyncDaemonSpec) -> None: ...

    def stop(self, role: Role) -> bool: ...


class LinuxSyncd:
    """The sync threads of this network namespace, over IPVS generic netlink."""

    def start(self, role: Role, spec: SyncDaemonSpec) -> None:
        from pyvrrp.ipvs import kernel

        kernel.start_sync_daemon(
            role,
            spec.interface,
            spec.sync_id,
            maxlen=spec.maxlen,
            port=spec.port,
            ttl=spec.ttl,
            group=spec.group,
        )

    def stop(self, role: Role) -> bool:
        from pyvrrp.ipvs import kernel

        return kernel.stop_sync_daemon(role)


class SyncDaemonManager:
    """Keeps the kernel's sync threads where :func:`wanted_roles` says, as states change.

    ``follow(state)`` is called from the state-change hook (cheap: it records the state and
    wakes one worker task); the worker plans from what it started to what is wanted now and
    sends the commands in a thread, so a burst of transitions collapses into the last one.
    A failed command is logged (``last_error`` in the snapshot) and tried again at the next
    transition or reload, never in a loop.
    """

    def __init__(self, spec: SyncDaemonSpec | None, kernel: SyncdKernel | None = None) -> None:
        self.spec = spec
        self.kernel: SyncdKernel = kernel or LinuxSyncd()
        self.running: dict[Role, SyncDaemonSpec] = {}
        self.state: str | None = None
        self.last_error: str | None = None
        self.commands = 0
        self._stopping = False
        self._started = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------- control

    async def start(self, state: str | None) -> None:
        """Stop leftover threads, then run what ``state`` wants; returns once that is sent."""
        if self.spec is None:
            return
        self.state = state
        self._started = True
        await asyncio.to_thread(self._send, startup_ops())
        self._task = asyncio.ensure_future(self._worker())
        self._kick()
        await self.settled()

    def follow(self, state: str | None) -> None:
        """The followed instance is now in ``state`` (``"MASTER"``, ``"BACKUP"``, ...)."""
        self.state = state
        if self._started:
            self._kick()

    def reconfigure(self, spec: SyncDaemonSpec | None, state: str | None) -> None:
        """A reload: new settings (restart only if they differ) and the state they follow."""
        self.spec = spec
        self.state = state
        if self._started:
            self._kick()

    async def settled(self) -> None:
        """Wait until every command wanted so far has been sent."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Stop the threads pyvrrp started (daemon stop)."""
        self._stopping = True
        if self._task is not None:
            self._kick()
            await self.settled()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        elif self.running:
            await asyncio.to_thread(self._send, plan(self.running, self.spec, frozenset()))

    # ------------------------------------------------------------ internals

    def _want(self) -> frozenset[Role]:
        return wanted_roles(self.spec, self.state, running=not self._stopping)

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ops = plan(self.running, self.spec, self._want())
            if ops:
                await asyncio.to_thread(self._send, ops)
            if not self._wake.is_set():
                self._idle.set()

    def _send(self, ops: list[SyncdOp]) -> None:
        """Send ``ops`` in order (runs in a worker thread); ``running`` follows what succeeded."""
        for op in ops:
            self.commands += 1
            try:
                if isinstance(op, StopDaemon):
                    was = self.kernel.stop(op.role)
                    self.running.pop(op.role, None)
                    if was:
                        _log.info("sync_daemon_stopped", role=op.role)
                else:
                    self.kernel.start(op.role, op.spec)
                    self.running[op.role] = op.spec
                    self.last_error = None
                    _log.info(
                        "sync_daemon_started",
                        role=op.role,
                        interface=op.spec.interface,
                        sync_id=op.spec.sync_id,
                        follows=op.spec.instance,
                        state=self.state,
                    )
            except Exception as exc:  # an adapter failure: logged, retried at the next change
                self.last_error = str(exc)
                _log.error("sync_daemon_command_failed", op=type(op).__name__, role=op.role, error=str(exc))
                if isinstance(op, StopDaemon):
                    self.running.pop(op.role, None)  # unknown; a later start says EEXIST if it runs

    def snapshot(self) -> dict[str, Any]:
        """For ``pyvrrp state --json`` (``lvs_sync_daemon``)."""
        spec = self.spec
        return {
            "interface": spec.interface if spec else None,
            "instance": spec.instance if spec else None,
            "sync_id": spec.sync_id if spec else None,
            "following_state": self.state,
            "running": sorted(self.running),
            "wanted": sorted(self._want()),
            "last_error": self.last_error,
        }
