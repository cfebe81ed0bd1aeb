"""The Zeek conn.log reference corpus: reading pairs, running the engine on one, comparing.

Shared by the pytest acceptance test (``test_zeek_corpus.py`` + ``conftest.py``) and the
developer's command-line report (``zeek_report.py``), so the loop exists once.

The corpus is read in place from ``<shared>/corpus/zeek`` (never copied; ``sharedkit.py`` says
where ``<shared>`` is).
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sharedkit
import zeekcmp
import zeeklog

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS = sharedkit.CORPUS / "zeek"
SCOPES = ("core", "encap")

try:  # the command-line report does not need pytest
    import pytest

    #: where test_zeek_corpus.py collects its outcomes for the terminal summary (conftest.py)
    OUTCOMES_KEY = pytest.StashKey[list]()
except ImportError:  # pragma: no cover
    OUTCOMES_KEY = None

#: seconds one engine run may take (override with SNIFFER_ZEEK_TIMEOUT)
DEFAULT_TIMEOUT = float(os.environ.get("SNIFFER_ZEEK_TIMEOUT", "600"))


@dataclass(frozen=True)
class Pair:
    name: str
    dir: Path
    trace: Path
    expected: Path  # the expected conn.log
    args: tuple[str, ...]  # sniffer read options (content of the pair's args file)
    scope: str  # "core" or "encap"
    exclude: str | None  # reason from an `exclude: REASON` line in notes, else None
    manifest: dict = field(compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return self.name


def _require_corpus() -> None:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        raise FileNotFoundError(sharedkit.missing() or f"Zeek corpus not found: {CORPUS}/MANIFEST.tsv")


def load_manifest() -> list[dict[str, str]]:
    _require_corpus()
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def _exclude_reason(pair_dir: Path) -> str | None:
    notes = pair_dir / "notes"
    if not notes.is_file():
        return None
    for line in notes.read_text(encoding="utf-8").splitlines():
        if line.startswith("exclude:"):
            return line[len("exclude:"):].strip() or "excluded"
    return None


def _make_pair(row: dict[str, str]) -> Pair:
    name = row["name"]
    d = CORPUS / name
    traces = sorted(d.glob("trace.pcap*"))
    if len(traces) != 1:
        raise FileNotFoundError(f"{d}: expected exactly one trace.pcap/trace.pcapng, found {traces}")
    args_file = d / "args"
    args = tuple(shlex.split(args_file.read_text(encoding="utf-8"))) if args_file.is_file() else ()
    scope = row.get("scope", "").strip()
    if scope not in SCOPES:
        raise ValueError(f"MANIFEST.tsv: pair {name} has unknown scope {scope!r}")
    return Pair(
        name=name,
        dir=d,
        trace=traces[0],
        expected=d / "conn.log",
        args=args,
        scope=scope,
        exclude=_exclude_reason(d),
        manifest=row,
    )


def load_pairs(scope: str = "core") -> list[Pair]:
    """All pairs of a scope ("core", "encap" or "all"), in MANIFEST order, excluded ones included
    (check ``pair.exclude``)."""
    if scope not in (*SCOPES, "all"):
        raise ValueError(f"unknown scope {scope!r}")
    return [_make_pair(r) for r in load_manifest() if scope == "all" or r["scope"] == scope]


_uid_index: dict[str, int] | None = None


def uid_index() -> dict[str, int]:
    global _uid_index
    if _uid_index is None:
        _require_corpus()
        _uid_index = zeekcmp.load_uid_index(CORPUS / "UID_SEQUENCE.txt")
    return _uid_index


# --------------------------------------------------------------------------- running a pair


def engine_command(pair: Pair, out_log: Path) -> list[str]:
    return [sys.executable, "-m", "sniffer", "read", str(pair.trace), "--format", "zeek", "-o", str(out_log), *pair.args]


@dataclass
class Outcome:
    pair: Pair
    status: str  # "match", "mismatch", "engine-error", "bad-output"
    matched: int
    total: int
    result: zeekcmp.Result | None = None
    message: str = ""  # engine-error / bad-output details
    command: list[str] = field(default_factory=list)
    seconds: float = 0.0
    produced: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "match"


def _tail(text: str, n: int = 40) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} earlier lines)"] + lines[-n:]
    return "\n".join(lines)


def evaluate(pair: Pair, work_dir: Path, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """Run ``sniffer read`` on the pair's trace into ``work_dir/conn.log`` and compare."""
    expected = zeeklog.parse_log(pair.expected)
    n_exp = len(expected.rows)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_log = work_dir / "conn.log"
    if out_log.exists():
        out_log.unlink()
    cmd = engine_command(pair, out_log)
    shown_cmd = shlex.join(cmd)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        msg = f"engine timed out after {timeout:.0f}s: {shown_cmd}"
        if stderr.strip():
            msg += "\n--- stderr ---\n" + _tail(stderr)
        return Outcome(pair, "engine-error", 0, n_exp, message=msg, command=cmd, seconds=time.monotonic() - t0)
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        msg = f"engine exited with status {proc.returncode}: {shown_cmd}"
        if proc.stderr.strip():
            msg += "\n--- stderr ---\n" + _tail(proc.stderr)
        return Outcome(pair, "engine-error", 0, n_exp, message=msg, command=cmd, seconds=secs)
    if not out_log.is_file():
        return Outcome(pair, "bad-output", 0, n_exp, message=f"engine exited 0 but wrote no {out_log}: {shown_cmd}",
                       command=cmd, seconds=secs)
    try:
        produced = zeeklog.parse_log(out_log)
    except (zeeklog.ZeekLogError, UnicodeError) as exc:
        return Outcome(pair, "bad-output", 0, n_exp, message=f"produced log is not a Zeek TSV log: {exc}",
                       command=cmd, seconds=secs, produced=out_log)
    result = zeekcmp.compare(expected.rows, expected.fields, produced.rows, uid_index())
    status = "match" if result.ok else "mismatch"
    return Outcome(pair, status, result.matched, result.total, result=result, command=cmd, seconds=secs,
                   produced=out_log)


# --------------------------------------------------------------------------- reporting


def format_outcome(o: Outcome, limit: int | None = None) -> str:
    head = f"{o.pair.name}: {o.matched}/{o.total} rows match"
    if o.status == "match":
        return head
    if o.result is None:
        return f"{head} -- {o.status}\n{o.message}"
    body = o.result.report(limit)
    return f"{head}\n  command: {shlex.join(o.command)}\n  compared: {', '.join(o.result.compared)}\n" + "\n".join(
        "  " + line for line in body.splitlines()[1:]
    )


def summary_line(scope: str, outcomes: list[Outcome], excluded: list[Pair] = ()) -> str:
    matched = sum(o.matched for o in outcomes)
    total = sum(o.total for o in outcomes)
    n = len(outcomes)
    line = f"zeek corpus ({scope}): {matched}/{total} rows match in {n} pair{'' if n == 1 else 's'}"
    bad = [o for o in outcomes if not o.ok]
    if bad:
        by_status: dict[str, int] = {}
        for o in bad:
            by_status[o.status] = by_status.get(o.status, 0) + 1
        line += f" ({len(outcomes) - len(bad)} pairs fully match; " + ", ".join(
            f"{n} {s}" for s, n in sorted(by_status.items())
        ) + ")"
    if excluded:
        line += "; excluded: " + ", ".join(f"{p.name} ({p.exclude})" for p in excluded)
    return line
