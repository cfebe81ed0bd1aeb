"""The attribution workload of issue 13 ("Must show", first item), shared by the CI test
(tests/test_attribution.py, a small run) and the benchmark (bench/attrib_bench.py, 10 full runs).

One run: namespaces A (sniffed: `sniffer live -i va --format json --alerts FILE`) and B joined by
a veth (test_live.pair()). Servers and clients are real processes, each with a program name of
its own (set_name), so that every connection has exactly one right owner in A:

- inbound TCP, B's clients to A's servers: `client-closes` (A's server echoes until EOF, then
  closes: test_live's SERVE serve(keep=False)) and `server-closes` (A's server accepts, answers
  and closes within a millisecond: the socket is gone before a look-up can find it). The right
  owner is the server in A.
- outbound TCP, A's clients to B's servers, the same two ways of closing. The right owner is
  the client in A.
- UDP request/replies, each from a fresh socket (opened, one datagram, the reply, closed), half
  connected (connect()+send), half not (sendto): inbound to an echo server in A (owner: that
  server), outbound from a client in A (owner: that client).

Every category alternates IPv4 and IPv6. Each connection is then checked in the records by its
5-tuple: `right` (verdict `attributed`, and `processes` lists the right pid and program and no
other), `wrong` (a record with another verdict or owner) or `missing` (no record). The alerts
`ownerless-socket`, `unattributed-connection` and `hidden-listener` must not appear at all.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netnskit import NetNS
from test_live import A4, A6, B4, B6, SERVE, pair, parse_jsonl, sniffing

BAD_ALERTS = ("ownerless-socket", "unattributed-connection", "hidden-listener")
CATEGORIES = ("inbound client-closes", "inbound server-closes", "outbound client-closes",
              "outbound server-closes", "udp inbound", "udp outbound")
SETTLE = 1.0  # after the last exchange, before sniffer is told to stop
CLIENT_TIMEOUT = 180  # for one client process to make all its connections

# Processes of the workload, after netnskit's PRELUDE and test_live's SERVE.
DRIVE = r'''
def serve_and_close(specs):
    """TCP servers that accept, answer one request and close at once (the server closes
    first). specs: [[family, addr, port]]."""
    for fam, addr, port in specs:
        s = tcp_listener(fam, addr, port, 128)
        def loop(s=s):
            while True:
                c, _ = s.accept()
                try:
                    c.sendall(c.recv(4096))
                except OSError:
                    pass
                c.close()
        threading.Thread(target=loop, daemon=True).start()
        HELD.append(s)

def _family(fam):
    return socket.AF_INET6 if fam == 6 else socket.AF_INET

def tcp_conns(dsts, n, wait_eof):
    """n connections over dsts [[family, addr, port]] in turn, each from a fresh socket: one
    exchange, then closed (wait_eof: after the server closed its side). [[family, local port,
    fd, time]] in order."""
    out = []
    for i in range(n):
        fam, addr, port = dsts[i % len(dsts)]
        s = socket.socket(_family(fam), socket.SOCK_STREAM)
        s.settimeout(10)
        t = time.time()
        s.connect((addr, port))
        lport, fd = s.getsockname()[1], s.fileno()
        s.sendall(b"ping %d from %s" % (i, NAME.encode()))
        got = s.recv(4096)
        assert got.startswith(b"ping"), got
        if wait_eof:
            while s.recv(4096):
                pass
        s.close()
        out.append([fam, lport, fd, t])
    return out

def udp_exchanges(dsts, n):
    """n request/replies over dsts in turn, each from a fresh socket, connected (connect() and
    send) and unconnected (sendto) by turns. [[family, local port, fd, time, mode]]."""
    out = []
    for i in range(n):
        fam, addr, port = dsts[i % len(dsts)]
        mode = "connect" if (i // len(dsts)) % 2 == 0 else "sendto"
        s = socket.socket(_family(fam), socket.SOCK_DGRAM)
        s.settimeout(5)
        t = time.time()
        msg = b"ping %d from %s" % (i, NAME.encode())
        if mode == "connect":
            s.connect((addr, port))
            s.send(msg)
        else:
            s.sendto(msg, (addr, port))
        got = s.recv(4096)
        assert got.startswith(b"ping"), got
        lport, fd = s.getsockname()[1], s.fileno()
        s.close()
        out.append([fam, lport, fd, t, mode])
    return out
'''

# ports: A's servers, then B's
IN_CC, IN_SC, UDP_IN, OUT_CC, OUT_SC, UDP_OUT = 6001, 6002, 6003, 6011, 6012, 6013


@dataclass
class Conn:
    """One connection the workload made, what the records said about it, and the verdict."""
    category: str
    family: int
    proto: str
    orig: tuple[str, int]
    resp: tuple[str, int]
    pid: int  # the right owner in A
    name: str
    t: float
    mode: str = ""  # UDP: connect or sendto
    outcome: str = "missing"  # right, wrong or missing
    record: dict | None = None

    @property
    def key(self) -> tuple:
        return (self.proto, *self.orig, *self.resp)

    def describe(self) -> str:
        what = (f"{self.category} IPv{self.family}{' ' + self.mode if self.mode else ''}: "
                f"{self.proto} {_hp(self.orig)} -> {_hp(self.resp)}, owner {self.name} "
                f"(pid {self.pid})")
        if self.record is None:
            return f"{what}: no record"
        r = self.record
        procs = ", ".join(f"{p.get('name')} (pid {p.get('pid')})"
                          for p in r.get("processes") or ()) or "none"
        return (f"{what}: verdict {r.get('verdict')}, processes {procs}, history "
                f"{r.get('history', '-')}; evidence: {' | '.join(r.get('evidence') or ())}")


@dataclass
class Run:
    """The outcome of one run: every connection checked, and the alerts that must not be."""
    conns: list[Conn]
    bad_alerts: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    sniffer_summary: str = ""

    @property
    def failures(self) -> list[Conn]:
        return [c for c in self.conns if c.outcome != "right"]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.bad_alerts

    def totals(self) -> Counter:
        return Counter(c.outcome for c in self.conns)

    def table(self) -> str:
        """Per category and family: right / wrong / missing, and the wrong verdicts."""
        rows = [f"{'category':30} {'fam':5} {'conns':>5} {'right':>5} {'wrong':>5} "
                f"{'missing':>7}  wrong verdicts"]
        groups: dict[tuple[str, str, int], list[Conn]] = defaultdict(list)
        for c in self.conns:
            groups[(c.category, c.mode, c.family)].append(c)
        order = {cat: i for i, cat in enumerate(CATEGORIES)}
        for (cat, mode, fam), cs in sorted(groups.items(),
                                           key=lambda kv: (order[kv[0][0]], *kv[0][1:])):
            n = Counter(c.outcome for c in cs)
            verdicts = Counter(_why(c) for c in cs if c.outcome == "wrong")
            label = f"{cat} ({mode})" if mode else cat
            rows.append(f"{label:30} IPv{fam:<2} {len(cs):5} {n['right']:5} {n['wrong']:5} "
                        f"{n['missing']:7}  "
                        + ", ".join(f"{v} x{k}" for v, k in verdicts.most_common()))
        n = self.totals()
        rows.append(f"{'all':30} {'':5} {len(self.conns):5} {n['right']:5} {n['wrong']:5} "
                    f"{n['missing']:7}")
        return "\n".join(rows)

    def examples(self, per_category: int = 3) -> str:
        """A few failures of each category (one of each family, UDP mode and verdict first),
        and the alerts that must not be, in words."""
        out, shown, kinds = [], Counter(), set()
        for c in self.failures:
            kind = (c.category, c.family, c.mode, _why(c) if c.record else "missing")
            if kind not in kinds and shown[c.category] < per_category:
                kinds.add(kind)
                shown[c.category] += 1
                out.append("  " + c.describe())
        for a in self.bad_alerts[:per_category * 3]:
            out.append(f"  alert {a.get('kind')} ({a.get('severity')}) uid {a.get('uid')}: "
                       f"{a.get('src')}:{a.get('sport')} -> {a.get('dst')}:{a.get('dport')} "
                       f"{json.dumps(a.get('evidence'), sort_keys=True)[:300]}")
        if len(self.bad_alerts) > per_category * 3:
            out.append(f"  ... {len(self.bad_alerts)} such alerts in all")
        return "\n".join(out)

    def report(self) -> str:
        alerts = Counter(a.get("kind") for a in self.bad_alerts)
        text = self.table() + "\nalerts " + "/".join(BAD_ALERTS) + ": " + (
            ", ".join(f"{k} x{n}" for k, n in alerts.most_common()) or "none")
        if not self.ok:
            text += "\nfailures (a few of each category):\n" + self.examples()
        return text


def _hp(hp: tuple[str, int]) -> str:
    h, p = hp
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"


def _why(c: Conn) -> str:
    r = c.record or {}
    if r.get("verdict") == "attributed":
        return "attributed to " + (",".join(f"{p.get('name')}/{p.get('pid')}"
                                            for p in r.get("processes") or ()) or "nobody")
    return str(r.get("verdict"))


def _addr(a: str) -> str:
    return str(ipaddress.ip_address(a))


def _proc(ns: NetNS, name: str, setup: str = "", conns: str = ""):
    """A holder named `name` in `ns`: SERVE and DRIVE, then `setup` (a server's), then ready()
    with the result of the call `conns` (a client's connections)."""
    report = f", conns={conns}" if conns else ""
    return ns.spawn(f"NAME = {name!r}\nset_name(NAME)\n{SERVE}\n{DRIVE}\n{setup}\n"
                    f"ready(name=NAME{report})\n", timeout=CLIENT_TIMEOUT)


def _servers(proto: str, port: int, server_closes: bool = False) -> str:
    """Setup code for an IPv4 and an IPv6 echo server on `port`."""
    if server_closes:
        return f"serve_and_close([[4, '0.0.0.0', {port}], [6, '::', {port}]])"
    return f"serve([[{proto!r}, 4, '0.0.0.0', {port}], [{proto!r}, 6, '::', {port}]], False)"


def _dsts(fam4: str, fam6: str, port: int) -> str:
    return json.dumps([[4, fam4, port], [6, fam6, port]])


def _right(rec: dict, pid: int, name: str) -> bool:
    procs = rec.get("processes") or ()
    return (rec.get("verdict") == "attributed" and bool(procs)
            and all(p.get("pid") == pid and p.get("name") == name for p in procs))


def check(conns: list[Conn], recs: list[dict]) -> None:
    """Match each connection to its record by 5-tuple (in time order, should a 5-tuple come
    back) and set its outcome."""
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for r in recs:
        if {"proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"} <= r.keys():
            by_key[(r["proto"], _addr(r["id.orig_h"]), r["id.orig_p"], _addr(r["id.resp_h"]),
                    r["id.resp_p"])].append(r)
    mine: dict[tuple, list[Conn]] = defaultdict(list)
    for c in conns:
        mine[c.key].append(c)
    for key, cs in mine.items():
        found = sorted(by_key.get(key, ()), key=lambda r: r.get("ts", 0))
        if found and key[0] == "udp" and len(found) < len(cs):
            # A UDP 5-tuple back within its inactivity timeout (a fresh socket given the same
            # ephemeral port) is the same connection to Zeek: one record for both.
            found += found[-1:] * (len(cs) - len(found))
        for c, rec in zip(sorted(cs, key=lambda c: c.t), found):
            c.record = rec
            c.outcome = "right" if _right(rec, c.pid, c.name) else "wrong"


def run(tmp: Path, tcp: int = 500, udp: int = 200, log=None) -> Run:
    """One run: `tcp` inbound and `tcp` outbound TCP connections (half closed by the client,
    half by the server) and `udp` UDP request/replies (half inbound), under `sniffer live`."""
    log = log or (lambda msg: None)
    tmp.mkdir(parents=True, exist_ok=True)
    half = [tcp - tcp // 2, tcp // 2]  # client-closes, server-closes
    udp_split = [udp - udp // 2, udp // 2]  # inbound, outbound
    t0 = time.monotonic()
    with pair() as (a, b):
        owner = {"in-cc": _proc(a, "snf-in-cc", _servers("tcp", IN_CC)),
                 "in-sc": _proc(a, "snf-in-sc", _servers("tcp", IN_SC, server_closes=True)),
                 "udp-in": _proc(a, "snf-udp-in", _servers("udp", UDP_IN))}
        _proc(b, "b-srv-cc", _servers("tcp", OUT_CC))
        _proc(b, "b-srv-sc", _servers("tcp", OUT_SC, server_closes=True))
        _proc(b, "b-srv-udp", _servers("udp", UDP_OUT))
        # category, where its clients run, their name, their call, the port, the owner in A
        # (None: the client itself)
        plan = [
            ("inbound client-closes", b, "b-cli-cc",
             f"tcp_conns({_dsts(A4, A6, IN_CC)}, {half[0]}, False)", IN_CC, owner["in-cc"]),
            ("inbound server-closes", b, "b-cli-sc",
             f"tcp_conns({_dsts(A4, A6, IN_SC)}, {half[1]}, True)", IN_SC, owner["in-sc"]),
            ("outbound client-closes", a, "snf-out-cc",
             f"tcp_conns({_dsts(B4, B6, OUT_CC)}, {half[0]}, False)", OUT_CC, None),
            ("outbound server-closes", a, "snf-out-sc",
             f"tcp_conns({_dsts(B4, B6, OUT_SC)}, {half[1]}, True)", OUT_SC, None),
            ("udp inbound", b, "b-cli-udp",
             f"udp_exchanges({_dsts(A4, A6, UDP_IN)}, {udp_split[0]})", UDP_IN, owner["udp-in"]),
            ("udp outbound", a, "snf-udp-out",
             f"udp_exchanges({_dsts(B4, B6, UDP_OUT)}, {udp_split[1]})", UDP_OUT, None),
        ]
        alerts_file = tmp / "alerts.jsonl"
        with sniffing(a, "va", tmp, "--alerts", str(alerts_file)) as snf:
            log(f"sniffer capturing; {2 * tcp} TCP connections and {udp} UDP request/replies")
            with ThreadPoolExecutor(len(plan)) as pool:  # every category at once
                futs = [pool.submit(_proc, ns, name, conns=call)
                        for _, ns, name, call, _, _ in plan]
                clients = [f.result() for f in futs]
            time.sleep(SETTLE)
            snf.stop()
        conns = []
        for (cat, ns, _, _, port, srv), cli in zip(plan, clients):
            addrs = {4: (A4, B4), 6: (A6, B6)}  # (A's, B's)
            for fam, lport, _fd, t, *mode in cli["conns"]:
                here, there = addrs[fam] if ns is a else addrs[fam][::-1]
                who = srv or cli
                conns.append(Conn(cat, fam, "udp" if cat.startswith("udp") else "tcp",
                                  (_addr(here), lport), (_addr(there), port), who["pid"],
                                  who["name"], t, mode[0] if mode else ""))
        recs = snf.records()
        alerts = parse_jsonl(alerts_file.read_text(), str(alerts_file)) \
            if alerts_file.exists() else []
    check(conns, recs)
    lines = snf.stderr.strip().splitlines()
    return Run(conns, [x for x in alerts if x.get("kind") in BAD_ALERTS],
               time.monotonic() - t0, lines[-1] if lines else "")

