"""The witness gate (pyvrrp/splitbrain/witness.py) under a virtual clock (issue 13).

The central property: with clock rates within ``1 +- rho`` of true time, any message
delays and losses, and a VIP removal of at most ``removal`` seconds, a holder that keeps
its deadline has removed its VIPs before a simulated etcd expires its lease, so the
next holder (who can only create the key after expiry) never overlaps it, as long as
``margin >= minimum_margin(ttl, rho, removal)``.  A companion test shows the simulation
does find the overlap when the margin is below that bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.splitbrain.witness import KeyValue, LeaseClock, Step, WitnessGate, lease_deadline, minimum_margin

# ----------------------------------------------------------------- lease clock


def test_deadline_is_send_time_plus_ttl_minus_margin() -> None:
    lease = LeaseClock(ttl_s=5, margin_s=1)
    lease.granted(7, 5, sent_at=100.0)
    assert lease.deadline == lease_deadline(100.0, 5, 1) == 104.0
    assert lease.valid(103.999) and not lease.valid(104.0)
    assert lease.renewed(7, 5, sent_at=101.0) and lease.deadline == 105.0


def test_late_answer_never_shortens_the_deadline() -> None:
    lease = LeaseClock(ttl_s=5, margin_s=1)
    lease.granted(7, 5, sent_at=100.0)
    lease.renewed(7, 5, sent_at=102.0)
    lease.renewed(7, 5, sent_at=101.0)  # an older request answered last
    assert lease.deadline == 106.0


def test_granted_ttl_larger_than_asked_is_not_trusted() -> None:
    lease = LeaseClock(ttl_s=5, margin_s=1)
    lease.granted(7, 60, sent_at=0.0)
    assert lease.deadline == 4.0


def test_ttl_zero_means_lease_gone() -> None:
    lease = LeaseClock(ttl_s=5, margin_s=1)
    lease.granted(7, 5, sent_at=0.0)
    assert not lease.renewed(7, 0, sent_at=1.0)
    assert lease.lease_id is None and not lease.valid(1.0)


def test_answer_about_a_dropped_lease_is_ignored() -> None:
    lease = LeaseClock(ttl_s=5, margin_s=1)
    lease.granted(8, 5, sent_at=10.0)
    assert lease.renewed(7, 0, sent_at=11.0)  # old lease 7 is gone: says nothing about 8
    assert lease.lease_id == 8 and lease.deadline == 14.0


# ------------------------------------------------------------------------ gate


def test_takeover_needs_acquire_then_may_hold_until_deadline() -> None:
    gate = WitnessGate(5, 1)
    assert gate.takeover("instance/VI_1", 0.0)[0] is Step.DENY  # no lease yet
    gate.lease.granted(7, 5, sent_at=0.0)
    assert gate.takeover("instance/VI_1", 0.1)[0] is Step.ACQUIRE
    assert not gate.may_hold("instance/VI_1", 0.1)
    assert gate.acquired("instance/VI_1", 42, 7, now=0.2)
    assert gate.takeover("instance/VI_1", 0.3)[0] is Step.ALLOW
    assert gate.may_hold("instance/VI_1", 3.9) and not gate.may_hold("instance/VI_1", 4.0)
    assert gate.next_deadline() == 4.0
    assert gate.expire(3.9) == []  # not yet
    assert gate.expire(4.0) == ["instance/VI_1"]
    assert not gate.held and gate.next_deadline() is None


def test_answer_after_the_deadline_does_not_count() -> None:
    gate = WitnessGate(5, 1)
    gate.lease.granted(7, 5, sent_at=0.0)
    assert not gate.acquired("k", 42, 7, now=4.5)
    assert not gate.acquired("k", 42, 6, now=1.0)  # another lease
    assert not gate.held


def test_release_and_revision_is_the_fencing_token() -> None:
    gate = WitnessGate(5, 1)
    gate.lease.granted(7, 5, sent_at=0.0)
    gate.acquired("k", 42, 7, now=0.1)
    held = gate.released("k")
    assert held is not None and held.revision == 42
    assert gate.released("k") is None


def test_lease_lost_gives_every_key_up() -> None:
    gate = WitnessGate(5, 1)
    gate.lease.granted(7, 5, sent_at=0.0)
    gate.acquired("a", 1, 7, now=0.1)
    gate.acquired("b", 2, 7, now=0.1)
    assert gate.lease_lost() == ["a", "b"]


def test_policy_vrrp_falls_back_and_reacquires() -> None:
    gate = WitnessGate(5, 1, policy="vrrp")
    step, reason = gate.takeover("k", 0.0)
    assert step is Step.FALLBACK and "unwitnessed" in reason
    gate.hold_unwitnessed("k")
    assert gate.may_hold("k", 0.0)
    gate.lease.granted(7, 5, sent_at=1.0)
    assert gate.to_reacquire(1.1) == ["k"]
    assert not gate.may_hold("k", 1.1)  # etcd is back: the key decides again
    gate.acquired("k", 3, 7, now=1.2)
    assert gate.to_reacquire(1.2) == [] and gate.may_hold("k", 1.2)
    # the deadline passes: nothing given up, the key becomes a fallback holding
    assert gate.expire(5.0) == []
    assert gate.may_hold("k", 5.0) and gate.fallback == {"k"}


def test_key_value_round_trip() -> None:
    v = KeyValue("lb1", "192.168.233.10", 150, "VI_51", 4)
    assert KeyValue.decode(v.encode()) == v
    assert KeyValue.decode(b"not json") is None
    assert KeyValue.decode(b'{"router_id": "x"}') is None


# --------------------------------------------------- at most one holder (simulation)


@dataclass(frozen=True)
class Msg:
    gap_s: float  # true time since the previous keepalive was sent
    up_s: float  # request delay (client -> etcd)
    down_s: float  # response delay (etcd -> client)
    lost: bool


def holder_gone_and_lease_expiry(
    ttl: int, margin: float, rate_holder: float, rate_etcd: float, removal: float, msgs: list[Msg]
) -> tuple[float, float]:
    """Simulate one holder against one etcd; returns (true time its VIPs are gone, true lease expiry).

    Local clocks: holder reads ``rate_holder * t``, etcd measures the TTL at ``rate_etcd``.
    etcd renews a live lease when a keepalive *arrives*; a request arriving after expiry
    finds it dead (TTL 0).  The holder uses the gate exactly as the runtime does.
    """
    gate = WitnessGate(ttl, margin)
    # the grant: sent at t=0, arrives at 0 (worst case: etcd's TTL starts as early as possible)
    expiry = 0.0 + ttl / rate_etcd
    sends = []
    t = 0.0
    for m in msgs:
        t += m.gap_s
        sends.append((t, m))
    dead = False
    answers = [(0.0 + 0.001, "grant", 0.0, ttl)]
    for sent, m in sorted(sends, key=lambda s: s[0] + s[1].up_s):
        arrive = sent + m.up_s
        if m.lost:
            continue
        if not dead and arrive < expiry:
            expiry = max(expiry, arrive + ttl / rate_etcd)
            answers.append((arrive + m.down_s, "ka", sent, ttl))
        else:
            dead = True
            answers.append((arrive + m.down_s, "ka", sent, 0))
    gone: float | None = None
    for at, kind, sent, ttl_resp in sorted(answers):
        deadline = gate.next_deadline()
        if deadline is not None and deadline / rate_holder <= at:
            break  # the deadline timer fired before this answer came in
        local_sent = sent * rate_holder
        if kind == "grant":
            gate.lease.granted(1, ttl_resp, sent_at=local_sent)
            assert gate.acquired("k", 1, 1, now=at * rate_holder)
        elif not gate.lease.renewed(1, ttl_resp, sent_at=local_sent):
            gone = at  # etcd says the lease is gone: give up now
            break
    deadline = gate.next_deadline()
    if gone is None:
        assert deadline is not None
        gone = deadline / rate_holder
    return gone + removal, expiry


msgs_st = st.lists(
    st.builds(
        Msg,
        gap_s=st.floats(0.01, 3.0),
        up_s=st.floats(0.0, 3.0),
        down_s=st.floats(0.0, 3.0),
        lost=st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(
    ttl=st.integers(2, 30),
    rho=st.floats(0.0, 0.01),
    u_holder=st.floats(-1.0, 1.0),
    u_etcd=st.floats(-1.0, 1.0),
    removal=st.floats(0.0, 0.5),
    msgs=msgs_st,
)
def test_never_two_holders_with_bounded_drift(
    ttl: int, rho: float, u_holder: float, u_etcd: float, removal: float, msgs: list[Msg]
) -> None:
    margin = minimum_margin(ttl, drift=rho, removal_s=removal) + 1e-6
    if margin >= ttl:
        return
    gone, expiry = holder_gone_and_lease_expiry(
        ttl, margin, 1 + u_holder * rho, 1 + u_etcd * rho, removal, msgs
    )
    # the next holder creates the key at `expiry` at the earliest (create-if-absent)
    assert gone < expiry, (gone, expiry)


def test_the_simulation_finds_the_overlap_below_the_bound() -> None:
    """The property above can fail: slow holder clock, fast etcd clock, a margin 10 ms short."""
    ttl, rho, removal = 5, 0.01, 0.3
    margin = minimum_margin(ttl, drift=rho, removal_s=removal) - 0.01
    gone, expiry = holder_gone_and_lease_expiry(ttl, margin, 1 - rho, 1 + rho, removal, [])
    assert gone > expiry


def test_default_margin_covers_its_budget() -> None:
    """ttl 5 s, margin 1 s: room for 0.5 s of removal + scheduling delay at 5 % clock drift."""
    assert minimum_margin(5, drift=0.05, removal_s=0.5) < 1.0
    assert minimum_margin(5, drift=0.0, removal_s=0.5) == pytest.approx(0.5)
