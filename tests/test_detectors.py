"""Packet-level detectors end to end: crafted captures through `sniffer read --alerts FILE`.

The captures are the scenarios of tests/scenarios.py (each run once per session). A scenario
that is simply "this capture -> these kinds" (the false-alarm guards among them) is checked by
tests/test_detector_table.py; the tests here assert the alerts' details.
"""

from __future__ import annotations

import json

import pytest
from pcapkit import CORPUS, ETH, run, write
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scenarios import PACKET_KINDS, SURICATA_FLOODS, result, suricata_result, suricata_rows, timed


def kinds(found) -> list[str]:
    return sorted(a["kind"] for a in found)


def test_alert_record_shape_and_land():
    found, records = result("land")
    assert len(found) == 1
    a = found[0]
    assert list(a) == ["ts", "kind", "severity", "uid", "community_id", "proto", "src", "sport",
                       "dst", "dport", "summary", "evidence"]
    assert (a["kind"], a["severity"], a["proto"], a["src"], a["sport"], a["dport"]) == \
        ("land", "high", "tcp", "10.0.0.5", 139, 139)
    assert a["uid"].startswith("C") and a["community_id"].startswith("1:")
    assert a["evidence"]["repeats"] == 1 and a["evidence"]["tcp_flags"] == 2
    # The frames that raised it, numbered as Wireshark numbers them (from 1).
    assert a["evidence"]["packet"] == 1 and a["evidence"]["last_packet"] == 2
    conn = records[0]
    assert conn["uid"] == a["uid"] and conn["community_id"] == a["community_id"]


def test_land_with_different_ports_from_the_wire():
    """Our address to itself, other ports, arriving from the wire (issue 12, item 10): `land`
    (Snort/Suricata `sameip`: addresses only) and `local-source-from-wire`, both naming the
    connection; another host's address to itself is `land` alone."""
    found, records = result("land-other-ports")
    ours = sorted((a for a in found if a["src"] == "10.0.0.9"), key=lambda a: a["kind"])
    assert kinds(ours) == ["land", "local-source-from-wire"], found
    (rec,) = [r for r in records if r["id.orig_h"] == "10.0.0.9"]
    for a in ours:
        assert (a["proto"], a["src"], a["sport"], a["dst"], a["dport"]) == \
            ("udp", "10.0.0.9", 4444, "10.0.0.9", 5555), a
        assert a["severity"] == "high" and a["uid"] == rec["uid"], (a, rec)
        assert a["community_id"] == rec["community_id"], (a, rec)
    land = ours[0]
    assert land["evidence"]["same_port"] is False and "port 4444 to 5555" in land["summary"]
    other = [a for a in found if a["src"] == "10.0.0.5"]
    assert [(a["kind"], a["sport"], a["dport"]) for a in other] == [("land", 40000, 80)]


def test_bogon_sources():
    found = result("bogon-sources")[0]
    ranges = {a["src"]: (a["evidence"]["range"], a["severity"]) for a in found}
    assert ranges == {
        "127.0.0.1": ("127.0.0.0/8", "high"), "224.0.0.5": ("224.0.0.0/4", "medium"),
        "0.0.0.7": ("0.0.0.0/8", "medium"), "255.255.255.255": ("255.255.255.255/32", "medium"),
        "::1": ("::1/128", "high"), "ff02::1": ("ff00::/8", "medium"),
        "::ffff:10.0.0.1": ("::ffff:0:0/96", "medium"),
    }
    assert next(a for a in found if a["src"] == "224.0.0.5")["evidence"]["repeats"] == 1


def test_local_source_from_wire():
    found = result("local-source-sll")[0]
    assert kinds(found) == ["local-source-from-wire"]
    assert found[0]["severity"] == "high" and found[0]["evidence"]["pkttype"] == 0
    # Without the host's addresses nothing can be said.
    assert result("local-source-sll-no-addr")[0] == []


def test_local_source_unknown_direction():
    found = result("local-source-ttl")[0]
    assert kinds(found) == ["local-source-from-wire"]
    assert found[0]["evidence"]["ttl"] == 57 and found[0]["severity"] == "medium"


def test_direction_from_pcapng_epb_flags(tmp_path):
    """A pcapng that records each frame's direction in its EPB flags (as `live -w` does): our
    address arriving inbound with an initial TTL is caught, which the TTL alone could not
    tell; the same frame recorded as outgoing, or with no direction, is ours."""
    from scenarios import read_capture
    from sniffer.output.pcapng import PcapngWriter
    frame = bytes(Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64)
                  / UDP(sport=4444, dport=5555))
    for direction, expected in ((0, ["local-source-from-wire"]), (4, []), (None, [])):
        path = tmp_path / f"direction-{direction}.pcapng"
        w = PcapngWriter(path)
        w.add_interface("eth0", 1)
        w.packet(0, 1000.0, frame, len(frame), direction)
        w.close()
        found = read_capture(path, tmp_path, "--local-addr", "10.0.0.1")[0]
        assert kinds(found) == expected, (direction, found)
        if found:
            ev = found[0]["evidence"]
            assert (ev["pkttype"], ev["direction_from"], found[0]["severity"]) == \
                (0, "pkttype", "high"), found


def test_local_addr_is_validated(tmp_path):
    p = write(tmp_path, timed([Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()]))
    proc = run(["read", p, "--alerts", tmp_path / "a", "--local-addr", "nope"], check=False)
    assert proc.returncode == 2 and b"--local-addr" in proc.stderr


def test_syn_flood():
    found = result("syn-flood")[0]
    flood = [a for a in found if a["kind"] == "syn-flood"]
    assert len(flood) == 1
    ev = flood[0]["evidence"]
    assert (flood[0]["dst"], flood[0]["dport"]) == ("10.0.0.1", 80)
    assert ev["half_open"] == 101 and ev["distinct_sources"] == 101
    assert "port-scan" not in kinds(found)


def test_thresholds_are_settings(tmp_path):
    """--detect-set changes a threshold: the 150-SYN flood passes under a limit of 200, and
    a bad name or value is one line naming the option, exit status 2."""
    from scenarios import BY_NAME, read_capture
    pcap = write(tmp_path, BY_NAME["syn-flood"].build(), "flood.pcap")
    (tmp_path / "higher").mkdir()
    (tmp_path / "lower").mkdir()
    higher = read_capture(pcap, tmp_path / "higher", "--detect-set", "syn_flood_half_open=200")[0]
    assert "syn-flood" not in kinds(higher)
    lower = read_capture(pcap, tmp_path / "lower", "--detect-set", "syn_flood_half_open=20")[0]
    (flood,) = [a for a in lower if a["kind"] == "syn-flood"]
    assert flood["evidence"]["half_open"] == 21
    for bad in ("syn_flood_half_open=lots", "no_such_threshold=3", "port_scan_window=-1"):
        proc = run(["read", pcap, "--alerts", tmp_path / "a", "--detect-set", bad], check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err.count("\n") == 1 and "--detect-set" in err, err


def test_syn_flood_on_one_four_tuple():
    flood = [a for a in result("syn-flood-one-tuple")[0] if a["kind"] == "syn-flood"]
    assert len(flood) == 1
    a = flood[0]
    assert (a["src"], a["sport"], a["dst"], a["dport"]) == ("198.18.0.7", 40000, "10.0.0.1", 80)
    assert a["evidence"]["signal"] == "isn_flood" and a["evidence"]["distinct_isns"] == 11


def _suricata_rows(category: str) -> list[dict]:
    return [r for r in suricata_rows() if r["category"] == category]


def test_every_suricata_syn_flood_case_has_an_expectation():
    assert {r["name"] for r in _suricata_rows("tcp-syn-flood")} == set(SURICATA_FLOODS)


@pytest.mark.parametrize("row", _suricata_rows("tcp-syn-flood"), ids=lambda r: r["name"])
def test_suricata_syn_flood_cases_alert(row):
    src, dst, dport = SURICATA_FLOODS[row["name"]]
    found, records = suricata_result(row["name"])
    flood = [a for a in found if a["kind"] == "syn-flood"]
    assert [(a["src"], a["dst"], a["dport"]) for a in flood] == [(src, dst, dport)]
    if src is not None:  # one connection's alert: its uid is a record of that 4-tuple
        assert flood[0]["uid"] in {r["uid"] for r in records}


def test_port_scan_vertical_and_horizontal():
    found = result("port-scan")[0]
    scans = sorted((a["evidence"]["scan"], a["dst"] if a["evidence"]["scan"] == "vertical"
                    else None) for a in found if a["kind"] == "port-scan")
    assert scans == [("horizontal", None), ("vertical", "10.0.0.1")]
    vertical = next(a for a in found if a["evidence"].get("scan") == "vertical")
    # The count is the whole scan's (40 ports), not the threshold it crossed (15).
    ev = vertical["evidence"]
    assert vertical["src"] == "10.9.9.9" and (ev["distinct"], ev["threshold"]) == (40, 15)
    assert ev["final"] is True and ev["attempts"] == 40
    assert vertical["summary"] == "10.9.9.9 probed 40 TCP ports of 10.0.0.1 without a connection"
    assert set(kinds(found)) == {"port-scan"}


def test_udp_port_scan():
    (scan,) = [a for a in result("udp-port-scan")[0] if a["kind"] == "port-scan"]
    assert (scan["proto"], scan["src"], scan["dst"], scan["evidence"]["scan"]) == \
        ("udp", "10.9.9.9", "10.0.0.1", "vertical"), scan
    assert scan["evidence"]["distinct"] == 40 and "probed 40 UDP ports" in scan["summary"]


FAILED = {"S0", "REJ", "RSTO", "RSTOS0", "RSTR", "RSTRH", "SH", "SHR"}


def test_port_scan_reports_the_whole_scan(tmp_path):
    """nDPI's nmap SYN scan (2,011 packets: ~2,000 probes of 1,000 ports of one host, two
    source ports; issue 12 item 14): one alert whose count is every port that failed, as the
    conn records show, with the attempts; not the threshold it crossed."""
    pcap = CORPUS / "big" / "ndpi_synscan.pcap"
    out, conn = tmp_path / "alerts.json", tmp_path / "conn.json"
    run(["read", pcap, "--format", "json", "-o", conn, "--alerts", out])
    records = [json.loads(line) for line in conn.read_text().splitlines()]
    failed = [r for r in records if r["proto"] == "tcp" and r["conn_state"] in FAILED
              and "A" not in r["history"] and "D" not in r["history"].upper()]
    (scan,) = [json.loads(line) for line in out.read_text().splitlines()]
    (src,), (dst,) = {r["id.orig_h"] for r in failed}, {r["id.resp_h"] for r in failed}
    ports = {r["id.resp_p"] for r in failed}
    ev = scan["evidence"]
    assert (scan["kind"], scan["src"], scan["dst"]) == ("port-scan", src, dst)
    assert (ev["distinct"], ev["attempts"], ev["final"]) == (len(ports), len(failed), True), ev
    assert len(ports) > 15 * 10 and len(failed) > len(ports), (len(ports), len(failed))
    assert scan["summary"] == (f"{src} probed {len(ports)} TCP ports of {dst} without a "
                               f"connection ({len(failed)} failed attempts)")


def _scan_records(src: str, dst: str, ports, t0: float) -> list:
    from sniffer.flows.conn import Conn
    return [Conn(t0 + i * 0.01, f"C{port}", src, 40000, dst, port, "tcp", 6, conn_state="REJ",
                 history="Sr", orig_pkts=1, resp_pkts=1) for i, port in enumerate(ports)]


def test_port_scan_alert_grows_while_it_is_held_and_after_it_is_written(tmp_path):
    """The engine as `live` drives it: the alert is held while the scan grows (each new port
    is a repeat), written once settled with "at least N"; ports after that start a new line
    with the count so far, and the line written at the end of the run has the final count."""
    from sniffer.config import Settings
    from sniffer.detect.engine import Detectors
    from sniffer.output.alerts import AlertFile
    det = Detectors(Settings(), modules=["sniffer.detect.port_scan"])
    path = tmp_path / "alerts.json"
    det.file = AlertFile(str(path), "json")
    src, dst = "10.9.9.9", "10.0.0.1"

    def lines() -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    for r in _scan_records(src, dst, range(1, 21), 1000.0):  # 20 ports: crosses 15
        det.finished(r)
    det.write_settled(1000.5)  # still growing half a second ago: held
    assert lines() == []
    det.write_settled(1003.0)  # quiet for 2 s: written
    (first,) = lines()
    assert first["evidence"]["distinct"] == 20 and first["evidence"]["final"] is False
    assert first["summary"] == f"{src} probed at least 20 TCP ports of {dst} without a connection"
    assert first["evidence"]["repeats"] == 5  # ports 16..20 grew it
    for r in _scan_records(src, dst, range(21, 31), 1010.0):  # the scan goes on
        det.finished(r)
    for r in _scan_records(src, dst, range(25, 31), 1011.0):  # probed again: no new port
        det.finished(r)
    det.close()
    second = lines()[1]
    ev = second["evidence"]
    assert (ev["distinct"], ev["attempts"], ev["final"]) == (30, 36, True), second
    assert second["summary"] == (f"{src} probed 30 TCP ports of {dst} without a connection "
                                 "(36 failed attempts)")


def test_syn_flood_silent_when_every_handshake_completes(tmp_path):
    """Zeek's echo-connections benchmark trace: 500 loopback connections, every one SF, but
    the server's listen queue overflowed and ~150 SYNs waited up to 3 s for their retries;
    no handshake failed, so no syn-flood (issue 12 item 14)."""
    pcap = CORPUS / "big" / "zeek_echo-connections.pcap.gz"
    out, conn = tmp_path / "alerts.json", tmp_path / "conn.json"
    run(["read", pcap, "--format", "json", "-o", conn, "--alerts", out])
    records = [json.loads(line) for line in conn.read_text().splitlines()]
    assert len(records) == 500 and {r["conn_state"] for r in records} == {"SF"}
    assert [json.loads(line)["kind"] for line in out.read_text().splitlines()] == []


def test_syn_flood_decided_once_the_attempts_have_waited(tmp_path):
    """The 150-SYN flood, then 7 s later another packet: the attempts failed when the attempt
    delay (5 s) passed unanswered, while the capture still runs (as `live` decides them);
    the alert is dated by the SYN that crossed the threshold and names its frame."""
    from scenarios import BY_NAME, read_capture
    from scapy.layers.inet import TCP
    pkts = BY_NAME["syn-flood"].build()
    later = Ether(**ETH) / IP(src="10.0.0.50", dst="10.0.0.60") / TCP(sport=1, dport=2, flags="S")
    later.time = pkts[-1].time + 7
    found = read_capture(write(tmp_path, pkts + [later], "late.pcap"), tmp_path)[0]
    (flood,) = [a for a in found if a["kind"] == "syn-flood"]
    assert flood["evidence"]["half_open"] == 101 and flood["evidence"]["packet"] == 101
    assert flood["ts"] == pytest.approx(float(pkts[100].time))


def test_backscatter_synacks():
    found = result("backscatter-synacks")[0]
    bs = [a for a in found if a["kind"] == "backscatter"]
    assert {(a["evidence"]["direction"], a["evidence"]["address"]) for a in bs} == \
        {("to", "10.0.0.9"), ("from", "203.0.113.7")}
    assert all(a["evidence"]["reply_types"] == ["SYN-ACK"] for a in bs)
    assert set(kinds(found)) == {"backscatter"}


def test_backscatter_icmp_errors():
    found = result("backscatter-icmp")[0]
    assert sorted((a["evidence"]["direction"], a["evidence"]["address"]) for a in found) == \
        [("from", "198.51.100.1"), ("to", "10.0.0.9")]
    assert found[0]["evidence"]["reply_types"] == ["ICMP type 3 code 3"]
    assert set(kinds(found)) == {"backscatter"}


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
    assert found & PACKET_KINDS == CORPUS_EXPECTED.get(trace.name, set())
