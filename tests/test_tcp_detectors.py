"""TCP-level detectors (rst-injection, data-injection, ttl-anomaly, out-of-window), end to end.

Crafted captures and the reference corpora go through the real `sniffer read FILE --alerts OUT`.
Every Ether() carries explicit MAC addresses (pcapkit.ETH): scapy must never resolve one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pcapkit import CORPUS, Session, run, write
from scapy.layers.inet import TCP

TCP_KINDS = frozenset({"rst-injection", "data-injection", "ttl-anomaly", "out-of-window"})
C, S = "10.0.0.1", "93.184.216.34"  # pcapkit's Session client and server


def read_alerts(tmp_path: Path, path: Path, *args) -> tuple[list[dict], list[dict]]:
    """(alerts, conn records) of `sniffer read path --alerts`."""
    out = tmp_path / (path.name + ".alerts")
    conns = tmp_path / (path.name + ".conn.json")
    run(["read", path, "--format", "json", "-o", conns, "--alerts", out, *args])
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    records = [json.loads(line) for line in conns.read_text().splitlines()]
    return [a for a in alerts if a["kind"] in TCP_KINDS], records


def crafted(tmp_path: Path, sess: Session) -> list[dict]:
    return read_alerts(tmp_path, write(tmp_path, sess.pkts))[0]


def kinds(found) -> list[str]:
    return sorted(a["kind"] for a in found)


def one(found, kind: str, src: str) -> dict:
    hits = [a for a in found if a["kind"] == kind and a["src"] == src]
    assert len(hits) == 1, found
    return hits[0]


def established(ttl_c=64, ttl_s=64, **kw) -> Session:
    s = Session(**kw)
    s.send(True, "S", ttl=ttl_c)
    s.send(False, "SA", ttl=ttl_s)
    s.send(True, "A", ttl=ttl_c)
    s.send(True, "PA", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ttl=ttl_c)
    s.send(False, "A", ttl=ttl_s)
    return s


def close(s: Session, ttl_c=64, ttl_s=64) -> Session:
    s.send(False, "FA", ttl=ttl_s)
    s.send(True, "FA", ttl=ttl_c)
    s.send(False, "A", ttl=ttl_s)
    return s


# -- each kind ----------------------------------------------------------------------------------


def test_rst_then_its_sender_keeps_sending(tmp_path):
    s = established()
    s.send(False, "RA", advance=False, dt=0.001)  # the forged one: the server "resets"...
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nhello")  # ...and answers all the same
    s.send(True, "A")
    found = crafted(tmp_path, s)
    a = one(found, "rst-injection", S)
    assert a["severity"] == "medium" and a["dport"] == 40000
    ev = a["evidence"]
    assert ev["detector"] == "data_after_rst" and ev["rst"]["seq"] == 5001
    assert ev["after"]["len"] == 24 and "ts" in ev
    assert kinds(found) == ["rst-injection"]


def test_rst_with_a_foreign_ttl(tmp_path):
    s = established(ttl_s=52)
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n", ttl=52)
    s.send(True, "A")
    s.send(False, "RA", advance=False, ttl=64)
    found = crafted(tmp_path, s)
    a = one(found, "rst-injection", S)
    assert a["evidence"]["detector"] == "rst_ttl" and a["evidence"]["expected_ttl"] == 52
    t = one(found, "ttl-anomaly", S)
    assert t["severity"] == "medium" and t["evidence"]["ttl"] == 64
    assert kinds(found) == ["rst-injection", "ttl-anomaly"]


def test_racing_rsts(tmp_path):
    s = established()
    s.send(False, "R", seq=5001 + 3000, advance=False, dt=0.0005)
    s.send(False, "R", seq=5001 + 9000, advance=False, dt=0.0005)
    found = crafted(tmp_path, s)
    a = one(found, "rst-injection", S)
    assert a["severity"] == "high" and a["evidence"]["detector"] == "rst_seq_change"
    assert a["evidence"]["second_rst"]["seq"] == 5001 + 9000


def test_overlapping_segments_with_different_bytes(tmp_path):
    s = established(ttl_s=55)
    real = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    fake = b"HTTP/1.1 302 Found\r\nLocation: http://evil/\r\n\r\n"
    _download(s, n=1, ttl=55)  # a first response: the server's TTL profile is set
    s.send(True, "PA", b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.send(False, "PA", fake, advance=False, ttl=64, dt=0.002)  # the injector wins the race
    s.send(False, "PA", real, ttl=55, dt=0.03)
    s.send(True, "A")
    found = crafted(tmp_path, s)
    [a] = [x for x in found if x["evidence"].get("detector") == "overlap_diff"]
    ev = a["evidence"]
    assert a["severity"] == "high" and a["src"] == S
    assert ev["first"]["ttl"] == 64 and ev["second"]["ttl"] == 55 and ev["ttl_differs"]
    assert ev["first"]["head"].startswith("302") and ev["second"]["head"].startswith("200")
    # the injected copy's TTL departs too: reported once per kind, as its own signal
    assert {x["evidence"]["detector"] for x in found if x["kind"] == "data-injection"} == {
        "overlap_diff", "data_ttl"}
    assert one(found, "ttl-anomaly", S)["evidence"]["expected_ttl"] == 55


def test_data_with_a_foreign_ttl(tmp_path):
    s = established(ttl_s=50)
    _download(s, n=2, ttl=50)
    s.send(False, "PA", b"HTTP/1.1 403 Forbidden\r\n\r\n", ttl=120)
    found = crafted(tmp_path, s)
    a = one(found, "data-injection", S)
    assert a["evidence"]["detector"] == "data_ttl" and a["evidence"]["ttl"] == 120


def test_ttl_anomaly_on_a_fin(tmp_path):
    s = established()
    s.send(False, "PA", b"x" * 100)
    s.send(True, "A")
    s.send(False, "FA", ttl=200)
    found = crafted(tmp_path, s)
    a = one(found, "ttl-anomaly", S)
    assert a["severity"] == "medium" and a["evidence"]["flags"] == "FA"
    assert kinds(found) == ["ttl-anomaly"]


def test_segment_far_beyond_the_window(tmp_path):
    s = established()
    s.send(False, "PA", b"y" * 50, seq=5001 + 50_000_000, advance=False)
    s.send(True, "A")  # the receiver's duplicate ACK: it discarded the segment
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\n")
    s.send(True, "A")
    found = crafted(tmp_path, s)
    a = one(found, "out-of-window", S)
    assert a["evidence"]["detector"] == "seq_beyond_window"
    assert a["evidence"]["beyond"] > 1 << 20 and "confirmed_by" in a["evidence"]
    assert kinds(found) == ["out-of-window"]


def test_ack_for_data_never_sent(tmp_path):
    s = established()
    s.send(True, "A", ack=5001 + 100_000)  # acknowledges 100 kB the server never sent
    s.send(False, "A")  # the server's next segment: its snd_nxt is still 5001
    found = crafted(tmp_path, s)
    a = one(found, "out-of-window", C)
    assert a["evidence"]["detector"] == "ack_unsent" and a["evidence"]["ack"] == 5001 + 100_000


# -- false-alarm guards -------------------------------------------------------------------------


def _download(s: Session, n=6, size=1000, ttl=64):
    for i in range(n):
        s.send(False, "A", bytes([65 + i]) * size, ttl=ttl)
    s.send(True, "A")


def test_identical_retransmission(tmp_path):
    s = established()
    p = s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nbody")
    s.pkts.append(p.copy())
    s.pkts[-1].time = p.time + 0.2
    s.send(True, "A", dt=0.21)
    assert crafted(tmp_path, close(s)) == []


def test_keepalive_with_garbage_octet(tmp_path):
    s = established()
    s.send(False, "PA", b"HTTP/1.1 200 OK\r\n\r\nbody")
    s.send(True, "A")
    s.send(True, "A", b"\x00", seq=s.seq[True] - 1, advance=False, dt=60)  # keep-alive probe
    s.send(False, "A", dt=0.01)
    s.send(True, "A", seq=s.seq[True] - 1, advance=False, dt=60)  # without the octet
    s.send(False, "A")
    assert crafted(tmp_path, close(s)) == []


def test_zero_window_probe(tmp_path):
    s = established()
    s.send(False, "A", b"z" * 1000)
    s.send(True, "A", window=0)  # the client's buffer is full
    s.send(False, "A", b"z", advance=False, dt=0.2)  # window probe: the next byte
    s.send(True, "A", window=0)
    s.send(False, "A", b"z", advance=False, dt=0.4)
    s.send(True, "A", window=8192)
    s.send(False, "A", b"z" * 500)
    s.send(True, "A")
    assert crafted(tmp_path, close(s)) == []


def test_sack_retransmission(tmp_path):
    s = established()
    segs = [bytes([97 + i]) * 1000 for i in range(4)]
    base = s.seq[False]
    for i, data in enumerate(segs):
        p = s.send(False, "A", data)
        if i == 1:
            s.pkts.pop()  # lost before the receiver (and the sensor)
            lost = p
    sack = [(base + 2000, base + 4000)]
    s.send(True, "A", ack=base + 1000)
    s.pkts[-1][TCP].options = [("NOP", None), ("NOP", None), ("SAck", sack[0])]
    s.pkts.append(lost.copy())  # the retransmission SACK asked for
    s.pkts[-1].time = s.t + 0.05
    s.t += 0.05
    s.send(True, "A")
    assert crafted(tmp_path, close(s)) == []


def test_midstream_pickup(tmp_path):
    s = Session(isn_c=3_000_000_000, isn_s=100)  # no handshake seen: windows unknown
    s.send(False, "A", b"q" * 1400)
    s.send(True, "A", ack=100 + 9_000_000)  # acks data the sensor never saw
    s.send(False, "A", b"r" * 1400, seq=100 + 20_000_000, advance=False)
    s.send(True, "A", window=3)
    s.send(False, "A", b"s" * 1400, seq=100 + 20_001_400, advance=False)
    assert crafted(tmp_path, s) == []


def test_ttl_differs_between_the_hosts(tmp_path):
    s = established(ttl_c=64, ttl_s=113)  # NAT, another OS, more hops: per host, not per flow
    _download(s, ttl=113)
    s.send(False, "RA", advance=False, ttl=113)
    assert crafted(tmp_path, s) == []


def test_route_flap_of_one_hop_and_genuine_rst_exchange(tmp_path):
    s = established()
    s.send(False, "A", b"a" * 500, ttl=63)
    s.send(False, "A", b"b" * 500, ttl=65)
    s.send(True, "A")
    # the client aborts; the server's data in flight draws RSTs carrying its ACKs as seq
    s.send(True, "RA", advance=False)
    s.send(False, "A", b"c" * 500)
    s.send(True, "R", seq=s.seq[True], advance=False, dt=0.001)
    s.send(False, "A", b"d" * 500)
    s.send(True, "R", seq=s.seq[True], advance=False, dt=0.001)
    assert crafted(tmp_path, s) == []


def test_capture_loss_is_not_out_of_window(tmp_path):
    s = established()
    _download(s, n=3)
    s.seq[False] += 5_000_000  # the sensor misses 5 MB of the server's data and the ACKs
    s.send(True, "A")  # an ACK for data the sensor never saw
    s.send(False, "A", b"t" * 1000)
    s.send(True, "A")
    assert crafted(tmp_path, close(s)) == []


def test_ipv6_overlap(tmp_path):
    s = established(v6=True, client="2001:db8::1", server="2001:db8::2")
    s.send(True, "PA", b"AAAA", advance=False)
    s.send(True, "PA", b"AAAB")
    found = crafted(tmp_path, s)
    assert one(found, "data-injection", "2001:db8::1")["evidence"]["overlap_len"] == 4


# -- reference corpora --------------------------------------------------------------------------

SURICATA = CORPUS / "suricata"

#: case -> (kind, sender, receiver) of the alert it must raise. From the MANIFEST row:
#: security-4710-01 "Forged RST (RST+ACK ...) right after the 3WHS, then the real HTTP
#: request/response continue" (client 192.168.111.128:56369 -> 192.168.112.136:80: the RST and
#: the request are the client's; test.yaml: suspected_rst_inject once);
#: bug-3286-02 "forged RST+ACK and FIN+ACK with bogus TS val 100 arrive before the real SYN/ACK"
#: (pcap packets 2 and 3, from the server 192.168.1.90:80 to 192.168.1.43:35532);
#: firewall-...-out-of-window "a data segment whose seq is ~100000 beyond the window" (the
#: client 192.0.2.10:43210's third packet to 198.51.100.5:80);
#: eve-payload-01 "Two segments with identical seq/len but different payload ("GOOD" then
#: "EVIL")" (1.1.1.1:12345 -> 2.2.2.2:8080).
SURICATA_EXPECTED = {
    "security-4710-01": ("rst-injection", ("192.168.111.128", 56369), ("192.168.112.136", 80)),
    "bug-3286-02-linux-evasion": ("rst-injection", ("192.168.1.90", 80), ("192.168.1.43", 35532)),
    "firewall-tcp-session-stream-out-of-window": (
        "out-of-window", ("192.0.2.10", 43210), ("198.51.100.5", 80)),
    "eve-payload-01-tcp-exact-overlap": ("data-injection", ("1.1.1.1", 12345), ("2.2.2.2", 8080)),
}
INJECTION_CATEGORIES = {"tcp-injection", "tcp-out-of-window", "tcp-overlap-injection"}
QUIET_CATEGORIES = {"negative-control", "flow-state", "tcp-evasion-control"}


def _manifest() -> list[dict]:
    with open(SURICATA / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _cases(categories) -> list[dict]:
    if not (SURICATA / "MANIFEST.tsv").exists():
        return []
    return [row for row in _manifest() if row["category"] in categories]


def _pcaps(row) -> list[Path]:
    return [SURICATA / row["name"] / p for p in row["pcap_files"].split(",")]


def test_every_injection_case_has_an_expectation():
    names = {row["name"] for row in _cases(INJECTION_CATEGORIES)}
    if not names:
        pytest.skip("suricata corpus not present")
    assert names == set(SURICATA_EXPECTED)


@pytest.mark.parametrize("row", _cases(INJECTION_CATEGORIES), ids=lambda r: r["name"])
def test_suricata_injection_cases_alert(tmp_path, row):
    kind, (src, sport), (dst, dport) = SURICATA_EXPECTED[row["name"]]
    found, records = read_alerts(tmp_path, *_pcaps(row))
    hits = [a for a in found if a["kind"] == kind]
    assert hits, f"no {kind} alert; got {found}"
    for a in hits:
        assert (a["src"], a["sport"], a["dst"], a["dport"]) == (src, sport, dst, dport)
    # the right connection: the record of that 5-tuple has the alert's uid
    uids = {r["uid"] for r in records
            if {(r["id.orig_h"], r["id.orig_p"]), (r["id.resp_h"], r["id.resp_p"])}
            == {(src, sport), (dst, dport)}}
    assert {a["uid"] for a in hits} <= uids and uids


@pytest.mark.parametrize("row", _cases(QUIET_CATEGORIES), ids=lambda r: r["name"])
def test_suricata_benign_cases_raise_nothing(tmp_path, row):
    for pcap in _pcaps(row):
        assert read_alerts(tmp_path, pcap)[0] == []


def _zeek_traces():
    base = CORPUS / "zeek"
    if not base.is_dir():
        return []
    return sorted(t for d in sorted(base.iterdir()) if d.is_dir()
                  for t in d.glob("trace.pcap*"))


@pytest.mark.parametrize("trace", _zeek_traces(), ids=lambda t: t.parent.name)
def test_zeek_corpus_raises_no_tcp_alert(tmp_path, trace):
    args_file = trace.parent / "args"
    args = args_file.read_text().split() if args_file.exists() else []
    assert read_alerts(tmp_path, trace, *args)[0] == []
