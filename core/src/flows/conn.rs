//! The finished connection record (Zeek's conn.log row), as `sniffer.flows.conn.Conn` holds it:
//! what the table builds when a connection ends, and what the outputs write.

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
    pub proto: String,
    pub ip_proto: u8,
    pub service: Option<String>,
    pub duration: Option<f64>,
    pub orig_bytes: Option<u64>,
    pub resp_bytes: Option<u64>,
    pub conn_state: String,
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
