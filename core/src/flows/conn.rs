//! The finished connection record (Zeek's conn.log row), as `sniffer.flows.conn.Conn` holds it:
//! what the table builds when a connection ends, and what the outputs write.

use std::borrow::Cow;

/// A finished (or flushed) connection. Addresses are text as the wire showed them; `None` is
/// unset (`-` in conn.log). `proto` is `tcp`, `udp`, `icmp` or `unknown_transport`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnRecord {
    pub ts: f64,
    pub uid: String,
    pub orig_h: String,
    pub orig_p: u16,
    pub resp_h: String,
    pub resp_p: u16,
    pub proto: Cow<'static, str>,
    pub ip_proto: u8,
    pub service: Option<String>,
    pub duration: Option<f64>,
    pub orig_bytes: Option<u64>,
    pub resp_bytes: Option<u64>,
    pub conn_state: Cow<'static, str>,
    pub local_orig: Option<bool>,
    pub local_resp: Option<bool>,
    pub missed_bytes: u64,
    pub history: String,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub tunnel_parents: Vec<String>,
    pub community_id: Option<String>,
}

impl ConnRecord {
    /// The record of a row's fields.
    pub fn from_row(r: &crate::output::zeek::Row<'_>) -> Self {
        ConnRecord {
            ts: r.ts,
            uid: r.uid.to_string(),
            orig_h: r.orig_h.to_string(),
            orig_p: r.orig_p,
            resp_h: r.resp_h.to_string(),
            resp_p: r.resp_p,
            proto: Cow::Borrowed(proto_name(r.ip_proto)),
            ip_proto: r.ip_proto,
            service: r.service.map(str::to_string),
            duration: r.duration,
            orig_bytes: r.orig_bytes,
            resp_bytes: r.resp_bytes,
            conn_state: Cow::Owned(r.conn_state.to_string()),
            local_orig: r.local_orig,
            local_resp: r.local_resp,
            missed_bytes: r.missed_bytes,
            history: r.history.to_string(),
            orig_pkts: r.orig_pkts,
            orig_ip_bytes: r.orig_ip_bytes,
            resp_pkts: r.resp_pkts,
            resp_ip_bytes: r.resp_ip_bytes,
            tunnel_parents: r.tunnel_parents.to_vec(),
            community_id: r.community_id.map(str::to_string),
        }
    }

    /// The row to write (sniffer::output::zeek::write).
    pub fn row(&self) -> crate::output::zeek::Row<'_> {
        crate::output::zeek::Row {
            ts: self.ts,
            uid: &self.uid,
            orig_h: &self.orig_h,
            orig_p: self.orig_p,
            resp_h: &self.resp_h,
            resp_p: self.resp_p,
            proto: &self.proto,
            ip_proto: self.ip_proto,
            service: self.service.as_deref(),
            duration: self.duration,
            orig_bytes: self.orig_bytes,
            resp_bytes: self.resp_bytes,
            conn_state: &self.conn_state,
            local_orig: self.local_orig,
            local_resp: self.local_resp,
            missed_bytes: self.missed_bytes,
            history: &self.history,
            orig_pkts: self.orig_pkts,
            orig_ip_bytes: self.orig_ip_bytes,
            resp_pkts: self.resp_pkts,
            resp_ip_bytes: self.resp_ip_bytes,
            tunnel_parents: &self.tunnel_parents,
            community_id: self.community_id.as_deref(),
        }
    }
}

/// The `proto` field for IP protocol number `proto` (Zeek's transport_proto names; ICMPv6 is
/// "icmp" too, `ip_proto` tells them apart).
pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    }
}

/// A raw 4- or 16-byte address as text, exactly as the C library's inet_ntop writes it
/// (Python's `socket.inet_ntop`, the reference): the longest run of two or more zero groups
/// (the first of equals) becomes `::`, and an address whose first 96 bits are zero, or an
/// IPv4-mapped one, ends in dotted IPv4 (`::1.2.3.4`, `::ffff:1.2.3.4`). Rust's own
/// formatting differs on the first of those, so this is written out.
pub fn ntop(raw: &[u8]) -> String {
    let mut s = String::with_capacity(if raw.len() == 4 { 15 } else { 39 });
    ntop_into(&mut s, raw);
    s
}

/// [`ntop`], appended to `s`.
pub fn ntop_into(s: &mut String, raw: &[u8]) {
    if let &[a, b, c, d] = raw {
        push_ipv4(s, [a, b, c, d]);
        return;
    }
    let mut words = [0u16; 8];
    for (w, pair) in words.iter_mut().zip(raw.chunks_exact(2)) {
        if let &[x, y] = pair {
            *w = u16::from_be_bytes([x, y]);
        }
    }
    // The longest run of zero words (glibc: the first longest, at least two).
    let (mut best, mut cur): ((usize, usize), Option<(usize, usize)>) = ((0, 0), None);
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            let c = cur.map_or((i, 1), |(s, l)| (s, l + 1));
            cur = Some(c);
            if c.1 > best.1 {
                best = c;
            }
        } else {
            cur = None;
        }
    }
    let run = (best.1 >= 2).then_some(best);
    let mut i = 0;
    while i < 8 {
        if let Some((base, len)) = run {
            if i >= base && i < base + len {
                if i == base {
                    s.push(':');
                }
                i += 1;
                continue;
            }
        }
        if i != 0 {
            s.push(':');
        }
        let embedded = run.is_some_and(|(base, len)| {
            base == 0 && (len == 6 || (len == 5 && words.get(5) == Some(&0xffff)))
        });
        if i == 6 && embedded {
            if let Some(&[a, b, c, d]) = raw.get(12..16) {
                push_ipv4(s, [a, b, c, d]);
            }
            break;
        }
        push_hex16(s, words.get(i).copied().unwrap_or(0));
        i += 1;
    }
    if run.is_some_and(|(base, len)| base + len == 8) {
        s.push(':');
    }
}

/// `a.b.c.d`, written by hand (core::fmt costs more than the rest of a record), digit by
/// digit (an itoa buffer and a copy per octet cost more, and every record writes two).
fn push_ipv4(s: &mut String, octets: [u8; 4]) {
    s.reserve(15);
    let digit = |d: u8| char::from(b'0' + d % 10);
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(digit(o / 100));
        }
        if o >= 10 {
            s.push(digit(o / 10));
        }
        s.push(digit(o));
    }
}

/// A 16-bit group in lowercase hex without leading zeros (`%x`).
fn push_hex16(s: &mut String, w: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u16, 8, 4, 0] {
        let d = (w >> shift) & 15;
        if started || d != 0 || shift == 0 {
            started = true;
            s.push(char::from(HEX.get(usize::from(d)).copied().unwrap_or(b'0')));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ntop;

    #[test]
    fn ntop_matches_the_c_library() {
        let v6 = |t: &str| {
            t.parse::<std::net::Ipv6Addr>()
                .map(|a| a.octets())
                .unwrap_or_default()
        };
        for (text, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("fe80::", "fe80::"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("::2:0:0", "::2:0:0"),
        ] {
            assert_eq!(ntop(&v6(text)), want, "{text}");
        }
        assert_eq!(ntop(&[10, 0, 0, 1]), "10.0.0.1");
        // every octet value, in every position
        for o in 0..=255u8 {
            let octets = [o, o.wrapping_add(7), o.wrapping_mul(3), 255 - o];
            let want = std::net::Ipv4Addr::from(octets).to_string();
            assert_eq!(ntop(&octets), want);
        }
    }
}
