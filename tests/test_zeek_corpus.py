"""Acceptance test: `sniffer read --format zeek` against every core pair of the Zeek corpus.

Pairs whose notes say `exclude: REASON` are not run; they are listed in the summary line that
conftest.py prints at the end of the session. Encapsulation pairs (scope `encap`) are not part of
this test: use `python tests/zeek_report.py --scope encap`.
"""

import pytest

import zeekcorpus

CORE_PAIRS = [p for p in zeekcorpus.load_pairs("core") if not p.exclude]


@pytest.mark.parametrize("pair", CORE_PAIRS, ids=lambda p: p.name)
def test_zeek_conn_log(pair, tmp_path, request):
    outcome = zeekcorpus.evaluate(pair, tmp_path)
    request.config.stash.setdefault(zeekcorpus.OUTCOMES_KEY, []).append(outcome)
    if not outcome.ok:
        pytest.fail(zeekcorpus.format_outcome(outcome), pytrace=False)
