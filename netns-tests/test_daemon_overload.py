"""A backup that falls behind its socket never takes over from a live master (issue 15 item 1).

lb1 (priority 150) is MASTER of N instances advertising every 50 ms (VRRPv3), lb2
(priority 100) their BACKUP: 2,000 adverts/s reach lb2, Master_Down_Interval is 0.18 s.
lb2 is stopped (SIGSTOP) for 0.6 s, three Master_Down_Intervals, while lb1 keeps
advertising, then continued: ~1,200 adverts wait in its socket and every deadline is
long past.  pyvrrp must read what is queued before it lets any deadline fire (the
adverts arrived in time, their kernel stamps say so), so nothing changes state: no
instance of lb2 leaves BACKUP, lb1 is never preempted, and the receive lag shows the
stall (``pyvrrp state`` ``receive``).  Before issue 15 the late timers fired with
adverts still unread (or dropped by a full receive buffer) and lb2 took over.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from _daemon_helpers import signal_node, start

from pyvrrp.lab.topology import InstanceSpec, Lab, PyvrrpNode, wait_for

pytestmark = pytest.mark.netns

N = 100
INTERVAL_S = 0.05
STOP_S = 0.6
ROUNDS = 3


def specs(priority: int) -> list[InstanceSpec]:
    return [
        InstanceSpec(
            priority=priority,
            name=f"VI_{vrid}",
            vrid=vrid,
            version=3,
            advert_int_s=INTERVAL_S,
            vips=(f"198.18.{vrid // 250}.{vrid % 250 + 1}/32",),
        )
        for vrid in range(1, N + 1)
    ]


def views(node: PyvrrpNode) -> list[dict[str, Any]]:
    data = node.state_json(timeout_s=10.0)
    assert data is not None, f"{node.host} unreachable; log:\n{node.log_text()[-2000:]}"
    return list(data["instances"])


def all_in(node: PyvrrpNode, state: str, *, heard: bool = False) -> bool:
    vs = node.state_json(timeout_s=10.0)
    if not vs or len(vs["instances"]) != N:
        return False
    return all(v["state"] == state and (not heard or v["master_ip"]) for v in vs["instances"])


def transitions(vs: list[dict[str, Any]]) -> int:
    return sum(int(v["counters"].get("transitions", 0)) for v in vs)


def test_a_stopped_backup_reads_its_queue_before_any_deadline(lab: Lab) -> None:
    lb1 = start(lab, "lb1", *specs(150))
    wait_for(lambda: all_in(lb1, "MASTER"), 20.0, 0.2, what="lb1 MASTER of every instance")
    lb2 = start(lab, "lb2", *specs(100))
    wait_for(lambda: all_in(lb2, "BACKUP", heard=True), 20.0, 0.2, what="lb2 BACKUP, hearing lb1")
    time.sleep(0.5)
    before1, before2 = transitions(views(lb1)), transitions(views(lb2))
    for _ in range(ROUNDS):
        signal_node(lb2, signal.SIGSTOP)
        try:
            time.sleep(STOP_S)
        finally:
            signal_node(lb2, signal.SIGCONT)
        time.sleep(1.0)
    v1, v2 = views(lb1), views(lb2)
    flipped = [v["name"] for v in v2 if v["state"] != "BACKUP"]
    assert not flipped, f"lb2 took over {len(flipped)} instances: {flipped[:5]}"
    assert transitions(v2) == before2, "lb2 changed state while lb1 kept advertising"
    assert transitions(v1) == before1 and all(v["state"] == "MASTER" for v in v1)
    rx = v2[0]["receive"]
    # the stall is visible: adverts waited ~0.6 s, and deadlines found them queued
    assert rx["oldest_unread_age_max_s"] >= 0.3, rx
    assert rx["timers_late"] >= 1 and rx["drained_before_timer"] > 0, rx
    assert rx["kernel_drops"] == 0, rx
    assert rx["adverts_fast"] > rx["adverts_full"], rx  # the common case took the fast path
