"""Listen for VRRP from the first milliseconds of ``pyvrrp run``, before the imports.

Why
---
A starting router waits Master_Down_Interval in BACKUP before it may become
MASTER (RFC 5798 §6.4.1): the wait is how it learns whether a master already
exists.  keepalived is listening ~10 ms after exec; pyvrrp needs a few hundred
milliseconds of Python imports and config validation before its engine runs.
If the Master_Down timer started only then, every restart of a preferred node
would preempt back that much later (issue #3 §6, "restart -> MASTER again").

What
----
``start(argv)`` runs first thing in ``pyvrrp run`` (stdlib only: ``os``,
``_socket``, ``struct``, ``time``).  It reads the interfaces named in
the config file (a cheap textual scan: TOML ``interface = "x"`` and
keepalived's ``interface x``), opens one raw protocol-112 socket per address
family, joins 224.0.0.18 / ff02::12 on those interfaces and records the
monotonic time.  From then on the kernel queues every VRRP packet for us,
stamped on arrival (SO_TIMESTAMPNS), with the interface and TTL/hop limit.

When the daemon has opened its real per-interface sockets it asks
:func:`current` for the listener and

* feeds each instance its Startup event at :attr:`EarlyListener.opened_at`
  instead of "now", but only when :meth:`EarlyListener.covers` says the
  instance's interface and family were listened on, and nothing was dropped
  (SO_RXQ_OVFL), so no advert can have been missed;
* replays :meth:`EarlyListener.backlog`: the packets that arrived before the
  real socket joined, through the normal receive path (decode, checks, engine);
  a live master's advert in there keeps the new node in BACKUP exactly as if
  it had been heard live;
* closes the listener.

The node therefore makes the same decision it would make had the daemon been
running since ``opened_at``, from the same packets; only the packets' handling
is late, and that lateness only ever postpones a takeover (an advert handled
late re-arms Master_Down from the later time).  Anything unexpected (no
CAP_NET_RAW, an unreadable config, an interface the scan did not find) means
no credit: the instance starts at "now", as before.
"""

# No ``from __future__ import annotations`` and no os/struct: under ``python -S`` (pyvrrpd)
# this module runs before anything has imported them, and each costs 0.2-1.5 ms of the time
# before listening (forward references are quoted instead).
# The C module: ``socket.py`` costs ~10 ms of enum set-up at import, before we listen.
import _socket as socket
import _struct as struct
import posix
import sys
import time

IPPROTO_VRRP = 112
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_MULTICAST_ALL = 49
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_MULTICAST_ALL = 29
GROUP_V4 = socket.inet_aton("224.0.0.18")
GROUP_V6 = socket.inet_pton(socket.AF_INET6, "ff02::12")
RCVBUF = 4 << 20  # bytes; a flood during start-up must not push adverts out
MAX_JOINS = 20  # net.ipv4.igmp_max_memberships default: more interfaces are not credited

_current: "EarlyListener | None" = None

# (ifindex, arrival stamp in ns, datagram, peer address, other control messages)
Queued = tuple[int, int, bytes, tuple[object, ...], list[tuple[int, int, bytes]]]


def config_interfaces(text: bytes) -> list[str]:
    """Interface names an instance may use, from a TOML or keepalived.conf text (best effort).

    Matches lines starting with the key ``interface`` (TOML ``interface = "eth0"``,
    keepalived ``interface eth0``); ``track_interface`` and friends do not match.
    No ``re``: this runs before anything else is imported.
    """
    names: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith(b'"interface"'):
            line = line[len(b'"interface"') :]
        elif line.startswith(b"interface"):
            line = line[len(b"interface") :]
        else:
            continue
        if not line or line[:1] not in (b" ", b"\t", b"="):
            continue  # interface_foo = ...
        value = line.lstrip(b" \t")
        if value.startswith(b"="):
            value = value[1:].strip(b" \t")
            quote = value[:1]
            if quote not in (b'"', b"'") or quote not in value[1:]:
                continue
            value = value[1 : value.index(quote, 1)]
        else:
            value = value.split()[0] if value.split() else b""
            for stop in (b"#", b"!", b";", b"{", b"}"):
                value = value.split(stop, 1)[0]
        name = value.decode("utf-8", "replace")
        if name and name not in names:
            names.append(name)
    return names


def config_path(argv: list[str]) -> str | None:
    """The ``-f`` / ``--file`` argument of ``pyvrrp run`` (None when absent)."""
    for i, arg in enumerate(argv):
        if arg in ("-f", "--file") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--file="):
            return arg.split("=", 1)[1]
        if arg.startswith("-f") and len(arg) > 2:
            return arg[2:]
    return None


class EarlyListener:
    """Raw VRRP sockets joined on the configured interfaces, queueing until the daemon runs."""

    def __init__(self) -> None:
        self.opened_at = 0.0  # time.monotonic() once every join is in place
        self.socks: dict[int, socket.socket] = {}
        self.joined: set[tuple[int, int]] = set()  # (family, ifindex)
        self.dropped = 0  # SO_RXQ_OVFL: packets the kernel could not queue
        self.replayed = 0
        self.kept: dict[int, list[Queued]] = {}  # read by the fast-start engine, left to the daemon
        self.config_path = ""
        self.config_text = b""

    def open(self, ifnames: list[str]) -> "EarlyListener":
        """Open and join; interfaces that do not exist (yet) are skipped, not credited."""
        indexes = []
        for name in ifnames:
            try:
                indexes.append(socket.if_nametoindex(name))
            except OSError:
                continue
        for family in (4, 6):
            try:
                sock = self._socket(family)
            except OSError:
                continue
            self.socks[family] = sock
            for ifindex in indexes[:MAX_JOINS]:
                try:
                    if family == 4:
                        mreqn = struct.pack("=4s4si", GROUP_V4, b"\0" * 4, ifindex)
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                    else:
                        mreq = struct.pack("=16sI", GROUP_V6, ifindex)
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                except OSError:
                    continue
                self.joined.add((family, ifindex))
        self.opened_at = time.monotonic()
        return self

    @staticmethod
    def _socket(family: int) -> socket.socket:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            if family == 4:
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        except BaseException:
            sock.close()
            raise
        return sock

    def covers(self, family: int, ifindex: int, *, unicast: bool = False) -> bool:
        """True when every VRRP packet for (family, ifindex) since :attr:`opened_at` is queued here.

        Unicast adverts need no group membership, only the socket of that family.
        """
        if family not in self.socks or self.dropped:
            return False
        return unicast or (family, ifindex) in self.joined

    def backlog(self, family: int) -> list[Queued]:
        """Drain the queue of one family: ``(ifindex, stamp_ns, data, addr, ancdata)`` per packet.

        ``stamp_ns`` is the kernel's arrival time (``time.time_ns()`` clock, 0 if
        unknown): the caller skips packets that arrived after its own socket had
        joined (that socket has them too).  Sets :attr:`dropped` if the kernel
        reported a queue overflow.  Packets the fast-start engine read but left to
        the daemon (:attr:`kept`) come first, in arrival order.
        """
        out: list[Queued] = self.kept.pop(family, [])
        sock = self.socks.get(family)
        if sock is None:
            return out
        while (item := self.recv(family)) is not None:
            out.append(item)
        self.replayed += len(out)
        return out

    def recv(self, family: int) -> Queued | None:
        """Read one queued packet of ``family`` without blocking (None when the queue is empty)."""
        sock = self.socks.get(family)
        if sock is None:
            return None
        try:
            data, ancdata, _flags, addr = sock.recvmsg(65535, 512)
        except OSError:  # BlockingIOError (empty), InterruptedError, a closed socket
            return None
        ifindex = 0
        stamp = 0
        rest: list[tuple[int, int, bytes]] = []
        for level, ctype, cdata in ancdata:
            if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("=qq", cdata[:16])
                stamp = sec * 1_000_000_000 + nsec
            elif level == socket.SOL_SOCKET and ctype == SO_RXQ_OVFL and len(cdata) >= 4:
                (count,) = struct.unpack("=I", cdata[:4])
                self.dropped = max(self.dropped, count)
            else:
                if level == socket.IPPROTO_IP and ctype == IP_PKTINFO and len(cdata) >= 4:
                    (ifindex,) = struct.unpack("=i", cdata[:4])
                elif level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO and len(cdata) >= 20:
                    (ifindex,) = struct.unpack("=I", cdata[16:20])
                rest.append((level, ctype, cdata))
        return (ifindex, stamp, data, addr, rest)

    def close(self) -> None:
        global _current
        for sock in self.socks.values():
            try:  # noqa: SIM105 (no contextlib: nothing heavier than needed on this path)
                sock.close()
            except OSError:
                pass
        self.socks.clear()
        if _current is self:
            _current = None


def _env_set(name: str) -> bool:
    """``os.environ.get(name)`` without importing os (it sees in-process changes once os is loaded)."""
    os_module = sys.modules.get("os")
    if os_module is not None:
        return bool(os_module.environ.get(name))
    return bool(posix.environ.get(name.encode()))


def start(argv: list[str]) -> EarlyListener | None:
    """Open the listener for ``pyvrrp run ARGV`` (best effort, never raises); None when not possible."""
    global _current
    if _env_set("PYVRRP_NO_EARLY_LISTEN"):
        return None
    path = config_path(argv)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            text = fh.read(1 << 20)
        names = config_interfaces(text)
        if not names:
            return None
        listener = EarlyListener().open(names)
        listener.config_path, listener.config_text = path, text
    except Exception:  # a missing file, no CAP_NET_RAW...: the daemon reports it properly
        return None
    if not listener.socks:
        return None
    _current = listener
    return listener


def current() -> EarlyListener | None:
    """The listener opened by :func:`start` in this process, if any."""
    return _current
