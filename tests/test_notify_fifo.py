"""Notify FIFOs: keepalived's line formats, a real mkfifo, never blocking, config front-ends (no root)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from pyvrrp.adapters.notify import NotifyRunner
from pyvrrp.adapters.notify_fifo import (
    NotifyFifo,
    NotifyFifos,
    group_line,
    instance_line,
    rs_line,
    trio,
    vs_line,
)
from pyvrrp.config import keepalived as ka
from pyvrrp.config.errors import ConfigError
from pyvrrp.config.load import load_config
from pyvrrp.config.models import NotifyFifo as NotifyFifoModel
from pyvrrp.config.models import VrrpInstance
from pyvrrp.proto import events as ev
from pyvrrp.proto.packet import Advertisement, encode
from pyvrrp.proto.router import VirtualRouter
from pyvrrp.runtime.daemon import router_config
from pyvrrp.runtime.executor import Executor
from pyvrrp.runtime.instance import Instance, TimerFired
from pyvrrp.runtime.supervisor import Supervisor

# ------------------------------------------------------------------------------- lines


def test_line_formats_are_keepalived_s() -> None:
    """keepalived vrrp_notify.c / check/ipwrapper.c: name quoted, group priority 0, [addr]:proto:port."""
    assert instance_line("VI_1", "MASTER", 100) == 'INSTANCE "VI_1" MASTER 100\n'
    assert instance_line("VI_1", "MASTER_PRIORITY", 90) == 'INSTANCE "VI_1" MASTER_PRIORITY 90\n'
    assert group_line("G1", "BACKUP") == 'GROUP "G1" BACKUP 0\n'
    assert trio("10.0.0.1", "TCP", 80) == "[10.0.0.1]:tcp:80"
    assert trio("2001:db8:0::1", "UDP", 53) == "[2001:db8::1]:udp:53"
    assert vs_line(trio("10.0.0.1", "TCP", 80), True) == "VS [10.0.0.1]:tcp:80 UP\n"
    assert vs_line("FWM 5", False) == "VS FWM 5 DOWN\n"
    assert (
        rs_line(trio("192.168.1.2", "tcp", 8080), trio("10.0.0.1", "tcp", 80), False)
        == "RS [192.168.1.2]:tcp:8080 [10.0.0.1]:tcp:80 DOWN\n"
    )


# ------------------------------------------------------------------------------- the writer


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_creates_fifo_and_reader_gets_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "vrrp.fifo"
    fifo = NotifyFifo(path)
    assert fifo.open_fifo()
    assert stat.S_ISFIFO(os.stat(path).st_mode) and fifo.created
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o777 == 0o644 & ~_umask()
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        lines = [instance_line("VI_1", s, 100) for s in ("BACKUP", "MASTER", "FAULT", "BACKUP", "STOP")]
        for line in lines:
            assert fifo.write(line)
        assert _read_all(reader).decode() == "".join(lines)
        assert fifo.stats.written == 5 and fifo.stats.dropped == 0
    finally:
        os.close(reader)
    asyncio.run(fifo.close())
    assert not path.exists()  # we created it, we remove it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_no_reader_never_blocks_and_drops_when_full(tmp_path: Path) -> None:
    """No reader: lines wait in the pipe buffer; once it is full they are dropped, never waited for."""
    fifo = NotifyFifo(tmp_path / "f")
    assert fifo.open_fifo()
    line = instance_line("VI_1", "MASTER", 100)
    t0 = time.monotonic()
    n = 0
    while fifo.stats.dropped < 100:
        fifo.write(line)
        n += 1
        assert n < 100_000, "a 64 KiB pipe buffer should have filled long ago"
    elapsed = time.monotonic() - t0
    assert elapsed < 5.0  # thousands of writes, none waited
    assert fifo.stats.written > 1000  # the buffer held them (64 KiB / 27 bytes)
    # a reader attaching now gets the buffered lines, whole and in order, then new ones
    reader = os.open(fifo.path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = _read_all(reader)
        assert data == line.encode() * fifo.stats.written
        assert fifo.write(instance_line("VI_1", "BACKUP", 100))
        assert _read_all(reader) == b'INSTANCE "VI_1" BACKUP 100\n'
    finally:
        os.close(reader)
    asyncio.run(fifo.close())


def test_reader_restart_loses_nothing(tmp_path: Path) -> None:
    """keepalived holds the FIFO O_RDWR: a reader that goes away does not break the writer."""
    fifo = NotifyFifo(tmp_path / "f")
    assert fifo.open_fifo()
    reader = os.open(fifo.path, os.O_RDONLY | os.O_NONBLOCK)
    fifo.write(instance_line("A", "BACKUP", 1))
    assert _read_all(reader) == b'INSTANCE "A" BACKUP 1\n'
    os.close(reader)
    assert fifo.write(instance_line("A", "MASTER", 1))  # no EPIPE, no SIGPIPE
    reader = os.open(fifo.path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert _read_all(reader) == b'INSTANCE "A" MASTER 1\n'
    finally:
        os.close(reader)
    asyncio.run(fifo.close())


def test_existing_fifo_is_kept_and_a_regular_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.fifo"
    os.mkfifo(path)
    fifo = NotifyFifo(path)
    assert fifo.open_fifo() and not fifo.created
    asyncio.run(fifo.close())
    assert path.exists()  # not ours to remove
    plain = tmp_path / "plain"
    plain.write_text("x")
    refused = NotifyFifo(plain)
    assert not refused.open_fifo() and refused.fd is None
    assert not refused.write('INSTANCE "X" MASTER 1\n')
    link = tmp_path / "link"
    link.symlink_to(path)
    assert not NotifyFifo(link).open_fifo()  # O_NOFOLLOW


def test_script_gets_the_fifo_path_and_reads_it(tmp_path: Path) -> None:
    """``*_fifo_script`` starts with the path appended, reads the lines; close() stops it."""
    out = tmp_path / "got"
    script = tmp_path / "reader.py"
    script.write_text(
        "import sys\n"
        f"with open(sys.argv[-1]) as f, open({str(out)!r}, 'a') as o:\n"
        "    for line in f:\n"
        "        o.write(sys.argv[1] + ' ' + line); o.flush()\n"
    )

    async def go() -> str:
        fifo = NotifyFifo(tmp_path / "f", script=f"{sys.executable} {script} tag")
        assert await fifo.open()
        for state in ("BACKUP", "MASTER"):
            fifo.write(instance_line("VI_1", state, 150))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 2:
                break
            await asyncio.sleep(0.05)
        proc = fifo._proc
        await fifo.close()
        assert proc is not None and proc.returncode is not None  # stopped
        return out.read_text()

    assert asyncio.run(go()) == 'tag INSTANCE "VI_1" BACKUP 150\ntag INSTANCE "VI_1" MASTER 150\n'


def test_fifo_set_routes_vrrp_and_lvs_lines(tmp_path: Path) -> None:
    common, vrrp, lvs = (NotifyFifo(tmp_path / n) for n in ("all", "vrrp", "lvs"))
    fifos = NotifyFifos(common=common, vrrp=vrrp, lvs=lvs, priority_changes=True)
    asyncio.run(fifos.open())
    readers = {n: os.open(tmp_path / n, os.O_RDONLY | os.O_NONBLOCK) for n in ("all", "vrrp", "lvs")}
    try:
        fifos.instance("VI_1", "MASTER", 100)
        fifos.group("G", "MASTER")
        fifos.priority_changed("VI_1", True, 90)
        fifos.lvs(vs_line("FWM 1", True))
        got = {n: _read_all(fd).decode() for n, fd in readers.items()}
    finally:
        for fd in readers.values():
            os.close(fd)
    vrrp_lines = 'INSTANCE "VI_1" MASTER 100\nGROUP "G" MASTER 0\nINSTANCE "VI_1" MASTER_PRIORITY 90\n'
    assert got == {"all": vrrp_lines + "VS FWM 1 UP\n", "vrrp": vrrp_lines, "lvs": "VS FWM 1 UP\n"}
    asyncio.run(fifos.close())


# ------------------------------------------------------------------------------- executor


class _NoAddresses:
    def add(self, ifname: str, address: Any, **kw: Any) -> bool:
        return True

    def remove(self, ifname: str, address: Any, **kw: Any) -> bool:
        return True


class _NoAnnouncer:
    def announce(self, *a: Any, **k: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def test_executor_writes_state_lines_in_transition_order(tmp_path: Path) -> None:
    """BACKUP at start, MASTER at Master_Down, STOP at shutdown: effective priority, in order."""

    async def go() -> str:
        loop = asyncio.get_running_loop()
        sup = Supervisor(loop)
        executor = Executor(
            loop=loop,
            netlink=_NoAddresses(),
            announcer=_NoAnnouncer(),  # type: ignore[arg-type]
            notifier=NotifyRunner(timeout_s=1.0),
            epochs=None,
            feed=sup.feed,
            on_takeover_pending=lambda inst, action: None,
            on_state_changed=lambda inst, action: None,
        )
        sup.bind(executor)
        fifos = NotifyFifos(vrrp=NotifyFifo(tmp_path / "v"))
        await fifos.open()
        executor.fifos = fifos
        reader = os.open(tmp_path / "v", os.O_RDONLY | os.O_NONBLOCK)
        spec = VrrpInstance.model_validate(
            {
                "interface": "eth0",
                "virtual_router_id": 7,
                "priority": 120,
                "version": 3,
                "advert_int": 0.05,
                "virtual_ipaddress": ["192.0.2.9/32"],
            }
        )
        router = VirtualRouter(
            router_config("VI_X", spec, ipaddress.ip_address("192.0.2.10"), in_group=False)
        )
        inst = Instance(name="VI_X", spec=spec, router=router, sock=None, log=structlog.get_logger().bind())
        sup.instances["VI_X"] = inst
        sup.feed(inst, ev.Startup())
        await asyncio.sleep(0)
        deadline = inst.router.next_deadline()
        assert deadline is not None
        await asyncio.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        sup.feed(inst, TimerFired())
        assert inst.router.state is ev.State.MASTER
        await asyncio.sleep(0)
        # keepalived vrrp.c: a MASTER hearing a lower priority writes MASTER_RX_LOWER_PRI
        lower = Advertisement(
            version=3, vrid=7, priority=50, addresses=(ipaddress.ip_address("192.0.2.9"),), interval_cs=5
        )
        peer, group = ipaddress.ip_address("192.0.2.11"), ipaddress.ip_address("224.0.0.18")
        sup.on_datagram(inst.key, encode(lower, src=peer, dst=group), peer, group, 255)
        assert inst.router.state is ev.State.MASTER
        sup.feed(inst, ev.Shutdown())
        await asyncio.sleep(0)
        data = _read_all(reader).decode()
        os.close(reader)
        await fifos.close()
        return data

    assert (
        asyncio.run(go()) == 'INSTANCE "VI_X" BACKUP 120\nINSTANCE "VI_X" MASTER 120\n'
        'INSTANCE "VI_X" MASTER_RX_LOWER_PRI 120\nINSTANCE "VI_X" STOP 120\n'
    )


# ------------------------------------------------------------------------------- config


_KA = """global_defs {{
    {fifo}
}}
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {{
        10.0.0.1/24
    }}
}}
"""


def _ka(tmp_path: Path, fifo: str) -> tuple[Any, list[Any]]:
    p = tmp_path / "keepalived.conf"
    p.write_text(_KA.format(fifo=fifo))
    return ka.load_with_report(p)


def test_keepalived_fifo_keywords(tmp_path: Path) -> None:
    cfg, warnings = _ka(
        tmp_path,
        "vrrp_notify_fifo /run/k.fifo root root\n"
        '    vrrp_notify_fifo_script "/etc/keepalived/h.sh --cluster c" root\n'
        "    notify_fifo /run/all.fifo\n"
        "    lvs_notify_fifo /run/lvs.fifo\n"
        "    lvs_notify_fifo_script /bin/lvs.sh\n"
        "    vrrp_notify_priority_changes true\n"
        "    fifo_write_vrrp_states_on_reload",
    )
    g = cfg.global_defs
    assert g.vrrp_notify_fifo == NotifyFifoModel(
        path=Path("/run/k.fifo"), script="/etc/keepalived/h.sh --cluster c", user="root", group="root"
    )
    assert g.notify_fifo == NotifyFifoModel(path=Path("/run/all.fifo"))
    assert g.lvs_notify_fifo == NotifyFifoModel(path=Path("/run/lvs.fifo"), script="/bin/lvs.sh")
    assert g.vrrp_notify_priority_changes and g.fifo_write_vrrp_states_on_reload
    # the run-as user of the script is not honoured: said so, with the line
    assert [(w.line, "run-as user" in w.message) for w in warnings] == [(3, True)]


def test_fifo_script_without_fifo_is_ignored_with_a_warning(tmp_path: Path) -> None:
    cfg, warnings = _ka(tmp_path, "notify_fifo_script /bin/x.sh")
    assert cfg.global_defs.notify_fifo is None
    assert len(warnings) == 1 and warnings[0].line == 2
    assert "'notify_fifo_script' without 'notify_fifo'" in warnings[0].message


def test_relative_fifo_path_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        _ka(tmp_path, "vrrp_notify_fifo run/k.fifo")
    errors = [i for i in ei.value.issues if i.severity == "error"]
    assert len(errors) == 1
    assert errors[0].line == 2 and "absolute" in errors[0].message
    assert "vrrp_notify_fifo" in str(errors[0].path)


def test_toml_form(tmp_path: Path) -> None:
    p = tmp_path / "pyvrrp.toml"
    p.write_text(
        "[global_defs.vrrp_notify_fifo]\n"
        'path = "/run/pyvrrp/vrrp.fifo"\n'
        'script = "/usr/local/bin/fifo-reader --tag x"\n'
        "[vrrp_instance.VI_1]\n"
        'interface = "eth0"\nvirtual_router_id = 51\nvirtual_ipaddress = ["10.0.0.1/24"]\n'
    )
    g = load_config(p).global_defs
    assert g.vrrp_notify_fifo is not None
    assert (g.vrrp_notify_fifo.path, g.vrrp_notify_fifo.script) == (
        Path("/run/pyvrrp/vrrp.fifo"),
        "/usr/local/bin/fifo-reader --tag x",
    )
    p.write_text("[global_defs.vrrp_notify_fifo]\nscript = 'x'\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert any("global_defs.vrrp_notify_fifo.path" in str(i.path) for i in ei.value.issues)


def test_instance_notify_priority_changes(tmp_path: Path) -> None:
    p = tmp_path / "keepalived.conf"
    p.write_text(
        _KA.format(fifo="vrrp_notify_fifo /run/k.fifo").replace(
            " virtual_router_id 51\n", " virtual_router_id 51\n    notify_priority_changes\n"
        )
    )
    cfg, warnings = ka.load_with_report(p)
    assert cfg.vrrp_instance["VI_1"].notify_priority_changes is True
    assert not cfg.global_defs.vrrp_notify_priority_changes and warnings == []
