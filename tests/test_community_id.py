"""Community ID v1 against the spec's published baseline values.

Vectors come from corelight/community-id-spec (baseline/README.md and baseline_deflt.json) and
the pycommunityid test suite. When the `communityid` package (test extra) is installed, random
tuples are also cross-checked against it.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffer.flows.community_id import community_id


def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


V6A = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D"
V6B = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"

# (proto, saddr, daddr, sport, dport, expected) -- None ports mean "port-less protocol".
BASELINE = [
    # spec baseline/README.md, default settings table
    (6, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    (6, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    (17, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    (17, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    (132, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8="),
    (132, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8="),
    (1, "1.2.3.4", "5.6.7.8", 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    (1, "5.6.7.8", "1.2.3.4", 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    (1, "1.2.3.4", "5.6.7.8", 11, 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="),
    (58, V6A, V6B, 128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
    (58, V6B, V6A, 129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
    (58, V6A, V6B, 146, 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10="),
    (46, "1.2.3.4", "5.6.7.8", None, None, "1:ikv3kmf89luf73WPz1jOs49S768="),
    (46, "5.6.7.8", "1.2.3.4", None, None, "1:ikv3kmf89luf73WPz1jOs49S768="),
    (46, V6A, V6B, None, None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0="),
    (46, V6B, V6A, None, None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0="),
    # spec baseline/baseline_deflt.json (from pcaps/combined.pcap.gz)
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136,
     "1:zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0="),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (46, "10.1.12.1", "10.1.12.2", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
    (46, "10.1.12.2", "10.1.12.1", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
    # pycommunityid tests: one-way ICMP keeps the code; type 0 ignores it
    (1, "192.168.0.89", "192.168.0.1", 20, 0, "1:3o2RFccXzUgjl7zDpqmY7yJi8rI="),
    (1, "192.168.0.89", "192.168.0.1", 20, 1, "1:tz/fHIDUHs19NkixVVoOZywde+I="),
    (1, "192.168.0.1", "192.168.0.89", 0, 20, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w="),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0,
     "1:/OGBt9BN1ofenrmSPWYicpij2Vc="),
    (132, "192.168.170.8", "192.168.170.56", 7, 80, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="),
    (6, "10.0.0.1", "10.0.0.2", 10, 11569, "1:SXBGMX1lBOwhhoDrZynfROxnhnM="),
    (46, "10.1.24.4", "10.1.12.1", None, None, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="),
]


@pytest.mark.parametrize("proto,saddr,daddr,sport,dport,expected", BASELINE)
def test_baseline(proto: int, saddr: str, daddr: str, sport: int | None, dport: int | None,
                  expected: str) -> None:
    got = community_id(_addr(saddr), _addr(daddr), proto, sport or 0, dport or 0)
    assert got == expected


def test_portless_ignores_ports() -> None:
    a, b = _addr("10.1.12.1"), _addr("10.1.12.2")
    assert community_id(a, b, 46, 1, 2) == "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="


def test_seed() -> None:
    got = community_id(_addr("1.2.3.4"), _addr("5.6.7.8"), 6, 1122, 3344, seed=1)
    assert got == "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="


def test_conn_record_icmp_ports_match_packet_ports() -> None:
    """A conn.log ICMP echo row has resp_p = counterpart type; that must hash like the packet."""
    a, b = _addr("192.168.0.89"), _addr("192.168.0.1")
    assert community_id(a, b, 1, 8, 0) == community_id(b, a, 1, 0, 8)


@pytest.mark.parametrize("src,dst", [(b"\x01\x02\x03", b"\x01\x02\x03"),
                                     (bytes(4), bytes(16))])
def test_bad_address_lengths(src: bytes, dst: bytes) -> None:
    with pytest.raises(ValueError):
        community_id(src, dst, 6, 1, 2)


_ports = st.integers(0, 65535)
_protos = st.sampled_from([1, 6, 17, 46, 58, 132])


@settings(max_examples=300, deadline=None)
@given(v6=st.booleans(), a=st.binary(min_size=16, max_size=16),
       b=st.binary(min_size=16, max_size=16), proto=_protos, sport=_ports, dport=_ports)
def test_matches_pycommunityid(v6: bool, a: bytes, b: bytes, proto: int, sport: int,
                               dport: int) -> None:
    """Cross-check random tuples with the reference `communityid` package (test extra)."""
    communityid = pytest.importorskip("communityid")
    if not v6:
        a, b = a[:4], b[:4]
    if proto in (1, 58):
        sport, dport = sport % 256, dport % 256
    ports = (sport, dport) if proto in (1, 6, 17, 58, 132) else ()
    ref = communityid.CommunityID().calc(communityid.FlowTuple(proto, a, b, *ports))
    assert community_id(a, b, proto, sport, dport) == ref


@given(a=st.binary(min_size=4, max_size=4), b=st.binary(min_size=4, max_size=4),
       proto=st.sampled_from([6, 17, 132, 46]), sport=_ports, dport=_ports)
def test_direction_independent(a: bytes, b: bytes, proto: int, sport: int, dport: int) -> None:
    assert community_id(a, b, proto, sport, dport) == community_id(b, a, proto, dport, sport)
