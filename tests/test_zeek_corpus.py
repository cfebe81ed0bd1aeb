"""Acceptance test: `sniffer read --format zeek` against every pair of the Zeek corpus.

Both scopes run: `core` (Ethernet, VLAN, SLL, raw, null link layers) and `encap` (MPLS, PPPoE,
802.11, PPP, FDDI, PBB, VN-Tag, FabricPath and the tunnels, with `tunnel_parents` compared by
structure). Pairs whose notes say `exclude: REASON` are not run; they are listed in the summary
line that conftest.py prints at the end of the session.
"""

import pytest

import zeekcorpus

PAIRS = [p for p in zeekcorpus.load_pairs("all") if not p.exclude]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_zeek_conn_log(pair, tmp_path, request):
    outcome = zeekcorpus.evaluate(pair, tmp_path)
    request.config.stash.setdefault(zeekcorpus.OUTCOMES_KEY, []).append(outcome)
    if not outcome.ok:
        pytest.fail(zeekcorpus.format_outcome(outcome), pytrace=False)
