"""``pyvrrp exabgp-process``: the API process ExaBGP runs, following the pyvrrp daemon.

ExaBGP (4.2) starts it from its config::

    process pyvrrp {
        run /usr/bin/pyvrrp exabgp-process --socket /run/pyvrrp/pyvrrp.sock;
        encoder json;
    }
    neighbor 192.0.2.1 { ...; api { processes [ pyvrrp ]; neighbor-changes; } }

Theory of operation
-------------------
Two streams: ExaBGP <-> this process over stdin/stdout (ExaBGP's text API: we write
``announce route P next-hop self med N`` / ``withdraw route P``; ExaBGP answers each with a
``done`` or ``error`` line and, with ``neighbor-changes``, JSON ``state`` messages), and this
process <-> the daemon over the control socket (``bgp_follow``, a long poll: see
:mod:`pyvrrp.bgp.speaker`).

- The daemon's reply is the whole wanted table; the process writes only the difference.
- Every command's ack is counted; ``applied`` (reported back) is the newest generation whose
  commands were all acknowledged ``done``.
- **Losing the daemon** (kill -9, crash, hung: no reply within ``wait`` + 4 s): ExaBGP would
  keep our routes forever, so the process withdraws them itself, each after its
  ``orphan_hold_s`` (0 for active-active; for active-backup the time the VRRP backup needs
  to take the VIP, so the router never prefers a node that does not hold it).  It keeps
  trying to reconnect; a new daemon's first reply replaces everything.
- **ExaBGP not answering** (stopped, hung: its API process lives on and keeps polling): every
  :data:`PING_S` the process writes ``# pyvrrp ping`` (ExaBGP's comment command, answered
  ``done`` like any other); a ping unanswered for :data:`ANSWER_TIMEOUT_S` is reported as
  ``"answering": false`` in the session, and the daemon counts the speaker as lost until a
  ``done`` comes back.
- **ExaBGP going away** closes stdin: the process exits (ExaBGP's own shutdown withdrew the
  routes with the session).
- Written so that ExaBGP's respawn of the process is harmless: the first table after
  (re)connecting withdraws every prefix the daemon lists as not announced.

It never imports the daemon: the control protocol is a few JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from typing import Any, TextIO

__all__ = ["ExabgpProcess", "main"]

RECONNECT_S = 0.2
WAIT_S = 1.0
REPLY_GRACE_S = 4.0
PING_S = 1.0
ANSWER_TIMEOUT_S = 2.0
"""A ping (or command) unanswered for this long: ExaBGP is not answering (stopped or hung)."""
PING = "# pyvrrp ping"


def _log(msg: str, **kw: Any) -> None:
    """ExaBGP copies its processes' stderr into its own log."""
    extra = " ".join(f"{k}={v}" for k, v in kw.items())
    print(f"pyvrrp-exabgp: {msg} {extra}".rstrip(), file=sys.stderr, flush=True)


def announce_command(route: dict[str, Any]) -> str:
    cmd = f"announce route {route['prefix']} next-hop {route.get('next_hop', 'self')}"
    if route.get("med") is not None:
        cmd += f" med {int(route['med'])}"
    if route.get("as_path"):
        cmd += " as-path [ " + " ".join(str(int(a)) for a in route["as_path"]) + " ]"
    return cmd


def withdraw_command(prefix: str) -> str:
    return f"withdraw route {prefix}"


class ExabgpProcess:
    """The state machine of the process; I/O is the two stream coroutines in :meth:`run`."""

    def __init__(self, socket_path: str, out: TextIO | None = None) -> None:
        self.socket_path = socket_path
        self.out = out if out is not None else sys.stdout
        self.announced: dict[str, str] = {}  # prefix -> the announce command ExaBGP holds
        self.holds: dict[str, float] = {}  # prefix -> orphan hold of its last route
        self.generation = -1
        self.applied = -1
        self.pending: deque[int] = deque()  # generation of each command awaiting its ack
        self.errors = 0
        self.peers: dict[str, str] = {}
        self.connected = False
        self._orphan_timers: dict[str, asyncio.TimerHandle] = {}
        self._acks: set[asyncio.Task[None]] = set()
        self.oldest_unanswered: float | None = None  # when the oldest command awaiting its ack went out
        self.last_answer: float | None = None
        self.answering = True
        self._clock = time.monotonic

    # ------------------------------------------------------------------ ExaBGP side

    def _send(self, command: str, generation: int | None) -> None:
        """Write one command; ``generation`` None is a ping (its ack acknowledges no route)."""
        self.out.write(command + "\n")
        self.out.flush()
        if not self.pending:
            self.oldest_unanswered = self._clock()
        self.pending.append(generation)  # type: ignore[arg-type]

    def ping(self) -> None:
        """Every PING_S: a comment ExaBGP acks; check the oldest command is not left unanswered."""
        now = self._clock()
        if self.pending and self.oldest_unanswered is not None:
            if now - self.oldest_unanswered > ANSWER_TIMEOUT_S and self.answering:
                self.answering = False
                _log("exabgp is not answering", unanswered_s=round(now - self.oldest_unanswered, 1))
            return  # one outstanding ping is enough
        self._send(PING, None)

    def on_exabgp_line(self, line: str) -> None:
        """One line from ExaBGP: an ack, or a JSON message (neighbour state)."""
        line = line.strip()
        if line in ("done", "error"):
            gen = self.pending.popleft() if self.pending else self.generation
            self.last_answer = self._clock()
            self.oldest_unanswered = self.last_answer if self.pending else None
            if not self.answering:
                self.answering = True
                _log("exabgp answers again")
            if line == "error":
                self.errors += 1
                _log("exabgp answered error", generation=gen)
            if not self.pending and line == "done" and self.generation > self.applied:
                self.applied = self.generation
                self._report_ack()
            return
        if not line.startswith("{"):
            return
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if msg.get("type") == "state":
            neighbor = msg.get("neighbor", {})
            peer = str(neighbor.get("address", {}).get("peer", "?"))
            state = str(neighbor.get("state", "?"))
            self.peers[peer] = state
            _log("neighbor", peer=peer, state=state)

    # ------------------------------------------------------------------ daemon side

    def _report_ack(self) -> None:
        """Tell the daemon at once (the long poll is busy): it waits for this at SIGTERM."""
        if not self.connected:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send_ack(self.applied))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _send_ack(self, applied: int) -> None:
        await self._send_once({"v": 1, "op": "bgp_ack", "applied": applied})

    async def _send_once(self, message: dict[str, Any]) -> None:
        """One request on a connection of its own (the long poll holds the other)."""
        with contextlib.suppress(OSError, TimeoutError, ValueError):
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.socket_path), 1.0)
            try:
                writer.write(json.dumps(message).encode() + b"\n")
                await writer.drain()
                await asyncio.wait_for(reader.readline(), 1.0)
            finally:
                writer.close()

    def apply(self, result: dict[str, Any]) -> None:
        """The daemon's wanted table: write the difference to ExaBGP."""
        generation = int(result["generation"])
        first = not self.connected  # a (new) daemon: withdraw whatever it does not announce
        self.connected = True
        for timer in self._orphan_timers.values():
            timer.cancel()
        self._orphan_timers.clear()
        if generation == self.generation:
            return
        self.generation = generation
        before = len(self.pending)
        for route in result.get("routes", []):
            prefix = str(route["prefix"])
            if route.get("announce"):
                cmd = announce_command(route)
                self.holds[prefix] = float(route.get("orphan_hold_s", 0.0))
                if self.announced.get(prefix) != cmd:
                    self._send(cmd, generation)
                    self.announced[prefix] = cmd
            elif prefix in self.announced or first:
                self._send(withdraw_command(prefix), generation)
                self.announced.pop(prefix, None)
        wanted = {str(r["prefix"]) for r in result.get("routes", []) if r.get("announce")}
        for prefix in [p for p in self.announced if p not in wanted]:  # left the config
            self._send(withdraw_command(prefix), generation)
            del self.announced[prefix]
        if len(self.pending) == before and not self.pending:
            self.applied = generation  # nothing to say: ExaBGP already holds exactly this

    def orphaned(self, loop: asyncio.AbstractEventLoop) -> None:
        """The daemon is gone: withdraw each route after its orphan hold."""
        if not self.connected:
            return
        self.connected = False
        self.generation = -1
        _log("lost the pyvrrp daemon", announced=len(self.announced))
        for prefix in list(self.announced):
            hold = self.holds.get(prefix, 0.0)
            if hold <= 0:
                self._withdraw_orphan(prefix)
            else:
                _log("keeping route while the VRRP backup takes over", prefix=prefix, hold_s=hold)
                self._orphan_timers[prefix] = loop.call_later(hold, self._withdraw_orphan, prefix)

    def _withdraw_orphan(self, prefix: str) -> None:
        self._orphan_timers.pop(prefix, None)
        if prefix in self.announced and not self.connected:
            self._send(withdraw_command(prefix), self.generation)
            del self.announced[prefix]
            _log("withdrawn: no pyvrrp daemon", prefix=prefix)

    def request(self) -> dict[str, Any]:
        return {
            "v": 1,
            "op": "bgp_follow",
            "generation": self.generation if self.connected else -1,
            "applied": self.applied,
            "wait": WAIT_S,
            "session": {
                "pid": os.getpid(),
                "peers": dict(self.peers),
                "errors": self.errors,
                "answering": self.answering,
            },
        }

    # ------------------------------------------------------------------ I/O

    async def follow(self) -> None:
        """Follow the daemon for as long as the process lives."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except OSError:
                self.orphaned(loop)
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                while True:
                    writer.write(json.dumps(self.request()).encode() + b"\n")
                    await writer.drain()
                    line = await asyncio.wait_for(reader.readline(), WAIT_S + REPLY_GRACE_S)
                    if not line:
                        raise ConnectionError("the daemon closed the connection")
                    reply = json.loads(line)
                    if not reply.get("ok"):
                        raise ConnectionError(f"daemon error: {reply.get('error')}")
                    self.apply(reply["result"])
            except (OSError, TimeoutError, ValueError, KeyError) as exc:
                _log("control connection ended", error=str(exc) or type(exc).__name__)
                self.orphaned(loop)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(RECONNECT_S)

    async def read_exabgp(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return  # ExaBGP is gone
            self.on_exabgp_line(line.decode(errors="replace"))

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_S)
            with contextlib.suppress(OSError, ValueError):
                self.ping()

    async def run(self) -> int:
        follow = asyncio.ensure_future(self.follow())
        pinger = asyncio.ensure_future(self.pinger())
        try:
            await self.read_exabgp()
        finally:
            for task in (follow, pinger):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # tell the daemon now rather than by silence (LOST_AFTER_S): on_speaker_lost acts at once
        await self._send_once({"v": 1, "op": "bgp_gone", "pid": os.getpid()})
        _log("exabgp closed our stdin; exiting")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyvrrp exabgp-process", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", default="/run/pyvrrp/pyvrrp.sock", help="the daemon's control socket")
    args = parser.parse_args(argv)
    started = time.monotonic()
    _log("started", socket=args.socket, pid=os.getpid())
    try:
        return asyncio.run(ExabgpProcess(args.socket).run())
    except KeyboardInterrupt:
        return 0
    finally:
        _log("stopped", after_s=round(time.monotonic() - started, 1))


if __name__ == "__main__":
    raise SystemExit(main())
