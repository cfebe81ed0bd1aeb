"""Where the tests find the reference corpus: ``../shared`` beside the project, or
``$SNIFFER_SHARED``.

One definition of the path, so that a missing corpus is one clear message at start-up
(``conftest.py``) instead of a FileNotFoundError from whichever module reads it first.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the environment variable that points the tests at another copy of the shared directory
ENV = "SNIFFER_SHARED"
#: the shared directory (holds corpus/): $SNIFFER_SHARED, else the project's sibling `shared`
SHARED = Path(os.environ.get(ENV) or ROOT.parent / "shared").expanduser().absolute()
CORPUS = SHARED / "corpus"

#: what the tests read, relative to CORPUS: checked before any test module is imported
REQUIRED = ("zeek/MANIFEST.tsv", "suricata/MANIFEST.tsv", "linktypes/MANIFEST.tsv",
            "big/MANIFEST.tsv")


def missing() -> str | None:
    """None if the corpus is complete, else one line: what is missing, where it was looked
    for, and how to point the tests elsewhere."""
    absent = [rel for rel in REQUIRED if not (CORPUS / rel).is_file()]
    if not absent:
        return None
    where = f"from {ENV}={os.environ[ENV]}" if os.environ.get(ENV) else "the project's ../shared"
    what = CORPUS if len(absent) == len(REQUIRED) else ", ".join(str(CORPUS / a) for a in absent)
    return (f"the reference corpus is missing: {what} not found ({where}); put the shared "
            f"directory beside the project or set {ENV}=/path/to/shared (the directory holding corpus/)")
