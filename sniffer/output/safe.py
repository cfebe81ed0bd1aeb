"""Showing untrusted text (process names, file names, bytes from packets) safely on a terminal.

Kept free of rich so that plain-text outputs do not pay for importing it.
"""

from __future__ import annotations

import unicodedata


def escape_controls(s: str) -> str:
    """Make every control, format or separator character visible as an escape sequence.

    Covers C0/C1 controls (ESC, CR, BEL ...), bidi overrides and zero-width characters (Cf),
    and line/paragraph separators, which could otherwise rewrite or hide what is on screen.
    """
    if s.isprintable():
        return s
    out = []
    for c in s:
        if c.isprintable() or (c == " "):
            out.append(c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ord(c) < 0x20:
            code = ord(c)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(c)
    return "".join(out)
