"""The shape of sniffer's own custom records, checked before a recording's records are used.

A recording (`sniffer live -w`) carries the kernel's view as JSON objects in pcapng Custom
Blocks; `sniffer read` replays them into the correlator (sniffer.correlate) and the detectors,
which index, hash and format their fields. A damaged or hostile file can put anything there, so
the reader hands over only records whose fields have the types those consumers rely on (see
sniffer/kernel/view.py for the socket record, sniffer/kernel/monitor.py for the events,
sniffer/kernel/conntrack.py for the conntrack entries); the
others are counted as ``pcapng_custom_block_bad`` like undecodable ones. Unknown kinds and extra
fields pass: a newer recording stays readable.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket

# Fields of a socket record and the JSON types each may have (None: null).
_STR_OR_NONE = (str, type(None))
_SOCKET_TEXT = ("proto", "state", "user", "netns", "container", "owner", "summary", "service",
                "cgroup", "role", "via")
_SOCKET_PORTS = ("local_port", "remote_port")
_SOCKET_ADDRS = ("local_addr", "remote_addr")
_SOCKET_LISTS = ("seen_in", "missing_from")  # a hidden socket's evidence: lists of names


def timestamp(value: object) -> float | None:
    """A record's ``ts`` as a finite float, or None (missing, not a number, out of range)."""
    if type(value) not in (int, float):
        return None
    try:
        ts = float(value)  # a huge JSON integer does not fit
    except OverflowError:
        return None
    return ts if math.isfinite(ts) else None


def well_formed(rec: dict) -> bool:
    """True if the fields of the event `rec` that sniffer reads have the types it expects."""
    try:
        # A lone surrogate ("\ud800" is valid JSON) could never be written out as UTF-8.
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    kind = rec["kind"]
    if kind == "addresses":
        return (_str_list(rec.get("addresses", ()))
                and _str_list(rec.get("local_prefixes", ()), _is_net)
                and type(rec.get("netns")) in _STR_OR_NONE)
    if kind in ("snapshot", "sockets", "hidden"):
        sockets = rec.get("sockets", ())
        return type(sockets) in (list, tuple) and all(_socket(s) for s in sockets) and (
            kind != "hidden" or all(_hidden(s) for s in sockets))
    if kind == "destroy":
        s = rec.get("socket")
        return s is None or _socket(s)
    if kind == "conntrack":
        entries = rec.get("entries", ())
        return (rec.get("event") in _CT_EVENTS and type(rec.get("events", True)) is bool
                and type(entries) in (list, tuple) and all(_ct_entry(e) for e in entries)
                and (rec["event"] != "overheard" or _flow(rec.get("flow"))))
    return True


_CT_EVENTS = ("dump", "new", "destroy", "lost", "overheard")


def _flow(f: object) -> bool:
    """An overheard flow: [proto, orig_h, orig_p, resp_h, resp_p]."""
    return (type(f) is list and len(f) == 5 and type(f[0]) is str
            and all(type(f[i]) is str and _is_addr(f[i]) for i in (1, 3))
            and all(type(f[i]) is int and 0 <= f[i] <= 0xFFFF for i in (2, 4)))


def _ct_entry(e: object) -> bool:
    """A conntrack entry (sniffer.kernel.conntrack.CtEntry.to_json): what sniffer.ctview
    indexes and writes into records: protocol and family, both tuples' addresses and ports,
    id, state, status, nat."""
    if type(e) is not dict or type(e.get("proto")) is not str or e.get("family") not in (4, 6):
        return False
    for name in ("state", "nat"):
        if type(e.get(name)) not in _STR_OR_NONE:
            return False
    if type(e.get("id")) not in (int, type(None)) or not _str_list(e.get("status", ())):
        return False
    for name in ("orig", "reply"):
        t = e.get(name)
        if type(t) is not dict:
            return False
        for addr in ("src", "dst"):
            if not (type(t.get(addr)) is str and _is_addr(t[addr])):
                return False
        for port in ("sport", "dport"):
            v = t.get(port)
            if v is not None and (type(v) is not int or not 0 <= v <= 0xFFFF):
                return False
    return True


def _socket(s: object) -> bool:
    """A socket record: text fields text, ports 0-65535, addresses real addresses."""
    if type(s) is not dict:
        return False
    for name in _SOCKET_TEXT:
        if type(s.get(name)) not in _STR_OR_NONE:
            return False
    for name in _SOCKET_PORTS:
        v = s.get(name)
        if v is not None and (type(v) is not int or not 0 <= v <= 0xFFFF):
            return False
    for name in _SOCKET_ADDRS:  # "": none (a bind probe's finding has no remote end)
        v = s.get(name)
        if v is not None and not (type(v) is str and (not v or _is_addr(v))):
            return False
    for name in _SOCKET_LISTS:
        v = s.get(name)
        if v is not None and not _str_list(v):
            return False
    inode = s.get("inode")
    if inode is not None and type(inode) is not int:
        return False
    # The correlator files a socket with a local address by its state.
    if s.get("local_addr") is not None and type(s.get("state")) is not str:
        return False
    procs = s.get("processes")
    if procs is None:
        return True
    return type(procs) is list and all(
        type(p) is dict and type(p.get("pid")) is int and type(p.get("name")) is str
        for p in procs)


def _hidden(s: dict) -> bool:
    """A hidden socket with a remote end names both addresses and the local port (its
    Community ID needs them)."""
    return not s.get("remote_port") or bool(s.get("local_addr") and s.get("remote_addr")
                                            and s.get("local_port") is not None)


def _str_list(v: object, ok=None) -> bool:
    return type(v) in (list, tuple) and all(type(x) is str and (ok is None or ok(x)) for x in v)


def _is_addr(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return False
    return True


def _is_net(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
