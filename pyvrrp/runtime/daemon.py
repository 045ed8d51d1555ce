"""The pyvrrp daemon's life cycle: start, serve, reload, stop.

Theory of operation
-------------------
Every ``vrrp_instance`` becomes one pure engine
(:class:`~pyvrrp.proto.router.VirtualRouter`) wrapped in an
:class:`~pyvrrp.runtime.instance.Instance`.  Three parts run them:

- :class:`~pyvrrp.runtime.supervisor.Supervisor` is the one hot path: VRRP
  socket -> decode -> engine -> actions, and the engines' timers;
- :class:`~pyvrrp.runtime.executor.Executor` performs the actions (adverts,
  VIPs through netlink, GARP/NA, the state-change bookkeeping);
- :class:`Daemon` (here) builds both, wires the other inputs to the supervisor
  (netlink link/address events, trackers, the split-brain guards of
  :mod:`pyvrrp.splitbrain`, signals, the control socket) and owns start-up,
  reload and shutdown.

Start-up, in order: the control socket (a second daemon is refused before it
touches anything), every instance resolved (interface, primary address) with
stale VIPs of a crashed run removed, trackers report their first results (an
instance whose check already fails starts in FAULT), Startup for every
instance, then the sockets are read.  A reload is all-or-nothing: the new
config is validated and everything it needs is resolved before anything
running is touched (:meth:`Daemon.reload`, :mod:`pyvrrp.config.diff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
from collections.abc import Coroutine
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.arp import Announcer, mac_to_bytes
from pyvrrp.adapters.netlink import AddressEvent, LinkEvent, Netlink
from pyvrrp.adapters.netns import NamespaceError, enter_namespace
from pyvrrp.adapters.notify import NotifyRunner
from pyvrrp.adapters.systemd import SdNotifier
from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.base import clock
from pyvrrp.config.diff import ConfigDiff, diff
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.config.models import Config, VrrpInstance
from pyvrrp.ipvs.manager import IpvsManager
from pyvrrp.proto import events as ev
from pyvrrp.proto.router import RouterConfig, VirtualRouter
from pyvrrp.proto.syncgroup import SyncGroup
from pyvrrp.runtime.control import ControlError, ControlServer, SocketInUse
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.held import HeldState
from pyvrrp.runtime.instance import Instance
from pyvrrp.runtime.logging import install_asyncio_logging
from pyvrrp.runtime.state_view import instance_view
from pyvrrp.runtime.supervisor import Supervisor
from pyvrrp.runtime.trackers import Trackers
from pyvrrp.splitbrain.conflict import ConflictMonitor
from pyvrrp.splitbrain.epoch import EpochStore
from pyvrrp.splitbrain.gateway import GatewayMonitor
from pyvrrp.splitbrain.takeover import (
    ConflictOutcome,
    confirm_conflict,
    decide_takeover,
    is_guarded,
    is_preempting,
)

if TYPE_CHECKING:
    from pyvrrp.runtime.announce import Announcements
    from pyvrrp.runtime.metrics import MetricsServer

__all__ = ["Daemon", "StartupError", "run_daemon"]

log = structlog.get_logger("pyvrrp")

IPAddress = IPv4Address | IPv6Address

WAITING_FAULT = "interface"
"""The fault an instance holds while its interface is missing or has no address (``waiting_for``)."""
_UNSPECIFIED: dict[int, IPAddress] = {4: IPv4Address("0.0.0.0"), 6: IPv6Address("::")}

IPVS_STOP_BOUND_S = 0.8
NOTIFY_STOP_BUDGET_S = 2.0
"""At SIGTERM, IPVS clean-up and notify_stop run side by side within these bounds."""


class StartupError(Exception):
    """A problem that prevents an instance (or the daemon) from starting; for the operator."""


def router_config(
    name: str, spec: VrrpInstance, primary: IPv4Address | IPv6Address, *, in_group: bool
) -> RouterConfig:
    """The engine's parameters for one instance (pure: model in, plain values out)."""
    auth_type, auth_data = 0, b""
    if spec.authentication is not None and spec.version == 2 and spec.authentication.auth_type == "PASS":
        auth_type, auth_data = 1, spec.authentication.auth_pass.encode()[:8]
    cfg = RouterConfig(
        name=name,
        vrid=spec.virtual_router_id,
        version=spec.version,
        family=spec.family,
        priority=spec.priority,
        advert_interval_cs=spec.advert_int_cs,
        vips=spec.vips,
        primary_address=primary,
        preempt=spec.preempt,
        preempt_delay_s=float(spec.preempt_delay),
        start_as_master=spec.state == "MASTER",
        auth_type=auth_type,
        auth_data=auth_data,
        v3_ipv4_pseudo_header=not spec.v3_checksum_as_v2,
        unicast_peers=tuple(spec.unicast_peer),
        check_ttl=not spec.unicast_peer,
        lower_prio_advert=not spec.lower_prio_no_advert,
        garp_master_repeat=spec.garp_master_repeat,
        garp_master_delay_s=float(spec.garp_master_delay),
        garp_master_refresh_s=float(spec.garp_master_refresh),
        garp_lower_prio_repeat=spec.garp_lower_prio_repeat,
        garp_lower_prio_delay_s=float(spec.garp_lower_prio_delay),
        down_timer_adverts=spec.down_timer_adverts,
        takeover_gate=is_guarded(spec),
        conflict_resolve=bool(spec.conflict_detection and spec.conflict_detection.resolve),
    )
    return SyncGroup.member_config(cfg) if in_group else cfg


class Daemon:
    """Runs every configured instance until stopped."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        *,
        config_id: str | None = None,
        control_socket: str | None = None,
        keep_ipvs: bool = False,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.config_id = config_id
        self.keep_ipvs = keep_ipvs  # leave our IPVS services in the kernel on stop (keepalived -I)
        self.control_path = control_socket or str(config.global_defs.control_socket)
        self.started_at = clock.monotonic()
        self._wall = clock.WallAnchor()  # `state` renders one instant the same every time
        self.stop_event = asyncio.Event()
        # one pyroute2 client: interface facts, VIPs (synchronous, so that SendAdvert ->
        # AddVips -> AnnounceVips holds: the VIPs exist before the GARPs) and events
        self.netlink = Netlink()
        self.announcer = Announcer()
        self.notifier = NotifyRunner(timeout_s=float(config.global_defs.notify_timeout))
        self.epochs = _epoch_store(config)
        self.control = ControlServer(self.control_path)
        self.systemd = SdNotifier.from_environ()  # no-op outside a Type=notify unit
        self.held = HeldState.in_dir(Path(self.control_path).parent)
        self.ipvs: IpvsManager | None = None
        self.trackers: Trackers | None = None
        self._tracker_names: dict[str, set[str]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._confirming: set[str] = set()
        self._released = False
        self._ipvs_ready = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._executor: Executor | None = None
        self.metrics: MetricsServer | None = None
        self.bgp: Announcements | None = None
        self._withdrawing = False

    @property
    def supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "the daemon is not running"
        return self._supervisor

    @property
    def instances(self) -> dict[str, Instance]:
        """The running instances (none before run())."""
        return self._supervisor.instances if self._supervisor is not None else {}

    # -------------------------------------------------------------- life cycle

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, then stop cleanly.  Returns the exit code."""
        loop = asyncio.get_running_loop()
        install_asyncio_logging(loop)  # asyncio's own error reports as log events, never bare tracebacks
        self._supervisor = sup = Supervisor(loop)
        self._executor = Executor(
            loop=loop,
            netlink=self.netlink,
            announcer=self.announcer,
            notifier=self.notifier,
            epochs=self.epochs,
            held=self.held,
            feed=sup.feed,
            on_takeover_pending=self._on_takeover_pending,
            on_state_changed=self._on_state_changed,
        )
        sup.bind(self._executor)

        for op, handler in (("state", self._op_state), ("reload", self._op_reload), ("ping", self._op_ping)):
            self.control.register(op, handler)
        try:
            await self.control.start()
        except SocketInUse as exc:
            raise StartupError(f"{exc}; is another pyvrrp running? stop it or use --socket") from None
        except OSError as exc:
            raise StartupError(f"control socket {self.control_path}: {exc}") from None
        await self._start_metrics()
        await self._release_held()  # the config has passed validation; no other daemon runs

        self._set_groups(self.config)
        for name, spec in self.config.vrrp_instance.items():
            await self._add_instance(name, spec, wait=True)
        self.trackers = self._build_trackers(self.config)
        self.trackers.report_all()  # before Startup: a failing check starts the instance in FAULT
        delay = float(self.config.global_defs.vrrp_startup_delay)
        if delay > 0:  # keepalived vrrp_startup_delay: let slow links and bonds settle first
            log.info("startup_delay", seconds=delay)
            await asyncio.sleep(delay)
        if self.config.virtual_server:  # answered at once; waits for the IPVS start below
            self.control.register("ipvs", self._op_ipvs)
        for inst in sup.instances.values():
            self._startup(inst)
        await self._start_bgp()
        sup.read_sockets()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        self.trackers.start()
        if self.config.virtual_server:
            await self._start_ipvs()
        monitor = asyncio.ensure_future(self._watch_netlink())
        log.info(
            "daemon_started", instances=len(sup.instances), control_socket=self.control_path, pid=os.getpid()
        )
        self.systemd.ready(self._summary())
        if self.systemd.watchdog_ping_interval_s is not None:
            self._spawn(self.systemd.run_watchdog())  # pinged from this loop: a hung loop is restarted
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
        With BGP announcements, the withdraw goes first: the routes are withdrawn, ExaBGP's
        acks awaited and ``withdraw_drain`` waited, so the router has moved the traffic away
        before the VIPs go (a second signal releases at once).
        """
        if self.bgp is not None and self.bgp.any_announced() and not self._withdrawing:
            self._withdrawing = True
            self._spawn(self._withdraw_then_stop())
            return
        self._release_all()
        self.stop_event.set()

    async def _withdraw_then_stop(self) -> None:
        assert self.bgp is not None
        try:
            spent = await self.bgp.withdraw_all()
            log.info("bgp_withdraw_done", seconds=round(spent, 3), then="releasing the VIPs")
        finally:
            self._release_all()
            self.stop_event.set()

    # --------------------------------------------------------------------- BGP

    async def _start_bgp(self) -> None:
        """``announce`` tables (issue 17): nothing is imported or started without one."""
        if not any(i.announce for i in self.config.vrrp_instance.values()) and not any(
            getattr(v, "announce", None) for v in self.config.virtual_server.values()
        ):
            return
        from pyvrrp.runtime.announce import Announcements, entries_from_config

        def role(name: str) -> str | None:
            inst = self.instances.get(name)
            return inst.router.state.value if inst is not None else "INIT"

        def isolated(name: str) -> bool:
            inst = self.instances.get(name)
            return bool(inst is not None and inst.gateway is not None and inst.gateway.isolated)

        def health(vs_key: str) -> tuple[int, int] | None:
            return self.ipvs.health_counts(vs_key) if self.ipvs is not None else (0, 0)

        def speaker_lost(name: str, lost: bool) -> None:
            inst = self.instances.get(name)
            if inst is not None:
                self.supervisor.feed(inst, ev.TrackerChanged(name="bgp_speaker", fault=lost))

        self.bgp = Announcements(
            entries_from_config(self.config),
            role=role,
            isolated=isolated,
            health=health,
            on_speaker_lost=speaker_lost,
        )
        if self.bgp.exabgp is not None:
            self.control.register("bgp_follow", self.bgp.exabgp.follow)
            self.control.register("bgp_ack", self.bgp.exabgp.ack)
            self.control.register("bgp_gone", self.bgp.exabgp.gone)
        await self.bgp.start()

    def _release_all(self) -> None:
        """Stop every instance (priority 0 from a MASTER, VIPs removed), then the trackers."""
        if self._released or self._supervisor is None:
            return
        self._released = True
        for inst in list(self.instances.values()):
            self._stop_instance(inst)
        if self.trackers is not None:
            self.trackers.stop()  # same callback: no tracker result can reach a stopped instance

    async def shutdown(self) -> None:
        """Every MASTER sends priority 0 and releases its VIPs; notify_stop runs; sockets close."""
        self.systemd.stopping()
        if self.bgp is not None and not self._released:
            with contextlib.suppress(Exception):
                await self.bgp.withdraw_all()
        self._release_all()
        pending: list[Coroutine[Any, Any, Any]] = []
        if self.ipvs is not None:
            pending.append(asyncio.wait_for(self.ipvs.stop(keep=self.keep_ipvs), timeout=IPVS_STOP_BOUND_S))
        # notify_stop runs within its budget even behind a hung script (adapters/notify.py)
        pending.append(self.notifier.stop(timeout_s=NOTIFY_STOP_BUDGET_S))
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)
        if self.keep_ipvs:
            self.held.ipvs_state = None  # kept on purpose: `pyvrrp cleanup` must not remove them
        if self._executor is not None:
            self._executor.flush_held()
        if self._supervisor is not None:
            for sock in self._supervisor.sockets.values():
                with contextlib.suppress(OSError):
                    sock.close()
        self.announcer.close()
        if self.bgp is not None:
            await self.bgp.close()
        await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        self.netlink.close()
        log.info("daemon_stopped")
        self.systemd.close()

    async def _release_held(self) -> None:
        """Remove what an earlier run recorded as held (a crash, kill -9): exactly that.

        A VIP the new config no longer has is removed too (keepalived would leave it
        answering ARP forever); IPVS services it created go when this config has none
        (otherwise the IPVS manager reconciles them itself).
        """
        try:
            old = HeldState.load(self.held.path)
        except ValueError as exc:
            log.warning("held_state_unreadable", error=str(exc), action="ignored")
            old = HeldState(self.held.path)
        for ifname, vip in sorted(old.vips):
            try:
                removed = self.netlink.remove(ifname, ip_interface(vip))
            except (OSError, ValueError) as exc:
                log.error("vip_remove_failed", iface=ifname, vip=vip, error=str(exc))
                continue
            if removed:
                log.warning("stale_vip_removed", iface=ifname, vip=vip, note="held by an earlier run")
        if old.ipvs_state and not self.config.virtual_server:
            await release_ipvs(old.ipvs_state)
        self.held.vips, self.held.ipvs_state = set(), None
        self._execute().flush_held()

    async def _start_metrics(self) -> None:
        """``global_defs.metrics_listen``: the Prometheus listener (off by default)."""
        listen = self.config.global_defs.metrics_listen
        if listen is None:
            return
        from pyvrrp.runtime.metrics import MetricsServer  # prometheus-client only when asked for

        self.metrics = MetricsServer(
            self.views,
            listen=listen,
            ipvs=lambda: self.ipvs.snapshot() if self.ipvs is not None else None,
            notifier=self.notifier,
            keepalived_names=self.config.global_defs.metrics_keepalived_names,
            bgp=lambda: self.bgp.view() if self.bgp is not None else None,
        )
        try:
            await self.metrics.start()
        except OSError as exc:
            self.metrics = None
            await self.control.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"metrics_listen {listen}: {reason}") from None

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference until it finishes."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --------------------------------------------------------------- instances

    def _set_groups(self, config: Config) -> None:
        guarded = {n for n, s in config.vrrp_instance.items() if is_guarded(s)}
        self.supervisor.set_groups(config.vrrp_sync_group, guarded, set(config.vrrp_instance))

    def _primary_address(self, spec: VrrpInstance) -> IPv4Address | IPv6Address:
        """The address adverts are sent from (IPv4 primary / IPv6 link-local, or configured).

        Raises:
            StartupError: the interface does not exist or has no usable address.
        """
        src = spec.unicast_src_ip or spec.mcast_src_ip
        if src is not None:
            if not self._link_exists(spec.interface):
                raise StartupError(f"interface {spec.interface!r} not found; create it or fix the config")
            return ip_address(src)
        try:
            primary = self.netlink.primary_address(spec.interface, spec.family)
        except InterfaceNotFound as exc:
            raise StartupError(f"{exc}; create the interface or fix the config") from None
        if primary is None:
            what = "IPv4 address" if spec.family == 4 else "IPv6 link-local address"
            raise StartupError(f"interface {spec.interface} has no {what} to send adverts from")
        return primary

    def _link_exists(self, ifname: str) -> bool:
        try:
            self.netlink.link_index(ifname)
        except InterfaceNotFound:
            return False
        return True

    async def _add_instance(
        self, name: str, spec: VrrpInstance, *, primary: IPAddress | None = None, wait: bool = False
    ) -> Instance:
        """Create one instance (not started): resolve its interface, clean stale VIPs, guards.

        With ``wait`` (daemon start), an interface that is missing or has no address to send
        from does not stop the daemon: the instance waits in FAULT (keepalived's behaviour)
        and :meth:`_attach_waiting` brings it up when netlink reports the interface ready.

        Raises:
            StartupError: with the config key path, for the operator (only without ``wait``).
        """
        sup = self.supervisor
        waiting = None
        if primary is None:
            try:
                primary = self._primary_address(spec)
            except StartupError as exc:
                if not wait:
                    raise StartupError(f"vrrp_instance.{name}.interface: {exc}") from None
                waiting, primary = str(exc), _UNSPECIFIED[spec.family]
        epoch = self.epochs.load(name) if self.epochs is not None else 0
        router = VirtualRouter(router_config(name, spec, primary, in_group=name in sup.group_of), epoch=epoch)
        bound = log.bind(instance=name, iface=spec.interface, vrid=spec.virtual_router_id)
        inst = Instance(name=name, spec=spec, router=router, log=bound, waiting_for=waiting)
        sup.instances[name] = inst
        if waiting is not None:
            inst.log.warning("instance_waiting", reason=waiting, action="FAULT until the interface is ready")
            sup.feed(inst, ev.TrackerChanged(name=WAITING_FAULT, fault=True))  # INIT -> FAULT at Startup
            return inst
        await self._attach(inst)
        return inst

    async def _attach(self, inst: Instance) -> None:
        """Give a resolved instance its socket, clean stale VIPs, open the GARP socket, guards."""
        sup, spec = self.supervisor, inst.spec
        sock = sup.sockets.get(inst.key)
        if sock is None:
            # One socket per (interface, family), shared by every instance on it and
            # demultiplexed by VRID; the source address is set per advert.
            sock = await VrrpSocket(spec.interface, spec.family).open()
            sup.add_socket(inst.key, sock)
        inst.sock = sock
        # A crashed run may have left our VIPs behind: remove them before the first election
        # (keepalived does the same: "removing VIPs" at start).
        self._execute().remove_vips(inst, inst.router.config.vips, stale=True)
        self.netlink.prepare(spec.interface, inst.router.config.vips, inst.labels())
        try:  # open the AF_PACKET socket now, not on the first (hot) transition
            self.announcer.sender(spec.interface)
        except OSError as exc:
            inst.log.warning("announce_socket_failed", error=str(exc))
        try:
            inst.mac = mac_to_bytes(self.netlink.link_mac(spec.interface))
        except (OSError, LookupError, ValueError) as exc:
            inst.log.warning("link_mac_unknown", error=str(exc))
        await self._start_guards(inst)

    async def _attach_waiting(self, ifname: str) -> None:
        """Netlink says something changed on ``ifname``: bring up the instances waiting for it."""
        for inst in [i for i in self.instances.values() if i.waiting_for and i.ifname == ifname]:
            try:
                primary = self._primary_address(inst.spec)
            except StartupError as exc:
                inst.waiting_for = str(exc)  # e.g. the link exists now, its address not yet
                continue
            cfg = router_config(inst.name, inst.spec, primary, in_group=inst.name in self.supervisor.group_of)
            for action in inst.router.reconfigure(cfg, now=clock.monotonic()):
                self._execute().execute(inst, action)
            try:
                await self._attach(inst)
            except OSError as exc:
                inst.waiting_for = f"cannot open the VRRP socket on {ifname}: {exc}"
                continue
            inst.waiting_for = None
            inst.log.info("interface_ready", primary=str(primary))
            if not inst.spec.dont_track_primary:
                self.supervisor.feed(inst, ev.LinkChanged(up=self._link_up(ifname)))
            self.supervisor.feed(inst, ev.TrackerChanged(name=WAITING_FAULT, fault=False))

    def _link_up(self, ifname: str) -> bool:
        try:
            return bool(self.netlink.link_is_up(ifname))
        except InterfaceNotFound:
            return False

    def _execute(self) -> Executor:
        assert self._executor is not None
        return self._executor

    def _startup(self, inst: Instance) -> None:
        # A link that is already down is reported before Startup: INIT -> FAULT directly,
        # never a spurious BACKUP (and notify_backup) first.
        if not inst.waiting_for and not inst.spec.dont_track_primary and not self._link_up(inst.ifname):
            self.supervisor.feed(inst, ev.LinkChanged(up=False))
        self.supervisor.feed(inst, ev.Startup())

    def _stop_instance(self, inst: Instance) -> None:
        self.supervisor.feed(inst, ev.Shutdown())
        self.supervisor.disarm(inst)
        if inst.pending_takeover is not None:
            inst.pending_takeover.cancel()
        for guard in (inst.gateway, inst.conflict):
            if guard is not None:
                self._spawn(guard.stop())
        inst.gateway = inst.conflict = None
        # Whatever state we ended in, never leave a VIP behind.
        self._execute().remove_vips(inst, inst.router.config.vips)

    # ------------------------------------------------------ split-brain guards

    async def _start_guards(self, inst: Instance) -> None:
        """Gateway arbitration and dual-master detection (issue #4), when configured."""
        spec = inst.spec
        if spec.gateway_check is not None:
            inst.gateway = GatewayMonitor(inst.ifname, spec.gateway_check)
            self._feed_isolation(inst)  # unknown counts as isolated until proven otherwise
            inst.gateway.on_change = lambda _isolated: self._feed_isolation(inst)
            await inst.gateway.start()
        if spec.conflict_detection is not None:

            def held(i: Instance = inst) -> tuple[ev.IPInterface, ...]:
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

    @staticmethod
    def _on_conflict_cleared(inst: Instance, vip: IPv4Address) -> None:
        inst.log.info("dual_master_conflict_cleared", vip=str(vip))

    def _feed_isolation(self, inst: Instance) -> None:
        assert inst.gateway is not None
        delta, fault = inst.gateway.tracker_update()
        inst.log.info("gateway_arbitration", isolated=inst.gateway.isolated, delta=delta, fault=fault)
        self.supervisor.feed(inst, ev.TrackerChanged(name="gateway", delta=delta, fault=fault))

    def _on_conflict(self, inst: Instance, vip: IPv4Address, peer_mac: str) -> None:
        state = inst.router.state.value
        inst.log.warning("dual_master_conflict", vip=str(vip), peer_mac=peer_mac, state=state)
        self._execute().notify_conflict(inst, vip, peer_mac)
        if inst.mac and inst.router.state is ev.State.MASTER and inst.name not in self._confirming:
            self._confirming.add(inst.name)
            self._spawn(self._confirm_conflict(inst, vip))

    async def _confirm_conflict(self, inst: Instance, vip: IPv4Address) -> None:
        def still_master() -> bool:
            return inst.router.state is ev.State.MASTER and self.instances.get(inst.name) is inst

        try:
            grace = min(1.0, max(0.05, inst.router.snapshot(now=clock.monotonic()).advert_interval_s))
            outcome, peer = await confirm_conflict(
                inst.ifname, vip, our_mac=inst.mac, grace_s=grace, still_master=still_master
            )
            inst.log.info(f"dual_master_conflict_{outcome.value}", vip=str(vip))
            if outcome is ConflictOutcome.CONFIRMED and peer is not None:
                self.supervisor.feed(inst, ev.ConflictDetected(our_mac=inst.mac, peer_mac=peer))
        except Exception as exc:
            inst.log.error("conflict_confirm_failed", error=str(exc))
        finally:
            self._confirming.discard(inst.name)

    def _on_takeover_pending(self, inst: Instance, action: ev.TakeoverPending) -> None:
        inst.log.info("takeover_pending", epoch=action.epoch)
        if inst.name in self.supervisor.group_of and not is_guarded(inst.spec):
            return  # the sync group answers (pyvrrp.proto.syncgroup: all members or none)
        if inst.pending_takeover is not None:
            inst.pending_takeover.cancel()
        inst.pending_takeover = self._spawn(self._takeover(inst, action))

    async def _takeover(self, inst: Instance, action: ev.TakeoverPending) -> None:
        now = clock.monotonic()
        snap = inst.router.snapshot(now=now)
        # Preemption (a lower-priority master still advertising) is not "the master went silent".
        preempting = is_preempting(
            inst.last_lower_rx, now=now, master_down_interval_s=snap.master_down_interval_s
        )
        verdict = await decide_takeover(
            inst.spec,
            name=inst.name,
            gateway=inst.gateway,
            preempting=preempting,
            epoch=action.epoch,
            old_master=str(snap.master_ip or ""),
        )
        inst.pending_takeover = None
        if verdict.allow and self.supervisor.request_group_takeover(inst):
            return  # the guards allow it; the group decides whether every member can go now
        self.supervisor.feed(inst, ev.TakeoverVerdict(allow=verdict.allow, reason=verdict.reason))

    def _on_state_changed(self, inst: Instance, action: ev.StateChanged) -> None:
        if self.ipvs is not None:
            self.ipvs.set_master(self.supervisor.any_master())
        if self.bgp is not None:
            self.bgp.poke()
        self.systemd.status(self._summary())

    def _summary(self) -> str:
        """One line for systemd's STATUS=: every instance and its state."""
        states = ", ".join(f"{i.name} {i.router.state.value}" for i in self.instances.values())
        return f"{len(self.instances)} instances: {states or 'none'}"

    # ---------------------------------------------------------------- trackers

    def _build_trackers(self, config: Config) -> Trackers:
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
            self.supervisor.feed(inst, ev.TrackerChanged(name=name, delta=delta, fault=fault))

    # -------------------------------------------------------------------- IPVS

    async def _start_ipvs(self) -> None:
        """IPVS services and real-server health checks (issue #5); VRRP goes on without ip_vs."""
        state_file = os.path.join(str(self.config.global_defs.state_dir), "ipvs-owned.json")
        self.ipvs = IpvsManager(self.config, state_file=state_file)
        self.held.ipvs_state = state_file
        self._execute().flush_held()
        self.ipvs.set_master(self.supervisor.any_master())
        await self.ipvs.start()
        self.control.register("ipvs", self._op_ipvs)
        self._ipvs_ready.set()

    async def _op_ipvs(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.ipvs is None and self.config.virtual_server:
            # The engines start first (a restarted node may be MASTER at once): the IPVS
            # manager follows within a moment; answer with its view, not an empty one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ipvs_ready.wait(), timeout=5.0)
        return self.ipvs.snapshot() if self.ipvs is not None else {"services": []}

    # ----------------------------------------------------------------- netlink

    async def _watch_netlink(self) -> None:
        try:
            async for event in self.netlink.events():
                removal = isinstance(event, AddressEvent) and not event.added
                if not removal and self._is_awaited(event.ifname):
                    await self._attach_waiting(event.ifname)
                if isinstance(event, LinkEvent):
                    for inst in list(self.instances.values()):
                        if inst.ifname == event.ifname and not inst.spec.dont_track_primary:
                            inst.log.info("link_changed", up=event.up, deleted=event.deleted)
                            self.supervisor.feed(inst, ev.LinkChanged(up=event.up))
                    if self.trackers is not None:
                        self.trackers.link_changed(event.ifname, event.up)
                elif isinstance(event, AddressEvent) and not event.added:
                    self._on_address_removed(event.ifname, str(event.address))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("netlink_monitor_failed", error=str(exc))

    def _is_awaited(self, ifname: str) -> bool:
        return any(i.waiting_for and i.ifname == ifname for i in self.instances.values())

    def _on_address_removed(self, ifname: str, key: str) -> None:
        for inst in self.instances.values():
            if inst.ifname != ifname:
                continue
            if key in inst.removing_vips:
                inst.removing_vips.discard(key)
                continue
            if inst.router.state is ev.State.MASTER and key in {str(v) for v in inst.router.config.vips}:
                inst.log.warning(
                    "vip_deleted_externally", vip=key, action="leaving MASTER; re-election follows"
                )
                # keepalived: a VIP deleted under a MASTER sends the instance back through election.
                self.supervisor.feed(inst, ev.TrackerChanged(name="vip_deleted", fault=True))
                self.supervisor.feed(inst, ev.TrackerChanged(name="vip_deleted", fault=False))

    # ----------------------------------------------------------------- control

    def views(self, name: str | None = None) -> list[dict[str, Any]]:
        now = clock.monotonic()
        wall = now + self._wall.offset(wall_now=clock.wall_time(), mono_now=now)
        receive = self.supervisor.rx_view()  # daemon-wide, like drops_socket (issue 15 item 5)
        out = []
        for inst in self.instances.values():
            if name is not None and inst.name != name:
                continue
            view = instance_view(
                inst.router.snapshot(now=now),
                now=now,
                wall_now=wall,
                interface=inst.ifname,
                unicast_peers=[str(p) for p in inst.router.config.unicast_peers],
            )
            view["drops_socket"] = dict(self.supervisor.socket_drops)
            view["receive"] = receive
            view["waiting_for"] = inst.waiting_for
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
        if name is not None and not isinstance(name, str):
            raise ControlError("bad_request", "'instance' must be a string (an instance name)")
        if name is not None and name not in self.instances:
            have = ", ".join(self.instances) or "none"
            raise ControlError("no_such_instance", f"no instance named {name!r}; have: {have}")
        return {
            "router_id": self.config.global_defs.router_id,
            "pid": os.getpid(),
            "uptime_s": round(clock.monotonic() - self.started_at, 3),
            "config": self.config_path,
            "instances": self.views(name),
            **({"announce": self.bgp.view()} if self.bgp is not None else {}),
        }

    async def _op_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def _op_reload(self, params: dict[str, Any]) -> dict[str, Any]:
        allow_empty = params.get("allow_empty", False)
        if not isinstance(allow_empty, bool):
            raise ControlError("bad_request", "'allow_empty' must be true or false")
        return await self.reload(allow_empty=allow_empty)

    # ------------------------------------------------------------------ reload

    async def reload(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """SIGHUP: re-read the config and apply only the difference, all or nothing.

        Everything the new config needs (interfaces, primary addresses) is resolved before
        anything running is touched; if any of it fails, the old config keeps running
        untouched and the reload is rejected with the reason, worded as ``check-config``
        words it (file:line: key path: message).  A config that would remove every instance
        (an empty or half-written file) is rejected unless ``allow_empty`` is given
        (``pyvrrp reload --allow-empty``): stopping the node is ``systemctl stop``'s job.
        """
        self.systemd.reloading()
        try:
            return await self._reload(allow_empty=allow_empty)
        finally:
            self.systemd.ready(self._summary())

    async def _reload(self, *, allow_empty: bool) -> dict[str, Any]:
        try:
            new = load_config(self.config_path, config_id=self.config_id)
        except ConfigError as exc:
            return self._reject([str(i) for i in exc.issues])
        except OSError as exc:
            return self._reject([f"{self.config_path}: {exc.strerror or exc}"])
        change = diff(self.config, new)
        if change.removes_everything and not new.virtual_server and not allow_empty:
            return self._reject(
                [
                    f"{self.config_path}: the new config has no vrrp_instance and no virtual_server; "
                    f"reloading it would release every VIP ({', '.join(change.removed)}). "
                    "Fix the file, or run 'pyvrrp reload --allow-empty' if that is what you want"
                ]
            )
        try:
            primaries = self._resolve(new, change)
        except StartupError as exc:
            return self._reject([f"{self.config_path}: {exc}"])
        await self._apply(new, change, primaries)
        result = {
            "reloaded": True,
            "added": list(change.added),
            "removed": list(change.removed),
            "changed": list(change.changed),
        }
        log.info("reloaded", **{k: v for k, v in result.items() if k != "reloaded"})
        _freeze_heap(collect=True)
        return result

    @staticmethod
    def _reject(errors: list[str]) -> dict[str, Any]:
        for error in errors:
            log.error("reload_rejected", error=error, note="the running config is unchanged")
        return {"reloaded": False, "errors": errors}

    def _resolve(self, new: Config, change: ConfigDiff) -> dict[str, IPAddress]:
        """The primary address of every instance the reload (re)starts or reconfigures."""
        out = {}
        for name in change.added + change.restarted + change.reconfigured:
            running = self.instances.get(name)
            if name in change.reconfigured and running is not None and running.waiting_for:
                out[name] = running.router.config.primary_address  # still waiting: stays so
                continue
            try:
                out[name] = self._primary_address(new.vrrp_instance[name])
            except StartupError as exc:
                raise StartupError(f"vrrp_instance.{name}.interface: {exc}") from None
        return out

    async def _apply(self, new: Config, change: ConfigDiff, primaries: dict[str, IPAddress]) -> None:
        sup = self.supervisor
        self.config = new
        if self.bgp is not None:  # withdraw what leaves the config before its VIPs go
            await self._reload_bgp(new)
        self._set_groups(new)
        for name in change.removed + change.restarted:
            self._stop_instance(sup.instances.pop(name))
            if name in change.removed:
                log.info("instance_removed", instance=name)
        for name in change.reconfigured:
            inst, spec = sup.instances[name], new.vrrp_instance[name]
            inst.spec = spec
            if name in change.guards_changed and not inst.waiting_for:
                for guard in (inst.gateway, inst.conflict):
                    if guard is not None:
                        await guard.stop()
                inst.gateway = inst.conflict = None
                sup.feed(inst, ev.TrackerChanged(name="gateway"))  # neutral until re-proven
                await self._start_guards(inst)
            cfg = router_config(name, spec, primaries[name], in_group=name in sup.group_of)
            for action in inst.router.reconfigure(cfg, now=clock.monotonic()):
                self._execute().execute(inst, action)
            sup.arm(inst)
        started = []
        for name in change.restarted + change.added:
            try:
                inst = await self._add_instance(name, new.vrrp_instance[name], primary=primaries[name])
            except (StartupError, OSError) as exc:  # resolved a moment ago; the kernel can still say no
                log.error("instance_start_failed", instance=name, error=str(exc))
                continue
            started.append(inst)
        self._reload_trackers(new)
        for inst in started:
            self._startup(inst)
        if self.ipvs is not None:
            self.ipvs.reconfigure(new)
        elif new.virtual_server:
            await self._start_ipvs()
        if self.bgp is None:
            await self._start_bgp()  # the first announce table arrived with this reload

    async def _reload_bgp(self, new: Config) -> None:
        """``announce`` tables after a reload: removed prefixes are withdrawn, new ones decided."""
        assert self.bgp is not None
        from pyvrrp.runtime.announce import entries_from_config

        await self.bgp.reconfigure(entries_from_config(new))
        if self.bgp.exabgp is not None and "bgp_follow" not in self.control.ops:
            self.control.register("bgp_follow", self.bgp.exabgp.follow)
            self.control.register("bgp_ack", self.bgp.exabgp.ack)
            self.control.register("bgp_gone", self.bgp.exabgp.gone)

    def _reload_trackers(self, new: Config) -> None:
        old = self.trackers
        if old is not None:
            old.stop()
        self.trackers = self._build_trackers(new)
        if old is not None:
            self.trackers.adopt(old)
        before, self._tracker_names = self._tracker_names, {}
        self.trackers.report_all()
        for instance, names in before.items():
            for gone in names - self._tracker_names.get(instance, set()):
                if instance in self.instances:  # a tracker removed from the config: neutral again
                    self.supervisor.feed(self.instances[instance], ev.TrackerChanged(name=gone))
        self.trackers.start()


async def release_ipvs(state_file: str) -> None:
    """Remove the IPVS services recorded in ``state_file`` (and nothing else)."""
    manager = IpvsManager(Config.model_validate({}), state_file=state_file)
    await manager.stop(keep=False)


def _epoch_store(config: Config) -> EpochStore | None:
    try:
        return EpochStore(config.global_defs.state_dir)
    except OSError as exc:
        log.warning("epoch_store_unavailable", state_dir=str(config.global_defs.state_dir), error=str(exc))
        return None


def _freeze_heap(*, collect: bool) -> None:
    """Put what exists now (modules, config models, engines) out of the cyclic collector's reach.

    A full collection of the running daemon's heap (~37 000 objects, mostly imports and
    pydantic schemas) takes ~12 ms; a 12 ms pause at the wrong moment delays an advert
    (10 ms intervals), a takeover or its GARP.  Frozen objects are never traversed, so later
    collections only look at what was created since.  After a reload the old config is
    garbage, so the reload unfreezes, collects once and freezes again.
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
    """Entry point used by ``pyvrrp run``: load, validate, run; errors reach the caller."""
    config = load_config(config_path, config_id=config_id)
    if config.global_defs.net_namespace is not None:
        # before any socket or thread exists: setns(2) moves only the calling thread
        try:
            enter_namespace(config.global_defs.net_namespace)
        except NamespaceError as exc:
            raise StartupError(str(exc)) from exc

    async def main() -> int:
        daemon = Daemon(
            config_path, config, config_id=config_id, control_socket=control_socket, keep_ipvs=keep_ipvs
        )
        return await daemon.run()

    return asyncio.run(main())
