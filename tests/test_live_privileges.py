"""`sniffer live --user NAME [--keep-caps]` (docs/live.md, "Least privilege"), end to end.

The real command in the namespace pair of tests/test_live.py (A: 10.98.0.1 on `va`, where
sniffer runs; B: 10.98.0.2 on `vb`), on real TCP connections the test makes from A to B. Each
run is checked from outside, in the kernel's own words: /proc/PID/status of the running
sniffer (Uid and Gid, all four fields; CapEff, CapPrm, CapBnd, CapInh, CapAmb decoded from
their hex masks; NoNewPrivs; Groups), and from its outputs: the records written through the
files it opened as root, their verdicts (what the drop costs, and what --keep-caps keeps).

Every namespace is deleted on the way out; nothing touches the host's interfaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from netnskit import NOBODY, PYTHON, ROOT, NetNS, _run, can_run
from sniffer.privileges import status  # /proc/PID/status as a dict
from test_live import (A4, B4, SERVE, Sniffer, assert_saw_both_sides, one_conn, owned_by,
                       pair, parse_jsonl, read_recording, server, show, sniffing)

pytestmark = pytest.mark.skipif(can_run() is not None, reason=str(can_run()))

CAP_DAC_READ_SEARCH, CAP_NET_BIND_SERVICE, CAP_SYS_PTRACE = 2, 10, 19
DROP_TIMEOUT = 10  # from "capturing" (output file exists) to the drop (after the first snapshot)


def caps(mask: str) -> set[int]:
    """A /proc/PID/status capability mask (hex) as the set of capability numbers."""
    value = int(mask, 16)
    return {bit for bit in range(64) if value >> bit & 1}


def wait_dropped(snf: Sniffer, uid: int = NOBODY) -> dict[str, str]:
    """The sniffer's status once its real uid is `uid` (the drop follows the first snapshot)."""
    deadline = time.monotonic() + DROP_TIMEOUT
    while True:
        assert snf.proc.poll() is None, f"sniffer exited {snf.proc.returncode} before dropping"
        st = status(snf.proc.pid)
        if st["Uid"].split()[0] == str(uid):
            time.sleep(0.2)  # past the capset and prctl calls that follow setresuid
            return status(snf.proc.pid)
        assert time.monotonic() < deadline, f"still uid {st['Uid']} after {DROP_TIMEOUT} s"
        time.sleep(0.02)


def assert_dropped(st: dict[str, str], keep: set[int]) -> None:
    """Every id nobody's, exactly `keep` as capabilities (bounding set too), no_new_privs."""
    assert st["Uid"].split() == [str(NOBODY)] * 4, st["Uid"]  # real, effective, saved, fs
    assert st["Gid"].split() == [str(NOBODY)] * 4, st["Gid"]
    assert st["Groups"].split() in ([], [str(NOBODY)]), st["Groups"]
    assert caps(st["CapEff"]) == keep, f"CapEff {st['CapEff']}: {sorted(caps(st['CapEff']))}"
    assert caps(st["CapPrm"]) == keep, f"CapPrm {st['CapPrm']}: {sorted(caps(st['CapPrm']))}"
    assert caps(st["CapBnd"]) == keep, f"CapBnd {st['CapBnd']}: {sorted(caps(st['CapBnd']))}"
    assert caps(st["CapInh"]) == set(), st["CapInh"]
    assert caps(st["CapAmb"]) == set(), st["CapAmb"]
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]


def nobody_client(ns: NetNS, name: str, specs: list):
    """test_live's client holder, but running as nobody (netnskit's unprivileged wrapper)."""
    code = (f"NAME = {name!r}\nset_name(NAME)\n" + SERVE
            + f"\nready(conns=talk({json.dumps(specs)}))\n")
    return ns.spawn(code, user=True)


def root_client(ns: NetNS, name: str, specs: list):
    code = (f"NAME = {name!r}\nset_name(NAME)\n" + SERVE
            + f"\nready(conns=talk({json.dumps(specs)}))\n")
    return ns.spawn(code)


def notes(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("sniffer: note: running as")]


# =============================================================================== tests

def test_user_nobody_drops_everything_and_keeps_capturing(tmp_path):
    """--user nobody: uid/gid nobody, no capability left, no_new_privs; the records still come,
    through every file opened before the drop (-o, --json, -w, --alerts). A root process's
    connection is `unknown` (its /proc/PID/fd is unreadable now, said once on stderr, and no
    ownerless-socket alert for it); a connection of nobody's own is still attributed."""
    also, alerts = tmp_path / "also.jsonl", tmp_path / "alerts.jsonl"
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002], ["tcp", 4, "0.0.0.0", 5012]])
        with sniffing(a, "va", tmp_path, "--user", "nobody", "--json", str(also),
                      "--alerts", str(alerts), "--hidden-interval", "0.5",
                      record=True) as snf:
            assert_dropped(wait_dropped(snf), set())
            assert not os.path.exists(f"/sys/kernel/tracing/instances/sniffer-{snf.proc.pid}")
            cli_root = root_client(a, "snf-cli", [["tcp", 4, B4, 5002]])
            cli_nobody = nobody_client(a, "snf-nobody", [["tcp", 4, B4, 5012]])
            time.sleep(1.0)  # a few snapshots (and hidden-socket checks) with both open
            assert_dropped(status(snf.proc.pid), set())  # and it stays that way
            snf.stop()
        recs = snf.records()

        assert len(notes(snf.stderr)) == 1, snf.stderr
        assert "other users' processes cannot be read" in notes(snf.stderr)[0], snf.stderr

        (_, laddr, lport, _), = cli_root["conns"]
        rec = one_conn(recs, "tcp", B4, 5002, laddr, lport)
        assert_saw_both_sides(rec)
        assert rec["verdict"] == "unknown", show([rec])
        assert any("owner could not be read" in e for e in rec["evidence"]), show([rec])
        assert rec.get("user") == "root" and not rec.get("processes"), show([rec])

        (_, laddr, lport, fd), = cli_nobody["conns"]
        rec = one_conn(recs, "tcp", B4, 5012, laddr, lport)
        assert_saw_both_sides(rec)
        assert rec["verdict"] == "attributed", show([rec])
        assert owned_by(rec, cli_nobody.pid, "snf-nobody", fd), show([rec])
        assert rec.get("user") == "nobody", show([rec])

        # The files opened as root were written to the end, by nobody.
        assert parse_jsonl(also.read_text(encoding="utf-8"), str(also)) == recs
        found = parse_jsonl(alerts.read_text(encoding="utf-8"), str(alerts))
        assert not [x for x in found if x.get("kind") in ("hidden-socket", "ownerless-socket")], \
            show(found)
        replay = read_recording(snf.pcapng)
        assert {(r["uid"], r["verdict"]) for r in replay if r["proto"] == "tcp"} == \
            {(r["uid"], r["verdict"]) for r in recs if r["proto"] == "tcp"}, show(replay)


def test_keep_caps_keeps_attribution(tmp_path):
    """--user nobody --keep-caps: exactly CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, and a root
    process's connection is attributed to it as before the drop; with the bind probe on,
    CAP_NET_BIND_SERVICE as well (and nothing more)."""
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002]])
        with sniffing(a, "va", tmp_path, "--user", "nobody", "--keep-caps") as snf:
            assert_dropped(wait_dropped(snf), {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE})
            cli = root_client(a, "snf-cli", [["tcp", 4, B4, 5002]])
            time.sleep(0.8)
            snf.stop()
        recs = snf.records()
        assert len(notes(snf.stderr)) == 1, snf.stderr
        assert "cannot be read" not in snf.stderr, snf.stderr
        (_, laddr, lport, fd), = cli["conns"]
        rec = one_conn(recs, "tcp", B4, 5002, laddr, lport)
        assert_saw_both_sides(rec)
        assert rec["verdict"] == "attributed", show([rec])
        assert owned_by(rec, cli.pid, "snf-cli", fd) and rec.get("user") == "root", show([rec])

        # The bind probe (a sweep of every port, seconds of CPU) is only started, not waited for.
        with sniffing(a, "va", tmp_path, "--user", "nobody", "--keep-caps", "--detect",
                      "--bind-probe", "--hidden-interval", "600", name="probe") as snf:
            assert_dropped(wait_dropped(snf),
                           {CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_NET_BIND_SERVICE})
            snf.stop()


class _Host:
    """Stands in for a NetNS in `Sniffer`: the command runs in the test's own namespace."""

    def argv(self, *argv) -> list[str]:
        return [str(x) for x in argv]


def test_netns_option_with_user(tmp_path):
    """--netns A --user nobody, started outside A: the run enters A for good (no setns back
    after the drop), captures there, and ends cleanly on SIGINT."""
    with pair() as (a, b):
        server(b, "snf-srv", [["tcp", 4, "0.0.0.0", 5002]])
        snf = Sniffer(_Host(), "va", tmp_path, "--netns", a.name, "--user", "nobody")
        try:
            snf.wait_capturing()
            assert_dropped(wait_dropped(snf), set())
            cli = nobody_client(a, "snf-nobody", [["tcp", 4, B4, 5002]])
            time.sleep(0.8)
            snf.stop()
        finally:
            if snf.proc.poll() is None:
                snf.kill()
        (_, laddr, lport, fd), = cli["conns"]
        rec = one_conn(snf.records(), "tcp", B4, 5002, laddr, lport)
        assert rec["verdict"] == "attributed" and rec.get("netns") == a.name, show([rec])
        assert owned_by(rec, cli.pid, "snf-nobody", fd), show([rec])


@pytest.mark.parametrize("argv, message", [
    (["--user", "snf-no-such-user"], "sniffer: --user snf-no-such-user: no such user"),
    (["--user", "root"], "sniffer: --user root: uid 0 is root; name an unprivileged user"),
    (["--keep-caps"], "sniffer: --keep-caps goes with --user NAME"),
])
def test_bad_user_is_one_line_exit_2(tmp_path, argv, message):
    """Refused before anything is opened: one line, exit status 2, no output file."""
    out = tmp_path / "never.jsonl"
    with NetNS() as ns:
        proc = ns.run(PYTHON, "-m", "sniffer", "live", "-i", "lo", "--format", "json",
                      "-o", out, *argv, check=False, cwd=ROOT)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.splitlines() == [message], proc.stderr
    assert not out.exists()


FAIL_CLOSED = r"""
import sys, threading
from sniffer import privileges
from sniffer.errors import SnifferError
who = privileges.target("nobody")
if sys.argv[1] == "threads":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    call = lambda: privileges.drop(who)
else:
    call = lambda: privileges.verify(who, frozenset())
try:
    call()
except SnifferError as exc:
    print(f"refused: {exc}", file=sys.stderr)
    sys.exit(3)
sys.exit(0)
"""


@pytest.mark.parametrize("case, words", [
    ("threads", "2 threads running"),  # capset would change one thread of two: not at all
    ("verify", "uids are (0, 0, 0)"),  # a process that never dropped is not passed as dropped
])
def test_drop_fails_closed(case, words):
    """The checks that stop a run whose drop did not take (real processes, nothing mocked)."""
    proc = _run([PYTHON, "-c", FAIL_CLOSED, case], check=False, cwd=ROOT)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_help_mentions_least_privilege():
    proc = subprocess.run([PYTHON, "-m", "sniffer", "live", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=20)
    assert "--user NAME" in proc.stdout and "--keep-caps" in proc.stdout, proc.stdout
    assert Path(ROOT / "docs" / "live.md").read_text().count("## Least privilege") == 1
