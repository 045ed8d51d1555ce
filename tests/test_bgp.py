"""BGP announcement (issue 17): the announce config, the ExaBGP speaker's long poll and the
``pyvrrp exabgp-process`` state machine, without root and without ExaBGP."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from pyvrrp.bgp.exabgp_process import ExabgpProcess
from pyvrrp.bgp.speaker import LOST_AFTER_S, ExabgpSpeaker, Route
from pyvrrp.config import ConfigError, loads_toml
from pyvrrp.runtime.announce import entries_from_config
from pyvrrp.runtime.control import ControlServer

VI = """
[vrrp_instance.VI_1]
interface = "eth0"
virtual_router_id = 51
advert_int = 1
virtual_ipaddress = ["198.51.100.10/32"]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_toml(text)
    return [str(i) for i in info.value.issues]


# ----------------------------------------------------------------------------- config


def test_announce_defaults_and_prefixes() -> None:
    cfg = loads_toml(VI + 'announce = { speaker = "exabgp" }\n')
    a = cfg.vrrp_instance["VI_1"].announce
    assert a is not None and (a.mode, a.med_preferred, a.med_backup, a.next_hop) == (
        "active-backup",
        100,
        200,
        "self",
    )
    [entry] = entries_from_config(cfg)
    assert entry.prefixes == ("198.51.100.10/32",) and entry.instance == "VI_1"
    assert entry.orphan_hold_s == 5.0  # 4 x advert_int + 1 s: the backup holds the VIP first


def test_virtual_server_announce_defaults_to_its_address() -> None:
    cfg = loads_toml(
        VI
        + '[virtual_server."198.51.100.20:80"]\n'
        + 'announce = { speaker = "exabgp", mode = "active-active", quorum = 2 }\n'
    )
    [entry] = entries_from_config(cfg)
    assert entry.prefixes == ("198.51.100.20/32",) and entry.virtual_server == "198.51.100.20:80"
    assert entry.policy.quorum == 2 and entry.orphan_hold_s == 0.0


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('announce = { speaker = "gobgp" }', "vrrp_instance.VI_1.announce.speaker"),
        ('announce = { speaker = "exabgp", med_backup = 50 }', "med_backup (50) must be greater"),
        ('announce = { speaker = "exabgp", quorum = 2 }', "announce.quorum: not allowed in a vrrp_instance"),
        ('announce = { speaker = "exabgp", prefixes = ["198.51.100.1/24"] }', "host bits set"),
        ('announce = { speaker = "exabgp", next_hop = "router" }', "next_hop is 'self' or an IP address"),
        ('announce = { speaker = "exabgp", colour = 1 }', "announce.colour"),
        ('announce = { speaker = "bird", kernel_table = 254 }', "the kernel's default/main/local table"),
        ('announce = { speaker = "exabgp", kernel_table = 100 }', 'kernel_table is for speaker = "bird"'),
        (
            'announce = { speaker = "exabgp", bfd = true }',
            'bfd = true needs speaker = "bird": exabgp has no BFD',
        ),
    ],
)
def test_announce_errors_name_the_key(snippet: str, expected: str) -> None:
    found = errors(VI + snippet + "\n")
    assert any(expected in e for e in found), found


def test_virtual_server_active_backup_needs_a_role() -> None:
    found = errors('[virtual_server."198.51.100.20:80"]\nannounce = { speaker = "exabgp" }\n')
    assert any(
        'virtual_server."198.51.100.20:80".announce: active-backup needs a role' in e for e in found
    ), found
    found = errors(
        VI
        + '[virtual_server."198.51.100.20:80"]\nannounce = { speaker = "exabgp", vrrp_instance = "VI_9" }\n'
    )
    assert any("no vrrp_instance named 'VI_9' (have: VI_1)" in e for e in found), found


# ----------------------------------------------------------------------------- speaker


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_speaker_long_poll_answers_at_once_when_newer_and_waits_otherwise() -> None:
    async def go() -> None:
        sp = ExabgpSpeaker()
        sp.announce(Route("198.51.100.10/32", 100))
        first = await asyncio.wait_for(sp.follow({"generation": -1}), 0.5)
        assert first["generation"] == 1 and first["routes"][0]["med"] == 100
        poll = asyncio.ensure_future(sp.follow({"generation": 1, "wait": 5.0, "applied": 1}))
        await asyncio.sleep(0.05)
        assert not poll.done()  # nothing new: the poll waits
        sp.withdraw("198.51.100.10/32")
        reply = await asyncio.wait_for(poll, 0.5)
        assert reply["generation"] == 2
        assert reply["routes"] == [{"announce": False, "prefix": "198.51.100.10/32"}]
        assert sp.applied == 1 and not sp.up_to_date()

    asyncio.run(go())


def test_speaker_is_lost_when_the_process_stops_polling() -> None:
    clock = FakeClock()
    sp = ExabgpSpeaker(clock=clock)
    assert sp.session()["process"] == "never connected"
    asyncio.run(sp.follow({"generation": -1, "session": {"pid": 7, "peers": {"10.0.0.1": "up"}}}))
    assert sp.session()["process"] == "connected" and sp.established() is True
    clock.t += LOST_AFTER_S + 0.1
    s = sp.session()
    assert s["process"] == "lost" and s["peers"] == {} and sp.established() is False


# ----------------------------------------------------------------------------- process


def table(gen: int, *routes: dict[str, object]) -> dict[str, object]:
    return {"generation": gen, "routes": list(routes)}


R1 = {"prefix": "198.51.100.10/32", "announce": True, "med": 100, "next_hop": "self", "orphan_hold_s": 0.0}


def test_process_writes_only_the_difference_and_counts_acks() -> None:
    out = io.StringIO()
    p = ExabgpProcess("/nonexistent", out=out)
    p.apply(table(1, R1, {"prefix": "198.51.100.11/32", "announce": False}))
    assert out.getvalue().splitlines() == [
        "announce route 198.51.100.10/32 next-hop self med 100",
        "withdraw route 198.51.100.11/32",  # first table: clear what a former process left
    ]
    assert p.applied == -1
    p.on_exabgp_line("done\n")
    p.on_exabgp_line("done\n")
    assert p.applied == 1
    p.apply(table(2, R1, {"prefix": "198.51.100.11/32", "announce": False}))
    assert len(out.getvalue().splitlines()) == 2 and p.applied == 2  # nothing changed: nothing written
    p.apply(table(3, {**R1, "med": 200}))
    assert out.getvalue().splitlines()[-1] == "announce route 198.51.100.10/32 next-hop self med 200"
    p.on_exabgp_line("error\n")
    assert p.errors == 1 and p.applied == 2


def test_process_reads_neighbor_state() -> None:
    p = ExabgpProcess("/nonexistent", out=io.StringIO())
    msg = {
        "type": "state",
        "neighbor": {"address": {"local": "10.0.0.11", "peer": "10.0.0.1"}, "state": "up"},
    }
    p.on_exabgp_line(json.dumps(msg))
    assert p.peers == {"10.0.0.1": "up"} and p.request()["session"]["peers"] == {"10.0.0.1": "up"}


def test_process_withdraws_when_it_loses_the_daemon_after_the_orphan_hold() -> None:
    async def go() -> None:
        out = io.StringIO()
        p = ExabgpProcess("/nonexistent", out=out)
        held = {"prefix": "198.51.100.20/32", "announce": True, "med": 100, "orphan_hold_s": 0.2}
        p.apply(table(1, R1, held))
        p.orphaned(asyncio.get_running_loop())
        lines = out.getvalue().splitlines()
        assert lines[-1] == "withdraw route 198.51.100.10/32"  # hold 0: at once
        await asyncio.sleep(0.3)
        assert out.getvalue().splitlines()[-1] == "withdraw route 198.51.100.20/32"
        assert p.announced == {}

    asyncio.run(go())


def test_process_keeps_the_route_when_the_daemon_is_back_within_the_hold() -> None:
    async def go() -> None:
        out = io.StringIO()
        p = ExabgpProcess("/nonexistent", out=out)
        held = {**R1, "orphan_hold_s": 0.2}
        p.apply(table(5, held))
        p.orphaned(asyncio.get_running_loop())
        p.apply(table(1, held))  # a restarted daemon: generations start again
        await asyncio.sleep(0.3)
        assert out.getvalue().splitlines() == ["announce route 198.51.100.10/32 next-hop self med 100"]

    asyncio.run(go())


def test_process_follows_a_real_control_server(tmp_path: Path) -> None:
    async def go() -> None:
        sock = str(tmp_path / "c.sock")
        server = ControlServer(sock)
        sp = ExabgpSpeaker()
        server.register("bgp_follow", sp.follow)
        server.register("bgp_ack", sp.ack)
        await server.start()
        out = io.StringIO()
        p = ExabgpProcess(sock, out=out)
        sp.announce(Route("198.51.100.10/32", 100))
        task = asyncio.ensure_future(p.follow())
        await asyncio.sleep(0.2)
        assert out.getvalue().splitlines() == ["announce route 198.51.100.10/32 next-hop self med 100"]
        assert not sp.up_to_date()
        p.on_exabgp_line("done")
        await asyncio.sleep(0.1)
        assert sp.up_to_date()  # reported at once, not at the next long poll
        sp.withdraw("198.51.100.10/32")
        await asyncio.sleep(0.2)
        assert out.getvalue().splitlines()[-1] == "withdraw route 198.51.100.10/32"
        sp.announce(Route("198.51.100.10/32", 100))
        await asyncio.sleep(0.2)
        await server.close()  # the daemon goes away: the process withdraws (hold 0)
        await asyncio.sleep(0.5)
        assert out.getvalue().splitlines()[-1] == "withdraw route 198.51.100.10/32"
        task.cancel()

    asyncio.run(go())


def test_state_table_shows_each_prefix_and_the_speaker() -> None:
    from pyvrrp.runtime.state_view import render_announce

    sp = ExabgpSpeaker()
    asyncio.run(sp.follow({"generation": -1, "session": {"pid": 42, "peers": {"10.0.0.1": "up"}}}))
    item = {
        "prefix": "198.51.100.10/32",
        "source": "vrrp_instance.VI_1",
        "mode": "active-backup",
        "announced": True,
        "acknowledged": True,
        "med": 200,
        "why": "active-backup: instance VI_1 is BACKUP, backup MED",
        "speaker": sp.session(),
    }
    text = render_announce([item, {**item, "prefix": "198.51.100.11/32", "announced": False, "med": None}])
    lines = text.splitlines()
    assert "198.51.100.10/32" in lines[1] and "announced" in lines[1] and "200" in lines[1]
    assert "withdrawn" in lines[2]
    assert lines[-1].startswith("  speaker exabgp: process connected (pid 42") and "10.0.0.1 up" in lines[-1]


def test_process_says_goodbye_when_exabgp_closes_its_stdin(tmp_path: Path) -> None:
    async def go() -> None:
        sock = str(tmp_path / "c.sock")
        server = ControlServer(sock)
        sp = ExabgpSpeaker()
        for op, handler in (("bgp_follow", sp.follow), ("bgp_gone", sp.gone)):
            server.register(op, handler)
        await server.start()
        p = ExabgpProcess(sock, out=io.StringIO())

        async def exabgp_for_a_while() -> None:  # stands in for stdin: EOF after 0.3 s
            await asyncio.sleep(0.3)
            assert sp.connected()

        p.read_exabgp = exabgp_for_a_while  # type: ignore[method-assign]
        assert await asyncio.wait_for(p.run(), 3.0) == 0
        assert sp.session()["process"] == "lost"
        await server.close()

    asyncio.run(go())


def test_metrics_show_announcements_and_the_speaker() -> None:
    from pyvrrp.runtime.metrics import MetricsSnapshot, render

    sp = ExabgpSpeaker()
    asyncio.run(sp.follow({"generation": -1, "session": {"peers": {"10.0.0.1": "up"}}}))
    item = {"prefix": "198.51.100.10/32", "source": "vrrp_instance.VI_1", "announced": True, "med": 100}
    body, _ = render(MetricsSnapshot(views=[], bgp=[{**item, "acknowledged": True, "speaker": sp.session()}]))
    text = body.decode()
    assert 'pyvrrp_bgp_announced{prefix="198.51.100.10/32",source="vrrp_instance.VI_1"} 1.0' in text
    assert 'pyvrrp_bgp_med{prefix="198.51.100.10/32",source="vrrp_instance.VI_1"} 100.0' in text
    assert 'pyvrrp_bgp_speaker_connected{speaker="exabgp"} 1.0' in text
    assert 'pyvrrp_bgp_speaker_peer_up{peer="10.0.0.1",speaker="exabgp"} 1.0' in text


def test_gone_is_not_undone_by_the_long_poll_still_waiting() -> None:
    async def go() -> None:
        sp = ExabgpSpeaker()
        await sp.follow({"generation": -1})
        poll = asyncio.ensure_future(sp.follow({"generation": sp.generation, "wait": 0.2}))
        await asyncio.sleep(0.05)
        await sp.gone({})
        await poll
        assert sp.session()["process"] == "lost"
        await sp.follow({"generation": -1})  # a new process
        assert sp.session()["process"] == "connected"

    asyncio.run(go())


def _announcements(cfg_text: str, roles: dict[str, str], lost: list[tuple[str, bool]], nft=None):  # type: ignore[no-untyped-def]
    from pyvrrp.runtime.announce import Announcements

    async def no_nft(script: str) -> bool:  # never the root namespace's firewall from a unit test
        return False

    cfg = loads_toml(cfg_text)
    return Announcements(
        entries_from_config(cfg),
        role=lambda name: roles.get(name),
        isolated=lambda name: False,
        health=lambda vs: None,
        on_speaker_lost=lambda name, is_lost: lost.append((name, is_lost)),
        nft=nft or no_nft,
    )


def test_announcements_follow_the_vrrp_role_and_withdraw_first_at_stop() -> None:
    roles = {"VI_1": "BACKUP"}
    text = VI + 'announce = { speaker = "exabgp", withdraw_drain = 0.05 }\n'

    async def go() -> None:
        ann = _announcements(text, roles, [])
        sp = ann.exabgp
        assert sp is not None
        ann.evaluate()
        assert sp.routes["198.51.100.10/32"].med == 200
        roles["VI_1"] = "MASTER"
        ann.poke()
        assert sp.routes["198.51.100.10/32"].med == 100
        assert ann.view()[0]["why"].startswith("active-backup: instance VI_1 is MASTER")
        await sp.follow({"generation": -1})  # the process follows and acknowledges
        await sp.ack({"applied": sp.generation})
        stop = asyncio.ensure_future(ann.withdraw_all())
        await asyncio.sleep(0.01)
        assert "198.51.100.10/32" in sp.withdrawn and not sp.routes
        assert not stop.done()  # waits for ExaBGP's ack of the withdraw
        await sp.ack({"applied": sp.generation})
        spent = await asyncio.wait_for(stop, 1.0)
        assert 0.05 <= spent < 0.5  # the drain, not the 2 s ack timeout
        assert not ann.view()[0]["announced"] and "stopping" in ann.view()[0]["why"]

    asyncio.run(go())


def test_speaker_lost_faults_the_instance_only_with_the_fault_policy() -> None:
    lost: list[tuple[str, bool]] = []
    text = VI + 'announce = { speaker = "exabgp", on_speaker_lost = "fault" }\n'

    async def go() -> None:
        ann = _announcements(text, {"VI_1": "MASTER"}, lost)
        sp = ann.exabgp
        assert sp is not None
        await sp.follow({"generation": -1})
        ann.evaluate()
        assert lost == []
        await sp.gone({})
        ann.evaluate()
        assert lost == [("VI_1", True)]
        await sp.follow({"generation": -1})
        ann.evaluate()
        assert lost == [("VI_1", True), ("VI_1", False)]

    asyncio.run(go())
    quiet: list[tuple[str, bool]] = []
    ann = _announcements(VI + 'announce = { speaker = "exabgp" }\n', {"VI_1": "MASTER"}, quiet)
    asyncio.run(ann.exabgp.gone({}))  # type: ignore[union-attr]
    ann.evaluate()
    assert quiet == []


def test_bird_protocols_parse() -> None:
    from pyvrrp.bgp.bird import parse_protocols

    text = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:49:31.897
pyvrrp_in  Kernel     master4    up     12:49:31.897
upstream   BGP        ---        up     12:49:33.100  Established
backup     BGP        ---        start  12:49:31.897  Active        Socket: Connection refused
"""
    assert parse_protocols(text) == {"upstream": "up", "backup": "start Active Socket: Connection refused"}


def test_bird_config_loads() -> None:
    cfg = loads_toml(VI + 'announce = { speaker = "bird", kernel_table = 101, bird_socket = "/run/b.ctl" }\n')
    a = cfg.vrrp_instance["VI_1"].announce
    assert a is not None and (a.speaker, a.kernel_table, a.bird_socket) == ("bird", 101, "/run/b.ctl")


def test_bird_speaker_changes_the_med_make_before_break() -> None:
    from pyvrrp.bgp.bird import BirdSpeaker

    async def go() -> list[tuple[str, ...]]:
        sp = BirdSpeaker(table=100)
        calls: list[tuple[str, ...]] = []

        async def fake_ip(*argv: str) -> bool:
            calls.append(argv)
            return True

        sp._ip = fake_ip  # type: ignore[method-assign]
        await sp._apply("announce", "198.51.100.10/32", 200)
        await sp._apply("announce", "198.51.100.10/32", 200)  # unchanged: nothing
        await sp._apply("announce", "198.51.100.10/32", 100)
        await sp._apply("withdraw", "198.51.100.10/32", None)
        await sp._apply("withdraw", "198.51.100.10/32", None)  # not there: nothing
        return calls

    tail = ("dev", "pyvrrp-bgp", "table", "100", "metric")
    assert asyncio.run(go()) == [
        ("route", "replace", "198.51.100.10/32", *tail, "200"),
        ("route", "replace", "198.51.100.10/32", *tail, "100"),  # the new route first,
        ("route", "del", "198.51.100.10/32", *tail, "200"),  # then the old one goes
        ("route", "del", "198.51.100.10/32", *tail, "100"),
    ]


def test_reload_withdraws_what_left_the_config_and_decides_the_rest_again() -> None:
    two = VI.replace('["198.51.100.10/32"]', '["198.51.100.10/32", "198.51.100.11/32"]')

    async def go() -> None:
        ann = _announcements(two + 'announce = { speaker = "exabgp" }\n', {"VI_1": "MASTER"}, [])
        sp = ann.exabgp
        assert sp is not None
        ann.evaluate()
        assert set(sp.routes) == {"198.51.100.10/32", "198.51.100.11/32"}
        new = loads_toml(VI + 'announce = { speaker = "exabgp", med_preferred = 50, med_backup = 60 }\n')
        await ann.reconfigure(entries_from_config(new))
        assert set(sp.routes) == {"198.51.100.10/32"} and sp.routes["198.51.100.10/32"].med == 50
        assert "198.51.100.11/32" in sp.withdrawn
        assert [v["prefix"] for v in ann.view()] == ["198.51.100.10/32"]

    asyncio.run(go())


def test_no_speaker_is_imported_without_an_announce_table() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pyvrrp.runtime.daemon, pyvrrp.cli.app\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pyvrrp.bgp', 'pyvrrp.runtime.announce'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_process_pings_exabgp_and_reports_when_it_stops_answering() -> None:
    clock = FakeClock()
    out = io.StringIO()
    p = ExabgpProcess("/nonexistent", out=out)
    p._clock = clock
    p.ping()
    assert out.getvalue().splitlines() == ["# pyvrrp ping"]  # ExaBGP's comment command: acked `done`
    p.on_exabgp_line("done\n")
    assert p.answering and not p.pending
    p.ping()  # ExaBGP is stopped from here on
    clock.t += 1.0
    p.apply(table(1, R1))
    p.ping()
    assert out.getvalue().count("# pyvrrp ping") == 2 and p.answering  # one outstanding at a time
    clock.t += 1.5
    p.ping()
    assert not p.answering and p.request()["session"]["answering"] is False
    assert p.applied == -1
    p.on_exabgp_line("done\n")  # SIGCONT: the ping's ack, then the announce's
    assert p.answering and p.applied == -1
    p.on_exabgp_line("done\n")
    assert p.applied == 1 and not p.pending


def test_speaker_not_answering_while_its_process_still_polls_is_lost() -> None:
    lost: list[tuple[str, bool]] = []
    text = VI + 'announce = { speaker = "exabgp", on_speaker_lost = "fault" }\n'

    async def go() -> None:
        ann = _announcements(text, {"VI_1": "MASTER"}, lost)
        sp = ann.exabgp
        assert sp is not None
        await sp.follow({"generation": -1, "session": {"answering": True, "peers": {"10.0.0.1": "up"}}})
        ann.evaluate()
        assert sp.session()["process"] == "connected" and lost == []
        await sp.follow({"generation": sp.generation, "wait": 0, "session": {"answering": False}})
        ann.evaluate()
        assert sp.session()["process"] == "not answering" and sp.established() is False
        assert lost == [("VI_1", True)]
        assert ann.view()[0]["speaker"]["process"] == "not answering"
        await sp.follow({"generation": sp.generation, "wait": 0, "session": {"answering": True}})
        ann.evaluate()
        assert lost == [("VI_1", True), ("VI_1", False)]

    asyncio.run(go())


def test_drain_counts_live_sockets_and_ipvs_connections_to_the_vips() -> None:
    import ipaddress

    from pyvrrp.adapters.drain import count_ip_vs, count_sockets, syn_drop_ruleset

    vip = ipaddress.IPv4Address("198.51.100.10")
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0A6433C6:0050 0200010A:A000 01 00000000:00000000\n"  # ESTABLISHED to the VIP
        "   1: 0A6433C6:0050 0200010A:A002 06 00000000:00000000\n"  # TIME_WAIT: nothing to cut
        "   2: 00000000:0050 00000000:0000 0A 00000000:00000000\n"  # LISTEN
        "   3: 0B00000A:0050 0200010A:A004 01 00000000:00000000\n"  # another address
        "   4: 0A6433C6:0050 0200010A:A006 08 00000000:00000000\n"  # CLOSE_WAIT: may still send
    )
    assert count_sockets(tcp, {vip}) == 2
    v6 = ipaddress.IPv6Address("2001:db8::10")
    tcp6 = "  sl  local_address\n   0: B80D0120000000000000000010000000:0050 0:0 01 x\n"
    assert count_sockets(tcp6, {v6}) == 1
    ipvs = (
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        "TCP 0A010002 A000 C633640A 0050 0A00000B 0050 ESTABLISHED      890\n"
        "TCP 0A010002 A002 C633640A 0050 0A00000B 0050 TIME_WAIT        100\n"
    )
    assert count_ip_vs(ipvs, {vip}) == 1
    rules = syn_drop_ruleset([vip, v6])
    assert "ip daddr { 198.51.100.10 } tcp flags & (syn | ack) == syn counter drop" in rules
    assert "ip6 daddr { 2001:db8::10 }" in rules and rules.startswith("table inet pyvrrp_drain {}")


def test_bird_bfd_sessions_parse_and_count_in_the_session_state() -> None:
    from pyvrrp.bgp.bird import BirdSpeaker, parse_bfd_sessions

    text = (
        "BIRD 2.0.12 ready.\n"
        "bfd1:\n"
        "IP address                Interface  State      Since         Interval  Timeout\n"
        "10.0.0.1                  eth0       Up         16:30:01.123    0.100    0.300\n"
        "10.0.0.2                  eth0       Down       16:30:01.123    1.000    0.000\n"
    )
    assert parse_bfd_sessions(text) == {"10.0.0.1": "up", "10.0.0.2": "down"}
    assert loads_toml(VI + 'announce = { speaker = "bird", bfd = true }\n').vrrp_instance["VI_1"].announce.bfd  # type: ignore[union-attr]
    clock = FakeClock()
    sp = BirdSpeaker(bfd=True, clock=clock)
    sp.last_answer = clock.t
    assert not sp.connected() and sp.session()["process"] == "no BFD session up"
    sp.bfd_sessions = {"10.0.0.1": "up"}
    assert sp.connected() and sp.session()["bfd"] == {"10.0.0.1": "up"}
    assert "bfd" not in BirdSpeaker(clock=clock).session()


def test_the_backup_prepends_its_as_and_the_master_does_not() -> None:
    roles = {"VI_1": "BACKUP"}
    ann = _announcements(VI + 'announce = { speaker = "exabgp", prepend = 2, local_as = 65001 }\n', roles, [])
    sp = ann.exabgp
    assert sp is not None
    ann.evaluate()
    route = sp.routes["198.51.100.10/32"]
    assert route.as_path == (65001, 65001, 65001) and route.med == 200
    from pyvrrp.bgp.exabgp_process import announce_command

    assert announce_command({"prefix": route.prefix, "med": 200, "as_path": list(route.as_path)}) == (
        "announce route 198.51.100.10/32 next-hop self med 200 as-path [ 65001 65001 65001 ]"
    )
    roles["VI_1"] = "MASTER"
    ann.poke()
    assert sp.routes["198.51.100.10/32"].as_path == ()


def test_stop_drains_new_connections_then_removes_the_rule_after_the_release() -> None:
    scripts: list[str] = []

    async def nft(script: str) -> bool:
        scripts.append(script)
        return True

    async def go() -> None:
        ann = _announcements(
            VI + 'announce = { speaker = "exabgp", withdraw_drain = 2 }\n', {"VI_1": "MASTER"}, [], nft
        )
        sp = ann.exabgp
        assert sp is not None
        ann.evaluate()
        await sp.follow({"generation": -1})
        await sp.ack({"applied": sp.generation})
        stop = asyncio.ensure_future(ann.withdraw_all())
        await asyncio.sleep(0.01)
        await sp.ack({"applied": sp.generation})
        spent = await asyncio.wait_for(stop, 3.0)
        # no connection to 198.51.100.10 is open here: released after the 0.3 s floor, not 2 s
        assert 0.3 <= spent < 1.5, spent
        assert len(scripts) == 1 and "ip daddr { 198.51.100.10 } tcp flags & (syn | ack) == syn" in scripts[0]
        await ann.released()
        assert scripts[1] == "table inet pyvrrp_drain {}\ndelete table inet pyvrrp_drain\n"
        await ann.start()  # a rule a daemon killed mid-drain left behind goes at start
        assert scripts[2] == scripts[1]
        await ann.close()

    asyncio.run(go())
