//! Teredo (RFC 4380) on UDP 3544 or found by its signature (Zeek's Teredo analyzer): IPv6 in UDP,
//! with optional authentication and origin-indication headers before it; transcribes
//! `sniffer/tunnels/teredo.py`.

use super::{be16, exact_ip, Decap, Kind, LINK_RAW};

/// A Teredo address's prefix (2001:0000::/32).
const PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];

/// Zeek's detection pattern (from its old DPD signature): 40 bytes of an IPv6 header whose
/// source (bytes 8..12) or destination (24..28) is a Teredo address.
fn pattern(data: &[u8]) -> bool {
    data.len() >= 40
        && data.first().is_some_and(|b| b >> 4 == 6)
        && (data.get(8..12) == Some(&PREFIX[..]) || data.get(24..28) == Some(&PREFIX[..]))
}

/// The detection test: the pattern, or an IPv6 header after the origin indication (itself
/// after an authentication header or not).
pub(super) fn looks_like_teredo(data: &[u8]) -> bool {
    let n = data.len();
    let [b0, b1, b2, b3, ..] = *data else {
        return false;
    };
    if n < 40 || (b0 >> 4 != 6 && (b0 != 0 || (b1 != 0 && b1 != 1))) {
        return false;
    }
    if pattern(data) {
        return true;
    }
    let mut off = 0;
    if b1 == 1 {
        // authentication header, then an origin indication
        off = 13 + usize::from(b2) + usize::from(b3);
        if n < off + 40 {
            return false;
        }
        if data.get(off) != Some(&0) || data.get(off + 1) != Some(&0) {
            return false;
        }
    }
    if data.get(off + 1) == Some(&0) && data.get(off) == Some(&0) {
        off += 8;
        return n >= off + 40 && data.get(off).is_some_and(|b| b >> 4 == 6);
    }
    false
}

/// Where the IPv6 packet starts, after the optional headers, or the anomaly.
fn inner_offset(data: &[u8]) -> Result<usize, &'static str> {
    let (mut off, mut origin, mut auth) = (0, false, false);
    loop {
        let rest = data.len().saturating_sub(off);
        let Some(tag) = be16(data, off) else {
            return Err("truncated_Teredo");
        };
        if tag == 0 {
            if origin {
                return Err("Bad Teredo encapsulation");
            }
            if rest < 8 {
                return Err("truncated_Teredo_origin_indication");
            }
            origin = true;
            off += 8;
        } else if tag == 1 {
            if origin || auth {
                return Err("Bad Teredo encapsulation");
            }
            let (Some(&id_len), Some(&au_len)) = (data.get(off + 2), data.get(off + 3)) else {
                return Err("truncated_Teredo_authentication");
            };
            let total = 4 + usize::from(id_len) + usize::from(au_len) + 8 + 1;
            if rest < total {
                return Err("truncated_Teredo_authentication");
            }
            auth = true;
            off += total;
        } else if tag >> 12 == 6 {
            if rest < 40 {
                return Err("truncated_IPv6_in_Teredo");
            }
            return Ok(off);
        } else {
            return Err("Bad Teredo encapsulation");
        }
    }
}

/// Teredo (RFC 4380; Zeek's Teredo analyzer): the IPv6 packet after the optional headers, filling
/// the payload exactly (a bubble with trailing bytes still passes, as in Zeek).
pub(super) fn teredo(data: &[u8]) -> Decap {
    let off = match inner_offset(data) {
        Ok(off) => off,
        Err(bad) => return Decap::Anomaly(bad),
    };
    let mut bad = exact_ip(data, off, Some(6));
    if bad == Some("inner_IP_payload_length_mismatch")
        && data.get(off + 6) == Some(&59)
        && be16(data, off + 4) == Some(0)
    {
        bad = None; // a bubble with trailing bytes: odd, but Zeek still forwards it
    }
    match bad {
        None => Decap::Inner {
            link: LINK_RAW,
            off,
            kind: Kind::Teredo,
        },
        Some("truncated_inner_IP") => Decap::Anomaly("Teredo_truncated_inner_IP"),
        Some("invalid_inner_IP_version") => Decap::Anomaly("Teredo_invalid_inner_IP_version"),
        Some(_) => Decap::Anomaly("Teredo_inner_IP_payload_length_mismatch"),
    }
}
