"""Pure IPVS planner (ANCHORS §2.9, PyBal "add/edit/remove servers by set-diff")."""

from __future__ import annotations

import contextlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    Dest,
    EditDest,
    EditService,
    Service,
    ServiceKey,
    apply_to_table,
    op_to_dict,
    plan,
)

VIP = ServiceKey.addr("192.168.233.200", 80)
FOREIGN = ServiceKey.addr("192.168.233.201", 443)
RS1 = Dest("192.168.233.100", 80, 1, "DR")
RS2 = Dest("192.168.233.110", 80, 1, "DR")


def svc(key: ServiceKey = VIP, *dests: Dest, sched: str = "rr", **kw: object) -> Service:
    return Service(key, sched, dests=tuple(dests), **kw)  # type: ignore[arg-type]


def test_empty_kernel_adds_service_then_dests() -> None:
    """ANCHORS §2.9: a new virtual_server becomes AddService followed by its AddDests."""
    ops = plan({}, {VIP: svc(VIP, RS2, RS1)}, set())
    assert ops == [AddService(svc(VIP)), AddDest(VIP, RS1), AddDest(VIP, RS2)]


def test_adopting_identical_service_yields_no_ops() -> None:
    """After a restart the kernel already matches: nothing to do."""
    table = {VIP: svc(VIP, RS1, RS2)}
    assert plan(table, {VIP: svc(VIP, RS2, RS1)}, set()) == []


def test_foreign_service_never_touched() -> None:
    """Services not desired and not recorded as ours are left alone."""
    observed = {VIP: svc(VIP, RS1), FOREIGN: svc(FOREIGN, RS2, sched="wlc")}
    ops = plan(observed, {VIP: svc(VIP, RS1)}, {VIP})
    assert ops == []
    ops = plan(observed, {}, {VIP})
    assert ops == [DelService(VIP)]


def test_owned_service_removed_when_no_longer_desired() -> None:
    assert plan({VIP: svc(VIP, RS1)}, {}, {VIP}) == [DelService(VIP)]
    assert plan({VIP: svc(VIP, RS1)}, {}, set()) == []


def test_dest_set_diff_and_edits() -> None:
    """Failed RS removed, new one added, weight/method changes edited in place."""
    rs3 = Dest("192.168.233.120", 80, 2, "DR")
    observed = {VIP: svc(VIP, RS1, RS2)}
    want_rs2 = Dest(RS2.address, RS2.port, 0, "DR")
    ops = plan(observed, {VIP: svc(VIP, want_rs2, rs3)}, {VIP})
    assert ops == [DelDest(VIP, RS1), AddDest(VIP, rs3), EditDest(VIP, want_rs2, ("weight 1->0",))]
    nat = Dest(RS1.address, RS1.port, 1, "NAT")
    ops = plan({VIP: svc(VIP, RS1)}, {VIP: svc(VIP, nat)}, {VIP})
    assert ops == [EditDest(VIP, nat, ("method DR->NAT",))]


def test_threshold_change_is_a_dest_edit() -> None:
    """keepalived uthreshold / lthreshold: a changed threshold edits the destination."""
    limited = Dest(RS1.address, RS1.port, RS1.weight, RS1.method, u_threshold=100, l_threshold=10)
    have = {VIP: Service(VIP, "wlc", dests=(RS1,))}
    want = {VIP: Service(VIP, "wlc", dests=(limited,))}
    assert plan(have, want, {VIP}) == [EditDest(VIP, limited, ("uthreshold 0->100", "lthreshold 0->10"))]
    assert plan(want, want, {VIP}) == []
    assert op_to_dict(EditDest(VIP, limited, ()))["dest"] == {
        "address": RS1.address,
        "port": RS1.port,
        "weight": RS1.weight,
        "method": RS1.method,
        "u_threshold": 100,
        "l_threshold": 10,
    }


def test_service_attribute_edit() -> None:
    """Scheduler / persistence / granularity changes are one EditService ("set")."""
    observed = {VIP: svc(VIP, RS1)}
    desired = {VIP: svc(VIP, RS1, sched="wlc", persistence_timeout_s=300, netmask="255.255.255.0")}
    ops = plan(observed, desired, {VIP})
    assert len(ops) == 1 and isinstance(ops[0], EditService)
    assert ops[0].changes == ("sched rr->wlc", "persistence 0->300", "netmask 255.255.255.255->255.255.255.0")


def test_default_netmask_normalised() -> None:
    """A kernel read (explicit /32 or /128) equals a desired service without a netmask."""
    v6 = ServiceKey.addr("2001:db8::1", 443)
    assert svc(v6).netmask == "128"
    assert plan({v6: Service(v6, "rr", netmask="128")}, {v6: svc(v6)}, set()) == []


def test_fwmark_and_v6_keys() -> None:
    assert str(ServiceKey.mark(5)) == "FWM 5"
    assert str(ServiceKey.addr("2001:db8::0:1", 80)) == "TCP [2001:db8::1]:80"
    assert ServiceKey.addr("10.0.0.1", 53, "udp").protocol == "UDP"


def test_op_to_dict_is_json_friendly() -> None:
    import json

    ops = plan({}, {VIP: svc(VIP, RS1)}, set())
    data = [op_to_dict(o) for o in ops]
    assert json.loads(json.dumps(data))[1]["dest"] == {
        "address": "192.168.233.100",
        "port": 80,
        "weight": 1,
        "method": "DR",
    }


addrs = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::7"])
dests = st.builds(
    Dest,
    address=st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.3"]),
    port=st.sampled_from([80, 8080]),
    weight=st.integers(0, 3),
    method=st.sampled_from(["DR", "NAT", "TUN"]),
)


@st.composite
def tables(draw: st.DrawFn) -> dict[ServiceKey, Service]:
    out: dict[ServiceKey, Service] = {}
    for a in draw(st.lists(addrs, max_size=3, unique=True)):
        key = ServiceKey.addr(a, 80)
        ds = {d.key: d for d in draw(st.lists(dests, max_size=4))}
        out[key] = Service(
            key,
            draw(st.sampled_from(["rr", "wlc"])),
            draw(st.sampled_from([0, 300])),
            dests=tuple(sorted(ds.values())),
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    tables(), tables(), st.sets(st.sampled_from([ServiceKey.addr(a, 80) for a in ["10.0.0.1", "10.0.0.3"]]))
)
def test_plan_converges_and_spares_foreign(
    observed: dict[ServiceKey, Service], desired: dict[ServiceKey, Service], recorded: set[ServiceKey]
) -> None:
    """Applying the plan yields desired for owned keys, leaves foreign ones as they were,
    and re-planning yields nothing."""
    owned = recorded | set(desired)
    result = apply_to_table(observed, plan(observed, desired, owned))
    for key in desired:
        assert result[key] == desired[key]
    for key, service in observed.items():
        if key not in owned:
            assert result[key] == service
        elif key not in desired:
            assert key not in result
    assert plan(result, desired, owned) == []


# --------------------------------------------------------------------------- manager
# IpvsManager against a simulated kernel table and real TCP servers on 127.0.0.1.

import asyncio  # noqa: E402
import socket  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

from pyvrrp.config.lvs import VirtualServer  # noqa: E402
from pyvrrp.ipvs.manager import IpvsManager, SimulatedKernel  # noqa: E402

LVIP = ServiceKey.addr("10.99.0.1", 80)


def _listener() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def _cfg(ports: list[int], **vs: Any) -> SimpleNamespace:
    rs = [{"ip": "127.0.0.1", "port": p, "TCP_CHECK": {"connect_timeout": 0.5, "retry": 0}} for p in ports]
    raw = {"lb_algo": "rr", "lb_kind": "DR", "delay_loop": 0.1, "real_server": rs, **vs}
    return SimpleNamespace(
        virtual_server={"10.99.0.1:80": VirtualServer.model_validate(raw)}, virtual_server_group={}
    )


async def _until(pred: Any, timeout_s: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


def _dest_ports(k: SimulatedKernel) -> dict[int, int]:
    return {d.port: d.weight for d in k.table[LVIP].dests} if LVIP in k.table else {}


def test_manager_removes_failed_server_and_restores_it(tmp_path: Path) -> None:
    """ANCHORS §2.10 TCP_CHECK: a dead RS leaves the pool, comes back when it answers;
    stop() removes our service but not a foreign one."""
    a, b = _listener(), _listener()
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    foreign = Service(FOREIGN, "wlc", dests=(RS1,))
    kern = SimulatedKernel({FOREIGN: foreign})

    async def scenario() -> None:
        nonlocal b
        mgr = IpvsManager(_cfg([pa, pb]), kernel=kern, state_file=tmp_path / "owned.json")
        await mgr.start()
        assert _dest_ports(kern) == {pa: 1, pb: 1}
        b.close()
        await _until(lambda: _dest_ports(kern) == {pa: 1})
        snap = mgr.snapshot()
        rs_b = next(r for r in snap["virtual_servers"][0]["real_servers"] if r["port"] == pb)
        assert rs_b["up"] is False and rs_b["checkers"][0]["ok"] is False
        b = socket.socket()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        b.bind(("127.0.0.1", pb))
        b.listen(16)
        await _until(lambda: _dest_ports(kern) == {pa: 1, pb: 1})
        await mgr.stop()
        assert LVIP not in kern.table and kern.table[FOREIGN] == foreign

    try:
        asyncio.run(scenario())
    finally:
        a.close()
        b.close()


def test_manager_inhibit_quorum_sorry_and_floor(tmp_path: Path) -> None:
    """ANCHORS §2.9 inhibit_on_failure (weight 0), quorum -> sorry_server; pyvrrp depool_floor."""
    dead1, dead2 = _listener(), _listener()
    p1, p2 = dead1.getsockname()[1], dead2.getsockname()[1]
    dead1.close()
    dead2.close()

    async def run_with(**vs: Any) -> dict[int, int]:
        kern = SimulatedKernel()
        mgr = IpvsManager(_cfg([p1, p2], **vs), kernel=kern, state_file=None)
        await mgr.start()
        await _until(lambda: all(not s.up for s in mgr._servers.values()))
        await mgr.reconcile()
        await mgr.stop(keep=True)
        return _dest_ports(kern)

    assert asyncio.run(run_with()) == {}
    assert asyncio.run(run_with(inhibit_on_failure=True)) == {p1: 0, p2: 0}
    assert asyncio.run(run_with(depool_floor=1)) == {p1: 1}
    assert asyncio.run(run_with(sorry_server="127.0.0.9 8080")) == {8080: 1}


def test_manager_adopts_existing_table_and_keeps_state_on_reload(tmp_path: Path) -> None:
    """Restart adoption: a matching kernel table gives no ops; reconfigure keeps RS state."""
    a = _listener()
    pa = a.getsockname()[1]
    kern = SimulatedKernel({LVIP: Service(LVIP, "rr", dests=(Dest("127.0.0.1", pa, 1, "DR"),))})

    async def scenario() -> None:
        mgr = IpvsManager(_cfg([pa]), kernel=kern, state_file=tmp_path / "o.json")
        ops = await mgr.reconcile()
        assert ops == []
        mgr._servers[("10.99.0.1:80", "127.0.0.1", pa)].up = False
        mgr.reconfigure(_cfg([pa], lb_algo="wlc"))
        assert mgr._servers[("10.99.0.1:80", "127.0.0.1", pa)].up is False
        ops = await mgr.reconcile()
        assert [type(o).__name__ for o in ops] == ["EditService", "DelDest"]

    try:
        asyncio.run(scenario())
    finally:
        a.close()


def test_manager_ha_suspend_checks_only_when_master(tmp_path: Path) -> None:
    """ANCHORS §2.9 ha_suspend: no checks while not MASTER."""
    a = _listener()
    pa = a.getsockname()[1]

    async def scenario() -> None:
        mgr = IpvsManager(_cfg([pa], ha_suspend=True), kernel=SimulatedKernel(), state_file=None)
        await mgr.start()
        await asyncio.sleep(0.3)
        rs = next(iter(mgr._servers.values()))
        assert rs.checkers[0].rounds == 0
        mgr.set_master(True)
        await _until(lambda: rs.checkers[0].rounds > 0)
        await mgr.stop()

    try:
        asyncio.run(scenario())
    finally:
        a.close()


def test_manager_notify_scripts(tmp_path: Path) -> None:
    """ANCHORS §2.9 notify_down/notify_up run on transitions."""
    dead = _listener()
    p = dead.getsockname()[1]
    dead.close()
    log = tmp_path / "log"
    script = f"sh -c 'echo $PYVRRP_EVENT $PYVRRP_REAL_SERVER_PORT >> {log}'"
    cfg = _cfg([p])
    cfg.virtual_server["10.99.0.1:80"].real_server[0].notify_down = script

    async def scenario() -> None:
        mgr = IpvsManager(cfg, kernel=SimulatedKernel(), state_file=None)
        await mgr.start()
        await _until(lambda: log.exists() and log.read_text().strip() != "")
        await mgr.stop()

    asyncio.run(scenario())
    assert log.read_text() == f"notify_down {p}\n"


def test_manager_sorry_server_inhibit_keeps_weight_zero() -> None:
    """ANCHORS §2.9 sorry_server_inhibit: the sorry server stays in the table at weight 0."""
    a = _listener()
    pa = a.getsockname()[1]

    async def scenario() -> dict[int, int]:
        kern = SimulatedKernel()
        cfg = _cfg([pa], sorry_server="127.0.0.9 8080", sorry_server_inhibit=True)
        mgr = IpvsManager(cfg, kernel=kern, state_file=None)
        await mgr.reconcile()
        return _dest_ports(kern)

    try:
        assert asyncio.run(scenario()) == {pa: 1, 8080: 0}
    finally:
        a.close()


# --------------------------------------------------------------------------- CLI


def test_cli_ipvs_plan_without_kernel(tmp_path: Path, monkeypatch: Any) -> None:
    """`pyvrrp ipvs plan` prints the ops for the issue's config (kernel unavailable here)."""
    from typer.testing import CliRunner

    from pyvrrp.cli import ipvs as cli_ipvs
    from pyvrrp.cli.app import app

    monkeypatch.setattr(cli_ipvs, "_kernel_status", lambda: (False, "no ip_vs in this test"))
    conf = tmp_path / "c.toml"
    conf.write_text(
        '[virtual_server."192.168.233.200:80"]\nlb_algo = "rr"\nlb_kind = "DR"\n'
        '[[virtual_server."192.168.233.200:80".real_server]]\nip = "192.168.233.100"\nport = 80\n'
        '[[virtual_server."192.168.233.200:80".real_server]]\nip = "192.168.233.110"\nport = 80\n'
    )
    res = CliRunner().invoke(app, ["ipvs", "plan", "-f", str(conf), "--state-file", str(tmp_path / "o.json")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1:] == [
        "add service TCP 192.168.233.200:80 sched rr",
        "add dest 192.168.233.100:80 DR w=1 to TCP 192.168.233.200:80",
        "add dest 192.168.233.110:80 DR w=1 to TCP 192.168.233.200:80",
    ]
    res = CliRunner().invoke(app, ["ipvs", "plan", "-f", str(conf), "--json", "--state-file", "/nonexistent"])
    assert [o["op"] for o in __import__("json").loads(res.output)["ops"]] == [
        "AddService",
        "AddDest",
        "AddDest",
    ]


def test_cli_ipvs_show_merges_health(monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from pyvrrp.cli import ipvs as cli_ipvs
    from pyvrrp.cli.app import app

    dest = {
        "address": "10.0.0.1",
        "port": 80,
        "weight": 0,
        "method": "DR",
        "active_conns": 0,
        "inactive_conns": 2,
    }
    svc = {"key": "TCP 10.9.9.9:80", "sched": "rr", "persistence_timeout_s": 0, "dests": [dest]}
    health = {
        "virtual_servers": [
            {
                "real_servers": [
                    {"ip": "10.0.0.1", "port": 80, "up": False, "held_by_floor": False},
                    {"ip": "10.0.0.2", "port": 80, "up": False, "held_by_floor": False},
                ]
            }
        ]
    }
    monkeypatch.setattr(cli_ipvs, "_kernel_status", lambda: (True, ""))
    monkeypatch.setattr(cli_ipvs, "_kernel_services", lambda: [svc])
    monkeypatch.setattr(cli_ipvs, "_daemon_health", lambda path: (health, ""))
    res = CliRunner().invoke(app, ["ipvs", "show"])
    assert res.exit_code == 0, res.output
    assert "TCP 10.9.9.9:80 rr" in res.output
    assert "10.0.0.1:80" in res.output and "DOWN" in res.output
    assert "(not in table) 10.0.0.2:80 DOWN" in res.output
    monkeypatch.setattr(cli_ipvs, "_kernel_status", lambda: (False, "none"))
    monkeypatch.setattr(cli_ipvs, "_daemon_health", lambda path: (None, "unreachable"))
    assert CliRunner().invoke(app, ["ipvs", "show"]).exit_code == 1


def test_manager_writes_lvs_fifo_lines(tmp_path: Path) -> None:
    """lvs_notify_fifo: keepalived's ``RS [ip]:tcp:port [vip]:tcp:port DOWN`` when a check
    fails, ``VS ... DOWN`` when the quorum goes, ``UP`` lines on the way back, in that order."""
    from pyvrrp.adapters.notify_fifo import NotifyFifo, NotifyFifos

    a = _listener()
    pa = a.getsockname()[1]
    fifos = NotifyFifos(lvs=NotifyFifo(tmp_path / "lvs.fifo"))

    async def scenario() -> bytes:
        nonlocal a
        await fifos.open()
        reader = os.open(tmp_path / "lvs.fifo", os.O_RDONLY | os.O_NONBLOCK)
        mgr = IpvsManager(_cfg([pa], quorum=1), kernel=SimulatedKernel(), state_file=None)
        mgr.fifos = fifos
        await mgr.start()
        got = b""

        def lines(n: int) -> bool:
            nonlocal got
            with contextlib.suppress(BlockingIOError):
                got += os.read(reader, 65536)
            return got.count(b"\n") >= n

        a.close()
        await _until(lambda: lines(2))  # RS down, then the quorum (the sync loop's desired table)
        a = socket.socket()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        a.bind(("127.0.0.1", pa))
        a.listen(16)
        await _until(lambda: lines(4))
        await mgr.stop(keep=True)
        os.close(reader)
        await fifos.close()
        return got

    try:
        got = asyncio.run(scenario()).decode()
    finally:
        a.close()
    rs, vs = f"[127.0.0.1]:tcp:{pa}", "[10.99.0.1]:tcp:80"
    assert got == f"RS {rs} {vs} DOWN\nVS {vs} DOWN\nRS {rs} {vs} UP\nVS {vs} UP\n"


def test_manager_desired_table_carries_thresholds() -> None:
    """uthreshold / lthreshold of a real_server reach its IPVS destination (kept at inhibit too)."""
    cfg = _cfg([8080, 8081])
    vs = cfg.virtual_server["10.99.0.1:80"]
    rs0 = vs.real_server[0].model_copy(update={"uthreshold": 200, "lthreshold": 150})
    cfg.virtual_server["10.99.0.1:80"] = vs.model_copy(update={"real_server": [rs0, vs.real_server[1]]})
    mgr = IpvsManager(cfg, kernel=SimulatedKernel(), state_file=None)
    dests = {d.port: (d.u_threshold, d.l_threshold) for d in mgr.desired_table()[LVIP].dests}
    assert dests == {8080: (200, 150), 8081: (0, 0)}


def test_manager_sets_lvs_timeouts_at_start_and_on_reload() -> None:
    """global_defs.lvs_timeouts: set when the manager starts, again when a reload changes it."""
    from pyvrrp.config.models import GlobalDefs

    kern = SimulatedKernel()
    cfg = _cfg([8080])
    cfg.global_defs = GlobalDefs.model_validate({"lvs_timeouts": {"tcp": 7200, "udp": 15}})

    async def scenario() -> list[Any]:
        mgr = IpvsManager(cfg, kernel=kern, state_file=None)
        await mgr.start()
        seen = [kern.timeouts]
        new = _cfg([8080])
        new.global_defs = GlobalDefs.model_validate({"lvs_timeouts": {"tcpfin": 30}})
        mgr.reconfigure(new)
        await _until(lambda: kern.timeouts != seen[0])
        seen.append(kern.timeouts)
        await mgr.stop(keep=True)
        return seen

    assert asyncio.run(scenario()) == [(7200, None, 15), (None, 30, None)]
