//! AYIYA ("anything in anything", SixXS) on UDP 5072 or found by its signature (Zeek's AYIYA
//! analyzer); transcribes `sniffer/tunnels/ayiya.py`.

use super::{Decap, Kind, LINK_RAW};

const TRUNCATED: Decap = Decap::Anomaly("ayiya_truncated");

/// The detection signature: signature length 5 / hash 2, then authentication 1 / "forward".
pub(super) fn looks_like_ayiya(data: &[u8]) -> bool {
    matches!(data, [_, 0x52, 0x11, ..])
}

/// AYIYA (SixXS; Zeek's AYIYA analyzer): identity and signature after an 8-byte header; "forward"
/// carries IPv4 or IPv6.
pub(super) fn ayiya(data: &[u8]) -> Decap {
    let [b0, b1, b2, b3, _, _, _, _, ..] = *data else {
        return TRUNCATED;
    };
    let hdr = 8 + (1usize << (b0 >> 4)) + usize::from(b1 >> 4) * 4;
    if data.len() < hdr {
        return TRUNCATED;
    }
    if b2 & 0x0F != 1 {
        return Decap::Nothing; // only "forward" carries a packet
    }
    if b3 != 4 && b3 != 41 {
        return Decap::Anomaly("ayiya_unknown_next_header");
    }
    if data.len() == hdr {
        return Decap::Anomaly("ayiya_empty_packet");
    }
    Decap::Inner {
        link: LINK_RAW,
        off: hdr,
        kind: Kind::Ayiya,
    }
}
