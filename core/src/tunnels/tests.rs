//! The tunnel module held to the Python reference (`vectors.rs`, made by
//! tests/gen_tunnel_vectors.py) and a few hand-written cases.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use super::*;

mod vectors {
    include!("vectors.rs");
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A Rust answer in the vectors' notation.
fn show(decap: Decap) -> String {
    match decap {
        Decap::Inner { link, off, kind } => format!("{link} {off} {}", kind.name()),
        Decap::Anomaly(name) => format!("!{name}"),
        Decap::Nothing => "-".to_owned(),
    }
}

fn by_name(name: &str) -> Decapsulator {
    *Decapsulator::ALL.iter().find(|d| d.name() == name).unwrap()
}

fn detected(found: Option<Decapsulator>) -> String {
    found.map_or("-".to_owned(), |d| d.name().to_owned())
}

#[test]
fn same_answers_as_python() {
    let payloads: Vec<Vec<u8>> = vectors::PAYLOADS.iter().map(|p| unhex(p)).collect();
    let names: Vec<&str> = Decapsulator::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names, vectors::DECAPS);
    assert!(vectors::CASES.len() > 5000);
    for &(index, len, pos, mask, cols) in vectors::CASES {
        let mut data = payloads[usize::from(index)][..usize::from(len)].to_vec();
        if let Some(byte) = data.get_mut(usize::from(pos)) {
            *byte ^= mask;
        }
        let mut got: Vec<String> = Decapsulator::ALL
            .iter()
            .map(|d| show(d.decap(&data)))
            .collect();
        let title = |b: bool| if b { "True" } else { "False" }.to_owned();
        got.push(title(ayiya::looks_like_ayiya(&data)));
        got.push(title(teredo::looks_like_teredo(&data)));
        got.push(detected(udp_detect(&data)));
        let want: Vec<&str> = cols
            .iter()
            .map(|&a| vectors::ANSWERS[usize::from(a)])
            .collect();
        assert_eq!(
            got, want,
            "payload {index} length {len} xor {pos}/{mask}: {data:02x?}"
        );
    }
}

#[test]
fn exact_ip_as_python() {
    let payloads: Vec<Vec<u8>> = vectors::PAYLOADS.iter().map(|p| unhex(p)).collect();
    for &(index, len, off, version, answer) in vectors::EXACT {
        let data = &payloads[usize::from(index)][..usize::from(len)];
        let version = (version != 0).then_some(version);
        let got =
            exact_ip(data, usize::from(off), version).map_or("-".to_owned(), |w| format!("!{w}"));
        assert_eq!(
            got,
            vectors::ANSWERS[usize::from(answer)],
            "payload {index} length {len} off {off} {version:?}"
        );
    }
}

#[test]
fn registries_as_python() {
    for port in 0..=u16::MAX {
        let want = vectors::UDP_PORTS
            .iter()
            .find(|&&(p, _)| p == port)
            .map(|&(_, n)| by_name(n));
        assert_eq!(udp_port(port), want, "port {port}");
    }
    for proto in 0..=u8::MAX {
        let want = vectors::IP_PROTOS
            .iter()
            .find(|&&(p, _)| p == proto)
            .map(|&(_, n)| by_name(n));
        assert_eq!(ip_proto(proto), want, "proto {proto}");
    }
    for kind in [
        Kind::Ip,
        Kind::Gre,
        Kind::Vxlan,
        Kind::Geneve,
        Kind::Ayiya,
        Kind::Teredo,
        Kind::Gtpv1,
    ] {
        assert_eq!(
            kind.ip_level(),
            vectors::IP_LEVEL.contains(&kind.name()),
            "{kind:?}"
        );
    }
    assert_eq!(MAX_DEPTH, vectors::MAX_DEPTH);
}

#[test]
fn detector_order_is_registration_order() {
    // A payload both tests accept goes to the first registered (AYIYA, then Teredo).
    let mut both = vec![0x60, 0x52, 0x11, 0x00, 0, 0, 0, 0];
    both.extend_from_slice(&[0x20, 0x01, 0x00, 0x00]);
    both.resize(40, 0);
    assert!(ayiya::looks_like_ayiya(&both) && teredo::looks_like_teredo(&both));
    assert_eq!(udp_detect(&both), Some(by_name(vectors::DETECTORS[0])));
    assert_eq!(vectors::DETECTORS, ["ayiya", "teredo"]);
}

#[test]
fn bits_are_distinct() {
    let all = Decapsulator::ALL.iter().fold(0u16, |acc, d| {
        assert_eq!(acc & d.bit(), 0, "{d:?}");
        acc | d.bit()
    });
    assert_eq!(all.count_ones() as usize, Decapsulator::ALL.len());
}

#[test]
fn vxlan_and_ip_in_ip() {
    let mut frame = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    assert_eq!(
        Decapsulator::Vxlan.decap(&frame),
        Decap::Anomaly("vxlan_empty_packet")
    );
    frame.push(0xAA);
    assert_eq!(
        Decapsulator::Vxlan.decap(&frame),
        Decap::Inner {
            link: LINK_ETHERNET,
            off: 8,
            kind: Kind::Vxlan
        }
    );
    let mut ip = vec![0x45, 0, 0, 20];
    ip.resize(20, 0);
    assert_eq!(
        Decapsulator::Ipv4InIp.decap(&ip),
        Decap::Inner {
            link: LINK_RAW,
            off: 0,
            kind: Kind::Ip
        }
    );
    assert_eq!(
        Decapsulator::Ipv6InIp.decap(&ip),
        Decap::Anomaly("invalid_inner_IP_version")
    );
    ip.push(0);
    assert_eq!(
        Decapsulator::Ipv4InIp.decap(&ip),
        Decap::Anomaly("inner_IP_payload_length_mismatch")
    );
    assert_eq!(exact_ip(&ip, 100, None), Some("truncated_inner_IP"));
    assert_eq!(
        exact_ip(&ip, usize::MAX, Some(4)),
        Some("truncated_inner_IP")
    );
}

#[test]
fn no_panic_on_any_short_input() {
    // Every input up to 3 bytes, and bytes with every header byte pattern at 60 bytes.
    for len in 0..=3 {
        for seed in 0..=u16::MAX {
            let data: Vec<u8> = seed
                .to_le_bytes()
                .iter()
                .chain(&[0xFF])
                .copied()
                .take(len)
                .collect();
            for d in Decapsulator::ALL {
                let _ = d.decap(&data);
            }
            let _ = udp_detect(&data);
        }
    }
    for first in 0..=u8::MAX {
        for second in [0, 1, 0x52, 0xFF] {
            let mut data = vec![first, second, 0xFF, 0xFF];
            data.resize(60, 0xFF);
            for len in 0..=data.len() {
                for d in Decapsulator::ALL {
                    let _ = d.decap(&data[..len]);
                }
                let _ = udp_detect(&data[..len]);
                let _ = exact_ip(&data[..len], usize::from(first), Some(second));
            }
        }
    }
}
