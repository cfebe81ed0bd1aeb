#!/usr/bin/env bash
# Fuzz the Rust core: build its cargo-fuzz targets (core/fuzz/: `capture`, any bytes as a
# capture file; `frame`, any bytes as one frame of a supported link type) and run each under
# libFuzzer for SECONDS, one process on one core. Exit 1 if any input crashed a target (a panic,
# an overflow, a timeout or runaway memory), its input saved under core/fuzz/artifacts/<target>/;
# at the end, per target: inputs run, runs per second, coverage (edges, features), corpus size.
#
#   bench/fuzz_core.sh [SECONDS]     # default 60 per target (CI); 1800 for the long run
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`), works on the stable toolchain: no
# sanitizer (`-s none`: Rust has no memory errors to catch here, the core forbids `unsafe`),
# with debug assertions, so an integer overflow is a crash too.
#
# Seeds: the start (at most 8 KiB) of every classic pcap of the reference corpus
# ($SNIFFER_SHARED or ../shared, the tests' corpus) and pcaps/demo.pcap, and for `frame` their
# first frames, each behind its two selector bytes; made afresh in a temporary directory. What
# libFuzzer finds beyond them accumulates in core/fuzz/corpus/<target>/ (ignored by git), so a
# later run starts from there. Replay a crash: cd core && cargo fuzz run -s none <target> <file>
set -euo pipefail

die() { printf 'fuzz_core.sh: %s\n' "$*" >&2; exit 2; }

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] && ((secs >= 1 && secs <= 604800)) \
    || die "SECONDS must be a whole number of seconds from 1 to 604800, not '$secs'"
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SNIFFER_SHARED:-$root/../shared}
[ -d "$shared/corpus" ] || die "no reference corpus at $shared/corpus (set SNIFFER_SHARED)"
command -v cargo-fuzz >/dev/null || die "cargo-fuzz is missing: cargo install --locked cargo-fuzz"

seeds=$(mktemp -d)
logs=$(mktemp -d)
trap 'rm -rf "$seeds" "$logs"' EXIT

# Seeds for both targets. A frame seed is [index in LINKTYPES, bytes cut off by the snaplen]
# + the frame (sniffer_core::fuzzing::one_frame); LINKTYPES is read from the core's source.
python3 - "$root" "$shared/corpus" "$seeds" <<'EOF'
import re, struct, sys
from pathlib import Path

root, corpus, out = (Path(a) for a in sys.argv[1:])
src = (root / "core/src/decode/links.rs").read_text()
linktypes = [int(x) for x in re.search(r"LINKTYPES: &\[u32\] = &\[([^\]]*)\]", src)[1].split(",") if x.strip()]
(out / "capture").mkdir()
(out / "frame").mkdir()
files = sorted(corpus.rglob("*.pcap")) + [root / "pcaps/demo.pcap"]
for n, path in enumerate(files):
    head = path.read_bytes()[: 8 << 10]
    (out / "capture" / f"{n:03d}-{path.name}").write_bytes(head)
    if len(head) < 24 or head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                                          b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        continue
    end = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(end + "I", head[20:24])[0] & 0xFFFF
    if linktype not in linktypes:
        continue
    at = 24
    for k in range(8):  # the first frames of each file
        if at + 16 > len(head):
            break
        caplen, wirelen = struct.unpack(end + "II", head[at + 8 : at + 16])
        frame = head[at + 16 : at + 16 + caplen]
        pre = bytes([linktypes.index(linktype), max(0, min(255, wirelen - len(frame)))])
        (out / "frame" / f"{n:03d}-{k}-{path.name}").write_bytes(pre + frame)
        at += 16 + caplen
EOF

cd "$root/core"
echo "building the fuzz targets (cargo fuzz build -s none)"
cargo fuzz build -s none --fuzz-dir fuzz
# Run what was just built (`cargo fuzz run` would build again before each target).
bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release

status=0
summary=()
for target in capture frame; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log=$logs/$target.log
    echo "fuzzing $target for ${secs}s (log: last lines below)"
    rc=0
    "$bin/$target" "fuzz/corpus/$target" "$seeds/$target" -artifact_prefix="fuzz/artifacts/$target/" \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
    line="$target: $(stat number_of_executed_units) runs, $(stat average_exec_per_sec)/s, ${cov:-no coverage line}, peak RSS $(stat peak_rss_mb) MB"
    if [ "$rc" -ne 0 ]; then
        status=1
        cp "$log" "fuzz/artifacts/$target/crash.log"  # the whole log, the stack trace in it
        grep -m1 -A12 'panicked at' "$log" || true
        sed -n '/ERROR: libFuzzer/,/Test unit written/p' "$log"
        echo "(whole log: core/fuzz/artifacts/$target/crash.log)"
        line="$line: CRASH (exit $rc), input: core/$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5-)"
    else
        tail -n 3 "$log"
    fi
    summary+=("$line")
done
echo
printf '%s\n' "${summary[@]}"
exit "$status"
