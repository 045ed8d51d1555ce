"""The lab's HTTP client probe: GETs to an address, one JSON line per attempt.

Every client view of a failover (``pyvrrp lab demo``, the benchmarks, the split-brain
matrix, the UML tests, ``Lab.http_get``) is this one loop, run inside the client
namespace: open a new TCP connection to HOST:PORT, send an HTTP/1.0 GET, read to EOF and
record when it started and ended, whether it was served and by whom (the lab's
responders answer with their name: ``lb1``, ``rs2 192.168.233.110``).

It is stdlib-only so it runs from its file as ``python -I .../probe.py`` (what
:func:`command` builds: isolated mode, so neither the caller's PYTHONPATH nor a venv's
installed copy of pyvrrp decides what runs), and equally as ``python -m
pyvrrp.lab.probe HOST [options]``.

Output, one JSON object per attempt and line (flushed, so a reader sees it at once)::

    {"t0": 1764687600.125, "t1": 1764687600.127, "ok": true, "status": 200,
     "body": "lb1", "err": ""}

* ``t0``/``t1``: wall clock (``time.time()``, the clock tcpdump stamps frames with) just
  before the connect and after the reply was read or the attempt failed;
* ``ok``: a ``200`` status line and a non-empty body; ``status``: the status code, or
  null when no status line came; ``body``: the body, whitespace-stripped;
* ``err``: ``""`` when ok, else ``"<ExceptionName>: <text>"`` (``ConnectionRefusedError:
  [Errno 111] Connection refused``), ``"HTTP 503"``, ``"empty body"`` or ``"no HTTP status
  line: '<first bytes>'"``;
* ``mac`` (with ``--arp`` only): the client's ARP entry for HOST at ``t0`` (``""`` if none).

Attempts start every ``--interval`` seconds on a fixed schedule; one that takes longer
delays the next, none are bunched to catch up.  The connect times out after
``--timeout`` seconds and reading the reply after max(``--timeout``, 50 ms).  The probe
stops after ``--count`` attempts or ``--duration`` seconds (whichever first; neither =
until SIGTERM, which lets the attempt in flight finish and be written).

:func:`parse` / :func:`read` turn the lines back into :class:`Reply` records (a line cut
short by SIGTERM is skipped) and the functions below them are the figures callers take
from a log: the first and last reply from a responder, the longest gap between served
replies, requests and failures in a window.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import signal
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

READ_TIMEOUT_FLOOR_S = 0.05  # a short connect timeout must not cut the reply of a slow responder
BODY_MAX = 512  # the lab's bodies are a name and an address; a larger one is cut in the log


@dataclass(frozen=True, slots=True)
class Reply:
    """One attempt of the probe (wall-clock seconds), as written in its log."""

    t0: float
    t1: float
    ok: bool
    status: int | None = None
    body: str = ""
    err: str = ""
    mac: str = ""

    @property
    def who(self) -> str:
        """The responder's name: the body's first word (``""`` when there is none)."""
        words = self.body.split()
        return words[0] if words else ""

    @property
    def answer(self) -> str:
        """``who`` when served, else ``ERR:`` and what went wrong, short:
        ``ERR:ConnectionRefusedError``, ``ERR:HTTP 503``, ``ERR:empty body``."""
        if self.ok:
            return self.who
        return "ERR:" + (self.err.partition(":")[0] or "not served")


# --------------------------------------------------------------------------- one attempt


def parse_response(data: bytes) -> tuple[int | None, str]:
    """``(status, body)`` of a raw HTTP/1.x response (status None without a status line)."""
    head, _, body = data.partition(b"\r\n\r\n")
    words = head.split(b"\r\n", 1)[0].split()
    status = None
    if len(words) >= 2 and words[0].startswith(b"HTTP/1.") and words[1].isdigit():
        status = int(words[1])
    return status, body.decode(errors="replace").strip()[:BODY_MAX]


def attempt(host: str, port: int, timeout_s: float, path: str = "/") -> Reply:
    """One GET over a new TCP connection; never raises for network errors."""
    t0 = time.time()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.settimeout(max(timeout_s, READ_TIMEOUT_FLOOR_S))
            authority = f"[{host}]" if ":" in host else host  # RFC 3986 §3.2.2
            conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n".encode())
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError as exc:
        return Reply(t0, time.time(), False, err=f"{type(exc).__name__}: {exc}")
    data = b"".join(chunks)
    status, body = parse_response(data)
    ok = status == 200 and bool(body)
    if ok:
        err = ""
    elif status == 200:
        err = "empty body"
    elif status is not None:
        err = f"HTTP {status}"
    else:
        err = f"no HTTP status line: {data[:40].decode(errors='replace')!r}"
    return Reply(t0, time.time(), ok, status, body, err)


def arp_entry(host: str, table: str) -> str:
    """The MAC for ``host`` in a ``/proc/net/arp`` text (``""`` when absent or incomplete)."""
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == host and fields[2] != "0x0":
            return fields[3]
    return ""


def _arp_now(host: str) -> str:
    try:
        return arp_entry(host, Path("/proc/net/arp").read_text())
    except OSError:
        return ""


def to_line(reply: Reply) -> str:
    """The log line of ``reply`` (see the module docstring), without the newline."""
    rec: dict[str, object] = {
        "t0": reply.t0,
        "t1": reply.t1,
        "ok": reply.ok,
        "status": reply.status,
        "body": reply.body,
        "err": reply.err,
    }
    if reply.mac:
        rec["mac"] = reply.mac
    return json.dumps(rec)


# --------------------------------------------------------------------------- the loop


def command(
    host: str,
    *,
    port: int = 80,
    interval_s: float = 0.0,
    timeout_s: float = 1.0,
    count: int | None = None,
    duration_s: float | None = None,
    out: Path | str | None = None,
    arp: bool = False,
    path: str = "/",
    python: str = sys.executable,
) -> list[str]:
    """The argv that runs the probe from this file (prefix it with ``ip netns exec NS``)."""
    argv = [python, "-I", str(Path(__file__).resolve()), host, "--port", str(port)]
    argv += ["--interval", repr(interval_s), "--timeout", repr(timeout_s), "--path", path]
    if count is not None:
        argv += ["--count", str(count)]
    if duration_s is not None:
        argv += ["--duration", repr(duration_s)]
    if out is not None:
        argv += ["--out", str(out)]
    if arp:
        argv.append("--arp")
    return argv


def next_start(scheduled: float, interval_s: float, ended: float) -> float:
    """When the attempt after one scheduled at ``scheduled`` that ended at ``ended`` starts."""
    return max(scheduled + interval_s, ended)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pyvrrp.lab.probe",
        description="HTTP/1.0 GETs to HOST:PORT, one JSON line per attempt (see the module docstring).",
    )
    ap.add_argument("host", help="address to connect to (IPv4 or IPv6, e.g. the VIP)")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", default="/")
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between attempt starts")
    ap.add_argument("--timeout", type=float, default=1.0, help="connect timeout, seconds")
    ap.add_argument("--count", type=int, default=None, help="stop after this many attempts")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--out", default=None, help="write the lines here instead of stdout")
    ap.add_argument("--arp", action="store_true", help="record the ARP entry for HOST before each attempt")
    args = ap.parse_args(argv)
    if args.interval < 0 or args.timeout <= 0:
        ap.error("--interval must be >= 0 and --timeout > 0")

    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        log = open(args.out, "w", buffering=1) if args.out else sys.stdout  # noqa: SIM115
    except OSError as exc:
        print(f"probe: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    end = math.inf if args.duration is None else time.monotonic() + args.duration
    done, scheduled = 0, time.time()
    while running and (args.count is None or done < args.count) and time.monotonic() < end:
        mac = _arp_now(args.host) if args.arp else ""
        reply = attempt(args.host, args.port, args.timeout, args.path)
        if mac:
            reply = replace(reply, mac=mac)
        log.write(to_line(reply) + "\n")
        log.flush()
        done += 1
        scheduled = next_start(scheduled, args.interval, reply.t1)
        time.sleep(max(0.0, scheduled - time.time()))
    if log is not sys.stdout:
        log.close()
    return 0


# --------------------------------------------------------------------------- reading a log


def parse_line(line: str) -> Reply | None:
    """A log line as a :class:`Reply`; None for a line that is cut short or not the probe's."""
    try:
        rec = json.loads(line)
        return Reply(
            t0=float(rec["t0"]),
            t1=float(rec["t1"]),
            ok=bool(rec["ok"]),
            status=None if rec.get("status") is None else int(rec["status"]),
            body=str(rec.get("body", "")),
            err=str(rec.get("err", "")),
            mac=str(rec.get("mac", "")),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def parse(text: str) -> list[Reply]:
    """Every readable line of a probe log, in order."""
    return [r for r in map(parse_line, text.splitlines()) if r is not None]


def read(path: Path) -> list[Reply]:
    """The probe log at ``path`` (empty while the probe has not written it yet)."""
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return []


def answers(replies: Iterable[Reply]) -> list[str]:
    """Each attempt's :attr:`Reply.answer`: ``["rs1", "rs2", "ERR:ConnectionRefusedError"]``."""
    return [r.answer for r in replies]


def served(replies: Iterable[Reply], who: str | None = None) -> list[Reply]:
    """The served replies (by ``who`` only, when given), in order."""
    return [r for r in replies if r.ok and (who is None or r.who == who)]


def first_reply(replies: Iterable[Reply], who: str, after: float, before: float = math.inf) -> Reply | None:
    """The first reply served by ``who`` that completed (``t1``) within [after, before]."""
    return next((r for r in served(replies, who) if after <= r.t1 <= before), None)


def last_reply(replies: Sequence[Reply], who: str, before: float = math.inf) -> Reply | None:
    """The last reply served by ``who`` that completed (``t1``) at or before ``before``."""
    return next((r for r in reversed(served(replies, who)) if r.t1 <= before), None)


def longest_gap(replies: Iterable[Reply], since: float = -math.inf, until: float = math.inf) -> float | None:
    """The longest time between two consecutive served replies' completions within
    [since, until] (the client's outage); None with fewer than two of them."""
    ends = sorted(r.t1 for r in replies if r.ok and since <= r.t1 <= until)
    if len(ends) < 2:
        return None
    return max(b - a for a, b in itertools.pairwise(ends))


@dataclass(frozen=True, slots=True)
class Tally:
    """Attempts started within a window, and how many of them were not served."""

    requests: int
    failed: int


def tally(replies: Iterable[Reply], since: float = -math.inf, until: float = math.inf) -> Tally:
    """Attempts that started (``t0``) within [since, until], and the failed ones among them."""
    window = [r for r in replies if since <= r.t0 <= until]
    return Tally(len(window), sum(not r.ok for r in window))


if __name__ == "__main__":
    sys.exit(main())
