"""Trackers in the running daemon: vrrp_script weights and FAULT, track_file, track_interface.

Each test builds its own lab (unique namespaces, removed afterwards) and runs a pyvrrp pair
with VRRPv3 at 0.1 s so the whole file stays fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvrrp.lab.topology import InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml


def _node(lab: Lab, host: str, prio: int, extra_toml: str = "", **extra: object) -> PyvrrpNode:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    inst = InstanceSpec(name="VI_51", priority=prio, version=3, advert_int_s=0.1, extra=dict(extra))
    text = pyvrrp_toml(host, [inst], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir))
    return PyvrrpNode(lab, host, text + extra_toml).start()


def _flag_script(tmp: Path, name: str) -> tuple[Path, Path]:
    flag = tmp / f"{name}.ok"
    script = tmp / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ntest -e {flag}\n")
    script.chmod(0o755)
    return script, flag


@pytest.mark.parametrize("weight", [-60, 0])
def test_vrrp_script_failure_moves_the_vip(lab: Lab, tmp_path: Path, weight: int) -> None:
    """TMR-10, SM-15, SM-16: a failing vrrp_script with a negative weight lowers lb1 below lb2
    (effective priority recomputed, not accumulated); with weight 0 it means FAULT.  When the
    script passes again, lb1 preempts back."""
    script, flag = _flag_script(tmp_path, "chk")
    flag.touch()
    extra = (
        f'\n[vrrp_script.chk]\nscript = "{script}"\ninterval = 0.2\nfall = 2\nrise = 2\nweight = {weight}\n'
    )
    lb1 = _node(lab, "lb1", 150, extra, track_script=["chk"])
    lb2 = _node(lab, "lb2", 100)
    lb1.wait_state("MASTER", 10)
    lb2.wait_state("BACKUP", 5)

    flag.unlink()
    lb2.wait_state("MASTER", 5)
    want = "BACKUP" if weight else "FAULT"
    lb1.wait_state(want, 5)
    view = lb1.instance()
    assert view is not None
    if weight:
        assert view["effective_priority"] == 90 and view["priority"] == 150
    else:
        assert "script:chk" in view["faults"]
    assert lab.holds_vip("lb2") and not lab.holds_vip("lb1")

    flag.touch()
    lb1.wait_state("MASTER", 5)
    assert lb1.instance()["effective_priority"] == 150
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")


def test_hung_script_is_killed_and_counts_as_failure(lab: Lab, tmp_path: Path) -> None:
    """A script that hangs is killed at its timeout and counts as failed; the daemon stays healthy."""
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    extra = f'\n[vrrp_script.hang]\nscript = "{script}"\ninterval = 0.2\ntimeout = 0.3\nweight = 0\n'
    lb1 = _node(lab, "lb1", 150, extra, track_script=["hang"])
    lb1.wait_state("FAULT", 10)
    assert "script:hang" in lb1.instance()["faults"]
    # no sleep process survives its timeout for long (killed with its process group)
    assert lab.exec("lb1", ["pgrep", "-f", str(script)], check=False).stdout.count("\n") <= 1


def test_track_file_value_times_weight(lab: Lab, tmp_path: Path) -> None:
    """track_file: the file's integer times the weight adjusts the priority; a missing file reads 0."""
    path = tmp_path / "prio"
    extra = f'\n[track_file.tf]\nfile = "{path}"\nweight = -1\n'
    lb1 = _node(lab, "lb1", 150, extra, track_file=["tf"])
    lb2 = _node(lab, "lb2", 100)
    lb1.wait_state("MASTER", 10)
    path.write_text("70\n")
    lb2.wait_state("MASTER", 5)
    assert lb1.instance()["effective_priority"] == 80
    path.write_text("0\n")
    lb1.wait_state("MASTER", 5)


def test_missing_script_is_reported_not_fatal(lab: Lab, tmp_path: Path) -> None:
    """A vrrp_script that does not exist is a failure with a clear log line, never a crash."""
    extra = '\n[vrrp_script.gone]\nscript = "/nonexistent/check.sh"\ninterval = 0.2\nweight = 0\n'
    lb1 = _node(lab, "lb1", 150, extra, track_script=["gone"])
    lb1.wait_state("FAULT", 10)
    assert lb1.alive()
    assert "track_script_error" in lb1.log_text()
    assert "Traceback" not in lb1.log_text()


def test_reload_adds_and_removes_gateway_check(lab: Lab) -> None:
    """Issue #4 §2 + reload: adding a gateway_check whose target does not answer isolates the
    master (FAULT, VIP released) without a restart; removing it again restores MASTER."""
    import os
    import signal

    lb1 = _node(lab, "lb1", 150)
    lb1.wait_state("MASTER", 10)
    base = lb1.config_path.read_text()
    guarded = base.replace(
        "[vrrp_instance.VI_51]",
        "[vrrp_instance.VI_51]\n"
        'gateway_check = { targets = ["192.168.233.1"], interval = 0.1, timeout = 0.05, fall = 2, rise = 2 }',
    )
    assert guarded != base
    lb1.config_path.write_text(guarded)
    os.kill(lb1.pids()[0], signal.SIGHUP)
    lb1.wait_state("FAULT", 5)
    view = lb1.instance()
    assert view["isolated"] is True and view["gateway_check"] is not None
    assert not lab.holds_vip("lb1")
    lb1.config_path.write_text(base)
    os.kill(lb1.pids()[0], signal.SIGHUP)
    lb1.wait_state("MASTER", 5)
    assert lb1.instance()["gateway_check"] is None
    assert lab.holds_vip("lb1")
