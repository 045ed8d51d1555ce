"""Hypothesis properties: the transition table is total, and elections converge.

PyBal-style invariants (checked after *every* step of every run):
P0  a live MASTER holds its VIPs; BACKUP/FAULT/INIT hold none;
P1  every advert carries a priority in range (0 only when leaving, owner 255, else 1..254);
P2  StateChanged chains are consistent (old == previous new).
After the network heals and settles: exactly one MASTER per VRID, and with
preemption on it is the best candidate (highest priority).
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrrp.proto.events import (
    Action,
    AdvertReceived,
    LinkChanged,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
    TrackerChanged,
)
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.states import TRANSITIONS, ProtocolViolation, Trigger, next_state
from pyvrrp.testing import FakeLan, Node, RecordingExecutor, make_router


@given(st.sampled_from(State), st.sampled_from(Trigger))
def test_transition_table_is_total(state: State, trigger: Trigger) -> None:
    """SM-01..SM-16 (STYLE rule 4): every pair is either in the table or a ProtocolViolation naming both."""
    if (state, trigger) in TRANSITIONS:
        assert next_state(state, trigger) is TRANSITIONS[(state, trigger)]
    else:
        with pytest.raises(ProtocolViolation) as info:
            next_state(state, trigger)
        assert state.name in str(info.value) and trigger.name in str(info.value)


def test_table_covers_the_rfc_transitions() -> None:
    """SM-01, SM-02, SM-05, SM-09, SM-12, SM-16: the RFC edges are present and lead where the RFC says."""
    assert next_state(State.INIT, Trigger.STARTUP_OWNER) is State.MASTER
    assert next_state(State.INIT, Trigger.STARTUP_BACKUP) is State.BACKUP
    assert next_state(State.BACKUP, Trigger.MASTER_DOWN) is State.MASTER
    assert next_state(State.MASTER, Trigger.PREEMPTED) is State.BACKUP
    assert next_state(State.MASTER, Trigger.SHUTDOWN) is State.INIT
    assert next_state(State.BACKUP, Trigger.SHUTDOWN) is State.INIT
    assert next_state(State.MASTER, Trigger.FAULT) is State.FAULT
    assert next_state(State.FAULT, Trigger.FAULT_CLEARED) is State.BACKUP
    with pytest.raises(ProtocolViolation):
        next_state(State.FAULT, Trigger.MASTER_DOWN)


# ---------------------------------------------------------------- invariants


def _check_priority(node_priority: int, advert: Advertisement) -> None:
    if node_priority == 255:
        assert advert.priority in (0, 255)
    else:
        assert advert.priority == 0 or 1 <= advert.priority <= 254


class Invariants:
    """Observer for FakeLan / a lone engine: P0, P1, P2 after every step."""

    def __init__(self) -> None:
        self.last: dict[str, State] = {}

    def __call__(self, lan: FakeLan | None, node: Node, actions: list[Action]) -> None:
        engine = node.engine
        for action in actions:
            if isinstance(action, StateChanged):
                assert action.old is self.last.get(node.name, State.INIT)
                self.last[node.name] = action.new
                assert 1 <= action.priority <= 255
            elif isinstance(action, SendAdvert):
                _check_priority(engine.config.priority, action.advert)
        assert not node.executor.errors
        if engine.state is State.MASTER:
            assert node.executor.vips == set(engine.config.vips)  # P0
        else:
            assert not node.executor.vips  # P0
        assert 1 <= engine.effective_priority <= 255


priorities = st.lists(st.integers(1, 255), min_size=2, max_size=4, unique=True)
chaos_event = st.tuples(
    st.floats(0, 30, allow_nan=False),
    st.sampled_from(["partition", "heal", "link_down", "link_up", "loss"]),
    st.integers(0, 2**16),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prios=priorities,
    version=st.sampled_from([2, 3]),
    interval_cs=st.sampled_from([100, 50]),
    events=st.lists(chaos_event, max_size=12),
    seed=st.integers(0, 2**16),
    start_offsets=st.lists(st.floats(0, 5, allow_nan=False), min_size=4, max_size=4),
)
def test_converges_to_one_best_master(
    prios: list[int],
    version: int,
    interval_cs: int,
    events: list[tuple[float, str, int]],
    seed: int,
    start_offsets: list[float],
) -> None:
    """SM-05, SM-07, SM-12, SM-13, SM-16, ARP-04: after chaos heals: one MASTER, the best."""
    if version == 2:
        interval_cs = 100
    names = [f"n{i}" for i in range(len(prios))]
    engines = [
        make_router(name, prio, f"192.0.2.{i + 1}", version=version, advert_interval_cs=interval_cs)
        for i, (name, prio) in enumerate(zip(names, prios, strict=True))
    ]
    lan = FakeLan(*engines, seed=seed)
    inv = Invariants()
    lan.observers.append(inv)
    starts = sorted(zip(start_offsets, names, strict=False))
    chaos = sorted(events)
    timeline: list[tuple[float, str, object]] = [(t, "start", n) for t, n in starts]
    timeline += [(t, kind, arg) for t, kind, arg in chaos]
    timeline.sort(key=lambda e: (e[0], e[1]))
    for when, kind, arg in timeline:
        lan.run_until(when)
        if kind == "start":
            lan.start(str(arg))
        elif kind == "partition":
            rng = arg if isinstance(arg, int) else 0
            groups: dict[int, list[str]] = {}
            for i, name in enumerate(names):
                groups.setdefault((rng >> i) % 2, []).append(name)
            lan.partition(*groups.values())
        elif kind == "heal":
            lan.heal()
        elif kind == "loss":
            lan.loss = (int(str(arg)) % 60) / 100
        else:
            name = names[int(str(arg)) % len(names)]
            lan.set_link(name, kind == "link_up")
    heal_at = max(35.0, lan.now)
    lan.run_until(heal_at)
    lan.heal()
    lan.loss = 0.0
    for name in names:
        if not lan.nodes[name].link_up:
            lan.set_link(name, True)
    lan.run_until(heal_at + 20)
    best = names[prios.index(max(prios))]
    assert lan.masters() == [best]
    holders = [n for n, node in lan.nodes.items() if node.executor.vips]
    assert holders == [best]


@settings(max_examples=40, deadline=None)
@given(
    prios=priorities,
    cut_at=st.floats(4, 20, allow_nan=False),
    heal_after=st.floats(0, 15, allow_nan=False),
)
def test_nopreempt_converges_to_exactly_one_master(
    prios: list[int], cut_at: float, heal_after: float
) -> None:
    """SM-07, SM-14: without preemption a healed LAN still ends with exactly one MASTER."""
    engines = [make_router(f"n{i}", p, f"192.0.2.{i + 1}", preempt=False) for i, p in enumerate(prios)]
    lan = FakeLan(*engines)
    lan.observers.append(Invariants())
    lan.start()
    lan.run_until(cut_at)
    lan.partition(*[[f"n{i}"] for i in range(len(prios))])
    lan.run_until(cut_at + heal_after)
    lan.heal()
    lan.run_until(cut_at + heal_after + 20)
    assert len(lan.masters()) == 1


inputs = st.one_of(
    st.just(Startup()),
    st.just(Shutdown()),
    st.builds(LinkChanged, up=st.booleans()),
    st.builds(
        TrackerChanged,
        name=st.sampled_from(["a", "b"]),
        delta=st.integers(-300, 300),
        fault=st.booleans(),
    ),
    st.builds(
        lambda prio, src, interval: AdvertReceived(
            Advertisement(
                version=2,
                vrid=1,
                priority=prio,
                addresses=(ip_address("192.0.2.100"),),
                interval_cs=interval,
            ),
            src=ip_address(src),
        ),
        st.integers(0, 255),
        st.sampled_from(["192.0.2.1", "192.0.2.9"]),
        st.sampled_from([100, 100, 200]),
    ),
    st.just("timer"),
)


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(1, 255),
    steps=st.lists(st.tuples(st.floats(0, 5, allow_nan=False), inputs), max_size=40),
)
def test_any_input_sequence_keeps_invariants(base: int, steps: list[tuple[float, object]]) -> None:
    """SM-01..SM-16, TMR-10: no input sequence reaches an unknown (state, trigger); P0-P2 hold."""
    engine = make_router("r", base, "192.0.2.5")
    node = Node("r", engine, RecordingExecutor())
    inv = Invariants()
    now = 0.0
    for gap, event in steps:
        now += gap
        deadline = engine.next_deadline()
        while deadline is not None and deadline <= now:
            actions = engine.handle_timer(now=deadline)
            node.executor.run(actions, now=deadline)
            inv(None, node, actions)
            deadline = engine.next_deadline()
            assert deadline is None or deadline > now or deadline > 0
        if event == "timer":
            continue
        actions = engine.handle(event, now=now)  # type: ignore[arg-type]
        node.executor.run(actions, now=now)
        inv(None, node, actions)
        deadline = engine.next_deadline()
        if engine.state in (State.INIT, State.FAULT):
            assert deadline is None
        elif engine.state is State.BACKUP and not engine.takeover_pending:
            assert deadline is not None and deadline > now - 1e-9


def test_documented_table_matches_code() -> None:
    """SM-01..SM-16: docs/state-machine.md's transition table is exactly states.TRANSITIONS."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "state-machine.md").read_text(encoding="utf-8")
    section = doc.split("<!-- transition-table:", 1)[1].split("\n\n", 1)[0]
    rows: dict[tuple[State, Trigger], State] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in State.__members__:
            rows[(State[cells[0]], Trigger[cells[1]])] = State[cells[2]]
    assert rows == TRANSITIONS
