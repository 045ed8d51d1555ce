"""Trackers: vrrp_script, track_interface, track_file and track_process, fed to the engines
as TrackerChanged.

keepalived semantics (keepalived.conf(5)), decided by the pure helpers in
:mod:`pyvrrp.health.fsm`; this module only runs things and reports changes:

* a ``vrrp_script`` runs once per ``interval`` however many instances track it;
  each (instance, script) pair has its own weight and rise/fall state.  A run
  that exceeds ``timeout`` is killed (its whole process group) and counts as a
  failure; a missing or non-executable script is a failure with a clear log line.
* ``track_interface`` follows netlink link events; a missing interface is down.  The
  interfaces of an instance's VIPs, excluded VIPs and virtual routes (other than its own,
  without ``no_track``) are tracked the same way with weight 0, as keepalived does.
* ``track_file`` reads an integer from a file every second (keepalived uses
  inotify; polling keeps this portable); a missing or unparsable file reads 0.
* ``track_process`` (:class:`ProcessWatch`) scans ``/proc`` once, then follows the
  kernel's proc connector (fork/exec/comm/exit events, milliseconds); where the connector
  is unavailable (not the initial network namespace, not root before Linux 6.6, no CONFIG_PROC_EVENTS) it
  rescans ``/proc`` every :data:`PROCESS_POLL_INTERVAL_S` and says so.  Matching, counts,
  quorum and delays are the pure :mod:`pyvrrp.health.process`.

Each tracker's effect is sent as ``TrackerChanged(name, delta, fault)`` only when
it changes; the engine recomputes the effective priority from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from pyvrrp.adapters import procfs
from pyvrrp.adapters.proc_connector import ProcConnector, ProcEvent
from pyvrrp.base import clock
from pyvrrp.config.models import Config, TrackFile, VrrpScript, VrrpSyncGroup, VrrpTrackProcess
from pyvrrp.health.fsm import RiseFall, ScriptTracker, file_effect, interface_effect, weight_effect
from pyvrrp.health.process import Cause, ProcessInfo, ProcessMatcher, ProcessTable, Quorum

log = structlog.get_logger("pyvrrp.trackers")

Report = Callable[[str, str, int, bool], None]  # (instance, tracker name, delta, fault)

PROCESS_POLL_INTERVAL_S = 1.0  # /proc rescans without the proc connector
PROCESS_OVERRUN_RESCAN_S = 1.0  # after lost connector messages (ENOBUFS), as keepalived


@dataclass
class _ScriptWatch:
    instance: str
    tracker: ScriptTracker


@dataclass
class ScriptRunner:
    """One vrrp_script: runs periodically, fans results out to every tracking instance."""

    name: str
    spec: VrrpScript
    report: Report
    watchers: list[_ScriptWatch] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    last_rc: int | None = None
    last_error: str | None = None
    runs: int = 0

    def watch(self, instance: str, weight: int | None, reverse: bool) -> None:
        spec = self.spec
        tracker = ScriptTracker(
            name=f"script:{self.name}",
            weight=spec.weight if weight is None else weight,
            reverse=reverse or spec.weight_reverse,
            checks=RiseFall(rise=spec.rise, fall=spec.fall, init_fail=spec.init_fail),
        )
        tracker._last = tracker.current()
        self.watchers.append(_ScriptWatch(instance, tracker))

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._loop())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _loop(self) -> None:
        interval = float(self.spec.interval)
        while True:
            ok = await self.run_once()
            for w in self.watchers:
                effect = w.tracker.observe(ok)
                if effect is not None:
                    log.info(
                        "track_script_changed",
                        script=self.name,
                        instance=w.instance,
                        ok=ok,
                        state=w.tracker.checks.state.value,
                        delta=effect[0],
                        fault=effect[1],
                    )
                    self.report(w.instance, w.tracker.name, effect[0], effect[1])
            await asyncio.sleep(interval)

    async def run_once(self) -> bool:
        """Run the script once; True when it exits 0 within its timeout."""
        timeout = float(self.spec.timeout or self.spec.interval)
        self.runs += 1
        try:
            argv = shlex.split(self.spec.script)
        except ValueError as exc:
            return self._failed(f"cannot parse script line: {exc}")
        if not argv:
            return self._failed("empty script")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, OSError) as exc:
            return self._failed(f"cannot run {argv[0]}: {exc.strerror or exc}")
        try:
            rc = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return self._failed(f"timed out after {timeout:g}s (killed)")
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        self.last_rc = rc
        if rc != 0:
            self.last_error = f"exit status {rc}"
            return False
        self.last_error = None
        return True

    def _failed(self, why: str) -> bool:
        if why != self.last_error:
            log.warning("track_script_error", script=self.name, error=why)
        self.last_error = why
        self.last_rc = None
        return False


@dataclass
class FileWatch:
    """One track_file, polled every second."""

    name: str
    spec: TrackFile
    report: Report
    watchers: list[tuple[str, int, bool]] = field(default_factory=list)
    last: dict[str, tuple[int, bool]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def watch(self, instance: str, weight: int | None, reverse: bool) -> None:
        self.watchers.append(
            (instance, self.spec.weight if weight is None else weight, reverse or self.spec.weight_reverse)
        )

    def read(self) -> int:
        path = Path(self.spec.file)
        try:
            text = path.read_text()
        except FileNotFoundError:
            if self.spec.init_file is not None:
                with contextlib.suppress(OSError):
                    path.write_text(f"{self.spec.init_file}\n")
                return int(self.spec.init_file)
            return 0
        except OSError:
            return 0
        try:
            return int(text.strip().split()[0]) if text.strip() else 0
        except ValueError:
            return 0

    def poll(self) -> None:
        value = self.read()
        for instance, weight, reverse in self.watchers:
            effect = file_effect(value, weight, reverse)
            if self.last.get(instance) != effect:
                self.last[instance] = effect
                log.info(
                    "track_file_changed",
                    file=str(self.spec.file),
                    instance=instance,
                    value=value,
                    delta=effect[0],
                    fault=effect[1],
                )
                self.report(instance, f"file:{self.name}", effect[0], effect[1])

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.poll()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


@dataclass
class ProcessWatch:
    """Every vrrp_track_process of the daemon: one process table, one event source.

    ``connector`` is the daemon's subscribed proc connector, or None (polling).  It is
    borrowed: :meth:`stop` detaches from it, the daemon closes it.
    """

    specs: dict[str, VrrpTrackProcess]
    report: Report
    connector: ProcConnector | None = None
    unavailable: str | None = None
    """Why there is no connector (logged once, shown in ``state``)."""
    watchers: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)
    quorums: dict[str, Quorum] = field(default_factory=dict)
    table: ProcessTable = field(init=False)
    last: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    unreadable: int = 0
    hidepid: str | None = None
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _rescan: asyncio.TimerHandle | None = None
    _reading: bool = False

    def __post_init__(self) -> None:
        matchers = {
            n: ProcessMatcher.build(s.process, s.params, s.param_match, s.full_command)
            for n, s in self.specs.items()
        }
        self.table = ProcessTable(matchers)
        self.cmdline = any(m.needs_cmdline for m in matchers.values())
        for n, s in self.specs.items():
            self.quorums[n] = Quorum(
                quorum=s.effective_quorum,
                quorum_max=s.quorum_max,
                fork_delay_s=s.fork_delay_s,
                terminate_delay_s=s.terminate_delay_s,
            )

    @property
    def mode(self) -> str:
        return "connector" if self.connector is not None else "polling"

    def watch(self, instance: str, name: str, weight: int | None, reverse: bool) -> None:
        spec = self.specs[name]
        self.watchers.setdefault(name, []).append(
            (instance, spec.weight if weight is None else weight, reverse or spec.weight_reverse)
        )

    # ------------------------------------------------------------ reading /proc

    def initial_scan(self) -> None:
        """The first view (before the instances start): every status set at once."""
        self.hidepid = procfs.hidepid()
        self._scan()
        for n, q in self.quorums.items():
            q.reset(self.table.count(n))
        if self.hidepid is not None and os.geteuid() != 0:
            log.warning(
                "track_process_hidepid",
                hidepid=self.hidepid,
                uid=os.geteuid(),
                detail="/proc is mounted with hidepid: other users' processes are invisible to pyvrrp, "
                "so tracked processes of another user count as not running; run pyvrrp as root or "
                "mount /proc with gid= naming a group pyvrrp is in",
            )

    def _scan(self) -> set[str]:
        result = procfs.scan(cmdline=self.cmdline)
        if result.unreadable and result.unreadable != self.unreadable:
            log.warning(
                "track_process_unreadable",
                processes=result.unreadable,
                hidepid=self.hidepid,
                detail="these processes' /proc files cannot be read: they are not counted",
            )
        self.unreadable = result.unreadable
        return self.table.scan(result.processes)

    def _read(self, pid: int) -> ProcessInfo | None:
        return procfs.read_process(pid, cmdline=self.cmdline)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.connector is not None:
            loop.add_reader(self.connector.fileno(), self._on_readable)
            self._reading = True
            self.rescan()  # what changed between the first scan and the subscription
        elif self._task is None:
            self._task = asyncio.ensure_future(self._poll())

    def stop(self) -> None:
        if self._reading and self.connector is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.connector.fileno())
            self._reading = False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._rescan is not None:
            self._rescan.cancel()
            self._rescan = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(PROCESS_POLL_INTERVAL_S)
            self.rescan()

    def rescan(self) -> None:
        before = {n: self.table.count(n) for n in self.specs}
        changed = self._scan()
        now = clock.monotonic()
        for n in changed:
            after = self.table.count(n)
            self._update(n, Cause.EXIT if after < before[n] else Cause.OTHER, now)

    # ------------------------------------------------------------ events

    def _on_readable(self) -> None:
        assert self.connector is not None
        try:
            events, overrun = self.connector.read()
        except OSError as exc:
            log.warning("track_process_connector_error", error=str(exc))
            return
        self.apply(events, now=clock.monotonic())
        if overrun and self._rescan is None:
            log.warning("track_process_events_lost", detail="connector messages were lost; rescanning /proc")
            self._rescan = asyncio.get_running_loop().call_later(
                PROCESS_OVERRUN_RESCAN_S, self._overrun_rescan
            )

    def _overrun_rescan(self) -> None:
        self._rescan = None
        self.rescan()

    def apply(self, events: list[ProcEvent], *, now: float) -> None:
        """Fold connector events into the table; threads are ignored (keepalived)."""
        for e in events:
            if e.kind == "fork":
                if e.is_process:
                    for n in self.table.fork(e.parent_tgid, e.tgid):
                        self._update(n, Cause.FORK, now)
            elif not e.is_process:
                continue
            elif e.kind == "exit":
                for n in self.table.exit(e.tgid):
                    self._update(n, Cause.EXIT, now)
            elif e.kind == "exec":
                info = self._read(e.tgid)
                changed = self.table.seen(info) if info is not None else self.table.exit(e.tgid)
                for n in changed:
                    self._update(n, Cause.OTHER, now)
            elif e.kind == "comm":
                argv = None
                if self.cmdline:
                    info = self._read(e.tgid)
                    argv = info.argv if info is not None else None
                proc = ProcessInfo(e.tgid, e.comm, argv)
                for n in self.table.seen(proc, comm_only=True):
                    self._update(n, Cause.OTHER, now)

    def _update(self, name: str, cause: Cause, now: float) -> None:
        q = self.quorums.get(name)
        if q is None:
            return
        status = q.update(self.table.count(name), cause, now=now)
        if status is not None:
            self._status_changed(name)
        self._arm(name, now)

    def _arm(self, name: str, now: float) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()
        deadline = self.quorums[name].next_deadline()
        if deadline is not None:
            self._timers[name] = asyncio.get_running_loop().call_later(
                max(0.0, deadline - now), self._timer_fired, name
            )

    def _timer_fired(self, name: str) -> None:
        self._timers.pop(name, None)
        now = clock.monotonic()
        if self.quorums[name].handle_timer(now=now) is not None:
            self._status_changed(name)
        self._arm(name, now)

    def _status_changed(self, name: str) -> None:
        q = self.quorums[name]
        log.info(
            "track_process_changed",
            process=name,
            up=q.up,
            running=q.count,
            quorum=q.quorum,
            quorum_max=q.quorum_max,
            mode=self.mode,
        )
        self.report_name(name)

    def report_name(self, name: str, *, force: bool = False) -> None:
        up = self.quorums[name].up
        for instance, weight, reverse in self.watchers.get(name, []):
            effect = weight_effect(up, weight, reverse)
            key = (instance, name)
            if force or self.last.get(key) != effect:
                self.last[key] = effect
                self.report(instance, f"process:{name}", effect[0], effect[1])

    def report_all(self) -> None:
        for name in self.watchers:
            self.report_name(name, force=True)

    def snapshot(self, instance: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, rows in self.watchers.items():
            q = self.quorums[name]
            for inst, _weight, _rev in rows:
                if inst != instance:
                    continue
                row: dict[str, Any] = {
                    "kind": "process",
                    "name": name,
                    "up": q.up,
                    "running": q.count,
                    "quorum": q.quorum,
                    "quorum_max": q.quorum_max,
                    "pending": q.pending_until is not None,
                    "effect": list(self.last.get((inst, name), (0, False))),
                    "mode": self.mode,
                }
                if self.unavailable:
                    row["connector_unavailable"] = self.unavailable
                if self.hidepid is not None:
                    row["hidepid"] = self.hidepid
                if self.unreadable:
                    row["unreadable"] = self.unreadable
                out.append(row)
        return out


@dataclass
class Trackers:
    """All trackers of a daemon; built from the config, started after the instances."""

    report: Report
    scripts: dict[str, ScriptRunner] = field(default_factory=dict)
    files: dict[str, FileWatch] = field(default_factory=dict)
    interfaces: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)
    link_state: dict[str, bool] = field(default_factory=dict)
    processes: ProcessWatch | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        report: Report,
        link_up: Callable[[str], bool | None],
        proc_connector: Callable[[], tuple[ProcConnector | None, str | None]] | None = None,
    ) -> Trackers:
        """``proc_connector()`` gives the daemon's connector, or None and the reason (it is
        asked only when some instance tracks a process)."""
        self = cls(report=report)
        members: dict[str, list[VrrpSyncGroup]] = {}
        for group in config.vrrp_sync_group.values():
            for name in group.group:
                members.setdefault(name, []).append(group)
        for name, inst in config.vrrp_instance.items():
            groups = members.get(name, [])
            script_refs = list(inst.track_script) + [r for g in groups for r in g.track_script]
            iface_refs = list(inst.track_interface) + [r for g in groups for r in g.track_interface]
            file_refs = list(inst.track_file) + [r for g in groups for r in g.track_file]
            proc_refs = list(inst.track_process) + [r for g in groups for r in g.track_process]
            for pref in proc_refs:
                if pref.name not in config.vrrp_track_process:
                    continue  # rejected by config validation
                if self.processes is None:
                    conn, why = proc_connector() if proc_connector is not None else (None, "not asked")
                    self.processes = ProcessWatch(
                        dict(config.vrrp_track_process), report, connector=conn, unavailable=why
                    )
                self.processes.watch(name, pref.name, pref.weight, pref.reverse)
            for sref in script_refs:
                script = config.vrrp_script.get(sref.name)
                if script is None:
                    continue  # rejected by config validation
                runner = self.scripts.get(sref.name)
                if runner is None:
                    runner = self.scripts[sref.name] = ScriptRunner(sref.name, script, report)
                runner.watch(name, sref.weight, sref.reverse)
            # keepalived: the interfaces of the VIPs and routes are tracked too (weight 0 ->
            # FAULT when down) unless no_track; an explicit track_interface entry wins
            listed = {r.name for r in iface_refs}
            implicit = [(dev, 0, False) for dev in inst.tracked_devs if dev not in listed]
            for ifname, weight, reverse in [(r.name, r.weight, r.reverse) for r in iface_refs] + implicit:
                self.interfaces.setdefault(ifname, []).append((name, weight, reverse))
                if ifname not in self.link_state:
                    self.link_state[ifname] = bool(link_up(ifname))
            for fref in file_refs:
                track = config.track_file.get(fref.name)
                if track is None:
                    continue
                watch = self.files.get(fref.name)
                if watch is None:
                    watch = self.files[fref.name] = FileWatch(fref.name, track, report)
                watch.watch(name, fref.weight, fref.reverse)
        if self.processes is not None:
            self.processes.initial_scan()
        return self

    def report_all(self) -> None:
        """Send every tracker's current effect (at start, and after a reload's :meth:`adopt`)."""
        for runner in self.scripts.values():
            for w in runner.watchers:
                delta, fault = w.tracker.current()
                self.report(w.instance, w.tracker.name, delta, fault)
        for ifname, up in self.link_state.items():
            self._report_link(ifname, up)
        for watch in self.files.values():
            watch.last.clear()
            watch.poll()
        if self.processes is not None:
            self.processes.report_all()

    def _report_link(self, ifname: str, up: bool | None) -> None:
        for instance, weight, reverse in self.interfaces.get(ifname, []):
            delta, fault = interface_effect(bool(up), weight, reverse)
            self.report(instance, f"iface:{ifname}", delta, fault)

    def link_changed(self, ifname: str, up: bool) -> None:
        if ifname in self.interfaces:
            self.link_state[ifname] = up
            log.info("track_interface_changed", interface=ifname, up=up)
            self._report_link(ifname, up)

    def adopt(self, old: Trackers) -> None:
        """Reload: keep the rise/fall state of unchanged (instance, script) pairs, so a reload
        neither forgets a failing check nor re-runs a healthy one from scratch."""
        for name, runner in self.scripts.items():
            prev = old.scripts.get(name)
            if prev is None or prev.spec != runner.spec:
                continue
            before = {(w.instance, w.tracker.weight, w.tracker.reverse): w for w in prev.watchers}
            for w in runner.watchers:
                match = before.get((w.instance, w.tracker.weight, w.tracker.reverse))
                if match is not None:
                    w.tracker.checks = match.tracker.checks
                    w.tracker._last = match.tracker._last
            runner.last_error, runner.last_rc = prev.last_error, prev.last_rc

    def start(self) -> None:
        for runner in self.scripts.values():
            runner.start()
        for watch in self.files.values():
            watch.start()
        if self.processes is not None:
            self.processes.start()

    def stop(self) -> None:
        for runner in self.scripts.values():
            runner.stop()
        for watch in self.files.values():
            watch.stop()
        if self.processes is not None:
            self.processes.stop()

    def snapshot(self, instance: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for runner in self.scripts.values():
            for w in runner.watchers:
                if w.instance == instance:
                    out.append(
                        {
                            "kind": "script",
                            "name": runner.name,
                            "state": w.tracker.checks.state.value,
                            "effect": list(w.tracker.current()),
                            "last_error": runner.last_error,
                        }
                    )
        for ifname, rows in self.interfaces.items():
            for inst, weight, _rev in rows:
                if inst == instance:
                    out.append({"kind": "interface", "name": ifname, "weight": weight})
        for watch in self.files.values():
            if instance in watch.last:
                out.append({"kind": "file", "name": watch.name, "effect": list(watch.last[instance])})
        if self.processes is not None:
            out.extend(self.processes.snapshot(instance))
        return out
