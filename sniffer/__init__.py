"""sniffer: a Linux connection tracker that rebuilds connections the way Zeek's conn.log does."""

__version__ = "0.1.0"

# The compiled core (sniffer._core) is built into the installed package. Run from a source tree
# installed with `pip install .` (the tests, from a clone), `sniffer` is the source directory,
# which has none: the installed copy's directory joins the package's path, so the core is found.
# (pkgutil.extend_path does this, but importing pkgutil costs a tenth of a short run's start-up.)
def _extend_path(path: list[str]) -> list[str]:
    import os
    import sys
    out = list(path)
    seen = {os.path.realpath(p) for p in out}
    for entry in sys.path:
        d = os.path.abspath(os.path.join(entry or os.curdir, __name__))
        if os.path.isdir(d) and os.path.realpath(d) not in seen:
            seen.add(os.path.realpath(d))
            out.append(d)
    return out


__path__ = _extend_path(__path__)
