"""`sniffer live` end to end (docs/live.md, issue 5 "Must show"): the real command, run inside
throw-away network namespaces, on real traffic between them.

Topology (one per test): namespace A, where sniffer runs on its veth `va` (10.98.0.1/24,
fd98::1/64), and B, the peer on `vb` (10.98.0.2/24, fd98::2/64). The forwarding test adds a
router R between two veth pairs (A–R 10.98.0.0/24, R–B 10.97.0.0/24) and sniffs in R.

Each test starts `ip netns exec A python -m sniffer live -i va --format json -o OUT.jsonl
--interval 0.2 ...`, waits until it captures (the output file exists; the first kernel
snapshot follows at once), makes its traffic with netnskit holders (processes with distinct
names, "snf-srv", "snf-cli", ...), stops sniffer (SIGINT unless the test is about stopping)
and checks the JSON records: Zeek conn.log names plus `verdict`, `evidence`, `processes`,
`user`, `netns`, `container`. Holders keep their sockets open until sniffer has written
everything, so the verdicts are about the run, not about what was closed afterwards.

Nothing touches the host's interfaces; every namespace is deleted in `finally`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from netnskit import (PYTHON, ROOT, NetNS, _run, can_run, read_terminal, small_disk,
                      unprivileged)

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))

A4, B4, A6, B6 = "10.98.0.1", "10.98.0.2", "fd98::1", "fd98::2"
# forwarding topology: A — R — B
RA4, RB4, FB4 = "10.98.0.254", "10.97.0.254", "10.97.0.2"

START_TIMEOUT = 15  # until the output file exists
SETTLE = 0.8  # after that: the start snapshot, and a margin for a slow machine
STOP_TIMEOUT = 20  # for sniffer to flush and exit once told to stop
# Extra engine options for every `live` and `read` run, for diagnosis only (e.g. "-C" to see
# what else fails while locally sent packets carry offloaded, not-yet-computed checksums).
ENGINE_ARGS = os.environ.get("SNF_LIVE_ARGS", "").split()


# ------------------------------------------------------------------------------- topology

def veth(ns1: NetNS, if1: str, ns2: NetNS, if2: str) -> None:
    """A veth pair created directly inside the two namespaces (no host-side device)."""
    _run(["ip", "link", "add", if1, "netns", ns1.name, "type", "veth",
          "peer", "name", if2, "netns", ns2.name])


def up(ns: NetNS, ifname: str, *cidrs: str) -> None:
    for cidr in cidrs:
        ns.run("ip", "addr", "add", cidr, "dev", ifname, *(["nodad"] if ":" in cidr else []))
    ns.run("ip", "link", "set", ifname, "up")


@contextmanager
def pair(a4: str = A4, b4: str = B4, a6: str = A6, b6: str = B6):
    """A (va: a4, a6) and B (vb: b4, b6), joined by a veth."""
    with ExitStack() as stack:
        a = stack.enter_context(NetNS("snfA"))
        b = stack.enter_context(NetNS("snfB"))
        veth(a, "va", b, "vb")
        up(a, "va", f"{a4}/24", f"{a6}/64")
        up(b, "vb", f"{b4}/24", f"{b6}/64")
        yield a, b


@contextmanager
def routed():
    """A (va 10.98.0.1) — (ra 10.98.0.254) R (rb 10.97.0.254) — (vb 10.97.0.2) B."""
    with ExitStack() as stack:
        a = stack.enter_context(NetNS("snfA"))
        r = stack.enter_context(NetNS("snfR"))
        b = stack.enter_context(NetNS("snfB"))
        veth(a, "va", r, "ra")
        veth(r, "rb", b, "vb")
        up(a, "va", f"{A4}/24")
        up(r, "ra", f"{RA4}/24")
        up(r, "rb", f"{RB4}/24")
        up(b, "vb", f"{FB4}/24")
        r.sysctl("net.ipv4.ip_forward", "1")
        a.run("ip", "route", "add", "default", "via", RA4)
        b.run("ip", "route", "add", "default", "via", RB4)
        yield a, r, b


# ------------------------------------------------------------------------------- sniffer

class Sniffer:
    """`python -m sniffer live` running in a namespace, JSON records to a file."""

    def __init__(self, ns: NetNS, iface: str, tmp: Path, *extra: str,
                 record: bool = False, name: str = "live", env: dict | None = None) -> None:
        self.out = tmp / f"{name}.jsonl"
        self.pcapng = tmp / f"{name}.pcapng" if record else None
        argv = [PYTHON, "-m", "sniffer", "live", "-i", iface, "--format", "json",
                "-o", str(self.out), "--interval", "0.2", *ENGINE_ARGS, *extra]
        if self.pcapng is not None:
            argv += ["-w", str(self.pcapng)]
        self.argv = ns.argv(*argv)  # `ip netns exec` execs: proc.pid is sniffer's own pid
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                     start_new_session=True, env=env)
        self.started = time.monotonic()
        self.stdout = self.stderr = ""
        self.rc: int | None = None

    def wait_capturing(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.out.exists():
            if self.proc.poll() is not None:
                self._collect(0)
                raise AssertionError(f"sniffer exited {self.rc} before capturing:\n{self.stderr}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"sniffer did not start within {START_TIMEOUT} s:\n"
                                     f"{self.stderr}")
            time.sleep(0.02)
        time.sleep(SETTLE)

    def send(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for sniffer to exit on its own (after a signal, --count or --duration)."""
        try:
            self._collect(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"sniffer still running {timeout} s after it should have "
                                 f"stopped (killed); stderr:\n{self.stderr}") from None
        return self.rc

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.send(sig)
        rc = self.wait()
        assert rc == 0, f"sniffer exited {rc}; stderr:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        return rc

    def _collect(self, timeout: float) -> None:
        out, err = self.proc.communicate(timeout=timeout)
        self.stdout, self.stderr, self.rc = out or "", err or "", self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            out, err = self.proc.communicate(timeout=5)
            self.stdout, self.stderr = out or "", err or ""
        except (subprocess.TimeoutExpired, ValueError):
            pass
        self.rc = self.proc.returncode

    def records(self) -> list[dict]:
        return parse_jsonl(self.out.read_text(encoding="utf-8"), str(self.out))


@contextmanager
def sniffing(ns: NetNS, iface: str, tmp: Path, *extra: str, record: bool = False,
             name: str = "live", env: dict | None = None):
    """A started, capturing Sniffer; killed on the way out if the test did not stop it."""
    s = Sniffer(ns, iface, tmp, *extra, record=record, name=name, env=env)
    try:
        s.wait_capturing()
        yield s
    finally:
        if s.proc.poll() is None:
            s.kill()


def parse_jsonl(text: str, what: str) -> list[dict]:
    """Every line one JSON object, the file ending with a newline (no torn last line)."""
    assert text == "" or text.endswith("\n"), f"{what}: last line incomplete: {text[-200:]!r}"
    recs = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{what}:{n}: not JSON ({exc}): {line[:200]!r}") from None
        assert isinstance(obj, dict), f"{what}:{n}: not an object"
        recs.append(obj)
    return recs


def read_recording(path: Path) -> list[dict]:
    """`python -m sniffer read FILE --format json`: the offline replay of a recording."""
    proc = _run([PYTHON, "-m", "sniffer", "read", str(path), "--format", "json", *ENGINE_ARGS],
                timeout=60, check=False, cwd=ROOT)
    assert proc.returncode == 0, f"sniffer read {path.name} exited {proc.returncode}:\n" \
                                 f"{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return parse_jsonl(proc.stdout, f"sniffer read {path.name}")


def conns(recs: list[dict], proto: str, resp_h: str, resp_p: int, orig_h: str | None = None,
          orig_p: int | None = None) -> list[dict]:
    return [r for r in recs if r.get("proto") == proto and r.get("id.resp_h") == resp_h
            and r.get("id.resp_p") == resp_p
            and (orig_h is None or r.get("id.orig_h") == orig_h)
            and (orig_p is None or r.get("id.orig_p") == orig_p)]


def show(recs: list[dict]) -> str:
    return "\n".join(json.dumps(r, sort_keys=True) for r in recs) or "(no records)"


def one_conn(recs: list[dict], proto: str, resp_h: str, resp_p: int, orig_h: str | None = None,
             orig_p: int | None = None) -> dict:
    """The record of one connection; it must be there, and once (one connection, one record)."""
    found = conns(recs, proto, resp_h, resp_p, orig_h, orig_p)
    what = f"{proto} {orig_h or '*'}:{orig_p or '*'} -> {resp_h}:{resp_p}"
    assert found, f"no record for {what}; all records:\n{show(recs)}"
    assert len(found) == 1, f"{len(found)} records for the one connection {what}:\n{show(found)}"
    return found[0]


def owned_by(rec: dict, pid: int, name: str, fd: int | None = None) -> bool:
    return any(p.get("pid") == pid and p.get("name") == name
               and (fd is None or p.get("fd") == fd) for p in rec.get("processes") or ())


def assert_attributed(rec: dict, pid: int, name: str, fd: int | None = None,
                      netns: str | None = None) -> None:
    assert rec.get("verdict") == "attributed", f"verdict {rec.get('verdict')!r}:\n{show([rec])}"
    assert owned_by(rec, pid, name, fd), \
        f"processes should name pid {pid} ({name}{f', fd {fd}' if fd is not None else ''}):\n" \
        f"{show([rec])}"
    assert isinstance(rec.get("evidence"), list) and rec["evidence"], show([rec])
    assert rec.get("user") == "root", show([rec])
    assert rec.get("netns"), show([rec])
    if netns is not None:  # docs/sockets-json.md: the namespace's name under /run/netns
        assert rec["netns"] == netns, f"netns should be {netns!r}:\n{show([rec])}"


def assert_saw_both_sides(rec: dict) -> None:
    """The engine saw the exchange (a record built from the packets, not only from gaps)."""
    assert rec.get("orig_pkts", 0) > 0 and rec.get("resp_pkts", 0) > 0, \
        f"not both directions counted:\n{show([rec])}"
    if rec["proto"] == "tcp":
        hist = rec.get("history", "")
        assert "S" in hist and "h" in hist and "C" not in hist.upper(), \
            f"history {hist!r} should show the handshake (and no bad checksums):\n{show([rec])}"


# ------------------------------------------------------------------------------- holders

SERVE = r'''
def _echo(c, keep):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    if not keep:
        c.close()

HELD = []

def tcp_listener(fam, addr, port, backlog=64):
    s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == 6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(backlog)
    return s

def serve(specs, keep=True):
    """specs: [proto, family, addr, port]; TCP echo (accepted sockets kept open until EOF),
    UDP echo (replies to each datagram). Returns {port: fd of the listening/bound socket}."""
    fds = {}
    for proto, fam, addr, port in specs:
        family = socket.AF_INET6 if fam == 6 else socket.AF_INET
        if proto == "tcp":
            s = tcp_listener(fam, addr, port)
            def accept(s=s):
                while True:
                    c, _ = s.accept()
                    HELD.append(c)
                    threading.Thread(target=_echo, args=(c, keep), daemon=True).start()
            threading.Thread(target=accept, daemon=True).start()
        else:
            s = socket.socket(family, socket.SOCK_DGRAM)
            if fam == 6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            def loop(s=s):
                while True:
                    d, a = s.recvfrom(65536)
                    s.sendto(d, a)
            threading.Thread(target=loop, daemon=True).start()
        HELD.append(s)
        fds[port] = s.fileno()
    return fds

def talk(specs):
    """specs: [proto, family, addr, port]; one exchange each, sockets kept open.
    Returns [[proto, local_addr, local_port, fd], ...] in the same order."""
    out = []
    for proto, fam, addr, port in specs:
        family = socket.AF_INET6 if fam == 6 else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(family, kind)
        s.settimeout(5)
        s.connect((addr, port))
        s.sendall(b"ping from " + NAME.encode())
        got = s.recv(4096)
        assert got.startswith(b"ping"), got
        HELD.append(s)
        la = s.getsockname()
        out.append([proto, la[0], la[1], s.fileno()])
    return out
'''


def server(ns: NetNS, name: str, specs: list, keep: bool = True):
    code = (f"NAME = {name!r}\nset_name(NAME)\n" + SERVE
            + f"\nready(fds=serve({json.dumps(specs)}, {keep!r}))\n")
    return ns.spawn(code)


def client(ns: NetNS, name: str, specs: list):
    code = (f"NAME = {name!r}\nset_name(NAME)\n" + SERVE
            + f"\nready(conns=talk({json.dumps(specs)}))\n")
    return ns.spawn(code)


# =============================================================================== tests

def test_real_connections_are_attributed(tmp_path):
    """TCP and UDP, both ways, IPv4 and IPv6: each one `attributed` to the right program."""
    with pair() as (a, b):
        srv_a = server(a, "snf-srv", [["tcp", 4, "0.0.0.0", 5001], ["udp", 4, "0.0.0.0", 5003],
                                      ["tcp", 6, "::", 5007]])
        srv_b = server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002], ["udp", 4, "0.0.0.0", 5004],
                                      ["tcp", 6, "::", 5006], ["udp", 6, "::", 5008]])
        with sniffing(a, "va", tmp_path) as snf:
            cli_a = client(a, "snf-cli", [["tcp", 4, B4, 5002], ["udp", 4, B4, 5004],
                                          ["tcp", 6, B6, 5006], ["udp", 6, B6, 5008]])
            cli_b = client(b, "snf-cli", [["tcp", 4, A4, 5001], ["udp", 4, A4, 5003],
                                          ["tcp", 6, A6, 5007]])
            time.sleep(0.8)  # a few snapshots with every socket open
            snf.stop()
        recs = snf.records()

        # A's clients: the originator is local, its connected socket is the client's.
        (t4, u4, t6, u6) = cli_a["conns"]
        for (proto, laddr, lport, fd), (resp_h, resp_p) in zip(
                (t4, u4, t6, u6), ((B4, 5002), (B4, 5004), (B6, 5006), (B6, 5008))):
            rec = one_conn(recs, proto, resp_h, resp_p, laddr, lport)
            assert_saw_both_sides(rec)
            assert_attributed(rec, cli_a.pid, "snf-cli", fd, netns=a.name)
        # B's clients to A's servers: the responder is local, the server program holds it.
        for (proto, laddr, lport, _), (resp_h, resp_p) in zip(
                cli_b["conns"], ((A4, 5001), (A4, 5003), (A6, 5007))):
            rec = one_conn(recs, proto, resp_h, resp_p, laddr, lport)
            assert_saw_both_sides(rec)
            assert_attributed(rec, srv_a.pid, "snf-srv", netns=a.name)
        # The servers in B are B's business: never named in A's records.
        assert not any(owned_by(r, srv_b.pid, "snf-srv") or owned_by(r, cli_b.pid, "snf-cli")
                       for r in recs), show(recs)


SCAPY_HANDSHAKE = r"""
import sys
from scapy.all import IP, TCP, conf, send, sr1
src, dst, sport, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ip = IP(src=src, dst=dst)
synack = None
for _ in range(3):
    synack = sr1(ip / TCP(sport=sport, dport=dport, flags="S", seq=1000), timeout=2, verbose=0)
    if synack is not None:
        break
if synack is None or synack[TCP].flags != "SA":
    sys.exit(f"no SYN-ACK: {synack!r}")
ack = synack[TCP].seq + 1
send(ip / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=ack), verbose=0)
send(ip / TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=ack) / b"hello from scapy",
     verbose=0)
print("ok")
"""


def drop_local_rst_path(ns: NetNS, iface: str, port: int) -> str:
    """Keep A's kernel from resetting a raw socket's connection on local `port`.

    iptables or nft if installed (drop outgoing RSTs from the port); otherwise a policy
    routing rule that blackholes inbound TCP to the port before the TCP stack sees it (the
    packets are still captured: packet taps run before routing), which needs only iproute2.
    """
    if shutil.which("iptables"):
        ns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
               "--sport", str(port), "-j", "DROP")
        return "iptables"
    if shutil.which("nft"):
        ns.run("nft", "add table inet snf; "
                      "add chain inet snf out { type filter hook output priority 0 ; } ; "
                      f"add rule inet snf out tcp sport {port} tcp flags & rst == rst drop")
        return "nft"
    ns.run("ip", "rule", "add", "pref", "100", "lookup", "local")
    ns.run("ip", "rule", "del", "pref", "0", "lookup", "local")
    ns.run("ip", "rule", "add", "pref", "10", "iif", iface, "ipproto", "tcp",
           "dport", str(port), "blackhole")
    return "ip rule"


def test_raw_socket_handshake_is_unattributed(tmp_path):
    """A handshake scapy drives from A (no kernel socket) to B's listening server."""
    pytest.importorskip("scapy")
    with pair() as (a, b):
        srv_b = server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5005]])
        how = drop_local_rst_path(a, "va", 40000)
        alerts_file = tmp_path / "alerts.json"
        with sniffing(a, "va", tmp_path, "--alerts", str(alerts_file)) as snf:
            proc = a.run(PYTHON, "-c", SCAPY_HANDSHAKE, A4, B4, "40000", "5005", timeout=60,
                         check=False)
            assert proc.returncode == 0 and "ok" in proc.stdout, \
                f"scapy handshake failed ({how}): {proc.stdout}{proc.stderr}"
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
        rec = one_conn(recs, "tcp", B4, 5005, A4, 40000)
        hist = rec.get("history", "")
        assert "S" in hist and "h" in hist and "D" in hist, \
            f"the capture should show SYN, SYN-ACK and A's data ({how}):\n{show([rec])}"
        assert "R" not in hist, f"A's kernel reset the connection ({how}):\n{show([rec])}"
        assert rec.get("verdict") == "unattributed", show([rec])
        assert not rec.get("processes"), show([rec])
        ev = " ".join(rec.get("evidence") or ()).lower()
        assert "local" in ev and "sent" in ev and "no socket" in ev, \
            f"evidence should say the local side sent packets and no socket was seen:\n" \
            f"{show([rec])}"
        assert srv_b.pid not in {p.get("pid") for p in rec.get("processes") or ()}
        # the detectors turn the verdict into an alert on the same connection, and nothing
        # about it looks injected (it is a real, if socketless, handshake)
        alerts = parse_jsonl(alerts_file.read_text(), "alerts")
        mine = [x for x in alerts if x["uid"] == rec["uid"]]
        assert [x["kind"] for x in mine] == ["unattributed-connection"], alerts
        assert mine[0]["evidence"]["verdict"] == "unattributed"


SCAPY_LISTENER = r"""
import sys
from scapy.all import IP, TCP, AsyncSniffer, conf, send
conf.verb = 0
iface, port = sys.argv[1], int(sys.argv[2])

def answer(syn):
    send(IP(src=syn[IP].dst, dst=syn[IP].src)
         / TCP(sport=port, dport=syn[TCP].sport, flags="SA", seq=7000, ack=syn[TCP].seq + 1))
    print("answered", flush=True)

s = AsyncSniffer(iface=iface, count=1, prn=answer, store=False,
                 filter=f"tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0",
                 started_callback=lambda: print("ready", flush=True))
s.start()
s.join(timeout=15)
"""

SOCKET_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.send(b"hello")
time.sleep(0.3)
print("connected")
"""


def test_socketless_listener_is_a_hidden_listener(tmp_path):
    """B connects to a port of A where no socket listens, and scapy in A answers the SYN."""
    pytest.importorskip("scapy")
    with pair() as (a, b):
        how = drop_local_rst_path(a, "va", 5020)
        alerts_file = tmp_path / "alerts.json"
        with sniffing(a, "va", tmp_path, "--alerts", str(alerts_file)) as snf:
            listener = subprocess.Popen(a.argv(PYTHON, "-c", SCAPY_LISTENER, "va", "5020"),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
            try:
                assert listener.stdout.readline().strip() == "ready", listener.stderr.read()
                proc = b.run(PYTHON, "-c", SOCKET_CLIENT, A4, "5020", check=False, timeout=30)
                assert "connected" in proc.stdout, f"({how}) {proc.stdout}{proc.stderr}"
                assert listener.stdout.readline().strip() == "answered"
            finally:
                listener.kill()
                listener.communicate()
            time.sleep(0.5)
            snf.stop()
        rec = one_conn(snf.records(), "tcp", A4, 5020, B4)
        assert "h" in rec.get("history", "") and rec.get("verdict") == "unattributed", \
            show([rec])
        alerts = parse_jsonl(alerts_file.read_text(), "alerts")
        hidden = [x for x in alerts if x["kind"] == "hidden-listener"]
        assert [(x["uid"], x["dst"], x["dport"], x["severity"]) for x in hidden] == \
            [(rec["uid"], A4, 5020, "high")], alerts


def test_syn_to_closed_port_is_refused(tmp_path):
    with pair() as (a, b):
        with sniffing(a, "va", tmp_path) as snf:
            for dst in (A4, A6):
                proc = b.run(PYTHON, "-c", r"""
import errno, socket, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET)
s.settimeout(5)
try:
    s.connect((dst, 9))
except ConnectionRefusedError:
    print("refused")
""", dst)
                assert proc.stdout.strip() == "refused", proc.stdout + proc.stderr
            time.sleep(0.3)
            snf.stop()
        recs = snf.records()
        for dst, src in ((A4, B4), (A6, B6)):
            rec = one_conn(recs, "tcp", dst, 9, src)
            assert rec.get("verdict") == "refused", show([rec])
            assert "r" in rec.get("history", "") or "R" in rec.get("history", ""), show([rec])
            assert not rec.get("processes"), show([rec])
            assert rec.get("evidence"), show([rec])


def test_forwarded_traffic_is_not_local(tmp_path):
    with routed() as (a, r, b):
        srv = server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5010], ["udp", 4, "0.0.0.0", 5011]])
        with sniffing(r, "ra", tmp_path) as snf:
            cli = client(a, "snf-cli", [["tcp", 4, FB4, 5010], ["udp", 4, FB4, 5011]])
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
        for proto, laddr, lport, _ in cli["conns"]:
            rec = one_conn(recs, proto, FB4, 5010 if proto == "tcp" else 5011, laddr, lport)
            assert rec.get("verdict") == "not-local", show([rec])
            assert not rec.get("processes"), show([rec])
            assert rec.get("orig_pkts", 0) > 0 and rec.get("resp_pkts", 0) > 0, show([rec])
        assert not any(owned_by(x, srv.pid, "snf-srv") or owned_by(x, cli.pid, "snf-cli")
                       for x in recs), show(recs)


SHORT_CLIENT = r"""
set_name("snf-short")
import time
best = None
for attempt in range(20):
    t0 = time.perf_counter()
    s = socket.create_connection((DST, PORT), timeout=5)
    port, fd = s.getsockname()[1], s.fileno()
    s.close()
    dur = time.perf_counter() - t0
    if dur < 0.02:
        best = (port, fd, dur)
        break
    time.sleep(0.05)
ready(port=best and best[0], fd=best and best[1], dur=best and best[2], attempts=attempt + 1)
"""


def test_short_lived_connection_is_attributed(tmp_path):
    """Opened and closed within 20 ms, between two snapshots: the look-up on its first packet
    still finds the client's socket and program."""
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5020]], keep=False)
        with sniffing(a, "va", tmp_path) as snf:
            cli = a.spawn(f"DST, PORT = {B4!r}, 5020\n" + SHORT_CLIENT)
            assert cli["port"], f"no connection closed within 20 ms in {cli['attempts']} tries"
            assert cli["dur"] < 0.02, cli.info
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
        rec = one_conn(recs, "tcp", B4, 5020, A4, cli["port"])
        assert "S" in rec.get("history", "") and "F" in rec.get("history", ""), show([rec])
        assert_attributed(rec, cli.pid, "snf-short", netns=a.name)


PREFORK = SERVE + r"""
def listeners(port):
    return [tcp_listener(4, "0.0.0.0", port), tcp_listener(6, "::", port)]

def forked(name, work):
    # a child renamed `name` running work(); its pid once it has renamed itself
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r); set_name(name); os.write(w, b"x"); os.close(w)
        work()
        os._exit(0)
    os.close(w); os.read(r, 1); os.close(r)
    return pid

def each(lsts, serve):
    # serve(conn) for every connection accepted on any of the listeners, one thread each
    for l in lsts[1:]:
        threading.Thread(target=lambda l=l: [serve(l.accept()[0]) for _ in iter(int, 1)],
                         daemon=True).start()
    for _ in iter(int, 1):
        serve(lsts[0].accept()[0])

def answer(c):  # a pre-fork worker: one request, its own pid as the answer, closed first
    c.recv(100); c.sendall(str(os.getpid()).encode()); c.close()

pre = listeners(PORT)
workers = [forked(f"snf-worker{i}", lambda: each(pre, answer)) for i in range(2)]
for s in pre:
    s.close()

# The acceptor reads the request and hands the connection to the replier (SCM_RIGHTS),
# which answers and closes it: both used the socket.
left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
def reply():
    while True:
        _, fds, _, _ = socket.recv_fds(right, 1, 1)
        c = socket.socket(fileno=fds[0])
        c.sendall(b"replied"); c.close()
replier = forked("snf-replier", reply)
def hand_over(c):
    c.recv(100); socket.send_fds(left, [b"x"], [c.fileno()]); c.close()
hand = listeners(PORT + 1)
acceptor = forked("snf-acceptor", lambda: each(hand, hand_over))
ready(workers=workers, replier=replier, acceptor=acceptor)
"""

ASK = r"""
set_name("snf-asker")
out = []
for i in range(N):
    fam, dst = TARGETS[i % 2]
    for port in (PORT, PORT + 1):
        s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET)
        s.settimeout(5)
        s.connect((dst, port)); s.sendall(b"hi")
        got = b""
        while chunk := s.recv(100):
            got += chunk
        out.append([port, dst, s.getsockname()[1], got.decode()])
        s.close()
ready(conns=out)
"""


def test_prefork_workers_and_passed_descriptors(tmp_path):
    """A pre-fork server (two workers accepting on one inherited listener, each answering and
    closing at once) and a server that hands each connection to another process: every short
    connection names the worker that served it, and a handed-over one both processes that
    used it, IPv4 and IPv6 alike."""
    with pair() as (a, b):
        srv = a.spawn(f"PORT = 5060\n{PREFORK}")
        with sniffing(a, "va", tmp_path) as snf:
            asker = b.spawn(f"N, PORT = 20, 5060\nTARGETS = [(4, {A4!r}), (6, {A6!r})]\n{ASK}",
                            timeout=30)
            time.sleep(0.8)
            snf.stop()
        recs = snf.records()
    for port, dst, cport, answer in asker["conns"]:
        rec = one_conn(recs, "tcp", dst, port, None, cport)
        pids = sorted(p["pid"] for p in rec.get("processes") or ())
        if port == 5060:
            assert rec.get("verdict") == "attributed" and pids == [int(answer)], show([rec])
            assert int(answer) in srv["workers"]
        else:
            assert answer == "replied"
            assert rec.get("verdict") == "attributed" and \
                pids == sorted([srv["acceptor"], srv["replier"]]), show([rec])
            assert "snf-acceptor" in " ".join(rec["evidence"]), show([rec])
            assert "snf-replier" in " ".join(rec["evidence"]), show([rec])


BUSY = r"""
set_name("snf-busy")
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
end, n = time.monotonic() + 1.5, 0
while time.monotonic() < end:
    c.send(b"x" * 64); a.recv(64); n += 1
ready(pairs=n)
"""


def test_busy_host_pauses_send_receive_tracing(tmp_path):
    """Tens of thousands of TCP sends and receives a second on the host: their tracing is
    switched off for a while (said at exit), and inbound connections to a server that answers
    and closes at once are still attributed to it, by the close it makes."""
    with pair() as (a, b):
        srv = server(a, "snf-srv", [["tcp", 4, "0.0.0.0", 5070], ["tcp", 6, "::", 5070]],
                     keep=False)
        with sniffing(a, "va", tmp_path) as snf:
            busy = a.spawn(BUSY, timeout=20)
            ports = []
            for i in range(20):  # within the pause (10 s)
                dst = A4 if i % 2 else A6
                ports.append((dst, int(b.run(PYTHON, "-c", QUICK_CLIENT, dst, "5070").stdout)))
            time.sleep(0.5)
            snf.stop()
        recs = snf.records()
    assert busy["pairs"] > 2 * 20_000, busy.info  # above the budget (per second, 1.5 s)
    assert "their tracing paused 1 time(s) for 10 s" in snf.stderr, snf.stderr
    for dst, port in ports:
        rec = one_conn(recs, "tcp", dst, 5070, None, port)
        assert_attributed(rec, srv.pid, "snf-srv")


def _key(rec: dict) -> tuple:
    procs = tuple(sorted((p.get("pid"), p.get("name"), p.get("fd"))
                         for p in rec.get("processes") or ()))
    return (rec.get("uid"), rec.get("id.orig_h"), rec.get("id.orig_p"), rec.get("id.resp_h"),
            rec.get("id.resp_p"), rec.get("proto"), rec.get("conn_state"), rec.get("history"),
            rec.get("orig_pkts"), rec.get("resp_pkts"), rec.get("verdict"), procs)


def test_recording_replays_to_the_same_records(tmp_path):
    with pair() as (a, b):
        srv_a = server(a, "snf-srv", [["tcp", 4, "0.0.0.0", 5001], ["udp", 6, "::", 5003]])
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002], ["udp", 4, "0.0.0.0", 5004]])
        with sniffing(a, "va", tmp_path, record=True) as snf:
            cli_a = client(a, "snf-cli", [["tcp", 4, B4, 5002], ["udp", 4, B4, 5004]])
            client(b, "snf-cli", [["tcp", 4, A4, 5001], ["udp", 6, A6, 5003]])
            b.run(PYTHON, "-c", "import socket\ntry: socket.create_connection(('10.98.0.1', 9), 5)\n"
                                "except OSError: pass")
            time.sleep(0.6)
            snf.stop()
        live = snf.records()
        assert snf.pcapng.exists(), snf.stderr
        replay = read_recording(snf.pcapng)
        verdicts = {r.get("verdict") for r in live}
        assert {"attributed", "refused"} <= verdicts, show(live)
        assert any(owned_by(r, cli_a.pid, "snf-cli") for r in live), show(live)
        assert any(owned_by(r, srv_a.pid, "snf-srv") for r in live), show(live)
        lk, rk = sorted(map(_key, live), key=repr), sorted(map(_key, replay), key=repr)
        only_live = [k for k in lk if k not in rk]
        only_replay = [k for k in rk if k not in lk]
        assert lk == rk, ("live and replay differ\nonly live:\n" + "\n".join(map(repr, only_live))
                          + "\nonly replay:\n" + "\n".join(map(repr, only_replay)))
        # the full records too (evidence, user, netns, container included)
        assert sorted(map(json.dumps, live)) == sorted(map(json.dumps, replay))


def _udp_burst(ns: NetNS, dst: str, port: int, n: int) -> None:
    ns.run(PYTHON, "-c", f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({n}):
    s.sendto(b"burst %d" % i, ({dst!r}, {port}))
    time.sleep(0.002)
""")


def _check_outputs(snf: Sniffer, expect_port: int) -> list[dict]:
    """JSON complete, the burst's connection in it, and the recording readable and whole."""
    assert "Traceback" not in snf.stderr, snf.stderr
    lines = snf.stderr.strip().splitlines()
    assert lines and "packets captured" in lines[-1], snf.stderr
    recs = snf.records()
    assert conns(recs, "udp", A4, expect_port), f"the burst's connection is missing:\n{show(recs)}"
    replay = read_recording(snf.pcapng)
    assert sorted(r["uid"] for r in replay) == sorted(r["uid"] for r in recs), \
        f"live:\n{show(recs)}\nreplay:\n{show(replay)}"
    return recs


def _pcapng_packets(path: Path) -> int:
    from sniffer.capture import open_capture
    from sniffer.stats import Stats
    return sum(1 for _ in open_capture([str(path)], Stats(), lambda ts, payload: None))


def test_stop_after_count(tmp_path):
    with pair() as (a, b):
        server(a, "snf-srv", [["udp", 4, "0.0.0.0", 5030]])
        with sniffing(a, "va", tmp_path, "--count", "25", record=True) as snf:
            _udp_burst(b, A4, 5030, 60)  # 120 packets: the echo answers each
            rc = snf.wait()
        assert rc == 0, snf.stderr
        _check_outputs(snf, 5030)
        assert "25 packets captured" in snf.stderr, snf.stderr
        assert _pcapng_packets(snf.pcapng) == 25


def test_stop_after_duration(tmp_path):
    with pair() as (a, b):
        server(a, "snf-srv", [["udp", 4, "0.0.0.0", 5031]])
        # The filter hides the link's own chatter (IPv6 ND, MLD): after the burst nothing at
        # all arrives, and --duration must still end the run.
        with sniffing(a, "va", tmp_path, "--duration", "2.5", "-f", "udp port 5031",
                      record=True) as snf:
            _udp_burst(b, A4, 5031, 10)
            rc = snf.wait(timeout=10)
            elapsed = time.monotonic() - snf.started  # from the start of the process
        assert rc == 0, snf.stderr
        assert 2.5 <= elapsed < 2.5 + 4, f"stopped after {elapsed:.1f} s for --duration 2.5"
        _check_outputs(snf, 5031)


def test_stop_on_sigterm(tmp_path):
    with pair() as (a, b):
        server(a, "snf-srv", [["udp", 4, "0.0.0.0", 5032]])
        with sniffing(a, "va", tmp_path, record=True) as snf:
            _udp_burst(b, A4, 5032, 10)
            time.sleep(0.3)
            t0 = time.monotonic()
            snf.stop(signal.SIGTERM)
            assert time.monotonic() - t0 < 5, "SIGTERM took more than 5 s to end the run"
        _check_outputs(snf, 5032)


def test_full_disk_stops_with_one_line_and_whole_files(tmp_path):
    """The recording fills a real 64 KiB tmpfs: one line, exit 2, both files still whole."""
    with small_disk(tmp_path / "disk") as disk, pair() as (a, b):
        server(a, "snf-srv", [["udp", 4, "0.0.0.0", 5033]])
        with sniffing(a, "va", disk, record=True) as snf:
            _udp_burst(b, A4, 5033, 300)  # ~600 packets: more than 64 KiB of pcapng
            rc = snf.wait(timeout=30)
        assert rc == 2, snf.stderr
        lines = snf.stderr.strip().splitlines()
        assert "Traceback" not in snf.stderr
        # whichever file met the full disk first is named
        assert len(lines) == 1 and "write failed: No space left on device" in lines[0] \
            and ("live.pcapng" in lines[0] or "live.jsonl" in lines[0]), snf.stderr
        from sniffer.capture import open_capture
        from sniffer.stats import Stats
        stats = Stats()
        n = sum(1 for _ in open_capture([str(snf.pcapng)], stats, lambda ts, payload: None))
        assert n > 50 and not stats.get("truncated_final_record"), (n, dict(stats))
        parse_jsonl(snf.out.read_text(), "live.jsonl")  # whole lines (maybe none fitted)


def test_unprivileged_is_one_line_exit_2(tmp_path):
    with pair() as (a, b):
        proc = a.run(*unprivileged([PYTHON, "-m", "sniffer", "live", "-i", "va", "--format",
                                    "json", "--duration", "1"]),
                     check=False, timeout=60, cwd="/")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    assert len(lines) == 1, f"want one line on stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert "CAP_NET_RAW" in lines[0] or "root" in lines[0], lines[0]
    assert lines[0].startswith("sniffer: "), lines[0]


def dashboard_screen(ns: NetNS, action, *extra: str, duration: int = 4) -> tuple[str, list[str]]:
    """Run `sniffer live` in `ns` on a pseudo-terminal of 80x30, call `action()` 2 s in, and
    return what the terminal showed (escape sequences removed) and its lines."""
    import fcntl
    import pty
    import re
    import struct
    import termios
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("ip", ["ip", "netns", "exec", ns.name, PYTHON, "-m", "sniffer", "live",
                         "-i", "va", "--duration", str(duration), *ENGINE_ARGS, *extra])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    time.sleep(2.0)
    action()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", read_terminal(pid, fd))
    return screen, [ln.rstrip("\r") for ln in screen.splitlines()]


def test_dashboard_at_80_columns(tmp_path):
    """On a terminal of 80 columns, the dashboard fits, and shows the interface, the rate,
    the drops, the active connections with their owner and verdict."""
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002]])
        screen, lines = dashboard_screen(a, lambda: client(a, "snf-cli", [["tcp", 4, B4, 5002]]))
    assert "sniffer live" in screen and "va" in screen and "pkt/s" in screen and "drops" in screen
    assert "active connections" in screen and "needs attention" in screen
    assert "snf-cli" in screen or "attributed" in screen, screen[-3000:]
    assert max(len(ln) for ln in lines) <= 80, max(lines, key=len)


QUICK_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"quick")
s.recv(100)
print(s.getsockname()[1])
s.close()
"""


def zeek_rows(path: Path) -> list[dict]:
    """A Zeek TSV log as zeek-cut sees it: each field's raw text, by name."""
    fields, rows = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
        elif line.startswith("#types\t"):
            types = dict(zip(fields, line.split("\t")[1:]))
        elif not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"))))
    return [dict(r, _types=types) for r in rows]


def test_zeek_log_evidence_and_user(tmp_path):
    """Issue 12 item 16, through a real live run writing conn.log (TSV) and JSON at once:
    `evidence` is one string whose sentences keep their commas (no \\x2c for zeek-cut), the
    JSON list joined by "; "; `user` is set on rows the connect() tracer attributed (clients
    that exited at once, run as nobody) as on rows from snapshots."""
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5040]], keep=False)
        tsv = tmp_path / "conn.log"
        with sniffing(a, "va", tmp_path, "--format", "zeek", "-o", str(tsv),
                      "--json", str(tmp_path / "live.jsonl")) as snf:
            # one connection held by two processes (a fork): its evidence names both
            forked = a.spawn(f"NAME = 'snf-cli'\nset_name(NAME)\n{SERVE}\n"
                             f"c = talk([['tcp', 4, {B4!r}, 5040]])\n"
                             "kid = fork_child('snf-kid')\nready(conns=c, kid=kid)")
            quick = []
            for _ in range(5):  # gone before the next poll: attributed by the tracer
                r = a.run(*unprivileged([PYTHON, "-c", QUICK_CLIENT, B4, "5040"]), cwd="/")
                quick.append(int(r.stdout))
            time.sleep(0.8)
            snf.stop()
        recs = snf.records()
        rows = zeek_rows(tsv)
    assert rows and rows[0]["_types"]["evidence"] == "string", rows[:1]
    by_uid = {r["uid"]: r for r in rows}
    assert sorted(by_uid) == sorted(r["uid"] for r in recs), "TSV and JSON differ in rows"
    for rec in recs:  # the same sentences, JSON as a list, TSV joined by "; "
        raw = by_uid[rec["uid"]]["evidence"]
        assert "\\x2c" not in raw and raw == "; ".join(rec["evidence"]), (raw, rec)
    (_, lport, _) = forked["conns"][0][1:]
    rec = one_conn(recs, "tcp", B4, 5040, A4, lport)
    assert owned_by(rec, forked.pid, "snf-cli") and owned_by(rec, forked["kid"], "snf-kid"), \
        show([rec])
    raw = by_uid[rec["uid"]]["evidence"]
    assert f"snf-cli (pid {forked.pid}), snf-kid (pid {forked['kid']})" in raw, raw
    assert by_uid[rec["uid"]]["user"] == "root"
    traced = 0
    for port in quick:
        rec = one_conn(recs, "tcp", B4, 5040, A4, port)
        assert rec.get("verdict") == "attributed", show([rec])
        traced += any("connect() was made by" in e for e in rec["evidence"])
        assert rec.get("user") == "nobody" and by_uid[rec["uid"]]["user"] == "nobody", \
            show([rec])
    print(f"\n{traced} of {len(quick)} quick clients attributed by the connect() tracer")
    # every attributed row names its user, whichever way it was attributed
    assert all(r["user"] not in ("-", "(empty)") for r in rows if r["verdict"] == "attributed")


def test_instances_left_by_a_killed_sniffer_are_removed(tmp_path):
    """A sniffer killed outright (SIGKILL, the OOM killer) cannot remove its tracefs instance,
    which would trace host-wide for good: the next `live` removes it (and only instances whose
    process is gone)."""
    instances = Path("/sys/kernel/tracing/instances")
    if not instances.is_dir():
        pytest.skip("tracefs is not mounted")
    with pair() as (a, b):
        with sniffing(a, "va", tmp_path, name="killed") as first:
            mine = instances / f"sniffer-{first.proc.pid}"
            assert mine.is_dir() and Path(f"{mine}-udp").is_dir()
            first.proc.kill()
            first.proc.wait(10)
        assert mine.is_dir()  # left behind
        with sniffing(a, "va", tmp_path, name="next") as snf:
            assert not mine.exists(), "the dead sniffer's instance is still there"
            assert not Path(f"{mine}-udp").exists(), "the dead sniffer's route instance too"
            assert (instances / f"sniffer-{snf.proc.pid}").is_dir()  # its own, in use
            snf.stop()
