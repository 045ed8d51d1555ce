"""After an L2 split heals, one VIP holder again, and it is the better router (issue 13 §5).

Lab: netns-tests/_twosite.py (two switches joined by one trunk, lb1 priority 150 on site A,
lb2 priority 100 on site B, 3-member etcd e1/e2/e3 with e3 at a witness site).  VRRPv3 at
1 s (the interval the issue measured), every guard on (gateway_check of the own site's
gateway, conflict_detection, probe_vip_before_takeover).  The trunk is cut for longer than
Master_Down_Interval and restored; ``ip addr`` is sampled in both schedulers every ~20 ms.

Asserted: lb1 (150) holds the VIP at the end and never gave it up after the heal (the
MAC rule of conflict detection must not make the better router yield while VRRP adverts
flow), and the dual-master time after the heal is under 1.5 s (a wide margin: the target
is 0.3 s, the figure is printed; this VM stalls under load).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from _faults import HolderSampler, Timing, transitions_in
from _twosite import Impl, TwoSiteEtcd, TwoSiteLab, WTiming, require_tools, start_pair

from pyvrrp.lab.topology import DaemonNode, wait_for

pytestmark = pytest.mark.skipif(bool(require_tools()), reason=f"missing {require_tools()}")

WT = WTiming(dataclasses.replace(Timing(), settle_s=4.0), ttl_s=5, margin_s=1.0)
HEAL_BOUND_S = 1.5


@pytest.fixture
def two_site() -> Iterator[tuple[TwoSiteLab, TwoSiteEtcd]]:
    with TwoSiteLab() as lab:
        etcd = TwoSiteEtcd(lab)
        try:
            yield lab, etcd.start()
        finally:
            etcd.destroy()


def _split_and_heal(
    lab: TwoSiteLab, nodes: dict[str, DaemonNode], *, majority_with_master: bool, split_s: float
) -> tuple[list[tuple[float, bool, bool]], float]:
    sampler = HolderSampler(lab, 0.02)
    sampler.start()
    try:
        time.sleep(0.5)
        lab.split(master_side_keeps_majority=majority_with_master)
        time.sleep(split_s)
        t_heal = time.time()
        lab.heal()
        time.sleep(WT.vrrp.settle_s)
    finally:
        sampler.stop()
    for node in nodes.values():
        node.stop(timeout_s=5.0)
    return sampler.samples, t_heal


def _after_heal(samples: list[tuple[float, bool, bool]], t_heal: float) -> tuple[float, bool, bool]:
    """(dual-master seconds after the heal, lb1 held the VIP at the heal, lb1 lost it afterwards)."""
    after = [s for s in samples if s[0] >= t_heal]
    assert len(after) > 50, f"sampler too slow ({len(after)} samples in {WT.vrrp.settle_s} s)"
    dual = 0.0
    for i, (t, a, b) in enumerate(after[:-1]):
        if a and b:
            dual += after[i + 1][0] - t
    held_at_heal = after[0][1]
    lost = held_at_heal and any(not a for _, a, _ in after)
    return dual, held_at_heal, lost


def test_heal_without_witness_the_better_router_keeps_the_vip(
    two_site: tuple[TwoSiteLab, TwoSiteEtcd],
) -> None:
    """Trunk cut (both become MASTER), trunk back: lb2 yields to lb1 by the VRRP election."""
    lab, etcd = two_site
    nodes = start_pair(lab, etcd, Impl("pyvrrp"), WT)
    offsets = {h: n.log_path.stat().st_size for h, n in nodes.items()}
    samples, t_heal = _split_and_heal(
        lab, nodes, majority_with_master=True, split_s=2 * WT.vrrp.master_down_s
    )
    dual, held_at_heal, lost = _after_heal(samples, t_heal)
    during = [s for s in samples if s[0] < t_heal]
    print(
        f"\nheal without witness (all guards): dual master {dual:.3f} s after the trunk came back; "
        f"transitions lb1 {transitions_in(nodes['lb1'], offsets['lb1'])} lb2 "
        f"{transitions_in(nodes['lb2'], offsets['lb2'])}"
    )
    assert any(a and b for _, a, b in during), "the split never gave two holders (the lab did not split)"
    assert held_at_heal, "lb1 lost the VIP during the split"
    assert not lost, f"lb1 (150) gave the VIP up after the heal\n{nodes['lb1'].log_text()[-3000:]}"
    assert dual < HEAL_BOUND_S, f"{dual:.2f} s of dual master after the heal"
    assert samples[-1][1] and not samples[-1][2]


def test_heal_with_witness_master_side_majority(two_site: tuple[TwoSiteLab, TwoSiteEtcd]) -> None:
    """W1 then heal: never two holders, lb1 keeps the VIP throughout."""
    lab, etcd = two_site
    nodes = start_pair(lab, etcd, Impl("pyvrrp", witness=True), WT)
    samples, t_heal = _split_and_heal(
        lab, nodes, majority_with_master=True, split_s=2 * WT.vrrp.master_down_s
    )
    dual, held_at_heal, lost = _after_heal(samples, t_heal)
    print(f"\nheal with witness (W1): dual master {dual:.3f} s after the heal")
    assert not any(a and b for _, a, b in samples), "two holders with the witness"
    assert held_at_heal and not lost and dual < HEAL_BOUND_S


def test_heal_with_witness_master_on_minority(two_site: tuple[TwoSiteLab, TwoSiteEtcd]) -> None:
    """W2 then heal: lb2 took over during the split; after the heal lb1 (150) preempts with a claim."""
    lab, etcd = two_site
    nodes = start_pair(lab, etcd, Impl("pyvrrp", witness=True), WT)
    split_s = WT.ttl_s + WT.vrrp.master_down_s + 3.0
    sampler = HolderSampler(lab, 0.02)
    sampler.start()
    try:
        lab.split(master_side_keeps_majority=False)
        wait_for(lambda: lab.holds_vip("lb2"), split_s + 10, 0.05, what="lb2 takes over on the majority side")
        time.sleep(1.0)
        t_heal = time.time()
        lab.heal()
        wait_for(lambda: lab.holds_vip("lb1"), 20, 0.05, what="lb1 preempts after the heal")
        time.sleep(2.0)
    finally:
        sampler.stop()
    took = next(t for t, a, _ in sampler.samples if t >= t_heal and a) - t_heal
    dual = sum(
        sampler.samples[i + 1][0] - t
        for i, (t, a, b) in enumerate(sampler.samples[:-1])
        if a and b and t >= t_heal
    )
    print(f"\nheal with witness (W2): lb1 holds the VIP again {took:.2f} s after the heal, dual {dual:.3f} s")
    assert not any(a and b for _, a, b in sampler.samples), "two holders with the witness"
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    for node in nodes.values():
        node.stop(timeout_s=5.0)
