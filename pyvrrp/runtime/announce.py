"""BGP announcements in the daemon: facts in, :func:`pyvrrp.bgp.decide.decide`, speakers out.

Theory of operation
-------------------
Every ``announce`` table (on a vrrp_instance or a virtual_server) is an :class:`Entry`.
:meth:`Announcements.evaluate` reads the facts the daemon already has (the followed
instance's VRRP state and gateway check, the virtual server's healthy real servers), asks
the pure :func:`~pyvrrp.bgp.decide.decide` what to do, and tells the speaker
(:class:`~pyvrrp.bgp.speaker.ExabgpSpeaker`) only what changed.  It runs on every VRRP state
change and every :data:`EVAL_S` (health results and gateway changes have no callback here).

Stopping (SIGTERM): :meth:`withdraw_all` marks everything stopping, waits until the speaker
acknowledged the withdrawals (at most :data:`ACK_WAIT_S`), then *drains*
(:mod:`pyvrrp.adapters.drain`): new TCP connections to the announced addresses are dropped
(the client retransmits its SYN a second later, to the VIP's next holder) while the open
ones finish; it waits at least :data:`ROUTER_SETTLE_S` (the router follows a withdraw in
tens of ms) and until no connection is open, at most ``withdraw_drain`` seconds.  Only then
does the daemon release the VIPs, and :meth:`released` removes the drop rule (so does
:meth:`start`, for a rule a daemon killed mid-drain left behind).  The ``done``
ack alone proves nothing about the router; and the router moving is not enough either:
the backup forwards to the VIP holder, so connections kept arriving here until the VIP
moved, and one still open at that moment was cut.

Speaker lost (``on_speaker_lost = "fault"``): the followed instance gets a ``bgp_speaker``
fault, so its VRRP backup, whose own speaker still announces, takes the VIP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from pyvrrp.adapters.drain import DRAIN_TABLE, open_connections, syn_drop_ruleset
from pyvrrp.adapters.firewall import removal
from pyvrrp.base import clock
from pyvrrp.bgp.bird import BirdSpeaker
from pyvrrp.bgp.decide import Decision, Facts, Policy, decide
from pyvrrp.bgp.speaker import ExabgpSpeaker, Route

if TYPE_CHECKING:
    from pyvrrp.config.announce import Announce
    from pyvrrp.config.models import Config

__all__ = ["Announcements", "Entry", "entries_from_config"]

log = structlog.get_logger("pyvrrp.announce")

EVAL_S = 0.1
ACK_WAIT_S = 2.0
ROUTER_SETTLE_S = 0.3
"""Stopping: the least time between the withdraw's ack and the release (the router's move)."""
SPEAKER_GRACE_S = 10.0
"""After start, how long a speaker may take to connect before it counts as lost."""


@dataclass(frozen=True)
class Entry:
    """One ``announce`` table, resolved."""

    source: str  # "vrrp_instance.VI_51" / "virtual_server.198.51.100.10:80"
    spec: Announce
    prefixes: tuple[str, ...]
    instance: str | None  # the vrrp_instance it follows
    virtual_server: str | None
    advert_int_s: float | None

    @property
    def policy(self) -> Policy:
        s = self.spec
        return Policy(s.mode, s.med_preferred, s.med_backup, s.quorum, s.primary)

    @property
    def orphan_hold_s(self) -> float:
        if self.spec.orphan_hold is not None:
            return float(self.spec.orphan_hold)
        if self.spec.mode == "active-backup" and self.advert_int_s is not None:
            return 4 * self.advert_int_s + 1.0
        return 0.0


def _host(addr: Any) -> str:
    ip = ipaddress.ip_address(addr)
    return f"{ip}/{ip.max_prefixlen}"


def entries_from_config(config: Config) -> list[Entry]:
    out = []
    for name, inst in config.vrrp_instance.items():
        if inst.announce is None:
            continue
        prefixes = tuple(str(p) for p in inst.announce.prefixes) or tuple(_host(v.ip) for v in inst.vips)
        out.append(Entry(f"vrrp_instance.{name}", inst.announce, prefixes, name, None, inst.advert_int))
    for key, vs in config.virtual_server.items():
        a = vs.announce
        if a is None:
            continue
        if a.prefixes:
            prefixes = tuple(str(p) for p in a.prefixes)
        else:
            from pyvrrp.config.lvs import parse_vs_key

            prefixes = (_host(parse_vs_key(key).address),)
        follow = a.vrrp_instance
        adv = config.vrrp_instance[follow].advert_int if follow in config.vrrp_instance else None
        out.append(Entry(f"virtual_server.{key}", a, prefixes, follow, key, adv))
    return out


@dataclass
class _Now:
    decision: Decision
    since: float


class Announcements:
    """The daemon's announcements (see the module docstring)."""

    def __init__(
        self,
        entries: list[Entry],
        *,
        role: Callable[[str], str | None],
        isolated: Callable[[str], bool],
        health: Callable[[str], tuple[int, int] | None],
        on_speaker_lost: Callable[[str, bool], None],
        nft: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.entries = entries
        self._role, self._isolated, self._health = role, isolated, health
        self._on_speaker_lost = on_speaker_lost
        self.speakers: dict[str, ExabgpSpeaker | BirdSpeaker] = {}
        self._add_speakers(entries)
        self.stopping = False
        self.started_at = clock.monotonic()
        self._now: dict[tuple[str, str], _Now] = {}
        self._lost: dict[str, bool] = {}  # per entry (source): its instance faulted
        self._speaker_lost: dict[str, bool] = {}  # per speaker: lost, as last logged
        self._task: asyncio.Task[None] | None = None
        self._dropping = False
        self._run_nft = nft if nft is not None else self._nft_command

    def _add_speakers(self, entries: list[Entry]) -> list[ExabgpSpeaker | BirdSpeaker]:
        added: list[ExabgpSpeaker | BirdSpeaker] = []
        for e in entries:
            if e.spec.speaker in self.speakers:
                continue
            sp: ExabgpSpeaker | BirdSpeaker
            if e.spec.speaker == "exabgp":
                sp = ExabgpSpeaker()
            else:
                sp = BirdSpeaker(table=e.spec.kernel_table, socket=e.spec.bird_socket, bfd=e.spec.bfd)
            self.speakers[e.spec.speaker] = sp
            added.append(sp)
        return added

    async def _open(self, speakers: list[ExabgpSpeaker | BirdSpeaker]) -> None:
        for sp in speakers:
            if isinstance(sp, BirdSpeaker):
                try:
                    await sp.open()
                except OSError as exc:
                    sp.last_error = f"cannot create the {sp.device} tun device: {exc}"
                    log.error("bgp_speaker_failed", speaker=sp.name, error=sp.last_error)
                await sp.refresh()

    async def reconfigure(self, entries: list[Entry]) -> None:
        """A reload: withdraw what left the config, start new speakers, decide again."""
        wanted = {p for e in entries for p in e.prefixes}
        for e in self.entries:
            for prefix in e.prefixes:
                self._now.pop((e.source, prefix), None)
                if prefix not in wanted:
                    self.speakers[e.spec.speaker].withdraw(prefix)
                    log.info("bgp_withdraw", prefix=prefix, source=e.source, why="removed from the config")
        self.entries = entries
        await self._open(self._add_speakers(entries))
        self._lost = {k: v for k, v in self._lost.items() if any(e.source == k for e in entries)}
        self.evaluate()

    @property
    def exabgp(self) -> ExabgpSpeaker | None:
        sp = self.speakers.get("exabgp")
        return sp if isinstance(sp, ExabgpSpeaker) else None

    def facts(self, e: Entry) -> Facts:
        role = self._role(e.instance) if e.instance is not None else None
        healthy = total = None
        if e.virtual_server is not None:
            counts = self._health(e.virtual_server)
            if counts is not None:
                healthy, total = counts
        isolated = self._isolated(e.instance) if e.instance is not None else False
        return Facts(
            role=role,  # type: ignore[arg-type]
            instance=e.instance,
            healthy=healthy,
            total=total,
            isolated=isolated,
            stopping=self.stopping,
        )

    def evaluate(self) -> None:
        now = clock.monotonic()
        for e in self.entries:
            d = decide(e.policy, self.facts(e))
            speaker = self.speakers[e.spec.speaker]
            for prefix in e.prefixes:
                old = self._now.get((e.source, prefix))
                if old is not None and old.decision == d:
                    continue
                self._now[(e.source, prefix)] = _Now(d, now)
                if d.announce:
                    nh = str(e.spec.next_hop)
                    path: tuple[int, ...] = ()
                    if e.spec.prepend and e.spec.local_as is not None and not d.preferred:
                        path = (e.spec.local_as,) * (1 + e.spec.prepend)
                    speaker.announce(Route(prefix, d.med, nh, e.orphan_hold_s, path))
                else:
                    speaker.withdraw(prefix)
                if old is None or old.decision.announce != d.announce or old.decision.med != d.med:
                    what = "announce" if d.announce else "withdraw"
                    log.info(f"bgp_{what}", prefix=prefix, source=e.source, med=d.med, why=d.why)
        self._check_speakers(now)

    def _check_speakers(self, now: float) -> None:
        """Log a speaker lost / back once; fault the followed instances that ask for it."""
        for name, sp in self.speakers.items():
            lost = not sp.connected() and (sp.ever_connected or now - self.started_at > SPEAKER_GRACE_S)
            if lost != self._speaker_lost.get(name, False):
                self._speaker_lost[name] = lost
                session = sp.session()
                log.warning(
                    "bgp_speaker_lost" if lost else "bgp_speaker_back",
                    speaker=name,
                    process=session["process"],
                    policy=sorted({e.spec.on_speaker_lost for e in self.entries if e.spec.speaker == name}),
                )
        for e in self.entries:
            if e.spec.on_speaker_lost != "fault" or e.instance is None:
                continue
            lost = self._speaker_lost.get(e.spec.speaker, False)
            if lost != self._lost.get(e.source, False):
                self._lost[e.source] = lost
                self._on_speaker_lost(e.instance, lost)

    def poke(self) -> None:
        """A VRRP state changed: decide now, not at the next tick."""
        self.evaluate()

    async def _loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(EVAL_S)
            ticks += 1
            try:
                if ticks % round(1 / EVAL_S) == 0:
                    for sp in self.speakers.values():
                        if isinstance(sp, BirdSpeaker):
                            await sp.refresh()
                self.evaluate()
            except Exception:
                log.exception("bgp_evaluate_failed")

    async def start(self) -> None:
        if self._run_nft != self._nft_command or shutil.which("nft"):
            # a daemon killed in the middle of a drain left its drop rule: new connections to
            # the VIPs would be dropped for ever once this node is MASTER again
            await self._run_nft(removal(DRAIN_TABLE))
        await self._open(list(self.speakers.values()))
        self.evaluate()
        self._task = asyncio.ensure_future(self._loop())

    def any_announced(self) -> bool:
        return any(n.decision.announce for n in self._now.values())

    async def withdraw_all(self) -> float:
        """Stopping: withdraw everything, wait for the ack and the drain.  Returns seconds spent."""
        t0 = clock.monotonic()
        had = self.any_announced()
        self.stopping = True
        self.evaluate()
        if self._task is not None:
            self._task.cancel()
        if not had:
            return 0.0
        deadline = t0 + ACK_WAIT_S  # the withdraw's ack (ExaBGP's done; BIRD: the kernel route gone)
        while clock.monotonic() < deadline:
            if all(sp.up_to_date() or not sp.connected() for sp in self.speakers.values()):
                break
            await asyncio.sleep(0.01)
        acked = clock.monotonic() - t0
        drain = max((float(e.spec.withdraw_drain) for e in self.entries), default=0.0)
        t_ack = clock.monotonic()
        addresses = self._drain_addresses()
        dropping = bool(addresses) and drain > 0 and await self._nft(syn_drop_ruleset(addresses))
        self._dropping = self._dropping or dropping
        left = None
        while True:
            now = clock.monotonic()
            if now - t_ack >= drain:
                break
            if dropping:
                left = open_connections(addresses)
                if left == 0 and now - t_ack >= min(ROUTER_SETTLE_S, drain):
                    break
            await asyncio.sleep(0.02)
        log.info(
            "bgp_withdrawn_before_release",
            acked_after_s=round(acked, 3),
            drain_s=drain,
            drained_after_s=round(clock.monotonic() - t_ack, 3),
            new_connections_dropped=dropping,
            open_connections=left,
        )
        return clock.monotonic() - t0

    def _drain_addresses(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        """The host prefixes announced (the VIPs): what new connections are dropped to."""
        out = []
        for e in self.entries:
            for prefix in e.prefixes:
                net = ipaddress.ip_network(prefix)
                if net.num_addresses == 1:
                    out.append(net.network_address)
        return out

    async def _nft(self, script: str) -> bool:
        return await self._run_nft(script)

    async def _nft_command(self, script: str) -> bool:
        from pyvrrp.adapters.firewall import FirewallError, Nft

        try:
            await asyncio.to_thread(Nft()._run, script)
        except (FirewallError, OSError) as exc:
            log.warning("bgp_drain_firewall_failed", error=str(exc), then="draining by time only")
            return False
        return True

    async def released(self) -> None:
        """The VIPs are gone: remove the drain's drop rule (and one a crashed daemon left)."""
        if self._dropping:
            self._dropping = False
            await self._nft(removal(DRAIN_TABLE))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sp in self.speakers.values():
            if isinstance(sp, BirdSpeaker):
                sp.close()

    def view(self) -> list[dict[str, Any]]:
        """``pyvrrp state``: per prefix, announced or not, why, attributes, speaker session."""
        now = clock.monotonic()
        out = []
        for e in self.entries:
            sp = self.speakers[e.spec.speaker]
            for prefix in e.prefixes:
                cur = self._now.get((e.source, prefix))
                d = cur.decision if cur is not None else None
                out.append(
                    {
                        "prefix": prefix,
                        "source": e.source,
                        "mode": e.spec.mode,
                        "announced": bool(d and d.announce),
                        "why": d.why if d else "not evaluated yet",
                        "med": d.med if d else None,
                        "next_hop": str(e.spec.next_hop),
                        "since_s": round(now - cur.since, 3) if cur else None,
                        "orphan_hold_s": e.orphan_hold_s,
                        "speaker": sp.session(),
                        "acknowledged": sp.up_to_date(),
                    }
                )
        return out
