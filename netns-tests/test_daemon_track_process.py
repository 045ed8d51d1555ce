"""vrrp_track_process in the running daemon (issue 16): kill the tracked process, the
instance goes FAULT (weight 0) or drops by its weight and the peer takes over; start it
again and it recovers.  Both event sources are exercised and their reaction time measured:

* **connector**: the kernel's proc connector answers only in the initial network
  namespace, so this daemon is launched from the root namespace with ``net_namespace``
  naming lb1's namespace: it subscribes, then moves into lb1 before it opens any other
  socket (nothing is sent from the root namespace);
* **polling**: a daemon started inside lb1 (``ip netns exec``) cannot subscribe
  (ECONNREFUSED outside the initial namespace), says so, and rescans /proc every second.

The tracked process is ``sleep`` run through a symlink with a per-test random name, so
its process name (comm) is unique to the test.
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _daemon_helpers import inst, log_events, log_wall, wait_view

from pyvrrp.lab.topology import InstanceSpec, Lab, PyvrrpNode, pyvrrp_toml

REACTION: dict[str, list[float]] = {}


class RootLaunchedNode(PyvrrpNode):
    """A PyvrrpNode started in the root namespace whose config names ``host``'s namespace
    as ``net_namespace``: the daemon enters it before opening any socket but the proc
    connector's."""

    def start(self) -> RootLaunchedNode:
        with open(self.log_path, "ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        self.lab._procs.append(self.proc)
        return self


def _config(
    lab: Lab, host: str, prio: int, extra_toml: str = "", *, netns: bool = False, **extra: Any
) -> str:
    node_dir = lab.run_dir / f"pyvrrp-{host}"
    spec = InstanceSpec(name="VI_51", priority=prio, version=3, advert_int_s=0.1, extra=dict(extra))
    text = pyvrrp_toml(host, [spec], control_socket=str(node_dir / "control.sock"), state_dir=str(node_dir))
    if netns:
        text = text.replace("[global_defs]\n", f'[global_defs]\nnet_namespace = "{lab.ns(host)}"\n', 1)
    return text + extra_toml


class Sleeper:
    """``sleep`` under a unique process name (a symlink: comm is the executable's name)."""

    def __init__(self, lab: Lab, tmp: Path) -> None:
        self.lab = lab
        self.name = "tp" + secrets.token_hex(5)  # 12 characters: within comm's 15
        self.exe = tmp / self.name
        self.exe.symlink_to("/bin/sleep")
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> float:
        t = time.time()
        self.proc = self.lab.popen("lb1", [str(self.exe), "600"])
        return t

    def kill(self) -> float:
        assert self.proc is not None
        t = time.time()
        self.proc.kill()
        self.proc.wait()
        return t


def _changes(node: PyvrrpNode, up: bool) -> list[float]:
    return [log_wall(r) for r in log_events(node, "track_process_changed") if r.get("up") is up]


def _reaction(node: PyvrrpNode, up: bool, since: float, timeout_s: float = 10.0) -> float:
    """Seconds from ``since`` (wall) to the daemon's ``track_process_changed`` log record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        later = [t for t in _changes(node, up) if t >= since - 0.05]
        if later:
            return max(0.0, later[0] - since)
        time.sleep(0.02)
    raise AssertionError(f"no track_process_changed up={up} in {timeout_s}s; log:\n{node.log_text()[-3000:]}")


def _row(node: PyvrrpNode) -> dict[str, Any]:
    rows = [t for t in inst(node).get("trackers", []) if t.get("kind") == "process"]
    assert len(rows) == 1, inst(node)
    return rows[0]


@pytest.mark.parametrize("mode", ["connector", "polling"])
@pytest.mark.parametrize("weight", [0, -60])
def test_killed_process_moves_the_vip_and_its_return_brings_it_back(
    lab: Lab, tmp_path: Path, mode: str, weight: int
) -> None:
    sleeper = Sleeper(lab, tmp_path)
    extra = f'\n[vrrp_track_process.svc]\nprocess = "{sleeper.name}"\nweight = {weight}\n'
    sleeper.start()
    cls = RootLaunchedNode if mode == "connector" else PyvrrpNode
    text = _config(lab, "lb1", 150, extra, netns=mode == "connector", track_process=["svc"])
    lb1 = cls(lab, "lb1", text).start()
    lb2 = PyvrrpNode(lab, "lb2", _config(lab, "lb2", 100)).start()
    try:
        lb1.wait_state("MASTER", 15)
        lb2.wait_state("BACKUP", 10)
        row = _row(lb1)
        assert row["mode"] == mode and row["up"] is True and row["running"] == 1, row
        if mode == "polling":
            assert "initial network namespace" in row["connector_unavailable"], row
            assert log_events(lb1, "track_process_polling"), lb1.log_text()[-2000:]
        assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")

        t_kill = sleeper.kill()
        lb2.wait_state("MASTER", 10)
        lb1.wait_state("FAULT" if weight == 0 else "BACKUP", 10)
        down_s = _reaction(lb1, False, t_kill)
        view = inst(lb1)
        if weight:
            assert view["effective_priority"] == 90 and view["priority"] == 150, view
        else:
            assert "process:svc" in view["faults"], view
        assert _row(lb1)["running"] == 0
        assert lab.holds_vip("lb2") and not lab.holds_vip("lb1")

        t_start = sleeper.start()
        lb1.wait_state("MASTER", 10)
        up_s = _reaction(lb1, True, t_start)
        wait_view(lb2, lambda v: v["state"] == "BACKUP", 10, what="lb2 back to BACKUP")
        assert inst(lb1)["effective_priority"] == 150
        assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
        assert "Traceback" not in lb1.log_text()
        REACTION.setdefault(mode, []).extend([down_s, up_s])
        print(
            f"\ntrack_process {mode} weight={weight}: exit seen after {down_s * 1000:.0f} ms, "
            f"start seen after {up_s * 1000:.0f} ms"
        )
        # connector: events within a fraction of a second (wide margin for a loaded VM);
        # polling: within one poll interval (1 s) plus slack
        limit = 1.0 if mode == "connector" else 3.0
        assert down_s < limit and up_s < limit, (down_s, up_s)
    finally:
        if sleeper.proc is not None and sleeper.proc.poll() is None:
            sleeper.kill()
        lb1.stop()
        lb2.stop()


def test_terminate_delay_rides_out_a_restart(lab: Lab, tmp_path: Path) -> None:
    """``delay 2``: a process that is restarted within the delay never moves the VIP; one
    that stays away moves it once the delay has passed (connector mode)."""
    sleeper = Sleeper(lab, tmp_path)
    extra = f'\n[vrrp_track_process.svc]\nprocess = "{sleeper.name}"\ndelay = 2\n'
    sleeper.start()
    lb1 = RootLaunchedNode(lab, "lb1", _config(lab, "lb1", 150, extra, netns=True, track_process=["svc"]))
    lb1.start()
    try:
        lb1.wait_state("MASTER", 15)
        assert _row(lb1)["mode"] == "connector"
        sleeper.kill()
        time.sleep(0.5)
        assert _row(lb1)["pending"] is True and inst(lb1)["state"] == "MASTER"
        sleeper.start()
        time.sleep(2.5)  # past the delay: the restart was ridden out
        assert inst(lb1)["state"] == "MASTER" and _row(lb1)["up"] is True
        assert not _changes(lb1, False)
        t_kill = sleeper.kill()
        lb1.wait_state("FAULT", 10)
        waited = _reaction(lb1, False, t_kill)
        assert 1.8 <= waited < 5.0, waited
    finally:
        if sleeper.proc is not None and sleeper.proc.poll() is None:
            sleeper.kill()
        lb1.stop()


CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "realconf" / "31-keydb-track-process.conf"


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/realconf is not here")
def test_corpus_keydb_config_runs(lab: Lab, tmp_path: Path) -> None:
    """../shared/realconf/31 (keepalived.conf as published, only its interface, VIP and the
    process name adapted to the lab): FAULT while no such process runs, then up (it is a
    lone BACKUP with nopreempt, so it becomes MASTER after master-down) once it runs; the
    process stopping moves it to FAULT after the configured 2 s delay, not at once."""
    sleeper = Sleeper(lab, tmp_path)
    text = CORPUS.read_text()
    assert "process haproxy" in text and "interface ens3" in text
    text = text.replace("process haproxy", f"process {sleeper.name}").replace(
        "interface ens3", "interface eth0"
    )
    text = text.replace("10.20.30.40/27", "192.168.233.200/32")
    node = PyvrrpNode(lab, "lb1", text, config_name="keepalived.conf").start()
    try:
        node.wait_state("FAULT", 15, instance="VI_1")
        assert "process:chk_haproxy" in inst(node, "VI_1")["faults"]
        sleeper.start()
        node.wait_state("MASTER", 15, instance="VI_1")  # advert_int 1: master-down ~3.0 s
        assert lab.holds_vip("lb1")
        t_kill = sleeper.kill()
        time.sleep(1.0)
        assert inst(node, "VI_1")["state"] == "MASTER"  # within `delay 2`
        node.wait_state("FAULT", 10, instance="VI_1")
        assert time.time() - t_kill >= 1.9
        assert not lab.holds_vip("lb1")
    finally:
        if sleeper.proc is not None and sleeper.proc.poll() is None:
            sleeper.kill()
        node.stop()


_HIDEPID_PROBE = """
import json, sys
from pyvrrp.config.models import VrrpTrackProcess
from pyvrrp.runtime.trackers import ProcessWatch
w = ProcessWatch({"svc": VrrpTrackProcess(process=sys.argv[1])}, lambda *a: None)
w.watch("VI_1", "svc", None, False)
w.initial_scan()
print(json.dumps({"hidepid": w.hidepid, "running": w.quorums["svc"].count}))
"""


@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists(), reason="needs setpriv (util-linux)")
def test_hidepid_hides_root_processes_from_a_non_root_tracker(tmp_path: Path) -> None:
    """``/proc`` mounted ``hidepid=2`` (in a private mount namespace: the host's /proc is not
    touched): a tracker running as nobody cannot see root's process, counts 0 and says why;
    the same probe as root sees it.  No network is involved."""
    import json
    import sys

    name = "tp" + secrets.token_hex(5)
    exe = tmp_path / name
    exe.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(exe), "600"])  # root's; its name is only in this test
    try:
        # the probe runs as nobody: it gets its code on the command line (pytest's tmp dirs are 0700)
        probe = shlex.quote(_HIDEPID_PROBE)
        inner = (
            "mount -t proc -o hidepid=2 proc /proc && "
            f"setpriv --reuid=65534 --regid=65534 --clear-groups {sys.executable} -c {probe} {name}; "
            f"{sys.executable} -c {probe} {name}"
        )
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            },
        )
        assert out.returncode == 0, out.stderr
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        nobody, root = (json.loads(ln) for ln in lines)
        assert nobody["hidepid"] in ("2", "invisible"), out.stdout  # the kernel shows the word since 5.8
        assert nobody["running"] == 0 and root["running"] == 1, out.stdout
        assert "track_process_hidepid" in out.stdout + out.stderr  # said once, as nobody
    finally:
        proc.kill()
        proc.wait()


def test_reload_keeps_the_connector_after_entering_the_namespace(lab: Lab, tmp_path: Path) -> None:
    """SIGHUP rebuilds the trackers; the daemon (now inside lb1's namespace, where a new
    subscription would be refused) keeps using the connector it opened before moving, and a
    weight added by the reload applies."""
    import os
    import signal

    sleeper = Sleeper(lab, tmp_path)
    extra = f'\n[vrrp_track_process.svc]\nprocess = "{sleeper.name}"\n'
    sleeper.start()
    text = _config(lab, "lb1", 150, extra, netns=True, track_process=["svc"])
    lb1 = RootLaunchedNode(lab, "lb1", text).start()
    try:
        lb1.wait_state("MASTER", 15)
        assert _row(lb1)["mode"] == "connector"
        lb1.config_path.write_text(
            text.replace('track_process = ["svc"]', 'track_process = [{name = "svc", weight = -20}]')
        )
        assert lb1.proc is not None
        os.kill(lb1.proc.pid, signal.SIGHUP)
        wait_view(
            lb1,
            lambda v: (
                any(
                    t.get("effect") == [0, False] and t.get("kind") == "process"
                    for t in v.get("trackers", [])
                )
                and bool(log_events(lb1, "reloaded"))
            ),
            10,
            what="reloaded",
        )
        time.sleep(0.5)
        t_kill = sleeper.kill()
        wait_view(lb1, lambda v: v["effective_priority"] == 130, 10, what="priority 150 - 20")
        assert _reaction(lb1, False, t_kill) < 1.0
        row = _row(lb1)
        assert row["mode"] == "connector" and "connector_unavailable" not in row, row
        assert inst(lb1)["state"] == "MASTER"  # alone on the link: still master at 130
    finally:
        if sleeper.proc is not None and sleeper.proc.poll() is None:
            sleeper.kill()
        lb1.stop()
