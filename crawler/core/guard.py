"""Which addresses the crawler may connect to: public unicast ones only, unless told otherwise.

Pure: the rules alone, applied by `crawler.engine.fetch` to every address a name resolves to
(at connect time, so the address checked is the address connected to), to IP-literal URLs and
after every redirect. Refused: loopback, private, link-local, CGNAT, multicast, reserved and
unspecified addresses, also when wrapped in an IPv6 form (IPv4-mapped, 6to4, NAT64), and the
names `localhost` and `*.localhost` (RFC 6761: loopback, without asking DNS).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

LOOPBACK = ("127.0.0.1", "::1")
"""Where a `localhost` name goes (RFC 6761, section 6.3)."""

# Networks no public web page lives on. `is_global` catches the rest of the special ranges;
# the list makes the rule independent of the Python version's idea of "global".
_FORBIDDEN = tuple(
    ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): its translator maps into a local network
        "fec0::/10",  # site-local: deprecated (RFC 3879), still routed inside some networks
        "ff00::/8",
    )
)
# Every public IPv6 unicast address is in 2000::/3 (IANA's global unicast space); whatever is
# outside it, once any IPv4 address carried inside has been checked, is no public web server.
_GLOBAL_UNICAST_V6 = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")


def forbidden_address(address: str) -> bool:
    """True when `address` (an IP literal) is not a public unicast address, or not an address."""
    try:
        ip = ip_address(address.strip("[]"))
    except ValueError:
        return True
    return _forbidden_ip(ip)


def _forbidden_ip(ip: IPv4Address | IPv6Address) -> bool:
    if isinstance(ip, IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:  # the IPv4 address is where the packets go
            return _forbidden_ip(inner)
    if any(ip.version == net.version and ip in net for net in _FORBIDDEN):
        return True
    if isinstance(ip, IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 form routes to (mapped, 6to4, NAT64), if any.

    IPv4-compatible addresses (::a.b.c.d, deprecated) are not unwrapped: they fall in the
    reserved ::/8 and are refused whatever they carry.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_ip_literal(host: str) -> bool:
    """True when `host` is an IPv4 or (bracketed or not) IPv6 address."""
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_localhost(host: str) -> bool:
    """True for `localhost` and names under it, with or without a final dot (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def forbidden_host(host: str) -> bool:
    """True when `host` is refused without asking DNS: a non-public IP literal or a localhost name."""
    if is_localhost(host):
        return True
    return is_ip_literal(host) and forbidden_address(host)
