//! The decode stage: link layer + IP -> [`Packet`] (the Python tuple `(src, dst, proto,
//! ip_len, l4, l4_len, ttl)`), with exactly the semantics of `sniffer/decode/` (the
//! reference, held to it by tests/test_core_decode.py): the same packets, the same drops
//! counted under the same names, the same `more` packets, the same settings honoured.
//!
//! Modules mirror the Python ones: `links` (the LINKTYPE and ethertype registries and the
//! common link types), `l2` (the rarer link layers), `ip` (IPv4, IPv6 and its extension
//! chain: the decoder proper), `frag` (reassembly and its bounds), `checksum`, `stats`.
//!
//! Nothing here allocates for an Ethernet/VLAN/IPv4/IPv6 frame: a packet's addresses are
//! inline and its `l4` a range of the frame; only a reassembled datagram owns its bytes.

pub mod checksum;
pub mod frag;
pub mod ip;
pub mod l2;
pub mod links;
pub mod netset;
pub mod stats;

use std::ops::Range;

pub use ip::Decoder;
pub use netset::{Net, NetSet};
pub use stats::{Counters, Reason};

/// A raw IPv4 or IPv6 address (4 or 16 bytes), inline.
#[derive(Clone, Copy, Debug, Default)]
pub struct Addr {
    bytes: [u8; 16],
    len: u8,
}

// Compared and hashed as two machine words and the length (the flow table's key does this for
// every packet; a derived impl compares and hashes byte by byte).
impl PartialEq for Addr {
    fn eq(&self, o: &Self) -> bool {
        u128::from_ne_bytes(self.bytes) == u128::from_ne_bytes(o.bytes) && self.len == o.len
    }
}

impl Eq for Addr {}

impl std::hash::Hash for Addr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.bytes));
        h.write_u8(self.len);
    }
}

impl Addr {
    /// The first 16 bytes of `b` at most (callers pass 4 or 16).
    pub fn from_slice(b: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        let mut len = 0u8;
        for (d, s) in bytes.iter_mut().zip(b) {
            *d = *s;
            len += 1;
        }
        Addr { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// `self.as_bytes() < o.as_bytes()`, compared as one 128-bit number and the length (the
    /// unused bytes are zero, so this is the bytes' order): the flow key's per-packet test.
    pub fn before(&self, o: &Self) -> bool {
        (u128::from_be_bytes(self.bytes), self.len) < (u128::from_be_bytes(o.bytes), o.len)
    }
}

/// One decoded IP packet. `l4` is a range of the frame it came from, or, for a reassembled
/// datagram, of `datagram`: [`Packet::l4`] gives the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub ip_len: u64,
    pub l4: Range<usize>,
    pub l4_len: usize,
    pub ttl: u8,
    pub datagram: Option<Vec<u8>>,
}

impl Packet {
    /// The transport bytes as captured, given the frame the packet was decoded from.
    pub fn l4<'a>(&'a self, frame: &'a [u8]) -> &'a [u8] {
        let buf = self.datagram.as_deref().unwrap_or(frame);
        buf.get(self.l4.clone()).unwrap_or_default()
    }
}

/// The settings the decoder reads (sniffer/config.py's `Settings` fields of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub ignore_checksums: bool,
    pub ignore_checksums_nets: Vec<Net>,
    pub frag_timeout: f64,
    pub frag_max_datagrams: i64,
    pub frag_max_bytes: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ignore_checksums: false,
            ignore_checksums_nets: Vec::new(),
            frag_timeout: 300.0,
            frag_max_datagrams: frag::DEFAULT_MAX_DATAGRAMS,
            frag_max_bytes: frag::DEFAULT_MAX_BYTES,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
