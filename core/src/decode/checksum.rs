//! Internet checksums (RFC 1071), as `sniffer/decode/checksum.py`: sums reduced modulo 0xFFFF,
//! where 0 stands for both +0 and -0 (all ones).
//!
//! Because 2^16 == 1 (mod 0xFFFF), wider words sum to the same value modulo 0xFFFF as their
//! 16-bit halves (the Python's big-integer trick); `ones_sum` adds 32-bit words four at a time.

const TCP_UDP_ICMP: (u8, u8, u8) = (6, 17, 1);

/// The sum of the big-endian 16-bit words of `data` (an odd last byte padded with zero),
/// modulo 0xFFFF.
pub fn ones_sum(data: &[u8]) -> u64 {
    // Summed as little-endian 32-bit words in four independent accumulators (RFC 1071: the
    // sum is byte-order independent up to a rotation), then folded to 16 bits and rotated back
    // to the big-endian sum: swapping a word's bytes multiplies it by 2^8 modulo 0xFFFF, and
    // 2^8 is its own inverse there. A u64 holds 2^32 words' worth: far beyond any datagram.
    let mut acc = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (a, w) in acc.iter_mut().zip(c.chunks_exact(4)) {
            if let Ok(w) = <[u8; 4]>::try_from(w) {
                *a += u64::from(u32::from_le_bytes(w));
            }
        }
    }
    let mut s: u64 = acc.iter().sum();
    for w in chunks.remainder().chunks(2) {
        s += match w {
            [a, b] => u64::from(u16::from_le_bytes([*a, *b])),
            [a] => u64::from(*a),
            _ => 0,
        };
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    let be = ((s & 0xFF) << 8) | (s >> 8);
    be % 0xFFFF
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// True if the TCP/UDP/ICMP/ICMPv6 checksum of `l4` is right or cannot or need not be checked
/// (`l4_checksum_ok` of the Python, case for case): `src`/`dst` are 4 or 16 bytes and pick
/// the pseudo-header; `l4_len` is the transport length the IP header claims.
pub fn l4_checksum_ok(src: &[u8], dst: &[u8], proto: u8, l4: &[u8], l4_len: usize) -> bool {
    let (_tcp, udp, icmp) = TCP_UDP_ICMP;
    if l4.len() < l4_len {
        return true; // snaplen-cut: not verifiable, accepted as Zeek does
    }
    let l4 = l4.get(..l4_len).unwrap_or_default();
    let v4 = src.len() == 4;
    let body = ones_sum(l4);
    let (total, zero) = if proto == icmp && v4 {
        (body, body == 0 && all_zero(l4))
    } else {
        if proto == udp && v4 && l4_len >= 8 && matches!(l4.get(6..8), Some([0, 0])) {
            return true; // UDP over IPv4 without a checksum
        }
        let len_mod = u64::try_from(l4_len % 0xFFFF).unwrap_or(0);
        let t = (ones_sum(src) + ones_sum(dst) + u64::from(proto) + len_mod + body) % 0xFFFF;
        let zero =
            t == 0 && proto == 0 && l4_len == 0 && all_zero(src) && all_zero(dst) && all_zero(l4);
        (t, zero)
    };
    // an all-zero sum is +0, not all ones: invalid
    !zero && total == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &[u8]) -> u64 {
        let mut s: u64 = 0;
        for w in data.chunks(2) {
            s += match w {
                [a, b] => u64::from(u16::from_be_bytes([*a, *b])),
                [a] => u64::from(*a) << 8,
                _ => 0,
            };
        }
        s % 0xFFFF
    }

    #[test]
    fn ones_sum_matches_the_word_sum_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            let d = data.get(..n).unwrap_or_default();
            assert_eq!(ones_sum(d), naive(d), "length {n}");
        }
        assert_eq!(ones_sum(&[0xFF, 0xFF]), 0);
    }

    /// A UDP/IPv4 datagram with its checksum filled in: verifies; one bit off: fails.
    #[test]
    fn udp_and_tcp_pseudo_header() {
        let src = [10, 0, 0, 1];
        let dst = [10, 0, 0, 2];
        let mut udp = vec![
            0x04, 0x00, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, b'a', b'b', b'c',
        ];
        let s = (ones_sum(&src) + ones_sum(&dst) + 17 + 11 + ones_sum(&udp)) % 0xFFFF;
        let c = 0xFFFF - u16::try_from(s).unwrap_or(0);
        if let Some(f) = udp.get_mut(6..8) {
            f.copy_from_slice(&c.to_be_bytes());
        }
        assert!(l4_checksum_ok(&src, &dst, 17, &udp, 11));
        if let Some(b) = udp.get_mut(8) {
            *b ^= 1;
        }
        assert!(!l4_checksum_ok(&src, &dst, 17, &udp, 11));
        // a zero UDP checksum over IPv4 means none; over IPv6 it is wrong
        if let Some(f) = udp.get_mut(6..8) {
            f.copy_from_slice(&[0, 0]);
        }
        assert!(l4_checksum_ok(&src, &dst, 17, &udp, 11));
        assert!(!l4_checksum_ok(&[0; 16], &[0; 16], 17, &udp, 11));
        // cut by the snaplen: accepted
        assert!(l4_checksum_ok(
            &src,
            &dst,
            6,
            udp.get(..4).unwrap_or_default(),
            11
        ));
        // all zero is +0, not all ones
        assert!(!l4_checksum_ok(&[0; 4], &[0; 4], 1, &[0; 8], 8));
        assert!(!l4_checksum_ok(&[0; 16], &[0; 16], 0, &[], 0));
        assert!(l4_checksum_ok(&[0; 4], &[0; 4], 1, &[0xFF, 0xFF, 0, 0], 4));
    }
}
