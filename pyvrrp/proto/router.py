"""The per-router VRRP engine: one :class:`VirtualRouter` per (interface, family, VRID).

Theory of operation
-------------------
The engine is sans-IO (STYLE rules 1-3).  The runtime feeds it *inputs*
(:mod:`pyvrrp.proto.events`) with the current monotonic time ``now`` and
performs the ordered list of *actions* it returns.  The engine keeps absolute
deadlines (``_master_down_at``, ``_adver_at``, ``_garp_delayed_at``,
``_garp_refresh_at``) and exposes the earliest as :meth:`next_deadline`; the
runtime calls :meth:`handle_timer` when it is reached.  Nothing here sleeps,
reads a clock, logs or touches a socket.

State changes go through the one table in :mod:`pyvrrp.proto.states`;
this module decides which trigger an input is and performs the exit and
entry actions:

* entering MASTER: ``StateChanged, SendAdvert, AddVips, AnnounceVips``
  (RFC 5798 §6.4.1 / §6.4.2, SM-01, SM-05), arm Adver_Timer, the second GARP
  burst (``garp_master_delay_s``) and the periodic refresh;
* leaving MASTER: ``StateChanged``, a priority-0 ``SendAdvert`` on Shutdown
  and on MASTER -> FAULT (SM-09, SM-16), ``RemoveVips``; all MASTER timers
  are cancelled (unlike keepalived, a pending delayed GARP burst never fires
  in a later mastership);
* entering BACKUP: Master_Adver_Interval := Advertisement_Interval (v3,
  TMR-06) and Master_Down_Timer := Master_Down_Interval (SM-02).

Receive path (meaning checks; shape checks were done by ``packet.decode``),
in this order, first failure wins and is counted in ``drops`` by
:class:`~pyvrrp.proto.packet.DropReason` value:

TTL 255 (RX-01, only when ``check_ttl``) -> version (RX-02) -> VRID (RX-06)
-> our own advert looped back ("self") -> unicast source is a peer (RX-13)
-> v2 auth type/data (RX-07) -> v2 interval (RX-08; v3 only counts
``interval_mismatch``, RX-09) -> address list (RX-10: v2 drops unless the
sender is the owner; v3 only counts ``address_list_mismatch``).

An owner (255) keeps processing adverts (RFC 9568 EID 8298): duplicate
owners resolve by the address tie-break; ``owner_conflict`` counts them.

Priorities: the effective priority is recomputed from scratch on every
tracker change, ``clamp(base + sum(deltas), 1, 254)``; the owner is exempt
(TMR-10, SM-15).  It is what we advertise and what Skew_Time uses.

Election decisions (RFC 5798 §6.4.2 / §6.4.3, RFC 9568):

* BACKUP hears priority 0: Master_Down_Timer := Skew_Time (SM-06, TMR-07).
* BACKUP hears priority >= ours, or preemption is off: it is the master;
  learn its interval (v3, TMR-06, Skew recomputed per RFC 9568) and reset
  Master_Down_Timer (SM-07).  No address tie-break in Backup.
* BACKUP hears a lower priority with preemption on: discard; the timer
  expires and we preempt (SM-07).  ``preempt_delay_s`` (keepalived): a
  window opens at Startup (and on FAULT -> BACKUP) and when a lower master is
  first seen after a higher one; inside it lower adverts still reset the
  timer, so preemption happens at most one Master_Down_Interval after the
  window closes.  The owner always preempts (SM-14).
* MASTER hears priority 0: advertise at once and re-arm Adver_Timer (SM-11).
* MASTER hears a higher priority, or an equal one from a greater primary
  address (unsigned, network byte order): go BACKUP (SM-12).
* MASTER hears a lower priority: advertise at once *without* re-arming
  Adver_Timer (RFC 9568 §6.4.3, SM-13, ``lower_prio_advert``) and announce
  the VIPs again (``garp_lower_prio_repeat``) to heal a dual master.

``start_as_master`` (keepalived ``state MASTER``): recorded, shown in the
snapshot, and deliberately without effect on timing.  An owner goes MASTER
at once anyway (RFC SM-01); a non-owner enters BACKUP and waits the full
Master_Down_Interval, which is what keepalived 2.2.7 was measured to do
(KEEPALIVED-BASELINE §2): a restarted node never steals mastership before it
has had the chance to hear the current master.

Epoch (fencing token): incremented on each entry into MASTER, reported in
``StateChanged.epoch`` and the snapshot.

Takeover gate (issue #4, ``takeover_gate``): when Master_Down fires the
engine emits :class:`TakeoverPending` and stays BACKUP until a
:class:`TakeoverVerdict`.  An accepted advert (one that would reset the
Master_Down_Timer) cancels the request; a later verdict is then ignored.  A
denial re-arms Master_Down_Timer (retry).

Sync groups (keepalived ``vrrp_sync_group``, issue #6): the engine knows
nothing about its group.  :class:`pyvrrp.proto.syncgroup.SyncGroup` vetoes a
member's takeover through the takeover gate (it holds the
:class:`TakeoverPending` until every member is ready), moves members with
:class:`SyncCommand` (BACKUP -> MASTER ``SYNC_MASTER``, MASTER -> BACKUP
``SYNC_BACKUP``: ``RemoveVips`` without a priority-0 advert, Master_Down_Timer
re-armed) and puts the whole group in FAULT with the tracker
``sync:<group>``.  ``StateChanged.trigger`` tells the coordinator which
transitions it caused itself.

Dual-master conflict (issue #4, ``conflict_resolve``): on
:class:`ConflictDetected` a MASTER whose MAC is numerically lower yields
(-> BACKUP, ``RemoveVips``); the other one re-announces (``reason="conflict"``).
The MAC rule is for a conflict the election cannot settle: a MASTER whose
first advert from a lower-priority master arrived less than
``ELECTION_GRACE_INTERVALS`` advert intervals ago is winning the election
(the other steps down on its SM-13 advert), so it never yields by MAC; it
re-announces (issue 13 item 5: after a split heals, the priority-150 node
once yielded to the priority-100 one).  If those adverts keep coming, the
other does not hear ours (one-way loss) and the MAC rule applies again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from pyvrrp.proto import timing
from pyvrrp.proto.constants import (
    AUTH_AH,
    AUTH_NONE,
    AUTH_SIMPLE,
    DOWN_TIMER_ADVERTS,
    MCAST_GROUP_V4,
    MCAST_GROUP_V6,
    PRIORITY_MAX_BACKUP,
    PRIORITY_MIN_BACKUP,
    PRIORITY_OWNER,
    PRIORITY_RELEASE,
    V2_AUTH_DATA_LEN,
    V3_ADVER_INT_MAX_CS,
    VRRP_TTL,
)
from pyvrrp.proto.events import (
    Action,
    AddVips,
    AdvertReceived,
    AnnounceVips,
    ConflictDetected,
    Input,
    IPAddress,
    IPInterface,
    LinkChanged,
    RemoveVips,
    RouterSnapshot,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
    SyncCommand,
    TakeoverPending,
    TakeoverVerdict,
    TrackerChanged,
)
from pyvrrp.proto.packet import Advertisement, DropReason, encode
from pyvrrp.proto.states import ProtocolViolation, Trigger, next_state

__all__ = ["RouterConfig", "VirtualRouter", "effective_priority", "peer_wins"]

_CS_PER_S = 100
_LINK_FAULT = "link"


#: after the first advert of a lower-priority master, this many of our advert intervals belong
#: to the VRRP election: a dual-master conflict then never makes us yield by MAC (issue 13 §5)
ELECTION_GRACE_INTERVALS = 1.5

#: minimum gap between two SM-13 re-adverts (a flood of lower-priority adverts is not echoed)
LOWER_PRIO_ADVERT_GAP_S = 0.01


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Configuration of one virtual router (pure data, validated on creation).

    Times: ``advert_interval_cs`` is the Advertisement_Interval in
    centiseconds (v2: a multiple of 100, RFC 3768 §5.3.7); the ``*_s`` knobs
    are seconds.
    """

    name: str
    vrid: int
    version: int
    family: int
    priority: int
    advert_interval_cs: int
    vips: tuple[IPInterface, ...]
    primary_address: IPAddress
    preempt: bool = True
    preempt_delay_s: float = 0.0
    start_as_master: bool = False
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""
    v3_ipv4_pseudo_header: bool = True
    unicast_peers: tuple[IPAddress, ...] = ()
    check_ttl: bool = True
    lower_prio_advert: bool = True
    garp_master_repeat: int = 5
    garp_master_delay_s: float = 5.0
    garp_master_refresh_s: float = 0.0
    garp_lower_prio_repeat: int = 5
    garp_lower_prio_delay_s: float = 5.0
    down_timer_adverts: int = DOWN_TIMER_ADVERTS
    takeover_gate: bool = False
    conflict_resolve: bool = False
    mcast_group: IPAddress | None = None  # keepalived vrrp_mcast_group4/6; None: the RFC group

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not 1 <= self.vrid <= 255:  # RFC 5798 §6.1 (PKT-04)
            problems.append(f"vrid must be 1..255, got {self.vrid}")
        if self.version not in (2, 3):
            problems.append(f"version must be 2 or 3, got {self.version}")
        if self.family not in (4, 6):
            problems.append(f"family must be 4 or 6, got {self.family}")
        elif self.version == 2 and self.family == 6:
            problems.append("VRRPv2 (RFC 3768) is IPv4 only")
        if not 1 <= self.priority <= PRIORITY_OWNER:  # RFC 5798 §5.2.4 (PKT-04)
            problems.append(f"priority must be 1..255, got {self.priority}")
        if self.version == 2:
            if self.advert_interval_cs <= 0 or self.advert_interval_cs % _CS_PER_S:
                problems.append(
                    f"v2 advert interval must be whole seconds > 0, got {self.advert_interval_cs} cs"
                )
            elif self.advert_interval_cs > 255 * _CS_PER_S:
                problems.append(f"v2 advert interval must be <= 255 s, got {self.advert_interval_cs} cs")
        elif not 1 <= self.advert_interval_cs <= V3_ADVER_INT_MAX_CS:  # RFC 9568 EID 8301 (TMR-01)
            problems.append(f"v3 advert interval must be 1..4095 cs, got {self.advert_interval_cs}")
        if self.primary_address.version != self.family:
            problems.append(f"primary_address {self.primary_address} is not IPv{self.family}")
        for vip in self.vips:
            if vip.version != self.family:
                problems.append(f"VIP {vip} is not IPv{self.family}")
        if self.mcast_group is not None and (
            self.mcast_group.version != self.family or not self.mcast_group.is_multicast
        ):
            problems.append(f"mcast_group {self.mcast_group} is not an IPv{self.family} multicast group")
        if self.preempt_delay_s < 0:
            problems.append(f"preempt_delay_s must be >= 0, got {self.preempt_delay_s}")
        if not 1 <= self.down_timer_adverts <= 100:  # keepalived range (TMR-11)
            problems.append(f"down_timer_adverts must be 1..100, got {self.down_timer_adverts}")
        if self.auth_type not in (AUTH_NONE, AUTH_SIMPLE, AUTH_AH):
            problems.append(f"auth_type must be 0, 1 or 2, got {self.auth_type}")
        elif self.auth_type == AUTH_AH and self.family != 4:
            problems.append("auth_type 2 (AH) exists only for IPv4")
        if self.auth_type != AUTH_NONE and self.version != 2:
            problems.append("authentication exists only in VRRPv2")
        for name in ("garp_master_repeat", "garp_lower_prio_repeat"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("garp_master_delay_s", "garp_master_refresh_s", "garp_lower_prio_delay_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if problems:
            raise ValueError(f"router {self.name!r}: " + "; ".join(problems))

    @property
    def owner(self) -> bool:
        """True for the IP address owner (priority 255, RFC 5798 §5.2.4)."""
        return self.priority == PRIORITY_OWNER


def advert_datagrams(config: RouterConfig, advert: Advertisement) -> list[tuple[IPAddress, bytes]]:
    """Where one advert of ``config``'s router goes, with its bytes for each destination.

    Every unicast peer, else the family's group (RFC 5798 §5.1.1.2 / §5.1.2.2), or the group
    configured instead (keepalived ``vrrp_mcast_group4/6``).  The bytes differ per destination
    when the checksum covers the IP pseudo-header (PKT-07).
    """
    if config.unicast_peers:
        targets: tuple[IPAddress, ...] = config.unicast_peers
    elif config.mcast_group is not None:
        targets = (config.mcast_group,)
    else:
        targets = (MCAST_GROUP_V4 if config.family == 4 else MCAST_GROUP_V6,)
    src = config.primary_address
    return [
        (dst, encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=config.v3_ipv4_pseudo_header))
        for dst in targets
    ]


def effective_priority(base: int, deltas: list[int] | tuple[int, ...]) -> int:
    """Recompute the effective priority from scratch (STYLE rule 5, TMR-10, SM-15).

    The owner (255) is exempt from tracking; anyone else is clamped to 1..254.
    """
    if base == PRIORITY_OWNER:
        return PRIORITY_OWNER
    return max(PRIORITY_MIN_BACKUP, min(PRIORITY_MAX_BACKUP, base + sum(deltas)))


def peer_wins(peer_priority: int, peer_address: IPAddress, our_priority: int, our_address: IPAddress) -> bool:
    """RFC 5798 §6.4.3 (SM-12): does a MASTER yield to this advert?

    Higher priority wins; on equal priority the greater primary address wins,
    compared as unsigned integers in network byte order (RFC 9568 §6.4.3).
    """
    if peer_priority != our_priority:
        return peer_priority > our_priority
    return peer_address.packed > our_address.packed


def _same_address(a: IPAddress, b: IPAddress) -> bool:
    """Equal addresses, ignoring an IPv6 scope id (``fe80::1%eth0`` is ``fe80::1``)."""
    return a.version == b.version and a.packed == b.packed


def _auth_key(data: bytes) -> bytes:
    """RFC 3768 §5.3.10 / keepalived PASS: 8 bytes, NUL padded; compare without padding."""
    return data[:V2_AUTH_DATA_LEN].rstrip(b"\0")


def _addresses(vips: tuple[IPInterface, ...]) -> tuple[IPv4Address | IPv6Address, ...]:
    return tuple(v.ip for v in vips)


@dataclass(slots=True)
class _Counters:
    values: dict[str, int] = field(default_factory=dict)

    def bump(self, key: str, n: int = 1) -> None:
        self.values[key] = self.values.get(key, 0) + n


class VirtualRouter:
    """One VRRP virtual router: RFC 5798 §6.4 state machine plus FAULT (SM-16).

    Args:
        config: the router's configuration.
        epoch: initial fencing epoch (incremented on each entry into MASTER).
    """

    def __init__(self, config: RouterConfig, *, epoch: int = 0) -> None:
        self._config = config
        self._state = State.INIT
        self._epoch = epoch
        self._trackers: dict[str, TrackerChanged] = {}
        self._link_up = True
        # RFC 5798 §6.1 Master_Adver_Interval (v3: learned from the master, TMR-06)
        self._master_adver_interval_cs = config.advert_interval_cs
        self._master_down_at: float | None = None
        self._adver_at: float | None = None
        self._garp_delayed_at: float | None = None
        self._garp_refresh_at: float | None = None
        self._garp_lower_prio_at = -math.inf  # next lower-priority GARP burst allowed at
        self._lower_prio_advert_at = -math.inf  # last SM-13 re-advert
        self._lower_rx_at = -math.inf  # last advert of a lower-priority master heard while MASTER
        self._lower_run_at = -math.inf  # first advert of the current run of such adverts
        self._conflict_deferred: ConflictDetected | None = None  # left to the election, for now
        self._preempt_window_until: float | None = None
        self._takeover_pending = False
        self._vips_held: tuple[IPInterface, ...] = ()
        self._master_ip: IPAddress | None = None
        self._master_priority: int | None = None
        self._last_rx_at: float | None = None
        self._last_transition: tuple[State, State, str, float] | None = None
        self._counters = _Counters()
        self._drops = _Counters()
        # receive fast path (:meth:`refresh`): (advert accepted last, counters it bumped,
        # Master_Down_Interval); None whenever any other input may have changed the outcome
        self._fast: tuple[AdvertReceived, tuple[str, ...], float] | None = None

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> State:
        return self._state

    @property
    def config(self) -> RouterConfig:
        return self._config

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def effective_priority(self) -> int:
        """TMR-10 / SM-15: recomputed from the tracker table, never accumulated."""
        return effective_priority(self._config.priority, [t.delta for t in self._trackers.values()])

    @property
    def faults(self) -> tuple[str, ...]:
        """Names of the active faults: ``"link"`` and failed trackers (SM-16)."""
        names = [] if self._link_up else [_LINK_FAULT]
        names += sorted(n for n, t in self._trackers.items() if t.fault)
        return tuple(names)

    @property
    def takeover_pending(self) -> bool:
        return self._takeover_pending

    # ---------------------------------------------------------------- timers

    def _interval_s(self) -> float:
        return self._config.advert_interval_cs / _CS_PER_S

    def _skew_s(self) -> float:
        return timing.skew_time_s(
            self._config.version, self.effective_priority, self._master_adver_interval_cs
        )

    def _master_down_interval_s(self) -> float:
        return timing.master_down_interval_s(
            self._config.version,
            self.effective_priority,
            self._master_adver_interval_cs,
            self._config.down_timer_adverts,
        )

    def next_deadline(self) -> float | None:
        """The earliest armed deadline (absolute monotonic seconds), or None."""
        best = self._master_down_at  # on the receive path, once per advert: no list, no min()
        for t in (self._adver_at, self._garp_delayed_at, self._garp_refresh_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, *, now: float) -> list[Action]:
        """Fire every deadline that is due at ``now`` (earliest first)."""
        self._fast = None
        actions: list[Action] = []
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                return actions
            if self._master_down_at is not None and self._master_down_at == deadline:
                self._master_down_at = None
                actions += self._on_master_down(now)
            elif self._adver_at is not None and self._adver_at == deadline:
                if self._conflict_deferred is not None and not self._election_running(now):
                    conflict, self._conflict_deferred = self._conflict_deferred, None
                    grace_s = ELECTION_GRACE_INTERVALS * self._interval_s()
                    if self._lower_run_at < self._lower_rx_at > now - grace_s:  # it still masters
                        actions += self._mac_rule(conflict, now)
                        if self._state is not State.MASTER:
                            continue
                # RFC 5798 §6.4.3 (SM-10, TMR-08): send an advert, re-arm Adver_Timer
                actions.append(self._advert(self.effective_priority))
                # re-arm from the deadline, not from `now`, so timer lateness does not
                # accumulate into a slower advert rate; after a long stall, start afresh
                nxt = deadline + self._interval_s()
                self._adver_at = nxt if nxt > now else now + self._interval_s()
            elif self._garp_delayed_at is not None and self._garp_delayed_at == deadline:
                # keepalived vrrp_garp_master_delay: the second burst (ARP-02)
                self._garp_delayed_at = None
                actions += self._announce(self._config.garp_master_repeat, "master_delayed")
            else:
                # keepalived vrrp_garp_master_refresh: periodic GARP while MASTER
                self._garp_refresh_at = now + self._config.garp_master_refresh_s
                actions += self._announce(1, "refresh")

    def _on_master_down(self, now: float) -> list[Action]:
        """RFC 5798 §6.4.2 (SM-05): Master_Down_Timer fired in BACKUP."""
        if self._state is not State.BACKUP:
            raise ProtocolViolation(f"Master_Down_Timer fired in state {self._state.name}; this is a bug")
        if self._config.takeover_gate:
            self._takeover_pending = True
            self._counters.bump("takeover_requests")
            return [TakeoverPending(epoch=self._epoch + 1, reason="master_down")]
        return self._transition(Trigger.MASTER_DOWN, "master_down", now)

    # ---------------------------------------------------------------- inputs

    def handle(self, event: Input, *, now: float) -> list[Action]:
        """Process one input at ``now`` and return the actions to perform, in order."""
        self._fast = None
        if isinstance(event, AdvertReceived):
            return self._on_advert(event, now)
        if isinstance(event, Startup):
            return self._on_startup(now)
        if isinstance(event, Shutdown):
            if self._state is State.INIT:
                return []
            return self._transition(Trigger.SHUTDOWN, "shutdown", now)
        if isinstance(event, LinkChanged):
            self._link_up = event.up
            return self._reevaluate_faults("link down" if not event.up else "link up", now)
        if isinstance(event, TrackerChanged):
            if event.delta == 0 and not event.fault:
                self._trackers.pop(event.name, None)
            else:
                self._trackers[event.name] = event
            reason = f"tracker {event.name} " + ("failed" if event.fault else "recovered")
            return self._reevaluate_faults(reason, now)
        if isinstance(event, TakeoverVerdict):
            return self._on_verdict(event, now)
        if isinstance(event, ConflictDetected):
            return self._on_conflict(event, now)
        if isinstance(event, SyncCommand):
            return self._on_sync(event, now)
        raise ProtocolViolation(f"can't handle input {type(event).__name__} in state {self._state.name}")

    def refresh(self, event: AdvertReceived, *, now: float) -> bool:
        """The receive fast path: ``handle(event)`` for the common case, at a fraction of its cost.

        The common case is a BACKUP hearing its master again: ``event`` is the very object
        the last input accepted (the runtime reuses it for a byte-identical datagram from
        the same source) and no other input, timer or reconfiguration came in between.
        Then every check and decision of :meth:`handle` has the same outcome as last time,
        so only what depends on ``now`` is redone: the counters it moves, the arrival time
        and Master_Down_Timer := Master_Down_Interval (RFC 5798 §6.4.2, SM-07).  It
        returns no actions.

        Returns:
            True when handled (state identical to ``handle(event, now=now)``, proven by
            tests/test_router_fastpath.py); False when not applicable: call :meth:`handle`.
        """
        fast = self._fast
        if fast is None or fast[0] is not event:
            return False
        _, bumped, down_s = fast
        values = self._counters.values
        for key in bumped:
            values[key] = values.get(key, 0) + 1
        self._last_rx_at = now
        self._master_down_at = now + down_s
        return True

    def _on_startup(self, now: float) -> list[Action]:
        """RFC 5798 §6.4.1 (SM-01, SM-02); FAULT first if a fault is already known (SM-16)."""
        if self._state is not State.INIT:
            self._counters.bump("startup_ignored")
            return []
        if self.faults:
            return self._transition(Trigger.STARTUP_FAULT, "startup: " + ", ".join(self.faults), now)
        if self._config.owner:
            return self._transition(Trigger.STARTUP_OWNER, "startup (address owner)", now)
        return self._transition(Trigger.STARTUP_BACKUP, "startup", now)

    def _reevaluate_faults(self, reason: str, now: float) -> list[Action]:
        """Link/tracker change: FAULT in or out (SM-16), priority recomputed (TMR-10)."""
        if self._state in (State.BACKUP, State.MASTER) and self.faults:
            return self._transition(Trigger.FAULT, reason, now)
        if self._state is State.FAULT and not self.faults:
            return self._transition(Trigger.FAULT_CLEARED, reason, now)
        return []

    def _on_verdict(self, event: TakeoverVerdict, now: float) -> list[Action]:
        if not self._takeover_pending or self._state is not State.BACKUP:
            self._counters.bump("takeover_verdicts_ignored")
            return []
        self._takeover_pending = False
        if event.allow:
            reason = "master_down, takeover allowed" + (f": {event.reason}" if event.reason else "")
            return self._transition(Trigger.TAKEOVER_ALLOWED, reason, now)
        # denied: retry after another Master_Down_Interval
        self._counters.bump("takeover_denied")
        self._master_down_at = now + self._master_down_interval_s()
        return []

    def _on_sync(self, event: SyncCommand, now: float) -> list[Action]:
        """keepalived ``vrrp_sync_group``: follow the group to MASTER or BACKUP.

        BACKUP -> MASTER (``vrrp_sync_master``): full MASTER entry actions,
        whatever this member hears on its own link (a pending takeover is
        settled by it).  MASTER -> BACKUP (``vrrp_sync_backup``): ``RemoveVips``
        without a priority-0 advert (as on preemption, RFC 5798 §6.4.3) and
        Master_Down_Timer := Master_Down_Interval.  Anything else: ignored.
        """
        suffix = f": {event.reason}" if event.reason else ""
        if event.target is State.MASTER and self._state is State.BACKUP:
            return self._transition(Trigger.SYNC_MASTER, "sync group master" + suffix, now)
        if event.target is State.BACKUP and self._state is State.MASTER:
            return self._transition(Trigger.SYNC_BACKUP, "sync group backup" + suffix, now)
        self._counters.bump("sync_ignored")
        return []

    def _on_conflict(self, event: ConflictDetected, now: float) -> list[Action]:
        self._counters.bump("conflicts_detected")
        if self._state is not State.MASTER or not self._config.conflict_resolve:
            return []
        if self._election_running(now):
            # A lower-priority master's adverts have just begun to reach us: the split has
            # healed and the VRRP election is under way, which we win (the other steps
            # down on our SM-13 advert).  The MAC rule could make the better router yield
            # here, so it waits: if those adverts still come when the grace is over, the
            # other does not hear ours (one-way loss, S6) and the MAC rule decides at our
            # next advert.
            self._counters.bump("conflict_vrrp_decides")
            self._conflict_deferred = event
            return self._announce(self._config.garp_master_repeat, "conflict")
        return self._mac_rule(event, now)

    def _election_running(self, now: float) -> bool:
        return now - self._lower_run_at <= ELECTION_GRACE_INTERVALS * self._interval_s()

    def _mac_rule(self, event: ConflictDetected, now: float) -> list[Action]:
        if int.from_bytes(event.our_mac, "big") < int.from_bytes(event.peer_mac, "big"):
            return self._transition(Trigger.CONFLICT_YIELD, "dual-master conflict", now)
        return self._announce(self._config.garp_master_repeat, "conflict")

    # --------------------------------------------------------------- receive

    def count_drop(self, reason: DropReason) -> None:
        """Count an advert for this router that the receive path dropped before the engine.

        keepalived's IPsec AH checks (ICV, SPI, sequence number: :mod:`pyvrrp.proto.ah`)
        need the datagram's IP header, which the engine never sees; they count here so
        ``pyvrrp state`` shows them with the engine's own drops.
        """
        self._drops.bump(reason.value)

    def _drop(self, reason: DropReason) -> list[Action]:
        self._drops.bump(reason.value)
        return []

    def _check(self, event: AdvertReceived) -> DropReason | None:
        """RFC 3768/5798/9568 §7.1 meaning checks; returns the first failure."""
        cfg, adv = self._config, event.advert
        if cfg.check_ttl and event.ttl is not None and event.ttl != VRRP_TTL:  # RX-01
            return DropReason.TTL
        if adv.version != cfg.version:  # RX-02
            return DropReason.VERSION
        if adv.vrid != cfg.vrid:  # RX-06
            return DropReason.VRID
        if _same_address(event.src, cfg.primary_address):  # our own advert looped back
            return DropReason.SELF
        if cfg.unicast_peers and not any(_same_address(event.src, p) for p in cfg.unicast_peers):
            return DropReason.UNICAST_PEER  # RX-13 (keepalived extension)
        if cfg.version == 2:
            # RFC 3768 §5.3.6 / §7.1 (RX-07)
            if adv.auth_type != cfg.auth_type:
                return DropReason.AUTH
            if cfg.auth_type == AUTH_SIMPLE and _auth_key(adv.auth_data) != _auth_key(cfg.auth_data):
                return DropReason.AUTH
            if adv.interval_cs != cfg.advert_interval_cs:  # RFC 3768 §7.1 (RX-08)
                return DropReason.INTERVAL
        elif adv.interval_cs != cfg.advert_interval_cs:
            self._counters.bump("interval_mismatch")  # RFC 9568 §7.1: SHOULD log, no drop (RX-09)
        if sorted(adv.addresses, key=lambda a: a.packed) != sorted(
            _addresses(cfg.vips), key=lambda a: a.packed
        ):
            self._counters.bump("address_list_mismatch")
            if cfg.version == 2 and adv.priority != PRIORITY_OWNER:  # RFC 3768 §7.1 (RX-10)
                return DropReason.ADDRESS_LIST
        return None

    def _on_advert(self, event: AdvertReceived, now: float) -> list[Action]:
        before = dict(self._counters.values) if self._state is State.BACKUP else None
        reason = self._check(event)
        if reason is not None:
            return self._drop(reason)
        adv = event.advert
        self._counters.bump("adverts_rx")
        if adv.priority == PRIORITY_RELEASE:
            self._counters.bump("prio_zero_rx")
        if adv.priority == PRIORITY_OWNER and self._config.owner:
            # RFC 9568 §7.1 EID 8298 / §8.3.2 (SM-15): SHOULD log; no discard
            self._counters.bump("owner_conflict")
        if before is not None:
            values = self._counters.values
            bumped = tuple(k for k, v in values.items() for _ in range(v - before.get(k, 0)))
            return self._backup_rx(event, now, bumped)
        if self._state is State.MASTER:
            return self._master_rx(event, now)
        self._counters.bump("adverts_ignored")  # INIT / FAULT take no part
        return []

    def _learn_master(self, event: AdvertReceived, now: float) -> None:
        """RFC 5798/9568 §6.4.2 (SM-07, TMR-06): record the master, adopt its interval (v3)."""
        adv = event.advert
        self._master_ip = event.src
        self._master_priority = adv.priority
        self._last_rx_at = now
        if self._config.version == 3:
            # Master_Adver_Interval := advert's interval; Skew_Time and
            # Master_Down_Interval are derived from it (RFC 9568 recomputes both)
            self._master_adver_interval_cs = adv.interval_cs

    def _backup_rx(self, event: AdvertReceived, now: float, bumped: tuple[str, ...] = ()) -> list[Action]:
        """BACKUP hears a valid advert; ``bumped``: the counters its checks moved (fast path)."""
        adv = event.advert
        ours = self.effective_priority
        if adv.priority == PRIORITY_RELEASE:
            # RFC 5798 §6.4.2 (SM-06, TMR-07): Master_Down_Timer := Skew_Time
            self._last_rx_at = now
            self._master_priority = PRIORITY_RELEASE
            if not self._takeover_pending:
                self._master_down_at = now + self._skew_s()
            return []
        preempt = self._config.preempt or self._config.owner  # RFC 5798 §6.1 (SM-14)
        if preempt and adv.priority < ours and not self._in_preempt_window(now):
            # RFC 5798 §6.4.2 (SM-07): discard; our Master_Down_Timer will expire
            self._counters.bump("lower_prio_rx")
            return []
        if self._config.preempt_delay_s > 0 and adv.priority >= ours:
            self._preempt_window_until = None  # reopens when a lower master is next seen
        self._learn_master(event, now)
        down_s = self._master_down_interval_s()
        self._master_down_at = now + down_s
        if self._takeover_pending:
            self._takeover_pending = False
            self._counters.bump("takeover_cancelled")
        if not (preempt and adv.priority < ours):  # outside a preempt_delay window (depends on now)
            self._fast = (event, bumped, down_s)
        return []

    def _in_preempt_window(self, now: float) -> bool:
        """keepalived ``preempt_delay``: still inside the delay after startup / first lower master?"""
        delay = self._config.preempt_delay_s
        if delay <= 0 or self._config.owner:
            return False
        if self._preempt_window_until is None:
            self._preempt_window_until = now + delay
        return now < self._preempt_window_until

    def _master_rx(self, event: AdvertReceived, now: float) -> list[Action]:
        adv = event.advert
        ours = self.effective_priority
        if adv.priority == PRIORITY_RELEASE:
            # RFC 5798 §6.4.3 (SM-11): advertise now, re-arm Adver_Timer
            self._adver_at = now + self._interval_s()
            return [self._advert(ours)]
        if peer_wins(adv.priority, event.src, ours, self._config.primary_address):
            # RFC 5798 §6.4.3 (SM-12): cancel Adver_Timer, adopt interval, go Backup
            self._learn_master(event, now)
            return self._transition(Trigger.PREEMPTED, f"preempted by {event.src} prio {adv.priority}", now)
        # RFC 9568 §6.4.3 (SM-13): advertise at once to assert MASTER; Adver_Timer untouched
        self._counters.bump("lower_prio_rx")
        if now - self._lower_rx_at >= self._master_down_interval_s():
            self._lower_run_at = now  # a new run: the other master has just started hearing us?
        self._lower_rx_at = now
        if not self._config.lower_prio_advert:
            return []
        actions: list[Action] = []
        # A flood of lower-priority adverts must not turn the master into an amplifier:
        # at most one re-advert per LOWER_PRIO_ADVERT_GAP_S, and one GARP burst per
        # garp_lower_prio_delay_s (keepalived garp_lower_prio_delay, default 5 s).
        if now - self._lower_prio_advert_at >= LOWER_PRIO_ADVERT_GAP_S:
            self._lower_prio_advert_at = now
            actions.append(self._advert(ours))
        else:
            self._counters.bump("lower_prio_advert_limited")
        if now >= self._garp_lower_prio_at:
            self._garp_lower_prio_at = now + self._config.garp_lower_prio_delay_s
            actions += self._announce(self._config.garp_lower_prio_repeat, "lower_prio")
        else:
            self._counters.bump("lower_prio_garp_limited")
        return actions

    # ------------------------------------------------------------ transitions

    def _advert(self, priority: int) -> SendAdvert:
        cfg = self._config
        self._counters.bump("adverts_tx")
        if priority == PRIORITY_RELEASE:
            self._counters.bump("prio_zero_tx")
        return SendAdvert(
            Advertisement(
                version=cfg.version,
                vrid=cfg.vrid,
                priority=priority,
                addresses=_addresses(cfg.vips),
                interval_cs=cfg.advert_interval_cs,
                auth_type=cfg.auth_type,
                auth_data=cfg.auth_data if cfg.auth_type == AUTH_SIMPLE else b"",
            )
        )

    def _announce(self, repeat: int, reason: str) -> list[Action]:
        """GARP / unsolicited NA burst for the VIPs we hold (ARP-02, ARP-07)."""
        if repeat <= 0 or not self._vips_held:
            return []
        self._counters.bump("garp_bursts")
        self._counters.bump(f"garp_bursts_{reason}")
        return [AnnounceVips(self._vips_held, repeat=repeat, reason=reason)]

    def _transition(self, trigger: Trigger, reason: str, now: float) -> list[Action]:
        """Move through the table and run exit/entry actions (RFC 5798 §6.4)."""
        old = self._state
        new = next_state(old, trigger)
        actions: list[Action] = []
        self._state = new
        self._counters.bump("transitions")
        self._takeover_pending = False
        if new is State.MASTER:
            self._epoch += 1
            self._counters.bump("become_master")
        self._last_transition = (old, new, reason, now)
        actions.append(
            StateChanged(old, new, reason, self.effective_priority, self._epoch, trigger=trigger.value)
        )
        if old is State.MASTER:
            actions += self._exit_master(trigger)
        if new is State.MASTER:
            actions += self._enter_master(now)
        elif new is State.BACKUP:
            self._enter_backup(old, now)
        else:  # INIT / FAULT: no timers at all
            self._master_down_at = None
            self._preempt_window_until = None
        return actions

    def _exit_master(self, trigger: Trigger) -> list[Action]:
        """Leaving MASTER: prio-0 advert on Shutdown (SM-09) and FAULT (SM-16), drop VIPs."""
        self._counters.bump("release_master")
        self._adver_at = self._garp_delayed_at = self._garp_refresh_at = None
        actions: list[Action] = []
        if trigger in (Trigger.SHUTDOWN, Trigger.FAULT):
            actions.append(self._advert(PRIORITY_RELEASE))
        if self._vips_held:
            actions.append(RemoveVips(self._vips_held))
            self._vips_held = ()
        return actions

    def _enter_master(self, now: float) -> list[Action]:
        """RFC 5798 §6.4.1 / §6.4.2 (SM-01, SM-05): advert, AddVips, GARP, timers.

        The RFC's order: "Send an ADVERTISEMENT", then the gratuitous ARPs.  Adding the
        addresses is ours to place: after the advert (the peers learn of us ~0.3 ms sooner,
        a netlink round trip) and before the GARPs that draw traffic to them.
        """
        cfg = self._config
        self._master_down_at = None
        self._preempt_window_until = None
        self._master_ip = cfg.primary_address
        self._master_priority = self.effective_priority
        self._master_adver_interval_cs = cfg.advert_interval_cs
        actions: list[Action] = [self._advert(self.effective_priority)]
        if cfg.vips:
            self._vips_held = cfg.vips
            actions.append(AddVips(cfg.vips))
        actions += self._announce(cfg.garp_master_repeat, "master")
        self._adver_at = now + self._interval_s()
        self._garp_delayed_at = (
            now + cfg.garp_master_delay_s if cfg.garp_master_delay_s > 0 and cfg.garp_master_repeat else None
        )
        self._garp_refresh_at = now + cfg.garp_master_refresh_s if cfg.garp_master_refresh_s > 0 else None
        self._garp_lower_prio_at = -math.inf
        self._conflict_deferred = None
        return actions

    def _enter_backup(self, old: State, now: float) -> None:
        """RFC 5798 §6.4.1 (SM-02, TMR-06) / §6.4.3 (SM-12): arm Master_Down_Timer."""
        if self._master_ip is not None and _same_address(self._master_ip, self._config.primary_address):
            self._master_ip = None  # we yielded without hearing a winner (conflict)
            self._master_priority = None
        if old is not State.MASTER:
            # from INIT/FAULT: Master_Adver_Interval := Advertisement_Interval
            self._master_adver_interval_cs = self._config.advert_interval_cs
            self._master_ip = None
            self._master_priority = None
            self._preempt_window_until = (
                now + self._config.preempt_delay_s if self._config.preempt_delay_s > 0 else None
            )
        self._master_down_at = now + self._master_down_interval_s()

    # ------------------------------------------------------------- reconfigure

    def reconfigure(self, config: RouterConfig, *, now: float) -> list[Action]:
        """Apply a reloaded config without a flap where possible (SIGHUP).

        A different VRID, version or family is a different router: it is shut
        down and started again.  Otherwise state, timers and held VIPs are kept;
        a MASTER adds/removes only the VIP difference and announces the added
        ones; a new advert interval re-arms the Adver_Timer no later than
        ``now + new interval``; a new priority takes effect in the next advert
        and timer reset.
        """
        self._fast = None
        old = self._config
        if (config.vrid, config.version, config.family) != (old.vrid, old.version, old.family):
            restart = self.handle(Shutdown(), now=now)
            self._config = config
            self._master_adver_interval_cs = config.advert_interval_cs
            return restart + self.handle(Startup(), now=now)
        self._config = config
        self._counters.bump("reconfigured")
        actions: list[Action] = []
        if self._state is State.MASTER:
            held = set(self._vips_held)
            added = tuple(v for v in config.vips if v not in held)
            wanted = set(config.vips)
            removed = tuple(v for v in self._vips_held if v not in wanted)
            self._vips_held = config.vips
            if removed:
                actions.append(RemoveVips(removed))
            if added:
                actions.append(AddVips(added))
                if config.garp_master_repeat > 0:
                    self._counters.bump("garp_bursts")
                    self._counters.bump("garp_bursts_reconfigure")
                    actions.append(
                        AnnounceVips(added, repeat=config.garp_master_repeat, reason="reconfigure")
                    )
            if config.advert_interval_cs != old.advert_interval_cs or config.priority != old.priority:
                actions.append(self._advert(self.effective_priority))
                self._adver_at = now + self._interval_s()
            self._master_priority = self.effective_priority
            self._master_adver_interval_cs = config.advert_interval_cs
            if config.garp_master_refresh_s <= 0:
                self._garp_refresh_at = None
            elif self._garp_refresh_at is None:
                self._garp_refresh_at = now + config.garp_master_refresh_s
        elif self._state is State.BACKUP:
            if config.version == 2:
                self._master_adver_interval_cs = config.advert_interval_cs
            if self._takeover_pending and not config.takeover_gate:
                # the gate was removed while we were asking: take over at the next timer call
                self._takeover_pending = False
                self._master_down_at = now
        return actions

    # ---------------------------------------------------------------- snapshot

    def snapshot(self, *, now: float) -> RouterSnapshot:
        """Everything ``pyvrrp state`` shows (times are monotonic seconds)."""
        cfg = self._config
        return RouterSnapshot(
            name=cfg.name,
            vrid=cfg.vrid,
            version=cfg.version,
            family=cfg.family,
            state=self._state,
            base_priority=cfg.priority,
            effective_priority=self.effective_priority,
            vips=cfg.vips,
            vips_held=bool(self._vips_held),
            master_ip=self._master_ip,
            master_priority=self._master_priority,
            last_advert_rx_at=self._last_rx_at,
            advert_interval_s=self._interval_s(),
            master_adver_interval_s=self._master_adver_interval_cs / _CS_PER_S,
            skew_time_s=self._skew_s(),
            master_down_interval_s=self._master_down_interval_s(),
            next_deadline=self.next_deadline(),
            last_transition=self._last_transition,
            epoch=self._epoch,
            faults=self.faults,
            counters=dict(self._counters.values),
            drops=dict(self._drops.values),
            takeover_pending=self._takeover_pending,
        )
