"""The early VRRP listener of ``pyvrrp run`` on real hosts (issue #3 §6, start-up rows).

``pyvrrp run`` starts listening for VRRP ~20 ms after exec, before its imports,
and the engine's Startup is dated from then (pyvrrp/runtime/early_listen.py).
Two properties matter: a node never claims mastership less than one
Master_Down_Interval after it started listening, and the packets queued
while Python was importing are not lost (a restarted backup next to a live
master must not become MASTER even when its Master_Down_Interval is much
shorter than the daemon's start-up).

Restarts of an unchanged config normally go through the fast-start engine
(netns-tests/test_daemon_fast_start.py); these tests switch it off
(PYVRRP_NO_FAST_START=1) so the early listener's own credit and replay, which
every instance fast start cannot run still relies on, stay covered.
"""

from __future__ import annotations

import pytest
from _daemon_helpers import log_events, log_transitions, log_wall, start, start_pair, v2, v3, wait_view

from pyvrrp.lab.topology import Lab


@pytest.fixture(autouse=True)
def _no_fast_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVRRP_NO_FAST_START", "1")  # the daemons inherit the environment


def test_startup_is_dated_from_the_early_listener(lab: Lab) -> None:
    # v2, 1 s, priority 150: Master_Down_Interval 3 + 106/256 s, much longer than start-up.
    mdi = 3 + (256 - 150) / 256
    node = start(lab, "lb1", v2(150))
    node.wait_state("MASTER", mdi + 3.0)
    assert node.started_at is not None
    (early,) = log_events(node, "early_listen")
    assert early["credited"] == ["VI_51"] and early["dropped"] == 0
    master = [r for r in log_events(node, "state_changed") if r.get("to") == "MASTER"]
    elapsed = log_wall(master[0]) - node.started_at
    # never before a full Master_Down_Interval of listening (safety) ...
    assert elapsed >= mdi, (elapsed, mdi)
    # ... and not Master_Down_Interval *after* the imports (0.4-0.7 s here) either
    assert elapsed - mdi < 0.25, (elapsed, mdi, early)


def test_restarted_backup_replays_what_it_heard_while_starting(lab: Lab) -> None:
    # 50 ms adverts: Master_Down_Interval ~0.17 s, far shorter than the daemon's start-up.
    # Dated from the listener, lb2's Master_Down timer has long expired when its engine
    # starts; only the replayed adverts of lb1 keep it in BACKUP.
    lb1, lb2 = start_pair(lab, v3(200, advert_int_s=0.05), v3(100, advert_int_s=0.05))
    for _ in range(2):
        lb2.kill9()
        lb2.start()
        lb2.wait_state("BACKUP", 10.0)
        wait_view(lb2, lambda v: v["master_ip"] == "192.168.233.10", 5.0, what="lb2 hears lb1")
    runs = log_events(lb2, "early_listen")
    assert len(runs) == 3
    for rec in runs[1:]:
        assert rec["credited"] == ["VI_51"], rec
        assert rec["replayed"] > 0, rec  # lb1's adverts queued during the imports
    assert not [t for t in log_transitions(lb2) if t[1] == "MASTER"], log_transitions(lb2)
    assert [t[1] for t in log_transitions(lb1)] == ["BACKUP", "MASTER"], log_transitions(lb1)


def test_restarted_unicast_backup_replays_what_it_heard_while_starting(lab: Lab) -> None:
    # Unicast adverts need no group membership: the early listener covers them too.
    lb1_ip, lb2_ip = "192.168.233.10", "192.168.233.11"
    lb1, lb2 = start_pair(
        lab,
        v3(200, advert_int_s=0.05, unicast_src=lb1_ip, unicast_peers=(lb2_ip,)),
        v3(100, advert_int_s=0.05, unicast_src=lb2_ip, unicast_peers=(lb1_ip,)),
    )
    lb2.kill9()
    lb2.start()
    lb2.wait_state("BACKUP", 10.0)
    wait_view(lb2, lambda v: v["master_ip"] == lb1_ip, 5.0, what="lb2 hears lb1")
    rec = log_events(lb2, "early_listen")[-1]
    assert rec["credited"] == ["VI_51"] and rec["replayed"] > 0, rec
    assert not [t for t in log_transitions(lb2) if t[1] == "MASTER"], log_transitions(lb2)
    assert [t[1] for t in log_transitions(lb1)] == ["BACKUP", "MASTER"], log_transitions(lb1)
