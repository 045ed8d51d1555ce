"""Unit tests for pyvrrp.proto.packet: golden vectors, round trips, every drop reason."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from pyvrrp.proto.packet import (
    CHECKSUM_FORMS,
    Advertisement,
    DropReason,
    InvalidPacket,
    decode,
    encode,
    vmac,
)

VECTORS_DIR = Path(__file__).parent / "data" / "adverts"
VECTORS = sorted(VECTORS_DIR.glob("*.json"))

V4_SRC = IPv4Address("192.168.233.10")
V4_GROUP = IPv4Address("224.0.0.18")
V6_SRC = IPv6Address("fe80::10")
V6_GROUP = IPv6Address("ff02::12")
VIP = IPv4Address("192.168.233.200")


def rfc1071(data: bytes) -> int:
    """Reference checksum: a plain word-by-word RFC 1071 loop (independent of the codec's trick)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo(src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, 112, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, 112)


def build(
    *,
    ver_type: int = 0x31,
    vrid: int = 51,
    priority: int = 150,
    count: int | None = None,
    byte4: int = 0,
    byte5: int = 10,
    addresses: bytes = VIP.packed,
    trailer: bytes = b"",
    src: IPv4Address | IPv6Address = V4_SRC,
    dst: IPv4Address | IPv6Address = V4_GROUP,
    with_pseudo: bool = True,
) -> bytes:
    """Raw VRRP message with any field values and a correct checksum (reference implementation)."""
    if count is None:
        count = len(addresses) // (4 if src.version == 4 else 16)
    body = struct.pack("!BBBBBBH", ver_type, vrid, priority, count, byte4, byte5, 0) + addresses + trailer
    prefix = pseudo(src, dst, len(body)) if (ver_type >> 4 == 3 and with_pseudo) else b""
    cksum = rfc1071(prefix + body)
    return body[:6] + struct.pack("!H", cksum) + body[8:]


# ------------------------------------------------------------------ golden vectors


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def expected_advert(vector: dict) -> Advertisement:
    e = vector["expected"]
    return Advertisement(
        version=e["version"],
        vrid=e["vrid"],
        priority=e["priority"],
        addresses=tuple(ip_address(a) for a in e["addresses"]),
        interval_cs=e["interval_cs"],
        auth_type=e.get("auth_type", 0),
        auth_data=e.get("auth_data", "").encode(),
        checksum_form=e["checksum_form"],
    )


def test_vectors_present() -> None:
    """The keepalived captures of KEEPALIVED-BASELINE.md §2 are all there."""
    names = {p.stem for p in VECTORS}
    assert {"ka-v2-master", "ka-v2-sigterm", "ka-v2-auth-pass", "ka-v3-100ms", "ka-v3-10ms"} <= names


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_golden_decode(path: Path) -> None:
    """PKT-03..08, RX-05: each golden vector decodes to its recorded fields and checksum form."""
    vector = load(path)
    payload = bytes.fromhex(vector["hex"])
    assert int.from_bytes(payload[6:8], "big") == int(vector["expected"]["checksum"], 16)
    got = decode(payload, src=ip_address(vector["src"]), dst=ip_address(vector["dst"]))
    assert got == expected_advert(vector)


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_golden_encode(path: Path) -> None:
    """PKT-05..07: encode reproduces the captured bytes exactly (keepalived checksums included)."""
    vector = load(path)
    advert = replace(expected_advert(vector), checksum_form="")
    got = encode(
        advert,
        src=ip_address(vector["src"]),
        dst=ip_address(vector["dst"]),
        v3_ipv4_pseudo_header=vector.get("v3_ipv4_pseudo_header", True),
    )
    assert got.hex() == vector["hex"]


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_golden_reference_checksum(path: Path) -> None:
    """PKT-07: the vectors' checksums agree with a plain RFC 1071 loop over the documented form."""
    vector = load(path)
    payload = bytes.fromhex(vector["hex"])
    zeroed = payload[:6] + b"\0\0" + payload[8:]
    form = vector["expected"]["checksum_form"]
    src, dst = ip_address(vector["src"]), ip_address(vector["dst"])
    prefix = pseudo(src, dst, len(payload)) if form in ("v3-pseudo", "v3-ipv6") else b""
    assert rfc1071(prefix + zeroed) == int(vector["expected"]["checksum"], 16)


# ------------------------------------------------------------------ round trips


ROUND_TRIPS = [
    (Advertisement(2, 1, 100, (VIP,), 100), V4_SRC, V4_GROUP, True, "v2"),
    (Advertisement(2, 255, 255, (VIP,) * 255, 25500, 1, b"12345678"), V4_SRC, V4_GROUP, True, "v2"),
    (Advertisement(2, 9, 0, (VIP, IPv4Address("10.0.0.1")), 300, 1, b"pw"), V4_SRC, V4_GROUP, True, "v2"),
    (Advertisement(3, 51, 150, (VIP,), 1), V4_SRC, V4_GROUP, True, "v3-pseudo"),
    (Advertisement(3, 51, 150, (VIP,), 4095), V4_SRC, IPv4Address("192.168.233.11"), True, "v3-pseudo"),
    (Advertisement(3, 51, 150, (VIP,), 100), V4_SRC, V4_GROUP, False, "v3-plain"),
    (Advertisement(3, 2, 1, (IPv6Address("fe80::1"),), 100), V6_SRC, V6_GROUP, True, "v3-ipv6"),
    (
        Advertisement(3, 2, 254, (IPv6Address("fe80::1"), IPv6Address("2001:db8::1")), 7),
        V6_SRC,
        IPv6Address("fe80::11"),
        False,  # ignored for IPv6: the pseudo-header is always there
        "v3-ipv6",
    ),
]


@pytest.mark.parametrize(("advert", "src", "dst", "pseudo_hdr", "form"), ROUND_TRIPS)
def test_round_trip(
    advert: Advertisement,
    src: IPv4Address | IPv6Address,
    dst: IPv4Address | IPv6Address,
    pseudo_hdr: bool,
    form: str,
) -> None:
    """PKT-05/06/07: decode(encode(a)) == a with the checksum form recorded."""
    payload = encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=pseudo_hdr)
    assert decode(payload, src=src, dst=dst) == replace(advert, checksum_form=form)
    assert form in CHECKSUM_FORMS


def test_v2_auth_none_sends_zero_auth_data() -> None:
    """PKT-05: Auth Data SHOULD be zero on transmit for type 0, and is ignored on receive."""
    payload = encode(Advertisement(2, 5, 100, (VIP,), 100, 0, b"ignored!"))
    assert payload[-8:] == bytes(8)
    garbage = build(ver_type=0x21, byte5=1, trailer=b"ABCDEFGH")
    got = decode(garbage, src=V4_SRC, dst=V4_GROUP)
    assert isinstance(got, Advertisement)
    assert got.auth_data == b""


def test_v2_simple_password_padded_and_truncated() -> None:
    """RX-07: type-1 passwords are NUL-padded / truncated to 8 bytes like keepalived's auth_pass."""
    short = encode(Advertisement(2, 5, 100, (VIP,), 100, 1, b"abc"))
    assert short[-8:] == b"abc\0\0\0\0\0"
    long = encode(Advertisement(2, 5, 100, (VIP,), 100, 1, b"0123456789"))
    assert long[-8:] == b"01234567"
    got = decode(short, src=V4_SRC, dst=V4_GROUP)
    assert isinstance(got, Advertisement)
    assert got.auth_data == b"abc"


def test_v3_reserve_bits_ignored_on_receive() -> None:
    """PKT-06: the 4 Reserve bits are ignored on reception."""
    payload = build(byte4=0xF0, byte5=10)
    got = decode(payload, src=V4_SRC, dst=V4_GROUP)
    assert isinstance(got, Advertisement)
    assert got.interval_cs == 10
    assert encode(replace(got, checksum_form=""), src=V4_SRC)[4] == 0  # sent as zero


def test_v3_ipv4_encode_defaults_dst_to_group() -> None:
    """PKT-01/07: the pseudo-header uses 224.0.0.18 when no dst is given."""
    advert = Advertisement(3, 51, 150, (VIP,), 10)
    assert encode(advert, src=V4_SRC) == encode(advert, src=V4_SRC, dst=V4_GROUP)
    six = Advertisement(3, 51, 150, (IPv6Address("fe80::1"),), 10)
    assert encode(six, src=V6_SRC) == encode(six, src=V6_SRC, dst=V6_GROUP)


def test_v3_ipv4_both_forms_accepted() -> None:
    """PKT-07: a v3/IPv4 receiver accepts the keepalived/FRR form and the RFC 9568 form."""
    advert = Advertisement(3, 51, 150, (VIP,), 10)
    with_ph = encode(advert, src=V4_SRC, dst=V4_GROUP, v3_ipv4_pseudo_header=True)
    without = encode(advert, src=V4_SRC, dst=V4_GROUP, v3_ipv4_pseudo_header=False)
    assert with_ph != without
    a = decode(with_ph, src=V4_SRC, dst=V4_GROUP)
    b = decode(without, src=V4_SRC, dst=V4_GROUP)
    assert isinstance(a, Advertisement)
    assert isinstance(b, Advertisement)
    assert (a.checksum_form, b.checksum_form) == ("v3-pseudo", "v3-plain")
    # without dst only the plain form can be checked
    assert isinstance(decode(without, src=V4_SRC, dst=None), Advertisement)
    assert decode(with_ph, src=V4_SRC, dst=None).reason is DropReason.CHECKSUM  # type: ignore[union-attr]


def test_decode_accepts_bytearray_and_memoryview() -> None:
    """decode takes any bytes-like payload (the runtime may pass a recv buffer slice)."""
    payload = encode(Advertisement(3, 51, 150, (VIP,), 10), src=V4_SRC)
    for buf in (bytearray(payload), memoryview(payload)):
        assert isinstance(decode(buf, src=V4_SRC, dst=V4_GROUP), Advertisement)  # type: ignore[arg-type]


def test_interval_s() -> None:
    assert Advertisement(3, 1, 100, (VIP,), 10).interval_s == 0.1
    assert Advertisement(2, 1, 100, (VIP,), 300).interval_s == 3.0


# ------------------------------------------------------------------ drop reasons


def drop(payload: bytes, src: IPv4Address | IPv6Address = V4_SRC, dst=V4_GROUP) -> InvalidPacket:  # type: ignore[no-untyped-def]
    got = decode(payload, src=src, dst=dst)
    assert isinstance(got, InvalidPacket), got
    return got


LL = IPv6Address("fe80::1").packed
GLOBAL6 = IPv6Address("2001:db8::1").packed

DROPS = [
    # (id, payload builder kwargs or raw bytes, src, dst, reason, words in detail)
    ("empty", b"", V4_SRC, V4_GROUP, DropReason.LENGTH, ["length 0"]),
    ("short-header", bytes.fromhex("31339601000a04"), V4_SRC, V4_GROUP, DropReason.LENGTH, ["length 7"]),
    ("version-1", dict(ver_type=0x11), V4_SRC, V4_GROUP, DropReason.VERSION, ["version 1"]),
    ("version-4", dict(ver_type=0x41), V4_SRC, V4_GROUP, DropReason.VERSION, ["version 4"]),
    ("version-0", bytes(12), V4_SRC, V4_GROUP, DropReason.VERSION, ["version 0"]),
    ("type-0", dict(ver_type=0x30), V4_SRC, V4_GROUP, DropReason.TYPE, ["type 0"]),
    ("type-2", dict(ver_type=0x32), V4_SRC, V4_GROUP, DropReason.TYPE, ["type 2"]),
    ("v2-type-15", dict(ver_type=0x2F, byte5=1, trailer=bytes(8)), V4_SRC, V4_GROUP, DropReason.TYPE, ["15"]),
    ("vrid-0", dict(vrid=0), V4_SRC, V4_GROUP, DropReason.VRID, ["vrid 0"]),
    (
        "v3-count-2-one-address",
        dict(count=2),
        V4_SRC,
        V4_GROUP,
        DropReason.LENGTH,
        ["count 2", "needs 16", "truncated"],
    ),
    (
        "v3-trailing",
        dict(addresses=VIP.packed + b"\0\0"),
        V4_SRC,
        V4_GROUP,
        DropReason.LENGTH,
        ["2 trailing"],
    ),
    (
        "v2-missing-auth-data",
        dict(ver_type=0x21, byte5=1, trailer=bytes(4)),
        V4_SRC,
        V4_GROUP,
        DropReason.LENGTH,
        ["length 16", "needs 20"],
    ),
    ("checksum-v2", "flip-v2", V4_SRC, V4_GROUP, DropReason.CHECKSUM, ["checksum 0x", "expected 0x", "v2"]),
    ("checksum-v3-v4", "flip-v3", V4_SRC, V4_GROUP, DropReason.CHECKSUM, ["pseudo-header", "RFC 9568"]),
    ("checksum-v3-v6", "flip-v6", V6_SRC, V6_GROUP, DropReason.CHECKSUM, ["IPv6 pseudo-header"]),
    (
        "checksum-v3-other-src",
        dict(src=IPv4Address("192.168.233.99")),
        V4_SRC,
        V4_GROUP,
        DropReason.CHECKSUM,
        ["checksum"],
    ),
    ("count-0-v3", dict(addresses=b""), V4_SRC, V4_GROUP, DropReason.ADDRESS_COUNT, ["count 0", "8299"]),
    (
        "count-0-v2",
        dict(ver_type=0x21, byte5=1, addresses=b"", trailer=bytes(8)),
        V4_SRC,
        V4_GROUP,
        DropReason.ADDRESS_COUNT,
        ["count 0"],
    ),
    ("interval-0-v3", dict(byte5=0), V4_SRC, V4_GROUP, DropReason.INTERVAL, ["max_adver_int 0", "8301"]),
    ("interval-0-v3-reserve-set", dict(byte4=0xF0, byte5=0), V4_SRC, V4_GROUP, DropReason.INTERVAL, ["0 cs"]),
    (
        "interval-0-v2",
        dict(ver_type=0x21, byte5=0, trailer=bytes(8)),
        V4_SRC,
        V4_GROUP,
        DropReason.INTERVAL,
        ["adver_int 0"],
    ),
    (
        "auth-unknown",
        dict(ver_type=0x21, byte4=7, byte5=1, trailer=bytes(8)),
        V4_SRC,
        V4_GROUP,
        DropReason.AUTH,
        ["auth_type 7"],
    ),
    (
        "v6-addresses-in-v4-packet",
        dict(addresses=LL, count=1),
        V4_SRC,
        V4_GROUP,
        DropReason.ADDRESS_FAMILY,
        ["IPv6 addresses in an IPv4 packet"],
    ),
    (
        "v4-addresses-in-v6-packet",
        dict(addresses=VIP.packed, count=1, src=V6_SRC, dst=V6_GROUP),
        V6_SRC,
        V6_GROUP,
        DropReason.ADDRESS_FAMILY,
        ["IPv4 addresses in an IPv6 packet"],
    ),
    ("src-dst-family-differ", dict(), V4_SRC, V6_GROUP, DropReason.ADDRESS_FAMILY, ["different IP families"]),
    (
        "v2-over-ipv6",
        dict(ver_type=0x21, byte5=1, addresses=LL, trailer=bytes(8), src=V6_SRC, dst=V6_GROUP),
        V6_SRC,
        V6_GROUP,
        DropReason.VERSION,
        ["IPv4-only"],
    ),
]


def _payload(spec: object) -> bytes:
    if isinstance(spec, bytes):
        return spec
    if spec == "flip-v2":
        good = encode(Advertisement(2, 51, 150, (VIP,), 100))
        return good[:9] + bytes((good[9] ^ 0x01,)) + good[10:]
    if spec == "flip-v3":
        good = encode(Advertisement(3, 51, 150, (VIP,), 10), src=V4_SRC, dst=V4_GROUP)
        return good[:2] + bytes((good[2] ^ 0x80,)) + good[3:]
    if spec == "flip-v6":
        good = encode(Advertisement(3, 51, 150, (IPv6Address("fe80::1"),), 10), src=V6_SRC, dst=V6_GROUP)
        return good[:-1] + bytes((good[-1] ^ 0x10,))
    assert isinstance(spec, dict)
    return build(**spec)


@pytest.mark.parametrize(
    ("spec", "src", "dst", "reason", "words"), [d[1:] for d in DROPS], ids=[d[0] for d in DROPS]
)
def test_drop_reasons(
    spec: object,
    src: IPv4Address | IPv6Address,
    dst: IPv4Address | IPv6Address,
    reason: DropReason,
    words: list[str],
) -> None:
    """RX-03, RX-04, RX-05, RX-07, RX-11, PKT-03, PKT-04, PKT-08, EID 8299/8300/8301: each shape
    check drops with its reason, and the detail names the field and the value."""
    got = drop(_payload(spec), src, dst)
    assert got.reason is reason
    for word in words:
        assert word in got.detail, (word, got.detail)
    assert str(got).startswith(f"{reason.value}: ")


def test_every_decode_reason_is_reachable() -> None:
    """The drop table covers every reason decode() can produce (the rest belong to the engine)."""
    produced = {d[4] for d in DROPS}
    engine_only = {DropReason.TTL, DropReason.UNICAST_PEER, DropReason.SELF, DropReason.ADDRESS_LIST}
    assert produced | engine_only == set(DropReason)


def test_v6_needs_dst_for_checksum() -> None:
    """RX-05: without dst the IPv6 pseudo-header cannot be built, so the advert is refused."""
    payload = encode(Advertisement(3, 51, 150, (IPv6Address("fe80::1"),), 10), src=V6_SRC)
    got = decode(payload, src=V6_SRC, dst=None)
    assert isinstance(got, InvalidPacket)
    assert got.reason is DropReason.CHECKSUM


def test_checksum_detail_gives_the_right_value() -> None:
    """RX-05: the 'expected' checksum in the detail is the one that would have verified."""
    good = encode(Advertisement(2, 51, 150, (VIP,), 100))
    bad = good[:6] + b"\x12\x34" + good[8:]
    got = drop(bad)
    assert f"checksum 0x1234 expected 0x{good[6:8].hex()}" in got.detail


def test_drop_reason_keys_match_contract() -> None:
    """docs/architecture.md lists these counter keys; other modules count drops by them."""
    assert {r.name: r.value for r in DropReason} == {
        "TTL": "ttl",
        "VERSION": "version",
        "TYPE": "type",
        "LENGTH": "length",
        "CHECKSUM": "checksum",
        "VRID": "vrid",
        "AUTH": "auth",
        "INTERVAL": "interval",
        "ADDRESS_COUNT": "address_count",
        "ADDRESS_LIST": "address_list",
        "ADDRESS_FAMILY": "address_family",
        "UNICAST_PEER": "unicast_peer",
        "SELF": "self",
    }
    assert isinstance(DropReason.TTL, str)
    assert f"{DropReason.CHECKSUM}" == "checksum"


# ------------------------------------------------------------------ encode refuses


BAD_ENCODES = [
    (Advertisement(1, 51, 150, (VIP,), 100), "version 1"),
    (Advertisement(3, 0, 150, (VIP,), 100), "vrid 0"),
    (Advertisement(3, 256, 150, (VIP,), 100), "vrid 256"),
    (Advertisement(3, 1, 256, (VIP,), 100), "priority 256"),
    (Advertisement(3, 1, -1, (VIP,), 100), "priority -1"),
    (Advertisement(3, 1, 100, (VIP,) * 256, 100), "256 addresses"),
    (Advertisement(3, 1, 100, (VIP, IPv6Address("fe80::1")), 100), "mixes"),
    (Advertisement(3, 1, 100, (VIP,), 0), "interval_cs 0"),
    (Advertisement(3, 1, 100, (VIP,), 4096), "interval_cs 4096"),
    (Advertisement(2, 1, 100, (VIP,), 150), "whole seconds"),
    (Advertisement(2, 1, 100, (VIP,), 0), "whole seconds"),
    (Advertisement(2, 1, 100, (VIP,), 25600), "whole seconds"),
    (Advertisement(2, 1, 100, (VIP,), 100, 3), "auth_type 3"),
    (Advertisement(2, 1, 100, (IPv6Address("fe80::1"),), 100), "IPv4 only"),
]


@pytest.mark.parametrize(("advert", "words"), BAD_ENCODES, ids=[b[1] for b in BAD_ENCODES])
def test_encode_refuses_what_decode_would_drop(advert: Advertisement, words: str) -> None:
    """PKT-04/05/06/08, TMR-01: encode raises ValueError instead of sending a packet peers drop."""
    with pytest.raises(ValueError, match=words):
        encode(advert, src=V6_SRC if advert.addresses and advert.addresses[0].version == 6 else V4_SRC)


def test_encode_needs_src_for_pseudo_header() -> None:
    """PKT-07: the v3 pseudo-header needs the source address."""
    with pytest.raises(ValueError, match="needs src"):
        encode(Advertisement(3, 1, 100, (VIP,), 100))
    with pytest.raises(ValueError, match="needs src"):
        encode(Advertisement(3, 1, 100, (IPv6Address("fe80::1"),), 100))
    assert encode(Advertisement(3, 1, 100, (VIP,), 100), v3_ipv4_pseudo_header=False)


def test_encode_refuses_family_mismatch_with_src() -> None:
    """PKT-08: the address list family equals the IP header family."""
    with pytest.raises(ValueError, match="src"):
        encode(Advertisement(3, 1, 100, (VIP,), 100), src=V6_SRC)


# ------------------------------------------------------------------ vmac


def test_vmac() -> None:
    """ARP-01: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6."""
    assert vmac(51, 4) == bytes.fromhex("00005e000133")
    assert vmac(1, 6) == bytes.fromhex("00005e000201")
    assert vmac(255, 4).hex(":") == "00:00:5e:00:01:ff"
    for bad in ((0, 4), (256, 4), (1, 5)):
        with pytest.raises(ValueError):
            vmac(*bad)


def test_v6_first_address_not_link_local_is_accepted_for_keepalived_interop() -> None:
    """PKT-08, RX-11, IOP: keepalived 2.2.7 sends a global IPv6 VIP first (it only warns);
    pyvrrp encodes and accepts such adverts instead of dropping them per EID 8300."""
    from pyvrrp.proto.packet import first_is_link_local

    adv = Advertisement(3, 60, 150, (IPv6Address("fd00::200"), IPv6Address("fe80::1")), 20)
    src, dst = IPv6Address("fe80::f038:1fff:fe70:27dd"), IPv6Address("ff02::12")
    decoded = decode(encode(adv, src=src, dst=dst), src=src, dst=dst)
    assert isinstance(decoded, Advertisement)
    assert decoded.addresses == adv.addresses
    assert not first_is_link_local(decoded)
    assert first_is_link_local(Advertisement(3, 60, 150, (IPv6Address("fe80::1"),), 20))


def test_count_zero_is_ignored_unless_the_receiver_has_no_vips() -> None:
    """RX-11 (RFC 9568 §5.2.5, EID 8299): Count = 0 is ignored; a router without VIPs
    accepts it (keepalived's no_virtual_ipaddress sends it; documented IOP deviation)."""
    src, dst = IPv4Address("192.0.2.1"), IPv4Address("224.0.0.18")
    adv = Advertisement(version=3, vrid=9, priority=100, addresses=(), interval_cs=100)
    payload = encode(adv, src=src, dst=dst)
    assert len(payload) == 8
    refused = decode(payload, src=src, dst=dst)
    assert isinstance(refused, InvalidPacket) and refused.reason is DropReason.ADDRESS_COUNT
    accepted = decode(payload, src=src, dst=dst, accept_empty=True)
    assert isinstance(accepted, Advertisement) and accepted.addresses == () and accepted.vrid == 9
    with pytest.raises(ValueError, match="needs src"):
        encode(adv)
