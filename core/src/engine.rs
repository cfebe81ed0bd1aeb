//! The engine: frames in, events out (`sniffer/engine.py`'s `Engine`, compiled).
//!
//! It owns the decode stage (link layers, IP, fragments), the flow table with its timers and
//! tunnels, and the building of records; its caller (the PyO3 boundary, tests, the fuzz
//! target) feeds frames in time order and takes what happened, in order (`events`: finished
//! records with what orders them, weirds, new connections, and with `facts` the packets and
//! segments the detectors read). Finished connections come out as records (for the scripting
//! layer: verdicts, tables, JSON) or already written as conn.log rows ([`Engine::rows`],
//! Zeek's TSV, when nothing else needs the record): a row then costs no Python at all.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::capture::pcap::{self, PcapWalker, WalkError};
use crate::decode::frag::FragReassembler;
use crate::decode::{self, Counters, Decoder};
use crate::flows::table::{FlowTable, RowFormat, TableEvent, TableSettings, TableState};
use crate::shard::Shard;
use crate::state;

/// Everything a run can change (sniffer.config.Settings, the parts the core reads).
#[derive(Clone, Debug, Default)]
pub struct EngineSettings {
    pub decode: decode::Settings,
    pub table: TableSettings,
}

/// Where finished connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Reported as `TableEvent::Finished` records, with what orders them.
    Records,
    /// Written as Zeek TSV rows, one per line, into `table.rows` (see [`Engine::rows`]).
    ZeekRows,
    /// Written as JSON lines likewise.
    JsonRows,
}

/// The capture's counters the walk adds (pcap record notes), by stats key.
const NOTE_KEYS: [(u8, &str, bool); 3] = [
    (pcap::FLAG_CAPLEN_OVER_SNAPLEN, "caplen_over_snaplen", true),
    (pcap::FLAG_SNAPLEN_TRUNCATED, "snaplen_truncated", false),
    (pcap::FLAG_INVALID_TIMESTAMP, "invalid_timestamp", true),
];

/// An engine's exported state ([`Engine::export_state`]; `crate::state` has the format):
/// borrowed to export, owned once imported.
#[derive(Serialize, Deserialize)]
struct EngineState<'a> {
    /// `(n, me)` of a `--workers` shard: the importer must be the same shard.
    shard: Option<(u64, u32)>,
    /// The shard's private decoder's pending fragments.
    shard_frag: Option<Cow<'a, FragReassembler>>,
    frames: u64,
    foreign: u64,
    wire_bytes: u64,
    packets: u64,
    bytes: u64,
    notes: Vec<(Cow<'a, str>, u64)>,
    last_ts: f64,
    decode_counts: Cow<'a, Counters>,
    frag: Cow<'a, FragReassembler>,
    table: TableState<'a>,
}

/// decode -> flows -> records (see the module docs).
#[derive(Debug)]
pub struct Engine {
    pub decoder: Decoder,
    pub table: FlowTable,
    /// Frames fed so far (the serial numbers' base), other shards' included.
    pub frames: u64,
    /// Of which another shard's (`read --workers`): they only moved the clock.
    foreign: u64,
    /// This engine is one `--workers` shard: (the owner function, this shard's number).
    shard: Option<(Shard, u32)>,
    wire_bytes: u64,
    /// The packets and bytes counted at `finish` (stats "packets", "bytes").
    pub packets: u64,
    pub bytes: u64,
    /// Capture notes (snaplen_truncated, ...), by stats key.
    pub notes: Vec<(&'static str, u64)>,
    /// Anomalies are also reported one by one (a weird.log is written).
    weird_events: bool,
    last_ts: f64,
}

impl Engine {
    pub fn new(settings: EngineSettings, sink: Sink, weird_events: bool) -> Self {
        let mut table = FlowTable::new(settings.table);
        table.weird_events = weird_events;
        if sink != Sink::Records {
            table.rows = Some(String::new());
            if sink == Sink::JsonRows {
                table.row_format = RowFormat::Json;
            }
        }
        Engine {
            decoder: Decoder::new(&settings.decode),
            table,
            frames: 0,
            foreign: 0,
            shard: None,
            wire_bytes: 0,
            packets: 0,
            bytes: 0,
            notes: Vec::new(),
            weird_events,
            last_ts: 0.0,
        }
    }

    /// Make this engine shard `me` of `n` (`read --workers n`): frames another shard owns
    /// only move the clock and keep their place in the frame count, so serial numbers and
    /// uids do not depend on the sharding (sniffer/workers.py).
    pub fn set_shard(&mut self, n: u32, me: u32, settings: &decode::Settings) {
        self.shard = Some((Shard::new(n, settings), me));
    }

    /// Report new connections as `TableEvent::New` (for `live`).
    pub fn set_new_events(&mut self, on: bool) {
        self.table.new_events = on;
    }

    /// What a walked record noted (FLAG_* bits), counted before its frame as the Python
    /// reader counts it.
    pub fn note(&mut self, flags: u8) {
        for (bit, key, weird) in NOTE_KEYS {
            if flags & bit == 0 {
                continue;
            }
            match self.notes.iter_mut().find(|n| n.0 == key) {
                Some(n) => n.1 += 1,
                None => self.notes.push((key, 1)),
            }
            if weird && self.weird_events {
                self.table.decode_weird(self.last_ts, key.into());
            }
        }
    }

    /// One frame, in time order.
    pub fn feed(&mut self, ts: f64, linktype: u32, data: &[u8], wirelen: i64) {
        self.frames += 1;
        self.table.frame = self.frames;
        self.last_ts = ts;
        self.table.tick(ts);
        if let Some((shard, me)) = &mut self.shard {
            if shard.owner(linktype, data) != *me {
                self.foreign += 1; // another shard's: only the clock moved
                return;
            }
        }
        self.wire_bytes = self
            .wire_bytes
            .saturating_add(u64::try_from(wirelen).unwrap_or(0));
        let pkt = self
            .table
            .decode(&mut self.decoder, ts, linktype, data, wirelen);
        if let Some(p) = pkt {
            let rest = if self.decoder.more.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut self.decoder.more)
            };
            self.table.process(&mut self.decoder, ts, &p, data, None);
            for q in &rest {
                self.table.process(&mut self.decoder, ts, q, data, None);
            }
        }
    }

    /// What happened since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<TableEvent> {
        std::mem::take(&mut self.table.events)
    }

    /// Walk a classic pcap and feed its frames: at most `max_frames`, or until the walk's
    /// buffer would need a read on a pipe that has nothing yet (`stop_when_empty`), or until
    /// the rows not yet taken pass `ROWS_SOFT_LIMIT`. Returns the number of frames fed; 0 at
    /// the end.
    pub fn feed_pcap<R: std::io::Read>(
        &mut self,
        walker: &mut PcapWalker<R>,
        max_frames: usize,
    ) -> Result<usize, WalkError> {
        let linktype = u32::from(walker.header().linktype);
        let mut n = 0;
        while n < max_frames {
            let Some(f) = walker.next_frame()? else {
                break;
            };
            let (ts, wirelen, flags) = (f.ts, i64::from(f.wirelen), f.flags);
            if flags != 0 {
                self.note(flags); // before the frame, as the Python reader counts it
            }
            self.feed(ts, linktype, f.data, wirelen);
            n += 1;
            if self.table.rows_full() {
                break;
            }
        }
        Ok(n)
    }

    /// The rows written so far (with [`Sink::ZeekRows`] or [`Sink::JsonRows`]); the caller
    /// clears them once taken.
    pub fn rows(&mut self) -> &mut String {
        self.table.rows.get_or_insert_with(String::new)
    }

    /// The end of the input: every open connection and fragment ends.
    pub fn finish(&mut self) {
        while self.finish_some(usize::MAX) {}
    }

    /// `finish` in parts: at most `max` connections end per call, and their rows or records
    /// can be taken between calls, so that a large table's do not pile up in memory. True
    /// while some remain: call again (and nothing else) until false.
    pub fn finish_some(&mut self, max: usize) -> bool {
        if !self.table.is_flushing() {
            self.packets += self.frames - self.foreign;
            self.bytes += self.wire_bytes;
            self.frames = 0;
            self.foreign = 0;
            self.wire_bytes = 0;
            if self.weird_events {
                self.decoder.stats.log = Some(Vec::new());
            }
            self.decoder.flush();
            self.table.decode_weirds(self.last_ts, &mut self.decoder);
        }
        self.table.flush_some(max)
    }

    /// Everything a continuation needs, as bytes (`crate::state`): an engine made with the
    /// same settings takes it over ([`Engine::import_state`]) and, fed the frames after,
    /// gives what this one would have. Events and rows not yet taken stay this engine's.
    pub fn export_state(&self) -> Result<Vec<u8>, String> {
        let st = EngineState {
            shard: self.shard.as_ref().map(|(s, me)| (s.workers(), *me)),
            shard_frag: self
                .shard
                .as_ref()
                .and_then(|s| s.0.frag())
                .map(Cow::Borrowed),
            frames: self.frames,
            foreign: self.foreign,
            wire_bytes: self.wire_bytes,
            packets: self.packets,
            bytes: self.bytes,
            notes: self
                .notes
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), *v))
                .collect(),
            last_ts: self.last_ts,
            decode_counts: Cow::Borrowed(&self.decoder.stats),
            frag: Cow::Borrowed(&self.decoder.frag),
            table: self.table.state(),
        };
        state::encode(&st)
    }

    /// Take over an exported state. This engine must be new (`new`, and `set_shard` as the
    /// exporter's); it keeps its settings, sink and event choices. An error if `bytes` are
    /// not a state or are another shard's (the engine is then to be dropped).
    pub fn import_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.frames != 0 || self.packets != 0 || !self.table.is_empty() {
            return Err("a state is imported into a new engine only".to_string());
        }
        let st: EngineState = state::decode(bytes)?;
        let shard = self.shard.as_ref().map(|(s, me)| (s.workers(), *me));
        if st.shard != shard {
            return Err(format!(
                "the state is of shard {:?} (workers, number), this engine of {shard:?}",
                st.shard
            ));
        }
        let counts_agree = st.foreign <= st.frames
            && st.packets.checked_add(st.frames - st.foreign).is_some()
            && st.bytes.checked_add(st.wire_bytes).is_some();
        if !counts_agree {
            return Err("damaged engine state: frame counts".to_string());
        }
        (self.frames, self.foreign, self.wire_bytes) = (st.frames, st.foreign, st.wire_bytes);
        (self.packets, self.bytes, self.last_ts) = (st.packets, st.bytes, st.last_ts);
        self.notes = st
            .notes
            .iter()
            .map(|(k, v)| state::intern(k).map(|k| (k, *v)))
            .collect::<Result<_, _>>()?;
        self.decoder.stats = st.decode_counts.into_owned();
        self.decoder.frag.restore(st.frag.into_owned())?;
        if let (Some((shard, _)), Some(frag)) = (&mut self.shard, st.shard_frag) {
            shard.restore_frag(frag.into_owned())?;
        }
        self.table.restore(st.table)
    }

    /// Every nonzero counter by its Python stats key: decode's, the flows', the capture
    /// notes, and (after `finish`) packets and bytes.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self.decoder.stats.iter().collect();
        out.extend(self.table.counters.iter());
        out.extend(self.notes.iter().map(|(k, v)| (k.to_string(), *v)));
        if self.packets > 0 {
            out.push(("packets".to_string(), self.packets));
            out.push(("bytes".to_string(), self.bytes));
        }
        out
    }
}
