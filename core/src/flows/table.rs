//! The connection table: keys, creation and orientation, timers, eviction, tunnels, and the
//! UDP/ICMP/other-IP trackers; Zeek's TCP machine ([`super::tcp`]) does the rest of TCP.
//!
//! A transcription of `sniffer/flows/table.py` (the reference, which the differential tests
//! hold this to record for record and weird for weird), with its names. Connections live in a
//! slab (`Vec<Option<Flow>>`) found through a hash map of canonical keys; timers (queued in
//! [`super::timers`]) are cancelled lazily: a timer names its connection by slot and serial
//! number (a slot reused by a later connection never receives the old one's timers) and by a
//! generation (a re-armed timer makes the older one void). Why hand-written: this is the
//! per-packet path, and its semantics are Zeek's, which no flow-table crate has.
//!
//! The table hears about packets in time order (`process`) and pushes what happened onto
//! `events`: finished records (with what orders them), weirds, and new connections.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::community_id::{community_id_into, icmp4_counterpart, icmp6_counterpart};
use super::conn::{ntop_into, proto_name, ConnRecord};
use super::index::FlowIndex;
use super::tcp::{self, Segment, TcpConn, TcpContext, TcpSettings};
use super::timers::{Timer, Timers};
use super::uid::{make_uid, KeyPart, Uid, UidBatch};
use crate::decode::checksum::l4_checksum_ok;
use crate::decode::{Addr, Decoder, Net, NetSet, Packet};
use crate::output::json;
use crate::output::zeek::{self, Row};
use crate::tunnels::{self, Decap, Decapsulator, Kind};

/// Zeek's Tunnel::max_changes_per_connection.
pub const MAX_TUNNEL_CHANGES: u8 = 5;
/// The history bit of "X" (Zeek's HIST_UNKNOWN_PKT), shared by every protocol.
pub const HIST_X: u32 = 0x400;
/// Zeek's DNS::ports for UDP (where its DNS analyzer runs when they are server ports).
pub const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];
const VXLAN_PORT: u16 = 4789;
/// Connections ended together (`remove_many`): each phase's work on them stays in L2 (a
/// connection is about 264 bytes) and their index probes still overlap.
const REMOVE_PART: usize = 256;
/// Bytes of rows past which `rows_full` asks the caller to take them: the text is then still
/// in cache when it is copied out (a batch of 65,536 flood packets would write 10 MB).
pub const ROWS_SOFT_LIMIT: usize = 256 * 1024;
/// Counters that describe the input rather than something wrong with it: never weirds
/// (sniffer.stats.INFORMATIONAL).
const INFORMATIONAL: [&str; 7] = [
    "packets",
    "bytes",
    "ip_fragments",
    "fragments_reassembled",
    "tunneled_packets",
    "snaplen_truncated",
    "non_ip",
];
const BROADCAST4: [u8; 4] = [255, 255, 255, 255];

/// What the table reads of `sniffer.config.Settings` (same names, same defaults).
#[derive(Clone, Debug)]
pub struct TableSettings {
    pub tcp: TcpSettings,
    pub tcp_syn_timeout: f64,
    pub udp_inactivity_timeout: f64,
    pub icmp_inactivity_timeout: f64,
    pub unknown_ip_inactivity_timeout: f64,
    pub dns_session_timeout: f64,
    pub ip_tunnel_timeout: f64,
    /// 0: no bound.
    pub max_flows: usize,
    pub long_timeout_ports: Vec<u16>,
    pub long_inactivity_timeout: f64,
    /// (port, IP protocol) pairs: Zeek's likely_server_ports.
    pub likely_server_ports: Vec<(u16, u8)>,
    pub local_nets: Vec<Net>,
    pub ignore_checksums: bool,
    pub ignore_checksums_nets: Vec<Net>,
}

impl Default for TableSettings {
    fn default() -> Self {
        TableSettings {
            tcp: TcpSettings::default(),
            tcp_syn_timeout: 5.0,
            udp_inactivity_timeout: 60.0,
            icmp_inactivity_timeout: 60.0,
            unknown_ip_inactivity_timeout: 60.0,
            dns_session_timeout: 10.0,
            ip_tunnel_timeout: 86400.0,
            max_flows: 100_000,
            long_timeout_ports: vec![21, 22, 23, 513],
            long_inactivity_timeout: 3600.0,
            likely_server_ports: Vec::new(),
            local_nets: Vec::new(),
            ignore_checksums: false,
            ignore_checksums_nets: Vec::new(),
        }
    }
}

/// A set of 65,536 ports, one bit each (the likely server ports of one protocol).
#[derive(Clone, Debug)]
struct PortSet(Vec<u64>);

impl PortSet {
    fn new(ports: impl Iterator<Item = u16>) -> Self {
        let mut bits = vec![0u64; 1024];
        for p in ports {
            if let Some(w) = bits.get_mut(usize::from(p >> 6)) {
                *w |= 1 << (p & 63);
            }
        }
        PortSet(bits)
    }

    fn contains(&self, p: u16) -> bool {
        self.0
            .get(usize::from(p >> 6))
            .is_some_and(|w| w & (1 << (p & 63)) != 0)
    }
}

fn addr_lt(a: &Addr, b: &Addr) -> bool {
    a.before(b)
}

/// The table's key of a connection: the Python key tuple's fields. TCP keys are
/// `(a, pa, b, pb)`, UDP adds 17, ICMP request/reply and other IP add the protocol, a one-way
/// ICMP message is `(src, type, dst, code, proto, 1)` (`one_way`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowKey {
    pub a: Addr,
    pub pa: u16,
    pub b: Addr,
    pub pb: u16,
    pub proto: u8,
    pub one_way: bool,
}

// Hashed as three words (the addresses, then the rest packed): a key is hashed per packet.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.a.hash(h);
        self.b.hash(h);
        h.write_u64(
            u64::from(self.pa)
                | u64::from(self.pb) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.one_way) << 40,
        );
    }
}

impl FlowKey {
    /// `flow_key(src, sport, dst, dport)`: the lower (address, port) end first.
    pub(crate) fn ordered(src: Addr, sport: u16, dst: Addr, dport: u16, proto: u8) -> Self {
        let lower = addr_lt(&src, &dst) || (src == dst && sport < dport);
        let (a, pa, b, pb) = if lower {
            (src, sport, dst, dport)
        } else {
            (dst, dport, src, sport)
        };
        FlowKey {
            a,
            pa,
            b,
            pb,
            proto,
            one_way: false,
        }
    }

    /// The uid of a connection with this key, started at `ts` with serial number `serial`.
    fn uid(&self, ts: f64, serial: u64) -> String {
        self.with_uid_input(|key| make_uid(key, ts, serial))
    }

    /// Add that uid's making to `batch`.
    fn push_uid(&self, batch: &mut UidBatch, ts: f64, serial: u64) {
        self.with_uid_input(|key| batch.push(key, ts, serial));
    }

    /// `k(the key as the uid's input takes it)`.
    fn with_uid_input<R>(&self, k: impl FnOnce(&[KeyPart<'_>]) -> R) -> R {
        let (a, b) = (
            KeyPart::Bytes(self.a.as_bytes()),
            KeyPart::Bytes(self.b.as_bytes()),
        );
        let (pa, pb) = (KeyPart::Int(self.pa.into()), KeyPart::Int(self.pb.into()));
        let proto = KeyPart::Int(self.proto.into());
        if self.one_way {
            k(&[a, pa, b, pb, proto, KeyPart::Int(1)])
        } else if self.proto == 6 {
            k(&[a, pa, b, pb])
        } else {
            k(&[a, pa, b, pb, proto])
        }
    }
}

/// One tunnel a packet came through: `(tunnel_type, uid, orig_h, orig_p, resp_h, resp_p)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncapEntry {
    pub kind: Kind,
    pub uid: String,
    pub orig_h: Addr,
    pub orig_p: u16,
    pub resp_h: Addr,
    pub resp_p: u16,
}

/// The tunnels a packet arrived through, outermost first.
pub type Encap = Vec<EncapEntry>;

/// The rare part of a connection: tunnels (boxed, so a plain connection pays one pointer).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tunnels {
    /// The uid, kept once the connection carries a tunnel (each inner packet names it).
    uid: Option<String>,
    encap: Option<Encap>,
    parents: Vec<String>,
    changes: u8,
    /// Decapsulators that failed on this connection (Decapsulator::bit).
    violated: u16,
}

/// A UDP, ICMP or other-IP connection: two packet/byte counters and two "active" flags.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimpleConn {
    pub start_time: f64,
    pub last_time: f64,
    pub orig_p: u16,
    pub resp_p: u16,
    pub flipped: bool,
    pub orig_active: bool,
    pub resp_active: bool,
    pub hist_seen: u32,
    pub history: String,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub orig_size: u64,
    pub resp_size: u64,
    orig_chk: u32,
    orig_chk_thresh: u32,
    resp_chk: u32,
    resp_chk_thresh: u32,
}

impl SimpleConn {
    fn new(ts: f64, sport: u16, dport: u16) -> Self {
        SimpleConn {
            start_time: ts,
            last_time: ts,
            orig_p: sport,
            resp_p: dport,
            flipped: false,
            orig_active: false,
            resp_active: false,
            hist_seen: 0,
            history: String::new(),
            orig_pkts: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            orig_size: 0,
            resp_size: 0,
            orig_chk: 0,
            orig_chk_thresh: 1,
            resp_chk: 0,
            resp_chk_thresh: 1,
        }
    }

    fn flip_roles(&mut self) {
        self.flipped = !self.flipped;
        std::mem::swap(&mut self.orig_p, &mut self.resp_p);
        self.history.push('^');
    }

    /// One valid packet: Zeek's endpoint size and ConnSize counters.
    fn count(&mut self, is_orig: bool, size: u64, ip_len: u64) {
        if is_orig {
            self.orig_active = true;
            self.orig_size = self.orig_size.saturating_add(size);
            self.orig_pkts = self.orig_pkts.saturating_add(1);
            self.orig_ip_bytes = self.orig_ip_bytes.saturating_add(ip_len);
        } else {
            self.resp_active = true;
            self.resp_size = self.resp_size.saturating_add(size);
            self.resp_pkts = self.resp_pkts.saturating_add(1);
            self.resp_ip_bytes = self.resp_ip_bytes.saturating_add(ip_len);
        }
    }

    fn conn_state(&self, proto: u8) -> &'static str {
        if proto != 17 {
            return "OTH";
        }
        match (self.orig_active, self.resp_active) {
            (true, true) => "SF",
            (true, false) => "S0",
            (false, true) => "SHR",
            (false, false) => "OTH",
        }
    }

    fn check_history(&mut self, mask: u32, code: char) {
        if self.hist_seen & mask == 0 {
            self.hist_seen |= mask;
            self.history.push(code);
        }
    }
}

/// TCP (Zeek's machine) or one of the simple trackers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum State {
    Tcp(TcpConn),
    Simple(SimpleConn),
}

/// One connection in the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flow {
    /// Its key, which holds both addresses (and the IP protocol).
    pub key: FlowKey,
    /// The serial number: `(frame << 16) | creation within the frame`.
    pub seq_no: u64,
    inactivity_timeout: f64,
    /// (a u16: the timeout changes a few times in a connection's life, never 65,536)
    inact_gen: u16,
    /// Whether the first packet came from the key's `a` end: the originator unless flipped.
    from_a: bool,
    tunnels: Option<Box<Tunnels>>,
    pub state: State,
}

impl Flow {
    pub fn proto(&self) -> u8 {
        self.key.proto
    }

    /// The uid: made when asked for (records, weirds, tunnels), from what the connection
    /// keeps (its key, start time and serial number), never stored: a flood's connections
    /// mostly end as records, so it is made once either way.
    pub fn uid(&self) -> String {
        if let Some(uid) = self.tunnels.as_ref().and_then(|t| t.uid.as_ref()) {
            return uid.clone();
        }
        self.key.uid(self.start_time(), self.seq_no)
    }

    /// Add the making of this connection's uid to `batch`, unless it keeps one (a tunnel's):
    /// true if added.
    fn uid_into(&self, batch: &mut UidBatch) -> bool {
        if self.tunnels.as_ref().is_some_and(|t| t.uid.is_some()) {
            return false;
        }
        self.key.push_uid(batch, self.start_time(), self.seq_no);
        true
    }

    fn start_time(&self) -> f64 {
        match &self.state {
            State::Tcp(t) => t.start_time,
            State::Simple(s) => s.start_time,
        }
    }

    fn flipped(&self) -> bool {
        match &self.state {
            State::Tcp(t) => t.flipped,
            State::Simple(s) => s.flipped,
        }
    }

    /// (originator, responder) addresses: the key's ends in the first packet's order, swapped
    /// when the roles were flipped.
    fn hosts(&self) -> (&Addr, &Addr) {
        if self.flipped() != self.from_a {
            (&self.key.a, &self.key.b)
        } else {
            (&self.key.b, &self.key.a)
        }
    }

    pub fn orig_h(&self) -> &Addr {
        self.hosts().0
    }

    pub fn resp_h(&self) -> &Addr {
        self.hosts().1
    }

    pub fn ports(&self) -> (u16, u16) {
        match &self.state {
            State::Tcp(t) => (t.orig_p, t.resp_p),
            State::Simple(s) => (s.orig_p, s.resp_p),
        }
    }

    fn last_time(&self) -> f64 {
        match &self.state {
            State::Tcp(t) => t.last_time,
            State::Simple(s) => s.last_time,
        }
    }

    fn timer_gen(&self) -> u16 {
        match &self.state {
            State::Tcp(t) => u16::from(t.timer_gen),
            State::Simple(_) => 0,
        }
    }

    fn hist_x(&mut self) -> bool {
        match &mut self.state {
            State::Tcp(t) => !t.check_history(HIST_X, 'X'),
            State::Simple(s) => {
                let new = s.hist_seen & HIST_X == 0;
                s.check_history(HIST_X, 'X');
                new
            }
        }
    }

    fn encap(&self) -> Option<&Encap> {
        self.tunnels.as_ref().and_then(|t| t.encap.as_ref())
    }

    fn tunnels_mut(&mut self) -> &mut Tunnels {
        self.tunnels.get_or_insert_with(Box::default)
    }

    /// `_add_parent`: the innermost tunnel's uid joins the parents once.
    fn add_parent(&mut self, encap: &Encap) {
        if let Some(last) = encap.last() {
            let t = self.tunnels_mut();
            if !t.parents.contains(&last.uid) {
                t.parents.push(last.uid.clone());
            }
        }
    }
}

/// What ended a connection, which orders its record among the others (sniffer.engine's
/// `Finished.firing`): its frame's packet, a timer `(when, serial, kind)`, or the end of input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Firing {
    Packet,
    Timer { when: f64, serial: u64, kind: u8 },
    Flush { serial: u64 },
}

/// An anomaly of the flow stage (sniffer.output.weird.Weird with source "flows").
#[derive(Clone, Debug, PartialEq)]
pub struct WeirdEvent {
    pub ts: f64,
    pub name: Cow<'static, str>,
    /// Counted by decode or the capture (no connection), not by the flows.
    pub decode: bool,
    pub uid: Option<String>,
    pub orig_h: Option<Addr>,
    pub orig_p: Option<u16>,
    pub resp_h: Option<Addr>,
    pub resp_p: Option<u16>,
}

/// The text of conn.log rows the table writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// Zeek's TSV (the default fields).
    Zeek,
    /// JSON lines, as Zeek's JSON writer.
    Json,
}

/// What the table reports, in the order it happened.
#[derive(Clone, Debug)]
pub enum TableEvent {
    Finished {
        rec: Box<ConnRecord>,
        frame: u64,
        firing: Firing,
    },
    Weird(WeirdEvent),
    /// A connection's first packet (`live` looks its socket up), in frame `frame`.
    New {
        ts: f64,
        proto: u8,
        orig_h: Addr,
        orig_p: u16,
        resp_h: Addr,
        resp_p: u16,
        uid: String,
        frame: u64,
    },
    /// With `facts`: every decoded IP packet, before the table handles it (what the
    /// detectors' `packet` hook reads).
    Packet(Box<PacketFact>),
    /// With `facts`: a TCP segment the machine took, after it was counted (the detectors'
    /// `tcp` hook).
    Segment(Box<SegmentFact>),
}

/// A decoded packet as the detectors see it: the Python decoder's tuple and its tunnels.
#[derive(Clone, Debug)]
pub struct PacketFact {
    pub ts: f64,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub ip_len: u64,
    pub l4: Vec<u8>,
    pub l4_len: usize,
    pub ttl: u8,
    pub encap: Option<Encap>,
}

/// A TCP segment and its connection as they stand after it.
#[derive(Clone, Debug)]
pub struct SegmentFact {
    pub ts: f64,
    pub uid: String,
    pub key: FlowKey,
    pub orig_h: Addr,
    pub orig_p: u16,
    pub resp_h: Addr,
    pub resp_p: u16,
    pub orig_pkts: u64,
    pub resp_pkts: u64,
    pub is_orig: bool,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub payload: Vec<u8>,
    pub ttl: u8,
}

/// An open connection, for `live`'s dashboard: its record so far and its size.
#[derive(Clone, Debug)]
pub struct OpenConn {
    pub rec: ConnRecord,
    pub ip_bytes: u64,
}

/// Counters of the flow stage, by the Python stats names (`weird:NAME`, `tunneled_packets`,
/// `flows_evicted`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FlowCounters {
    #[serde(with = "crate::state::named_counts")]
    pub weirds: Vec<(&'static str, u64)>,
    pub tunneled_packets: u64,
    pub flows_evicted: u64,
}

impl FlowCounters {
    fn weird(&mut self, name: &'static str) {
        if let Some(e) = self.weirds.iter_mut().find(|e| e.0 == name) {
            e.1 += 1;
        } else {
            self.weirds.push((name, 1));
        }
    }

    /// Every nonzero counter by its Python stats key.
    pub fn iter(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let w = self.weirds.iter().map(|(n, c)| (format!("weird:{n}"), *c));
        let t = [
            ("tunneled_packets", self.tunneled_packets),
            ("flows_evicted", self.flows_evicted),
        ];
        w.chain(
            t.into_iter()
                .filter(|(_, c)| *c > 0)
                .map(|(n, c)| (n.to_string(), c)),
        )
    }
}

/// The context the TCP machine talks to while it holds one connection: the table's
/// settings and timers, that connection's inactivity state, and what it asked for.
struct Ctx<'a> {
    settings: &'a TableSettings,
    likely_tcp: &'a PortSet,
    timers: &'a mut Timers,
    serial: u64,
    slot: u32,
    inactivity_timeout: &'a mut f64,
    inact_gen: &'a mut u16,
    weirds: Vec<&'static str>,
    remove: bool,
}

impl Ctx<'_> {
    fn set_inactivity(&mut self, last_time: f64, timeout: f64) {
        if timeout == *self.inactivity_timeout {
            return;
        }
        *self.inact_gen = self.inact_gen.wrapping_add(1);
        if timeout != 0.0 {
            self.timers.push(
                last_time + timeout,
                self.serial,
                tcp::INACTIVITY,
                *self.inact_gen,
                self.slot,
            );
        }
        *self.inactivity_timeout = timeout;
    }
}

impl TcpContext for Ctx<'_> {
    fn settings(&self) -> &TcpSettings {
        &self.settings.tcp
    }
    fn weird(&mut self, name: &'static str) {
        self.weirds.push(name);
    }
    fn set_inactivity_timeout(&mut self, last_time: f64, timeout: f64) {
        self.set_inactivity(last_time, timeout);
    }
    fn add_timer(&mut self, when: f64, kind: u8, timer_gen: u64) {
        let gen = u16::try_from(timer_gen).unwrap_or(u16::MAX); // (at most 2: tcp.rs)
        self.timers.push(when, self.serial, kind, gen, self.slot);
    }
    /// Zeek's inactivity.zeek: 1 h for ports like 21, 22, 23 once established. The service
    /// port is the responder's, or the originator's when only it is a likely server port and
    /// the originator is still INACTIVE.
    fn connection_established(
        &mut self,
        last_time: f64,
        orig_p: u16,
        resp_p: u16,
        orig_inactive: bool,
    ) {
        let mut port = resp_p;
        if orig_inactive && !self.likely_tcp.contains(port) && self.likely_tcp.contains(orig_p) {
            port = orig_p;
        }
        if self.settings.long_timeout_ports.contains(&port) {
            let timeout = self.settings.long_inactivity_timeout;
            self.set_inactivity(last_time, timeout);
        }
    }
    fn remove(&mut self) {
        self.remove = true;
    }
}

/// Every live connection, keyed by canonical key; finished records go to `events`.
#[derive(Debug)]
pub struct FlowTable {
    pub settings: TableSettings,
    likely_tcp: PortSet,
    likely_udp: PortSet,
    /// What rows are made with: the local networks and reused text buffers.
    rowing: Rowing,
    no_csum_nets: Option<NetSet>,
    check_csums: bool,
    /// UDP ports where Zeek's DNS analyzer runs: its ports, when they are server ports.
    dns_ports: Vec<u16>,
    /// The connections' slots, found by key (the keys stay in the slab).
    index: FlowIndex,
    slab: Vec<Option<Flow>>,
    /// Each slot's occupant's serial number (0: free), dense beside the slab: the timers and
    /// the creation log test whether their connection is still there without touching it.
    serials: Vec<u64>,
    free: Vec<u32>,
    /// The creation log: (serial, slot) in creation order, which is serial order; entries of
    /// ended connections stay until the log is compacted. Eviction and the end of input go
    /// oldest first (the reference's dict keeps insertion order).
    order: VecDeque<(u64, u32)>,
    /// The end of input under way (`flush_some`): the connections to end, oldest first, and
    /// how many have ended.
    flushing: Option<(Vec<u32>, usize)>,
    timers: Timers,
    /// IP-level tunnels (IP in IP, GRE): one encapsulation record per address pair, and when
    /// it was last used.
    ip_tunnels: HashMap<(Addr, Addr), (EncapEntry, f64), RandomState>,
    /// The frame being processed (1-based, counted by the engine): serial numbers' base.
    pub frame: u64,
    serial_frame: u64,
    serial_k: u64,
    pub firing: Firing,
    pub network_time: f64,
    pub counters: FlowCounters,
    pub events: Vec<TableEvent>,
    /// Report weirds as events (a weird.log is written), not only count them.
    pub weird_events: bool,
    /// Report new connections (`live` looks their sockets up).
    pub new_events: bool,
    /// Report every packet and TCP segment (the detectors watch them).
    pub facts: bool,
    /// When set, finished connections are written here as conn.log rows (one per line, in
    /// `row_format`) instead of reported as records: nothing else wants the record.
    pub rows: Option<String>,
    pub row_format: RowFormat,
    /// The uid batch's buffers, kept between rounds of removals.
    uid_batch: UidBatch,
}

/// A decoded packet and the bytes its `l4` range points into.
struct Pkt<'a> {
    p: &'a Packet,
    frame: &'a [u8],
}

impl Pkt<'_> {
    fn l4(&self) -> &[u8] {
        self.p.l4(self.frame)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// The IP-level tunnels by address pair (`FlowTable::ip_tunnels`).
type IpTunnels = HashMap<(Addr, Addr), (EncapEntry, f64), RandomState>;

/// The table's part of an exported engine state (`crate::state`): the connections, timers,
/// IP tunnels, counters and clocks. Not the settings (nor what they make), the pending
/// events or rows (the exporter's), nor the index: rebuilt on import, its hasher's seed being
/// per process. Borrowed to export, owned once imported.
#[derive(Serialize, Deserialize)]
pub struct TableState<'a> {
    slab: Cow<'a, [Option<Flow>]>,
    serials: Cow<'a, [u64]>,
    free: Cow<'a, [u32]>,
    order: Cow<'a, VecDeque<(u64, u32)>>,
    timers: Cow<'a, BinaryHeap<Reverse<Timer>>>,
    ip_tunnels: Cow<'a, IpTunnels>,
    frame: u64,
    serial_frame: u64,
    serial_k: u64,
    firing: Firing,
    network_time: f64,
    counters: Cow<'a, FlowCounters>,
}

impl FlowTable {
    /// This table's part of an exported engine state.
    pub fn state(&self) -> TableState<'_> {
        TableState {
            slab: Cow::Borrowed(&self.slab),
            serials: Cow::Borrowed(&self.serials),
            free: Cow::Borrowed(&self.free),
            order: Cow::Borrowed(&self.order),
            timers: Cow::Owned(self.timers.to_heap()),
            ip_tunnels: Cow::Borrowed(&self.ip_tunnels),
            frame: self.frame,
            serial_frame: self.serial_frame,
            serial_k: self.serial_k,
            firing: self.firing,
            network_time: self.network_time,
            counters: Cow::Borrowed(&self.counters),
        }
    }

    /// Take over `saved` (an imported state) in this new table, which keeps its settings; the
    /// index is rebuilt. An error if the parts disagree (slots, serials, free list, creation
    /// log, keys).
    pub fn restore(&mut self, saved: TableState<'_>) -> Result<(), String> {
        let bad = |what: &str| Err(format!("damaged engine state: {what}"));
        let (slab, serials) = (saved.slab.into_owned(), saved.serials.into_owned());
        if slab.len() != serials.len() || u32::try_from(slab.len()).is_err() {
            return bad("slots");
        }
        let mut empty = 0;
        for (f, q) in slab.iter().zip(&serials) {
            match f {
                Some(f) if f.seq_no == *q && *q != 0 => {}
                None if *q == 0 => empty += 1,
                _ => return bad("slots and serial numbers"),
            }
        }
        let free = saved.free.into_owned();
        let mut seen = vec![false; slab.len()];
        for s in &free {
            match (slab.get(*s as usize), seen.get_mut(*s as usize)) {
                (Some(None), Some(x)) if !*x => *x = true,
                _ => return bad("free slots"),
            }
        }
        let order = saved.order.into_owned();
        let logged = order
            .iter()
            .filter(|(q, s)| serials.get(*s as usize) == Some(q))
            .count();
        if free.len() != empty || logged != slab.len() - empty {
            return bad("free slots or creation log");
        }
        self.slab.clear();
        self.slab.extend(slab);
        (self.serials, self.free, self.order) = (serials, free, order);
        self.timers = Timers::from_heap(saved.timers.into_owned());
        self.ip_tunnels = saved.ip_tunnels.into_owned();
        (self.frame, self.serial_frame, self.serial_k) =
            (saved.frame, saved.serial_frame, saved.serial_k);
        (self.firing, self.network_time) = (saved.firing, saved.network_time);
        self.counters = saved.counters.into_owned();
        self.index.clear();
        for slot in 0..self.slab.len() {
            let Some(key) = self.slab.get(slot).and_then(Option::as_ref).map(|f| f.key) else {
                continue;
            };
            if self.find(&key).is_some() {
                return bad("a connection twice");
            }
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            self.index.insert(&key, slot);
        }
        Ok(())
    }
}

impl FlowTable {
    pub fn new(settings: TableSettings) -> Self {
        let ports = |proto: u8| {
            settings
                .likely_server_ports
                .iter()
                .filter(move |(_, p)| *p == proto)
                .map(|(port, _)| *port)
        };
        let likely_tcp = PortSet::new(ports(6));
        let likely_udp = PortSet::new(ports(17));
        let dns_ports = DNS_PORTS
            .iter()
            .copied()
            .filter(|p| likely_udp.contains(*p))
            .collect();
        let no_csum = NetSet::new(&settings.ignore_checksums_nets);
        FlowTable {
            likely_tcp,
            likely_udp,
            rowing: Rowing {
                local: NetSet::new(&settings.local_nets),
                text: Default::default(),
            },
            no_csum_nets: if no_csum.is_empty() {
                None
            } else {
                Some(no_csum)
            },
            check_csums: !settings.ignore_checksums,
            dns_ports,
            index: FlowIndex::default(),
            // A bounded table's slab is reserved whole (untouched pages cost nothing; a
            // doubling Vec would hold up to twice the bound, and both copies while growing).
            slab: Vec::with_capacity(settings.max_flows.saturating_add(1).min(1 << 22)),
            serials: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            flushing: None,
            timers: Timers::default(),
            ip_tunnels: HashMap::default(),
            frame: 0,
            serial_frame: u64::MAX,
            serial_k: 0,
            firing: Firing::Packet,
            network_time: 0.0,
            counters: FlowCounters::default(),
            events: Vec::new(),
            weird_events: false,
            new_events: false,
            facts: false,
            rows: None,
            row_format: RowFormat::Zeek,
            uid_batch: UidBatch::default(),
            settings,
        }
    }

    /// The uid of the open connection with `key`, if there is one (the detectors' look-ups).
    pub fn uid_of(&self, key: &FlowKey) -> Option<String> {
        self.find(key).and_then(|s| self.flow(s)).map(Flow::uid)
    }

    /// `live`'s dashboard: how many open connections are active and how many are over but
    /// waiting for their timers (conn_state one of `closed`), and the records so far of the
    /// `limit` busiest active ones (by IP bytes, both ways), busiest first.
    pub fn open_connections(
        &mut self,
        limit: usize,
        closed: &[&str],
    ) -> (usize, usize, Vec<OpenConn>) {
        let (mut active, mut closing) = (Vec::new(), 0usize);
        for s in self.oldest_first(u32::MAX).collect::<Vec<_>>() {
            let Some(f) = self.flow(s) else { continue };
            let (state, bytes) = match &f.state {
                State::Tcp(t) => (t.conn_state(), t.orig_ip_bytes + t.resp_ip_bytes),
                State::Simple(c) => (c.conn_state(f.proto()), c.orig_ip_bytes + c.resp_ip_bytes),
            };
            if closed.contains(&state) {
                closing += 1;
            } else {
                active.push((bytes, s));
            }
        }
        let n = active.len();
        // (stable, as heapq.nlargest: the older first among equals)
        active.sort_by_key(|a| std::cmp::Reverse(a.0));
        let mut out = Vec::new();
        for (bytes, s) in active.into_iter().take(limit) {
            if let Some(f) = self.slab.get(s as usize).and_then(Option::as_ref).cloned() {
                out.push(OpenConn {
                    rec: self.record(&f),
                    ip_bytes: bytes,
                });
            }
        }
        (n, closing, out)
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the rows written and not yet taken are past `ROWS_SOFT_LIMIT`: the walk stops
    /// early for the caller to take them.
    pub fn rows_full(&self) -> bool {
        self.rows
            .as_ref()
            .is_some_and(|r| r.len() >= ROWS_SOFT_LIMIT)
    }

    /// Whether an end of input is under way (`flush_some` has more to do).
    pub fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }

    /// The slot of the connection with `key`.
    fn find(&self, key: &FlowKey) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(
            key,
            |s| matches!(slab.get(s as usize), Some(Some(f)) if f.key == *key),
        )
    }

    fn flow(&self, slot: u32) -> Option<&Flow> {
        self.slab.get(slot as usize).and_then(Option::as_ref)
    }

    fn flow_mut(&mut self, slot: u32) -> Option<&mut Flow> {
        self.slab.get_mut(slot as usize).and_then(Option::as_mut)
    }

    // -- weirds ---------------------------------------------------------------------------
    /// Count an anomaly by Zeek's weird name, and report it when weirds are logged: with the
    /// connection it concerns, or the packet's addresses, or neither.
    fn weird(&mut self, name: &'static str, slot: Option<u32>, addrs: Option<(Addr, Addr)>) {
        self.counters.weird(name);
        if !self.weird_events {
            return;
        }
        let mut w = WeirdEvent {
            ts: self.network_time,
            name: name.into(),
            decode: false,
            uid: None,
            orig_h: None,
            orig_p: None,
            resp_h: None,
            resp_p: None,
        };
        if let Some(f) = slot.and_then(|s| self.flow(s)) {
            let (op, rp) = f.ports();
            w.uid = Some(f.uid());
            (w.orig_h, w.orig_p) = (Some(*f.orig_h()), Some(op));
            (w.resp_h, w.resp_p) = (Some(*f.resp_h()), Some(rp));
        } else if let Some((s, d)) = addrs {
            (w.orig_h, w.resp_h) = (Some(s), Some(d));
        }
        self.events.push(TableEvent::Weird(w));
    }

    // -- timers ---------------------------------------------------------------------------
    fn add_timer(&mut self, when: f64, slot: u32, kind: u8) {
        let Some(f) = self.flow(slot) else { return };
        let gen = if kind == tcp::INACTIVITY {
            f.inact_gen
        } else {
            f.timer_gen()
        };
        let serial = f.seq_no;
        self.timers.push(when, serial, kind, gen, slot);
        self.maybe_compact();
    }

    /// Compact the timers once they are eight per live connection: a fresh TCP connection has
    /// two, so under a flood a pass drops the timers of three tables' worth of evicted
    /// connections (at four per connection, one table's: the passes cost the flood a few per
    /// cent more; eight costs it about 10 MB more at its peak).
    fn maybe_compact(&mut self) {
        if self.timers.len() > 8 * self.index.len() + 4096 {
            self.compact_timers();
        }
    }

    /// Drop the timers of removed connections: evictions end connections long before their
    /// timers, so without this a flood would keep a timer for every connection it ever made.
    fn compact_timers(&mut self) {
        let serials = &self.serials;
        let live = |t: &Timer| serials.get(t.slot as usize) == Some(&t.serial);
        self.timers.retain(live);
    }

    fn set_inactivity_timeout(&mut self, slot: u32, timeout: f64) {
        let Some(f) = self.flow_mut(slot) else { return };
        if timeout == f.inactivity_timeout {
            return;
        }
        f.inact_gen = f.inact_gen.wrapping_add(1);
        f.inactivity_timeout = timeout;
        let when = f.last_time() + timeout;
        if timeout != 0.0 {
            self.add_timer(when, slot, tcp::INACTIVITY);
        }
    }

    /// Fire every timer due at network time `t` (Zeek: before the packet is processed).
    pub fn advance(&mut self, t: f64) {
        while let Some(tm) = self.timers.pop_due(t) {
            if self.serials.get(tm.slot as usize) != Some(&tm.serial) {
                continue; // its connection is gone (the slot may hold another)
            }
            let Some(f) = self.flow(tm.slot) else {
                continue;
            };
            let (last, timeout, inact_gen, timer_gen) = (
                f.last_time(),
                f.inactivity_timeout,
                f.inact_gen,
                f.timer_gen(),
            );
            self.firing = Firing::Timer {
                when: tm.when,
                serial: tm.serial,
                kind: tm.kind,
            };
            if tm.kind == tcp::INACTIVITY {
                if tm.gen != inact_gen {
                    continue;
                }
                if last + timeout <= t {
                    self.remove(tm.slot);
                } else {
                    self.add_timer(last + timeout, tm.slot, tcp::INACTIVITY);
                }
            } else if tm.gen != timer_gen {
                continue;
            } else if tm.kind == tcp::EXPIRE || tm.kind == tcp::ATTEMPT {
                self.tcp_timer(tm.slot, tm.kind, t);
            } else if tm.kind == tcp::DNS_EXPIRE {
                // Zeek's DNS analyzer ends a UDP DNS "session" idle for its timeout (less a
                // second's grace for the usual single request and reply).
                let timeout = self.settings.dns_session_timeout;
                if t - last >= timeout - 1.0 {
                    self.remove(tm.slot);
                } else {
                    self.add_timer(t + timeout, tm.slot, tcp::DNS_EXPIRE);
                }
            } else {
                self.remove(tm.slot);
            }
        }
        self.firing = Firing::Packet;
    }

    /// A frame was read at `ts`: network time moves on and due timers fire, whether or not
    /// the frame decodes (Zeek advances its clock per packet read, before analysis).
    pub fn tick(&mut self, ts: f64) {
        if ts > self.network_time {
            self.network_time = ts;
            if self.timers.next_when().is_some_and(|when| when <= ts) {
                self.advance(ts);
            }
        }
    }

    /// Run the TCP machine on connection `slot` through `f`, then do what it asked.
    fn with_tcp<T>(
        &mut self,
        slot: u32,
        f: impl FnOnce(&mut TcpConn, &mut Ctx<'_>) -> T,
    ) -> Option<T> {
        let flow = self.slab.get_mut(slot as usize).and_then(Option::as_mut)?;
        let State::Tcp(conn) = &mut flow.state else {
            return None;
        };
        let mut ctx = Ctx {
            settings: &self.settings,
            likely_tcp: &self.likely_tcp,
            timers: &mut self.timers,
            serial: flow.seq_no,
            slot,
            inactivity_timeout: &mut flow.inactivity_timeout,
            inact_gen: &mut flow.inact_gen,
            weirds: Vec::new(),
            remove: false,
        };
        let out = f(conn, &mut ctx);
        let (weirds, remove) = (std::mem::take(&mut ctx.weirds), ctx.remove);
        for name in weirds {
            self.weird(name, Some(slot), None);
        }
        self.maybe_compact();
        if remove {
            self.remove(slot);
        }
        Some(out)
    }

    fn tcp_timer(&mut self, slot: u32, kind: u8, t: f64) {
        self.with_tcp(slot, |c, x| {
            if kind == tcp::EXPIRE {
                c.expire_timer(x, t);
            } else {
                c.attempt_timer(x, t);
            }
        });
    }

    // -- lifecycle ------------------------------------------------------------------------
    /// (frame index << 16) | the how-manieth creation within that frame (from 1).
    fn serial(&mut self) -> u64 {
        if self.frame != self.serial_frame {
            (self.serial_frame, self.serial_k) = (self.frame, 0);
        }
        self.serial_k += 1;
        (self.frame << 16) | self.serial_k
    }

    #[allow(clippy::too_many_arguments)] // the Python `_new`'s arguments
    fn new_conn(
        &mut self,
        key: FlowKey,
        ts: f64,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        proto: u8,
        flip: bool,
        encap: Option<&Encap>,
    ) -> u32 {
        let serial = self.serial();
        let s = &self.settings;
        let (state, timeout) = if proto == 6 {
            let c = TcpConn::new(ts, sport, dport);
            (State::Tcp(c), s.udp_inactivity_timeout)
        } else {
            let timeout = match proto {
                17 => s.udp_inactivity_timeout,
                1 | 58 => s.icmp_inactivity_timeout,
                _ => s.unknown_ip_inactivity_timeout,
            };
            let c = SimpleConn::new(ts, sport, dport);
            (State::Simple(c), timeout)
        };
        let from_a = key.a == src && (key.pa == sport || key.a != key.b);
        let mut flow = Flow {
            key,
            seq_no: serial,
            inactivity_timeout: 0.0,
            inact_gen: 0,
            from_a,
            tunnels: None,
            state,
        };
        if let Some(e) = encap {
            let t = flow.tunnels_mut();
            t.encap = Some(e.clone());
            t.parents = e.last().map(|l| vec![l.uid.clone()]).unwrap_or_default();
        }
        if flip && dst.as_bytes() != BROADCAST4 {
            match &mut flow.state {
                State::Tcp(t) => t.flip_roles(),
                State::Simple(c) => c.flip_roles(),
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slab.get_mut(slot as usize) {
                    *s = Some(flow);
                }
                if let Some(q) = self.serials.get_mut(slot as usize) {
                    *q = serial;
                }
                slot
            }
            None => {
                self.slab.push(Some(flow));
                self.serials.push(serial);
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.order.push_back((serial, slot));
        if self.order.len() > 2 * self.index.len() + 1024 {
            let serials = &self.serials;
            self.order
                .retain(|(q, s)| serials.get(*s as usize) == Some(q));
        }
        self.set_inactivity_timeout(slot, timeout);
        let when = self.network_time;
        if proto == 6 {
            self.add_timer(when + self.settings.tcp_syn_timeout, slot, tcp::EXPIRE);
        } else if proto == 17 && self.dns_ports.contains(&self.ports(slot).1) {
            self.add_timer(
                when + self.settings.dns_session_timeout,
                slot,
                tcp::DNS_EXPIRE,
            );
        }
        let max = self.settings.max_flows;
        if max > 0 && self.index.len() >= max {
            self.evict(slot, ts);
        }
        // A bounded table that fills past half its bound gets an index with room for twice
        // the bound: a flood's churn leaves tombstones, and near hashbrown's full load every
        // probe (a new key's miss, a removal) walks far and the index rehashes in place again
        // and again. (Smaller, it keeps a small index, which stays in the caches.)
        let room = max.min(1 << 22).saturating_mul(2);
        if max > 0 && self.index.len() >= max / 2 && self.index.capacity() < room {
            self.index.reserve(room - self.index.len());
        }
        self.index.insert(&key, slot);
        if self.new_events {
            if let Some(f) = self.flow(slot) {
                let (orig_p, resp_p) = f.ports();
                self.events.push(TableEvent::New {
                    ts,
                    proto,
                    orig_h: *f.orig_h(),
                    orig_p,
                    resp_h: *f.resp_h(),
                    resp_p,
                    uid: f.uid(),
                    frame: self.frame,
                });
            }
        }
        slot
    }

    fn ports(&self, slot: u32) -> (u16, u16) {
        self.flow(slot).map(Flow::ports).unwrap_or_default()
    }

    /// The table is full (`max_flows`): evict an eighth of it, so the scan is paid rarely.
    ///
    /// Victims, oldest first within each tier: TCP attempts that have not completed a
    /// handshake, those to the service most of them target first (a flood aims at one; a
    /// slow real handshake elsewhere is spared); then closed and reset connections waiting
    /// for their timers, and UDP with no reply; then, if those are too few, the longest idle.
    /// Each is logged as it stands, like a timeout, and counted in `flows_evicted`. `new` is
    /// the connection being added (not in the map yet: never a victim).
    fn evict(&mut self, new: u32, ts: f64) {
        let want = (self.settings.max_flows / 8).max(1);
        // The log's oldest entries are mostly the last rounds' victims: drop them for good
        // here (an ended connection's entry never comes back to life), or each round would
        // test them all again, a cache miss each.
        while let Some(&(q, s)) = self.order.front() {
            if self.serials.get(s as usize) == Some(&q) {
                break;
            }
            self.order.pop_front();
        }
        let never_answered = |f: &Flow| match &f.state {
            State::Tcp(t) => {
                t.orig().state <= tcp::SYN_ACK_SENT && t.resp().state <= tcp::SYN_ACK_SENT
            }
            State::Simple(_) => false,
        };
        let closed = |f: &Flow| match &f.state {
            State::Tcp(t) => t.orig().state >= tcp::CLOSED || t.resp().state >= tcp::CLOSED,
            State::Simple(c) => !(c.orig_pkts > 0 && c.resp_pkts > 0),
        };
        // Oldest first: the creation log is in serial order. Each attempt with its target
        // (the responder and its port), read once.
        let mut attempts: Vec<(u32, (Addr, u16))> = Vec::with_capacity(2 * want);
        for s in self.oldest_first(new) {
            if let Some(f) = self.flow(s).filter(|f| never_answered(f)) {
                attempts.push((s, (*f.resp_h(), f.ports().1)));
                if attempts.len() >= 2 * want {
                    break;
                }
            }
        }
        let mut counts: HashMap<(Addr, u16), usize, RandomState> = HashMap::default();
        for (_, target) in &attempts {
            *counts.entry(*target).or_default() += 1;
        }
        let n = attempts.len();
        let heavy = |(_, t): &(u32, (Addr, u16))| counts.get(t).is_some_and(|c| c * 8 >= n);
        // Oldest first within the heavy targets, then the others (a stable partition).
        let (heavy, others): (Vec<_>, Vec<_>) = attempts.into_iter().partition(heavy);
        let mut victims: Vec<u32> = heavy.into_iter().chain(others).map(|a| a.0).collect();
        victims.truncate(want);
        if victims.len() >= want {
            // (the usual case under a flood: the attempts alone make the round)
            self.end_evicted(victims, ts);
            return;
        }
        let mut chosen: std::collections::HashSet<u32, RandomState> =
            victims.iter().copied().collect();
        for s in self.oldest_first(new) {
            if victims.len() >= want {
                break;
            }
            if !chosen.contains(&s) && self.flow(s).is_some_and(closed) {
                victims.push(s);
                chosen.insert(s);
            }
        }
        if victims.len() < want {
            // (rare: a table full of live, answered connections) the longest idle
            let mut idle: Vec<(f64, u64, u32)> = self
                .oldest_first(new)
                .filter(|s| !chosen.contains(s))
                .filter_map(|s| self.flow(s).map(|f| (f.last_time(), f.seq_no, s)))
                .collect();
            idle.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            victims.extend(idle.iter().take(want - victims.len()).map(|v| v.2));
        }
        self.end_evicted(victims, ts);
    }

    /// End a round of eviction's victims.
    fn end_evicted(&mut self, victims: Vec<u32>, ts: f64) {
        let evicted = victims.len() as u64;
        self.remove_many(&victims, false);
        self.counters.flows_evicted += evicted;
        if self.weird_events {
            // (the Python reference's LoggedStats logs this count like decode's, at the
            // packet's time: the round of evictions shows in weird.log)
            self.decode_weird(ts, Cow::Borrowed("flows_evicted"));
        }
        // (The reference compacts its timers here; this queue is compacted by its size alone,
        // which nobody can observe but the clock.)
    }

    /// The connections in creation order (the creation log without the ended ones), `new`
    /// left out.
    fn oldest_first(&self, new: u32) -> impl Iterator<Item = u32> + '_ {
        self.order
            .iter()
            .filter(move |(q, s)| *s != new && self.serials.get(*s as usize) == Some(q))
            .map(|(_, s)| *s)
    }

    /// The uids of the connections in `slots`, made together (None for an empty slot, or a
    /// connection that keeps its uid).
    fn uids_of(&mut self, slots: &[u32]) -> Vec<Option<Uid>> {
        // (the batch's buffers are kept between rounds: a round's inputs are thousands)
        let mut batch = std::mem::take(&mut self.uid_batch);
        let made: Vec<bool> = slots
            .iter()
            .map(|s| self.flow(*s).is_some_and(|f| f.uid_into(&mut batch)))
            .collect();
        let mut uids = batch.finish().into_iter();
        self.uid_batch = batch;
        made.into_iter()
            .map(|m| if m { uids.next() } else { None })
            .collect()
    }

    /// End connection `slot` now: its record is reported and its slot freed.
    pub fn remove(&mut self, slot: u32) {
        self.remove_as(slot, None);
    }

    /// `remove`, with the connection's uid when it was made already.
    fn remove_as(&mut self, slot: u32, uid: Option<Uid>) {
        self.unlink(slot, true);
        self.report(slot, uid);
    }

    /// End the connections in `slots` now, in that order (a round of evictions, the end of
    /// input; `flush`: the latter). As `remove` one by one, in phases over a part of them at a
    /// time: their uids made together, then their index entries removed (independent probes,
    /// whose cache misses overlap; none at the end of input, whose index is cleared whole),
    /// then their records. A part's connections stay in L2 from the first phase to the last.
    fn remove_many(&mut self, slots: &[u32], flush: bool) {
        for part in slots.chunks(REMOVE_PART) {
            self.remove_part(part, flush);
        }
    }

    fn remove_part(&mut self, slots: &[u32], flush: bool) {
        let uids = self.uids_of(slots);
        for &slot in slots {
            self.unlink(slot, !flush);
        }
        for (&slot, uid) in slots.iter().zip(uids) {
            if flush {
                if let Some(f) = self.flow(slot) {
                    self.firing = Firing::Flush { serial: f.seq_no };
                }
            }
            self.report(slot, uid);
        }
    }

    /// The first half of removing connection `slot`: out of the index (`unindex`), its slot
    /// free (its connection still there for `report`).
    fn unlink(&mut self, slot: u32, unindex: bool) {
        let Some(Some(flow)) = self.slab.get(slot as usize) else {
            return;
        };
        if unindex {
            self.index.remove(&flow.key, slot);
        }
        self.free.push(slot);
        if let Some(q) = self.serials.get_mut(slot as usize) {
            *q = 0;
        }
    }

    /// The second half: the connection's record reported, its slot emptied. (It is read where
    /// it lies, not moved out first.)
    fn report(&mut self, slot: u32, uid: Option<Uid>) {
        let Some(Some(flow)) = self.slab.get(slot as usize) else {
            return;
        };
        if let Some(out) = &mut self.rows {
            match self.row_format {
                RowFormat::Zeek => self
                    .rowing
                    .with_row(flow, uid, |row| zeek::write_made(out, row)),
                RowFormat::Json => self.rowing.with_row(flow, uid, |row| json::write(out, row)),
            }
            out.push('\n');
        } else {
            let rec = self.rowing.with_row(flow, uid, ConnRecord::from_row);
            self.events.push(TableEvent::Finished {
                rec: Box::new(rec),
                frame: self.frame,
                firing: self.firing,
            });
        }
        if let Some(s) = self.slab.get_mut(slot as usize) {
            *s = None;
        }
    }

    /// The record of a connection as it stands (Zeek's conn.log fields).
    pub fn record(&mut self, f: &Flow) -> ConnRecord {
        self.rowing.with_row(f, None, ConnRecord::from_row)
    }
}

/// What the rows of connections are made with.
#[derive(Debug)]
struct Rowing {
    /// Networks whose addresses are local (`local_orig`, `local_resp`).
    local: NetSet,
    /// Reused text buffers (addresses, Community ID, TCP history).
    text: [String; 4],
}

impl Rowing {
    /// `k(the row of f)`: the fields of a connection's record as it stands, borrowed from it
    /// and from the table's reused text buffers.
    /// `uid`: the connection's, when made already.
    fn with_row<R>(&mut self, f: &Flow, uid: Option<Uid>, k: impl FnOnce(&Row<'_>) -> R) -> R {
        let (orig_h, resp_h) = (f.orig_h(), f.resp_h());
        let (orig_p, resp_p) = f.ports();
        let [oh, rh, cid, hist] = &mut self.text;
        for (buf, a) in [(&mut *oh, orig_h), (&mut *rh, resp_h)] {
            buf.clear();
            ntop_into(buf, a.as_bytes());
        }
        cid.clear();
        let proto = f.proto();
        let has_cid = community_id_into(
            cid,
            orig_h.as_bytes(),
            resp_h.as_bytes(),
            proto,
            orig_p,
            resp_p,
            0,
        );
        let kept;
        let uid = match &uid {
            Some(uid) => uid.as_str(),
            None => {
                kept = f.uid();
                kept.as_str()
            }
        };
        let no_parents: &[String] = &[];
        let mut row = Row {
            ts: f.start_time(),
            uid,
            orig_h: oh,
            orig_p,
            resp_h: rh,
            resp_p,
            proto: proto_name(proto),
            ip_proto: proto,
            service: None,
            duration: None,
            orig_bytes: None,
            resp_bytes: None,
            conn_state: "",
            local_orig: Some(self.local.contains(orig_h.as_bytes())),
            local_resp: Some(self.local.contains(resp_h.as_bytes())),
            missed_bytes: 0,
            history: "",
            orig_pkts: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            tunnel_parents: f.tunnels.as_ref().map_or(no_parents, |t| &t.parents),
            community_id: has_cid.then_some(cid.as_str()),
        };
        let (last, sizes) = match &f.state {
            State::Tcp(t) => {
                hist.clear();
                t.history_into(hist);
                row.conn_state = t.conn_state();
                row.missed_bytes = t.missed_bytes;
                row.history = hist;
                (row.orig_pkts, row.orig_ip_bytes) = (t.orig_pkts, t.orig_ip_bytes);
                (row.resp_pkts, row.resp_ip_bytes) = (t.resp_pkts, t.resp_ip_bytes);
                (t.last_time, (t.start_time < t.last_time).then(|| t.sizes()))
            }
            State::Simple(c) => {
                row.conn_state = c.conn_state(proto);
                row.history = &c.history;
                (row.orig_pkts, row.orig_ip_bytes) = (c.orig_pkts, c.orig_ip_bytes);
                (row.resp_pkts, row.resp_ip_bytes) = (c.resp_pkts, c.resp_ip_bytes);
                (c.last_time, Some((c.orig_size, c.resp_size)))
            }
        };
        let duration = last - row.ts;
        if duration > 0.0 {
            row.duration = Some(duration);
            if let Some((o, r)) = sizes {
                (row.orig_bytes, row.resp_bytes) = (Some(o), Some(r));
            }
        }
        k(&row)
    }
}

impl FlowTable {
    /// End of input: every remaining connection, in creation order, no timeouts applied.
    pub fn flush(&mut self) {
        while self.flush_some(usize::MAX) {}
    }

    /// `flush` in parts of at most `max` connections, so that their rows or records can be
    /// taken between the parts instead of piling up: true while some remain. Nothing else
    /// may happen to the table until it returns false.
    pub fn flush_some(&mut self, max: usize) -> bool {
        let (live, done) = match self.flushing.take() {
            Some(part) => part,
            None => {
                let live: Vec<u32> = self
                    .oldest_first(u32::MAX)
                    .filter(|s| self.flow(*s).is_some())
                    .collect();
                self.index.clear(); // (whole: no connection is looked up from here on)
                (live, 0)
            }
        };
        let stop = done.saturating_add(max.max(1)).min(live.len());
        let part = live.get(done..stop).unwrap_or_default();
        let mut end = done;
        for chunk in part.chunks(REMOVE_PART) {
            self.remove_part(chunk, true);
            end += chunk.len();
            if self.rows_full() {
                break; // (taken before the next part, while they are still in cache)
            }
        }
        if end < live.len() {
            self.flushing = Some((live, end));
            return true;
        }
        self.firing = Firing::Packet;
        self.slab.clear();
        self.serials.clear();
        self.free.clear();
        self.order.clear();
        self.timers.clear();
        false
    }

    // -- per packet -----------------------------------------------------------------------
    /// One decoded IP packet (its `l4` a range of `frame`), arrived through `encap`.
    pub fn process(
        &mut self,
        dec: &mut Decoder,
        ts: f64,
        p: &Packet,
        frame: &[u8],
        encap: Option<&Encap>,
    ) {
        self.tick(ts);
        let pkt = Pkt { p, frame };
        if self.facts {
            self.events.push(TableEvent::Packet(Box::new(PacketFact {
                ts,
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                ip_len: p.ip_len,
                l4: pkt.l4().to_vec(),
                l4_len: p.l4_len,
                ttl: p.ttl,
                encap: encap.cloned(),
            })));
        }
        match p.proto {
            6 => self.tcp_packet(ts, &pkt, encap),
            17 => self.udp_packet(dec, ts, &pkt, encap),
            1 | 58 => self.icmp_packet(ts, &pkt, encap),
            proto => match tunnels::ip_proto(proto) {
                Some(d) => self.ip_tunnel(dec, ts, &pkt, encap, d),
                None => self.other_packet(ts, &pkt, encap),
            },
        }
    }

    // -- tunnels --------------------------------------------------------------------------
    /// Zeek's CheckEncapsulation: a connection seen through another tunnel than before. Each
    /// change adds the new innermost tunnel to the parents, up to Zeek's
    /// Tunnel::max_changes_per_connection (5); past that the history gets an "X" instead.
    fn check_encap(&mut self, slot: u32, encap: Option<&Encap>) {
        let Some(f) = self.flow_mut(slot) else { return };
        let old = f.encap().cloned();
        match (old, encap) {
            (Some(old), Some(new)) => {
                if old != *new {
                    let mut exceeded = false;
                    let changes = f.tunnels_mut().changes;
                    if changes < MAX_TUNNEL_CHANGES {
                        f.tunnels_mut().changes += 1;
                        f.add_parent(new);
                    } else if f.hist_x() {
                        exceeded = true;
                    }
                    f.tunnels_mut().encap = Some(new.clone());
                    if exceeded {
                        self.weird(
                            "tunnel_max_changes_per_connection_exceeded",
                            Some(slot),
                            None,
                        );
                    }
                }
            }
            (Some(_), None) => f.tunnels_mut().encap = None,
            (None, Some(new)) => {
                f.add_parent(new);
                f.tunnels_mut().encap = Some(new.clone());
            }
            (None, None) => {}
        }
    }

    /// The IP-level tunnel between `a` and `b` (parented by the address pair): its entry,
    /// made anew when unused for Tunnel::ip_tunnel_timeout.
    fn ip_tunnel_entry(&mut self, ts: f64, kind: Kind, src: Addr, dst: Addr) -> EncapEntry {
        let pair = if addr_lt(&src, &dst) {
            (src, dst)
        } else {
            (dst, src)
        };
        let timeout = self.settings.ip_tunnel_timeout;
        if let Some((entry, last)) = self.ip_tunnels.get_mut(&pair) {
            if ts - *last < timeout {
                *last = ts;
                return entry.clone();
            }
        }
        let serial = self.serial();
        let key = [
            KeyPart::Str("tunnel"),
            KeyPart::Bytes(pair.0.as_bytes()),
            KeyPart::Bytes(pair.1.as_bytes()),
        ];
        let entry = EncapEntry {
            kind,
            uid: make_uid(&key, ts, serial),
            orig_h: src,
            orig_p: 0,
            resp_h: dst,
            resp_p: 0,
        };
        self.ip_tunnels.insert(pair, (entry.clone(), ts));
        entry
    }

    /// IP in IP and GRE: no connection of their own; the inner packet goes on.
    fn ip_tunnel(
        &mut self,
        dec: &mut Decoder,
        ts: f64,
        pkt: &Pkt<'_>,
        encap: Option<&Encap>,
        decap: Decapsulator,
    ) {
        let (src, dst) = (pkt.p.src, pkt.p.dst);
        if encap.is_some_and(|e| e.len() >= tunnels::MAX_DEPTH) {
            self.weird("exceeded_tunnel_max_depth", None, Some((src, dst)));
            return;
        }
        let l4 = pkt.l4();
        match decap.decap(l4) {
            Decap::Anomaly(name) => self.weird(name, None, Some((src, dst))),
            Decap::Nothing => {}
            Decap::Inner { link, off, kind } => {
                let entry = self.ip_tunnel_entry(ts, kind, src, dst);
                let mut stack = encap.cloned().unwrap_or_default();
                stack.push(entry);
                let inner = l4.get(off..).unwrap_or_default();
                let wirelen = pkt.p.l4_len as i64 - off as i64;
                self.inner(dec, ts, link, inner, wirelen, &stack);
            }
        }
    }

    /// After a UDP packet is counted: open the tunnel its responder port (or content) says.
    fn udp_tunnel(
        &mut self,
        dec: &mut Decoder,
        ts: f64,
        slot: u32,
        payload: &[u8],
        claimed: i64,
        encap: Option<&Encap>,
    ) {
        let resp_p = self.ports(slot).1;
        let Some(decap) = tunnels::udp_port(resp_p).or_else(|| tunnels::udp_detect(payload)) else {
            return;
        };
        let Some(f) = self.flow_mut(slot) else { return };
        if f.tunnels
            .as_ref()
            .is_some_and(|t| t.violated & decap.bit() != 0)
        {
            return;
        }
        if encap.is_some_and(|e| e.len() >= tunnels::MAX_DEPTH) {
            f.hist_x();
            self.weird("exceeded_tunnel_max_depth", Some(slot), None);
            return;
        }
        match decap.decap(payload) {
            Decap::Anomaly(name) => {
                self.weird(name, Some(slot), None);
                if let Some(f) = self.flow_mut(slot) {
                    f.tunnels_mut().violated |= decap.bit();
                }
            }
            Decap::Nothing => {}
            Decap::Inner { link, off, kind } => {
                let Some(f) = self.flow(slot) else { return };
                let (orig_h, resp_h) = (*f.orig_h(), *f.resp_h());
                let (orig_p, resp_p) = f.ports();
                let ec = if kind.ip_level() {
                    // GRE over UDP: parented by the address pair, as GRE in IP
                    self.ip_tunnel_entry(ts, kind, orig_h, resp_h)
                } else {
                    EncapEntry {
                        kind,
                        uid: self.tunnel_uid(slot),
                        orig_h,
                        orig_p,
                        resp_h,
                        resp_p,
                    }
                };
                let mut stack = encap.cloned().unwrap_or_default();
                stack.push(ec);
                let inner = payload.get(off..).unwrap_or_default();
                self.inner(dec, ts, link, inner, claimed - off as i64, &stack);
            }
        }
    }

    /// The uid of a connection that carries a tunnel: made once, then kept with it.
    fn tunnel_uid(&mut self, slot: u32) -> String {
        let Some(f) = self.flow_mut(slot) else {
            return String::new();
        };
        let uid = f.uid();
        f.tunnels_mut().uid = Some(uid.clone());
        uid
    }

    fn inner(
        &mut self,
        dec: &mut Decoder,
        ts: f64,
        link: u32,
        data: &[u8],
        wirelen: i64,
        encap: &Encap,
    ) {
        self.counters.tunneled_packets += 1;
        if let Some(p) = self.decode(dec, ts, link, data, wirelen) {
            let rest = std::mem::take(&mut dec.more);
            self.process(dec, ts, &p, data, Some(encap));
            for q in &rest {
                self.process(dec, ts, q, data, Some(encap));
            }
        }
    }

    /// `dec.decode(...)`; when weirds are reported, each count decode made meanwhile becomes
    /// a weird in its place (sniffer.stats.LoggedStats does this for the Python engine).
    pub fn decode(
        &mut self,
        dec: &mut Decoder,
        ts: f64,
        link: u32,
        data: &[u8],
        wirelen: i64,
    ) -> Option<Packet> {
        if !self.weird_events {
            return dec.decode(ts, link, data, wirelen);
        }
        dec.stats.log = Some(Vec::new());
        let p = dec.decode(ts, link, data, wirelen);
        self.decode_weirds(ts, dec);
        p
    }

    /// What decode counted since logging was turned on (`Counters::log`) becomes weirds,
    /// informational counters excepted (sniffer.stats.INFORMATIONAL); logging stops.
    pub fn decode_weirds(&mut self, ts: f64, dec: &mut Decoder) {
        for name in dec.stats.log.take().unwrap_or_default() {
            if !INFORMATIONAL.contains(&name.as_ref()) {
                self.decode_weird(ts, name);
            }
        }
    }

    /// An anomaly of decode or the capture, reported in its place.
    pub fn decode_weird(&mut self, ts: f64, name: Cow<'static, str>) {
        self.events.push(TableEvent::Weird(WeirdEvent {
            ts,
            name,
            decode: true,
            uid: None,
            orig_h: None,
            orig_p: None,
            resp_h: None,
            resp_p: None,
        }));
    }

    fn no_csum(&self, src: &Addr) -> bool {
        self.no_csum_nets
            .as_ref()
            .is_some_and(|n| n.contains(src.as_bytes()))
    }

    fn csum_ok(&self, p: &Packet, l4: &[u8]) -> bool {
        if !self.check_csums || l4.len() < p.l4_len || self.no_csum(&p.src) {
            return true;
        }
        l4_checksum_ok(p.src.as_bytes(), p.dst.as_bytes(), p.proto, l4, p.l4_len)
    }

    /// Zeek's CheckHeaderTrunc: no connection for a transport header that isn't there.
    fn too_short(&mut self, l4: &[u8], l4_len: usize, need: usize) -> bool {
        if l4_len < need {
            self.weird("truncated_header", None, None);
            return true;
        }
        if l4.len() < need {
            self.weird("internally_truncated_header", None, None);
            return true;
        }
        false
    }

    /// Zeek's TCPAnalyzer::WantConnection: guess the server of a connection seen midway.
    fn tcp_flip(&self, sport: u16, dport: u16, flags: u8) -> bool {
        if flags & tcp::SYN != 0 && flags & tcp::ACK == 0 {
            return false;
        }
        if self.likely_tcp.contains(sport) {
            if self.likely_tcp.contains(dport) {
                return flags & tcp::SYN == 0 && sport < dport;
            }
            return true;
        }
        false
    }

    fn is_orig(&self, slot: u32, src: &Addr, sport: u16) -> bool {
        self.flow(slot)
            .is_some_and(|f| f.ports().0 == sport && f.orig_h() == src)
    }

    fn tcp_packet(&mut self, ts: f64, pkt: &Pkt<'_>, encap: Option<&Encap>) {
        let p = pkt.p;
        let l4 = pkt.l4();
        let n = l4.len();
        if p.l4_len < 20 || n < 20 {
            let name = if p.l4_len < 20 {
                "truncated_header"
            } else {
                "internally_truncated_header"
            };
            self.weird(name, None, None);
            return;
        }
        let (sport, dport) = (be16(l4, 0), be16(l4, 2));
        let (seq, ack) = (be32(l4, 4), be32(l4, 8));
        let (off, flags, win) = (byte(l4, 12), byte(l4, 13), be16(l4, 14));
        let key = FlowKey::ordered(p.src, sport, p.dst, dport, 6);
        let slot = match self.find(&key) {
            None => {
                let flip = self.tcp_flip(sport, dport, flags);
                self.new_conn(key, ts, p.src, sport, p.dst, dport, 6, flip, encap)
            }
            Some(slot) => {
                let reuse = flags & tcp::SYN != 0
                    && off >= 0x50
                    && matches!(self.flow(slot).map(|f| &f.state),
                        Some(State::Tcp(t)) if t.is_reuse(flags, seq));
                if reuse {
                    self.remove(slot);
                    let flip = self.tcp_flip(sport, dport, flags);
                    self.new_conn(key, ts, p.src, sport, p.dst, dport, 6, flip, encap)
                } else {
                    if encap.is_some() || self.flow(slot).is_some_and(|f| f.encap().is_some()) {
                        self.check_encap(slot, encap);
                    }
                    slot
                }
            }
        };
        let is_orig = self.is_orig(slot, &p.src, sport);
        let hdr_len = usize::from(off >> 4) << 2;
        if hdr_len < 20 || hdr_len > p.l4_len || hdr_len > n {
            let name = if hdr_len < 20 {
                "bad_TCP_header_len"
            } else {
                "truncated_header"
            };
            self.weird(name, Some(slot), None);
            return;
        }
        if self.check_csums
            && n >= p.l4_len
            && !self.no_csum(&p.src)
            && !l4_checksum_ok(p.src.as_bytes(), p.dst.as_bytes(), 6, l4, p.l4_len)
        {
            self.weird("bad_TCP_checksum", Some(slot), None);
            if let Some(Flow {
                state: State::Tcp(t),
                ..
            }) = self.flow_mut(slot)
            {
                t.checksum_error(is_orig);
            }
            return;
        }
        let seg = Segment {
            ts,
            is_orig,
            flags,
            base_seq: seq,
            ack_seq: ack,
            window: win,
            length: (p.l4_len - hdr_len) as u64,
            caplen: (n - hdr_len) as u64,
        };
        self.with_tcp(slot, |c, x| {
            c.segment(x, &seg);
        });
        // The machine may have flipped the roles (a "^h"), or ended the connection: the
        // packet counts for the sender as things stand after it (a removed connection's
        // record was made before).
        let is_orig = self.is_orig(slot, &p.src, sport);
        if let Some(Flow {
            state: State::Tcp(t),
            ..
        }) = self.flow_mut(slot)
        {
            t.count(is_orig, p.ip_len);
        }
        if self.facts {
            if let Some(f) = self.flow(slot) {
                if let State::Tcp(t) = &f.state {
                    let fact = SegmentFact {
                        ts,
                        uid: f.uid(),
                        key: f.key,
                        orig_h: *f.orig_h(),
                        orig_p: t.orig_p,
                        resp_h: *f.resp_h(),
                        resp_p: t.resp_p,
                        orig_pkts: t.orig_pkts,
                        resp_pkts: t.resp_pkts,
                        is_orig,
                        flags,
                        seq,
                        ack,
                        win,
                        payload: l4.get(hdr_len..).unwrap_or_default().to_vec(),
                        ttl: p.ttl,
                    };
                    self.events.push(TableEvent::Segment(Box::new(fact)));
                }
            }
        }
    }

    fn udp_packet(&mut self, dec: &mut Decoder, ts: f64, pkt: &Pkt<'_>, encap: Option<&Encap>) {
        let p = pkt.p;
        let l4 = pkt.l4();
        if self.too_short(l4, p.l4_len, 8) {
            return;
        }
        let (sport, dport, ulen, csum) = (be16(l4, 0), be16(l4, 2), be16(l4, 4), be16(l4, 6));
        let key = FlowKey::ordered(p.src, sport, p.dst, dport, 17);
        let slot = match self.find(&key) {
            None => {
                let flip = self.likely_udp.contains(sport) && !self.likely_udp.contains(dport);
                self.new_conn(key, ts, p.src, sport, p.dst, dport, 17, flip, encap)
            }
            Some(slot) => {
                if encap.is_some() || self.flow(slot).is_some_and(|f| f.encap().is_some()) {
                    self.check_encap(slot, encap);
                }
                slot
            }
        };
        let is_orig = self.is_orig(slot, &p.src, sport);
        if self.check_csums && l4.len() >= p.l4_len && !self.no_csum(&p.src) {
            let skip = csum == 0
                && dport == VXLAN_PORT
                && p.l4_len > 8 + 8 + 14
                && l4.len() > 8
                && byte(l4, 8) & 0x08 != 0;
            if !skip
                && (csum != 0 || p.src.as_bytes().len() == 16)
                && !l4_checksum_ok(p.src.as_bytes(), p.dst.as_bytes(), 17, l4, p.l4_len)
            {
                self.weird("bad_UDP_checksum", Some(slot), None);
                if let Some(Flow {
                    state: State::Simple(c),
                    ..
                }) = self.flow_mut(slot)
                {
                    if is_orig {
                        c.orig_chk += 1;
                        if c.orig_chk == c.orig_chk_thresh {
                            c.history.push('C');
                            c.orig_chk_thresh = c.orig_chk_thresh.saturating_mul(10);
                        }
                    } else {
                        c.resp_chk += 1;
                        if c.resp_chk == c.resp_chk_thresh {
                            c.history.push('c');
                            c.resp_chk_thresh = c.resp_chk_thresh.saturating_mul(10);
                        }
                    }
                }
                return;
            }
        }
        if let Some(Flow {
            state: State::Simple(c),
            ..
        }) = self.flow_mut(slot)
        {
            c.last_time = ts;
            let size = if ulen > 8 { u64::from(ulen) - 8 } else { 0 };
            let (bit, code) = if is_orig { (1, 'D') } else { (2, 'd') };
            c.check_history(bit, code);
            c.count(is_orig, size, p.ip_len);
        }
        if l4.len() > 8 {
            let payload = l4.get(8..).unwrap_or_default();
            self.udp_tunnel(dec, ts, slot, payload, p.l4_len as i64 - 8, encap);
        }
    }

    fn icmp_packet(&mut self, ts: f64, pkt: &Pkt<'_>, encap: Option<&Encap>) {
        let p = pkt.p;
        let l4 = pkt.l4();
        if self.too_short(l4, p.l4_len, 8) {
            return;
        }
        let (icmp_type, code) = (u16::from(byte(l4, 0)), u16::from(byte(l4, 1)));
        let counterpart = if p.proto == 1 {
            icmp4_counterpart(icmp_type)
        } else {
            icmp6_counterpart(icmp_type)
        };
        let (key, dport) = match counterpart {
            None => (
                FlowKey {
                    a: p.src,
                    pa: icmp_type,
                    b: p.dst,
                    pb: code,
                    proto: p.proto,
                    one_way: true,
                },
                code,
            ),
            Some(c) => {
                let mine = (p.src.as_bytes(), icmp_type);
                let theirs = (p.dst.as_bytes(), c);
                let (a, pa, b, pb) = if mine < theirs {
                    (p.src, icmp_type, p.dst, c)
                } else {
                    (p.dst, c, p.src, icmp_type)
                };
                let key = FlowKey {
                    a,
                    pa,
                    b,
                    pb,
                    proto: p.proto,
                    one_way: false,
                };
                (key, c)
            }
        };
        let slot = match self.find(&key) {
            None => self.new_conn(
                key, ts, p.src, icmp_type, p.dst, dport, p.proto, false, encap,
            ),
            Some(slot) => {
                if encap.is_some() || self.flow(slot).is_some_and(|f| f.encap().is_some()) {
                    self.check_encap(slot, encap);
                }
                slot
            }
        };
        let is_orig = self.is_orig(slot, &p.src, icmp_type);
        if !self.csum_ok(p, l4) {
            self.weird("bad_ICMP_checksum", Some(slot), None);
            return;
        }
        if let Some(Flow {
            state: State::Simple(c),
            ..
        }) = self.flow_mut(slot)
        {
            c.last_time = ts;
            c.count(is_orig, (p.l4_len as u64).saturating_sub(8), p.ip_len);
        }
    }

    fn other_packet(&mut self, ts: f64, pkt: &Pkt<'_>, encap: Option<&Encap>) {
        let p = pkt.p;
        let (a, b) = if addr_lt(&p.src, &p.dst) {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        let key = FlowKey {
            a,
            pa: 0,
            b,
            pb: 0,
            proto: p.proto,
            one_way: false,
        };
        let slot = match self.find(&key) {
            None => self.new_conn(key, ts, p.src, 0, p.dst, 0, p.proto, false, encap),
            Some(slot) => {
                if encap.is_some() || self.flow(slot).is_some_and(|f| f.encap().is_some()) {
                    self.check_encap(slot, encap);
                }
                slot
            }
        };
        if let Some(f) = self.flow_mut(slot) {
            let is_orig = f.orig_h() == &p.src;
            if let State::Simple(c) = &mut f.state {
                c.last_time = ts;
                c.count(is_orig, 0, p.ip_len);
            }
        }
    }
}

#[cfg(test)]
mod sizes {
    /// The per-connection budget (issue 14: about 300 bytes for TCP in the core): the slab's
    /// entry, the TCP machine and a timer stay this small.
    #[test]
    fn connection_state_stays_compact() {
        assert!(std::mem::size_of::<super::Flow>() <= 272);
        assert!(std::mem::size_of::<super::TcpConn>() <= 192);
        assert!(std::mem::size_of::<super::SimpleConn>() <= 120);
        assert!(std::mem::size_of::<super::Timer>() <= 24);
    }
}
