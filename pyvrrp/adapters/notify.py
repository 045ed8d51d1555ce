"""keepalived-compatible notify scripts, run in a per-instance lane.

Theory: keepalived forks its notify scripts asynchronously and unordered, so a
slow ``notify_backup`` can finish after the following ``notify_master``
(keepalived #996, KEEPALIVED-BASELINE §4).  pyvrrp runs every script of one
instance from a single worker task reading that instance's lane: scripts of
one instance run in transition order, never two at once; different
instances have their own lanes and run concurrently, so a hung script delays
only its own instance, and only until ``notify_timeout`` kills it.  Nothing
here blocks the event loop (``asyncio.create_subprocess_exec``), and each
script has a timeout after which its whole process group is killed
(SIGTERM, then SIGKILL after a grace).

Coalescing (issue 14): a lane that falls behind (a slow script, a flapping
link) must not build minutes of backlog that then replays stale states.  A
*notification* is what one state change queues (the specific script, then
the generic ``notify``); it is started as a unit.  A notification that has
not started yet is **superseded**, dropped and logged (``notify_superseded``
with the dropped states), when a later notification of the same instance
and kind (INSTANCE or GROUP) is submitted and

* both are state changes (MASTER, BACKUP, FAULT, INIT) or the later one is
  STOP/DELETED: only the latest state's scripts still run, as keepalived
  users expect (MASTER, BACKUP, MASTER queued behind a running script runs
  the last MASTER, once); the later event supersedes even when its state has
  no script configured (a queued ``notify_backup`` must not run after the
  node became MASTER);
* or both carry the same other word (``CONFLICT``): the newest report wins.

Never dropped: STOP and DELETED notifications (``notify_stop`` always runs
while the stop budget lasts), a notification already running, and
low-level :meth:`NotifyRunner.submit_script` jobs.  What remains keeps
submission order.  So a lane holds at most one pending state change and one
report per other word; ``max_queued`` (32) bounds the rest (new
``submit_script`` jobs over it are dropped and logged; STOP is exempt).

Stop (:meth:`NotifyRunner.stop`): at SIGTERM the daemon queues STOP for every
instance, which supersedes their pending state changes, then awaits
``stop(timeout_s)``.  Within that budget a still-running state script gets
until half of it, then its group is killed so ``notify_stop`` can start;
``notify_stop`` is killed at the end of the budget (minus the kill grace);
anything not started by then is dropped and logged.  ``stop`` returns
within ``timeout_s`` plus a few milliseconds.

Arguments follow keepalived 2.2.7 exactly (KEEPALIVED-BASELINE §4):

* ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop``:
  the configured words only (shell-like split with :mod:`shlex`).
* generic ``notify``: the configured words + ``INSTANCE|GROUP <name> <STATE>
  <priority>`` where priority is the configured (base) priority.

The specific script is queued before the generic one.  Extra context goes in
the environment: ``PYVRRP_INSTANCE``, ``PYVRRP_STATE``,
``PYVRRP_PREVIOUS_STATE``, ``PYVRRP_PRIORITY``, ``PYVRRP_VIPS`` (space
separated), ``PYVRRP_REASON``, ``PYVRRP_EPOCH``, and for a witnessed instance that holds
its key ``PYVRRP_WITNESS_REVISION`` (the key's etcd revision: the fencing token).

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
DEFAULT_STOP_TIMEOUT_S = 2.0
STOP_KILL_GRACE_S = 0.2  # kill grace while stopping: SIGTERM, 0.2 s, SIGKILL, 0.2 s
DEFAULT_MAX_QUEUED = 32
HISTORY_LEN = 100

# keepalived state words (STOP is sent on daemon shutdown / instance removal).
STATES = ("MASTER", "BACKUP", "FAULT", "STOP", "DELETED")
# state changes: a later one (or a terminal one) supersedes a pending one
TRANSITION_STATES = frozenset({"MASTER", "BACKUP", "FAULT", "INIT"})
# never superseded, never dropped for the queue bound
TERMINAL_STATES = frozenset({"STOP", "DELETED"})


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
    witness_revision: int | None = None
    """The etcd revision of the witness key this node holds (the fencing token); None: none."""


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
class _Notification:
    """The jobs one state change (or one ``submit_script``) queued; started as a unit."""

    instance: str
    kind: str  # "INSTANCE" | "GROUP" | "script" (submit_script: never coalesced)
    state: str
    jobs: list[_Job]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def supersedes(later: _Notification, earlier: _Notification) -> bool:
    """True if the pending ``earlier`` is made moot by ``later`` (module docstring, "Coalescing")."""
    if earlier.kind == "script" or later.kind != earlier.kind or earlier.instance != later.instance:
        return False
    if earlier.terminal:
        return False
    if earlier.state in TRANSITION_STATES:
        return later.state in TRANSITION_STATES or later.terminal
    return later.state == earlier.state


@dataclass
class _Lane:
    """One instance's queue and worker."""

    queue: deque[_Notification] = field(default_factory=deque)
    running: _Notification | None = None
    running_left: int = 0  # jobs of ``running`` not finished yet
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None

    def queued_jobs(self) -> int:
        return sum(len(n.jobs) for n in self.queue)


@dataclass
class NotifyStats:
    """Counters exposed in ``pyvrrp state``."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    errors: int = 0  # could not start (missing, not executable, bad quoting)
    superseded: int = 0  # pending notifications dropped because a later one made them moot
    dropped: int = 0  # dropped for the queue bound or because the stop budget ran out
    killed_at_stop: int = 0  # still running when the stop budget ended
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
    if event.witness_revision is not None:
        env["PYVRRP_WITNESS_REVISION"] = str(event.witness_revision)
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
    """Runs notify scripts: one lane (queue + worker task) per instance.

    Usage::

        runner = NotifyRunner(timeout_s=10)
        runner.submit(NotifyEvent("VI_1", "MASTER", 150, previous_state="BACKUP"),
                      NotifyScripts(notify_master="/etc/pyvrrp/master.sh"))
        ...
        await runner.stop(timeout_s=2)   # on shutdown: notify_stop runs, bounded

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
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.max_queued = max_queued
        self._base_env = dict(env) if env is not None else None
        self._lanes: dict[str, _Lane] = {}
        self.history: deque[NotifyResult] = deque(maxlen=history_len)
        self.stats = NotifyStats()
        self._closed = False
        # set by stop(): loop times after which running scripts are killed
        self._stop_half_at: float | None = None
        self._stop_end_at: float | None = None
        self._stopping = asyncio.Event()

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
        """Queue the scripts for ``event``; returns how many were queued.

        Pending notifications of the instance that ``event`` supersedes are
        dropped first, also when ``event``'s state has no script.
        """
        state = _state_word(event.state)
        if self._closed:
            _log.warning("notify_after_close", instance=event.instance, state=state)
            return 0
        jobs = self.jobs_for(event, scripts)
        env = build_env(event, self._base_env) if jobs else {}
        note = _Notification(
            event.instance, event.kind, state, [_Job(event.instance, argv, env, state) for argv, _ in jobs]
        )
        self._coalesce(note)
        if not jobs:
            return 0
        return len(jobs) if self._enqueue(note) else 0

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
        argv/env built for you, use :meth:`submit`.  Such jobs are never
        coalesced.  Returns False (logged) if the script cannot be parsed,
        the lane is full or the runner is closed.
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
        word = state or full_env.get("PYVRRP_STATE", "")
        job = _Job(instance, tuple(argv), full_env, word)
        return self._enqueue(_Notification(instance, "script", word, [job]))

    def _coalesce(self, note: _Notification) -> None:
        lane = self._lanes.get(note.instance)
        if lane is None or not lane.queue:
            return
        dropped = [old for old in lane.queue if supersedes(note, old)]
        if not dropped:
            return
        lane.queue = deque(old for old in lane.queue if not supersedes(note, old))
        self.stats.superseded += len(dropped)
        _log.info(
            "notify_superseded",
            instance=note.instance,
            kind=note.kind,
            dropped=[old.state for old in dropped],
            by=note.state,
            scripts_dropped=sum(len(old.jobs) for old in dropped),
        )

    def _enqueue(self, note: _Notification) -> bool:
        lane = self._lane(note.instance)
        if not note.terminal and len(lane.queue) >= self.max_queued:
            self.stats.dropped += 1
            _log.warning(
                "notify_dropped",
                instance=note.instance,
                state=note.state,
                reason="queue_full",
                max_queued=self.max_queued,
            )
            return False
        lane.queue.append(note)
        lane.idle.clear()
        lane.wakeup.set()
        return True

    def _lane(self, instance: str) -> _Lane:
        lane = self._lanes.get(instance)
        if lane is None:
            lane = _Lane()
            self._lanes[instance] = lane
            lane.worker = asyncio.get_running_loop().create_task(
                self._worker(instance, lane), name=f"notify-{instance}"
            )
        return lane

    def pending(self, instance: str | None = None) -> int:
        """Scripts queued or running, for one instance or all."""
        lanes = [self._lanes[instance]] if instance in self._lanes else []
        if instance is None:
            lanes = list(self._lanes.values())
        return sum(lane.queued_jobs() + lane.running_left for lane in lanes)

    def queued(self, instance: str | None = None) -> int:
        """Notifications waiting to start (the running one not counted): the backlog."""
        if instance is not None:
            lane = self._lanes.get(instance)
            return len(lane.queue) if lane is not None else 0
        return sum(len(lane.queue) for lane in self._lanes.values())

    # ------------------------------------------------------------ worker

    async def _worker(self, instance: str, lane: _Lane) -> None:
        while True:
            while not lane.queue:
                lane.idle.set()
                lane.wakeup.clear()
                await lane.wakeup.wait()
            note = lane.queue.popleft()
            lane.running, lane.running_left = note, len(note.jobs)
            try:
                for job in note.jobs:
                    cut = self._cutoff(note)
                    if cut is not None and asyncio.get_running_loop().time() >= cut:
                        self.stats.dropped += 1
                        _log.warning(
                            "notify_dropped",
                            instance=instance,
                            state=note.state,
                            argv=list(job.argv),
                            reason="stop_deadline",
                        )
                    else:
                        self.history.append(await self._run(job, note))
                    lane.running_left -= 1
            finally:
                lane.running, lane.running_left = None, 0

    def _cutoff(self, note: _Notification) -> float | None:
        """Loop time at which ``note``'s script is killed because the daemon stops, or None."""
        if self._stop_end_at is None or self._stop_half_at is None:
            return None
        if note.terminal:
            return self._stop_end_at - 2 * self._kill_grace()
        return self._stop_half_at

    def _kill_grace(self) -> float:
        return min(self.kill_grace_s, STOP_KILL_GRACE_S) if self._stopping.is_set() else self.kill_grace_s

    async def _run(self, job: _Job, note: _Notification | None = None) -> NotifyResult:
        started_s = monotonic()
        loop = asyncio.get_running_loop()
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
        timeout_at = loop.time() + self.timeout_s
        waiter = asyncio.ensure_future(proc.wait())
        rc: int | None = None
        ended = ""  # "" finished, "timeout", "stop"
        try:
            while True:
                cut = self._cutoff(note) if note is not None else None
                limit = timeout_at if cut is None else min(timeout_at, cut)
                remaining = limit - loop.time()
                if remaining <= 0:
                    ended = "timeout" if cut is None or timeout_at <= cut else "stop"
                    break
                watch = {waiter}
                stopping = None
                if not self._stopping.is_set():  # wake up when stop() moves the limit
                    stopping = asyncio.ensure_future(self._stopping.wait())
                    watch.add(stopping)
                done, _ = await asyncio.wait(watch, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if stopping is not None:
                    stopping.cancel()
                if waiter in done:
                    rc = waiter.result()
                    break
        except asyncio.CancelledError:  # the runner is closing: out of time, no grace
            waiter.cancel()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)  # reap it
            raise
        if ended:
            waiter.cancel()
            rc = await self._kill(proc)
        duration_s = monotonic() - started_s
        timed_out = ended != ""
        if ended == "timeout":
            self.stats.timed_out += 1
            log.error("notify_script_timeout", pid=proc.pid, timeout_s=self.timeout_s, returncode=rc)
        elif ended == "stop":
            self.stats.killed_at_stop += 1
            log.error(
                "notify_script_killed_at_stop",
                pid=proc.pid,
                returncode=rc,
                duration_s=round(duration_s, 3),
                reason="still running when the daemon's stop budget ran out",
            )
        elif rc == 0:
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
        grace = self._kill_grace()
        try:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    rc = await asyncio.wait_for(proc.wait(), grace)
                    break
                except TimeoutError:
                    continue
        finally:  # also when cancelled half-way: no survivor
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return rc if rc is not None else proc.returncode

    # ------------------------------------------------------------ shutdown

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every lane is empty and idle; False if ``timeout_s`` ran out."""
        waits = [lane.idle.wait() for lane in self._lanes.values()]
        if not waits:
            return True
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout_s)
        except TimeoutError:
            _log.warning("notify_drain_timeout", pending=self.pending(), timeout_s=timeout_s)
            return False
        return True

    async def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """Run what is queued (``notify_stop`` first of all) within ``timeout_s``, then stop.

        Call it right after the daemon queued STOP for every instance; it
        first yields once, so STOPs submitted with ``loop.call_soon`` land.
        Submissions are accepted until it returns.  A running non-STOP script
        is killed at ``timeout_s / 2``, a STOP script at ``timeout_s`` minus
        the kill grace (0.2 s SIGTERM, 0.2 s SIGKILL); what has not started
        by its cut-off is dropped and logged.  Returns True if every queued
        script ran to its end, False if any was killed or dropped for time.
        """
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)
        if self._closed:
            return True
        t0 = loop.time()
        self._stop_half_at = t0 + timeout_s / 2
        self._stop_end_at = t0 + timeout_s
        before = self.stats.killed_at_stop + self.stats.dropped
        self._stopping.set()
        _log.info(
            "notify_stopping",
            queued=self.queued(),
            running=sum(1 for lane in self._lanes.values() if lane.running is not None),
            budget_s=timeout_s,
        )
        finished = await self.drain(max(0.0, timeout_s + 0.05))
        self._closed = True
        await self._cancel_workers()
        return finished and self.stats.killed_at_stop + self.stats.dropped == before

    async def close(self, timeout_s: float | None = 5.0) -> bool:
        """:meth:`stop` with ``timeout_s`` (None: wait for every script, however long)."""
        if timeout_s is None:
            self._closed = True
            drained = await self.drain(None)
            await self._cancel_workers()
            return drained
        return await self.stop(timeout_s)

    async def _cancel_workers(self) -> None:
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._lanes.clear()
