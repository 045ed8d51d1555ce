"""keepalived-compatible notify scripts, run in a per-instance FIFO.

Theory: keepalived forks its notify scripts asynchronously and unordered, so a
slow ``notify_backup`` can finish after the following ``notify_master``
(keepalived #996, KEEPALIVED-BASELINE §4).  pyvrrp runs every script of one
instance from a single worker task reading an :class:`asyncio.Queue`: scripts
of one instance run in submission order, never two at once; different
instances run concurrently.  Nothing here blocks the event loop
(``asyncio.create_subprocess_exec``), and each script has a timeout after
which its whole process group is killed (SIGTERM, then SIGKILL after a grace).

Arguments follow keepalived 2.2.7 exactly (KEEPALIVED-BASELINE §4):

* ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop``:
  the configured words only (shell-like split with :mod:`shlex`).
* generic ``notify``: the configured words + ``INSTANCE|GROUP <name> <STATE>
  <priority>`` where priority is the configured (base) priority.

The specific script is queued before the generic one.  Extra context goes in
the environment: ``PYVRRP_INSTANCE``, ``PYVRRP_STATE``,
``PYVRRP_PREVIOUS_STATE``, ``PYVRRP_PRIORITY``, ``PYVRRP_VIPS`` (space
separated), ``PYVRRP_REASON``, ``PYVRRP_EPOCH``.

A missing, non-executable or unparsable script is logged and counted; it
never raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from pyvrrp.base.clock import monotonic
from pyvrrp.proto.events import State, StateChanged

_log = structlog.get_logger("pyvrrp.adapters.notify")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_KILL_GRACE_S = 1.0
HISTORY_LEN = 100

# keepalived state words (STOP is sent on daemon shutdown / instance removal).
STATES = ("MASTER", "BACKUP", "FAULT", "STOP", "DELETED")


@dataclass(frozen=True, slots=True)
class NotifyScripts:
    """The notify scripts of one instance (or sync group), keepalived vocabulary."""

    notify: str | None = None
    notify_master: str | None = None
    notify_backup: str | None = None
    notify_fault: str | None = None
    notify_stop: str | None = None

    def specific(self, state: str) -> str | None:
        """The state-specific script for ``state`` (None for INIT or unset)."""
        return {
            "MASTER": self.notify_master,
            "BACKUP": self.notify_backup,
            "FAULT": self.notify_fault,
            "STOP": self.notify_stop,
        }.get(state)

    def is_empty(self) -> bool:
        return not any(
            (self.notify, self.notify_master, self.notify_backup, self.notify_fault, self.notify_stop)
        )


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One state change to report.

    ``state``/``previous_state`` are keepalived words (MASTER, BACKUP, FAULT,
    STOP) or an engine ``State`` (its ``.value`` is used).  ``priority`` is
    the configured base priority, as keepalived reports it (even in STOP).
    """

    instance: str
    state: str
    priority: int
    previous_state: str = ""
    vips: tuple[str, ...] = ()
    reason: str = ""
    epoch: int = 0
    kind: str = "INSTANCE"  # or "GROUP" for sync groups


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What happened to one script run (kept in :attr:`NotifyRunner.history`)."""

    instance: str
    argv: tuple[str, ...]
    state: str
    returncode: int | None
    timed_out: bool = False
    error: str | None = None
    duration_s: float = 0.0


@dataclass
class _Job:
    instance: str
    argv: tuple[str, ...]
    env: dict[str, str]
    state: str


@dataclass
class NotifyStats:
    """Counters exposed in ``pyvrrp state``."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    errors: int = 0  # could not start (missing, not executable, bad quoting)
    extra: dict[str, int] = field(default_factory=dict)


def _state_word(state: Any) -> str:
    value = getattr(state, "value", state)
    return str(value).upper()


def build_argv(script: str, *, generic: bool, event: NotifyEvent) -> tuple[str, ...]:
    """keepalived argv for ``script`` (KEEPALIVED-BASELINE §4).

    Raises:
        ValueError: the script string cannot be split (unbalanced quotes) or is empty.
    """
    words = shlex.split(script)
    if not words:
        raise ValueError("empty notify script")
    if generic:
        words += [event.kind, event.instance, _state_word(event.state), str(event.priority)]
    return tuple(words)


def build_env(event: NotifyEvent, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The script environment: ``base`` (default ``os.environ``) plus ``PYVRRP_*``."""
    env = dict(os.environ if base is None else base)
    env.update(
        PYVRRP_INSTANCE=event.instance,
        PYVRRP_STATE=_state_word(event.state),
        PYVRRP_PREVIOUS_STATE=_state_word(event.previous_state) if event.previous_state else "",
        PYVRRP_PRIORITY=str(event.priority),
        PYVRRP_VIPS=" ".join(event.vips),
        PYVRRP_REASON=event.reason,
        PYVRRP_EPOCH=str(event.epoch),
    )
    return env


def event_from_state_change(
    instance: str,
    change: StateChanged,
    *,
    base_priority: int,
    vips: Iterable[object] = (),
    kind: str = "INSTANCE",
) -> NotifyEvent:
    """Turn the engine's :class:`~pyvrrp.proto.events.StateChanged` into a :class:`NotifyEvent`.

    keepalived reports the configured (base) priority, also for STOP
    (KEEPALIVED-BASELINE §4), so the caller passes ``base_priority``; the
    effective priority of the change is not used.  The engine's transition
    to INIT on Shutdown (RFC 5798 §6.4.2/§6.4.3) is reported as keepalived's
    ``STOP``; any other INIT runs only the generic script.
    """
    new = change.new.value
    if change.new is State.INIT and change.reason == "shutdown":
        new = "STOP"
    return NotifyEvent(
        instance=instance,
        state=new,
        priority=base_priority,
        previous_state=change.old.value,
        vips=tuple(str(v) for v in vips),
        reason=change.reason,
        epoch=change.epoch,
        kind=kind,
    )


class NotifyRunner:
    """Runs notify scripts: one FIFO and one worker task per instance.

    Usage::

        runner = NotifyRunner(timeout_s=10)
        runner.submit(NotifyEvent("VI_1", "MASTER", 150, previous_state="BACKUP"),
                      NotifyScripts(notify_master="/etc/pyvrrp/master.sh"))
        ...
        await runner.drain(timeout_s=5)   # on shutdown, bounded
        await runner.close()

    ``submit`` never blocks and never raises for script problems; it needs a
    running event loop (it lazily starts the instance's worker).
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        kill_grace_s: float = DEFAULT_KILL_GRACE_S,
        env: Mapping[str, str] | None = None,
        history_len: int = HISTORY_LEN,
    ) -> None:
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self._base_env = dict(env) if env is not None else None
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, int] = {}
        self.history: deque[NotifyResult] = deque(maxlen=history_len)
        self.stats = NotifyStats()
        self._closed = False

    # ------------------------------------------------------------ submit

    def jobs_for(self, event: NotifyEvent, scripts: NotifyScripts) -> list[tuple[tuple[str, ...], str]]:
        """(argv, script-kind) pairs to run for ``event``: specific first, then generic.

        Unparsable scripts are logged, counted and skipped.
        """
        state = _state_word(event.state)
        out: list[tuple[tuple[str, ...], str]] = []
        for script, generic, kind in (
            (scripts.specific(state), False, f"notify_{state.lower()}"),
            (scripts.notify, True, "notify"),
        ):
            if not script:
                continue
            try:
                out.append((build_argv(script, generic=generic, event=event), kind))
            except ValueError as exc:
                self.stats.errors += 1
                _log.error(
                    "notify_script_invalid",
                    instance=event.instance,
                    script=script,
                    kind=kind,
                    error=str(exc),
                )
        return out

    def submit(self, event: NotifyEvent, scripts: NotifyScripts) -> int:
        """Queue the scripts for ``event``; returns how many were queued."""
        if self._closed:
            _log.warning("notify_after_close", instance=event.instance, state=_state_word(event.state))
            return 0
        jobs = self.jobs_for(event, scripts)
        if not jobs:
            return 0
        env = build_env(event, self._base_env)
        for argv, _kind in jobs:
            self._enqueue(_Job(event.instance, argv, env, _state_word(event.state)))
        return len(jobs)

    def submit_script(
        self,
        instance: str,
        script: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        state: str = "",
    ) -> bool:
        """Low-level: queue one script string (shlex-split) plus ``args`` for ``instance``.

        ``env`` is added on top of the base environment (``os.environ`` by
        default), so PATH and friends survive.  For keepalived-compatible
        argv/env built for you, use :meth:`submit`.  Returns False (logged)
        if the script cannot be parsed or the runner is closed.
        """
        if self._closed:
            _log.warning("notify_after_close", instance=instance, script=script)
            return False
        try:
            argv = (*shlex.split(script), *args)
        except ValueError as exc:
            self.stats.errors += 1
            _log.error("notify_script_invalid", instance=instance, script=script, error=str(exc))
            return False
        if not argv:
            self.stats.errors += 1
            _log.error("notify_script_invalid", instance=instance, script=script, error="empty")
            return False
        full_env = dict(os.environ if self._base_env is None else self._base_env)
        full_env.update(env or {})
        self._enqueue(_Job(instance, tuple(argv), full_env, state or full_env.get("PYVRRP_STATE", "")))
        return True

    def _enqueue(self, job: _Job) -> None:
        self._queue(job.instance).put_nowait(job)
        self._pending[job.instance] = self._pending.get(job.instance, 0) + 1

    def _queue(self, instance: str) -> asyncio.Queue[_Job]:
        queue = self._queues.get(instance)
        if queue is None:
            queue = asyncio.Queue()
            self._queues[instance] = queue
            self._workers[instance] = asyncio.get_running_loop().create_task(
                self._worker(instance, queue), name=f"notify-{instance}"
            )
        return queue

    def pending(self, instance: str | None = None) -> int:
        """Jobs queued or running, for one instance or all."""
        if instance is not None:
            return self._pending.get(instance, 0)
        return sum(self._pending.values())

    # ------------------------------------------------------------ worker

    async def _worker(self, instance: str, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                result = await self._run(job)
                self.history.append(result)
            finally:
                self._pending[instance] -= 1
                queue.task_done()

    async def _run(self, job: _Job) -> NotifyResult:
        started_s = monotonic()
        log = _log.bind(instance=job.instance, argv=list(job.argv), state=job.state)
        try:
            proc = await asyncio.create_subprocess_exec(
                *job.argv,
                env=job.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # own process group, so a timeout kills children too
            )
        except OSError as exc:  # FileNotFoundError, PermissionError, ENOEXEC...
            self.stats.errors += 1
            reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            log.error("notify_script_not_runnable", error=reason, errno=exc.errno)
            return NotifyResult(job.instance, job.argv, job.state, None, error=reason)
        self.stats.started += 1
        log.debug("notify_script_started", pid=proc.pid)
        timed_out = False
        rc: int | None
        try:
            rc = await asyncio.wait_for(proc.wait(), self.timeout_s)
        except TimeoutError:
            timed_out = True
            self.stats.timed_out += 1
            rc = await self._kill(proc)
            log.error("notify_script_timeout", pid=proc.pid, timeout_s=self.timeout_s, returncode=rc)
        except asyncio.CancelledError:
            await self._kill(proc)
            raise
        duration_s = monotonic() - started_s
        if not timed_out:
            if rc == 0:
                self.stats.succeeded += 1
                log.info("notify_script_done", returncode=rc, duration_s=round(duration_s, 3))
            else:
                self.stats.failed += 1
                log.warning("notify_script_failed", returncode=rc, duration_s=round(duration_s, 3))
        return NotifyResult(job.instance, job.argv, job.state, rc, timed_out=timed_out, duration_s=duration_s)

    async def _kill(self, proc: asyncio.subprocess.Process) -> int | None:
        """SIGTERM the script's process group, SIGKILL it after the grace period.

        The group gets a final SIGKILL even when the leader exited on SIGTERM,
        so children that ignore SIGTERM do not outlive a timed-out script.
        """
        rc: int | None = None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                rc = await asyncio.wait_for(proc.wait(), self.kill_grace_s)
                break
            except TimeoutError:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return rc if rc is not None else proc.returncode

    # ------------------------------------------------------------ shutdown

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queue is empty and idle; False if ``timeout_s`` ran out."""
        joins = [q.join() for q in self._queues.values()]
        if not joins:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*joins), timeout_s)
        except TimeoutError:
            _log.warning("notify_drain_timeout", pending=self.pending(), timeout_s=timeout_s)
            return False
        return True

    async def close(self, timeout_s: float | None = 5.0) -> bool:
        """Drain (bounded), then stop the workers (killing any script still running)."""
        self._closed = True
        drained = await self.drain(timeout_s)
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
        return drained
