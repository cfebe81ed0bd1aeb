"""sniffer: a Linux connection tracker that rebuilds connections the way Zeek's conn.log does."""

__version__ = "0.1.0"

# The compiled core (sniffer._core) is built into the installed package. Run from a source tree
# installed with `pip install .` (the tests, from a clone), `sniffer` is the source directory,
# which has none: the installed copy's directory joins the package's path, so the core is found.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
