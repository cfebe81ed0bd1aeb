"""Named counters every stage adds to; the summary prints them."""

from collections import Counter


class Stats(Counter):
    """`stats["bad_IP_checksum"] += 1`: counts of packets, drops and anomalies by name."""
