"""`sniffer sockets --conntrack` against Debian's `conntrack -L` (docs/sockets.md, issue 13), and
conntrack in `sniffer live` on a NAT router: `forwarded`, `not-tracked`, the `nat.*` fields and
the `untracked-flow` alert, live and from the recording (docs/live.md).

Real flows in throw-away namespaces (tests/netnskit.py): a client namespace A and a server B
joined by a veth, TCP and UDP over IPv4 and IPv6; and for NAT, A — R — B with masquerading on
the router R. conntrack tracks nothing in a namespace until a netfilter hook that needs it is
registered there, so each test loads a small nft ruleset (`ct state` rules, a `nat` chain) in
the namespace it reads; `nf_conntrack_tcp_loose` is set to 0 (only a SYN makes a TCP entry)
and `nf_conntrack_acct` to 1 (counters), both per namespace. Needs nftables and conntrack
(.ci/run installs them).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import time
from contextlib import contextmanager

import pytest

from netnskit import PYTHON, ROOT, NetNS, can_run, unprivileged
# The topologies of the live tests: A — B, and A — R — B (NAT on R's rb here).
from test_live import A4, B4, B6, FB4, RB4, one_conn, read_recording, routed, show, sniffing
from test_live import pair as linked_pair

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))


TRACK = """
table inet snfct {
  chain ct_out { type filter hook output priority 0; ct state established,related accept; }
  chain ct_in { type filter hook input priority 0; ct state established,related accept; }
  chain ct_fwd { type filter hook forward priority 0; ct state established,related accept; }
}
"""
MASQUERADE = """
table ip snfnat {
  chain nat_post { type nat hook postrouting priority 100; oifname "rb" masquerade; }
}
"""

# B: TCP and UDP echo servers on IPv4 and IPv6 that answer with the peer address they saw
# (behind NAT: the translated one), so the test knows both halves of each flow.
SERVER = r'''
import threading
def serve_tcp(l):
    while True:
        c, peer = l.accept()
        KEEP.append(c)
        c.recv(100)
        c.sendall(json.dumps(list(peer[:2])).encode())
def serve_udp(u):
    while True:
        data, peer = u.recvfrom(100)
        u.sendto(json.dumps(list(peer[:2])).encode(), peer)
ports = {}
for fam, addr in ADDRS:
    l = socket.socket(fam, socket.SOCK_STREAM)
    l.bind((addr, 0))
    l.listen(16)
    KEEP.append(l)
    threading.Thread(target=serve_tcp, args=(l,), daemon=True).start()
    u = udp(fam, bind=(addr, 0))
    threading.Thread(target=serve_udp, args=(u,), daemon=True).start()
    v = "6" if fam == socket.AF_INET6 else "4"
    ports["tcp" + v], ports["udp" + v] = l.getsockname()[1], u.getsockname()[1]
ready(**ports)
'''

# A: one TCP connection (one exchange, then held open) and one UDP request/reply per target.
CLIENT = r'''
seen = {}
for name, fam, addr, port in TARGETS:
    if name.startswith("tcp"):
        c = socket.create_connection((addr, port), timeout=5)
        KEEP.append(c)
        c.sendall(b"hi")
        peer = json.loads(c.recv(100))
        local = c.getsockname()[:2]
    else:
        u = udp(fam, connect=(addr, port))  # connected: getsockname names the source
        u.settimeout(5)
        u.send(b"hi")
        peer = json.loads(u.recv(100))
        local = u.getsockname()[:2]
    seen[name] = {"local": list(local), "seen_as": peer}
if PING:  # one ICMP echo (raw socket: no ping binary needed); the kernel answers it
    p = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    KEEP.append(p)
    msg = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01")
    csum = sum(int.from_bytes(msg[i:i + 2], "big") for i in range(0, 8, 2))
    csum = (csum & 0xFFFF) + (csum >> 16)
    msg[2:4] = (~csum & 0xFFFF).to_bytes(2, "big")
    p.sendto(bytes(msg), (PING, 0))
    p.settimeout(5)
    while p.recv(100)[20] != 0:  # the echo reply (type 0)
        pass
ready(**seen)
'''


def _need_tools() -> None:
    for tool in ("nft", "conntrack"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (.ci/run installs nftables and conntrack)")


def _track(ns: NetNS, ruleset: str = TRACK) -> None:
    """Make conntrack track this namespace's flows, deterministically."""
    ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
    ns.sysctl("net.netfilter.nf_conntrack_acct", "1")
    ns.run("nft", "-f", "-", input=ruleset)


@contextmanager
def pair():
    """A (va: A4, A6) — (vb: B4, B6) B, conntrack on in A."""
    _need_tools()
    with linked_pair() as (a, b):
        _track(a)
        yield a, b


# Masquerade into ports 20000-29999, outside every ephemeral port of A (32768-60999): each
# translated flow changes port as well as address.
MASQUERADE_PORTS = MASQUERADE.replace('oifname "rb" masquerade;',
                                     'oifname "rb" meta l4proto { tcp, udp } '
                                     'masquerade to :20000-29999;')


@contextmanager
def nat_router(masquerade: str = MASQUERADE):
    """A (va A4) — (ra RA4) R (rb RB4, masquerade) — (vb FB4) B."""
    _need_tools()
    with routed() as (a, r, b):
        _track(r, TRACK + masquerade)
        yield a, r, b


def _flows(client: NetNS, server: NetNS, addrs: list[tuple[str, str]],
           ping: str | None = None) -> tuple[dict, dict]:
    """Start the servers in `server` and the client flows from `client` (and an ICMP echo to
    `ping`); return both infos."""
    fams = ", ".join(f"(socket.AF_INET{'6' if v == '6' else ''}, {a!r})" for v, a in addrs)
    srv = server.spawn(f"ADDRS = [{fams}]\n" + SERVER)
    targets = [(f"{p}{v}", f"socket.AF_INET{'6' if v == '6' else ''}", a, srv[f"{p}{v}"])
               for v, a in addrs for p in ("tcp", "udp")]
    code = "TARGETS = [" + ", ".join(f"({n!r}, {f}, {a!r}, {port})"
                                     for n, f, a, port in targets) + "]\n"
    code += f"PING = {ping!r}\n" + CLIENT
    cli = client.spawn(code)
    time.sleep(0.3)  # the last delayed ACK: counters then hold still
    return srv.info, cli.info


# ------------------------------------------------------------------------------- the two views

def sniffer(*args: str, ns: NetNS | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [PYTHON, "-m", "sniffer", "sockets", "--conntrack", *args]
    proc = subprocess.run(ns.argv(*argv) if ns else argv, capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr
    return proc


def sniffer_json(*args: str, ns: NetNS | None = None) -> list[dict]:
    return [json.loads(line) for line in sniffer("--json", *args, ns=ns).stdout.splitlines()]


def _canon(a: str) -> str:
    return str(ipaddress.ip_address(a))


def parse_conntrack(text: str) -> list[dict]:
    """`conntrack -L -o extended` lines → {family, proto, orig, reply, state, flags, mark,
    counters}, tuples as (src, dst, sport, dport) with ports as ints (None for ICMP)."""
    out = []
    for line in text.splitlines():
        tok = line.split()
        rest = tok[5:]  # after: family name, number, protocol name, number, timeout
        state = None
        if rest and "=" not in rest[0] and not rest[0].startswith("["):
            state = rest.pop(0)
        tuples: list[dict] = []
        flags, extra = set(), {}
        for t in rest:
            if t.startswith("["):
                flags.add(t.strip("[]"))
                continue
            k, _, v = t.partition("=")
            if k == "src" and len(tuples) < 2:
                tuples.append({})
            if tuples and k in ("src", "dst", "sport", "dport", "packets", "bytes") \
                    and k not in tuples[-1]:
                tuples[-1][k] = v
            else:
                extra[k] = v

        def tup(d):
            return (_canon(d["src"]), _canon(d["dst"]),
                    int(d["sport"]) if "sport" in d else None,
                    int(d["dport"]) if "dport" in d else None)
        o, r = tuples
        out.append({"family": {"ipv4": 4, "ipv6": 6}[tok[0]], "proto": tok[2],
                    "orig": tup(o), "reply": tup(r), "state": state, "flags": flags,
                    "mark": int(extra.get("mark", 0)), "zone": int(extra.get("zone", 0)),
                    "counters": (int(o["packets"]), int(o["bytes"]),
                                 int(r["packets"]), int(r["bytes"])) if "packets" in o else None})
    return out


def conntrack_L(ns: NetNS) -> list[dict]:
    return parse_conntrack(ns.run("conntrack", "-L", "-o", "extended").stdout)


def key(e: dict) -> tuple:
    """What both views must agree on, from one sniffer JSON object or one parsed line."""
    if "nat" in e:  # sniffer's
        t = lambda d: (_canon(d["src"]), _canon(d["dst"]), d["sport"], d["dport"])  # noqa: E731
        c = e["counters"]
        return (e["family"], e["proto"], t(e["orig"]), t(e["reply"]), e["state"],
                "ASSURED" in e["status"], "SEEN_REPLY" not in e["status"], e["mark"], e["zone"],
                (c["orig_packets"], c["orig_bytes"], c["reply_packets"], c["reply_bytes"])
                if c else None)
    return (e["family"], e["proto"], e["orig"], e["reply"], e["state"], "ASSURED" in e["flags"],
            "UNREPLIED" in e["flags"], e["mark"], e["zone"], e["counters"])


def documented() -> tuple[set[str], set[str]]:
    """docs/sockets-json.md, section "Conntrack entries": the keys of its table's first
    column, and every key named anywhere in it (a tuple's and the counters' keys)."""
    text = (ROOT / "docs" / "sockets-json.md").read_text().split("## Conntrack entries", 1)[1]
    first = {k for line in text.splitlines() if line.startswith("| ")
             for k in re.findall(r"`([a-z_0-9]+)`", line.split("|")[1])}
    return first, set(re.findall(r"[`{ ,]([a-z_]+)[`}, ]", text))


# ------------------------------------------------------------------------------- tests

def test_lists_the_flows_conntrack_lists():
    """TCP and UDP over IPv4 and IPv6 from A to B: the same entries as `conntrack -L`, in
    the named namespace and from inside it, with the flows the client made."""
    with pair() as (a, b):
        srv, cli = _flows(a, b, [("4", B4), ("6", B6)], ping=B4)
        ours = sniffer_json("--netns", a.name)
        theirs = conntrack_L(a)
        assert sorted(map(key, ours)) == sorted(map(key, theirs))
        assert {e["netns"] for e in ours} == {a.name}
        assert {e["netns_inode"] for e in ours} == {a.inode}
        top, named = documented()
        assert set().union(*map(set, ours)) == top
        inner = {k for e in ours for k in (*e["orig"], *e["reply"], *(e["counters"] or ()))}
        assert inner <= named, inner - named
        by_proto = {}
        for e in ours:
            by_proto[(e["proto"], e["family"])] = e
        for name, server in (("tcp4", B4), ("udp4", B4), ("tcp6", B6), ("udp6", B6)):
            e = by_proto[(name[:3], int(name[3]))]
            laddr, lport = cli[name]["local"]
            assert (e["orig"]["src"], e["orig"]["sport"]) == (laddr, lport)
            assert (e["orig"]["dst"], e["orig"]["dport"]) == (server, srv[name])
            assert (e["reply"]["src"], e["reply"]["sport"], e["reply"]["dst"],
                    e["reply"]["dport"]) == (server, srv[name], laddr, lport)
            assert e["nat"] is None and "SEEN_REPLY" in e["status"]
            assert e["counters"]["orig_packets"] >= 1 and e["counters"]["reply_packets"] >= 1
        assert by_proto[("tcp", 4)]["state"] == by_proto[("tcp", 6)]["state"] == "ESTABLISHED"
        assert "ASSURED" in by_proto[("tcp", 4)]["status"]
        assert by_proto[("udp", 4)]["state"] is None
        icmp = by_proto[("icmp", 4)]
        assert (icmp["orig"]["type"], icmp["orig"]["code"], icmp["orig"]["id"]) == (8, 0, 0x1234)
        assert icmp["reply"]["type"] == 0 and icmp["orig"]["sport"] is None
        assert icmp["orig"]["src"] == A4 and icmp["reply"]["src"] == B4
        assert "ICMP" in sniffer("--netns", a.name, "-w").stdout.splitlines()[0]
        # Run inside the namespace, it reads its own table and labels it by name.
        inside = sniffer_json(ns=a)
        assert sorted(map(key, inside)) == sorted(map(key, ours))
        assert {e["netns"] for e in inside} == {a.name}


def test_filters():
    """-t/-u, -4/-6, --port, --addr and --state pick entries as they do sockets."""
    with pair() as (a, b):
        srv, cli = _flows(a, b, [("4", B4), ("6", B6)])

        def pick(*args):
            return sorted((e["proto"], e["family"]) for e in sniffer_json("--netns", a.name, *args))
        assert pick("-t") == [("tcp", 4), ("tcp", 6)]
        assert pick("-u", "-6") == [("udp", 6)]
        assert pick("-4") == [("tcp", 4), ("udp", 4)]
        assert pick("--port", str(srv["udp4"])) == [("udp", 4)]
        assert pick("--port", str(cli["tcp6"]["local"][1])) == [("tcp", 6)]
        v6net = str(ipaddress.ip_network(f"{B6}/64", strict=False))  # the veth's IPv6 prefix
        assert pick("--addr", v6net) == [("tcp", 6), ("udp", 6)]
        assert pick("--state", "established") == [("tcp", 4), ("tcp", 6)]
        assert pick("--state", "TIME-WAIT") == []
        bad = sniffer("--netns", a.name, "--state", "BOGUS", check=False)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--state" in bad.stderr
        bad = sniffer("--netns", a.name, "-p", check=False)
        assert bad.returncode == 2 and "-p" in bad.stderr and "Traceback" not in bad.stderr


def test_nat_shows_the_translation():
    """Masquerade on a router: the entry in R holds the inside tuple and the translated reply
    (B answers R's outside address and the port B saw), marked SNAT; conntrack -L agrees."""
    with nat_router() as (a, r, b):
        srv, cli = _flows(a, b, [("4", FB4)])
        ours = sniffer_json("--netns", r.name)
        assert sorted(map(key, ours)) == sorted(map(key, conntrack_L(r)))
        for name in ("tcp4", "udp4"):
            laddr, lport = cli[name]["local"]
            seen_addr, seen_port = cli[name]["seen_as"]  # what B saw: the translated source
            assert seen_addr == RB4
            (e,) = [e for e in ours if e["proto"] == name[:3]]
            assert e["orig"] == {"src": A4, "dst": FB4, "sport": lport, "dport": srv[name]}
            assert e["reply"] == {"src": FB4, "dst": RB4, "sport": srv[name], "dport": seen_port}
            assert e["nat"] == "SNAT" and "SRC_NAT" in e["status"]
            # The plain text (piped) shows both halves and the mark on one line.
            line = [ln for ln in sniffer("-n", "--netns", r.name).stdout.splitlines()
                    if f"{A4}:{lport} " in ln]
            assert len(line) == 1 and f"{RB4}:{seen_port}" in line[0]
            assert line[0].split()[line[0].split().index(f"{RB4}:{seen_port}") + 1] == "SNAT"
        # Found by its outside address too.
        outside = sniffer_json("--netns", r.name, "--addr", RB4)
        assert {e["proto"] for e in outside} == {"tcp", "udp"}
        # On a narrow terminal: a table, the reply under the original, no address:port split.
        screen = _on_terminal(100, "-n", "--netns", r.name)
        lport = cli["tcp4"]["local"][1]
        assert f"{A4}:{lport}" in screen and f"→ {RB4}:{cli['tcp4']['seen_as'][1]}" in screen
        assert "SNAT" in screen and "Traceback" not in screen


def _on_terminal(columns: int, *args: str) -> str:
    """`sniffer sockets --conntrack ARGS` on a pseudo-terminal `columns` wide, as shown."""
    import os
    import pty

    from netnskit import read_terminal
    pid, fd = pty.fork()
    if pid == 0:  # the child: only exec (or exit) here
        try:
            os.chdir(ROOT)
            os.environ.update(COLUMNS=str(columns), TERM="dumb")
            os.execv(PYTHON, [PYTHON, "-m", "sniffer", "sockets", "--conntrack", *args])
        finally:
            os._exit(127)
    return re.sub(r"\x1b\[[0-9;]*m", "", read_terminal(pid, fd))


def test_all_netns_includes_each_namespace():
    with pair() as (a, b):
        _flows(a, b, [("4", B4)])
        every = [e for e in sniffer_json("--all-netns") if e["netns"] == a.name]
        assert sorted(map(key, every)) == sorted(map(key, sniffer_json("--netns", a.name)))
        assert every and {e["netns_inode"] for e in every} == {a.inode}


def test_not_root_and_unknown_namespace_are_one_line():
    denied = subprocess.run(unprivileged([PYTHON, "-m", "sniffer", "sockets", "--conntrack"]),
                            capture_output=True, text=True, timeout=30, cwd="/")
    assert denied.returncode == 2, denied.stderr
    assert denied.stderr.count("\n") == 1 and "CAP_NET_ADMIN" in denied.stderr, denied.stderr
    assert denied.stdout == ""
    missing = "snf-no-such-ns"
    plain = subprocess.run([PYTHON, "-m", "sniffer", "sockets", "--netns", missing],
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
    ct = sniffer("--netns", missing, check=False)
    assert ct.returncode == plain.returncode == 2
    assert ct.stderr == plain.stderr and ct.stderr.count("\n") == 1


# ------------------------------------------------------------------------------- live, on a router

# From B, with scapy: one TCP segment in the middle of a connection that never was (ACK and
# data, no SYN before it), from B's address to an address beyond the router.
FORGE = r"""
import sys
from scapy.all import IP, TCP, Ether, Raw, send, sendp
src, dst, sport, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
segment = (IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=1000, ack=2000)
           / Raw(b"injected mid-stream"))
if len(sys.argv) > 5:  # to another host's MAC, out of this interface: R only overhears it
    sendp(Ether(dst="02:00:00:00:00:99") / segment, iface=sys.argv[5], verbose=False)
else:
    send(segment, verbose=False)
"""

CT_FIELDS = ("verdict", "evidence", "conntrack_id", "nat.orig_h", "nat.orig_p", "nat.resp_h",
             "nat.resp_p")


def _forge(ns: NetNS, src: str, dst: str, sport: int, dport: int, *iface: str) -> None:
    ns.run(PYTHON, "-c", FORGE, src, dst, str(sport), str(dport), *iface, cwd=ROOT)


@pytest.mark.parametrize("ruleset", ["masquerade", "masquerade-to-ports"])
def test_live_on_a_nat_router(tmp_path, ruleset):
    """`sniffer live -i any` on the masquerading router R (docs/live.md, "Forwarded traffic"):
    A's TCP and UDP flows to B are `forwarded` on the inside (A -> B) and on the outside
    (R -> B), each half naming the other (`nat.*`) and both the same conntrack entry; a
    segment forged on the outside with nf_conntrack_tcp_loose=0 is `not-tracked`, with an
    `untracked-flow` alert; the same forgery with loose=1 made an entry, so it is `forwarded`;
    `read` of the recording gives the same verdicts and fields. Plain masquerade keeps A's
    ports: the traces of A's processes (host-wide) must not claim R's outside half."""
    alerts = tmp_path / "alerts.jsonl"
    with nat_router(MASQUERADE if ruleset == "masquerade" else MASQUERADE_PORTS) as (a, r, b):
        assert r.sysctl("net.netfilter.nf_conntrack_tcp_loose") == "0"
        with sniffing(r, "any", tmp_path, "--alerts", str(alerts), record=True) as snf:
            srv, cli = _flows(a, b, [("4", FB4)])
            _forge(b, FB4, A4, 4441, 5551)  # loose=0: INVALID, never tracked
            _forge(b, FB4, A4, 4443, 5553, "vb")  # not to R's MAC: R's kernel drops it
            time.sleep(0.3)
            r.sysctl("net.netfilter.nf_conntrack_tcp_loose", "1")
            _forge(b, FB4, A4, 4442, 5552)  # loose=1: picked up mid-stream
            time.sleep(0.5)
            snf.stop()
        listing = r.run("conntrack", "-L", "-o", "id").stdout  # the flows are still open
        recs = snf.records()
    for name in ("tcp4", "udp4"):
        proto, port = name[:3], srv[name]
        laddr, lport = cli[name]["local"]
        seen_addr, seen_port = cli[name]["seen_as"]
        assert (laddr, seen_addr) == (A4, RB4)
        if ruleset == "masquerade":
            assert seen_port == lport
        else:
            assert 20000 <= seen_port <= 29999 < lport
        inside = one_conn(recs, proto, FB4, port, A4, lport)
        outside = one_conn(recs, proto, FB4, port, RB4, seen_port)
        for half in (inside, outside):
            assert half["verdict"] == "forwarded", show([half])
            assert any("conntrack tracked this flow" in e for e in half["evidence"]), show([half])
            assert not half.get("processes"), show([half])
        # Each half names the other; both carry the one conntrack entry's id.
        assert (inside["nat.orig_h"], inside["nat.orig_p"], inside["nat.resp_h"],
                inside["nat.resp_p"]) == (RB4, seen_port, FB4, port), show([inside])
        assert (outside["nat.orig_h"], outside["nat.orig_p"], outside["nat.resp_h"],
                outside["nat.resp_p"]) == (A4, lport, FB4, port), show([outside])
        assert isinstance(inside["conntrack_id"], int)
        assert inside["conntrack_id"] == outside["conntrack_id"], show([inside, outside])
        # The id is the kernel's: `conntrack -L -o id` lists that entry under it.
        (line,) = [ln for ln in listing.splitlines()
                   if f"id={inside['conntrack_id']}" in ln.split()]
        assert f"src={A4} dst={FB4} sport={lport} dport={port}" in line, line
        assert any(f"{A4}:{lport} -> {FB4}:{port}" in e and "SNAT" in e
                   for e in outside["evidence"]), show([outside])
    tcp = one_conn(recs, "tcp", FB4, srv["tcp4"], A4, cli["tcp4"]["local"][1])
    assert any("ESTABLISHED" in e or "SYN_SENT" in e for e in tcp["evidence"]), show([tcp])

    forged = one_conn(recs, "tcp", A4, 5551, FB4, 4441)
    assert forged["verdict"] == "not-tracked", show([forged])
    assert any("never accepted" in e for e in forged["evidence"]), show([forged])
    assert any("nf_conntrack_tcp_loose" in e for e in forged["evidence"]), show([forged])
    assert "conntrack_id" not in forged and "nat.orig_h" not in forged
    loose = one_conn(recs, "tcp", A4, 5552, FB4, 4442)
    assert loose["verdict"] == "forwarded", show([loose])
    assert any("ESTABLISHED when created" in e for e in loose["evidence"]), show([loose])
    assert "nat.orig_h" not in loose  # not translated: no other half to name
    # A frame R's kernel dropped unseen (another host's MAC): conntrack's silence means
    # nothing, so it stays not-local, and says why.
    overheard = one_conn(recs, "tcp", A4, 5553, FB4, 4443)
    assert overheard["verdict"] == "not-local", show([overheard])
    assert any("another host's MAC" in e for e in overheard["evidence"]), show([overheard])

    found = [x for x in map(json.loads, alerts.read_text().splitlines())
             if x["kind"] == "untracked-flow"]
    assert [x["uid"] for x in found] == [forged["uid"]], found
    (alert,) = found
    assert alert["severity"] == "medium"
    assert (alert["src"], alert["sport"], alert["dst"], alert["dport"]) == (FB4, 4441, A4, 5551)
    assert alert["evidence"]["verdict"] == "not-tracked"
    assert any("nf_conntrack_tcp_loose" in e for e in alert["evidence"]["kernel_evidence"])
    assert alert["evidence"]["history"] and alert["evidence"]["orig_pkts"] >= 1
    assert not [r for r in recs if r.get("verdict") == "not-tracked"
                and r["uid"] != forged["uid"]], show(recs)

    # The recording replays to the same verdicts, evidence and conntrack fields.
    replay = {r["uid"]: r for r in read_recording(snf.pcapng)}
    for rec in recs:
        again = replay.get(rec["uid"])
        assert again is not None, show([rec])
        assert {k: again.get(k) for k in CT_FIELDS} == {k: rec.get(k) for k in CT_FIELDS}, \
            show([rec, again])


def test_live_without_cap_net_admin_goes_on(tmp_path):
    """conntrack cannot be read without CAP_NET_ADMIN (here: root with it taken out of the
    bounding set): `live` says so once on standard error and goes on, its records without
    conntrack's verdicts."""
    out = tmp_path / "live.jsonl"
    with pair() as (a, b):
        argv = a.argv("setpriv", "--bounding-set=-net_admin", PYTHON, "-m", "sniffer", "live",
                      "-i", "va", "--format", "json", "-o", str(out), "--interval", "0.2",
                      "--duration", "3")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        deadline = time.monotonic() + 15
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        srv, cli = _flows(a, b, [("4", B4)])
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    notes = [ln for ln in err.splitlines() if "conntrack" in ln]
    assert len(notes) == 1 and "CAP_NET_ADMIN" in notes[0], err
    assert "Traceback" not in err
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    rec = one_conn(recs, "tcp", B4, srv["tcp4"], A4, cli["tcp4"]["local"][1])
    assert rec["verdict"] == "attributed" and "conntrack_id" not in rec, show([rec])


MANY = r'''
seen = []
for i in range(N):
    c = socket.create_connection((ADDR, PORT), timeout=5)
    c.sendall(b"hi")
    peer = json.loads(c.recv(100))
    seen.append([c.getsockname()[1], peer[1]])
    c.close()
ready(seen=seen)
'''


class _Host:
    """Where `sniffing` runs sniffer: here, in the host's namespace (`--netns` does the rest)."""

    @staticmethod
    def argv(*argv: str) -> list[str]:
        return list(argv)


def test_live_on_a_router_many_short_connections(tmp_path):
    """200 short TCP connections through the masquerading router, one right after another
    (each opened, one exchange, closed), sniffer started in the host's namespace with
    `--netns R`: every inside and outside record is `forwarded`, tied to its other half, none
    `not-tracked`; the recording replays to the same."""
    n = 200
    with nat_router(MASQUERADE_PORTS) as (a, r, b):
        with sniffing(_Host, "any", tmp_path, "--netns", r.name, record=True) as snf:
            srv = b.spawn(f"ADDRS = [(socket.AF_INET, {FB4!r})]\n" + SERVER)
            cli = a.spawn(f"N, ADDR, PORT = {n}, {FB4!r}, {srv['tcp4']}\n" + MANY, timeout=60)
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
    port = srv["tcp4"]
    assert len(cli["seen"]) == n
    ids = set()
    for lport, seen_port in cli["seen"]:
        inside = one_conn(recs, "tcp", FB4, port, A4, lport)
        outside = one_conn(recs, "tcp", FB4, port, RB4, seen_port)
        for half in (inside, outside):
            assert half["verdict"] == "forwarded", show([half])
        assert (inside["nat.orig_h"], inside["nat.orig_p"]) == (RB4, seen_port), show([inside])
        assert (outside["nat.orig_h"], outside["nat.orig_p"]) == (A4, lport), show([outside])
        assert inside["conntrack_id"] == outside["conntrack_id"]
        ids.add(inside["conntrack_id"])
    assert len(ids) == n  # one entry each
    assert not [r for r in recs if r.get("verdict") == "not-tracked"], show(recs)
    replay = {r["uid"]: r for r in read_recording(snf.pcapng)}
    assert {u: replay[u].get("verdict") for u in (r["uid"] for r in recs)} == \
        {r["uid"]: r.get("verdict") for r in recs}


def test_live_on_a_port_forward(tmp_path):
    """A port forward (DNAT) on R: B connects to R's outside address, port 8080, which R
    forwards to A's server. The outside record (B -> R:8080: R's own address, no socket) and
    the inside one (B -> A) are both `forwarded`, each naming the other half."""
    with nat_router() as (a, r, b):
        srv = a.spawn(f"ADDRS = [(socket.AF_INET, {A4!r})]\n" + SERVER)
        r.run("nft", "-f", "-", input=f"""
table ip snfdnat {{
  chain pre {{ type nat hook prerouting priority -100;
    iifname "rb" tcp dport 8080 dnat to {A4}:{srv['tcp4']};
    iifname "rb" udp dport 8080 dnat to {A4}:{srv['udp4']}; }}
}}
""")
        with sniffing(r, "any", tmp_path) as snf:
            code = ("TARGETS = [('tcp4', socket.AF_INET, %r, 8080), "
                    "('udp4', socket.AF_INET, %r, 8080)]\nPING = None\n" % (RB4, RB4))
            cli = b.spawn(code + CLIENT)
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
    for name in ("tcp4", "udp4"):
        proto, port = name[:3], srv[name]
        laddr, lport = cli[name]["local"]
        assert (laddr, cli[name]["seen_as"]) == (FB4, [FB4, lport])  # no SNAT: A sees B
        outside = one_conn(recs, proto, RB4, 8080, FB4, lport)
        inside = one_conn(recs, proto, A4, port, FB4, lport)
        for half in (inside, outside):
            assert half["verdict"] == "forwarded", show([half])
            assert any("DNAT" in e for e in half["evidence"]), show([half])
        assert (outside["nat.orig_h"], outside["nat.orig_p"], outside["nat.resp_h"],
                outside["nat.resp_p"]) == (FB4, lport, A4, port), show([outside])
        assert (inside["nat.orig_h"], inside["nat.orig_p"], inside["nat.resp_h"],
                inside["nat.resp_p"]) == (FB4, lport, RB4, 8080), show([inside])
        assert inside["conntrack_id"] == outside["conntrack_id"] is not None
