"""The receive fast path (VirtualRouter.refresh) is the full path, only cheaper (issue 15 item 2).

Two engines get the same random sequence of inputs and timer calls.  The reference
engine handles every advert with ``handle()``; the other tries ``refresh()`` first
and falls back to ``handle()`` when it declines, as the supervisor does.  After every
step both must return the same actions and have the same snapshot (state, timers,
counters, drops, learned master...).  Adverts come from a small pool of objects so
the same object repeats, as the supervisor reuses one for byte-identical datagrams.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.proto.events import (
    AdvertReceived,
    Input,
    LinkChanged,
    Shutdown,
    Startup,
    State,
    TakeoverVerdict,
    TrackerChanged,
)
from pyvrrp.proto.packet import Advertisement
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.testing import make_router

OURS = "192.0.2.10"
PEERS = ("192.0.2.11", "192.0.2.9", OURS)
VIP = ip_address("192.0.2.100")
OTHER_VIP = ip_address("192.0.2.101")


def _pool(version: int) -> list[AdvertReceived]:
    """Adverts a backup may hear: its master, a lower router, priority 0, odd intervals and lists."""
    out = []
    for src in PEERS:
        for prio in (0, 50, 100, 150, 255):
            for interval in (100, 200) if version == 2 else (5, 10, 100):
                for addrs in ((VIP,), (OTHER_VIP,)):
                    adv = Advertisement(
                        version=version, vrid=1, priority=prio, addresses=addrs, interval_cs=interval
                    )
                    for ttl in (255, 254):
                        out.append(AdvertReceived(advert=adv, src=ip_address(src), ttl=ttl))
    return out


POOLS = {2: _pool(2), 3: _pool(3)}

configs = st.fixed_dictionaries(
    {
        "version": st.sampled_from((2, 3)),
        "priority": st.sampled_from((100, 150, 255)),
        "preempt": st.booleans(),
        "preempt_delay_s": st.sampled_from((0.0, 0.5)),
        "takeover_gate": st.booleans(),
    }
)

steps = st.lists(
    st.tuples(
        st.sampled_from(("advert", "advert", "advert", "advert", "other", "timer")),
        st.integers(min_value=0, max_value=10_000),  # which advert / which other input
        st.floats(min_value=0.0, max_value=1.5),  # time step
    ),
    max_size=60,
)

OTHERS: tuple[Input, ...] = (
    TrackerChanged(name="t", delta=-60),
    TrackerChanged(name="t", delta=0),
    TrackerChanged(name="f", fault=True),
    TrackerChanged(name="f", fault=False),
    LinkChanged(up=False),
    LinkChanged(up=True),
    TakeoverVerdict(allow=True),
    TakeoverVerdict(allow=False),
    Shutdown(),
    Startup(),
)


def _engine(cfg: dict[str, Any]) -> VirtualRouter:
    interval = 100 if cfg["version"] == 2 else 10
    return make_router(
        "VI",
        cfg["priority"],
        OURS,
        version=cfg["version"],
        advert_interval_cs=interval,
        preempt=cfg["preempt"],
        preempt_delay_s=cfg["preempt_delay_s"],
        takeover_gate=cfg["takeover_gate"],
    )


@settings(max_examples=400, deadline=None)
@given(configs, st.integers(min_value=0, max_value=10_000), steps)
def test_refresh_gives_exactly_the_results_of_handle(
    cfg: dict[str, Any], master: int, seq: list[Any]
) -> None:
    full, fast = _engine(cfg), _engine(cfg)
    pool = POOLS[cfg["version"]]
    # bias: the master's advert (one object) is heard most of the time
    favourite = pool[master % len(pool)]
    now = 1000.0
    for engine in (full, fast):
        engine.handle(Startup(), now=now)
    refreshed = 0
    for kind, pick, dt in seq:
        now += dt
        if kind == "advert":
            event = favourite if pick % 3 else pool[pick % len(pool)]
            want = full.handle(event, now=now)
            if fast.refresh(event, now=now):
                got: list[Any] = []
                refreshed += 1
            else:
                got = fast.handle(event, now=now)
        elif kind == "other":
            item = OTHERS[pick % len(OTHERS)]
            want, got = full.handle(item, now=now), fast.handle(item, now=now)
        else:
            want, got = full.handle_timer(now=now), fast.handle_timer(now=now)
        assert got == want
        assert fast.snapshot(now=now) == full.snapshot(now=now)


def test_the_fast_path_is_taken_for_the_masters_repeated_advert() -> None:
    """The common case really is fast: the same advert again in BACKUP is refreshed, not re-handled."""
    engine = make_router("VI", 100, OURS, version=3, advert_interval_cs=10)
    engine.handle(Startup(), now=0.0)
    adv = AdvertReceived(
        advert=Advertisement(version=3, vrid=1, priority=150, addresses=(VIP,), interval_cs=10),
        src=ip_address(PEERS[0]),
        ttl=255,
    )
    assert not engine.refresh(adv, now=0.05)  # first sight: full path
    assert engine.handle(adv, now=0.05) == []
    assert engine.refresh(adv, now=0.15)
    snap = engine.snapshot(now=0.15)
    assert snap.state is State.BACKUP and snap.counters["adverts_rx"] == 2
    assert snap.next_deadline == 0.15 + snap.master_down_interval_s
    engine.handle(TrackerChanged(name="t", delta=-10), now=0.2)  # any other input: full path again
    assert not engine.refresh(adv, now=0.25)
