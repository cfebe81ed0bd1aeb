"""`ttl-anomaly`: within one direction of one TCP connection, a TTL that departs from the rest.

An off-path or on-path injector can forge every header field but not the number of hops its
packet travels (Jin/Wang/Shin, Hop-Count Filtering, CCS 2003; SPOOF.md section 2.1). Inside one
direction of one connection the TTL should be constant (+-1 on a route flap), so a departure
there marks a packet that came from elsewhere: forged SYN-ACKs, RSTs and FINs are the usual ones.
NAT and asymmetric routing give different TTLs *between* hosts or directions, never within one
direction of a flow, which is why only that comparison is made.
"""

from __future__ import annotations

from sniffer.detect.tcp_common import (
    FIN, RST, SYN, PerConn, TTLProfile, flag_str, make_alert, sender)


class TTLAnomaly(PerConn):
    kind = "ttl-anomaly"

    def tcp(self, ts, conn, is_orig, flags, seq, ack, win, payload, ttl) -> None:
        st = self.sides(conn)
        side = sender(conn, is_orig)
        prof = st.get(side)
        if prof is None:
            st[side] = TTLProfile(ttl)
            return
        if prof is True:  # this direction already alerted once
            return
        expected = prof.check(ttl)
        if expected is None:
            return
        st[side] = True
        state_changing = bool(flags & (SYN | RST | FIN))
        what = flag_str(flags) + (f" +{len(payload)}B" if payload else "")
        self.emit(make_alert(
            ts, self.kind, "medium" if state_changing else "low",
            f"TTL {ttl} departs from this direction's {expected} (segment {what})",
            {"ttl": ttl, "expected_ttl": expected, "tolerance": 2, "flags": flag_str(flags),
             "seq": seq, "ack": ack, "payload_len": len(payload)},
            conn, is_orig), "ttl")


Detector = TTLAnomaly
