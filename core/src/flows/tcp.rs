//! TCP connection tracking with Zeek's semantics: endpoint states, history, sizes, gaps.
//!
//! A transcription of `sniffer/flows/tcp.py` (itself Zeek's TCPSessionAdapter.cc,
//! TCP_Endpoint.cc and TCP_Reassembler.cc reduced to what conn.log shows), with Zeek's names so
//! the three can be read side by side. The reassembler keeps only sequence ranges, never
//! payload bytes: conn.log needs the gaps, not the content.
//!
//! The machine does not hold the flow table: whatever the Python `TCPConn` asks of its table
//! (a weird, a timer, an inactivity timeout, "established", "remove me") goes to a
//! [`TcpContext`], so the Rust table can drive it and tests can drive it alone. Relative
//! sequence numbers are `i128`: the Python reference computes them with unbounded integers
//! (masked to 64 bits, and `FIN_seq - 1` may go below zero), and `i128` holds every value it
//! can produce.

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

/// `(wraps << 32) | seq`, unbounded as in Python (u128 holds any count a run can reach).
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
    /// `table.connection_established(conn)`: the ports as they stand, and whether the
    /// originator is still INACTIVE (the table picks the service port from these).
    fn connection_established(&mut self, orig_p: u16, resp_p: u16, orig_inactive: bool);
    /// `table.remove(conn)`: log the connection now and forget it.
    fn remove(&mut self);
}

/// One side of a TCP connection: Zeek's TCP_Endpoint plus its reassembler's bookkeeping.
#[derive(Clone, Debug)]
#[allow(non_snake_case)] // Zeek's names (FIN_cnt, hist_last_SYN, ...)
pub struct Endpoint {
    pub is_orig: bool,
    pub state: u8,
    pub prev_state: u8,
    pub start_seq: u32,
    pub last_seq: u32,
    pub ack_seq: u32,
    pub seq_wraps: u64,
    pub ack_wraps: u64,
    pub FIN_cnt: u32,
    pub RST_cnt: u32,
    pub FIN_seq: i128,
    pub did_close: bool,
    pub hist_last_SYN: i128,
    pub hist_last_FIN: i128,
    pub hist_last_RST: i128,
    pub chk_cnt: u64,
    pub chk_thresh: u64,
    pub rxmt_cnt: u64,
    pub rxmt_thresh: u64,
    pub win0_cnt: u64,
    pub win0_thresh: u64,
    pub gap_cnt: u64,
    pub gap_thresh: u64,
    // reassembler: sorted disjoint [seq, upper) ranges of data above trim_seq
    pub last_reassem: i128,
    pub trim_seq: i128,
    pub blocks: Vec<(i128, i128)>,
    pub skip: bool,
    pub did_eof: bool,
}

impl Endpoint {
    pub fn new(is_orig: bool) -> Self {
        Endpoint {
            is_orig,
            state: INACTIVE,
            prev_state: INACTIVE,
            start_seq: 0,
            last_seq: 0,
            ack_seq: 0,
            seq_wraps: 0,
            ack_wraps: 0,
            FIN_cnt: 0,
            RST_cnt: 0,
            FIN_seq: 0,
            did_close: false,
            hist_last_SYN: 0,
            hist_last_FIN: 0,
            hist_last_RST: 0,
            chk_cnt: 0,
            chk_thresh: 1,
            rxmt_cnt: 0,
            rxmt_thresh: 1,
            win0_cnt: 0,
            win0_thresh: 1,
            gap_cnt: 0,
            gap_thresh: 1,
            last_reassem: 1,
            trim_seq: 1,
            blocks: Vec::new(),
            skip: false,
            did_eof: false,
        }
    }

    // -- sequence space -------------------------------------------------------------------
    pub fn to_rel(&self, seq: u32, wraps: u64) -> i128 {
        (wide(wraps, seq) - i128::from(self.start_seq)) & M64
    }

    pub fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.saturating_add(1);
        }
        self.last_seq = seq;
    }

    pub fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps = self.ack_wraps.saturating_add(1);
        }
        self.ack_seq = seq;
    }

    pub fn no_data_acked(&self) -> bool {
        let ack = wide(self.ack_wraps, self.ack_seq);
        let start = i128::from(self.start_seq);
        ack == start || ack == start + 1
    }

    /// Bytes sent, from sequence numbers (TCP_Endpoint::Size).
    pub fn size(&self, peer: &Endpoint) -> i128 {
        if self.prev_state == SYN_SENT
            && self.state == RESET
            && peer.state == INACTIVE
            && self.no_data_acked()
        {
            return 0;
        }
        let last64 = wide(self.seq_wraps, self.last_seq);
        let ack64 = wide(self.ack_wraps, self.ack_seq);
        let mut size = (last64.max(ack64) - i128::from(self.start_seq)) & M64;
        if size != 0 {
            size -= 1;
        }
        if self.FIN_cnt > 0 && size != 0 {
            size -= 1;
        }
        size
    }

    pub fn is_clean(&self) -> bool {
        self.state == ESTABLISHED || (self.state == CLOSED && self.prev_state == ESTABLISHED)
    }

    // -- reassembler (ranges only) --------------------------------------------------------
    pub fn has_blocks(&self) -> bool {
        !self.blocks.is_empty()
    }

    pub fn data_size(&self) -> i128 {
        self.blocks.iter().map(|(s, u)| u - s).sum()
    }

    /// TCP_Reassembler::DataPending: data sent but not yet delivered or acked.
    pub fn data_pending(&self, peer: &Endpoint) -> bool {
        if self.skip {
            return false;
        }
        let delivered = i128::from(self.start_seq) + self.last_reassem;
        let last = wide(self.seq_wraps, self.last_seq);
        if last < delivered {
            return false;
        }
        if delivered != last - 1 && delivered != last {
            return true;
        }
        self.state != RESET && peer.has_blocks()
    }
}

/// Which of the two endpoint slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A TCP connection's state (Zeek's Connection + TCPSessionAdapter, the parts the machine
/// owns). Addresses stay with the table: `flipped` tells it when the roles were swapped.
#[derive(Clone, Debug)]
pub struct TcpConn {
    pub start_time: f64,
    pub last_time: f64,
    pub orig_p: u16,
    pub resp_p: u16,
    /// Toggled by every flip_roles (the table swaps its addresses likewise).
    pub flipped: bool,
    pub history: String,
    pub hist_seen: u32,
    a: Endpoint,
    b: Endpoint,
    /// Which slot is the originator.
    orig_side: Side,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub missed_bytes: u64,
    pub is_active: bool,
    pub is_partial: bool,
    pub first_packet_seen: u8,
    pub close_deferred: bool,
    pub deferred_gen_event: bool,
    pub timer_gen: u64,
}

impl TcpConn {
    pub fn new(ts: f64, orig_p: u16, resp_p: u16) -> Self {
        TcpConn {
            start_time: ts,
            last_time: ts,
            orig_p,
            resp_p,
            flipped: false,
            history: String::new(),
            hist_seen: 0,
            a: Endpoint::new(true),
            b: Endpoint::new(false),
            orig_side: Side::A,
            orig_pkts: 0,
            orig_ip_bytes: 0,
            resp_pkts: 0,
            resp_ip_bytes: 0,
            missed_bytes: 0,
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

    fn size_of(&self, s: Side) -> i128 {
        self.ep(s).size(self.ep(s.other()))
    }

    fn data_pending(&self, s: Side) -> bool {
        self.ep(s).data_pending(self.ep(s.other()))
    }

    // -- history --------------------------------------------------------------------------
    /// Record `code` the first time `mask` is seen; true if it had been seen already. The
    /// table uses it too (the tunnel's "X", HIST_UNKNOWN_PKT).
    pub fn check_history(&mut self, mask: u32, code: char) -> bool {
        if self.hist_seen & mask != 0 {
            return true;
        }
        self.hist_seen |= mask;
        self.history.push(code);
        false
    }

    fn ep_check_history(&mut self, s: Side, mask: u32, code: char) -> bool {
        if (code == 'A' || code == 'D') && self.history == "H" {
            // A connection that began with a SYN-ACK: the first ACK or data shows who the
            // client is, so Zeek flips the roles and rewrites the history as "^h".
            self.flip_roles();
            self.history = "^h".to_string();
        }
        if self.ep(s).is_orig {
            self.check_history(mask, code)
        } else {
            self.check_history(mask << 16, code.to_ascii_lowercase())
        }
    }

    fn ep_add_history(&mut self, s: Side, code: char) {
        let c = if self.ep(s).is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        };
        self.history.push(c);
    }

    /// Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th, ... occurrence.
    fn scaled(&mut self, s: Side, code: char, counter: fn(&mut Endpoint) -> (&mut u64, &mut u64)) {
        let ep = self.ep_mut(s);
        let is_orig = ep.is_orig;
        let (cnt, thresh) = counter(ep);
        *cnt = cnt.saturating_add(1);
        if *cnt == *thresh {
            *thresh = thresh.saturating_mul(10);
            self.history.push(if is_orig {
                code
            } else {
                code.to_ascii_lowercase()
            });
        }
    }

    pub fn checksum_error(&mut self, is_orig: bool) {
        let s = self.side(is_orig);
        self.scaled(s, 'C', |e| (&mut e.chk_cnt, &mut e.chk_thresh));
    }

    pub fn flip_roles(&mut self) {
        self.flipped = !self.flipped;
        std::mem::swap(&mut self.orig_p, &mut self.resp_p);
        self.orig_side = self.orig_side.other();
        self.a.is_orig = !self.a.is_orig;
        self.b.is_orig = !self.b.is_orig;
        let fps = self.first_packet_seen;
        self.first_packet_seen =
            (if fps & ORIG != 0 { RESP } else { 0 }) | (if fps & RESP != 0 { ORIG } else { 0 });
        self.is_partial = false;
        std::mem::swap(&mut self.orig_pkts, &mut self.resp_pkts);
        std::mem::swap(&mut self.orig_ip_bytes, &mut self.resp_ip_bytes);
        self.history.push('^');
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
        if !(self.orig().did_close || self.resp().did_close) {
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
            relative_seq(e, base_seq, e.last_seq, e.seq_wraps)
        };
        self.update_history(flags, endpoint, rel_seq, length);

        // update_window: only the zero-window letter reaches conn.log.
        if window == 0 && !rst && self.ep(peer).state != CLOSED && self.ep(endpoint).state != RESET
        {
            self.scaled(endpoint, 'W', |e| (&mut e.win0_cnt, &mut e.win0_thresh));
        }

        if !self.orig().did_close || !self.resp().did_close {
            self.last_time = ts;
        }

        {
            let e = self.ep_mut(endpoint);
            if fin {
                e.FIN_cnt = e.FIN_cnt.saturating_add(1);
                e.FIN_seq = (rel_seq + i128::from(seg_len)) & M64;
            }
            if rst {
                e.RST_cnt = e.RST_cnt.saturating_add(1);
            }
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
                let (r, ack_underflow) = relative_seq(p, ack_seq, p.ack_seq, p.ack_wraps);
                rel_ack = r;
                if ack_underflow {
                    rel_ack = 0;
                } else if !rst {
                    let delta_ack = seq_delta(ack_seq, p.ack_seq);
                    if !(ack_seq == 0 && delta_ack > TOO_LARGE_SEQ_DELTA) && delta_ack > 0 {
                        p.update_ack_seq(ack_seq);
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
            if ep.seq_wraps != 0 || (base_seq < last && base_seq.wrapping_sub(last) < 0x8000_0000) {
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
            if peer.ack_wraps != 0 || (ack_seq < pa && ack_seq.wrapping_sub(pa) < 0x8000_0000) {
                return false;
            }
            let r = ack_seq.wrapping_sub(peer.start_seq);
            if r >= 0x8000_0000 {
                return false;
            }
            rel_ack = i128::from(r);
        }

        // update_history: D or A, once per direction
        let shift = if self.ep(s).is_orig { 0 } else { 16 };
        if length != 0 {
            if self.hist_seen & (HIST_DATA << shift) == 0 {
                self.ep_check_history(s, HIST_DATA, 'D');
            }
        } else if ackf && self.hist_seen & (HIST_ACK << shift) == 0 {
            self.ep_check_history(s, HIST_ACK, 'A');
        }
        if window == 0 {
            self.scaled(s, 'W', |e| (&mut e.win0_cnt, &mut e.win0_thresh));
        }
        if !self.orig().did_close || !self.resp().did_close {
            self.last_time = ts;
        }
        if ackf {
            let peer = self.ep_mut(p);
            let d = ack_seq.wrapping_sub(pa);
            if d != 0 && d < 0x8000_0000 && !(ack_seq == 0 && i64::from(d) > TOO_LARGE_SEQ_DELTA) {
                if ack_seq < pa {
                    peer.ack_wraps = peer.ack_wraps.saturating_add(1);
                }
                peer.ack_seq = ack_seq;
            }
        }
        // update_last_seq
        let one_past = base_seq.wrapping_add(length as u32);
        let d = one_past.wrapping_sub(last);
        if d != 0 && d < 0x8000_0000 {
            let ep = self.ep_mut(s);
            if one_past < last {
                ep.seq_wraps = ep.seq_wraps.saturating_add(1);
            }
            ep.last_seq = one_past;
        } else if length > 0 {
            self.scaled(s, 'T', |e| (&mut e.rxmt_cnt, &mut e.rxmt_thresh));
        }
        if ackf {
            // AckReceived, inlined for the usual case: everything acked was delivered.
            let peer = self.ep_mut(p);
            if peer.FIN_cnt != 0 && rel_ack >= peer.FIN_seq {
                rel_ack = peer.FIN_seq - 1;
            }
            if rel_ack > peer.trim_seq {
                if rel_ack > peer.last_reassem || peer.FIN_cnt != 0 {
                    self.ack_received(ctx, p, rel_ack);
                } else {
                    trim_blocks(&mut peer.blocks, rel_ack);
                    peer.trim_seq = rel_ack;
                }
            }
        }
        if length > 0 {
            let len = i128::from(length);
            let ep = self.ep(s);
            let ack_rel = (wide(ep.ack_wraps, ep.ack_seq) - i128::from(ep.start_seq)) & M64;
            if caplen < length {
                ctx.weird("truncated_tcp_payload");
            } else if rel == ep.last_reassem
                && !ep.skip
                && rel >= ep.trim_seq
                && ep.blocks.last().is_none_or(|b| b.1 == rel)
                && rel >= ack_rel
            {
                // In-order data with nothing waiting: delivered at once (NewBlock and
                // BlockInserted), and kept as one range until acked.
                let upper = rel + len;
                let trim = {
                    let ep = self.ep_mut(s);
                    match ep.blocks.last_mut() {
                        Some(b) => b.1 = upper,
                        None => ep.blocks.push((rel, upper)),
                    }
                    ep.last_reassem = upper;
                    ep.no_data_acked() && self.size_of(s) > MAX_INITIAL_WINDOW
                };
                if trim {
                    self.trim_to_seq(ctx, s, upper);
                }
                let ep = self.ep_mut(s);
                if let Some(first) = ep.blocks.first() {
                    if upper - first.0 > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                        && ep.data_size() > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                    {
                        ep.blocks.clear();
                        ep.skip = true;
                    }
                }
            } else {
                self.data_sent(ctx, s, rel, length);
            }
        }
        if self.ep(s).FIN_cnt != 0 {
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
                    && rel_seq != self.ep(endpoint).hist_last_SYN
                {
                    self.ep_add_history(endpoint, code);
                }
                self.ep_mut(endpoint).hist_last_SYN = rel_seq;
            }
            if flags & FIN != 0 {
                let end = (rel_seq + i128::from(length)) & M64;
                if self.ep_check_history(endpoint, HIST_FIN, 'F')
                    && end != self.ep(endpoint).hist_last_FIN
                {
                    self.ep_add_history(endpoint, 'F');
                }
                self.ep_mut(endpoint).hist_last_FIN = end;
            }
            if flags & RST != 0 {
                if self.ep_check_history(endpoint, HIST_RST, 'R')
                    && rel_seq != self.ep(endpoint).hist_last_RST
                {
                    self.ep_add_history(endpoint, 'R');
                }
                self.ep_mut(endpoint).hist_last_RST = rel_seq;
            }
        } else if length != 0 {
            self.ep_check_history(endpoint, HIST_DATA, 'D');
        } else if flags & ACK != 0 {
            self.ep_check_history(endpoint, HIST_ACK, 'A');
        }
    }

    fn update_last_seq(&mut self, s: Side, last_seq: u32, flags: u8, length: u64) -> i64 {
        let ep = self.ep_mut(s);
        let delta_last = seq_delta(last_seq, ep.last_seq);
        if flags & (SYN | RST) != 0
            && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last)
        {
            // a SYN or RST far from the last sequence number moves nothing
        } else if flags & FIN != 0 && ep.last_seq == ep.start_seq.wrapping_add(1) {
            ep.update_last_seq(last_seq);
        } else if ep.state == RESET {
            // after a reset nothing moves either
        } else if delta_last > 0 {
            ep.update_last_seq(last_seq);
        } else if length > 0 {
            self.scaled(s, 'T', |e| (&mut e.rxmt_cnt, &mut e.rxmt_thresh));
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
            if !self.ep(endpoint).did_close {
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
                ctx.add_timer(t + delay, ATTEMPT, self.timer_gen);
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
                    ctx.connection_established(self.orig_p, self.resp_p, orig_inactive);
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
        if self.ep(endpoint).did_close {
            return;
        }
        self.ep_mut(endpoint).did_close = true;
        let (e, p) = (self.ep(endpoint), self.ep(endpoint.other()));
        if e.state == RESET || p.did_close || p.state == INACTIVE {
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
            ctx.add_timer(self.last_time + delay, DELETE, self.timer_gen);
        } else if e.prev_state != INACTIVE {
            let delay = ctx.settings().tcp_session_timer;
            ctx.add_timer(self.last_time + delay, EXPIRE, self.timer_gen);
        }
    }

    // -- reassembler emulation ------------------------------------------------------------
    fn data_sent<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128, length: u64) {
        let ep = self.ep_mut(s);
        if ep.skip {
            return;
        }
        let mut seq = seq;
        let ack = ep.to_rel(ep.ack_seq, ep.ack_wraps);
        let upper = seq + i128::from(length);
        if seq < ack {
            if upper <= ack {
                return;
            }
            seq = ack;
        }
        // NewBlock
        if upper <= ep.trim_seq {
            return;
        }
        if seq < ep.trim_seq {
            seq = ep.trim_seq;
        }
        let delivered_now = insert_range(ep, seq, upper);
        if delivered_now && self.ep(s).no_data_acked() && self.size_of(s) > MAX_INITIAL_WINDOW {
            let lr = self.ep(s).last_reassem;
            self.trim_to_seq(ctx, s, lr);
        }
        let ep = self.ep_mut(s);
        let (first, last) = match (ep.blocks.first(), ep.blocks.last()) {
            (Some(f), Some(l)) => (f.0, l.1),
            _ => return,
        };
        // Zeek: a hole too far above the delivery point before any ack, or too much data
        // held without acks: stop reassembling this side.
        if (last - ep.last_reassem > MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS && ep.no_data_acked())
            || (last - first > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                && ep.data_size() > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS)
        {
            ep.blocks.clear();
            ep.skip = true;
        }
    }

    fn ack_received<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128) {
        let ep = self.ep(s);
        let mut seq = seq;
        if ep.FIN_cnt > 0 && seq >= ep.FIN_seq {
            seq = ep.FIN_seq - 1;
        }
        if seq <= ep.trim_seq {
            return;
        }
        self.trim_to_seq(ctx, s, seq);
        self.check_eof(ctx, s);
    }

    fn trim_to_seq<C: TcpContext>(&mut self, ctx: &mut C, s: Side, seq: i128) {
        if seq > self.ep(s).last_reassem {
            self.undelivered(ctx, s, seq);
        }
        let ep = self.ep_mut(s);
        trim_blocks(&mut ep.blocks, seq);
        if seq > ep.trim_seq {
            ep.trim_seq = seq;
        }
    }

    fn undelivered<C: TcpContext>(&mut self, ctx: &mut C, s: Side, up_to_seq: i128) {
        if up_to_seq <= 2 && self.is_partial {
            return;
        }
        if !self.ep(s).skip {
            let mut i = 0usize;
            while let Some(&(b0, b1)) = self.ep(s).blocks.get(i) {
                i += 1;
                let lr = self.ep(s).last_reassem;
                if b0 < lr {
                    continue;
                }
                if b0 >= up_to_seq {
                    break;
                }
                if b0 > lr {
                    self.gap(ctx, s, b0 - lr);
                }
                self.ep_mut(s).last_reassem = b1;
            }
            let lr = self.ep(s).last_reassem;
            if up_to_seq > lr {
                self.gap(ctx, s, up_to_seq - lr);
            }
        }
        let ep = self.ep_mut(s);
        if up_to_seq > ep.last_reassem {
            ep.last_reassem = up_to_seq;
        }
    }

    fn gap<C: TcpContext>(&mut self, ctx: &mut C, s: Side, length: i128) {
        let clean = self.ep(s).is_clean() && self.ep(s.other()).is_clean();
        if clean {
            self.scaled(s, 'G', |e| (&mut e.gap_cnt, &mut e.gap_thresh));
        }
        if clean || ctx.settings().report_gaps_for_partial {
            let add = u64::try_from(length).unwrap_or(u64::MAX);
            self.missed_bytes = self.missed_bytes.saturating_add(add);
        }
    }

    fn check_eof<C: TcpContext>(&mut self, ctx: &mut C, s: Side) {
        let ep = self.ep(s);
        if !ep.did_eof
            && (ep.FIN_cnt > 0 || ep.state == CLOSED || ep.state == RESET)
            && !self.data_pending(s)
        {
            self.ep_mut(s).did_eof = true;
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
            if (o.did_close || r.did_close)
                && ((o.did_close && r.did_close)
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
        ctx.add_timer(t + delay, EXPIRE, self.timer_gen);
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
                let h = self.history.strip_prefix('^').unwrap_or(&self.history);
                if let Some(rest) = h.strip_prefix('S') {
                    for c in rest.chars() {
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

/// Remove acked ranges below `seq` and cut the first one at it.
fn trim_blocks(blocks: &mut Vec<(i128, i128)>, seq: i128) {
    let n = blocks.iter().take_while(|b| b.1 <= seq).count();
    blocks.drain(..n);
    if let Some(first) = blocks.first_mut() {
        if first.0 < seq {
            first.0 = seq;
        }
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

/// Add [seq, upper) to the endpoint's ranges; deliver what became contiguous. True when the
/// new data touched the delivery point (Zeek's BlockInserted did work).
pub fn insert_range(ep: &mut Endpoint, seq: i128, upper: i128) -> bool {
    let blocks = &mut ep.blocks;
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
    if seq <= ep.last_reassem && ep.last_reassem < upper {
        let lr = ep.last_reassem;
        if let Some(b) = ep.blocks.iter().find(|b| b.0 <= lr && lr < b.1) {
            ep.last_reassem = b.1;
        }
        return true;
    }
    false
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
    fn connection_established(&mut self, orig_p: u16, resp_p: u16, orig_inactive: bool) {
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
        let peer = Endpoint::new(false);
        let mut ep = Endpoint::new(true);
        ep.start_seq = 0xFFFF_FFF0;
        ep.ack_seq = 0xFFFF_FFF0;
        ep.last_seq = 0x10;
        ep.seq_wraps = 1;
        assert_eq!(ep.size(&peer), 0x1F); // SYN counted out
        ep.FIN_cnt = 1;
        assert_eq!(ep.size(&peer), 0x1E); // and the FIN
        ep.ack_seq = 0x40;
        ep.ack_wraps = 1;
        assert_eq!(ep.size(&peer), 0x4E); // acked beyond what was seen
                                          // a SYN answered by nothing but its own reset: no bytes
        let mut syn = Endpoint::new(true);
        syn.prev_state = SYN_SENT;
        syn.state = RESET;
        syn.start_seq = 100;
        syn.ack_seq = 100;
        syn.last_seq = 5000;
        assert_eq!(syn.size(&peer), 0);
        syn.state = CLOSED;
        assert_eq!(syn.size(&peer), 4899);
    }

    #[test]
    fn reassembler_ranges_merge_and_deliver() {
        let mut ep = Endpoint::new(true);
        assert!(!insert_range(&mut ep, 10, 20));
        assert!(!insert_range(&mut ep, 30, 40));
        assert_eq!(ep.blocks, vec![(10, 20), (30, 40)]);
        assert!(!insert_range(&mut ep, 15, 35));
        assert_eq!(ep.blocks, vec![(10, 40)]);
        assert!(!insert_range(&mut ep, 40, 50)); // extends the last range
        assert!(!insert_range(&mut ep, 60, 70));
        assert_eq!(ep.blocks, vec![(10, 50), (60, 70)]);
        assert_eq!(ep.data_size(), 50);
        // data at the delivery point (1) delivers everything contiguous
        assert!(insert_range(&mut ep, 1, 10));
        assert_eq!(ep.blocks, vec![(1, 50), (60, 70)]);
        assert_eq!(ep.last_reassem, 50);
        assert!(insert_range(&mut ep, 45, 65));
        assert_eq!(ep.blocks, vec![(1, 70)]);
        assert_eq!(ep.last_reassem, 70);
        trim_blocks(&mut ep.blocks, 30);
        assert_eq!(ep.blocks, vec![(30, 70)]);
        trim_blocks(&mut ep.blocks, 70);
        assert!(ep.blocks.is_empty());
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
        assert_eq!(c.history, "CCCc");
        c.checksum_error(false);
        assert_eq!(c.history, "CCCcc");
        assert_eq!(c.orig().chk_thresh, 1000);
        assert_eq!(c.resp().chk_thresh, 100);
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
        assert_eq!(c.history, "ShADaGFf");
        assert_eq!(c.conn_state(), "SF");
        assert_eq!(c.sizes(), (1380, 0));
        assert_eq!(c.missed_bytes, 768);
        assert_eq!(c.orig().seq_wraps, 1);
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
        assert_eq!(c.history, "H");
        let counted = c.segment(&mut ctx, &seg(0.1, false, ACK, 101, 7001, 0));
        assert!(counted, "after the flip the ACK is the originator's");
        assert!(c.flipped);
        assert_eq!((c.orig_p, c.resp_p), (40000, 80));
        assert_eq!(c.history, "^hA");
    }
}
