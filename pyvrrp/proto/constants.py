"""Protocol numbers, with the RFC section that defines each."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

IPPROTO_VRRP = 112  # RFC 3768 §5.2.4, RFC 5798 §5.1.1.4 / §5.1.2.4 (PKT-01)
VRRP_TTL = 255  # RFC 3768 §5.2.3, RFC 5798 §5.1.1.3 (PKT-02, RX-01)
MCAST_GROUP_V4 = IPv4Address("224.0.0.18")  # RFC 3768 §5.2.2, RFC 5798 §5.1.1.2
MCAST_GROUP_V6 = IPv6Address("ff02::12")  # RFC 5798 §5.1.2.2

VRRP_TYPE_ADVERTISEMENT = 1  # RFC 3768 §5.3.2, RFC 5798 §5.2.2 (PKT-03)

PRIORITY_OWNER = 255  # RFC 3768 §5.3.4 / RFC 5798 §5.2.4 (PKT-04)
PRIORITY_RELEASE = 0  # the master is leaving, RFC 3768 §5.3.4 (SM-09)
PRIORITY_DEFAULT = 100  # backup default, RFC 5798 §6.1
PRIORITY_MIN_BACKUP = 1
PRIORITY_MAX_BACKUP = 254  # effective priority is clamped to 1..254 (SM-15)

ADVER_INT_DEFAULT_CS = 100  # RFC 5798 §6.1 (1 s)
V3_ADVER_INT_MIN_CS = 1  # RFC 9568 erratum 8301 (TMR-01)
V3_ADVER_INT_MAX_CS = 4095  # 12-bit field, RFC 5798 §5.2.7
V2_ADVER_INT_MIN_S = 1  # RFC 3768 §5.3.7: 8-bit seconds, 0 rejected (ANCHORS §6.2 #2)
V2_ADVER_INT_MAX_S = 255

DOWN_TIMER_ADVERTS = 3  # Master_Down_Interval = 3 x interval + skew, RFC 5798 §6.1 (TMR-03/05)

AUTH_NONE = 0  # RFC 3768 §5.3.6
AUTH_SIMPLE = 1  # RFC 2338 simple text password (keepalived "PASS")
AUTH_AH = 2  # RFC 2338 §5.3.6.3 IP Authentication Header (keepalived's form: proto/ah.py)
V2_AUTH_DATA_LEN = 8  # RFC 3768 §5.3.10

VRRP_HEADER_LEN = 8

VMAC_PREFIX_V4 = bytes.fromhex("00005e0001")  # RFC 5798 §7.3 (ARP-01)
VMAC_PREFIX_V6 = bytes.fromhex("00005e0002")
