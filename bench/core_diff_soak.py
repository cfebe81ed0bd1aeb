"""The long differential runs: generated traffic through both engines until the time is up,
or every mutant of the mutation sweep.

    python bench/core_diff_soak.py [--minutes 30] [--seed N] [--frames 2000]
    python bench/core_diff_soak.py --sweep     # the sweep's mutants (tests/test_mutation_sweep.py)

Each round draws a seed, settings (the table's bound, checksums ignored or not) and a length,
makes that traffic (tests/corediff.py: conversations, tunnels, fragments, bad checksums, cut
frames, time jumps) and requires the compiled engine's records, weirds and stats to equal the
Python reference's (tests/test_core_engine.py does the same on a bounded number of examples in
CI). The first difference stops the run and prints its seed, settings and length: the same
frames come back from `corediff.traffic(random.Random(seed), n)`.

`--sweep` makes every mutant the mutation sweep makes (the same operators and seeds, gzip
ones included) and requires the same of the two engines on each, the input error included.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import corediff  # noqa: E402
from sniffer.config import Settings  # noqa: E402


def sweep() -> int:
    """Both engines on every mutant of the sweep; the first difference stops the run."""
    import tempfile

    import test_mutation_sweep as ms
    from mutants import Capture

    files = ms.corpus_files()
    work = Path(tempfile.mkdtemp(prefix="sniffer-diff-sweep-"))
    done = 0
    start = time.monotonic()
    for index, count in ms.plan():
        path = files[index]
        rel = path.relative_to(ms.CORPUS).as_posix()
        raw, gz = ms.load(path)
        cap = Capture.parse(raw)
        for k in range(count):
            op, data = ms.make_mutant(path, rel, cap, gz, k)
            mutant = work / f"m{''.join(path.suffixes[:1])}"
            mutant.write_bytes(data)
            problems = corediff.compare_file(mutant)
            if problems:
                keep = work / f"diff-{index}-{k}{''.join(path.suffixes[:1])}"
                mutant.rename(keep)
                print(f"{rel} mutant {k} ({op}): differences\n  " + "\n  ".join(problems)
                      + f"\n  input kept as {keep}")
                return 1
            done += 1
    print(f"done: {done} mutants of {len(files)} captures in "
          f"{(time.monotonic() - start) / 60:.1f} min, no difference")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    ap.add_argument("--frames", type=int, default=2000, help="largest round, in frames")
    ap.add_argument("--sweep", action="store_true", help="the mutation sweep's mutants instead")
    args = ap.parse_args()
    if args.sweep:
        return sweep()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    end = time.monotonic() + args.minutes * 60
    rounds = frames = 0
    start = time.monotonic()
    while time.monotonic() < end:
        rng = random.Random(seed)
        cfg = Settings(max_flows=rng.choice((100_000, 0, 16, 64)),
                       ignore_checksums=rng.random() < 0.2)
        n = rng.randrange(1, args.frames + 1)
        batch = corediff.traffic(random.Random(seed), n)
        problems = corediff.compare(batch, cfg)
        if problems:
            print(f"seed {seed}, n {n} (max_flows={cfg.max_flows}, ignore_checksums="
                  f"{cfg.ignore_checksums}): differences\n  " + "\n  ".join(problems))
            return 1
        rounds += 1
        frames += len(batch)
        seed = (seed + 1) % (1 << 32)
        if rounds % 200 == 0:
            print(f"{(time.monotonic() - start) / 60:5.1f} min: {rounds} rounds, "
                  f"{frames:,} frames, no difference", flush=True)
    print(f"done: {rounds} rounds, {frames:,} frames in {(time.monotonic() - start) / 60:.1f} "
          f"min, no difference (last seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
