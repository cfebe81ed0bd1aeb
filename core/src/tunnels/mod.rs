//! Tunnel decapsulation, transcribed from `sniffer/tunnels` (Python): protocols that carry
//! whole packets inside packets (GRE, IP in IP, VXLAN, Geneve, AYIYA, Teredo, GTPv1-U), in the
//! manner of Zeek's packet analyzers.
//!
//! Each tunnel is one small module with one decapsulator, registered by the UDP responder port
//! or IP protocol that carries it ([`udp_port`], [`ip_proto`]) or found by its signature on any
//! UDP port ([`udp_detect`]). A decapsulator takes the tunnel's payload (the bytes after the
//! outer UDP or IP header) and answers a [`Decap`]: the inner frame (its link type, offset and
//! tunnel type), the anomaly that stops decapsulation (Zeek's weird or violation name), or
//! nothing (a valid message without a packet: a GTP-C message, an AYIYA heartbeat).
//!
//! The flow table calls them: it owns the outer connection, the encapsulation stack and each
//! inner connection's `tunnel_parents`. Every length is checked; no input panics.

mod ayiya;
mod geneve;
mod gre;
mod gtp;
mod ipip;
mod teredo;
mod vxlan;

#[cfg(test)]
mod tests;

/// Link types of the inner frame, decoded by the ordinary decoder.
pub const LINK_ETHERNET: u32 = 1;
pub const LINK_RAW: u32 = 101;
pub const LINK_80211: u32 = 105;

/// Zeek's Tunnel::max_depth: deeper nesting is an anomaly, not decapsulated.
pub const MAX_DEPTH: usize = 4;

/// The tunnel types Zeek logs (the strings the Python decapsulators return).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Ip,
    Gre,
    Vxlan,
    Geneve,
    Ayiya,
    Teredo,
    Gtpv1,
}

impl Kind {
    /// The name in tunnel.log and the encapsulation stack.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ip => "IP",
            Kind::Gre => "GRE",
            Kind::Vxlan => "VXLAN",
            Kind::Geneve => "GENEVE",
            Kind::Ayiya => "AYIYA",
            Kind::Teredo => "TEREDO",
            Kind::Gtpv1 => "GTPv1",
        }
    }

    /// Python's IP_LEVEL: the parent is the IP address pair rather than a UDP connection (Zeek
    /// keeps one uid per pair of tunnel endpoints and logs no connection of their own).
    pub fn ip_level(self) -> bool {
        matches!(self, Kind::Ip | Kind::Gre)
    }
}

/// A decapsulator's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decap {
    /// The inner frame starts at `payload[off..]`, decoded from `link`.
    Inner { link: u32, off: usize, kind: Kind },
    /// The anomaly that stops decapsulation (a weird; the table marks the connection violated).
    Anomaly(&'static str),
    /// A valid tunnel message that carries no packet.
    Nothing,
}

/// Which decapsulator (one per Python function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decapsulator {
    Ayiya,
    Geneve,
    Gre,
    Gtp,
    Ipv4InIp,
    Ipv6InIp,
    Teredo,
    Vxlan,
}

impl Decapsulator {
    /// Every decapsulator, in declaration order.
    pub const ALL: [Decapsulator; 8] = [
        Decapsulator::Ayiya,
        Decapsulator::Geneve,
        Decapsulator::Gre,
        Decapsulator::Gtp,
        Decapsulator::Ipv4InIp,
        Decapsulator::Ipv6InIp,
        Decapsulator::Teredo,
        Decapsulator::Vxlan,
    ];

    /// A distinct bit per decapsulator (the table's per-connection "violated" set).
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The Python function's name (`sniffer.tunnels.<module>.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Decapsulator::Ayiya => "ayiya",
            Decapsulator::Geneve => "geneve",
            Decapsulator::Gre => "gre",
            Decapsulator::Gtp => "gtp",
            Decapsulator::Ipv4InIp => "ipv4_in_ip",
            Decapsulator::Ipv6InIp => "ipv6_in_ip",
            Decapsulator::Teredo => "teredo",
            Decapsulator::Vxlan => "vxlan",
        }
    }

    /// Open the tunnel's payload (the bytes after the outer UDP or IP header).
    pub fn decap(self, payload: &[u8]) -> Decap {
        match self {
            Decapsulator::Ayiya => ayiya::ayiya(payload),
            Decapsulator::Geneve => geneve::geneve(payload),
            Decapsulator::Gre => gre::gre(payload),
            Decapsulator::Gtp => gtp::gtp(payload),
            Decapsulator::Ipv4InIp => ipip::ipv4_in_ip(payload),
            Decapsulator::Ipv6InIp => ipip::ipv6_in_ip(payload),
            Decapsulator::Teredo => teredo::teredo(payload),
            Decapsulator::Vxlan => vxlan::vxlan(payload),
        }
    }
}

/// Python's UDP_PORTS: the UDP tunnel opened by the connection's responder port.
pub fn udp_port(resp_port: u16) -> Option<Decapsulator> {
    match resp_port {
        5072 => Some(Decapsulator::Ayiya),
        6081 => Some(Decapsulator::Geneve),
        4754 => Some(Decapsulator::Gre),
        2152 | 2123 => Some(Decapsulator::Gtp),
        3544 => Some(Decapsulator::Teredo),
        4789 => Some(Decapsulator::Vxlan),
        _ => None,
    }
}

/// Python's UDP_DETECTORS (Zeek's protocol detection), tried on other ports: the first whose
/// signature test accepts, in registration order (AYIYA, then Teredo).
pub fn udp_detect(payload: &[u8]) -> Option<Decapsulator> {
    if ayiya::looks_like_ayiya(payload) {
        Some(Decapsulator::Ayiya)
    } else if teredo::looks_like_teredo(payload) {
        Some(Decapsulator::Teredo)
    } else {
        None
    }
}

/// Python's IP_PROTOS: the tunnel carried directly by IP protocol `proto`.
pub fn ip_proto(proto: u8) -> Option<Decapsulator> {
    match proto {
        4 => Some(Decapsulator::Ipv4InIp),
        41 => Some(Decapsulator::Ipv6InIp),
        47 => Some(Decapsulator::Gre),
        _ => None,
    }
}

/// Big-endian u16 at `i`, if the bytes are there.
fn be16(data: &[u8], i: usize) -> Option<u16> {
    let hi = *data.get(i)?;
    let lo = *data.get(i.checked_add(1)?)?;
    Some(u16::from(hi) << 8 | u16::from(lo))
}

/// Zeek's IP::ParsePacket: an inner IP packet that fills the rest of `data` from `off`
/// exactly. Returns the anomaly name, or None when the packet is whole; `version` pins 4 or 6.
pub fn exact_ip(data: &[u8], off: usize, version: Option<u8>) -> Option<&'static str> {
    const TRUNCATED: &str = "truncated_inner_IP";
    let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) else {
        return Some(TRUNCATED);
    };
    let v = rest.first().map_or(0, |b| b >> 4);
    if version.is_some_and(|want| v != want) || (v != 4 && v != 6) {
        return Some("invalid_inner_IP_version");
    }
    let total = if v == 4 {
        if rest.len() < 20 {
            return Some(TRUNCATED);
        }
        be16(rest, 2).map_or(0, usize::from)
    } else {
        if rest.len() < 40 {
            return Some(TRUNCATED);
        }
        be16(rest, 4).map_or(0, usize::from) + 40
    };
    if rest.len() < total {
        Some(TRUNCATED)
    } else if rest.len() > total {
        Some("inner_IP_payload_length_mismatch")
    } else {
        None
    }
}
