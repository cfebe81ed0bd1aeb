"""The command line: parses options, wires capture → decode → flows → output, maps errors to exit codes.

Exit status: 0 on success, 2 on bad input or a bad option (one line on stderr naming the file,
offset or field; the connections reconstructed until then are still written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sniffer import __version__
from sniffer.errors import SnifferError
from sniffer.interrupt import Interrupted


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2 (argparse's own default)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from sniffer.output.safe import escape_controls  # argparse quotes unknown args raw
        message = escape_controls(message)
        self.exit(2, f"sniffer: {message} (see 'sniffer {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"sniffer: {message} (see 'sniffer --help')\n")


def count(text: str) -> int:
    """A whole number >= 0 (argparse reports a ValueError as a one-line usage error)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def engine_options(p: argparse.ArgumentParser) -> None:
    """The connection-engine options `read` and `live` share (Zeek's knobs)."""
    p.add_argument("-C", "--ignore-checksums", action="store_true",
                      help="do not validate IP/TCP/UDP/ICMP checksums (like zeek -C)")
    p.add_argument("--ignore-checksums-net", action="append", default=[], metavar="CIDR",
                      help="do not validate checksums of packets from CIDR (repeatable)")
    p.add_argument("--max-flows", type=int, default=100_000, metavar="N",
                   help="connections held at once (default 100000; 0: no limit); when full, "
                        "half-open and idle ones are logged early and evicted, and counted")
    p.add_argument("--local-net", action="append", default=[], metavar="CIDR",
                      help="local networks for local_orig/local_resp (repeatable; replaces "
                           "the default, the private address space)")
    p.add_argument("--likely-server-ports", default="zeek", metavar="SPEC",
                      help="'zeek' (default) or a list like 22/tcp,80/tcp,53/udp that replaces "
                           "the set used to guess which side is the server")
    p.add_argument("--report-gaps-for-partial", action="store_true",
                      help="count content gaps (missed_bytes) in connections seen midway too")


def detect_options(p: argparse.ArgumentParser) -> None:
    """Detector options `read` and `live` share (sniffer.detect; docs/detectors.md)."""
    p.add_argument("--alerts", metavar="FILE",
                   help="run the detectors (spoofing, floods, scans, injection) and write their "
                        "alerts to FILE, one JSON object per line")
    p.add_argument("--alerts-format", choices=("json", "zeek"), default="json",
                   help="--alerts FILE as JSON lines (default) or Zeek's notice.log layout")
    p.add_argument("--detect", action="store_true",
                   help="run the detectors and count their alerts in the summary, even "
                        "without --alerts")
    p.add_argument("--local-addr", action="append", default=[], metavar="ADDR",
                   help="an address of the capturing host, for local-source-from-wire "
                        "(repeatable; added to those a recording or the kernel reports)")
    p.add_argument("--detect-set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a detector threshold, e.g. syn_flood_half_open=50 (repeatable; "
                        "the names are in docs/detectors.md)")


def sockets_options(p: argparse.ArgumentParser) -> None:
    """`sniffer sockets` (sniffer/sockets.py; docs/sockets.md)."""
    p.add_argument("-t", "--tcp", action="store_true", help="TCP sockets")
    p.add_argument("-u", "--udp", action="store_true", help="UDP and UDP-Lite sockets")
    p.add_argument("-w", "--raw", action="store_true", help="raw and ping (ICMP) sockets")
    p.add_argument("-l", "--listening", action="store_true",
                   help="only listening sockets (LISTEN, and unconnected datagram sockets)")
    p.add_argument("-a", "--all", action="store_true", help="listening and other sockets")
    p.add_argument("-n", "--numeric", action="store_true", help="numeric ports, no service names")
    p.add_argument("-p", "--processes", action="store_true", help="show the owning processes")
    p.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    p.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    p.add_argument("--state", action="append", default=[], metavar="STATE",
                   help="only sockets in STATE (repeatable; e.g. LISTEN, ESTABLISHED, TIME-WAIT)")
    p.add_argument("--port", type=int, action="append", default=[], metavar="N",
                   help="only sockets with local or remote port N (repeatable)")
    p.add_argument("--addr", action="append", default=[], metavar="ADDR[/LEN]",
                   help="only sockets with a local or remote address in ADDR (repeatable)")
    p.add_argument("--netns", metavar="NS",
                   help="the namespace to read: a name under /run/netns, pid:N, or a path")
    p.add_argument("--all-netns", action="store_true",
                   help="every network namespace on the host, each row labelled")
    p.add_argument("--json", action="store_true", help="one JSON object per socket")
    p.add_argument("--addresses", action="store_true",
                   help="instead of sockets: each namespace's addresses, local prefixes, routes")
    p.add_argument("--watch", action="store_true",
                   help="keep watching: new sockets and destroyed ones (with final counters)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="--watch: seconds between dumps (destroy events are immediate)")
    p.add_argument("--watch-buffer", type=int, default=32 << 20, metavar="BYTES",
                   help="--watch: kernel buffer for destroy events (default 32 MiB); when it "
                        "overflows, sniffer re-dumps and says so")
    p.add_argument("--hidden", action="store_true",
                   help="instead of sockets: look for hidden ones (sock_diag against /proc/net); "
                        "exit status 1 when one is found")
    p.add_argument("--bind-probe", action="store_true",
                   help="--hidden: also try bind() on every TCP and UDP port, as unhide-tcp does")


def live_options(p: argparse.ArgumentParser) -> None:
    """`sniffer live` (sniffer/live.py; docs/live.md)."""
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="interface to capture on (default: the default route's; 'any': all)")
    p.add_argument("-f", "--filter", metavar="BPF", help="capture filter (tcpdump syntax)")
    p.add_argument("--promisc", action="store_true", help="put the interface in promiscuous mode")
    p.add_argument("--netns", metavar="NS", help="run inside this network namespace")
    p.add_argument("--format", choices=("dashboard", "zeek", "json"), default=None,
                   help="stdout: live dashboard (default on a terminal), conn.log, or JSON lines")
    p.add_argument("-o", "--output", metavar="FILE", help="write the records (--format) to FILE")
    p.add_argument("--json", metavar="FILE", dest="json_file",
                   help="also write the records as JSON lines to FILE")
    p.add_argument("-w", "--write", metavar="FILE.pcapng",
                   help="record packets and kernel snapshots, for `sniffer read` to replay")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--count", type=int, metavar="N", help="stop after N packets")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between kernel snapshots (default 1)")
    p.add_argument("--hidden-interval", type=float, default=10.0, metavar="S",
                   help="with --alerts/--detect: compare sock_diag with /proc/net for hidden "
                        "sockets every S seconds (default 10; 0: never)")
    p.add_argument("--bind-probe", action="store_true",
                   help="the hidden-socket check also tries bind() on every port, as unhide-tcp "
                        "does (a few seconds of CPU per check; see docs/detectors.md)")
    p.add_argument("--buffer", type=int, default=256, metavar="MIB",
                   help="capture ring size in MiB (default 256): bursts wait here while the "
                        "engine catches up")
    p.add_argument("--user", metavar="NAME",
                   help="once the capture, kernel sockets and output files are open, run as "
                        "NAME with no capabilities and no_new_privs (docs/live.md, 'Least "
                        "privilege'): other users' sockets then show no process")
    p.add_argument("--keep-caps", action="store_true",
                   help="with --user: keep CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, so sockets "
                        "of every user stay attributed to their processes")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sniffer", description=(
        "Rebuild every TCP/UDP/ICMP connection, Zeek conn.log style, from captures or the wire."))
    parser.add_argument("--version", action="version", version=f"sniffer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    read = sub.add_parser("read", help="replay pcap/pcapng files into connection records",
                          description="Replay pcap/pcapng files (gzip too; '-' is stdin) into "
                                      "connection records with Zeek's conn.log semantics.")
    read.add_argument("files", nargs="+", metavar="FILE",
                      help="capture files, read as one time-ordered stream; '-' reads stdin")
    read.add_argument("--format", choices=("table", "zeek", "json"), default=None,
                      help="output format (default: table on a terminal, zeek otherwise)")
    read.add_argument("-o", "--output", metavar="FILE", help="write the records to FILE")
    engine_options(read)
    detect_options(read)
    read.add_argument("--weird-log", metavar="FILE",
                      help="also write every anomaly (Zeek's weird.log layout) to FILE")
    read.add_argument("--workers", type=count, default=1, metavar="N",
                      help="shard connections across N processes (zeek or json output; the "
                           "records are the ones one process writes)")
    read.add_argument("--max-rows", type=count, default=1000, metavar="N",
                      help="table format: show at most N connections (0: all)")
    sockets = sub.add_parser(
        "sockets", help="the kernel's sockets, with their processes, users and namespaces",
        description="List the kernel's TCP, UDP, raw and ping sockets (sock_diag and /proc), "
                    "attributed to processes, users, containers and services, per network "
                    "namespace. netstat/ss options.")
    sockets_options(sockets)
    live = sub.add_parser(
        "live", help="sniff an interface: every connection, its owner, and who accounts for it",
        description="Capture on an interface (AF_PACKET ring), track connections with the "
                    "same engine as `read`, and hold each against the kernel's sockets: "
                    "attributed, kernel, refused, unattributed, not-local or unknown.")
    live_options(live)
    engine_options(live)
    detect_options(live)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "read":
            from sniffer.read import run_read
            return run_read(args)
        if args.command == "sockets":
            from sniffer.sockets import run_sockets
            return run_sockets(args)
        if args.command == "live":
            from sniffer.live import run_live
            return run_live(args)
    except SnifferError as exc:
        print(f"sniffer: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:  # `read` stopped by a signal, after writing what it rebuilt
        print(f"sniffer: {exc}: the connections seen until then were written", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `sniffer read x.pcap | head`: the reader went away; end quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    return 0
