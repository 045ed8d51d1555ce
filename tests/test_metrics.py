"""Prometheus metrics: families rendered from ``state --json`` views, and the ``/metrics`` listener.

The rendering tests parse the exposition text back with prometheus-client's own parser
and check sample values against the views they came from; the server tests scrape over
loopback from a server running in the test's asyncio loop.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from pyvrrp.config.models import GlobalDefs, parse_listen
from pyvrrp.runtime import metrics
from pyvrrp.runtime.metrics import (
    MetricsServer,
    MetricsSnapshot,
    PyvrrpCollector,
    render,
    take_snapshot,
)
from pyvrrp.runtime.state_view import render_table


def view(name: str = "VI_1", state: str = "MASTER", **over: Any) -> dict[str, Any]:
    """A view shaped as Daemon.views() builds it (instance_view + the daemon's extras)."""
    v: dict[str, Any] = {
        "name": name,
        "interface": "eth0",
        "vrid": 51,
        "version": 3,
        "family": "ipv4",
        "state": state,
        "priority": 150,
        "effective_priority": 130,
        "master_ip": "192.0.2.10",
        "master_priority": 150,
        "last_advert_age_s": 0.25,
        "vips": ["192.0.2.200/32", "192.0.2.201/24"],
        "vips_held": state == "MASTER",
        "unicast_peers": [],
        "last_transition": {"from": "BACKUP", "to": "MASTER", "reason": "master_down", "at": 1_700_000_000.5},
        "epoch": 7,
        "faults": [],
        "counters": {
            "adverts_rx": 12,
            "adverts_tx": 340,
            "transitions": 2,
            "become_master": 1,
            "release_master": 0,
            "prio_zero_rx": 1,
            "takeover_requests": 3,
            "takeover_denied": 2,
            "conflicts_detected": 4,
            "garp_bursts": 2,
        },
        "drops": {"ttl": 5, "auth": 2, "interval": 1},
        "isolated": False,
        "gateway_check": None,
        "conflict": None,
        "drops_socket": {"vrid": 9, "checksum": 1},
        "waiting_for": None,
        "trackers": [
            {"kind": "script", "name": "chk_nginx", "state": "UP", "effect": [0, False], "last_error": None},
            {"kind": "script", "name": "chk_bgp", "state": "RISING", "effect": [0, True], "last_error": None},
            {"kind": "interface", "name": "eth1", "weight": 0},
        ],
    }
    v.update(over)
    return v


def parse(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Exposition text -> {sample name: {sorted labels: value}}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(samples: dict[str, Any], name: str, /, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def scrape_text(snap: MetricsSnapshot, **kw: Any) -> dict[str, Any]:
    body, _ = render(snap, process=False, **kw)
    return parse(body)


# ------------------------------------------------------------------ config


def test_metrics_listen_is_off_by_default_and_normalised() -> None:
    assert GlobalDefs().metrics_listen is None
    assert GlobalDefs().metrics_keepalived_names is True
    assert GlobalDefs(metrics_listen="127.0.0.1:9165").metrics_listen == "127.0.0.1:9165"
    assert GlobalDefs(metrics_listen="[0:0::1]:9165").metrics_listen == "[::1]:9165"
    assert parse_listen("[::]:9165") == ("::", 9165)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1", "not ADDR:PORT"),
        (":9165", "not ADDR:PORT"),
        ("::1:9165", "in brackets"),
        ("[10.0.0.1]:9165", "IPv6 addresses only"),
        ("metrics.example:9165", "not an IP address"),
        ("127.0.0.1:0", "port must be 1-65535"),
        ("127.0.0.1:70000", "port must be 1-65535"),
        ("127.0.0.1:http", "port must be 1-65535"),
        ("127.0.0.1:\u0663", "port must be 1-65535"),  # a digit, but not an ASCII one
    ],
)
def test_metrics_listen_rejects_what_cannot_be_bound(text: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        GlobalDefs(metrics_listen=text)


# --------------------------------------------------------------- keepalived


def test_keepalived_state_one_sample_per_vip_with_keepalived_numbers() -> None:
    snap = MetricsSnapshot(
        views=[view("VI_1", "MASTER"), view("VI_2", "BACKUP", vrid=52), view("VI_3", "FAULT", vips=[])]
    )
    s = scrape_text(snap)
    lbl = {"iname": "VI_1", "intf": "eth0", "vrid": "51"}
    assert value(s, "keepalived_vrrp_state", **lbl, ip_address="192.0.2.200") == 2
    assert value(s, "keepalived_vrrp_state", **lbl, ip_address="192.0.2.201") == 2
    assert (
        value(s, "keepalived_vrrp_state", iname="VI_2", intf="eth0", vrid="52", ip_address="192.0.2.200") == 1
    )
    # an instance without VIPs still shows its state
    assert value(s, "keepalived_vrrp_state", iname="VI_3", intf="eth0", vrid="51", ip_address="") == 3
    assert len(s["keepalived_vrrp_state"]) == 5
    assert metrics.KEEPALIVED_STATE == {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}


def test_keepalived_counters_map_engine_counters_and_drops() -> None:
    s = scrape_text(MetricsSnapshot(views=[view()]))
    lbl = {"iname": "VI_1", "intf": "eth0", "vrid": "51"}
    assert value(s, "keepalived_advertisements_received_total", **lbl) == 12
    assert value(s, "keepalived_advertisements_sent_total", **lbl) == 340
    assert value(s, "keepalived_become_master_total", **lbl) == 1
    assert value(s, "keepalived_release_master_total", **lbl) == 0
    assert value(s, "keepalived_priority_zero_received_total", **lbl) == 1
    assert value(s, "keepalived_ip_ttl_errors_total", **lbl) == 5
    assert value(s, "keepalived_authentication_failure_total", **lbl) == 2
    assert value(s, "keepalived_advertisements_interval_errors_total", **lbl) == 1
    assert value(s, "keepalived_packet_length_errors_total", **lbl) == 0
    assert value(s, "keepalived_up") == 1


def test_keepalived_script_status_good_only_when_up_or_falling_and_once_per_script() -> None:
    second = view("VI_2", vrid=52)  # the same scripts tracked by a second instance
    second["trackers"][0]["state"] = "FALLING"
    s = scrape_text(MetricsSnapshot(views=[view(), second]))
    assert s["keepalived_script_status"] == {(("name", "chk_nginx"),): 1.0, (("name", "chk_bgp"),): 0.0}


def test_keepalived_names_switch_off_leaves_only_pyvrrp_families() -> None:
    s = scrape_text(MetricsSnapshot(views=[view()]), keepalived_names=False)
    assert not [n for n in s if n.startswith("keepalived_")]
    assert "pyvrrp_effective_priority" in s


# ------------------------------------------------------------------ pyvrrp


def test_pyvrrp_instance_families() -> None:
    s = scrape_text(MetricsSnapshot(views=[view(), view("VI_2", "BACKUP", vrid=52, faults=["link down"])]))
    il = {"instance": "VI_1", "interface": "eth0", "vrid": "51"}
    assert value(s, "pyvrrp_vrrp_state", **il, pyvrrp_vrrp_state="MASTER") == 1
    assert value(s, "pyvrrp_vrrp_state", **il, pyvrrp_vrrp_state="BACKUP") == 0
    b = {"instance": "VI_2", "interface": "eth0", "vrid": "52"}
    assert value(s, "pyvrrp_vrrp_state", **b, pyvrrp_vrrp_state="BACKUP") == 1
    assert value(s, "pyvrrp_priority", **il) == 150
    assert value(s, "pyvrrp_effective_priority", **il) == 130
    assert value(s, "pyvrrp_vips_held", **il) == 1 and value(s, "pyvrrp_vips_held", **b) == 0
    assert value(s, "pyvrrp_faults", **b) == 1 and value(s, "pyvrrp_faults", **il) == 0
    assert value(s, "pyvrrp_last_transition_timestamp_seconds", **il) == 1_700_000_000.5
    assert value(s, "pyvrrp_transitions_total", **il) == 2
    assert value(s, "pyvrrp_become_master_total", **il) == 1
    assert value(s, "pyvrrp_conflicts_detected_total", **il) == 4
    assert value(s, "pyvrrp_drops_total", **il, reason="ttl") == 5
    assert value(s, "pyvrrp_drops_total", **il, reason="auth") == 2
    assert value(s, "pyvrrp_engine_events_total", **il, event="garp_bursts") == 2
    assert value(s, "pyvrrp_takeover_gate_total", **il, verdict="requested") == 3
    assert value(s, "pyvrrp_takeover_gate_total", **il, verdict="denied") == 2
    assert value(s, "pyvrrp_takeover_gate_total", **il, verdict="ignored") == 0
    # daemon-wide socket drops: once, not once per instance
    assert s["pyvrrp_socket_drops_total"] == {(("reason", "vrid"),): 9.0, (("reason", "checksum"),): 1.0}
    assert value(s, "pyvrrp_instances") == 2
    ts = {"instance": "VI_1", "name": "chk_bgp"}
    assert value(s, "pyvrrp_track_script_state", **ts, pyvrrp_track_script_state="RISING") == 1
    assert value(s, "pyvrrp_track_script_state", **ts, pyvrrp_track_script_state="UP") == 0


def test_gateway_check_and_conflict_families() -> None:
    gw = {
        "isolated": True,
        "verdict": "isolated",
        "method": "arp",
        "reachable": 0,
        "min_reachable": 1,
        "on_isolated": "fault",
        "targets": [
            {"target": "192.0.2.1", "ok": False, "state": "DOWN", "rtt_ms": None, "at": 1.0},
            {"target": "192.0.2.2", "ok": True, "state": "UP", "rtt_ms": 1.5, "at": 1.0},
            {"target": "192.0.2.3", "ok": None, "state": "INIT", "rtt_ms": None, "at": None},
        ],
    }
    conflict = {"peer_mac": "02:00:00:00:00:09", "since": 1.0, "vips": ["192.0.2.200"], "peers": []}
    s = scrape_text(MetricsSnapshot(views=[view(gateway_check=gw, conflict=conflict), view("VI_2", vrid=52)]))
    il = {"instance": "VI_1", "interface": "eth0", "vrid": "51"}
    assert value(s, "pyvrrp_gateway_isolated", **il) == 1
    assert value(s, "pyvrrp_gateway_reachable", **il) == 0
    assert value(s, "pyvrrp_gateway_min_reachable", **il) == 1
    assert value(s, "pyvrrp_gateway_target_up", **il, target="192.0.2.1") == 0
    assert value(s, "pyvrrp_gateway_target_up", **il, target="192.0.2.2") == 1
    assert len(s["pyvrrp_gateway_target_up"]) == 2  # a target never probed has no sample
    assert value(s, "pyvrrp_gateway_target_rtt_seconds", **il, target="192.0.2.2") == pytest.approx(0.0015)
    assert len(s["pyvrrp_gateway_isolated"]) == 1  # VI_2 has no gateway check
    assert value(s, "pyvrrp_conflict_active", **il) == 1 and value(s, "pyvrrp_conflict_vips", **il) == 1
    assert value(s, "pyvrrp_conflict_active", instance="VI_2", interface="eth0", vrid="52") == 0


def test_witness_metrics() -> None:
    w = {"held": True, "available": True, "revision": 17, "deadline_in_s": 3.5, "renew_failures": 2}
    s = scrape_text(MetricsSnapshot(views=[view(witness=w), view("VI_2", vrid=52)]))
    il = {"instance": "VI_1", "interface": "eth0", "vrid": "51"}
    assert value(s, "pyvrrp_witness_held", **il) == 1 and value(s, "pyvrrp_witness_available", **il) == 1
    assert value(s, "pyvrrp_witness_revision", **il) == 17
    assert value(s, "pyvrrp_witness_deadline_seconds", **il) == 3.5
    assert value(s, "pyvrrp_witness_renew_failures_total", **il) == 2
    assert len(s["pyvrrp_witness_held"]) == 1  # VI_2 is not witnessed


IPVS = {
    "apply": True,
    "master": True,
    "virtual_servers": [
        {
            "key": "192.0.2.200:80/tcp",
            "quorum": {"up": 1, "required": 1, "live_weight": 3},
            "real_servers": [
                {"ip": "10.0.0.1", "port": 80, "weight": 3, "up": True, "transitions": 1},
                {"ip": "10.0.0.2", "port": 80, "weight": 0, "up": False, "transitions": 4},
            ],
        }
    ],
}


def test_ipvs_real_server_health_only_with_a_snapshot() -> None:
    assert not [n for n in scrape_text(MetricsSnapshot(views=[view()])) if n.startswith("pyvrrp_ipvs")]
    s = scrape_text(MetricsSnapshot(views=[view()], ipvs=IPVS))
    rs1 = {"virtual_server": "192.0.2.200:80/tcp", "real_server": "10.0.0.1", "port": "80"}
    rs2 = {**rs1, "real_server": "10.0.0.2"}
    assert value(s, "pyvrrp_ipvs_real_server_up", **rs1) == 1
    assert value(s, "pyvrrp_ipvs_real_server_up", **rs2) == 0
    assert value(s, "pyvrrp_ipvs_real_server_weight", **rs1) == 3
    assert value(s, "pyvrrp_ipvs_real_server_transitions_total", **rs2) == 4
    assert value(s, "pyvrrp_ipvs_quorum_up", virtual_server="192.0.2.200:80/tcp") == 1
    assert value(s, "pyvrrp_ipvs_master") == 1


@dataclass
class _Result:
    instance: str
    duration_s: float


@dataclass
class _Stats:
    started: int = 5
    succeeded: int = 3
    failed: int = 1
    timed_out: int = 1
    errors: int = 0
    extra: dict[str, int] | None = None


class FakeNotifier:
    """NotifyRunner's public surface: pending(instance), stats, history."""

    def __init__(self) -> None:
        self.queued = {"VI_1": 3}
        self.stats = _Stats(extra={"coalesced": 2})
        self.history = [_Result("VI_1", 0.5), _Result("VI_1", 2.25)]

    def pending(self, instance: str | None = None) -> int:
        return self.queued.get(instance or "", 0)


def test_notify_queue_depth_outcomes_and_last_duration() -> None:
    snap = take_snapshot(lambda: [view(), view("VI_2", vrid=52)], notifier=FakeNotifier())
    s = scrape_text(snap)
    assert s["pyvrrp_notify_queue_depth"] == {(("instance", "VI_1"),): 3.0, (("instance", "VI_2"),): 0.0}
    assert value(s, "pyvrrp_notify_scripts_total", result="timed_out") == 1
    assert value(s, "pyvrrp_notify_scripts_total", result="succeeded") == 3
    assert value(s, "pyvrrp_notify_scripts_total", result="coalesced") == 2  # NotifyStats.extra
    assert value(s, "pyvrrp_notify_last_duration_seconds", instance="VI_1") == 2.25


def test_collector_in_a_registry_reads_views_at_each_collect() -> None:
    views = [view(state="BACKUP")]
    reg = CollectorRegistry()
    reg.register(PyvrrpCollector(lambda: copy.deepcopy(views)))
    lbl = {"iname": "VI_1", "intf": "eth0", "vrid": "51", "ip_address": "192.0.2.200"}
    assert value(parse(generate_latest(reg)), "keepalived_vrrp_state", **lbl) == 1
    views[0]["state"] = "MASTER"
    views[0]["counters"]["become_master"] = 2
    s = parse(generate_latest(reg))
    assert value(s, "keepalived_vrrp_state", **lbl) == 2
    assert value(s, "keepalived_become_master_total", iname="VI_1", intf="eth0", vrid="51") == 2


def test_odd_view_values_render_without_error() -> None:
    """Nones where the daemon has nothing yet (no master heard, never transitioned)."""
    v = view(
        state="INIT",
        master_ip=None,
        master_priority=None,
        last_advert_age_s=None,
        last_transition=None,
        counters={},
        drops={},
        trackers=[],
        vips=["fe80::1/64"],
    )
    del v["drops_socket"]
    s = scrape_text(MetricsSnapshot(views=[v]))
    assert value(s, "keepalived_vrrp_state", iname="VI_1", intf="eth0", vrid="51", ip_address="fe80::1") == 0
    assert "pyvrrp_master_priority" not in s
    assert value(s, "pyvrrp_adverts_received_total", instance="VI_1", interface="eth0", vrid="51") == 0


# ------------------------------------------------------------------ server


async def http(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def test_scrape_over_loopback_from_a_server_in_the_loop() -> None:
    async def main() -> None:
        views = [view(state="BACKUP")]
        srv = MetricsServer(lambda: copy.deepcopy(views), listen=("127.0.0.1", 0), ipvs=lambda: IPVS)
        await srv.start()
        port = srv.address[1]
        try:
            status, headers, body = await http(port, GET)
            assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
            assert int(headers["content-length"]) == len(body)
            s = parse(body)
            lbl = {"iname": "VI_1", "intf": "eth0", "vrid": "51", "ip_address": "192.0.2.200"}
            assert value(s, "keepalived_vrrp_state", **lbl) == 1
            assert "process_open_fds" in s  # process metrics of the daemon
            assert "pyvrrp_ipvs_real_server_up" in s
            views[0]["state"] = "MASTER"  # the next scrape sees the change
            assert value(parse((await http(port, GET))[2]), "keepalived_vrrp_state", **lbl) == 2
            # OpenMetrics when the scraper asks for it (Prometheus does)
            om = b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n"
            status, headers, body = await http(port, om)
            assert headers["content-type"].startswith("application/openmetrics-text")
            assert body.endswith(b"# EOF\n")
            status, headers, body = await http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
            assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
            assert (await http(port, b"GET /nope HTTP/1.0\r\n\r\n"))[0] == 404
            assert (await http(port, b"POST /metrics HTTP/1.0\r\n\r\n"))[0] == 405
            assert (await http(port, b"\r\n\r\n"))[0] == 400
            assert srv.scrapes == 4  # HEAD renders too (Content-Length)
        finally:
            await srv.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(main())


def test_a_failing_view_answers_500_and_the_listener_keeps_serving() -> None:
    async def main() -> None:
        calls = {"n": 0}

        def views() -> list[dict[str, Any]]:
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyError("interface")
            return [view()]

        srv = MetricsServer(views, listen=("127.0.0.1", 0), process_metrics=False)
        await srv.start()
        try:
            assert (await http(srv.address[1], GET))[0] == 500
            assert (await http(srv.address[1], GET))[0] == 200
        finally:
            await srv.close()

    asyncio.run(main())


def test_slow_clients_do_not_stall_scrapes_and_are_capped_and_timed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "READ_TIMEOUT_S", 0.5)

    async def main() -> None:
        srv = MetricsServer(lambda: [view()], listen=("127.0.0.1", 0), process_metrics=False)
        await srv.start()
        port = srv.address[1]
        idle = []
        try:
            for _ in range(metrics.MAX_CONNECTIONS - 1):  # never send a request
                idle.append(await asyncio.open_connection("127.0.0.1", port))
            t0 = time.monotonic()
            assert (await http(port, GET))[0] == 200  # served while the others hang
            assert time.monotonic() - t0 < 0.4
            idle.append(await asyncio.open_connection("127.0.0.1", port))
            await asyncio.sleep(0.05)
            # at the cap: the next connection is closed at once, unanswered
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(GET)
            with pytest.raises(ConnectionError):
                assert await asyncio.wait_for(r.read(), 2.0) == b""
                raise ConnectionResetError  # a plain EOF is a close too
            w.close()
            assert srv.rejected == 1
            # the idle ones are dropped after READ_TIMEOUT_S, so scraping works again
            for reader, _ in idle:
                assert await asyncio.wait_for(reader.read(), 2.0) == b""
            assert (await http(port, GET))[0] == 200
        finally:
            for _, writer in idle:
                writer.close()
            await srv.close()

    asyncio.run(main())


def test_oversized_request_head_is_dropped() -> None:
    async def main() -> None:
        srv = MetricsServer(lambda: [view()], listen=("127.0.0.1", 0), process_metrics=False)
        await srv.start()
        try:
            big = b"GET /metrics HTTP/1.0\r\nX: " + b"a" * (2 * metrics.MAX_REQUEST_BYTES) + b"\r\n\r\n"
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.address[1])
            writer.write(big)
            with pytest.raises(ConnectionError):
                assert await asyncio.wait_for(reader.read(), 2.0) == b""
                raise ConnectionResetError
            writer.close()
            assert srv.scrapes == 0
        finally:
            await srv.close()

    asyncio.run(main())


def test_rendering_a_big_scrape_does_not_block_the_event_loop() -> None:
    """600 instances take ~200 ms to format: that happens off the loop, so a 1 ms ticker
    (standing in for the engine's timers) is late by a few ms at most, not by the render."""
    many = [view(f"VI_{i}", vrid=i % 255 + 1) for i in range(600)]
    t0 = time.perf_counter()
    render(MetricsSnapshot(views=many), process=False)
    render_s = time.perf_counter() - t0

    async def main() -> float:
        srv = MetricsServer(lambda: many, listen=("127.0.0.1", 0), process_metrics=False)
        await srv.start()
        worst = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                t = loop.time()
                await asyncio.sleep(0.001)
                worst = max(worst, loop.time() - t - 0.001)

        tick = asyncio.ensure_future(ticker())
        try:
            await asyncio.sleep(0.05)
            worst = 0.0
            for _ in range(3):
                status, _, body = await http(srv.address[1], GET, timeout=20)
                assert status == 200 and body.count(b"keepalived_vrrp_state{") == 1200
        finally:
            stop.set()
            await tick
            await srv.close()
        return worst

    gc.collect()
    gc.freeze()  # as the daemon does after start-up (_freeze_heap): no full-heap collections
    try:
        worst = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert render_s > 0.06, f"render took {render_s:.3f}s: too small to show blocking"
    # Rendered in the loop, the ticker would be late by the whole render time; in the worker
    # thread only by GIL hand-overs (5 ms switch interval) and the scheduler of a busy machine.
    assert worst < render_s / 3, f"loop was late by {worst * 1000:.1f} ms (render {render_s * 1000:.0f} ms)"


def test_start_on_a_port_in_use_raises_oserror_and_can_be_retried() -> None:
    """The daemon turns this OSError into a StartupError naming metrics_listen."""

    async def main() -> None:
        first = MetricsServer(lambda: [], listen=("127.0.0.1", 0), process_metrics=False)
        await first.start()
        try:
            second = MetricsServer(lambda: [], listen=first.address, process_metrics=False)
            with pytest.raises(OSError):
                await second.start()
            assert second._pool is None  # no worker thread left behind
            await second.close()  # closing a server that never started is harmless
        finally:
            await first.close()

    asyncio.run(main())


def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer far bigger than the socket buffers, never read: the server gives up after
    WRITE_TIMEOUT_S instead of holding the connection (and its buffer) for ever."""
    monkeypatch.setattr(metrics, "WRITE_TIMEOUT_S", 0.3)
    many = [view(f"VI_{i}", vrid=i % 255 + 1) for i in range(300)]  # ~1.6 MB of text

    class SmallBuffers(MetricsServer):
        """Kernel buffers that cannot swallow the answer (loopback autotuning takes MBs)."""

        def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            super()._accept(reader, writer)

    async def main() -> None:
        srv = SmallBuffers(lambda: many, listen=("127.0.0.1", 0), process_metrics=False)
        await srv.start()
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, srv.address)
            _reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
            writer.transport.pause_reading()  # a scraper that stopped reading
            writer.write(GET)
            await writer.drain()
            await asyncio.sleep(0.1)
            assert len(srv._conns) == 1
            t0 = time.monotonic()
            while srv._conns and time.monotonic() - t0 < 5.0:
                await asyncio.sleep(0.05)
            assert not srv._conns, "the connection of a client that never reads is still open"
            assert srv.scrapes == 1
            writer.close()
        finally:
            await srv.close()

    asyncio.run(main())


def test_receive_lag_families_once_per_daemon() -> None:
    """Issue 15 item 5: the receive lag of ``Supervisor.rx_view`` is exported (once, not per instance)."""
    rx = {
        "adverts_fast": 900,
        "adverts_full": 12,
        "batches": 40,
        "batch_last": 3,
        "batch_max": 250,
        "batch_sizes": {"le_4": 30, "le_256": 10},
        "oldest_unread_age_s": 0.0004,
        "oldest_unread_age_max_s": 0.6,
        "timers_fired": 7,
        "timers_late": 2,
        "timer_late_max_s": 0.55,
        "drained_before_timer": 300,
        "kernel_drops": 5,
    }
    s = scrape_text(MetricsSnapshot(views=[view(receive=rx), view("VI_2", "BACKUP", vrid=52, receive=rx)]))
    assert value(s, "pyvrrp_receive_oldest_unread_max_seconds") == 0.6
    assert value(s, "pyvrrp_receive_batch_max") == 250
    assert value(s, "pyvrrp_receive_adverts_fast_total") == 900
    assert value(s, "pyvrrp_timers_late_total") == 2
    assert value(s, "pyvrrp_receive_read_before_timer_total") == 300
    assert value(s, "pyvrrp_receive_kernel_drops_total") == 5
    assert value(s, "pyvrrp_receive_batch_sizes_total", size="le_256") == 10
    text = render_table([view(receive=rx)], verbose=True)
    assert "oldest unread advert 0.4 ms (max 600.0 ms)" in text and "late 2 (max 550.0 ms)" in text
