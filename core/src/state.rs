//! The engine's exported state (issue 14): what one engine hands another mid-input, so that
//! the second, fed the rest of the frames, gives exactly what one engine fed them all would
//! (`read` of rotated files on a cluster, issue 17).
//!
//! The bytes are `MAGIC`, a format `VERSION` byte, then the state in postcard (serde's
//! compact varint format, with a documented and stable wire format): the open connections
//! (the flow table's slab, serials, free slots, creation log, timers, IP tunnels, counters and
//! clocks), the TCP machines, the decoder's pending fragments and counters, and the engine's
//! frame, packet and byte counts ([`crate::engine::Engine::export_state`]). Settings are not
//! in it: the importer passes its own (the same ones, for the same result). Indexes are
//! rebuilt on import rather than stored: their hashers' seeds are per process.
//!
//! Importing checks the header, that every byte is used, and that the parts agree (slots,
//! serials, free list, unique keys): bytes that are not a state give an error, never a panic.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use crate::decode::Addr;

/// The first bytes of an exported state.
pub const MAGIC: &[u8; 4] = b"SNFS";
/// The format's version: bumped whenever an exported struct changes shape.
pub const VERSION: u8 = 1;

/// `MAGIC`, `VERSION`, then `value` in postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    postcard::to_extend(value, out).map_err(|e| format!("cannot encode the engine state: {e}"))
}

/// The value `encode` wrote, or why `bytes` are not one.
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err("not an engine state (no SNFS header)".to_string());
    };
    match rest.split_first() {
        Some((&VERSION, body)) => {
            let (value, left) = postcard::take_from_bytes(body)
                .map_err(|e| format!("damaged engine state: {e}"))?;
            if !left.is_empty() {
                return Err(format!(
                    "damaged engine state: {} bytes after its end",
                    left.len()
                ));
            }
            Ok(value)
        }
        Some((v, _)) => Err(format!(
            "engine state of format version {v}, this core reads version {VERSION}"
        )),
        None => Err("damaged engine state: truncated header".to_string()),
    }
}

/// The names interned so far (counter names are `&'static str` in the core).
static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
/// Bounds on what an imported state may add to the names (they are never freed).
const MAX_NAMES: usize = 4096;
const MAX_NAME_LEN: usize = 128;

/// `name` as a `&'static str`: each distinct name is allocated once per process.
pub fn intern(name: &str) -> Result<&'static str, String> {
    let ok = |c: char| c.is_ascii_graphic() || c == ' ';
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(ok) {
        return Err(format!("damaged engine state: bad counter name {name:?}"));
    }
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return Ok(n);
    }
    if names.len() >= MAX_NAMES {
        return Err("damaged engine state: too many counter names".to_string());
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(n);
    Ok(n)
}

/// serde `with` for `Vec<(&'static str, u64)>` (named counters): names interned on import.
pub mod named_counts {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(&'static str, u64)>, D::Error> {
        let raw: Vec<(String, u64)> = Vec::deserialize(d)?;
        raw.into_iter()
            .map(|(n, c)| intern(&n).map(|n| (n, c)).map_err(D::Error::custom))
            .collect()
    }
}

/// serde `with` for the decoder's fixed counters (`[u64; N]` by reason): the nonzero ones as
/// (index, count) pairs.
pub mod reason_counts {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u64; N], s: S) -> Result<S::Ok, S::Error> {
        let nonzero: Vec<(usize, u64)> =
            (0..N).zip(v.iter().copied()).filter(|p| p.1 != 0).collect();
        s.collect_seq(nonzero)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u64; N], D::Error> {
        let raw: Vec<(usize, u64)> = Vec::deserialize(d)?;
        let mut out = [0u64; N];
        for (i, c) in raw {
            let Some(slot) = out.get_mut(i) else {
                return Err(D::Error::custom(format!("no decode counter number {i}")));
            };
            *slot = c;
        }
        Ok(out)
    }
}

// An address is its 4 or 16 bytes (not the inline 16 and a length).
impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b: &[u8] = <&[u8]>::deserialize(d)?;
        match b.len() {
            0 | 4 | 16 => Ok(Addr::from_slice(b)),
            n => Err(D::Error::custom(format!("an address of {n} bytes"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use crate::engine::{Engine, EngineSettings, Sink};

    /// A raw IPv4 frame (checksums are not checked: the settings ignore them).
    fn ipv4(src: u8, proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let len = u16::try_from(20 + l4.len()).unwrap();
        let mut p = vec![
            0x45, 0, 0, 0, 0, 7, 0, 0, 64, proto, 0, 0, 10, 0, 0, src, 10, 0, 0, 99,
        ];
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn tcp(sport: u16, flags: u8) -> Vec<u8> {
        let mut s = vec![0u8; 20];
        s[0..2].copy_from_slice(&sport.to_be_bytes());
        s[2..4].copy_from_slice(&80u16.to_be_bytes());
        s[12] = 0x50;
        s[13] = flags;
        s
    }

    fn frames() -> Vec<(f64, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..6u8 {
            out.push((
                1.0 + f64::from(i),
                ipv4(i + 1, 6, 0, &tcp(1000 + u16::from(i), 0x02)),
            ));
        }
        // a fragment train whose second half comes after the cut, and a late frame that fires
        // every timer
        let udp = [vec![0x13, 0x88, 0, 53, 0, 24, 0, 0], vec![7u8; 16]].concat();
        out.push((8.0, ipv4(9, 17, 0x2000, &udp[..16])));
        out.push((8.5, ipv4(9, 17, 2, &udp[16..])));
        out.push((900.0, ipv4(1, 6, 0, &tcp(1000, 0x10))));
        out
    }

    fn settings() -> EngineSettings {
        let mut s = EngineSettings::default();
        s.decode.ignore_checksums = true;
        s.table.ignore_checksums = true;
        s.table.max_flows = 4;
        s
    }

    fn run(cuts: &[usize]) -> (Vec<String>, Vec<(String, u64)>) {
        let mut e = Engine::new(settings(), Sink::Records, true);
        let mut events = Vec::new();
        for (i, (ts, data)) in frames().iter().enumerate() {
            if cuts.contains(&i) {
                let state = e.export_state().unwrap();
                events.extend(e.take_events().iter().map(|v| format!("{v:?}")));
                e = Engine::new(settings(), Sink::Records, true);
                e.import_state(&state).unwrap();
            }
            e.feed(*ts, 101, data, data.len() as i64);
        }
        e.finish();
        events.extend(e.take_events().iter().map(|v| format!("{v:?}")));
        (events, e.counters())
    }

    #[test]
    fn a_split_run_gives_what_one_run_gives() {
        let whole = run(&[]);
        assert!(whole.1.iter().any(|(k, _)| k == "fragments_reassembled"));
        assert!(whole.1.iter().any(|(k, _)| k == "flows_evicted"));
        for cuts in [&[1][..], &[5], &[7], &[8], &[1, 2, 3, 4, 5, 6, 7, 8]] {
            assert_eq!(run(cuts), whole, "cut at {cuts:?}");
        }
    }

    /// Every single-bit change of a state: refused, or imported and run to the end (a
    /// crafted state may give nonsense records, never a panic).
    #[test]
    fn damaged_states_never_panic() {
        let mut e = Engine::new(settings(), Sink::Records, true);
        for (ts, data) in &frames()[..7] {
            e.feed(*ts, 101, data, data.len() as i64);
        }
        let good = e.export_state().unwrap();
        let mut refused = 0;
        for at in 5..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[at] ^= 1 << bit;
                let mut e = Engine::new(settings(), Sink::Records, true);
                if e.import_state(&b).is_err() {
                    refused += 1;
                    continue;
                }
                for (ts, data) in &frames()[7..] {
                    e.feed(*ts, 101, data, data.len() as i64);
                }
                e.finish();
            }
        }
        assert!(refused > 0);
    }

    #[test]
    fn bytes_that_are_not_a_state_are_an_error() {
        let good = Engine::new(settings(), Sink::Records, false)
            .export_state()
            .unwrap();
        let mut bumped = good.clone();
        bumped[4] = 99;
        for bad in [
            &b""[..],
            b"SNFS",
            b"junk and more junk",
            &good[..good.len() - 1],
            &bumped,
        ] {
            let mut e = Engine::new(settings(), Sink::Records, false);
            assert!(e.import_state(bad).is_err());
        }
        let mut used = Engine::new(settings(), Sink::Records, false);
        used.feed(1.0, 101, &ipv4(1, 6, 0, &tcp(1, 2)), 40);
        assert!(used.import_state(&good).is_err());
    }
}
