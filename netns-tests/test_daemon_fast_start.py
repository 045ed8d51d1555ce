"""Fast start on real hosts: a restart of an unchanged config runs the engine before the daemon.

``pyvrrp run`` caches the validated engine config of each simple instance; the next
start of the same file runs those engines in a thread ~40 ms after exec, while the
daemon is still importing, and the daemon adopts them when it is ready
(pyvrrp/runtime/fast_start.py, issue #3 §6 "restart -> MASTER again").  What must
hold: the engine really acts before the daemon (checked on the wire), the daemon's
view afterwards is the same as after a normal start (state, VIPs, notify scripts
in order), a restarted backup beside a live master stays BACKUP, a second daemon
on the same config never touches the first one's VIPs, SIGTERM during the window
releases the VIP, and a cache that does not match the config is not used.
"""

from __future__ import annotations

import marshal
import os
import signal
import time
from pathlib import Path
from typing import Any

from _daemon_helpers import (
    adverts,
    capture,
    inst,
    log_events,
    log_transitions,
    log_wall,
    make_notify_scripts,
    notify_lines,
    start,
    start_pair,
    v3,
    wait_view,
)

from pyvrrp.lab.topology import VIP4, Lab, PyvrrpNode, wait_for

FAST = 0.01  # VRRPv3 10 ms adverts: Master_Down_Interval ~32-36 ms, far below the daemon's start-up


def _wait_cached(lab: Lab, count: int) -> list[Path]:
    """Until ``count`` daemons have written their fast-start cache (after their first start)."""
    directory = lab.run_dir / "fast-start"

    def written() -> list[Path] | None:
        files = sorted(directory.glob("*.marshal"))
        return files if len(files) >= count else None

    found: list[Path] = wait_for(written, 10.0, what=f"{count} fast-start caches in {directory}")
    return found


def _restart_preferred(lab: Lab, lb1: PyvrrpNode, lb2: PyvrrpNode) -> tuple[dict[str, Any], list[Any]]:
    """kill -9 lb1, let lb2 take over, restart lb1 under a capture until it is MASTER again.

    Returns lb1's ``fast_start`` log record (asserting it adopted VI_51 as MASTER) and the
    captured wire events."""
    lb1.kill9()  # leaves its VIP behind, as a crash does
    lb2.wait_state("MASTER", 5.0)
    with capture(lab) as cap:
        lb1.start()
        lb1.wait_state("MASTER", 10.0)
        lb2.wait_state("BACKUP", 5.0)
        time.sleep(0.2)
    (fast,) = log_events(lb1, "fast_start")
    assert fast["adopted"] == ["VI_51"] and fast["states"] == {"VI_51": "MASTER"}, fast
    return fast, cap.events()


def _cache_of(node: PyvrrpNode, lab: Lab) -> Path:
    for path in (lab.run_dir / "fast-start").glob("*.marshal"):
        if marshal.loads(path.read_bytes())["config_path"] == str(node.config_path):
            return path
    raise AssertionError(f"no fast-start cache for {node.config_path}")


def test_restarted_preferred_node_takes_over_before_the_daemon_is_up(lab: Lab) -> None:
    log = lab.run_dir / "notify.log"
    scripts = make_notify_scripts(lab.run_dir, log)
    lb1, lb2 = start_pair(lab, v3(200, advert_int_s=FAST, extra=scripts), v3(100, advert_int_s=FAST))
    _wait_cached(lab, 2)
    before = len(notify_lines(log))
    fast, events = _restart_preferred(lab, lb1, lb2)
    # on the wire: lb1's first advert as MASTER left before the daemon took the engine over
    restarted = [e for e in adverts(events, lab, "lb1") if e.priority == 200 and e.t >= lb1.started_at]
    assert restarted, "no advert from the restarted lb1"
    assert restarted[0].t < log_wall(fast), (restarted[0].t, fast)
    # the crash's VIP was cleaned before the election, then held again; lb2 released it
    assert [r["vip"] for r in log_events(lb1, "stale_vip_removed")][-1] == "192.168.233.200/32"
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    # the daemon's log and notify scripts tell the same story as after a normal start
    assert log_transitions(lb1)[-2:] == [("INIT", "BACKUP", "startup"), ("BACKUP", "MASTER", "master_down")]
    assert all(r.get("fast_start") for r in log_events(lb1, "state_changed")[-2:])
    wait_for(lambda: len(notify_lines(log)) >= before + 4, 5.0, what="4 notify lines")
    time.sleep(0.2)
    env = "inst=VI_51 state={s} prev={p} prio=200 vips=[192.168.233.200/32]"
    assert notify_lines(log)[before:] == [
        f"notify_backup args=[] {env.format(s='BACKUP', p='INIT')}",
        f"notify args=[INSTANCE VI_51 BACKUP 200] {env.format(s='BACKUP', p='INIT')}",
        f"notify_master args=[] {env.format(s='MASTER', p='BACKUP')}",
        f"notify args=[INSTANCE VI_51 MASTER 200] {env.format(s='MASTER', p='BACKUP')}",
    ]
    view = inst(lb1)
    assert view["state"] == "MASTER" and view["vips_held"] is True
    assert view["last_transition"]["reason"] == "master_down"
    sent = view["counters"]["adverts_tx"]
    wait_view(lb1, lambda v: v["counters"]["adverts_tx"] > sent, 2.0, what="lb1 keeps advertising")


def test_restarted_backup_beside_a_live_master_stays_backup(lab: Lab) -> None:
    lb1, lb2 = start_pair(lab, v3(200, advert_int_s=FAST), v3(100, advert_int_s=FAST))
    _wait_cached(lab, 2)
    for _ in range(3):
        lb2.kill9()
        lb2.start()
        wait_for(
            lambda: len(log_events(lb2, "fast_start")) >= 1 and lb2.state() == "BACKUP", 10.0, what="lb2 up"
        )
        wait_view(lb2, lambda v: v["master_ip"] == "192.168.233.10", 5.0, what="lb2 hears lb1")
    runs = log_events(lb2, "fast_start")
    assert len(runs) == 3
    assert all(r["adopted"] == ["VI_51"] and r["states"] == {"VI_51": "BACKUP"} for r in runs), runs
    assert [t[1] for t in log_transitions(lb2)].count("MASTER") == 0, log_transitions(lb2)
    assert [t[1] for t in log_transitions(lb1)] == ["BACKUP", "MASTER"], log_transitions(lb1)
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")


def test_a_second_daemon_on_the_same_config_leaves_the_running_one_alone(lab: Lab) -> None:
    lb1 = start(lab, "lb1", v3(200, advert_int_s=FAST))
    lb1.wait_state("MASTER", 5.0)
    _wait_cached(lab, 1)
    argv = [*lb1.argv()]
    proc = lab.exec("lb1", argv, check=False, env=lb1.env(), timeout=20)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "another pyvrrp" in (proc.stdout + proc.stderr)
    time.sleep(0.2)
    assert lab.holds_vip("lb1")
    assert not log_events(lb1, "vip_deleted_externally")
    assert [t[1] for t in log_transitions(lb1)] == ["BACKUP", "MASTER"]


def test_sigterm_while_the_engine_runs_ahead_releases_the_vip(lab: Lab) -> None:
    lb1, lb2 = start_pair(lab, v3(200, advert_int_s=FAST), v3(100, advert_int_s=FAST))
    _wait_cached(lab, 2)
    lb1.kill9()
    lb2.wait_state("MASTER", 5.0)
    lab.ip_cmd("lb1", "addr", "del", f"{VIP4}/32", "dev", "eth0")  # the crash's leftover
    lb1.start()
    # the fast-start engine holds the VIP ~40 ms after exec, the daemon only later
    wait_for(lambda: lab.holds_vip("lb1"), 5.0, 0.002, what="lb1 takes the VIP")
    assert lb1.proc is not None
    os.kill(lb1.proc.pid, signal.SIGTERM)
    assert lb1.proc.wait(timeout=5) == 0
    assert not lab.holds_vip("lb1")
    # the signal came while the engine ran ahead of the daemon (~40 ms after exec, the
    # hand-over is ~0.2 s): the fast-start path itself released the VIP
    assert "stopped by signal 15 during start-up; released ['192.168.233.200/32']" in lb1.log_text()
    lb2.wait_state("MASTER", 5.0)
    wait_for(lambda: lab.holds_vip("lb2"), 5.0, what="lb2 holds the VIP again")


def test_a_cache_that_does_not_match_is_not_used(lab: Lab) -> None:
    lb1 = start(lab, "lb1", v3(200, advert_int_s=FAST))
    lb1.wait_state("MASTER", 5.0)
    (cache,) = _wait_cached(lab, 1)
    assert lb1.stop(timeout_s=5) == 0
    # 1. the cached engine config no longer matches what the daemon builds: discarded
    doc = marshal.loads(cache.read_bytes())
    doc["instances"][0]["router"]["priority"] = 150
    cache.write_bytes(marshal.dumps(doc))
    lb1.start()
    lb1.wait_state("MASTER", 10.0)
    wait_for(lambda: log_events(lb1, "fast_start"), 5.0, what="fast_start event")
    (fast,) = log_events(lb1, "fast_start")
    assert fast["adopted"] == [] and "router.priority" in fast["discarded"]["VI_51"], fast
    assert "router.priority" in log_events(lb1, "fast_start_discarded")[0]["reason"]
    assert inst(lb1)["priority"] == 200
    assert lb1.stop(timeout_s=5) == 0
    # 2. the config file was edited: the cache is for other bytes, nothing runs early
    text = lb1.config_path.read_text()
    lb1.config_path.write_text(text.replace("priority = 200", "priority = 210"))
    lb1.start()
    lb1.wait_state("MASTER", 10.0)
    time.sleep(0.2)
    assert len(log_events(lb1, "fast_start")) == 1  # still only the first one
    assert log_events(lb1, "early_listen")[-1]["credited"] == ["VI_51"]
    assert inst(lb1)["priority"] == 210
    assert lab.holds_vip("lb1", VIP4)


def test_ipv6_instance_is_fast_started_and_understood_on_the_wire(lab_factory: Any) -> None:
    """The thread's own IPv6 adverts (link-local source through IPV6_PKTINFO, checksum over
    the IPv6 pseudo-header) and unsolicited NA: lb2 accepts them and yields."""
    from pyvrrp.lab.topology import VIP6

    lab = lab_factory(ipv6=True)
    spec = {"vips": (f"{VIP6}/128",), "advert_int_s": FAST}
    lb1, lb2 = start_pair(lab, v3(200, **spec), v3(100, **spec))
    _wait_cached(lab, 2)
    fast, events = _restart_preferred(lab, lb1, lb2)
    first = [e for e in adverts(events, lab, "lb1") if e.priority == 200 and e.t >= (lb1.started_at or 0)]
    assert first and first[0].t < log_wall(fast)
    assert first[0].src_ip.startswith("fe80::") and first[0].addresses == (VIP6,)
    nas = [e for e in events if e.kind == "na" and e.target == VIP6 and e.src_mac == lab.mac("lb1")]
    assert nas and nas[0].t >= first[0].t
    wait_view(lb2, lambda v: v["master_ip"] == first[0].src_ip, 5.0, what="lb2 follows lb1")
    assert lb1.holds_vip(VIP6) and not lb2.holds_vip(VIP6)
