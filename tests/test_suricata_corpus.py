"""Suricata-verify reference cases: encapsulation, fragment and malformed-packet decoding.

The corpus is read in place from ``<shared>/corpus/suricata`` (never copied): one
folder per case with the pcap, Suricata's ``test.yaml`` (the events Suricata must produce) and
the ``MANIFEST.tsv`` row describing it (``what_it_tests`` / ``expected_outputs``).

Suricata's events are not conn.log records, so nothing is compared field by field. Instead,
``EXPECT`` below states, per case of the encapsulation/fragment categories, which connections a
Zeek-style tracker must report. Every entry cites the test.yaml event or the MANIFEST text it
comes from; addresses and ports the case files leave implicit were read from the pcap with
tshark (noted as such) and are written here as plain data: the tests themselves need no tshark.

* ``test_case_expectations`` - one test per case of ENCAP_CATEGORIES. The connections listed
  must appear in ``sniffer read --format json`` (direction-insensitive: Suricata's src/dest need
  not be Zeek's orig/resp; the numeric checks are stated in Suricata's direction and swapped with
  the record when it is reversed). Tunnel cases fail until tunnel decoding lands; the message
  lists the missing connections and what sniffer produced instead.
* ``test_no_crash`` - EVERY case of the MANIFEST: exit 0 (2 only with a one-line error) and never
  a traceback, in json and table formats.
* ``test_expectations_agree_with_logged_packets`` - where test.yaml logs the packet bytes, the
  5-tuple (and length) written in EXPECT must be the one in those bytes.
"""

from __future__ import annotations

import base64
import csv
import ipaddress
import json
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sharedkit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS = sharedkit.CORPUS / "suricata"

#: MANIFEST categories whose every case must have an entry in EXPECT
ENCAP_CATEGORIES = frozenset({"encap-vlan", "encap-tunnel", "fragments", "ipv6-exthdr",
                              "icmp-error", "decode-malformed"})

#: seconds one sniffer run may take (override with SNIFFER_SURICATA_TIMEOUT)
TIMEOUT = float(os.environ.get("SNIFFER_SURICATA_TIMEOUT", "300"))


# ---------------------------------------------------------------------------------------------
# expectations


@dataclass(frozen=True)
class Want:
    """A connection that must be in sniffer's output.

    ``orig_p``/``resp_p`` of None match any port (for ICMP: any type/code). ``checks`` keys:
    orig_pkts, resp_pkts, orig_ip_bytes, resp_ip_bytes (summed over every matching record, so a
    tracker that keys by VLAN and one that does not agree); history_startswith; history_has
    (every letter present). ``tunnel``: True = tunnel_parents must be non-empty; a tuple of
    Want = tunnel_parents must hold the uid of each of those (outer) connections.
    """

    proto: str
    orig_h: str
    orig_p: int | None
    resp_h: str
    resp_p: int | None
    why: str
    checks: dict = field(default_factory=dict, hash=False, compare=False)
    tunnel: object = None

    def __str__(self) -> str:
        def ep(h, p):
            h = f"[{h}]" if ":" in h else h
            return h if p is None else f"{h}:{p}"
        return f"{self.proto} {ep(self.orig_h, self.orig_p)} -> {ep(self.resp_h, self.resp_p)}"


@dataclass(frozen=True)
class Case:
    conns: tuple[Want, ...] = ()
    args: tuple[str, ...] = ()  # extra `sniffer read` options
    #: 'Skipped or damaged' section of the table format: (keyword or None, minimum count):
    #: the rows whose event contains keyword (any row if None) must add up to at least minimum
    damaged: tuple[str | None, int, str] | None = None
    #: no connection of these protocols may appear (with the reason)
    forbid_protos: tuple[frozenset, str] | None = None


# Geneve outer connections, referenced by the inner one's tunnel_parents.
# tshark: the echo requests ride 192.168.56.11:35671 -> 192.168.56.12:6081, the replies
# 192.168.56.12:12313 -> 192.168.56.11:6081 (two one-way UDP flows, as Zeek logs them).
_GENEVE_OUT_REQ = Want("udp", "192.168.56.11", 35671, "192.168.56.12", 6081,
                       "MANIFEST: 'inside Geneve (UDP 6081)'; outer ports via tshark (requests)",
                       {"orig_pkts": 4})
_GENEVE_OUT_REP = Want("udp", "192.168.56.12", 12313, "192.168.56.11", 6081,
                       "MANIFEST: 'inside Geneve (UDP 6081)'; outer ports via tshark (replies)",
                       {"orig_pkts": 4})

EXPECT: dict[str, Case] = {
    # ----------------------------------------------------------------------------- encap-vlan
    "eve-flow-vlan-02": Case(conns=(
        # test.yaml: three flow events, vlan [6], [1,10], [1,10,100]; writepcap.py: each is
        # IP(src=192.168.0.1, dst=255.255.255.255)/ICMP() -> echo request (8/0), 20+8 = 28 IP
        # bytes. Suricata keys flows by VLAN, Zeek does not: summed over the matching records,
        # all 3 packets must be decoded through 1, 2 and 3 stacked tags.
        Want("icmp", "192.168.0.1", 8, "255.255.255.255", 0,
             "test.yaml: 3 flow events (vlan [6], [1,10], [1,10,100]); writepcap.py",
             {"orig_pkts": 3, "orig_ip_bytes": 3 * 28}),
    )),
    "bug-814": Case(conns=(
        # test.yaml flow event: src fe80::20c:29ff:fef3:cf38:58307 -> fe80::20c:29ff:faf2:ab42:80,
        # vlan[0] 1111, pkts_toserver 4 / toclient 3, bytes 461 / 234 (Ethernet+802.1Q frames:
        # minus 18 bytes a packet = 389 / 180 IP bytes), tcp_flags_ts 1b (S,F,P,A) and
        # tcp_flags_tc 12 (S,A): handshake from the client, SYN-ACK answer, FIN from the client.
        Want("tcp", "fe80::20c:29ff:fef3:cf38", 58307, "fe80::20c:29ff:faf2:ab42", 80,
             "test.yaml flow event (vlan 1111, pkts 4/3, bytes 461/234, flags ts 1b tc 12)",
             {"orig_pkts": 4, "resp_pkts": 3, "orig_ip_bytes": 461 - 4 * 18,
              "resp_ip_bytes": 234 - 3 * 18, "history_startswith": "Sh", "history_has": "DF"}),
    )),
    # ------------------------------------------------------------------------------ fragments
    "defrag-bug-6887-defrag-ipv4-tcp-syn": Case(conns=(
        # test.yaml: one tcp.flags:S alert on the reassembled datagram (packet field: IPv4
        # 1.1.1.1 -> 2.2.2.2, total length 44, TCP 12345 -> 8080 SYN); frag-ip-tcp-syn.py.
        # 3 fragments -> ONE reassembled SYN.
        Want("tcp", "1.1.1.1", 12345, "2.2.2.2", 8080,
             "test.yaml: SYN alert once on reassembled packet (44 bytes)",
             {"orig_pkts": 1, "orig_ip_bytes": 44, "history_startswith": "S"}),
    )),
    "defrag-bug-6887-defrag-ipv6-tcp": Case(conns=(
        # test.yaml: one dsize:1000 alert on the reassembled packet (packet field: IPv6 ::1 ->
        # ::1, payload length 1020 = 20 TCP + 1000 data, TCP 12345 -> 8080 ACK); frag-ip-tcp.py.
        Want("tcp", "::1", 12345, "::1", 8080,
             "test.yaml: dsize 1000 alert once on reassembled packet (40+1020 bytes)",
             {"orig_pkts": 1, "orig_ip_bytes": 1060, "history_has": "D"}),
    )),
    "defrag-bug-6887-defrag-eth-vlan-ipv4-tcp-syn": Case(conns=(
        # test.yaml: one SYN alert; packet field: Ethernet + 802.1Q 6 + the same 44-byte
        # reassembled IPv4 1.1.1.1 -> 2.2.2.2 TCP 12345 -> 8080 SYN; frag-eth-vlan-ip-tcp-syn.py.
        Want("tcp", "1.1.1.1", 12345, "2.2.2.2", 8080,
             "test.yaml: SYN alert once on reassembled packet (VLAN 6, 44 IP bytes)",
             {"orig_pkts": 1, "orig_ip_bytes": 44, "history_startswith": "S"}),
    )),
    # test.yaml: only decoder event ipv6.frag_overlap (sid 2200072) once; MANIFEST: 'IPv6
    # overlapping fragments'. No connection to derive: it must be counted, not crash.
    "ipv6-malformed-fragments-1": Case(
        damaged=("frag", 1, "test.yaml: ipv6.frag_overlap decoder event")),
    # ------------------------------------------------------------------------------ icmp-error
    "ipv6-malformed-fragments-30": Case(conns=(
        # test.yaml: alert icmpv6 itype:3 icode:1 once (MANIFEST: ICMPv6 Time Exceeded, fragment
        # reassembly time exceeded); tshark: frame 7, 2001:db8:1::1 -> 2001:db8:1::2.
        # Zeek-style ICMP ids: orig_p = type, resp_p = code.
        Want("icmp", "2001:db8:1::1", 3, "2001:db8:1::2", 1,
             "test.yaml: ICMPv6 type 3 code 1 alert once"),
    )),
    "flow-drop-iponly-02": Case(conns=(
        # test.yaml: drop of pcap_cnt 4 with reason 'flow drop' after the rule drop of pcap_cnt
        # 1 -> packet 4 (the ServFail answer) is in the flow of packet 1 (the query): one
        # bidirectional UDP connection. MANIFEST: 'DNS query retransmissions, ServFail
        # answers'; test.rules: client 192.168.10.31, server 192.168.10.10; tshark: port 58186,
        # frames 1-3 queries, 4-6 answers.
        Want("udp", "192.168.10.31", 58186, "192.168.10.10", 53,
             "test.yaml: pcap_cnt 1 and 4 in one flow; MANIFEST: DNS retransmissions + ServFail",
             {"orig_pkts": 3, "resp_pkts": 3}),
        # MANIFEST: 'then an ICMP port-unreachable for the client port' (type 3 code 3, sent
        # by the client 192.168.10.31 to the server; tshark frame 7).
        Want("icmp", "192.168.10.31", 3, "192.168.10.10", 3,
             "MANIFEST: ICMP port-unreachable for the client port"),
    )),
    "output-eve-anomaly-packethdr": Case(
        conns=(
            # test.yaml: 48 decode anomalies of which 42 icmpv4.unknown_type + 4
            # icmpv4.unknown_code: those 46 are decoded as ICMPv4 (tshark: all
            # 204.252.102.11 -> 206.65.98.18; types/codes vary, so any type/code).
            Want("icmp", "204.252.102.11", None, "206.65.98.18", None,
                 "test.yaml: 42 icmpv4.unknown_type + 4 icmpv4.unknown_code anomalies"),
        ),
        # test.yaml: 2 decoder.ipv4.trunc_pkt anomalies
        damaged=("trunc", 2, "test.yaml: decoder.ipv4.trunc_pkt x2")),
    # ----------------------------------------------------------------------------- ipv6-exthdr
    "ipv6-covert-dstopts": Case(conns=(
        # test.yaml: ipv6.dstopts_unknown_opt x18; variant detect-ttl-ipv6 (same pcap): hop
        # limit 254 x18, 64 x18, 255 x1. tshark: the 18 hop-254 packets are the echo requests
        # 2001:db8:2:0:8e16:45ff:fee5:5ba2 -> 2001:db8:1::1 carrying the Destination Options
        # header, the 18 hop-64 ones the replies: all must be decoded past the extension header.
        Want("icmp", "2001:db8:2:0:8e16:45ff:fee5:5ba2", 128, "2001:db8:1::1", 129,
             "test.yaml: dstopts_unknown_opt x18; variant detect-ttl-ipv6: hlim 254 x18, 64 x18",
             {"orig_pkts": 18, "resp_pkts": 18}),
    )),
    # ---------------------------------------------------------------------------- encap-tunnel
    "bug-4571-01": Case(conns=(
        # test.yaml: alert + flow event proto TCP 10.1.0.3 -> 10.1.0.4 with tunnel.src_ip
        # 10.1.0.1 / tunnel.dest_ip 10.1.0.2, tunnel.proto IP-in-IP; tshark: ports 80 -> 80.
        # The outer IP-in-IP is not a transport connection (Zeek: tunnel.log), not required.
        Want("tcp", "10.1.0.3", 80, "10.1.0.4", 80,
             "test.yaml: inner TCP flow/alert 10.1.0.3 -> 10.1.0.4 in IP-in-IP 10.1.0.1/.2",
             tunnel=True),
    )),
    "bug-4571-06": Case(conns=(
        # test.yaml: alert + flow event proto TCP ip_v 4 10.1.0.1 -> 10.1.0.2, tunnel endpoints
        # 2001:db8:85a3::8a2e:370:7334 / ...:7335 (IP-in-IP over IPv6); tshark: ports 80 -> 80.
        Want("tcp", "10.1.0.1", 80, "10.1.0.2", 80,
             "test.yaml: inner IPv4 TCP flow/alert 10.1.0.1 -> 10.1.0.2 in IPv6 IP-in-IP",
             tunnel=True),
    )),
    "bug-5633-gre-02": Case(conns=(
        # test.yaml: ssh event client OpenSSH_3.6.1p1 / server OpenSSH_3.1p1 (both banners:
        # data both ways); tshark: inner 66.59.111.190:40264 -> 172.28.2.3:22 inside GRE
        # between 172.27.1.66 and 66.59.109.137.
        Want("tcp", "66.59.111.190", 40264, "172.28.2.3", 22,
             "test.yaml: ssh event (client 2.0 OpenSSH_3.6.1p1, server 1.99 OpenSSH_3.1p1)",
             {"history_startswith": "S", "history_has": "Dd"}, tunnel=True),
        # MANIFEST: 'GRE tunnel carrying SSH, ICMP echo and ICMP unreachable packets';
        # test.rules: alert icmp itype:8 suppressed by the pass rule on 172.28.2.3; tshark:
        # inner echo 66.59.111.190 -> 172.28.2.3.
        Want("icmp", "66.59.111.190", 8, "172.28.2.3", 0,
             "MANIFEST: ICMP echo in GRE; test.rules: itype 8 / pass 172.28.2.3", tunnel=True),
        # MANIFEST: 'ICMP unreachable'; tshark: inner 172.28.2.3 -> 66.59.111.190, type 3
        # code 3 (port unreachable, quoting the DNS query to 172.28.2.3:53).
        Want("icmp", "172.28.2.3", 3, "66.59.111.190", 3,
             "MANIFEST: ICMP unreachable in GRE", tunnel=True),
    )),
    "geneve-decoder": Case(conns=(
        # test.yaml flow event: ICMP 10.0.0.1 -> 10.0.0.2, icmp_type 8 / response_icmp_type 0,
        # pkts 4 / 4, bytes 392 / 392 (inner Ethernet frames: minus 14 bytes a packet = 336 IP
        # bytes each way). Its tunnel_parents must name both outer UDP flows it rode (Zeek:
        # 'uids of any encapsulating parent connections used over the lifetime').
        Want("icmp", "10.0.0.1", 8, "10.0.0.2", 0,
             "test.yaml flow event (ICMP 8/0, pkts 4/4, bytes 392/392)",
             {"orig_pkts": 4, "resp_pkts": 4, "orig_ip_bytes": 392 - 4 * 14,
              "resp_ip_bytes": 392 - 4 * 14},
             tunnel=(_GENEVE_OUT_REQ, _GENEVE_OUT_REP)),
        _GENEVE_OUT_REQ,
        _GENEVE_OUT_REP,
    )),
    # ------------------------------------------------------------------------ decode-malformed
    "decode-too-small": Case(
        # test.yaml: tcp.pkt_too_small x1, udp.hlen_too_small x2, gre.pkt_too_small x1 per IP
        # version = one decoder event for each of the 8 packets (test.py): all 8 are damaged.
        damaged=(None, 8, "test.yaml: 8 decoder events (2 tcp, 4 udp, 2 gre too small)"),
        # the TCP/UDP headers are empty or half there: no ports, so no tcp/udp connection
        forbid_protos=(frozenset({"tcp", "udp"}),
                       "test.yaml: tcp.pkt_too_small / udp.hlen_too_small (no complete header)")),
    # test.yaml: stats decoder.event.udp.len_invalid 1 + alert 2200220 once (UDP length 5 < 8).
    "udp-5379-udp-len-invalid": Case(
        damaged=(None, 1, "test.yaml: udp.len_invalid once")),
    "tcp-5379": Case(
        conns=(
            # test.yaml: 'ends with AAA' fires, 'ends with DDD' does not: the single TCP packet
            # is decoded and cut at the IP total length (tshark: 127.0.0.1:20 -> 127.0.0.1:80
            # SYN, IP total length 100, trailer after it). Suricata inspected it although its
            # TCP checksum is wrong (tshark), hence -C here.
            Want("tcp", "127.0.0.1", 20, "127.0.0.1", 80,
                 "test.yaml: sid 1 (AAA at IP-length end) fires, sid 2 (trailer DDD) does not",
                 {"orig_pkts": 1, "orig_ip_bytes": 100, "history_startswith": "S"}),
        ),
        args=("-C",)),
    "bug-7414-decoder-event-01": Case(conns=(
        # test.yaml: decoder-event alert on pcap_cnt 3, packet field = IPv4 30.30.30.30 ->
        # 20.20.20.20 with a bad security option, UDP 5060 -> 5060; tshark: packets 1-2 are the
        # same UDP 5060 <-> 5060 exchange.
        Want("udp", "30.30.30.30", 5060, "20.20.20.20", 5060,
             "test.yaml: pcap_cnt 3 packet bytes (IPv4 + bad option, UDP 5060 -> 5060)"),
    )),
}


# ---------------------------------------------------------------------------------------------
# corpus and runs


def load_manifest() -> list[dict[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(f"Suricata corpus not found: expected {manifest}")
    with open(manifest, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


MANIFEST = load_manifest()
ENCAP_ROWS = [r for r in MANIFEST if r["category"] in ENCAP_CATEGORIES]


def case_pcaps(row: dict[str, str]) -> list[Path]:
    names = [n for n in re.split(r"[\s,]+", row["pcap_files"]) if n]
    paths = [CORPUS / row["name"] / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    assert paths and not missing, f"{row['name']}: pcap(s) listed in MANIFEST not found: {missing}"
    return paths


def sniffer(files: list[Path], fmt: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="60", NO_COLOR="1")  # table: one column, no wrapping
    cmd = [sys.executable, "-m", "sniffer", "read", *map(str, files), "--format", fmt, *args]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def json_records(proc: subprocess.CompletedProcess, what: str) -> list[dict]:
    records = []
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{what}: line {n} of --format json is not JSON ({exc}): {line[:200]!r}",
                        pytrace=False)
        if not isinstance(rec, dict):
            pytest.fail(f"{what}: line {n} is not a JSON object: {line[:200]!r}", pytrace=False)
        records.append(rec)
    return records


def skipped_section(table: str) -> dict[str, int]:
    """The 'Skipped or damaged' rows of the table format ({} for 'nothing skipped')."""
    lines = table.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "Skipped or damaged")
    except StopIteration:
        raise AssertionError("no 'Skipped or damaged' section in the table output") from None
    rows: dict[str, int] = {}
    for ln in lines[start + 1:]:
        text = ln.strip()
        if not text:
            break
        m = re.fullmatch(r"(\S+)\s+(\d+)", text)
        if m:
            rows[m.group(1)] = rows.get(m.group(1), 0) + int(m.group(2))
    return rows


def has_traceback(proc: subprocess.CompletedProcess) -> bool:
    return "Traceback (most recent call last)" in proc.stderr + proc.stdout


# ---------------------------------------------------------------------------------------------
# matching


def _addr(h: str) -> str:
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        return h


def _key(rec: dict) -> tuple:
    return (rec.get("proto"), _addr(str(rec.get("id.orig_h"))), rec.get("id.orig_p"),
            _addr(str(rec.get("id.resp_h"))), rec.get("id.resp_p"))


def _port_ok(want: int | None, got) -> bool:
    return want is None or want == got


def find(want: Want, records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(records in want's direction, records in the reverse direction)."""
    fwd, rev = [], []
    o, r = _addr(want.orig_h), _addr(want.resp_h)
    for rec in records:
        proto, oh, op, rh, rp = _key(rec)
        if proto != want.proto:
            continue
        if oh == o and rh == r and _port_ok(want.orig_p, op) and _port_ok(want.resp_p, rp):
            fwd.append(rec)
        elif oh == r and rh == o and _port_ok(want.orig_p, rp) and _port_ok(want.resp_p, op):
            rev.append(rec)
    return fwd, rev


_SWAP = {"orig_pkts": "resp_pkts", "resp_pkts": "orig_pkts",
         "orig_ip_bytes": "resp_ip_bytes", "resp_ip_bytes": "orig_ip_bytes"}


def check_conn(want: Want, fwd: list[dict], rev: list[dict], uids: dict[Want, set]) -> list[str]:
    """Problems with the matched records of want (empty: fine)."""
    # Oriented view: (record, reversed?) - the checks are written in want's direction.
    matched = [(rec, False) for rec in fwd] + [(rec, True) for rec in rev]
    problems = []
    for name, expected in want.checks.items():
        if name in _SWAP:
            got = sum(int(rec.get(_SWAP[name] if flip else name) or 0) for rec, flip in matched)
            if got != expected:
                problems.append(f"{name} {got} (summed over {len(matched)} record(s)), "
                                f"expected {expected}")
            continue
        histories = [(rec.get("history") or "").swapcase() if flip else (rec.get("history") or "")
                     for rec, flip in matched]
        if name == "history_startswith":
            if not any(h.startswith(expected) for h in histories):
                problems.append(f"history {histories} (as seen from {want.orig_h}), expected "
                                f"to start with {expected!r}")
        elif name == "history_has":
            if not any(all(c in h for c in expected) for h in histories):
                problems.append(f"history {histories} (as seen from {want.orig_h}), expected "
                                f"to contain each of {expected!r}")
        else:  # pragma: no cover - a typo in EXPECT
            raise AssertionError(f"unknown check {name!r} in EXPECT")
    if want.tunnel is True:
        bare = [rec.get("uid") for rec, _ in matched if not rec.get("tunnel_parents")]
        if bare:
            problems.append(f"no tunnel_parents (uid {', '.join(map(str, bare))}): "
                            f"the connection is inside a tunnel")
    elif want.tunnel:
        parents = {p for rec, _ in matched for p in (rec.get("tunnel_parents") or [])}
        for outer in want.tunnel:
            outer_uids = uids.get(outer, set())
            if not outer_uids:
                problems.append(f"tunnel_parents cannot name outer {outer}: it is missing")
            elif not outer_uids & parents:
                problems.append(f"tunnel_parents {sorted(parents)} lacks the uid of outer "
                                f"{outer} ({', '.join(sorted(outer_uids))})")
    return problems


def describe(rec: dict) -> str:
    def ep(h, p):
        return f"[{h}]:{p}" if ":" in str(h) else f"{h}:{p}"
    parents = rec.get("tunnel_parents") or "-"
    return (f"{rec.get('proto')} {ep(rec.get('id.orig_h'), rec.get('id.orig_p'))} -> "
            f"{ep(rec.get('id.resp_h'), rec.get('id.resp_p'))} {rec.get('conn_state')} "
            f"{rec.get('history') or '-'} pkts {rec.get('orig_pkts')}/{rec.get('resp_pkts')} "
            f"ip_bytes {rec.get('orig_ip_bytes')}/{rec.get('resp_ip_bytes')} "
            f"tunnel_parents={parents}")


# ---------------------------------------------------------------------------------------------
# tests


def test_every_encap_case_has_expectations():
    """EXPECT covers exactly the cases of ENCAP_CATEGORIES in the MANIFEST."""
    assert len(MANIFEST) == 50, f"MANIFEST has {len(MANIFEST)} cases, this test knows 50"
    names = {r["name"] for r in ENCAP_ROWS}
    assert names == set(EXPECT), (f"without expectations: {sorted(names - set(EXPECT))}; "
                                  f"not encap/fragment cases: {sorted(set(EXPECT) - names)}")


@pytest.mark.parametrize("row", ENCAP_ROWS, ids=lambda r: r["name"])
def test_case_expectations(row):
    name, category = row["name"], row["category"]
    case = EXPECT[name]
    files = case_pcaps(row)
    what = f"{name} [{category}]"

    proc = sniffer(files, "json", *case.args)
    assert not has_traceback(proc), f"{what}: traceback\n{proc.stderr}"
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}: {proc.stderr.strip()}"
    records = json_records(proc, what)

    missing, wrong = [], []
    uids: dict[Want, set] = {}
    matches = {}
    for want in case.conns:
        fwd, rev = find(want, records)
        matches[want] = (fwd, rev)
        uids[want] = {rec.get("uid") for rec in fwd + rev}
        if not fwd and not rev:
            missing.append(want)
    for want in case.conns:
        if want in missing:
            continue
        for problem in check_conn(want, *matches[want], uids):
            wrong.append(f"  {want}: {problem}   [{want.why}]")

    if case.forbid_protos:
        protos, why = case.forbid_protos
        for rec in records:
            if rec.get("proto") in protos:
                wrong.append(f"  unexpected {describe(rec)}   [{why}]")

    if case.damaged:
        keyword, minimum, why = case.damaged
        table = sniffer(files, "table", "--max-rows", "1", *case.args)
        assert not has_traceback(table), f"{what}: traceback (table)\n{table.stderr}"
        assert table.returncode == 0, f"{what}: table exit {table.returncode}: {table.stderr}"
        skipped = skipped_section(table.stdout)
        counted = sum(n for ev, n in skipped.items()
                      if keyword is None or keyword.lower() in ev.lower())
        if counted < minimum:
            label = f"events containing {keyword!r}" if keyword else "events"
            wrong.append(f"  'Skipped or damaged' counts {counted} {label}, expected at least "
                         f"{minimum}: {skipped or 'nothing skipped'}   [{why}]")

    if missing or wrong:
        lines = [f"{what}: {row['what_it_tests']}"]
        if missing:
            hint = " (tunnel decapsulation missing?)" if category == "encap-tunnel" else ""
            lines.append(f"{len(missing)} of {len(case.conns)} expected connection(s) "
                         f"MISSING{hint}:")
            lines += [f"  {w}   [{w.why}]" for w in missing]
        if wrong:
            lines.append("wrong:")
            lines += wrong
        lines.append(f"sniffer produced {len(records)} connection(s):")
        lines += [f"  {describe(rec)}" for rec in records[:30]]
        if len(records) > 30:
            lines.append(f"  ... {len(records) - 30} more")
        pytest.fail("\n".join(lines), pytrace=False)


@pytest.mark.parametrize("row", MANIFEST, ids=lambda r: r["name"])
def test_no_crash(row):
    """Every case: exit 0 (or 2 with a one-line error, for an unreadable file), no traceback."""
    files = case_pcaps(row)
    for fmt in ("json", "table"):
        proc = sniffer(files, fmt)
        what = f"{row['name']} --format {fmt}"
        assert not has_traceback(proc), f"{what}: traceback (exit {proc.returncode})\n{proc.stderr}"
        if proc.returncode == 2:
            err = proc.stderr.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("sniffer:"), (
                f"{what}: exit 2 must come with a one-line 'sniffer: ...' error, got {err}")
            assert not proc.stdout.strip(), f"{what}: exit 2 but records were written"
            continue
        assert proc.returncode == 0, f"{what}: exit {proc.returncode}: {proc.stderr.strip()}"
        if fmt == "json":
            json_records(proc, what)


# --- the 5-tuples in EXPECT against the packets test.yaml logs ------------------------------


def _packet_tuple(data: bytes, linktype: int) -> tuple[str, str, int, str, int, int]:
    """(proto, src, sport, dst, dport, IP length) of a logged packet: Ethernet (+802.1Q) or raw
    IPv4/IPv6 with TCP or UDP right after the IP header."""
    if linktype == 1:
        etype, off = struct.unpack_from("!H", data, 12)[0], 14
        while etype in (0x8100, 0x88A8):
            etype, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
        data = data[off:]
    if data[0] >> 4 == 4:
        ihl, total, proto = (data[0] & 15) * 4, struct.unpack_from("!H", data, 2)[0], data[9]
        src, dst = ipaddress.IPv4Address(data[12:16]), ipaddress.IPv4Address(data[16:20])
    else:
        ihl, proto = 40, data[6]
        total = 40 + struct.unpack_from("!H", data, 4)[0]
        src, dst = ipaddress.IPv6Address(data[8:24]), ipaddress.IPv6Address(data[24:40])
    sport, dport = struct.unpack_from("!HH", data, ihl)
    return {6: "tcp", 17: "udp"}[proto], str(src), sport, str(dst), dport, total


def _logged_packets() -> list[tuple[str, bytes, int]]:
    out = []
    for name in EXPECT:
        text = (CORPUS / name / "test.yaml").read_text(encoding="utf-8")
        linktype = re.search(r"packet_info\.linktype:\s*(\d+)", text)
        for b64 in dict.fromkeys(re.findall(r'^\s*packet:\s*"([^"]+)"', text, re.M)):
            out.append((name, base64.b64decode(b64), int(linktype.group(1)) if linktype else 1))
    return out


LOGGED_PACKETS = _logged_packets()


@pytest.mark.parametrize("name,data,linktype", LOGGED_PACKETS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LOGGED_PACKETS)])
def test_expectations_agree_with_logged_packets(name, data, linktype):
    proto, src, sport, dst, dport, length = _packet_tuple(data, linktype)
    wants = [w for w in EXPECT[name].conns
             if (w.proto, _addr(w.orig_h), w.orig_p, _addr(w.resp_h), w.resp_p)
             == (proto, src, sport, dst, dport)]
    assert wants, (f"{name}: test.yaml logs {proto} {src}:{sport} -> {dst}:{dport}, "
                   f"not in EXPECT")
    for w in wants:
        if w.checks.get("orig_pkts") == 1 and "orig_ip_bytes" in w.checks:
            assert w.checks["orig_ip_bytes"] == length, (
                f"{name}: EXPECT says {w.checks['orig_ip_bytes']} IP bytes, the logged packet "
                f"has {length}")
