"""keepalived's ``net_namespace NAME`` (issue 16): the daemon moves itself into the namespace.

The daemon under test is launched from *another* lab host's namespace (``client``), never
from the root namespace, and its config names lb1's namespace: VRRP, the VIP and the
adverts must all be lb1's, where a normal pyvrrp on lb2 sees them as its master's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from _daemon_helpers import inst, start, v3

from pyvrrp.lab.topology import Lab, PyvrrpNode


class LaunchedElsewhere(PyvrrpNode):
    """A PyvrrpNode whose process starts in ``launch_from``'s namespace; its config names
    ``host``'s namespace as ``net_namespace``."""

    def __init__(self, lab: Lab, host: str, launch_from: str, namespace: str, **kw: object) -> None:
        super().__init__(lab, host, **kw)  # type: ignore[arg-type]
        self.launch_from = launch_from
        text = self.config_path.read_text()
        self.config_path.write_text(
            text.replace("[global_defs]\n", f'[global_defs]\nnet_namespace = "{namespace}"\n', 1)
        )

    def start(self) -> LaunchedElsewhere:
        with open(self.log_path, "ab") as log:
            self.proc = self.lab.popen(
                self.launch_from, self.argv(), stdout=log, stderr=subprocess.STDOUT, env=self.env()
            )
        return self


def test_net_namespace_runs_vrrp_and_the_vip_in_the_named_namespace(lab: Lab) -> None:
    backup = start(lab, "lb2", v3(100))
    backup.wait_state("BACKUP", 5)
    node = LaunchedElsewhere(lab, "lb1", "client", lab.ns("lb1"), instances=[v3(150)])
    node.start()
    try:
        node.wait_state("MASTER", 10)
        backup.wait_state("BACKUP", 3)
        assert lab.holds_vip("lb1") and not lab.holds_vip("client") and not lab.holds_vip("lb2")
        assert inst(backup)["master_ip"] == lab.ip("lb1")  # its adverts leave from lb1's address
        assert node.stop() == 0  # SIGTERM: priority 0 from lb1, the VIP moves to lb2 at once
        backup.wait_state("MASTER", 3)
        assert not lab.holds_vip("lb1")
    finally:
        node.stop()
        backup.stop()


def test_missing_net_namespace_is_one_line_and_creates_nothing(lab: Lab) -> None:
    missing = f"{lab.prefix}-nosuchns"
    node = LaunchedElsewhere(lab, "lb1", "lb1", missing, instances=[v3(150)])
    proc = lab.exec("lb1", node.argv(), check=False, timeout=60, env=node.env())
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("pyvrrp:")]
    assert f"net_namespace {missing}: no such network namespace" in line and "ip netns add" in line
    assert not Path("/run/netns", missing).exists()
    assert not lab.holds_vip("lb1")
