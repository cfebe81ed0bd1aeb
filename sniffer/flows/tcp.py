"""TCP connection tracking with Zeek's semantics: endpoint states, history, sizes, gaps.

This is a transcription of Zeek's TCP session adapter (TCPSessionAdapter.cc, TCP_Endpoint.cc,
TCP_Reassembler.cc) reduced to what conn.log shows. Names follow Zeek's so the two can be read
side by side. The reassembler keeps only sequence ranges, never payload bytes: conn.log needs
the gaps, not the content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sniffer.flows.table import FlowTable

# Endpoint states, numbered as Zeek's TCP_ENDPOINT_* (the numbers appear in nothing we print).
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
TOO_LARGE_SEQ_DELTA = 1048576
# Zeek's reassembler limits (init-bare.zeek defaults).
MAX_INITIAL_WINDOW = 16384
MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS = 16384
EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS = 10 * 1024 * 1024

# History "seen" bits (Zeek's HIST_*); the responder's are shifted left by 16.
HIST_SYN, HIST_FIN, HIST_RST, HIST_FIN_RST, HIST_DATA, HIST_ACK, HIST_MULTI_FLAG = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40)

ORIG, RESP = 1, 2


def seq_delta(a: int, b: int) -> int:
    """a - b as a signed 32-bit difference (sequence-space arithmetic)."""
    d = (a - b) & M32
    return d - 0x100000000 if d & 0x80000000 else d


def _handshake(state: int) -> bool:
    return state <= SYN_ACK_SENT


class Endpoint:
    """One side of a TCP connection: Zeek's TCP_Endpoint plus its reassembler's bookkeeping."""

    __slots__ = (
        "is_orig", "peer", "state", "prev_state", "start_seq", "last_seq", "ack_seq",
        "seq_wraps", "ack_wraps", "FIN_cnt", "RST_cnt", "FIN_seq", "did_close",
        "hist_last_SYN", "hist_last_FIN", "hist_last_RST",
        "chk_cnt", "chk_thresh", "rxmt_cnt", "rxmt_thresh", "win0_cnt", "win0_thresh",
        "gap_cnt", "gap_thresh",
        # reassembler: sorted disjoint [seq, upper] ranges of data above trim_seq
        "last_reassem", "trim_seq", "blocks", "skip", "did_eof",
    )

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.peer: Endpoint = self
        self.state = self.prev_state = INACTIVE
        self.start_seq = self.last_seq = self.ack_seq = 0
        self.seq_wraps = self.ack_wraps = 0
        self.FIN_cnt = self.RST_cnt = 0
        self.FIN_seq = 0
        self.did_close = False
        self.hist_last_SYN = self.hist_last_FIN = self.hist_last_RST = 0
        self.chk_cnt = self.rxmt_cnt = self.win0_cnt = self.gap_cnt = 0
        self.chk_thresh = self.rxmt_thresh = self.win0_thresh = self.gap_thresh = 1
        self.last_reassem = 1
        self.trim_seq = 1
        self.blocks: list[list[int]] = []
        self.skip = False
        self.did_eof = False

    # -- sequence space -------------------------------------------------------------------
    def to_rel(self, seq: int, wraps: int) -> int:
        return (((wraps << 32) | seq) - self.start_seq) & M64

    def update_last_seq(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack_seq(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) | self.ack_seq
        return ack == self.start_seq or ack == self.start_seq + 1

    def size(self) -> int:
        """Bytes sent, from sequence numbers (TCP_Endpoint::Size)."""
        if (self.prev_state == SYN_SENT and self.state == RESET
                and self.peer.state == INACTIVE and self.no_data_acked()):
            return 0
        last64 = (self.seq_wraps << 32) | self.last_seq
        ack64 = (self.ack_wraps << 32) | self.ack_seq
        size = ((last64 if last64 > ack64 else ack64) - self.start_seq) & M64
        if size:
            size -= 1
        if self.FIN_cnt > 0 and size:
            size -= 1
        return size

    def is_clean(self) -> bool:
        return self.state == ESTABLISHED or (self.state == CLOSED and self.prev_state == ESTABLISHED)

    # -- reassembler (ranges only) ------------------------------------------------------------
    def has_blocks(self) -> bool:
        return bool(self.blocks)

    def data_size(self) -> int:
        return sum(u - s for s, u in self.blocks)

    def data_pending(self) -> bool:
        """TCP_Reassembler::DataPending: data sent but not yet delivered or acked."""
        if self.skip:
            return False
        delivered = self.start_seq + self.last_reassem
        last = (self.seq_wraps << 32) | self.last_seq
        if last < delivered:
            return False
        if delivered != last - 1 and delivered != last:
            return True
        if self.state != RESET and self.peer.has_blocks():
            return True
        return False


class TCPConn:
    """A TCP connection in the flow table (Zeek's Connection + TCPSessionAdapter)."""

    __slots__ = (
        "key", "uid", "start_time", "last_time", "orig_h", "orig_p", "resp_h", "resp_p",
        "history", "hist_seen", "orig", "resp", "orig_pkts", "orig_ip_bytes", "resp_pkts",
        "resp_ip_bytes", "missed_bytes", "is_active", "is_partial", "first_packet_seen",
        "close_deferred", "deferred_gen_event", "inactivity_timeout", "inact_gen",
        "timer_gen", "removed", "seq_no", "table", "encap", "tunnel_parents", "tunnel_changes",
    )
    proto = 6

    def __init__(self, table: FlowTable, key: tuple, ts: float, src: bytes, sport: int,
                 dst: bytes, dport: int, seq_no: int) -> None:
        self.table = table
        self.key = key
        self.uid = ""
        self.start_time = self.last_time = ts
        self.orig_h, self.orig_p, self.resp_h, self.resp_p = src, sport, dst, dport
        self.history = ""
        self.hist_seen = 0
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.orig.peer = self.resp
        self.resp.peer = self.orig
        self.orig_pkts = self.orig_ip_bytes = self.resp_pkts = self.resp_ip_bytes = 0
        self.missed_bytes = 0
        self.is_active = True
        self.is_partial = False
        self.first_packet_seen = 0
        self.close_deferred = False
        self.deferred_gen_event = False
        self.inactivity_timeout = 0.0
        self.inact_gen = 0
        self.timer_gen = 0
        self.removed = False
        self.seq_no = seq_no
        self.encap = None
        self.tunnel_parents = None
        self.tunnel_changes = 0

    # -- history ------------------------------------------------------------------------------
    def check_history(self, mask: int, code: str) -> bool:
        """Record `code` the first time `mask` is seen; True if it had been seen already."""
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.history += code
        return False

    def ep_check_history(self, ep: Endpoint, mask: int, code: str) -> bool:
        if code in "AD" and self.history == "H":
            # A connection that began with a SYN-ACK: the first ACK or data shows who the
            # client is, so Zeek flips the roles and rewrites the history as "^h".
            self.flip_roles()
            self.history = "^h"
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        return self.check_history(mask, code)

    def ep_add_history(self, ep: Endpoint, code: str) -> None:
        self.history += code if ep.is_orig else code.lower()

    def scaled(self, ep: Endpoint, code: str, cnt_attr: str, thresh_attr: str) -> None:
        """Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th, ... occurrence."""
        cnt = getattr(ep, cnt_attr) + 1
        setattr(ep, cnt_attr, cnt)
        thresh = getattr(ep, thresh_attr)
        if cnt == thresh:
            self.history += code if ep.is_orig else code.lower()
            setattr(ep, thresh_attr, thresh * 10)

    def checksum_error(self, is_orig: bool) -> None:
        self.scaled(self.orig if is_orig else self.resp, "C", "chk_cnt", "chk_thresh")

    def flip_roles(self) -> None:
        self.orig_h, self.resp_h = self.resp_h, self.orig_h
        self.orig_p, self.resp_p = self.resp_p, self.orig_p
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = not self.orig.is_orig
        self.resp.is_orig = not self.resp.is_orig
        fps = self.first_packet_seen
        self.first_packet_seen = (RESP if fps & ORIG else 0) | (ORIG if fps & RESP else 0)
        self.is_partial = False
        self.orig_pkts, self.resp_pkts = self.resp_pkts, self.orig_pkts
        self.orig_ip_bytes, self.resp_ip_bytes = self.resp_ip_bytes, self.orig_ip_bytes
        self.history += "^"

    # -- reuse (TCPSessionAdapter::IsReuse) -----------------------------------------------
    def is_reuse(self, flags: int, seq: int) -> bool:
        if not flags & SYN:
            return False
        conn_orig = self.orig
        if flags & ACK:
            if self.orig.state != INACTIVE:
                return False
            conn_orig = self.resp
        if not (self.orig.did_close or self.resp.did_close):
            if seq == conn_orig.start_seq:
                return False
            if (not flags & ACK and conn_orig.state == SYN_ACK_SENT
                    and self.resp.state == INACTIVE and seq == self.resp.start_seq):
                return False
        return True

    # -- per packet (TCPSessionAdapter::Process) ------------------------------------------
    def process(self, ts: float, is_orig: bool, flags: int, base_seq: int, ack_seq: int,
                window: int, length: int, caplen: int) -> None:
        endpoint = self.orig if is_orig else self.resp
        peer = endpoint.peer
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        ackf = flags & ACK

        # SetPartialStatus
        if is_orig:
            if not self.first_packet_seen & ORIG:
                self.is_partial = (not syn) or bool(ackf)
        elif not self.first_packet_seen & RESP and not self.is_partial:
            self.is_partial = not syn

        seg_len = length
        if syn:
            seg_len += 1
        if fin:
            seg_len += 1
        if rst:
            seg_len -= length
        seq_one_past = (base_seq + seg_len) & M32

        _init_endpoint(endpoint, flags, base_seq, seq_one_past)

        rel_seq, seq_underflow = _relative_seq(endpoint, base_seq, endpoint.last_seq,
                                               endpoint.seq_wraps)
        self._update_history(flags, endpoint, rel_seq, length)

        # update_window: only the zero-window letter reaches conn.log.
        if (window == 0 and not rst and endpoint.peer.state != CLOSED
                and endpoint.state != RESET):
            self.scaled(endpoint, "W", "win0_cnt", "win0_thresh")

        if not self.orig.did_close or not self.resp.did_close:
            self.last_time = ts

        if fin:
            endpoint.FIN_cnt += 1
            endpoint.FIN_seq = (rel_seq + seg_len) & M64
        if rst:
            endpoint.RST_cnt += 1

        rel_ack = 0
        if ackf:
            if peer.state == INACTIVE:
                rel_ack = 1
                a = (ack_seq - 1) & M32
                peer.start_seq = peer.ack_seq = peer.last_seq = a
            else:
                rel_ack, ack_underflow = _relative_seq(peer, ack_seq, peer.ack_seq, peer.ack_wraps)
                if ack_underflow:
                    rel_ack = 0
                elif not rst:
                    delta_ack = seq_delta(ack_seq, peer.ack_seq)
                    if not (ack_seq == 0 and delta_ack > TOO_LARGE_SEQ_DELTA) and delta_ack > 0:
                        peer.update_ack_seq(ack_seq)

        delta_last = self._update_last_seq(endpoint, seq_one_past, flags, length)

        do_close, gen_event = self._update_state_machine(
            ts, endpoint, peer, base_seq, ack_seq, length, delta_last, is_orig, flags)

        if ackf:
            self._ack_received(peer, rel_ack)

        # CheckPIA_FirstPacket
        if is_orig:
            self.first_packet_seen |= ORIG
        else:
            self.first_packet_seen |= RESP

        if length > 0 and not rst and not seq_underflow:
            if caplen >= length:
                self._data_sent(endpoint, rel_seq + 1 if syn else rel_seq, length)
            else:
                self.table.weird("truncated_tcp_payload", self)

        self._check_eof(endpoint)

        if do_close:
            self._connection_closed(endpoint, peer, gen_event)

    def established(self, ts: float, ep: Endpoint, peer: Endpoint, flags: int, base_seq: int,
                     ack_seq: int, window: int, length: int, caplen: int) -> bool:
        """The common case, inlined: an ACK or data segment while both sides are established
        (or PARTIAL: picked up midstream; the state machine does nothing else for either).

        Exactly what `process` does for such a segment (no state can change), without its
        generality. Returns False, having changed nothing, for the rare cases it leaves to
        `process`: sequence wraps and underflows.
        """
        last = ep.last_seq
        if ep.seq_wraps or base_seq < last and (base_seq - last) & M32 < 0x80000000:
            return False
        rel = (base_seq - ep.start_seq) & M32
        if rel >= 0x80000000:
            return False  # before the endpoint's start: let process() count the underflow
        ackf = flags & ACK
        if ackf:
            pa = peer.ack_seq
            if peer.ack_wraps or ack_seq < pa and (ack_seq - pa) & M32 < 0x80000000:
                return False
            rel_ack = (ack_seq - peer.start_seq) & M32
            if rel_ack >= 0x80000000:
                return False

        # update_history: D or A, once per direction
        shift = 0 if ep.is_orig else 16
        if length:
            if not self.hist_seen & (HIST_DATA << shift):
                self.ep_check_history(ep, HIST_DATA, "D")
        elif ackf and not self.hist_seen & (HIST_ACK << shift):
            self.ep_check_history(ep, HIST_ACK, "A")
        if window == 0:
            self.scaled(ep, "W", "win0_cnt", "win0_thresh")
        if not self.orig.did_close or not self.resp.did_close:
            self.last_time = ts
        if ackf:
            d = (ack_seq - pa) & M32
            if d and d < 0x80000000 and not (ack_seq == 0 and d > TOO_LARGE_SEQ_DELTA):
                if ack_seq < pa:
                    peer.ack_wraps += 1
                peer.ack_seq = ack_seq
        # update_last_seq
        one_past = (base_seq + length) & M32
        d = (one_past - last) & M32
        if d and d < 0x80000000:
            if one_past < last:
                ep.seq_wraps += 1
            ep.last_seq = one_past
        elif length > 0:
            self.scaled(ep, "T", "rxmt_cnt", "rxmt_thresh")
        if ackf:
            # AckReceived, inlined for the usual case: everything acked was delivered.
            if peer.FIN_cnt and rel_ack >= peer.FIN_seq:
                rel_ack = peer.FIN_seq - 1
            if rel_ack > peer.trim_seq:
                if rel_ack > peer.last_reassem or peer.FIN_cnt:
                    self._ack_received(peer, rel_ack)
                else:
                    blocks = peer.blocks
                    while blocks and blocks[0][1] <= rel_ack:
                        del blocks[0]
                    if blocks and blocks[0][0] < rel_ack:
                        blocks[0][0] = rel_ack
                    peer.trim_seq = rel_ack
        if length > 0:
            if caplen < length:
                self.table.weird("truncated_tcp_payload", self)
            elif (rel == ep.last_reassem and not ep.skip and rel >= ep.trim_seq
                  and (not ep.blocks or ep.blocks[-1][1] == rel)
                  and rel >= ((((ep.ack_wraps << 32) | ep.ack_seq) - ep.start_seq) & M64)):
                # In-order data with nothing waiting: delivered at once (NewBlock and
                # BlockInserted), and kept as one range until acked.
                blocks = ep.blocks
                upper = rel + length
                if blocks:
                    blocks[-1][1] = upper
                else:
                    blocks.append([rel, upper])
                ep.last_reassem = upper
                if ep.no_data_acked() and ep.size() > MAX_INITIAL_WINDOW:
                    self._trim_to_seq(ep, upper)
                if (blocks and upper - blocks[0][0] > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
                        and ep.data_size() > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS):
                    blocks.clear()
                    ep.skip = True
            else:
                self._data_sent(ep, rel, length)
        if ep.FIN_cnt:
            self._check_eof(ep)
        return True

    def _update_history(self, flags: int, endpoint: Endpoint, rel_seq: int, length: int) -> None:
        bits = (flags & SYN and 1) + (flags & FIN and 1) + (flags & RST and 1)
        if bits > 1:
            if flags & FIN and flags & RST:
                self.ep_check_history(endpoint, HIST_FIN_RST, "I")
            else:
                self.ep_check_history(endpoint, HIST_MULTI_FLAG, "Q")
        elif bits == 1:
            if flags & SYN:
                code = "H" if flags & ACK else "S"
                if (self.ep_check_history(endpoint, HIST_SYN, code)
                        and rel_seq != endpoint.hist_last_SYN):
                    self.ep_add_history(endpoint, code)
                endpoint.hist_last_SYN = rel_seq
            if flags & FIN:
                end = (rel_seq + length) & M64
                if self.ep_check_history(endpoint, HIST_FIN, "F") and end != endpoint.hist_last_FIN:
                    self.ep_add_history(endpoint, "F")
                endpoint.hist_last_FIN = end
            if flags & RST:
                if (self.ep_check_history(endpoint, HIST_RST, "R")
                        and rel_seq != endpoint.hist_last_RST):
                    self.ep_add_history(endpoint, "R")
                endpoint.hist_last_RST = rel_seq
        elif length:
            self.ep_check_history(endpoint, HIST_DATA, "D")
        elif flags & ACK:
            self.ep_check_history(endpoint, HIST_ACK, "A")

    def _update_last_seq(self, endpoint: Endpoint, last_seq: int, flags: int, length: int) -> int:
        delta_last = seq_delta(last_seq, endpoint.last_seq)
        if flags & (SYN | RST) and (delta_last > TOO_LARGE_SEQ_DELTA
                                    or delta_last < -TOO_LARGE_SEQ_DELTA):
            pass
        elif flags & FIN and endpoint.last_seq == ((endpoint.start_seq + 1) & M32):
            endpoint.update_last_seq(last_seq)
        elif endpoint.state == RESET:
            pass
        elif delta_last > 0:
            endpoint.update_last_seq(last_seq)
        elif length > 0:
            self.scaled(endpoint, "T", "rxmt_cnt", "rxmt_thresh")
        return delta_last

    # -- state machine ------------------------------------------------------------------------
    def set_state(self, ep: Endpoint, new: int) -> None:
        if new != ep.state:
            if not _handshake(new) and _handshake(ep.state) and _handshake(ep.peer.state):
                self.table.set_inactivity_timeout(self, self.table.settings.tcp_inactivity_timeout)
            ep.prev_state = ep.state
            ep.state = new

    def _update_state_machine(self, t: float, endpoint: Endpoint, peer: Endpoint, base_seq: int,
                              ack_seq: int, length: int, delta_last: int, is_orig: bool,
                              flags: int) -> tuple[bool, bool]:
        do_close = gen_event = False
        state = endpoint.state
        if state == INACTIVE:
            return self._update_inactive(t, endpoint, peer, base_seq, length, is_orig, flags)
        if state == SYN_SENT or state == SYN_ACK_SENT:
            if flags & FIN:
                self.set_state(endpoint, CLOSED)
                do_close = gen_event = True
            if flags & RST:
                self.set_state(endpoint, RESET)
                self.is_active = False  # ConnectionReset
                do_close = True
        elif state == ESTABLISHED or state == PARTIAL:
            if (flags & SYN and state == PARTIAL and peer.state == INACTIVE
                    and not flags & ACK):
                self.set_state(endpoint, SYN_SENT)
            if flags & FIN and not flags & RST:
                self.set_state(endpoint, CLOSED)
                if peer.state == RESET and peer.prev_state == CLOSED:
                    self.set_state(peer, CLOSED)
                do_close = gen_event = True
            if flags & RST:
                self.set_state(endpoint, RESET)
                do_close = True
                if peer.state != RESET or peer.prev_state != ESTABLISHED:
                    self.is_active = False
        elif state == CLOSED:
            if flags & RST and endpoint.peer.state != CLOSED:
                self.set_state(endpoint, RESET)
                if not endpoint.did_close:
                    do_close = True
        return do_close, gen_event

    def _update_inactive(self, t: float, endpoint: Endpoint, peer: Endpoint, base_seq: int,
                         length: int, is_orig: bool, flags: int) -> tuple[bool, bool]:
        do_close = gen_event = False
        if flags & SYN:
            if is_orig:
                self.set_state(endpoint, SYN_ACK_SENT if flags & ACK else SYN_SENT)
                self.table.add_timer(t + self.table.settings.tcp_attempt_delay, self, ATTEMPT)
            else:
                if not flags & ACK and peer.state == SYN_ACK_SENT and base_seq == endpoint.start_seq:
                    # SYN/SYN-ACK reversal: the SYN-ACK was captured before its SYN.
                    self.is_partial = False
                    self.flip_roles()
                    self.set_state(peer, ESTABLISHED)
                    self.first_packet_seen |= ORIG
                if peer.state == SYN_SENT:
                    self.set_state(peer, ESTABLISHED)
                self.set_state(endpoint, ESTABLISHED)
                if peer.state != PARTIAL:
                    self.table.connection_established(self)
        if flags & FIN:
            self.set_state(endpoint, CLOSED)
            do_close = gen_event = True
        if flags & RST:
            self.set_state(endpoint, RESET)
            if is_orig:
                is_reject = peer.state == ESTABLISHED
            else:
                is_reject = peer.state == SYN_SENT or peer.state == SYN_ACK_SENT
            do_close = True
            gen_event = not is_reject
        if endpoint.state == INACTIVE:
            if not is_orig and length == 0 and self.orig.state == SYN_SENT:
                pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
            elif flags & ACK and peer.state == ESTABLISHED:
                self.set_state(endpoint, ESTABLISHED)
                self.is_partial = False
                self.first_packet_seen |= ORIG if is_orig else RESP
            else:
                self.set_state(endpoint, PARTIAL)
        return do_close, gen_event

    def _connection_closed(self, endpoint: Endpoint, peer: Endpoint, gen_event: bool) -> None:
        if endpoint.data_pending():
            self.close_deferred = True
            if not self.deferred_gen_event:
                self.deferred_gen_event = gen_event
            return
        self.close_deferred = False
        if endpoint.did_close:
            return
        endpoint.did_close = True
        if endpoint.state == RESET or peer.did_close or peer.state == INACTIVE:
            if endpoint.prev_state != INACTIVE or peer.state != INACTIVE:
                if self.deferred_gen_event:
                    gen_event = True
                    self.deferred_gen_event = False
                if gen_event:
                    self.is_active = False  # ConnectionFinished
            self.timer_gen += 1  # CancelTimers
            self.table.add_timer(self.last_time + self.table.settings.tcp_close_delay, self, DELETE)
        elif endpoint.prev_state != INACTIVE:
            self.table.add_timer(self.last_time + self.table.settings.tcp_session_timer, self, EXPIRE)

    # -- reassembler emulation --------------------------------------------------------------
    def _data_sent(self, ep: Endpoint, seq: int, length: int) -> None:
        if ep.skip:
            return
        ack = ep.to_rel(ep.ack_seq, ep.ack_wraps)
        upper = seq + length
        if seq < ack:
            if upper <= ack:
                return
            seq = ack
        # NewBlock
        if upper <= ep.trim_seq:
            return
        if seq < ep.trim_seq:
            seq = ep.trim_seq
        delivered_now = _insert_range(ep, seq, upper)
        if delivered_now and ep.no_data_acked() and ep.size() > MAX_INITIAL_WINDOW:
            self._trim_to_seq(ep, ep.last_reassem)
        blocks = ep.blocks
        if not blocks:
            return
        if (blocks[-1][1] - ep.last_reassem > MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS
                and ep.no_data_acked()):
            blocks.clear()
            ep.skip = True
        elif (blocks[-1][1] - blocks[0][0] > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS
              and ep.data_size() > EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS):
            blocks.clear()
            ep.skip = True

    def _ack_received(self, ep: Endpoint, seq: int) -> None:
        if ep.FIN_cnt > 0 and seq >= ep.FIN_seq:
            seq = ep.FIN_seq - 1
        if seq <= ep.trim_seq:
            return
        self._trim_to_seq(ep, seq)
        self._check_eof(ep)

    def _trim_to_seq(self, ep: Endpoint, seq: int) -> None:
        if seq > ep.last_reassem:
            self._undelivered(ep, seq)
        blocks = ep.blocks
        while blocks and blocks[0][1] <= seq:
            del blocks[0]
        if blocks and blocks[0][0] < seq:
            blocks[0][0] = seq
        if seq > ep.trim_seq:
            ep.trim_seq = seq

    def _undelivered(self, ep: Endpoint, up_to_seq: int) -> None:
        if up_to_seq <= 2 and self.is_partial:
            return
        if not ep.skip:
            for b in ep.blocks:
                if b[0] < ep.last_reassem:
                    continue
                if b[0] >= up_to_seq:
                    break
                if b[0] > ep.last_reassem:
                    self._gap(ep, b[0] - ep.last_reassem)
                ep.last_reassem = b[1]
            if up_to_seq > ep.last_reassem:
                self._gap(ep, up_to_seq - ep.last_reassem)
        if up_to_seq > ep.last_reassem:
            ep.last_reassem = up_to_seq

    def _gap(self, ep: Endpoint, length: int) -> None:
        clean = ep.is_clean() and ep.peer.is_clean()
        if clean:
            self.scaled(ep, "G", "gap_cnt", "gap_thresh")
        if clean or self.table.settings.report_gaps_for_partial:
            self.missed_bytes += length

    def _check_eof(self, ep: Endpoint) -> None:
        if (not ep.did_eof and (ep.FIN_cnt > 0 or ep.state == CLOSED or ep.state == RESET)
                and not ep.data_pending()):
            ep.did_eof = True
            if self.close_deferred:
                self._connection_closed(ep, ep.peer, self.deferred_gen_event)
                self.close_deferred = False

    # -- timers -------------------------------------------------------------------------------
    def attempt_timer(self, t: float) -> None:
        if not self.is_active:
            return
        if self.orig.state in (SYN_SENT, SYN_ACK_SENT) and self.resp.state == INACTIVE:
            self.is_active = False
            self.table.remove(self)

    def expire_timer(self, t: float) -> None:
        if not self.is_active:
            return
        o, r = self.orig, self.resp
        if self.last_time + self.table.settings.tcp_connection_linger < t:
            if o.did_close or r.did_close:
                if ((o.did_close and r.did_close) or o.state == RESET or r.state == RESET
                        or o.state == INACTIVE or r.state == INACTIVE):
                    self.is_active = False
                    self.table.remove(self)
                    return
            if r.state == INACTIVE and o.state == INACTIVE:
                self.table.remove(self)
                return
        self.table.add_timer(t + self.table.settings.tcp_session_timer, self, EXPIRE)

    # -- results ------------------------------------------------------------------------------
    def conn_state(self) -> str:
        """Zeek's conn_state() for TCP (base/protocols/conn/main.zeek)."""
        os_, rs = self.orig.state, self.resp.state
        o_inact = os_ == INACTIVE or os_ == PARTIAL
        r_inact = rs == INACTIVE or rs == PARTIAL
        if rs == RESET:
            if os_ == SYN_SENT or os_ == SYN_ACK_SENT or (
                    os_ == RESET and self.orig.size() == 0 and self.resp.size() == 0):
                return "REJ"
            if o_inact:
                return "RSTRH"
            return "RSTR"
        if os_ == RESET:
            if r_inact:
                h = self.history
                if h.startswith("^"):
                    h = h[1:]
                if h.startswith("S"):
                    rest = h[1:]
                    for i, c in enumerate(rest):
                        if c == "R":
                            return "RSTOS0"
                        if c in "HAFGIQ":
                            break
                return "OTH"
            return "RSTO"
        if os_ == CLOSED and rs == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inact else "S2"
        if rs == CLOSED:
            return "SHR" if o_inact else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def sizes(self) -> tuple[int, int]:
        return self.orig.size(), self.resp.size()


# Timer kinds (the table dispatches on them).
INACTIVITY, EXPIRE, ATTEMPT, DELETE, DNS_EXPIRE = range(5)


def _init_endpoint(ep: Endpoint, flags: int, first_seq: int, last_seq: int) -> None:
    state = ep.state
    if state == INACTIVE:
        if flags & SYN:
            ep.ack_seq = ep.start_seq = first_seq
        else:
            ep.ack_seq = ep.start_seq = (first_seq - 1) & M32
            last_seq = first_seq
        ep.last_seq = last_seq
    elif state == SYN_SENT or state == SYN_ACK_SENT:
        if flags & SYN and first_seq != ep.start_seq:
            ep.start_seq = ep.ack_seq = first_seq
            ep.last_seq = last_seq
    elif state == ESTABLISHED or state == PARTIAL:
        if flags & SYN:
            ep.start_seq = ep.ack_seq = first_seq
            ep.last_seq = last_seq
    elif state == RESET:
        if flags & SYN and ep.prev_state == INACTIVE:
            ep.start_seq = ep.ack_seq = first_seq
            ep.last_seq = last_seq


def _relative_seq(ep: Endpoint, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    """get_relative_seq: position in the endpoint's 64-bit relative space, and underflow."""
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        delta = seq_delta(cur, ep.start_seq)
        return delta & M64, delta < 0
    return ep.to_rel(cur, wraps), False


def _insert_range(ep: Endpoint, seq: int, upper: int) -> bool:
    """Add [seq, upper) to the endpoint's ranges; deliver what became contiguous.

    Returns True when the new data touched the delivery point (Zeek's BlockInserted did work).
    """
    blocks = ep.blocks
    # Fast paths: in-order data extends the last range, or starts past every range.
    if not blocks or seq > blocks[-1][1]:
        blocks.append([seq, upper])
    elif seq == blocks[-1][1]:
        blocks[-1][1] = upper
    else:
        i = 0
        n = len(blocks)
        while i < n and blocks[i][1] < seq:
            i += 1
        j = i
        lo, hi = seq, upper
        while j < n and blocks[j][0] <= upper:
            if blocks[j][0] < lo:
                lo = blocks[j][0]
            if blocks[j][1] > hi:
                hi = blocks[j][1]
            j += 1
        blocks[i:j] = [[lo, hi]]
    if seq <= ep.last_reassem < upper:
        for b in blocks:
            if b[0] <= ep.last_reassem < b[1]:
                ep.last_reassem = b[1]
                break
        return True
    return False
