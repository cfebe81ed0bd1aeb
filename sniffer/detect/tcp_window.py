"""`out-of-window`: segments far beyond the receiver's window, ACKs for data never sent.

SPOOF.md section 2.4 (and RFC 5961 for what a stack does with them). Only connections whose
handshake was seen in both directions are judged: picked up midstream, neither the sequence
spaces nor the window scale are known.

* ``seq_beyond_window`` - a segment starting more than a generous bound beyond the receiver's
  right window edge (its highest ACK + its last window). Until the receiver has sent anything
  but its SYN, its window is the SYN's, which is never scaled (RFC 7323), and the bound is one
  maximum unscaled window (64 KiB); afterwards the window scale is unknown (the observer sees no
  options) and the window is taken as scaled by 2^8, with 1 MiB of slack on top. Retransmissions,
  keep-alives and window probes sit at or below the edge and are never judged; SYN and RST
  segments are left to the other detectors. Capture loss (the receiver's ACKs missed) looks the
  same, so the segment is held: the receiver's next ACK settles it. A window that now covers it
  drops it; a duplicate ACK (what a stack answers to an out-of-window segment) confirms it; still
  unanswered when the connection ends, it is reported then.
* ``ack_unsent`` - an ACK beyond the peer's highest sequence number sent (+1). Capture loss
  looks the same (the peer's data was sent, the sensor missed it), and so does a capture that
  reorders an ACK before the data it acknowledges, so the ACK is held: a later pure ACK from the
  peer whose sequence number (its snd_nxt) is still below the claimed ACK shows the peer never
  sent those bytes; a segment of the peer reaching the claimed ACK means the sensor missed or
  reordered them, and the ACK is dropped.
"""

from __future__ import annotations

from sniffer.detect.tcp_common import (
    ACK, FIN, RST, SYN, PerConn, flag_str, make_alert, sender, seq_delta)

SYN_WINDOW_SLACK = 65535  # beyond a window known exactly (the SYN's)
SCALED_WINDOW_SHIFT = 8  # assumed scale of windows after the SYN (Linux uses 7, Windows 8)
SCALED_WINDOW_SLACK = 1 << 20
ACK_SLACK = 1


class _Side:
    __slots__ = ("key", "syn", "high", "ack", "win", "win_syn", "pending", "pending_seg",
                 "alerted")

    def __init__(self, key: tuple) -> None:
        self.key = key  # (address, port) of this side
        self.syn = False  # its SYN was seen: its sequence space is anchored
        self.high: int | None = None  # one past its highest sequence number
        self.ack: int | None = None  # the highest ACK it sent
        self.win = 0  # its latest window, raw
        self.win_syn = False  # ... taken from its SYN (so unscaled, exact)
        self.pending: tuple | None = None  # a held ACK beyond the peer: (ack, peer_high, ts, evidence)
        self.pending_seg: tuple | None = None  # a held segment beyond the window: (seq, ts, evidence)
        self.alerted: set = set()


class OutOfWindow(PerConn):
    kind = "out-of-window"

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        st = self.sides(conn)
        key = sender(conn, is_orig)
        side = st.get(key)
        if side is None:
            side = st[key] = _Side(key)
        pkey = sender(conn, not is_orig)
        peer = st.get(pkey)
        if peer is None:
            peer = st[pkey] = _Side(pkey)
        n = len(payload)
        syn = flags & SYN
        rst = flags & RST

        # the peer's held ACK for data this side never sent: this segment settles it
        if peer.pending is not None and not syn and not rst:
            claimed, before, pts, ev = peer.pending
            end = (seq + n + (1 if flags & FIN else 0)) & 0xFFFFFFFF
            if seq_delta(end, claimed) >= -ACK_SLACK:
                peer.pending = None  # this side did send that far: the sensor missed it
            elif (not n and not flags & FIN and ts > pts
                  and seq_delta(seq, before) >= -ACK_SLACK):
                peer.pending = None
                if "ack_unsent" not in peer.alerted:
                    peer.alerted.add("ack_unsent")
                    ev["confirmed_by"] = {"ts": ts, "flags": flag_str(flags), "seq": seq,
                                          "len": n}
                    self.emit(make_alert(
                        pts, self.kind, "low",
                        f"ACK {claimed} acknowledges {seq_delta(claimed, before)} bytes "
                        f"never sent (peer's highest sequence {before})",
                        ev, conn, not is_orig), "ack_unsent")

        if (side.syn and peer.syn and not syn and not rst and peer.ack is not None
                and side.pending_seg is None and "seq_beyond_window" not in side.alerted):
            edge, wnd, slack = _edge(peer)
            beyond = seq_delta(seq, edge)
            if beyond > slack:
                side.pending_seg = (seq, ts, {
                    "detector": "seq_beyond_window", "flags": flag_str(flags), "seq": seq,
                    "ack": ack, "len": n, "ttl": ttl, "receiver_ack": peer.ack,
                    "receiver_window": peer.win, "window_from_syn": peer.win_syn,
                    "assumed_window_bytes": wnd, "bound": slack, "beyond": beyond})

        if (flags & ACK and not rst and peer.syn and peer.high is not None
                and side.pending is None and "ack_unsent" not in side.alerted
                and seq_delta(ack, peer.high) > ACK_SLACK):
            side.pending = (ack, peer.high, ts, {
                "detector": "ack_unsent", "flags": flag_str(flags), "seq": seq, "ack": ack,
                "len": n, "ttl": ttl, "peer_high_seq": peer.high})

        if syn:
            side.syn = True
        if not rst:
            end = (seq + n + (1 if syn else 0) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
            if side.high is None or seq_delta(end, side.high) > 0:
                side.high = end
            if flags & ACK:
                advanced = side.ack is None or seq_delta(ack, side.ack) > 0
                if advanced:
                    side.ack = ack
                side.win = win
                side.win_syn = bool(syn)
                held = peer.pending_seg
                if held is not None:
                    # The receiver's answer to a held segment beyond its window: a window
                    # that now covers it means the sensor had missed the receiver's ACKs; a
                    # duplicate ACK is what a stack sends for an out-of-window segment.
                    if seq_delta(held[0], _edge(side)[0]) <= _edge(side)[2]:
                        peer.pending_seg = None
                    elif not advanced and not n and not flags & (SYN | FIN):
                        self._out_of_window(peer, conn, not is_orig, ts)

    def _out_of_window(self, side, conn, is_orig, confirmed_ts=None) -> None:
        seg_seq, ts, ev = side.pending_seg
        side.pending_seg = None
        side.alerted.add("seq_beyond_window")
        if confirmed_ts is None:
            ev["confirmed_by"] = "unanswered: the receiver never acknowledged past it"
        else:
            ev["confirmed_by"] = {"ts": confirmed_ts, "duplicate_ack": ev["receiver_ack"]}
        self.emit(make_alert(
            ts, self.kind, "low",
            f"segment seq {seg_seq} is {ev['beyond']} bytes beyond the receiver's window "
            f"(ACK {ev['receiver_ack']} + window {ev['assumed_window_bytes']})",
            ev, conn, is_orig), "seq_beyond_window")

    def finished(self, record) -> None:
        st = self.conns.pop(record.uid, None)
        if not st:
            return
        for side in st.values():
            if side.pending_seg is not None:
                conn = _Record(record, side)
                self._out_of_window(side, conn, conn.is_orig)


def _edge(rcv: _Side) -> tuple[int, int, int]:
    """The receiver's right window edge, the window assumed and the slack allowed past it."""
    if rcv.win_syn:
        wnd, slack = rcv.win, SYN_WINDOW_SLACK
    else:
        wnd, slack = rcv.win << SCALED_WINDOW_SHIFT, SCALED_WINDOW_SLACK
    return (rcv.ack + wnd) & 0xFFFFFFFF, wnd, slack


class _Record:
    """A finished record dressed as the connection `make_alert` expects."""

    def __init__(self, record, side: _Side) -> None:
        import ipaddress
        self.uid = record.uid
        self.orig_h = ipaddress.ip_address(record.orig_h).packed
        self.resp_h = ipaddress.ip_address(record.resp_h).packed
        self.orig_p, self.resp_p = record.orig_p, record.resp_p
        self.is_orig = side.key == (self.orig_h, self.orig_p)


Detector = OutOfWindow
