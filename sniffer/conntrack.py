"""`sniffer sockets --conntrack`: the kernel's conntrack table, as `conntrack -L` lists it.

The flows the kernel tracks (forwarded and NAT'd ones too, which no socket table holds), in
the namespaces `--netns`/`--all-netns` name, with the sockets filters that mean something for a
flow: -t/-u/-w, -4/-6, --port, --addr, --state (conntrack's TCP states).
"""

from __future__ import annotations

import argparse
import sys

from sniffer.errors import UsageError
from sniffer.kernel import conntrack, netns as nsmod
from sniffer.sockets import families, in_networks, networks, protocols

#: Options of `sniffer sockets` that mean nothing for a conntrack entry.
NOT_WITH = (("listening", "-l"), ("processes", "-p"), ("watch", "--watch"),
            ("hidden", "--hidden"), ("addresses", "--addresses"), ("bind_probe", "--bind-probe"))
#: ss-style names (`--state` of the socket listing) for conntrack's own.
STATE_ALIASES = {"ESTAB": "ESTABLISHED", "FIN_WAIT1": "FIN_WAIT", "FIN_WAIT_1": "FIN_WAIT",
                 "FIN_WAIT2": "FIN_WAIT", "FIN_WAIT_2": "FIN_WAIT"}


class CtFilter:
    """The entry filter the options describe; every address and port of both tuples counts,
    so a NAT'd flow is found by its inside and by its outside address."""

    def __init__(self, args: argparse.Namespace) -> None:
        # -t/-u/-w as for sockets (-w: ICMP); none of them: every protocol, GRE and SCTP too
        chosen = args.tcp or args.udp or args.raw
        self.protos = protocols(args, ("icmp", "icmpv6")) if chosen else set()
        self.families = families(args)
        self.ports = set(args.port)
        known = set(conntrack.TCP_STATES.values())
        self.states = set()
        for s in args.state:
            name = s.upper().replace("-", "_").replace(" ", "")
            name = STATE_ALIASES.get(name, name)
            if name not in known:
                raise UsageError(f"--state: unknown conntrack state {s!r} with --conntrack "
                                 f"(known: {', '.join(sorted(known))})")
            self.states.add(name)
        self.nets = networks(args)

    def __call__(self, e: conntrack.CtEntry) -> bool:
        if self.protos and e.proto not in self.protos:
            return False
        if e.family not in self.families:
            return False
        if self.states and e.state not in self.states:
            return False
        if self.ports and not self.ports.intersection(e.ports()):
            return False
        if self.nets and not in_networks(e.addresses(), self.nets):
            return False
        return True


def run_conntrack(args: argparse.Namespace, spaces: list[nsmod.Netns]) -> int:
    for dest, opt in NOT_WITH:
        if getattr(args, dest, False):
            raise UsageError(f"--conntrack: {opt} does not apply to conntrack entries")
    keep = CtFilter(args)
    rows: list[conntrack.CtEntry] = []
    skipped = []
    for ns in spaces:
        try:
            rows += [e for e in conntrack.read(ns) if keep(e)]
        except UsageError as exc:
            # --all-netns: a namespace that vanished or cannot be entered is skipped and said
            # so; without privilege no namespace can be read, and that is the one error.
            if not args.all_netns or "CAP_NET_ADMIN" in str(exc):
                raise
            skipped.append(f"{ns.label}: skipped: {exc}")
    out = sys.stdout
    if args.json:
        import json
        out.write("".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in rows))
    else:
        from sniffer.output.conntrack import render
        render(rows, out, numeric=args.numeric,
               show_netns=len(spaces) > 1 or args.netns is not None or args.all_netns)
    out.flush()
    if skipped:
        from sniffer.output.safe import escape_controls
        print("sniffer: note: " + escape_controls("; ".join(skipped)), file=sys.stderr)
    return 0
