"""Property tests for pyvrrp.proto.packet: robustness, round trips, checksum coverage."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pyvrrp.proto.packet import Advertisement, DropReason, InvalidPacket, decode, encode

v4_addr = st.integers(0, 2**32 - 1).map(IPv4Address)
v6_addr = st.integers(0, 2**128 - 1).map(IPv6Address)
v6_link_local = st.integers(0, 2**64 - 1).map(lambda low: IPv6Address((0xFE80 << 112) | low))
any_addr = st.one_of(v4_addr, v6_addr)

Addr = IPv4Address | IPv6Address
Case = tuple[Advertisement, Addr, Addr, bool]


@st.composite
def adverts(
    draw: st.DrawFn,
) -> Case:
    """A valid advert plus src, dst and the v3/IPv4 checksum form to encode it with."""
    version = draw(st.sampled_from([2, 3]))
    family = 4 if version == 2 else draw(st.sampled_from([4, 6]))
    vrid = draw(st.integers(1, 255))
    priority = draw(st.integers(0, 255))
    if family == 4:
        addresses = tuple(draw(st.lists(v4_addr, min_size=1, max_size=20)))
        src, dst = draw(v4_addr), draw(v4_addr)
    else:
        first = draw(v6_link_local)
        addresses = (first, *draw(st.lists(v6_addr, max_size=8)))
        src, dst = draw(v6_addr), draw(v6_addr)
    if version == 2:
        interval_cs = draw(st.integers(1, 255)) * 100
        auth_type = draw(st.sampled_from([0, 1]))
        auth_data = draw(st.binary(max_size=8)).rstrip(b"\0") if auth_type == 1 else b""
    else:
        interval_cs = draw(st.integers(1, 4095))
        auth_type, auth_data = 0, b""
    advert = Advertisement(version, vrid, priority, addresses, interval_cs, auth_type, auth_data)
    return advert, src, dst, draw(st.booleans())


def form_of(advert: Advertisement, pseudo_hdr: bool) -> str:
    if advert.version == 2:
        return "v2"
    if advert.addresses[0].version == 6:
        return "v3-ipv6"
    return "v3-pseudo" if pseudo_hdr else "v3-plain"


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=300), src=any_addr, dst=st.one_of(st.none(), any_addr))
def test_decode_never_raises_on_arbitrary_bytes(
    payload: bytes, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address | None
) -> None:
    """RX-03/04/05: decode returns a result for any byte string, never an exception."""
    got = decode(payload, src=src, dst=dst)
    assert isinstance(got, Advertisement | InvalidPacket)
    if isinstance(got, InvalidPacket):
        assert isinstance(got.reason, DropReason)
        assert got.detail


@st.composite
def headerish(draw: st.DrawFn) -> bytes:
    """Bytes that pass the early checks more often: version 2/3, type 1, plausible count."""
    version = draw(st.sampled_from([2, 3]))
    count = draw(st.integers(0, 6))
    body_len = draw(st.sampled_from([count * 4, count * 16, count * 4 + 8, draw(st.integers(0, 64))]))
    rest = draw(st.binary(min_size=body_len + 4, max_size=body_len + 4))
    vrid = draw(st.integers(0, 255))
    return bytes(((version << 4) | 1, vrid, draw(st.integers(0, 255)), count)) + rest


@settings(max_examples=1000)
@given(payload=headerish(), src=any_addr, dst=any_addr)
def test_decode_never_raises_on_near_valid_bytes(
    payload: bytes, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
) -> None:
    """RX-04/05/11, PKT-08: deeper paths (length, checksum, count) also never raise."""
    got = decode(payload, src=src, dst=dst)
    assert isinstance(got, Advertisement | InvalidPacket)


@settings(max_examples=600)
@given(case=adverts())
def test_round_trip(
    case: Case,
) -> None:
    """PKT-05/06/07: decode(encode(a)) == a for every valid advert, with the checksum form recorded."""
    advert, src, dst, pseudo_hdr = case
    payload = encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=pseudo_hdr)
    got = decode(payload, src=src, dst=dst)
    expected_form = form_of(advert, pseudo_hdr)
    if expected_form == "v3-plain" and isinstance(got, Advertisement) and got.checksum_form == "v3-pseudo":
        # Ambiguous: the IPv4 pseudo-header itself sums to 0 (mod 0xffff), so both forms verify.
        expected_form = "v3-pseudo"
    assert got == replace(advert, checksum_form=expected_form)


@settings(max_examples=600)
@given(case=adverts(), data=st.data())
def test_single_bit_flip_detected(
    case: Case,
    data: st.DataObject,
) -> None:
    """RX-05: flipping any one bit of an advert makes decode drop it.

    The one exception is inherent to accepting both v3/IPv4 forms (PKT-07): a flip
    can turn one valid form into the other when the IPv4 pseudo-header sums to
    +-2**k (mod 0xffff).  Then decode must at least report the other form.
    """
    advert, src, dst, pseudo_hdr = case
    payload = encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=pseudo_hdr)
    bit = data.draw(st.integers(0, len(payload) * 8 - 1))
    flipped = bytearray(payload)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    # v3 Reserve bits are outside the decoded fields but still under the checksum.
    got = decode(bytes(flipped), src=src, dst=dst)
    if isinstance(got, Advertisement):
        assert advert.version == 3 and advert.addresses[0].version == 4
        assert got.checksum_form != form_of(advert, pseudo_hdr)
    else:
        assert isinstance(got, InvalidPacket)


@settings(max_examples=300)
@given(case=adverts(), cut=st.integers(1, 40))
def test_truncation_detected(case: Case, cut: int) -> None:
    """RX-04: any truncated advert is dropped for its length (or family when it fits the other family)."""
    advert, src, dst, pseudo_hdr = case
    payload = encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=pseudo_hdr)
    assume(cut < len(payload))
    got = decode(payload[:-cut], src=src, dst=dst)
    assert isinstance(got, InvalidPacket)
    assert got.reason in (DropReason.LENGTH, DropReason.ADDRESS_FAMILY)


@settings(max_examples=300)
@given(case=adverts(), extra=st.binary(min_size=1, max_size=30))
def test_trailing_bytes_detected(case: Case, extra: bytes) -> None:
    """RX-04: bytes beyond the count-derived length are refused (the caller cuts to the IP length)."""
    advert, src, dst, pseudo_hdr = case
    payload = encode(advert, src=src, dst=dst, v3_ipv4_pseudo_header=pseudo_hdr)
    got = decode(payload + extra, src=src, dst=dst)
    assert isinstance(got, InvalidPacket)
    assert got.reason in (DropReason.LENGTH, DropReason.ADDRESS_FAMILY)
