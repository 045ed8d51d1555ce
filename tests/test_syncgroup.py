"""keepalived ``vrrp_sync_group`` (issue #6 §2): SyncCommand in the engine, the SyncGroup
coordinator, and two hosts x two LANs on FakeNet with the virtual clock.

Topology of the LAN scenarios: hosts A and B, each with one router on ``lan1``
(VRID 1, VIP 192.0.2.100) and one on ``lan2`` (VRID 2, VIP 198.51.100.100),
and one sync group per host whose members are the LAN names.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_interface

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrp.proto.events import (
    AddVips,
    AdvertReceived,
    AnnounceVips,
    LinkChanged,
    RemoveVips,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
    SyncCommand,
    TakeoverPending,
    TakeoverVerdict,
    TrackerChanged,
)
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.proto.states import Trigger
from pyvrrp.proto.syncgroup import SyncGroup, sync_tracker_name
from pyvrrp.testing import FakeNet, make_config, make_router

MDI_200 = 3 + 56 / 256  # v2, 1 s, priority 200: 3.21875
MDI_100 = 3 + 156 / 256  # 3.609375
SKEW_100 = 156 / 256  # 0.609375
VIP1 = ip_interface("192.0.2.100/24")
VIP2 = ip_interface("198.51.100.100/24")
ADDR = {
    ("lan1", "A"): "192.0.2.1",
    ("lan1", "B"): "192.0.2.2",
    ("lan2", "A"): "198.51.100.1",
    ("lan2", "B"): "198.51.100.2",
}
VRID = {"lan1": 1, "lan2": 2}
VIPS = {"lan1": ("192.0.2.100/24",), "lan2": ("198.51.100.100/24",)}


def member(lan: str, host: str, priority: int, *, address: str | None = None, **kw: object) -> VirtualRouter:
    """A router for ``host`` on ``lan`` with the takeover gate a sync member needs."""
    cfg = make_config(
        host,
        priority,
        address or ADDR[(lan, host)],
        vrid=VRID[lan],
        vips=VIPS[lan],
        **kw,  # type: ignore[arg-type]
    )
    return VirtualRouter(SyncGroup.member_config(cfg))


def two_by_two(
    a: tuple[int, int] = (200, 200), b: tuple[int, int] = (100, 100), *, start: bool = True
) -> FakeNet:
    net = FakeNet()
    for i, lan in enumerate(("lan1", "lan2")):
        net.add_lan(lan, member(lan, "A", a[i]), member(lan, "B", b[i]))
    net.sync("A")
    net.sync("B")
    if start:
        net.start()
    return net


def lan_timeline(net: FakeNet, lan: str, host: str) -> list[tuple[float, State]]:
    return net[lan].timeline(host)


def advert(priority: int, vrid: int = 1, vip: str = "192.0.2.100") -> Advertisement:
    return Advertisement(
        version=2, vrid=vrid, priority=priority, addresses=(ip_address(vip),), interval_cs=100
    )


def rx(priority: int, src: str = "192.0.2.9") -> AdvertReceived:
    return AdvertReceived(advert(priority), src=ip_address(src))


# ----------------------------------------------------------- engine: SyncCommand


def backup_router(**kw: object) -> VirtualRouter:
    r = make_router("r", 100, "192.0.2.1", **kw)  # type: ignore[arg-type]
    r.handle(Startup(), now=0.0)
    return r


def test_sync_master_from_backup_runs_master_entry_actions() -> None:
    """SM-05 (entry actions): SyncCommand(MASTER) in BACKUP enters MASTER like a takeover, epoch+1."""
    r = backup_router()
    actions = r.handle(SyncCommand(State.MASTER, "lan2 became MASTER"), now=1.0)
    assert [type(a) for a in actions] == [StateChanged, SendAdvert, AddVips, AnnounceVips]
    change = actions[0]
    assert isinstance(change, StateChanged)
    assert (change.old, change.new, change.trigger, change.epoch) == (
        State.BACKUP,
        State.MASTER,
        Trigger.SYNC_MASTER.value,
        1,
    )
    assert "lan2 became MASTER" in change.reason
    assert r.state is State.MASTER and r.next_deadline() == 2.0  # Adver_Timer armed


def test_sync_backup_from_master_removes_vips_without_priority_zero() -> None:
    """SM-12 (exit actions): SyncCommand(BACKUP): RemoveVips only, Master_Down re-armed."""
    r = backup_router()
    r.handle(SyncCommand(State.MASTER), now=1.0)
    actions = r.handle(SyncCommand(State.BACKUP, "lan2 preempted"), now=5.0)
    assert [type(a) for a in actions] == [StateChanged, RemoveVips]
    assert isinstance(actions[0], StateChanged) and actions[0].trigger == Trigger.SYNC_BACKUP.value
    assert r.state is State.BACKUP
    assert r.next_deadline() == 5.0 + MDI_100
    assert r.snapshot(now=5.0).master_ip is None  # we yielded without hearing a winner


def test_sync_command_ignored_in_other_states() -> None:
    """SM-16: SyncCommand moves only BACKUP->MASTER and MASTER->BACKUP; else counted, ignored."""
    r = make_router("r", 100, "192.0.2.1")
    assert r.handle(SyncCommand(State.MASTER), now=0.0) == []  # INIT
    r.handle(Startup(), now=0.0)
    assert r.handle(SyncCommand(State.BACKUP), now=0.1) == []  # already BACKUP
    r.handle(LinkChanged(up=False), now=0.2)
    assert r.handle(SyncCommand(State.MASTER), now=0.3) == []  # FAULT stays FAULT
    assert r.state is State.FAULT
    assert r.snapshot(now=0.3).counters["sync_ignored"] == 3


def test_sync_command_target_must_be_master_or_backup() -> None:
    """SM-16: group FAULT is a tracker, not a command."""
    with pytest.raises(ValueError, match="MASTER or BACKUP"):
        SyncCommand(State.FAULT)


def test_sync_master_settles_a_pending_takeover() -> None:
    """SM-05 with the takeover gate: a forced MASTER clears the request; a late verdict is ignored."""
    r = backup_router(takeover_gate=True)
    (pending,) = r.handle_timer(now=MDI_100)
    assert isinstance(pending, TakeoverPending) and r.takeover_pending
    r.handle(SyncCommand(State.MASTER), now=4.0)
    assert r.state is State.MASTER and not r.takeover_pending
    assert r.handle(TakeoverVerdict(allow=True), now=4.1) == []
    assert r.snapshot(now=4.1).counters["takeover_verdicts_ignored"] == 1


def test_group_tracker_faults_the_member_and_shows_in_faults() -> None:
    """SM-16: ``sync:<group>`` is an ordinary fault tracker: MASTER -> FAULT with priority 0, and back."""
    r = backup_router()
    r.handle(SyncCommand(State.MASTER), now=1.0)
    actions = r.handle(TrackerChanged(sync_tracker_name("G"), fault=True), now=2.0)
    assert [type(a) for a in actions] == [StateChanged, SendAdvert, RemoveVips]
    assert isinstance(actions[1], SendAdvert) and actions[1].advert.priority == 0
    assert r.faults == ("sync:G",)
    r.handle(TrackerChanged("sync:G", fault=False), now=3.0)
    assert r.state is State.BACKUP
    assert not r.faults


# --------------------------------------------------------- coordinator alone


def pair_of_members() -> tuple[SyncGroup, dict[str, VirtualRouter]]:
    routers = {"VI_1": member("lan1", "A", 100), "VI_2": member("lan2", "A", 100)}
    for r in routers.values():
        r.handle(Startup(), now=0.0)
    return SyncGroup("G", ["VI_1", "VI_2"]), routers


def test_takeover_is_held_until_every_member_wants_master() -> None:
    """SM-05: vrrp_sync_can_goto_master: first request held, last one allowed, the rest follows."""
    group, routers = pair_of_members()
    first = routers["VI_1"].handle_timer(now=MDI_100)
    assert group.on_actions("VI_1", first, routers, now=MDI_100) == []
    assert routers["VI_1"].takeover_pending and group.blockers("VI_1", routers) == ("VI_2",)
    second = routers["VI_2"].handle_timer(now=MDI_100)
    out = group.on_actions("VI_2", second, routers, now=MDI_100)
    assert out == [("VI_2", TakeoverVerdict(allow=True, reason="sync group G ready"))]
    became = routers["VI_2"].handle(out[0][1], now=MDI_100)
    follow = group.on_actions("VI_2", became, routers, now=MDI_100)
    assert follow == [("VI_1", SyncCommand(State.MASTER, "VI_2 became MASTER"))]
    after = routers["VI_1"].handle(follow[0][1], now=MDI_100)
    # a transition the group caused is not propagated again
    assert group.on_actions("VI_1", after, routers, now=MDI_100) == []
    assert group.state(routers) is State.MASTER
    assert group.counters == {"takeover_held": 1, "takeover_allowed": 1, "sync_master": 1}


def test_a_member_hearing_a_master_cancels_its_request() -> None:
    """SM-07: an accepted advert cancels a held request: that member blocks the group again."""
    group, routers = pair_of_members()
    group.on_actions("VI_1", routers["VI_1"].handle_timer(now=MDI_100), routers, now=MDI_100)
    routers["VI_1"].handle(rx(150), now=4.0)  # a better master appears on lan1
    assert not routers["VI_1"].takeover_pending
    out = group.on_actions("VI_2", routers["VI_2"].handle_timer(now=MDI_100 + 1), routers, now=MDI_100 + 1)
    assert out == [] and group.blockers("VI_2", routers) == ("VI_1",)
    assert routers["VI_2"].state is State.BACKUP and routers["VI_2"].takeover_pending


def test_fault_spreads_and_clears_without_flapping() -> None:
    """SM-16: one own fault faults the others; the group stays down until the last own fault clears."""
    group, routers = pair_of_members()
    t = "sync:G"
    out = group.on_actions("VI_1", routers["VI_1"].handle(LinkChanged(up=False), now=1.0), routers, now=1.0)
    assert out == [("VI_2", TrackerChanged(t, fault=True))]
    routers["VI_2"].handle(out[0][1], now=1.0)
    # VI_2 gets an own fault too while in FAULT: VI_1 must now carry the group tracker
    acts = routers["VI_2"].handle(TrackerChanged("chk", fault=True), now=2.0)
    assert acts == []
    assert group.on_actions("VI_2", acts, routers, now=2.0) == [("VI_1", TrackerChanged(t, fault=True))]
    routers["VI_1"].handle(TrackerChanged(t, fault=True), now=2.0)
    # VI_1's link comes back: it stays FAULT (VI_2 is still faulty), no BACKUP blip
    acts = routers["VI_1"].handle(LinkChanged(up=True), now=3.0)
    assert acts == [] and routers["VI_1"].state is State.FAULT
    assert group.on_actions("VI_1", acts, routers, now=3.0) == [("VI_2", TrackerChanged(t, fault=False))]
    routers["VI_2"].handle(TrackerChanged(t, fault=False), now=3.0)
    assert routers["VI_2"].state is State.FAULT and routers["VI_2"].faults == ("chk",)
    # the last own fault clears: everybody returns to BACKUP
    fed = group.cascade("VI_2", routers["VI_2"].handle(TrackerChanged("chk"), now=4.0), routers, now=4.0)
    assert [(m, [type(a) for a in acts]) for m, acts in fed] == [("VI_1", [StateChanged])]
    assert {r.state for r in routers.values()} == {State.BACKUP}
    assert all(r.faults == () for r in routers.values())
    transitions = [r.snapshot(now=4.0).counters["transitions"] for r in routers.values()]
    assert transitions == [3, 3]  # INIT->BACKUP->FAULT->BACKUP each, no blip


def test_preempted_member_takes_the_group_to_backup() -> None:
    """SM-12: one MASTER member preempted -> the others leave MASTER (RemoveVips, no priority 0)."""
    group, routers = pair_of_members()
    fed = group.cascade("VI_1", routers["VI_1"].handle(SyncCommand(State.MASTER), now=1.0), routers, now=1.0)
    assert [m for m, _ in fed] == []  # a forced MASTER is not propagated: force the other one too
    routers["VI_2"].handle(SyncCommand(State.MASTER), now=1.0)
    acts = routers["VI_1"].handle(rx(200), now=2.0)
    fed = group.cascade("VI_1", acts, routers, now=2.0)
    assert len(fed) == 1 and fed[0][0] == "VI_2"
    assert [type(a) for a in fed[0][1]] == [StateChanged, RemoveVips]
    assert group.state(routers) is State.BACKUP


def test_a_member_starting_late_joins_a_master_group() -> None:
    """SM-01: an owner member is MASTER at Startup; a member started after it joins at once."""
    routers = {"VI_1": member("lan1", "A", 255), "VI_2": member("lan2", "A", 100)}
    group = SyncGroup("G", routers)
    fed = group.cascade("VI_1", routers["VI_1"].handle(Startup(), now=0.0), routers, now=0.0)
    assert fed == []  # VI_2 is still INIT
    fed = group.cascade("VI_2", routers["VI_2"].handle(Startup(), now=0.0), routers, now=0.0)
    assert [m for m, _ in fed] == ["VI_2"] and routers["VI_2"].state is State.MASTER


def test_shutdown_is_not_propagated() -> None:
    """SM-09: a MASTER member stopping does not strip the others of their own priority-0 advert."""
    group, routers = pair_of_members()
    for name in routers:
        routers[name].handle(SyncCommand(State.MASTER), now=1.0)
    assert group.on_actions("VI_1", routers["VI_1"].handle(Shutdown(), now=2.0), routers, now=2.0) == []
    acts = routers["VI_2"].handle(Shutdown(), now=2.0)
    assert any(isinstance(a, SendAdvert) and a.advert.priority == 0 for a in acts)


def test_a_new_coordinator_sees_requests_held_by_the_old_one() -> None:
    """SM-05 across a reload: a held request lives in the engine, so a recreated SyncGroup still counts it."""
    old, routers = pair_of_members()
    old.on_actions("VI_1", routers["VI_1"].handle_timer(now=MDI_100), routers, now=MDI_100)
    new = SyncGroup("G", ["VI_1", "VI_2"])
    out = new.on_actions("VI_2", routers["VI_2"].handle_timer(now=MDI_100), routers, now=MDI_100)
    assert out == [("VI_2", TakeoverVerdict(allow=True, reason="sync group G ready"))]


def test_guarded_member_asks_only_after_its_guards() -> None:
    """SM-05 with takeover guards: a guarded member's TakeoverPending is left to the runtime's guards."""
    _, routers = pair_of_members()
    group = SyncGroup("G", ["VI_1", "VI_2"], guarded=["VI_1"])
    group.on_actions("VI_2", routers["VI_2"].handle_timer(now=MDI_100), routers, now=MDI_100)
    pending = routers["VI_1"].handle_timer(now=MDI_100)
    assert group.on_actions("VI_1", pending, routers, now=MDI_100) == []  # guards still running
    assert group.blockers("VI_2", routers) == ("VI_1",)
    out = group.request_takeover("VI_1", routers)  # the guards allowed it
    assert out == [("VI_1", TakeoverVerdict(allow=True, reason="sync group G ready"))]
    routers["VI_1"].handle(rx(200), now=4.0)
    assert group.request_takeover("VI_1", routers) == []  # no longer pending: nothing to allow
    with pytest.raises(ValueError, match="guarded"):
        SyncGroup("G", ["VI_1"], guarded=["VI_9"])


def test_check_requires_members_and_gate() -> None:
    """Config: every member must exist and have takeover_gate=True."""
    plain = make_router("A", 100, "192.0.2.1")
    with pytest.raises(ValueError, match="takeover_gate"):
        SyncGroup("G", ["x"]).check({"x": plain})
    with pytest.raises(ValueError, match="no router"):
        SyncGroup("G", ["x", "y"]).check({"x": member("lan1", "A", 100)})
    with pytest.raises(ValueError, match="twice"):
        SyncGroup("G", ["x", "x"])
    with pytest.raises(KeyError):
        SyncGroup("G", ["x"]).on_actions("y", [], {}, now=0.0)


# ------------------------------------------------------------ two hosts x two LANs


def test_both_groups_elect_the_same_host_on_both_lans() -> None:
    """SM-02, SM-05: A (200/200) becomes MASTER on both LANs at its MDI; B never does."""
    net = two_by_two()
    net.run_until(30)
    assert net.masters("lan1") == ["A"] and net.masters("lan2") == ["A"]
    assert lan_timeline(net, "lan1", "A") == [(0.0, State.BACKUP), (MDI_200, State.MASTER)]
    assert lan_timeline(net, "lan2", "A") == [(0.0, State.BACKUP), (MDI_200, State.MASTER)]
    assert lan_timeline(net, "lan1", "B") == [(0.0, State.BACKUP)]
    assert lan_timeline(net, "lan2", "B") == [(0.0, State.BACKUP)]
    assert net.vips("A") == {VIP1, VIP2} and net.vips("B") == set()
    # lan1's timer fired first (tie -> LAN order) and was held; lan2's completed the group
    assert net.groups["A"].counters["takeover_held"] == 1
    assert net.groups["A"].counters["takeover_allowed"] == 1


def test_link_failure_on_one_lan_moves_both_vips_then_recovery_moves_them_back() -> None:
    """SM-16, SM-06, SM-05, SM-12: A's lan1 link fails: both VIPs move to B; link back: both return to A."""
    net = two_by_two()
    net.run_until(10)
    last_a_lan1 = max(t for t, name, _ in net["lan1"].sent if name == "A")
    net.set_link("lan1", "A", False)
    assert net.states("A") == {"lan1": State.FAULT, "lan2": State.FAULT}
    assert net["lan2"]["A"].faults == ("sync:G",)
    # A's lan2 member left with priority 0 (SM-16), so B's lan2 member asks after Skew_Time ...
    net.run_until(10 + SKEW_100)
    assert net["lan2"]["B"].takeover_pending and net.masters("lan2") == []
    # ... but B's lan1 member still waits for Master_Down (A's priority 0 never left the dead link)
    net.run_until(30)
    moved = last_a_lan1 + MDI_100
    assert net["lan1"].became("B", State.MASTER) == moved
    assert net["lan2"].became("B", State.MASTER) == moved
    assert net.vips("B") == {VIP1, VIP2} and net.vips("A") == set()
    # recovery: A's link comes back at 30, both members re-enter BACKUP and preempt together
    net.set_link("lan1", "A", True)
    assert net.states("A") == {"lan1": State.BACKUP, "lan2": State.BACKUP}
    net.run_until(60)
    back = 30 + MDI_200
    assert net["lan1"].became("A", State.MASTER, after=30) == back
    assert net["lan2"].became("A", State.MASTER, after=30) == back
    assert net.vips("A") == {VIP1, VIP2} and net.vips("B") == set()
    # no flapping: every router made exactly the transitions the story needs
    for lan in ("lan1", "lan2"):
        assert [s for _, s in lan_timeline(net, lan, "A")] == [
            State.BACKUP,
            State.MASTER,
            State.FAULT,
            State.BACKUP,
            State.MASTER,
        ]
        assert lan_timeline(net, lan, "B") == [
            (0.0, State.BACKUP),
            (moved, State.MASTER),
            (back, State.BACKUP),
        ]
    for segment in net.lans.values():
        for node in segment.nodes.values():
            assert node.executor.errors == []


def test_group_tracking_raises_b_on_both_lans_and_preemption_moves_both() -> None:
    """SM-07, SM-12, TMR-10: a tracker raising B to 250 on both members: B preempts on both LANs together."""
    net = two_by_two()
    net.run_until(10.5)
    for lan in ("lan1", "lan2"):
        net.inject(lan, "B", TrackerChanged("chk", delta=150))
    net.run_until(40)
    last_a = max(t for t, name, _ in net["lan1"].sent if name == "A" and t <= 10.5)
    # the timer armed by A's last accepted advert still runs with the old MDI (TMR-10: the new
    # priority counts from the next reset); A's later adverts (200 < 250) are discarded
    assert net["lan1"].became("B", State.MASTER) == last_a + MDI_100
    assert net["lan2"].became("B", State.MASTER) == last_a + MDI_100
    assert net.masters("lan1") == ["B"] and net.masters("lan2") == ["B"]
    for lan in ("lan1", "lan2"):
        assert [s for _, s in lan_timeline(net, lan, "A")] == [State.BACKUP, State.MASTER, State.BACKUP]
    # A's lan1 member was preempted by B's advert; its lan2 member followed by the group rule
    reasons = {
        t.transition.reason.split(":")[0] for t in net.transitions() if t.host == "A" and t.time > 10.5
    }
    assert reasons == {"preempted by 192.0.2.2 prio 250", "sync group backup"}


def test_member_hearing_a_better_master_blocks_the_group_takeover() -> None:
    """SM-07, SM-05: C (250, lan2 only) masters lan2: A's lan1 member is held: no lan1 master."""
    net = FakeNet()
    net.add_lan("lan1", member("lan1", "A", 200), member("lan1", "B", 100))
    net.add_lan(
        "lan2",
        member("lan2", "A", 200),
        member("lan2", "B", 100),
        make_router("C", 250, "198.51.100.3", vrid=2, vips=VIPS["lan2"]),  # no group, no gate
    )
    net.sync("A")
    net.sync("B")
    net.start()
    net.run_until(30)
    assert net.masters("lan2") == ["C"]
    assert net.masters("lan1") == []  # keepalived: the group prefers BACKUP
    assert net["lan1"]["A"].takeover_pending and net["lan1"]["B"].takeover_pending
    assert net.groups["A"].blockers("lan1", net.routers("A")) == ("lan2",)
    assert net.vips("A") == set() and net.vips("B") == set()
    # C dies: A's lan2 member's Master_Down fires and completes A's group
    last_c = max(t for t, name, _ in net["lan2"].sent if name == "C")
    net.crash("C")
    net.run_until(60)
    assert net["lan2"].became("A", State.MASTER) == last_c + MDI_200
    assert net["lan1"].became("A", State.MASTER) == last_c + MDI_200
    assert net.masters("lan1") == ["A"] and net.masters("lan2") == ["A"]
    assert not net["lan1"]["B"].takeover_pending  # A's advert cancelled B's held request
    assert [t.host for t in net.transitions() if t.transition.new is State.MASTER] == ["C", "A", "A"]


def test_preempted_group_does_not_retake_the_other_vip() -> None:
    """SM-12, SM-05: C (250, lan1 only) preempts A on lan1: A's lan2 member leaves MASTER too and never
    takes lan2's VIP back while its lan1 member hears C (nor does B, whose lan1 member hears C too)."""
    net = FakeNet()
    c = make_router("C", 250, "192.0.2.3", vrid=1, vips=VIPS["lan1"])
    net.add_lan("lan1", member("lan1", "A", 200), member("lan1", "B", 100), c)
    net.add_lan("lan2", member("lan2", "A", 200), member("lan2", "B", 100))
    net.sync("A")
    net.sync("B")
    net["lan1"].start("A", "B")
    # C stays INIT until t=10
    net["lan2"].start()
    net.run_until(10)
    assert net.masters("lan1") == ["A"] and net.masters("lan2") == ["A"]
    net.inject("lan1", "C", Startup())
    net.run_until(80)
    assert net.masters("lan1") == ["C"]
    assert net.masters("lan2") == []  # the group prefers BACKUP over a split
    preempted = net["lan1"].became("A", State.BACKUP, after=10)
    assert preempted is not None and net["lan2"].became("A", State.BACKUP, after=10) == preempted
    assert [s for _, s in lan_timeline(net, "lan2", "A")] == [State.BACKUP, State.MASTER, State.BACKUP]
    assert lan_timeline(net, "lan2", "B") == [(0.0, State.BACKUP)]
    assert net["lan2"]["A"].takeover_pending and net["lan2"]["B"].takeover_pending  # both held
    assert net.vips("A") == set() and net.vips("B") == set()


def test_partition_of_one_lan_does_not_split_the_group() -> None:
    """SM-05: lan1 partitioned: B's lan2 member still hears A, so B's lan1 member is held: no dual master."""
    net = two_by_two()
    net.run_until(10)
    net["lan1"].partition(["A"], ["B"])
    net.run_until(40)
    assert net["lan1"]["B"].takeover_pending and net.masters("lan1") == ["A"]
    net["lan1"].heal()
    net.run_until(60)
    assert net.masters("lan1") == ["A"] and net.masters("lan2") == ["A"]
    assert lan_timeline(net, "lan1", "B") == [(0.0, State.BACKUP)]
    assert not net["lan1"]["B"].takeover_pending  # A's adverts reached B again


def test_owner_member_pulls_the_other_member_at_startup() -> None:
    """SM-01: an owner member is MASTER at Startup and its group follows at once, whatever the start order."""
    net = two_by_two(a=(255, 200))
    assert net.states("A") == {"lan1": State.MASTER, "lan2": State.MASTER}
    net.run_until(20)
    assert lan_timeline(net, "lan2", "A") == [(0.0, State.BACKUP), (0.0, State.MASTER)]
    assert net.masters("lan2") == ["A"] and lan_timeline(net, "lan2", "B") == [(0.0, State.BACKUP)]


def test_crash_of_the_master_host_moves_both_vips() -> None:
    """SM-05: kill -9 of A: B's members both reach Master_Down and the group takes both LANs."""
    net = two_by_two()
    net.run_until(10)
    last = max(t for t, name, _ in net["lan1"].sent if name == "A")
    net.crash("A")
    net.run_until(20)
    assert net["lan1"].became("B", State.MASTER) == last + MDI_100
    assert net["lan2"].became("B", State.MASTER) == last + MDI_100
    net.revive("A", {lan: member(lan, "A", 200) for lan in ("lan1", "lan2")})
    net.run_until(40)
    assert net.masters("lan1") == ["A"] and net.masters("lan2") == ["A"]
    assert net["lan1"].became("A", State.MASTER, after=20) == 20 + MDI_200


# ------------------------------------------------------------------ property

LANS = ("lan1", "lan2")
HOSTS = ("A", "B")

ops = st.one_of(
    st.tuples(st.just("link"), st.sampled_from(LANS), st.sampled_from(HOSTS), st.booleans()),
    st.tuples(st.just("fault"), st.sampled_from(LANS), st.sampled_from(HOSTS), st.booleans()),
    st.tuples(st.just("partition"), st.sampled_from(LANS), st.just(""), st.booleans()),
    st.tuples(st.just("crash"), st.just(""), st.sampled_from(HOSTS), st.booleans()),
)


@st.composite
def priorities(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-LAN priorities ordered the same way on both LANs (keepalived's requirement)."""
    winner = draw(st.sampled_from(HOSTS))
    pairs = []
    for _ in LANS:
        low = draw(st.integers(1, 253))
        high = draw(st.integers(low if winner == "B" else low + 1, 254))  # B wins ties (higher address)
        pairs.append((high, low) if winner == "A" else (low, high))
    a = (pairs[0][0], pairs[1][0])
    b = (pairs[0][1], pairs[1][1])
    return a, b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prios=priorities(), steps=st.lists(st.tuples(st.floats(0.0, 6.0), ops), max_size=12))
def test_groups_settle_together_with_one_master_per_lan(
    prios: tuple[tuple[int, int], tuple[int, int]], steps: list[tuple[float, tuple[str, str, str, bool]]]
) -> None:
    """SM-05, SM-12, SM-16: after random faults/partitions/crashes heal and settle, each host's members
    share one state and each LAN has exactly one MASTER, the same host on both LANs; with strict
    priorities it is the preferred host; nobody ever double-adds or removes an unheld VIP."""
    a, b = prios
    net = two_by_two(a, b)
    crashed: set[str] = set()
    for gap, (op, lan, host, flag) in steps:
        net.run_for(gap)
        if host in crashed and op != "crash":
            continue
        if op == "link":
            net.set_link(lan, host, flag)
        elif op == "fault":
            net.inject(lan, host, TrackerChanged("chk", fault=flag))
        elif op == "partition":
            net[lan].partition(["A"], ["B"]) if flag else net[lan].heal()
        elif host in crashed:
            net.revive(
                host, {ln: member(ln, host, (a if host == "A" else b)[i]) for i, ln in enumerate(LANS)}
            )
            crashed.discard(host)
        else:
            net.crash(host)
            crashed.add(host)
    # heal everything
    for host in HOSTS:
        if host in crashed:
            net.revive(
                host, {ln: member(ln, host, (a if host == "A" else b)[i]) for i, ln in enumerate(LANS)}
            )
    for lan in LANS:
        net[lan].heal()
        for host in HOSTS:
            if not net[lan].nodes[host].link_up:
                net.set_link(lan, host, True)
            net.inject(lan, host, TrackerChanged("chk"))
    net.run_for(40)
    for host in HOSTS:
        states = set(net.states(host).values())
        assert len(states) == 1 and states <= {State.MASTER, State.BACKUP}, (host, net.states(host))
    masters = [net.masters(lan) for lan in LANS]
    assert len(masters[0]) == 1 and masters[0] == masters[1], masters
    if a[0] != b[0] and a[1] != b[1]:
        assert masters[0] == ["A" if a[0] > b[0] else "B"]
    (master,) = masters[0]
    assert net.vips(master) == {VIP1, VIP2}
    for segment in net.lans.values():
        for node in segment.nodes.values():
            assert node.executor.errors == []
