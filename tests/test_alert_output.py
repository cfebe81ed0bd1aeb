"""`--alerts-format zeek`: the alerts as Zeek's notice.log, the same alerts as the JSON lines."""

from __future__ import annotations

import json

import pytest
from pcapkit import CORPUS, run
from zeeklog import parse_log

CASE = CORPUS / "suricata" / "security-4710-01"


@pytest.mark.skipif(not CASE.exists(), reason="suricata corpus not present")
def test_notice_log_carries_the_json_alerts(tmp_path):
    pcap = next(CASE.glob("*.pcap"))
    as_json, as_zeek = tmp_path / "alerts.json", tmp_path / "notice.log"
    run(["read", pcap, "-o", tmp_path / "conn.log", "--alerts", as_json])
    run(["read", pcap, "-o", tmp_path / "conn.log", "--alerts", as_zeek,
         "--alerts-format", "zeek"])
    alerts = [json.loads(line) for line in as_json.read_text().splitlines()]
    log = parse_log(as_zeek)
    assert log.path == "notice" and alerts and len(log.rows) == len(alerts)
    for a, row in zip(alerts, log.rows):
        assert row["note"] == "Sniffer::" + "_".join(p.capitalize() for p in a["kind"].split("-"))
        assert (row["uid"], row["id.orig_h"], row["id.orig_p"], row["id.resp_h"],
                row["id.resp_p"], row["proto"], row["msg"], row["community_id"]) == \
            (a["uid"], a["src"], str(a["sport"]), a["dst"], str(a["dport"]), a["proto"],
             a["summary"], a["community_id"])
        sub = json.loads(row["sub"])
        assert sub == {"severity": a["severity"], "evidence": a["evidence"]}
        assert row["n"] == str(1 + a["evidence"].get("repeats", 0))
    assert log.rows[0]["note"] == "Sniffer::Rst_Injection"
