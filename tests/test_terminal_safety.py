"""Terminal safety (hardening issue): every untrusted string is shown literally.

Process names (any local user sets their own, through prctl(PR_SET_NAME) or /proc/self/comm),
interface and namespace names, capture file names: on a terminal none of them may send an
escape sequence, a C1 control or a bidi override, and rich must never read them as markup.
A process named ``[red]x`` shows ``[red]x``; one named ``ESC[31mEVIL`` shows ``\\x1b[31mEVIL``.

Everything is real: processes renamed by themselves, each holding a socket in a throw-away
network namespace (tests/netnskit.py); sniffer runs on a pseudo-terminal (pty.fork), so rich
renders as it does for a person, with its own colours. What the terminal received is checked
byte for byte: it must be valid UTF-8; once rich's own CSI sequences (SGR colours, cursor
moves) are removed nothing but printable text and line ends may remain; no name may appear in
its raw form; each must appear in its escaped form.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import secrets
import signal
import struct
import subprocess
import termios
import time
from contextlib import ExitStack, contextmanager

import pytest

from netnskit import PYTHON, ROOT, Drain, NetNS, _run, can_run, netns

if _reason := can_run():
    pytest.skip(_reason, allow_module_level=True)

__all__ = ["netns"]  # the fixture, imported for pytest

DEMO = ROOT / "pcaps" / "demo.pcap"

#: (bytes the process names itself with, how, what sniffer must show). comm holds 15 bytes.
NAMES = [
    (b"[red]x[/red]", "comm", "[red]x[/red]"),              # rich markup
    (b"[link=file:/x]y", "comm", "[link=file:/x]y"),        # markup that would emit OSC 8
    (b":skull:[b]", "prctl", ":skull:[b]"),                 # an emoji code and markup
    (b"\x1b[31mEVIL", "prctl", "\\x1b[31mEVIL"),            # CSI (SGR)
    (b"\x1b]0;title\x07", "comm", "\\x1b]0;title\\x07"),    # OSC: sets the window title
    ("\x9b31mC1".encode(), "comm", "\\x9b31mC1"),           # C1 CSI, as UTF-8 (U+009B)
    (b"\x9b31mRAW", "prctl", "\ufffd31mRAW"),               # C1 CSI as a bare byte
    ("x\u202eexe.txt".encode(), "prctl", "x\\u202eexe.txt"),  # bidi override
    (b"ab\ncd\r[2J", "prctl", "ab\\x0acd\\x0d[2J"),          # line injection
]

#: rich's own sequences: SGR colours and the cursor moves of a live display.
RICH_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# ------------------------------------------------------------------------------ helpers

class Terminal:
    """A command on a pseudo-terminal of `cols` x `rows`; everything it writes is collected
    by a thread (so a chatty live display never blocks on a full pty)."""

    def __init__(self, argv: list[str], cols: int = 200, rows: int = 50) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        env.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: stdin, stdout and stderr are the terminal
            try:
                fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.drain = Drain(self.fd)

    def wait(self, timeout: float = 60) -> tuple[int, bytes]:
        """Exit status and every byte the terminal received."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"{timeout} s and still running; screen so far:\n"
                                     f"{b''.join(self.drain.chunks)[-3000:]!r}")
            time.sleep(0.05)
        data = self.drain.data()
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), data


def sniffer_argv(*args: str) -> list[str]:
    return [PYTHON, "-m", "sniffer", *args]


def on_terminal(*args: str, cols: int = 200, timeout: float = 60) -> tuple[int, bytes]:
    return Terminal(sniffer_argv(*args), cols=cols).wait(timeout)


def screen_text(raw: bytes) -> str:
    """What a terminal shows, checked: valid UTF-8 (a bare C1 byte is not), and once rich's
    own CSI sequences are gone, nothing but printable characters and line ends."""
    text = raw.decode("utf-8")  # strict: a raw 0x9b byte would fail here
    plain = RICH_CSI.sub("", text)
    bad = sorted({c for c in plain if not (c.isprintable() or c in "\r\n")})
    assert not bad, f"control or format characters reached the terminal: {bad!r}\n{plain[-3000:]}"
    return plain


def assert_names_literal(raw: bytes, names=NAMES) -> str:
    plain = screen_text(raw)
    text = raw.decode("utf-8")
    for name, _how, shown in names:
        decoded = name.decode("utf-8", "replace")
        if decoded != shown:
            assert decoded not in text, f"{decoded!r} reached the terminal raw"
        assert shown in plain, f"{shown!r} not shown:\n{plain[-4000:]}"
    assert "\x1b]" not in text  # no OSC at all: no title, no hyperlink
    return plain


HOLD = r'''
import ctypes
NAME, HOW, PORT = {name!r}, {how!r}, {port!r}
if HOW == "prctl":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, ctypes.c_char_p(NAME), 0, 0, 0) != 0:  # PR_SET_NAME
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")
else:
    with open("/proc/self/comm", "wb") as f:
        f.write(NAME)
with open("/proc/self/comm", "rb") as f:
    comm = f.read()[:-1]  # the kernel adds one newline
s = socket.socket(); s.bind(("127.0.0.1", PORT)); s.listen()
c = socket.create_connection(("127.0.0.1", PORT)); a, _ = s.accept()
ready(comm=comm.hex())
'''


def hold_named(ns: NetNS, names=NAMES, base: int = 7100) -> list[int]:
    """One process per name in `ns`, renamed as listed, holding a listener and an established
    connection on port base+i. Returns the pids."""
    pids = []
    for i, (name, how, _shown) in enumerate(names):
        h = ns.spawn(HOLD.format(name=name, how=how, port=base + i))
        assert bytes.fromhex(h["comm"]) == name, (name, h["comm"])  # the kernel kept it all
        pids.append(h.pid)
    return pids


# ------------------------------------------------------------------------------ sockets

def test_sockets_table_on_a_terminal_shows_hostile_names_literally(netns):
    pids = hold_named(netns)
    status, raw = on_terminal("sockets", "-tanp", "--netns", netns.name)
    assert status == 0, raw[-2000:]
    assert b"\x1b[1m" in raw  # rich styled the table: this is the terminal rendering
    plain = assert_names_literal(raw)
    for pid, (_name, _how, shown) in zip(pids, NAMES):
        assert f"{pid}/{shown}" in plain
    assert "PID/Program name" in plain and "ESTABLISHED" in plain and "LISTEN" in plain


def test_sockets_text_when_piped_has_no_controls(netns):
    pids = hold_named(netns)
    proc = subprocess.run(sniffer_argv("sockets", "-tanp", "--netns", netns.name),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("utf-8")
    assert "\x1b" not in out and all(c.isprintable() or c == "\n" for c in out), out
    lines = out.splitlines()
    for pid, (_name, _how, shown) in zip(pids, NAMES):
        # one listener and two ends of one connection per process, one line each
        assert sum(f"{pid}/{shown}" in ln for ln in lines) == 3, (shown, out)
    # escaped before the widths were measured: the columns still line up
    col = lines[0].index("PID/Program name")
    assert all(ln[col - 1] == " " and ln[col] != " " for ln in lines[1:]), out


def test_sockets_watch_lines_have_no_controls(netns):
    """`--watch` prints one line per new socket, with its process: escaped too."""
    proc = subprocess.Popen(sniffer_argv("sockets", "--watch", "-tnp", "--interval", "0.2",
                                         "--netns", netns.name),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        pids = hold_named(netns, NAMES[3:6], base=7200)
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    text = out.decode("utf-8")
    assert "\x1b" not in text and all(c.isprintable() or c == "\n" for c in text), text
    for pid, (_name, _how, shown) in zip(pids, NAMES[3:6]):
        assert f"{pid}/{shown}" in text, text


@contextmanager
def hostile_netns():
    """A namespace whose /run/netns name holds markup, an OSC title sequence and a bidi
    override (`ip netns add` allows any name without '/')."""
    name = f"snf[b]\x1b]0;t\x07\u202e-{secrets.token_hex(3)}"
    shown = f"snf[b]\\x1b]0;t\\x07\\u202e-{name[-6:]}"
    _run(["ip", "netns", "add", name])
    try:
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        yield name, shown
    finally:
        pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run(["ip", "netns", "del", name], check=False)


IFACES = [  # (name, peer) of a veth pair; interface names may hold anything but '/', ':', space
    ("v[red]\x1b]0;t\x07", "p\x9bm[b]\u202ex"),
    ("w\x1b[31m[link=x]", "q[b]"),
]


def iface_shown(name: str) -> str:
    return (name.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\x9b", "\\x9b")
            .replace("\u202e", "\\u202e"))


def test_addresses_escape_namespace_and_interface_names():
    """`--addresses`: plain text naming the namespace and its interfaces, each escaped."""
    with hostile_netns() as (ns, shown):
        for name, peer in IFACES:
            _run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", peer])
            _run(["ip", "-n", ns, "addr", "add", f"10.95.{IFACES.index((name, peer))}.1/24",
                  "dev", name])
            _run(["ip", "-n", ns, "link", "set", name, "up"])
        proc = subprocess.run(sniffer_argv("sockets", "--addresses", "--netns", ns),
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode("utf-8")
        assert all(c.isprintable() or c == "\n" for c in out), repr(out)
        assert f"namespace {shown}" in out, out
        for i, (name, _peer) in enumerate(IFACES):
            assert f"{iface_shown(name)} 10.95.{i}.1/24" in out, out
            assert f"dev {iface_shown(name)}" in out, out


def test_hostile_namespace_name_in_the_netns_column():
    with hostile_netns() as (ns, shown):
        h = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, "-c",
                              "import socket, sys; s = socket.socket(); "
                              "s.bind(('127.0.0.1', 7301)); s.listen(); print('ok', flush=True); "
                              "sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert h.stdout.readline() == b"ok\n"
            status, raw = on_terminal("sockets", "-tlnp", "--netns", ns, cols=220)
        finally:
            h.stdin.close()
            h.wait(10)
        assert status == 0, raw[-2000:]
        plain = screen_text(raw)
        assert "127.0.0.1:7301" in plain and shown in plain, plain
        assert ns not in raw.decode("utf-8")


def test_error_naming_a_hostile_namespace_is_escaped():
    """A SnifferError's text is escaped before the CLI prints it."""
    name = "nope\x1b]0;t\x07[red]\u202e"
    status, raw = on_terminal("sockets", "--netns", name)
    assert status == 2
    plain = screen_text(raw)
    assert "nope\\x1b]0;t\\x07[red]\\u202e" in plain and plain.startswith("sniffer: "), plain


# ------------------------------------------------------------------------------ read

HOSTILE_FILE = "cap\x1b]0;t\x07[bold]b\x1b[31m\u202e.pcap"
HOSTILE_FILE_SHOWN = "cap\\x1b]0;t\\x07[bold]b\\x1b[31m\\u202e.pcap"


def test_read_error_line_names_a_hostile_file_literally(tmp_path):
    path = tmp_path / HOSTILE_FILE
    path.write_bytes(b"this is not a capture file at all\n")
    status, raw = on_terminal("read", str(path))
    assert status == 2
    plain = screen_text(raw)
    lines = [ln for ln in plain.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sniffer: "), plain
    assert HOSTILE_FILE_SHOWN in lines[0], plain
    assert HOSTILE_FILE not in raw.decode("utf-8")

    status, raw = on_terminal("read", str(tmp_path / ("missing-" + HOSTILE_FILE)))
    assert status == 2
    assert "missing-" + HOSTILE_FILE_SHOWN in screen_text(raw)


def test_read_table_and_error_for_a_damaged_file_with_a_hostile_name(tmp_path):
    """Corrupt mid-file: the table of what was rebuilt (rich, on the terminal), then the error
    line naming the file: both without a byte of the name's escape sequences."""
    data = DEMO.read_bytes()
    path = tmp_path / HOSTILE_FILE
    path.write_bytes(data + struct.pack("<IIII", 1, 0, 300_000, 300_000) + b"\0" * 400_000)
    status, raw = on_terminal("read", str(path), cols=160)
    assert status == 2
    assert b"\x1b[1m" in raw  # rich's own styling: the terminal rendering
    plain = screen_text(raw)
    assert "Connections (13)" in plain and "By state" in plain
    last = [ln for ln in plain.splitlines() if ln.strip()][-1]
    assert last.startswith("sniffer: ") and HOSTILE_FILE_SHOWN in last, last
    assert f"offset {len(data)}" in last
    assert HOSTILE_FILE not in raw.decode("utf-8")


def test_read_table_for_a_good_file_with_a_hostile_name(tmp_path):
    path = tmp_path / HOSTILE_FILE
    path.write_bytes(DEMO.read_bytes())
    status, raw = on_terminal("read", str(path), cols=160)
    assert status == 0, raw[-2000:]
    plain = screen_text(raw)
    assert "Connections (13)" in plain and "sniffer:" not in plain


# ------------------------------------------------------------------------------ live

A4, B4 = "10.96.0.1", "10.96.0.2"
LIVE_IFACE = "v[red]\x1b]0;t\x07"  # A's side of the veth: markup, an OSC title, BEL
LIVE_IFACE_SHOWN = "v[red]\\x1b]0;t\\x07"
LIVE_NAMES = [NAMES[0], NAMES[3], NAMES[4], NAMES[5], NAMES[7]]

CLIENT = r'''
import ctypes
NAME, HOW = {name!r}, {how!r}
if HOW == "prctl":
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(NAME), 0, 0, 0)
else:
    with open("/proc/self/comm", "wb") as f:
        f.write(NAME)
c = socket.create_connection(({addr!r}, {port!r}), timeout=5)
c.sendall(b"x" * {size!r})
got = 0
while got < {size!r}:
    got += len(c.recv(65536))
ready(port=c.getsockname()[1])
'''

SERVER = r'''
set_name("snf-srv")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5010)); s.listen(64)
HELD = []
def echo(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
def accept():
    while True:
        c, _ = s.accept()
        HELD.append(c)
        threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
ready()
'''


@contextmanager
def live_pair():
    """A (`LIVE_IFACE`, 10.96.0.1) and B (vb, 10.96.0.2), joined by a veth."""
    with ExitStack() as stack:
        a = stack.enter_context(NetNS("snfA"))
        b = stack.enter_context(NetNS("snfB"))
        _run(["ip", "link", "add", LIVE_IFACE, "netns", a.name, "type", "veth",
              "peer", "name", "vb", "netns", b.name])
        a.run("ip", "addr", "add", f"{A4}/24", "dev", LIVE_IFACE)
        a.run("ip", "link", "set", LIVE_IFACE, "up")
        b.run("ip", "addr", "add", f"{B4}/24", "dev", "vb")
        b.run("ip", "link", "set", "vb", "up")
        yield a, b


def test_live_dashboard_shows_hostile_process_and_interface_names_literally():
    """The dashboard (the default on a terminal) attributes connections to processes with
    hostile names, captured on an interface with a hostile name: all shown literally."""
    with live_pair() as (a, b):
        b.spawn(SERVER)
        term = Terminal(["ip", "netns", "exec", a.name, *sniffer_argv(
            "live", "-i", LIVE_IFACE, "--duration", "6", "--interval", "0.2")],
            cols=200, rows=40)
        time.sleep(2.0)  # capturing, and the first kernel snapshot taken
        pids = []
        for i, (name, how, _shown) in enumerate(LIVE_NAMES):
            # distinct sizes: the busiest connections are listed first, all of them fit
            h = a.spawn(CLIENT.format(name=name, how=how, addr=B4, port=5010,
                                      size=20000 + 1000 * i))
            pids.append(h.pid)
        status, raw = term.wait(60)
    assert status == 0, raw[-3000:]
    text = raw.decode("utf-8")
    # The last line is live's own report on stderr; everything before it is the dashboard.
    cut = text.rindex("sniffer: ")
    board, report = raw[:len(text[:cut].encode())], text[cut:]
    assert "\x1b[1m" in board.decode()  # rich's own styling: the terminal rendering
    plain = assert_names_literal(board, LIVE_NAMES)
    assert "active connections" in plain and "sniffer live" in plain
    assert f"sniffer live {LIVE_IFACE_SHOWN}" in plain, plain[-3000:]
    assert LIVE_IFACE not in board.decode()
    for pid, (_name, _how, shown) in zip(pids, LIVE_NAMES):
        assert f"{pid}/{shown}" in plain, (shown, plain[-4000:])
    assert "attributed" in plain

    # live's closing line on stderr names the interface too: escaped as well
    assert LIVE_IFACE not in report
    assert LIVE_IFACE_SHOWN in screen_text(report.encode()), report


def test_live_error_naming_a_hostile_interface_is_escaped(netns):
    name = "no\x1b[2J[red]\x07"
    status, raw = on_terminal_in(netns, "live", "-i", name, "--duration", "1")
    assert status == 2, raw
    plain = screen_text(raw)
    assert plain.startswith("sniffer: ") and "no\\x1b[2J[red]\\x07" in plain, plain


def on_terminal_in(ns: NetNS, *args: str) -> tuple[int, bytes]:
    return Terminal(["ip", "netns", "exec", ns.name, *sniffer_argv(*args)]).wait(60)


# ------------------------------------------------------------------------------ JSON lines

def test_live_json_lines_escape_c1_and_bidi_in_process_names():
    """`sniffer live --format json` may write to a terminal: JSON escapes what
    `ensure_ascii=False` would leave raw (C1 controls, bidi overrides); the values read back
    are the names themselves."""
    import json
    with live_pair() as (a, b):
        b.spawn(SERVER)
        proc = subprocess.Popen(a.argv(*sniffer_argv(
            "live", "-i", LIVE_IFACE, "--format", "json", "--duration", "5",
            "--interval", "0.2")), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.0)
        named = [NAMES[5], NAMES[7]]
        pids = [a.spawn(CLIENT.format(name=name, how=how, addr=B4, port=5010, size=1000)).pid
                for name, how, _ in named]
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    text = out.decode("utf-8")
    assert all(c.isprintable() or c == "\n" for c in text), [c for c in text if not c.isprintable()]
    recs = [json.loads(ln) for ln in text.splitlines()]
    seen = {p["pid"]: p["name"] for r in recs for p in r.get("processes") or []}
    for pid, (name, _how, _shown) in zip(pids, named):
        assert seen.get(pid) == name.decode(), (pid, seen)
