//! Ethernet's relatives: 802.3 length frames (LLC, SNAP, Novell raw), Cisco FabricPath
//! (0x8903), 802.1ah PBB (0x88e7), VN-Tag (0x8926); `ethernet_at` for an inner frame.

use crate::decode::links::{anomaly, be16, byte, is_ip, is_vlan, rem, LinkResult};
use crate::decode::stats::Reason;

/// IEEE 802.2 at `off` with `n` bytes of 802.3 payload: SNAP carrying IP, else None.
pub fn llc(d: &[u8], off: usize, n: i64) -> LinkResult<(u16, usize)> {
    let b0 = byte(d, off)?;
    let b1 = byte(d, off + 1)?;
    if b0 == 0xAA && b1 == 0xAA {
        if n < 3 {
            return anomaly(Reason::TruncatedSnapLlcHeader);
        }
        let p = off + if byte(d, off + 2)? & 3 == 3 { 3 } else { 4 };
        if n < i64::try_from(p - off + 5).unwrap_or(i64::MAX) {
            return anomaly(Reason::TruncatedSnapHeader);
        }
        if byte(d, p)? != 0 || byte(d, p + 1)? != 0 || byte(d, p + 2)? != 0 {
            return Ok(None); // OUI not 0: not an ethertype
        }
        let et = be16(d, p + 3)?;
        return Ok(if is_ip(et) { Some((et, p + 5)) } else { None });
    }
    if b0 == 0xFF && b1 == 0xFF {
        return Ok(None); // Novell raw 802.3
    }
    if n < 3 || (byte(d, off + 2)? & 3 != 3 && n < 4) {
        return anomaly(Reason::TruncatedLlcHeader);
    }
    Ok(None)
}

/// The type/length field of the Ethernet header at `frame` (Zeek's Ethernet analyzer).
fn after_type(d: &[u8], frame: usize) -> LinkResult<(u16, usize)> {
    let et = be16(d, frame + 12)?;
    let off = frame + 14;
    if et >= 1536 {
        return Ok(Some((et, off)));
    }
    if et <= 1500 {
        let n = rem(d, off);
        if n < i64::from(et) {
            return anomaly(Reason::TruncatedEthernetFrame);
        }
        return llc(d, off, n);
    }
    anomaly(Reason::UndefinedEtherType)
}

/// An Ethernet frame starting at `frame` -> (type, offset after the header) or None.
pub fn ethernet_at(d: &[u8], mut frame: usize) -> LinkResult<(u16, usize)> {
    let n = rem(d, frame);
    if n <= 16 {
        return anomaly(Reason::TruncatedEthernetFrame);
    }
    if byte(d, frame + 12)? == 0x89 && byte(d, frame + 13)? == 0x03 {
        if n <= 30 {
            return anomaly(Reason::TruncatedLinkHeaderCfp);
        }
        frame += 16;
    }
    after_type(d, frame)
}

/// A length instead of a type: 802.2 LLC follows.
pub fn ieee802_3(d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    let length = be16(d, off.wrapping_sub(2))?;
    let mut n = rem(d, off);
    if off == 14 {
        if n < i64::from(length) {
            return anomaly(Reason::TruncatedEthernetFrame);
        }
    } else if off >= 18 && is_vlan(be16(d, off - 6)?) {
        // (the tag is TPID, TCI, then this length: the TPID stands 6 bytes before `off`)
        if n < 2 {
            return anomaly(Reason::TruncatedVlanHeader);
        }
        n = n.min(i64::from(length)); // Zeek's VLAN analyzer trims to the 802.3 length
    }
    llc(d, off, n)
}

pub fn undefined_type(_d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    anomaly(if off == 14 {
        Reason::UndefinedEtherType
    } else {
        Reason::UndefinedVlanProtocol
    })
}

/// Cisco FabricPath: outer addresses + 0x8903 + a 2-byte tag, then the original frame.
pub fn fabricpath(d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    if rem(d, off) <= 16 {
        return anomaly(Reason::TruncatedLinkHeaderCfp);
    }
    after_type(d, off + 2)
}

/// 802.1ah provider backbone bridging: a 4-byte I-tag, then the customer's frame.
pub fn pbb(d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    if rem(d, off) <= 18 {
        return anomaly(Reason::TruncatedPbbHeader);
    }
    ethernet_at(d, off + 4)
}

/// VN-Tag: 4 bytes of tag, then a type, followed only into a VLAN tag.
pub fn vntag(d: &[u8], off: usize) -> LinkResult<(u16, usize)> {
    if rem(d, off) <= 6 {
        return anomaly(Reason::TruncatedVntagHeader);
    }
    let et = be16(d, off + 4)?;
    Ok(if is_vlan(et) {
        Some((et, off + 6))
    } else {
        None
    })
}
