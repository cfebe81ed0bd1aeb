"""Run the `sniffer read` fuzz harness (fuzz/fuzz_read.py) for a bounded time.

    python fuzz/run.py                 # 60 s (or $SNIFFER_FUZZ_SECONDS)
    python fuzz/run.py --seconds 600 --keep fuzz-work

Seeds: the small captures of the shared reference corpus (``../shared/corpus`` from the
project root, or ``$SNIFFER_SHARED/corpus``; linked, never copied) plus the regression inputs
of tests/data/fuzz. New inputs libFuzzer finds go to a scratch directory (kept with
``--keep``). Prints one line ``fuzz: N inputs tried in S s ...`` and exits 0, or 1 after a
crash, hang (``-timeout``) or memory blow-up (``-rss_limit_mb``), naming the saved input that
reproduces it (``python fuzz/fuzz_read.py FILE``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SNIFFER_SHARED") or ROOT.parent / "shared") / "corpus"
REGRESSIONS = ROOT / "tests" / "data" / "fuzz"
HARNESS = ROOT / "fuzz" / "fuzz_read.py"
DICT = ROOT / "fuzz" / "sniffer.dict"  # magics, block types, the JSON of sniffer's records
_CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap)(\.gz)?$")


def seed_files(max_size: int) -> list[Path]:
    """The corpus captures of at most `max_size` bytes, and every regression input."""
    seeds = sorted(p for p in CORPUS.rglob("*") if p.is_file() and _CAPTURE_NAME.search(p.name)
                   and "expected" not in p.parts and p.stat().st_size <= max_size)
    if REGRESSIONS.is_dir():
        seeds += sorted(p for p in REGRESSIONS.iterdir() if p.is_file() and p.suffix != ".md")
    return seeds


def inputs_tried(log: str) -> int | None:
    """libFuzzer's count of executed inputs, from its final stats or its 'Done' line."""
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log) \
        or re.search(r"Done (\d+) runs", log)
    if m:
        return int(m.group(1))
    runs = re.findall(r"#(\d+)\s", log)  # the progress lines, when it died mid-run
    return int(runs[-1]) if runs else None


def run(seconds: float, max_size: int = 64 << 10, keep: Path | None = None, timeout: int = 10,
        rss_mb: int = 1536, seed: int | None = None) -> tuple[int, int | None, str]:
    """Fuzz for `seconds`; returns (libFuzzer's exit status, inputs tried, its log)."""
    work = Path(tempfile.mkdtemp(prefix="sniffer-fuzz-run-"))
    try:
        seeds_dir, found_dir, artifacts = work / "seeds", keep or work / "found", work / "crash"
        for d in (seeds_dir, found_dir, artifacts):
            d.mkdir(parents=True, exist_ok=True)
        seeds = seed_files(max_size)
        for i, p in enumerate(seeds):  # links: the corpus stays where it is
            (seeds_dir / f"{i:04d}-{p.name}").symlink_to(p)
        scratch = work / "tmp"
        scratch.mkdir()
        cmd = [sys.executable, str(HARNESS), f"-max_total_time={int(seconds)}",
               f"-timeout={timeout}", f"-rss_limit_mb={rss_mb}", f"-max_len={max_size}",
               "-print_final_stats=1", f"-artifact_prefix={artifacts}/", f"-dict={DICT}",
               str(found_dir), str(seeds_dir)]
        if seed is not None:
            cmd.insert(2, f"-seed={seed}")
        env = dict(os.environ, SNIFFER_FUZZ_TMP=str(scratch),
                   PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT),
                                                            os.environ.get("PYTHONPATH")))))
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=seconds + 300)
        log = proc.stdout
        saved = sorted(artifacts.iterdir())
        if saved:  # keep what reproduces the crash out of the scratch directory
            dest = Path(tempfile.mkdtemp(prefix="sniffer-fuzz-crash-"))
            for p in saved:
                shutil.copy(p, dest / p.name)
            log += "".join(f"\nreproducer saved: {dest / p.name}" for p in saved)
        return proc.returncode, inputs_tried(log), log
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("SNIFFER_FUZZ_SECONDS", "60")),
                    help="how long to fuzz (default 60, or $SNIFFER_FUZZ_SECONDS)")
    ap.add_argument("--max-size", type=int, default=64 << 10,
                    help="largest seed and input, in bytes (default 65536)")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    ap.add_argument("--rss-mb", type=int, default=1536, help="memory limit (RSS, MiB)")
    ap.add_argument("--seed", type=int, help="libFuzzer's random seed (default: random)")
    ap.add_argument("--keep", type=Path, help="keep the inputs libFuzzer finds in this directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="print libFuzzer's log")
    args = ap.parse_args(argv)
    start = time.monotonic()
    status, tried, log = run(args.seconds, args.max_size, args.keep, args.timeout, args.rss_mb,
                             args.seed)
    took = time.monotonic() - start
    if args.verbose or status:
        print(log)
    verdict = "no crash" if status == 0 else f"FAILED (libFuzzer exit status {status})"
    print(f"fuzz: {tried if tried is not None else '?'} inputs tried in {took:.0f} s, "
          f"{len(seed_files(args.max_size))} seeds, {verdict}")
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
