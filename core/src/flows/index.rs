//! The flow table's index: connection slots found by key.
//!
//! The keys stay in the table's slab, so an entry is a slot number and 32 bits of its key's
//! hash (hashbrown's `HashTable`, 8 bytes an entry). The hash bits let the index grow and
//! rehash from its own entries, without reading each connection's key from the slab (a cache
//! miss each), and spare the slab a read when a probe meets another key's entry.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::table::FlowKey;

#[derive(Clone, Copy, Debug)]
struct Entry {
    slot: u32,
    hash: u32,
}

/// The table's hash for 32 stored bits: hashbrown takes a bucket from the low bits and a tag
/// from the top seven, so the 32 bits fill both halves.
fn widen(hash: u32) -> u64 {
    u64::from(hash) | (u64::from(hash) << 32)
}

fn rehash(e: &Entry) -> u64 {
    widen(e.hash)
}

#[derive(Debug, Default)]
pub struct FlowIndex {
    table: HashTable<Entry>,
    hasher: RandomState,
}

impl FlowIndex {
    fn hash(&self, key: &FlowKey) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// The slot holding `key`: `is_key(slot)` tells whether a slot's connection has it.
    pub fn find(&self, key: &FlowKey, is_key: impl Fn(u32) -> bool) -> Option<u32> {
        let hash = self.hash(key);
        self.table
            .find(widen(hash), |e| e.hash == hash && is_key(e.slot))
            .map(|e| e.slot)
    }

    /// Enter `slot` for `key`, which the index does not hold.
    pub fn insert(&mut self, key: &FlowKey, slot: u32) {
        let hash = self.hash(key);
        self.table
            .insert_unique(widen(hash), Entry { slot, hash }, rehash);
    }

    /// Take out `slot`, entered for `key`.
    pub fn remove(&mut self, key: &FlowKey, slot: u32) {
        let hash = self.hash(key);
        if let Ok(entry) = self.table.find_entry(widen(hash), |e| e.slot == slot) {
            entry.remove();
        }
    }

    /// Room for `additional` more entries without growing.
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, rehash);
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn clear(&mut self) {
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;

    fn key(i: u32) -> FlowKey {
        let a = Addr::from_slice(&i.to_be_bytes());
        let b = Addr::from_slice(&[10, 0, 0, 1]);
        FlowKey::ordered(a, 1000, b, 80, 6)
    }

    #[test]
    fn finds_what_it_holds_through_growth_and_removal() {
        let keys: Vec<FlowKey> = (0..20_000).map(key).collect();
        let mut index = FlowIndex::default();
        for (slot, k) in keys.iter().enumerate() {
            index.insert(k, slot as u32);
        }
        let find = |k: &FlowKey| index.find(k, |s| keys.get(s as usize) == Some(k));
        for (slot, k) in keys.iter().enumerate() {
            assert_eq!(find(k), Some(slot as u32));
        }
        for (slot, k) in keys.iter().enumerate().step_by(2) {
            index.remove(k, slot as u32);
        }
        assert_eq!(index.len(), 10_000);
        let find = |k: &FlowKey| index.find(k, |s| keys.get(s as usize) == Some(k));
        for (slot, k) in keys.iter().enumerate() {
            let want = (slot % 2 == 1).then_some(slot as u32);
            assert_eq!(find(k), want);
        }
        assert_eq!(index.find(&key(99_999), |_| true), None);
    }
}
