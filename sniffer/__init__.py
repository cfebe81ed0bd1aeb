"""sniffer: a Linux connection tracker that rebuilds connections the way Zeek's conn.log does."""

__version__ = "0.1.0"
