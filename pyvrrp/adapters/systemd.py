"""systemd service notifications (``Type=notify``, ``WatchdogSec=``) over ``$NOTIFY_SOCKET``.

The documented protocol (sd_notify(3), systemd's "NOTIFY_SOCKET" interface
notes), written out here rather than adding a dependency: each notification
is one ``AF_UNIX`` ``SOCK_DGRAM`` datagram of newline-separated ``KEY=VALUE``
lines sent to the path in ``$NOTIFY_SOCKET``; a leading ``@`` names a Linux
abstract socket (the ``@`` becomes a NUL byte).  The messages pyvrrp uses:

* ``READY=1`` once the control socket is open and the config is loaded;
* ``STATUS=<one line>`` a summary shown by ``systemctl status``;
* ``RELOADING=1`` with ``MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>`` when a
  reload starts (systemd >= 253 needs the timestamp for ``Type=notify-reload``),
  then ``READY=1`` when it is done;
* ``STOPPING=1`` when shutdown starts;
* ``WATCHDOG=1`` keep-alive pings.  systemd passes ``WATCHDOG_USEC`` (and
  ``WATCHDOG_PID``, the process meant); pinging every half of it from a task
  on the event loop itself means a loop that hangs stops the pings, and
  systemd kills and restarts the daemon.

With no ``$NOTIFY_SOCKET`` (not started by systemd, or ``Type=simple``) every
call is a cheap no-op returning False.  A send that fails is logged once and
never raises: notifications are advisory, the VRRP engine must not care.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_log = structlog.get_logger("pyvrrp.adapters.systemd")

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str | None) -> str | None:
    """``$NOTIFY_SOCKET`` -> the ``sendto`` address, None when unset or unusable.

    An absolute path is used as is; ``@name`` is the abstract socket ``\\0name``.
    Anything else (a relative path, ``vsock:`` addresses) is not supported here.
    """
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds, or None.

    ``WATCHDOG_USEC`` must be a positive integer; when ``WATCHDOG_PID`` is
    set it must be ``pid`` (default: this process), since the variables are
    inherited by children that are not the watched service.
    """
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    want_pid = env.get("WATCHDOG_PID")
    if want_pid:
        try:
            if int(want_pid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1_000_000


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, the clock systemd reads ``MONOTONIC_USEC`` on."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SdNotifier:
    """Sends sd_notify messages; every method is a no-op when not under systemd.

    Build it with :meth:`from_environ` (which by default also removes the
    variables from ``os.environ`` so notify scripts and health checks do not
    inherit them).
    """

    def __init__(self, address: str | None, *, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent = 0
        self.errors = 0

    @classmethod
    def from_environ(
        cls, env: MutableMapping[str, str] | None = None, *, unset_environment: bool = True
    ) -> SdNotifier:
        """Read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID`` (default: ``os.environ``)."""
        source = os.environ if env is None else env
        raw = source.get("NOTIFY_SOCKET")
        address = socket_address(raw)
        if raw and address is None:
            _log.warning(
                "systemd_notify_socket_unsupported",
                notify_socket=raw,
                action="NOTIFY_SOCKET must be an absolute path or @abstract name; notifications are off",
            )
        notifier = cls(address, watchdog_s=watchdog_interval_s(source) if address else None)
        if unset_environment:
            for key in _ENV_KEYS:
                source.pop(key, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_ping_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half the timeout, as sd_watchdog_enabled(3) advises."""
        return self.watchdog_s / 2 if self.watchdog_s else None

    # ------------------------------------------------------------ messages

    def send(self, **fields: Any) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines (keys as given, values str()-ed, one line each)."""
        if self.address is None:
            return False
        payload = "".join(f"{key}={_one_line(str(value))}\n" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            self.errors += 1
            if not self._warned:
                self._warned = True
                _log.warning(
                    "systemd_notify_failed",
                    notify_socket=self.address.replace("\0", "@"),
                    error=exc.strerror or str(exc),
                    action="systemd will not see READY/WATCHDOG; check the unit's NotifyAccess=",
                )
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (start-up or reload finished), with an optional ``STATUS=``."""
        return self.send(READY=1, **({"STATUS": status} if status is not None else {}))

    def status(self, text: str) -> bool:
        """``STATUS=`` one line for ``systemctl status``."""
        return self.send(STATUS=text)

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` + ``MONOTONIC_USEC`` at the start of a reload; call :meth:`ready` after."""
        extra = {"STATUS": status} if status is not None else {}
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), **extra)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1`` when shutdown begins."""
        return self.send(STOPPING=1, **({"STATUS": status} if status is not None else {}))

    def watchdog(self) -> bool:
        """One ``WATCHDOG=1`` keep-alive."""
        return self.send(WATCHDOG=1)

    async def run_watchdog(self) -> None:
        """Ping ``WATCHDOG=1`` every half watchdog timeout, from the event loop, until cancelled.

        Returns at once when systemd set no watchdog.  Run it as a task on the
        daemon's own loop: if that loop blocks, the pings stop and systemd
        acts on ``WatchdogSec=``.
        """
        interval = self.watchdog_ping_interval_s
        if interval is None or not self.enabled:
            return
        _log.info("systemd_watchdog_enabled", timeout_s=self.watchdog_s, ping_every_s=interval)
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


__all__ = ["SdNotifier", "monotonic_usec", "socket_address", "watchdog_interval_s"]
