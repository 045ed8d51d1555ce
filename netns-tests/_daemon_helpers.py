"""Shared helpers for the pyvrrp daemon tests on real hosts (issue #3 §4/§5).

Each test builds its own :class:`~pyvrrp.lab.topology.Lab` (the ``lab`` /
``lab_factory`` fixtures of ``conftest.py``) and runs ``python -m pyvrrp run``
in the lab hosts through :class:`~pyvrrp.lab.topology.PyvrrpNode`.  To keep
the suite fast, timing-agnostic tests use VRRPv3 with a 0.1 s advert interval
(RFC 5798 §5.2.7: centisecond steps), so Master_Down_Interval is ~0.35 s.

Nothing here sends traffic from the root namespace: the flood and hostile
packet senders run inside a lab host (``client``) and only read pre-built
frames from a file written by the test.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

from pyvrrp.lab.capture import Capture, WireEvent
from pyvrrp.lab.topology import LAB_IFNAME, VIP4, InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml, wait_for

FAST_INT_S = 0.1
VIP4_B = "192.168.233.201"
MCAST4 = "224.0.0.18"


def v3(priority: int, *, advert_int_s: float = FAST_INT_S, **kw: Any) -> InstanceSpec:
    """A VRRPv3 IPv4 instance VI_51/VRID 51 holding 192.168.233.200 (fast interval)."""
    return InstanceSpec(priority=priority, version=3, advert_int_s=advert_int_s, **kw)


def v2(priority: int, **kw: Any) -> InstanceSpec:
    """A VRRPv2 instance (whole-second interval, RFC 3768 §5.3.7)."""
    kw.setdefault("advert_int_s", 1.0)
    return InstanceSpec(priority=priority, version=2, **kw)


def start(lab: Lab, host: str, *specs: InstanceSpec) -> PyvrrpNode:
    """Start ``pyvrrp run`` in ``host`` with ``specs``."""
    node = PyvrrpNode(lab, host, instances=list(specs))
    node.start()
    return node


def start_pair(
    lab: Lab,
    spec1: InstanceSpec,
    spec2: InstanceSpec,
    *,
    master: str = "lb1",
    timeout_s: float = 8.0,
) -> tuple[PyvrrpNode, PyvrrpNode]:
    """Start ``master`` first, wait until it is MASTER, then start the other and wait until
    it is BACKUP and has heard the master (deterministic: two daemons started together
    race on Python start-up time).  Only the first instance of each node is waited for."""
    specs = {"lb1": spec1, "lb2": spec2}
    other = "lb2" if master == "lb1" else "lb1"
    m = start(lab, master, specs[master])
    m.wait_state("MASTER", timeout_s)
    b = start(lab, other, specs[other])
    b.wait_state("BACKUP", timeout_s)
    wait_view(b, lambda v: v["master_ip"] is not None, timeout_s, what=f"{other} hears the master")
    return (m, b) if master == "lb1" else (b, m)


def write_config(node: PyvrrpNode, specs: Sequence[InstanceSpec], *, raw: str | None = None) -> None:
    """Rewrite the node's config file (same control socket and state dir)."""
    text = raw
    if text is None:
        text = pyvrrp_toml(node.host, specs, control_socket=str(node.socket_path), state_dir=str(node.dir))
    node.config_path.write_text(text)


def signal_node(node: PyvrrpNode, sig: int) -> None:
    """Send ``sig`` to the daemon (``ip netns exec`` execs, so the Popen pid is the daemon)."""
    assert node.proc is not None and node.proc.poll() is None, "daemon not running"
    os.kill(node.proc.pid, sig)


def sighup(node: PyvrrpNode) -> None:
    signal_node(node, signal.SIGHUP)


def inst(node: PyvrrpNode, name: str = "VI_51") -> dict[str, Any]:
    """The instance view from ``pyvrrp state --json`` (fails if unreachable)."""
    view = node.instance(name)
    assert view is not None, f"{node.host}: no state for {name}; log:\n{node.log_text()[-2000:]}"
    return view


def wait_view(
    node: PyvrrpNode,
    pred: Callable[[dict[str, Any]], bool],
    timeout_s: float,
    name: str = "VI_51",
    what: str = "",
) -> dict[str, Any]:
    """Poll the instance view until ``pred(view)`` holds; return that view."""

    def check() -> dict[str, Any] | None:
        view = node.instance(name)
        return view if view is not None and pred(view) else None

    result: dict[str, Any] = wait_for(check, timeout_s, 0.02, what=what or f"{node.host} {name} condition")
    return result


def cli_state(node: PyvrrpNode) -> dict[str, Any]:
    """``python -m pyvrrp state --json --socket PATH`` through the real CLI."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyvrrp", "state", "--json", "--socket", str(node.socket_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


# ------------------------------------------------------------------ wire


def capture(lab: Lab, bpf: str | None = None) -> Capture:
    """Start tcpdump on the lab bridge (default: VRRP, ARP, ICMPv6)."""
    return Capture(lab, bpf=bpf).start() if bpf else Capture(lab).start()


def adverts(
    events: Iterable[WireEvent], lab: Lab, host: str | None = None, vrid: int = 51
) -> list[WireEvent]:
    """VRRP adverts of ``vrid`` sent by ``host`` (any sender if None), by source MAC."""
    mac = lab.mac(host) if host else None
    return [e for e in events if e.kind == "advert" and e.vrid == vrid and (mac is None or e.src_mac == mac)]


def max_gap_s(times: Sequence[float]) -> float:
    """Largest gap between consecutive timestamps (0 for fewer than two)."""
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class AddrMonitor:
    """``ip monitor address`` in one host: records every address add/delete line."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.path = lab.run_dir / f"ipmon-{host}-{time.monotonic_ns()}.log"
        self._fh = open(self.path, "w")  # noqa: SIM115 (the child writes to it)
        self.proc = lab.popen(
            host, ["ip", "-ts", "monitor", "address"], stdout=self._fh, stderr=subprocess.STDOUT
        )
        time.sleep(0.1)  # let it subscribe before anything happens

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self._fh.close()
        return self.path.read_text()


# ---------------------------------------------------------- notify scripts

NOTIFY_SCRIPT = """#!/bin/sh
# Appends one line per call: the script role, its argv and the PYVRRP_* environment.
echo "$(basename "$0") args=[$*] inst=$PYVRRP_INSTANCE state=$PYVRRP_STATE prev=$PYVRRP_PREVIOUS_STATE \
prio=$PYVRRP_PRIORITY vips=[$PYVRRP_VIPS]" >> {log}
"""


def make_notify_scripts(directory: Path, log: Path) -> dict[str, str]:
    """Executable scripts named after their role (notify_master, ..., notify) that append to ``log``."""
    out = {}
    for role in ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"):
        path = directory / role
        path.write_text(NOTIFY_SCRIPT.format(log=log))
        path.chmod(0o755)
        out[role] = str(path)
    return out


def notify_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# ------------------------------------------------------- hostile packets

VRRP_MAC4 = bytes.fromhex("01005e000012")  # 224.0.0.18 (RFC 1112 §6.4 mapping)


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_frame(
    payload: bytes,
    *,
    src: str,
    dst: str = MCAST4,
    src_mac: str,
    dst_mac: bytes = VRRP_MAC4,
    ttl: int = 255,
    proto: int = 112,
) -> bytes:
    """Ethernet + IPv4 header around ``payload`` (IP header checksum correct)."""
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xC0,
        20 + len(payload),
        0,
        0,
        ttl,
        proto,
        0,
        IPv4Address(src).packed,
        IPv4Address(dst).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    eth = dst_mac + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
    return eth + hdr + payload


def ipv6_frame(
    payload: bytes,
    *,
    src: str,
    dst: str = "ff02::12",
    src_mac: str,
    dst_mac: bytes = bytes.fromhex("333300000012"),
    hop_limit: int = 255,
    next_header: int = 112,
) -> bytes:
    """Ethernet + IPv6 header around ``payload`` (RFC 8200 §3; 33:33:00:00:00:12 for ff02::12)."""
    hdr = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(payload),
        next_header,
        hop_limit,
        ip_address(src).packed,
        ip_address(dst).packed,
    )
    eth = dst_mac + bytes.fromhex(src_mac.replace(":", "")) + b"\x86\xdd"
    return eth + hdr + payload


def vrrp_payload(
    *,
    version: int = 3,
    vrid: int = 51,
    priority: int = 200,
    addresses: Sequence[str] = (VIP4,),
    interval_cs: int = 10,
    src: str,
    dst: str = MCAST4,
    auth_pass: bytes | None = None,
) -> bytes:
    """A well-formed advert payload built with the project's own codec (RFC 5798 §5.1;
    ``auth_pass``: v2 simple password, RFC 3768 §5.3.6.1)."""
    from pyvrrp.proto.packet import Advertisement, encode

    adv = Advertisement(
        version=version,
        vrid=vrid,
        priority=priority,
        addresses=tuple(ip_address(a) for a in addresses),
        interval_cs=interval_cs,
        auth_type=0 if auth_pass is None else 1,
        auth_data=auth_pass or b"",
    )
    return encode(adv, src=ip_address(src), dst=ip_address(dst))


def fix_v2_checksum(payload: bytes) -> bytes:
    """Recompute a v2 checksum (RFC 3768 §5.3.8: over the VRRP message only)."""
    zeroed = payload[:6] + b"\0\0" + payload[8:]
    return zeroed[:6] + struct.pack("!H", _csum(zeroed)) + zeroed[8:]


SENDER_SRC = r"""
import json, socket, sys, time
frames_file, ifname = sys.argv[1], sys.argv[2]
pps, duration_s, max_count = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
kinds, frames = [], []
with open(frames_file, "rb") as fh:
    data = fh.read()
off = 0
while off < len(data):
    klen = data[off]; kind = data[off + 1: off + 1 + klen].decode(); off += 1 + klen
    flen = int.from_bytes(data[off: off + 2], "big"); off += 2
    kinds.append(kind); frames.append(data[off: off + flen]); off += flen
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
n, sent = len(frames), {}
count = [0] * n
batch = 50
t0 = time.monotonic()
end = t0 + duration_s
i = 0
while i < max_count:
    now = time.monotonic()
    if now >= end:
        break
    ahead = i / pps - (now - t0)
    if ahead > 0:
        time.sleep(ahead)
    for _ in range(min(batch, max_count - i)):
        k = i % n
        try:
            s.send(frames[k])
            count[k] += 1
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno != 105:  # ENOBUFS: the queue is full, try the next one
                raise
        i += 1
for k, c in zip(kinds, count):
    sent[k] = sent.get(k, 0) + c
print(json.dumps({"sent": sent, "elapsed_s": time.monotonic() - t0}))
"""


def write_frames(path: Path, frames: Sequence[tuple[str, bytes]]) -> None:
    """Serialise (kind, frame) pairs for :data:`SENDER_SRC`."""
    out = bytearray()
    for kind, frame in frames:
        k = kind.encode()
        out += bytes([len(k)]) + k + len(frame).to_bytes(2, "big") + frame
    path.write_bytes(bytes(out))


def send_frames(
    lab: Lab,
    host: str,
    frames: Sequence[tuple[str, bytes]],
    *,
    pps: float,
    duration_s: float,
    max_count: int,
) -> subprocess.Popen[str]:
    """Start the paced raw-frame sender in ``host`` (AF_PACKET on eth0); returns the Popen.

    The sender stops after ``duration_s`` or ``max_count`` frames, whichever is first, and
    prints ``{"sent": {kind: n}, "elapsed_s": t}`` on stdout.
    """
    path = lab.run_dir / f"frames-{host}-{time.monotonic_ns()}.bin"
    write_frames(path, frames)
    argv = [
        sys.executable,
        "-I",
        "-c",
        SENDER_SRC,
        str(path),
        LAB_IFNAME,
        str(pps),
        str(duration_s),
        str(max_count),
    ]
    return lab.popen(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def send_once(lab: Lab, host: str, frames: Sequence[tuple[str, bytes]]) -> dict[str, int]:
    """Send each frame once from ``host``; returns the per-kind counts actually sent."""
    proc = send_frames(lab, host, frames, pps=1000.0, duration_s=5.0, max_count=len(frames))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    sent: dict[str, int] = json.loads(out)["sent"]
    return sent


def log_transitions(node: PyvrrpNode, name: str = "VI_51") -> list[tuple[str, str, str]]:
    """(from, to, reason) of every ``state_changed`` log event of ``name`` (JSON console log)."""
    out = []
    for line in node.log_text().splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") == "state_changed" and rec.get("instance") == name:
            out.append((str(rec["from"]), str(rec["to"]), str(rec.get("reason", ""))))
    return out


def log_events(node: PyvrrpNode, event: str) -> list[dict[str, Any]]:
    """Every JSON log record of ``event`` in the node's console log, in order."""
    out = []
    for line in node.log_text().splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("event") == event:
                out.append(rec)
    return out


def log_wall(rec: dict[str, Any]) -> float:
    """A log record's ``timestamp`` as seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00")).timestamp()
