"""Connections the kernel cannot account for: `unattributed-connection`, `hidden-listener`,
`ownerless-socket`.

These turn the cross-reference's verdicts (sniffer/correlate.py, docs/live.md) into alerts, so
they reach `--alerts` with the wire's evidence beside the kernel's. They exist only where a
kernel view does: `sniffer live`, or `sniffer read` of a `live -w` recording with its snapshots.
Without one the correlator gives no verdict and nothing here fires.

* `hidden-listener` (high): a local port answered a SYN with a SYN-ACK and no listening or
  connected socket was ever seen for it: a raw-socket or userspace stack, a rootkit hiding its
  listener, or a forged SYN-ACK claiming this host's address.
* `unattributed-connection` (medium): a local end sent packets and no socket accounted for it.
* `ownerless-socket` (low): the socket was seen, with traffic in both directions, but no
  process holding it (a descriptor passed and closed, or a process /proc would not show).
"""

from __future__ import annotations

from sniffer.detect import Alert

_SYN_ACK_EVIDENCE = "a SYN-ACK came from a local port"


class Detector:
    kind = "unattributed-connection"  # also hidden-listener, ownerless-socket

    def __init__(self, engine) -> None:
        self.engine = engine

    def finished(self, r) -> None:
        verdict = getattr(r, "verdict", None)
        if verdict == "unattributed":
            if any(e.startswith(_SYN_ACK_EVIDENCE) for e in r.evidence):
                kind, severity = "hidden-listener", "high"
                summary = (f"{r.resp_h}:{r.resp_p} answered a SYN with a SYN-ACK, but no "
                           f"socket listens there")
            else:
                kind, severity = "unattributed-connection", "medium"
                summary = "traffic from a local end that no socket accounts for"
        elif verdict == "unknown" and r.orig_pkts and r.resp_pkts and any(
                "seen, but not its owner" in e for e in r.evidence):
            kind, severity = "ownerless-socket", "low"
            summary = "a socket carried traffic both ways, but no process held it"
        else:
            return
        evidence = {"verdict": verdict, "kernel_evidence": list(r.evidence),
                    "history": r.history, "conn_state": r.conn_state,
                    "orig_pkts": r.orig_pkts, "resp_pkts": r.resp_pkts,
                    "orig_bytes": r.orig_bytes, "resp_bytes": r.resp_bytes}
        self.engine.emit(Alert(r.ts, kind, severity, summary, evidence, uid=r.uid,
                               community_id=r.community_id, proto=r.proto, src=r.orig_h,
                               sport=r.orig_p, dst=r.resp_h, dport=r.resp_p),
                         key=(r.uid,))
