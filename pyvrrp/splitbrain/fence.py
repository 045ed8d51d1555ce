"""The fence hook: a bounded, cancellable command run before a BACKUP takes the VIP.

Theory (issue #4 §3, ANCHORS §4.4 STONITH, §5 item 2): when the master went
silent a BACKUP cannot tell "the master died" from "I stopped hearing it".
An operator-supplied *fence hook* (IPMI power-off, a cloud API call that moves
the VIP or stops the instance, a switch-port shutdown) makes the old master
provably stop before we take over.  The engine asks for permission through its
takeover gate (``TakeoverPending`` -> ``TakeoverVerdict``); the runtime runs
:func:`run_fence` and answers with :func:`takeover_allowed`.

Contract of :func:`run_fence`:

* argv is ``shlex.split(script)`` followed by ``INSTANCE <name> <epoch>
  <old_master_ip>`` (the keepalived notify convention ``TYPE NAME ...``; the
  old master is ``""`` when unknown);
* the environment is the daemon's plus ``PYVRRP_ACTION=fence``,
  ``PYVRRP_INSTANCE``, ``PYVRRP_EPOCH`` (the epoch the new term *will* have),
  ``PYVRRP_OLD_MASTER`` and whatever the caller passes in ``env``;
* the command runs in its own session (process group); at ``timeout_s`` the
  whole group gets SIGKILL, so a hook that forks helpers cannot outlive its
  budget;
* the coroutine is cancellable: if the old master's adverts come back while
  the hook runs, the caller cancels the task, the process group is killed and
  :class:`asyncio.CancelledError` propagates (the takeover is abandoned);
* it never raises for a hook problem: a missing or non-executable script, a
  non-zero exit or a timeout is a :class:`FenceResult` with ``ok=False`` and a
  ``reason`` that says which.

Output (stdout and stderr, merged) goes to a temporary file, not a pipe, so a
grandchild that keeps a pipe open cannot delay the verdict; the last
``OUTPUT_TAIL_BYTES`` are returned for logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shlex
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import structlog

from pyvrrp.base.clock import monotonic

__all__ = [
    "FenceFailurePolicy",
    "FenceResult",
    "run_fence",
    "takeover_allowed",
]

_log = structlog.get_logger("pyvrrp.splitbrain.fence")

OUTPUT_TAIL_BYTES = 4096
_KILL_WAIT_S = 2.0


class FenceFailurePolicy(enum.StrEnum):
    """``fence_failure`` config key: what a failed fence hook means for the takeover."""

    STAY_BACKUP = "stay-backup"  # do not take the VIP; the engine retries later
    PROCEED = "proceed"  # take the VIP anyway, with a logged warning


@dataclass(frozen=True, slots=True)
class FenceResult:
    """Outcome of one fence-hook run.

    ``rc`` is the exit status (negative = killed by that signal, None = it never
    ran or had to be killed at the timeout); ``reason`` is one of ``"ok"``,
    ``"exit status N"``, ``"killed by signal N"``, ``"timeout after Xs"``,
    ``"not found: ..."``, ``"cannot run: ..."``.
    """

    ok: bool
    rc: int | None
    reason: str
    duration_s: float
    output: str = ""
    timed_out: bool = False


def takeover_allowed(result: FenceResult, policy: FenceFailurePolicy | str) -> tuple[bool, str]:
    """Map a fence result and the ``fence_failure`` policy to a takeover verdict ``(allow, reason)``.

    A successful hook always allows the takeover.  A failed one allows it only
    under ``proceed`` (the reason then starts with ``"fence failed"`` so the
    runtime logs a warning); under ``stay-backup`` the node stays BACKUP.
    """
    policy = FenceFailurePolicy(policy)
    if result.ok:
        return True, "fence ok"
    if policy is FenceFailurePolicy.PROCEED:
        return True, f"fence failed ({result.reason}); proceeding (fence_failure=proceed)"
    return False, f"fence failed ({result.reason}); staying BACKUP (fence_failure=stay-backup)"


def _argv(script: str | Sequence[str], name: str, epoch: int, old_master: object) -> list[str]:
    base = shlex.split(script) if isinstance(script, str) else list(script)
    if not base:
        raise ValueError("fence script is empty")
    old = "" if old_master is None else str(old_master)
    return [*base, "INSTANCE", name, str(epoch), old]


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (it was started with a new session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    except PermissionError as exc:  # cannot happen for our own child; log, never hide
        _log.warning("fence_kill_failed", pid=pid, error=str(exc))


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)
    except TimeoutError:
        _log.warning("fence_reap_timeout", pid=proc.pid)


def _read_tail(fh: IO[bytes]) -> str:
    try:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - OUTPUT_TAIL_BYTES))
        return fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<output unreadable: {exc}>"


async def run_fence(
    script: str | Sequence[str],
    *,
    name: str,
    epoch: int,
    old_master: object = None,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> FenceResult:
    """Run the fence hook once (see the module docstring for the full contract).

    Args:
        script: a command line (split with :mod:`shlex`) or an argv list.
        name: VRRP instance name (argv and ``PYVRRP_INSTANCE``).
        epoch: the epoch the new MASTER term will carry (``PYVRRP_EPOCH``).
        old_master: the silent master's IP address, if known (``""``/None = unknown).
        timeout_s: budget; the process group is SIGKILLed when it is exceeded.
        env: extra environment variables (override the defaults).

    Returns:
        A :class:`FenceResult`; ``ok`` only for exit status 0 within the budget.

    Raises:
        asyncio.CancelledError: the caller cancelled (the process group is killed first).
        ValueError: ``script`` is empty or ``timeout_s`` is not positive.
    """
    if timeout_s <= 0:
        raise ValueError(f"fence timeout must be > 0, got {timeout_s!r}")
    argv = _argv(script, name, epoch, old_master)
    full_env = dict(os.environ)
    full_env.update(
        {
            "PYVRRP_ACTION": "fence",
            "PYVRRP_INSTANCE": name,
            "PYVRRP_EPOCH": str(epoch),
            "PYVRRP_OLD_MASTER": "" if old_master is None else str(old_master),
        }
    )
    if env:
        full_env.update(env)
    started = monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            return FenceResult(False, None, f"not found: {argv[0]} ({exc.strerror})", monotonic() - started)
        except PermissionError as exc:
            return FenceResult(False, None, f"cannot run: {argv[0]} ({exc.strerror})", monotonic() - started)
        except OSError as exc:
            return FenceResult(False, None, f"cannot run: {argv[0]} ({exc})", monotonic() - started)
        _log.info("fence_started", instance=name, epoch=epoch, pid=proc.pid, argv=argv)
        try:
            rc = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await _reap(proc)
            duration = monotonic() - started
            result = FenceResult(
                False, None, f"timeout after {timeout_s:g}s", duration, _read_tail(out), timed_out=True
            )
            _log.warning("fence_timeout", instance=name, epoch=epoch, duration_s=round(duration, 3))
            return result
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            # Shield the reap so a second cancellation cannot leave a zombie behind.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(_reap(proc))
            _log.info("fence_cancelled", instance=name, epoch=epoch, pid=proc.pid)
            raise
        # The hook itself exited; helpers it left in its group must not outlive it.
        _kill_group(proc.pid)
        duration = monotonic() - started
        output = _read_tail(out)
    if rc == 0:
        reason = "ok"
    elif rc < 0:
        reason = f"killed by signal {-rc}"
    else:
        reason = f"exit status {rc}"
    result = FenceResult(rc == 0, rc, reason, duration, output)
    _log.info(
        "fence_finished",
        instance=name,
        epoch=epoch,
        ok=result.ok,
        reason=reason,
        duration_s=round(duration, 3),
    )
    return result
