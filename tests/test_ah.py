"""keepalived's ``auth_type AH`` codec (pyvrrp/proto/ah.py).

Oracles, independent of the code under test:

* datagrams Debian's keepalived 2.2.7 sent (tests/data/ah/*.json, captured in the lab):
  pyvrrp must verify them and rebuild them byte for byte;
* an ICV computed here by hand from RFC 4302 §3.3.3.1 / RFC 2403 with ``hmac`` (TOS,
  flags/offset and checksum zeroed; TTL zeroed only in unicast mode, keepalived's rule);
* scapy's IP / AH / VRRP dissectors for the header layout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.proto.ah import (
    AH_HEADER_LEN,
    SEQ_MAX,
    AhDatagram,
    AhSequence,
    AhSession,
    ah_key,
    build_datagram,
    icv,
    verify_datagram,
)
from pyvrrp.proto.packet import Advertisement, DropReason, InvalidPacket, decode, encode

DATA = Path(__file__).parent / "data" / "ah"
VECTORS = sorted(DATA.glob("*.json"))
SRC = IPv4Address("192.168.233.10")
PEER = IPv4Address("192.168.233.11")
GROUP = IPv4Address("224.0.0.18")
VIP = IPv4Address("192.168.233.200")
KEY = ah_key("secret12")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def advert(priority: int = 150, vrid: int = 51) -> bytes:
    return encode(Advertisement(2, vrid, priority, (VIP,), 100, 2))


def hand_icv(datagram: bytes, key: bytes, *, unicast: bool) -> bytes:
    """RFC 4302 §3.3.3.1.1.1 mutable fields zeroed (keepalived keeps a multicast TTL)."""
    ip = bytearray(datagram[:20])
    ip[1] = 0
    ip[6] = ip[7] = 0
    ip[10] = ip[11] = 0
    if unicast:
        ip[8] = 0
    ah = datagram[20:32] + bytes(12)
    return hmac.new(key, bytes(ip) + ah + datagram[44:], hashlib.md5).digest()[:12]


def test_vectors_present() -> None:
    assert {p.stem for p in VECTORS} == {"ka-ah-multicast", "ka-ah-unicast"}


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_keepalived_datagrams_verify_and_decode(path: Path) -> None:
    """RX-07 (keepalived AH): what keepalived 2.2.7 sent verifies (ICV, SPI) and its VRRP
    message decodes as a v2 advert with auth type 2 (the 8 auth data bytes are zero)."""
    vec = load(path)
    key = ah_key(vec["auth_pass"])
    for hexed, seq, prio in zip(vec["datagrams"], vec["seqs"], vec["priorities"], strict=True):
        got = verify_datagram(bytes.fromhex(hexed), key=key, unicast=vec["unicast"])
        assert isinstance(got, AhDatagram), got
        assert (got.seq, got.spi, str(got.src), str(got.dst), got.ttl) == (
            seq,
            int(SRC),
            vec["src"],
            vec["dst"],
            255,
        )
        adv = decode(got.payload, src=got.src, dst=got.dst)
        assert adv == Advertisement(2, 51, prio, (VIP,), 100, 2, b"", "v2")


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_build_reproduces_keepalived_bytes(path: Path) -> None:
    """PKT-01/02 (AH form): pyvrrp builds exactly keepalived's datagram (TOS 0xc0, TTL 255,
    no fragment flags, id = keepalived's, SPI = source, HMAC-MD5-96, IP checksum)."""
    vec = load(path)
    for hexed, seq, prio in zip(vec["datagrams"], vec["seqs"], vec["priorities"], strict=True):
        (ip_id,) = struct.unpack_from("!H", bytes.fromhex(hexed), 4)
        built = build_datagram(
            advert(prio),
            key=ah_key(vec["auth_pass"]),
            src=SRC,
            dst=IPv4Address(vec["dst"]),
            seq=seq,
            ip_id=ip_id,
            unicast=vec["unicast"],
        )
        assert built.hex() == hexed


@pytest.mark.parametrize("unicast", [False, True])
def test_icv_matches_the_hand_computed_rfc_oracle(unicast: bool) -> None:
    dgram = build_datagram(
        advert(), key=KEY, src=SRC, dst=PEER if unicast else GROUP, seq=7, ip_id=9, unicast=unicast
    )
    assert dgram[32:44] == hand_icv(dgram, KEY, unicast=unicast)
    assert icv(KEY, dgram[:20], dgram[20:44], dgram[44:], unicast=unicast) == dgram[32:44]


def test_scapy_reads_the_layout() -> None:
    """scapy's dissectors see IP proto 51, AH (nh 112, payloadlen 4, SPI, seq, 12-byte ICV), VRRP."""
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import AH
    from scapy.layers.vrrp import VRRP

    dgram = build_datagram(advert(), key=KEY, src=SRC, dst=GROUP, seq=0x01020304, ip_id=77)
    pkt = IP(dgram)
    assert pkt.proto == 51 and pkt.ttl == 255 and pkt.tos == 0xC0 and pkt.id == 77 and pkt.len == len(dgram)
    ah = pkt[AH]
    assert (ah.nh, ah.payloadlen, ah.spi, ah.seq) == (112, 4, int(SRC), 0x01020304)
    assert bytes(ah.icv) == dgram[32:44]
    vrrp = VRRP(bytes(ah.payload))
    assert (vrrp.vrid, vrrp.priority, vrrp.authtype, vrrp.addrlist) == (51, 150, 2, [str(VIP)])
    assert IP(bytes(IP(dgram)))[IP].chksum == pkt.chksum  # scapy agrees with our header checksum


def test_ah_key_is_the_first_8_bytes() -> None:
    """keepalived keys the HMAC with auth_data[8]: a longer password counts to 8 bytes only."""
    assert ah_key("secret12-and-more") == b"secret12"
    long = build_datagram(advert(), key=ah_key("secret12-and-more"), src=SRC, dst=GROUP, seq=1, ip_id=1)
    assert isinstance(verify_datagram(long, key=KEY, unicast=False), AhDatagram)


def test_a_wrong_password_is_rejected() -> None:
    dgram = build_datagram(advert(), key=KEY, src=SRC, dst=GROUP, seq=1, ip_id=1)
    got = verify_datagram(dgram, key=ah_key("secret13"), unicast=False)
    assert isinstance(got, InvalidPacket) and got.reason is DropReason.AUTH
    assert "HMAC-MD5-96 mismatch" in got.detail


def _patch(dgram: bytes, offset: int, value: int) -> bytes:
    out = bytearray(dgram)
    out[offset] = value
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "value", "unicast", "ok"),
    [
        (1, 0x00, False, True),  # TOS: mutable
        (6, 0x40, False, True),  # DF flag: mutable
        (10, 0x12, False, True),  # header checksum: mutable
        (8, 64, True, True),  # TTL, unicast mode: mutable (keepalived)
        (8, 64, False, False),  # TTL, multicast mode: covered (keepalived)
        (5, 0x99, False, False),  # IP id: immutable
        (15, 0x0B, False, False),  # source address
        (46, 149, False, False),  # VRRP priority
        (63, 0x01, False, False),  # VRRP auth data
    ],
)
def test_which_fields_the_icv_covers(offset: int, value: int, unicast: bool, ok: bool) -> None:
    dgram = build_datagram(
        advert(), key=KEY, src=SRC, dst=PEER if unicast else GROUP, seq=3, ip_id=4, unicast=unicast
    )
    got = verify_datagram(_patch(dgram, offset, value), key=KEY, unicast=unicast)
    assert isinstance(got, AhDatagram) is ok, got


def test_spi_must_be_the_source_address() -> None:
    dgram = bytearray(build_datagram(advert(), key=KEY, src=SRC, dst=GROUP, seq=1, ip_id=1))
    dgram[24:28] = struct.pack("!I", 0xDEADBEEF)  # SPI, then a valid ICV over the new SPI
    dgram[32:44] = hand_icv(bytes(dgram), KEY, unicast=False)
    got = verify_datagram(bytes(dgram), key=KEY, unicast=False)
    assert isinstance(got, InvalidPacket) and got.reason is DropReason.AUTH and "SPI 0xdeadbeef" in got.detail


@pytest.mark.parametrize(
    ("mutate", "reason", "words"),
    [
        (lambda d: d[:30], DropReason.LENGTH, "total length"),
        (lambda d: d[:9] + b"\x70" + d[10:], DropReason.AUTH, "protocol 112"),
        (lambda d: d[:20] + b"\x06" + d[21:], DropReason.TYPE, "next header 6"),
        (lambda d: d[:21] + b"\x03" + d[22:], DropReason.LENGTH, "payload length 3"),
        (lambda d: b"\x60" + d[1:], DropReason.LENGTH, "not an IPv4 header"),
        (lambda d: d[:2] + b"\x00\x30" + d[4:], DropReason.LENGTH, "too short for AH"),
    ],
)
def test_shape_errors_name_the_field(mutate: Any, reason: DropReason, words: str) -> None:
    dgram = build_datagram(advert(), key=KEY, src=SRC, dst=GROUP, seq=1, ip_id=1)
    got = verify_datagram(mutate(dgram), key=KEY, unicast=False)
    assert isinstance(got, InvalidPacket) and got.reason is reason and words in got.detail, got


def test_build_refuses_out_of_range_fields() -> None:
    for kw in ({"seq": 0}, {"ip_id": 0}, {"ip_id": 65536}, {"ttl": 256}):
        args: dict[str, Any] = {"key": KEY, "src": SRC, "dst": GROUP, "seq": 1, "ip_id": 1} | kw
        with pytest.raises(ValueError):
            build_datagram(advert(), **args)


# ----------------------------------------------------------------- sequence numbers


def test_sequence_counts_from_1_and_accepts_only_newer() -> None:
    """keepalived: seq++ then send; a received seq must be > the counter, which takes it."""
    seq = AhSequence()
    assert [seq.next_tx(), seq.next_tx()] == [1, 2]
    assert not seq.accept(2) and not seq.accept(1)
    assert seq.accept(10) and seq.last == 10
    assert seq.next_tx() == 11  # a backup taking over continues the master's sequence
    assert not seq.accept(11)


def test_sequence_stops_at_keepalived_ceiling() -> None:
    seq = AhSequence(SEQ_MAX - 1)
    assert [seq.next_tx(), seq.next_tx()] == [SEQ_MAX, SEQ_MAX]


def test_session_rejects_a_replayed_and_an_older_advert() -> None:
    """RX-07 (keepalived AH anti-replay): the same datagram twice, or an older one, is dropped."""
    sender, receiver = AhSession(KEY), AhSession(KEY)
    first = sender.seal([(GROUP, advert())], src=SRC)[0][1]
    second = sender.seal([(GROUP, advert())], src=SRC)[0][1]
    assert isinstance(receiver.open(second), AhDatagram)
    for old in (second, first):
        got = receiver.open(old)
        assert (
            isinstance(got, InvalidPacket) and got.reason is DropReason.AUTH and "not above 2" in got.detail
        )
    # the receiver, now master, continues the sequence: the old sender accepts it
    reply = receiver.seal([(GROUP, advert(100))], src=PEER)[0][1]
    assert isinstance(sender.open(reply), AhDatagram) and sender.seq.last == 3


def test_session_seals_every_unicast_peer_with_one_sequence_and_id() -> None:
    sess = AhSession(KEY, unicast=True)
    peers = [(PEER, advert()), (IPv4Address("192.168.233.12"), advert())]
    out = sess.seal(peers, src=SRC)  # type: ignore[arg-type]
    assert [d for d, _ in out] == [p for p, _ in peers]
    ids = {struct.unpack_from("!H", dg, 4)[0] for _, dg in out}
    seqs = {struct.unpack_from("!I", dg, 28)[0] for _, dg in out}
    assert ids == {1} and seqs == {1}
    assert all(dg[32:44] == hand_icv(dg, KEY, unicast=True) for _, dg in out)
    nxt = sess.seal(peers, src=SRC)  # type: ignore[arg-type]
    assert (struct.unpack_from("!H", nxt[0][1], 4)[0], struct.unpack_from("!I", nxt[0][1], 28)[0]) == (2, 2)


def test_ip_id_wraps_past_zero() -> None:
    sess = AhSession(KEY)
    sess.ip_id = 0xFFFF
    dgram = sess.seal([(GROUP, advert())], src=SRC)[0][1]
    assert struct.unpack_from("!H", dgram, 4)[0] == 1


# ----------------------------------------------------------------------- hypothesis


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_verify_never_raises_on_random_bytes(data: bytes, unicast: bool) -> None:
    got = verify_datagram(data, key=KEY, unicast=unicast)
    assert isinstance(got, InvalidPacket | AhDatagram)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 63), st.integers(0, 255), st.booleans())
def test_verify_never_raises_on_a_mutated_datagram(offset: int, value: int, unicast: bool) -> None:
    dgram = build_datagram(advert(), key=KEY, src=SRC, dst=GROUP, seq=5, ip_id=5, unicast=unicast)
    got = verify_datagram(_patch(dgram, offset, value), key=KEY, unicast=unicast)
    assert isinstance(got, InvalidPacket | AhDatagram)


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(1, 2**32 - 1),
    ip_id=st.integers(1, 0xFFFF),
    prio=st.integers(0, 255),
    vrid=st.integers(1, 255),
    password=st.binary(min_size=1, max_size=12),
    unicast=st.booleans(),
)
def test_round_trip(seq: int, ip_id: int, prio: int, vrid: int, password: bytes, unicast: bool) -> None:
    key = ah_key(password)
    payload = advert(prio, vrid)
    dst = PEER if unicast else GROUP
    dgram = build_datagram(payload, key=key, src=SRC, dst=dst, seq=seq, ip_id=ip_id, unicast=unicast)
    assert len(dgram) == 20 + AH_HEADER_LEN + len(payload)
    assert dgram[32:44] == hand_icv(dgram, key, unicast=unicast)
    got = verify_datagram(dgram, key=key, unicast=unicast)
    assert got == AhDatagram(payload, SRC, dst, 255, int(SRC), seq)


def test_build_refuses_a_payload_that_does_not_fit_ipv4() -> None:
    with pytest.raises(ValueError, match="does not fit IPv4"):
        build_datagram(bytes(0xFFFF), key=KEY, src=SRC, dst=GROUP, seq=1, ip_id=1)
    assert repr(AhSequence(3)) == "AhSequence(last=3)"
