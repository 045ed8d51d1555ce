"""The executor: performs an engine's actions, one handler per action class.

Theory: the engine answers every input with an ordered list of actions
(:mod:`pyvrrp.proto.events`).  The executor performs them in that order and
nothing else decides here.  The order matters on the hot path of a takeover:
``SendAdvert`` (the old master and the other backups learn at once) ->
``AddVips`` (synchronous netlink: the address exists before...) ->
``AnnounceVips`` (...the gratuitous ARP / unsolicited NA that moves the
clients).  Bookkeeping that can wait (the ``state_changed`` log line, the
epoch file's fsync, IPVS and notify scripts) is deferred with ``call_soon`` so
it runs after this feed's packets have left.

A mass failover (issue 15 item 3) is one sweep: between :meth:`Executor.begin_sweep`
and :meth:`Executor.end_sweep` (the supervisor brackets the deadlines that fire
together) the adverts still go out at once, but the VIP additions are kept and made
in one netlink batch at the end, then the GARPs in one burst per interface; the logs
and notify scripts were deferred already and run after that.

A failure here is an input, never an exception: a VIP that cannot be added
becomes a fault of the instance (a MASTER that cannot hold its VIPs must not
keep advertising), fed back through the supervisor's inbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from pyvrrp.adapters.arp import Announcer
from pyvrrp.adapters.notify import NotifyEvent, NotifyRunner, NotifyScripts, event_from_state_change
from pyvrrp.adapters.notify_fifo import NotifyFifos
from pyvrrp.config.models import VrrpInstance, VrrpSyncGroup
from pyvrrp.proto import events as ev
from pyvrrp.proto.router import advert_datagrams
from pyvrrp.runtime import routes
from pyvrrp.runtime.instance import Extras, Instance

if TYPE_CHECKING:
    from pyvrrp.runtime.held import HeldState
    from pyvrrp.splitbrain.epoch import EpochStore

__all__ = ["VIP_FAULT_RETRY_S", "AddressTable", "Executor", "notify_scripts"]

log = structlog.get_logger("pyvrrp")

VIP_FAULT_RETRY_S = 5.0
"""A VIP that could not be added keeps the instance in FAULT this long, then it retries."""

Feed = Callable[[Instance, ev.Input], None]


class AddressTable(Protocol):
    """Where VIPs are added and removed (``pyvrrp.adapters.netlink``; a fake in tests)."""

    def add(
        self,
        ifname: str,
        address: ev.IPInterface,
        *,
        label: str | None = None,
        scope: str | None = None,
        brd: Any = None,
    ) -> bool:
        """Add ``address``; False if it was already there."""
        ...

    def remove(self, ifname: str, address: ev.IPInterface) -> bool:
        """Remove ``address``; False if it was not there."""
        ...


def _by_dev(inst: Instance, vips: Iterable[ev.IPInterface]) -> dict[str, list[ev.IPInterface]]:
    """``vips`` grouped by the interface each is on; loopback is left out (no ARP there)."""
    out: dict[str, list[ev.IPInterface]] = {}
    for vip in vips:
        dev = inst.vip_dev(vip)
        if dev != "lo":
            out.setdefault(dev, []).append(vip)
    return out


def _group(pairs: Iterable[tuple[str, ev.IPInterface]]) -> dict[str, list[ev.IPInterface]]:
    out: dict[str, list[ev.IPInterface]] = {}
    for dev, vip in pairs:
        if dev != "lo":
            out.setdefault(dev, []).append(vip)
    return out


def notify_scripts(spec: VrrpInstance | VrrpSyncGroup) -> NotifyScripts:
    """The notify scripts configured on an instance or a sync group."""
    return NotifyScripts(
        notify=spec.notify,
        notify_master=spec.notify_master,
        notify_backup=spec.notify_backup,
        notify_fault=spec.notify_fault,
        notify_stop=spec.notify_stop,
    )


def fifo_state_word(new: ev.State, reason: str) -> str | None:
    """keepalived's FIFO word for entering ``new``: MASTER/BACKUP/FAULT, STOP at shutdown.

    The engine's INIT at shutdown is keepalived's STOP; any other INIT (none in a running
    daemon) has no keepalived line.
    """
    if new is ev.State.INIT:
        return "STOP" if reason == "shutdown" else None
    return str(new.value)


class Executor:
    """Performs actions for every instance (handlers registered once, by action class)."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        netlink: AddressTable,
        announcer: Announcer,
        notifier: NotifyRunner,
        epochs: EpochStore | None,
        feed: Feed,
        on_takeover_pending: Callable[[Instance, ev.TakeoverPending], None],
        on_state_changed: Callable[[Instance, ev.StateChanged], None],
        held: HeldState | None = None,
    ) -> None:
        self.loop = loop
        self.netlink = netlink
        self.announcer = announcer
        self.notifier = notifier
        self.epochs = epochs
        self._feed = feed
        self._on_takeover_pending = on_takeover_pending
        self._on_state_changed = on_state_changed
        self.held = held
        self.fifos: NotifyFifos | None = None  # the daemon sets it when a notify FIFO is configured
        self._held_dirty = False
        self._sweep_adds: list[tuple[Instance, ev.AddVips]] | None = None
        self._sweep_announces: list[tuple[Instance, ev.AnnounceVips]] = []
        self._epochs_due: list[tuple[str, int]] = []
        self._epoch_writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._owned: dict[
            str, tuple[tuple[tuple[str, ev.IPInterface], ...], frozenset[str], frozenset[str]]
        ] = {}
        self.witness_stale: Callable[[Instance], bool] | None = None
        """Set by the daemon with a witness: True (and the VIPs are being given up) when a
        witnessed MASTER's lease deadline has passed."""
        # one handler per action class; each takes exactly its own class
        self._handlers: dict[type[ev.Action], Callable[[Instance, Any], None]] = {
            ev.SendAdvert: self._send,
            ev.AddVips: self._add_vips,
            ev.RemoveVips: self._remove_vips,
            ev.AnnounceVips: self._announce,
            ev.StateChanged: self._state_changed,
            ev.TakeoverPending: self._takeover_pending,
        }

    def execute(self, inst: Instance, action: ev.Action) -> None:
        handler = self._handlers.get(type(action))
        if handler is None:
            inst.log.error("unknown_action", action=type(action).__name__, note="this is a bug")
            return
        handler(inst, action)

    # ----------------------------------------------------------- hot path

    def _send(self, inst: Instance, action: ev.SendAdvert) -> None:
        config = inst.router.config
        if inst.sock is None:  # waiting for its interface (FAULT): nothing to send on
            return
        # A process resumed after a freeze may find its advert timer due before the witness
        # deadline timer: never advertise as master on a lease past its deadline.
        stale = self.witness_stale
        if inst.witness_key is not None and action.advert.priority and stale is not None and stale(inst):
            return
        datagrams = advert_datagrams(config, action.advert)
        if inst.ah is not None:  # keepalived's auth_type AH: whole IPv4 datagrams (proto/ah.py)
            src4 = config.primary_address
            assert isinstance(src4, IPv4Address)
            for dst4, datagram in inst.ah.seal(datagrams, src=src4):  # type: ignore[arg-type]
                inst.sock.send_datagram(datagram, dst4)
            return
        for dst, payload in datagrams:
            try:
                inst.sock.send(payload, dst, src=config.primary_address)
            except OSError as exc:
                inst.log.warning("advert_send_failed", dst=str(dst), error=str(exc))

    # ------------------------------------------------------------ sweeps

    def begin_sweep(self) -> None:
        """From now on keep VIP additions and GARPs for :meth:`end_sweep` (nested: no-op)."""
        if self._sweep_adds is None:
            self._sweep_adds = []

    def end_sweep(self) -> None:
        """All kept VIPs in one netlink batch, then one GARP burst per interface."""
        adds, self._sweep_adds = self._sweep_adds, None
        announces, self._sweep_announces = self._sweep_announces, []
        if adds:
            self._add_batch(adds)
        bursts: dict[tuple[str, int], list[ev.IPInterface]] = {}
        for inst, action in announces:
            if inst.router.state is ev.State.MASTER:  # still holding them (a VIP add may have failed)
                for dev, vips in _by_dev(inst, action.vips).items():
                    bursts.setdefault((dev, action.repeat), []).extend(vips)
        for (ifname, repeat), vips in bursts.items():
            try:
                self.announcer.announce(ifname, vips, repeat=repeat)
            except OSError as exc:
                log.warning("announce_failed", iface=ifname, error=str(exc))
        for inst, action in announces:
            shown = [str(v) for v in action.vips]
            inst.log.debug("vips_announced", vips=shown, repeat=action.repeat, reason=action.reason)

    def _add_batch(self, adds: list[tuple[Instance, ev.AddVips]]) -> None:
        add_many = getattr(self.netlink, "add_many", None)
        if add_many is None:  # an address table without batches: one by one
            for inst, action in adds:
                self._add_vips_now(inst, action)
            return
        items = []
        for inst, action in adds:
            for vip in action.vips:
                inst.removing_vips.discard(str(vip))
                dev, label, scope, brd = inst.vip_opts(vip)
                items.append(
                    (dev, vip, label) if scope is None and brd is None else (dev, vip, label, scope, brd)
                )
        try:
            results: list[bool | OSError] = add_many(items)
        except Exception as exc:  # the batch as a whole failed (a timeout): every VIP failed
            results = [OSError(str(exc))] * len(items)
        it = iter(results)
        for inst, action in adds:
            failed = []
            for vip in action.vips:
                result = next(it)
                if isinstance(result, Exception):
                    failed.append(str(vip))
                    inst.log.error("vip_add_failed", vip=str(vip), error=str(result))
                    continue
                if result:
                    self.loop.call_soon(functools.partial(inst.log.info, "vip_added", vip=str(vip)))
                dev = inst.vip_dev(vip)
                inst.placed[str(vip)] = dev
                self._hold(dev, vip, True)
            if failed:
                self._vip_fault(inst)

    def _vip_fault(self, inst: Instance) -> None:
        self._feed(inst, ev.TrackerChanged(name="vip_add_failed", fault=True))
        self.loop.call_later(
            VIP_FAULT_RETRY_S, self._feed, inst, ev.TrackerChanged(name="vip_add_failed", fault=False)
        )

    # ----------------------------------------------------------- hot path (2)

    def _add_vips(self, inst: Instance, action: ev.AddVips) -> None:
        if self._sweep_adds is not None:
            self._sweep_adds.append((inst, action))
            return
        self._add_vips_now(inst, action)

    def _add_vips_now(self, inst: Instance, action: ev.AddVips) -> None:
        failed = []
        for vip in action.vips:
            inst.removing_vips.discard(str(vip))
            dev, label, scope, brd = inst.vip_opts(vip)
            try:
                if self.netlink.add(dev, vip, label=label, scope=scope, brd=brd):
                    # the GARPs come next on the hot path: log once they are out
                    self.loop.call_soon(functools.partial(inst.log.info, "vip_added", vip=str(vip)))
                inst.placed[str(vip)] = dev
                self._hold(dev, vip, True)
            except Exception as exc:  # netlink errors are reported, never fatal
                failed.append(str(vip))
                inst.log.error("vip_add_failed", vip=str(vip), error=str(exc))
        if failed:
            self._vip_fault(inst)

    def _remove_vips(self, inst: Instance, action: ev.RemoveVips) -> None:
        if self._sweep_adds:  # an add kept for the sweep's batch must not land after this removal
            kept = self._sweep_adds
            self._sweep_adds = []
            self._add_batch(kept)
        self.remove_vips(inst, action.vips)

    def remove_vips(self, inst: Instance, vips: Iterable[ev.IPInterface], *, stale: bool = False) -> None:
        """Remove ``vips`` from their interfaces (``stale``: left by an earlier run)."""
        for vip in vips:
            inst.removing_vips.add(str(vip))
            dev = inst.placed.get(str(vip)) or inst.vip_dev(vip)
            try:
                removed = self.netlink.remove(dev, vip)
            except Exception as exc:
                inst.log.error("vip_remove_failed", vip=str(vip), error=str(exc))
                continue
            inst.placed.pop(str(vip), None)
            self._hold(dev, vip, False)
            if stale and removed:
                inst.log.warning("stale_vip_removed", vip=str(vip), note="left behind by an earlier run")
            elif removed:
                inst.log.info("vip_removed", vip=str(vip))

    def _hold(self, ifname: str, vip: ev.IPInterface, held: bool) -> None:
        """Keep the held-state record (:mod:`pyvrrp.runtime.held`) in step; written after the GARPs."""
        if self.held is None:
            return
        entry = (ifname, str(vip))
        if (entry in self.held.vips) == held:
            return
        (self.held.vips.add if held else self.held.vips.discard)(entry)
        if not self._held_dirty:
            self._held_dirty = True
            self.loop.call_soon(self.flush_held)

    def flush_held(self) -> None:
        self._held_dirty = False
        if self.held is None:
            return
        try:
            self.held.save()
        except OSError as exc:
            log.warning("held_state_not_written", path=str(self.held.path), error=str(exc))

    def _announce(self, inst: Instance, action: ev.AnnounceVips) -> None:
        if self._sweep_adds is not None:
            self._sweep_announces.append((inst, action))
            return
        for dev, vips in _by_dev(inst, action.vips).items():
            try:
                self.announcer.announce(dev, vips, repeat=action.repeat)
            except OSError as exc:
                inst.log.warning("announce_failed", iface=dev, error=str(exc))
        inst.log.debug(
            "vips_announced", vips=[str(v) for v in action.vips], repeat=action.repeat, reason=action.reason
        )

    def _takeover_pending(self, inst: Instance, action: ev.TakeoverPending) -> None:
        self._on_takeover_pending(inst, action)

    # --------------------------------------------------------- bookkeeping

    def _state_changed(self, inst: Instance, action: ev.StateChanged) -> None:
        if action.old is ev.State.MASTER and action.new is not ev.State.MASTER:
            self.release_extras(inst)  # before the VIPs go (RemoveVips follows): routes use them
        elif action.new is ev.State.MASTER and action.old is not ev.State.MASTER:
            # after this feed's AddVips / GARPs (and a sweep's batch): a route's src must exist
            self.loop.call_soon(self.install_extras, inst)
        self.loop.call_soon(self.record_state_change, inst, action)

    # ---------------------------------------------- excluded VIPs, routes, rules

    def install_extras(self, inst: Instance) -> None:
        """MASTER: ``virtual_ipaddress_excluded``, ``virtual_routes``, ``virtual_rules`` (keepalived)."""
        spec = inst.spec
        if inst.router.state is not ev.State.MASTER or inst.extras is not None:
            return  # left MASTER before this ran, or already installed
        if not (spec.virtual_ipaddress_excluded or spec.virtual_routes or spec.virtual_rules):
            return
        extras = inst.extras = Extras()
        excluded = [(spec.vip_dev(v), v) for v in spec.virtual_ipaddress_excluded]
        routes.install_addresses(self.netlink, excluded, extras, inst.log)  # type: ignore[arg-type]
        for dev, addrs in _group(extras.addresses).items():
            try:
                self.announcer.announce(dev, addrs, repeat=spec.garp_master_repeat)
            except OSError as exc:
                inst.log.warning("announce_failed", iface=dev, error=str(exc))
        routes.install(
            self.netlink,  # type: ignore[arg-type]
            routes=spec.virtual_routes,
            rules=spec.virtual_rules,
            into=extras,
            bound=inst.log,
        )
        self.record_extras(inst.name, extras)

    def release_extras(self, inst: Instance) -> None:
        """Leaving MASTER (or stopping): remove exactly what :meth:`install_extras` added."""
        extras, inst.extras = inst.extras, None
        if extras is not None:
            routes.uninstall(self.netlink, extras, inst.log)  # type: ignore[arg-type]
            self.record_extras(inst.name, None)

    def record_extras(self, owner: str, extras: Extras | None) -> None:
        """Keep the held-state record (crash clean-up) of ``owner``'s routes, rules and extra
        addresses in step with what it holds now (``None``: nothing)."""
        before = self._owned.pop(owner, ((), frozenset(), frozenset()))
        now: tuple[tuple[tuple[str, ev.IPInterface], ...], frozenset[str], frozenset[str]] = (
            (),
            frozenset(),
            frozenset(),
        )
        if extras is not None:
            now = (
                tuple(extras.addresses),
                frozenset(routes.route_key(r) for r in extras.routes),
                frozenset(routes.rule_key(r) for r in extras.rules),
            )
            self._owned[owner] = now
        for dev, addr in set(before[0]) - set(now[0]):
            self._hold(dev, addr, False)
        for dev, addr in set(now[0]) - set(before[0]):
            self._hold(dev, addr, True)
        if self.held is None or (before[1:] == now[1:]):
            return
        self.held.routes = {k for _a, r, _u in self._owned.values() for k in r}
        self.held.rules = {k for _a, _r, u in self._owned.values() for k in u}
        if not self._held_dirty:
            self._held_dirty = True
            self.loop.call_soon(self.flush_held)

    def resync_extras(self, inst: Instance) -> None:
        """A reload changed the instance: a MASTER removes the extras the new config dropped and
        adds the new ones; the others stay in place (no gap in forwarding)."""
        if inst.router.state is not ev.State.MASTER:
            return
        if inst.extras is None:
            self.install_extras(inst)
            return
        spec = inst.spec
        routes.resync(
            self.netlink,  # type: ignore[arg-type]
            inst.extras,
            addresses=[(spec.vip_dev(v), v) for v in spec.virtual_ipaddress_excluded],
            routes=spec.virtual_routes,
            rules=spec.virtual_rules,
            bound=inst.log,
        )
        self.record_extras(inst.name, inst.extras)

    def record_state_change(self, inst: Instance, action: ev.StateChanged) -> None:
        """Log, persist the epoch of a new MASTER term, tell the supervisor, run notify scripts."""
        inst.log.info(
            "state_changed",
            **{"from": action.old.value, "to": action.new.value},
            reason=action.reason,
            priority=action.priority,
            epoch=action.epoch,
        )
        if action.new is ev.State.MASTER and self.epochs is not None:
            # the terms begun in this loop pass are written together (one directory fsync),
            # off the loop: two fsyncs per takeover held it ~0.5 ms each, so a mass
            # failover's last VRIDs took over late (N = 1000, benchmarks/scale.py)
            if not self._epochs_due:
                self.loop.call_soon(self._save_epochs)
            self._epochs_due.append((inst.name, action.epoch))
        self._on_state_changed(inst, action)
        if action.new is ev.State.INIT and action.old is ev.State.INIT:
            return
        scripts = notify_scripts(inst.spec)
        if not scripts.is_empty():
            event = event_from_state_change(
                inst.name, action, base_priority=inst.router.config.priority, vips=inst.router.config.vips
            )
            if inst.witness_revision is not None:
                event = dataclasses.replace(event, witness_revision=inst.witness_revision)
            self.notifier.submit(event, scripts)
        if self.fifos is not None and self.fifos.wants_vrrp:
            # keepalived writes the effective priority here (vrrp_notify.c notify_instance_fifo)
            word = fifo_state_word(action.new, action.reason)
            if word is not None:
                self.fifos.instance(inst.name, word, action.priority)

    def _save_epochs(self) -> None:
        """Hand the due epochs to the one writer thread (in order: a later term of an
        instance is never overtaken by an earlier one)."""
        due, self._epochs_due = self._epochs_due, []
        store = self.epochs
        if not due or store is None:
            return
        if self._epoch_writer is None:
            self._epoch_writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pyvrrp-epochs")
        fut = self._epoch_writer.submit(store.save_many, due)
        fut.add_done_callback(lambda f: self.loop.call_soon_threadsafe(_epochs_saved, due, f))

    def close(self) -> None:
        """Write what is due and wait for the writer (daemon stop)."""
        self._save_epochs()
        if self._epoch_writer is not None:
            self._epoch_writer.shutdown(wait=True)
            self._epoch_writer = None

    def notify_group(self, name: str, spec: VrrpSyncGroup, old: ev.State, new: ev.State) -> None:
        """A sync group's state changed: its own notify scripts (keepalived ``GROUP`` lines)."""
        word = "STOP" if new is ev.State.INIT else new.value
        if self.fifos is not None and self.fifos.wants_vrrp:
            self.loop.call_soon(self.fifos.group, name, word)
        scripts = notify_scripts(spec)
        if scripts.is_empty():
            return
        event = NotifyEvent(instance=name, state=word, priority=0, previous_state=old.value, kind="GROUP")
        self.loop.call_soon(self.notifier.submit, event, scripts)

    def notify_conflict(self, inst: Instance, vip: object, peer_mac: str) -> None:
        """``notify_conflict``: another MAC answers for one of our VIPs."""
        if not inst.spec.notify_conflict:
            return
        event = NotifyEvent(
            instance=inst.name,
            state="CONFLICT",
            priority=inst.router.config.priority,
            previous_state=inst.router.state.value,
            vips=tuple(str(v) for v in inst.router.config.vips),
            reason=f"{vip} answered by {peer_mac}",
            epoch=inst.router.epoch,
        )
        self.notifier.submit(event, NotifyScripts(notify=inst.spec.notify_conflict))


def _epochs_saved(due: list[tuple[str, int]], fut: concurrent.futures.Future[None]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.warning("epoch_save_failed", instances=[name for name, _ in due], error=str(exc))
