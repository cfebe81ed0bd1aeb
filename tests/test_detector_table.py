"""The scenario table of docs/detectors.md is the one docs/gen_detector_table.py makes now.

Every scenario of tests/scenarios.py (and each Suricata corpus case with an expectation) runs
once per session through the real `sniffer read --alerts`; the detail tests of
test_detectors.py and test_tcp_detectors.py share those runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hidden_scenarios
import pytest
import scenarios

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_detector_table",
                                                  ROOT / "docs" / "gen_detector_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _generator()


@pytest.mark.parametrize("sc", scenarios.SCENARIOS, ids=lambda sc: sc.name)
def test_scenario_reports_its_expected_kinds(sc):
    reported = {a["kind"] for a in scenarios.result(sc.name)[0]}
    assert scenarios.verdict(sc.expected, sc.checked, reported) == "ok", \
        f"expected {sorted(sc.expected)}, reported {sorted(reported)} (checked: {sc.checked})"


def test_committed_table_is_current_and_all_ok():
    committed = gen.committed_table(gen.DOC.read_text())
    fresh = gen.table(committed)  # without the Suricata corpus, its committed rows stay
    assert committed == fresh, "docs/detectors.md is stale: run python docs/gen_detector_table.py"
    verdicts = [line.rsplit("|", 2)[-2].strip() for line in fresh.splitlines()[2:]]
    assert verdicts and set(verdicts) == {"ok"}


def test_every_scenario_is_in_the_table():
    names = [line.split("`")[1] for line in gen.table().splitlines()[2:]]
    assert names[:len(scenarios.SCENARIOS)] == [sc.name for sc in scenarios.SCENARIOS]
    if not scenarios.suricata_rows():
        pytest.skip("suricata corpus not present")
    suricata = [f"suricata/{row['name']}" for row, _, _ in scenarios.suricata_scenarios()]
    assert len(suricata) == 6  # SURICATA_EXPECTED and SURICATA_FLOODS
    assert names[len(scenarios.SCENARIOS):] == suricata + [
        sc.name for sc in hidden_scenarios.SCENARIOS]
