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
    /// The first bytes an address of some network may have, IPv4 then IPv6 (a bit each): an
    /// address outside every network, as a flood's spoofed sources mostly are, is answered
    /// with one look (every record asks twice, for `local_orig` and `local_resp`).
    first: [[u64; 4]; 2],
}

impl NetSet {
    pub fn new(nets: &[Net]) -> Self {
        let mut first = [[0u64; 4]; 2];
        for n in nets {
            let max = if n.v6 { 128 } else { 32 };
            let len = max - n.prefix; // the prefix length
            let net = n.addr.checked_shl(n.prefix).unwrap_or(0);
            let byte = u8::try_from(net.checked_shr(max - 8).unwrap_or(0) & 0xff).unwrap_or(0);
            let spread = if len >= 8 { 0 } else { (1u16 << (8 - len)) - 1 };
            let low = u16::from(byte) & !spread;
            for b in low..=(low | spread) {
                if let Some(word) = first
                    .get_mut(usize::from(n.v6))
                    .and_then(|f| f.get_mut(usize::from(b >> 6)))
                {
                    *word |= 1 << (b & 63);
                }
            }
        }
        NetSet {
            nets: nets.to_vec(),
            first,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, raw: &[u8]) -> bool {
        let v6 = raw.len() != 4;
        if let (4 | 16, Some(&b)) = (raw.len(), raw.first()) {
            let word = self
                .first
                .get(usize::from(v6))
                .and_then(|f| f.get(usize::from(b >> 6)));
            if word.is_none_or(|w| w & (1 << (b & 63)) == 0) {
                return false;
            }
        }
        let a = raw
            .iter()
            .take(16)
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        self.nets.iter().any(|n| n.contains(v6, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-byte filter never hides a member: every answer is the plain scan's.
    #[test]
    fn filtered_lookup_is_the_scan() {
        let texts = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "240.0.0.0/4",
            "255.255.255.255/32",
            "224.0.0.0/3",
            "2002::/24",
            "::/128",
            "::1/128",
            "64:ff9b:1::/48",
            "fc00::/7",
            "fe80::/10",
            "2001:db8::/32",
        ];
        let nets: Vec<Net> = texts.iter().filter_map(|t| Net::parse(t).ok()).collect();
        assert_eq!(nets.len(), texts.len());
        let sets = [
            NetSet::new(&nets),
            NetSet::new(&[]),
            NetSet::new(nets.get(..3).unwrap_or_default()),
        ];
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut raw = [0u8; 16];
            raw.iter_mut()
                .zip(x.to_be_bytes().iter().chain(&x.to_le_bytes()))
                .for_each(|(d, s)| *d = *s);
            // (every first byte, and addresses near the networks' edges)
            if let Some(b) = raw.get_mut(0) {
                *b = (i % 256) as u8;
            }
            for raw in [raw.get(..4).unwrap_or_default(), &raw[..]] {
                for set in &sets {
                    let a = raw.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
                    let scan = set.nets.iter().any(|n| n.contains(raw.len() != 4, a));
                    assert_eq!(set.contains(raw), scan, "{raw:?}");
                }
            }
        }
    }
}
