"""Multi-router scenarios on FakeLan with virtual time (no sleeps, exact times)."""

from __future__ import annotations

from ipaddress import ip_address

from pyvrrp.proto.events import AdvertReceived, AnnounceVips, SendAdvert, State
from pyvrrp.proto.packet import Advertisement
from pyvrrp.testing import FakeLan, make_router

MDI_100 = 3.609375  # v2 / v3@100cs, prio 100
MDI_150 = 3 + 106 / 256  # 3.4140625


def pair(**kw: object) -> FakeLan:
    return FakeLan(make_router("a", 150, "192.0.2.1", **kw), make_router("b", 100, "192.0.2.2", **kw))


def test_owner_wins_at_start() -> None:
    """SM-01, SM-02, SM-07: the owner is MASTER at once; the backup never takes over."""
    lan = FakeLan(make_router("own", 255, "192.0.2.1"), make_router("b", 100, "192.0.2.2"))
    lan.start()
    assert lan.states() == {"own": State.MASTER, "b": State.BACKUP}
    lan.run_until(60)
    assert lan.timeline("own") == [(0.0, State.MASTER)]
    assert lan.timeline("b") == [(0.0, State.BACKUP)]
    assert lan.nodes["own"].executor.vips and not lan.nodes["b"].executor.vips


def test_highest_priority_wins_cold_start_at_its_master_down() -> None:
    """SM-02, SM-05, TMR-03: cold start 150/100: the 150 takes over at exactly 3.4140625 s."""
    lan = pair()
    lan.start()
    lan.run_until(30)
    assert lan.became("a", State.MASTER) == MDI_150
    assert lan.became("b", State.MASTER) is None
    assert lan.masters() == ["a"]


def test_backup_takes_over_exactly_master_down_after_last_advert() -> None:
    """SM-05, TMR-03: crash of the master: takeover at last advert + 3.609375 s (v2, prio 100, 1 s)."""
    lan = pair()
    lan.start()
    lan.run_until(10.0)
    last_advert = max(t for t, name, _ in lan.sent if name == "a")
    lan.crash("a")
    lan.run_until(20)
    assert lan.became("b", State.MASTER) == last_advert + MDI_100


def test_graceful_stop_takeover_after_skew_time() -> None:
    """SM-09, SM-06, TMR-07: master stops with priority 0; backup takes over after Skew_Time."""
    lan = pair()
    lan.start()
    lan.run_until(10.0)
    lan.stop("a")
    assert [a.priority for _, n, a in lan.sent if n == "a"][-1] == 0
    lan.run_until(20)
    assert lan.became("b", State.MASTER) == 10.0 + 0.609375


def test_restarted_higher_priority_preempts() -> None:
    """SM-07, SM-14: preemption on by default: a returning 150 preempts the 100 at its MDI."""
    lan = pair()
    lan.start()
    lan.run_until(10)
    lan.stop("a")
    lan.run_until(20)
    assert lan.masters() == ["b"]
    lan.revive(make_router("a", 150, "192.0.2.1"))
    lan.run_until(40)
    assert lan.became("a", State.MASTER, after=20) == 20 + MDI_150
    assert lan.masters() == ["a"]
    assert lan.became("b", State.BACKUP, after=20) == 20 + MDI_150  # SM-12, same instant


def test_no_preemption_when_disabled() -> None:
    """SM-07, SM-14: nopreempt: the returning 150 stays BACKUP behind the 100."""
    lan = pair(preempt=False)
    lan.start()
    lan.run_until(10)
    lan.stop("a")
    lan.run_until(20)
    lan.revive(make_router("a", 150, "192.0.2.1", preempt=False))
    lan.run_until(120)
    assert lan.masters() == ["b"]
    assert lan.became("a", State.MASTER, after=20) is None


def test_preempt_delay() -> None:
    """TMR-11 (keepalived preempt_delay): a returning 150 waits 10 s, then preempts within one MDI."""
    lan = pair(preempt_delay_s=10.0)
    lan.start()
    lan.run_until(10)
    lan.stop("a")
    lan.run_until(20)
    assert lan.masters() == ["b"]
    lan.revive(make_router("a", 150, "192.0.2.1", preempt_delay_s=10.0))
    lan.run_until(60)
    took = lan.became("a", State.MASTER, after=20)
    assert took is not None
    # b advertises at 20.609375 + k; the last one inside the window [20, 30) is 29.609375
    assert took == 29.609375 + MDI_150


def test_equal_priority_tie_goes_to_higher_address() -> None:
    """SM-12: equal priorities after a partition: the greater primary address stays MASTER."""
    lan = FakeLan(make_router("lo", 100, "192.0.2.1"), make_router("hi", 100, "192.0.2.200"))
    lan.partition(["lo"], ["hi"])
    lan.start()
    lan.run_until(10)
    assert sorted(lan.masters()) == ["hi", "lo"]
    lan.heal()
    lan.run_until(20)
    assert lan.masters() == ["hi"]


def test_v3_backup_learns_master_interval() -> None:
    """TMR-06: a v3 backup configured at 1 s times out on the master's 0.5 s rate."""
    lan = FakeLan(
        make_router("m", 200, "192.0.2.1", version=3, advert_interval_cs=50),
        make_router("b", 100, "192.0.2.2", version=3, advert_interval_cs=100),
    )
    lan.start()
    lan.run_until(10)
    assert lan.masters() == ["m"]
    snap = lan["b"].snapshot(now=lan.now)
    assert snap.master_adver_interval_s == 0.5 and snap.skew_time_s == 0.3046875
    last = max(t for t, n, _ in lan.sent if n == "m")
    lan.crash("m")
    lan.run_until(20)
    assert lan.became("b", State.MASTER) == last + 1.5 + 0.3046875


def test_v3_subsecond_takeover() -> None:
    """TMR-04, TMR-05: v3 10 cs, prio 100: MDI 0.3609375 s."""
    lan = FakeLan(
        make_router("m", 200, "192.0.2.1", version=3, advert_interval_cs=10),
        make_router("b", 100, "192.0.2.2", version=3, advert_interval_cs=10),
    )
    lan.start()
    lan.run_until(5)
    last = max(t for t, n, _ in lan.sent if n == "m")
    lan.crash("m")
    lan.run_until(6)
    took = lan.became("b", State.MASTER)
    assert took is not None and abs(took - (last + 0.3609375)) < 1e-9


def test_total_loss_makes_dual_master_then_heals() -> None:
    """SM-12, SM-13: 100 % loss -> both MASTER; healed -> the 150 remains, the 100 yields."""
    lan = pair(garp_lower_prio_repeat=2)
    lan.loss = 1.0
    lan.start()
    lan.run_until(10)
    assert sorted(lan.masters()) == ["a", "b"]
    lan.loss = 0.0
    lan.run_until(12)
    assert lan.masters() == ["a"]
    assert not lan.nodes["b"].executor.vips and lan.nodes["a"].executor.vips
    # the survivor re-asserted itself with a lower-priority GARP burst (SM-13) if it heard b first
    reasons = {a.reason for _, a in lan.nodes["a"].executor.of_type(AnnounceVips)}
    assert "master" in reasons


def test_partial_loss_keeps_single_master() -> None:
    """SM-07: 30 % loss is below what three adverts per MDI tolerate most of the time; no flapping master."""
    lan = FakeLan(
        make_router("a", 150, "192.0.2.1"),
        make_router("b", 100, "192.0.2.2"),
        loss=0.3,
        seed=7,
    )
    lan.start()
    lan.run_until(300)
    assert lan.masters() == ["a"]
    assert all(t.node != "a" or t.new is not State.BACKUP or t.time == 0 for t in lan.transitions)


def test_partition_and_heal_three_nodes() -> None:
    """SM-05, SM-12: a partition elects a master on each side; healing leaves only the best."""
    lan = FakeLan(
        make_router("a", 200, "192.0.2.1"),
        make_router("b", 150, "192.0.2.2"),
        make_router("c", 100, "192.0.2.3"),
    )
    lan.start()
    lan.run_until(10)
    assert lan.masters() == ["a"]
    lan.partition(["a"], ["b", "c"])
    lan.run_until(20)
    assert sorted(lan.masters()) == ["a", "b"]
    lan.heal()
    lan.run_until(30)
    assert lan.masters() == ["a"]
    assert [n for n, node in lan.nodes.items() if node.executor.vips] == ["a"]


def test_link_fault_and_recovery_on_lan() -> None:
    """SM-16: master link down -> FAULT, VIPs removed; backup takes over; link up -> BACKUP, preempt."""
    lan = pair()
    lan.start()
    lan.run_until(10)
    lan.set_link("a", False)
    assert lan.state("a") is State.FAULT and not lan.nodes["a"].executor.vips
    lan.run_until(20)
    # the prio-0 advert never left the dead link: b waits the full MDI
    assert lan.became("b", State.MASTER) == 9.4140625 + MDI_100
    lan.set_link("a", True)
    assert lan.state("a") is State.BACKUP
    lan.run_until(30)
    assert lan.became("a", State.MASTER, after=20) == 20 + MDI_150
    assert lan.masters() == ["a"]


def test_reconfigure_without_flap() -> None:
    """SIGHUP reload: reconfiguring both routers with unchanged relevant config keeps the master."""
    lan = pair()
    lan.start()
    lan.run_until(10)
    for name in ("a", "b"):
        node = lan.nodes[name]
        assert node.engine.reconfigure(node.engine.config, now=lan.now) == []
    lan.run_until(30)
    assert [t.node for t in lan.transitions if t.time > 0] == ["a"]  # only the 3.4 s takeover
    assert lan.masters() == ["a"]


def test_unicast_peers() -> None:
    """RX-13: unicast adverts reach only the configured peers; a stranger is ignored."""
    a = make_router("a", 150, "192.0.2.1", unicast_peers=(ip_address("192.0.2.2"),), check_ttl=False)
    b = make_router("b", 100, "192.0.2.2", unicast_peers=(ip_address("192.0.2.1"),), check_ttl=False)
    c = make_router("c", 120, "192.0.2.3", unicast_peers=(ip_address("192.0.2.2"),), check_ttl=False)
    lan = FakeLan(a, b, c)
    lan.start()
    lan.run_until(20)
    # a never hears c (not its peer, and c does not send to a), b drops c's adverts
    assert sorted(lan.masters()) == ["a", "c"]
    assert lan["b"].snapshot(now=lan.now).drops.get("unicast_peer", 0) > 0
    assert lan["a"].snapshot(now=lan.now).drops == {}


def test_looped_back_own_advert_is_dropped() -> None:
    """Own adverts looped back by multicast are counted as "self" and change nothing."""
    lan = FakeLan(make_router("a", 150, "192.0.2.1"), loopback=True)
    lan.start()
    lan.run_until(10)
    snap = lan["a"].snapshot(now=lan.now)
    assert snap.state is State.MASTER and snap.drops["self"] == snap.counters["adverts_tx"]


def test_lan_delivers_advert_fields() -> None:
    """PKT-02: deliveries carry TTL 255, the sender's primary address and the group address."""
    lan = pair()
    seen: list[AdvertReceived] = []
    real = lan["b"].handle

    def spy(event: object, *, now: float) -> list[object]:
        if isinstance(event, AdvertReceived):
            seen.append(event)
        return real(event, now=now)  # type: ignore[arg-type]

    lan["b"].handle = spy  # type: ignore[method-assign]
    lan.start()
    lan.run_until(5)
    assert seen and seen[0].ttl == 255 and seen[0].src == ip_address("192.0.2.1")
    assert seen[0].dst == ip_address("224.0.0.18")
    assert isinstance(seen[0].advert, Advertisement)
    assert all(isinstance(a, SendAdvert) for _, a in lan.nodes["b"].executor.of_type(SendAdvert))


def test_ipv6_pair_uses_link_local_tie_break() -> None:
    """SM-12, PKT-01: v3/IPv6 over ff02::12; equal priority -> the greater link-local wins."""
    lan = FakeLan(make_router("lo", 100, "fe80::1"), make_router("hi", 100, "fe80::2"))
    lan.partition(["lo"], ["hi"])
    lan.start()
    lan.run_until(10)
    assert sorted(lan.masters()) == ["hi", "lo"]
    lan.heal()
    lan.run_until(20)
    assert lan.masters() == ["hi"]
    assert lan.nodes["hi"].executor.vips == set(lan["hi"].config.vips)
    assert not lan.nodes["lo"].executor.vips


def test_takeover_gate_on_lan() -> None:
    """Issue #4: with the gate on, the backup asks and stays BACKUP until the verdict."""
    from pyvrrp.proto.events import TakeoverPending, TakeoverVerdict

    lan = FakeLan(make_router("a", 150, "192.0.2.1"), make_router("b", 100, "192.0.2.2", takeover_gate=True))
    lan.start()
    lan.run_until(10)
    lan.crash("a")
    lan.run_until(20)
    asks = lan.nodes["b"].executor.of_type(TakeoverPending)
    assert [t for t, _ in asks] == [9.4140625 + MDI_100]
    assert lan.state("b") is State.BACKUP
    lan.inject("b", TakeoverVerdict(allow=True, reason="peer fenced"))
    assert lan.masters() == ["b"]


def test_v3_rolling_vip_change_does_not_flap() -> None:
    """RX-10: v3 only counts an address-list mismatch, so a rolling VIP change keeps one master."""
    lan = FakeLan(
        make_router("a", 150, "192.0.2.1", version=3),
        make_router("b", 100, "192.0.2.2", version=3, vips=("192.0.2.100/24", "192.0.2.101/24")),
    )
    lan.start()
    lan.run_until(30)
    assert lan.masters() == ["a"]
    assert lan["b"].snapshot(now=lan.now).counters["address_list_mismatch"] > 0


def test_v2_vip_mismatch_is_dropped_per_rfc() -> None:
    """RX-10: v2 MUST drop a mismatched list from a non-owner: the backup takes over (as keepalived 2.2.7)."""
    lan = FakeLan(
        make_router("a", 150, "192.0.2.1"),
        make_router("b", 100, "192.0.2.2", vips=("192.0.2.100/24", "192.0.2.101/24")),
    )
    lan.start()
    lan.run_until(30)
    assert sorted(lan.masters()) == ["a", "b"]
    assert lan["b"].snapshot(now=lan.now).drops["address_list"] > 0


def test_v2_interval_mismatch_is_dropped() -> None:
    """RX-08: v2 routers with different Adver Int drop each other's adverts."""
    lan = FakeLan(
        make_router("a", 150, "192.0.2.1", advert_interval_cs=100),
        make_router("b", 100, "192.0.2.2", advert_interval_cs=200),
    )
    lan.start()
    lan.run_until(30)
    assert sorted(lan.masters()) == ["a", "b"]
    assert lan["a"].snapshot(now=lan.now).drops["interval"] > 0


def test_reload_vip_change_on_master_without_flap() -> None:
    """SIGHUP reload: the master adds a VIP without any state change on either node."""
    from pyvrrp.testing import make_config

    lan = FakeLan(
        make_router("a", 150, "192.0.2.1", version=3),
        make_router("b", 100, "192.0.2.2", version=3),
    )
    lan.start()
    lan.run_until(10)
    before = len(lan.transitions)
    vips = ("192.0.2.100/24", "192.0.2.101/24")
    for name, prio, addr in (("b", 100, "192.0.2.2"), ("a", 150, "192.0.2.1")):
        node = lan.nodes[name]
        actions = node.engine.reconfigure(make_config(name, prio, addr, version=3, vips=vips), now=lan.now)
        node.executor.run(actions, now=lan.now)
    lan.run_until(40)
    assert len(lan.transitions) == before
    assert {str(v) for v in lan.nodes["a"].executor.vips} == set(vips)
    assert not lan.nodes["b"].executor.vips
