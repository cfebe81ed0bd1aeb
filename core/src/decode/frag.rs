//! IP fragment reassembly with bounded memory, exactly as `sniffer/decode/frag.py` (after
//! Zeek's `FragReassembler`): first wins on overlaps (`fragment_overlap`, or
//! `fragment_inconsistency` when the bytes differ); the fragment without MF fixes the size,
//! a different one counts `fragment_size_inconsistency` and the larger wins; a datagram is
//! complete when bytes 0..size are contiguous, returned once and forgotten; it expires
//! `timeout` seconds (packet time) after its first fragment (`fragment_timeout`; <= 0: never);
//! at most `max_datagrams` pending datagrams and `max_bytes` buffered bytes, the oldest evicted
//! first (`fragment_evicted`); a fragment reaching past `limit` is `fragment_too_large`.
//!
//! "Oldest" is creation order, kept in a sequence-numbered map beside the datagrams.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::stats::{Counters, Reason};
use super::Addr;

/// Settings.frag_max_datagrams / frag_max_bytes defaults (sniffer/config.py).
pub const DEFAULT_MAX_DATAGRAMS: i64 = 16384;
pub const DEFAULT_MAX_BYTES: i64 = 64 << 20;

/// A datagram's identity: IPv4 (src, dst, id, proto); IPv6 (src, dst, id), proto 256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FragKey {
    pub src: Addr,
    pub dst: Addr,
    pub id: u32,
    pub proto: u16,
}

/// What the decoder keeps with a datagram (from its offset-0 fragment, else the first seen):
/// IPv4 (header length, TTL); IPv6 (unfragmentable length, next header, hop limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragMeta {
    pub head: usize,
    pub nh: u8,
    pub ttl: u8,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    created: f64,
    seq: u64,
    buf: Vec<u8>,
    /// sorted, merged [start, end) ranges received
    spans: Vec<(usize, usize)>,
    size: Option<usize>,
    meta: FragMeta,
}

/// (Exported without its bounds, which are the importer's settings: see [`Self::restore`].)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FragReassembler {
    #[serde(skip)]
    timeout: f64,
    #[serde(skip)]
    max_datagrams: usize,
    #[serde(skip)]
    max_bytes: usize,
    pending: HashMap<FragKey, Pending>,
    order: BTreeMap<u64, FragKey>,
    next_seq: u64,
    bytes: usize,
}

fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

impl FragReassembler {
    pub fn new(timeout: f64, max_datagrams: i64, max_bytes: i64) -> Self {
        FragReassembler {
            timeout,
            max_datagrams: usize::try_from(max_datagrams.max(1)).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(max_bytes.max(65536)).unwrap_or(usize::MAX),
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_datagrams(&self) -> usize {
        self.max_datagrams
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Take over the pending datagrams of `saved` (an exported state), keeping this one's
    /// bounds; an error if its parts disagree.
    pub fn restore(&mut self, saved: FragReassembler) -> Result<(), String> {
        let consistent = saved.order.len() == saved.pending.len()
            && saved.order.iter().all(|(seq, k)| {
                saved.pending.get(k).is_some_and(|d| d.seq == *seq) && *seq < saved.next_seq
            })
            && saved.bytes == saved.pending.values().map(|d| d.buf.len()).sum::<usize>();
        if !consistent {
            return Err("damaged engine state: fragment reassembly".to_string());
        }
        (self.pending, self.order) = (saved.pending, saved.order);
        (self.next_seq, self.bytes) = (saved.next_seq, saved.bytes);
        Ok(())
    }

    fn remove(&mut self, key: &FragKey) -> Option<Pending> {
        let d = self.pending.remove(key)?;
        self.order.remove(&d.seq);
        self.bytes = self.bytes.saturating_sub(d.buf.len());
        Some(d)
    }

    /// Drop pending datagrams whose timeout has passed at packet time `ts`.
    pub fn expire(&mut self, stats: &mut Counters, ts: f64) {
        if self.timeout <= 0.0 {
            return;
        }
        let deadline = ts - self.timeout;
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            match self.pending.get(&key) {
                Some(d) if d.created > deadline => break,
                _ => {}
            }
            self.remove(&key);
            stats.inc(Reason::FragmentTimeout);
        }
    }

    /// End of input: forget every pending datagram (`fragment_incomplete`).
    pub fn flush(&mut self, stats: &mut Counters) -> usize {
        let n = self.pending.len();
        if n != 0 {
            stats.add(Reason::FragmentIncomplete, n as u64);
        }
        self.pending.clear();
        self.order.clear();
        self.bytes = 0;
        n
    }

    fn evict_oldest(&mut self, stats: &mut Counters, keep: &FragKey) -> bool {
        let victim = self.order.values().find(|k| *k != keep).copied();
        match victim {
            Some(k) => {
                self.remove(&k);
                stats.inc(Reason::FragmentEvicted);
                true
            }
            None => false,
        }
    }

    /// Add one fragment (`offset` in bytes, `more` = MF); the datagram's data and meta once
    /// it is complete.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        stats: &mut Counters,
        ts: f64,
        key: FragKey,
        offset: usize,
        more: bool,
        payload: &[u8],
        meta: FragMeta,
        limit: usize,
    ) -> Option<(Vec<u8>, FragMeta)> {
        self.expire(stats, ts);
        let end = offset + payload.len();
        if end > limit {
            stats.inc(Reason::FragmentTooLarge);
            return None;
        }
        if let Some(d) = self.pending.get_mut(&key) {
            if offset == 0 {
                d.meta = meta;
            }
        } else {
            if self.pending.len() >= self.max_datagrams {
                self.evict_oldest(stats, &key);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, key);
            self.pending.insert(
                key,
                Pending {
                    created: ts,
                    seq,
                    buf: Vec::new(),
                    spans: Vec::new(),
                    size: None,
                    meta,
                },
            );
        }
        let d = self.pending.get_mut(&key)?;
        if !more {
            match d.size {
                None => d.size = Some(end),
                Some(size) if size != end => {
                    stats.inc(Reason::FragmentSizeInconsistency);
                    if end > size {
                        d.size = Some(end);
                    }
                }
                Some(_) => {}
            }
        } else if let Some(size) = d.size {
            if end > size {
                stats.inc(Reason::FragmentSizeInconsistency);
                d.size = Some(end);
            }
        }

        // Insert the parts of [offset, end) not received yet (first wins).
        if end > d.buf.len() {
            self.bytes += end - d.buf.len();
            d.buf.resize(end, 0);
        }
        let buf = &mut d.buf;
        let part = |a: usize, b: usize| payload.get(a - offset..b - offset).unwrap_or_default();
        let mut pos = offset;
        let (mut overlap, mut inconsistent) = (false, false);
        for &(s, e) in &d.spans {
            if e <= pos {
                continue;
            }
            if s >= end {
                break;
            }
            if s > pos {
                if let Some(dst) = buf.get_mut(pos..s) {
                    copy(dst, part(pos, s));
                }
            }
            let (lo, hi) = (s.max(pos), e.min(end));
            if lo < hi {
                overlap = true;
                if buf.get(lo..hi).unwrap_or_default() != part(lo, hi) {
                    inconsistent = true;
                }
            }
            pos = pos.max(e);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            if let Some(dst) = buf.get_mut(pos..end) {
                copy(dst, part(pos, end));
            }
        }
        if overlap {
            stats.inc(if inconsistent {
                Reason::FragmentInconsistency
            } else {
                Reason::FragmentOverlap
            });
        }
        d.spans.push((offset, end));
        d.spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(d.spans.len());
        for &(s, e) in &d.spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => {
                    if e > last.1 {
                        last.1 = e;
                    }
                }
                _ => merged.push((s, e)),
            }
        }
        d.spans = merged;

        if self.bytes > self.max_bytes {
            while self.bytes > self.max_bytes && self.evict_oldest(stats, &key) {}
        }

        let d = self.pending.get(&key)?;
        let size = d.size?;
        let first = *d.spans.first()?;
        if first.0 != 0 || first.1 < size {
            return None;
        }
        if first.1 != size || d.spans.len() > 1 {
            // contiguous data beyond the announced end (Zeek: the contiguous part)
            stats.inc(Reason::FragmentSizeInconsistency);
        }
        let mut d = self.remove(&key)?;
        stats.inc(Reason::FragmentsReassembled);
        d.buf.truncate(first.1);
        Some((d.buf, d.meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: Addr::from_slice(&[10, 0, 0, 1]),
            dst: Addr::from_slice(&[10, 0, 0, 2]),
            id,
            proto: 17,
        }
    }

    const META: FragMeta = FragMeta {
        head: 20,
        nh: 0,
        ttl: 64,
    };

    #[test]
    fn out_of_order_and_overlaps_first_wins() {
        let mut st = Counters::default();
        let mut f = FragReassembler::new(300.0, 100, 1 << 20);
        assert!(f
            .add(&mut st, 1.0, key(1), 16, false, b"CCCCCCCC", META, 65515)
            .is_none());
        // overlapping with different bytes: the old ones stay
        assert!(f
            .add(&mut st, 1.0, key(1), 8, true, b"BBBBBBBBXXXX", META, 65515)
            .is_none());
        assert_eq!(st.get(Reason::FragmentInconsistency), 1);
        let (data, meta) = f
            .add(&mut st, 1.0, key(1), 0, true, b"AAAAAAAA", META, 65515)
            .unwrap_or_default_pair();
        assert_eq!(data, b"AAAAAAAABBBBBBBBCCCCCCCC");
        assert_eq!(meta, META);
        assert_eq!(st.get(Reason::FragmentsReassembled), 1);
        assert!(f.is_empty() && f.buffered_bytes() == 0);
        // same bytes again: overlap, not inconsistency
        f.add(&mut st, 2.0, key(2), 0, true, b"AAAAAAAA", META, 65515);
        f.add(&mut st, 2.0, key(2), 0, true, b"AAAAAAAA", META, 65515);
        assert_eq!(st.get(Reason::FragmentOverlap), 1);
    }

    #[test]
    fn size_inconsistency_timeout_and_bounds() {
        let mut st = Counters::default();
        let mut f = FragReassembler::new(10.0, 3, 0);
        assert_eq!(f.max_bytes(), 65536);
        f.add(&mut st, 0.0, key(1), 8, false, b"xxxxxxxx", META, 65515);
        f.add(
            &mut st,
            0.0,
            key(1),
            8,
            false,
            b"xxxxxxxxyyyyyyyy",
            META,
            65515,
        );
        assert_eq!(st.get(Reason::FragmentSizeInconsistency), 1);
        // 4 datagrams in a cap of 3: the oldest goes
        for id in 2..5 {
            f.add(&mut st, 1.0, key(id), 0, true, b"zzzzzzzz", META, 65515);
        }
        assert_eq!((f.len(), st.get(Reason::FragmentEvicted)), (3, 1));
        // too large
        f.add(&mut st, 1.0, key(9), 65512, true, b"zzzzzzzz", META, 65515);
        assert_eq!(st.get(Reason::FragmentTooLarge), 1);
        // the timeout: created at 1.0, expired at 11.0 exactly
        f.add(&mut st, 11.0, key(7), 0, true, b"q", META, 65515);
        assert_eq!(st.get(Reason::FragmentTimeout), 3);
        assert_eq!(f.flush(&mut st), 1);
        assert_eq!(st.get(Reason::FragmentIncomplete), 1);
        // the byte cap: 65536 minimum; two 40000-byte datagrams do not fit
        let big = vec![7u8; 40000];
        f.add(&mut st, 20.0, key(1), 0, true, &big, META, 65515);
        f.add(&mut st, 20.0, key(2), 0, true, &big, META, 65515);
        assert_eq!((f.len(), st.get(Reason::FragmentEvicted)), (1, 2));
        assert!(f.buffered_bytes() <= 65536);
    }

    trait OrDefault {
        fn unwrap_or_default_pair(self) -> (Vec<u8>, FragMeta);
    }

    impl OrDefault for Option<(Vec<u8>, FragMeta)> {
        fn unwrap_or_default_pair(self) -> (Vec<u8>, FragMeta) {
            self.unwrap_or((
                Vec::new(),
                FragMeta {
                    head: 0,
                    nh: 0,
                    ttl: 0,
                },
            ))
        }
    }
}
