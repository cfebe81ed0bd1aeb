//! The decoder's tricky parts, and frames of any shape never panicking it. (The full
//! comparison with the Python decoder is tests/test_core_decode.py.)

use super::checksum::ones_sum;
use super::*;

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, id: u16, payload: &[u8]) -> Vec<u8> {
    let tot = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&tot.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = 0xFFFF - u16::try_from(ones_sum(&h)).unwrap_or(0);
    if let Some(f) = h.get_mut(10..12) {
        f.copy_from_slice(&c.to_be_bytes());
    }
    h.extend_from_slice(payload);
    h
}

fn ipv6(nh: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let plen = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&plen.to_be_bytes());
    h.extend_from_slice(&[nh, 33]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn eth(et: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn wl(f: &[u8]) -> i64 {
    i64::try_from(f.len()).unwrap_or(0)
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [192, 0, 2, 9];
const S6: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const D6: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn names(d: &Decoder) -> Vec<(String, u64)> {
    d.stats.iter().collect()
}

#[test]
fn ethernet_vlan_ipv4_fast_path_and_checksums() {
    let tcp = [0u8; 20];
    let mut ip = ipv4(A, B, 6, 0, 1, &tcp);
    let mut body = vec![0, 5, 0x08, 0x00]; // one 802.1Q tag
    body.extend_from_slice(&ip);
    body.extend_from_slice(&[0; 6]); // Ethernet padding: not part of l4
    let f = eth(0x8100, &body);
    let mut d = Decoder::new(&Settings::default());
    let p = d.decode(1.0, 1, &f, wl(&f));
    let Some(p) = p else {
        panic!("no packet: {:?}", names(&d));
    };
    assert_eq!((p.src.as_bytes(), p.dst.as_bytes()), (&A[..], &B[..]));
    assert_eq!((p.proto, p.ip_len, p.l4_len, p.ttl), (6, 40, 20, 64));
    assert_eq!(p.l4(&f), &tcp[..]);
    assert!(p.datagram.is_none());

    // a bad header checksum: dropped and counted, unless ignored (everywhere, or for the net)
    if let Some(b) = ip.get_mut(10) {
        *b ^= 1;
    }
    let f = eth(0x0800, &ip);
    assert!(d.decode(1.0, 1, &f, wl(&f)).is_none());
    assert_eq!(d.stats.get(Reason::BadIpChecksum), 1);
    let ignore = Settings {
        ignore_checksums: true,
        ..Settings::default()
    };
    assert!(Decoder::new(&ignore).decode(1.0, 1, &f, wl(&f)).is_some());
    let nets = Settings {
        ignore_checksums_nets: vec![Net::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"))],
        ..Settings::default()
    };
    assert!(Decoder::new(&nets).decode(1.0, 1, &f, wl(&f)).is_some());

    // the wire length shorter than the IP length; a frame cut in the IP header
    assert!(d.decode(1.0, 1, &f, wl(&f) - 1).is_none());
    assert!(d
        .decode(1.0, 1, f.get(..30).unwrap_or_default(), 30)
        .is_none());
    assert_eq!(d.stats.get(Reason::TruncatedIpLen), 1);
    assert_eq!(d.stats.get(Reason::TruncatedIp), 1);
}

fn ext(nh: u8, len8: u8, fill: u8) -> Vec<u8> {
    let mut e = vec![nh, len8];
    e.resize(8 * (usize::from(len8) + 1), fill);
    e
}

#[test]
fn ipv6_extension_chain() {
    let udp = [0u8, 53, 0, 53, 0, 8, 0, 0];
    let mut d = Decoder::new(&Settings::default());
    // hop-by-hop, destination options, AH (length in 4-octet units, minus 2), then UDP
    let mut chain = ext(60, 0, 1);
    chain.extend(ext(51, 1, 0));
    let mut ah = vec![17, 2];
    ah.resize(16, 0);
    chain.extend(ah);
    chain.extend_from_slice(&udp);
    let f = eth(0x86DD, &ipv6(0, S6, D6, &chain));
    let p = d.decode(1.0, 1, &f, wl(&f));
    let Some(p) = p else {
        panic!("{:?}", names(&d))
    };
    assert_eq!((p.proto, p.l4_len, p.ip_len), (17, 8, 40 + 48));
    assert_eq!(p.l4(&f), &udp[..]);

    // a type-0 routing header with segments left: the final destination is the responder
    let mut rh = vec![17, 4, 0, 1, 0, 0, 0, 0]; // two addresses: the last is final
    rh.extend_from_slice(&[0xAA; 16]);
    rh.extend_from_slice(&[0xBB; 16]);
    rh.extend_from_slice(&udp);
    let f = eth(0x86DD, &ipv6(43, S6, D6, &rh));
    let p = d
        .decode(1.0, 1, &f, wl(&f))
        .unwrap_or_else(|| panic!("routing"));
    assert_eq!(p.dst.as_bytes(), &[0xBB; 16][..]);

    // an atomic fragment (offset 0, no MF) is stepped over
    let mut af = vec![17, 0, 0, 0, 0, 0, 0, 7];
    af.extend_from_slice(&udp);
    let f = eth(0x86DD, &ipv6(44, S6, D6, &af));
    assert_eq!(d.decode(1.0, 1, &f, wl(&f)).map(|p| p.proto), Some(17));
    assert_eq!(d.stats.get(Reason::IpFragments), 0);

    // chains ending in ESP, No Next Header, Mobility: counted, no packet
    for (nh, r) in [
        (50, Reason::Ipv6Esp),
        (59, Reason::Ipv6NoNext),
        (135, Reason::Ipv6Mobility),
    ] {
        let mut c = ext(nh, 0, 0);
        c.extend_from_slice(&udp);
        let f = eth(0x86DD, &ipv6(0, S6, D6, &c));
        assert!(d.decode(1.0, 1, &f, wl(&f)).is_none());
        assert_eq!(d.stats.get(r), 1);
    }
    // a header running past the payload length / past the captured bytes
    let c = ext(17, 3, 0); // 32 bytes
    let mut pkt = ipv6(0, S6, D6, &c);
    if let Some(l) = pkt.get_mut(4..6) {
        l.copy_from_slice(&16u16.to_be_bytes());
    }
    let f = eth(0x86DD, &pkt);
    assert!(d.decode(1.0, 1, &f, wl(&f)).is_none());
    assert_eq!(d.stats.get(Reason::InvalidIpHeaderSize), 1);
    let f = eth(0x86DD, &ipv6(0, S6, D6, &c));
    let cut = f.get(..f.len() - 8).unwrap_or_default();
    assert!(d.decode(1.0, 1, cut, wl(&f)).is_none());
    assert_eq!(d.stats.get(Reason::InternallyTruncatedHeader), 1);
}

fn frag6(nh: u8, off: u16, more: bool, id: u32, data: &[u8]) -> Vec<u8> {
    let mut f = vec![nh, 0];
    f.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn fragments_reassembled_v4_and_v6() {
    let data: Vec<u8> = (0..64u8).collect();
    let (a, b) = (
        data.get(..24).unwrap_or_default(),
        data.get(24..).unwrap_or_default(),
    );
    let mut d = Decoder::new(&Settings::default());
    // IPv4, last fragment first
    let f2 = eth(0x0800, &ipv4(A, B, 17, 3, 9, b));
    let f1 = eth(0x0800, &ipv4(A, B, 17, 0x2000, 9, a));
    assert!(d.decode(1.0, 1, &f2, wl(&f2)).is_none());
    let p = d
        .decode(1.5, 1, &f1, wl(&f1))
        .unwrap_or_else(|| panic!("{:?}", names(&d)));
    assert_eq!((p.ip_len, p.l4_len, p.proto), (84, 64, 17));
    assert_eq!(p.l4(&[]), &data[..]);
    // IPv6 with a hop-by-hop header in the unfragmentable part
    let mut p1 = ext(44, 0, 0);
    p1.extend(frag6(17, 0, true, 77, a));
    let mut p2 = ext(44, 0, 0);
    p2.extend(frag6(17, 24, false, 77, b));
    let g1 = eth(0x86DD, &ipv6(0, S6, D6, &p1));
    let g2 = eth(0x86DD, &ipv6(0, S6, D6, &p2));
    assert!(d.decode(2.0, 1, &g1, wl(&g1)).is_none());
    let p = d
        .decode(2.0, 1, &g2, wl(&g2))
        .unwrap_or_else(|| panic!("{:?}", names(&d)));
    assert_eq!((p.ip_len, p.l4_len, p.proto), (40 + 8 + 64, 64, 17));
    assert_eq!(d.stats.get(Reason::FragmentsReassembled), 2);
    assert_eq!(d.stats.get(Reason::IpFragments), 4);
    // a first fragment that never completes: counted at the end
    assert!(d.decode(3.0, 1, &g1, wl(&g1)).is_none());
    d.flush();
    assert_eq!(d.stats.get(Reason::FragmentIncomplete), 1);
    // cut by the snaplen: only the first is kept, as is
    let cut = f1.get(..f1.len() - 4).unwrap_or_default();
    let p = d
        .decode(4.0, 1, cut, wl(&f1))
        .unwrap_or_else(|| panic!("cut"));
    assert_eq!((p.l4_len, p.l4(cut).len()), (24, 20));
    assert!(d
        .decode(4.0, 1, f2.get(..f2.len() - 4).unwrap_or_default(), wl(&f2))
        .is_none());
    assert_eq!(d.stats.get(Reason::IncompletelyCapturedFragment), 2);
}

#[test]
fn link_types() {
    let ip = ipv4(A, B, 17, 0, 1, &[0; 8]);
    let mut d = Decoder::new(&Settings::default());
    let mut ok = |lt: u32, f: Vec<u8>| {
        let r = d.decode(1.0, lt, &f, wl(&f));
        assert!(r.is_some(), "linktype {lt}: {:?}", names(&d));
    };
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    ok(113, [sll, ip.clone()].concat());
    ok(276, [vec![0x08, 0x00], vec![0; 18], ip.clone()].concat());
    ok(0, [vec![2, 0, 0, 0], ip.clone()].concat()); // little-endian host
    ok(0, [vec![0, 0, 0, 2], ip.clone()].concat()); // big-endian host
    ok(108, [vec![0, 0, 0, 2], ip.clone()].concat());
    ok(101, ip.clone());
    ok(9, [vec![0xFF, 0x03, 0x00, 0x21], ip.clone()].concat());
    ok(9, [vec![0x21], ip.clone()].concat()); // compressed protocol field
    ok(104, [vec![0x0F, 0x00, 0x08, 0x00], ip.clone()].concat());
    ok(10, [vec![0; 21], ip.clone()].concat());
    // PPPoE, MPLS (two labels), QinQ, LLC/SNAP, PBB
    ok(
        1,
        eth(
            0x8864,
            &[vec![0x11, 0, 0, 1, 0, 30, 0x00, 0x21], ip.clone()].concat(),
        ),
    );
    ok(
        1,
        eth(
            0x8847,
            &[vec![0, 0, 0x10, 64, 0, 0, 0x21, 64], ip.clone()].concat(),
        ),
    );
    ok(
        1,
        eth(
            0x88A8,
            &[vec![0, 1, 0x81, 0, 0, 2, 0x08, 0], ip.clone()].concat(),
        ),
    );
    let snap = [vec![0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00], ip.clone()].concat();
    ok(1, eth(u16::try_from(snap.len()).unwrap_or(0), &snap));
    ok(1, eth(0x88E7, &[vec![0; 4], eth(0x0800, &ip)].concat()));
    // unknown ones, by their Python names
    let f = eth(0x894F, &ip);
    assert!(d.decode(1.0, 1, &f, wl(&f)).is_none());
    assert!(d.decode(1.0, 147, &ip, wl(&ip)).is_none());
    let f = eth(0x0806, &ip);
    assert!(d.decode(1.0, 1, &f, wl(&f)).is_none());
    let got = names(&d);
    for want in [
        "unsupported_ethertype:0x894f",
        "unsupported_linktype:147",
        "non_ip",
    ] {
        assert!(
            got.iter().any(|(k, v)| k == want && *v == 1),
            "{want}: {got:?}"
        );
    }
}

#[test]
fn amsdu_gives_more_packets() {
    let ip1 = ipv4(A, B, 17, 0, 1, &[1; 8]);
    let ip2 = ipv4(B, A, 6, 0, 2, &[2; 20]);
    let mut f = vec![0x88, 0x01];
    f.resize(24, 0);
    f.extend_from_slice(&[0x80, 0]); // QoS control: A-MSDU
    for ip in [&ip1, &ip2] {
        let sub = [vec![0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00], ip.clone()].concat();
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&u16::try_from(sub.len()).unwrap_or(0).to_be_bytes());
        f.extend_from_slice(&sub);
        f.resize(f.len() + (4 - (14 + sub.len()) % 4) % 4, 0);
    }
    let mut d = Decoder::new(&Settings::default());
    let p = d
        .decode(1.0, 105, &f, wl(&f))
        .unwrap_or_else(|| panic!("{:?}", names(&d)));
    assert_eq!((p.proto, p.l4(&f)), (17, &[1u8; 8][..]));
    assert_eq!(d.more.len(), 1);
    let m = d.more.first().unwrap_or_else(|| panic!("more"));
    assert_eq!((m.proto, m.l4(&f)), (6, &[2u8; 20][..]));
}

/// A small deterministic generator (xorshift64*): no crate needed for noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// 20,000 frames, random and mutated from valid ones, for every link type and some unknown
/// ones, odd wire lengths and times, small fragment bounds: no panic (a panic fails the test).
#[test]
fn any_frame_never_panics() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let udp = [0u8, 53, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let mut seeds: Vec<Vec<u8>> = vec![
        ipv4(A, B, 17, 0, 1, &udp),
        ipv4(A, B, 17, 0x2000, 5, &udp),
        ipv4(A, B, 17, 0x0002, 5, &udp),
        ipv6(17, S6, D6, &udp),
        ipv6(
            0,
            S6,
            D6,
            &[ext(43, 2, 0), ext(44, 0, 0), frag6(17, 8, true, 3, &udp)].concat(),
        ),
        ipv6(44, S6, D6, &frag6(17, 0, true, 3, &udp)),
    ];
    let ips = seeds.clone();
    for ip in &ips {
        seeds.push(eth(0x0800, ip));
        seeds.push(eth(0x8100, &[vec![0, 1, 0x08, 0], ip.clone()].concat()));
        seeds.push(eth(
            0x8864,
            &[vec![0x11, 0, 0, 1, 0, 30, 0x00, 0x21], ip.clone()].concat(),
        ));
        seeds.push(eth(0x8847, &[vec![0, 0, 0x11, 64], ip.clone()].concat()));
        seeds.push(
            [
                vec![0x88, 0x01],
                vec![0; 22],
                vec![0x80, 0],
                vec![0; 12],
                vec![0, 40],
                vec![0xAA, 0xAA, 3, 0, 0, 0, 8, 0],
                ip.clone(),
            ]
            .concat(),
        );
        seeds.push([vec![2, 0, 0, 0, 0, 0, 0, 0], ip.clone()].concat());
    }
    let mut linktypes: Vec<u32> = links::LINKTYPES.to_vec();
    linktypes.extend([2, 147, 65535, 1 << 20]);
    let small = Settings {
        frag_timeout: 1.0,
        frag_max_datagrams: 2,
        frag_max_bytes: 0,
        ..Settings::default()
    };
    let ignore = Settings {
        ignore_checksums: true,
        ..small.clone()
    };
    let mut decoders = [Decoder::new(&small), Decoder::new(&ignore)];
    let mut ts;
    let mut packets = 0usize;
    for i in 0..20_000usize {
        let mut f: Vec<u8> = if i % 4 == 0 {
            (0..rng.below(120))
                .map(|_| (rng.next() & 0xFF) as u8)
                .collect()
        } else {
            let s = seeds
                .get(rng.below(seeds.len()))
                .cloned()
                .unwrap_or_default();
            let mut s = s;
            for _ in 0..1 + rng.below(4) {
                if s.is_empty() {
                    break;
                }
                let at = rng.below(s.len().min(64));
                if let Some(b) = s.get_mut(at) {
                    *b = (rng.next() & 0xFF) as u8;
                }
            }
            if rng.below(4) == 0 {
                s.truncate(rng.below(s.len() + 1));
            }
            s
        };
        if rng.below(50) == 0 {
            f.extend(std::iter::repeat_n(0u8, 70_000)); // longer than any IP datagram
        }
        let lt = if i % 3 == 0 {
            linktypes
                .get(rng.below(linktypes.len()))
                .copied()
                .unwrap_or(1)
        } else {
            [1, 101, 105, 127, 239, 0][rng.below(6)]
        };
        let wirelen = match rng.below(5) {
            0 => [-1, i64::MIN][rng.below(2)],
            1 => i64::MAX,
            2 => wl(&f) - 10,
            _ => wl(&f),
        };
        // mostly forward in time, sometimes back, now and then not a number
        let t = f64::from(u32::try_from(i).unwrap_or(0)) * 0.3;
        ts = [t, t, t + 2.0, t - 5.0, f64::NAN][rng.below(5)];
        for d in &mut decoders {
            if let Some(p) = d.decode(ts, lt, &f, wirelen) {
                let _ = p.l4(&f);
                packets += 1;
            }
            d.more.clear();
        }
    }
    for d in &mut decoders {
        d.flush();
        assert!(d.frag.is_empty());
    }
    assert!(packets > 100, "{packets}");
}

/// `Addr::before` is the order of the addresses' bytes, lengths mixed.
#[test]
fn address_order_is_the_bytes_order() {
    let addrs: Vec<Addr> = [
        &[0u8, 0, 0, 0][..],
        &[10, 0, 0, 1],
        &[10, 0, 0, 2],
        &[255, 255, 255, 255],
        &[0; 16],
        &[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        &[255; 16],
    ]
    .iter()
    .map(|b| Addr::from_slice(b))
    .collect();
    for a in &addrs {
        for b in &addrs {
            assert_eq!(a.before(b), a.as_bytes() < b.as_bytes(), "{a:?} {b:?}");
        }
    }
}
