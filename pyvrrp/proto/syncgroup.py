"""keepalived ``vrrp_sync_group``: several virtual routers that change state together.

Theory of operation
-------------------
A sync group is a set of member routers on one host (usually one per
interface).  keepalived keeps them together: all MASTER, or all BACKUP/FAULT.
:class:`SyncGroup` is the pure coordinator that does the same with pyvrrp's
sans-IO engines.  It never touches a router: after a member handled an input
(``handle``/``handle_timer``), the runtime passes that member's actions to
:meth:`SyncGroup.on_actions`, which returns ``(member, input)`` pairs that the
runtime feeds to the other members (and passes *their* actions back to
:meth:`SyncGroup.on_actions`, until no input is left; :meth:`SyncGroup.cascade`
does exactly that loop for the caller).

The rules (keepalived 2.2.7 ``vrrp_sync.c``):

* **FAULT together** (``vrrp_sync_fault``; ``num_member_fault``): a member has
  an *own* fault when its ``faults`` has anything but the group tracker
  ``sync:<group>``.  Every member gets ``TrackerChanged("sync:<group>",
  fault=True)`` while *another* member has an own fault, and
  ``fault=False`` otherwise.  So one member's fault puts all members in FAULT
  (a MASTER sends priority 0 on its own link, SM-16), and when the last own
  fault clears, all members return to BACKUP together and re-elect.  This
  rule is level-triggered: it is recomputed from the routers after every
  input, so it also works for inputs that produce no actions.
* **MASTER only together** (``vrrp_sync_can_goto_master``): members must have
  ``takeover_gate=True`` (:meth:`SyncGroup.member_config`).  A member whose
  Master_Down_Timer fires emits ``TakeoverPending``; that is keepalived's
  ``wantstate = MASTER``.  The coordinator answers ``TakeoverVerdict(allow=
  True)`` only when every other member is MASTER or is itself waiting with a
  takeover request; otherwise it *holds* the request (no verdict: the
  member stays BACKUP and keeps wanting).  A held request ends when the
  member accepts an advert (a valid master is heard: the engine cancels it)
  or when the group finally becomes ready.  A member still hearing a valid
  master therefore blocks the whole group.
* **Follow to MASTER** (``vrrp_sync_master``): when a member enters MASTER by
  itself (takeover allowed, Startup as owner), every other member in BACKUP
  gets ``SyncCommand(MASTER)`` at once.
* **Join a MASTER group**: a member entering BACKUP from INIT (a late
  Startup, an instance added by a reload) while every other member is MASTER
  gets ``SyncCommand(MASTER)`` at once.  keepalived lets it wait for its own
  Master_Down_Timer (``vrrp_sync_can_goto_master`` is then true); joining at
  once keeps "all MASTER" true and makes the Startup order of the members
  irrelevant (an owner member goes MASTER at Startup, SM-01).
* **Follow to BACKUP** (``vrrp_sync_backup``): when a member leaves MASTER for
  BACKUP by itself (preempted, dual-master conflict), every other member in
  MASTER gets ``SyncCommand(BACKUP)``: ``RemoveVips`` without priority 0,
  Master_Down_Timer re-armed.  They cannot take the VIP back on their own
  link while the group is backup: their next takeover request is held
  because the preempted member hears the new master.
* Transitions the coordinator caused itself (``StateChanged.trigger`` is
  ``sync_master``/``sync_backup``) are not propagated again.  Shutdown
  (-> INIT) is not propagated: the runtime stops every member itself, and a
  MASTER member stopping first must not strip the others of their
  priority-0 advert.  An INIT member is not ready, so it blocks a takeover.

Priorities must be ordered the same way on every link (the same host
preferred everywhere), as keepalived requires; otherwise each host has one
member that hears a better master and neither group ever becomes MASTER.

Pure: stdlib only, no I/O, no clock (``now`` is passed in), no logging.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from pyvrrp.proto.events import (
    Action,
    Input,
    State,
    StateChanged,
    SyncCommand,
    TakeoverPending,
    TakeoverVerdict,
    TrackerChanged,
)
from pyvrrp.proto.router import RouterConfig, VirtualRouter
from pyvrrp.proto.states import Trigger

__all__ = ["SyncGroup", "sync_tracker_name"]

#: Transitions caused by a SyncCommand: never propagated again.
_SYNC_TRIGGERS = frozenset({Trigger.SYNC_MASTER.value, Trigger.SYNC_BACKUP.value})
_MAX_CASCADE = 10_000


def sync_tracker_name(group: str) -> str:
    """The tracker that carries the group FAULT into a member: ``sync:<group>``."""
    return f"sync:{group}"


class SyncGroup:
    """Pure coordinator of one ``vrrp_sync_group`` on one host.

    Args:
        name: the group name (the tracker is ``sync:<name>``).
        members: member names (keys of the ``routers`` mapping the caller
            passes to every method; in the daemon the instance names).
            Order matters only for the order of the returned inputs.
        guarded: members whose runtime runs its own takeover guards (fence
            hook, VIP probe) on ``TakeoverPending``: :meth:`on_actions`
            ignores their ``TakeoverPending``; the runtime calls
            :meth:`request_takeover` once the guards allowed the takeover.

    ``routers`` is always a mapping holding at least every member name; other
    keys are ignored.  A member *wants MASTER* when it is MASTER, or BACKUP with
    ``takeover_pending`` (for a guarded member: and its guards allowed it, i.e.
    :meth:`request_takeover` was called since).  That is read from the routers
    each time, so a coordinator recreated on reload picks up held requests;
    its only state is the guarded requests and ``counters``.
    """

    def __init__(self, name: str, members: Iterable[str], *, guarded: Iterable[str] = ()) -> None:
        self.name = name
        self.members: tuple[str, ...] = tuple(members)
        self.guarded = frozenset(guarded)
        if not self.guarded <= set(self.members):
            strangers = sorted(self.guarded - set(self.members))
            raise ValueError(f"sync group {name!r}: guarded {strangers} are not members")
        if not self.members:
            raise ValueError(f"sync group {name!r} has no members")
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"sync group {name!r} lists a member twice")
        self.tracker = sync_tracker_name(name)
        self._requested: set[str] = set()
        self.counters: dict[str, int] = {}

    # ------------------------------------------------------------- helpers

    @staticmethod
    def member_config(config: RouterConfig) -> RouterConfig:
        """``config`` with ``takeover_gate=True``: what every member needs."""
        return config if config.takeover_gate else dataclasses.replace(config, takeover_gate=True)

    def check(self, routers: Mapping[str, VirtualRouter]) -> None:
        """Raise ValueError when a member is missing or lacks the takeover gate."""
        problems = [f"member {m!r} has no router" for m in self.members if m not in routers]
        problems += [
            f"member {m!r} needs takeover_gate=True (SyncGroup.member_config)"
            for m in self.members
            if m in routers and not routers[m].config.takeover_gate
        ]
        if problems:
            raise ValueError(f"sync group {self.name!r}: " + "; ".join(problems))

    def own_faults(self, router: VirtualRouter) -> tuple[str, ...]:
        """The member's faults other than the group tracker (link, its own trackers)."""
        return tuple(f for f in router.faults if f != self.tracker)

    def state(self, routers: Mapping[str, VirtualRouter]) -> State:
        """The group's state: FAULT if any member is in FAULT, MASTER if all are,
        INIT if all are, else BACKUP.  Compare before/after a cascade to run
        group-level notify scripts."""
        states = [routers[m].state for m in self.members]
        if State.FAULT in states:
            return State.FAULT
        if all(s is State.MASTER for s in states):
            return State.MASTER
        if all(s is State.INIT for s in states):
            return State.INIT
        return State.BACKUP

    def wants_master(self, member: str, routers: Mapping[str, VirtualRouter]) -> bool:
        """keepalived ``wantstate == MASTER``: MASTER already, or a takeover request is held."""
        router = routers[member]
        if router.state is State.MASTER:
            return True
        pending = router.state is State.BACKUP and router.takeover_pending
        if pending and (member not in self.guarded or member in self._requested):
            return True
        self._requested.discard(member)
        return False

    def blockers(self, member: str, routers: Mapping[str, VirtualRouter]) -> tuple[str, ...]:
        """The other members that are not ready to be MASTER (empty: ``member`` may take over)."""
        return tuple(m for m in self.members if m != member and not self.wants_master(m, routers))

    def can_goto_master(self, member: str, routers: Mapping[str, VirtualRouter]) -> bool:
        """keepalived ``vrrp_sync_can_goto_master``: every other member is MASTER or wants to be."""
        return not self.blockers(member, routers)

    def _bump(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # --------------------------------------------------------------- rules

    def reconcile(self, routers: Mapping[str, VirtualRouter]) -> list[tuple[str, Input]]:
        """The FAULT rule alone (level-triggered): set/clear ``sync:<group>`` where it is wrong.

        Raises come first (a fault spreads before anything else), then clears.
        """
        own = {m: bool(self.own_faults(routers[m])) for m in self.members}
        raises: list[tuple[str, Input]] = []
        clears: list[tuple[str, Input]] = []
        for m in self.members:
            want = any(own[o] for o in self.members if o != m)
            has = self.tracker in routers[m].faults
            if want and not has:
                self._bump("fault_raised")
                raises.append((m, TrackerChanged(self.tracker, fault=True)))
            elif has and not want:
                self._bump("fault_cleared")
                clears.append((m, TrackerChanged(self.tracker, fault=False)))
        return raises + clears

    def request_takeover(self, member: str, routers: Mapping[str, VirtualRouter]) -> list[tuple[str, Input]]:
        """``member`` emitted TakeoverPending: allow it now, or hold the request.

        :meth:`on_actions` calls it for a ``TakeoverPending``; for a
        ``guarded`` member the runtime calls it itself once its takeover
        guards (fence, VIP probe) allowed the takeover (if they deny, it
        feeds ``TakeoverVerdict(allow=False)`` as without a group).  Returns
        nothing when the member no longer has a pending takeover.
        """
        router = routers[member]
        if router.state is not State.BACKUP or not router.takeover_pending:
            return []
        self._requested.add(member)
        if self.can_goto_master(member, routers):
            self._bump("takeover_allowed")
            self._requested.discard(member)
            return [(member, TakeoverVerdict(allow=True, reason=f"sync group {self.name} ready"))]
        self._bump("takeover_held")
        return []

    def on_actions(
        self,
        member: str,
        actions: Iterable[Action],
        routers: Mapping[str, VirtualRouter],
        *,
        now: float,
    ) -> list[tuple[str, Input]]:
        """Inputs for the members after ``member`` produced ``actions`` (possibly none).

        Call it after *every* input or timer a member handled, even when it
        returned no actions (the FAULT rule is level-triggered).  Feed the
        returned inputs in order, each to its member's router at ``now``, and
        pass each result back here.  ``now`` is accepted for symmetry with the
        engine; the rules do not depend on time.
        """
        del now  # the rules are timeless; kept for the runtime's uniform call
        if member not in self.members:
            raise KeyError(f"{member!r} is not a member of sync group {self.name!r}")
        out = self.reconcile(routers)
        for action in actions:
            if isinstance(action, StateChanged) and action.trigger not in _SYNC_TRIGGERS:
                if action.new is State.MASTER:
                    for m in self.members:
                        if m != member and routers[m].state is State.BACKUP:
                            self._bump("sync_master")
                            out.append((m, SyncCommand(State.MASTER, f"{member} became MASTER")))
                elif action.new is State.BACKUP and action.old is not State.MASTER:
                    # a member (re)starting while the rest of the group is MASTER joins it
                    others = [m for m in self.members if m != member]
                    if others and all(routers[m].state is State.MASTER for m in others):
                        self._bump("sync_master")
                        out.append((member, SyncCommand(State.MASTER, "the group is MASTER")))
                elif action.old is State.MASTER and action.new is State.BACKUP:
                    for m in self.members:
                        if m != member and routers[m].state is State.MASTER:
                            self._bump("sync_backup")
                            out.append(
                                (m, SyncCommand(State.BACKUP, f"{member} left MASTER ({action.reason})"))
                            )
            elif isinstance(action, TakeoverPending) and member not in self.guarded:
                out += self.request_takeover(member, routers)
        return out

    def cascade(
        self,
        member: str,
        actions: Iterable[Action],
        routers: Mapping[str, VirtualRouter],
        *,
        now: float,
        feed: Callable[[str, Input], list[Action]] | None = None,
    ) -> list[tuple[str, list[Action]]]:
        """Run :meth:`on_actions` to a fixed point, feeding the inputs first in, first out.

        ``feed(member, input)`` must hand the input to that member's router and
        return its actions (default: ``routers[member].handle(input, now=now)``).
        Returns ``(member, actions)`` for every fed input, in order, for the
        runtime to execute after ``actions``.
        """
        handle = feed or (lambda m, event: routers[m].handle(event, now=now))
        queue = deque(self.on_actions(member, actions, routers, now=now))
        produced: list[tuple[str, list[Action]]] = []
        for _ in range(_MAX_CASCADE):
            if not queue:
                return produced
            target, event = queue.popleft()
            result = handle(target, event)
            produced.append((target, result))
            queue.extend(self.on_actions(target, result, routers, now=now))
        raise RuntimeError(f"sync group {self.name!r} did not settle: a bug")
