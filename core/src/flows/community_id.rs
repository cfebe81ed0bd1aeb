//! Community ID v1 flow hashes (<https://github.com/corelight/community-id-spec>), exactly as
//! `sniffer/flows/community_id.py` computes them (the reference these tests hold it to).
//!
//! The hash input is `seed(2) . saddr . daddr . proto(1) . 0(1) . sport(2) . dport(2)` in network
//! byte order, with the endpoints ordered so the smaller (address, port) comes first; port-less
//! protocols leave out the ports. ICMP and ICMPv6 map (type, code) to a port pair the way Zeek
//! does: request/reply types become (type, counterpart type) and are ordered like ports, every
//! other type is one-way (type, code) and is not reordered. SHA-1 comes from the RustCrypto
//! `sha1` crate (SHA-NI where the CPU has it); the digest's base64 is written here
//! (`push_base64`).

use sha1::{Digest, Sha1};

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP6: u8 = 58;
pub const SCTP: u8 = 132;

/// The ICMPv4 request/reply counterpart of a type (echo, router, timestamp, info, mask).
pub fn icmp4_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        8 => 0,
        0 => 8,
        10 => 9,
        9 => 10,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// The ICMPv6 request/reply counterpart of a type (echo, MLD, RS/RA, NS/NA, node information,
/// home agent discovery).
pub fn icmp6_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// `(sport, dport, one_way)` for an ICMP(v6) type and code, as the spec maps them.
pub fn icmp_ports(proto: u8, icmp_type: u16, icmp_code: u16) -> (u16, u16, bool) {
    let counterpart = if proto == ICMP {
        icmp4_counterpart(icmp_type)
    } else {
        icmp6_counterpart(icmp_type)
    };
    match counterpart {
        Some(c) => (icmp_type, c, false),
        None => (icmp_type, icmp_code, true),
    }
}

/// The Community ID v1 string (`"1:<base64 SHA1>"`) of one flow, or None when the addresses
/// are not both 4 or both 16 bytes. For ICMP/ICMPv6 `sport` is the type and `dport` the code
/// (or a conn.log responder port: the code is ignored for request/reply types).
pub fn community_id(
    src: &[u8],
    dst: &[u8],
    proto: u8,
    sport: u16,
    dport: u16,
    seed: u16,
) -> Option<String> {
    let mut id = String::with_capacity(30);
    community_id_into(&mut id, src, dst, proto, sport, dport, seed).then_some(id)
}

/// [`community_id`], appended to `out`; false (nothing written) when there is none.
pub fn community_id_into(
    out: &mut String,
    src: &[u8],
    dst: &[u8],
    proto: u8,
    sport: u16,
    dport: u16,
    seed: u16,
) -> bool {
    if src.len() != dst.len() || !(src.len() == 4 || src.len() == 16) {
        return false;
    }
    let (mut sport, mut dport, mut one_way) = (sport, dport, false);
    if proto == ICMP || proto == ICMP6 {
        (sport, dport, one_way) = icmp_ports(proto, sport, dport);
    }
    let has_ports = matches!(proto, ICMP | TCP | UDP | ICMP6 | SCTP);
    if !has_ports {
        sport = 0;
        dport = 0;
    }
    let (a, b, pa, pb) = if !one_way && (src, sport) > (dst, dport) {
        (dst, src, dport, sport)
    } else {
        (src, dst, sport, dport)
    };
    // The hashed message (seed, addresses, protocol, pad, ports) in one buffer: one update,
    // and the digest's base64 on the stack (this runs for every record).
    let mut msg = [0u8; 2 + 16 + 16 + 2 + 4];
    let mut n = 0;
    let ([p1, p2], [p3, p4]) = (pa.to_be_bytes(), pb.to_be_bytes());
    let ports: &[u8] = if has_ports { &[p1, p2, p3, p4] } else { &[] };
    for part in [&seed.to_be_bytes(), a, b, &[proto, 0], ports] {
        if let Some(dst) = msg.get_mut(n..n + part.len()) {
            dst.copy_from_slice(part);
            n += part.len();
        }
    }
    let digest = Sha1::digest(msg.get(..n).unwrap_or_default());
    out.push_str("1:");
    push_base64(out, &digest);
    true
}

/// Standard base64, padded, of `bytes` (at most 21: a digest), appended to `out`. Written
/// here, not through the `base64` crate: its general engine spent about 500 instructions on a
/// 20-byte digest, as much as the rest of the Community ID (a record each: a flood's millions).
fn push_base64(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = bytes.get(..21).unwrap_or(bytes);
    let mut text = [b'='; 28];
    for (chunk, group) in bytes.chunks(3).zip(text.chunks_mut(4)) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let v = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // (1, 2, 3 bytes: 2, 3, 4 symbols, the rest of the group padding)
        for (k, sym) in group.iter_mut().take(chunk.len() + 1).enumerate() {
            let i = (v >> (18 - 6 * k)) & 63;
            *sym = ALPHABET.get(i as usize).copied().unwrap_or(b'=');
        }
    }
    let len = bytes.len().div_ceil(3) * 4;
    out.push_str(std::str::from_utf8(text.get(..len).unwrap_or_default()).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn raw(a: &str) -> Vec<u8> {
        match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(v)) => v.octets().to_vec(),
            Ok(IpAddr::V6(v)) => v.octets().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Vectors computed by the Python reference (sniffer.flows.community_id), seeds 0 and 1.
    const VECTORS: &[(&str, &str, u8, u16, u16, &str, &str)] = &[
        (
            "10.0.0.1",
            "10.0.0.2",
            6,
            12345,
            80,
            "1:CpuULklTENbGdRpvp7gNcQd5ZqA=",
            "1:kWS7kJJ3U3Y6NBocGKW6txDSRAc=",
        ),
        (
            "10.0.0.2",
            "10.0.0.1",
            6,
            80,
            12345,
            "1:CpuULklTENbGdRpvp7gNcQd5ZqA=",
            "1:kWS7kJJ3U3Y6NBocGKW6txDSRAc=",
        ),
        (
            "192.168.1.1",
            "8.8.8.8",
            17,
            53000,
            53,
            "1:y2vq2OR/AB/YmLiLacJwmW8z2wU=",
            "1:fvlg9T0yz7rDsu+CIM0sArlw9VQ=",
        ),
        (
            "10.0.0.1",
            "10.0.0.2",
            1,
            8,
            0,
            "1:YcMyyWJfhc95EW1GfXt6jlZ3DiQ=",
            "1:mBrOsj9MaMJrgwFQ2kYifZ7GP3Q=",
        ),
        (
            "10.0.0.2",
            "10.0.0.1",
            1,
            0,
            0,
            "1:YcMyyWJfhc95EW1GfXt6jlZ3DiQ=",
            "1:mBrOsj9MaMJrgwFQ2kYifZ7GP3Q=",
        ),
        (
            "10.0.0.1",
            "10.0.0.2",
            1,
            3,
            1,
            "1:gkoOC4ouXvyYq0Ek/WqwbLoqcxM=",
            "1:pdABApKaCsV1iSZ9FDRrwPpVbyA=",
        ),
        (
            "fe80::1",
            "fe80::2",
            58,
            128,
            0,
            "1:3H+V/JVcqh/phPel5utt4dOKqOU=",
            "1:HHzHBM+PXiE1xxTuksszVZfBoNw=",
        ),
        (
            "2001:db8::2",
            "2001:db8::1",
            58,
            135,
            0,
            "1:piFQJmm/6+NlvVh+iLYDZMGiCm8=",
            "1:Nmj2ZE7MH7z5w0f4KY3DhAFFgW8=",
        ),
        (
            "2001:db8::1",
            "2001:db8::2",
            6,
            443,
            50000,
            "1:UFel+zfGDXB/GhABjlRQUzVNUI8=",
            "1:58i2Gqkf03OEl2nOjNxm8JM5/0w=",
        ),
        (
            "10.0.0.1",
            "10.0.0.2",
            47,
            0,
            0,
            "1:+KlEHDT0vJgzs/eNmzHq0aSpRYw=",
            "1:BuvF116GIMVorQSVAHuZSothg0Q=",
        ),
        (
            "10.0.0.1",
            "10.0.0.2",
            132,
            7,
            7,
            "1:idc8KohzvZNO+v0p82iNb9Z0ZV0=",
            "1:5XibisqS8Gb7pql97HFUzkjDK9Y=",
        ),
    ];

    /// RFC 4648's test vectors, and a SHA-1 digest's 28 characters.
    #[test]
    fn base64_as_rfc_4648() {
        let b64 = |b: &[u8]| {
            let mut s = String::new();
            push_base64(&mut s, b);
            s
        };
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(plain.as_bytes()), coded);
        }
        assert_eq!(b64(&Sha1::digest(b"abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(b64(&[0xFB, 0xFF, 0xBF]), "+/+/");
    }

    #[test]
    fn matches_the_python_reference() {
        for &(s, d, p, sp, dp, seed0, seed1) in VECTORS {
            assert_eq!(
                community_id(&raw(s), &raw(d), p, sp, dp, 0).as_deref(),
                Some(seed0)
            );
            assert_eq!(
                community_id(&raw(s), &raw(d), p, sp, dp, 1).as_deref(),
                Some(seed1)
            );
        }
    }

    #[test]
    fn the_spec_example() {
        // community-id-spec's README: TCP 128.232.110.120:34855 -> 66.35.250.204:80
        let got = community_id(
            &raw("128.232.110.120"),
            &raw("66.35.250.204"),
            TCP,
            34855,
            80,
            0,
        );
        assert_eq!(got.as_deref(), Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg="));
    }

    #[test]
    fn mixed_or_odd_address_lengths_are_refused() {
        assert_eq!(
            community_id(&raw("10.0.0.1"), &raw("::1"), TCP, 1, 2, 0),
            None
        );
        assert_eq!(community_id(&[1, 2, 3], &[1, 2, 3], TCP, 1, 2, 0), None);
    }
}
