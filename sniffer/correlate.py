"""Flows × kernel: whose connection is this, and if nobody's, why not.

The kernel's view arrives as events (snapshots of the socket tables, sockets destroyed, on-demand
look-ups, the namespace's addresses), live from `sniffer.kernel` or, offline, from the custom
blocks of a recording. Each finished connection record is then given a verdict with evidence:

* attributed   a socket and its owner accounted for the traffic
* kernel       the kernel itself holds it (TIME-WAIT, orphaned, a kernel socket)
* refused      no socket, and the local side answered with a RST or an ICMP unreachable
* unattributed a local endpoint, traffic flowed, and no socket accounted for it
* forwarded    no local socket, and conntrack tracked it: forwarded (or a NAT'd flow's
               translated half), see sniffer.ctview
* not-tracked  neither end local, conntrack active, and no entry ever matched it
* not-local    neither endpoint is one of this namespace's addresses (forwarded, bridged)
* unknown      too little evidence to say

The view is kept in plain dicts keyed like the wire sees connections (protocol, addresses,
ports), so matching a record is a few lookups.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sniffer.ctview import ConntrackView
from sniffer.flows.conn import Conn

# The paths by which the kernel named a socket's owner, as the evidence says them (docs/live.md).
VIA = {"snapshot": "socket dump", "look-up": "look-up at its first packet",
       "destroy": "destroy event", "connect": "socket trace", "accept": "socket trace",
       "route": "route trace"}
KERNEL_OWNERS = frozenset({"time-wait", "orphan", "unaccepted", "kernel"})
WILDCARDS = ("0.0.0.0", "::")


def keep_seconds(settings, interval: float) -> float:
    """How long the view must remember a socket after last seeing it: a connection's record
    is judged when it ends, up to its longest inactivity timeout (plus the close delays) after
    its last packet, and its socket may have been seen last one snapshot `interval` before that
    packet. Anything older can no longer match a record, and is forgotten."""
    s = settings
    return (max(s.tcp_inactivity_timeout, s.long_inactivity_timeout, s.udp_inactivity_timeout,
                s.icmp_inactivity_timeout, s.unknown_ip_inactivity_timeout)
            + s.tcp_close_delay + s.tcp_connection_linger + interval + 60.0)


@dataclass(slots=True)
class Seen:
    """One socket as the kernel showed it, and when."""

    first: float
    last: float
    record: dict  # the `sniffer sockets --json` record
    via: str = "snapshot"  # the path that showed `record` (VIA)

    @property
    def owner(self) -> str:
        return self.record.get("owner", "unknown")


class KernelView:
    """Everything the kernel said during the run (bounded by what is still relevant)."""

    def __init__(self) -> None:
        self.local: set[str] = set()
        self.local_nets: list = []
        self.connected: dict[tuple, Seen] = {}  # (proto, laddr, lport, raddr, rport)
        self.listening: dict[tuple, Seen] = {}  # (proto, laddr, lport); laddr may be a wildcard
        self.destroyed: dict[tuple, float] = {}  # connected key -> time of the destroy event
        # socket traces without a local address (IPv6 TCP, datagram senders):
        # (proto, local port, remote address or None, remote port, role or "any")
        self.traced_ports: dict[tuple, Seen] = {}
        self.snapshots = 0
        self.next_expiry = 0.0  # network time of the next `expire` pass
        self.conntrack = ConntrackView()  # forwarded flows (sniffer.ctview)

    # -- events ---------------------------------------------------------------------------------
    def event(self, ts: float, ev: dict) -> None:
        """One kernel event: {"kind": "snapshot"|"sockets"|"destroy"|"addresses", ...}."""
        kind = ev.get("kind")
        if kind == "addresses":
            self.local = set(ev.get("addresses", ()))
            self.local_nets = [ipaddress.ip_network(p, strict=False)
                               for p in ev.get("local_prefixes", ())]
        elif kind in ("snapshot", "sockets"):
            if kind == "snapshot":
                self.snapshots += 1
            via = "snapshot" if kind == "snapshot" else "look-up"
            for rec in ev.get("sockets", ()):
                self.add(ts, rec, via=rec.get("via") or via)
        elif kind == "destroy":
            rec = ev.get("socket") or {}
            key = _key(rec)
            if key is not None:
                self.destroyed[key] = ts
                self.add(ts, rec, destroyed=True, via="destroy")
        elif kind == "conntrack":
            self.conntrack.event(ts, ev)

    def add(self, ts: float, rec: dict, destroyed: bool = False, via: str = "snapshot") -> None:
        key = _key(rec)
        if key is None:
            return
        if rec.get("local_addr") is None:
            self.traced_ports[(rec["proto"], rec["local_port"], rec.get("remote_addr"),
                               rec["remote_port"], rec.get("role", "originator"))] = \
                Seen(ts, ts, rec, via)
            return
        table = self.listening if rec["state"] in ("LISTEN", "UNCONN") else self.connected
        if table is self.listening:
            key = key[:3]
        seen = table.get(key)
        if seen is None:
            table[key] = Seen(ts, ts, rec, via)
        else:
            seen.last = max(seen.last, ts)
            if _richer(rec, seen.record, destroyed):
                seen.record, seen.via = _joined(rec, seen.record), via
            else:
                seen.record = _joined(seen.record, rec)

    def forget_before(self, ts: float) -> None:
        """Drop sockets last seen before `ts` (bounded memory in long live runs: `live` calls
        it through `expire`, with `ts` = now - `keep_seconds`)."""
        for table in (self.connected, self.listening, self.traced_ports):
            for key in [k for k, s in table.items() if s.last < ts]:
                del table[key]
        for key in [k for k, t in self.destroyed.items() if t < ts]:
            del self.destroyed[key]
        self.conntrack.forget_before(ts)

    def expire(self, now: float, keep: float) -> None:
        """`live`, at each snapshot: forget what was last seen more than `keep` seconds before
        `now` (at most once a minute of network time: the scan costs a pass over the view)."""
        if now >= self.next_expiry:
            self.next_expiry = now + 60.0
            self.forget_before(now - keep)

    def size(self) -> int:
        """Sockets held (connected, listening, traced), and destroy events remembered."""
        return (len(self.connected) + len(self.listening) + len(self.traced_ports)
                + len(self.destroyed) + self.conntrack.size())

    # -- verdicts -------------------------------------------------------------------------------
    def is_local(self, addr: str) -> bool:
        if addr in self.local:
            return True
        if self.local_nets:
            ip = ipaddress.ip_address(addr)
            return any(ip in n for n in self.local_nets if n.version == ip.version)
        return False

    def judge(self, c: Conn) -> None:
        """Set `c.verdict`, `c.evidence` and, where known, the owner fields."""
        if c.proto not in ("tcp", "udp"):
            ends = [h for h in (c.orig_h, c.resp_h) if self.is_local(h)]
            c.verdict = "unknown" if ends else "not-local"
            c.evidence = (["not a TCP or UDP connection: no socket to match"] if ends else
                          ["neither endpoint is a local address"])
            return
        local_orig, local_resp = self.is_local(c.orig_h), self.is_local(c.resp_h)
        if not (local_orig or local_resp):
            c.verdict, c.evidence = "not-local", ["neither endpoint is a local address"]
            self.conntrack.judge_not_local(c)  # forwarded, not-tracked, or left so
            return
        evidence: list[str] = []
        sides = []
        if local_orig:
            sides.append((c.orig_h, c.orig_p, c.resp_h, c.resp_p, "originator"))
        if local_resp:
            sides.append((c.resp_h, c.resp_p, c.orig_h, c.orig_p, "responder"))
        for laddr, lport, raddr, rport, role in sides:
            seen = self._match(c.proto, laddr, lport, raddr, rport, role)
            if seen is None:
                continue
            rec = seen.record
            if rec.get("processes") and rec.get("inode") == 0:
                # Known from the socket trace: the programs, if not the socket's file.
                c.verdict = "attributed"
                c.processes = rec["processes"]
                c.netns, c.user = rec.get("netns"), rec.get("user")
                c.evidence = [_traced(rec, role)]
                return
            if rec.get("processes"):
                c.verdict = "attributed"
                c.processes = rec["processes"]
                evidence.append(f"{_describe(rec, role)} ({VIA.get(seen.via, seen.via)})")
            elif rec.get("owner") in KERNEL_OWNERS:
                c.verdict = "kernel"
                evidence.append(f"the {role}'s socket is held by the kernel ({rec['owner']})")
            elif rec.get("owner") == "unknown":
                # Another user's socket, and no right to read that user's processes (not
                # root, or `live --user` without --keep-caps): not evidence of anything.
                c.verdict = "unknown"
                evidence.append(f"the {role}'s socket was seen, but its owner could not be read "
                                f"(another user's process, not readable without privileges)")
            else:
                c.verdict = "unknown"
                evidence.append(f"the {role}'s socket was seen, but not its owner")
            c.user, c.netns, c.container = rec.get("user"), rec.get("netns"), rec.get("container")
            c.evidence = evidence
            return
        if self.conntrack.judge_unowned(c):  # a NAT'd flow's translated half: forwarded
            return
        refused = self._refused(c, local_orig, local_resp)
        if refused:
            c.verdict, c.evidence = "refused", [refused]
            return
        if self.snapshots == 0:
            c.verdict, c.evidence = "unknown", ["no kernel snapshot was taken yet"]
            return
        sent = [role for (_, _, _, _, role) in sides if _sent(c, role)]
        if sent:
            c.verdict = "unattributed"
            c.evidence = [f"the local {role} sent packets but no socket was ever seen for it"
                          for role in sent]
            if local_resp and "h" in c.history:
                c.evidence.append("a SYN-ACK came from a local port with no socket behind it")
        else:
            c.verdict = "unknown"
            c.evidence = ["only the remote side sent packets, and the kernel neither accepted "
                          "nor refused them"]

    def _match(self, proto: str, laddr: str, lport: int, raddr: str, rport: int,
               role: str) -> Seen | None:
        seen = self.connected.get((proto, laddr, lport, raddr, rport))
        if seen is not None and seen.record.get("processes"):
            return seen
        # A trace made in the process that connected or accepted names it better than a
        # socket seen without one (closed since, held by the kernel, or its descriptor passed
        # on). IPv4 TCP traces are in `connected` already; IPv6 ones are known by their ports,
        # datagram senders by their ports and remote address, whichever side they are.
        traced = self.traced_ports
        found = (traced.get((proto, lport, None, rport, role))
                 or traced.get((proto, lport, raddr, rport, "any")))
        if found is not None:
            return found
        if seen is not None:
            return seen
        # An inbound attempt is the listener's (TCP) or the bound socket's (UDP); so is a
        # UDP "connection" a bound socket answers.
        for addr in (laddr,) + WILDCARDS:
            seen = self.listening.get((proto, addr, lport))
            if seen is not None and (role == "responder" or proto == "udp"):
                return seen
        return None

    @staticmethod
    def _refused(c: Conn, local_orig: bool, local_resp: bool) -> str | None:
        if c.proto == "tcp" and local_resp and "r" in c.history and "d" not in c.history \
                and "h" not in c.history:
            return "the local responder answered the connection attempt with a RST"
        if c.proto == "tcp" and local_orig and "R" in c.history and "D" not in c.history \
                and "S" not in c.history:
            return "the local side answered with a RST"
        return None


def _richer(new: dict, old: dict, destroyed: bool) -> bool:
    """Keep the richest record of a socket: one that names its owner, and among those one
    with its descriptors (a dump's) over one from the socket trace (no descriptor)."""
    if not new.get("processes"):
        return not old.get("processes") and not destroyed
    return not old.get("processes") or new.get("inode") != 0 or old.get("inode") == 0


def _joined(rec: dict, other: dict) -> dict:
    """`rec`, with the processes of `other` it lacks added when one of them comes from the
    socket trace: a descriptor passed on, or a pre-fork worker, used the socket between the
    looks (a copy: the records given are also the recording's)."""
    mine, theirs = rec.get("processes"), other.get("processes")
    if not mine or not theirs or (rec.get("inode") != 0 and other.get("inode") != 0):
        return rec
    pids = {p.get("pid") for p in mine}
    extra = [p for p in theirs if p.get("pid") not in pids]
    return {**rec, "processes": mine + extra} if extra else rec


def _sent(c: Conn, role: str) -> bool:
    return (c.orig_pkts if role == "originator" else c.resp_pkts) > 0


def _key(rec: dict) -> tuple | None:
    try:
        return (rec["proto"], rec["local_addr"], rec["local_port"], rec["remote_addr"],
                rec["remote_port"])
    except KeyError:
        return None


def _traced(rec: dict, role: str) -> str:
    """Evidence from the socket or route trace (sniffer.kernel.trace), saying which named it."""
    procs, via = rec["processes"], rec.get("via", "connect")
    if via == "route":
        text = f"the {role}'s datagrams were sent by {_who(procs)}"
    elif via == "connect":
        text = f"the {role}'s connect() was made by {_who(procs[:1])}"
        if procs[1:]:
            text += f"; then used by {_who(procs[1:])}"
    else:
        text = f"the {role}'s socket was accepted and used by {_who(procs)}"
    return f"{text} ({VIA.get(via, 'socket trace')})"


def _who(processes: list[dict]) -> str:
    return ", ".join(f"{p['name']} (pid {p['pid']})" for p in processes)


def _describe(rec: dict, role: str) -> str:
    who = _who(rec["processes"])
    state = rec.get("state", "?")
    if state in ("LISTEN", "UNCONN"):
        return f"the {role}'s port is {('listened on' if state == 'LISTEN' else 'bound')} by {who}"
    return f"the {role}'s socket ({state}) is held by {who}"
