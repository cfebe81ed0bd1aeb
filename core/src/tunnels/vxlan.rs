//! VXLAN (RFC 7348) on UDP 4789 (Zeek's VXLAN analyzer); transcribes `sniffer/tunnels/vxlan.py`.

use super::{Decap, Kind, LINK_ETHERNET};

/// VXLAN (RFC 7348; Zeek's VXLAN analyzer): an 8-byte header with the I flag, then an Ethernet
/// frame.
pub(super) fn vxlan(data: &[u8]) -> Decap {
    let Some(&flags) = data.first().filter(|_| data.len() >= 8) else {
        return Decap::Anomaly("vxlan_truncated");
    };
    if flags & 0x08 == 0 {
        return Decap::Anomaly("vxlan_I_flag_not_set");
    }
    if data.len() == 8 {
        return Decap::Anomaly("vxlan_empty_packet");
    }
    Decap::Inner {
        link: LINK_ETHERNET,
        off: 8,
        kind: Kind::Vxlan,
    }
}
