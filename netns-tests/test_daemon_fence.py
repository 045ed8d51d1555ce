"""Fencing hook before a BACKUP takes the VIP (issue #4 §3), in the running daemon.

lb2 has ``fence_script``: when lb1 goes silent, lb2's takeover waits for the hook; it proceeds
only if the hook succeeds (``fence_failure = "stay-backup"``) and is abandoned when lb1's
adverts return while the hook runs.  The hook gets the instance, the epoch (fencing token) of
the term it would start, and the old master's address.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pyvrrp.lab.topology import InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml, wait_for


def _node(lab: Lab, host: str, prio: int, **extra: object) -> PyvrrpNode:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    inst = InstanceSpec(name="VI_51", priority=prio, version=3, advert_int_s=0.1, extra=dict(extra))
    text = pyvrrp_toml(host, [inst], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir))
    return PyvrrpNode(lab, host, text).start()


def _hook(tmp: Path, body: str) -> tuple[Path, Path]:
    log = tmp / "fence.log"
    script = tmp / "fence.sh"
    script.write_text(f'#!/bin/sh\necho "$* epoch=$PYVRRP_EPOCH" >> {log}\n{body}\n')
    script.chmod(0o755)
    return script, log


def test_fence_success_then_takeover_with_epoch(lab: Lab, tmp_path: Path) -> None:
    """The takeover waits for a successful fence hook, which gets INSTANCE, epoch and old master."""
    script, log = _hook(tmp_path, "sleep 0.3; exit 0")
    lb1 = _node(lab, "lb1", 150)
    lb1.wait_state("MASTER", 10)  # lb2 starts after: it must not win a start-up race
    lb2 = _node(lab, "lb2", 100, fence_script=str(script), fence_timeout=2)
    lb2.wait_state("BACKUP", 5)
    # lb2 may be BACKUP before it has heard lb1's first advert: wait until it knows its master
    wait_for(lambda: (lb2.instance() or {}).get("master_ip") == "192.168.233.10", 5)
    epoch_before = lb2.instance()["epoch"]
    log.unlink(missing_ok=True)
    lb1.kill9()
    t0 = time.monotonic()
    lb2.wait_state("MASTER", 5)
    assert time.monotonic() - t0 >= 0.3  # it waited for the hook
    line = log.read_text().strip().splitlines()[0]
    assert line.startswith("INSTANCE VI_51 ")
    assert "192.168.233.10" in line
    assert f"epoch={epoch_before + 1}" in line
    assert lb2.instance()["epoch"] == epoch_before + 1
    assert lab.holds_vip("lb2")


def test_fence_failure_keeps_backup(lab: Lab, tmp_path: Path) -> None:
    """fence_failure = stay-backup: a failing hook means no takeover (retried every Master_Down)."""
    script, log = _hook(tmp_path, "exit 1")
    lb1 = _node(lab, "lb1", 150)
    lb1.wait_state("MASTER", 10)
    lb2 = _node(lab, "lb2", 100, fence_script=str(script), fence_timeout=1, fence_failure="stay-backup")
    lb1.wait_state("MASTER", 10)
    lb2.wait_state("BACKUP", 5)
    lb1.kill9()
    time.sleep(2.0)  # several Master_Down_Intervals (about 0.36 s each)
    assert lb2.state() == "BACKUP"
    assert not lab.holds_vip("lb2")
    assert len(log.read_text().splitlines()) >= 2  # retried


def test_fence_failure_proceed(lab: Lab, tmp_path: Path) -> None:
    """fence_failure = proceed: a failing hook is logged and the takeover goes ahead."""
    script, _log = _hook(tmp_path, "exit 3")
    lb1 = _node(lab, "lb1", 150)
    lb1.wait_state("MASTER", 10)
    lb2 = _node(lab, "lb2", 100, fence_script=str(script), fence_timeout=1, fence_failure="proceed")
    lb1.wait_state("MASTER", 10)
    lb2.wait_state("BACKUP", 5)
    lb1.kill9()
    lb2.wait_state("MASTER", 5)
    assert "fence_failed_proceeding" in lb2.log_text()


def test_master_returning_abandons_the_takeover(lab: Lab, tmp_path: Path) -> None:
    """Adverts from the old master while the hook runs abandon the takeover; the hook is killed."""
    script, log = _hook(tmp_path, "sleep 5; exit 0")
    lb1 = _node(lab, "lb1", 150)
    lb1.wait_state("MASTER", 10)
    lb2 = _node(lab, "lb2", 100, fence_script=str(script), fence_timeout=8)
    lb1.wait_state("MASTER", 10)
    lb2.wait_state("BACKUP", 5)
    pids = lb1.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 3
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.exists(), "the fence hook never started"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    time.sleep(1.0)
    assert lb2.state() == "BACKUP"
    assert lb1.state() == "MASTER"
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    assert "takeover_abandoned" in lb2.log_text()
    out = lab.exec("lb2", ["pgrep", "-f", str(script)], check=False).stdout
    assert out.strip() == ""
