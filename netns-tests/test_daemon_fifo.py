"""``vrrp_notify_fifo`` on a real daemon pair: keepalived's lines, in transition order (issue 16).

Each node's ``vrrp_notify_fifo_script`` is a small reader started by the daemon with the
FIFO path as its last argument; it appends every line it reads to a log in the node's
directory.  The test reads only those logs and the daemons' state.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _daemon_helpers import signal_node, v3

from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_conf
from pyvrrp.lab.topology import DaemonNode, Lab, PyvrrpNode, pyvrrp_toml, wait_for

pytestmark = pytest.mark.netns

READER = """\
import sys
log = sys.argv[1]
with open(sys.argv[-1]) as fifo:
    for line in fifo:
        with open(log, "a") as out:
            out.write(line)
"""


def _node(
    lab: Lab,
    host: str,
    priority: int,
    reader: Path,
    *,
    tail: str = "",
    priority_changes: bool = False,
    **kw: Any,
) -> tuple[PyvrrpNode, Path]:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    node_dir.mkdir(parents=True, exist_ok=True)
    log = node_dir / "fifo.log"
    text = pyvrrp_toml(
        host, [v3(priority, **kw)], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir)
    )
    text += (
        "\n[global_defs.vrrp_notify_fifo]\n"
        f'path = "{node_dir / "vrrp.fifo"}"\n'
        f'script = "{sys.executable} {reader} {log}"\n'
    ) + tail
    if priority_changes:
        text = text.replace("[global_defs]\n", "[global_defs]\nvrrp_notify_priority_changes = true\n", 1)
    return PyvrrpNode(lab, host, text), log


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _wait_lines(log: Path, want: list[str], timeout_s: float) -> list[str]:
    wait_for(lambda: len(_lines(log)) >= len(want), timeout_s, what=f"{len(want)} lines in {log}")
    time.sleep(0.3)  # nothing more should follow
    return _lines(log)


def test_failover_writes_keepalived_lines_in_order(lab: Lab) -> None:
    reader = lab.run_dir / "fifo_reader.py"
    reader.write_text(READER)
    n1, log1 = _node(lab, "lb1", 150, reader)
    n2, log2 = _node(lab, "lb2", 100, reader)
    n1.start()
    n1.wait_state("MASTER", 10)
    n2.start()
    n2.wait_state("BACKUP", 10)
    assert _wait_lines(log1, ["", ""], 10) == ['INSTANCE "VI_51" BACKUP 150', 'INSTANCE "VI_51" MASTER 150']
    assert _wait_lines(log2, [""], 10) == ['INSTANCE "VI_51" BACKUP 100']

    signal_node(n1, signal.SIGTERM)  # priority 0, lb2 takes over; lb1 writes STOP
    n2.wait_state("MASTER", 10)
    assert _wait_lines(log1, ["", "", ""], 10) == [
        'INSTANCE "VI_51" BACKUP 150',
        'INSTANCE "VI_51" MASTER 150',
        'INSTANCE "VI_51" STOP 150',
    ]
    assert n1.proc is not None and n1.proc.wait(10) == 0
    assert not (n1.dir / "vrrp.fifo").exists()  # created by the daemon, removed at stop
    assert _wait_lines(log2, ["", ""], 10) == ['INSTANCE "VI_51" BACKUP 100', 'INSTANCE "VI_51" MASTER 100']
    doc = n2.state_json()
    assert doc is not None
    assert doc["notify_fifos"] == {str(n2.dir / "vrrp.fifo"): {"written": 2, "dropped": 0, "errors": 0}}

    # lb1 back with the higher priority: it preempts, lb2 goes back to BACKUP
    n1.start()
    n1.wait_state("MASTER", 10)
    n2.wait_state("BACKUP", 10)
    assert _wait_lines(log2, ["", "", ""], 10)[2:] == ['INSTANCE "VI_51" BACKUP 100']


@pytest.mark.parametrize("where", ["global", "instance"])
def test_priority_changes_are_written_before_the_state_they_cause(lab: Lab, where: str) -> None:
    """vrrp_notify_priority_changes (global) or the instance's notify_priority_changes:
    MASTER_PRIORITY / BACKUP_PRIORITY with the new effective priority, written before the
    transition it causes (keepalived's order)."""
    reader = lab.run_dir / "fifo_reader.py"
    reader.write_text(READER)
    prio = lab.run_dir / "prio"
    tf = f'\n[track_file.tf]\nfile = "{prio}"\nweight = -1\n'
    keys: dict[str, Any] = {"track_file": ["tf"]}
    if where == "instance":
        keys["notify_priority_changes"] = True
    n1, log1 = _node(lab, "lb1", 150, reader, tail=tf, priority_changes=where == "global", extra=keys)
    n2, _ = _node(lab, "lb2", 100, reader)
    n1.start()
    n1.wait_state("MASTER", 10)
    n2.start()
    n2.wait_state("BACKUP", 10)
    _wait_lines(log1, ["", ""], 10)
    prio.write_text("70\n")  # 150 - 70 = 80 < 100: lb2 preempts
    n2.wait_state("MASTER", 10)
    n1.wait_state("BACKUP", 10)
    prio.write_text("0\n")
    n1.wait_state("MASTER", 10)
    assert _wait_lines(log1, [""] * 6, 10) == [
        'INSTANCE "VI_51" BACKUP 150',
        'INSTANCE "VI_51" MASTER 150',
        'INSTANCE "VI_51" MASTER_PRIORITY 80',
        'INSTANCE "VI_51" BACKUP 80',
        'INSTANCE "VI_51" BACKUP_PRIORITY 150',
        'INSTANCE "VI_51" MASTER 150',
    ]


@pytest.mark.keepalived
@pytest.mark.parametrize("ka_host", ["lb1", "lb2"])
def test_same_lines_as_keepalived(lab: Lab, ka_host: str) -> None:
    """keepalived 2.2.7 and pyvrrp side by side, each with vrrp_notify_fifo: through the same
    election, failover and stop, each writes the same lines for its own instance.

    keepalived's FIFO is read by a reader the test starts after keepalived made the FIFO (its
    first line waits in the pipe buffer, which is also how pyvrrp behaves)."""
    reader = lab.run_dir / "fifo_reader.py"
    reader.write_text(READER)
    pv_host = "lb2" if ka_host == "lb1" else "lb1"
    prio = {"lb1": 150, "lb2": 100}
    pv, pv_log = _node(lab, pv_host, prio[pv_host], reader)
    ka_dir = lab.run_dir / f"keepalived-{ka_host}"
    ka_dir.mkdir(parents=True, exist_ok=True)
    ka_fifo, ka_log = ka_dir / "vrrp.fifo", ka_dir / "fifo.log"
    spec = v3(prio[ka_host], state="MASTER" if ka_host == "lb1" else "BACKUP")
    ka = KeepalivedNode(lab, ka_host, keepalived_conf(ka_host, [spec], notify_fifo=str(ka_fifo)))
    nodes: dict[str, DaemonNode] = {ka_host: ka, pv_host: pv}
    logs = {ka_host: ka_log, pv_host: pv_log}
    ka_reader: subprocess.Popen[bytes] | None = None
    try:
        nodes["lb1"].start()
        if ka_host == "lb1":
            wait_for(ka_fifo.exists, 10, what="keepalived's FIFO")
            ka_reader = subprocess.Popen([sys.executable, str(reader), str(ka_log), str(ka_fifo)])
        nodes["lb1"].wait_state("MASTER", 20)
        nodes["lb2"].start()
        if ka_host == "lb2":
            wait_for(ka_fifo.exists, 10, what="keepalived's FIFO")
            ka_reader = subprocess.Popen([sys.executable, str(reader), str(ka_log), str(ka_fifo)])
        nodes["lb2"].wait_state("BACKUP", 20)
        nodes["lb1"].stop(timeout_s=10)  # SIGTERM: STOP, lb2 takes over
        nodes["lb2"].wait_state("MASTER", 10)
        time.sleep(0.5)
        nodes["lb2"].stop(timeout_s=10)
        want = {
            "lb1": [
                'INSTANCE "VI_51" BACKUP 150',
                'INSTANCE "VI_51" MASTER 150',
                'INSTANCE "VI_51" STOP 150',
            ],
            "lb2": [
                'INSTANCE "VI_51" BACKUP 100',
                'INSTANCE "VI_51" MASTER 100',
                'INSTANCE "VI_51" STOP 100',
            ],
        }
        for host in ("lb1", "lb2"):
            assert _wait_lines(logs[host], want[host], 10) == want[host], f"{nodes[host].kind} on {host}"
    finally:
        if ka_reader is not None:
            ka_reader.kill()
            ka_reader.wait(5)


def test_reload_rewrites_states_and_moves_the_fifo(lab: Lab) -> None:
    """fifo_write_vrrp_states_on_reload: a reload writes every instance's state line again; a
    reload that names another FIFO closes the old one (removed, its reader stopped) and
    writes to the new one."""
    reader = lab.run_dir / "fifo_reader.py"
    reader.write_text(READER)
    n1, log1 = _node(lab, "lb1", 150, reader)
    text = n1.config_path.read_text().replace(
        "[global_defs]\n", "[global_defs]\nfifo_write_vrrp_states_on_reload = true\n", 1
    )
    n1.config_path.write_text(text)
    n1.start()
    n1.wait_state("MASTER", 10)
    want = ['INSTANCE "VI_51" BACKUP 150', 'INSTANCE "VI_51" MASTER 150']
    assert _wait_lines(log1, want, 10) == want
    signal_node(n1, signal.SIGHUP)
    want.append('INSTANCE "VI_51" MASTER 150')
    assert _wait_lines(log1, want, 10) == want

    old_fifo, new_fifo = n1.dir / "vrrp.fifo", n1.dir / "vrrp2.fifo"
    n1.config_path.write_text(text.replace(str(old_fifo), str(new_fifo)))
    signal_node(n1, signal.SIGHUP)
    wait_for(new_fifo.exists, 10, what="the new FIFO")
    wait_for(lambda: not old_fifo.exists(), 10, what="the old FIFO removed")
    want.append('INSTANCE "VI_51" MASTER 150')  # states-on-reload, through the new FIFO
    assert _wait_lines(log1, want, 10) == want
    signal_node(n1, signal.SIGTERM)
    want.append('INSTANCE "VI_51" STOP 150')
    assert _wait_lines(log1, want, 10) == want
