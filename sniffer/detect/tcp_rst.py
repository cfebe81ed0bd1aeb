"""`rst-injection`: a TCP RST the rest of the connection contradicts.

After Weaver, Sommer and Paxson, "Detecting Forged TCP Reset Packets" (NDSS 2009), whose
detectors ooniprobe re-implemented (RstSeqData, RstSeqChange, ...); SPOOF.md section 2.2. An
injector cannot suppress the genuine packets, so it races them, and the race shows:

* ``data_after_rst`` - the purported sender keeps sending after its RST: data, SYN or FIN
  beyond what it had sent before the RST, or an ACK acknowledging more than it had before. A
  stack that sent RST has no connection left to send from.
* ``rst_seq_change`` - two RSTs from the same side within RACE_WINDOW seconds whose sequence
  numbers differ by more than 2, the later not explained as the reply to the peer's last segment
  (a RST answering a segment carries that segment's ACK as its sequence number).
* ``rst_ttl`` - the RST's TTL departs from that side's profile (the TTL of its earlier packets).

One alert per signal per side of a connection; two signals together make it high.
"""

from __future__ import annotations

from sniffer.detect.tcp_common import (
    ACK, FIN, RST, SYN, PerConn, TTLProfile, flag_str, make_alert, sender, seq_delta)

RACE_WINDOW = 2.0  # seconds between two RSTs of one side that count as a race


class _Side:
    __slots__ = ("ttl", "syn", "high", "ack", "last_ack", "rst", "rst_ttl_bad", "alerted")

    def __init__(self, ttl: int) -> None:
        self.ttl = TTLProfile(ttl)
        self.syn = False  # it sent a SYN
        self.high: int | None = None  # one past the highest sequence number it sent
        self.ack: int | None = None  # the highest ACK it sent
        self.last_ack: int | None = None  # the ACK of its latest segment
        self.rst: tuple | None = None  # its first RST: (ts, seq, ack, ttl, high, ack_before)
        self.rst_ttl_bad: int | None = None  # expected TTL, when its RST's departed
        self.alerted: set = set()


class RSTInjection(PerConn):
    kind = "rst-injection"

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        st = self.sides(conn)
        key = sender(conn, is_orig)
        side, expected = self.profiled(st, key, ttl, _Side)
        n = len(payload)

        if flags & RST:
            peer = st.get(sender(conn, not is_orig))
            first = side.rst
            if (seq == (peer.last_ack if peer is not None else None)
                    and not (side.syn and peer.syn)):
                # The reply to an unacceptable segment during the handshake (RFC 793: in
                # SYN-SENT/SYN-RECEIVED a bad ACK is answered by RST seq=SEG.ACK and the
                # connection stays): not a teardown, so nothing it says can be contradicted.
                return
            if first is None:
                side.rst = (ts, seq, ack, ttl, side.high, side.ack)
                if expected is not None:
                    side.rst_ttl_bad = expected
                    self._alert(ts, conn, is_orig, side, "rst_ttl",
                                f"RST TTL {ttl} departs from its sender's {expected}",
                                {"expected_ttl": expected})
            elif (ts - first[0] <= RACE_WINDOW and abs(seq_delta(seq, first[1])) > 2
                  and not (peer is not None and peer.last_ack == seq)):
                self._alert(ts, conn, is_orig, side, "rst_seq_change",
                            f"two RSTs race with sequence numbers {first[1]} and {seq}",
                            {"second_rst": {"ts": ts, "seq": seq, "ack": ack, "ttl": ttl},
                             "dt_ms": round((ts - first[0]) * 1000, 3)})
            return

        rst = side.rst
        if rst is not None and "data_after_rst" not in side.alerted:
            seg_end = (seq + n + (1 if flags & SYN else 0) + (1 if flags & FIN else 0))
            ref = rst[4] if rst[4] is not None else rst[1]
            why = None
            if (n or flags & (SYN | FIN)) and seq_delta(seg_end, ref) > 0:
                why = f"{flag_str(flags)} segment seq {seq} len {n} after it"
            elif (flags & ACK and rst[5] is not None and seq_delta(ack, rst[5]) > 0):
                why = f"ACK {ack} beyond its pre-RST ACK {rst[5]} after it"
            if why is not None:
                self._alert(ts, conn, is_orig, side, "data_after_rst",
                            f"RST contradicted: its sender keeps sending ({why})",
                            {"after": {"ts": ts, "flags": flag_str(flags), "seq": seq,
                                       "ack": ack, "len": n, "ttl": ttl},
                             "dt_ms": round((ts - rst[0]) * 1000, 3)})

        if flags & SYN:
            side.syn = True
        end = (seq + n + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
        if side.high is None or seq_delta(end, side.high) > 0:
            side.high = end
        if flags & ACK:
            side.last_ack = ack
            if side.ack is None or seq_delta(ack, side.ack) > 0:
                side.ack = ack

    def _alert(self, ts, conn, is_orig, side, detector, summary, extra) -> None:
        if detector in side.alerted:
            return
        side.alerted.add(detector)
        rst = side.rst
        signals = {detector}
        if side.rst_ttl_bad is not None:
            signals.add("rst_ttl")
        evidence = {
            "detector": detector,
            "signals": sorted(signals),
            "rst": {"ts": rst[0], "seq": rst[1], "ack": rst[2], "ttl": rst[3]},
            "sender_high_seq_before": rst[4],
            "sender_ack_before": rst[5],
            "sender_ttl_profile": side.ttl.ref if side.ttl.established() else None,
        }
        evidence.update(extra)
        severity = "high" if len(signals) > 1 or detector == "rst_seq_change" else "medium"
        self.emit(make_alert(ts, self.kind, severity, summary, evidence, conn, is_orig),
                  detector)


Detector = RSTInjection
