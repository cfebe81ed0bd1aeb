//! The link layers and encapsulations, as the registries of `sniffer/decode/links.py`:
//! `linktype_fn(N)` parses a frame's link header (`LINKTYPES`), `ethertype_fn(T)` an
//! encapsulation found by ethertype (`ETHERTYPES`), both saying what follows and where.
//!
//! The Python functions index freely and let a short frame raise IndexError, which the decoder
//! counts as `truncated_link_header`: here every read goes through `byte`/`be16`, whose
//! `LinkErr::Truncated` is the same thing, and a Python slice (which never raises) is `clip`.
//! `LinkErr::Anomaly` is the Python `LinkAnomaly(name)`. The rarer link layers live in `l2`.

use super::l2;
use super::stats::Reason;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86DD;

/// 802.1Q / 802.1ad / 0x9100 tags.
pub fn is_vlan(et: u16) -> bool {
    matches!(et, 0x8100 | 0x88A8 | 0x9100)
}

pub fn is_ip(et: u16) -> bool {
    et == ETH_IPV4 || et == ETH_IPV6
}

/// Why a link function gave no next protocol (`Ok(None)` is "not IP": `non_ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkErr {
    /// A read past the frame's end (Python: IndexError / struct.error).
    Truncated,
    /// A malformed frame: counted under this name.
    Anomaly(Reason),
}

pub type LinkResult<T> = Result<Option<T>, LinkErr>;

/// A later packet of a frame carrying several (802.11 A-MSDU): its IP bytes, or the anomaly
/// that ended the frame's walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rest {
    Packet(usize, usize),
    Anomaly(Reason),
}

/// What follows a link header: ethertype, its offset, and the frame's other packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOut {
    pub et: u16,
    pub off: usize,
    pub rest: Vec<Rest>,
}

pub type LinkFn = fn(&[u8]) -> LinkResult<LinkOut>;
pub type EtherFn = fn(&[u8], usize) -> LinkResult<(u16, usize)>;

/// Every LINKTYPE with a decoder (the keys of the Python `LINKTYPES`).
pub const LINKTYPES: &[u32] = &[
    0, 1, 9, 10, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276,
];

/// Ethertypes counted `unsupported_ethertype:0xNNNN` (the Python `UNSUPPORTED_ETHERTYPES`).
pub const UNSUPPORTED_ETHERTYPES: &[u16] = &[0x894F, 0x22F3];

pub fn linktype_fn(linktype: u32) -> Option<LinkFn> {
    Some(match linktype {
        1 => ethernet,
        113 => linux_sll,
        276 => linux_sll2,
        12 | 14 | 101 => raw_ip,
        228 => raw_ipv4,
        229 => raw_ipv6,
        0 => bsd_null,
        108 => bsd_loop,
        9 => l2::ppp::ppp,
        50 => l2::ppp::ppp_hdlc,
        104 => l2::ppp::cisco_hdlc,
        10 => l2::fddi::fddi,
        105 => l2::ieee802_11::ieee802_11,
        127 => l2::ieee802_11::radiotap,
        239 => l2::nflog::nflog,
        _ => return None,
    })
}

pub fn ethertype_fn(et: u16) -> Option<EtherFn> {
    Some(match et {
        0..=1500 => l2::ethernet::ieee802_3,
        1501..=1535 => l2::ethernet::undefined_type,
        0x8903 => l2::ethernet::fabricpath,
        0x88E7 => l2::ethernet::pbb,
        0x8926 => l2::ethernet::vntag,
        0x8847 | 0x8848 => l2::mpls::mpls,
        0x8864 => l2::ppp::pppoe,
        _ => return None,
    })
}

pub fn is_unsupported_ethertype(et: u16) -> bool {
    UNSUPPORTED_ETHERTYPES.contains(&et)
}

// --- checked reads ---------------------------------------------------------------------------

pub fn byte(d: &[u8], i: usize) -> Result<u8, LinkErr> {
    d.get(i).copied().ok_or(LinkErr::Truncated)
}

pub fn be16(d: &[u8], i: usize) -> Result<u16, LinkErr> {
    Ok(u16::from_be_bytes([
        byte(d, i)?,
        byte(d, i.wrapping_add(1))?,
    ]))
}

pub fn be32(d: &[u8], i: usize) -> Result<u32, LinkErr> {
    Ok(u32::from_be_bytes([
        byte(d, i)?,
        byte(d, i.wrapping_add(1))?,
        byte(d, i.wrapping_add(2))?,
        byte(d, i.wrapping_add(3))?,
    ]))
}

/// `len(data) - off` as Python computes it (negative past the end).
pub fn rem(d: &[u8], off: usize) -> i64 {
    i64::try_from(d.len()).unwrap_or(i64::MAX) - i64::try_from(off).unwrap_or(i64::MAX)
}

/// Python's `data[a:b]`: clipped to the data, empty if reversed.
pub fn clip(d: &[u8], a: usize, b: usize) -> &[u8] {
    let a = a.min(d.len());
    let b = b.min(d.len()).max(a);
    d.get(a..b).unwrap_or_default()
}

pub fn anomaly<T>(r: Reason) -> LinkResult<T> {
    Err(LinkErr::Anomaly(r))
}

pub fn next(et: u16, off: usize) -> LinkResult<LinkOut> {
    Ok(Some(LinkOut {
        et,
        off,
        rest: Vec::new(),
    }))
}

// --- the common link types -------------------------------------------------------------------

/// Ethernet II / 802.3 (the decoder inlines it; here for completeness and reuse).
pub fn ethernet(d: &[u8]) -> LinkResult<LinkOut> {
    next(be16(d, 12)?, 14)
}

/// Linux cooked capture v1: the protocol in the last two of 16 bytes.
pub fn linux_sll(d: &[u8]) -> LinkResult<LinkOut> {
    next(be16(d, 14)?, 16)
}

/// Linux cooked capture v2: 20 bytes, the protocol first.
pub fn linux_sll2(d: &[u8]) -> LinkResult<LinkOut> {
    if d.len() < 20 {
        return Err(LinkErr::Truncated);
    }
    next(be16(d, 0)?, 20)
}

/// No link header: the version nibble decides.
pub fn raw_ip(d: &[u8]) -> LinkResult<LinkOut> {
    let et = if byte(d, 0)? >> 4 == 6 {
        ETH_IPV6
    } else {
        ETH_IPV4
    };
    next(et, 0)
}

pub fn raw_ipv4(_d: &[u8]) -> LinkResult<LinkOut> {
    next(ETH_IPV4, 0)
}

pub fn raw_ipv6(_d: &[u8]) -> LinkResult<LinkOut> {
    next(ETH_IPV6, 0)
}

/// BSD address families: AF_INET 2; AF_INET6 24, 28 or 30 (captures travel between systems).
fn bsd_af(af: u32) -> Option<u16> {
    match af {
        2 => Some(ETH_IPV4),
        24 | 28 | 30 => Some(ETH_IPV6),
        _ => None,
    }
}

/// DLT_NULL: the family in the capturing host's byte order; try both.
pub fn bsd_null(d: &[u8]) -> LinkResult<LinkOut> {
    let mut af = be32(d, 0)?.swap_bytes();
    if af > 0xFFFF {
        af = be32(d, 0)?;
    }
    match bsd_af(af) {
        Some(et) => next(et, 4),
        None => Ok(None),
    }
}

/// DLT_LOOP: the family in network byte order.
pub fn bsd_loop(d: &[u8]) -> LinkResult<LinkOut> {
    match bsd_af(be32(d, 0)?) {
        Some(et) => next(et, 4),
        None => Ok(None),
    }
}
