"""`sniffer sockets`: the kernel's socket tables, attributed to processes, in every namespace.

netstat/ss habits: -t/-u/-w pick protocols, -l/-a pick states, -n keeps ports numeric, -p adds
processes, -4/-6 pick families. Host names are never resolved (no DNS from a security tool).
"""

from __future__ import annotations

import argparse
import os
import sys

from sniffer.errors import UsageError
from sniffer.kernel import netns as nsmod
from sniffer.kernel.procs import Owners
from sniffer.kernel.view import KernelSocket, Raw, attribute, read_namespace

LISTENING = frozenset({"LISTEN", "UNCONN"})
STATE_ALIASES = {"ESTAB": "ESTABLISHED", "SYN_SENT": "SYN-SENT", "SYN_RECV": "SYN-RECV",
                 "FIN_WAIT1": "FIN-WAIT-1", "FIN_WAIT2": "FIN-WAIT-2", "TIME_WAIT": "TIME-WAIT",
                 "CLOSE_WAIT": "CLOSE-WAIT", "LAST_ACK": "LAST-ACK", "UNCONNECTED": "UNCONN"}
KNOWN_STATES = frozenset({"ESTABLISHED", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
                          "TIME-WAIT", "CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
                          "UNCONN"})


class Filter:
    """The row filter the options describe."""

    def __init__(self, args: argparse.Namespace) -> None:
        states = set()
        for s in args.state:
            name = STATE_ALIASES.get(s.upper().replace(" ", ""), s.upper())
            if name not in KNOWN_STATES:
                raise UsageError(f"--state: unknown state {s!r} (known: {', '.join(sorted(KNOWN_STATES))})")
            states.add(name)
        self.states = states
        self.listening, self.all = args.listening, args.all or bool(states) or args.watch
        self.ports = set(args.port)
        self.nets = networks(args)

    def __call__(self, s: KernelSocket) -> bool:
        if self.states:
            if s.state not in self.states:
                return False
        elif self.listening:
            if s.state not in LISTENING:
                return False
        elif not self.all and s.state in LISTENING:
            return False
        if self.ports and s.local_port not in self.ports and s.remote_port not in self.ports:
            return False
        if self.nets and not in_networks((s.local_addr, s.remote_addr), self.nets):
            return False
        return True


def networks(args: argparse.Namespace) -> list:
    """The networks of --addr (an address is a /32 or /128)."""
    if not args.addr:
        return []
    import ipaddress  # only when asked: `sockets` starts fast
    nets = []
    for a in args.addr:
        try:
            nets.append(ipaddress.ip_network(a, strict=False))
        except ValueError:
            raise UsageError(f"--addr: not an address or network: {a!r}") from None
    return nets


def in_networks(addrs, nets: list) -> bool:
    """Whether any of the textual addresses `addrs` is in one of `nets`."""
    import ipaddress
    ips = [ipaddress.ip_address(a) for a in addrs]
    return any(a in n for a in ips for n in nets if a.version == n.version)


def families(args: argparse.Namespace) -> set[int]:
    """The IP versions -4/-6 ask for (both, or neither: every one)."""
    return {4} if args.ipv4 and not args.ipv6 else {6} if args.ipv6 and not args.ipv4 else {4, 6}


def protocols(args: argparse.Namespace, raw: tuple[str, ...] = ("raw", "icmp")) -> set[str]:
    """The protocols -t/-u/-w ask for (-w: `raw`); none of them: all of these."""
    chosen = set()
    if args.tcp:
        chosen.add("tcp")
    if args.udp:
        chosen |= {"udp", "udplite"}
    if args.raw:
        chosen.update(raw)
    return chosen or {"tcp", "udp", "udplite", *raw}


def namespaces(args: argparse.Namespace) -> list[nsmod.Netns]:
    if args.all_netns:
        if args.netns:
            raise UsageError("--netns and --all-netns exclude each other")
        return nsmod.everything()
    if args.netns:
        return [nsmod.resolve(args.netns)]
    return [nsmod.current()]


def run_sockets(args: argparse.Namespace) -> int:
    if args.conntrack:  # its own filter: conntrack's states, both tuples' addresses
        from sniffer.conntrack import run_conntrack
        return run_conntrack(args, namespaces(args))
    versions = families(args)
    keep = Filter(args)
    spaces = namespaces(args)
    protos = protocols(args)
    if args.addresses:
        return _addresses(args, spaces)
    if args.hidden:
        return _hidden(args, spaces, protos)
    if args.watch:
        return _watch(args, spaces, protos, versions, keep)
    # A one-shot listing allocates a few objects per socket and frees none of them before it
    # exits: the cycle collector would only re-walk them (a fifth of the run at 10,000 sockets).
    import gc
    gc.disable()
    owners = None
    if args.processes or args.json:
        # The /proc scan waits on readlink(2) far more than it computes; in a thread it
        # overlaps the netlink dumps (the GIL is released during each system call).
        import threading
        found: list[Owners] = []
        scanner = threading.Thread(target=lambda: found.append(Owners.scan()))
        scanner.start()
        raws = _read_all(spaces, protos, versions, args)
        scanner.join()
        owners = found[0] if found else Owners.scan()
    else:
        raws = _read_all(spaces, protos, versions, args)
    rows = [s for s in attribute(raws, owners) if keep(s)]
    out = sys.stdout
    if args.json:
        import json
        out.write("".join(json.dumps(s.to_json(), separators=(",", ":")) + "\n" for s in rows))
    else:
        from sniffer.output.sockets import render
        render(rows, out, numeric=args.numeric, processes=args.processes,
               show_netns=len(spaces) > 1 or args.netns is not None or args.all_netns)
    out.flush()
    _explain_blind_spots(raws, owners)
    return 0


def _read_all(spaces, protos, families, args) -> list:
    """Every namespace's tables. With --all-netns, one that cannot be entered (not root) is
    skipped, and said so; a namespace named with --netns must be readable."""
    raws = []
    for ns in spaces:
        try:
            raws.append(read_namespace(ns, protos, families, attrs=args.json))
        except UsageError as exc:
            if not args.all_netns:
                raise
            skipped = Raw(ns)
            skipped.errors.append(f"skipped: {exc}")
            raws.append(skipped)
    return raws


def _explain_blind_spots(raws, owners: Owners | None) -> None:
    """One line on stderr about what could not be seen, and why (never silent, never noisy)."""
    notes = [f"{raw.ns.label}: {err}" for raw in raws for err in raw.errors]
    if owners is not None and owners.denied:
        # Name a few (PID 1 first): "which process may hold this listener?" has an answer.
        some = ", ".join(f"/proc/{pid}/fd ({owners.name(pid)})"
                         for pid in sorted(owners.denied_pids)[:3])
        more = ", ..." if owners.denied > 3 else ""
        notes.append(f"{owners.denied} processes of other users could not be read "
                     f"({some}{more}: permission denied, running as uid {os.geteuid()}, "
                     f"not root): sockets none of the readable processes holds show no process "
                     f"(owner unknown)")
    if owners is not None and owners.hidden:
        notes.append(f"/proc is mounted with {owners.hidden}: other users' processes are "
                     f"invisible to uid {os.geteuid()}, so sockets none of the visible processes "
                     f"holds show no process (owner unknown)")
    if notes:
        # Namespace names and error texts may carry a hostile name: no raw controls on stderr.
        from sniffer.output.safe import escape_controls
        print("sniffer: note: " + escape_controls("; ".join(notes)), file=sys.stderr)


def _watch(args, spaces, protos, families, keep) -> int:
    import json
    import signal
    import time

    from sniffer.kernel.watch import Watcher
    out = sys.stdout
    # Every event carries the time sniffer learned of it: epoch seconds with microseconds in
    # JSON (as Zeek's `ts`), a local date and time in text.
    if args.json:
        def emit(event: str, rec: dict) -> None:
            line = {"event": event, "ts": round(time.time(), 6), **rec}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            out.flush()
    else:
        from sniffer.output.sockets import watch_line

        def emit(event: str, rec: dict) -> None:
            out.write(watch_line(event, rec, numeric=args.numeric, ts=time.time()) + "\n")
            out.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rescan = nsmod.everything if args.all_netns else None
    try:
        Watcher(spaces, protos, families, emit, args.interval, keep, args.watch_buffer,
                rescan).run()
    except KeyboardInterrupt:
        pass
    return 0


def _hidden(args: argparse.Namespace, spaces: list[nsmod.Netns], protos: set[str]) -> int:
    """`--hidden`: one line (or JSON object) per hidden socket; status 1 when there is one."""
    from sniffer.kernel.hidden import check
    from sniffer.output.safe import escape_controls

    found = []
    for ns in spaces:
        found += check(ns, probe=args.bind_probe, protos=protos & {"tcp", "udp"})
    if args.json:
        import json
        sys.stdout.write("".join(json.dumps(h.to_json()) + "\n" for h in found))
    else:
        for h in found:  # the whole line escaped: the summary names states and sources too
            sys.stdout.write(escape_controls(f"hidden socket in {h.netns}: {h.summary()}") + "\n")
        if not found:
            views = "sock_diag, /proc/net" + (" and a bind probe of every port" if args.bind_probe
                                              else "")
            sys.stdout.write(f"no hidden sockets in {len(spaces)} namespace(s): {views} agree\n")
    sys.stdout.flush()
    return 1 if found else 0


def _addresses(args: argparse.Namespace, spaces: list[nsmod.Netns]) -> int:
    from sniffer.kernel.addrs import read
    from sniffer.output.safe import escape_controls
    out = sys.stdout
    for ns in spaces:
        view = read(ns)
        if args.json:
            import json
            from dataclasses import asdict
            out.write(json.dumps(asdict(view), separators=(",", ":")) + "\n")
            continue
        # Interface names may hold ESC, BEL or C1 bytes (the kernel forbids only '/', ':' and
        # white space) and namespace names are chosen by whoever made them: escaped.
        lines = [f"namespace {view.netns}"]
        lines += [f"  {a['interface']:<12} {a['address']}/{a['prefixlen']}" for a in view.addresses]
        lines.append("  local: " + " ".join(view.local_prefixes))
        for r in view.routes:
            via = f" via {r['gateway']}" if r["gateway"] else ""
            lines.append(f"  route {r['dst']}{via} dev {r['interface']}")
        out.write("".join(escape_controls(line) + "\n" for line in lines))
    return 0
