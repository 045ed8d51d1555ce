"""Inputs to and actions from the per-router engine (pure data).

Theory: the runtime turns the world into *inputs* (a decoded advert arrived,
the link went down, a tracker changed, the daemon is stopping) and feeds them
to :class:`pyvrrp.proto.router.VirtualRouter` together with ``now``
(monotonic seconds).  The engine answers with an ordered list of *actions*
that the runtime's executor performs in order.  Timers are not inputs the
runtime invents: the engine exposes ``next_deadline()`` and the runtime calls
``handle_timer(now=...)`` when it is reached.

All classes are frozen, slotted dataclasses; don't subclass them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from pyvrrp.proto.packet import Advertisement

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


class State(enum.Enum):
    """RFC 5798 §6.4 states plus keepalived's FAULT (SM-16)."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


# --------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Startup:
    """RFC 5798 §6.4.1 Startup event."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """RFC 5798 §6.4.2/§6.4.3 Shutdown event (daemon stop, instance removed)."""


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A packet that decoded into an Advertisement (shape already checked).

    ``ttl`` is the received IPv4 TTL / IPv6 hop limit (None when unknown);
    ``src`` the IP source address; ``dst`` the IP destination address.
    """

    advert: Advertisement
    src: IPAddress
    ttl: int | None = 255
    dst: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The VRRP interface's carrier/admin state changed."""

    up: bool


@dataclass(frozen=True, slots=True)
class TrackerChanged:
    """A tracker's contribution changed (recomputed from scratch by the engine).

    ``delta`` is added to the base priority (0 when healthy or unweighted),
    ``fault`` forces FAULT while true.  Trackers are keyed by ``name``;
    a later update for the same name replaces the earlier one.
    """

    name: str
    delta: int = 0
    fault: bool = False


@dataclass(frozen=True, slots=True)
class TakeoverVerdict:
    """The takeover gate's answer to a :class:`TakeoverPending` (issue #4).

    ``allow`` True: become MASTER now.  False: stay BACKUP and re-arm the
    Master_Down_Timer (retry).  Ignored when no takeover is pending.
    """

    allow: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConflictDetected:
    """Another node answers for our VIPs while we are MASTER (issue #4).

    MACs are the 6-byte hardware addresses; with ``conflict_resolve`` the
    numerically lower MAC yields.
    """

    our_mac: bytes
    peer_mac: bytes


@dataclass(frozen=True, slots=True)
class SyncCommand:
    """A ``vrrp_sync_group`` coordinator moves this member with the group (keepalived).

    ``target`` MASTER: a BACKUP member becomes MASTER at once (another member
    took over; keepalived ``vrrp_sync_master``), whatever it hears on its own
    link.  ``target`` BACKUP: a MASTER member leaves MASTER without a
    priority-0 advert, removes its VIPs and re-arms Master_Down_Timer (another
    member was preempted; keepalived ``vrrp_sync_backup``).  In any other
    state the command is ignored and counted (``sync_ignored``).  Group FAULT
    is not a command: the coordinator sets the tracker ``sync:<group>``
    (:class:`TrackerChanged` with ``fault=True``).  See
    :class:`pyvrrp.proto.syncgroup.SyncGroup`.
    """

    target: State
    reason: str = ""

    def __post_init__(self) -> None:
        if self.target not in (State.MASTER, State.BACKUP):
            raise ValueError(f"SyncCommand target must be MASTER or BACKUP, got {self.target.name}")


# -------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send this advert (to the multicast group, or to every unicast peer)."""

    advert: Advertisement


@dataclass(frozen=True, slots=True)
class AddVips:
    vips: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True)
class RemoveVips:
    vips: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True)
class AnnounceVips:
    """Gratuitous ARP (IPv4) / unsolicited NA (IPv6) for each VIP, ``repeat`` times."""

    vips: tuple[IPInterface, ...]
    repeat: int
    reason: str = "master"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The engine moved between states.  The runtime logs it and runs notify scripts.

    ``trigger`` is the :class:`pyvrrp.proto.states.Trigger` value that caused
    it (``"master_down"``, ``"sync_master"``, ...; empty when built by hand).
    It is informative and left out of equality.
    """

    old: State
    new: State
    reason: str
    priority: int
    epoch: int = 0
    trigger: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class TakeoverPending:
    """Master_Down fired but ``takeover_gate`` is on: ask before becoming MASTER.

    ``epoch`` is the epoch we would take as MASTER.  Answer with
    :class:`TakeoverVerdict`; a valid master's advert cancels the request.
    """

    epoch: int
    reason: str


Action = SendAdvert | AddVips | RemoveVips | AnnounceVips | StateChanged | TakeoverPending
Input = (
    Startup
    | Shutdown
    | AdvertReceived
    | LinkChanged
    | TrackerChanged
    | TakeoverVerdict
    | ConflictDetected
    | SyncCommand
)


# ------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class RouterSnapshot:
    """Everything ``pyvrrp state`` shows about one router; times are monotonic seconds."""

    name: str
    vrid: int
    version: int
    family: int
    state: State
    base_priority: int
    effective_priority: int
    vips: tuple[IPInterface, ...]
    vips_held: bool
    master_ip: IPAddress | None
    master_priority: int | None
    last_advert_rx_at: float | None
    advert_interval_s: float
    master_adver_interval_s: float
    skew_time_s: float
    master_down_interval_s: float
    next_deadline: float | None
    last_transition: tuple[State, State, str, float] | None
    epoch: int
    faults: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    takeover_pending: bool = False
