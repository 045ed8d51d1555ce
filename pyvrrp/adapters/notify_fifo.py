"""keepalived's notify FIFOs: one line per event, in event order, never blocking the daemon.

Theory: notify scripts are separate processes and may finish in any order; a FIFO is
one ordered stream.  keepalived 2.2 (core/notify.c, vrrp/vrrp_notify.c,
check/ipwrapper.c) writes these lines, and so does pyvrrp, byte for byte::

    INSTANCE "VI_1" MASTER 100        # effective priority; also BACKUP, FAULT, STOP
    INSTANCE "VI_1" MASTER_PRIORITY 90  # vrrp_notify_priority_changes (or BACKUP_PRIORITY)
    GROUP "G1" BACKUP 0               # sync groups always report 0
    VS [10.0.0.1]:tcp:80 UP           # quorum of a virtual server (FWM 5 / [group]:0 forms too)
    RS [192.168.1.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN

``notify_fifo`` gets every line, ``vrrp_notify_fifo`` the INSTANCE/GROUP ones,
``lvs_notify_fifo`` the VS/RS ones.

Opening, as keepalived does: the FIFO is created (mode 0644) if it does not exist, the
``*_fifo_script`` is started with the FIFO path appended to its words, and the FIFO is
opened ``O_RDWR | O_NONBLOCK | O_NOFOLLOW``.  Holding a read end ourselves means a write
never fails for want of a reader (no ENXIO, no SIGPIPE when the reader restarts): lines
wait in the kernel's pipe buffer (64 KiB, some 2000 lines) and a reader that attaches or
re-attaches later reads them in order.  When the buffer is full (no reader, or a reader
that stopped reading), ``write`` fails with EAGAIN and the line is dropped, counted
and logged (first drop, then at most once every :data:`DROP_LOG_INTERVAL_S`); it never
blocks.  A line is far below PIPE_BUF (4096), so the kernel writes it whole or not at
all: a reader never sees half a line.  An existing path that is not a FIFO we own is
refused (keepalived: "is not a fifo we own").

At close our script gets up to :data:`DRAIN_S` to read what is left (the STOP lines),
then the FIFO is unlinked if we created it (so a reader that loops reopening it cannot
reopen ours) and closed: the script reads EOF.  If it has not exited a grace period
later its process group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import os
import pwd
import shlex
import signal
import stat
import sys
import termios
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import structlog

from pyvrrp.base.clock import monotonic

_log = structlog.get_logger("pyvrrp.adapters.notify_fifo")

DROP_LOG_INTERVAL_S = 10.0
SCRIPT_KILL_GRACE_S = 0.5
DRAIN_S = 0.5  # at close, time our script gets to read the last lines
FIFO_MODE = 0o644  # keepalived: S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH


# ----------------------------------------------------------------------------- lines


def instance_line(name: str, state: str, priority: int) -> str:
    """``INSTANCE "NAME" STATE PRIO`` (keepalived vrrp_notify.c ``notify_fifo``)."""
    return f'INSTANCE "{name}" {state} {priority}\n'


def group_line(name: str, state: str) -> str:
    """``GROUP "NAME" STATE 0``: keepalived reports priority 0 for sync groups."""
    return f'GROUP "{name}" {state} 0\n'


def trio(ip: str, protocol: str, port: int) -> str:
    """keepalived's ``inet_sockaddrtotrio``: ``[ADDR]:tcp:PORT`` (IPv6 too, in brackets)."""
    return f"[{ip_address(ip).compressed}]:{protocol.lower()}:{port}"


def vs_line(vs: str, up: bool) -> str:
    """``VS <vs> UP|DOWN``; ``vs`` is :func:`trio`, ``FWM N`` or ``[GROUP]:PORT``."""
    return f"VS {vs} {'UP' if up else 'DOWN'}\n"


def rs_line(rs: str, vs: str, up: bool) -> str:
    """``RS <rs trio> <vs> UP|DOWN``."""
    return f"RS {rs} {vs} {'UP' if up else 'DOWN'}\n"


# ----------------------------------------------------------------------------- one FIFO


@dataclass
class FifoStats:
    written: int = 0
    dropped: int = 0  # pipe buffer full: nobody reads
    errors: int = 0  # any other write error


class NotifyFifo:
    """One FIFO: created and opened by :meth:`open`, written by :meth:`write`, never blocking."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "",
        script: str | None = None,
        user: str | None = None,
        group: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.kind = kind  # "", "vrrp_" or "lvs_": names the keyword in logs
        self.script = script
        self.user = user
        self.group = group
        self.fd: int | None = None
        self.created = False
        self.stats = FifoStats()
        self._proc: asyncio.subprocess.Process | None = None
        self._last_drop_log: float | None = None
        self._drops_unlogged = 0
        self._log = _log.bind(fifo=str(self.path), keyword=f"{kind}notify_fifo")

    @property
    def is_open(self) -> bool:
        return self.fd is not None

    def _owner(self) -> tuple[int, int]:
        uid = pwd.getpwnam(self.user).pw_uid if self.user else -1
        if self.group:
            gid = grp.getgrnam(self.group).gr_gid
        elif self.user:
            gid = pwd.getpwnam(self.user).pw_gid
        else:
            gid = -1
        return uid, gid

    def _create(self) -> bool:
        """``mkfifo`` unless the path exists; False (logged) when it cannot be created."""
        try:
            os.mkfifo(self.path, FIFO_MODE)
            self.created = True
        except FileExistsError:
            pass
        except OSError as exc:
            self._log.error("notify_fifo_create_failed", error=exc.strerror or str(exc))
            return False
        return True

    def open_fifo(self) -> bool:
        """Create the FIFO if absent and open it for writing; False (logged) if it cannot be used."""
        if not self._create():
            return False
        if self.created and (self.user or self.group):
            try:
                uid, gid = self._owner()
                os.chown(self.path, uid, gid)
            except (KeyError, OSError) as exc:
                self._log.warning(
                    "notify_fifo_chown_failed", user=self.user, group=self.group, error=str(exc)
                )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            self._log.error("notify_fifo_open_failed", error=exc.strerror or str(exc), errno=exc.errno)
            self._unlink()
            return False
        st = os.fstat(fd)
        allowed = {os.geteuid()}
        with contextlib.suppress(KeyError):
            allowed.add(self._owner()[0])
        if not stat.S_ISFIFO(st.st_mode) or st.st_uid not in allowed:
            os.close(fd)
            self._log.error(
                "notify_fifo_refused",
                reason="not a FIFO we own" if stat.S_ISFIFO(st.st_mode) else "not a FIFO",
                note="remove it or name another path",
            )
            return False
        self.fd = fd
        self._log.info("notify_fifo_open", created=self.created)
        return True

    async def start_script(self) -> bool:
        """Start ``script`` with the FIFO path appended (before :meth:`open_fifo`, as keepalived)."""
        if not self.script:
            return False
        try:
            argv = [*shlex.split(self.script), str(self.path)]
        except ValueError as exc:
            self._log.error("notify_fifo_script_invalid", script=self.script, error=str(exc))
            return False
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # its own process group: close() stops its children too
            )
        except OSError as exc:
            self._log.error("notify_fifo_script_not_runnable", argv=argv, error=exc.strerror or str(exc))
            return False
        self._log.info("notify_fifo_script_started", argv=argv, pid=self._proc.pid)
        return True

    async def open(self) -> bool:
        """:meth:`start_script`, then :meth:`open_fifo` (the script's own open waits for ours)."""
        # with a script, create the FIFO first so that the script finds a FIFO, not a missing file
        if self.script and not self.path.exists() and not self._create():
            return False
        await self.start_script()
        return self.open_fifo()

    def write(self, line: str) -> bool:
        """Write one line now; never blocks.  False if it was dropped (buffer full) or failed."""
        if self.fd is None:
            return False
        data = line.encode("utf-8", "replace")
        try:
            os.write(self.fd, data)
        except BlockingIOError:
            self.stats.dropped += 1
            self._drops_unlogged += 1
            now = monotonic()
            if self._last_drop_log is None or now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
                self._log.warning(
                    "notify_fifo_full",
                    dropped=self._drops_unlogged,
                    dropped_total=self.stats.dropped,
                    line=line.rstrip("\n"),
                    note="no reader, or the reader stopped reading; lines are dropped, never waited for",
                )
                self._last_drop_log, self._drops_unlogged = now, 0
            return False
        except OSError as exc:
            self.stats.errors += 1
            self._log.error("notify_fifo_write_failed", error=exc.strerror or str(exc), errno=exc.errno)
            return False
        self.stats.written += 1
        return True

    def _unlink(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.created = False

    def unread(self) -> int:
        """Bytes written and not read yet (FIONREAD on our own read end)."""
        if self.fd is None:
            return 0
        try:
            buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(buf, sys.byteorder)

    async def close(self, grace_s: float = SCRIPT_KILL_GRACE_S, drain_s: float = DRAIN_S) -> None:
        """Let our script read what is left (up to ``drain_s``: the STOP lines), unlink (if
        ours), close, then stop the script: it gets EOF and ``grace_s`` to exit by itself,
        then SIGTERM, then SIGKILL after another ``grace_s``."""
        proc, self._proc = self._proc, None
        running = proc is not None and proc.returncode is None
        if running:
            end = monotonic() + drain_s
            while self.unread() and monotonic() < end:
                await asyncio.sleep(0.01)
        self._unlink()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if proc is None or not running:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace_s)
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            except OSError as exc:
                if exc.errno != errno.EPERM:
                    raise
                break
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
                break
            except TimeoutError:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that ignored SIGTERM


# ----------------------------------------------------------------------------- the set


class NotifyFifos:
    """The daemon's FIFOs: ``notify_fifo`` (all lines), ``vrrp_notify_fifo``, ``lvs_notify_fifo``."""

    def __init__(
        self,
        *,
        common: NotifyFifo | None = None,
        vrrp: NotifyFifo | None = None,
        lvs: NotifyFifo | None = None,
        priority_changes: bool = False,
    ) -> None:
        self.common = common
        self.vrrp_fifo = vrrp
        self.lvs_fifo = lvs
        self.priority_changes = priority_changes

    def all(self) -> list[NotifyFifo]:
        return [f for f in (self.common, self.vrrp_fifo, self.lvs_fifo) if f is not None]

    @property
    def wants_vrrp(self) -> bool:
        return self.common is not None or self.vrrp_fifo is not None

    @property
    def wants_lvs(self) -> bool:
        return self.common is not None or self.lvs_fifo is not None

    async def open(self) -> None:
        for fifo in self.all():
            await fifo.open()

    @staticmethod
    def _write(fifos: Iterable[NotifyFifo | None], line: str) -> None:
        for fifo in fifos:
            if fifo is not None:
                fifo.write(line)

    def vrrp(self, line: str) -> None:
        """An INSTANCE/GROUP line: to ``notify_fifo`` then ``vrrp_notify_fifo`` (keepalived's order)."""
        self._write((self.common, self.vrrp_fifo), line)

    def lvs(self, line: str) -> None:
        """A VS/RS line: to ``notify_fifo`` then ``lvs_notify_fifo``."""
        self._write((self.common, self.lvs_fifo), line)

    def instance(self, name: str, state: str, priority: int) -> None:
        self.vrrp(instance_line(name, state, priority))

    def group(self, name: str, state: str) -> None:
        self.vrrp(group_line(name, state))

    def priority_changed(self, name: str, master: bool, priority: int) -> None:
        """``MASTER_PRIORITY`` / ``BACKUP_PRIORITY`` line (the caller checks
        ``vrrp_notify_priority_changes`` / the instance's ``notify_priority_changes``)."""
        self.instance(name, "MASTER_PRIORITY" if master else "BACKUP_PRIORITY", priority)

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            str(f.path): {"written": f.stats.written, "dropped": f.stats.dropped, "errors": f.stats.errors}
            for f in self.all()
        }

    async def close(self) -> None:
        for fifo in self.all():
            await fifo.close()
