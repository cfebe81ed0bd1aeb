//! GTPv1-U (3GPP TS 29.281) on UDP 2152 and 2123 (Zeek's GTPv1 analyzer); transcribes
//! `sniffer/tunnels/gtp.py`.

use super::{exact_ip, Decap, Kind, LINK_RAW};

const TRUNCATED: Decap = Decap::Anomaly("gtp_truncated");

/// GTPv1-U (3GPP TS 29.281; Zeek's GTPv1 analyzer): G-PDU messages carry an IP packet, after the
/// optional fields and extension headers.
pub(super) fn gtp(data: &[u8]) -> Decap {
    open(data).unwrap_or(TRUNCATED)
}

/// `None` only where a byte is missing (the checks before each read make that unreachable).
fn open(data: &[u8]) -> Option<Decap> {
    let [flags, msg, _, _, _, _, _, _, ..] = *data else {
        return Some(TRUNCATED);
    };
    if flags >> 5 != 1 {
        return Some(Decap::Anomaly("GTPv1 bad Version"));
    }
    if flags & 0x10 == 0 || msg != 255 {
        // GTP' (charging), or signalling (echo, PDP context): no packet inside
        return Some(Decap::Nothing);
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        // E, S or PN: sequence, N-PDU and next-extension fields
        if data.len() < 12 {
            return Some(TRUNCATED);
        }
        off = 12;
        let mut next_ext = if flags & 0x04 != 0 { *data.get(11)? } else { 0 };
        while next_ext != 0 {
            let Some(&units) = data.get(off) else {
                return Some(TRUNCATED);
            };
            let ext_len = usize::from(units) * 4;
            if ext_len == 0 || data.len() < off + ext_len {
                return Some(TRUNCATED);
            }
            next_ext = *data.get(off + ext_len - 1)?;
            off += ext_len;
        }
    }
    if data.len().saturating_sub(off) < 20 {
        return Some(Decap::Anomaly("Truncated GTPv1"));
    }
    let v = data.get(off)? >> 4;
    if v != 4 && v != 6 {
        return Some(Decap::Anomaly("non-IP packet in GTPv1"));
    }
    Some(match exact_ip(data, off, None) {
        Some("inner_IP_payload_length_mismatch") => Decap::Anomaly("GTPv1 payload length"),
        Some(_) => Decap::Anomaly("Truncated GTPv1"),
        None => Decap::Inner {
            link: LINK_RAW,
            off,
            kind: Kind::Gtpv1,
        },
    })
}
