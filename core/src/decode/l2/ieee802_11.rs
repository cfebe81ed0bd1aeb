//! IEEE 802.11 (LINKTYPE 105) and with radiotap (127): data frames carrying data, LLC/SNAP,
//! IP. An A-MSDU's first IP subframe is the result; the later ones (and an anomaly that ends
//! the walk) go in `rest`, which the decoder turns into packets of their own (`more`).

use crate::decode::links::{
    anomaly, be16, byte, clip, is_ip, rem, LinkErr, LinkOut, LinkResult, Rest,
};
use crate::decode::stats::Reason;

const SNAP: [u8; 6] = [0xAA, 0xAA, 0x03, 0x00, 0x00, 0x00];

fn snap_ip(d: &[u8], p: usize, n: i64) -> LinkResult<LinkOut> {
    if n < 8 {
        return anomaly(Reason::Truncated80211LlcHeader);
    }
    if clip(d, p, p + 6) != SNAP {
        return Ok(None);
    }
    let et = be16(d, p + 6)?;
    Ok(if is_ip(et) {
        Some(LinkOut {
            et,
            off: p + 8,
            rest: Vec::new(),
        })
    } else {
        None
    })
}

fn amsdu_stop(first: bool, rest: &mut Vec<Rest>, r: Reason) -> Result<(), LinkErr> {
    if !first && rest.is_empty() {
        return Err(LinkErr::Anomaly(r));
    }
    rest.push(Rest::Anomaly(r));
    Ok(())
}

/// An 802.11 frame starting at `off`.
pub fn dot11(d: &[u8], off: usize) -> LinkResult<LinkOut> {
    let mut n = rem(d, off);
    if n <= 24 {
        return anomaly(Reason::Truncated80211Header);
    }
    let fc = byte(d, off)?;
    let flags = byte(d, off + 1)?;
    if fc & 0x08 == 0 || fc & 0x40 != 0 {
        return Ok(None); // not a data frame, or a data subtype without data
    }
    let mut hl: usize = if flags & 3 == 3 { 30 } else { 24 };
    if i64::try_from(hl).unwrap_or(i64::MAX) >= n {
        return anomaly(Reason::Truncated80211Header);
    }
    let mut amsdu = false;
    if fc & 0x80 != 0 {
        amsdu = byte(d, off + hl)? & 0x80 != 0;
        if flags & 0x40 != 0 {
            return Ok(None); // protected
        }
        hl += 2;
        if i64::try_from(hl).unwrap_or(i64::MAX) >= n {
            return anomaly(Reason::Truncated80211Header);
        }
    }
    let mut p = off + hl;
    n -= i64::try_from(hl).unwrap_or(0);
    if !amsdu {
        return snap_ip(d, p, n);
    }
    let mut first: Option<(u16, usize)> = None;
    let mut rest: Vec<Rest> = Vec::new();
    let end = d.len();
    while p < end {
        if end - p < 14 {
            amsdu_stop(
                first.is_some(),
                &mut rest,
                Reason::Truncated80211AmsduHeader,
            )?;
            break;
        }
        let sub = usize::from(be16(d, p + 12)?);
        if end - p < sub + 14 {
            amsdu_stop(
                first.is_some(),
                &mut rest,
                Reason::Truncated80211AmsduPacket,
            )?;
            break;
        }
        let q = p + 14;
        if sub < 8 || clip(d, q, q + 6) != SNAP {
            amsdu_stop(
                first.is_some(),
                &mut rest,
                Reason::Invalid80211AmsduInnerPacket,
            )?;
            break;
        }
        let et = be16(d, q + 6)?;
        if is_ip(et) {
            if first.is_none() {
                first = Some((et, q + 8));
            } else {
                rest.push(Rest::Packet(q + 8, q + sub));
            }
        }
        let pad = (4 - (14 + sub) % 4) % 4;
        p = q + sub + if end - (q + sub) >= pad { pad } else { 0 };
    }
    match first {
        None => match rest.first() {
            Some(Rest::Anomaly(r)) => anomaly(*r),
            _ => Ok(None),
        },
        Some((et, off)) => Ok(Some(LinkOut { et, off, rest })),
    }
}

pub fn ieee802_11(d: &[u8]) -> LinkResult<LinkOut> {
    dot11(d, 0)
}

/// Radiotap: version, pad, little-endian header length; the 802.11 frame follows.
pub fn radiotap(d: &[u8]) -> LinkResult<LinkOut> {
    let n = d.len();
    if n <= 3 {
        return anomaly(Reason::TruncatedRadiotapHeader);
    }
    let hl = usize::from(u16::from_le_bytes([byte(d, 2)?, byte(d, 3)?]));
    if hl >= n {
        return anomaly(Reason::TruncatedRadiotapHeader);
    }
    dot11(d, hl)
}
