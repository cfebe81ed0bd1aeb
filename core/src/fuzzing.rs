//! Fuzz entry points: what the cargo-fuzz targets in `core/fuzz/` feed arbitrary bytes to
//! (`capture` -> [`one_input`], `frame` -> [`one_frame`]). They are plain library functions
//! so that `cargo test` runs them too and a crashing input replays in an ordinary test.
//!
//! The rule they hold the core to is the issue's: the core never panics on input. Any panic
//! (an overflow included: fuzz builds keep debug assertions), endless loop or runaway memory
//! is a bug in the core, not in the input.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::hint::black_box;
use std::io::{self, Cursor, Read};

use crate::capture::pcap::{Notes, PcapWalker, DEFAULT_WINDOW, MIN_WINDOW};
use crate::decode::links::LINKTYPES;
use crate::decode::{Decoder, Settings};
use crate::engine::{Engine, EngineSettings, Sink};

/// `data` as a whole capture file: walk its records, run the whole engine on every frame
/// (decode, fragments, tunnels, the flow table with a small bound so eviction happens,
/// timers, records, weirds and the detectors' facts), end the input.
///
/// The walk runs twice and must see the same records either way (a difference panics: this
/// harness's oracle): once with the default window over the whole input, once with the
/// smallest window over a reader that hands out a few bytes per read as a pipe does, so that
/// refills, records longer than the window and short reads are exercised. Walk errors just
/// end the input, as they end a file.
///
/// The engine's settings and outputs vary with the input's length ([`fuzz_engine`]).
pub fn one_input(data: &[u8]) {
    let whole = walk(Cursor::new(data), DEFAULT_WINDOW, Some(data.len() % 4));
    let step = 1 + data.len() % 13;
    let trickled = walk(Trickle { data, step }, MIN_WINDOW, None);
    if whole != trickled {
        window_changed_the_walk(&whole, &trickled);
    }
}

/// One frame of any link type the decoder supports: `data[0]` picks the link type (an index
/// into `LINKTYPES`), `data[1]` how many bytes the capture cut off the frame (its wire length
/// is the rest's length plus that), the rest is the frame. It is decoded twice, as a frame and
/// its duplicate, so that a fragment meets the reassembly state its first copy left.
pub fn one_frame(data: &[u8]) {
    let [pick, cut, frame @ ..] = data else {
        return;
    };
    let Some(&linktype) = LINKTYPES.get(usize::from(*pick) % LINKTYPES.len()) else {
        return;
    };
    let wirelen = i64::try_from(frame.len()).unwrap_or(i64::MAX) + i64::from(*cut);
    let mut dec = Decoder::new(&Settings::default());
    decode_one(&mut dec, 1.0, linktype, frame, wirelen);
    decode_one(&mut dec, 1.5, linktype, frame, wirelen);
    dec.flush();
    black_box(dec.stats.iter().count());
}

/// What a walk saw: equal for two walks of the same bytes whatever the window or the reads.
#[derive(Debug, PartialEq)]
struct Walked {
    records: u64,
    notes: Notes,
    /// The error that ended the walk (it names the offset), if one did.
    error: Option<String>,
    /// A hash of every frame's fields and bytes, in order.
    frames: u64,
}

/// Walk `reader` to its end or first error; with `engine` (`Some(mode)`, see
/// [`fuzz_engine`]), run the engine on each frame too.
fn walk<R: Read>(reader: R, window: usize, engine: Option<usize>) -> Walked {
    let mut walker = match PcapWalker::with_window(reader, window) {
        Ok(w) => w,
        Err(e) => {
            return Walked {
                records: 0,
                notes: Notes::default(),
                error: Some(e.to_string()),
                frames: 0,
            }
        }
    };
    let linktype = u32::from(walker.header().linktype);
    let decode = engine.is_some();
    let mut engine = fuzz_engine(engine.unwrap_or(0));
    let mut hash = DefaultHasher::new();
    let mut error = None;
    loop {
        match walker.next_frame() {
            Ok(Some(f)) => {
                (f.ts.to_bits(), f.sec, f.frac, f.data, f.caplen, f.wirelen).hash(&mut hash);
                (f.offset, f.flags).hash(&mut hash);
                if decode {
                    if f.flags != 0 {
                        engine.note(f.flags);
                    }
                    engine.feed(f.ts, linktype, f.data, i64::from(f.wirelen));
                    black_box(engine.take_events().len());
                }
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    if decode {
        engine.finish();
        black_box((engine.take_events().len(), engine.rows().len()));
        black_box(engine.counters().len());
    }
    Walked {
        records: walker.records(),
        notes: walker.notes(),
        error,
        frames: hash.finish(),
    }
}

/// An engine for fuzzing: a table of 64 flows (so evictions happen), weirds and the
/// detectors' facts reported. `mode` (the input's length modulo 4): odd modes ignore
/// checksums (a fuzzer rarely gets one right, and a packet with a wrong one never reaches the
/// TCP machine) and write rows, Zeek's TSV (1) or JSON lines (3); even ones keep records.
fn fuzz_engine(mode: usize) -> Engine {
    let lenient = mode % 2 == 1;
    let mut settings = EngineSettings::default();
    settings.table.max_flows = 64;
    settings.table.likely_server_ports = vec![(80, 6), (443, 6), (22, 6), (53, 17), (123, 17)];
    settings.decode.ignore_checksums = lenient;
    settings.table.ignore_checksums = lenient;
    let sink = match mode {
        1 => Sink::ZeekRows,
        3 => Sink::JsonRows,
        _ => Sink::Records,
    };
    let mut engine = Engine::new(settings, sink, true);
    engine.set_new_events(true);
    engine.table.facts = true;
    engine
}

/// Decode one frame and read the transport bytes of every packet it gave, as a caller would.
fn decode_one(dec: &mut Decoder, ts: f64, linktype: u32, frame: &[u8], wirelen: i64) {
    if let Some(p) = dec.decode(ts, linktype, frame, wirelen) {
        black_box(p.l4(frame));
    }
    for p in std::mem::take(&mut dec.more) {
        black_box(p.l4(frame));
    }
}

/// A reader handing out at most `step` bytes per read, as a pipe may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(head);
        }
        self.data = rest;
        Ok(n)
    }
}

/// The oracle's failure: the window or the read sizes changed what the walk saw.
#[allow(clippy::panic)]
fn window_changed_the_walk(whole: &Walked, trickled: &Walked) {
    panic!("the walk depends on the window: {whole:?} vs {trickled:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's demo capture and every prefix of it: the walk agrees with itself and
    /// nothing panics (the fuzz targets' seeds, replayed by `cargo test`).
    #[test]
    fn demo_capture_and_its_prefixes() {
        let file = include_bytes!("../../pcaps/demo.pcap");
        for cut in (0..=file.len()).step_by(7) {
            one_input(file.get(..cut).unwrap_or_default());
        }
    }

    #[test]
    fn short_and_odd_inputs() {
        for data in [&b""[..], b"\x00", b"\xd4\xc3\xb2\xa1", &[0xff; 64]] {
            one_input(data);
            one_frame(data);
        }
        for pick in 0..=u8::try_from(LINKTYPES.len()).unwrap_or(u8::MAX) {
            one_frame(&[pick, 0]);
            one_frame(&[pick, 3, 0x45, 0, 0, 20]);
        }
    }
}
