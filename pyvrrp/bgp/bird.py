"""The BIRD 2 speaker: routes in a dedicated kernel table that BIRD learns, on a device that dies with us.

Theory of operation
-------------------
pyvrrp puts each announced prefix in kernel table ``kernel_table`` (default 100) as a route
``PREFIX dev pyvrrp-bgp metric MED``.  BIRD's own kernel protocol learns that table and its BGP
session exports it; the operator's BIRD config does the mapping (docs/lvs-at-scale.md)::

    protocol kernel pyvrrp_in { kernel table 100; learn; ipv4 { import all; export none; }; }
    protocol bgp upstream {
        ...;
        ipv4 {
            import none;
            export filter { if proto = "pyvrrp_in" then { bgp_med = krt_metric; accept; } reject; };
            next hop self;
        };
    }

(BIRD sends a MED over eBGP only when the export filter sets it.)

``pyvrrp-bgp`` is a tun device whose only file descriptor pyvrrp holds (not persistent): when
pyvrrp dies, however it dies, the kernel deletes the device and every route on it, BIRD sees
that at once (netlink) and withdraws.  No process of ours has to outlive the daemon.

Changes go through ``ip route`` in a background worker, in order; a MED change adds the new
route before it deletes the old one (the kernel keys IPv4 routes by prefix *and* metric).
BIRD's session state is read back with ``birdc show protocols`` every second, and with
``bfd = true`` its BFD sessions with ``birdc show bfd sessions`` (BIRD runs BFD for the BGP
session when its config says ``bfd on``; the router then drops our routes within BFD's
detection time when this node goes silent, instead of after the hold time).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from pyvrrp.bgp.speaker import Route

__all__ = ["BirdSpeaker", "parse_bfd_sessions", "parse_protocols"]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
DEVICE = "pyvrrp-bgp"
REFRESH_S = 1.0


def parse_protocols(text: str) -> dict[str, str]:
    """``birdc show protocols`` -> {BGP protocol name: "up" (Established) or its state/info}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == "BGP":
            info = " ".join(cols[5:]) if len(cols) > 5 else ""
            out[cols[0]] = "up" if info.startswith("Established") else f"{cols[3]} {info}".strip()
    return out


def parse_bfd_sessions(text: str) -> dict[str, str]:
    """``birdc show bfd sessions`` -> {neighbour address: "up" or BIRD's state, lower case}."""
    import ipaddress

    out: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 3:
            continue
        try:
            ipaddress.ip_address(cols[0])
        except ValueError:
            continue
        out[cols[0]] = cols[2].lower()
    return out


class BirdSpeaker:
    """Announces by kernel routes BIRD learns; reads BIRD's sessions with birdc."""

    name = "bird"

    def __init__(
        self,
        *,
        table: int = 100,
        socket: str = "/run/bird/bird.ctl",
        device: str = DEVICE,
        bfd: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table, self.socket, self.device = table, socket, device
        self.bfd = bfd
        self.bfd_sessions: dict[str, str] = {}
        self._clock = clock
        self._fd: int | None = None
        self.metrics: dict[str, int] = {}  # prefix -> metric (MED) of the route in the table
        self._queue: asyncio.Queue[tuple[str, str, int | None]] = asyncio.Queue()
        self._busy = 0
        self._worker: asyncio.Task[None] | None = None
        self.peers: dict[str, str] = {}
        self.last_answer: float | None = None
        self.ever_connected = False
        self.errors = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ life cycle

    async def open(self) -> None:
        """Create the tun device (held by our descriptor) and bring it up."""
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.device.encode(), IFF_TUN | IFF_NO_PI))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        await self._ip("link", "set", "dev", self.device, "up")
        self._worker = asyncio.ensure_future(self._work())

    def close(self) -> None:
        """Closing the descriptor deletes the device and its routes (BIRD withdraws)."""
        if self._worker is not None:
            self._worker.cancel()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.metrics.clear()

    # ------------------------------------------------------------------ Speaker

    def announce(self, route: Route) -> None:
        self._busy += 1
        self._queue.put_nowait(("announce", route.prefix, route.med or 0))

    def withdraw(self, prefix: str) -> None:
        self._busy += 1
        self._queue.put_nowait(("withdraw", prefix, None))

    def up_to_date(self) -> bool:
        return self._busy == 0 and self.connected()

    def answering(self) -> bool:
        return self.last_answer is not None and self._clock() - self.last_answer < 3 * REFRESH_S + 1

    def bfd_up(self) -> bool:
        return any(v == "up" for v in self.bfd_sessions.values())

    def connected(self) -> bool:
        """BIRD answers birdc (and, with ``bfd``, has a BFD session up)."""
        return self.answering() and (not self.bfd or self.bfd_up())

    def established(self) -> bool | None:
        if not self.peers:
            return None
        return any(v == "up" for v in self.peers.values())

    def session(self) -> dict[str, Any]:
        if self.connected():
            state = "connected"
        elif self.answering():
            state = "no BFD session up"
        else:
            state = "lost" if self.ever_connected else "never connected"
        age = None if self.last_answer is None else round(self._clock() - self.last_answer, 3)
        extra: dict[str, Any] = {"bfd": dict(self.bfd_sessions)} if self.bfd else {}
        return {
            **extra,
            "speaker": self.name,
            "process": state,
            "last_poll_age_s": age,
            "pid": None,
            "peers": dict(self.peers) if self.connected() else {},
            "kernel_table": self.table,
            "device": self.device,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ I/O

    async def _ip(self, *argv: str) -> bool:
        proc = await asyncio.create_subprocess_exec(
            "ip", *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            self.errors += 1
            self.last_error = f"ip {' '.join(argv)}: {err.decode(errors='replace').strip()}"
            return False
        return True

    async def _apply(self, op: str, prefix: str, med: int | None) -> None:
        old = self.metrics.get(prefix)
        table = ("table", str(self.table))
        if op == "announce" and med is not None:
            if old == med:
                return
            await self._ip("route", "replace", prefix, "dev", self.device, *table, "metric", str(med))
            self.metrics[prefix] = med
            if old is not None:
                await self._ip("route", "del", prefix, "dev", self.device, *table, "metric", str(old))
        elif op == "withdraw" and old is not None:
            await self._ip("route", "del", prefix, "dev", self.device, *table, "metric", str(old))
            del self.metrics[prefix]

    async def _work(self) -> None:
        while True:
            op, prefix, med = await self._queue.get()
            try:
                await self._apply(op, prefix, med)
            except OSError as exc:
                self.errors += 1
                self.last_error = str(exc)
            finally:
                self._busy -= 1

    async def refresh(self) -> None:
        """Read BIRD's BGP sessions (``birdc show protocols``) and, with BFD, its BFD sessions."""
        out = await self._birdc("show", "protocols")
        if out is not None and b"BIRD" in out:
            self.last_answer = self._clock()
            self.ever_connected = True
            self.peers = parse_protocols(out.decode(errors="replace"))
        if self.bfd:
            bfd = await self._birdc("show", "bfd", "sessions")
            self.bfd_sessions = parse_bfd_sessions(bfd.decode(errors="replace")) if bfd is not None else {}

    async def _birdc(self, *command: str) -> bytes | None:
        """``birdc -s SOCKET command...``'s output; None when it fails, exits non-zero or hangs (2 s)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                "birdc", "-s", self.socket, *command,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 2.0)
        except (OSError, TimeoutError):
            with contextlib.suppress(ProcessLookupError, UnboundLocalError):
                proc.kill()
            return None
        return out if proc.returncode == 0 else None
