"""The kernel's process events connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``).

The kernel multicasts one message per fork, exec, exit and name change of every process
(``linux/cn_proc.h``) once a socket has sent ``PROC_CN_MCAST_LISTEN``.  This is what
keepalived's ``vrrp_track_process`` listens to; pyroute2 has no helper for it, so this
module is a small socket adapter over the kernel interface:

* :func:`decode` (pure) turns received bytes into :class:`ProcEvent` values, skipping
  what does not concern processes (acks, thread events are passed with their ids and
  filtered by the caller, unknown kinds);
* :class:`ProcConnector` opens, subscribes and reads (non-blocking).

The connector exists only in the initial network namespace (and, before Linux 6.6, needs
CAP_NET_ADMIN):
elsewhere :meth:`ProcConnector.open` raises :class:`ConnectorUnavailable` with the
reason, and the caller falls back to polling ``/proc``.  The daemon opens it before it
enters a ``net_namespace`` (a socket keeps the namespace it was created in).

Message layout (host byte order)::

    nlmsghdr  len:u32 type:u16 flags:u16 seq:u32 pid:u32          (16 bytes)
    cn_msg    idx:u32 val:u32 seq:u32 ack:u32 len:u16 flags:u16   (20 bytes)
    proc_event what:u32 cpu:u32 timestamp_ns:u64                   (16 bytes)
               + event_data (fork: 4 x u32; exec: 2 x u32; comm: 2 x u32 + char[16];
                 exit: 6 x u32)
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from dataclasses import dataclass

__all__ = [
    "CN_IDX_PROC",
    "ConnectorUnavailable",
    "ProcConnector",
    "ProcEvent",
    "decode",
    "encode_event",
    "subscribe_message",
]

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2

PROC_EVENT_NONE = 0x00000000
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_COMM = 0x00000200
PROC_EVENT_EXIT = 0x80000000

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_PROC_EVENT = struct.Struct("=IIQ")
_KINDS = {PROC_EVENT_FORK: "fork", PROC_EVENT_EXEC: "exec", PROC_EVENT_COMM: "comm", PROC_EVENT_EXIT: "exit"}
_DATA = {
    PROC_EVENT_FORK: struct.Struct("=IIII"),  # parent pid, parent tgid, child pid, child tgid
    PROC_EVENT_EXEC: struct.Struct("=II"),  # pid, tgid
    PROC_EVENT_COMM: struct.Struct("=II16s"),  # pid, tgid, comm
    PROC_EVENT_EXIT: struct.Struct("=II"),  # pid, tgid (exit code, signal, parent follow)
}


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """One process event.  ``pid``/``tgid`` are the thread and its process; for ``fork``
    they are the child's, and ``parent_tgid`` is the forking process."""

    kind: str  # "fork" | "exec" | "comm" | "exit"
    pid: int
    tgid: int
    parent_tgid: int = 0
    comm: str = ""

    @property
    def is_process(self) -> bool:
        """True for the process itself, False for one of its other threads."""
        return self.pid == self.tgid


class ConnectorUnavailable(OSError):
    """The proc connector cannot be used here; ``str()`` says why and what happens instead."""


def subscribe_message(*, listen: bool = True, port_id: int = 0) -> bytes:
    """``PROC_CN_MCAST_LISTEN`` (or ``_IGNORE``) wrapped in cn_msg and nlmsghdr."""
    op = struct.pack("=I", PROC_CN_MCAST_LISTEN if listen else PROC_CN_MCAST_IGNORE)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, port_id) + cn


def encode_event(event: ProcEvent, *, seq: int = 0, cpu: int = 0, ack: int = 0) -> bytes:
    """The bytes the kernel sends for ``event`` (tests build datagrams with this)."""
    what = {v: k for k, v in _KINDS.items()}[event.kind]
    if event.kind == "fork":
        data = _DATA[what].pack(event.parent_tgid, event.parent_tgid, event.pid, event.tgid)
    elif event.kind == "comm":
        data = _DATA[what].pack(event.pid, event.tgid, event.comm.encode()[:15])
    elif event.kind == "exit":
        data = _DATA[what].pack(event.pid, event.tgid) + struct.pack("=IIII", 0, 9, 1, 1)
    else:
        data = _DATA[what].pack(event.pid, event.tgid)
    body = _PROC_EVENT.pack(what, cpu, 0) + data
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, seq, ack, len(body), 0) + body
    msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, seq, 0) + cn
    return msg + b"\0" * (-len(msg) % 4)


def decode(data: bytes) -> list[ProcEvent]:
    """Every fork/exec/comm/exit event in one datagram; anything else is skipped.

    Truncated or inconsistent messages end the walk (the kernel never sends them; a bad
    length must not make us read past the buffer).
    """
    out: list[ProcEvent] = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            break
        end = off + length
        body = off + _NLMSGHDR.size
        off += (length + 3) & ~3  # NLMSG_ALIGN
        if mtype in (NLMSG_NOOP, NLMSG_ERROR) or body + _CN_MSG.size > end:
            continue
        idx, val, _cseq, ack, clen, _cflags = _CN_MSG.unpack_from(data, body)
        ev = body + _CN_MSG.size
        if idx != CN_IDX_PROC or val != CN_VAL_PROC or ack:
            continue  # not a process event, or the reply to our subscription
        if clen < _PROC_EVENT.size or ev + clen > end:
            continue
        what, _cpu, _ts = _PROC_EVENT.unpack_from(data, ev)
        fmt = _DATA.get(what)
        pos = ev + _PROC_EVENT.size
        if fmt is None or pos + fmt.size > ev + clen:
            continue
        fields = fmt.unpack_from(data, pos)
        if what == PROC_EVENT_FORK:
            _ppid, ptgid, cpid, ctgid = fields
            out.append(ProcEvent("fork", cpid, ctgid, parent_tgid=ptgid))
        elif what == PROC_EVENT_COMM:
            pid, tgid, raw = fields
            out.append(ProcEvent("comm", pid, tgid, comm=raw.split(b"\0", 1)[0].decode(errors="replace")))
        else:
            pid, tgid = fields
            out.append(ProcEvent(_KINDS[what], pid, tgid))
    return out


class ProcConnector:
    """A subscribed, non-blocking proc connector socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def open(cls) -> ProcConnector:
        """Open and subscribe; :class:`ConnectorUnavailable` says why that is not possible."""
        try:
            sock = socket.socket(
                socket.AF_NETLINK,
                socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                NETLINK_CONNECTOR,
            )
        except OSError as exc:
            if exc.errno == errno.EPROTONOSUPPORT:
                raise ConnectorUnavailable("the kernel has no proc connector (CONFIG_PROC_EVENTS)") from None
            raise ConnectorUnavailable(f"cannot open a NETLINK_CONNECTOR socket: {exc.strerror}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, CN_IDX_PROC))
            sock.send(subscribe_message(listen=True))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EPERM, errno.EACCES):
                why = "needs CAP_NET_ADMIN before Linux 6.6 (run as root)"
            elif exc.errno == errno.ECONNREFUSED:
                why = "not in the initial network namespace (the connector exists only there)"
            else:
                why = exc.strerror or str(exc)
            raise ConnectorUnavailable(f"proc connector: {why}") from None
        return cls(sock)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[ProcEvent], bool]:
        """Everything queued: ``(events, overrun)``; ``overrun`` means messages were lost
        (ENOBUFS), so the caller must rescan ``/proc``."""
        events: list[ProcEvent] = []
        overrun = False
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    overrun = True
                    continue
                raise
            if addr[0] != 0:  # only the kernel (port id 0) speaks here
                continue
            events.extend(decode(data))
        return events, overrun

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(subscribe_message(listen=False))
        self.sock.close()
