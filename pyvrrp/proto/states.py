"""The VRRP state machine as one table (STYLE rule 4).

Rule 1: every state change of :class:`pyvrrp.proto.router.VirtualRouter`
goes through :func:`next_state`; the router never assigns a state by hand.
Rule 2: this module knows nothing about timers, packets or actions; the
router decides *which* trigger an input is (e.g. "this advert beats us") and
the table says *where* it leads.

States are RFC 5798 §6.4 Initialize/Backup/Master plus keepalived's FAULT
(SM-16).  Inputs that never change state (an advert that only resets the
Master_Down_Timer, an Adver_Timer tick) are not triggers.  A pair missing
from :data:`TRANSITIONS` is a bug in the router, not a remote fault, and
raises :class:`ProtocolViolation` naming the state and the trigger.
"""

from __future__ import annotations

import enum

from pyvrrp.proto.events import State

__all__ = ["TRANSITIONS", "ProtocolViolation", "Trigger", "next_state"]


class ProtocolViolation(RuntimeError):
    """The engine reached a (state, trigger) pair the table does not allow: a bug."""


class Trigger(enum.Enum):
    """What moved the machine, as classified by the router."""

    STARTUP_OWNER = "startup_owner"  # RFC 5798 §6.4.1, priority 255 (SM-01)
    STARTUP_BACKUP = "startup_backup"  # RFC 5798 §6.4.1, priority < 255 (SM-02)
    STARTUP_FAULT = "startup_fault"  # link down / tracker fault at startup (SM-16)
    SHUTDOWN = "shutdown"  # RFC 5798 §6.4.2 / §6.4.3 (SM-04, SM-09)
    MASTER_DOWN = "master_down"  # Master_Down_Timer fired, RFC 5798 §6.4.2 (SM-05)
    TAKEOVER_ALLOWED = "takeover_allowed"  # takeover gate said yes (issue #4)
    PREEMPTED = "preempted"  # higher priority / higher address, RFC 5798 §6.4.3 (SM-12)
    CONFLICT_YIELD = "conflict_yield"  # dual-master conflict, lower MAC yields (issue #4)
    FAULT = "fault"  # link down or a tracker fault (SM-16)
    FAULT_CLEARED = "fault_cleared"  # link up and no tracker fault: re-election (SM-16)
    SYNC_MASTER = "sync_master"  # another sync-group member became MASTER (keepalived)
    SYNC_BACKUP = "sync_backup"  # another sync-group member left MASTER (keepalived)


I, B, M, F = State.INIT, State.BACKUP, State.MASTER, State.FAULT  # noqa: E741 (table shorthand)

#: (state, trigger) -> next state.  Anything absent is a ProtocolViolation.
TRANSITIONS: dict[tuple[State, Trigger], State] = {
    # RFC 5798 §6.4.1 Initialize
    (I, Trigger.STARTUP_OWNER): M,
    (I, Trigger.STARTUP_BACKUP): B,
    (I, Trigger.STARTUP_FAULT): F,
    # RFC 5798 §6.4.2 Backup
    (B, Trigger.SHUTDOWN): I,
    (B, Trigger.MASTER_DOWN): M,
    (B, Trigger.TAKEOVER_ALLOWED): M,
    (B, Trigger.FAULT): F,
    (B, Trigger.SYNC_MASTER): M,
    # RFC 5798 §6.4.3 Master
    (M, Trigger.SHUTDOWN): I,
    (M, Trigger.PREEMPTED): B,
    (M, Trigger.CONFLICT_YIELD): B,
    (M, Trigger.FAULT): F,
    (M, Trigger.SYNC_BACKUP): B,
    # FAULT (keepalived, SM-16)
    (F, Trigger.SHUTDOWN): I,
    (F, Trigger.FAULT_CLEARED): B,
}


def next_state(state: State, trigger: Trigger) -> State:
    """The state that ``trigger`` leads to from ``state``.

    Raises:
        ProtocolViolation: the pair is not in :data:`TRANSITIONS`.
    """
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise ProtocolViolation(
            f"can't handle trigger {trigger.name} in state {state.name}; this is a bug"
        ) from None
