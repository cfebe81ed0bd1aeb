//! IP in IP (Zeek's IPTunnel analyzer): IPv4 or IPv6 directly inside IPv4 or IPv6 (4in4, 6in4,
//! 4in6, 6in6); transcribes `sniffer/tunnels/ipip.py`.

use super::{exact_ip, Decap, Kind, LINK_RAW};

fn whole(data: &[u8], version: u8) -> Decap {
    match exact_ip(data, 0, Some(version)) {
        Some(bad) => Decap::Anomaly(bad),
        None => Decap::Inner {
            link: LINK_RAW,
            off: 0,
            kind: Kind::Ip,
        },
    }
}

/// IPv4 in IP (Zeek's IPTunnel analyzer), protocol 4: an IPv4 packet filling the payload.
pub(super) fn ipv4_in_ip(data: &[u8]) -> Decap {
    whole(data, 4)
}

/// IPv6 in IP (Zeek's IPTunnel analyzer), protocol 41: an IPv6 packet filling the payload.
pub(super) fn ipv6_in_ip(data: &[u8]) -> Decap {
    whole(data, 6)
}
