"""IP in IP: IPv4 or IPv6 directly inside IPv4 or IPv6 (4in4, 6in4, 4in6, 6in6)."""

from sniffer.tunnels import LINK_RAW, exact_ip, register_ip


@register_ip(4)
def ipv4_in_ip(data: bytes):
    return exact_ip(data, 0, 4) or (LINK_RAW, 0, "IP")


@register_ip(41)
def ipv6_in_ip(data: bytes):
    return exact_ip(data, 0, 6) or (LINK_RAW, 0, "IP")
