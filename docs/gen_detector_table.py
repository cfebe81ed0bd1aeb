"""Regenerate the scenario table of docs/detectors.md: `python docs/gen_detector_table.py`.

Builds every scenario of tests/scenarios.py, runs the real `sniffer read --alerts` on it and on
each Suricata corpus case that carries an expectation (when ../shared/corpus is absent those are
not run and their rows are kept as they were), and rewrites the table between the scenario-table
markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import hidden_scenarios  # noqa: E402
import scenarios  # noqa: E402
from netnskit import can_run  # noqa: E402

DOC = ROOT / "docs" / "detectors.md"
START, END = "<!-- scenario-table:start -->", "<!-- scenario-table:end -->"


def rows() -> list[tuple[str, str, frozenset, frozenset, list[str]]]:
    """(scenario, what it is, expected kinds, checked kinds, reported kinds) of each scenario."""
    out = []
    for sc in scenarios.SCENARIOS:
        reported = sorted({a["kind"] for a in scenarios.result(sc.name)[0]})
        out.append((sc.name, sc.what, sc.expected, sc.checked, reported))
    for row, expected, checked in scenarios.suricata_scenarios():
        reported = sorted({a["kind"] for a in scenarios.suricata_result(row["name"])[0]})
        out.append((f"suricata/{row['name']}", scenarios.SURICATA_WHAT[row["name"]], expected,
                    checked, reported))
    if can_run() is None:
        for sc in hidden_scenarios.SCENARIOS:
            out.append((sc.name, sc.what, sc.expected, None,
                        sorted(hidden_scenarios.run(sc.name).kinds)))
    return out


def _kinds(kinds, checked=None) -> str:
    shown = [k if checked is None or k in checked else f"({k})" for k in sorted(kinds)]
    return ", ".join(shown) or "none"


def table(previous: str = "") -> str:
    """The markdown table. Without the Suricata corpus its rows are kept from `previous`."""
    lines = ["| scenario | what it is | expected kinds | reported kinds | verdict |",
             "|---|---|---|---|---|"]
    for name, what, expected, checked, reported in rows():
        verdict = scenarios.verdict(expected, checked, reported)
        lines.append(f"| `{name}` | {what} | {_kinds(expected)} | {_kinds(reported, checked)} "
                     f"| {verdict} |")
    kept = ("| `suricata/",) * (not scenarios.suricata_rows()) + ("| `hidden/",) * (
        can_run() is not None)
    lines += [line for line in previous.splitlines() if kept and line.startswith(kept)]
    return "\n".join(lines) + "\n"


def replace(doc: str, new_table: str) -> str:
    head, rest = doc.split(START + "\n", 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + new_table + END + tail


def committed_table(doc: str) -> str:
    return doc.split(START + "\n", 1)[1].split(END, 1)[0]


def main() -> int:
    doc = DOC.read_text()
    DOC.write_text(replace(doc, table(committed_table(doc))))
    print(f"wrote the scenario table of {DOC.relative_to(ROOT)}")
    if not scenarios.suricata_rows():
        print(f"{scenarios.SURICATA} is absent: its rows are kept as they were, not rerun")
    if can_run() is not None:
        print(f"hidden-socket rows kept as they were, not rerun: {can_run()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
