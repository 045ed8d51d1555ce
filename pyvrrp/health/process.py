"""Pure process tracking (keepalived ``vrrp_track_process``): matching, counting, quorum.

Pure like :mod:`pyvrrp.health.fsm` (STYLE rule 1): no I/O, no clock, no logging.  The
runtime reads ``/proc`` and the kernel's proc connector (:mod:`pyvrrp.adapters.procfs`,
:mod:`pyvrrp.adapters.proc_connector`) and feeds what it saw here, with ``now`` passed in.

Matching (keepalived.conf(5), its ``track_process.c`` re-implemented):

* by default ``process`` is compared, exactly, with the process name the kernel keeps
  (``/proc/PID/comm``, at most 15 bytes): ``process haproxy`` is ``pgrep '^haproxy$'``;
* ``full_command`` compares it with the command line's first word (``argv[0]``) instead;
* parameters after the name (or ``param_match``) compare the rest of the command line,
  which implies ``full_command``: ``exact`` (the default) wants exactly those parameters,
  ``partial`` the first N, ``initial`` the first N where the last may be longer (a prefix);
  ``param_match`` with no parameters means "no parameters at all";
* zombies do not count (they are not running).

Counting and quorum: the status is *up* while ``quorum <= count <= quorum_max``.  A loss of
quorum caused by a process exiting waits ``terminate_delay`` (a reload that stops and
restarts the service does not bounce the instance); a gain caused by a fork of a tracked
process waits ``fork_delay`` (a fork that is about to exec); any other change (exec, a
name change, a rescan) applies at once.  When the count returns to the reported side
before a delay expires, the pending change is dropped, as keepalived cancels its timer.

The effect of a status on an instance is :func:`pyvrrp.health.fsm.weight_effect` (same
weight rules as vrrp_script: 0 means FAULT when down, ``reverse`` flips it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "COMM_MAX_LEN",
    "Cause",
    "ParamMatch",
    "ProcessInfo",
    "ProcessMatcher",
    "ProcessTable",
    "Quorum",
]

COMM_MAX_LEN = 15  # TASK_COMM_LEN 16 minus the NUL: the kernel truncates comm to 15 bytes


class ParamMatch(enum.Enum):
    """How a command line's parameters are compared (keepalived ``param_match``)."""

    NONE = "none"  # parameters are not looked at
    EXACT = "exact"
    PARTIAL = "partial"
    INITIAL = "initial"


class Cause(enum.Enum):
    """Why a count changed: decides which delay applies."""

    FORK = "fork"  # a tracked process forked (fork_delay)
    EXIT = "exit"  # a tracked process exited (terminate_delay)
    OTHER = "other"  # exec, a name change, a (re)scan: at once


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the runtime read about one process.  ``argv`` is None when it was not read."""

    pid: int
    comm: str
    argv: tuple[str, ...] | None = None
    zombie: bool = False


@dataclass(frozen=True, slots=True)
class ProcessMatcher:
    """One ``vrrp_track_process``'s ``process`` line, ``param_match`` and ``full_command``."""

    name: str
    params: tuple[str, ...] = ()
    param_match: ParamMatch = ParamMatch.NONE
    full_command: bool = False

    @classmethod
    def build(
        cls, name: str, params: Sequence[str] | None, param_match: str | None, full_command: bool
    ) -> ProcessMatcher:
        """keepalived's rules: parameters imply exact matching; either implies full_command."""
        match = ParamMatch(param_match) if param_match is not None else ParamMatch.NONE
        if params and match is ParamMatch.NONE:
            match = ParamMatch.EXACT
        full = full_command or match is not ParamMatch.NONE
        return cls(name, tuple(params or ()), match, full)

    @property
    def needs_cmdline(self) -> bool:
        return self.full_command

    def matches(self, proc: ProcessInfo) -> bool:
        if proc.zombie:
            return False
        if not self.full_command:
            return proc.comm == self.name
        argv = proc.argv
        if not argv or argv[0] != self.name:
            return False
        return self.params_match(argv[1:])

    def params_match(self, actual: Sequence[str]) -> bool:
        want = self.params
        match = self.param_match
        if match is ParamMatch.NONE:
            return True
        if match is ParamMatch.EXACT:
            return tuple(actual) == want
        if len(actual) < len(want):
            return False
        if match is ParamMatch.PARTIAL or not want:
            return tuple(actual[: len(want)]) == want
        # INITIAL: the first N-1 exactly, the N-th may be longer
        return tuple(actual[: len(want) - 1]) == want[:-1] and actual[len(want) - 1].startswith(want[-1])


@dataclass(slots=True)
class Quorum:
    """Count → up/down with keepalived's quorum window and fork/terminate delays.

    ``update(count, cause, now)`` and ``handle_timer(now)`` return the new status when the
    *reported* status changes, else None.  ``next_deadline()`` is the pending delay's end.
    """

    quorum: int = 1
    quorum_max: int | None = None  # None: no upper bound
    fork_delay_s: float = 0.0
    terminate_delay_s: float = 0.0
    count: int = 0
    up: bool = False
    pending_until: float | None = None

    def ok(self, count: int) -> bool:
        return count >= self.quorum and (self.quorum_max is None or count <= self.quorum_max)

    def reset(self, count: int) -> bool:
        """The first count (start-up): the status is set at once, without delay."""
        self.count = count
        self.up = self.ok(count)
        self.pending_until = None
        return self.up

    def update(self, count: int, cause: Cause, *, now: float) -> bool | None:
        self.count = count
        target = self.ok(count)
        if target == self.up:
            self.pending_until = None  # back on the reported side: the pending change is dropped
            return None
        delay = 0.0
        if not target and cause is Cause.EXIT:
            delay = self.terminate_delay_s
        elif target and cause is Cause.FORK:
            delay = self.fork_delay_s
        if delay > 0:
            if self.pending_until is None:
                self.pending_until = now + delay
            return None
        self.up = target
        self.pending_until = None
        return target

    def handle_timer(self, *, now: float) -> bool | None:
        if self.pending_until is None or now < self.pending_until:
            return None
        self.pending_until = None
        target = self.ok(self.count)
        if target == self.up:
            return None
        self.up = target
        return target

    def next_deadline(self) -> float | None:
        return self.pending_until


@dataclass(slots=True)
class ProcessTable:
    """Which pids match which tracked processes; counts per tracked process.

    Fed by a full scan (:meth:`scan`) and then by events (:meth:`seen`, :meth:`fork`,
    :meth:`exit`).  Each method returns the names whose count changed.
    """

    matchers: Mapping[str, ProcessMatcher]
    members: dict[int, set[str]] = field(default_factory=dict)
    """pid → names of the tracked processes it counts for."""

    def count(self, name: str) -> int:
        return sum(1 for names in self.members.values() if name in names)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.matchers, 0)
        for names in self.members.values():
            for n in names:
                out[n] += 1
        return out

    def scan(self, procs: Iterable[ProcessInfo]) -> set[str]:
        """Replace everything with a full view of the running processes."""
        before = self.counts()
        self.members = {}
        for proc in procs:
            names = {n for n, m in self.matchers.items() if m.matches(proc)}
            if names:
                self.members[proc.pid] = names
        after = self.counts()
        return {n for n in self.matchers if before[n] != after[n]}

    def seen(self, proc: ProcessInfo, *, comm_only: bool = False) -> set[str]:
        """A process exec'd or renamed itself: match it afresh.

        ``comm_only`` (a name change, PROC_EVENT_COMM): the command line did not change,
        so full_command matchers keep their verdict (keepalived skips them there).
        """
        old = self.members.get(proc.pid, set())
        new: set[str] = set()
        for n, m in self.matchers.items():
            if comm_only and m.full_command:
                if n in old:
                    new.add(n)
            elif m.matches(proc):
                new.add(n)
        self._set(proc.pid, new)
        return old ^ new

    def fork(self, parent: int, child: int) -> set[str]:
        """A new process is a copy of its parent: it counts wherever the parent does."""
        names = self.members.get(parent)
        if not names:
            return set()
        old = self.members.get(child, set())
        self.members[child] = set(names)
        return names - old

    def exit(self, pid: int) -> set[str]:
        return self.members.pop(pid, set())

    def _set(self, pid: int, names: set[str]) -> None:
        if names:
            self.members[pid] = names
        else:
            self.members.pop(pid, None)
