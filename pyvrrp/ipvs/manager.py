"""IPVS manager: health checks per real server -> desired table -> plan -> kernel.

The daemon owns one :class:`IpvsManager`::

    mgr = IpvsManager(config, apply=True)   # config: pyvrrp Config (virtual_server, ...)
    await mgr.start()                        # checkers run, kernel reconciled
    mgr.set_master(True)                     # ha_suspend services check only while MASTER
    mgr.reconfigure(new_config)              # reload: real-server up/down state kept
    mgr.snapshot()                           # dict for `pyvrrp ipvs show` (control op "ipvs")
    await mgr.stop(keep=False)               # removes the services it owns unless keep

Behaviour (keepalived semantics, ANCHORS §2.9/§2.10, plus PyBal's depool threshold §4.5):

* a real server is up while *all* its checkers' last rounds passed (no checker: always up);
  it starts up, or down with ``alpha``; transitions run ``notify_up``/``notify_down``;
* a failed server is removed from the service, or kept at weight 0 with
  ``inhibit_on_failure`` (existing connections drain);
* ``misc_dynamic`` sets the weight from the MISC_CHECK exit status;
* quorum: when the summed weight of live servers drops below ``quorum - hysteresis`` the
  pool is replaced by ``sorry_server`` (if any) and ``quorum_down`` runs; it comes back at
  ``quorum + hysteresis`` (``quorum_up``);
* ``depool_floor``: if fewer servers are live than the floor, failed servers are kept in
  the pool (configured order) up to the floor, and this is logged as an error every time
  the desired table is computed while it holds;
* ownership: the keys of services pyvrrp created are recorded in ``state_file``; only those
  and the configured ones are ever edited or deleted (foreign services are left alone);
* with ``apply=False`` nothing is written to the kernel: the plan runs against a
  simulated copy of the kernel table (dry run).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from pyvrrp.adapters.notify_fifo import NotifyFifos, rs_line, trio, vs_line
from pyvrrp.config import lvs
from pyvrrp.health.checks import Checker, CheckResult, Target, make_checker
from pyvrrp.ipvs.plan import (
    Dest,
    KernelTable,
    Op,
    Service,
    ServiceKey,
    Table,
    apply_to_table,
    op_to_dict,
    plan,
)

_log = structlog.get_logger("pyvrrp.ipvs")

DEFAULT_STATE_FILE = "/run/pyvrrp/ipvs-owned.json"
RESYNC_S = 30.0
SCRIPT_TIMEOUT_S = 30.0


class Kernel(Protocol):
    """What the manager needs from the kernel (``pyvrrp.ipvs.kernel`` or a simulation)."""

    def read_table(self) -> KernelTable: ...

    def apply(self, ops: list[Op]) -> list[Exception]: ...

    def set_timeouts(self, tcp_s: int | None, tcpfin_s: int | None, udp_s: int | None) -> None: ...


class LinuxKernel:
    """The real IPVS table of this network namespace."""

    def read_table(self) -> KernelTable:
        from pyvrrp.ipvs import kernel

        return kernel.read_table()

    def apply(self, ops: list[Op]) -> list[Exception]:
        from pyvrrp.ipvs import kernel

        return list(kernel.apply(ops))

    def set_timeouts(self, tcp_s: int | None, tcpfin_s: int | None, udp_s: int | None) -> None:
        from pyvrrp.ipvs import kernel

        kernel.set_timeouts(tcp_s, tcpfin_s, udp_s)


class SimulatedKernel:
    """An in-memory IPVS table (dry runs and tests); records every op applied."""

    def __init__(self, table: Table | None = None) -> None:
        self.table: Table = dict(table or {})
        self.applied: list[Op] = []
        self.timeouts: tuple[int | None, int | None, int | None] | None = None

    def read_table(self) -> KernelTable:
        return dict(self.table)

    def apply(self, ops: list[Op]) -> list[Exception]:
        self.table = apply_to_table(self.table, ops)
        self.applied.extend(ops)
        return []

    def set_timeouts(self, tcp_s: int | None, tcpfin_s: int | None, udp_s: int | None) -> None:
        self.timeouts = (tcp_s, tcpfin_s, udp_s)


# ----------------------------------------------------------------------------- desired state


def _vs_items(config: Any) -> dict[str, lvs.VirtualServer]:
    return dict(getattr(config, "virtual_server", None) or {})


def _groups(config: Any) -> dict[str, lvs.VirtualServerGroup]:
    return dict(getattr(config, "virtual_server_group", None) or {})


def service_keys(
    vs_key: str, vs: lvs.VirtualServer, groups: dict[str, lvs.VirtualServerGroup]
) -> list[ServiceKey]:
    """The IPVS service keys a ``virtual_server`` entry stands for."""
    parsed = lvs.parse_vs_key(vs_key)
    family = 6 if any(rs.ip.version == 6 for rs in vs.real_server) else 4
    if parsed.kind == "fwmark":
        return [ServiceKey.mark(parsed.fwmark, family)]
    if parsed.kind == "addr":
        return [ServiceKey.addr(str(parsed.address), parsed.port, vs.protocol)]
    group = groups.get(parsed.group)
    if group is None:
        raise ValueError(f"virtual_server {vs_key!r}: no virtual_server_group {parsed.group!r}")
    out: list[ServiceKey] = []
    for k in group.keys():  # noqa: SIM118 (VirtualServerGroup.keys, not a dict)
        if k.kind == "fwmark":
            out.append(ServiceKey.mark(k.fwmark, family))
        else:
            out.append(ServiceKey.addr(str(k.address), k.port, vs.protocol))
    return out


def _netmask(vs: lvs.VirtualServer, family: int) -> str | None:
    g = vs.persistence_granularity
    if g is None:
        return None
    if isinstance(g, int):  # a prefix length
        if family == 6:
            return str(g)
        return str(ipaddress.IPv4Network(f"0.0.0.0/{min(g, 32)}").netmask)
    if family == 6:
        # an IPv6 granularity written as a mask (ffff:ffff:ffff:ffff::) -> prefix length
        return str(bin(int(g)).count("1")) if g.version == 6 else None
    return str(g) if g.version == 4 else None


@dataclass
class CheckerState:
    checker: Checker
    result: CheckResult | None = None
    at: float | None = None  # monotonic time of the last round
    rounds: int = 0


@dataclass
class RealServerState:
    """Health state of one real server of one virtual server."""

    vs_key: str
    config: lvs.RealServer
    up: bool
    port: int
    checkers: list[CheckerState] = field(default_factory=list)
    dynamic_weight: int | None = None
    since: float = 0.0
    transitions: int = 0
    held_by_floor: bool = False

    @property
    def ident(self) -> tuple[str, str, int]:
        return (self.vs_key, self.config.ip.compressed, self.port)

    @property
    def weight(self) -> int:
        return self.config.weight if self.dynamic_weight is None else self.dynamic_weight

    def evaluate(self) -> bool | None:
        """Up/down from the checkers' last rounds; None while some have not run yet."""
        if not self.checkers:
            return True
        if any(c.result is None for c in self.checkers):
            if any(c.result is not None and not c.result.ok for c in self.checkers):
                return False
            return None
        return all(c.result is not None and c.result.ok for c in self.checkers)


@dataclass
class QuorumState:
    up: bool = True
    transitions: int = 0


# ----------------------------------------------------------------------------- manager


class IpvsManager:
    """Runs the checkers and keeps the kernel's IPVS table equal to the desired one."""

    def __init__(
        self,
        config: Any,
        *,
        apply: bool = True,
        kernel: Kernel | None = None,
        state_file: str | os.PathLike[str] | None = DEFAULT_STATE_FILE,
        resync_s: float = RESYNC_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.apply = apply
        self.kernel: Kernel = kernel or (LinuxKernel() if apply else SimulatedKernel())
        self.state_file = Path(state_file) if state_file else None
        self.resync_s = resync_s
        self._clock = clock
        self._config = config
        self._master = False
        self._servers: dict[tuple[str, str, int], RealServerState] = {}
        self._quorum: dict[str, QuorumState] = {}
        self._tasks: dict[tuple[str, str, int], list[asyncio.Task[None]]] = {}
        self._recorded: set[ServiceKey] = set()
        self._wake = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._script_tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self.last_ops: list[Op] = []
        self.last_errors: list[str] = []
        self.last_sync: float | None = None
        self.reconciles = 0
        self.fifos: NotifyFifos | None = None  # lvs_notify_fifo / notify_fifo (set by the daemon)
        self.timeouts_set: tuple[int | None, int | None, int | None] | None = None
        self._load_recorded()
        self._build_servers(config, previous={})

    # ------------------------------------------------------------------ configuration

    def _build_servers(self, config: Any, previous: dict[tuple[str, str, int], RealServerState]) -> None:
        servers: dict[tuple[str, str, int], RealServerState] = {}
        groups = _groups(config)
        now = self._clock()
        for vs_key, vs in _vs_items(config).items():
            keys = service_keys(vs_key, vs, groups)
            default_port = keys[0].port if keys else 0
            for rs in vs.real_server:
                port = rs.port if rs.port is not None else default_port
                ident = (vs_key, rs.ip.compressed, port)
                old = previous.get(ident)
                target = Target(
                    rs.ip.compressed, port, delay_loop_s=vs.delay_loop, virtualhost=vs.virtualhost
                )
                checkers = [CheckerState(make_checker(c, target)) for c in rs.checkers]
                if old is not None:
                    up, since, transitions = old.up, old.since, old.transitions
                    dyn = old.dynamic_weight
                    # carry results of unchanged checkers (same config, same position)
                    for i, cs in enumerate(checkers):
                        if i < len(old.checkers) and old.checkers[i].checker.config == cs.checker.config:
                            cs.result, cs.at, cs.rounds = (
                                old.checkers[i].result,
                                old.checkers[i].at,
                                old.checkers[i].rounds,
                            )
                else:
                    up, since, transitions, dyn = not (vs.alpha and checkers), now, 0, None
                servers[ident] = RealServerState(vs_key, rs, up, port, checkers, dyn, since, transitions)
            self._quorum.setdefault(vs_key, QuorumState())
        for vs_key in list(self._quorum):
            if vs_key not in _vs_items(config):
                del self._quorum[vs_key]
        self._servers = servers

    def reconfigure(self, config: Any) -> None:
        """Apply a reloaded configuration, keeping the up/down state of known servers.

        Checkers restart (their results are kept when their config is unchanged); services
        that left the configuration are deleted at the next reconcile (we still own them).
        """
        old_keys = self._desired_keys()
        old_timeouts = getattr(getattr(self._config, "global_defs", None), "lvs_timeouts", None)
        self._config = config
        self._build_servers(config, previous=self._servers)
        self._recorded |= old_keys
        if self._running:
            self._restart_checkers()
            self._wake.set()
            if getattr(getattr(config, "global_defs", None), "lvs_timeouts", None) != old_timeouts:
                task = asyncio.get_running_loop().create_task(self._set_timeouts(config))
                self._script_tasks.add(task)
                task.add_done_callback(self._script_tasks.discard)
        _log.info(
            "ipvs reconfigured", virtual_servers=len(_vs_items(config)), real_servers=len(self._servers)
        )

    async def _set_timeouts(self, config: Any) -> None:
        """``global_defs.lvs_timeouts``: the kernel's IPVS tcp / tcpfin / udp timeouts."""
        g = getattr(config, "global_defs", None)
        t = getattr(g, "lvs_timeouts", None)
        if t is None:
            return
        try:
            await asyncio.to_thread(self.kernel.set_timeouts, t.tcp, t.tcpfin, t.udp)
        except Exception as exc:
            _log.error("cannot set IPVS timeouts", tcp=t.tcp, tcpfin=t.tcpfin, udp=t.udp, error=str(exc))
            return
        self.timeouts_set = (t.tcp, t.tcpfin, t.udp)
        _log.info("IPVS timeouts set", tcp=t.tcp, tcpfin=t.tcpfin, udp=t.udp)

    def set_master(self, master: bool) -> None:
        """VRRP state hint: ``ha_suspend`` virtual servers only check while MASTER."""
        if master == self._master:
            return
        self._master = master
        _log.info("ipvs master state", master=master)
        if self._running:
            self._restart_checkers()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reconcile once, then run checkers and the sync loop in the background."""
        if self._running:
            return
        self._running = True
        if isinstance(self.kernel, LinuxKernel):
            from pyvrrp.ipvs.kernel import ipvs_available

            status = await asyncio.to_thread(ipvs_available)
            if not status:
                _log.error("IPVS unavailable: services will not be programmed", reason=status.reason)
        await self._set_timeouts(self._config)
        await self.reconcile()
        self._restart_checkers()
        self._sync_task = asyncio.create_task(self._sync_loop(), name="ipvs-sync")

    async def stop(self, keep: bool = False) -> None:
        """Stop checkers; delete the services we own unless ``keep`` (keepalived ``-I``)."""
        self._running = False
        tasks = [t for ts in self._tasks.values() for t in ts]
        if self._sync_task is not None:
            tasks.append(self._sync_task)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        self._sync_task = None
        if not keep:
            owned = self._recorded | self._desired_keys()
            try:
                observed = await asyncio.to_thread(self.kernel.read_table)
                ops = plan(observed, {}, owned)
                errors = await asyncio.to_thread(self.kernel.apply, ops)
            except Exception as exc:
                _log.error("ipvs cleanup failed", error=str(exc))
            else:
                for err in errors:
                    _log.error("ipvs cleanup op failed", error=str(err))
                if not errors:
                    self._recorded = set()
                    self._save_recorded(set())
                _log.info("ipvs services removed", count=len(ops))
            if any(vs.omega for vs in _vs_items(self._config).values()):
                for rs in self._servers.values():
                    if not (_vs_items(self._config)[rs.vs_key].omega and rs.up):
                        continue
                    if rs.config.notify_down:
                        self._run_script(rs.config.notify_down, "notify_down", rs)
                    rs.up = False  # keepalived (omega): RS ... DOWN all the way down the exit
                    self._fifo_rs(rs)
                for vs_key, vs in _vs_items(self._config).items():
                    if vs.omega:
                        self._fifo_vs(vs_key, False)
        if self._script_tasks:
            await asyncio.wait(set(self._script_tasks), timeout=SCRIPT_TIMEOUT_S)

    def _restart_checkers(self) -> None:
        for ts in self._tasks.values():
            for t in ts:
                t.cancel()
        self._tasks = {}
        vss = _vs_items(self._config)
        for ident, rs in self._servers.items():
            vs = vss[rs.vs_key]
            if vs.ha_suspend and not self._master:
                continue
            self._tasks[ident] = [
                asyncio.create_task(
                    self._check_loop(rs, cs, first=(cs.result is None)), name=f"check {ident}"
                )
                for cs in rs.checkers
            ]

    async def _check_loop(self, rs: RealServerState, cs: CheckerState, *, first: bool) -> None:
        checker = cs.checker
        delay = checker.first_delay_s() if first else checker.delay_loop_s
        if cs.at is not None:
            delay = max(0.0, cs.at + checker.delay_loop_s - self._clock())
        await asyncio.sleep(delay)
        while True:
            result = await checker.check()
            cs.result, cs.at = result, self._clock()
            cs.rounds += 1
            self._on_result(rs, cs)
            await asyncio.sleep(checker.delay_loop_s)

    def _on_result(self, rs: RealServerState, cs: CheckerState) -> None:
        result = cs.result
        assert result is not None
        if result.ok and result.weight is not None and result.weight != rs.dynamic_weight:
            rs.dynamic_weight = result.weight
            self._wake.set()
        verdict = rs.evaluate()
        if verdict is None or verdict == rs.up:
            return
        rs.up = verdict
        rs.since = self._clock()
        rs.transitions += 1
        log = _log.info if verdict else _log.warning
        log(
            "real server up" if verdict else "real server down",
            virtual_server=rs.vs_key,
            real_server=f"{rs.config.ip}:{rs.port}",
            checker=cs.checker.describe(),
            detail=result.detail,
        )
        script = rs.config.notify_up if verdict else rs.config.notify_down
        if script:
            self._run_script(script, "notify_up" if verdict else "notify_down", rs)
        self._fifo_rs(rs)
        self._wake.set()

    # ------------------------------------------------------------------ notify FIFO lines

    def _vs_name(self, vs_key: str) -> str:
        """keepalived's FMT_VS: ``[ADDR]:tcp:PORT``, ``FWM N`` or ``[GROUP]:0``."""
        parsed = lvs.parse_vs_key(vs_key)
        if parsed.kind == "fwmark":
            return f"FWM {parsed.fwmark}"
        if parsed.kind == "group":
            return f"[{parsed.group}]:0"
        vs = _vs_items(self._config)[vs_key]
        return trio(str(parsed.address), vs.protocol, parsed.port or 0)

    def _fifo_rs(self, rs: RealServerState) -> None:
        if self.fifos is None or not self.fifos.wants_lvs:
            return
        vs = _vs_items(self._config).get(rs.vs_key)
        protocol = vs.protocol if vs is not None else "TCP"
        self.fifos.lvs(
            rs_line(trio(rs.config.ip.compressed, protocol, rs.port), self._vs_name(rs.vs_key), rs.up)
        )

    def _fifo_vs(self, vs_key: str, up: bool) -> None:
        if self.fifos is not None and self.fifos.wants_lvs:
            self.fifos.lvs(vs_line(self._vs_name(vs_key), up))

    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_s)
            self._wake.clear()
            await self.reconcile()

    # ------------------------------------------------------------------ desired table

    def _desired_keys(self) -> set[ServiceKey]:
        groups = _groups(self._config)
        keys: set[ServiceKey] = set()
        for vs_key, vs in _vs_items(self._config).items():
            keys.update(service_keys(vs_key, vs, groups))
        return keys

    def desired_table(self) -> Table:
        """The IPVS table the current health state asks for (also updates quorum state)."""
        table: dict[ServiceKey, Service] = {}
        groups = _groups(self._config)
        for vs_key, vs in _vs_items(self._config).items():
            servers = [s for s in self._servers.values() if s.vs_key == vs_key]
            dests = self._dests_for(vs_key, vs, servers)
            port_dests = tuple(sorted(dests))
            for key in service_keys(vs_key, vs, groups):
                table[key] = Service(
                    key=key,
                    sched=vs.lvs_sched,
                    persistence_timeout_s=vs.persistence_timeout or 0,
                    netmask=_netmask(vs, key.family),
                    ops=vs.ops,
                    dests=port_dests,
                )
        return table

    def _dests_for(self, vs_key: str, vs: lvs.VirtualServer, servers: list[RealServerState]) -> list[Dest]:
        live = [s for s in servers if s.up]
        floor = vs.depool_floor_count(len(servers))
        for s in servers:
            s.held_by_floor = False
        if len(live) < floor:
            held = [s for s in servers if not s.up][: floor - len(live)]
            for s in held:
                s.held_by_floor = True
            _log.error(
                "depool floor keeps failing real servers in the pool",
                virtual_server=vs_key,
                live=len(live),
                floor=floor,
                held=[f"{s.config.ip}:{s.port}" for s in held],
            )
        pooled = [s for s in servers if s.up or s.held_by_floor]

        # quorum with hysteresis (keepalived): down below quorum-h, up again at quorum+h
        q = self._quorum.setdefault(vs_key, QuorumState())
        live_weight = sum(s.weight for s in live)
        if q.up and live_weight < vs.quorum - vs.hysteresis:
            q.up, q.transitions = False, q.transitions + 1
            _log.error(
                "virtual server lost quorum", virtual_server=vs_key, live_weight=live_weight, quorum=vs.quorum
            )
            if vs.quorum_down:
                self._run_script(vs.quorum_down, "quorum_down", None)
            self._fifo_vs(vs_key, False)
        elif not q.up and live_weight >= vs.quorum + vs.hysteresis:
            q.up, q.transitions = True, q.transitions + 1
            _log.info("virtual server regained quorum", virtual_server=vs_key, live_weight=live_weight)
            if vs.quorum_up:
                self._run_script(vs.quorum_up, "quorum_up", None)
            self._fifo_vs(vs_key, True)

        default_port = servers[0].port if servers else 0
        if not q.up and vs.sorry_server is not None:
            sorry = vs.sorry_server
            method = vs.sorry_server_lvs_method or vs.lvs_method
            port = sorry.port if sorry.port is not None else default_port
            return [Dest(sorry.ip.compressed, port, 1, method)]

        dests: list[Dest] = []
        if vs.sorry_server is not None and vs.sorry_server_inhibit:
            # keepalived: with sorry_server_inhibit the sorry server stays at weight 0
            sorry = vs.sorry_server
            port = sorry.port if sorry.port is not None else default_port
            dests.append(Dest(sorry.ip.compressed, port, 0, vs.sorry_server_lvs_method or vs.lvs_method))
        for s in servers:
            method = s.config.lvs_method or vs.lvs_method
            inhibit = (
                s.config.inhibit_on_failure
                if s.config.inhibit_on_failure is not None
                else vs.inhibit_on_failure
            )
            # keepalived uthreshold / lthreshold (IPVS_DEST_ATTR_U_THRESH / L_THRESH)
            limits = {"u_threshold": s.config.uthreshold or 0, "l_threshold": s.config.lthreshold or 0}
            if s in pooled:
                dests.append(Dest(s.config.ip.compressed, s.port, s.weight, method, **limits))
            elif inhibit:
                dests.append(Dest(s.config.ip.compressed, s.port, 0, method, **limits))
        return dests

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self) -> list[Op]:
        """Read the kernel, plan against the desired table, apply.  Returns the ops."""
        desired = self.desired_table()
        owned = self._recorded | set(desired)
        try:
            observed = await asyncio.to_thread(self.kernel.read_table)
        except Exception as exc:
            self.last_errors = [f"read: {exc}"]
            _log.error("ipvs read failed", error=str(exc))
            return []
        ops = plan(observed, desired, owned)
        errors: list[Exception] = []
        if ops:
            errors = await asyncio.to_thread(self.kernel.apply, ops)
            for op in ops:
                _log.info("ipvs op", op=str(op), dry_run=not self.apply)
        for err in errors:
            _log.error("ipvs op failed", error=str(err))
        self.last_ops = ops
        self.last_errors = [str(e) for e in errors]
        self.last_sync = self._clock()
        self.reconciles += 1
        # what we own now: the desired keys, plus owned ones whose deletion failed
        kept = {k for k in self._recorded - set(desired) if k in observed and errors}
        new_recorded = set(desired) | kept
        if new_recorded != self._recorded:
            self._recorded = new_recorded
            self._save_recorded(new_recorded)
        return ops

    # ------------------------------------------------------------------ ownership file

    @property
    def recorded_keys(self) -> set[ServiceKey]:
        """Service keys recorded as created by pyvrrp (state file + this run)."""
        return set(self._recorded)

    def _load_recorded(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            data = json.loads(self.state_file.read_text())
            self._recorded = {ServiceKey(**item) for item in data.get("services", [])}
        except (OSError, ValueError, TypeError) as exc:
            _log.error("ignoring unreadable ipvs state file", path=str(self.state_file), error=str(exc))

    def _save_recorded(self, keys: Iterable[ServiceKey]) -> None:
        if self.state_file is None or not self.apply:
            return
        data = {
            "services": [
                {
                    "family": k.family,
                    "protocol": k.protocol,
                    "address": k.address,
                    "port": k.port,
                    "fwmark": k.fwmark,
                }
                for k in sorted(keys)
            ]
        }
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            tmp.replace(self.state_file)
        except OSError as exc:
            _log.error("cannot write ipvs state file", path=str(self.state_file), error=str(exc))

    # ------------------------------------------------------------------ scripts

    def _run_script(self, script: str, what: str, rs: RealServerState | None) -> None:
        """Run a notify/quorum script in the background (argv split like a shell; no shell).

        keepalived passes nothing to these scripts; we add PYVRRP_* environment variables.
        """
        env = dict(os.environ)
        env["PYVRRP_EVENT"] = what
        if rs is not None:
            env.update(
                PYVRRP_VIRTUAL_SERVER=rs.vs_key,
                PYVRRP_REAL_SERVER_IP=rs.config.ip.compressed,
                PYVRRP_REAL_SERVER_PORT=str(rs.port),
            )

        async def _go() -> None:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *shlex.split(script),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                _log.error("notify script failed to start", script=script, event=what, error=str(exc))
                return
            try:
                rc = await asyncio.wait_for(proc.wait(), SCRIPT_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                _log.error("notify script timed out", script=script, event=what)
                return
            if rc != 0:
                _log.warning("notify script exited non-zero", script=script, event=what, status=rc)

        try:
            task = asyncio.get_running_loop().create_task(_go())
        except RuntimeError:
            _log.error("no event loop for notify script", script=script, event=what)
            return
        self._script_tasks.add(task)
        task.add_done_callback(self._script_tasks.discard)

    # ------------------------------------------------------------------ introspection

    async def handle_control(self, params: dict[str, Any]) -> dict[str, Any]:
        """Control-socket handler for op ``"ipvs"``: ``server.register("ipvs", mgr.handle_control)``."""
        return self.snapshot()

    def health_counts(self, vs_key: str) -> tuple[int, int]:
        """(healthy, total) real servers of one virtual server (BGP announce quorum)."""
        servers = [s for s in self._servers.values() if s.vs_key == vs_key]
        return sum(1 for s in servers if s.up), len(servers)

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly state for ``pyvrrp ipvs show`` (control op "ipvs")."""
        now = self._clock()
        vss = _vs_items(self._config)
        groups = _groups(self._config)
        out_vs: list[dict[str, Any]] = []
        for vs_key, vs in vss.items():
            servers = [s for s in self._servers.values() if s.vs_key == vs_key]
            q = self._quorum.get(vs_key, QuorumState())
            out_vs.append(
                {
                    "key": vs_key,
                    "services": [str(k) for k in service_keys(vs_key, vs, groups)],
                    "protocol": vs.protocol,
                    "sched": vs.lvs_sched,
                    "method": vs.lvs_method,
                    "quorum": {
                        "up": q.up,
                        "required": vs.quorum,
                        "live_weight": sum(s.weight for s in servers if s.up),
                    },
                    "checking": not (vs.ha_suspend and not self._master),
                    "real_servers": [
                        {
                            "ip": s.config.ip.compressed,
                            "port": s.port,
                            "weight": s.weight,
                            "up": s.up,
                            "held_by_floor": s.held_by_floor,
                            "since_s": round(now - s.since, 3),
                            "transitions": s.transitions,
                            "checkers": [
                                {
                                    "check": c.checker.describe(),
                                    "ok": None if c.result is None else c.result.ok,
                                    "detail": None if c.result is None else c.result.detail,
                                    "age_s": None if c.at is None else round(now - c.at, 3),
                                    "rounds": c.rounds,
                                }
                                for c in s.checkers
                            ],
                        }
                        for s in servers
                    ],
                }
            )
        return {
            "apply": self.apply,
            "master": self._master,
            "virtual_servers": out_vs,
            "owned": [str(k) for k in sorted(self._recorded | self._desired_keys())],
            "last_ops": [op_to_dict(o) for o in self.last_ops],
            "last_errors": list(self.last_errors),
            "last_sync_age_s": None if self.last_sync is None else round(now - self.last_sync, 3),
            "reconciles": self.reconciles,
        }
