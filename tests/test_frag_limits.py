"""The fragment reassembly bounds are settings a user can change (issue 12, item 18):
`--frag-max-datagrams` and `--frag-max-mib` (Settings.frag_max_datagrams, frag_max_bytes),
through the real `sniffer read`, counted in the summary the user reads."""

from __future__ import annotations

import re

import pytest
from pcapkit import ETH, run, write
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

N, SIZE = 40, 30000


@pytest.fixture(scope="module")
def first_fragments(tmp_path_factory):
    """N datagrams of which only the first fragment (SIZE bytes of UDP payload) arrives."""
    pkts = [Ether(**ETH) / IP(src="10.0.0.1", dst="10.0.0.2", id=i, flags="MF")
            / UDP(sport=1000, dport=2000) / Raw(b"x" * SIZE) for i in range(N)]
    for i, p in enumerate(pkts):
        p.time = 1000 + i * 0.01
    held_bytes = len(bytes(pkts[0][IP].payload))  # what one waiting datagram holds
    return write(tmp_path_factory.mktemp("frag"), pkts, "frags.pcap"), held_bytes


def counters(pcap, *args) -> dict[str, int]:
    out = run(["read", pcap, "--format", "table", *args]).stdout.decode()
    return {k: int(v) for k, v in re.findall(r"^(fragment_\w+|ip_fragments)\s+(\d+)\s*$", out,
                                               re.M)}


def test_defaults_hold_every_waiting_datagram(first_fragments):
    pcap, _ = first_fragments
    assert counters(pcap) == {"ip_fragments": N, "fragment_incomplete": N}


def test_max_datagrams_option(first_fragments):
    pcap, _ = first_fragments
    got = counters(pcap, "--frag-max-datagrams", "5")
    assert (got["fragment_evicted"], got["fragment_incomplete"]) == (N - 5, 5), got


def test_max_mib_option(first_fragments):
    pcap, held_bytes = first_fragments
    fit = (1 << 20) // held_bytes  # datagrams that fit in 1 MiB
    assert fit < N
    got = counters(pcap, "--frag-max-mib", "1")
    assert (got["fragment_evicted"], got["fragment_incomplete"]) == (N - fit, fit), got


@pytest.mark.parametrize("option, value", [("--frag-max-datagrams", "0"),
                                           ("--frag-max-datagrams", "many"),
                                           ("--frag-max-mib", "0"),
                                           ("--frag-max-mib", "65537")])
def test_out_of_range_is_one_line(first_fragments, option, value):
    pcap, _ = first_fragments
    proc = run(["read", pcap, option, value], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and option in err, err


def test_settings_fields_reach_the_reassembler():
    """Settings carries both bounds (one definition of their defaults) into the decoder."""
    from sniffer.config import Settings
    from sniffer.decode.decoder import Decoder
    from sniffer.decode.frag import DEFAULT_MAX_BYTES, DEFAULT_MAX_DATAGRAMS
    from sniffer.stats import Stats
    default = Decoder(Settings(), Stats()).frag
    assert (default.max_datagrams, default.max_bytes) == (DEFAULT_MAX_DATAGRAMS, DEFAULT_MAX_BYTES)
    frag = Decoder(Settings(frag_max_datagrams=7, frag_max_bytes=5 << 20), Stats()).frag
    assert (frag.max_datagrams, frag.max_bytes) == (7, 5 << 20)
