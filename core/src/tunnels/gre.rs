//! GRE (RFC 2784/2890) in IP protocol 47 or UDP 4754 (Zeek's GRE analyzer): plain GRE carrying IP,
//! transparent Ethernet bridging, ERSPAN types I to III, Aruba's 802.11 frames, and PPTP's enhanced
//! GRE (RFC 2637); transcribes `sniffer/tunnels/gre.py`.

use super::{be16, exact_ip, Decap, Kind, LINK_80211, LINK_ETHERNET, LINK_RAW};

const TRUNCATED: Decap = Decap::Anomaly("truncated_GRE");

/// The header's length from its flags: checksum, key, sequence and (enhanced GRE) ack fields.
fn header_len(flags: u16) -> usize {
    let mut n = 4;
    for bit in [0x8000, 0x2000, 0x1000, 0x0080] {
        if flags & bit != 0 {
            n += 4;
        }
    }
    n
}

/// Aruba's protocol types carrying 802.11 frames (as Zeek's GRE analyzer).
fn is_aruba(proto: u16) -> bool {
    (proto & 0x8200 == 0x8200 && proto & 0x0F == 0)
        || (proto & 0x8300 == 0x8300 && proto & 0x0F == 0 && proto <= 0x8370)
        || proto == 0x9000
}

/// GRE (RFC 2784/2890, PPTP RFC 2637; Zeek's GRE analyzer): the inner packet after the header (and
/// after ERSPAN's or PPP's own header).
pub(super) fn gre(data: &[u8]) -> Decap {
    open(data).unwrap_or(TRUNCATED)
}

/// `None` only where a byte is missing (the checks before each read make that unreachable).
fn open(data: &[u8]) -> Option<Decap> {
    let n = data.len();
    if n < 4 {
        return Some(TRUNCATED);
    }
    let flags = be16(data, 0)?;
    let proto = be16(data, 2)?;
    let version = flags & 0x07;
    let hdr = header_len(flags);
    let (mut link, mut extra) = (LINK_RAW, 0);
    if version == 0 {
        if proto == 0x6558 {
            // transparent Ethernet bridging
            if n <= hdr + 14 {
                return Some(TRUNCATED);
            }
            link = LINK_ETHERNET;
        } else if proto == 0x88BE {
            // ERSPAN type I (no sequence) or II (8-byte header)
            if n <= hdr + 14 {
                return Some(TRUNCATED);
            }
            link = LINK_ETHERNET;
            if flags & 0x1000 != 0 {
                extra = 8;
            }
        } else if proto == 0x22EB {
            // ERSPAN type III: 12 bytes, 8 more with the optional header
            if n <= hdr + 14 + 12 {
                return Some(TRUNCATED);
            }
            (link, extra) = (LINK_ETHERNET, 12);
            if data.get(hdr + 11)? & 0x01 != 0 {
                if n <= hdr + 12 + 8 + 14 {
                    return Some(TRUNCATED);
                }
                extra += 8;
            }
        } else if is_aruba(proto) {
            if n <= hdr {
                return Some(TRUNCATED);
            }
            link = LINK_80211;
        }
    } else if version == 1 {
        if proto != 0x880B {
            return Some(Decap::Anomaly("egre_protocol_type"));
        }
    } else {
        return Some(Decap::Anomaly("unknown_gre_version"));
    }
    if flags & 0x4000 != 0 {
        return Some(Decap::Anomaly("gre_routing"));
    }
    if flags & 0x0078 != 0 {
        return Some(Decap::Anomaly("unknown_gre_flags"));
    }
    if version == 1 {
        // PPTP: a PPP header (address, control, protocol) before the packet
        if n < hdr + 4 {
            return Some(TRUNCATED);
        }
        let ppp = be16(data, hdr + 2)?;
        let ip = match ppp {
            0x0021 => 4,
            0x0057 => 6,
            _ => return Some(Decap::Anomaly("non_ip_packet_in_encap")),
        };
        let off = hdr + 4;
        return Some(match exact_ip(data, off, Some(ip)) {
            Some(bad) => Decap::Anomaly(bad),
            None => Decap::Inner {
                link: LINK_RAW,
                off,
                kind: Kind::Gre,
            },
        });
    }
    if n < hdr + extra {
        return Some(TRUNCATED);
    }
    Some(Decap::Inner {
        link,
        off: hdr + extra,
        kind: Kind::Gre,
    })
}
