//! FDDI, LINKTYPE 10: the 13-byte FDDI header and 8 bytes of LLC/SNAP skipped, IP assumed.

use crate::decode::links::{anomaly, next, LinkOut, LinkResult, ETH_IPV4};
use crate::decode::stats::Reason;

const HDR: usize = 13 + 8;

pub fn fddi(d: &[u8]) -> LinkResult<LinkOut> {
    if d.len() <= HDR {
        return anomaly(Reason::FddiAnalyzerFailed);
    }
    next(ETH_IPV4, HDR)
}
