"""The daemon dates a received advert from its kernel arrival stamp (no root needed)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from pyvrrp.base import clock
from pyvrrp.config.load import load_config
from pyvrrp.runtime.daemon import Daemon


def _daemon(tmp_path: object) -> Daemon:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "c.toml"
    cfg.write_text(
        '[vrrp_instance.VI]\ninterface = "eth0"\nvirtual_router_id = 1\npriority = 100\n'
        'virtual_ipaddress = ["192.0.2.1/32"]\n'
    )
    return Daemon(str(cfg), load_config(str(cfg)), control_socket=str(Path(str(tmp_path)) / "s"))


def test_arrival_is_the_kernel_stamp_on_the_monotonic_clock(tmp_path: object) -> None:
    d = _daemon(tmp_path)
    key = ("eth0", 4)
    d.sockets[key] = SimpleNamespace(rx_stamp_ns=time.time_ns() - 3_000_000)  # arrived 3 ms ago
    at = d._arrival(key)
    assert at is not None
    assert 0.0025 <= clock.monotonic() - at <= 0.05


def test_arrival_falls_back_to_now_when_the_stamp_is_unusable(tmp_path: object) -> None:
    d = _daemon(tmp_path)
    key = ("eth0", 4)
    assert d._arrival(key) is None  # no socket
    for stamp in (0, time.time_ns() + 2_000_000_000, time.time_ns() - 10_000_000_000):
        d.sockets[key] = SimpleNamespace(rx_stamp_ns=stamp)  # none / in the future / a clock step
        assert d._arrival(key) is None, stamp
