//! The decoder: link layer, then IPv4 / IPv6 (its extension chain, fragments), as
//! `sniffer/decode/decoder.py` does it, check for check and counter for counter.
//!
//! The common case (Ethernet, VLAN tags, IPv4 or IPv6 with TCP/UDP) is straight-line and
//! allocation-free: the result's addresses are inline and its `l4` a range of the frame.

use super::checksum::ones_sum;
use super::frag::{FragKey, FragMeta, FragReassembler};
use super::links::{self, is_vlan, LinkErr, Rest, ETH_IPV4, ETH_IPV6};
use super::netset::NetSet;
use super::stats::{Counters, Reason};
use super::{Addr, Packet, Settings};

const MAX_ENCAP_DEPTH: usize = 16;
/// A pseudo link type for the later packets of a frame: raw IP.
const LINKTYPE_RAW: u32 = 101;

/// IPv6 extension headers the chain walk steps over or stops at.
fn is_v6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 60 | 44 | 51 | 135 | 50 | 59)
}

/// Where an IPv6 chain walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The first non-extension header, or 44 at a real fragment, or 50/59/135.
    At(u8),
    /// A header runs past the captured bytes.
    Trunc,
    /// A header runs past the IP payload.
    Bad,
}

/// Python's `data[a:b]` as a range of `data`.
fn clip(n: usize, a: usize, b: usize) -> std::ops::Range<usize> {
    let a = a.min(n);
    a..b.min(n).max(a)
}

fn get16(d: &[u8], i: usize) -> Option<[u8; 16]> {
    d.get(i..i.checked_add(16)?)?.try_into().ok()
}

/// Step over extension headers from `p` (next header `nh`) in `buf[..end]`: (stop, offset,
/// Zeek's final destination from a type-0 routing header with segments left).
fn walk_v6(buf: &[u8], mut p: usize, end: usize, mut nh: u8) -> (Stop, usize, Option<[u8; 16]>) {
    let n = buf.len();
    let mut fdst: Option<[u8; 16]> = None;
    let at = |i: usize| buf.get(i).copied();
    while is_v6_ext(nh) {
        let hlen = match nh {
            0 | 43 | 60 => {
                let Some(rlen) = at(p + 1).filter(|_| p + 2 <= n) else {
                    return (Stop::Trunc, p, fdst);
                };
                let hlen = (usize::from(rlen) + 1) << 3;
                if nh == 43 && p + hlen <= n && fdst.is_none() {
                    // type 0, segments left > 0, even length >= 2
                    if at(p + 2) == Some(0)
                        && at(p + 3).is_some_and(|s| s != 0)
                        && rlen >= 2
                        && rlen & 1 == 0
                    {
                        fdst = get16(buf, p + hlen - 16);
                    }
                }
                hlen
            }
            44 => {
                if p + 8 > end {
                    return (Stop::Bad, p, fdst);
                }
                if p + 8 > n {
                    return (Stop::Trunc, p, fdst);
                }
                if at(p + 2).unwrap_or(0) != 0 || at(p + 3).unwrap_or(0) & 0xF9 != 0 {
                    return (Stop::At(44), p, fdst); // offset or MF: a real fragment
                }
                8
            }
            51 => {
                let Some(alen) = at(p + 1).filter(|_| p + 2 <= n) else {
                    return (Stop::Trunc, p, fdst);
                };
                (usize::from(alen) + 2) << 2
            }
            _ => return (Stop::At(nh), p, fdst), // 50 ESP, 59 none, 135 mobility
        };
        if p + hlen > end {
            return (Stop::Bad, p, fdst);
        }
        let Some(next) = at(p).filter(|_| p + hlen <= n) else {
            return (Stop::Trunc, p, fdst);
        };
        nh = next;
        p += hlen;
    }
    (Stop::At(nh), p, fdst)
}

/// The IPv4 header fields after the version/IHL byte.
struct V4 {
    tot: usize,
    id: u16,
    frag: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
}

fn v4_fields(d: &[u8], off: usize) -> Option<V4> {
    let h: [u8; 20] = d.get(off..off.checked_add(20)?)?.try_into().ok()?;
    Some(V4 {
        tot: usize::from(u16::from_be_bytes([h[2], h[3]])),
        id: u16::from_be_bytes([h[4], h[5]]),
        frag: u16::from_be_bytes([h[6], h[7]]),
        ttl: h[8],
        proto: h[9],
        src: [h[12], h[13], h[14], h[15]],
        dst: [h[16], h[17], h[18], h[19]],
    })
}

fn as_i64(x: usize) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Frames -> IP packets; keeps the fragment reassembly state and the counters.
#[derive(Debug)]
pub struct Decoder {
    pub stats: Counters,
    /// Packets beyond the first that one frame carried (802.11 A-MSDU), their `l4` ranges of
    /// that frame: the caller takes them after the packet `decode` returned.
    pub more: Vec<Packet>,
    pub frag: FragReassembler,
    ignore_all: bool,
    ignore_nets: Option<NetSet>,
}

impl Decoder {
    pub fn new(settings: &Settings) -> Self {
        let nets = NetSet::new(&settings.ignore_checksums_nets);
        Decoder {
            stats: Counters::default(),
            more: Vec::new(),
            frag: FragReassembler::new(
                settings.frag_timeout,
                settings.frag_max_datagrams,
                settings.frag_max_bytes,
            ),
            ignore_all: settings.ignore_checksums,
            ignore_nets: if nets.is_empty() { None } else { Some(nets) },
        }
    }

    /// End of input: count fragments that never completed (`fragment_incomplete`).
    pub fn flush(&mut self) {
        self.frag.flush(&mut self.stats);
    }

    fn count(&mut self, r: Reason) -> Option<Packet> {
        self.stats.inc(r);
        None
    }

    /// One captured frame -> its IP packet, or None (counted under a reason).
    pub fn decode(&mut self, ts: f64, linktype: u32, data: &[u8], wirelen: i64) -> Option<Packet> {
        let n = data.len();
        let (mut et, mut off);
        if linktype == 1 {
            let Some(&[a, b]) = data.get(12..14) else {
                return self.count(Reason::TruncatedLinkHeader);
            };
            et = u16::from_be_bytes([a, b]);
            off = 14;
            while is_vlan(et) {
                let Some(&[a, b]) = data.get(off + 2..off + 4) else {
                    return self.count(Reason::TruncatedLinkHeader);
                };
                et = u16::from_be_bytes([a, b]);
                off += 4;
            }
        } else {
            let Some(f) = links::linktype_fn(linktype) else {
                self.stats.unsupported_linktype(linktype);
                return None;
            };
            match f(data) {
                Err(LinkErr::Truncated) => return self.count(Reason::TruncatedLinkHeader),
                Err(LinkErr::Anomaly(r)) => return self.count(r),
                Ok(None) => return self.count(Reason::NonIp),
                Ok(Some(out)) => {
                    if !out.rest.is_empty() {
                        self.more_in_frame(ts, data, wirelen, &out.rest);
                    }
                    et = out.et;
                    off = out.off;
                }
            }
        }
        if et != ETH_IPV4 && et != ETH_IPV6 {
            off = self.ethertype(et, data, off)?;
        }

        // IP: the version nibble decides, whatever the ethertype said
        let ip_n = match n.checked_sub(off) {
            Some(m) if m >= 20 => m,
            _ => return self.count(Reason::TruncatedIp),
        };
        let b0 = data.get(off).copied().unwrap_or(0);
        if b0 == 0x45 {
            let h = v4_fields(data, off)?;
            if h.tot >= 20 && wirelen >= as_i64(off + h.tot) && h.frag & 0x3FFF == 0 {
                if !self.ignore_all {
                    let hdr = data.get(off..off + 20).unwrap_or_default();
                    if ones_sum(hdr) != 0 && self.bad_checksum(&h.src) {
                        return None;
                    }
                }
                return Some(Packet {
                    src: Addr::from_slice(&h.src),
                    dst: Addr::from_slice(&h.dst),
                    proto: h.proto,
                    ip_len: h.tot as u64,
                    l4: clip(n, off + 20, off + h.tot),
                    l4_len: h.tot - 20,
                    ttl: h.ttl,
                    datagram: None,
                });
            }
            return self.ipv4(ts, data, off, ip_n, wirelen);
        }
        match b0 >> 4 {
            4 => self.ipv4(ts, data, off, ip_n, wirelen),
            6 => {
                let Some(h) = data.get(off..off + 40) else {
                    return self.count(Reason::TruncatedIp);
                };
                let (plen, nh, hlim) = match *h {
                    [_, _, _, _, a, b, nh, hlim, ..] => {
                        (usize::from(u16::from_be_bytes([a, b])), nh, hlim)
                    }
                    _ => return self.count(Reason::TruncatedIp),
                };
                let tot = plen + 40;
                if wirelen < as_i64(off + tot) {
                    return self.count(Reason::TruncatedIpLen);
                }
                if is_v6_ext(nh) {
                    return self.v6_chain(ts, data, off, tot, nh, hlim);
                }
                Some(Packet {
                    src: Addr::from_slice(h.get(8..24).unwrap_or_default()),
                    dst: Addr::from_slice(h.get(24..40).unwrap_or_default()),
                    proto: nh,
                    ip_len: tot as u64,
                    l4: clip(n, off + 40, off + tot),
                    l4_len: plen,
                    ttl: hlim,
                    datagram: None,
                })
            }
            _ => self.count(Reason::UnknownIpVersion),
        }
    }

    /// The second and later packets of one frame, decoded as raw IP into `self.more` (their
    /// `l4` ranges shifted to the frame). A `Rest::Anomaly` ended the frame's walk.
    fn more_in_frame(&mut self, ts: f64, data: &[u8], wirelen: i64, rest: &[Rest]) {
        let missing = wirelen.saturating_sub(as_i64(data.len()));
        for item in rest {
            match *item {
                Rest::Anomaly(r) => self.stats.inc(r),
                Rest::Packet(start, end) => {
                    let r = clip(data.len(), start, end);
                    let sub = data.get(r.clone()).unwrap_or_default();
                    let claimed = (as_i64(end) - as_i64(start)).saturating_add(missing);
                    if let Some(mut pkt) = self.decode(ts, LINKTYPE_RAW, sub, claimed) {
                        if pkt.datagram.is_none() {
                            pkt.l4 = pkt.l4.start + r.start..pkt.l4.end + r.start;
                        }
                        self.more.push(pkt);
                    }
                }
            }
        }
    }

    /// Anything but plain IP after the link layer: the registry, VLAN tags, non-IP.
    fn ethertype(&mut self, mut et: u16, data: &[u8], mut off: usize) -> Option<usize> {
        for _ in 0..MAX_ENCAP_DEPTH {
            if et == ETH_IPV4 || et == ETH_IPV6 {
                return Some(off);
            }
            if is_vlan(et) {
                let Some(&[a, b]) = data.get(off + 2..off + 4) else {
                    self.stats.inc(Reason::TruncatedLinkHeader);
                    return None;
                };
                et = u16::from_be_bytes([a, b]);
                off += 4;
                continue;
            }
            let Some(f) = links::ethertype_fn(et) else {
                if links::is_unsupported_ethertype(et) {
                    self.stats.unsupported_ethertype(et);
                } else {
                    self.stats.inc(Reason::NonIp);
                }
                return None;
            };
            match f(data, off) {
                Err(LinkErr::Truncated) => {
                    self.stats.inc(Reason::TruncatedLinkHeader);
                    return None;
                }
                Err(LinkErr::Anomaly(r)) => {
                    self.stats.inc(r);
                    return None;
                }
                Ok(None) => {
                    self.stats.inc(Reason::NonIp);
                    return None;
                }
                Ok(Some((e, o))) => {
                    et = e;
                    off = o;
                }
            }
        }
        self.stats.inc(Reason::TooManyEncapsulations);
        None
    }

    /// A header checksum failed: true (counted) unless `src` is in ignore_checksums_nets.
    fn bad_checksum(&mut self, src: &[u8]) -> bool {
        if let Some(nets) = &self.ignore_nets {
            if nets.contains(src) {
                return false;
            }
        }
        self.stats.inc(Reason::BadIpChecksum);
        true
    }

    /// IPv4 with options, odd lengths or fragments (Zeek's IP.cc checks, in order).
    fn ipv4(
        &mut self,
        ts: f64,
        data: &[u8],
        off: usize,
        ip_n: usize,
        wirelen: i64,
    ) -> Option<Packet> {
        let h = v4_fields(data, off)?;
        let hl = usize::from(data.get(off).copied().unwrap_or(0) & 15) << 2;
        let counted = h.tot as u64; // Zeek counts the header's total length, even a TSO zero
        let mut tot = h.tot;
        if tot == 0 {
            self.stats.inc(Reason::IpHdrLenZero);
            if !self.ignore_all {
                return None;
            }
            tot = ip_n;
        }
        if wirelen < as_i64(off + tot) {
            return self.count(Reason::TruncatedIpLen);
        }
        if hl > tot {
            return self.count(Reason::InvalidIpHeaderSize);
        }
        if hl > ip_n {
            return self.count(Reason::InternallyTruncatedHeader);
        }
        if hl < 20 {
            return self.count(Reason::Ipv4MinHeaderSize);
        }
        if !self.ignore_all
            && ones_sum(data.get(off..off + hl).unwrap_or_default()) != 0
            && self.bad_checksum(&h.src)
        {
            return None;
        }
        if h.frag & 0x3FFF != 0 {
            return self.v4_fragment(ts, data, off, hl, tot, &h);
        }
        Some(Packet {
            src: Addr::from_slice(&h.src),
            dst: Addr::from_slice(&h.dst),
            proto: h.proto,
            ip_len: counted,
            l4: clip(data.len(), off + hl, off + tot),
            l4_len: tot - hl,
            ttl: h.ttl,
            datagram: None,
        })
    }

    fn v4_fragment(
        &mut self,
        ts: f64,
        data: &[u8],
        off: usize,
        hl: usize,
        tot: usize,
        h: &V4,
    ) -> Option<Packet> {
        self.stats.inc(Reason::IpFragments);
        let foff = usize::from(h.frag & 0x1FFF) << 3;
        let (src, dst) = (Addr::from_slice(&h.src), Addr::from_slice(&h.dst));
        if data.len() - off < tot {
            // Zeek: a snaplen-cut fragment cannot be reassembled; the first goes on as is
            self.stats.inc(Reason::IncompletelyCapturedFragment);
            if foff != 0 {
                return None;
            }
            return Some(Packet {
                src,
                dst,
                proto: h.proto,
                ip_len: tot as u64,
                l4: clip(data.len(), off + hl, off + tot),
                l4_len: tot - hl,
                ttl: h.ttl,
                datagram: None,
            });
        }
        let key = FragKey {
            src,
            dst,
            id: u32::from(h.id),
            proto: u16::from(h.proto),
        };
        let meta = FragMeta {
            head: hl,
            nh: 0,
            ttl: h.ttl,
        };
        let payload = data.get(off + hl..off + tot).unwrap_or_default();
        let (buf, meta) = self.frag.add(
            &mut self.stats,
            ts,
            key,
            foff,
            h.frag & 0x2000 != 0,
            payload,
            meta,
            65535 - hl,
        )?;
        let len = buf.len();
        Some(Packet {
            src,
            dst,
            proto: h.proto,
            ip_len: (meta.head + len) as u64,
            l4: 0..len,
            l4_len: len,
            ttl: meta.ttl,
            datagram: Some(buf),
        })
    }

    /// The walk's stop reasons as counters; Some(protocol) if the chain reached one.
    fn v6_result(&mut self, stop: Stop) -> Option<u8> {
        match stop {
            Stop::At(59) => self.count(Reason::Ipv6NoNext).map(|_| 0),
            Stop::At(50) => self.count(Reason::Ipv6Esp).map(|_| 0),
            Stop::At(135) => self.count(Reason::Ipv6Mobility).map(|_| 0),
            Stop::At(nh) => Some(nh),
            Stop::Trunc => self.count(Reason::InternallyTruncatedHeader).map(|_| 0),
            Stop::Bad => self.count(Reason::InvalidIpHeaderSize).map(|_| 0),
        }
    }

    fn v6_chain(
        &mut self,
        ts: f64,
        data: &[u8],
        off: usize,
        tot: usize,
        nh: u8,
        hlim: u8,
    ) -> Option<Packet> {
        let n = data.len();
        let end = off + tot;
        let (stop, p, fdst) = walk_v6(data, off + 40, end, nh);
        let src = Addr::from_slice(data.get(off + 8..off + 24).unwrap_or_default());
        let orig_dst = Addr::from_slice(data.get(off + 24..off + 40).unwrap_or_default());
        let fdst = fdst.map(|a| Addr::from_slice(&a));
        let dst = fdst.unwrap_or(orig_dst);
        if stop != Stop::At(44) {
            let proto = self.v6_result(stop)?;
            return Some(Packet {
                src,
                dst,
                proto,
                ip_len: tot as u64,
                l4: clip(n, p, end),
                l4_len: end.saturating_sub(p),
                ttl: hlim,
                datagram: None,
            });
        }

        // A real fragment: its header at p; the headers before it are the unfragmentable part.
        self.stats.inc(Reason::IpFragments);
        let Some(&[fnh, _, o1, o2, i1, i2, i3, i4]) = data.get(p..p + 8) else {
            return None; // the walk checked these 8 bytes
        };
        let offlg = u16::from_be_bytes([o1, o2]);
        let ident = u32::from_be_bytes([i1, i2, i3, i4]);
        let foff = usize::from(offlg & 0xFFF8);
        if n < end {
            self.stats.inc(Reason::IncompletelyCapturedFragment);
            if foff != 0 {
                return None;
            }
            let (stop, q, fdst2) = walk_v6(data, p + 8, end, fnh);
            if stop == Stop::At(44) {
                return self.count(Reason::Ipv6NestedFragment);
            }
            let proto = self.v6_result(stop)?;
            let dst = fdst
                .or(fdst2.map(|a| Addr::from_slice(&a)))
                .unwrap_or(orig_dst);
            return Some(Packet {
                src,
                dst,
                proto,
                ip_len: tot as u64,
                l4: clip(n, q, end),
                l4_len: end.saturating_sub(q),
                ttl: hlim,
                datagram: None,
            });
        }
        let unfrag = p - off;
        let key = FragKey {
            src,
            dst,
            id: ident,
            proto: 256,
        };
        let meta = FragMeta {
            head: unfrag,
            nh: fnh,
            ttl: hlim,
        };
        let payload = data.get(p + 8..end).unwrap_or_default();
        let (buf, meta) = self.frag.add(
            &mut self.stats,
            ts,
            key,
            foff,
            offlg & 1 != 0,
            payload,
            meta,
            (65535 + 40usize).saturating_sub(unfrag),
        )?;
        // Zeek: the reassembled packet is the unfragmentable part + the data, fragment header
        // removed, so ip_len = unfragmentable length + reassembled length.
        let (stop, q, fdst2) = walk_v6(&buf, 0, buf.len(), meta.nh);
        if stop == Stop::At(44) {
            return self.count(Reason::Ipv6NestedFragment);
        }
        let proto = self.v6_result(stop)?;
        let len = buf.len();
        let dst = fdst
            .or(fdst2.map(|a| Addr::from_slice(&a)))
            .unwrap_or(orig_dst);
        Some(Packet {
            src,
            dst,
            proto,
            ip_len: (meta.head + len) as u64,
            l4: clip(len, q, len),
            l4_len: len.saturating_sub(q),
            ttl: meta.ttl,
            datagram: Some(buf),
        })
    }
}
