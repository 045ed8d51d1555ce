"""Fast start: run the engine from a cached config while the daemon is still importing.

Why
---
A restarted preferred router preempts back one Master_Down_Interval after it
starts listening (RFC 5798 §6.4.1: it starts in BACKUP).  keepalived is
listening ~10 ms after exec; ``pyvrrp run`` listens as early
(:mod:`pyvrrp.runtime.early_listen`) but its engine only runs once asyncio,
pydantic, structlog and the adapters are imported and the config is validated:
0.16-0.27 s after exec.  At VRRPv3 10 ms adverts Master_Down_Interval is ~34 ms,
so the restarted node would preempt back ~0.2 s later than keepalived's
(issue #3 §6, "restart -> MASTER again").

What
----
A running daemon writes, for each instance this path can run, the engine's
already validated :class:`~pyvrrp.proto.router.RouterConfig` and the few facts
around it (interface, VIP labels, epoch file, control socket) to
``/run/pyvrrp/fast-start/<hash of the config path>.marshal`` (``PYVRRP_FAST_START_DIR``
overrides the directory).  The entry is keyed by the SHA-256 of the config
file's bytes and the ``--config-id``.

On the next ``pyvrrp run`` of the same, unchanged file, :func:`start` (stdlib and
:mod:`pyvrrp.proto` only, ~25 ms of imports) runs those engines in a thread on
the early listener's sockets, before the daemon's imports:

* it removes VIPs a crashed run left behind, then feeds each engine its Startup
  dated from when the listener opened (as the daemon does);
* it reads adverts, fires timers, sends adverts (IP_PKTINFO picks the interface
  and source), adds and removes VIPs (one rtnetlink request each) and sends
  GARP / unsolicited NA: exactly the hot-path actions of the daemon;
* state changes are only recorded: the daemon logs them and runs the notify
  scripts when it takes over.

When the daemon has validated the config and opened its own sockets it calls
:meth:`FastStart.stop` and :meth:`FastStart.adopt` for each instance: the engine
object itself (state, timers, counters, VIPs held) moves into the daemon if the
entry the daemon would write now is identical to the one the thread ran;
otherwise the daemon removes that instance's VIPs and starts it afresh.  Packets
the thread handled are skipped by the daemon's sockets (matched by kernel
arrival stamp); packets it did not claim go back to the early listener's
backlog, replayed as before.

Not run here (the daemon starts them normally): instances with trackers, takeover
guards (gateway check, VIP probe, fence), conflict detection or a sync group;
configs with ``include`` or ``vrrp_startup_delay``; interfaces that are down or
missing; and anything when a live daemon answers on the control socket.
SIGTERM/SIGINT before the hand-over send priority 0 and remove the VIPs; SIGHUP is
held for the daemon.  ``PYVRRP_NO_FAST_START=1`` disables this path.
"""

from __future__ import annotations

import _signal as signal  # the C modules: signal.py and threading.py cost ~1.5 ms to import
import _socket as socket
import _thread
import marshal  # not json: json imports re (~3-8 ms of start-up); the file is the daemon's own
import os
import select
import struct
import sys
import time
from ipaddress import ip_address, ip_interface

from pyvrrp.adapters.netlink_events import link_up
from pyvrrp.adapters.vrrp_wire import pktinfo, set_send_options, sockaddr, split_datagram
from pyvrrp.proto import events as ev
from pyvrrp.proto.epochs import parse_epoch
from pyvrrp.proto.packet import InvalidPacket, decode
from pyvrrp.proto.record import fields
from pyvrrp.proto.router import RouterConfig, VirtualRouter, advert_datagrams

FORMAT = 2  # 1: JSON
DEFAULT_DIR = "/run/pyvrrp/fast-start"
SPIN_S = 0.002  # wake this early for a deadline and spin to it (poll() sleeps in whole ms)
SWITCH_INTERVAL_S = 0.0005  # GIL hand-off while the main thread imports (default 5 ms)
# A first decision due this soon after the thread starts is waited for, with the main
# thread asleep: the takeover then runs on an idle interpreter, not between import steps.
HOLD_S = 0.1
SIOCGIFFLAGS = 0x8913

TYPE_CHECKING = False  # mypy reads it as True: no ``typing`` import (~2.5 ms) on this path
if TYPE_CHECKING:
    from typing import Any

_current: FastStart | None = None


# ------------------------------------------------------------------------------ cache


def cache_dir() -> str:
    return os.environ.get("PYVRRP_FAST_START_DIR") or DEFAULT_DIR


def _sha256(data: bytes) -> str:
    try:  # the C module directly: hashlib's import (OpenSSL) costs ~2 ms here
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def cache_file(config_path: str) -> str:
    digest = _sha256(os.path.abspath(config_path).encode())[:20]
    return os.path.join(cache_dir(), f"{digest}.marshal")


def text_key(text: bytes) -> str:
    return _sha256(text)


def config_to_dict(cfg: RouterConfig) -> dict[str, Any]:
    """A :class:`RouterConfig` as plain data (addresses as text, bytes as hex; JSON-able too)."""
    out: dict[str, Any] = {}
    for name in fields(cfg):
        value = getattr(cfg, name)
        if name in ("vips", "unicast_peers"):
            value = [str(v) for v in value]
        elif name == "primary_address":
            value = str(value)
        elif name == "auth_data":
            value = value.hex()
        out[name] = value
    return out


def config_from_dict(data: dict[str, Any]) -> RouterConfig:
    """Inverse of :func:`config_to_dict` (RouterConfig validates on creation; raises ValueError)."""
    kw = dict(data)
    kw["vips"] = tuple(ip_interface(v) for v in kw["vips"])
    kw["unicast_peers"] = tuple(ip_address(v) for v in kw["unicast_peers"])
    kw["primary_address"] = ip_address(kw["primary_address"])
    kw["auth_data"] = bytes.fromhex(kw["auth_data"])
    return RouterConfig(**kw)


def write_cache(config_path: str, text: bytes, entries: list[dict[str, Any]]) -> str:
    """Write (atomically) the entries for ``config_path``; returns the file's path. Raises OSError."""
    path = cache_file(config_path)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    doc = {"format": FORMAT, "config_path": os.path.abspath(config_path), "key": text_key(text)}
    doc["instances"] = entries
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        marshal.dump(doc, fh)
    os.replace(tmp, path)
    try:  # noqa: SIM105 (no contextlib on this path)
        os.unlink(path[: -len(".marshal")] + ".json")  # format 1, written before an upgrade
    except OSError:
        pass
    return path


def read_cache(config_path: str, text: bytes) -> list[dict[str, Any]] | None:
    """The cached entries if they were written for exactly this file content, else None."""
    try:
        with open(cache_file(config_path), "rb") as fh:
            doc = marshal.load(fh)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("key") != text_key(text):
        return None
    entries = doc.get("instances")
    return entries if isinstance(entries, list) else None


def remove_cache(config_path: str) -> None:
    try:  # noqa: SIM105 (no contextlib on this path)
        os.unlink(cache_file(config_path))
    except OSError:
        pass


def _option(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _daemon_alive(path: str) -> bool:
    """True when something accepts connections on the control socket (a running daemon)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.2)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _link_up(ifname: str) -> bool:
    """IFF_UP and IFF_RUNNING, as the daemon's tracking (an ioctl: right in any network namespace)."""
    import fcntl

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16s16x", ifname.encode()[:15]))
    except OSError:
        return False
    finally:
        sock.close()
    (flags,) = struct.unpack_from("H", raw, 16)
    return link_up(flags)


def _read_epoch(path: str | None) -> int:
    """The instance's saved epoch, read as EpochStore.load reads it (0 when missing or corrupt)."""
    if not path:
        return 0
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return 0
    return parse_epoch(text) or 0


# ------------------------------------------------------------------------------ engine


class BootInstance:
    """One instance run by the fast-start thread."""

    def __init__(self, entry: dict[str, Any], ifindex: int) -> None:
        self.entry = entry
        self.name: str = entry["name"]
        self.ifname: str = entry["ifname"]
        self.ifindex = ifindex
        self.config = config_from_dict(entry["router"])
        self.family = self.config.family
        self.labels: dict[str, str | None] = {str(ip_interface(v)): label for v, label in entry["vips"]}
        self.router = VirtualRouter(self.config, epoch=_read_epoch(entry.get("epoch_file")))
        self.changes: list[tuple[ev.StateChanged, float]] = []  # (change, when): the daemon logs them
        self.events: list[tuple[str, str, dict[str, Any]]] = []  # (level, event, fields) to log
        self.announcer: Any = None


class FastStart:
    """The engines of the cached instances, driven by a thread until the daemon adopts them."""

    def __init__(self, listener: Any, entries: list[dict[str, Any]], *, io: Any = None) -> None:
        self.listener = listener
        self.entries = entries
        self.instances: dict[str, BootInstance] = {}
        self.by_vrid: dict[tuple[int, int, int], BootInstance] = {}
        self.handled: set[int] = set()  # kernel arrival stamps of the packets run here
        self.failed: str | None = None
        self.skipped: dict[str, str] = {}  # instance -> why this path does not run it
        self.discarded: dict[str, str] = {}  # instance -> why the daemon did not adopt it
        self.handed_over = False
        self.signal_pending: int | None = None
        self.hup_pending = False
        self.io = io if io is not None else KernelIO(listener)
        self._stop = False
        self._done: Any = None  # a lock the thread holds while it runs
        self._wake_r, self._wake_w = -1, -1
        self._switch = sys.getswitchinterval()
        self.ready_at = 0.0  # monotonic: engines built, Startup fed

    # ------------------------------------------------------------------- set-up

    def prepare(self) -> FastStart:
        """Build the engines that can run here; clean stale VIPs; Startup at the listener's start."""
        for entry in self.entries:
            name = str(entry.get("name"))
            try:
                ifindex = socket.if_nametoindex(entry["ifname"])
            except (OSError, KeyError, TypeError):
                self.skipped[name] = "interface not found"
                continue
            try:
                inst = BootInstance(entry, ifindex)
            except (KeyError, TypeError, ValueError) as exc:
                self.skipped[name] = f"cache entry unusable: {exc}"
                continue
            unicast = bool(inst.config.unicast_peers)
            if not self.listener.covers(inst.family, ifindex, unicast=unicast):
                self.skipped[name] = "not listened on since start"
                continue
            if not _link_up(inst.ifname):
                self.skipped[name] = "link down"
                continue
            if (inst.family, ifindex, inst.config.vrid) in self.by_vrid:
                self.skipped[name] = "duplicate VRID"
                continue
            self.instances[name] = inst
            self.by_vrid[(inst.family, ifindex, inst.config.vrid)] = inst
        for inst in self.instances.values():
            self.io.prepare(inst)
            for vip in inst.config.vips:  # a crashed run may have left them (as the daemon does)
                if self.io.remove_vip(inst, vip):
                    inst.events.append(("warning", "stale_vip_removed", {"vip": str(vip)}))
            self._run_actions(inst, inst.router.handle(ev.Startup(), now=self.listener.opened_at))
        self.ready_at = time.monotonic()
        return self

    def start_thread(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._run, ())

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def owns(self, name: str) -> bool:
        return not self.handed_over and name in self.instances

    # -------------------------------------------------------------------- thread

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._done.release()

    def _loop(self) -> None:
        try:
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            fds = {}
            for family, sock in self.listener.socks.items():
                poller.register(sock.fileno(), select.POLLIN)
                fds[sock.fileno()] = family
            while not self._stop and self.failed is None:
                now = time.monotonic()
                deadline = self._next_deadline()
                if deadline is not None and deadline <= now:
                    # Adverts queued while this thread waited for the GIL (the main thread is
                    # importing) come first: dated by their arrival, they may move the deadline.
                    for family in fds.values():
                        self._drain(family)
                    self.fire(time.monotonic())
                    continue
                if deadline is None:
                    timeout = -1
                else:
                    wait = deadline - now
                    timeout = 0 if wait <= SPIN_S else int((wait - SPIN_S) * 1000)
                for fd, _mask in poller.poll(timeout):
                    family = fds.get(fd)
                    if family is not None:
                        self._drain(family)
        except Exception as exc:  # never a traceback from here: the daemon starts afresh instead
            self.failed = f"{type(exc).__name__}: {exc}"

    def catch_up(self) -> None:
        """Read what is queued, then run the deadlines already due (before the thread starts)."""
        for family in self.listener.socks:
            self._drain(family)
        self.fire(time.monotonic())

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in (i.router.next_deadline() for i in self.instances.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def _drain(self, family: int) -> None:
        while not self._stop and (item := self.listener.recv(family)) is not None:
            self.on_packet(family, item)

    def fire(self, now: float) -> None:
        """Run every engine deadline due at ``now``."""
        for inst in self.instances.values():
            deadline = inst.router.next_deadline()
            if deadline is not None and deadline <= now:
                self._run_actions(inst, inst.router.handle_timer(now=now))

    def on_packet(self, family: int, item: Any) -> None:
        """One datagram the early listener queued: feed it to its engine, or keep it for the daemon."""
        ifindex, stamp, data, addr, anc = item
        parsed = split_datagram(family, data, anc, addr)
        if parsed is not None:
            payload, src, dst, ttl = parsed
            result = decode(payload, src=src, dst=dst)
            if not isinstance(result, InvalidPacket):
                inst = self.by_vrid.get((family, ifindex, result.vrid))
                if inst is not None:
                    if stamp:
                        self.handled.add(stamp)
                    at = _arrival(stamp)
                    event = ev.AdvertReceived(advert=result, src=src, ttl=ttl, dst=dst)
                    self._run_actions(inst, inst.router.handle(event, now=at))
                    return
        # malformed, other VRIDs, other interfaces: the daemon decodes, counts and logs them
        self.listener.kept.setdefault(family, []).append(item)

    def _run_actions(self, inst: BootInstance, actions: list[Any]) -> None:
        for action in actions:
            kind = type(action).__name__
            if kind == "SendAdvert":
                self.io.send_advert(inst, action.advert)
            elif kind == "AddVips":
                for vip in action.vips:
                    try:
                        if self.io.add_vip(inst, vip, inst.labels.get(str(vip))):
                            inst.events.append(("info", "vip_added", {"vip": str(vip)}))
                    except OSError as exc:
                        # the daemon knows how to handle this (FAULT, retry); hand over at once
                        self.failed = f"adding {vip} to {inst.ifname}: {exc}"
            elif kind == "RemoveVips":
                for vip in action.vips:
                    try:
                        if self.io.remove_vip(inst, vip):
                            inst.events.append(("info", "vip_removed", {"vip": str(vip)}))
                    except OSError as exc:
                        inst.events.append(
                            ("error", "vip_remove_failed", {"vip": str(vip), "error": str(exc)})
                        )
            elif kind == "AnnounceVips":
                self.io.announce(inst, action.vips, action.repeat)
            elif kind == "StateChanged":
                inst.changes.append((action, time.monotonic()))
            else:  # nothing else is produced without guards, trackers or sync groups
                self.failed = f"{inst.name}: unexpected action {kind}"

    # ---------------------------------------------------------------- hand-over

    def stop(self) -> None:
        """Stop the thread (idempotent); the engines stay as they are, for :meth:`adopt`."""
        self._stop = True
        if self._done is not None:
            with _Ignore(OSError):
                os.write(self._wake_w, b"x")
            if self._done.acquire(timeout=2.0):  # the thread has left its loop
                self._done.release()
            self._done = None
            for fd in (self._wake_r, self._wake_w):
                with _Ignore(OSError):
                    os.close(fd)
            sys.setswitchinterval(self._switch)

    def adopt(self, name: str, entry: dict[str, Any]) -> BootInstance | None:
        """The instance for the daemon if ``entry`` (the daemon's view now) is what ran; else None.

        Call after :meth:`stop`.  A None leaves the reason in :attr:`discarded`.
        """
        inst = self.instances.get(name)
        if inst is None:
            return None
        if self.failed is not None:
            self.discarded[name] = self.failed
        elif entry != inst.entry:
            changed = sorted(k for k in set(entry) | set(inst.entry) if entry.get(k) != inst.entry.get(k))
            if "router" in changed:
                old, new = inst.entry.get("router", {}), entry.get("router", {})
                changed += [f"router.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            self.discarded[name] = "the config differs from the cached one: " + ", ".join(changed)
        else:
            return inst
        return None

    def finish(self) -> None:
        """The daemon has taken over: forget the engines (their VIPs are the daemon's now)."""
        self.handed_over = True
        self.instances.clear()
        self.by_vrid.clear()
        close = getattr(self.io, "close", None)
        if close is not None:
            close()
        global _current
        if _current is self:
            _current = None

    def release(self, name: str) -> None:
        """Stop one engine for good: priority 0 if it is MASTER, its VIPs removed (after :meth:`stop`)."""
        inst = self.instances.get(name)
        if inst is None:
            return
        with _Ignore(Exception):  # a released VIP matters more than a clean engine state
            self._run_actions(inst, inst.router.handle(ev.Shutdown(), now=time.monotonic()))
        for vip in inst.config.vips:
            with _Ignore(OSError):
                self.io.remove_vip(inst, vip)

    def abandon(self) -> None:
        """Before any hand-over: release everything (priority 0 from a MASTER, VIPs removed)."""
        if self.handed_over:
            return
        self.stop()
        for name in list(self.instances):
            self.release(name)
        self.finish()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.hup_pending = True  # the daemon reloads once it runs
            return
        if self.handed_over:
            self.signal_pending = signum  # the daemon installs its own handlers right away
            return
        held = [
            str(v)
            for i in self.instances.values()
            for v in i.router.config.vips
            if i.router.state.value == "MASTER"
        ]
        self.abandon()
        os.write(
            2, f"pyvrrp: stopped by signal {signum} during start-up; released {held or 'nothing'}\n".encode()
        )
        os._exit(0)


class _Ignore:
    """``contextlib.suppress`` without importing contextlib on this path."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)


def _arrival(stamp: int) -> float:
    """Kernel arrival stamp (wall clock, ns) -> monotonic seconds; "now" when implausible."""
    now = time.monotonic()
    if not stamp:
        return now
    age = (time.time_ns() - stamp) / 1e9
    return now - age if 0.0 <= age <= 0.5 else now


class KernelIO:
    """The fast-start thread's side effects: adverts on the listener's sockets, rtnetlink, AF_PACKET."""

    def __init__(self, listener: Any) -> None:
        from pyvrrp.adapters.rtnl_wire import FastAddr

        self.listener = listener
        self.addrs = FastAddr()
        self.senders: list[Any] = []
        for family, sock in listener.socks.items():  # the listener's sockets send too
            set_send_options(sock, family)

    def prepare(self, inst: BootInstance) -> None:
        from pyvrrp.adapters.arp import AnnounceSender

        try:
            sender = AnnounceSender(inst.ifname)
            sender._open()
            inst.announcer = sender
            self.senders.append(sender)
        except OSError as exc:
            inst.events.append(("warning", "announce_socket_failed", {"error": str(exc)}))

    def send_advert(self, inst: BootInstance, advert: Any) -> None:
        sock = self.listener.socks[inst.family]
        cmsg = pktinfo(inst.ifindex, inst.config.primary_address)
        for dst, payload in advert_datagrams(inst.config, advert):
            try:
                sock.sendmsg([payload], cmsg, 0, sockaddr(dst, inst.ifindex))
            except OSError as exc:
                inst.events.append(("warning", "advert_send_failed", {"dst": str(dst), "error": str(exc)}))

    def add_vip(self, inst: BootInstance, vip: Any, label: str | None) -> bool:
        return bool(self.addrs.add(inst.ifname, vip, label=label))

    def remove_vip(self, inst: BootInstance, vip: Any) -> bool:
        try:
            return bool(self.addrs.remove(inst.ifname, vip))
        except OSError as exc:
            inst.events.append(("error", "vip_remove_failed", {"vip": str(vip), "error": str(exc)}))
            return False

    def announce(self, inst: BootInstance, vips: Any, repeat: int) -> None:
        if inst.announcer is not None:
            inst.announcer.announce_now(vips, repeat)

    def close(self) -> None:
        """The daemon has its own sockets now; the listener's are closed by the daemon."""
        self.addrs.close()
        for sender in self.senders:
            sender.close()
        self.senders.clear()


# ------------------------------------------------------------------------------ entry


def start(argv: list[str], listener: Any) -> FastStart | None:
    """Run the cached engines for ``pyvrrp run ARGV`` if possible (never raises); None otherwise."""
    global _current
    if listener is None or os.environ.get("PYVRRP_NO_FAST_START"):
        return None
    try:
        text = listener.config_text
        if not text or any(line.lstrip().startswith(b"include") for line in text.splitlines()):
            return None  # included files are not part of the key: let the daemon read them
        entries = read_cache(listener.config_path, text)
        if not entries:
            return None
        config_id = _option(argv, "--config-id")
        socket_override = _option(argv, "--socket")
        if any(entry.get("config_id") != config_id for entry in entries):
            return None
        controls = {socket_override or entry.get("control_socket") for entry in entries} - {None, ""}
        if any(_daemon_alive(str(path)) for path in controls):
            return None  # another daemon runs this config: never touch its VIPs
        boot = FastStart(listener, entries).prepare()
    except Exception:
        return None
    if not boot.instances:
        return None
    boot.install_signals()
    boot.catch_up()  # a decision already due (a slow start) is taken here, with no thread to wait for
    boot.start_thread()
    _current = boot
    deadline = boot._next_deadline()
    if deadline is not None:
        wait = deadline - time.monotonic()
        if 0 < wait < HOLD_S:
            time.sleep(wait + SPIN_S)
    return boot


def current() -> FastStart | None:
    return _current
