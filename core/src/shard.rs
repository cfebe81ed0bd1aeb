//! `read --workers N`: which worker owns a frame (`sniffer/workers.py`'s `make_owner`, the
//! same function, so a worker's engine and the Python one shard alike).
//!
//! A symmetric hash of the outer IP addresses, so a connection's packets, its fragments, the
//! tunnels it rides in and the ICMP messages between its two hosts meet in one worker. Tunnels
//! all go to worker 0 (an inner connection may ride between several outer host pairs); so do
//! frames that do not decode to IP. Link layers without a fixed IP offset are decoded by a
//! private decoder to find the addresses (its counters are thrown away).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::decode::frag::FragReassembler;
use crate::decode::{self, Decoder};
use crate::tunnels;

const TEREDO: [u8; 4] = [0x20, 0x01, 0x00, 0x00]; // 2001:0::/32
const RAW_IP: [u32; 5] = [12, 14, 101, 228, 229];
/// The address-pair caches are cleared when they pass this many pairs.
const CACHE_MAX: usize = 65536;

/// The owner of each frame among `n` workers.
#[derive(Debug)]
pub struct Shard {
    n: u64,
    private: Option<Box<Decoder>>,
    settings: decode::Settings,
    tcp4: HashMap<[u8; 8], u32, RandomState>,
    tcp6: HashMap<[u8; 32], u32, RandomState>,
}

fn be(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |x, c| (x << 8) | u128::from(*c))
}

fn get(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

impl Shard {
    pub fn new(n: u32, settings: &decode::Settings) -> Self {
        Shard {
            n: u64::from(n.max(1)),
            private: None,
            settings: settings.clone(),
            tcp4: HashMap::default(),
            tcp6: HashMap::default(),
        }
    }

    /// The number of workers (`n`).
    pub fn workers(&self) -> u64 {
        self.n
    }

    /// The private decoder's pending fragments, for an exported engine state (they decide
    /// the owner of the fragment that completes a datagram).
    pub fn frag(&self) -> Option<&FragReassembler> {
        self.private.as_ref().map(|d| &d.frag)
    }

    /// Take over the pending fragments of an exported state ([`Shard::frag`]).
    pub fn restore_frag(&mut self, saved: FragReassembler) -> Result<(), String> {
        let settings = &self.settings;
        let dec = self
            .private
            .get_or_insert_with(|| Box::new(Decoder::new(settings)));
        dec.frag.restore(saved)
    }

    /// The worker of a packet between `src` and `dst` (`l4`: the transport bytes, read for
    /// UDP tunnels only).
    fn classify(&self, src: &[u8], dst: &[u8], proto: u8, l4: &[u8]) -> u32 {
        if tunnels::ip_proto(proto).is_some() {
            return 0;
        }
        if proto == 17 && l4.len() >= 8 {
            let (sp, dp) = (
                u16::from_be_bytes([get(l4, 0), get(l4, 1)]),
                u16::from_be_bytes([get(l4, 2), get(l4, 3)]),
            );
            if tunnels::udp_port(sp).is_some() || tunnels::udp_port(dp).is_some() {
                return 0;
            }
            if tunnels::udp_detect(l4.get(8..).unwrap_or_default()).is_some() {
                return 0;
            }
        }
        let x: u128 = if src.len() == 16 {
            if src.get(..4) == Some(&TEREDO) || dst.get(..4) == Some(&TEREDO) {
                return 0;
            }
            let x = be(src) ^ be(dst);
            (x ^ (x >> 64)) & 0xFFFF_FFFF_FFFF_FFFF
        } else {
            be(src) ^ be(dst)
        };
        let h = (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % u128::from(self.n);
        u32::try_from(h).unwrap_or(0)
    }

    fn decoded(&mut self, linktype: u32, data: &[u8]) -> u32 {
        let settings = &self.settings;
        let dec = self
            .private
            .get_or_insert_with(|| Box::new(Decoder::new(settings)));
        let wirelen = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let pkt = dec.decode(0.0, linktype, data, wirelen);
        dec.more.clear();
        match pkt {
            // not IP, damaged, or a fragment still waiting: worker 0
            None => 0,
            Some(p) => {
                let l4 = p.l4(data).to_vec();
                self.classify(p.src.as_bytes(), p.dst.as_bytes(), p.proto, &l4)
            }
        }
    }

    /// The worker that owns the frame.
    pub fn owner(&mut self, linktype: u32, data: &[u8]) -> u32 {
        // The common cases first, cached by address pair: TCP on untagged Ethernet, IPv4 not
        // a fragment, IPv6 without extension headers.
        if linktype == 1
            && data.get(23) == Some(&6)
            && data.get(12..14) == Some(&[8, 0])
            && get(data, 20) & 0x3F == 0
            && get(data, 21) == 0
        {
            if let Some(pair) = data.get(26..34).and_then(|p| <[u8; 8]>::try_from(p).ok()) {
                if let Some(w) = self.tcp4.get(&pair) {
                    return *w;
                }
                if self.tcp4.len() > CACHE_MAX {
                    self.tcp4.clear();
                }
                let (s, d) = pair.split_at(4);
                let w = self.classify(s, d, 6, &[]);
                self.tcp4.insert(pair, w);
                return w;
            }
        }
        if linktype == 1 && data.get(20) == Some(&6) && data.get(12..14) == Some(&[0x86, 0xdd]) {
            if let Some(pair) = data.get(22..54).and_then(|p| <[u8; 32]>::try_from(p).ok()) {
                if let Some(w) = self.tcp6.get(&pair) {
                    return *w;
                }
                if self.tcp6.len() > CACHE_MAX {
                    self.tcp6.clear();
                }
                let (s, d) = pair.split_at(16);
                let w = self.classify(s, d, 6, &[]);
                self.tcp6.insert(pair, w);
                return w;
            }
        }
        let (off, et) = if linktype == 1 && data.len() >= 34 {
            let mut off = 14;
            let mut et = u16::from_be_bytes([get(data, 12), get(data, 13)]);
            while matches!(et, 0x8100 | 0x88A8 | 0x9100) && data.len() >= off + 4 {
                et = u16::from_be_bytes([get(data, off + 2), get(data, off + 3)]);
                off += 4;
            }
            (off, et)
        } else if RAW_IP.contains(&linktype) && !data.is_empty() {
            let et = match get(data, 0) >> 4 {
                4 => 0x0800,
                6 => 0x86DD,
                _ => 0,
            };
            (0, et)
        } else if linktype == 113 && data.len() >= 16 {
            (16, u16::from_be_bytes([get(data, 14), get(data, 15)]))
        } else if linktype == 276 && data.len() >= 20 {
            (20, u16::from_be_bytes([get(data, 0), get(data, 1)]))
        } else {
            return self.decoded(linktype, data);
        };
        let at = |a: usize, b: usize| data.get(off + a..off + b).unwrap_or_default();
        if et == 0x0800 && data.len() >= off + 20 {
            let ihl = usize::from(get(data, off) & 15) * 4;
            if get(data, off + 6) & 0x3F != 0 || get(data, off + 7) != 0 {
                return self.classify(at(12, 16), at(16, 20), 0, &[]); // a fragment
            }
            let proto = get(data, off + 9);
            let l4 = if proto == 17 {
                data.get(off + ihl..).unwrap_or_default()
            } else {
                &[]
            };
            return self.classify(at(12, 16), at(16, 20), proto, l4);
        }
        if et == 0x86DD && data.len() >= off + 40 {
            let proto = get(data, off + 6);
            let l4 = if proto == 17 {
                data.get(off + 40..).unwrap_or_default()
            } else {
                &[]
            };
            return self.classify(at(8, 24), at(24, 40), proto, l4);
        }
        self.decoded(linktype, data)
    }
}
