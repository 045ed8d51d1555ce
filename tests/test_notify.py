"""NotifyRunner: keepalived argv and env, per-instance order, coalescing, timeout kill, bounded stop."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest

from pyvrrp.adapters.notify import (
    NotifyEvent,
    NotifyRunner,
    NotifyScripts,
    build_argv,
    event_from_state_change,
)
from pyvrrp.proto.events import State, StateChanged


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _logger_script(tmp_path: Path, name: str = "log.sh", delay_s: float = 0.0) -> Path:
    """A script appending '<tag>|<argv...>|<env>' to tmp_path/log, after an optional delay."""
    log = tmp_path / "log"
    return _script(
        tmp_path / name,
        f"""sleep {delay_s}
printf '%s|' "$@" >> {log}
printf 'I=%s S=%s P=%s PR=%s V=%s R=%s E=%s\\n' "$PYVRRP_INSTANCE" "$PYVRRP_STATE" \
 "$PYVRRP_PREVIOUS_STATE" "$PYVRRP_PRIORITY" "$PYVRRP_VIPS" "$PYVRRP_REASON" "$PYVRRP_EPOCH" >> {log}
""",
    )


def _lines(tmp_path: Path) -> list[str]:
    p = tmp_path / "log"
    return p.read_text().splitlines() if p.exists() else []


async def _until_started(runner: NotifyRunner, instance: str = "VI_1") -> None:
    """Wait until nothing of ``instance`` waits to start (so the next submit cannot supersede it)."""
    for _ in range(500):
        if runner.queued(instance) == 0:
            return
        await asyncio.sleep(0.01)
    pytest.fail("notification did not start")


def test_argv_keepalived_compatible(tmp_path: Path) -> None:
    """Generic notify gets 'INSTANCE name STATE prio'; specific scripts get only their words."""
    script = _logger_script(tmp_path)
    scripts = NotifyScripts(notify=f"{script} generic", notify_master=f"{script} 'spec ific'")
    ev = NotifyEvent(
        "VI_1",
        State.MASTER,
        150,
        previous_state=State.BACKUP,
        vips=("192.0.2.10/24", "2001:db8::10/64"),
        reason="master_down_timer",
        epoch=7,
    )

    async def main() -> None:
        runner = NotifyRunner()
        assert runner.submit(ev, scripts) == 2
        assert await runner.drain(timeout_s=10)
        await runner.close()
        assert runner.stats.succeeded == 2

    asyncio.run(main())
    lines = _lines(tmp_path)
    assert lines == [
        "spec ific|I=VI_1 S=MASTER P=BACKUP PR=150 V=192.0.2.10/24 2001:db8::10/64 R=master_down_timer E=7",
        "generic|INSTANCE|VI_1|MASTER|150|I=VI_1 S=MASTER P=BACKUP PR=150 "
        "V=192.0.2.10/24 2001:db8::10/64 R=master_down_timer E=7",
    ]


def test_build_argv_group_and_stop() -> None:
    """Sync groups use GROUP; STOP reports the configured priority like keepalived."""
    ev = NotifyEvent("G1", "STOP", 150, kind="GROUP")
    assert build_argv("/bin/x -a", generic=True, event=ev) == ("/bin/x", "-a", "GROUP", "G1", "STOP", "150")
    assert build_argv("/bin/x -a", generic=False, event=ev) == ("/bin/x", "-a")
    with pytest.raises(ValueError):
        build_argv("/bin/x 'unbalanced", generic=False, event=ev)


def test_fifo_order_per_instance_never_concurrent(tmp_path: Path) -> None:
    """Scripts of one instance run in submission order, one at a time (slow first stays first)."""
    slow = _script(
        tmp_path / "slow.sh",
        f"""echo "start $1" >> {tmp_path}/log; sleep 0.3; echo "end $1" >> {tmp_path}/log\n""",
    )
    fast = _script(
        tmp_path / "fast.sh",
        f"""echo "start $1" >> {tmp_path}/log; echo "end $1" >> {tmp_path}/log\n""",
    )

    async def main() -> None:
        runner = NotifyRunner()
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), NotifyScripts(notify_backup=f"{slow} backup"))
        await _until_started(runner)
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), NotifyScripts(notify_master=f"{fast} master"))
        # a conflict report is not a state change: it queues behind MASTER, never supersedes it
        runner.submit(NotifyEvent("VI_1", "CONFLICT", 100), NotifyScripts(notify=f"{fast} conflict"))
        assert runner.pending("VI_1") == 3
        assert await runner.drain(timeout_s=10)
        assert runner.pending() == 0
        await runner.close()

    asyncio.run(main())
    assert _lines(tmp_path) == [
        "start backup",
        "end backup",
        "start master",
        "end master",
        "start conflict",
        "end conflict",
    ]


def test_instances_run_concurrently_and_loop_not_blocked(tmp_path: Path) -> None:
    """Two instances' slow scripts overlap, and the loop keeps ticking meanwhile."""
    slow = _script(tmp_path / "slow.sh", "sleep 0.5\n")

    async def main() -> float:
        runner = NotifyRunner()
        t0 = time.monotonic()
        runner.submit(NotifyEvent("A", "MASTER", 100), NotifyScripts(notify_master=str(slow)))
        runner.submit(NotifyEvent("B", "MASTER", 100), NotifyScripts(notify_master=str(slow)))
        ticks = 0
        while runner.pending():
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 20  # the loop ran while scripts slept
        await runner.close()
        return time.monotonic() - t0

    elapsed = asyncio.run(main())
    assert elapsed < 0.95  # concurrent: ~0.5 s, serial would be >= 1.0 s


def test_timeout_kills_process_group(tmp_path: Path) -> None:
    """A script over its timeout is killed together with its children, then the FIFO continues."""
    pidfile = tmp_path / "child.pid"
    hang = _script(tmp_path / "hang.sh", f"sleep 30 &\necho $! > {pidfile}\nwait\n")
    after = _logger_script(tmp_path, "after.sh")

    async def main() -> NotifyRunner:
        runner = NotifyRunner(timeout_s=0.5, kill_grace_s=0.5)
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), NotifyScripts(notify_master=str(hang)))
        await _until_started(runner)
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), NotifyScripts(notify_backup=f"{after} next"))
        assert await runner.drain(timeout_s=10)
        await runner.close()
        return runner

    t0 = time.monotonic()
    runner = asyncio.run(main())
    assert time.monotonic() - t0 < 5
    assert runner.stats.timed_out == 1
    first = runner.history[0]
    assert first.timed_out and first.returncode is not None and first.returncode < 0
    assert _lines(tmp_path)[0].startswith("next|")
    child = int(pidfile.read_text())
    for _ in range(50):  # the orphan sleep was in the killed group; allow reaping by init
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            break
        if fields[0] in ("Z", "X"):  # dead, waiting for a reaper (no init in some containers)
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"child {child} of the timed-out script survived")


def test_missing_and_non_executable_scripts_are_logged_not_raised(tmp_path: Path) -> None:
    """A missing or non-executable script is recorded as an error and later scripts still run."""
    noexec = tmp_path / "noexec.sh"
    noexec.write_text("#!/bin/sh\nexit 0\n")
    noexec.chmod(0o644)
    ok = _logger_script(tmp_path, "ok.sh")

    async def main() -> NotifyRunner:
        runner = NotifyRunner()
        runner.submit(
            NotifyEvent("VI_1", "MASTER", 100),
            NotifyScripts(notify_master=str(tmp_path / "missing.sh"), notify=str(noexec)),
        )
        await _until_started(runner)
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), NotifyScripts(notify_backup="/bin/sh -c 'exit 3'"))
        await _until_started(runner)
        runner.submit(
            NotifyEvent("VI_1", "FAULT", 100), NotifyScripts(notify_fault=f"{ok} x", notify="'unbalanced")
        )
        assert await runner.drain(timeout_s=10)
        await runner.close()
        return runner

    runner = asyncio.run(main())
    errors = [r.error for r in runner.history if r.error]
    assert errors[0] == "not found"
    assert "ermission" in errors[1]
    assert runner.stats.errors == 3  # missing, not executable, unbalanced quotes
    assert runner.stats.failed == 1  # exit 3
    assert [r.returncode for r in runner.history if r.error is None] == [3, 0]
    assert _lines(tmp_path)[0].startswith("x|")


def test_init_state_runs_only_generic(tmp_path: Path) -> None:
    """States without a specific script (INIT) run only the generic notify."""
    script = _logger_script(tmp_path)

    async def main() -> None:
        runner = NotifyRunner()
        n = runner.submit(
            NotifyEvent("VI_1", State.INIT, 100), NotifyScripts(notify=str(script), notify_master=str(script))
        )
        assert n == 1
        await runner.close()

    asyncio.run(main())
    assert _lines(tmp_path)[0].startswith("INSTANCE|VI_1|INIT|100|")


def test_drain_is_bounded(tmp_path: Path) -> None:
    """drain(timeout) returns False instead of waiting for a stuck script; close kills it."""
    hang = _script(tmp_path / "hang.sh", "sleep 30\n")

    async def main() -> None:
        runner = NotifyRunner(timeout_s=60, kill_grace_s=0.2)
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), NotifyScripts(notify_master=str(hang)))
        t0 = time.monotonic()
        assert await runner.drain(timeout_s=0.3) is False
        assert await runner.close(timeout_s=0.1) is False
        assert time.monotonic() - t0 < 3
        assert runner.submit(NotifyEvent("VI_1", "BACKUP", 1), NotifyScripts(notify_backup=str(hang))) == 0

    asyncio.run(main())


def test_event_from_state_change_maps_shutdown_to_stop() -> None:
    """SM-09: the engine's shutdown (-> INIT) is keepalived's STOP; base priority is reported."""
    ev = event_from_state_change(
        "VI_1",
        StateChanged(State.MASTER, State.INIT, "shutdown", 0, 4),
        base_priority=150,
        vips=["192.0.2.10/24"],
    )
    assert (ev.state, ev.previous_state, ev.priority, ev.epoch, ev.vips) == (
        "STOP",
        "MASTER",
        150,
        4,
        ("192.0.2.10/24",),
    )
    assert build_argv("/x", generic=True, event=ev)[1:] == ("INSTANCE", "VI_1", "STOP", "150")
    other = event_from_state_change(
        "VI_1", StateChanged(State.BACKUP, State.MASTER, "master_down", 90), base_priority=100
    )
    assert (other.state, other.priority, other.reason) == ("MASTER", 100, "master_down")


def test_submit_script_low_level_keeps_order_and_path(tmp_path: Path) -> None:
    """submit_script: argv = shlex(script) + args; env merged over os.environ (PATH kept); FIFO order."""
    log = tmp_path / "log"
    script = _script(
        tmp_path / "s.sh",
        f'echo "$# [$1] $2 $3 $PYVRRP_STATE" >> {log}\ncommand -v sh >/dev/null && echo path-ok >> {log}\n',
    )

    async def main() -> None:
        runner = NotifyRunner()
        env_master = {"PYVRRP_STATE": "MASTER"}
        assert runner.submit_script("VI_1", f"{script} 'a b'", ["INSTANCE", "VI_1"], env_master)
        assert runner.submit_script("VI_1", str(script), [], {"PYVRRP_STATE": "BACKUP"})
        assert not runner.submit_script("VI_1", "'broken", [])
        await runner.close()
        assert runner.stats.errors == 1

    asyncio.run(main())
    assert log.read_text().splitlines() == [
        "3 [a b] INSTANCE VI_1 MASTER",
        "path-ok",
        "0 []   BACKUP",
        "path-ok",
    ]


# ---------------------------------------------------------------------------
# issue 14 item 5: coalescing, bound, stop


def _marker_script(tmp_path: Path, name: str, delay_s: float) -> Path:
    """Appends '<$1> start' / '<$1> end' to tmp_path/log around a sleep."""
    log = tmp_path / "log"
    return _script(tmp_path / name, f'echo "$1 start" >> {log}\nsleep {delay_s}\necho "$1 end" >> {log}\n')


def _scripts(script: Path) -> NotifyScripts:
    return NotifyScripts(
        notify_master=f"{script} master",
        notify_backup=f"{script} backup",
        notify_fault=f"{script} fault",
        notify_stop=f"{script} stop",
    )


def test_flaps_behind_a_slow_script_coalesce_to_the_last_state(tmp_path: Path) -> None:
    """40 flaps queued behind a running script leave one pending job: the last state's; drops are logged."""
    from structlog.testing import capture_logs

    slow = _marker_script(tmp_path, "slow.sh", 0.3)
    scripts = _scripts(slow)

    async def main() -> NotifyRunner:
        runner = NotifyRunner()
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), scripts)
        await _until_started(runner)
        for i in range(40):
            runner.submit(NotifyEvent("VI_1", ("BACKUP", "MASTER")[i % 2], 100), scripts)
        assert runner.queued("VI_1") == 1
        assert runner.pending("VI_1") == 2  # the running one and the last state
        assert await runner.drain(timeout_s=10)
        await runner.close()
        return runner

    with capture_logs() as logs:
        runner = asyncio.run(main())
    assert _lines(tmp_path) == ["master start", "master end", "master start", "master end"]
    assert runner.stats.superseded == 39
    superseded = [e for e in logs if e["event"] == "notify_superseded"]
    assert len(superseded) == 39
    assert superseded[0]["dropped"] == ["BACKUP"] and superseded[0]["by"] == "MASTER"
    assert superseded[-1]["dropped"] == ["BACKUP"]


def test_later_state_without_script_still_supersedes(tmp_path: Path) -> None:
    """A pending notify_backup must not run once the node became MASTER, even with no notify_master."""
    slow = _marker_script(tmp_path, "slow.sh", 0.2)

    async def main() -> None:
        runner = NotifyRunner()
        only_backup = NotifyScripts(notify_backup=f"{slow} backup")
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), only_backup)
        await _until_started(runner)
        runner.submit(NotifyEvent("VI_1", "FAULT", 100), NotifyScripts(notify_fault=f"{slow} fault"))
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), only_backup)
        assert runner.submit(NotifyEvent("VI_1", "MASTER", 100), only_backup) == 0
        assert runner.queued("VI_1") == 0
        assert await runner.drain(timeout_s=10)
        await runner.close()

    asyncio.run(main())
    assert _lines(tmp_path) == ["backup start", "backup end"]


def test_stop_is_never_dropped_and_supersedes_pending_states(tmp_path: Path) -> None:
    """STOP drops the pending BACKUP; later changes (instance re-added) never drop the STOP; order kept."""
    slow = _marker_script(tmp_path, "slow.sh", 0.2)
    scripts = _scripts(slow)

    async def main() -> None:
        runner = NotifyRunner()
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), scripts)
        await _until_started(runner)
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), scripts)
        runner.submit(NotifyEvent("VI_1", "STOP", 100), scripts)
        runner.submit(NotifyEvent("VI_1", "FAULT", 100), scripts)
        runner.submit(NotifyEvent("VI_1", "BACKUP", 100), scripts)
        runner.submit(NotifyEvent("VI_1", "STOP", 100), scripts)
        assert runner.queued("VI_1") == 2
        # a sync group of the same name is another kind: its BACKUP is not superseded by the instance
        runner.submit(NotifyEvent("VI_1", "BACKUP", 0, kind="GROUP"), NotifyScripts(notify=f"{slow} group"))
        assert runner.queued("VI_1") == 3
        assert await runner.drain(timeout_s=10)
        await runner.close()

    asyncio.run(main())
    assert [line for line in _lines(tmp_path) if line.endswith("start")] == [
        "master start",
        "stop start",
        "stop start",
        "group start",
    ]


def test_queue_is_bounded_for_low_level_jobs_but_not_for_stop(tmp_path: Path) -> None:
    """submit_script jobs over max_queued are dropped and counted; a STOP still gets in."""
    slow = _marker_script(tmp_path, "slow.sh", 0.3)

    async def main() -> NotifyRunner:
        runner = NotifyRunner(max_queued=5)
        assert runner.submit_script("VI_1", f"{slow} first")
        await _until_started(runner)
        accepted = [runner.submit_script("VI_1", f"{slow} job{i}") for i in range(20)]
        assert accepted == [True] * 5 + [False] * 15
        assert runner.submit(NotifyEvent("VI_1", "STOP", 100), _scripts(slow)) == 1
        assert runner.queued("VI_1") == 6
        await runner.close(timeout_s=0.05)
        return runner

    runner = asyncio.run(main())
    assert runner.stats.dropped >= 15


def test_hung_script_delays_only_its_own_instance(tmp_path: Path) -> None:
    """A script hanging in VI_1 (long timeout) does not hold back VI_2's notification."""
    hang = _script(tmp_path / "hang.sh", "sleep 30\n")
    quick = _marker_script(tmp_path, "quick.sh", 0)

    async def main() -> float:
        runner = NotifyRunner(timeout_s=60, kill_grace_s=0.2)
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), NotifyScripts(notify_master=str(hang)))
        await _until_started(runner)
        t0 = time.monotonic()
        runner.submit(NotifyEvent("VI_2", "MASTER", 100), NotifyScripts(notify_master=f"{quick} vi2"))
        while runner.pending("VI_2"):
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - t0
        await runner.close(timeout_s=0.5)
        return elapsed

    assert asyncio.run(main()) < 1.0
    assert _lines(tmp_path) == ["vi2 start", "vi2 end"]


def test_stop_runs_queued_notify_stop_within_the_budget(tmp_path: Path) -> None:
    """At SIGTERM: a hung notify_master is killed at half the budget so notify_stop runs; bounded."""
    hang = _script(tmp_path / "hang.sh", "sleep 30\n")
    stop = _marker_script(tmp_path, "stop.sh", 0)
    scripts = NotifyScripts(notify_master=str(hang), notify_stop=f"{stop} stop")

    async def main() -> tuple[bool, float]:
        runner = NotifyRunner(timeout_s=60, kill_grace_s=1.0)
        runner.submit(NotifyEvent("VI_1", "MASTER", 100), scripts)
        await _until_started(runner)
        loop = asyncio.get_running_loop()
        # the daemon queues sync-group STOPs with call_soon: they must still be run
        loop.call_soon(runner.submit, NotifyEvent("VI_1", "STOP", 100), scripts)
        t0 = time.monotonic()
        ok = await runner.stop(timeout_s=1.0)
        elapsed = time.monotonic() - t0
        assert runner.stats.killed_at_stop == 1
        assert runner.submit(NotifyEvent("VI_1", "MASTER", 100), scripts) == 0  # closed
        return ok, elapsed

    ok, elapsed = asyncio.run(main())
    assert ok is False  # the hung script was killed
    assert 0.5 <= elapsed < 1.4  # budget 1 s; slack for a loaded machine
    assert _lines(tmp_path) == ["stop start", "stop end"]


def test_stop_kills_a_hung_notify_stop_at_the_budget_and_returns_fast_when_idle(tmp_path: Path) -> None:
    """A hung notify_stop is killed before the budget ends; with quick scripts stop() does not wait."""
    hang = _script(tmp_path / "hang.sh", "sleep 30\n")
    quick = _marker_script(tmp_path, "quick.sh", 0)

    async def hung() -> float:
        runner = NotifyRunner(timeout_s=60)
        runner.submit(NotifyEvent("VI_1", "STOP", 100), NotifyScripts(notify_stop=str(hang)))
        t0 = time.monotonic()
        assert await runner.stop(timeout_s=0.8) is False
        return time.monotonic() - t0

    async def quick_stop() -> float:
        runner = NotifyRunner(timeout_s=60)
        runner.submit(NotifyEvent("VI_1", "STOP", 100), NotifyScripts(notify_stop=f"{quick} stop"))
        t0 = time.monotonic()
        assert await runner.stop(timeout_s=5.0) is True
        return time.monotonic() - t0

    assert asyncio.run(hung()) < 1.2  # budget 0.8 s
    assert asyncio.run(quick_stop()) < 1.0  # does not wait out the 5 s budget
    assert _lines(tmp_path) == ["stop start", "stop end"]


def test_supersedes_table() -> None:
    """The coalescing rule, spelled out (module docstring)."""
    from pyvrrp.adapters.notify import _Notification, supersedes

    def n(state: str, kind: str = "INSTANCE", instance: str = "VI_1") -> _Notification:
        return _Notification(instance, kind, state, [])

    for old in ("MASTER", "BACKUP", "FAULT", "INIT"):
        for new in ("MASTER", "BACKUP", "FAULT", "INIT", "STOP", "DELETED"):
            assert supersedes(n(new), n(old))
        assert not supersedes(n("CONFLICT"), n(old))
        assert not supersedes(n(old, kind="GROUP"), n(old))
        assert not supersedes(n(old, instance="VI_2"), n(old))
    for new in ("MASTER", "STOP", "CONFLICT"):
        assert not supersedes(n(new), n("STOP"))
        assert not supersedes(n(new), n("DELETED"))
        assert not supersedes(n(new, kind="script"), n(new, kind="script"))
    assert supersedes(n("CONFLICT"), n("CONFLICT"))
    assert not supersedes(n("MASTER"), n("CONFLICT"))
