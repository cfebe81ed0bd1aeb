"""Differential test: the compiled engine (sniffer._core.Engine) against the Python reference.

Both engines get the same frames and must give the identical result: every finished record
(every field, uids and Community IDs included, with the frame and the firing that order it), the
identical weirds in the identical order (decode's, the capture's and the flows'), and identical
stats. Inputs: every capture of the shared corpus (the Zeek pairs with their `args`, Suricata's
cases, the link-type and damaged files, the big captures) and the bundled ones; mutants of
corpus captures (tests/mutants.py, the sweep's operators); and generated traffic
(tests/corediff.py: conversations, tunnels, fragments, bad checksums, cut frames, time jumps
that fire every timer), also with a table small enough to evict. Then the `read` fast path
(the core walking the file and writing the rows) against the rows of the Python engine, header
to trailer.

The long run of generated traffic (30 minutes and more) is bench/core_diff_soak.py.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corediff
import mutants
import pcapkit
import scenarios
import sharedkit
import zeekcorpus
from sniffer.cli import build_parser
from sniffer.config import Settings
from sniffer.engine import CoreEngine, Engine
from sniffer.read import settings_from_args
from sniffer.stats import LoggedStats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"


def _captures() -> list[tuple[Path, tuple[str, ...]]]:
    """Every capture of the corpus and pcaps/, with the Zeek pair's options where it has them."""
    if sharedkit.missing():
        return []
    args = {p.trace: p.args for p in zeekcorpus.load_pairs("all")}
    files = sorted(p for p in SHARED.rglob("*") if p.is_file() and ".pcap" in p.name
                   and not p.name.endswith(".out"))
    files += sorted((ROOT / "pcaps").glob("*.pcap*"))
    return [(f, args.get(f, ())) for f in files]


def _settings(args: tuple[str, ...]) -> Settings:
    return settings_from_args(build_parser().parse_args(["read", *args, "x.pcap"]))


def _same(path: Path, cfg: Settings) -> None:
    py = corediff.run_file(Engine, path, cfg)
    core = corediff.run_file(CoreEngine, path, cfg)
    for i, what in enumerate(("records", "weirds", "stats", "error")):
        if py[i] != core[i]:
            if isinstance(py[i], list):
                diff = next(((k, a, b) for k, (a, b) in enumerate(zip(py[i], core[i])) if a != b),
                            (min(len(py[i]), len(core[i])), "(end)", "(end)"))
                pytest.fail(f"{path}: {what} differ at #{diff[0]}:\n  python {diff[1]}\n"
                            f"  core   {diff[2]}\n  ({len(py[i])} vs {len(core[i])})")
            pytest.fail(f"{path}: {what} differ:\n  python {py[i]}\n  core   {core[i]}")


CAPTURES = _captures()


@pytest.mark.skipif(not CAPTURES, reason="shared corpus missing")
@pytest.mark.parametrize("path,args", CAPTURES, ids=[str(p.relative_to(p.parents[1]))
                                                    for p, _ in CAPTURES])
def test_corpus_capture_identical(path, args):
    _same(path, _settings(args))


#: captures whose mutants are compared (small and varied: TCP, tunnels, fragments, link types)
MUTATED = ("zeek/wikipedia-default/trace.pcap", "zeek/gre-sample/trace.pcap",
           "zeek/gtp-inner-teredo/trace.pcap", "linktypes/ipv4-fragments_multi.pcap",
           "linktypes/ipv6-fragments_multi.pcap", "linktypes/qinq-pppoe_http-rst.pcap",
           "linktypes/pcapng_many-interfaces.pcapng", "zeek/vxlan/trace.pcap")
MUTANTS_EACH = 40


@pytest.mark.skipif(sharedkit.missing() is not None, reason="shared corpus missing")
@pytest.mark.parametrize("name", MUTATED)
def test_mutants_identical(name, tmp_path):
    src = SHARED / name
    cap = mutants.Capture.parse(src.read_bytes())
    rng = random.Random(name)
    for i in range(MUTANTS_EACH):
        op, raw = mutants.mutate(cap, rng)
        path = tmp_path / f"m{i}{src.suffix}"
        path.write_bytes(raw)
        try:
            _same(path, Settings())
        except pytest.fail.Exception as e:
            pytest.fail(f"mutant {i} ({op}) of {name}: {e}")


SEQUENCES = settings(max_examples=150, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@SEQUENCES
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400),
       max_flows=st.sampled_from((100_000, 0, 16)), ignore=st.booleans())
def test_generated_traffic_identical(seed, n, max_flows, ignore):
    cfg = Settings(max_flows=max_flows, ignore_checksums=ignore)
    frames = corediff.traffic(random.Random(seed), n)
    problems = corediff.compare(frames, cfg)
    assert not problems, f"seed {seed}, {n} frames:\n" + "\n".join(problems)


FAST_PATH = ("zeek/wikipedia-default/trace.pcap", "zeek/gtp-inner-teredo/trace.pcap",
             "big/ndpi_synscan.pcap", "linktypes/truncated-final-record_dns.pcap")


def _body(text: str) -> list[str]:
    """A conn.log without the #open/#close lines (they hold the time of writing)."""
    return [ln for ln in text.splitlines() if not ln.startswith(("#open", "#close"))]


@pytest.mark.skipif(sharedkit.missing() is not None, reason="shared corpus missing")
@pytest.mark.parametrize("fmt", ("zeek", "json"))
@pytest.mark.parametrize("name", FAST_PATH)
def test_read_rows_fast_path(name, fmt, tmp_path):
    """`read FILE --format zeek|json`: the core writes the rows; the same log, header to
    trailer, as the records written by the Python writers (the same file fed through standard
    input takes the general path: frames from Python, records back), and as the Python
    engine's records."""
    src = SHARED / name
    fast, slow = tmp_path / "fast.log", tmp_path / "slow.log"
    cmd = [sys.executable, "-m", "sniffer", "read", "--format", fmt, "-o"]
    a = subprocess.run(cmd + [str(fast), str(src)], capture_output=True, text=True)
    with open(src, "rb") as f:
        b = subprocess.run(cmd + [str(slow), "-"], stdin=f, capture_output=True, text=True)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stderr == b.stderr
    assert _body(fast.read_text()) == _body(slow.read_text())
    from sniffer.output.jsonl import format_line
    from sniffer.output.zeek import DEFAULT_FIELDS, format_row
    recs = corediff.run_file(Engine, src, Settings())[0]
    rows = [ln for ln in _body(fast.read_text()) if not ln.startswith("#")]
    write = format_row if fmt == "zeek" else format_line
    expected = [write(corediff.Conn(*r[0]), DEFAULT_FIELDS) for r in recs]
    assert rows == expected


def _alerts(path: Path, args: tuple[str, ...], python: bool, monkeypatch) -> tuple[list, list]:
    """`read --detect ARGS PATH` in process: the alerts raised (every field) and the records."""
    from sniffer.detect.engine import from_args
    from sniffer.output.alerts import alert_dict
    from sniffer.read import run_packets
    from sniffer.stats import Stats

    if python:
        monkeypatch.setenv("SNIFFER_ENGINE", "python")
    else:
        monkeypatch.delenv("SNIFFER_ENGINE", raising=False)
    parsed = build_parser().parse_args(["read", "--detect", *args, str(path)])
    cfg = settings_from_args(parsed)
    stats = Stats()
    detectors = from_args(parsed, cfg, stats)
    out: list = []
    run_packets([str(path)], cfg, stats, out.append, detectors=detectors)
    return ([alert_dict(a) for a in detectors.alerts],
            [(corediff.astuple(e.conn), e.frame, e.firing) for e in out])


@pytest.mark.skipif(not CAPTURES, reason="shared corpus missing")
@pytest.mark.parametrize("path,args", CAPTURES, ids=[str(p.relative_to(p.parents[1]))
                                                    for p, _ in CAPTURES])
def test_alerts_identical(path, args, monkeypatch):
    """The detectors watch the core's packets and segments (CoreEngine's facts) and raise
    the same alerts, evidence and uids included, as on the Python engine."""
    _same_alerts(path, args, monkeypatch)


def _same_alerts(path: Path, args: tuple[str, ...], monkeypatch) -> int:
    py = _alerts(path, args, True, monkeypatch)
    core = _alerts(path, args, False, monkeypatch)
    assert core[1] == py[1], "records differ"
    for i, (a, b) in enumerate(zip(py[0], core[0])):
        assert a == b, f"alert {i}:\n python {a}\n core   {b}"
    assert len(core[0]) == len(py[0])
    return len(py[0])


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.name)
def test_scenario_alerts_identical(scenario, tmp_path, monkeypatch):
    """Every detector scenario (tests/scenarios.py: attacks and false-alarm guards) raises the
    same alerts on the compiled engine as on the Python one."""
    path = pcapkit.write(tmp_path, scenario.build())
    n = _same_alerts(path, tuple(scenario.args), monkeypatch)
    assert n or not scenario.expected, "the scenario raised nothing on either engine"


def test_a_panic_in_the_engine_is_one_error_line(capfd):
    """A panic inside the compiled engine (a bug: here one a test hook asks for) reaches the
    caller as one SnifferError line naming the input and the frame; Rust prints nothing, and
    the engine stays failed."""
    from sniffer.errors import SnifferError

    frames = corediff.traffic(random.Random(7), 20)
    engine = CoreEngine(Settings(), LoggedStats(), source="x.pcap")
    engine.feed(frames[:10])
    engine.core._panic_next_call()
    with pytest.raises(SnifferError) as info:
        engine.feed(frames[10:])
    text = str(info.value)
    assert text.startswith("x.pcap: internal error in the compiled core (a bug) at frame 10: ")
    assert "panic requested" in text and "\n" not in text
    with pytest.raises(SnifferError):
        engine.finish()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
