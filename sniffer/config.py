"""One settings object for the whole pipeline: checksums, local nets, likely server ports, timeouts.

Defaults follow Zeek's default scripts (see docs/semantics.md), so that `sniffer read` with no
options gives what `zeek -r` gives.
"""

from __future__ import annotations

import ipaddress
import os

from sniffer.errors import UsageError

TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58

# Zeek's Site::private_address_space (base/utils/site.zeek), IPv4 ranges with their 6to4 forms.
PRIVATE_NETS = (
    "0.0.0.0/8 2002::/24 10.0.0.0/8 2002:a00::/24 100.64.0.0/10 2002:6440::/26 127.0.0.0/8 "
    "2002:7f00::/24 169.254.0.0/16 2002:a9fe::/32 172.16.0.0/12 2002:ac10::/28 192.0.0.0/24 "
    "2002:c000::/40 192.0.2.0/24 2002:c000:200::/40 192.168.0.0/16 2002:c0a8::/32 198.18.0.0/15 "
    "2002:c612::/31 198.51.100.0/24 2002:c633:6400::/40 203.0.113.0/24 2002:cb00:7100::/40 "
    "224.0.0.0/24 2002:e000::/40 239.0.0.0/8 2002:ef00::/24 240.0.0.0/4 2002:f000::/20 "
    "255.255.255.255/32 2002:ffff:ffff::/48 ::/128 ::1/128 64:ff9b:1::/48 100::/64 2001::/23 "
    "2001:2::/48 2001:db8::/32 fc00::/7 fe80::/10 fec0::/10"
).split()

# likely_server_ports of `zeek -r` with the default scripts (CONN_SEMANTICS.md section 3.4).
ZEEK_TCP_PORTS = (
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587,
    614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222,
    5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
)
ZEEK_UDP_PORTS = (
    53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 1812, 2123, 2152, 3389, 3544, 4011, 4754,
    4789, 5060, 5072, 5353, 5355, 6081, 20000,
)
_PROTO_NAMES = {"tcp": TCP, "udp": UDP}

# The fragment reassembly bounds' defaults (Settings; sniffer.decode.frag's own defaults).
FRAG_MAX_DATAGRAMS = 16384
FRAG_MAX_BYTES = 64 << 20


def parse_net(text: str, option: str = "network") -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR from the command line; a clear UsageError naming the option, not a traceback."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"{option}: not a network in CIDR form: {text!r}") from None


def parse_ports(spec: str) -> frozenset[tuple[int, int]]:
    """`zeek` (the default profile) or a list such as ``22/tcp,80/tcp,53/udp``.

    Returns (port, ip protocol number) pairs, the form the flow table looks up.
    """
    spec = spec.strip()
    if spec == "zeek":
        return frozenset([(p, TCP) for p in ZEEK_TCP_PORTS] + [(p, UDP) for p in ZEEK_UDP_PORTS])
    out = set()
    for item in filter(None, (s.strip() for s in spec.split(","))):
        port, _, proto = item.partition("/")
        if not port.isdigit() or int(port) > 65535 or proto.lower() not in _PROTO_NAMES:
            raise UsageError(f"--likely-server-ports: bad entry {item!r} (want PORT/tcp or PORT/udp)")
        out.add((int(port), _PROTO_NAMES[proto.lower()]))
    return frozenset(out)


class Settings:
    """Everything a run can change; one instance flows through every stage. Keywords set any
    setting: `Settings(max_flows=16)`.

    (A slotted class, not a dataclass: importing dataclasses, and with it inspect, took a
    quarter of a short `sniffer read`'s start-up.)
    """

    __slots__ = ("ignore_checksums", "ignore_checksums_nets", "local_nets",
                 "likely_server_ports", "report_gaps_for_partial", "tcp_attempt_delay",
                 "tcp_close_delay", "tcp_connection_linger", "tcp_SYN_timeout",
                 "tcp_session_timer", "tcp_inactivity_timeout", "udp_inactivity_timeout",
                 "icmp_inactivity_timeout", "unknown_ip_inactivity_timeout", "frag_timeout",
                 "frag_max_datagrams", "frag_max_bytes", "dns_session_timeout",
                 "ip_tunnel_timeout", "max_flows", "long_timeout_ports",
                 "long_inactivity_timeout", "detect_max_alerts", "syn_flood_half_open",
                 "syn_flood_window", "syn_flood_isns", "port_scan_ports", "port_scan_hosts",
                 "port_scan_window", "backscatter_threshold", "backscatter_window",
                 "backscatter_grace")

    def __init__(self, **changes: object) -> None:
        self.ignore_checksums: bool = False
        self.ignore_checksums_nets: list = []
        self.local_nets: list = [parse_net(n) for n in PRIVATE_NETS]
        self.likely_server_ports: frozenset = parse_ports("zeek")
        self.report_gaps_for_partial: bool = False
        # Zeek's timeouts (init-bare.zeek), seconds.
        self.tcp_attempt_delay: float = 5.0
        self.tcp_close_delay: float = 5.0
        self.tcp_connection_linger: float = 5.0
        self.tcp_SYN_timeout: float = 5.0
        self.tcp_session_timer: float = 6.0
        self.tcp_inactivity_timeout: float = 300.0
        self.udp_inactivity_timeout: float = 60.0
        self.icmp_inactivity_timeout: float = 60.0
        self.unknown_ip_inactivity_timeout: float = 60.0
        self.frag_timeout: float = 300.0
        # IP fragment reassembly bounds (--frag-max-datagrams, --frag-max-mib): datagrams
        # waiting for fragments, and the bytes they hold; past either the oldest waiting
        # datagram is dropped and counted (fragment_evicted). Zeek has no such cap; Suricata's
        # defrag memcap.
        self.frag_max_datagrams: int = FRAG_MAX_DATAGRAMS
        self.frag_max_bytes: int = FRAG_MAX_BYTES
        # Zeek's dns_session_timeout (UDP DNS connections).
        self.dns_session_timeout: float = 10.0
        self.ip_tunnel_timeout: float = 86400.0  # Zeek's Tunnel::ip_tunnel_timeout
        # The flow table's bound (--max-flows; 0: none): when full, an eighth is evicted,
        # half-open and one-sided connections first. Under 850 B per connection: 100,000 is
        # ~85 MB.
        self.max_flows: int = 100_000
        # Ports whose connections get Zeek's 1 h inactivity timeout once established.
        self.long_timeout_ports: frozenset = frozenset({21, 22, 23, 513})
        self.long_inactivity_timeout: float = 3600.0
        # Detectors (sniffer.detect; docs/detectors.md): thresholds and windows.
        # Distinct alerts held; the rest are counted, not kept.
        self.detect_max_alerts: int = 10000
        # Half-open SYNs to one address:port within a window.
        self.syn_flood_half_open: int = 100
        self.syn_flood_window: float = 10.0
        # Distinct-ISN SYNs on one 4-tuple before the handshake (Suricata's max-syn-queued).
        self.syn_flood_isns: int = 10
        # Failed attempts from one source to this many ports of one host, or to this many
        # hosts (any port), within a window.
        self.port_scan_ports: int = 15
        self.port_scan_hosts: int = 25
        self.port_scan_window: float = 300.0
        # Unsolicited replies to one address, or from one address, within a window; replies
        # within the grace period after the capture began may answer requests sent before it.
        self.backscatter_threshold: int = 5
        self.backscatter_window: float = 60.0
        self.backscatter_grace: float = 2.0
        for name, value in changes.items():
            if name not in Settings.__slots__:
                raise TypeError(f"Settings() got an unexpected keyword argument {name!r}")
            setattr(self, name, value)


# The detector settings `--detect-set NAME=VALUE` may change (docs/detectors.md, "Settings").
DETECT_SETTINGS = ("detect_max_alerts", "syn_flood_half_open", "syn_flood_window", "syn_flood_isns",
                   "port_scan_ports", "port_scan_hosts", "port_scan_window",
                   "backscatter_threshold", "backscatter_window", "backscatter_grace")


DETECT_MAX = 1_000_000_000  # the largest `--detect-set` value: a count, or seconds (31 years)


def apply_detect_setting(settings: Settings, spec: str) -> None:
    """One `--detect-set NAME=VALUE`: a positive number of the setting's own type."""
    name, sep, value = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in DETECT_SETTINGS:
        raise UsageError(f"--detect-set: want NAME=VALUE with NAME one of "
                         f"{', '.join(DETECT_SETTINGS)}; got {spec!r}")
    kind = type(getattr(settings, name))
    try:
        number = kind(value.strip())
    except ValueError:
        raise UsageError(f"--detect-set {name}: not a{'n integer' if kind is int else ' number'}: "
                         f"{value.strip()!r}") from None
    if not 0 < number <= DETECT_MAX:  # not nan, inf or a value no window or count could reach
        raise UsageError(f"--detect-set {name}: must be more than 0 and up to {DETECT_MAX}, "
                         f"got {value.strip()!r}")
    setattr(settings, name, number)


def python_engine() -> bool:
    """SNIFFER_ENGINE=python: run the Python engine (the reference the compiled one is held
    to) instead of the compiled one: for comparing the two, and benchmarks of the old one."""
    return os.environ.get("SNIFFER_ENGINE") == "python"
