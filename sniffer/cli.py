"""The command line: parses options, wires capture → decode → flows → output, maps errors to exit codes.

Exit status: 0 on success, 2 on bad input or a bad option (one line on stderr naming the file,
offset or field; the connections reconstructed until then are still written).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence

from sniffer import __version__
from sniffer.errors import SnifferError
from sniffer.interrupt import Interrupted


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size gives it ($COLUMNS, then stdout's
    terminal, else 80), without importing shutil (and bz2, lzma...): argparse's formatter asks
    for it when a parser is built, and that import was a tenth of a short run's start-up."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2 (argparse's own default),
    pointing to the --help of the command it concerns."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        from sniffer.output.safe import escape_controls  # argparse quotes unknown args raw
        message = escape_controls(message)
        self.exit(2, f"sniffer: {message} (see 'sniffer {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"sniffer: {message} (see 'sniffer --help')\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """Take `--interval -1` as a value to check (argparse would call it a missing value once
        the parser has an option like -4), and report a command's unknown arguments with its
        own --help: `sniffer sockets -x` is about `sniffer sockets --help`."""
        args = _glued(list(sys.argv[1:] if args is None else args), self)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and " " in self.prog:  # a subcommand's parser (the top one reports its own)
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


_NEGATIVE = re.compile(r"-[0-9.].*")


def _glued(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--opt -1` as `--opt=-1` for the numeric options of `parser` (their Range says why -1
    is refused), up to a `--`; an abbreviated option name counts as argparse takes it."""
    numeric = {o for a in parser._actions if isinstance(a.type, Range) for o in a.option_strings}
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        names = [o for o in parser._option_string_actions if o.startswith(arg)] \
            if arg.startswith("--") else []
        name = arg if arg in numeric else names[0] if len(names) == 1 else None
        if name in numeric and i + 1 < len(args) and _NEGATIVE.fullmatch(args[i + 1]):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


class Range:
    """An argparse type: a number of `kind` from `lo` to `hi`, checked while parsing, so a bad
    value is one usage line naming the option and the range, never a traceback further on.

    `above`: `lo` itself is excluded (a duration must be more than 0). `zero`: 0 is accepted
    too, as an off switch outside the range (--hidden-interval 0: never). `why` says where `hi`
    comes from when it depends on the machine (CPUs, memory).
    """

    def __init__(self, kind: type, lo: float, hi: float, unit: str = "", *,
                 above: bool = False, zero: bool = False, why: str = "") -> None:
        self.kind, self.lo, self.hi, self.unit = kind, lo, hi, unit
        self.above, self.zero, self.why = above, zero, why
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def __str__(self) -> str:
        """The range as the help text and the error message give it, e.g. '0.1 to 86400'."""
        lo, hi = _num(self.lo), _num(self.hi)
        text = f"more than {lo} and up to {hi}" if self.above else f"{lo} to {hi}"
        return ("0 or " if self.zero else "") + text + (f" {self.unit}" if self.unit else "")

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text.strip())
            low = value > self.lo if self.above else value >= self.lo
            ok = math.isfinite(value) and ((value == 0 and self.zero)
                                           or (low and value <= self.hi))
        except (ValueError, OverflowError):  # not a number, or an int of 4300+ digits
            ok = False
        if not ok:
            shown = text if len(text) <= 30 else text[:27] + "..."
            what = "a whole number, " if self.kind is int else ""
            why = f" ({self.why})" if self.why else ""
            raise argparse.ArgumentTypeError(f"must be {what}{self}{why}, got {shown!r}")
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or taskset's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_mib() -> int:
    """The machine's physical memory in MiB (0 if it cannot be told)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    except (ValueError, OSError):
        return 0


# The ranges of the numeric options (docs/read.md, docs/live.md, docs/sockets.md).
MAX_FLOWS = Range(int, 0, 100_000_000)  # ~850 B each at most: 85 GB
FRAG_DATAGRAMS = Range(int, 1, 10_000_000)
FRAG_MIB = Range(int, 1, 65536, "MiB")
MAX_ROWS = Range(int, 0, 1_000_000_000)
PORT = Range(int, 0, 65535)
INTERVAL = Range(float, 0.1, 86400, "seconds")
HIDDEN_INTERVAL = Range(float, 0.1, 86400, "seconds", zero=True)
DURATION = Range(float, 0, 31_536_000, "seconds", above=True)  # a year
COUNT = Range(int, 1, 10**15)
# SO_RCVBUFFORCE takes a C int, and Linux caps it at INT_MAX / 2 anyway.
WATCH_BUFFER = Range(int, 4096, 1 << 30, "bytes")


def ring_range() -> Range:
    """--buffer: the kernel allocates the whole ring when it is set up, so a ring near the
    machine's memory gets the run killed by the OOM killer rather than refused; half of it is
    the bound (2 MiB: two 1 MiB blocks, the least the ring takes)."""
    mem = memory_mib()
    if not mem:
        return Range(int, 2, 65536, "MiB", why="at most 64 GiB")
    return Range(int, 2, max(2, mem // 2), "MiB",
                 why=f"half of this machine's {mem} MiB of memory")


def engine_options(p: argparse.ArgumentParser) -> None:
    """The connection-engine options `read` and `live` share (Zeek's knobs)."""
    p.add_argument("-C", "--ignore-checksums", action="store_true",
                      help="do not validate IP/TCP/UDP/ICMP checksums (like zeek -C)")
    p.add_argument("--ignore-checksums-net", action="append", default=[], metavar="CIDR",
                      help="do not validate checksums of packets from CIDR (repeatable)")
    p.add_argument("--max-flows", type=MAX_FLOWS, default=100_000, metavar="N",
                   help=f"connections held at once ({MAX_FLOWS}; default 100000; 0: no limit); "
                        "when full, half-open and idle ones are logged early and evicted, and "
                        "counted")
    p.add_argument("--frag-max-datagrams", type=FRAG_DATAGRAMS, default=None, metavar="N",
                   help=f"IP datagrams waiting for their fragments at once ({FRAG_DATAGRAMS}; "
                        "default 16384); past it the oldest is dropped and counted "
                        "(fragment_evicted)")
    p.add_argument("--frag-max-mib", type=FRAG_MIB, default=None, metavar="MIB",
                   help=f"fragment bytes held while waiting ({FRAG_MIB}; default 64), the same")
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
                        "alerts to FILE, one JSON object per line ('-': standard output)")
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
                        "more than 0, up to 1000000000; the names are in docs/detectors.md)")


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
    p.add_argument("--port", type=PORT, action="append", default=[], metavar="N",
                   help=f"only sockets with local or remote port N ({PORT}; repeatable)")
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
    p.add_argument("--interval", type=INTERVAL, default=1.0, metavar="SECONDS",
                   help=f"--watch: seconds between dumps ({INTERVAL}; default 1; destroy "
                        "events are immediate)")
    p.add_argument("--watch-buffer", type=WATCH_BUFFER, default=32 << 20, metavar="BYTES",
                   help=f"--watch: kernel buffer for destroy events ({WATCH_BUFFER}; default "
                        "32 MiB); when it overflows, sniffer re-dumps and says so")
    p.add_argument("--hidden", action="store_true",
                   help="instead of sockets: look for hidden ones (sock_diag against /proc/net); "
                        "exit status 1 when one is found")
    p.add_argument("--bind-probe", action="store_true",
                   help="--hidden: also try bind() on every TCP and UDP port, as unhide-tcp does")
    p.add_argument("--conntrack", action="store_true",
                   help="instead of sockets: the kernel's conntrack table, as `conntrack -L` "
                        "(forwarded and NAT'd flows too; needs CAP_NET_ADMIN)")


def live_options(p: argparse.ArgumentParser) -> None:
    """`sniffer live` (sniffer/live.py; docs/live.md)."""
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="interface to capture on (default: the default route's; 'any': all)")
    p.add_argument("-f", "--filter", metavar="BPF", help="capture filter (tcpdump syntax)")
    p.add_argument("--promisc", action="store_true", help="put the interface in promiscuous mode")
    p.add_argument("--netns", metavar="NS", help="run inside this network namespace")
    p.add_argument("--format", choices=("dashboard", "zeek", "json"), default=None,
                   help="stdout: live dashboard (default on a terminal), conn.log, or JSON lines")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the records (--format) to FILE ('-': standard output)")
    p.add_argument("--json", metavar="FILE", dest="json_file",
                   help="also write the records as JSON lines to FILE ('-': standard output)")
    p.add_argument("-w", "--write", metavar="FILE.pcapng",
                   help="record packets and kernel snapshots, for `sniffer read` to replay "
                        "('-': standard output). The file names every process, pid and user "
                        "that held a socket: share it with care (docs/live.md)")
    p.add_argument("--duration", type=DURATION, metavar="S",
                   help=f"stop after S seconds ({DURATION})")
    p.add_argument("--count", type=COUNT, metavar="N", help=f"stop after N packets ({COUNT})")
    p.add_argument("--interval", type=INTERVAL, default=1.0, metavar="S",
                   help=f"seconds between kernel snapshots ({INTERVAL}; default 1)")
    p.add_argument("--hidden-interval", type=HIDDEN_INTERVAL, default=10.0, metavar="S",
                   help="with --alerts/--detect: compare sock_diag with /proc/net for hidden "
                        f"sockets every S seconds ({HIDDEN_INTERVAL}; default 10; 0: never)")
    p.add_argument("--bind-probe", action="store_true",
                   help="the hidden-socket check also tries bind() on every port, as unhide-tcp "
                        "does (a few seconds of CPU per check; see docs/detectors.md)")
    buffer = ring_range()
    p.add_argument("--buffer", type=buffer, default=256, metavar="MIB",
                   help=f"capture ring size in MiB ({buffer}, {buffer.why}; default 256): "
                        "bursts wait here while the engine catches up")
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
    read.add_argument("-o", "--output", metavar="FILE",
                      help="write the records to FILE ('-': standard output)")
    engine_options(read)
    detect_options(read)
    read.add_argument("--weird-log", metavar="FILE",
                      help="also write every anomaly (Zeek's weird.log layout) to FILE "
                           "('-': standard output)")
    workers = Range(int, 1, usable_cpus(), why="the CPUs this process may run on")
    read.add_argument("--workers", type=workers, default=1, metavar="N",
                      help=f"shard connections across N processes ({workers}: {workers.why}; "
                           "zeek or json output; the records are the ones one process writes)")
    read.add_argument("--max-rows", type=MAX_ROWS, default=1000, metavar="N",
                      help=f"table format: show at most N connections ({MAX_ROWS}; 0: all)")
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
                    "attributed, kernel, refused, unattributed, forwarded, not-tracked, "
                    "not-local or unknown.")
    live_options(live)
    engine_options(live)
    detect_options(live)
    parser.commands = {"read": read, "sockets": sockets, "live": live}  # type: ignore[attr-defined]
    return parser


# Options whose FILE may be '-', standard output, besides -o (the records).
_STDOUT_OPTIONS = (("--alerts", "alerts"), ("--weird-log", "weird_log"), ("--json", "json_file"),
                   ("-w", "write"))


def dash_problem(args: argparse.Namespace) -> str | None:
    """What '-' cannot mean here: standard input read twice, or two streams on standard output
    (their lines would interleave); None if all is well. `-o -` then stands for no -o."""
    if args.command == "read" and args.files.count("-") > 1:
        return "FILE: '-' (standard input) given twice; it can be read only once"
    if args.command not in ("read", "live"):
        return None
    others = [opt for opt, dest in _STDOUT_OPTIONS if getattr(args, dest, None) == "-"]
    if args.output == "-":
        args.output = None
        if others:
            return (f"-o and {others[0]} both name '-' (standard output), which carries one "
                    "stream: give one of them a file")
    elif others and not args.output:
        return (f"{others[0]} -: standard output already carries the connection records; "
                "send them to a file with -o FILE, or drop them with -o /dev/null")
    if len(others) > 1:
        return (f"{others[0]} and {others[1]} both name '-' (standard output), which carries "
                "one stream: give one of them a file")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    problem = dash_problem(args)
    if problem:
        parser.commands[args.command].error(problem)  # type: ignore[attr-defined]
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
