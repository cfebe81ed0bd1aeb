"""TCP-level detectors (rst-injection, data-injection, ttl-anomaly, out-of-window), end to end.

Crafted captures (the scenarios of tests/scenarios.py, each run once per session; their kinds,
the false-alarm guards' included, are checked by tests/test_detector_table.py) and the
reference corpora go through the real `sniffer read FILE --alerts OUT`.

Every Ether() carries explicit MAC addresses (pcapkit.ETH): scapy must never resolve one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapkit import CORPUS
from scenarios import (C, S, SURICATA_EXPECTED, TCP_KINDS, read_capture, result, suricata_pcaps,
                       suricata_result, suricata_rows)


def read_alerts(tmp_path: Path, path: Path, *args) -> tuple[list[dict], list[dict]]:
    """(alerts of the TCP kinds, conn records) of `sniffer read path --alerts`."""
    alerts, records = read_capture(path, tmp_path, *args)
    return [a for a in alerts if a["kind"] in TCP_KINDS], records


def crafted(name: str) -> list[dict]:
    """The TCP-kind alerts of the catalogue's scenario `name`."""
    return [a for a in result(name)[0] if a["kind"] in TCP_KINDS]


def kinds(found) -> list[str]:
    return sorted(a["kind"] for a in found)


def one(found, kind: str, src: str) -> dict:
    hits = [a for a in found if a["kind"] == kind and a["src"] == src]
    assert len(hits) == 1, found
    return hits[0]


# -- each kind ----------------------------------------------------------------------------------


def test_rst_then_its_sender_keeps_sending():
    found = crafted("rst-then-data")
    a = one(found, "rst-injection", S)
    assert a["severity"] == "medium" and a["dport"] == 40000
    ev = a["evidence"]
    assert ev["detector"] == "data_after_rst" and ev["rst"]["seq"] == 5001
    assert ev["after"]["len"] == 24 and "ts" in ev
    assert kinds(found) == ["rst-injection"]


def test_rst_with_a_foreign_ttl():
    found = crafted("rst-foreign-ttl")
    a = one(found, "rst-injection", S)
    assert a["evidence"]["detector"] == "rst_ttl" and a["evidence"]["expected_ttl"] == 52
    t = one(found, "ttl-anomaly", S)
    assert t["severity"] == "medium" and t["evidence"]["ttl"] == 64
    assert kinds(found) == ["rst-injection", "ttl-anomaly"]


def test_racing_rsts():
    found = crafted("racing-rsts")
    a = one(found, "rst-injection", S)
    assert a["severity"] == "high" and a["evidence"]["detector"] == "rst_seq_change"
    assert a["evidence"]["second_rst"]["seq"] == 5001 + 9000


def test_overlapping_segments_with_different_bytes():
    found = crafted("overlap-different-bytes")
    [a] = [x for x in found if x["evidence"].get("detector") == "overlap_diff"]
    ev = a["evidence"]
    assert a["severity"] == "high" and a["src"] == S
    assert ev["first"]["ttl"] == 64 and ev["second"]["ttl"] == 55 and ev["ttl_differs"]
    assert ev["first"]["head"].startswith("302") and ev["second"]["head"].startswith("200")
    # the injected copy's TTL departs too: reported once per kind, as its own signal
    assert {x["evidence"]["detector"] for x in found if x["kind"] == "data-injection"} == {
        "overlap_diff", "data_ttl"}
    assert one(found, "ttl-anomaly", S)["evidence"]["expected_ttl"] == 55


def test_data_with_a_foreign_ttl():
    found = crafted("data-foreign-ttl")
    a = one(found, "data-injection", S)
    assert a["evidence"]["detector"] == "data_ttl" and a["evidence"]["ttl"] == 120


def test_ttl_anomaly_on_a_fin():
    found = crafted("ttl-on-fin")
    a = one(found, "ttl-anomaly", S)
    assert a["severity"] == "medium" and a["evidence"]["flags"] == "FA"
    assert kinds(found) == ["ttl-anomaly"]


def test_segment_far_beyond_the_window():
    found = crafted("beyond-window")
    a = one(found, "out-of-window", S)
    assert a["evidence"]["detector"] == "seq_beyond_window"
    assert a["evidence"]["beyond"] > 1 << 20 and "confirmed_by" in a["evidence"]
    assert kinds(found) == ["out-of-window"]


def test_ack_for_data_never_sent():
    found = crafted("ack-unsent")
    a = one(found, "out-of-window", C)
    assert a["evidence"]["detector"] == "ack_unsent" and a["evidence"]["ack"] == 5001 + 100_000


def test_ipv6_overlap():
    found = crafted("ipv6-overlap")
    assert one(found, "data-injection", "2001:db8::1")["evidence"]["overlap_len"] == 4


# The false-alarm guards (retransmissions, keep-alives, window probes, SACK, midstream pickup,
# per-host TTLs, a route flap, capture loss) are scenarios of tests/scenarios.py that must raise
# no TCP kind: tests/test_detector_table.py checks them.


# -- reference corpora --------------------------------------------------------------------------

INJECTION_CATEGORIES = {"tcp-injection", "tcp-out-of-window", "tcp-overlap-injection"}
QUIET_CATEGORIES = {"negative-control", "flow-state", "tcp-evasion-control"}


def _cases(categories) -> list[dict]:
    return [row for row in suricata_rows() if row["category"] in categories]


def test_every_injection_case_has_an_expectation():
    names = {row["name"] for row in _cases(INJECTION_CATEGORIES)}
    if not names:
        pytest.skip("suricata corpus not present")
    assert names == set(SURICATA_EXPECTED)


@pytest.mark.parametrize("row", _cases(INJECTION_CATEGORIES), ids=lambda r: r["name"])
def test_suricata_injection_cases_alert(row):
    kind, (src, sport), (dst, dport) = SURICATA_EXPECTED[row["name"]]
    assert len(suricata_pcaps(row)) == 1
    found, records = suricata_result(row["name"])
    found = [a for a in found if a["kind"] in TCP_KINDS]
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
    for pcap in suricata_pcaps(row):
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
