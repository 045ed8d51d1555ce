"""Gateway arbitration (issue #4 §2): hysteresis, N-of-M, policy mapping, ICMP codec, monitor."""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrp.adapters.arp import parse_arp
from pyvrrp.adapters.arping import build_arp_request
from pyvrrp.adapters.icmp import build_echo_request, inet_checksum, parse_echo_reply
from pyvrrp.config.models import GatewayCheck
from pyvrrp.splitbrain.arbiter import GatewayArbiter, TargetState
from pyvrrp.splitbrain.gateway import GatewayMonitor

GW = "192.168.233.1"
GW2 = "192.168.233.2"
GW3 = "192.168.233.3"


def test_starts_isolated_and_unknown_refuses_takeover():
    """Issue #4 §2 (S4): before any probe result the node counts as isolated: no takeover, fault reported."""
    arb = GatewayArbiter([GW], min_reachable=1, rise=2, fall=2)
    assert arb.isolated is True
    assert arb.verdict == "unknown"
    assert arb.tracker_update("fault", 50) == (0, True)
    allow, reason = arb.takeover_verdict()
    assert allow is False
    assert "unknown" in reason


def test_rise_needs_consecutive_successes():
    """Issue #4 §2: a target is up only after `rise` successes in a row."""
    arb = GatewayArbiter([GW], rise=3, fall=2)
    assert arb.record(GW, True, 0.0, 0.001) is False
    assert arb.record(GW, True, 1.0, 0.001) is False
    assert arb.isolated
    assert arb.record(GW, False, 2.0) is False  # breaks the run
    assert arb.status(GW).state is TargetState.UNKNOWN
    for t in (3.0, 4.0):
        assert arb.record(GW, True, t, 0.001) is False
    assert arb.record(GW, True, 5.0, 0.002) is True
    assert not arb.isolated
    assert arb.verdict == "reachable"
    assert arb.takeover_verdict()[0] is True
    assert arb.tracker_update("fault", 50) == (0, False)


def test_fall_hysteresis_keeps_target_up_until_fall_failures():
    """Issue #4 §2: a single lost probe does not isolate; `fall` consecutive losses do."""
    arb = GatewayArbiter([GW], rise=1, fall=3)
    assert arb.record(GW, True, 0.0, 0.001) is True
    assert not arb.isolated
    arb.record(GW, False, 1.0)
    arb.record(GW, False, 2.0)
    assert not arb.isolated
    arb.record(GW, True, 3.0, 0.001)  # resets the failure run
    arb.record(GW, False, 4.0)
    arb.record(GW, False, 5.0)
    assert not arb.isolated
    assert arb.record(GW, False, 6.0) is True
    assert arb.isolated
    assert arb.verdict == "isolated"
    assert arb.status(GW).state is TargetState.DOWN
    # and back: rise=1
    assert arb.record(GW, True, 7.0, 0.001) is True
    assert not arb.isolated


def test_unknown_target_goes_down_after_fall_failures():
    """Issue #4 §2: a target never seen up is proven down after `fall` losses (verdict isolated)."""
    arb = GatewayArbiter([GW], rise=2, fall=2)
    arb.record(GW, False, 0.0)
    assert arb.verdict == "unknown"
    arb.record(GW, False, 1.0)
    assert arb.verdict == "isolated"


def test_min_reachable_n_of_m():
    """Issue #4 §2: isolated while fewer than min_reachable targets are up."""
    arb = GatewayArbiter([GW, GW2, GW3], min_reachable=2, rise=1, fall=1)
    arb.record(GW, True, 0.0, 0.001)
    assert arb.isolated and arb.reachable_count == 1
    assert arb.record(GW2, True, 0.0, 0.001) is True
    assert not arb.isolated
    arb.record(GW3, False, 0.0)
    assert not arb.isolated  # 2 of 3 are enough
    assert arb.record(GW, False, 1.0) is True
    assert arb.isolated
    assert arb.verdict == "isolated"  # GW3 proven down, only one up
    allow, reason = arb.takeover_verdict()
    assert not allow and "1/3" in reason and "2 needed" in reason


def test_verdict_unknown_only_while_still_provable():
    """Issue #4 §2: 'unknown' while unproven targets could still reach min_reachable."""
    arb = GatewayArbiter([GW, GW2], min_reachable=2, rise=1, fall=1)
    arb.record(GW, True, 0.0, 0.001)
    assert arb.verdict == "unknown"
    arb.record(GW2, False, 0.0)
    assert arb.verdict == "isolated"


def test_policy_mapping_fault_and_demote():
    """Issue #4 §2: on_isolated fault -> TrackerChanged fault; demote -> delta=-weight."""
    arb = GatewayArbiter([GW], rise=1, fall=1)
    arb.record(GW, False, 0.0)
    assert arb.tracker_update("fault", 30) == (0, True)
    assert arb.tracker_update("demote", 30) == (-30, False)
    assert arb.tracker_update("demote", -30) == (-30, False)  # keepalived writes weights negative
    with pytest.raises(ValueError):
        arb.tracker_update("panic", 30)
    arb.record(GW, True, 1.0, 0.001)
    assert arb.tracker_update("demote", 30) == (0, False)
    assert arb.tracker_update("fault", 30) == (0, False)


def test_record_keeps_last_result_rtt_and_time():
    """Issue #4 §2: `pyvrrp state` shows each target's last result."""
    arb = GatewayArbiter([GW], rise=1, fall=1)
    arb.record(GW, True, 10.0, 0.0042)
    s = arb.status(GW)
    assert (s.last_ok, s.last_rtt_s, s.last_at, s.probes, s.successes) == (True, 0.0042, 10.0, 1, 1)
    arb.record(GW, False, 11.0, 0.5)
    s = arb.status(GW)
    assert (s.last_ok, s.last_rtt_s, s.last_at, s.probes, s.successes) == (False, None, 11.0, 2, 1)
    with pytest.raises(KeyError):
        arb.record("10.9.9.9", True, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"targets": []},
        {"targets": [GW, GW]},
        {"targets": [GW], "min_reachable": 0},
        {"targets": [GW], "min_reachable": 2},
        {"targets": [GW], "rise": 0},
        {"targets": [GW], "fall": 0},
    ],
)
def test_invalid_arbiter_parameters(kwargs):
    """Issue #4 §2: nonsensical arbitration settings are rejected."""
    with pytest.raises(ValueError):
        GatewayArbiter(**kwargs)


@given(
    results=st.lists(st.booleans(), min_size=1, max_size=40),
    rise=st.integers(1, 4),
    fall=st.integers(1, 4),
)
def test_hysteresis_property(results, rise, fall):
    """Issue #4 §2: state follows the trailing run: >= rise successes -> up, >= fall failures -> down."""
    arb = GatewayArbiter([GW], rise=rise, fall=fall)
    for i, ok in enumerate(results):
        arb.record(GW, ok, float(i), 0.001 if ok else None)
    last = results[-1]
    run = 0
    for r in reversed(results):
        if r != last:
            break
        run += 1
    state = arb.status(GW).state
    if last and run >= rise:
        assert state is TargetState.UP
    elif not last and run >= fall:
        assert state is TargetState.DOWN
    assert arb.isolated == (state is not TargetState.UP)


def _reference_states(results: list[bool], rise: int, fall: int) -> list[str]:
    """The hand-rolled rise/fall the arbiter had before it used health.fsm.RiseFall (the oracle)."""
    state, ok_run, fail_run, out = "unknown", 0, 0, []
    for ok in results:
        if ok:
            ok_run, fail_run = ok_run + 1, 0
            if state != "up" and ok_run >= rise:
                state = "up"
        else:
            fail_run, ok_run = fail_run + 1, 0
            if state != "down" and fail_run >= fall:
                state = "down"
        out.append(state)
    return out


@given(
    a=st.lists(st.booleans(), min_size=1, max_size=30),
    b=st.lists(st.booleans(), min_size=1, max_size=30),
    rise=st.integers(1, 4),
    fall=st.integers(1, 4),
    min_reachable=st.integers(1, 2),
)
def test_rise_fall_behaviour_unchanged_by_risefall(a, b, rise, fall, min_reachable):
    """Issue 12 §5: with RiseFall underneath, every state, verdict and flip matches the old counting."""
    n = min(len(a), len(b))
    arb = GatewayArbiter([GW, GW2], min_reachable=min_reachable, rise=rise, fall=fall)
    ref_a, ref_b = _reference_states(a[:n], rise, fall), _reference_states(b[:n], rise, fall)
    prev_a = prev_b = "unknown"
    for i in range(n):

        def iso(x: str, y: str) -> bool:
            return [x, y].count("up") < min_reachable

        assert arb.record(GW, a[i], float(i), 0.001) == (iso(ref_a[i], prev_b) != iso(prev_a, prev_b))
        assert arb.record(GW2, b[i], float(i), 0.001) == (iso(ref_a[i], ref_b[i]) != iso(ref_a[i], prev_b))
        prev_a, prev_b = ref_a[i], ref_b[i]
        assert (arb.status(GW).state, arb.status(GW2).state) == (prev_a, prev_b)
        up, unknown = [prev_a, prev_b].count("up"), [prev_a, prev_b].count("unknown")
        if up >= min_reachable:
            want = "reachable"
        elif unknown and up + unknown >= min_reachable:
            want = "unknown"
        else:
            want = "isolated"
        assert arb.verdict == want
        assert arb.isolated is iso(prev_a, prev_b)


# ---------------------------------------------------------------- ICMP codec


def _ipv4_header(src: str, dst: str, payload_len: int) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_len,
        0,
        0,
        64,
        1,
        0,
        IPv4Address(src).packed,
        IPv4Address(dst).packed,
    )


def _as_reply_v4(request: bytes) -> bytes:
    body = bytes([0, 0, 0, 0]) + request[4:]
    csum = inet_checksum(body)
    return bytes([0, 0]) + struct.pack("!H", csum) + request[4:]


def test_echo_request_v4_has_valid_checksum_and_fields():
    """Issue #4 §2: ICMP echo request (RFC 792) with our id/seq and a valid checksum."""
    req = build_echo_request(4, 0xBEEF, 7)
    assert req[0] == 8 and req[1] == 0
    assert struct.unpack("!HH", req[4:8]) == (0xBEEF, 7)
    assert inet_checksum(req) == 0


def test_echo_reply_v4_parsed_with_ip_header():
    """Issue #4 §2: replies are matched by (id, seq); IPv4 raw sockets include the IP header."""
    reply = _as_reply_v4(build_echo_request(4, 0x1234, 99))
    frame = _ipv4_header(GW, "192.168.233.11", len(reply)) + reply
    assert parse_echo_reply(4, frame) == (0x1234, 99)


def test_echo_parse_rejects_requests_bad_checksum_and_short():
    """Issue #4 §2: our own echo requests, corrupted replies and runts are not replies."""
    req = build_echo_request(4, 1, 1)
    assert parse_echo_reply(4, _ipv4_header(GW, GW, len(req)) + req) is None
    reply = bytearray(_as_reply_v4(req))
    reply[-1] ^= 0xFF
    assert parse_echo_reply(4, _ipv4_header(GW, GW, len(reply)) + bytes(reply)) is None
    assert parse_echo_reply(4, b"\x45" + b"\x00" * 10) is None


def test_echo_v6_request_and_reply():
    """Issue #4 §2: ICMPv6 echo (RFC 4443 §4.1/§4.2); the kernel fills the checksum."""
    req = build_echo_request(6, 0x0102, 3)
    assert req[0] == 128 and struct.unpack("!HH", req[4:8]) == (0x0102, 3)
    reply = bytes([129]) + req[1:]
    assert parse_echo_reply(6, reply) == (0x0102, 3)
    assert parse_echo_reply(6, req) is None
    with pytest.raises(ValueError):
        build_echo_request(5, 1, 1)


@given(st.binary(max_size=120), st.sampled_from([4, 6]))
def test_echo_parse_never_raises(data, family):
    """Issue #4 §2: arbitrary bytes on the raw socket never crash the prober."""
    parse_echo_reply(family, data)


def test_arp_request_builder_is_parseable():
    """Issue #4 §2 (ARP method): who-has target tell us, broadcast."""
    mac = bytes.fromhex("020000000001")
    frame = build_arp_request(mac, IPv4Address("192.168.233.11"), IPv4Address(GW))
    pkt = parse_arp(frame)
    assert pkt is not None
    assert pkt.op == 1 and pkt.sender_mac == mac and pkt.eth_dst == b"\xff" * 6
    assert pkt.sender_ip == IPv4Address("192.168.233.11") and pkt.target_ip == IPv4Address(GW)


# -------------------------------------------------------------------- config


def test_config_from_issue_keys():
    """Issue #4 config names: gateway_check keys as written in the issue feed the monitor as they are."""
    cfg = GatewayCheck.model_validate(
        {
            "targets": [GW],
            "method": "icmp",
            "interval": 1,
            "timeout": 0.5,
            "min_reachable": 1,
            "rise": 2,
            "fall": 2,
            "on_isolated": "fault",
        }
    )
    mon = GatewayMonitor("eth0", cfg)
    assert mon.targets == (GW,) and mon.config.interval == 1.0 and mon.config.timeout == 0.5
    assert (mon.arbiter.rise, mon.arbiter.fall, mon.arbiter.min_reachable) == (2, 2, 1)
    assert mon.tracker_update() == (0, True)  # isolated until proven, policy fault


def test_monitor_reads_the_config_model():
    """Issue #4 config names: the daemon's GatewayCheck model is the monitor's only config type."""
    model = GatewayCheck(targets=[GW, "fd00:233::1"], on_isolated="demote", weight=-30)
    mon = GatewayMonitor("eth0", model)
    assert mon.config is model
    assert mon.targets == (GW, "fd00:233::1")
    assert (mon.arbiter.rise, mon.arbiter.fall) == (model.rise, model.fall) == (2, 3)
    assert mon.tracker_update() == (-30, False)
    assert mon.snapshot()["method"] == "icmp" and mon.snapshot()["on_isolated"] == "demote"


def test_link_local_target_keeps_its_scope():
    """Issue #4 §2: ``fe80::1%eth0`` is probed and reported with its scope."""
    mon = GatewayMonitor("eth0", GatewayCheck(targets=["fe80::1%eth0"]))
    assert mon.targets == ("fe80::1%eth0",)
    assert [t["target"] for t in mon.snapshot()["targets"]] == ["fe80::1%eth0"]


@pytest.mark.parametrize(
    "data",
    [
        {"targets": [GW], "method": "tcp"},
        {"targets": [GW], "on_isolated": "reboot"},
        {"targets": [GW], "interval": 0},
        {"targets": [GW], "min_reachable": 3},
        {"targets": [GW, GW]},
        {"targets": [GW], "bogus": 1},
        {"targets": ["not-an-ip"]},
        {"targets": []},
    ],
)
def test_config_rejects_invalid(data):
    """Issue #4 §2: invalid gateway_check settings raise ValueError (model or arbiter).

    The cross-key rules (demote needs a weight, ARP needs IPv4 targets) are
    checked at config load: tests/test_config_model.py::test_gateway_check_rules.
    """
    with pytest.raises(ValueError):
        GatewayMonitor("eth0", GatewayCheck.model_validate(data))


# ------------------------------------------------------------------- monitor


class _FakeProber:
    def __init__(self, answers: dict[str, float | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, float]] = []
        self.closed = False

    async def probe(self, target, timeout_s):
        self.calls.append((str(target), timeout_s))
        await asyncio.sleep(0)
        return self.answers[str(target)]

    def close(self) -> None:
        self.closed = True


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


def test_monitor_rounds_feed_arbiter_and_report_changes():
    """Issue #4 §2: the monitor probes all targets per round and reports isolation flips."""
    changes: list[bool] = []
    prober = _FakeProber({GW: 0.002, GW2: None})
    clock = _Clock()
    mon = GatewayMonitor(
        "eth0",
        GatewayCheck(targets=[GW, GW2], min_reachable=1, rise=2, fall=2, timeout=0.3),
        changes.append,
        clock=clock,
        prober=prober,  # type: ignore[arg-type]
    )

    async def scenario() -> None:
        mon._notify()  # what start() does first: the initial verdict
        await mon.probe_round()
        assert mon.isolated
        clock.t += 1
        await mon.probe_round()
        assert not mon.isolated
        assert mon.tracker_update() == (0, False)
        prober.answers[GW] = None
        clock.t += 1
        await mon.probe_round()
        assert not mon.isolated  # one loss < fall
        clock.t += 1
        await mon.probe_round()
        assert mon.isolated
        assert mon.tracker_update() == (0, True)

    asyncio.run(scenario())
    assert changes == [True, False, True]
    assert sorted({c[0] for c in prober.calls}) == [GW, GW2]
    assert all(c[1] == 0.3 for c in prober.calls)
    snap = mon.snapshot()
    assert snap["isolated"] is True and snap["verdict"] == "isolated"
    by_target = {t["target"]: t for t in snap["targets"]}
    assert by_target[GW]["ok"] is False and by_target[GW]["rtt_ms"] is None
    assert by_target[GW2]["state"] == "down"
    assert isinstance(by_target[GW]["at"], float)


def test_monitor_start_stop_runs_periodically_and_closes_prober():
    """Issue #4 §2: probes repeat every interval without blocking the loop; stop closes sockets."""
    prober = _FakeProber({GW: 0.001})
    changes: list[bool] = []
    mon = GatewayMonitor(
        "eth0",
        GatewayCheck(targets=[GW], interval=0.02, timeout=0.01, rise=2, fall=2),
        changes.append,
        prober=prober,  # type: ignore[arg-type]
    )

    async def scenario() -> None:
        await mon.start()
        assert mon.running
        await asyncio.sleep(0.15)
        await mon.stop()
        assert not mon.running

    asyncio.run(scenario())
    assert len(prober.calls) >= 3
    assert changes[:2] == [True, False]
    assert prober.closed


def test_monitor_survives_probe_exception_and_callback_error():
    """Issue #4 §2: a probe error counts as a failed probe; a raising callback is logged, not fatal."""

    class Boom(_FakeProber):
        async def probe(self, target, timeout_s):
            raise OSError("network down")

    def bad_callback(_isolated: bool) -> None:
        raise RuntimeError("callback bug")

    mon = GatewayMonitor("eth0", GatewayCheck(targets=[GW], rise=1, fall=1), bad_callback, prober=Boom({}))  # type: ignore[arg-type]

    async def scenario() -> None:
        mon._notify()
        await mon.probe_round()

    asyncio.run(scenario())
    assert mon.isolated and mon.arbiter.status(GW).last_ok is False


def test_icmp_sockaddr_handles_ipv6_scope():
    """Issue #4 §2: a link-local IPv6 gateway (fe80::1%lo) gets its scope index; replies match without it."""
    import socket
    from ipaddress import ip_address

    from pyvrrp.adapters.icmp import IcmpProber

    prober = IcmpProber(bind_device="lo")
    lo = socket.if_nametoindex("lo")
    assert prober._sockaddr(ip_address("fe80::1%lo")) == ("fe80::1", ("fe80::1", 0, 0, lo))
    assert prober._sockaddr(ip_address("fe80::1")) == ("fe80::1", ("fe80::1", 0, 0, lo))
    assert prober._sockaddr(ip_address("2001:db8::1")) == ("2001:db8::1", ("2001:db8::1", 0, 0, 0))
    assert prober._sockaddr(ip_address(GW)) == (GW, (GW, 0))
    with pytest.raises(OSError):
        prober._sockaddr(ip_address("fe80::1%nosuchif0"))
