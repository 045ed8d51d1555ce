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
import socket
from collections.abc import Coroutine
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pyvrrp.adapters import InterfaceNotFound
from pyvrrp.adapters.arp import Announcer, mac_to_bytes
from pyvrrp.adapters.firewall import DropPlan, FirewallError, Nft
from pyvrrp.adapters.netlink import AddressEvent, LinkEvent, Netlink
from pyvrrp.adapters.netns import NamespaceError, enter_namespace
from pyvrrp.adapters.notify import NotifyRunner
from pyvrrp.adapters.notify_fifo import NotifyFifo, NotifyFifos
from pyvrrp.adapters.proc_connector import ConnectorUnavailable, ProcConnector
from pyvrrp.adapters.systemd import SdNotifier
from pyvrrp.adapters.vmac import VmacManager
from pyvrrp.adapters.vrrp_socket import VrrpSocket
from pyvrrp.base import clock
from pyvrrp.config.diff import ConfigDiff, diff
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.config.models import Config, VrrpInstance
from pyvrrp.ipvs.manager import IpvsManager
from pyvrrp.ipvs.syncd import SyncDaemonManager, SyncDaemonSpec
from pyvrrp.proto import events as ev
from pyvrrp.proto.ah import IPPROTO_AH, AhSession, ah_key
from pyvrrp.proto.router import RouterConfig, VirtualRouter
from pyvrrp.proto.syncgroup import SyncGroup
from pyvrrp.runtime import routes
from pyvrrp.runtime.control import ControlError, ControlServer, SocketInUse
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.held import HeldState
from pyvrrp.runtime.instance import Extras, Instance
from pyvrrp.runtime.logging import install_asyncio_logging
from pyvrrp.runtime.state_view import instance_view
from pyvrrp.runtime.supervisor import Supervisor
from pyvrrp.runtime.trackers import PROCESS_POLL_INTERVAL_S, Trackers
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
from pyvrrp.splitbrain.witness import KeyValue

if TYPE_CHECKING:
    from pyvrrp.runtime.announce import Announcements
    from pyvrrp.runtime.metrics import MetricsServer
    from pyvrrp.runtime.witness import WitnessRuntime

__all__ = ["Daemon", "StartupError", "run_daemon"]

log = structlog.get_logger("pyvrrp")

IPAddress = IPv4Address | IPv6Address

STATIC_OWNER = "\0static"
"""The owner of static_* entries in the executor's held-state record (no instance has this name)."""

WAITING_FAULT = "interface"
"""The fault an instance holds while its interface is missing or has no address (``waiting_for``)."""
_UNSPECIFIED: dict[int, IPAddress] = {4: IPv4Address("0.0.0.0"), 6: IPv6Address("::")}

IPVS_STOP_BOUND_S = 0.8
WITNESS_STOP_BUDGET_S = 0.5
NOTIFY_STOP_BUDGET_S = 2.0
"""At SIGTERM, IPVS clean-up and notify_stop run side by side within these bounds."""


class StartupError(Exception):
    """A problem that prevents an instance (or the daemon) from starting; for the operator."""


def router_config(
    name: str,
    spec: VrrpInstance,
    primary: IPv4Address | IPv6Address,
    *,
    in_group: bool,
    mcast_group: IPv4Address | IPv6Address | None = None,
    witnessed: bool = False,
) -> RouterConfig:
    """The engine's parameters for one instance (pure: model in, plain values out).

    ``mcast_group``: the global ``vrrp_mcast_group4``/``6`` of the instance's family (None or
    the RFC group: the default).
    """
    auth_type, auth_data = 0, b""
    if spec.authentication is not None and spec.version == 2 and spec.authentication.auth_type == "PASS":
        auth_type, auth_data = 1, spec.authentication.auth_pass.encode()[:8]
    ah = uses_ah(spec)
    if ah:
        auth_type = 2  # the ICV is in the AH header (ah_session); the VRRP auth data stays zero
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
        # keepalived: "Initial state master is incompatible with AH authentication - clearing"
        # (a new master must first hear the group's AH sequence number, proto/ah.py).
        start_as_master=spec.state == "MASTER" and not ah,
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
        takeover_gate=is_guarded(spec) or witnessed,
        conflict_resolve=bool(spec.conflict_detection and spec.conflict_detection.resolve),
        mcast_group=None if spec.unicast_peer else mcast_group,
    )
    return SyncGroup.member_config(cfg) if in_group else cfg


def mcast_group_of(config: Config, family: int) -> IPv4Address | IPv6Address:
    """The advert group of ``family``: ``vrrp_mcast_group4``/``6`` (default 224.0.0.18 / ff02::12)."""
    g = config.global_defs
    return g.vrrp_mcast_group4 if family == 4 else g.vrrp_mcast_group6


def uses_ah(spec: VrrpInstance) -> bool:
    """keepalived's ``auth_type AH`` (VRRPv2 over IPv4 only; the model refuses it elsewhere)."""
    return spec.authentication is not None and spec.version == 2 and spec.authentication.auth_type == "AH"


def ah_session(spec: VrrpInstance) -> AhSession | None:
    """The AH state of an ``auth_type AH`` instance (None for any other)."""
    if not uses_ah(spec):
        return None
    assert spec.authentication is not None
    return AhSession(ah_key(spec.authentication.auth_pass), unicast=bool(spec.unicast_peer))


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
        proc_connector: ProcConnector | ConnectorUnavailable | None = None,
    ) -> None:
        self.config_path = config_path
        # the kernel's process events (track_process): opened on first use, or before
        # run_daemon entered a net_namespace (the connector exists only in the initial one)
        self._proc_connector = proc_connector
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
        self.vmacs = VmacManager(self.netlink)
        self.announcer = Announcer()
        self.notifier = NotifyRunner(timeout_s=float(config.global_defs.notify_timeout))
        self.epochs = _epoch_store(config)
        self.control = ControlServer(self.control_path)
        self.systemd = SdNotifier.from_environ()  # no-op outside a Type=notify unit
        self._status_due = False
        self.held = HeldState.in_dir(Path(self.control_path).parent)
        self.firewall = Nft()
        self._drop_plan: DropPlan | None = None  # what the nftables table holds now
        self.ipvs: IpvsManager | None = None
        self.syncd: SyncDaemonManager | None = None
        self.trackers: Trackers | None = None
        self._tracker_names: dict[str, set[str]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._confirming: set[str] = set()
        self._released = False
        self._ipvs_ready = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._executor: Executor | None = None
        self.metrics: MetricsServer | None = None
        self.statics = Extras()
        """What static_ipaddress / static_routes / static_rules installed (removed at stop)."""
        self.fifos: NotifyFifos | None = None
        self.witness: WitnessRuntime | None = None
        self._witness_faulted: set[str] = set()
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
        await self._open_fifos(self.config)  # before the first state line (keepalived: at start)

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
        self._install_statics(self.config)
        self._apply_firewall(self.config)  # before any instance can hold a no_accept VIP
        await self._start_witness()

        self._set_groups(self.config)
        for name, spec in self.config.vrrp_instance.items():
            await self._add_instance(name, spec, wait=True)
        self.vmacs.release_unused()  # bases an earlier run's macvlans changed, unused now
        self._record_vmacs()
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
        await self._start_syncd()
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
            with contextlib.suppress(Exception):
                await self.bgp.released()
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
        if self.bgp is not None:
            with contextlib.suppress(Exception):
                await self.bgp.released()
        pending: list[Coroutine[Any, Any, Any]] = []
        if self.ipvs is not None:
            pending.append(asyncio.wait_for(self.ipvs.stop(keep=self.keep_ipvs), timeout=IPVS_STOP_BOUND_S))
        if self.syncd is not None:
            pending.append(asyncio.wait_for(self.syncd.stop(), timeout=IPVS_STOP_BOUND_S))
        # notify_stop runs within its budget even behind a hung script (adapters/notify.py)
        pending.append(self.notifier.stop(timeout_s=NOTIFY_STOP_BUDGET_S))
        if self.witness is not None:  # keys deleted at the state change already; revoke the lease
            pending.append(self.witness.close(budget_s=WITNESS_STOP_BUDGET_S))
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)
        routes.uninstall(self.netlink, self.statics, log)
        if self._executor is not None:
            self._executor.record_extras(STATIC_OWNER, None)
        if self.keep_ipvs:
            self.held.ipvs_state = None  # kept on purpose: `pyvrrp cleanup` must not remove them
        self._remove_firewall()  # after the VIPs: never a moment a no_accept master accepts
        if self.syncd is not None and not self.syncd.running:
            self.held.sync_daemon = False
        if self._executor is not None:
            self._executor.flush_held()
            self._executor.close()  # the last terms' epochs are on disk before we exit
        if self._supervisor is not None:
            for sock in self._supervisor.sockets.values():
                with contextlib.suppress(OSError):
                    sock.close()
        self.announcer.close()
        if self.fifos is not None:  # after every STOP line was written
            await self.fifos.close()
        self.vmacs.remove_all()  # after priority 0 and the VIPs' removal (_release_all)
        self._record_vmacs()
        if self.bgp is not None:
            await self.bgp.close()
        await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        self.netlink.close()
        if isinstance(self._proc_connector, ProcConnector):
            self._proc_connector.close()
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
        routes.release_recorded(self.netlink, old.routes, old.rules, log)  # before the addresses
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
        plan = drop_plan(self.config)
        if old.nft_table and (plan is None or plan.table != old.nft_table):
            self._drop_plan = DropPlan(old.nft_table)  # so that _apply_firewall deletes it
        if old.sync_daemon and self.config.global_defs.lvs_sync_daemon is None:
            await release_sync_daemons()
        wanted = {s.vmac_ifname for s in self.config.vrrp_instance.values() if s.vmac_ifname}
        for vmac in sorted(set(old.vmacs) - wanted):  # a configured one is reused or re-created
            try:
                if self.vmacs.remove_stale(vmac):
                    log.warning("stale_vmac_removed", vmac=vmac, note="made by an earlier run")
            except OSError as exc:
                log.error("vmac_remove_failed", vmac=vmac, error=str(exc))
        self.vmacs.adopt(old.vmac_base_sysctls)
        self.held.vips, self.held.ipvs_state, self.held.sync_daemon = set(), None, False
        self.held.routes, self.held.rules = set(), set()
        self.held.nft_table = old.nft_table
        self._record_vmacs()

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

    def _install_statics(self, config: Config) -> None:
        """``static_ipaddress``, then ``static_routes`` and ``static_rules``: the node's, at start."""
        addrs = [(str(a.dev), a) for a in config.static_ipaddress]  # dev is required (models)
        routes.install_addresses(self.netlink, addrs, self.statics, log)
        routes.install(
            self.netlink, routes=config.static_routes, rules=config.static_rules, into=self.statics, bound=log
        )
        self._execute().record_extras(STATIC_OWNER, self.statics)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference until it finishes."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --------------------------------------------------------------- instances

    def _set_groups(self, config: Config) -> None:
        guarded = {n for n, s in config.vrrp_instance.items() if is_guarded(s) or config.witness_key(n)}
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

    def _router_config(
        self, config: Config, name: str, spec: VrrpInstance, primary: IPv4Address | IPv6Address
    ) -> RouterConfig:
        """:func:`router_config` with what the daemon knows: sync-group membership, the
        configured advert group, whether the witness gates the instance."""
        return router_config(
            name,
            spec,
            primary,
            in_group=name in self.supervisor.group_of,
            mcast_group=mcast_group_of(config, spec.family),
            witnessed=config.witness_key(name) is not None,
        )

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
        wkey = self.config.witness_key(name)
        router = VirtualRouter(self._router_config(self.config, name, spec, primary), epoch=epoch)
        bound = log.bind(instance=name, iface=spec.interface, vrid=spec.virtual_router_id)
        inst = Instance(
            name=name,
            spec=spec,
            router=router,
            log=bound,
            waiting_for=waiting,
            witness_key=wkey,
            ah=ah_session(spec),
        )
        sup.instances[name] = inst
        if waiting is not None:
            inst.log.warning("instance_waiting", reason=waiting, action="FAULT until the interface is ready")
            sup.feed(inst, ev.TrackerChanged(name=WAITING_FAULT, fault=True))  # INIT -> FAULT at Startup
            return inst
        await self._attach(inst)
        return inst

    async def _attach(self, inst: Instance) -> None:
        """Give a resolved instance its socket, clean stale VIPs, open the GARP socket, guards."""
        await self._attach_links(inst)
        await self._start_guards(inst)

    async def _attach_links(self, inst: Instance) -> None:
        """The macvlan (use_vmac), the VRRP socket, stale VIPs removed, the GARP socket, the MAC."""
        sup, spec = self.supervisor, inst.spec
        if spec.use_vmac:
            self._ensure_vmac(inst)
        sock = sup.sockets.get(inst.key)
        if sock is None:
            # One socket per (interface, family), shared by every instance on it and
            # demultiplexed by VRID; the source address is set per advert.  With use_vmac
            # the interface is the instance's macvlan (unless vmac_xmit_base); auth_type AH
            # has an IPPROTO_AH socket of its own (adapters/vrrp_socket.py).
            group = mcast_group_of(self.config, spec.family)
            if inst.ah is not None:
                sock = await VrrpSocket(inst.xmit_ifname, 4, protocol=IPPROTO_AH, group=group).open()
            else:
                sock = await VrrpSocket(inst.xmit_ifname, spec.family, group=group).open()
            sup.add_socket(inst.key, sock)
        inst.sock = sock
        # A crashed run may have left our VIPs behind: remove them before the first election
        # (keepalived does the same: "removing VIPs" at start), and the routes, rules and
        # excluded addresses a MASTER adds.
        self._execute().remove_vips(inst, inst.router.config.vips, stale=True)
        if inst.extras is None:
            excluded = [(spec.vip_dev(v), v) for v in spec.virtual_ipaddress_excluded]
            leftovers = routes.planned(excluded, spec.virtual_routes, spec.virtual_rules)
            routes.uninstall(self.netlink, leftovers, inst.log, stale=True)
        by_dev: dict[str, list[ev.IPInterface]] = {}
        for vip in inst.router.config.vips:
            by_dev.setdefault(inst.vip_dev(vip), []).append(vip)
        for dev, vips in by_dev.items():
            self.netlink.prepare(dev, vips, inst.labels())
        try:  # open the AF_PACKET socket now, not on the first (hot) transition
            self.announcer.sender(inst.vip_ifname)
        except OSError as exc:
            inst.log.warning("announce_socket_failed", error=str(exc))
        try:
            inst.mac = mac_to_bytes(self.netlink.link_mac(inst.vip_ifname))
        except (OSError, LookupError, ValueError) as exc:
            inst.log.warning("link_mac_unknown", error=str(exc))

    def _ensure_vmac(self, inst: Instance) -> None:
        """``use_vmac``: the instance's macvlan, created (or reused), configured and up.

        Raises:
            StartupError: naming the instance's use_vmac key and the reason.
        """
        spec = inst.spec
        vmac, mac = spec.vmac_ifname, spec.vmac_mac
        assert vmac is not None and mac is not None
        try:
            outcome = self.vmacs.ensure(vmac, spec.interface, mac, spec.family)
            if spec.family == 6:
                # adverts leave the macvlan from the base's link-local (keepalived does the same)
                primary = inst.router.config.primary_address
                if primary.version == 6 and primary.is_link_local:
                    self.netlink.add(vmac, ip_interface(f"{primary}/64"))
        except (OSError, LookupError) as exc:
            raise StartupError(f"vrrp_instance.{inst.name}.use_vmac: {exc}") from None
        finally:
            self._record_vmacs()
        inst.log.info("vmac_attached", vmac=vmac, mac=mac, outcome=outcome, xmit=inst.xmit_ifname)

    async def _recreate_vmac(self, inst: Instance) -> None:
        """Someone deleted the instance's macvlan: FAULT, then make it again (as keepalived does)."""
        vmac = inst.spec.vmac_ifname
        inst.log.warning("vmac_deleted_externally", vmac=vmac, action="FAULT, re-creating it")
        self.supervisor.feed(inst, ev.TrackerChanged(name="vmac", fault=True))
        if inst.key[0] == vmac:
            self.supervisor.remove_socket(inst.key)
            inst.sock = None
        if vmac is not None:
            self.announcer.forget(vmac)
        try:
            await self._attach_links(inst)
        except (StartupError, OSError) as exc:
            inst.log.error("vmac_recreate_failed", vmac=vmac, error=str(exc), action="staying in FAULT")
            return
        self.supervisor.feed(inst, ev.TrackerChanged(name="vmac", fault=False))

    def _record_vmacs(self) -> None:
        """The macvlans (and the bases' sysctls from before) into held.json, for a crash."""
        self.held.vmacs, self.held.vmac_base_sysctls = self.vmacs.record()
        self._execute().flush_held()

    def _remove_vmac(self, inst: Instance) -> None:
        """Delete the instance's macvlan (after its priority-0 advert and VIP removal)."""
        vmac = inst.spec.vmac_ifname
        if vmac is None:
            return
        if self._supervisor is not None and inst.key[0] == vmac:
            self._supervisor.remove_socket(inst.key)
        self.announcer.forget(vmac)
        self.vmacs.remove(vmac)
        self._record_vmacs()

    async def _attach_waiting(self, ifname: str) -> None:
        """Netlink says something changed on ``ifname``: bring up the instances waiting for it."""
        for inst in [i for i in self.instances.values() if i.waiting_for and i.ifname == ifname]:
            try:
                primary = self._primary_address(inst.spec)
            except StartupError as exc:
                inst.waiting_for = str(exc)  # e.g. the link exists now, its address not yet
                continue
            cfg = self._router_config(self.config, inst.name, inst.spec, primary)
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
        # Whatever state we ended in, never leave a VIP (or a route of a MASTER) behind.
        self._execute().release_extras(inst)
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
        self._feed_tracker(inst, ev.TrackerChanged(name="gateway", delta=delta, fault=fault))

    def _feed_tracker(self, inst: Instance, event: ev.TrackerChanged) -> None:
        """Feed a tracker result; ``vrrp_notify_priority_changes`` reports a new effective priority.

        keepalived writes the priority line with the state held when the priority moved
        (MASTER_PRIORITY or BACKUP_PRIORITY), before any state change it causes.  Not
        before the instance started (INIT): the first tracker results are its starting
        priority, which keepalived computes without a notification either.
        """
        fifos = self.fifos
        wanted = inst.spec.notify_priority_changes
        if wanted is None:
            wanted = fifos is not None and fifos.priority_changes
        if fifos is None or not wanted or inst.router.state is ev.State.INIT:
            self.supervisor.feed(inst, event)
            return
        before, was_master = inst.router.effective_priority, inst.router.state is ev.State.MASTER
        self.supervisor.feed(inst, event)
        after = inst.router.effective_priority
        if after != before:
            fifos.priority_changed(inst.name, was_master, after)

    # -------------------------------------------------------------- notify FIFOs

    @staticmethod
    def _fifo_set(config: Config) -> NotifyFifos | None:
        g = config.global_defs
        made: dict[str, NotifyFifo] = {}
        for kind, spec in (("", g.notify_fifo), ("vrrp_", g.vrrp_notify_fifo), ("lvs_", g.lvs_notify_fifo)):
            if spec is not None:
                made[kind] = NotifyFifo(
                    spec.path, kind=kind, script=spec.script, user=spec.user, group=spec.group
                )
        if not made:
            return None
        return NotifyFifos(
            common=made.get(""),
            vrrp=made.get("vrrp_"),
            lvs=made.get("lvs_"),
            priority_changes=g.vrrp_notify_priority_changes,
        )

    @staticmethod
    def _fifo_key(config: Config) -> tuple[object, ...]:
        g = config.global_defs
        return (g.notify_fifo, g.vrrp_notify_fifo, g.lvs_notify_fifo)

    async def _open_fifos(self, config: Config) -> None:
        self.fifos = self._fifo_set(config)
        if self.fifos is not None:
            await self.fifos.open()
        self._execute().fifos = self.fifos
        if self.ipvs is not None:
            self.ipvs.fifos = self.fifos

    async def _reload_fifos(self, old: Config, new: Config) -> None:
        """A reload that changes a FIFO (or its script) closes the old ones and opens the new."""
        if self._fifo_key(old) == self._fifo_key(new):
            if self.fifos is not None:
                self.fifos.priority_changes = new.global_defs.vrrp_notify_priority_changes
            return
        if self.fifos is not None:
            await self.fifos.close()
        await self._open_fifos(new)

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
        if inst.name in self.supervisor.group_of and not (is_guarded(inst.spec) or inst.witness_key):
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
        witness = None
        if inst.witness_key is not None and self.witness is not None:
            witness = functools.partial(self._witness_acquire, inst, action.epoch, preempting)
        verdict = await decide_takeover(
            inst.spec,
            name=inst.name,
            gateway=inst.gateway,
            preempting=preempting,
            epoch=action.epoch,
            old_master=str(snap.master_ip or ""),
            witness=witness,
        )
        inst.pending_takeover = None
        if not verdict.allow:
            inst.log.info("takeover_denied", reason=verdict.reason)
        if not verdict.allow and inst.witness_key is not None:
            self._witness_release_if_idle(inst.witness_key)  # acquired, then a later guard said no
        if verdict.allow and self.supervisor.request_group_takeover(inst):
            return  # the guards allow it; the group decides whether every member can go now
        self.supervisor.feed(inst, ev.TakeoverVerdict(allow=verdict.allow, reason=verdict.reason))

    def _on_state_changed(self, inst: Instance, action: ev.StateChanged) -> None:
        if (
            inst.witness_key is not None
            and action.old is ev.State.MASTER
            and action.new is not ev.State.MASTER
        ):
            # clean stop, priority-0 hand-over, preempted, FAULT: the key goes at once
            self._witness_release_if_idle(inst.witness_key)
        if self.ipvs is not None:
            self.ipvs.set_master(self.supervisor.any_master())
        syncd = self.syncd
        if syncd is not None and not self._released and syncd.spec and inst.name == syncd.spec.instance:
            syncd.follow(action.new.value)  # master on MASTER, backup otherwise
        if self.bgp is not None:
            self.bgp.poke()
        if self.systemd.enabled and not self._status_due:
            # once per loop pass, not per instance: a sweep of N takeovers is O(N), not O(N^2)
            self._status_due = True
            asyncio.get_running_loop().call_soon(self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        self.systemd.status(self._summary())

    def _summary(self) -> str:
        """One line for systemd's STATUS=: every instance and its state."""
        states = ", ".join(f"{i.name} {i.router.state.value}" for i in self.instances.values())
        return f"{len(self.instances)} instances: {states or 'none'}"

    # ------------------------------------------------------------ quorum witness

    async def _start_witness(self) -> None:
        """``global_defs.witness``: the etcd session, when some instance is witnessed (issue 13)."""
        wcfg = self.config.global_defs.witness
        if wcfg is None or not any(self.config.witness_key(n) for n in self.config.vrrp_instance):
            return
        # imported here: httpx and the client cost nothing to configs without a witness
        from pyvrrp.adapters.witness_etcd import EtcdWitness
        from pyvrrp.runtime.witness import WitnessRuntime

        if wcfg.on_unavailable == "vrrp":
            log.warning(
                "witness_guarantee_conditional",
                policy="vrrp",
                note="while etcd is unreachable the witnessed VIPs follow plain VRRP: "
                "two holders are possible until etcd is back",
            )
        try:
            client = EtcdWitness(
                list(wcfg.endpoints),
                timeout_s=wcfg.request_timeout_s,
                ca=wcfg.ca,
                cert=wcfg.cert,
                key=wcfg.key,
                user=wcfg.user,
                password=wcfg.password,
            )
        except (OSError, ValueError) as exc:  # unreadable CA / certificate / key
            raise StartupError(f"global_defs.witness: {exc}") from None
        self.witness = WitnessRuntime(
            wcfg,
            client,
            router_id=self.config.global_defs.router_id or socket.gethostname(),
            on_give_up=self._witness_give_up,
            on_back=self._witness_back,
            on_claim=self._witness_claimed,
        )
        await self.witness.start()
        self._execute().witness_stale = self._witness_stale
        log.info(
            "witness_started",
            endpoints=list(wcfg.endpoints),
            available=self.witness.gate.available(clock.monotonic()),
            witnessed=[n for n in self.config.vrrp_instance if self.config.witness_key(n)],
        )

    def _witness_value(self, inst: Instance, epoch: int) -> KeyValue:
        assert self.witness is not None
        return KeyValue(
            router_id=self.witness.router_id,
            address=str(inst.router.config.primary_address),
            priority=inst.router.effective_priority,
            instance=inst.name,
            epoch=epoch,
        )

    async def _witness_acquire(
        self, inst: Instance, epoch: int, preempting: bool
    ) -> tuple[bool, str, int | None]:
        assert self.witness is not None and inst.witness_key is not None
        value = self._witness_value(inst, epoch)
        ok, reason = await self.witness.acquire(inst.witness_key, value, claim=preempting)
        revision = self.witness.revision(inst.witness_key) if ok else None
        for other in self._witnessed_by(inst.witness_key):
            other.witness_revision = revision
        return ok, reason, revision

    def _witnessed_by(self, key: str) -> list[Instance]:
        return [i for i in self.instances.values() if i.witness_key == key]

    def _witness_release_if_idle(self, key: str) -> None:
        """Release ``key`` unless an instance gated by it is (or is becoming) MASTER."""
        if self.witness is None:
            return
        users = self._witnessed_by(key)
        if any(i.router.state is ev.State.MASTER or i.pending_takeover is not None for i in users):
            return
        self.witness.release(key)
        for i in users:
            i.witness_revision = None

    def _witness_stale(self, inst: Instance) -> bool:
        """The executor is about to send a MASTER advert: may this node still hold the VIPs?"""
        if self.witness is None or inst.witness_key is None or inst.router.state is not ev.State.MASTER:
            return False
        if self.witness.stale(inst.witness_key):
            inst.log.warning("witness_stale_advert_suppressed", note="lease deadline passed")
            return True
        return False

    def _witness_claimed(self, key: str, claimant: KeyValue) -> None:
        """A higher-priority node claims our key (preemption): leave MASTER, which releases it."""
        masters = [i for i in self._witnessed_by(key) if i.router.state is ev.State.MASTER]
        if not masters or claimant.priority <= max(i.router.effective_priority for i in masters):
            return
        for inst in self._witnessed_by(key):
            inst.log.info("witness_preempted", by=claimant.router_id, priority=claimant.priority)
            self.supervisor.feed(inst, ev.TrackerChanged(name="witness_preempted", fault=True))
            self.supervisor.feed(inst, ev.TrackerChanged(name="witness_preempted", fault=False))

    def _witness_give_up(self, key: str, reason: str) -> None:
        """The lease deadline passed (or etcd dropped the lease): the VIPs go now (FAULT)."""
        late = self.witness.last_deadline_late_s if self.witness is not None else None
        for inst in self._witnessed_by(key):
            inst.witness_revision = None
            state = inst.router.state.value
            t0 = clock.monotonic()
            self._witness_faulted.add(inst.name)
            self.supervisor.feed(inst, ev.TrackerChanged(name="witness", fault=True))  # VIPs removed here
            inst.log.warning(
                "witness_demote",
                reason=reason,
                state=state,
                deadline_late_s=None if late is None else round(late, 6),
                removal_s=round(clock.monotonic() - t0, 6),
            )

    def _witness_back(self) -> None:
        """A lease again: clear the witness faults; policy vrrp: unwitnessed MASTERs re-acquire."""
        for name in sorted(self._witness_faulted):
            inst = self.instances.get(name)
            if inst is not None:
                self.supervisor.feed(inst, ev.TrackerChanged(name="witness", fault=False))
        self._witness_faulted.clear()
        if self.witness is not None:
            for key in self.witness.gate.to_reacquire(clock.monotonic()):
                self._spawn(self._witness_reacquire(key))

    async def _witness_reacquire(self, key: str) -> None:
        """Policy vrrp, etcd back: a MASTER that held ``key``'s VIPs unwitnessed takes the key or yields."""
        assert self.witness is not None
        masters = [i for i in self._witnessed_by(key) if i.router.state is ev.State.MASTER]
        self.witness.gate.fallback.discard(key)
        if not masters:
            return
        ok, reason = await self.witness.acquire(
            key, self._witness_value(masters[0], masters[0].router.epoch), wait_s=0
        )
        if ok:
            for i in self._witnessed_by(key):
                i.witness_revision = self.witness.revision(key)
            masters[0].log.info("witness_reacquired", reason=reason)
            return
        for inst in self._witnessed_by(key):  # someone else holds it: leave MASTER (FAULT, then BACKUP)
            inst.log.warning("witness_yield", reason=reason)
            self.supervisor.feed(inst, ev.TrackerChanged(name="witness", fault=True))
            self.supervisor.feed(inst, ev.TrackerChanged(name="witness", fault=False))

    # ---------------------------------------------------------------- trackers

    def _build_trackers(self, config: Config) -> Trackers:
        def link_up(ifname: str) -> bool | None:
            try:
                return bool(self.netlink.link_is_up(ifname))
            except Exception as exc:
                log.warning("track_interface_missing", interface=ifname, error=str(exc))
                return False

        return Trackers.from_config(config, self._tracker_report, link_up, self._get_proc_connector)

    def _get_proc_connector(self) -> tuple[ProcConnector | None, str | None]:
        """The proc connector for track_process, or None and why (then /proc is polled)."""
        if self._proc_connector is None:
            try:
                self._proc_connector = ProcConnector.open()
            except ConnectorUnavailable as exc:
                self._proc_connector = exc
            if isinstance(self._proc_connector, ConnectorUnavailable):
                log.warning(
                    "track_process_polling",
                    reason=str(self._proc_connector),
                    interval_s=PROCESS_POLL_INTERVAL_S,
                    detail="process events are unavailable: /proc is rescanned periodically instead",
                )
            else:
                log.info("track_process_connector", detail="following the kernel's process events")
        if isinstance(self._proc_connector, ConnectorUnavailable):
            return None, str(self._proc_connector)
        return self._proc_connector, None

    def _tracker_report(self, instance: str, name: str, delta: int, fault: bool) -> None:
        inst = self.instances.get(instance)
        if inst is not None:
            self._tracker_names.setdefault(instance, set()).add(name)
            self._feed_tracker(inst, ev.TrackerChanged(name=name, delta=delta, fault=fault))

    # ---------------------------------------------------------------- firewall

    def _apply_firewall(self, config: Config) -> None:
        """Make the nftables table drop what ``config``'s no_accept instances hold (firewall.py).

        A failure is logged as an error and changes nothing else: VRRP goes on, and the
        no_accept masters accept traffic to their VIPs until nft works (a VIP is never
        withheld for want of a firewall rule).
        """
        plan = drop_plan(config)
        old = self._drop_plan
        if plan == old:
            return
        try:
            if old is not None and (plan is None or plan.table != old.table):
                self.firewall.remove(old.table)
                log.info("firewall_removed", table=old.table)
            if plan is not None:
                self.firewall.apply(plan)
                log.info("firewall_set", table=plan.table, vips=len(plan.v4) + len(plan.v6))
        except FirewallError as exc:
            log.error(
                "firewall_failed",
                error=str(exc),
                note="no_accept is not enforced: masters accept traffic to their VIPs",
            )
            return
        self._drop_plan = plan
        self.held.nft_table = plan.table if plan is not None else None
        self._execute().flush_held()

    def _remove_firewall(self) -> None:
        plan, self._drop_plan = self._drop_plan, None
        if plan is None:
            return
        try:
            self.firewall.remove(plan.table)
        except FirewallError as exc:
            log.error("firewall_remove_failed", table=plan.table, error=str(exc), fix="pyvrrp cleanup")
            return
        self.held.nft_table = None
        log.info("firewall_removed", table=plan.table)

    # -------------------------------------------------------------------- IPVS

    async def _start_ipvs(self) -> None:
        """IPVS services and real-server health checks (issue #5); VRRP goes on without ip_vs."""
        state_file = os.path.join(str(self.config.global_defs.state_dir), "ipvs-owned.json")
        self.ipvs = IpvsManager(self.config, state_file=state_file)
        self.ipvs.fifos = self.fifos
        self.held.ipvs_state = state_file
        self._execute().flush_held()
        self.ipvs.set_master(self.supervisor.any_master())
        await self.ipvs.start()
        self.control.register("ipvs", self._op_ipvs)
        self._ipvs_ready.set()

    def _syncd_state(self, spec: SyncDaemonSpec | None) -> str | None:
        """The state of the instance the sync daemon follows (None: it follows none)."""
        if spec is None or spec.instance is None:
            return None
        inst = self.instances.get(spec.instance)
        return inst.router.state.value if inst is not None else None

    async def _start_syncd(self) -> None:
        """``lvs_sync_daemon``: the kernel's IPVS connection-sync threads (pyvrrp.ipvs.syncd)."""
        spec = SyncDaemonSpec.from_config(self.config)
        if spec is None:
            return
        self.syncd = SyncDaemonManager(spec)
        self.held.sync_daemon = True  # a kill -9 leaves the threads: `pyvrrp cleanup` stops them
        self._execute().flush_held()
        log.info("sync_daemon_configured", detail=spec.describe())
        await self.syncd.start(self._syncd_state(spec))

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
                if isinstance(event, LinkEvent) and event.deleted:
                    for inst in list(self.instances.values()):
                        if inst.spec.vmac_ifname == event.ifname and inst.sock is not None:
                            await self._recreate_vmac(inst)
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
        vip = ip_interface(key)
        for inst in self.instances.values():
            if inst.vip_dev(vip) != ifname:
                continue
            if key in inst.removing_vips:
                inst.removing_vips.discard(key)
                continue
            entry = inst.vip_entry(vip)
            if entry is not None and entry.no_track:
                continue  # keepalived no_track: a deleted VIP does not move the instance
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
            if inst.spec.use_vmac:  # use_vmac: where the VIPs are, and where adverts go
                view["vmac"] = {
                    "interface": inst.vip_ifname,
                    "mac": inst.spec.vmac_mac,
                    "xmit": inst.xmit_ifname,
                }
            if inst.gateway is not None:
                view["isolated"] = inst.gateway.isolated
                view["gateway_check"] = inst.gateway.snapshot()
            if inst.conflict is not None:
                view["conflict"] = inst.conflict.snapshot()
            if inst.witness_key is not None and self.witness is not None:
                view["witness"] = self.witness.snapshot(inst.witness_key)
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
        result: dict[str, Any] = {
            "router_id": self.config.global_defs.router_id,
            "pid": os.getpid(),
            "uptime_s": round(clock.monotonic() - self.started_at, 3),
            "config": self.config_path,
            "instances": self.views(name),
            # notify FIFOs: lines written, dropped (the pipe buffer was full), failed
            "notify_fifos": self.fifos.stats() if self.fifos is not None else {},
            **({"announce": self.bgp.view()} if self.bgp is not None else {}),
        }
        if self.syncd is not None:
            result["lvs_sync_daemon"] = self.syncd.snapshot()
        return result

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
        witness_change = _witness_change(self.config, new)
        if witness_change:
            return self._reject(
                [
                    f"{self.config_path}: {witness_change} changed; restart pyvrrp to apply it (a live "
                    "change could leave a VIP held without its witness key, or a key without its VIP)"
                ]
            )
        change = diff(self.config, new)
        for key in ("vrrp_mcast_group4", "vrrp_mcast_group6"):
            old_g, new_g = getattr(self.config.global_defs, key), getattr(new.global_defs, key)
            if old_g != new_g:
                return self._reject(
                    [
                        f"{self.config_path}: global_defs.{key} changes from {old_g} to {new_g}: the "
                        "sockets joined the old group; restart pyvrrp to change it (and change it on "
                        "every node)"
                    ]
                )
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
        routes.resync(
            self.netlink,
            self.statics,
            addresses=[(str(a.dev), a) for a in new.static_ipaddress],
            routes=new.static_routes,
            rules=new.static_rules,
            bound=log,
        )
        self._execute().record_extras(STATIC_OWNER, self.statics)
        await self._reload_fifos(self.config, new)
        self.config = new
        self._apply_firewall(new)
        if self.bgp is not None:  # withdraw what leaves the config before its VIPs go
            await self._reload_bgp(new)
        self._set_groups(new)
        for name in change.removed + change.restarted:
            gone = sup.instances.pop(name)
            self._stop_instance(gone)
            self._remove_vmac(gone)
            if name in change.removed:
                log.info("instance_removed", instance=name)
        for name in change.reconfigured:
            inst, spec = sup.instances[name], new.vrrp_instance[name]
            extras_changed = _extras_of(inst.spec) != _extras_of(spec)
            inst.spec = spec
            fresh_ah = ah_session(spec)
            if inst.ah is not None and fresh_ah is not None:  # a new auth_pass / unicast form; same counter
                inst.ah.key, inst.ah.unicast = fresh_ah.key, fresh_ah.unicast
            if name in change.guards_changed and not inst.waiting_for:
                for guard in (inst.gateway, inst.conflict):
                    if guard is not None:
                        await guard.stop()
                inst.gateway = inst.conflict = None
                sup.feed(inst, ev.TrackerChanged(name="gateway"))  # neutral until re-proven
                await self._start_guards(inst)
            cfg = self._router_config(new, name, spec, primaries[name])
            for action in inst.router.reconfigure(cfg, now=clock.monotonic()):
                self._execute().execute(inst, action)
            sup.arm(inst)
            if extras_changed:
                self._execute().resync_extras(inst)
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
        syncd_spec = SyncDaemonSpec.from_config(new)
        if self.syncd is not None:
            self.syncd.reconfigure(syncd_spec, self._syncd_state(syncd_spec))  # restarts only what changed
        elif syncd_spec is not None:
            await self._start_syncd()
        if new.global_defs.fifo_write_vrrp_states_on_reload and self.fifos is not None:
            # after the state lines of what the reload started (those run from call_soon)
            self._execute().loop.call_soon(self._write_fifo_states)

        if self.bgp is None:
            await self._start_bgp()  # the first announce table arrived with this reload

    def _write_fifo_states(self) -> None:
        """``fifo_write_vrrp_states_on_reload``: every running instance's state line."""
        if self.fifos is None:
            return
        for inst in self.instances.values():
            if inst.router.state is not ev.State.INIT:
                self.fifos.instance(inst.name, inst.router.state.value, inst.router.effective_priority)

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


def drop_plan(config: Config) -> DropPlan | None:
    """The drop rules of ``config``: every VIP of an instance without accept mode (not owners).

    RFC 5798 §6.1: the address owner (priority 255) always accepts; so does every
    instance with ``accept = true`` (keepalived's default).  None: no table at all.
    """
    g = config.global_defs
    addrs = [
        vip.address.ip
        for spec in config.vrrp_instance.values()
        if not spec.accept and spec.priority != 255
        for vip in (*spec.virtual_ipaddress, *spec.virtual_ipaddress_excluded)
    ]
    if not addrs:
        return None
    return DropPlan.of(
        g.vrrp_nftables, addrs, priority=g.vrrp_nftables_priority, counters=g.vrrp_nftables_counters
    )


async def release_ipvs(state_file: str) -> None:
    """Remove the IPVS services recorded in ``state_file`` (and nothing else)."""
    manager = IpvsManager(Config.model_validate({}), state_file=state_file)
    await manager.stop(keep=False)


def _extras_of(spec: VrrpInstance) -> tuple[object, ...]:
    """What a MASTER installs besides its VIPs (a reload compares it)."""
    return (spec.virtual_ipaddress_excluded, spec.virtual_routes, spec.virtual_rules)


async def release_sync_daemons() -> list[str]:
    """Stop the kernel's master and backup sync threads (a crashed run's); returns the errors."""
    from pyvrrp.ipvs import kernel

    errors = []
    for role in ("master", "backup"):
        try:
            if await asyncio.to_thread(kernel.stop_sync_daemon, role):
                log.warning("stale_sync_daemon_stopped", role=role, note="started by an earlier run")
        except kernel.IpvsError as exc:
            errors.append(str(exc))
    return errors


def _witness_change(old: Config, new: Config) -> str | None:
    """What a reload would change about the quorum witness (None: nothing); it needs a restart."""
    if old.global_defs.witness != new.global_defs.witness:
        return "global_defs.witness"
    for name in sorted(set(old.vrrp_instance) | set(new.vrrp_instance)):
        if old.witness_key(name) != new.witness_key(name):
            return f"the witness of vrrp_instance {name}"
    return None


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
    connector: ProcConnector | ConnectorUnavailable | None = None
    if config.global_defs.net_namespace is not None:
        if config.vrrp_track_process:
            # the proc connector answers only in the initial network namespace: subscribe
            # here, before moving; the socket stays where it was made
            try:
                connector = ProcConnector.open()
            except ConnectorUnavailable as exc:
                connector = exc
        # before any other socket or thread exists: setns(2) moves only the calling thread
        try:
            enter_namespace(config.global_defs.net_namespace)
        except NamespaceError as exc:
            if isinstance(connector, ProcConnector):
                connector.close()
            raise StartupError(str(exc)) from exc

    async def main() -> int:
        daemon = Daemon(
            config_path,
            config,
            config_id=config_id,
            control_socket=control_socket,
            keep_ipvs=keep_ipvs,
            proc_connector=connector,
        )
        try:
            return await daemon.run()
        except StartupError:
            daemon.vmacs.remove_all()  # an instance after a use_vmac one could not start
            if daemon._executor is not None:
                daemon._record_vmacs()
            raise

    return asyncio.run(main())
