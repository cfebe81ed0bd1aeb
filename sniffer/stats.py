"""Named counters every stage adds to; the summary prints them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

#: Counters that describe the input rather than something wrong with it.
INFORMATIONAL = frozenset({
    "packets", "bytes", "ip_fragments", "fragments_reassembled", "tunneled_packets",
    "snaplen_truncated", "non_ip",
})


#: The counters of packets dropped for a bad checksum, by kind: the IPv4 header (decoder), the
#: TCP, UDP and ICMP/ICMPv6 checksums (flow table, as Zeek's weirds of those names).
CHECKSUM_COUNTERS = (("IP", "bad_IP_checksum"), ("TCP", "weird:bad_TCP_checksum"),
                     ("UDP", "weird:bad_UDP_checksum"), ("ICMP", "weird:bad_ICMP_checksum"))
#: Zeek's rule (base/misc/find-checksum-offloading.zeek): checksum offloading likely spoiled the
#: input when the packets with a bad checksum of one kind are more than this share of all
#: packets read.
OFFLOAD_SHARE = 0.05


def checksum_warning(stats: Mapping[str, int]) -> str | None:
    """The one-line warning Zeek gives when many checksums fail, naming -C; else None.

    A capture taken on the sending host of a NIC with checksum offloading holds that host's
    packets before the card filled their checksums in: without `-C` they are all dropped, and
    the connections lose most of their bytes with nothing else to say why.
    """
    packets = stats.get("packets", 0)
    bad = [(kind, stats.get(key, 0)) for kind, key in CHECKSUM_COUNTERS]
    if not packets or not any(n > OFFLOAD_SHARE * packets for _kind, n in bad):
        return None
    total = sum(n for _kind, n in bad)
    kinds = " and ".join(kind for kind, n in bad if n)
    return (f"warning: {total} of {packets} packets ({total / packets:.0%}) had invalid {kinds} "
            "checksums and were not counted, most likely from NIC checksum offloading on the "
            "capturing host; use -C (--ignore-checksums) to count them, or "
            "--ignore-checksums-net CIDR for packets from some addresses only")


class Stats(Counter):
    """`stats["bad_IP_checksum"] += 1`: counts of packets, drops and anomalies by name."""


class LoggedStats(Stats):
    """Stats that also report each anomaly of the decode and capture stages to `sink`.

    Used only when a weird.log is written, so plain runs keep Counter's C-speed updates. The
    flow stage logs its own anomalies (``weird:*``) with their connection; `ts` is the time of
    the packet being read, kept current by the pipeline.
    """

    def __init__(self, sink: Callable[[str, float], None] | None = None) -> None:
        super().__init__()
        self.sink = sink
        self.ts = 0.0

    def __setitem__(self, key: str, value: int) -> None:
        grew = value > self.get(key, 0)
        super().__setitem__(key, value)
        if grew and self.sink is not None and key not in INFORMATIONAL \
                and not key.startswith(("weird:", "alert")):
            self.sink(key, self.ts)
