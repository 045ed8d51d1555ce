"""The hand-written RTM_NEWADDR/RTM_DELADDR encoder, checked against pyroute2's decoder."""

from __future__ import annotations

import socket
from ipaddress import ip_interface

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from pyvrrp.adapters.rtnl import (
    IFA_F_NODAD,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_DELADDR,
    RTM_NEWADDR,
    build_addr_request,
)


def _decode(raw: bytes) -> ifaddrmsg:
    msg = ifaddrmsg(raw)
    msg.decode()
    return msg


def test_new_ipv4_with_label_decodes_in_pyroute2() -> None:
    raw = build_addr_request(RTM_NEWADDR, 7, 3, ip_interface("192.168.233.200/32"), label="eth0:vip")
    msg = _decode(raw)
    assert msg["header"]["type"] == RTM_NEWADDR
    assert msg["header"]["length"] == len(raw)
    assert msg["header"]["sequence_number"] == 7
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    assert msg["family"] == socket.AF_INET
    assert msg["prefixlen"] == 32
    assert msg["index"] == 3
    assert msg.get_attr("IFA_LOCAL") == "192.168.233.200"
    assert msg.get_attr("IFA_ADDRESS") == "192.168.233.200"
    assert msg.get_attr("IFA_LABEL") == "eth0:vip"


def test_new_ipv6_is_nodad_and_has_no_label() -> None:
    raw = build_addr_request(RTM_NEWADDR, 1, 2, ip_interface("fd00:233::200/64"), label="ignored")
    msg = _decode(raw)
    assert msg["family"] == socket.AF_INET6
    assert msg["prefixlen"] == 64
    assert msg["flags"] & IFA_F_NODAD
    assert msg.get_attr("IFA_FLAGS") & IFA_F_NODAD
    assert msg.get_attr("IFA_ADDRESS") == "fd00:233::200"
    assert msg.get_attr("IFA_LABEL") is None


def test_delete_has_no_create_flags_and_scope_is_encoded() -> None:
    raw = build_addr_request(RTM_DELADDR, 9, 4, ip_interface("10.0.0.1/24"), scope="link")
    msg = _decode(raw)
    assert msg["header"]["type"] == RTM_DELADDR
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK
    assert msg["scope"] == 253
    assert msg["prefixlen"] == 24
    assert len(raw) % 4 == 0
