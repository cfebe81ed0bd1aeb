"""The conn.log and JSON examples of docs/read.md and docs/fields.md are the tool's real output.

uids are deterministic (the same capture gives the same uids), so a reader can rerun an example
and get exactly the rows the docs show (issue 12, item 17).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from pcapkit import ROOT

DEMO = ROOT / "pcaps" / "demo.pcapng"
DOCS = [ROOT / "docs" / "read.md", ROOT / "docs" / "fields.md"]
ROW = re.compile(r"^\d{10}\.\d{6}\t")  # a conn.log row (not the weird.log ones of other docs)


def real(fmt: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "sniffer", "read", str(DEMO), "--format", fmt],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_rows_are_real_output(doc):
    lines = doc.read_text().splitlines()
    rows = [ln for ln in lines if ROW.match(ln)]
    objs = [ln for ln in lines if ln.startswith('{"ts":')]
    assert rows and objs
    zeek, js = set(real("zeek")), set(real("json"))
    assert [r for r in rows if r not in zeek] == []
    assert [o for o in objs if o not in js] == []


def test_zeek_cut_example_uids_are_real():
    """`zeek-cut -u ts uid conn_state`: the ts, uid and state of real rows."""
    text = (ROOT / "docs" / "read.md").read_text()
    block = text[text.index("$ zeek-cut -u ts uid conn_state"):].split("```")[0]
    shown = [ln.split("\t") for ln in block.splitlines()[1:] if "\t" in ln]
    rows = {r.split("\t")[1]: r.split("\t") for r in real("zeek")}
    assert len(shown) == 3
    for ts, uid, state in shown:
        r = rows[uid]
        when = datetime.fromtimestamp(float(r[0]), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
        assert (ts, state) == (when, r[11])


def test_json_example_parses():
    text = (ROOT / "docs" / "read.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith('{"ts":'))
    assert json.loads(line)["uid"] == real("zeek")[0].split("\t")[1]
