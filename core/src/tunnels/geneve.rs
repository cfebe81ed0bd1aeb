//! Geneve (RFC 8926) on UDP 6081 (Zeek's Geneve analyzer); transcribes `sniffer/tunnels/geneve.py`.

use super::{Decap, Kind, LINK_ETHERNET, LINK_RAW};

/// Geneve (RFC 8926; Zeek's Geneve analyzer): 8 bytes plus options, then the protocol its header
/// names (0x6558 Ethernet as Zeek, 0x0800 IPv4 as Zeek, 0x86DD IPv6 as the RFC intends).
pub(super) fn geneve(data: &[u8]) -> Decap {
    let [b0, _, p0, p1, _, _, _, _, ..] = *data else {
        return Decap::Anomaly("geneve_truncated");
    };
    if b0 >> 6 != 0 {
        return Decap::Anomaly("geneve_invalid_version");
    }
    let hdr = 8 + usize::from(b0 & 0x3F) * 4;
    if data.len() < hdr {
        return Decap::Anomaly("geneve_option_truncated");
    }
    if data.len() == hdr {
        return Decap::Anomaly("geneve_empty_packet");
    }
    let link = match u16::from_be_bytes([p0, p1]) {
        0x6558 => LINK_ETHERNET,
        0x0800 | 0x86DD => LINK_RAW,
        _ => return Decap::Anomaly("geneve_unknown_protocol"),
    };
    Decap::Inner {
        link,
        off: hdr,
        kind: Kind::Geneve,
    }
}
