"""Trackers: vrrp_script, track_interface and track_file, fed to the engines as TrackerChanged.

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

from pyvrrp.config.models import Config, TrackFile, VrrpScript, VrrpSyncGroup
from pyvrrp.health.fsm import RiseFall, ScriptTracker, file_effect, interface_effect

log = structlog.get_logger("pyvrrp.trackers")

Report = Callable[[str, str, int, bool], None]  # (instance, tracker name, delta, fault)


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
class Trackers:
    """All trackers of a daemon; built from the config, started after the instances."""

    report: Report
    scripts: dict[str, ScriptRunner] = field(default_factory=dict)
    files: dict[str, FileWatch] = field(default_factory=dict)
    interfaces: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)
    link_state: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config, report: Report, link_up: Callable[[str], bool | None]) -> Trackers:
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

    def stop(self) -> None:
        for runner in self.scripts.values():
            runner.stop()
        for watch in self.files.values():
            watch.stop()

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
        return out
