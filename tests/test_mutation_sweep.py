"""Mutation sweep: every capture of the shared corpus, mutated thousands of ways, through the
real `sniffer read`.

Each of the corpus's captures (the files named ``*.pcap*``, the ``.pcap.gz`` unpacked in memory
and its mutants packed again) is mutated by tests/mutants.py -- bit flips, truncation, length
and count fields at 0 and at their maximum (pcap caplen/len/snaplen, pcapng block and section
lengths, option lengths, EPB lengths, IP total length, IHL, IPv6 payload length, TCP data
offset, UDP length), records duplicated and reordered, timestamps backwards or out of range --
seeded by file name and mutant number, so every run tries the same mutants.

Every mutant goes through ``sniffer.cli.main(["read", "--format", "zeek", "-o", OUT, ...])``
in-process, in two worker processes (this is a 2-CPU machine), with the options rotating over
plain, ``-C``, ``--alerts`` (JSON and Zeek layouts), ``--weird-log``, ``--detect`` and a
two-file merge. For each one:

* no exception escapes (no traceback), and it finishes within MUTANT_SECONDS;
* the exit status is 0 or 2; with 2, stderr is exactly one line ``sniffer: <file>: ...``
  naming the input; with 0, at most one ``sniffer: note:`` line and one ``sniffer: warning:``
  line (many bad checksums, docs/read.md), in that order;
* the conn.log (always there after exit 0, and after exit 2 when packets were read) is a valid
  Zeek log: the header lines, every row with as many tab-separated fields as ``#fields``, a
  final ``#close`` line; the same for notice.log / weird.log, and JSON alerts parse;
* memory stays bounded: each worker's address space is capped at AS_HEADROOM above its size
  at the start (a blow-up is a MemoryError, i.e. an escaping exception), its peak resident
  size after all its mutants is at most RSS_LIMIT, and for every TRACE_EVERY-th mutant of the
  smaller files the peak of Python allocations during the run (tracemalloc, which slows a run
  down about ninefold, hence the sample) is at most PEAK_LIMIT.

A second test sends a sample of SUBPROCESS_SAMPLE mutants through the real command line,
``python -m sniffer read`` (half of them on standard input): no "Traceback" on stderr, exit
status 0 or 2.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mutants import Capture, mutate
from sharedkit import CORPUS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two minutes of mutants

#: mutants per capture (small files; files over BIG bytes get fewer: they take longer each)
MUTANTS_PER_FILE = 80
MUTANTS_PER_BIG_FILE = 16
BIG = 512 << 10
#: one mutant's time limit, seconds (a hang fails the test)
MUTANT_SECONDS = 30
#: peak Python allocations of one traced run (captures of at most BIG bytes)
PEAK_LIMIT = 64 << 20
TRACE_EVERY = 8
#: peak resident size of a worker over all its mutants (the largest capture is 6.8 MB)
RSS_LIMIT = 1 << 30
#: address space a worker may add to what it had at the start
AS_HEADROOM = 2 << 30
WORKERS = 2
SUBPROCESS_SAMPLE = 50

# (extra options, whether the original capture is merged in as a second file)
VARIANTS: tuple[tuple[tuple[str, ...], bool], ...] = (
    ((), False),
    (("-C",), False),
    (("--alerts", "{alerts_json}"), False),
    (("--alerts", "{alerts_zeek}", "--alerts-format", "zeek"), False),
    (("--weird-log", "{weird}"), False),
    (("--detect", "--local-net", "0.0.0.0/0"), True),
)


def corpus_files() -> list[Path]:
    """Every file of the corpus named like a capture (``.pcap``, ``.pcapng``, ``.pcap.gz``;
    two of them are nDPI's text reports named ``*.pcap.out``: hostile input too)."""
    return sorted(p for p in CORPUS.rglob("*.pcap*") if p.is_file())


def load(path: Path) -> tuple[bytes, bool]:
    """The capture's bytes, gunzipped in memory if it is gzip; and whether it was."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw), True
    return raw, False


def plan() -> list[tuple[int, int]]:
    """(file index, mutant count) for every corpus file, largest first (balances workers)."""
    files = corpus_files()
    jobs = []
    for i, p in enumerate(files):
        size = p.stat().st_size * (4 if p.suffix == ".gz" else 1)
        jobs.append((size, i, MUTANTS_PER_BIG_FILE if size > BIG else MUTANTS_PER_FILE))
    jobs.sort(reverse=True)
    return [(i, n) for _size, i, n in jobs]


# --- checking one run ----------------------------------------------------------------------

def zeek_log_problem(path: Path) -> str | None:
    """None if `path` is a complete Zeek ASCII log, else what is wrong with it."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines[-1] != "":
        return "does not end with a newline"
    lines.pop()
    heads = ("#separator \\x09", "#set_separator\t", "#empty_field\t", "#unset_field\t",
             "#path\t", "#open\t", "#fields\t", "#types\t")
    if len(lines) < 9:
        return f"only {len(lines)} lines"
    for want, line in zip(heads, lines):
        if not line.startswith(want):
            return f"header line {line!r}, expected {want!r}"
    fields = lines[6].split("\t")[1:]
    if len(lines[7].split("\t")[1:]) != len(fields):
        return "#types and #fields differ in length"
    if not lines[-1].startswith("#close\t"):
        return f"last line {lines[-1]!r} is not #close"
    for n, line in enumerate(lines[8:-1], 9):
        if line.startswith("#"):
            return f"line {n}: a # line among the rows: {line!r}"
        if len(line.split("\t")) != len(fields):
            return f"line {n}: {len(line.split(chr(9)))} fields, want {len(fields)}: {line!r}"
    return None


def check_run(rc: int, err: str, inputs: list[str], files: dict[str, Path]) -> str | None:
    """None if a finished run behaved, else the problem."""
    if rc not in (0, 2):
        return f"exit status {rc}"
    lines = err.splitlines()
    if rc == 2:
        if len(lines) != 1 or not lines[0].startswith("sniffer: ") \
                or not any(p in lines[0] for p in inputs):
            return f"exit 2 without one stderr line naming the file: {err!r}"
    elif not all(ln.startswith("sniffer: ") for ln in lines) \
            or [ln.split(":", 2)[1] for ln in lines] not in ([], [" note"], [" warning"],
                                                            [" note", " warning"]):
        return f"exit 0 with stderr {err!r}"
    out = files["out"]
    if rc == 0 and not out.exists():
        return "exit 0 but no conn.log"
    for key in ("out", "alerts_zeek", "weird"):
        if files[key].exists():
            problem = zeek_log_problem(files[key])
            if problem:
                return f"{key}: {problem}"
    if files["alerts_json"].exists():
        for line in files["alerts_json"].read_text(encoding="utf-8").splitlines():
            if not isinstance(json.loads(line), dict):
                return f"alerts: not a JSON object per line: {line!r}"
    return None


class Hang(Exception):
    """Raised by the per-mutant timer."""


def _alarm(_sig, _frame):
    raise Hang(f"no result after {MUTANT_SECONDS} s")


def run_mutant(main, argv: list[str], trace: bool) -> tuple[int | None, str, str | None, int]:
    """`main(argv)` with stdout/stderr captured: (status, stderr, traceback, peak bytes of
    Python allocations, or 0 when not `trace`d)."""
    err, out = io.StringIO(), io.StringIO()
    if trace:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, MUTANT_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
        tb = None
    except BaseException:  # noqa: BLE001 - anything escaping is the finding
        rc, tb = None, traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
    return rc, err.getvalue(), tb, peak


def _cap_address_space() -> None:
    """Let this process grow by AS_HEADROOM at most: past it, allocations fail."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + AS_HEADROOM, resource.RLIM_INFINITY))


def make_mutant(path: Path, rel: str, cap: Capture, gz: bool, k: int) -> tuple[str, bytes]:
    """Mutant `k` of the capture at `path` (`rel` under the corpus, `cap` its parsed content,
    `gz` whether the file is gzip): (operator, bytes), the same every run."""
    rng = random.Random(f"{rel}:{k}")
    if gz and k % 4 == 3:  # damage the gzip stream itself
        op, data = mutate(Capture.parse(path.read_bytes()), rng)
        return "gz:" + op, data
    op, data = mutate(cap, rng)
    return op, gzip.compress(data, 1) if gz else data


def sweep(jobs: list[tuple[int, int]]) -> dict:
    """Worker: run the mutants of `jobs` ((file index, count) pairs); returns the tallies."""
    from sniffer.cli import main

    os.environ["SNIFFER_QUIET"] = "0"
    files = corpus_files()
    work = Path(tempfile.mkdtemp(prefix="sniffer-sweep-"))
    names = {"out": work / "conn.log", "alerts_json": work / "alerts.json",
             "alerts_zeek": work / "notice.log", "weird": work / "weird.log"}
    signal.signal(signal.SIGALRM, _alarm)
    _cap_address_space()
    result: dict = {"mutants": 0, "failures": [], "peak": 0, "traced": 0, "ops": Counter(),
                    "status": Counter()}
    try:
        for index, count in jobs:
            path = files[index]
            rel = path.relative_to(CORPUS).as_posix()
            raw, gz = load(path)
            cap = Capture.parse(raw)
            small = len(raw) <= BIG
            for k in range(count):
                op, data = make_mutant(path, rel, cap, gz, k)
                mutant = work / f"mutant-{index}-{k}{''.join(path.suffixes[:1])}"
                mutant.write_bytes(data)
                extra, merge = VARIANTS[k % len(VARIANTS)]
                argv = ["read", "--format", "zeek", "-o", str(names["out"])]
                argv += [a.format(**{n: str(p) for n, p in names.items()}) for a in extra]
                inputs = [str(mutant)] + ([str(path)] if merge else [])
                for p in names.values():
                    p.unlink(missing_ok=True)
                trace = small and k % TRACE_EVERY == 0
                rc, err, tb, peak = run_mutant(main, argv + inputs, trace)
                result["traced"] += trace
                problem = tb or (f"peak allocation {peak} > {PEAK_LIMIT}" if peak > PEAK_LIMIT
                                 else check_run(rc, err, inputs, names))
                if problem:
                    keep = Path(tempfile.gettempdir()) / f"sniffer-sweep-failure-{index}-{k}"
                    shutil.copy(mutant, keep)
                    result["failures"].append(f"{rel} mutant {k} ({op}, {' '.join(extra)}): "
                                              f"{problem}\n  input kept as {keep}")
                mutant.unlink()
                result["mutants"] += 1
                result["ops"][op.split("+")[0].removeprefix("gz:")] += 1
                result["status"][rc] += 1
                result["peak"] = max(result["peak"], peak)
                gc.unfreeze()  # `sniffer read` freezes the heap each run (read.quiet_collector)
                if result["mutants"] % 64 == 0:
                    gc.collect()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def test_mutation_sweep(robustness_report):
    files = corpus_files()
    assert len(files) >= 150, f"the corpus has {len(files)} captures: is {CORPUS} complete?"
    jobs = plan()
    shares: list[list[tuple[int, int]]] = [[] for _ in range(WORKERS)]
    for n, job in enumerate(jobs):  # largest first, dealt round-robin
        shares[n % WORKERS].append(job)
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        results = pool.map(sweep, shares, chunksize=1)
    took = time.monotonic() - start
    mutants = sum(r["mutants"] for r in results)
    failures = [f for r in results for f in r["failures"]]
    status = sum((r["status"] for r in results), Counter())
    ops = sum((r["ops"] for r in results), Counter())
    peak = max(r["peak"] for r in results)
    traced = sum(r["traced"] for r in results)
    rss = max(r["rss"] for r in results)
    robustness_report(
        f"mutation sweep: {mutants} mutants of {len(files)} corpus files in {took:.0f} s "
        f"({WORKERS} workers): exit 0: {status[0]}, exit 2: {status[2]}, "
        f"{len(failures)} failures; peak allocation {peak >> 20} MiB ({traced} traced), worker RSS "
        f"{rss >> 20} MiB; operators: "
        + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    assert not failures, f"{len(failures)} mutants misbehaved:\n" + "\n".join(failures[:20])
    assert rss <= RSS_LIMIT, f"a worker reached {rss >> 20} MiB resident"
    assert mutants >= 5000


def test_mutants_through_the_command_line(tmp_path, robustness_report):
    """A sample through the real CLI as a subprocess, half of it on standard input: no
    traceback, exit status 0 or 2 (with one stderr line naming the input), a valid log."""
    files = corpus_files()
    rng = random.Random("cli-sample")
    picks = [files[i] for i in sorted(rng.sample(range(len(files)), SUBPROCESS_SAMPLE))]
    env = dict(os.environ, PYTHONPATH=str(ROOT), SNIFFER_QUIET="0")

    def one(n: int) -> str | None:
        path = picks[n]
        raw, gz = load(path)
        op, data = mutate(Capture.parse(raw), random.Random(f"cli:{path.name}:{n}"))
        mutant = tmp_path / f"cli-{n}{''.join(path.suffixes[:1])}"
        mutant.write_bytes(gzip.compress(data, 1) if gz else data)
        out = tmp_path / f"cli-{n}.log"
        piped = n % 2 == 1  # every other one on standard input: a stream of unknown size
        with open(mutant, "rb") as stdin:
            proc = subprocess.run([sys.executable, "-m", "sniffer", "read", "--format", "zeek",
                                   "-o", str(out), "-" if piped else str(mutant)], cwd=ROOT,
                                  env=env, stdin=stdin if piped else subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=120)
        where = f"{path.relative_to(CORPUS)} ({op}{', stdin' if piped else ''})"
        if "Traceback" in proc.stderr or proc.returncode not in (0, 2):
            return f"{where}: exit {proc.returncode}: {proc.stderr[-2000:]}"
        name = "<stdin>" if piped else str(mutant)
        if proc.returncode == 2 and (len(proc.stderr.splitlines()) != 1
                                     or name not in proc.stderr):
            return f"{where}: exit 2 but stderr {proc.stderr!r}"
        if proc.returncode == 0:
            problem = zeek_log_problem(out)
            if problem:
                return f"{where}: {problem}"
        return None

    start = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as ex:
        problems = [p for p in ex.map(one, range(SUBPROCESS_SAMPLE)) if p]
    robustness_report(f"mutation sweep, command line: {SUBPROCESS_SAMPLE} mutants through "
                      f"`python -m sniffer read` in {time.monotonic() - start:.0f} s, "
                      f"{len(problems)} failures")
    assert not problems, "\n".join(problems)
