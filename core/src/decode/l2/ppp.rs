//! PPP and its framings: LINKTYPE_PPP (9), PPP in HDLC framing (50), PPPoE sessions (0x8864),
//! Cisco HDLC (104). PPP protocols 0x0021/0x0057 lead to IP, 0x0281 (not after PPPoE) to MPLS;
//! a protocol compressed to one odd octet is understood.

use crate::decode::links::{anomaly, be16, byte, next, LinkOut, LinkResult, ETH_IPV4, ETH_IPV6};
use crate::decode::stats::Reason;

fn protocol(d: &[u8], p: usize, mpls: bool) -> LinkResult<(u16, usize)> {
    let b = byte(d, p)?;
    let (proto, p) = if b & 1 != 0 {
        (u16::from(b), p + 1)
    } else {
        (u16::from_be_bytes([b, byte(d, p + 1)?]), p + 2)
    };
    Ok(match proto {
        0x0021 => Some((ETH_IPV4, p)),
        0x0057 => Some((ETH_IPV6, p)),
        0x0281 if mpls => Some((0x8847, p)),
        _ => None,
    })
}

fn out(r: LinkResult<(u16, usize)>) -> LinkResult<LinkOut> {
    match r? {
        Some((et, off)) => next(et, off),
        None => Ok(None),
    }
}

/// PPPoE session: version/type, code, session id, length; then PPP.
pub fn pppoe(d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    if crate::decode::links::rem(d, off) <= 8 {
        return anomaly(Reason::TruncatedPppoeHeader);
    }
    protocol(d, off + 6, false)
}

pub fn ppp(d: &[u8]) -> LinkResult<LinkOut> {
    let n = d.len();
    if n <= 2 {
        return anomaly(Reason::TruncatedPppHeader);
    }
    if byte(d, 0)? == 0xFF && byte(d, 1)? == 0x03 {
        if n <= 4 {
            return anomaly(Reason::TruncatedPppHdlcHeader);
        }
        return out(protocol(d, 2, true));
    }
    out(protocol(d, 0, true))
}

pub fn ppp_hdlc(d: &[u8]) -> LinkResult<LinkOut> {
    if d.len() <= 4 {
        return anomaly(Reason::TruncatedPppSerialHeader);
    }
    let a = byte(d, 0)?;
    if a == 0x0F || a == 0x8F {
        return cisco_hdlc(d);
    }
    out(protocol(d, 2, true))
}

pub fn cisco_hdlc(d: &[u8]) -> LinkResult<LinkOut> {
    if d.len() <= 4 {
        return anomaly(Reason::TruncatedLinkHeader);
    }
    next(be16(d, 2)?, 4)
}
