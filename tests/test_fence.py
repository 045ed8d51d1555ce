"""Fence hook (issue #4 §3): bounded, cancellable, process-group kill, argv/env contract, failure policy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pyvrrp.splitbrain.fence import FenceFailurePolicy, FenceResult, run_fence, takeover_allowed


def _script(tmp_path: Path, body: str, name: str = "fence.sh") -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def _gone(pid: int, within_s: float = 3.0) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_success_passes_argv_and_env(tmp_path):
    """Issue #4 §3: argv gets INSTANCE <name> <epoch> <old_master_ip>; env carries PYVRRP_EPOCH etc."""
    out = tmp_path / "out"
    script = _script(
        tmp_path,
        f'echo "$@" > {out}\n'
        f'echo "$PYVRRP_ACTION $PYVRRP_INSTANCE $PYVRRP_EPOCH $PYVRRP_OLD_MASTER $EXTRA" >> {out}\n'
        "echo fenced\n",
    )
    res = asyncio.run(
        run_fence(
            f"{script} --hard",
            name="VI_1",
            epoch=42,
            old_master="192.168.233.11",
            timeout_s=5,
            env={"EXTRA": "x"},
        )
    )
    assert res.ok and res.rc == 0 and res.reason == "ok" and not res.timed_out
    assert "fenced" in res.output
    lines = out.read_text().splitlines()
    assert lines == ["--hard INSTANCE VI_1 42 192.168.233.11", "fence VI_1 42 192.168.233.11 x"]


def test_nonzero_exit_is_failure(tmp_path):
    """Issue #4 §3: a non-zero exit status means the fence failed."""
    script = _script(tmp_path, "echo nope >&2\nexit 3\n")
    res = asyncio.run(run_fence(str(script), name="VI_1", epoch=1, timeout_s=5))
    assert not res.ok and res.rc == 3 and res.reason == "exit status 3"
    assert "nope" in res.output


def test_timeout_kills_whole_process_group(tmp_path):
    """Issue #4 §3: a hung hook is killed at its timeout, helpers it forked included."""
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"sleep 300 &\necho $! > {pidfile}\nsleep 300\n")
    started = time.monotonic()
    res = asyncio.run(run_fence(str(script), name="VI_1", epoch=1, timeout_s=0.5))
    elapsed = time.monotonic() - started
    assert not res.ok and res.timed_out and res.rc is None
    assert res.reason.startswith("timeout")
    assert 0.4 <= elapsed < 3.0
    assert _gone(int(pidfile.read_text()))


def test_cancellation_kills_process_group(tmp_path):
    """Issue #4 §3: old master's adverts return while the hook runs -> caller cancels, hook group killed."""
    pidfile = tmp_path / "pids"
    script = _script(tmp_path, f"sleep 300 &\necho $$ $! > {pidfile}\nwait\n")

    async def scenario() -> None:
        task = asyncio.create_task(run_fence(str(script), name="VI_1", epoch=1, timeout_s=30))
        for _ in range(200):
            if pidfile.exists() and len(pidfile.read_text().split()) == 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 5.0
    shell_pid, child_pid = (int(x) for x in pidfile.read_text().split())
    assert _gone(shell_pid)
    assert _gone(child_pid)


def test_missing_and_non_executable_scripts_are_reported(tmp_path):
    """Issue #4 §3: a missing or non-executable hook is a clear failed result, not a crash."""
    res = asyncio.run(run_fence(str(tmp_path / "absent.sh"), name="VI_1", epoch=1, timeout_s=1))
    assert not res.ok and res.rc is None and res.reason.startswith("not found")
    p = tmp_path / "noexec.sh"
    p.write_text("#!/bin/sh\nexit 0\n")
    p.chmod(0o644)
    res = asyncio.run(run_fence(str(p), name="VI_1", epoch=1, timeout_s=1))
    # even root cannot exec a file without any execute bit (EACCES)
    assert not res.ok and res.rc is None and res.reason.startswith("cannot run")


def test_killed_by_signal_and_bad_arguments(tmp_path):
    """Issue #4 §3: a hook killed by a signal fails; empty script / bad timeout are caller errors."""
    script = _script(tmp_path, "kill -TERM $$\n")
    res = asyncio.run(run_fence(str(script), name="VI_1", epoch=1, timeout_s=5))
    assert not res.ok and res.rc == -15 and res.reason == "killed by signal 15"
    with pytest.raises(ValueError):
        asyncio.run(run_fence("", name="VI_1", epoch=1, timeout_s=1))
    with pytest.raises(ValueError):
        asyncio.run(run_fence(str(script), name="VI_1", epoch=1, timeout_s=0))


def test_argv_list_form_and_unknown_old_master(tmp_path):
    """Issue #4 §3: argv may be a list; an unknown old master is passed as an empty argument."""
    out = tmp_path / "out"
    script = _script(tmp_path, f'printf "%s|" "$@" > {out}\n')
    res = asyncio.run(run_fence([str(script), "a b"], name="VI_2", epoch=0, timeout_s=5))
    assert res.ok
    assert out.read_text() == "a b|INSTANCE|VI_2|0||"


@pytest.mark.parametrize(
    ("ok", "policy", "allow"),
    [
        (True, "stay-backup", True),
        (True, "proceed", True),
        (False, "stay-backup", False),
        (False, "proceed", True),
        (False, FenceFailurePolicy.STAY_BACKUP, False),
    ],
)
def test_fence_failure_policy(ok, policy, allow):
    """Issue #4 §3: on failure, stay-backup refuses the takeover; proceed allows it (with a warning)."""
    res = FenceResult(ok, 0 if ok else 1, "ok" if ok else "exit status 1", 0.1)
    got, reason = takeover_allowed(res, policy)
    assert got is allow
    if not ok:
        assert "exit status 1" in reason
        assert ("proceeding" in reason) == allow


def test_unknown_policy_rejected():
    """Issue #4 §3: only stay-backup and proceed exist."""
    with pytest.raises(ValueError):
        takeover_allowed(FenceResult(False, 1, "x", 0.0), "retry-forever")
