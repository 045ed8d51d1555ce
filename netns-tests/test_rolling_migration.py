"""Rolling migration from keepalived to pyvrrp and back, with the same keepalived.conf (issue #6 §3).

A keepalived pair runs from keepalived.conf; lb2 (the backup) is switched to
``pyvrrp run -f keepalived.conf``, then lb1; then back to keepalived.  A sampler
watches which nodes hold the VIP throughout: never two at once, and the VIP is
never missing for longer than a takeover takes.
"""

from __future__ import annotations

import threading
import time

import pytest

from pyvrrp.lab.keepalived import KeepalivedNode, keepalived_conf
from pyvrrp.lab.topology import InstanceSpec, Lab, PyvrrpNode, wait_for

pytestmark = pytest.mark.keepalived


class HolderSampler:
    """Samples which lab hosts hold the VIP, every ~20 ms, in a background thread."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.samples: list[tuple[float, bool, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.lab.holds_vip("lb1"), self.lab.holds_vip("lb2")))
            time.sleep(0.02)

    def __enter__(self) -> HolderSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def dual_samples(self) -> int:
        return sum(1 for _, a, b in self.samples if a and b)

    def longest_gap_s(self) -> float:
        longest, start = 0.0, None
        for t, a, b in self.samples:
            if not a and not b:
                start = t if start is None else start
                longest = max(longest, t - start)
            else:
                start = None
        return longest


def _conf(host: str, prio: int) -> str:
    inst = InstanceSpec(name="VI_51", priority=prio, version=3, advert_int_s=0.1)
    return keepalived_conf(host, [inst])


def _pyvrrp(lab: Lab, host: str, text: str) -> PyvrrpNode:
    return PyvrrpNode(lab, host, text, config_name="keepalived.conf").start()


def test_rolling_migration_keeps_one_master(lab: Lab) -> None:
    """IOP: keepalived pair -> pyvrrp on the backup -> pyvrrp on both -> keepalived again;
    exactly one VIP holder at every sample, and no outage longer than a takeover."""
    conf1, conf2 = _conf("lb1", 150), _conf("lb2", 100)
    ka1 = KeepalivedNode(lab, "lb1", conf1).start()
    ka2 = KeepalivedNode(lab, "lb2", conf2).start()
    ka1.wait_state("MASTER", 10)
    ka2.wait_state("BACKUP", 5)

    with HolderSampler(lab) as sampler:
        # 1. the backup moves to pyvrrp with the very same keepalived.conf
        ka2.stop()
        py2 = _pyvrrp(lab, "lb2", conf2)
        py2.wait_state("BACKUP", 10)
        wait_for(lambda: (py2.instance() or {}).get("master_ip") == "192.168.233.10", 5)
        # 2. the master moves: SIGTERM sends priority 0, pyvrrp on lb2 takes over at Skew_Time,
        #    then pyvrrp on lb1 preempts back
        ka1.stop()
        py2.wait_state("MASTER", 3)
        py1 = _pyvrrp(lab, "lb1", conf1)
        py1.wait_state("MASTER", 10)
        py2.wait_state("BACKUP", 3)
        # 3. and back to keepalived on lb2 (switch back works too)
        py2.stop()
        ka2 = KeepalivedNode(lab, "lb2", conf2).start()
        ka2.wait_state("BACKUP", 10)
        time.sleep(0.5)
        assert py1.state() == "MASTER"

    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    assert len(sampler.samples) > 50
    assert sampler.dual_samples() == 0, "two VIP holders at once"
    assert sampler.longest_gap_s() < 1.0, f"no VIP holder for {sampler.longest_gap_s():.2f}s"
