"""Connection semantics on crafted traffic: the states, letters and timers the Zeek corpus lacks.

CONN_SEMANTICS.md section 11 lists what no Zeek baseline exercises (W, I, Q, S2, RSTOS0); these
tests build each case from the rules, write a real pcap and run the real `sniffer read`.
"""

from __future__ import annotations

from pcapkit import ETH, A, B, Session, conns, icmp, udp
from scapy.layers.inet import IP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP


def one(records):
    assert len(records) == 1, records
    return records[0]


def test_full_session_sf(tmp_path):
    s = Session().handshake()
    s.send(True, "PA", b"GET / HTTP/1.0\r\n\r\n")
    s.send(False, "PA", b"HTTP/1.0 200 OK\r\n\r\nhello")
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    c = one(conns(tmp_path, s.pkts))
    assert (c["id.orig_h"], c["id.resp_h"], c["id.resp_p"]) == (A, B, 80)
    assert c["conn_state"] == "SF"
    assert c["history"] == "ShADdFf"
    assert (c["orig_bytes"], c["resp_bytes"]) == (18, 24)
    assert (c["orig_pkts"], c["resp_pkts"]) == (5, 3)
    assert c["orig_ip_bytes"] == 5 * 40 + 18
    assert c["local_orig"] is True and c["local_resp"] is False
    assert c["community_id"].startswith("1:")


def test_rejected(tmp_path):
    s = Session()
    s.send(True, "S")
    s.send(False, "RA", seq=0)
    c = one(conns(tmp_path, s.pkts))
    assert (c["conn_state"], c["history"]) == ("REJ", "Sr")


def test_s2_originator_close_unanswered(tmp_path):
    s = Session().handshake()
    s.send(True, "FA")
    c = one(conns(tmp_path, s.pkts))
    assert (c["conn_state"], c["history"]) == ("S2", "ShAF")


def test_s3_responder_close_unanswered(tmp_path):
    s = Session().handshake()
    s.send(False, "FA")
    c = one(conns(tmp_path, s.pkts))
    assert (c["conn_state"], c["history"]) == ("S3", "ShAf")


def test_rstos0_syn_then_reset(tmp_path):
    s = Session()
    s.send(True, "S")
    s.send(True, "R")
    c = one(conns(tmp_path, s.pkts))
    assert (c["conn_state"], c["history"]) == ("RSTOS0", "SR")


def test_rsto_and_rstr(tmp_path):
    s = Session().handshake()
    s.send(True, "RA")
    assert one(conns(tmp_path, s.pkts))["conn_state"] == "RSTO"
    s = Session().handshake()
    s.send(False, "RA")
    c = one(conns(tmp_path, s.pkts))
    assert (c["conn_state"], c["history"]) == ("RSTR", "ShAr")


def test_zero_window_letter(tmp_path):
    s = Session().handshake()
    s.send(True, "PA", b"data")
    s.send(False, "A", window=0)
    c = one(conns(tmp_path, s.pkts))
    assert c["history"] == "ShADaw"


def test_inconsistent_and_multi_flag_letters(tmp_path):
    s = Session().handshake()
    s.send(True, "FRA")
    assert one(conns(tmp_path, s.pkts))["history"] == "ShAI"
    s = Session()
    s.send(True, "SF")
    assert one(conns(tmp_path, s.pkts))["history"] == "Q"


def test_retransmission_letter_scales(tmp_path):
    s = Session().handshake()
    seq = s.seq[True]
    s.send(True, "PA", b"abc")
    for _ in range(10):
        s.send(True, "PA", b"abc", seq=seq)
    c = one(conns(tmp_path, s.pkts))
    assert c["history"] == "ShADTT"  # 1st and 10th retransmission
    assert c["orig_bytes"] == 3


def test_sequence_wraparound_sizes(tmp_path):
    s = Session(isn_c=0xFFFFFF00, isn_s=0xFFFFFFF0).handshake()
    for _ in range(4):
        s.send(True, "PA", b"x" * 200)
    s.send(False, "A")
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    c = one(conns(tmp_path, s.pkts))
    assert c["conn_state"] == "SF"
    assert (c["orig_bytes"], c["resp_bytes"]) == (800, 0)


def test_missing_data_counts_as_gap(tmp_path):
    s = Session().handshake()
    s.send(True, "PA", b"a" * 100)
    s.send(True, "PA", b"b" * 100, advance=False, seq=s.seq[True] + 100)  # 100 bytes lost
    s.seq[True] += 200
    s.send(False, "A")  # acks all 300
    c = one(conns(tmp_path, s.pkts))
    assert c["missed_bytes"] == 100
    assert c["history"] == "ShADaG"
    assert c["orig_bytes"] == 300


def test_attempt_timer_splits_unanswered_syns(tmp_path):
    s = Session()
    s.send(True, "S")
    s.send(True, "S", seq=1000, advance=False, dt=1.0)  # retransmission: same ISN
    s.send(True, "S", seq=999_999, dt=10.0)  # after tcp_attempt_delay: a new attempt
    rows = conns(tmp_path, s.pkts)
    assert [(r["conn_state"], r["history"]) for r in rows] == [("S0", "S"), ("S0", "S")]


def test_port_reuse_after_close_is_a_new_connection(tmp_path):
    s = Session().handshake()
    s.send(True, "FA")
    s.send(False, "FA")
    s.send(True, "A")
    s.seq = {True: 777_000, False: 888_000}
    s.handshake()
    rows = conns(tmp_path, s.pkts)
    assert [r["conn_state"] for r in rows] == ["SF", "S1"]


def test_midstream_flip_to_likely_server(tmp_path):
    s = Session()
    s.send(False, "PA", b"response bytes")  # first packet seen comes from port 80
    s.send(True, "A")
    c = one(conns(tmp_path, s.pkts))
    assert (c["id.orig_h"], c["id.resp_p"]) == (A, 80)
    assert c["history"].startswith("^")
    # With 80/tcp not a likely server port, the first sender stays the originator.
    c = one(conns(tmp_path, s.pkts, "--likely-server-ports", "22/tcp"))
    assert (c["id.orig_h"], c["id.orig_p"]) == (B, 80)


def test_bad_tcp_checksum_is_not_counted(tmp_path):
    s = Session()
    s.send(True, "S")
    s.pkts[0][2].chksum = 0x1234
    c = one(conns(tmp_path, s.pkts))
    assert (c["history"], c["orig_pkts"], c["conn_state"]) == ("C", 0, "OTH")
    c = one(conns(tmp_path, s.pkts, "-C"))
    assert (c["history"], c["orig_pkts"], c["conn_state"]) == ("S", 1, "S0")
    c = one(conns(tmp_path, s.pkts, "--ignore-checksums-net", "10.0.0.0/8"))
    assert c["history"] == "S"


def test_udp_request_response_and_server_flip(tmp_path):
    pkts = [udp(A, "8.8.8.8", 40000, 53, b"q" * 30, t=1.0),
            udp("8.8.8.8", A, 53, 40000, b"r" * 50, t=1.1)]
    c = one(conns(tmp_path, pkts))
    assert (c["conn_state"], c["history"], c["orig_bytes"], c["resp_bytes"]) == ("SF", "Dd", 30, 50)
    c = one(conns(tmp_path, pkts[1:]))  # only the answer: flipped toward the server
    assert (c["id.orig_h"], c["id.resp_p"], c["history"], c["conn_state"]) == (A, 53, "^d", "SHR")


def test_udp_inactivity_timeout(tmp_path):
    pkts = [udp(A, B, 4000, 9999, t=1.0), udp(A, B, 4000, 9999, t=62.0)]
    rows = conns(tmp_path, pkts)
    assert len(rows) == 2 and all(r["conn_state"] == "S0" for r in rows)


def test_icmp_echo_is_one_connection(tmp_path):
    pkts = [icmp(A, B, t=1.0, type=8, id=1, seq=1), icmp(B, A, t=1.01, type=0, id=1, seq=1),
            icmp(A, B, t=2.0, type=8, id=1, seq=2), icmp(B, A, t=2.01, type=0, id=1, seq=2)]
    c = one(conns(tmp_path, pkts))
    assert (c["proto"], c["id.orig_p"], c["id.resp_p"], c["conn_state"]) == ("icmp", 8, 0, "OTH")
    assert (c["orig_pkts"], c["resp_pkts"], c["orig_bytes"], c["resp_bytes"]) == (2, 2, 112, 112)
    assert "history" not in c


def test_icmp_one_way_keyed_by_type_and_code(tmp_path):
    pkts = [icmp(B, A, t=1.0, type=3, code=3), icmp(A, B, t=1.5, type=3, code=3)]
    rows = conns(tmp_path, pkts)
    assert [(r["id.orig_h"], r["id.orig_p"], r["id.resp_p"]) for r in rows] == [(B, 3, 3), (A, 3, 3)]


def test_unknown_transport(tmp_path):
    p = Ether(**ETH) / IP(src=A, dst=B) / SCTP(sport=1, dport=2)
    p.time = 5.0
    c = one(conns(tmp_path, [p]))
    assert (c["proto"], c["ip_proto"], c["id.orig_p"], c["id.resp_p"]) == ("unknown_transport", 132, 0, 0)


def test_ipv6_and_vlan(tmp_path):
    s = Session(client="2001:db8::1", server="2001:db8::2", v6=True).handshake()
    c = one(conns(tmp_path, s.pkts))
    assert (c["id.orig_h"], c["conn_state"], c["orig_ip_bytes"]) == ("2001:db8::1", "S1", 120)
    s = Session().handshake()
    tagged = []
    for p in s.pkts:
        q = Ether(**ETH) / Dot1Q(vlan=10) / Dot1Q(vlan=20) / p[IP]
        q.time = p.time
        tagged.append(q)
    assert one(conns(tmp_path, tagged))["history"] == "ShA"


def test_local_nets_option(tmp_path):
    s = Session().handshake()
    c = one(conns(tmp_path, s.pkts, "--local-net", "93.184.216.0/24"))
    assert (c["local_orig"], c["local_resp"]) == (False, True)


def test_inactivity_timeout_splits_connection(tmp_path):
    """The corrected behaviour of the corpus pair Zeek's timer artefact merges (see its notes)."""
    s = Session()
    s.send(True, "PA", b"x" * 10)
    s.send(False, "A")
    s.send(True, "PA", b"y" * 10, dt=300.5)
    rows = conns(tmp_path, s.pkts)
    assert len(rows) == 2


def test_icmpv6_is_named_the_same_everywhere(tmp_path):
    """IP protocol 58 (ICMPv6) has one name in every output (issue 12, item 18): the conn
    record (JSON and Zeek), the alert about the same packet (JSON and notice.log) say "icmp",
    as Zeek's conn.log does (`ip_proto` 58 tells it from ICMP), and both carry the same
    Community ID. The packet: an ICMPv6 echo request from an address to itself on the wire
    (`land`), and its reply."""
    import json

    from pcapkit import run, write
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    addr = "2001:db8::5"
    pkts = [Ether(**ETH) / IPv6(src=addr, dst=addr) / ICMPv6EchoRequest(id=7, seq=1),
            Ether(**ETH) / IPv6(src=addr, dst=addr) / ICMPv6EchoReply(id=7, seq=1)]
    for i, p in enumerate(pkts):
        p.time = 1000 + i * 0.01
    pcap = write(tmp_path, pkts, "icmp6.pcap")
    conn_json, alerts_json = tmp_path / "conn.json", tmp_path / "alerts.json"
    conn_log, notice_log = tmp_path / "conn.log", tmp_path / "notice.log"
    run(["read", pcap, "--format", "json", "-o", conn_json, "--alerts", alerts_json])
    run(["read", pcap, "--format", "zeek", "-o", conn_log, "--alerts", notice_log,
         "--alerts-format", "zeek"])
    rec = one([json.loads(line) for line in conn_json.read_text().splitlines()])
    assert (rec["proto"], rec["ip_proto"]) == ("icmp", 58), rec
    (alert,) = [json.loads(line) for line in alerts_json.read_text().splitlines()]
    assert alert["kind"] == "land" and alert["proto"] == rec["proto"], (alert, rec)
    assert alert["community_id"] == rec["community_id"], (alert, rec)

    def column(log, name) -> list[str]:
        lines = log.read_text().splitlines()
        fields = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
        return [ln.split("\t")[fields.index(name)] for ln in lines if not ln.startswith("#")]

    assert column(conn_log, "proto") == ["icmp"] and column(notice_log, "proto") == ["icmp"]
    assert column(conn_log, "community_id") == [rec["community_id"]]
