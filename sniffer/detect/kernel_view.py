"""Connections the kernel cannot account for: `unattributed-connection`, `hidden-listener`,
`ownerless-socket`, `untracked-flow`, and sockets one kernel view hides from another:
`hidden-socket`.

These turn the cross-reference's verdicts (sniffer/correlate.py, docs/live.md) into alerts, so
they reach `--alerts` with the wire's evidence beside the kernel's. They exist only where a
kernel view does: `sniffer live`, or `sniffer read` of a `live -w` recording with its snapshots.
Without one the correlator gives no verdict and nothing here fires.

* `hidden-listener` (high): a local port answered a SYN with a SYN-ACK and no listening or
  connected socket was ever seen for it: a raw-socket or userspace stack, a rootkit hiding its
  listener, or a forged SYN-ACK claiming this host's address.
* `unattributed-connection` (medium): a local end sent packets and no socket accounted for it
  (unless those packets came from the wire: `local-source-from-wire` has reported the forgery,
  and gets the verdict in its evidence instead).
* `ownerless-socket` (low): the socket was seen, with traffic in both directions, but no
  process holding it (a descriptor passed and closed, or a process /proc would not show), and
  a second look agreed (sniffer.kernel.monitor confirms before it reports `no-process`).
* `untracked-flow` (medium): traffic between two other hosts (a router's forwarded traffic)
  that conntrack never tracked while it tracked others of that family (sniffer.ctview): a
  spoofed or injected packet, or one conntrack found INVALID. `kernel_evidence` explains
  nf_conntrack_tcp_loose. Nothing is raised for `forwarded`.
* `hidden-socket` (high): a socket that sock_diag shows and /proc/net does not, or the other
  way round, or a port that refuses bind() while neither lists a socket on it
  (sniffer.kernel.hidden; `live` runs the check every --hidden-interval seconds).
"""

from __future__ import annotations

from sniffer.detect import Alert
from sniffer.detect.engine import raw_addr
from sniffer.flows.community_id import community_id

_PROTO_NUMBERS = {"tcp": 6, "udp": 17}

_SYN_ACK_EVIDENCE = "a SYN-ACK came from a local port"


class Detector:
    kind = "unattributed-connection"  # also hidden-listener, ownerless-socket, untracked-flow

    def __init__(self, engine) -> None:
        self.engine = engine

    def kernel(self, ts: float, ev: dict) -> None:
        if ev.get("kind") != "hidden":
            return
        for h in ev.get("sockets", ()):
            remote = h.get("remote_port") or None
            evidence = {"netns": h.get("netns"), "state": h.get("state"), "inode": h.get("inode"),
                        "seen_in": h.get("seen_in"), "missing_from": h.get("missing_from")}
            cid = None
            if remote and h.get("proto") in _PROTO_NUMBERS:
                cid = community_id(raw_addr(h["local_addr"]), raw_addr(h["remote_addr"]),
                                   _PROTO_NUMBERS[h["proto"]], h["local_port"], remote)
            self.engine.emit(Alert(ts, "hidden-socket", "high", h.get("summary", ""), evidence,
                                   community_id=cid, proto=h.get("proto"), src=h.get("local_addr"),
                                   sport=h.get("local_port"),
                                   dst=h.get("remote_addr") if remote else None, dport=remote),
                             key=(h.get("netns"), h.get("proto"), h.get("local_addr"),
                                  h.get("local_port"), h.get("remote_addr"), h.get("remote_port"),
                                  tuple(h.get("missing_from") or ())))

    def finished(self, r) -> None:
        verdict = getattr(r, "verdict", None)
        if verdict == "unattributed":
            if any(e.startswith(_SYN_ACK_EVIDENCE) for e in r.evidence):
                kind, severity = "hidden-listener", "high"
                summary = (f"{r.resp_h}:{r.resp_p} answered a SYN with a SYN-ACK, but no "
                           f"socket listens there")
            else:
                forged = [a for a in self.engine.by_uid.get(r.uid, ())
                          if a.kind == "local-source-from-wire"]
                if forged:  # already reported as forged: say why no socket is behind it
                    forged[0].evidence["verdict"] = verdict
                    return
                kind, severity = "unattributed-connection", "medium"
                summary = "traffic from a local end that no socket accounts for"
        elif verdict == "unknown" and r.orig_pkts and r.resp_pkts and any(
                "seen, but not its owner" in e for e in r.evidence):
            kind, severity = "ownerless-socket", "low"
            summary = "a socket carried traffic both ways, but no process held it"
        elif verdict == "not-tracked":
            kind, severity = "untracked-flow", "medium"
            summary = ("traffic between other hosts that this host's conntrack never tracked: "
                       "forged, injected, or dropped as INVALID")
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
