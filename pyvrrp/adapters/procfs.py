"""Reading processes from ``/proc`` for ``vrrp_track_process`` (scan, one pid, hidepid).

* :func:`scan` lists every process (``/proc/[0-9]*``) with its name and state from
  ``/proc/PID/stat`` and, only when a tracked process needs it, its command line from
  ``/proc/PID/cmdline`` (reading it touches the process's memory; keepalived avoids it
  too).  Threads are not listed (``/proc`` shows thread-group leaders only).
* :func:`read_process` reads one pid after an exec or a name change.
* :func:`hidepid` reads the ``hidepid=`` option of the ``/proc`` mount (proc(5)): with
  it, a process that is not root sees only its own processes (``hidepid=2``/``invisible``)
  or cannot read the others' files (``1``/``noaccess``).  :class:`ScanResult` counts the
  processes that could not be read, so the daemon can say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyvrrp.health.process import ProcessInfo

__all__ = ["ScanResult", "hidepid", "parse_cmdline", "parse_stat", "read_process", "scan"]

PROC = Path("/proc")


def parse_stat(text: str) -> tuple[str, bool] | None:
    """``(comm, zombie)`` from ``/proc/PID/stat``: ``PID (COMM) STATE ...``.

    COMM may itself contain ``)`` and blanks, so the *last* ``)`` ends it.
    """
    start = text.find("(")
    end = text.rfind(")")
    if start < 0 or end < start:
        return None
    state = text[end + 1 :].split(None, 1)
    return text[start + 1 : end], bool(state) and state[0] == "Z"


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    """``/proc/PID/cmdline``: NUL-separated words, with a trailing NUL."""
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    if not raw:
        return ()
    return tuple(w.decode(errors="surrogateescape") for w in raw.split(b"\0"))


@dataclass(slots=True)
class ScanResult:
    processes: list[ProcessInfo] = field(default_factory=list)
    unreadable: int = 0
    """Processes listed in /proc whose files could not be read (hidepid=1, or gone)."""


def read_process(pid: int, *, cmdline: bool, proc: Path = PROC) -> ProcessInfo | None:
    """One process, or None when it is gone or unreadable."""
    base = proc / str(pid)
    try:
        parsed = parse_stat((base / "stat").read_text(errors="surrogateescape"))
        if parsed is None:
            return None
        argv = parse_cmdline((base / "cmdline").read_bytes()) if cmdline else None
    except OSError:
        return None
    comm, zombie = parsed
    return ProcessInfo(pid, comm, argv, zombie)


def _pids(proc: Path) -> Iterator[int]:
    with os.scandir(proc) as entries:
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)


def scan(*, cmdline: bool, proc: Path = PROC) -> ScanResult:
    """Every readable process in ``proc``."""
    result = ScanResult()
    for pid in _pids(proc):
        info = read_process(pid, cmdline=cmdline, proc=proc)
        if info is None:
            if (proc / str(pid)).exists():
                result.unreadable += 1
            continue
        result.processes.append(info)
    return result


def hidepid(mountinfo: str | None = None) -> str | None:
    """The ``hidepid`` value of the ``/proc`` mount (``"2"``, ``"invisible"``, ...), or None.

    ``mountinfo`` is the text of ``/proc/self/mountinfo`` (read when not given).  ``0`` /
    ``off`` count as no hidepid.
    """
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    value: str | None = None
    for line in mountinfo.splitlines():  # the last /proc mount is the one on top: it is what we read
        fields = line.split()
        if len(fields) < 5 or fields[4] != "/proc":
            continue
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if fields[sep + 1 : sep + 2] != ["proc"]:
            continue
        value = None
        for opt in ",".join(fields[5:6] + fields[sep + 3 : sep + 4]).split(","):
            if opt.startswith("hidepid="):
                value = opt.split("=", 1)[1]
    return None if value in ("0", "off") else value
