//! Membership of raw addresses in CIDR networks (`sniffer/netset.py`): the
//! ignore-checksums networks, looked up with an IPv4 header's source address.

use std::net::IpAddr;

/// One network: address bits above the prefix, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    v6: bool,
    addr: u128,
    prefix: u32,
}

impl Net {
    /// `a.b.c.d/n`, `x::y/n` or a bare address; host bits are ignored (Python's
    /// `ip_network(text, strict=False)`).
    pub fn parse(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let bad = || format!("not a network in CIDR form: {text:?}");
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let (v6, bits, max) = match addr {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        let prefix = match p {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
                p.parse::<u32>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        let shift = max - prefix;
        Ok(Net {
            v6,
            addr: bits.checked_shr(shift).unwrap_or(0),
            prefix: shift,
        })
    }

    fn contains(&self, v6: bool, a: u128) -> bool {
        self.v6 == v6 && a.checked_shr(self.prefix).unwrap_or(0) == self.addr
    }
}

/// A set of networks; `contains(raw)` for a 4- or 16-byte address.
#[derive(Clone, Debug, Default)]
pub struct NetSet {
    nets: Vec<Net>,
}

impl NetSet {
    pub fn new(nets: &[Net]) -> Self {
        NetSet {
            nets: nets.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, raw: &[u8]) -> bool {
        let v6 = raw.len() != 4;
        let a = raw
            .iter()
            .take(16)
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        self.nets.iter().any(|n| n.contains(v6, a))
    }
}
