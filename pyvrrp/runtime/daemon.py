"""The pyvrrp daemon: one asyncio loop wiring pure engines to kernel adapters.

Theory of operation
-------------------
Every ``vrrp_instance`` becomes one :class:`~pyvrrp.proto.router.VirtualRouter`
(pure, sans-IO) wrapped in an :class:`Instance`.  The runtime feeds it inputs
(decoded adverts, link events, tracker results, signals) with ``now`` read from
the loop's monotonic clock, and performs the returned actions in order through
:meth:`Daemon._execute`.  After every feed the instance's single timer is
re-armed at ``router.next_deadline()`` (aioquic's ``transmit()`` funnel).

Feeding is re-entrant safe: an action whose execution produces a new input
(for example a VIP that cannot be added becomes a fault) queues that input,
and it is processed after the current action list, so actions never
interleave.

Adapters do the I/O: :mod:`pyvrrp.adapters.vrrp_socket` (raw protocol-112
sockets, one per interface and family, demultiplexed by VRID),
:mod:`pyvrrp.adapters.rtnl` (VIPs, interface facts, link/address events; no pyroute2),
:mod:`pyvrrp.adapters.arp`/``ndisc`` (GARP and unsolicited NA),
:mod:`pyvrrp.adapters.notify` (ordered notify scripts) and
:mod:`pyvrrp.runtime.control` (the control socket behind ``pyvrrp state``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import gc
import ipaddress
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.proto import events as ev
from pyvrrp.proto.packet import InvalidPacket, decode
from pyvrrp.proto.router import RouterConfig, VirtualRouter, advert_datagrams
from pyvrrp.runtime import clock
from pyvrrp.runtime.state_view import instance_view

log = structlog.get_logger("pyvrrp")


class StartupError(Exception):
    """A problem that prevents the daemon from starting; the message is for the operator."""


@dataclass
class Instance:
    """Runtime wrapper of one engine: its interface, socket, timer and guards."""

    name: str
    spec: Any  # the pydantic vrrp_instance model
    router: VirtualRouter
    ifname: str
    family: int
    group: str | None = None
    sock: Any = None
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None
    inbox: collections.deque[ev.Input | Any] = field(default_factory=collections.deque)
    busy: bool = False
    removing_vips: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    pending_takeover: asyncio.Task[Any] | None = None
    log: Any = None
    mac: bytes = b""
    last_lower_rx: float | None = None  # last advert from a lower-priority router (preemption)
    gateway: Any = None  # splitbrain.gateway.GatewayMonitor
    conflict: Any = None  # splitbrain.conflict.ConflictMonitor


def _vip_list(spec: Any) -> list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str | None]]:
    """(interface address, label) for every configured VIP of an instance."""
    out = []
    for item in spec.virtual_ipaddress:
        addr = getattr(item, "address", item)
        label = getattr(item, "label", None)
        iface = ipaddress.ip_interface(str(addr))
        out.append((iface, label))
    return out


def _family_of(spec: Any) -> int:
    vips = _vip_list(spec)
    if vips:
        return vips[0][0].version
    for peer in getattr(spec, "unicast_peer", None) or []:
        return ipaddress.ip_address(str(peer)).version
    return 4


class Daemon:
    """Runs every configured instance until stopped."""

    def __init__(
        self,
        config_path: str,
        config: Any,
        *,
        config_id: str | None = None,
        control_socket: str | None = None,
        keep_ipvs: bool = False,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.config_id = config_id
        self.keep_ipvs = keep_ipvs  # leave our IPVS services in the kernel on stop (keepalived -I)
        self.control_path = control_socket or config.global_defs.control_socket
        self.instances: dict[str, Instance] = {}
        self.sockets: dict[tuple[str, int], Any] = {}
        self.loop: Any = None  # the running asyncio loop, set by run()
        self.stop_event: asyncio.Event | None = None
        self.netlink: Any = None
        self.addrs: Any = None
        self.ipvs: Any = None
        self.trackers: Any = None
        self.groups: dict[str, Any] = {}  # proto.syncgroup.SyncGroup by group name
        self.group_of: dict[str, str] = {}  # instance name -> group name
        self._group_state: dict[str, ev.State] = {}
        self._tracker_names: dict[str, set[str]] = {}
        self.notifier: Any = None
        self.announcer: Any = None
        self.control: Any = None
        self.epochs: Any = None
        self.started_at = clock.monotonic()
        self.socket_drops: collections.Counter[str] = collections.Counter()
        self._rx_log: Any = None
        self._background: set[asyncio.Task[Any]] = set()
        self._confirming: set[str] = set()
        self._released = False  # every instance stopped (SIGTERM / shutdown)
        self._reading = False  # VRRP sockets are read (after the first Startups)
        self._readers: set[tuple[str, int]] = set()
        self._ipvs_ready = asyncio.Event()  # set once the IPVS manager runs
        self.boot: Any = None  # pyvrrp.runtime.fast_start.FastStart running our engines, if any
        self._boot_seen: set[int] = set()  # arrival stamps of packets the fast-start thread handled
        self._boot_ran: set[str] = set()  # instances the fast-start thread ran (adopted or not)

    # ------------------------------------------------------------ life cycle

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, then stop cleanly.  Returns the exit code."""
        from pyvrrp.adapters.arp import Announcer
        from pyvrrp.adapters.notify import NotifyRunner
        from pyvrrp.adapters.rtnl import RtnlNetlink
        from pyvrrp.adapters.rtnl_wire import FastAddr
        from pyvrrp.runtime.control import ControlServer, SocketInUse
        from pyvrrp.runtime.logging import RateLimitedLogger

        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        from pyvrrp.runtime import fast_start

        self.boot = fast_start.current()
        self._rx_log = RateLimitedLogger(log, burst=5, window_s=10.0, level="debug")
        # Netlink calls are synchronous (sub-millisecond) so that the action order
        # SendAdvert -> AddVips -> AnnounceVips holds (the VIPs exist before the GARPs).  Plain rtnetlink
        # sockets, not pyroute2: importing pyroute2 alone would delay the start by ~0.1 s.
        self.netlink = RtnlNetlink()
        self.addrs = FastAddr()
        self.announcer = Announcer()
        self.notifier = NotifyRunner(timeout_s=float(self.config.global_defs.notify_timeout))
        self.epochs = self._epoch_store()

        self.control = ControlServer(self.control_path)
        self.control.register("state", self._op_state)
        self.control.register("reload", self._op_reload)
        self.control.register("ping", self._op_ping)
        try:
            await self.control.start()
        except SocketInUse as exc:
            raise StartupError(f"{exc}; is another pyvrrp running? stop it or use --socket") from None
        except OSError as exc:
            raise StartupError(f"control socket {self.control_path}: {exc}") from None

        self._build_groups(self.config)
        for name, spec in self.config.vrrp_instance.items():
            await self._add_instance(name, spec, start=False)
        # Trackers report their initial effect before Startup, so an instance whose
        # check already fails starts in FAULT instead of flapping through MASTER.
        self.trackers = self._build_trackers(self.config)
        self.trackers.report_all()
        delay = float(self.config.global_defs.vrrp_startup_delay)
        if delay > 0:  # keepalived vrrp_startup_delay: let slow links and bonds settle first
            from pyvrrp.runtime import early_listen

            if (early := early_listen.current()) is not None:
                early.close()  # the delay is a deliberate wait: no backdated Startup
            log.info("startup_delay", seconds=delay)
            self._read_sockets()  # read (and ignore: still INIT) during the delay, as before
            await asyncio.sleep(delay)
        if self.config.virtual_server:
            # answered as soon as the control socket is up; waits for the IPVS start below
            self.control.register("ipvs", self._op_ipvs)
        self._start_all()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_stop_signal)
        self.loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        if self.boot is not None:  # signals the fast-start engine held for us
            if self.boot.signal_pending is not None:
                self._on_stop_signal()
            if self.boot.hup_pending:
                self._spawn(self.reload())
            self.boot = None
        self.trackers.start()
        if self.config.virtual_server:
            await self._start_ipvs()
        monitor = asyncio.ensure_future(self._watch_netlink())

        log.info(
            "daemon_started", instances=len(self.instances), control_socket=self.control_path, pid=os.getpid()
        )
        self._write_fast_start()
        _freeze_heap(collect=False)
        await self.stop_event.wait()
        log.info("daemon_stopping")
        monitor.cancel()
        await self.shutdown()
        return 0

    def _on_stop_signal(self) -> None:
        """SIGTERM / SIGINT: every MASTER sends priority 0 from the signal's own callback.

        The backup takes over Skew_Time after that advert (RFC 5798 §6.4.3), so it goes out
        before anything else (logging, the shutdown task); the rest follows in shutdown().
        """
        self._release_all()
        if self.stop_event is not None:
            self.stop_event.set()

    def _release_all(self) -> None:
        """Stop every instance (priority 0 from a MASTER, VIPs removed), then the trackers."""
        if self._released:
            return
        self._released = True
        for inst in list(self.instances.values()):
            self._stop_instance(inst)
        if self.trackers is not None:
            self.trackers.stop()  # same callback: no tracker result can reach a stopped instance

    async def shutdown(self) -> None:
        """Every MASTER sends priority 0 and releases its VIPs; notify_stop runs; sockets close."""
        self._release_all()
        # IPVS clean-up and notify_stop scripts run side by side, bounded so the daemon
        # exits within 1 s of SIGTERM even when a script hangs (priority 0 and the VIP
        # removal are already out; interpreter teardown takes another ~0.1-0.2 s).
        pending = []
        if self.ipvs is not None:  # removing our IPVS services matters more: a longer bound
            pending.append(asyncio.wait_for(self.ipvs.stop(keep=self.keep_ipvs), timeout=0.8))
        if self.notifier is not None:
            pending.append(asyncio.wait_for(self.notifier.drain(), timeout=0.6))
        if pending:
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
        if self.announcer is not None:
            self.announcer.close()
        if self.control is not None:
            await self.control.close()
        if self.netlink is not None:
            self.netlink.close()
        if self.addrs is not None:
            self.addrs.close()
        log.info("daemon_stopped")

    async def _start_ipvs(self) -> None:
        """IPVS services and real-server health checks (issue #5); VRRP goes on without ip_vs."""
        from pyvrrp.ipvs.manager import IpvsManager

        state_file = os.path.join(str(self.config.global_defs.state_dir), "ipvs-owned.json")
        self.ipvs = IpvsManager(self.config, state_file=state_file)
        self.ipvs.set_master(self._any_master())
        await self.ipvs.start()
        self.control.register("ipvs", self._op_ipvs)
        self._ipvs_ready.set()

    def _any_master(self) -> bool:
        return any(i.router.state is ev.State.MASTER for i in self.instances.values())

    async def _op_ipvs(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.ipvs is None and self.config.virtual_server:
            # The engines start first (a restarted node may be MASTER at once): the IPVS
            # manager follows within a moment; answer with its view, not an empty one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ipvs_ready.wait(), timeout=5.0)
        return self.ipvs.snapshot() if self.ipvs is not None else {"services": []}

    def _epoch_store(self) -> Any:
        try:
            from pyvrrp.splitbrain.epoch import EpochStore
        except ImportError:
            return None
        try:
            return EpochStore(self.config.global_defs.state_dir)
        except OSError as exc:
            log.warning(
                "epoch_store_unavailable", state_dir=self.config.global_defs.state_dir, error=str(exc)
            )
            return None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference until it finishes."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------- instances

    def _router_config(self, name: str, spec: Any, primary: Any, family: int) -> RouterConfig:
        version = spec.version
        interval_cs = round(float(spec.advert_int) * 100)
        auth_type, auth_data = 0, b""
        if spec.authentication is not None and version == 2 and spec.authentication.auth_type == "PASS":
            auth_type = 1
            auth_data = str(spec.authentication.auth_pass).encode()[:8]
        peers = tuple(ipaddress.ip_address(str(p)) for p in (spec.unicast_peer or []))

        cfg = RouterConfig(
            name=name,
            vrid=spec.virtual_router_id,
            version=version,
            family=family,
            priority=spec.priority,
            advert_interval_cs=interval_cs,
            vips=tuple(v for v, _ in _vip_list(spec)),
            primary_address=primary,
            preempt=spec.preempt,
            preempt_delay_s=float(spec.preempt_delay or 0),
            start_as_master=(str(spec.state or "BACKUP").upper() == "MASTER"),
            auth_type=auth_type,
            auth_data=auth_data,
            v3_ipv4_pseudo_header=not spec.v3_checksum_as_v2,
            unicast_peers=peers,
            check_ttl=not peers,
            lower_prio_advert=not spec.lower_prio_no_advert,
            garp_master_repeat=spec.garp_master_repeat,
            garp_master_delay_s=float(spec.garp_master_delay),
            garp_master_refresh_s=float(spec.garp_master_refresh),
            garp_lower_prio_repeat=spec.garp_lower_prio_repeat,
            garp_lower_prio_delay_s=float(spec.garp_lower_prio_delay),
            down_timer_adverts=spec.down_timer_adverts,
            takeover_gate=self._guarded(spec),
            conflict_resolve=bool(spec.conflict_detection and spec.conflict_detection.resolve),
        )
        if name in self.group_of:
            from pyvrrp.proto.syncgroup import SyncGroup

            cfg = SyncGroup.member_config(cfg)
        return cfg

    @staticmethod
    def _guarded(spec: Any) -> bool:
        return bool(spec.fence_script or spec.probe_vip_before_takeover or spec.gateway_check)

    def _build_groups(self, config: Any) -> None:
        """vrrp_sync_group: members move together (pyvrrp.proto.syncgroup)."""
        from pyvrrp.proto.syncgroup import SyncGroup

        self.groups, self.group_of = {}, {}
        for gname, group in config.vrrp_sync_group.items():
            members = [m for m in group.group if m in config.vrrp_instance]
            guarded = [m for m in members if self._guarded(config.vrrp_instance[m])]
            self.groups[gname] = SyncGroup(gname, members, guarded=guarded)
            for m in members:
                self.group_of[m] = gname

    def _group_routers(self, gname: str) -> dict[str, VirtualRouter] | None:
        group = self.groups[gname]
        routers = {m: self.instances[m].router for m in group.members if m in self.instances}
        return routers if len(routers) == len(group.members) else None

    def _after_feed(self, inst: Instance, actions: list[Any], now: float) -> None:
        """Sync groups: turn one member's transition into inputs for the others."""
        gname = self.group_of.get(inst.name)
        if gname is None:
            return
        routers = self._group_routers(gname)
        if routers is None:  # still starting: not every member exists yet
            return
        for member, item in self.groups[gname].on_actions(inst.name, actions, routers, now=now):
            self._feed(self.instances[member], item)
        self._group_notify(gname, routers)

    def _group_notify(self, gname: str, routers: dict[str, VirtualRouter]) -> None:
        from pyvrrp.adapters.notify import NotifyEvent, NotifyScripts

        state = self.groups[gname].state(routers)
        old = self._group_state.get(gname, ev.State.INIT)
        if state is old:
            return
        self._group_state[gname] = state
        log.info("sync_group_state", group=gname, **{"from": old.value, "to": state.value})
        spec = self.config.vrrp_sync_group.get(gname)
        if spec is None:
            return
        scripts = NotifyScripts(
            notify=spec.notify,
            notify_master=spec.notify_master,
            notify_backup=spec.notify_backup,
            notify_fault=spec.notify_fault,
            notify_stop=spec.notify_stop,
        )
        if scripts.is_empty():
            return
        word = "STOP" if state is ev.State.INIT else state.value
        event = NotifyEvent(instance=gname, state=word, priority=0, previous_state=old.value, kind="GROUP")
        self.loop.call_soon(self.notifier.submit, event, scripts)

    def _build_trackers(self, config: Any) -> Any:
        from pyvrrp.runtime.trackers import Trackers

        def link_up(ifname: str) -> bool | None:
            try:
                return bool(self.netlink.link_is_up(ifname))
            except Exception as exc:
                log.warning("track_interface_missing", interface=ifname, error=str(exc))
                return False

        return Trackers.from_config(config, self._tracker_report, link_up)

    def _tracker_report(self, instance: str, name: str, delta: int, fault: bool) -> None:
        inst = self.instances.get(instance)
        if inst is not None:
            self._tracker_names.setdefault(instance, set()).add(name)
            self._feed(inst, ev.TrackerChanged(name=name, delta=delta, fault=fault))

    def _start_instance(self, inst: Instance, *, listening_since: float | None = None) -> None:
        # A link that is already down is reported before Startup: INIT -> FAULT directly,
        # never a spurious BACKUP (and notify_backup) first.
        if not inst.spec.dont_track_primary and not self.netlink.link_is_up(inst.ifname):
            self._feed(inst, ev.LinkChanged(up=False))
        self._feed(inst, ev.Startup(), at=listening_since)

    # ------------------------------------------------------------ fast start

    def _fast_eligible(self, inst: Instance) -> bool:
        """Can ``pyvrrp.runtime.fast_start`` run this instance on the next start?

        Only what its thread can do alone: no trackers, guards, conflict detection or
        sync group (their inputs come from the daemon), no start-up delay.
        """
        spec = inst.spec
        return not (
            self._guarded(spec)
            or spec.conflict_detection
            or spec.track_interface
            or spec.track_script
            or spec.track_file
            or inst.name in self.group_of
            or self._tracker_names.get(inst.name)
            or float(self.config.global_defs.vrrp_startup_delay) > 0
        )

    def _fast_entry(self, inst: Instance) -> dict[str, Any]:
        """What the fast-start cache holds for ``inst`` (also compared at the hand-over)."""
        from pyvrrp.runtime.fast_start import config_to_dict

        return {
            "name": inst.name,
            "ifname": inst.ifname,
            "router": config_to_dict(inst.router.config),
            "vips": [[str(v), label] for v, label in _vip_list(inst.spec)],
            "epoch_file": str(self.epochs.path_for(inst.name)) if self.epochs is not None else None,
            "control_socket": str(self.control_path),
            "config_id": self.config_id,
        }

    def _write_fast_start(self) -> None:
        """Cache the eligible instances' engine configs for the next start (best effort)."""
        from pyvrrp.runtime import fast_start

        if os.environ.get("PYVRRP_NO_FAST_START"):
            return
        try:
            with open(self.config_path, "rb") as fh:
                text = fh.read(1 << 20)
            entries = [self._fast_entry(i) for i in self.instances.values() if self._fast_eligible(i)]
            if entries:
                path = fast_start.write_cache(self.config_path, text, entries)
                log.debug("fast_start_cached", path=path, instances=[e["name"] for e in entries])
            else:
                fast_start.remove_cache(self.config_path)
        except OSError as exc:
            log.info("fast_start_cache_not_written", error=str(exc))

    def _take_over_fast_start(self) -> set[str]:
        """Stop the fast-start thread and adopt its engines (state, timers, VIPs held).

        An engine is adopted only if the daemon's own entry for the instance is what the
        thread ran; otherwise its VIPs are removed and the instance starts afresh (no
        early credit: the thread consumed its packets).  Recorded state changes are
        logged and notified now, in order.
        """
        boot, self._boot_ran = self.boot, set()
        if boot is None:
            return set()
        boot.stop()
        adopted: set[str] = set()
        for inst in self.instances.values():
            if not boot.owns(inst.name):
                continue
            self._boot_ran.add(inst.name)
            try:
                ran = boot.adopt(inst.name, self._fast_entry(inst))
            except Exception as exc:  # a bug must cost the fast start, never the instance
                boot.discarded[inst.name] = f"hand-over failed: {exc}"
                ran = None
            if ran is None:
                inst.log.warning("fast_start_discarded", reason=boot.discarded.get(inst.name))
                boot.release(inst.name)  # priority 0 if it was MASTER, VIPs removed
                self._remove_vips(inst, inst.router.config.vips, stale=True)
                continue
            inst.router = ran.router
            for level, event, fields in ran.events:
                getattr(inst.log, level)(event, fast_start=True, **fields)
            now = clock.monotonic()
            for change, at in ran.changes:  # logged now, dated by when they happened
                self._do_state_changed(inst, change, fast_start=True, ms_ago=round((now - at) * 1000, 1))
            if not inst.spec.dont_track_primary and not self.netlink.link_is_up(inst.ifname):
                self._feed(inst, ev.LinkChanged(up=False))
            self._arm(inst)
            adopted.add(inst.name)
        for name in set(boot.instances) - set(self.instances):  # cannot happen for the same file;
            boot.discarded[name] = "not in the daemon's config"  # never leave its VIPs unmanaged
            boot.release(name)
        self._boot_seen = set(boot.handled)
        log.info(
            "fast_start",
            adopted=sorted(adopted),
            discarded=boot.discarded,
            skipped=boot.skipped,
            failed=boot.failed,
            ran_for_ms=round((clock.monotonic() - boot.listener.opened_at) * 1000, 1),
            ready_after_ms=round((boot.ready_at - boot.listener.opened_at) * 1000, 1),
            listening_since=round(clock.wall_time() - (clock.monotonic() - boot.listener.opened_at), 6),
            states={n: self.instances[n].router.state.value for n in sorted(adopted)},
        )
        boot.finish()
        return adopted

    def _early_backlog(self) -> tuple[Any, list[tuple[tuple[str, int], Any, Any]]]:
        """The early listener (``pyvrrp.runtime.early_listen``) and its queued packets.

        Returns ``(listener or None, [(socket key, real socket, queued packet)])`` with only
        the packets that arrived before the real socket of their interface had joined.
        """
        from pyvrrp.runtime import early_listen

        early = early_listen.current()
        if early is None:
            return None, []
        by_index = {(sock.family, sock.ifindex): (key, sock) for key, sock in self.sockets.items()}
        queued = []
        for family in (4, 6):
            for item in early.backlog(family):
                found = by_index.get((family, item[0]))
                if found is None:
                    continue
                key, sock = found
                if item[1] and item[1] >= sock.opened_ns:
                    continue  # the real socket has it too
                queued.append((key, sock, item))
        return early, queued

    def _start_all(self) -> None:
        """Startup for every instance; backdated to the early listener's start where it covers them.

        The packets the listener queued are replayed afterwards, in arrival order,
        through the normal receive path, before any (backdated) timer can fire: the
        node decides as if it had been running since the listener opened.
        """
        adopted = self._take_over_fast_start()
        early, queued = self._early_backlog()
        credited = []
        for inst in self.instances.values():
            if inst.name in adopted:
                continue
            since = None
            if early is not None and inst.sock is not None and inst.name not in self._boot_ran:
                unicast = bool(getattr(inst.sock, "unicast_peers", ()))
                if early.covers(inst.family, inst.sock.ifindex, unicast=unicast):
                    since = early.opened_at
                    credited.append(inst.name)
            self._start_instance(inst, listening_since=since)
        for key, sock, (_ifindex, _stamp, data, addr, anc) in queued:
            parsed = sock.parse(data, anc, addr)
            if parsed is not False:
                self._on_packet(key, *parsed)  # handled "now": only ever later than its arrival
        self._read_sockets()
        if early is not None:
            log.info(
                "early_listen",
                listening_for_ms=round((clock.monotonic() - early.opened_at) * 1000, 1),
                replayed=len(queued),
                credited=credited,
                dropped=early.dropped,
            )
            early.close()

    async def _add_instance(self, name: str, spec: Any, *, start: bool = True) -> None:
        """Create and start one instance: resolve its interface, clean stale VIPs, Startup."""
        from pyvrrp.adapters import InterfaceNotFound

        family = _family_of(spec)
        bound = log.bind(instance=name, iface=spec.interface, vrid=spec.virtual_router_id)
        try:
            primary = self._primary_address(spec, family)
        except InterfaceNotFound as exc:
            raise StartupError(
                f"vrrp_instance.{name}.interface: {exc}; create the interface or fix the config"
            ) from exc
        if primary is None:
            raise StartupError(
                f"vrrp_instance.{name}: interface {spec.interface} has no "
                f"{'IPv4 address' if family == 4 else 'IPv6 link-local address'} to send adverts from"
            )
        epoch = self.epochs.load(name) if self.epochs is not None else 0
        router = VirtualRouter(self._router_config(name, spec, primary, family), epoch=epoch)
        inst = Instance(name=name, spec=spec, router=router, ifname=spec.interface, family=family, log=bound)
        self.instances[name] = inst
        # A crashed run may have left our VIPs behind: remove them before the first election
        # (keepalived does the same: "removing VIPs" at start).
        if self.boot is None or not self.boot.owns(name):
            # (the fast-start engine did it before its Startup and may hold the VIPs now)
            self._remove_vips(inst, router.config.vips, stale=True)
        inst.sock = await self._socket_for(spec.interface, family, primary)
        try:  # open the AF_PACKET socket now, not on the first (hot) transition
            self.announcer.sender(spec.interface)
        except OSError as exc:
            inst.log.warning("announce_socket_failed", error=str(exc))
        try:
            from pyvrrp.adapters.arp import mac_to_bytes

            inst.mac = mac_to_bytes(self.netlink.link_mac(spec.interface))
        except Exception as exc:
            inst.log.warning("link_mac_unknown", error=str(exc))
        await self._start_guards(inst)
        if start:
            self._start_instance(inst)

    async def _start_guards(self, inst: Instance) -> None:
        """Gateway arbitration and dual-master detection (issue #4), when configured."""
        spec = inst.spec
        if spec.gateway_check is not None:
            from pyvrrp.splitbrain.gateway import GatewayMonitor

            inst.gateway = GatewayMonitor(inst.ifname, spec.gateway_check)
            # Unknown counts as isolated until proven otherwise (docs/split-brain.md).
            self._feed_isolation(inst)
            inst.gateway.on_change = lambda _isolated, i=inst: self._feed_isolation(i)
            await inst.gateway.start()
        if spec.conflict_detection is not None:
            from pyvrrp.splitbrain.conflict import ConflictMonitor

            def held(i: Instance = inst) -> Any:
                return i.router.config.vips if i.router.state is ev.State.MASTER else ()

            inst.conflict = ConflictMonitor(
                inst.ifname,
                inst.mac or None,
                held,
                float(spec.conflict_detection.interval),
                on_conflict=functools.partial(self._on_conflict, inst),
                on_clear=functools.partial(self._on_conflict_cleared, inst),
            )
            await inst.conflict.start()

    def _on_conflict_cleared(self, inst: Instance, vip: Any) -> None:
        inst.log.info("dual_master_conflict_cleared", vip=str(vip))

    def _feed_isolation(self, inst: Instance) -> None:
        delta, fault = inst.gateway.tracker_update()
        inst.log.info("gateway_arbitration", isolated=inst.gateway.isolated, delta=delta, fault=fault)
        self._feed(inst, ev.TrackerChanged(name="gateway", delta=delta, fault=fault))

    def _on_conflict(self, inst: Instance, vip: Any, peer_mac: str) -> None:
        from pyvrrp.adapters.arp import mac_to_bytes
        from pyvrrp.adapters.notify import NotifyEvent, NotifyScripts

        inst.log.warning(
            "dual_master_conflict", vip=str(vip), peer_mac=peer_mac, state=inst.router.state.value
        )
        if inst.spec.notify_conflict:
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
        if inst.mac and inst.router.state is ev.State.MASTER and inst.name not in self._confirming:
            # A normal handover has a few ms where both nodes hold the VIP (the new master's
            # GARP can be read before its advert).  Let VRRP settle for one advert interval,
            # then confirm with a probe before acting on the conflict.
            self._confirming.add(inst.name)
            self._spawn(self._confirm_conflict(inst, vip, mac_to_bytes(peer_mac)))

    async def _confirm_conflict(self, inst: Instance, vip: Any, peer_mac: bytes) -> None:
        from pyvrrp.adapters.arp import mac_to_bytes
        from pyvrrp.splitbrain.conflict import probe_vip_once

        try:
            grace = min(1.0, max(0.05, inst.router.snapshot(now=clock.monotonic()).advert_interval_s))
            await asyncio.sleep(grace)
            if inst.router.state is not ev.State.MASTER or self.instances.get(inst.name) is not inst:
                inst.log.info("dual_master_conflict_resolved_by_vrrp", vip=str(vip))
                return
            answer = await probe_vip_once(inst.ifname, vip, timeout=0.1, our_macs=[inst.mac])
            if answer is None:
                inst.log.info("dual_master_conflict_gone", vip=str(vip))
                return
            if inst.router.state is ev.State.MASTER:
                self._feed(inst, ev.ConflictDetected(our_mac=inst.mac, peer_mac=mac_to_bytes(answer)))
        except Exception as exc:
            inst.log.error("conflict_confirm_failed", error=str(exc))
        finally:
            self._confirming.discard(inst.name)

    def _primary_address(self, spec: Any, family: int) -> Any:
        src = spec.unicast_src_ip or spec.mcast_src_ip
        if src is not None:
            return ipaddress.ip_address(str(src))
        return self.netlink.primary_address(spec.interface, family)

    async def _socket_for(self, ifname: str, family: int, primary: Any) -> Any:
        key = (ifname, family)
        sock = self.sockets.get(key)
        if sock is None:
            from pyvrrp.adapters.vrrp_socket import VrrpSocket

            # One socket per (interface, family), shared by every instance on it and
            # demultiplexed by VRID; the source address is set per advert.
            sock = await VrrpSocket(ifname, family).open()
            self.sockets[key] = sock
            if self._reading:
                self._read_sockets()
        return sock

    def _read_sockets(self) -> None:
        """Start reading every VRRP socket (from then on; the kernel queues until then).

        At start-up this waits until every instance has had its Startup: an advert read
        earlier would reach an engine still in INIT, which ignores it, and the decision
        to take over would be made without it.
        """
        self._reading = True
        for key, sock in self.sockets.items():
            if key not in self._readers:
                sock.add_reader(functools.partial(self._on_socket_packet, key))
                self._readers.add(key)

    def _stop_instance(self, inst: Instance) -> None:
        self._feed(inst, ev.Shutdown())
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        for task in inst.tasks:
            task.cancel()
        for guard in (inst.gateway, inst.conflict):
            if guard is not None:
                self._spawn(guard.stop())
        # Whatever state we ended in, never leave a VIP behind.
        self._remove_vips(inst, inst.router.config.vips)

    # ----------------------------------------------------------- receive path

    def _on_socket_packet(
        self, key: tuple[str, int], payload: bytes, src: Any, dst: Any, ttl: int | None
    ) -> None:
        """Reader callback of a VRRP socket: the datagram is dated from its kernel arrival stamp."""
        if self._boot_seen:
            stamp = getattr(self.sockets.get(key), "rx_stamp_ns", 0)
            if stamp in self._boot_seen:  # the fast-start engine already ran this one
                self._boot_seen.discard(stamp)
                return
        self._on_packet(key, payload, src, dst, ttl, at=self._arrival(key))

    def _on_packet(
        self,
        key: tuple[str, int],
        payload: bytes,
        src: Any,
        dst: Any,
        ttl: int | None,
        *,
        at: float | None = None,
    ) -> None:
        """Decode one datagram and feed it to the instance of its VRID (``at``: arrival, None = now)."""
        result = decode(payload, src=src, dst=dst)
        if isinstance(result, InvalidPacket):
            reason = result.reason.value if hasattr(result.reason, "value") else str(result.reason)
            self.socket_drops[reason] += 1
            self._rx_log.debug(reason, "advert_dropped", reason=reason, detail=result.detail, src=str(src))
            return
        for inst in self.instances.values():
            if (inst.ifname, inst.family) == key and inst.router.config.vrid == result.vrid:
                if 0 < result.priority < inst.router.effective_priority:
                    inst.last_lower_rx = clock.monotonic()
                self._feed(inst, ev.AdvertReceived(advert=result, src=src, ttl=ttl, dst=dst), at=at)
                return
        self.socket_drops["vrid"] += 1
        self._rx_log.debug("vrid", "advert_dropped", reason="vrid", vrid=result.vrid, src=str(src))

    def _arrival(self, key: tuple[str, int]) -> float | None:
        """Monotonic time at which the datagram being handled reached the socket (None: unknown).

        RFC 5798 §6.4.2 resets Master_Down_Timer when an advert is received: the kernel's
        arrival stamp, not the moment Python got to the packet (0.1-0.5 ms later, more on a
        busy loop), so a backup's deadline is not pushed back by its own receive path.
        Ages outside [0, 0.5 s] (a wall-clock step) fall back to "now".
        """
        sock = self.sockets.get(key)
        stamp = getattr(sock, "rx_stamp_ns", 0)
        if not stamp:
            return None
        age = (time.time_ns() - stamp) / 1e9
        if not 0.0 <= age <= 0.5:
            return None
        return clock.monotonic() - age

    # --------------------------------------------------------------- feeding

    def _feed(self, inst: Instance, event: Any, *, at: float | None = None) -> None:
        """Give one input to an instance's engine and perform the resulting actions in order.

        ``at`` dates the input earlier than now: Startup from the moment the early listener
        began queueing this instance's packets, an advert from its kernel arrival stamp.
        """
        inst.inbox.append(event if at is None else _At(event, at))
        if inst.busy:
            return
        inst.busy = True
        try:
            while inst.inbox:
                item = inst.inbox.popleft()
                now = clock.monotonic()
                if isinstance(item, _At):
                    item, now = item.event, min(item.at, now)
                if item is _TIMER:
                    actions = inst.router.handle_timer(now=now)
                else:
                    actions = inst.router.handle(item, now=now)
                for action in actions:
                    self._execute(inst, action)
                self._after_feed(inst, actions, now)
        finally:
            inst.busy = False
        if inst.pending_takeover is not None and not inst.router.takeover_pending:
            # The old master came back while the guards ran: abandon the takeover
            # (cancelling kills the fence hook's process group).
            inst.log.info("takeover_abandoned", reason="a master is advertising again")
            inst.pending_takeover.cancel()
            inst.pending_takeover = None
        self._arm(inst)

    def _arm(self, inst: Instance) -> None:
        deadline = inst.router.next_deadline()
        if deadline == inst.timer_at and inst.timer is not None:
            return
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        inst.timer_at = deadline
        if deadline is not None and self.loop is not None:
            # epoll sleeps in whole milliseconds, so asyncio timers fire up to ~1.5 ms late.
            # A BACKUP's Master_Down deadline decides failover time: wake a little early
            # and spin to the exact instant (at most TIMER_LEAD_S of CPU per takeover).
            early = deadline - TIMER_LEAD_S if inst.router.state is ev.State.BACKUP else deadline
            inst.timer = self.loop.call_at(early, self._on_timer, inst)

    def _on_timer(self, inst: Instance) -> None:
        deadline = inst.timer_at
        inst.timer = None
        inst.timer_at = None
        if self.instances.get(inst.name) is not inst:
            return
        if deadline is not None:
            # Spin to the exact deadline, reading the VRRP socket meanwhile: an advert that
            # arrives in these last ~2 ms must still hold the takeover off (no MASTER flap).
            sock = inst.sock
            while clock.monotonic() < deadline:
                if sock is not None and sock.poll():
                    if inst.router.next_deadline() != deadline:
                        return  # the advert moved the deadline; _feed re-armed the timer
                    if inst.timer is not None:  # same deadline: keep spinning here instead
                        inst.timer.cancel()
                        inst.timer = None
                        inst.timer_at = None
        self._feed(inst, _TIMER)

    # --------------------------------------------------------------- actions

    def _execute(self, inst: Instance, action: Any) -> None:
        handler = self._handlers().get(type(action).__name__)
        if handler is None:
            inst.log.error("unknown_action", action=type(action).__name__, note="this is a bug")
            return
        handler(inst, action)

    def _handlers(self) -> dict[str, Callable[[Instance, Any], None]]:
        return {
            "SendAdvert": self._do_send,
            "AddVips": self._do_add_vips,
            "RemoveVips": lambda inst, a: self._remove_vips(inst, a.vips),
            "AnnounceVips": self._do_announce,
            # Logging, epoch persistence (fsync), IPVS and notify scripts are bookkeeping:
            # run them after this feed's adverts and GARPs have left (hot path first).
            "StateChanged": self._defer_state_changed,
            "TakeoverPending": self._do_takeover_pending,
        }

    def _defer_state_changed(self, inst: Instance, action: ev.StateChanged) -> None:
        self.loop.call_soon(self._do_state_changed, inst, action)

    def _do_send(self, inst: Instance, action: ev.SendAdvert) -> None:
        src = inst.router.config.primary_address
        for dst, payload in advert_datagrams(inst.router.config, action.advert):
            try:
                inst.sock.send(payload, dst, src=src)
            except OSError as exc:
                inst.log.warning("advert_send_failed", dst=str(dst), error=str(exc))

    def _labels(self, inst: Instance) -> dict[str, str | None]:
        return {str(v): label for v, label in _vip_list(inst.spec)}

    def _do_add_vips(self, inst: Instance, action: ev.AddVips) -> None:
        labels = self._labels(inst)
        failed = []
        for vip in action.vips:
            inst.removing_vips.discard(str(vip))
            try:
                if self.addrs.add(inst.ifname, vip, label=labels.get(str(vip))):
                    # the GARPs come next on the hot path: log once they are out
                    self.loop.call_soon(functools.partial(inst.log.info, "vip_added", vip=str(vip)))
            except Exception as exc:  # netlink errors are reported, never fatal
                failed.append(str(vip))
                inst.log.error("vip_add_failed", vip=str(vip), error=str(exc))
        if failed:
            # A MASTER that cannot hold its VIPs must not keep advertising: FAULT until fixed.
            self._feed(inst, ev.TrackerChanged(name="vip_add_failed", fault=True))
            self.loop.call_later(5.0, self._feed, inst, ev.TrackerChanged(name="vip_add_failed", fault=False))

    def _remove_vips(self, inst: Instance, vips: Any, *, stale: bool = False) -> None:
        for vip in vips:
            inst.removing_vips.add(str(vip))
            try:
                removed = self.addrs.remove(inst.ifname, vip)
            except Exception as exc:
                inst.log.error("vip_remove_failed", vip=str(vip), error=str(exc))
                continue
            if stale and removed:
                inst.log.warning("stale_vip_removed", vip=str(vip), note="left behind by an earlier run")
            elif removed:
                inst.log.info("vip_removed", vip=str(vip))

    def _do_announce(self, inst: Instance, action: ev.AnnounceVips) -> None:
        try:
            self.announcer.announce(inst.ifname, action.vips, repeat=action.repeat)
        except OSError as exc:
            inst.log.warning("announce_failed", error=str(exc))
        inst.log.debug(
            "vips_announced", vips=[str(v) for v in action.vips], repeat=action.repeat, reason=action.reason
        )

    def _do_state_changed(self, inst: Instance, action: ev.StateChanged, **extra: Any) -> None:
        inst.log.info(
            "state_changed",
            **{"from": action.old.value, "to": action.new.value},
            reason=action.reason,
            priority=action.priority,
            epoch=action.epoch,
            **extra,
        )
        if action.new is ev.State.MASTER and self.epochs is not None:
            try:
                self.epochs.save(inst.name, action.epoch)
            except OSError as exc:
                inst.log.warning("epoch_save_failed", error=str(exc))
        if self.ipvs is not None:
            self.ipvs.set_master(self._any_master())
        if action.new is ev.State.INIT and action.old is ev.State.INIT:
            return
        self._notify(inst, action)

    def _notify(self, inst: Instance, action: ev.StateChanged) -> None:
        from pyvrrp.adapters.notify import NotifyScripts, event_from_state_change

        spec = inst.spec
        event = event_from_state_change(
            inst.name, action, base_priority=inst.router.config.priority, vips=inst.router.config.vips
        )
        scripts = NotifyScripts(
            notify=spec.notify,
            notify_master=spec.notify_master,
            notify_backup=spec.notify_backup,
            notify_fault=spec.notify_fault,
            notify_stop=spec.notify_stop,
        )
        if not scripts.is_empty():
            self.notifier.submit(event, scripts)

    def _do_takeover_pending(self, inst: Instance, action: Any) -> None:
        inst.log.info("takeover_pending", epoch=getattr(action, "epoch", None))
        if inst.name in self.group_of and not self._guarded(inst.spec):
            return  # the sync group answers (pyvrrp.proto.syncgroup: all members or none)
        if inst.pending_takeover is not None:
            inst.pending_takeover.cancel()
        inst.pending_takeover = self._spawn(self._decide_takeover(inst, action))

    async def _decide_takeover(self, inst: Instance, action: Any) -> None:
        """Run the takeover guards (VIP probe, fence hook) and answer the engine."""
        allow, reason = True, "no guard configured"
        spec = inst.spec
        snap = inst.router.snapshot(now=clock.monotonic())
        # Preemption (a lower-priority master is still advertising, SM-07) is not "the master
        # went silent": that master is alive and yields on our first advert (SM-12), so the
        # VIP probe and the fence hook do not apply; only the gateway verdict does.
        preempting = (
            inst.last_lower_rx is not None
            and clock.monotonic() - inst.last_lower_rx < snap.master_down_interval_s
        )
        try:
            if inst.gateway is not None:
                allow, reason = inst.gateway.takeover_verdict()
            if allow and preempting:
                reason = "preempting a lower-priority master"
            if allow and not preempting and spec.probe_vip_before_takeover:
                from pyvrrp.splitbrain.conflict import probe_vip_once

                for vip, _ in _vip_list(spec):
                    if vip.version != 4:
                        continue
                    mac = await probe_vip_once(inst.ifname, vip.ip, timeout=0.05)
                    if mac is not None:
                        allow, reason = False, f"{vip.ip} still answered by {mac}: master host alive"
                        break
            if allow and not preempting and spec.fence_script:
                from pyvrrp.splitbrain.fence import run_fence

                result = await run_fence(
                    spec.fence_script,
                    timeout_s=float(spec.fence_timeout or 5),
                    name=inst.name,
                    epoch=getattr(action, "epoch", 0),
                    old_master=str(snap.master_ip or ""),
                )
                if result.ok:
                    reason = "fence succeeded"
                elif (spec.fence_failure or "stay-backup") == "proceed":
                    inst.log.warning("fence_failed_proceeding", reason=result.reason)
                    reason = f"fence failed ({result.reason}); proceeding as configured"
                else:
                    allow, reason = False, f"fence failed: {result.reason}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            allow, reason = False, f"takeover guard error: {exc}"
            inst.log.error("takeover_guard_error", error=str(exc))
        inst.pending_takeover = None
        gname = self.group_of.get(inst.name)
        routers = self._group_routers(gname) if gname is not None else None
        if allow and gname is not None and routers is not None:
            # the guards allow it; the group decides whether every member can go MASTER now
            for member, item in self.groups[gname].request_takeover(inst.name, routers):
                self._feed(self.instances[member], item)
            return
        self._feed(inst, ev.TakeoverVerdict(allow=allow, reason=reason))

    # ------------------------------------------------------------ netlink

    async def _watch_netlink(self) -> None:
        try:
            async for event in self.netlink.events():
                kind = type(event).__name__
                if kind == "LinkEvent":
                    for inst in list(self.instances.values()):
                        if inst.ifname == event.ifname and not inst.spec.dont_track_primary:
                            inst.log.info("link_changed", up=event.up, deleted=event.deleted)
                            self._feed(inst, ev.LinkChanged(up=event.up))
                    if self.trackers is not None:
                        self.trackers.link_changed(event.ifname, event.up)
                elif kind == "AddressEvent" and not event.added:
                    self._on_address_removed(event.ifname, event.address)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("netlink_monitor_failed", error=str(exc))

    def _on_address_removed(self, ifname: str, address: Any) -> None:
        for inst in self.instances.values():
            if inst.ifname != ifname:
                continue
            key = str(ipaddress.ip_interface(str(address)))
            if key in inst.removing_vips:
                inst.removing_vips.discard(key)
                continue
            if inst.router.state is ev.State.MASTER and key in {str(v) for v in inst.router.config.vips}:
                inst.log.warning(
                    "vip_deleted_externally", vip=key, action="leaving MASTER; re-election follows"
                )
                # keepalived: a VIP deleted under a MASTER sends the instance back through election.
                self._feed(inst, ev.TrackerChanged(name="vip_deleted", fault=True))
                self._feed(inst, ev.TrackerChanged(name="vip_deleted", fault=False))

    # ------------------------------------------------------------- control

    def views(self, name: str | None = None) -> list[dict[str, Any]]:
        now = clock.monotonic()
        wall = clock.wall_time()
        out = []
        for inst in self.instances.values():
            if name is not None and inst.name != name:
                continue
            snap = inst.router.snapshot(now=now)
            view = instance_view(
                snap,
                now=now,
                wall_now=wall,
                interface=inst.ifname,
                unicast_peers=[str(p) for p in inst.router.config.unicast_peers],
                extra=inst.extra,
            )
            view["drops_socket"] = dict(self.socket_drops)
            if inst.gateway is not None:
                view["isolated"] = inst.gateway.isolated
                view["gateway_check"] = inst.gateway.snapshot()
            if inst.conflict is not None:
                view["conflict"] = inst.conflict.snapshot()
            if self.trackers is not None:
                view["trackers"] = self.trackers.snapshot(inst.name)
            out.append(view)
        return out

    async def _op_state(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("instance")
        if name is not None and name not in self.instances:
            from pyvrrp.runtime.control import ControlError

            raise ControlError(
                "no_such_instance", f"no instance named {name!r}; have: {', '.join(self.instances) or 'none'}"
            )
        return {
            "router_id": self.config.global_defs.router_id,
            "pid": os.getpid(),
            "uptime_s": round(clock.monotonic() - self.started_at, 3),
            "config": self.config_path,
            "instances": self.views(name),
        }

    async def _op_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def _op_reload(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.reload()

    # -------------------------------------------------------------- reload

    async def reload(self) -> dict[str, Any]:
        """SIGHUP: re-read the config; apply only the difference; keep running on errors."""
        try:
            new = load_config(self.config_path, config_id=self.config_id)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload_rejected", path=issue.path, error=issue.message)
            return {"reloaded": False, "errors": [f"{i.path}: {i.message}" for i in exc.issues]}
        except OSError as exc:
            log.error("reload_rejected", error=str(exc))
            return {"reloaded": False, "errors": [str(exc)]}
        old_names = set(self.instances)
        new_names = set(new.vrrp_instance)
        removed, added, kept = old_names - new_names, new_names - old_names, old_names & new_names
        self.config = new
        self._build_groups(new)
        for name in sorted(removed):
            inst = self.instances[name]
            self._stop_instance(inst)
            del self.instances[name]
            log.info("instance_removed", instance=name)
        changed = []
        for name in sorted(kept):
            inst = self.instances[name]
            spec = new.vrrp_instance[name]
            if spec == inst.spec:
                continue
            family = _family_of(spec)
            if spec.interface != inst.ifname or family != inst.family:
                self._stop_instance(inst)
                del self.instances[name]
                try:
                    await self._add_instance(name, spec)
                except StartupError as exc:
                    log.error("instance_start_failed", instance=name, error=str(exc))
                    continue
            else:
                primary = self._primary_address(spec, family)
                old_spec, inst.spec = inst.spec, spec
                if (spec.gateway_check, spec.conflict_detection) != (
                    old_spec.gateway_check,
                    old_spec.conflict_detection,
                ):
                    for guard in (inst.gateway, inst.conflict):
                        if guard is not None:
                            await guard.stop()
                    inst.gateway = inst.conflict = None
                    self._feed(inst, ev.TrackerChanged(name="gateway"))  # neutral until re-proven
                    await self._start_guards(inst)
                for action in inst.router.reconfigure(
                    self._router_config(name, spec, primary, family), now=clock.monotonic()
                ):
                    self._execute(inst, action)
                self._arm(inst)
            changed.append(name)
        for name in sorted(added):
            try:
                await self._add_instance(name, new.vrrp_instance[name])
            except StartupError as exc:
                log.error("instance_start_failed", instance=name, error=str(exc))
        old_trackers = self.trackers
        if old_trackers is not None:
            old_trackers.stop()
        self.trackers = self._build_trackers(new)
        if old_trackers is not None:
            self.trackers.adopt(old_trackers)
        before, self._tracker_names = self._tracker_names, {}
        self.trackers.report_all()
        for instance, names in before.items():
            for gone in names - self._tracker_names.get(instance, set()):
                if instance in self.instances:  # a tracker removed from the config: neutral again
                    self._feed(self.instances[instance], ev.TrackerChanged(name=gone))
        self.trackers.start()
        if self.ipvs is not None:
            self.ipvs.reconfigure(new)
        elif new.virtual_server:
            await self._start_ipvs()
        log.info("reloaded", added=sorted(added), removed=sorted(removed), changed=changed)
        self._write_fast_start()
        _freeze_heap(collect=True)
        return {"reloaded": True, "added": sorted(added), "removed": sorted(removed), "changed": changed}


_TIMER = object()


@dataclass(frozen=True, slots=True)
class _At:
    """An input fed with an explicit time (see ``Daemon._feed``)."""

    event: Any
    at: float


TIMER_LEAD_S = 0.002


def _freeze_heap(*, collect: bool) -> None:
    """Put what exists now (modules, config models, engines) out of the cyclic collector's reach.

    A full collection of the running daemon's heap (~37 000 objects, mostly imports and
    pydantic schemas) takes ~12 ms here; CPython runs one whenever enough long-lived objects
    have piled up, and a 12 ms pause at the wrong moment delays an advert (10 ms intervals),
    a takeover or its GARP.  Frozen objects are never traversed, so later collections only
    look at what was created since: well under 1 ms.  After a reload the old config is
    garbage, so the reload unfreezes, collects once (the reload itself takes longer than
    that) and freezes again.
    """
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def run_daemon(
    config_path: str,
    *,
    config_id: str | None = None,
    control_socket: str | None = None,
    keep_ipvs: bool = False,
) -> int:
    """Entry point used by ``pyvrrp run``: load, validate, run; errors become one-line messages."""
    from pyvrrp.runtime import fast_start

    try:
        config = load_config(config_path, config_id=config_id)
        daemon = Daemon(
            config_path, config, config_id=config_id, control_socket=control_socket, keep_ipvs=keep_ipvs
        )
        return asyncio.run(daemon.run())
    finally:
        if (boot := fast_start.current()) is not None:
            boot.abandon()  # the daemon never took over (bad config, start-up error): release
