//! MPLS label stacks (0x8847, 0x8848): labels up to the bottom-of-stack bit, then "IP" (the
//! version nibble decides).

use crate::decode::links::{anomaly, byte, rem, LinkResult, ETH_IPV4};
use crate::decode::stats::Reason;

pub fn mpls(d: &[u8], mut off: usize) -> LinkResult<(u16, usize)> {
    loop {
        if rem(d, off) <= 4 {
            return anomaly(Reason::TruncatedLinkHeader);
        }
        off += 4;
        if byte(d, off - 2)? & 1 != 0 {
            return Ok(Some((ETH_IPV4, off)));
        }
    }
}
