"""The conntrack half of the kernel view: was a connection of other hosts forwarded by this
namespace's kernel, and is a NAT'd connection's other half the one on the wire here?

Fed by `conntrack` events (sniffer.kernel.conntrack.Watch, live or replayed from a recording),
consulted by KernelView.judge for connections no socket accounts for:

* forwarded    conntrack tracked the flow (an entry whose original or reply tuple is the
               record's): the kernel accepted and forwarded it. With NAT the record names the
               other half (`nat.*`) and both halves carry the entry's id (`conntrack_id`).
* not-tracked  conntrack is active for the record's family here, its events were read without
               a loss over the record's time, and no entry ever matched: the kernel never
               accepted the flow (a forged or injected packet, or one it found INVALID).

An entry is kept until its DESTROY event plus the view's keep time (a record is judged up to
its inactivity timeout after its last packet); at most MAX_ENTRIES are held, the oldest
dropped first, and a record from before a drop is never called not-tracked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sniffer.flows.conn import flow_key

#: Seconds of slack between packet times and event times (events are read every 50 ms, later
#: under load; an entry's first sight is its NEW event, after the packet that made it).
MARGIN = 5.0
#: Entries held at most (a busy router's table): about 300 bytes each.
MAX_ENTRIES = 262144
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
#: Status bits that say nothing about the flow (every entry in the table is CONFIRMED; DYING
#: and *_NAT_DONE come with its end or its translation, said otherwise).
_QUIET_STATUS = frozenset({"CONFIRMED", "DYING", "SRC_NAT_DONE", "DST_NAT_DONE"})

LOOSE_NOTE = ("with net.netfilter.nf_conntrack_tcp_loose=1 (the default) a mid-stream TCP "
              "segment creates an entry, so an injected segment can look forwarded; with 0 "
              "only a SYN does, and such a segment is INVALID and never tracked")


@dataclass(slots=True)
class Tracked:
    """One conntrack entry as the events showed it."""

    id: int | None
    proto: str
    orig: tuple  # (src, sport, dst, dport)
    reply: tuple
    nat: str | None
    state: str | None  # TCP state as first seen ("when created", or "in a dump": `how`)
    status: list  # status bits, as last reported
    how: str
    first: float
    destroyed: float | None = None
    end_state: str | None = None  # TCP state in the DESTROY event

    @property
    def last(self) -> float:
        return self.destroyed if self.destroyed is not None else float("inf")


def _tup(t: dict) -> tuple:
    return (t.get("src"), t.get("sport"), t.get("dst"), t.get("dport"))


class ConntrackView:
    """What conntrack showed during the run, by flow."""

    def __init__(self) -> None:
        self.entries: dict[tuple, Tracked] = {}  # (proto, orig, reply) -> entry, oldest first
        self.index: dict[tuple, Tracked] = {}  # (proto, flow of either tuple) -> newest entry
        self.families: set[int] = set()  # families conntrack tracked something in
        self.since: float | None = None  # time of the first dump: watched from then on
        self.events_on = False  # the kernel sends events (nf_conntrack_events != 0)
        self.gaps: list[float] = []  # times events were lost (the last 64)
        self.dropped_until = float("-inf")  # newest time of an entry dropped to bound memory
        # Flows whose first packet was sent to another host's MAC (promiscuous capture):
        # (proto, flow) -> time. The kernel never handled them; conntrack cannot speak of them.
        self.overheard: dict[tuple, float] = {}

    # -- events ---------------------------------------------------------------------------------
    def event(self, ts: float, ev: dict) -> None:
        what = ev.get("event")
        if what == "lost":
            self.gaps = self.gaps[-63:] + [ts]
            return
        if what == "overheard":
            proto, a, ap, b, bp = ev["flow"]
            self.overheard[(proto, flow_key(a, ap, b, bp))] = ts
            if len(self.overheard) > MAX_ENTRIES:
                for key in list(self.overheard)[:len(self.overheard) // 8]:
                    del self.overheard[key]
            return
        if what == "dump":
            if self.since is None:
                self.since = ts
            self.events_on = bool(ev.get("events", True))
        for e in ev.get("entries", ()):
            self._add(ts, e, what)

    def _add(self, ts: float, e: dict, what: str | None) -> None:
        proto = e.get("proto")
        if proto not in PROTO_NUMBERS:
            return  # ICMP and the rest: not matched to records (their tuples differ)
        orig, reply = _tup(e["orig"]), _tup(e["reply"])
        if not all(type(p) is int for p in (orig[1], orig[3], reply[1], reply[3])):
            return  # (a damaged recording: TCP and UDP entries have ports)
        self.families.add(e.get("family"))
        key = (proto, orig, reply)
        t = self.entries.get(key)
        if t is None or (t.destroyed is not None and what != "destroy"):
            if t is not None:  # the same tuples again, a new flow: the old one goes
                del self.entries[key]
            t = Tracked(e.get("id"), proto, orig, reply, e.get("nat"), None, [], "", ts)
            self.entries[key] = t
            self.index[(proto, flow_key(*orig))] = t
            self.index[(proto, flow_key(*reply))] = t
            if len(self.entries) > MAX_ENTRIES:
                self._drop(len(self.entries) // 8)
        if what == "destroy":
            t.destroyed, t.end_state = ts, e.get("state")
        elif t.state is None and e.get("state") is not None:
            t.state = e["state"]
            t.how = "when created" if what == "new" else "in a dump"
        if e.get("status"):
            t.status = list(e["status"])
        if t.id is None:
            t.id = e.get("id")

    def _drop(self, n: int) -> None:
        for key in list(self.entries)[:n]:
            t = self.entries.pop(key)
            self.dropped_until = max(self.dropped_until,
                                     t.destroyed if t.destroyed is not None else t.first)
            self._unindex(t)

    def _unindex(self, t: Tracked) -> None:
        for flow in (flow_key(*t.orig), flow_key(*t.reply)):
            if self.index.get((t.proto, flow)) is t:
                del self.index[(t.proto, flow)]

    def forget_before(self, ts: float) -> None:
        """Drop entries destroyed before `ts` (KernelView.forget_before passes its horizon)."""
        for key in [k for k, t in self.entries.items()
                    if t.destroyed is not None and t.destroyed < ts]:
            self._unindex(self.entries.pop(key))
        for key in [k for k, t in self.overheard.items() if t < ts]:
            del self.overheard[key]

    def size(self) -> int:
        return len(self.entries) + len(self.overheard)

    # -- verdicts -------------------------------------------------------------------------------
    def judge_not_local(self, c) -> None:
        """`c` (TCP or UDP) has no local end: `forwarded` or `not-tracked` if conntrack says
        so; otherwise it stays as it is (`not-local`)."""
        t = self.match(c)
        if t is not None:
            self.forwarded(c, t)
            return
        if (c.proto, flow_key(c.orig_h, c.orig_p, c.resp_h, c.resp_p)) in self.overheard:
            c.evidence.append("its first packet was addressed to another host's MAC "
                              "(a promiscuous capture): this host's kernel never handled it, "
                              "so conntrack cannot say anything of it")
            return
        why = self.untracked(c)
        if why is not None:
            c.verdict, c.evidence = "not-tracked", [why, LOOSE_NOTE]

    def judge_unowned(self, c) -> bool:
        """`c` has a local end and no socket accounts for it: if it is the translated half of
        a NAT'd flow (masquerade's outside half, a port forward's outside half), it is
        `forwarded` (True). A flow without translation is this host's own: not decided here."""
        t = self.match(c)
        if t is None or not t.nat:
            return False
        self.forwarded(c, t)
        return True

    def active(self, family: int) -> bool:
        return family in self.families

    def match(self, c) -> Tracked | None:
        """The entry whose original or reply tuple is the record's flow, alive during it."""
        t = self.index.get((c.proto, flow_key(c.orig_h, c.orig_p, c.resp_h, c.resp_p)))
        if t is None:
            return None
        end = c.ts + (c.duration or 0.0)
        if t.first > end + MARGIN or t.last < c.ts - MARGIN:
            return None  # the same tuple at another time: another flow
        return t

    def forwarded(self, c, t: Tracked) -> None:
        """Verdict `forwarded` for `c`, matched to `t`; with NAT, the other half's tuple in
        `c.nat_*`, oriented as `c` is (its originator's side first)."""
        # Is `c` the original tuple's side (SNAT: the inside; DNAT: the outside)?
        orig_side = {t.orig[0], t.orig[2]} == {c.orig_h, c.resp_h} and \
            {t.orig[1], t.orig[3]} == {c.orig_p, c.resp_p}
        c.verdict = "forwarded"
        c.conntrack_id = t.id
        ev = [f"conntrack tracked this flow ({self.describe(t)}): the kernel accepted and "
              f"forwarded it"]
        if t.nat:
            # The other half as the wire beyond the translation shows it.
            if orig_side:
                other = (t.reply[2], t.reply[3], t.reply[0], t.reply[1])  # reply reversed
                same_dir = (c.orig_h, c.orig_p) == (t.orig[0], t.orig[1])
            else:
                other = t.orig
                same_dir = (c.orig_h, c.orig_p) == (t.reply[2], t.reply[3])
            if not same_dir:
                other = (other[2], other[3], other[0], other[1])
            c.nat_orig_h, c.nat_orig_p, c.nat_resp_h, c.nat_resp_p = other
            arrow = f"{_ep(other[0], other[1])} -> {_ep(other[2], other[3])}"
            ev.append(f"translated ({t.nat}): the {'outside' if orig_side else 'inside'} half of "
                      f"this connection is {arrow} (nat.*)" if t.nat == "SNAT" else
                      f"translated ({t.nat}): its other half is {arrow} (nat.*)")
        c.evidence = ev

    def untracked(self, c) -> str | None:
        """Why `c` may be called not-tracked (None: it may not): conntrack watched this family
        with its events over the whole of `c`, and nothing matched."""
        family = 6 if ":" in c.orig_h else 4
        if self.since is None or not self.events_on or not self.active(family):
            return None
        end = c.ts + (c.duration or 0.0)
        if c.ts < self.since or c.ts <= self.dropped_until + MARGIN:
            return None
        if any(c.ts - MARGIN <= g <= end + MARGIN for g in self.gaps):
            return None
        return (f"conntrack is active here for IPv{family} and no entry ever matched this "
                f"flow: the kernel never accepted it (a forged or injected packet, or one "
                f"conntrack found INVALID)")

    @staticmethod
    def describe(t: Tracked) -> str:
        parts = [t.proto]
        if t.id is not None:
            parts.append(f"entry {t.id}")
        if t.state:
            parts.append(f"state {t.state} {t.how}")
        status = [s for s in t.status if s not in _QUIET_STATUS]
        if status:
            parts.append("status " + ",".join(status))
        if t.destroyed is not None:
            parts.append(f"destroyed since{' in state ' + t.end_state if t.end_state else ''}")
        return ", ".join(parts)


def _ep(addr: str, port) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
