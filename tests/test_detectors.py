"""Packet-level detectors end to end: crafted captures through `sniffer read --alerts FILE`.

Every Ether() carries explicit MAC addresses (pcapkit.ETH): scapy must never resolve one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcapkit import CORPUS, ETH, Session, run, write
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import CookedLinux, Ether

LOOP_ETH = dict(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
MINE = ("land", "bogon-source", "local-source-from-wire", "syn-flood", "port-scan",
        "backscatter")


def alerts(tmp_path: Path, pkts, *args, name="t.pcap") -> list[dict]:
    path = write(tmp_path, pkts, name)
    out = tmp_path / (name + ".alerts")
    run(["read", path, "--format", "json", "-o", tmp_path / "conn.json", "--alerts", out, *args])
    return [json.loads(line) for line in out.read_text().splitlines()]


def kinds(found) -> list[str]:
    return sorted(a["kind"] for a in found)


def timed(pkts, t0=1000.0, dt=0.01):
    for i, p in enumerate(pkts):
        p.time = t0 + i * dt
    return pkts


def test_alert_record_shape_and_land(tmp_path):
    p = Ether(**ETH) / IP(src="10.0.0.5", dst="10.0.0.5") / TCP(sport=139, dport=139, flags="S")
    found = alerts(tmp_path, timed([p, p.copy()]))
    assert len(found) == 1
    a = found[0]
    assert list(a) == ["ts", "kind", "severity", "uid", "community_id", "proto", "src", "sport",
                       "dst", "dport", "summary", "evidence"]
    assert (a["kind"], a["severity"], a["proto"], a["src"], a["sport"], a["dport"]) == \
        ("land", "high", "tcp", "10.0.0.5", 139, 139)
    assert a["uid"].startswith("C") and a["community_id"].startswith("1:")
    assert a["evidence"]["repeats"] == 1 and a["evidence"]["tcp_flags"] == 2
    conn = json.loads((tmp_path / "conn.json").read_text().splitlines()[0])
    assert conn["uid"] == a["uid"] and conn["community_id"] == a["community_id"]


def test_land_guards(tmp_path):
    pkts = [
        # a loopback capture (Linux lo: zero MACs): a self-connect is legal there
        Ether(**LOOP_ETH) / IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=5000, dport=5000),
        # same address, different ports: not LAND
        Ether(**ETH) / IP(src="10.0.0.5", dst="10.0.0.5") / UDP(sport=1000, dport=2000),
    ]
    assert alerts(tmp_path, timed(pkts)) == []


def test_bogon_sources(tmp_path):
    pkts = [
        Ether(**ETH) / IP(src="127.0.0.1", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IP(src="224.0.0.5", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IP(src="224.0.0.5", dst="10.0.0.8") / UDP(sport=5, dport=6),  # repeat
        Ether(**ETH) / IP(src="0.0.0.7", dst="10.0.0.9") / TCP(sport=5, dport=80),
        Ether(**ETH) / IP(src="255.255.255.255", dst="10.0.0.9") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="::1", dst="2001:db8::1") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="ff02::1", dst="2001:db8::1") / UDP(sport=5, dport=6),
        Ether(**ETH) / IPv6(src="::ffff:10.0.0.1", dst="2001:db8::1") / UDP(sport=5, dport=6),
    ]
    found = alerts(tmp_path, timed(pkts))
    ranges = {a["src"]: (a["evidence"]["range"], a["severity"]) for a in found}
    assert ranges == {
        "127.0.0.1": ("127.0.0.0/8", "high"), "224.0.0.5": ("224.0.0.0/4", "medium"),
        "0.0.0.7": ("0.0.0.0/8", "medium"), "255.255.255.255": ("255.255.255.255/32", "medium"),
        "::1": ("::1/128", "high"), "ff02::1": ("ff00::/8", "medium"),
        "::ffff:10.0.0.1": ("::ffff:0:0/96", "medium"),
    }
    assert next(a for a in found if a["src"] == "224.0.0.5")["evidence"]["repeats"] == 1


def test_bogon_false_alarm_guards(tmp_path):
    pkts = [
        # DHCP discover from a host without an address
        Ether(**ETH) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / (b"\x01" * 240),
        # IPv6 duplicate address detection: a neighbour solicitation from ::
        Ether(**ETH) / IPv6(src="::", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fe80::1"),
        # loopback traffic captured on lo
        Ether(**LOOP_ETH) / IP(src="127.0.0.1", dst="127.0.0.53") / UDP(sport=4000, dport=53),
        Ether(**ETH) / IPv6(src="::1", dst="::1") / UDP(sport=4000, dport=53),
        # documentation, CGN, link-local and NAT64 sources are left alone (labs use them)
        Ether(**ETH) / IP(src="192.0.2.2", dst="203.0.113.80") / TCP(sport=4000, dport=80),
        Ether(**ETH) / IP(src="100.64.1.1", dst="10.0.0.1") / TCP(sport=4000, dport=80),
        Ether(**ETH) / IP(src="169.254.169.254", dst="10.0.0.1") / TCP(sport=80, dport=4000),
        Ether(**ETH) / IPv6(src="64:ff9b::808:808", dst="2001:db8::1") / UDP(sport=53, dport=4000),
    ]
    assert alerts(tmp_path, timed(pkts)) == []


def _sll(pkttype: int, src: str, dst: str, ttl: int = 64):
    return (CookedLinux(pkttype=pkttype, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0",
                        proto=0x0800) / IP(src=src, dst=dst, ttl=ttl) / UDP(sport=7, dport=9))


def test_local_source_from_wire(tmp_path):
    # A Linux cooked capture says which way each frame went.
    pkts = timed([
        _sll(0, "10.0.0.9", "10.0.0.7"),  # arrived, addressed to us: spoofed
        _sll(4, "10.0.0.9", "10.0.0.7"),  # our own outgoing packet: fine
        _sll(1, "10.0.0.9", "10.0.0.255"),  # a broadcast coming back: left alone
    ])
    found = alerts(tmp_path, pkts, "--local-addr", "10.0.0.9", name="sll.pcap")
    assert kinds(found) == ["local-source-from-wire"]
    assert found[0]["severity"] == "high" and found[0]["evidence"]["pkttype"] == 0
    # Without the host's addresses nothing can be said.
    assert alerts(tmp_path, pkts, name="sll2.pcap") == []


def test_local_source_unknown_direction(tmp_path):
    # Ethernet capture, no direction: our own packets (initial TTL) are fine, a packet that
    # crossed routers with our source address is not ours.
    pkts = timed([
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=64) / UDP(sport=7, dport=9),
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=3) / UDP(sport=7, dport=33434),
        Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.7", ttl=57) / UDP(sport=7, dport=9),
    ])
    found = alerts(tmp_path, pkts, "--local-addr", "10.0.0.9")
    assert kinds(found) == ["local-source-from-wire"]
    assert found[0]["evidence"]["ttl"] == 57 and found[0]["severity"] == "medium"


def test_local_addr_is_validated(tmp_path):
    p = write(tmp_path, timed([Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()]))
    proc = run(["read", p, "--alerts", tmp_path / "a", "--local-addr", "nope"], check=False)
    assert proc.returncode == 2 and b"--local-addr" in proc.stderr


def test_syn_flood(tmp_path):
    pkts = []
    for i in range(150):  # spoofed sources, never completing
        pkts.append(Ether(**ETH) / IP(src=f"198.18.{i // 250}.{i % 250 + 1}", dst="10.0.0.1")
                    / TCP(sport=1024 + i, dport=80, flags="S", seq=i))
    found = alerts(tmp_path, timed(pkts, dt=0.005))
    flood = [a for a in found if a["kind"] == "syn-flood"]
    assert len(flood) == 1
    ev = flood[0]["evidence"]
    assert (flood[0]["dst"], flood[0]["dport"]) == ("10.0.0.1", 80)
    assert ev["half_open"] == 101 and ev["distinct_sources"] == 101
    assert "port-scan" not in kinds(found)


def test_syn_flood_on_one_four_tuple(tmp_path):
    """hping-style: one 4-tuple, a new ISN each SYN, no handshake (Suricata's 3whs_syn_flood)."""
    syn = dict(sport=40000, dport=80, flags="S")
    pkts = [Ether(**ETH) / IP(src="198.18.0.7", dst="10.0.0.1") / TCP(seq=1000 + 7919 * i, **syn)
            for i in range(12)]
    flood = [a for a in alerts(tmp_path, timed(pkts, dt=0.05)) if a["kind"] == "syn-flood"]
    assert len(flood) == 1
    a = flood[0]
    assert (a["src"], a["sport"], a["dst"], a["dport"]) == ("198.18.0.7", 40000, "10.0.0.1", 80)
    assert a["evidence"]["signal"] == "isn_flood" and a["evidence"]["distinct_isns"] == 11


def test_retransmitted_syns_are_not_a_flood(tmp_path):
    """A client retrying an unanswered SYN repeats its ISN: 15 retries, no alert."""
    syn = TCP(sport=40000, dport=80, flags="S", seq=4242)
    pkts = [Ether(**ETH) / IP(src="10.0.0.9", dst="10.0.0.1") / syn for _ in range(15)]
    assert [a for a in alerts(tmp_path, timed(pkts, dt=1.0)) if a["kind"] in MINE] == []


#: the suricata tcp-syn-flood cases (MANIFEST.tsv) -> (src or None, dst, dport) of the alert.
#: bug-7657-01: "Many SYNs on the same 4-tuple with different ISNs (hping-style)";
#: firewall-...-drop-precedence: "200 SYNs from many source ports ... in ~1 s" (a target-level
#: flood: the alert names the target, not one connection).
SURICATA_FLOODS = {
    "bug-7657-01": ("100.73.5.8", "100.73.2.4", 80),
    "firewall-tcp-session-syn-flood-drop-precedence": (None, "198.51.100.5", 443),
}


def _suricata_rows(category: str) -> list[dict]:
    import csv
    manifest = CORPUS / "suricata" / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with open(manifest, newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["category"] == category]


def test_every_suricata_syn_flood_case_has_an_expectation():
    assert {r["name"] for r in _suricata_rows("tcp-syn-flood")} == set(SURICATA_FLOODS)


@pytest.mark.parametrize("row", _suricata_rows("tcp-syn-flood"), ids=lambda r: r["name"])
def test_suricata_syn_flood_cases_alert(tmp_path, row):
    src, dst, dport = SURICATA_FLOODS[row["name"]]
    pcap = CORPUS / "suricata" / row["name"] / row["pcap_files"].split(",")[0]
    out = tmp_path / "alerts"
    run(["read", pcap, "--format", "json", "-o", tmp_path / "conn.json", "--alerts", out])
    flood = [json.loads(line) for line in out.read_text().splitlines()]
    flood = [a for a in flood if a["kind"] == "syn-flood"]
    assert [(a["src"], a["dst"], a["dport"]) for a in flood] == [(src, dst, dport)]
    if src is not None:  # one connection's alert: its uid is a record of that 4-tuple
        uids = {json.loads(line)["uid"] for line in (tmp_path / "conn.json").open()}
        assert flood[0]["uid"] in uids

def _busy_server(n=300):
    pkts = []
    for i in range(n):
        s = Session(client=f"172.16.{i // 200}.{i % 200 + 1}", server="10.0.0.1",
                    cport=30000 + i, sport=443, t0=1000.0 + i * 0.01)
        s.handshake()
        s.send(True, "PA", b"GET / HTTP/1.1\r\n\r\n")
        s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
        s.send(True, "FA")
        s.send(False, "FA")
        s.send(True, "A")
        pkts += s.pkts
    pkts.sort(key=lambda p: p.time)
    return pkts


def test_busy_server_is_not_a_flood_or_scan(tmp_path):
    assert [a for a in alerts(tmp_path, _busy_server()) if a["kind"] in MINE] == []


def test_busy_client_is_not_a_scan(tmp_path):
    # One client opening connections to 60 different servers (a browser), all answered.
    pkts = []
    for i in range(60):
        s = Session(client="10.0.0.2", server=f"93.184.{i}.1", cport=40000 + i,
                    sport=443, t0=1000.0 + i * 0.5)
        s.handshake()
        s.send(True, "PA", b"x")
        s.send(True, "RA")
        pkts += s.pkts
    assert [a for a in alerts(tmp_path, pkts) if a["kind"] in MINE] == []


def test_port_scan_vertical_and_horizontal(tmp_path):
    pkts = []
    t = 1000.0
    for port in range(20, 60):  # nmap -sS against one host: closed ports answer RST
        t += 0.01
        pkts.append(Ether(**ETH) / IP(src="10.9.9.9", dst="10.0.0.1") /
                    TCP(sport=61000, dport=port, flags="S", seq=7))
        pkts.append(Ether(**ETH) / IP(src="10.0.0.1", dst="10.9.9.9") /
                    TCP(sport=port, dport=61000, flags="RA", seq=0, ack=8))
    for i in range(30):  # and port 22 across a subnet, unanswered
        pkts.append(Ether(**ETH) / IP(src="10.9.9.9", dst=f"10.1.0.{i + 1}") /
                    TCP(sport=61001, dport=22, flags="S", seq=7))
    found = alerts(tmp_path, timed(pkts))
    scans = sorted((a["evidence"]["scan"], a["dst"] if a["evidence"]["scan"] == "vertical"
                    else None) for a in found if a["kind"] == "port-scan")
    assert scans == [("horizontal", None), ("vertical", "10.0.0.1")]
    vertical = next(a for a in found if a["evidence"].get("scan") == "vertical")
    assert vertical["src"] == "10.9.9.9" and vertical["evidence"]["distinct"] == 15
    assert set(kinds(found)) == {"port-scan"}


def test_backscatter_synacks(tmp_path):
    # Normal traffic first (the capture's opening seconds are a grace period), then a victim
    # answering SYNs someone sent in our name: SYN-ACKs to 10.0.0.9 we never asked for.
    s = Session(client="10.0.0.9", server="93.184.216.34", t0=1000.0).handshake()
    pkts = list(s.pkts)
    for i in range(8):
        p = Ether(**ETH) / IP(src="203.0.113.7", dst="10.0.0.9", ttl=50) / \
            TCP(sport=80, dport=20000 + i * 7, flags="SA", seq=99, ack=1000 + i)
        p.time = 1010.0 + i
        pkts.append(p)
    found = alerts(tmp_path, pkts, "--local-addr", "10.0.0.9")
    bs = [a for a in found if a["kind"] == "backscatter"]
    assert {(a["evidence"]["direction"], a["evidence"]["address"]) for a in bs} == \
        {("to", "10.0.0.9"), ("from", "203.0.113.7")}
    assert all(a["evidence"]["reply_types"] == ["SYN-ACK"] for a in bs)
    assert set(kinds(found)) == {"backscatter"}


def test_backscatter_icmp_errors(tmp_path):
    s = Session(client="10.0.0.9", server="93.184.216.34", t0=1000.0).handshake()
    pkts = list(s.pkts)
    t = 1010.0
    # ICMP unreachables quoting UDP packets 10.0.0.9 never sent
    for i in range(6):
        t += 0.5
        p = Ether(**ETH) / IP(src="198.51.100.1", dst="10.0.0.9") / ICMP(type=3, code=3) / \
            IPerror(src="10.0.0.9", dst=f"198.51.100.{i + 2}") / UDPerror(sport=5353 + i, dport=53)
        p.time = t
        pkts.append(p)
    found = alerts(tmp_path, pkts)
    assert sorted((a["evidence"]["direction"], a["evidence"]["address"]) for a in found) == \
        [("from", "198.51.100.1"), ("to", "10.0.0.9")]
    assert found[0]["evidence"]["reply_types"] == ["ICMP type 3 code 3"]
    assert set(kinds(found)) == {"backscatter"}


def test_icmp_errors_for_our_own_packets_are_not_backscatter(tmp_path):
    # A traceroute: UDP probes out, time-exceeded and port-unreachable back, all quoting them.
    pkts = []
    t = 1005.0
    for i in range(10):
        probe = Ether(**ETH) / IP(src="10.0.0.9", dst="93.184.216.34", ttl=i + 1) / \
            UDP(sport=40000, dport=33434 + i)
        probe.time = t
        t += 0.05
        code_type = (11, 0) if i < 9 else (3, 3)
        reply = Ether(**ETH) / IP(src=f"10.{i}.0.1", dst="10.0.0.9") / \
            ICMP(type=code_type[0], code=code_type[1]) / bytes(probe[IP])[:28]
        reply.time = t
        t += 0.05
        pkts += [probe, reply]
    assert alerts(tmp_path, pkts) == []


def test_asymmetric_route_is_not_backscatter(tmp_path):
    # Only the server->client half of many conversations: SYN-ACKs first, then data.
    pkts = []
    for i in range(10):
        s = Session(client=f"172.16.0.{i + 1}", server="10.0.0.1", cport=30000 + i, sport=443,
                    t0=1005.0 + i)
        s.handshake()
        s.send(False, "PA", b"hello")
        s.send(False, "FA")
        pkts += [p for p in s.pkts if p[IP].src == "10.0.0.1"]
    assert alerts(tmp_path, pkts) == []


def test_nat_like_ttl_differences_raise_nothing(tmp_path):
    # Many hosts behind one NAT address with different OS TTLs, and different hosts with
    # different hop counts: no packet-level detector has anything to say.
    pkts = []
    for i in range(20):
        s = Session(client="198.51.100.20", server=f"10.0.1.{i + 1}", cport=50000 + i, sport=80,
                    t0=1000.0 + i * 0.2)
        ttl = (64, 128, 255, 61, 117)[i % 5]
        s.send(True, "S", ttl=ttl)
        s.send(False, "SA")
        s.send(True, "A", ttl=ttl)
        s.send(True, "PA", b"GET /", ttl=ttl)
        s.send(False, "PA", b"200 OK")
        pkts += s.pkts
    pkts.sort(key=lambda p: p.time)
    # Every registered kind, the TCP detectors' ttl-anomaly included.
    assert alerts(tmp_path, pkts, "--local-addr", "10.0.1.1") == []


def test_alerts_counted_in_table_summary(tmp_path):
    p = Ether(**ETH) / IP(src="127.0.0.1", dst="10.0.0.9") / UDP(sport=5, dport=6)
    path = write(tmp_path, timed([p]))
    out = run(["read", path, "--detect", "--format", "table"]).stdout.decode()
    assert "Alerts" in out and "bogon-source" in out


def test_plain_run_attaches_no_detectors():
    import argparse

    from sniffer.config import Settings
    from sniffer.detect.engine import from_args
    args = argparse.Namespace(alerts=None, detect=False, local_addr=[])
    assert from_args(args, Settings(), {}) is None


def test_alert_cap_counts_drops():
    from collections import Counter

    from sniffer.config import Settings
    from sniffer.detect import Alert
    from sniffer.detect.engine import Detectors
    settings = Settings()
    settings.detect_max_alerts = 3
    stats = Counter()
    det = Detectors(settings, stats=stats, modules=[])
    for i in range(5):
        det.emit(Alert(float(i), "x", "low", "s"), key=(i,))
    det.emit(Alert(9.0, "x", "low", "s"), key=(0,))
    assert len(det.alerts) == 3 and stats["alerts_dropped"] == 2 and stats["alert:x"] == 3
    assert det.alerts[0].evidence == {"repeats": 1, "last_ts": 9.0}


# Traces of the Zeek corpus whose packet-level alerts are justified. Both are anonymised
# traces whose address scrambling produced addresses that really are bogon sources.
CORPUS_EXPECTED = {
    # GTP outer source 239.114.155.111: multicast as a source (anonymised address)
    "gtp-outer-ip-frag": {"bogon-source"},
    # 254.228.86.79 -> 79.26.245.236: a 240/4 source (anonymised address)
    "http-connect-smtp": {"bogon-source"},
}


def _corpus_traces():
    base = CORPUS / "zeek"
    if not base.is_dir():
        return []
    return sorted(d for d in base.iterdir() if (d / "trace.pcap").exists()
                  or any(d.glob("*.pcap*")))


@pytest.mark.parametrize("trace", _corpus_traces(), ids=lambda d: d.name)
def test_zeek_corpus_raises_only_justified_alerts(tmp_path, trace):
    pcap = trace / "trace.pcap" if (trace / "trace.pcap").exists() else next(trace.glob("*.pcap*"))
    args = (trace / "args").read_text().split() if (trace / "args").exists() else []
    out = tmp_path / "alerts.json"
    run(["read", pcap, *args, "--format", "zeek", "-o", tmp_path / "conn.log", "--alerts", out])
    found = {json.loads(line)["kind"] for line in out.read_text().splitlines()}
    assert found & set(MINE) == CORPUS_EXPECTED.get(trace.name, set())
