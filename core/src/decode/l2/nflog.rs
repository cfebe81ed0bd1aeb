//! Linux NFLOG, LINKTYPE 239: a 4-byte header, then TLVs padded to 4 bytes; the packet is the
//! value of type 9. TLV fields are in the capturing host's order, recognised from the first.

use crate::decode::links::{anomaly, byte, next, rem, LinkOut, LinkResult, ETH_IPV4, ETH_IPV6};
use crate::decode::stats::Reason;

const PAYLOAD: u16 = 9;

pub fn nflog(d: &[u8]) -> LinkResult<LinkOut> {
    let n = d.len();
    if n <= 4 {
        return anomaly(Reason::TruncatedNflogHeader);
    }
    if byte(d, 1)? != 0 {
        return anomaly(Reason::UnknownNflogVersion);
    }
    let big = n > 8 && byte(d, 6)? == 0 && byte(d, 7)? != 0;
    let mut p: usize = 4;
    loop {
        if rem(d, p) <= 4 {
            return anomaly(Reason::NflogNoPcapPayload);
        }
        let (a, b, c, e) = (
            byte(d, p)?,
            byte(d, p + 1)?,
            byte(d, p + 2)?,
            byte(d, p + 3)?,
        );
        let (length, kind) = if big {
            (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, e]))
        } else {
            (u16::from_le_bytes([a, b]), u16::from_le_bytes([c, e]))
        };
        if kind == PAYLOAD {
            p += 4;
            break;
        }
        if length < 4 {
            return anomaly(Reason::NflogBadTlvLen);
        }
        p += (usize::from(length) + 3) & !3;
    }
    match byte(d, 0)? {
        2 => next(ETH_IPV4, p),
        10 => next(ETH_IPV6, p),
        _ => Ok(None),
    }
}
