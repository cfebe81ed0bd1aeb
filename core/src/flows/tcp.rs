//! TCP connection tracking with Zeek's semantics: endpoint states, history, sizes, gaps.
//!
//! A transcription of `sniffer/flows/tcp.py` (itself Zeek's TCPSessionAdapter.cc,
//! TCP_Endpoint.cc and TCP_Reassembler.cc reduced to what conn.log shows), with Zeek's names so
//! the three can be read side by side. The reassembler keeps only sequence ranges, never
//! payload bytes: conn.log needs the gaps, not the content.
//!
//! The machine does not hold the flow table: whatever the Python `TCPConn` asks of its table
//! (a weird, a timer, an inactivity timeout, "established", "remove me") goes to a
//! [`TcpContext`], so the Rust table can drive it and tests can drive it alone.
//!
//! Relative sequence numbers are computed as `i128`: the Python reference computes them with
//! unbounded integers (masked to 64 bits, and `FIN_seq - 1` may go below zero), and `i128`
//! holds every value it can produce. They are *stored* in 64 bits, which is exact: a stored
//! position is either masked to 64 bits, or at most a relative sequence number (below 2^64)
//! plus a segment length, which passes 2^64 only after 2^32 - 2 sequence wraps.
//!
//! Compact state (a connection is 192 bytes, and a SYN flood makes millions): each
//! endpoint keeps its sequence numbers, the low halves of its 64-bit positions, one
//! reassembler range and the low bytes of its counters inline; whatever is rare (the high
//! halves, counters past 255, sequence wraps, a second range, the last SYN's position, a
//! history longer than 12 letters) lives in one `Cold` box per connection, allocated when
//! such a value first appears (and freed when the extra ranges that usually caused it go). Counters and wrap counts saturate at `u32::MAX` (the reference
//! counts on: it would differ after 4 billion retransmissions, wraps, ... of one connection).

use serde::{Deserialize, Serialize};

/// Endpoint states, numbered as Zeek's TCP_ENDPOINT_*.
pub const INACTIVE: u8 = 0;
pub const SYN_SENT: u8 = 1;
pub const SYN_ACK_SENT: u8 = 2;
pub const PARTIAL: u8 = 3;
pub const ESTABLISHED: u8 = 4;
pub const CLOSED: u8 = 5;
pub const RESET: u8 = 6;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

const M64: i128 = 0xFFFF_FFFF_FFFF_FFFF;
const TOO_LARGE_SEQ_DELTA: i64 = 1_048_576;
/// Zeek's reassembler limits (init-bare.zeek defaults).
const MAX_INITIAL_WINDOW: i128 = 16384;
const MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS: i128 = 16384;
const EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS: i128 = 10 * 1024 * 1024;

/// History "seen" bits (Zeek's HIST_*); the responder's are shifted left by 16.
pub const HIST_SYN: u32 = 0x1;
pub const HIST_FIN: u32 = 0x2;
pub const HIST_RST: u32 = 0x4;
pub const HIST_FIN_RST: u32 = 0x8;
pub const HIST_DATA: u32 = 0x10;
pub const HIST_ACK: u32 = 0x20;
pub const HIST_MULTI_FLAG: u32 = 0x40;

const ORIG: u8 = 1;
const RESP: u8 = 2;

/// Timer kinds (the table dispatches on them), as `sniffer.flows.tcp`.
pub const INACTIVITY: u8 = 0;
pub const EXPIRE: u8 = 1;
pub const ATTEMPT: u8 = 2;
pub const DELETE: u8 = 3;
pub const DNS_EXPIRE: u8 = 4;

/// `a - b` as a signed 32-bit difference (sequence-space arithmetic).
pub fn seq_delta(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn handshake(state: u8) -> bool {
    state <= SYN_ACK_SENT
}

/// `(wraps << 32) | seq`, unbounded as in Python (wraps: a stored count, at most
/// `u32::MAX`, or one more).
fn wide(wraps: u64, seq: u32) -> i128 {
    (i128::from(wraps) << 32) | i128::from(seq)
}

/// The settings the machine reads (`sniffer.config.Settings` names and defaults).
#[derive(Clone, Debug)]
pub struct TcpSettings {
    pub tcp_attempt_delay: f64,
    pub tcp_close_delay: f64,
    pub tcp_connection_linger: f64,
    pub tcp_session_timer: f64,
    pub tcp_inactivity_timeout: f64,
    pub report_gaps_for_partial: bool,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            tcp_attempt_delay: 5.0,
            tcp_close_delay: 5.0,
            tcp_connection_linger: 5.0,
            tcp_session_timer: 6.0,
            tcp_inactivity_timeout: 300.0,
            report_gaps_for_partial: false,
        }
    }
}

/// What the machine asks of its table (the calls `TCPConn` makes on `self.table`).
pub trait TcpContext {
    /// The table's settings (`table.settings`).
    fn settings(&self) -> &TcpSettings;
    /// `table.weird(name, conn)`.
    fn weird(&mut self, name: &'static str);
    /// `table.set_inactivity_timeout(conn, timeout)`; `last_time` is the connection's now.
    fn set_inactivity_timeout(&mut self, last_time: f64, timeout: f64);
    /// `table.add_timer(when, conn, kind)`; `timer_gen` is the connection's generation now
    /// (a timer of an older one is cancelled).
    fn add_timer(&mut self, when: f64, kind: u8, timer_gen: u64);
    /// `table.connection_established(conn)`: the connection's last_time, the ports as they
    /// stand, and whether the originator is still INACTIVE (the table picks the service port
    /// from these).
    fn connection_established(
        &mut self,
        last_time: f64,
        orig_p: u16,
        resp_p: u16,
        orig_inactive: bool,
    );
    /// `table.remove(conn)`: log the connection now and forget it.
    fn remove(&mut self);
}

/// The 64-bit positions an endpoint keeps: index into [`Endpoint::lo`] and [`ColdEp::hi`].
const FIN_SEQ: usize = 0;
const HIST_LAST_FIN: usize = 1;
const HIST_LAST_RST: usize = 2;
const LAST_REASSEM: usize = 3;
const TRIM_SEQ: usize = 4;
const NPOS: usize = 5;

/// The counters an endpoint keeps: index into [`Endpoint::cnt`] and [`ColdEp::cnt_hi`].
const FIN_CNT: usize = 0;
const RST_CNT: usize = 1;
const CHK_CNT: usize = 2;
const RXMT_CNT: usize = 3;
const WIN0_CNT: usize = 4;
const GAP_CNT: usize = 5;
const NCNT: usize = 6;

/// [`Endpoint::bits`].
const EP_ORIG: u8 = 0x01;
const EP_DID_CLOSE: u8 = 0x02;
const EP_SKIP: u8 = 0x04;
const EP_DID_EOF: u8 = 0x08;
/// The reassembler holds one range, inline in `range`.
const EP_ONE_RANGE: u8 = 0x10;
/// The reassembler's ranges are the vector in the cold part.
const EP_COLD_RANGES: u8 = 0x20;

fn get<T: Copy + Default, const N: usize>(a: &[T; N], i: usize) -> T {
    a.get(i).copied().unwrap_or_default()
}

fn put<T, const N: usize>(a: &mut [T; N], i: usize, v: T) {
    if let Some(x) = a.get_mut(i) {
        *x = v;
    }
}

/// A computed position as stored: always in 0..2^64 but past 2^32 - 2 wraps (see the top).
fn store(v: i128) -> u64 {
    u64::try_from(v).unwrap_or(if v < 0 { 0 } else { u64::MAX })
}

/// One side of a TCP connection: Zeek's TCP_Endpoint plus its reassembler's bookkeeping,
/// the part every packet reads (the rest is the connection's [`ColdEp`] for this side; the
/// connection's accessors join the two, and [`TcpConn::endpoint_view`] shows it all).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub start_seq: u32,
    pub last_seq: u32,
    pub ack_seq: u32,
    /// The low 32 bits of FIN_seq, hist_last_FIN, hist_last_RST, last_reassem, trim_seq.
    lo: [u32; NPOS],
    /// The reassembler's range `[range[0], range[1])` when EP_ONE_RANGE.
    range: [u32; 2],
    /// The low 8 bits of FIN_cnt, RST_cnt and the chk/rxmt/win0/gap counts.
    cnt: [u8; NCNT],
    pub state: u8,
    pub prev_state: u8,
    /// EP_*: is_orig, did_close, skip, did_eof and where the ranges are.
    bits: u8,
}

impl Endpoint {
    pub fn new(is_orig: bool) -> Self {
        let mut lo = [0; NPOS];
        put(&mut lo, LAST_REASSEM, 1);
        put(&mut lo, TRIM_SEQ, 1);
        Endpoint {
            start_seq: 0,
            last_seq: 0,
            ack_seq: 0,
            lo,
            range: [0; 2],
            cnt: [0; NCNT],
            state: INACTIVE,
            prev_state: INACTIVE,
            bits: if is_orig { EP_ORIG } else { 0 },
        }
    }

    pub fn is_orig(&self) -> bool {
        self.bits & EP_ORIG != 0
    }

    pub fn did_close(&self) -> bool {
        self.bits & EP_DID_CLOSE != 0
    }

    pub fn skip(&self) -> bool {
        self.bits & EP_SKIP != 0
    }

    pub fn did_eof(&self) -> bool {
        self.bits & EP_DID_EOF != 0
    }

    // -- sequence space -------------------------------------------------------------------
    pub fn to_rel(&self, seq: u32, wraps: u64) -> i128 {
        (wide(wraps, seq) - i128::from(self.start_seq)) & M64
    }

    pub fn is_clean(&self) -> bool {
        self.state == ESTABLISHED || (self.state == CLOSED && self.prev_state == ESTABLISHED)
    }
}

/// An endpoint's rare part (see the top): zero (or empty) unless the value needs it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ColdEp {
    /// The high 32 bits of the positions in [`Endpoint::lo`].
    hi: [u32; NPOS],
    /// The counters above their low byte (`count >> 8`).
    cnt_hi: [u32; NCNT],
    seq_wraps: u32,
    ack_wraps: u32,
    hist_last_syn: u64,
    /// The reassembler's sorted disjoint `[seq, upper)` ranges when EP_COLD_RANGES.
    ranges: Vec<(u64, u64)>,
}

/// A connection's rare part: both endpoints' (by slot), and a history past 12 letters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cold {
    a: ColdEp,
    b: ColdEp,
    history: String,
}

/// Everything one endpoint holds, by the Python reference's names (its differential test and
/// `_TcpConn.state()`).
#[derive(Clone, Debug, PartialEq)]
#[allow(non_snake_case)] // Zeek's names (FIN_cnt, hist_last_SYN, ...)
pub struct EndpointView {
    pub is_orig: bool,
    pub state: u8,
    pub prev_state: u8,
    pub start_seq: u32,
    pub last_seq: u32,
    pub ack_seq: u32,
    pub seq_wraps: u32,
    pub ack_wraps: u32,
    pub FIN_cnt: u32,
    pub RST_cnt: u32,
    pub FIN_seq: u64,
    pub did_close: bool,
    pub hist_last_SYN: u64,
    pub hist_last_FIN: u64,
    pub hist_last_RST: u64,
    pub chk_cnt: u32,
    pub rxmt_cnt: u32,
    pub win0_cnt: u32,
    pub gap_cnt: u32,
    pub last_reassem: u64,
    pub trim_seq: u64,
    pub blocks: Vec<(u64, u64)>,
    pub skip: bool,
    pub did_eof: bool,
}

/// Which of the two endpoint slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One TCP segment as the table hands it to the machine (its header fields, and the payload
/// length the IP header claims against the bytes captured).
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub ts: f64,
    pub is_orig: bool,
    pub flags: u8,
    pub base_seq: u32,
    pub ack_seq: u32,
    pub window: u16,
    pub length: u64,
    pub caplen: u64,
}

/// The letters a history keeps inline, 5 bits each (the code is the index plus one).
const HIST_ALPHABET: &[u8; 27] = b"SHADFRIQCTWGX^shadfriqctwgx";
/// How many letters fit inline (above the 4-bit length).
const HIST_INLINE: u64 = 12;
/// The length nibble of a history that moved to the cold part.
const HIST_SPILLED: u64 = 15;
/// The packed history "H" (the code of 'H' is 2).
const HIST_ONLY_H: u64 = 1 | (2 << 4);

fn hist_code(c: char) -> Option<u64> {
    HIST_ALPHABET
        .iter()
        .position(|&b| char::from(b) == c)
        .and_then(|i| u64::try_from(i + 1).ok())
}

/// Whether the count just reached is 1, 10, 100, ...: Zeek's ScaledHistoryEntry threshold
/// (it starts at 1 and is multiplied by 10 each time the count, which only ever grows by one,
/// reaches it; so it is the power of ten above the count, and never needs storing).
fn power_of_ten(n: u32) -> bool {
    matches!(
        n,
        1 | 10
            | 100
            | 1_000
            | 10_000
            | 100_000
            | 1_000_000
            | 10_000_000
            | 100_000_000
            | 1_000_000_000
    )
}

/// A TCP connection's state (Zeek's Connection + TCPSessionAdapter, the parts the machine
/// owns). Addresses stay with the table: `flipped` tells it when the roles were swapped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TcpConn {
    pub start_time: f64,
    pub last_time: f64,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub missed_bytes: u64,
    /// The rare part, when some value needs it (see the top).
    cold: Option<Box<Cold>>,
    /// The history ([`TcpConn::history`]): a 4-bit length, then up to 12 letters of 5 bits;
    /// length HIST_SPILLED when it is the cold part's string instead.
    hist: u64,
    a: Endpoint,
    b: Endpoint,
    pub hist_seen: u32,
    pub orig_p: u16,
    pub resp_p: u16,
    /// Toggled by every flip_roles (the table swaps its addresses likewise).
    pub flipped: bool,
    /// Which slot is the originator.
    orig_side: Side,
    pub is_active: bool,
    pub is_partial: bool,
    pub first_packet_seen: u8,
    pub close_deferred: bool,
    pub deferred_gen_event: bool,
    /// CancelTimers' generation: it grows only when an endpoint first closes, so at most 2.
    pub timer_gen: u8,
}

impl TcpConn {
    pub fn new(ts: f64, orig_p: u16, resp_p: u16) -> Self {
        TcpConn {
            start_time: ts,
            last_time: ts,
            orig_pkts: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            missed_bytes: 0,
            cold: None,
            hist: 0,
            a: Endpoint::new(true),
            b: Endpoint::new(false),
            hist_seen: 0,
            orig_p,
            resp_p,
            flipped: false,
            orig_side: Side::A,
            is_active: true,
            is_partial: false,
            first_packet_seen: 0,
            close_deferred: false,
            deferred_gen_event: false,
            timer_gen: 0,
        }
    }

    fn ep(&self, s: Side) -> &Endpoint {
        match s {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn ep_mut(&mut self, s: Side) -> &mut Endpoint {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn side(&self, is_orig: bool) -> Side {
        if is_orig {
            self.orig_side
        } else {
            self.orig_side.other()
        }
    }

    pub fn orig(&self) -> &Endpoint {
        self.ep(self.orig_side)
    }

    pub fn resp(&self) -> &Endpoint {
        self.ep(self.orig_side.other())
    }

    // -- the cold part --------------------------------------------------------------------
    fn cold_ep(&self, s: Side) -> Option<&ColdEp> {
        self.cold.as_deref().map(|c| match s {
            Side::A => &c.a,
            Side::B => &c.b,
        })
    }

    fn cold_ep_mut(&mut self, s: Side) -> &mut ColdEp {
        let c = self.cold.get_or_insert_with(Box::default);
        match s {
            Side::A => &mut c.a,
            Side::B => &mut c.b,
        }
    }

    /// Free the cold part once nothing in it differs from the defaults (after the
    /// reassembler's extra ranges went: the usual reason it was made).
    fn drop_cold_if_idle(&mut self) {
        let idle = self.cold.as_deref().is_some_and(|c| {
            let default = ColdEp::default();
            c.a == default && c.b == default && c.history.is_empty()
        });
        let ranges = (self.a.bits | self.b.bits) & EP_COLD_RANGES != 0;
        if idle && !ranges && self.hist & 0xF != HIST_SPILLED {
            self.cold = None;
        }
    }

    fn pos(&self, s: Side, f: usize) -> i128 {
        let hi = self.cold_ep(s).map_or(0, |c| get(&c.hi, f));
        i128::from((u64::from(hi) << 32) | u64::from(get(&self.ep(s).lo, f)))
    }

    fn set_pos(&mut self, s: Side, f: usize, v: i128) {
        let v = store(v);
        put(&mut self.ep_mut(s).lo, f, v as u32);
        let hi = (v >> 32) as u32;
        if hi != 0 || self.cold.is_some() {
            put(&mut self.cold_ep_mut(s).hi, f, hi);
        }
    }

    fn cnt(&self, s: Side, c: usize) -> u32 {
        let hi = self.cold_ep(s).map_or(0, |x| get(&x.cnt_hi, c));
        (hi << 8) | u32::from(get(&self.ep(s).cnt, c))
    }

    /// Count one more (saturating); the count now.
    fn bump(&mut self, s: Side, c: usize) -> u32 {
        let v = self.cnt(s, c).saturating_add(1);
        put(&mut self.ep_mut(s).cnt, c, v as u8);
        let hi = v >> 8;
        if hi != 0 || self.cold.is_some() {
            put(&mut self.cold_ep_mut(s).cnt_hi, c, hi);
        }
        v
    }

    fn seq_wraps(&self, s: Side) -> u64 {
        self.cold_ep(s).map_or(0, |c| u64::from(c.seq_wraps))
    }

    fn ack_wraps(&self, s: Side) -> u64 {
        self.cold_ep(s).map_or(0, |c| u64::from(c.ack_wraps))
    }

    fn hist_last_syn(&self, s: Side) -> i128 {
        self.cold_ep(s).map_or(0, |c| i128::from(c.hist_last_syn))
    }

    fn set_hist_last_syn(&mut self, s: Side, v: i128) {
        let v = store(v);
        if v != 0 || self.cold.is_some() {
            self.cold_ep_mut(s).hist_last_syn = v;
        }
    }

    /// Everything the endpoint of `is_orig` holds (tests, `_TcpConn.state()`).
    pub fn endpoint_view(&self, is_orig: bool) -> EndpointView {
        let s = self.side(is_orig);
        let ep = self.ep(s);
        let u = |f| store(self.pos(s, f));
        let wraps = |w: u64| u32::try_from(w).unwrap_or(u32::MAX);
        EndpointView {
            is_orig: ep.is_orig(),
            state: ep.state,
            prev_state: ep.prev_state,
            start_seq: ep.start_seq,
            last_seq: ep.last_seq,
            ack_seq: ep.ack_seq,
            seq_wraps: wraps(self.seq_wraps(s)),
            ack_wraps: wraps(self.ack_wraps(s)),
            FIN_cnt: self.cnt(s, FIN_CNT),
            RST_cnt: self.cnt(s, RST_CNT),
            FIN_seq: u(FIN_SEQ),
            did_close: ep.did_close(),
            hist_last_SYN: store(self.hist_last_syn(s)),
            hist_last_FIN: u(HIST_LAST_FIN),
            hist_last_RST: u(HIST_LAST_RST),
            chk_cnt: self.cnt(s, CHK_CNT),
            rxmt_cnt: self.cnt(s, RXMT_CNT),
            win0_cnt: self.cnt(s, WIN0_CNT),
            gap_cnt: self.cnt(s, GAP_CNT),
            last_reassem: u(LAST_REASSEM),
            trim_seq: u(TRIM_SEQ),
            blocks: (0..)
                .map_while(|i| self.block(s, i))
                .map(|(lo, hi)| (store(lo), store(hi)))
                .collect(),
            skip: ep.skip(),
            did_eof: ep.did_eof(),
        }
    }

    // -- an endpoint's sequence space (TCP_Endpoint) --------------------------------------
    fn update_last_seq_of(&mut self, s: Side, seq: u32) {
        if seq < self.ep(s).last_seq {
            let w = self.seq_wraps(s).saturating_add(1);
            self.cold_ep_mut(s).seq_wraps = u32::try_from(w).unwrap_or(u32::MAX);
        }
        self.ep_mut(s).last_seq = seq;
    }

    fn update_ack_seq_of(&mut self, s: Side, seq: u32) {
        if seq < self.ep(s).ack_seq {
            let w = self.ack_wraps(s).saturating_add(1);
            self.cold_ep_mut(s).ack_wraps = u32::try_from(w).unwrap_or(u32::MAX);
        }
        self.ep_mut(s).ack_seq = seq;
    }

    fn no_data_acked(&self, s: Side) -> bool {
        let ep = self.ep(s);
        let ack = wide(self.ack_wraps(s), ep.ack_seq);
        let start = i128::from(ep.start_seq);
        ack == start || ack == start + 1
    }

    /// Bytes sent, from sequence numbers (TCP_Endpoint::Size).
    fn size_of(&self, s: Side) -> i128 {
        let (ep, peer) = (self.ep(s), self.ep(s.other()));
        if ep.prev_state == SYN_SENT
            && ep.state == RESET
            && peer.state == INACTIVE
            && self.no_data_acked(s)
        {
            return 0;
        }
        let last64 = wide(self.seq_wraps(s), ep.last_seq);
        let ack64 = wide(self.ack_wraps(s), ep.ack_seq);
        let mut size = (last64.max(ack64) - i128::from(ep.start_seq)) & M64;
        if size != 0 {
            size -= 1;
        }
        if self.cnt(s, FIN_CNT) > 0 && size != 0 {
            size -= 1;
        }
        size
    }

    /// TCP_Reassembler::DataPending: data sent but not yet delivered or acked.
    fn data_pending(&self, s: Side) -> bool {
        let ep = self.ep(s);
        if ep.skip() {
            return false;
        }
        let delivered = i128::from(ep.start_seq) + self.pos(s, LAST_REASSEM);
        let last = wide(self.seq_wraps(s), ep.last_seq);
        if last < delivered {
            return false;
        }
        if delivered != last - 1 && delivered != last {
            return true;
        }
        ep.state != RESET && self.has_blocks(s.other())
    }

    // -- the reassembler's ranges: one inline, more in the cold part ----------------------
    /// The `i`th range, if any.
    fn block(&self, s: Side, i: usize) -> Option<(i128, i128)> {
        let ep = self.ep(s);
        let r = if ep.bits & EP_COLD_RANGES != 0 {
            self.cold_ep(s)?.ranges.get(i).copied()?
        } else if ep.bits & EP_ONE_RANGE != 0 && i == 0 {
            let [lo, hi] = ep.range;
            (u64::from(lo), u64::from(hi))
        } else {
            return None;
        };
        Some((i128::from(r.0), i128::from(r.1)))
    }

    fn block_count(&self, s: Side) -> usize {
        let ep = self.ep(s);
        if ep.bits & EP_COLD_RANGES != 0 {
            self.cold_ep(s).map_or(0, |c| c.ranges.len())
        } else {
            usize::from(ep.bits & EP_ONE_RANGE != 0)
        }
    }

    fn has_blocks(&self, s: Side) -> bool {
        self.block_count(s) != 0
    }

    fn first_block(&self, s: Side) -> Option<(i128, i128)> {
        self.block(s, 0)
    }

    fn last_block(&self, s: Side) -> Option<(i128, i128)> {
        self.block(s, self.block_count(s).checked_sub(1)?)
    }

    fn data_size(&self, s: Side) -> i128 {
        (0..)
            .map_while(|i| self.block(s, i))
            .map(|(lo, hi)| hi - lo)
            .sum()
    }

    /// The ranges as the cold part's vector (the inline one moved there), to edit.
    fn ranges_mut(&mut self, s: Side) -> &mut Vec<(u64, u64)> {
        let ep = self.ep_mut(s);
        let bits = ep.bits;
        let [lo, hi] = ep.range;
        ep.bits = (bits & !EP_ONE_RANGE) | EP_COLD_RANGES;
        let v = &mut self.cold_ep_mut(s).ranges;
        if bits & EP_COLD_RANGES == 0 {
            v.clear();
            if bits & EP_ONE_RANGE != 0 {
                v.push((u64::from(lo), u64::from(hi)));
            }
        }
        v
    }

    /// After an edit of the vector: back inline when at most one range that fits is left.
    fn settle_ranges(&mut self, s: Side) {
        if self.ep(s).bits & EP_COLD_RANGES == 0 {
            return;
        }
        let one = match self.cold_ep(s).map(|c| c.ranges.as_slice()) {
            None | Some([]) => None,
            Some(&[(lo, hi)]) => match (u32::try_from(lo), u32::try_from(hi)) {
                (Ok(lo), Ok(hi)) => Some([lo, hi]),
                _ => return,
            },
            Some(_) => return,
        };
        self.cold_ep_mut(s).ranges = Vec::new();
        let ep = self.ep_mut(s);
        ep.bits &= !EP_COLD_RANGES;
        if let Some(r) = one {
            ep.range = r;
            ep.bits |= EP_ONE_RANGE;
        }
        self.drop_cold_if_idle();
    }

    fn clear_blocks(&mut self, s: Side) {
        let ep = self.ep_mut(s);
        let cold = ep.bits & EP_COLD_RANGES != 0;
        ep.bits &= !(EP_ONE_RANGE | EP_COLD_RANGES);
        if cold {
            self.cold_ep_mut(s).ranges = Vec::new();
            self.drop_cold_if_idle();
        }
    }

    /// Remove acked ranges below `seq` and cut the first one at it.
    fn trim_blocks(&mut self, s: Side, seq: i128) {
        let ep = self.ep_mut(s);
        if ep.bits & EP_COLD_RANGES == 0 {
            if ep.bits & EP_ONE_RANGE != 0 {
                let [lo, hi] = ep.range;
                if i128::from(hi) <= seq {
                    ep.bits &= !EP_ONE_RANGE;
                } else if i128::from(lo) < seq {
                    ep.range[0] = u32::try_from(seq).unwrap_or(hi); // lo < seq < hi
                }
            }
            return;
        }
        let v = self.ranges_mut(s);
        let n = v.iter().take_while(|b| i128::from(b.1) <= seq).count();
        v.drain(..n);
        if let Some(first) = v.first_mut() {
            if i128::from(first.0) < seq {
                first.0 = store(seq);
            }
        }
        self.settle_ranges(s);
    }

    /// The fast path's in-order data: the last range now ends at `upper`, or it is the
    /// first range `[seq, upper)`.
    fn extend_last_block(&mut self, s: Side, seq: i128, upper: i128) {
        let ep = self.ep_mut(s);
        if ep.bits & EP_COLD_RANGES == 0 {
            if let (Ok(lo), Ok(hi)) = (u32::try_from(seq), u32::try_from(upper)) {
                if ep.bits & EP_ONE_RANGE != 0 {
                    ep.range[1] = hi;
                } else {
                    ep.range = [lo, hi];
                    ep.bits |= EP_ONE_RANGE;
                }
                return;
            }
        }
        let v = self.ranges_mut(s);
        match v.last_mut() {
            Some(b) => b.1 = store(upper),
            None => v.push((store(seq), store(upper))),
        }
        self.settle_ranges(s);
    }

    /// Add [seq, upper) to the endpoint's ranges; deliver what became contiguous. True when
    /// the new data touched the delivery point (Zeek's BlockInserted did work).
    fn insert_range(&mut self, s: Side, seq: i128, upper: i128) -> bool {
        let ep = self.ep(s);
        let mut done = false;
        if ep.bits & EP_COLD_RANGES == 0 {
            // At most one range so far: what the general case below makes of it, when that
            // is one range again.
            let [lo, hi] = ep.range;
            let (lo, hi) = (i128::from(lo), i128::from(hi));
            let merged = if ep.bits & EP_ONE_RANGE == 0 {
                Some((seq, upper))
            } else if seq == hi {
                Some((lo, upper))
            } else if seq < hi && lo <= upper {
                Some((lo.min(seq), hi.max(upper)))
            } else {
                None
            };
            if let Some((lo, hi)) = merged {
                if let (Ok(lo), Ok(hi)) = (u32::try_from(lo), u32::try_from(hi)) {
                    let ep = self.ep_mut(s);
                    ep.range = [lo, hi];
                    ep.bits |= EP_ONE_RANGE;
                    done = true;
                }
            }
        }
        if !done {
            let (seq, upper) = (store(seq), store(upper));
            let blocks = self.ranges_mut(s);
            match blocks.last_mut() {
                None => blocks.push((seq, upper)),
                Some(last) if seq > last.1 => blocks.push((seq, upper)),
                Some(last) if seq == last.1 => last.1 = upper,
                Some(_) => {
                    let i = blocks.iter().take_while(|b| b.1 < seq).count();
                    let (mut lo, mut hi) = (seq, upper);
                    let mut j = i;
                    for b in blocks.iter().skip(i) {
                        if b.0 > upper {
                            break;
                        }
                        lo = lo.min(b.0);
                        hi = hi.max(b.1);
                        j += 1;
                    }
                    blocks.splice(i..j, [(lo, hi)]);
                }
            }
            self.settle_ranges(s);
        }
        let lr = self.pos(s, LAST_REASSEM);
        if seq <= lr && lr < upper {
            if let Some(b) = (0..)
                .map_while(|i| self.block(s, i))
                .find(|b| b.0 <= lr && lr < b.1)
            {
                self.set_pos(s, LAST_REASSEM, b.1);
            }
            return true;
        }
        false
    }

    // -- history --------------------------------------------------------------------------
    /// The history letters, in order.
    fn history_chars(&self) -> impl Iterator<Item = char> + '_ {
        let len = self.hist & 0xF;
        let (n, spilled) = if len == HIST_SPILLED {
            (0, self.cold.as_deref().map_or("", |c| c.history.as_str()))
        } else {
            (len, "")
        };
        let hist = self.hist;
        (0..n)
            .map(move |i| {
                let code = (hist >> (4 + 5 * i)) & 31;
                let i = usize::try_from(code).unwrap_or(0).wrapping_sub(1);
                HIST_ALPHABET.get(i).map_or('?', |&b| char::from(b))
            })
            .chain(spilled.chars())
    }

    /// Zeek's history string (conn.log's `history`).
    pub fn history(&self) -> String {
        self.history_chars().collect()
    }

    /// The history, written to `out` (the rows' reused buffer: no allocation).
    pub fn history_into(&self, out: &mut String) {
        out.extend(self.history_chars());
    }

    fn push_history(&mut self, code: char) {
        let len = self.hist & 0xF;
        if len < HIST_INLINE {
            if let Some(c) = hist_code(code) {
                self.hist = (self.hist | (c << (4 + 5 * len))) + 1;
                return;
            }
        }
        if len != HIST_SPILLED {
            let text: String = self.history_chars().collect();
            self.cold.get_or_insert_with(Box::default).history = text;
            self.hist = HIST_SPILLED;
        }
        self.cold
            .get_or_insert_with(Box::default)
            .history
            .push(code);
    }

    /// Record `code` the first time `mask` is seen; true if it had been seen already. The
    /// table uses it too (the tunnel's "X", HIST_UNKNOWN_PKT).
    pub fn check_history(&mut self, mask: u32, code: char) -> bool {
        if self.hist_seen & mask != 0 {
            return true;
        }
        self.hist_seen |= mask;
        self.push_history(code);
        false
    }

    fn ep_check_history(&mut self, s: Side, mask: u32, code: char) -> bool {
        if (code == 'A' || code == 'D') && self.hist == HIST_ONLY_H {
            // A connection that began with a SYN-ACK: the first ACK or data shows who the
            // client is, so Zeek flips the roles and rewrites the history as "^h" (from the
            // inline "H", so nothing is in the cold part).
            self.flip_roles();
            self.hist = 0;
            self.push_history('^');
            self.push_history('h');
        }
        if self.ep(s).is_orig() {
            self.check_history(mask, code)
        } else {
            self.check_history(mask << 16, code.to_ascii_lowercase())
        }
    }

    fn ep_add_history(&mut self, s: Side, code: char) {
        let c = if self.ep(s).is_orig() {
            code
        } else {
            code.to_ascii_lowercase()
        };
        self.push_history(c);
    }

    /// Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th, ... occurrence.
    fn scaled(&mut self, s: Side, code: char, counter: usize) {
        if power_of_ten(self.bump(s, counter)) {
            self.ep_add_history(s, code);
        }
    }

    pub fn checksum_error(&mut self, is_orig: bool) {
        let s = self.side(is_orig);
        self.scaled(s, 'C', CHK_CNT);
    }

    pub fn flip_roles(&mut self) {
        self.flipped = !self.flipped;
        std::mem::swap(&mut self.orig_p, &mut self.resp_p);
        self.orig_side = self.orig_side.other();
        self.a.bits ^= EP_ORIG;
        self.b.bits ^= EP_ORIG;
        let fps = self.first_packet_seen;
        self.first_packet_seen =
            (if fps & ORIG != 0 { RESP } else { 0 }) | (if fps & RESP != 0 { ORIG } else { 0 });
        self.is_partial = false;
        std::mem::swap(&mut self.orig_pkts, &mut self.resp_pkts);
        std::mem::swap(&mut self.orig_ip_bytes, &mut self.resp_ip_bytes);
        self.push_history('^');
    }

    /// The table's packet counters (ConnSize), for the sender as things stand.
    pub fn count(&mut self, is_orig: bool, ip_len: u64) {
        if is_orig {
            self.orig_pkts = self.orig_pkts.saturating_add(1);
            self.orig_ip_bytes = self.orig_ip_bytes.saturating_add(ip_len);
        } else {
            self.resp_pkts = self.resp_pkts.saturating_add(1);
            self.resp_ip_bytes = self.resp_ip_bytes.saturating_add(ip_len);
        }
    }

    // -- reuse (TCPSessionAdapter::IsReuse) -----------------------------------------------
    pub fn is_reuse(&self, flags: u8, seq: u32) -> bool {
        if flags & SYN == 0 {
            return false;
        }
        let mut conn_orig = self.orig();
        if flags & ACK != 0 {
            if self.orig().state != INACTIVE {
                return false;
            }
            conn_orig = self.resp();
        }
        if !(self.orig().did_close() || self.resp().did_close()) {
            if seq == conn_orig.start_seq {
                return false;
            }
            if flags & ACK == 0
                && conn_orig.state == SYN_ACK_SENT
                && self.resp().state == INACTIVE
                && seq == self.resp().start_seq
            {
                return false;
            }
        }
        true
    }

    /// What the table does with a segment that passed its checks: the inlined common case
    /// (`established`) when both sides are established or partial and no SYN/FIN/RST, else
    /// `process`. Returns whether the segment is the originator's after it (a "^h" flip may
    /// have changed that); the table counts it for that side.
    pub fn segment<C: TcpContext>(&mut self, ctx: &mut C, seg: &Segment) -> bool {
        let (is_orig, flags) = (seg.is_orig, seg.flags);
        let s = self.side(is_orig);
        let ep_state = self.ep(s).state;
        let peer_state = self.ep(s.other()).state;
        let fast = flags & 7 == 0
            && self.first_packet_seen == 3
            && (3..=4).contains(&ep_state)
            && (3..=4).contains(&peer_state);
        if fast && self.established(ctx, seg) {
            return is_orig;
        }
        let before = self.flipped;
        self.process(ctx, seg);
        if self.flipped != before {
            !is_orig
        } else {
            is_orig
        }
    }

    // -- per packet (TCPSessionAdapter::Process) ------------------------------------------
    pub fn process<C: TcpContext>(&mut self, ctx: &mut C, seg: &Segment) {
        let Segment {
            ts,
            is_orig,
            flags,
            base_seq,
            ack_seq,
            window,
            length,
            caplen,
        } = *seg;
        let endpoint = self.side(is_orig);
        let peer = endpoint.other();
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        let rst = flags & RST != 0;
        let ackf = flags & ACK != 0;

        // SetPartialStatus
        if is_orig {
            if self.first_packet_seen & ORIG == 0 {
                self.is_partial = !syn || ackf;
            }
        } else if self.first_packet_seen & RESP == 0 && !self.is_partial {
            self.is_partial = !syn;
        }

        let mut seg_len: u64 = length;
        if syn {
            seg_len = seg_len.wrapping_add(1);
        }
        if fin {
            seg_len = seg_len.wrapping_add(1);
        }
        if rst {
            seg_len = seg_len.wrapping_sub(length);
        }
        let seq_one_past = base_seq.wrapping_add(seg_len as u32);

        init_endpoint(self.ep_mut(endpoint), flags, base_seq, seq_one_past);

        let (rel_seq, seq_underflow) = {
            let e = self.ep(endpoint);
            relative_seq(e, base_seq, e.last_seq, self.seq_wraps(endpoint))
        };
        self.update_history(flags, endpoint, rel_seq, length);

        // update_window: only the zero-window letter reaches conn.log.
        if window == 0 && !rst && self.ep(peer).state != CLOSED && self.ep(endpoint).state != RESET
        {
            self.scaled(endpoint, 'W', WIN0_CNT);
        }

        if !self.orig().did_close() || !self.resp().did_close() {
            self.last_time = ts;
        }

        if fin {
            self.bump(endpoint, FIN_CNT);
            self.set_pos(endpoint, FIN_SEQ, (rel_seq + i128::from(seg_len)) & M64);
        }
        if rst {
            self.bump(endpoint, RST_CNT);
        }

        let mut rel_ack: i128 = 0;
        if ackf {
            let p = self.ep_mut(peer);
            if p.state == INACTIVE {
                rel_ack = 1;
                let a = ack_seq.wrapping_sub(1);
                p.start_seq = a;
                p.ack_seq = a;
                p.last_seq = a;
            } else {
                let p = self.ep(peer);
                let (r, ack_underflow) = relative_seq(p, ack_seq, p.ack_seq, self.ack_wraps(peer));
                rel_ack = r;
                if ack_underflow {
                    rel_ack = 0;
                } else if !rst {
                    let delta_ack = seq_delta(ack_seq, p.ack_seq);
                    if !(ack_seq == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) && delta_ack > 0 {
                        self.update_ack_seq_of(peer, ack_seq);
                    }
                }
            }
        }

        self.update_last_seq(endpoint, seq_one_past, flags, length);

        let (do_close, gen_event) =
            self.update_state_machine(ctx, ts, endpoint, base_seq, length, is_orig, flags);

        if ackf {
            self.ack_received(ctx, peer, rel_ack);
        }

        // CheckPIA_FirstPacket
        self.first_packet_seen |= if is_orig { ORIG } else { RESP };

        if length > 0 && !rst && !seq_underflow {
            if caplen >= length {
                let seq = if syn { rel_seq + 1 } else { rel_seq };
                self.data_sent(ctx, endpoint, seq, length);
            } else {
                ctx.weird("truncated_tcp_payload");
            }
        }

        self.check_eof(ctx, endpoint);

        if do_close {
            self.connection_closed(ctx, endpoint, gen_event);
        }
    }

    /// The common case, inlined: an ACK or data segment while both sides are established
    /// (or PARTIAL). Exactly what `process` does for such a segment; returns false, having
    /// changed nothing, for the rare cases it leaves to `process`: wraps and underflows.
    pub fn established<C: TcpContext>(&mut self, ctx: &mut C, seg: &Segment) -> bool {
        let Segment {
            ts,
            is_orig,
            flags,
            base_seq,
            ack_seq,
            window,
            length,
            caplen,
        } = *seg;
        let s = self.side(is_orig);
        let p = s.other();
        let (last, rel) = {
            let ep = self.ep(s);
            let last = ep.last_seq;
            if self.seq_wraps(s) != 0
                || (base_seq < last && base_seq.wrapping_sub(last) < 0x8000_0000)
            {
                return false;
            }
            let rel = base_seq.wrapping_sub(ep.start_seq);
            if rel >= 0x8000_0000 {
                return false; // before the endpoint's start: let process() count the underflow
            }
            (last, i128::from(rel))
        };
        let ackf = flags & ACK != 0;
        let mut pa = 0u32;
        let mut rel_ack: i128 = 0;
        if ackf {
            let peer = self.ep(p);
            pa = peer.ack_seq;
            if self.ack_wraps(p) != 0 || (ack_seq < pa && ack_seq.wrapping_sub(pa) < 0x8000_0000) {
                return false;
            }
            let r = ack_seq.wrapping_sub(peer.start_seq);
            if r >= 0x8000_0000 {
                return false;
            }
            rel_ack = i128::from(r);
        }

        // update_history: D or A, once per direction
        let shift = if self.ep(s).is_orig() { 0 } else { 16 };
        if length != 0 {
            if self.hist_seen & (HIST_DATA << shift) == 0 {
                self.ep_check_history(s, HIST_DATA, 'D');
            }
        } else if ackf && self.hist_seen & (HIST_ACK << shift) == 0 {
            self.ep_check_history(s, HIST_ACK, 'A');
        }
        if window == 0 {
            self.scaled(s, 'W', WIN0_CNT);
        }
        if !self.orig().did_close() || !self.resp().did_close() {
            self.last_time = ts;
        }
        if ackf {
            let d = ack_seq.wrapping_sub(pa);
            if d != 0 && d < 0x8000_0000 && !(ack_seq == 0 && i64::from(d) > TOO_LARGE_SEQ_DELTA) {
                self.update_ack_seq_of(p, ack_seq);
            }
        }
        // update_last_seq
        let one_past = base_seq.wrapping_add(length as u32);
        let d = one_past.wrapping_sub(last);
        if d != 0 && d < 0x8000_0000 {
            self.update_last_seq_of(s, one_past);
        } else if length > 0 {
            self.scaled(s, 'T', RXMT_CNT);
        }
        if ackf {
            // AckReceived, inlined for the usual case: everything acked was delivered.
            let fin_cnt = self.cnt(p, FIN_CNT);
            if fin_cnt != 0 {
                let fin_seq = self.pos(p, FIN_SEQ);
                if rel_ack >= fin_seq {
                    rel_ack = fin_seq - 1;
                }
            }
            if rel_ack > self.pos(p, TRIM_SEQ) {
                if rel_ack > self.pos(p, LAST_REASSEM) || fin_cnt != 0 {
                    self.ack_received(ctx, p, rel_ack);
                } else {
                    self.trim_blocks(p, rel_ack);
                    self.set_pos(p, TRIM_SEQ, rel_ack);
                }
            }
        }
        if length > 0 {
            let len = i128::from(length);
            let ep = self.ep(s);
            let ack_rel = ep.to_rel(ep.ack_seq, self.ack_wraps(s));
            if caplen < length {
                ctx.weird("truncated_tcp_payload");
            } else if rel == self.pos(s, LAST_REASSEM)
                && !ep.skip()
                && rel >= self.pos(s, TRIM_SEQ)
                && self.last_block(s).is_none_or(|b| b.1 == rel)
                && rel >= ack_rel
            {
                // In-order data with nothing waiting: delivered at once (NewBlock and
                // BlockInserted), and kept as one range until acked.
                let upper = rel + len;
                self.extend_last_block(s, rel, upper);
                self.set_pos(s, LAST_REASSEM, upper);
                if self.no_data_acked(s) && self.size_of(s) > MAX_INITIAL_WINDOW {
                    self.trim_to_seq(ctx, s, upper);
                }
                if let Some(first) = self.first_block(s) {
                    if upper - first.0 > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                        && self.data_size(s) > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                    {
                        self.clear_blocks(s);
                        self.ep_mut(s).bits |= EP_SKIP;
                    }
                }
            } else {
                self.data_sent(ctx, s, rel, length);
            }
        }
        if self.cnt(s, FIN_CNT) != 0 {
            self.check_eof(ctx, s);
        }
        true
    }

    fn update_history(&mut self, flags: u8, endpoint: Side, rel_seq: i128, length: u64) {
        let bits =
            u8::from(flags & SYN != 0) + u8::from(flags & FIN != 0) + u8::from(flags & RST != 0);
        if bits > 1 {
            if flags & FIN != 0 && flags & RST != 0 {
                self.ep_check_history(endpoint, HIST_FIN_RST, 'I');
            } else {
                self.ep_check_history(endpoint, HIST_MULTI_FLAG, 'Q');
            }
        } else if bits == 1 {
            if flags & SYN != 0 {
                let code = if flags & ACK != 0 { 'H' } else { 'S' };
                if self.ep_check_history(endpoint, HIST_SYN, code)
                    && rel_seq != self.hist_last_syn(endpoint)
                {
                    self.ep_add_history(endpoint, code);
                }
                self.set_hist_last_syn(endpoint, rel_seq);
            }
            if flags & FIN != 0 {
                let end = (rel_seq + i128::from(length)) & M64;
                if self.ep_check_history(endpoint, HIST_FIN, 'F')
                    && end != self.pos(endpoint, HIST_LAST_FIN)
                {
                    self.ep_add_history(endpoint, 'F');
                }
                self.set_pos(endpoint, HIST_LAST_FIN, end);
            }
            if flags & RST != 0 {
                if self.ep_check_history(endpoint, HIST_RST, 'R')
                    && rel_seq != self.pos(endpoint, HIST_LAST_RST)
                {
                    self.ep_add_history(endpoint, 'R');
                }
                self.set_pos(endpoint, HIST_LAST_RST, rel_seq);
            }
        } else if length != 0 {
            self.ep_check_history(endpoint, HIST_DATA, 'D');
        } else if flags & ACK != 0 {
            self.ep_check_history(endpoint, HIST_ACK, 'A');
        }
    }

    fn update_last_seq(&mut self, s: Side, last_seq: u32, flags: u8, length: u64) -> i64 {
        let ep = self.ep(s);
        let delta_last = seq_delta(last_seq, ep.last_seq);
        if flags & (SYN | RST) != 0
            && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last)
        {
            // a SYN or RST far from the last sequence number moves nothing
        } else if flags & FIN != 0 && ep.last_seq == ep.start_seq.wrapping_add(1) {
            self.update_last_seq_of(s, last_seq);
        } else if ep.state == RESET {
            // after a reset nothing moves either
        } else if delta_last > 0 {
            self.update_last_seq_of(s, last_seq);
        } else if length > 0 {
            self.scaled(s, 'T', RXMT_CNT);
        }
        delta_last
    }

    // -- state machine --------------------------------------------------------------------
    fn set_state<C: TcpContext>(&mut self, ctx: &mut C, s: Side, new: u8) {
        let (state, peer_state) = (self.ep(s).state, self.ep(s.other()).state);
        if new != state {
            if !handshake(new) && handshake(state) && handshake(peer_state) {
                // table.set_inactivity_timeout(self, settings.tcp_inactivity_timeout)
                let timeout = ctx.settings().tcp_inactivity_timeout;
                ctx.set_inactivity_timeout(self.last_time, timeout);
            }
            let ep = self.ep_mut(s);
            ep.prev_state = ep.state;
            ep.state = new;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update_state_machine<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        t: f64,
        endpoint: Side,
        base_seq: u32,
        length: u64,
        is_orig: bool,
        flags: u8,
    ) -> (bool, bool) {
        let peer = endpoint.other();
        let mut do_close = false;
        let mut gen_event = false;
        let state = self.ep(endpoint).state;
        if state == INACTIVE {
            return self.update_inactive(ctx, t, endpoint, base_seq, length, is_orig, flags);
        }
        if state == SYN_SENT || state == SYN_ACK_SENT {
            if flags & FIN != 0 {
                self.set_state(ctx, endpoint, CLOSED);
                do_close = true;
                gen_event = true;
            }
            if flags & RST != 0 {
                self.set_state(ctx, endpoint, RESET);
                self.is_active = false; // ConnectionReset
                do_close = true;
            }
        } else if state == ESTABLISHED || state == PARTIAL {
            if flags & SYN != 0
                && state == PARTIAL
                && self.ep(peer).state == INACTIVE
                && flags & ACK == 0
            {
                self.set_state(ctx, endpoint, SYN_SENT);
            }
            if flags & FIN != 0 && flags & RST == 0 {
                self.set_state(ctx, endpoint, CLOSED);
                let p = self.ep(peer);
                if p.state == RESET && p.prev_state == CLOSED {
                    self.set_state(ctx, peer, CLOSED);
                }
                do_close = true;
                gen_event = true;
            }
            if flags & RST != 0 {
                self.set_state(ctx, endpoint, RESET);
                do_close = true;
                let p = self.ep(peer);
                if p.state != RESET || p.prev_state != ESTABLISHED {
                    self.is_active = false;
                }
            }
        } else if state == CLOSED && flags & RST != 0 && self.ep(peer).state != CLOSED {
            self.set_state(ctx, endpoint, RESET);
            if !self.ep(endpoint).did_close() {
                do_close = true;
            }
        }
        (do_close, gen_event)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_inactive<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        t: f64,
        endpoint: Side,
        base_seq: u32,
        length: u64,
        is_orig: bool,
        flags: u8,
    ) -> (bool, bool) {
        let mut do_close = false;
        let mut gen_event = false;
        if flags & SYN != 0 {
            if is_orig {
                let new = if flags & ACK != 0 {
                    SYN_ACK_SENT
                } else {
                    SYN_SENT
                };
                self.set_state(ctx, endpoint, new);
                let delay = ctx.settings().tcp_attempt_delay;
                ctx.add_timer(t + delay, ATTEMPT, u64::from(self.timer_gen));
            } else {
                let peer = endpoint.other();
                if flags & ACK == 0
                    && self.ep(peer).state == SYN_ACK_SENT
                    && base_seq == self.ep(endpoint).start_seq
                {
                    // SYN/SYN-ACK reversal: the SYN-ACK was captured before its SYN.
                    self.is_partial = false;
                    self.flip_roles();
                    self.set_state(ctx, peer, ESTABLISHED);
                    self.first_packet_seen |= ORIG;
                }
                if self.ep(peer).state == SYN_SENT {
                    self.set_state(ctx, peer, ESTABLISHED);
                }
                self.set_state(ctx, endpoint, ESTABLISHED);
                if self.ep(peer).state != PARTIAL {
                    let orig_inactive = self.orig().state == INACTIVE;
                    ctx.connection_established(
                        self.last_time,
                        self.orig_p,
                        self.resp_p,
                        orig_inactive,
                    );
                }
            }
        }
        let peer = endpoint.other();
        if flags & FIN != 0 {
            self.set_state(ctx, endpoint, CLOSED);
            do_close = true;
            gen_event = true;
        }
        if flags & RST != 0 {
            self.set_state(ctx, endpoint, RESET);
            let ps = self.ep(peer).state;
            let is_reject = if is_orig {
                ps == ESTABLISHED
            } else {
                ps == SYN_SENT || ps == SYN_ACK_SENT
            };
            do_close = true;
            gen_event = !is_reject;
        }
        if self.ep(endpoint).state == INACTIVE {
            if !is_orig && length == 0 && self.orig().state == SYN_SENT {
                // an ACK of the SYN before the SYN-ACK: not a partial connection
            } else if flags & ACK != 0 && self.ep(peer).state == ESTABLISHED {
                self.set_state(ctx, endpoint, ESTABLISHED);
                self.is_partial = false;
                self.first_packet_seen |= if is_orig { ORIG } else { RESP };
            } else {
                self.set_state(ctx, endpoint, PARTIAL);
            }
        }
        (do_close, gen_event)
    }

    fn connection_closed<C: TcpContext>(&mut self, ctx: &mut C, endpoint: Side, gen_event: bool) {
        let mut gen_event = gen_event;
        if self.data_pending(endpoint) {
            self.close_deferred = true;
            if !self.deferred_gen_event {
                self.deferred_gen_event = gen_event;
            }
            return;
        }
        self.close_deferred = false;
        if self.ep(endpoint).did_close() {
            return;
        }
        self.ep_mut(endpoint).bits |= EP_DID_CLOSE;
        let (e, p) = (self.ep(endpoint), self.ep(endpoint.other()));
        if e.state == RESET || p.did_close() || p.state == INACTIVE {
            if e.prev_state != INACTIVE || p.state != INACTIVE {
                if self.deferred_gen_event {
                    gen_event = true;
                    self.deferred_gen_event = false;
                }
                if gen_event {
                    self.is_active = false; // ConnectionFinished
                }
            }
            self.timer_gen = self.timer_gen.wrapping_add(1); // CancelTimers
            let delay = ctx.settings().tcp_close_delay;
            ctx.add_timer(self.last_time + delay, DELETE, u64::from(self.timer_gen));
        } else if e.prev_state != INACTIVE {
            let delay = ctx.settings().tcp_session_timer;
            ctx.add_timer(self.last_time + delay, EXPIRE, u64::from(self.timer_gen));
        }
    }

    // -- reassembler emulation ------------------------------------------------------------
    fn data_sent<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128, length: u64) {
        let ep = self.ep(s);
        if ep.skip() {
            return;
        }
        let mut seq = seq;
        let ack = ep.to_rel(ep.ack_seq, self.ack_wraps(s));
        let upper = seq + i128::from(length);
        if seq < ack {
            if upper <= ack {
                return;
            }
            seq = ack;
        }
        // NewBlock
        let trim = self.pos(s, TRIM_SEQ);
        if upper <= trim {
            return;
        }
        if seq < trim {
            seq = trim;
        }
        let delivered_now = self.insert_range(s, seq, upper);
        if delivered_now && self.no_data_acked(s) && self.size_of(s) > MAX_INITIAL_WINDOW {
            let lr = self.pos(s, LAST_REASSEM);
            self.trim_to_seq(ctx, s, lr);
        }
        let (first, last) = match (self.first_block(s), self.last_block(s)) {
            (Some(f), Some(l)) => (f.0, l.1),
            _ => return,
        };
        // Zeek: a hole too far above the delivery point before any ack, or too much data
        // held without acks: stop reassembling this side.
        if (last - self.pos(s, LAST_REASSEM) > MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS
            && self.no_data_acked(s))
            || (last - first > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                && self.data_size(s) > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS)
        {
            self.clear_blocks(s);
            self.ep_mut(s).bits |= EP_SKIP;
        }
    }

    fn ack_received<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128) {
        let mut seq = seq;
        if self.cnt(s, FIN_CNT) > 0 {
            let fin_seq = self.pos(s, FIN_SEQ);
            if seq >= fin_seq {
                seq = fin_seq - 1;
            }
        }
        if seq <= self.pos(s, TRIM_SEQ) {
            return;
        }
        self.trim_to_seq(ctx, s, seq);
        self.check_eof(ctx, s);
    }

    fn trim_to_seq<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128) {
        if seq > self.pos(s, LAST_REASSEM) {
            self.undelivered(ctx, s, seq);
        }
        self.trim_blocks(s, seq);
        if seq > self.pos(s, TRIM_SEQ) {
            self.set_pos(s, TRIM_SEQ, seq);
        }
    }

    fn undelivered<C: TcpContext>(&mut self, ctx: &mut C, s: Side, up_to_seq: i128) {
        if up_to_seq <= 2 && self.is_partial {
            return;
        }
        if !self.ep(s).skip() {
            let mut i = 0usize;
            while let Some((b0, b1)) = self.block(s, i) {
                i += 1;
                let lr = self.pos(s, LAST_REASSEM);
                if b0 < lr {
                    continue;
                }
                if b0 >= up_to_seq {
                    break;
                }
                if b0 > lr {
                    self.gap(ctx, s, b0 - lr);
                }
                self.set_pos(s, LAST_REASSEM, b1);
            }
            let lr = self.pos(s, LAST_REASSEM);
            if up_to_seq > lr {
                self.gap(ctx, s, up_to_seq - lr);
            }
        }
        if up_to_seq > self.pos(s, LAST_REASSEM) {
            self.set_pos(s, LAST_REASSEM, up_to_seq);
        }
    }

    fn gap<C: TcpContext>(&mut self, ctx: &mut C, s: Side, length: i128) {
        let clean = self.ep(s).is_clean() && self.ep(s.other()).is_clean();
        if clean {
            self.scaled(s, 'G', GAP_CNT);
        }
        if clean || ctx.settings().report_gaps_for_partial {
            let add = u64::try_from(length).unwrap_or(u64::MAX);
            self.missed_bytes = self.missed_bytes.saturating_add(add);
        }
    }

    fn check_eof<C: TcpContext>(&mut self, ctx: &mut C, s: Side) {
        let ep = self.ep(s);
        if !ep.did_eof()
            && (self.cnt(s, FIN_CNT) > 0 || ep.state == CLOSED || ep.state == RESET)
            && !self.data_pending(s)
        {
            self.ep_mut(s).bits |= EP_DID_EOF;
            if self.close_deferred {
                let ge = self.deferred_gen_event;
                self.connection_closed(ctx, s, ge);
                self.close_deferred = false;
            }
        }
    }

    // -- timers ---------------------------------------------------------------------------
    pub fn attempt_timer<C: TcpContext>(&mut self, ctx: &mut C, _t: f64) {
        if !self.is_active {
            return;
        }
        let o = self.orig().state;
        if (o == SYN_SENT || o == SYN_ACK_SENT) && self.resp().state == INACTIVE {
            self.is_active = false;
            ctx.remove();
        }
    }

    pub fn expire_timer<C: TcpContext>(&mut self, ctx: &mut C, t: f64) {
        if !self.is_active {
            return;
        }
        let (o, r) = (self.orig(), self.resp());
        if self.last_time + ctx.settings().tcp_connection_linger < t {
            if (o.did_close() || r.did_close())
                && ((o.did_close() && r.did_close())
                    || o.state == RESET
                    || r.state == RESET
                    || o.state == INACTIVE
                    || r.state == INACTIVE)
            {
                self.is_active = false;
                ctx.remove();
                return;
            }
            if r.state == INACTIVE && o.state == INACTIVE {
                ctx.remove();
                return;
            }
        }
        let delay = ctx.settings().tcp_session_timer;
        ctx.add_timer(t + delay, EXPIRE, u64::from(self.timer_gen));
    }

    // -- results --------------------------------------------------------------------------
    /// Zeek's conn_state() for TCP (base/protocols/conn/main.zeek).
    pub fn conn_state(&self) -> &'static str {
        let (os, rs) = (self.orig().state, self.resp().state);
        let o_inact = os == INACTIVE || os == PARTIAL;
        let r_inact = rs == INACTIVE || rs == PARTIAL;
        if rs == RESET {
            let (o, r) = self.sizes();
            if os == SYN_SENT || os == SYN_ACK_SENT || (os == RESET && o == 0 && r == 0) {
                return "REJ";
            }
            if o_inact {
                return "RSTRH";
            }
            return "RSTR";
        }
        if os == RESET {
            if r_inact {
                let mut h = self.history_chars().peekable();
                h.next_if_eq(&'^');
                if h.next() == Some('S') {
                    for c in h {
                        if c == 'R' {
                            return "RSTOS0";
                        }
                        if "HAFGIQ".contains(c) {
                            break;
                        }
                    }
                }
                return "OTH";
            }
            return "RSTO";
        }
        if os == CLOSED && rs == CLOSED {
            return "SF";
        }
        if os == CLOSED {
            return if r_inact { "SH" } else { "S2" };
        }
        if rs == CLOSED {
            return if o_inact { "SHR" } else { "S3" };
        }
        if os == SYN_SENT && rs == INACTIVE {
            return "S0";
        }
        if os == ESTABLISHED && rs == ESTABLISHED {
            return "S1";
        }
        "OTH"
    }

    /// (orig_bytes, resp_bytes) from sequence numbers (values below 2^64).
    pub fn sizes(&self) -> (u64, u64) {
        let o = self.size_of(self.orig_side);
        let r = self.size_of(self.orig_side.other());
        (
            u64::try_from(o).unwrap_or(u64::MAX),
            u64::try_from(r).unwrap_or(u64::MAX),
        )
    }
}

fn init_endpoint(ep: &mut Endpoint, flags: u8, first_seq: u32, last_seq: u32) {
    let state = ep.state;
    let syn = flags & SYN != 0;
    if state == INACTIVE {
        let mut last = last_seq;
        if syn {
            ep.ack_seq = first_seq;
            ep.start_seq = first_seq;
        } else {
            ep.ack_seq = first_seq.wrapping_sub(1);
            ep.start_seq = ep.ack_seq;
            last = first_seq;
        }
        ep.last_seq = last;
    } else if state == SYN_SENT || state == SYN_ACK_SENT {
        if syn && first_seq != ep.start_seq {
            ep.start_seq = first_seq;
            ep.ack_seq = first_seq;
            ep.last_seq = last_seq;
        }
    } else if state == ESTABLISHED || state == PARTIAL {
        if syn {
            ep.start_seq = first_seq;
            ep.ack_seq = first_seq;
            ep.last_seq = last_seq;
        }
    } else if state == RESET && syn && ep.prev_state == INACTIVE {
        ep.start_seq = first_seq;
        ep.ack_seq = first_seq;
        ep.last_seq = last_seq;
    }
}

/// get_relative_seq: position in the endpoint's 64-bit relative space, and underflow.
fn relative_seq(ep: &Endpoint, cur: u32, last: u32, wraps: u64) -> (i128, bool) {
    let mut wraps = wraps;
    let delta = seq_delta(cur, last);
    if delta < 0 {
        if wraps != 0 && cur > last {
            wraps -= 1;
        }
    } else if delta > 0 && cur < last {
        wraps = wraps.saturating_add(1);
    }
    if wraps == 0 {
        let d = seq_delta(cur, ep.start_seq);
        return (i128::from(d) & M64, d < 0);
    }
    (ep.to_rel(cur, wraps), false)
}

/// One call the machine made on its context, as [`Recorder`] keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Weird(&'static str),
    /// (the connection's last_time, the timeout)
    Inactivity(f64, f64),
    /// (when, kind, timer_gen)
    Timer(f64, u8, u64),
    /// (orig_p, resp_p, originator still INACTIVE)
    Established(u16, u16, bool),
    Remove,
}

/// A context that only records: for tests, and for driving the machine alone.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub settings: TcpSettings,
    pub events: Vec<Event>,
}

impl TcpContext for Recorder {
    fn settings(&self) -> &TcpSettings {
        &self.settings
    }
    fn weird(&mut self, name: &'static str) {
        self.events.push(Event::Weird(name));
    }
    fn set_inactivity_timeout(&mut self, last_time: f64, timeout: f64) {
        self.events.push(Event::Inactivity(last_time, timeout));
    }
    fn add_timer(&mut self, when: f64, kind: u8, timer_gen: u64) {
        self.events.push(Event::Timer(when, kind, timer_gen));
    }
    fn connection_established(
        &mut self,
        _last_time: f64,
        orig_p: u16,
        resp_p: u16,
        orig_inactive: bool,
    ) {
        self.events
            .push(Event::Established(orig_p, resp_p, orig_inactive));
    }
    fn remove(&mut self) {
        self.events.push(Event::Remove);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment with a full window, its payload all captured.
    fn seg(ts: f64, is_orig: bool, flags: u8, base_seq: u32, ack_seq: u32, len: u64) -> Segment {
        Segment {
            ts,
            is_orig,
            flags,
            base_seq,
            ack_seq,
            window: 65535,
            length: len,
            caplen: len,
        }
    }

    #[test]
    fn seq_delta_is_signed_32_bit() {
        assert_eq!(seq_delta(5, 5), 0);
        assert_eq!(seq_delta(1, 0xFFFF_FFFF), 2);
        assert_eq!(seq_delta(0xFFFF_FFFF, 1), -2);
        assert_eq!(seq_delta(0x7FFF_FFFF, 0), 0x7FFF_FFFF);
        assert_eq!(seq_delta(0x8000_0000, 0), -0x8000_0000);
    }

    #[test]
    fn relative_seq_follows_wraps_and_underflow() {
        let mut ep = Endpoint::new(true);
        ep.start_seq = 0xFFFF_FFF0;
        ep.last_seq = 0xFFFF_FFF8;
        // past the wrap: one more wrap, 64-bit relative position
        assert_eq!(relative_seq(&ep, 0x10, ep.last_seq, 0), (0x20, false));
        // before the start: underflow, the masked negative value
        assert_eq!(relative_seq(&ep, 0xFFFF_FFEF, ep.last_seq, 0), (M64, true));
        // back across a wrap already counted
        assert_eq!(relative_seq(&ep, 0xFFFF_FFF4, 0x10, 1), (4, false));
        assert_eq!(ep.to_rel(0x10, 1), 0x20);
    }

    #[test]
    fn endpoint_size_from_sequence_numbers() {
        let mut c = TcpConn::new(0.0, 1, 2);
        let (s, p) = (Side::A, Side::B);
        c.a.start_seq = 0xFFFF_FFF0;
        c.a.ack_seq = 0xFFFF_FFF0;
        c.a.last_seq = 0xFFFF_FFF8;
        c.update_last_seq_of(s, 0x10); // wraps
        assert_eq!(c.seq_wraps(s), 1);
        assert_eq!(c.size_of(s), 0x1F); // SYN counted out
        c.bump(s, FIN_CNT);
        assert_eq!(c.size_of(s), 0x1E); // and the FIN
        c.update_ack_seq_of(s, 0x40);
        assert_eq!(c.ack_wraps(s), 1);
        assert_eq!(c.size_of(s), 0x4E); // acked beyond what was seen
        assert_eq!(c.size_of(p), 0);
        // a SYN answered by nothing but its own reset: no bytes
        let mut c = TcpConn::new(0.0, 1, 2);
        c.a.prev_state = SYN_SENT;
        c.a.state = RESET;
        c.a.start_seq = 100;
        c.a.ack_seq = 100;
        c.a.last_seq = 5000;
        assert_eq!(c.size_of(s), 0);
        c.a.state = CLOSED;
        assert_eq!(c.size_of(s), 4899);
    }

    fn blocks(c: &TcpConn, s: Side) -> Vec<(i128, i128)> {
        (0..).map_while(|i| c.block(s, i)).collect()
    }

    #[test]
    fn reassembler_ranges_merge_and_deliver() {
        let mut c = TcpConn::new(0.0, 1, 2);
        let s = Side::A;
        assert!(!c.insert_range(s, 10, 20));
        assert!(c.cold.is_none(), "one range stays inline");
        assert!(!c.insert_range(s, 30, 40));
        assert_eq!(blocks(&c, s), vec![(10, 20), (30, 40)]);
        assert!(c.cold.is_some(), "two ranges are the cold part's");
        assert!(!c.insert_range(s, 15, 35));
        assert_eq!(blocks(&c, s), vec![(10, 40)]);
        assert!(c.cold.is_none(), "back to one range: the cold part goes");
        assert!(!c.insert_range(s, 40, 50)); // extends the last range
        assert!(!c.insert_range(s, 60, 70));
        assert_eq!(blocks(&c, s), vec![(10, 50), (60, 70)]);
        assert_eq!(c.data_size(s), 50);
        // data at the delivery point (1) delivers everything contiguous
        assert!(c.insert_range(s, 1, 10));
        assert_eq!(blocks(&c, s), vec![(1, 50), (60, 70)]);
        assert_eq!(c.pos(s, LAST_REASSEM), 50);
        assert!(c.insert_range(s, 45, 65));
        assert_eq!(blocks(&c, s), vec![(1, 70)]);
        assert_eq!(c.pos(s, LAST_REASSEM), 70);
        c.trim_blocks(s, 30);
        assert_eq!(blocks(&c, s), vec![(30, 70)]);
        c.trim_blocks(s, 70);
        assert!(blocks(&c, s).is_empty());
        // before the one inline range, and beyond 32 bits: both in the cold part, exactly
        assert!(!c.insert_range(s, 100, 200));
        assert!(!c.insert_range(s, 20, 50));
        assert_eq!(blocks(&c, s), vec![(20, 50), (100, 200)]);
        c.clear_blocks(s);
        assert!(c.cold.is_none());
        let big = 1i128 << 40;
        assert!(!c.insert_range(s, big, big + 10));
        assert_eq!(blocks(&c, s), vec![(big, big + 10)]);
        c.trim_blocks(s, big + 4);
        assert_eq!(blocks(&c, s), vec![(big + 4, big + 10)]);
        c.trim_blocks(s, big + 10);
        assert!(blocks(&c, s).is_empty());
        assert!(c.cold.is_none());
    }

    #[test]
    fn positions_and_counts_split_between_hot_and_cold() {
        let mut c = TcpConn::new(0.0, 1, 2);
        let s = Side::B;
        c.set_pos(s, FIN_SEQ, 0xFFFF_FFFF);
        assert!(c.cold.is_none());
        for v in [M64, 1i128 << 32, 0x1_2345_6789, 0, 7] {
            c.set_pos(s, FIN_SEQ, v);
            assert_eq!(c.pos(s, FIN_SEQ), v);
        }
        assert_eq!(c.pos(s, LAST_REASSEM), 1);
        let mut c = TcpConn::new(0.0, 1, 2);
        for n in 1..=300u32 {
            assert_eq!(c.bump(s, RXMT_CNT), n);
        }
        assert_eq!(c.cnt(s, RXMT_CNT), 300);
        assert_eq!(c.cnt(Side::A, RXMT_CNT), 0);
        assert_eq!(c.history(), "", "the letter is scaled()'s, not bump()'s");
    }

    #[test]
    fn history_inline_then_spilled() {
        let mut c = TcpConn::new(0.0, 1, 2);
        assert_eq!(c.history(), "");
        let text = "ShADadFfRr^X";
        for ch in text.chars() {
            c.push_history(ch);
        }
        assert_eq!(c.history(), text);
        assert!(c.cold.is_none(), "12 letters fit inline");
        c.push_history('T');
        c.push_history('?'); // not in the alphabet: kept all the same
        assert_eq!(c.history(), "ShADadFfRr^XT?");
        assert!(c.cold.is_some());
        let mut c = TcpConn::new(0.0, 1, 2);
        c.push_history('%');
        c.push_history('S');
        assert_eq!(c.history(), "%S");
        let mut c = TcpConn::new(0.0, 1, 2);
        c.push_history('H');
        assert_eq!(c.hist, HIST_ONLY_H);
        let mut letters = HIST_ALPHABET.to_vec();
        letters.sort_unstable();
        letters.dedup();
        assert_eq!(letters.len(), HIST_ALPHABET.len(), "codes are unique");
        assert!(letters.iter().all(u8::is_ascii_graphic));
    }

    #[test]
    fn history_letters_scale_by_tens() {
        let mut c = TcpConn::new(0.0, 1, 2);
        for _ in 0..100 {
            c.checksum_error(true);
        }
        for _ in 0..9 {
            c.checksum_error(false);
        }
        assert_eq!(c.history(), "CCCc");
        c.checksum_error(false);
        assert_eq!(c.history(), "CCCcc");
        assert_eq!(c.endpoint_view(true).chk_cnt, 100);
        assert_eq!(c.endpoint_view(false).chk_cnt, 10);
        assert!((0..=9).all(|k| power_of_ten(10u32.pow(k))));
        assert!(!power_of_ten(0) && !power_of_ten(u32::MAX) && !power_of_ten(11));
    }

    #[test]
    fn a_whole_connection_across_a_wrap_with_a_gap() {
        // The same segments give this in sniffer/flows/tcp.py.
        let mut c = TcpConn::new(1.0, 40000, 80);
        let mut ctx = Recorder::default();
        let segs: [(f64, bool, u8, u32, u32, u64); 10] = [
            (1.0, true, SYN, 0xFFFF_FF00, 0, 0),
            (1.1, false, SYN | ACK, 5000, 0xFFFF_FF01, 0),
            (1.2, true, ACK, 0xFFFF_FF01, 5001, 0),
            (1.3, true, ACK | PSH, 0xFFFF_FF01, 5001, 0x200),
            (1.4, false, ACK, 5001, 0x101, 0),
            (1.5, true, ACK | PSH, 0x401, 5001, 100),
            (1.6, false, ACK, 5001, 0x465, 0),
            (1.7, true, FIN | ACK, 0x465, 5001, 0),
            (1.8, false, FIN | ACK, 5001, 0x466, 0),
            (1.9, true, ACK, 0x466, 5002, 0),
        ];
        for (ts, is_orig, flags, seq, ack, len) in segs {
            let counted = c.segment(&mut ctx, &seg(ts, is_orig, flags, seq, ack, len));
            assert_eq!(counted, is_orig);
        }
        assert_eq!(c.history(), "ShADaGFf");
        assert_eq!(c.conn_state(), "SF");
        assert_eq!(c.sizes(), (1380, 0));
        assert_eq!(c.missed_bytes, 768);
        assert_eq!(c.endpoint_view(true).seq_wraps, 1);
        assert_eq!(
            ctx.events.first(),
            Some(&Event::Timer(6.0, ATTEMPT, 0)),
            "the attempt timer of the SYN"
        );
        assert!(ctx.events.contains(&Event::Inactivity(1.1, 300.0)));
        assert!(ctx.events.contains(&Event::Established(40000, 80, false)));
        assert_eq!(ctx.events.last(), Some(&Event::Timer(6.8, DELETE, 1)));
    }

    #[test]
    fn syn_ack_first_flips_roles() {
        let mut c = TcpConn::new(0.0, 80, 40000);
        let mut ctx = Recorder::default();
        c.segment(&mut ctx, &seg(0.0, true, SYN | ACK, 7000, 101, 0));
        assert_eq!(c.history(), "H");
        let counted = c.segment(&mut ctx, &seg(0.1, false, ACK, 101, 7001, 0));
        assert!(counted, "after the flip the ACK is the originator's");
        assert!(c.flipped);
        assert_eq!((c.orig_p, c.resp_p), (40000, 80));
        assert_eq!(c.history(), "^hA");
    }
}
