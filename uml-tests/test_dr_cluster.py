"""The seed's LVS-DR cluster end to end in the UML kernel (ANCHORS §2.9, §2.10).

client → VIP → IPVS rr/DR on the director → rs1/rs2 answer the client directly.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import DIRECTOR, HOSTS, VIP, Lab

from pyvrrp.config.toml_loader import loads_toml
from pyvrrp.ipvs import kernel
from pyvrrp.ipvs.manager import IpvsManager
from pyvrrp.ipvs.plan import ServiceKey, plan

SVC = ServiceKey.addr(VIP, 80)
RS1, RS2 = HOSTS["rs1"], HOSTS["rs2"]

# the TOML shape, with checker timing short enough for a test
CONFIG = f"""
[virtual_server."{VIP}:80"]
protocol = "TCP"
lb_algo = "rr"
lb_kind = "DR"
delay_loop = 1
[[virtual_server."{VIP}:80".real_server]]
ip = "{RS1}"
port = 80
weight = 1
TCP_CHECK = {{ connect_timeout = 1, retry = 1, delay_before_retry = 0.5 }}
[[virtual_server."{VIP}:80".real_server]]
ip = "{RS2}"
port = 80
[virtual_server."{VIP}:80".real_server.HTTP_GET]
url = [{{ path = "/", status_code = 200, regex = "rs2" }}]
connect_timeout = 1
retry = 1
delay_before_retry = 0.5
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab()
    try:
        lab.up(tmp_path_factory.mktemp("rs"))
        yield lab
    finally:
        lab.down()
        table = kernel.read_table()
        kernel.apply(plan(table, {}, {SVC}))


def _dests() -> set[str]:
    svc = kernel.read_table().get(SVC)
    return {d.address for d in svc.dests} if svc else set()


def test_dr_round_robin_direct_return(lab: Lab, tmp_path: Path) -> None:
    """Six GETs to the VIP alternate rs1/rs2; replies bypass the director (OutPkts 0)."""
    mgr = IpvsManager(loads_toml(CONFIG), apply=True, state_file=tmp_path / "owned.json")

    async def once() -> None:
        await mgr.reconcile()

    asyncio.run(once())
    assert _dests() == {RS1, RS2}
    replies = lab.get(6)
    assert sorted(set(replies)) == ["rs1", "rs2"], replies
    assert all(a != b for a, b in itertools.pairwise(replies)), f"not alternating: {replies}"
    # the kernel folds its per-CPU counters into the dumped stats every 2 s (estimator)
    deadline = time.monotonic() + 5
    while True:
        (sd,) = [s for s in kernel.dump() if s.service.key == SVC]
        if sd.stats.conns == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sd.stats.conns == 6 and sd.stats.in_pkts > 0
    assert sd.stats.out_pkts == 0, "DR replies must not pass through the director"
    # the real servers must not answer ARP for the VIP: only the director's MAC is cached
    neigh = subprocess.run(
        ["ip", "netns", "exec", lab.ns("client"), "ip", "neigh", "show", VIP], capture_output=True, text=True
    ).stdout
    director_mac = Path(f"/sys/class/net/{lab.bridge}/address").read_text().strip()
    assert director_mac in neigh, (neigh, DIRECTOR)

    async def stop() -> None:
        await mgr.stop()

    asyncio.run(stop())
    assert SVC not in kernel.read_table()


def test_manager_tcp_check_removes_and_restores_rs1(lab: Lab, tmp_path: Path) -> None:
    """TCP_CHECK: rs1's web server stops → rs1 leaves the IPVS table within
    delay_loop * (retry + 1) (+ slack); traffic goes to rs2 only; rs1 comes back."""
    config = loads_toml(CONFIG)
    vs = config.virtual_server[f"{VIP}:80"]
    bound_s = vs.delay_loop * (vs.real_server[0].tcp_check[0].retry + 1)
    timings: dict[str, float] = {}

    async def scenario() -> None:
        mgr = IpvsManager(config, apply=True, state_file=tmp_path / "owned.json")
        await mgr.start()
        try:
            await _until(lambda: _dests() == {RS1, RS2}, 5)
            # let both checkers complete a round so rs2's HTTP_GET (regex) is proven up
            await _until(
                lambda: all(
                    c["rounds"] > 0
                    for v in mgr.snapshot()["virtual_servers"]
                    for r in v["real_servers"]
                    for c in r["checkers"]
                ),
                5,
            )
            assert _dests() == {RS1, RS2}
            t0 = time.monotonic()
            await asyncio.to_thread(lab.stop_web, "rs1")
            await _until(lambda: _dests() == {RS2}, bound_s + 3)
            timings["removed_s"] = time.monotonic() - t0
            replies = await asyncio.to_thread(lab.get, 4)
            assert replies == ["rs2"] * 4
            rs1 = next(r for r in mgr.snapshot()["virtual_servers"][0]["real_servers"] if r["ip"] == RS1)
            assert rs1["up"] is False
            t1 = time.monotonic()
            await asyncio.to_thread(lab.start_web, "rs1")
            await _until(lambda: _dests() == {RS1, RS2}, vs.delay_loop + 3)
            timings["restored_s"] = time.monotonic() - t1
            replies = await asyncio.to_thread(lab.get, 4)
            assert sorted(set(replies)) == ["rs1", "rs2"], replies
        finally:
            await mgr.stop()
        assert SVC not in kernel.read_table()

    asyncio.run(scenario())
    print(
        f"\nrs1 removed after {timings['removed_s']:.2f} s (bound {bound_s:g} s), "
        f"restored after {timings['restored_s']:.2f} s"
    )
    assert timings["removed_s"] <= bound_s + 1.0


async def _until(pred, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)
