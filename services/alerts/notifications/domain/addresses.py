"""Where a webhook may be delivered, pure: a target's host read the way the resolver
reads it, and the addresses a delivery must never connect to (docs/decisions/0094).

A URL's host is checked when the subscription is made, but only a literal address
can be judged then: a name is judged by what it resolves to, at each delivery.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address

# Where cloud providers serve instance credentials; some are not private by range
# (Azure's wire server is a public address), so they are named one by one.
CLOUD_METADATA = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud
    )
)
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT, not on the internet
_BROADCAST = IPv4Address("255.255.255.255")
_NAT64 = IPv6Network("64:ff9b::/96")  # the well-known prefix: IPv4 behind a gateway
_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated ::a.b.c.d
_HEX, _OCTAL, _DECIMAL = (re.compile(p) for p in (r"0x[0-9a-f]*", r"0[0-7]+", r"[0-9]+"))


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host (as ``urlsplit`` gives it) stands for, however it is
    spelt; ``None`` for a name. ``127.1``, ``2130706433``, ``0x7f000001`` and
    ``017700000001`` are all 127.0.0.1 to the resolver (inet_aton's forms)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return ip_address(host)
    except ValueError:
        return _inet_aton(host)


def _inet_aton(host: str) -> IPv4Address | None:
    numbers = [_number(part) for part in host.split(".")]
    if not 1 <= len(numbers) <= 4 or None in numbers:
        return None
    *leading, last = [n for n in numbers if n is not None]
    # Each leading part is a byte; the last one fills the bytes left.
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for place, n in enumerate(leading):
        value += n << (8 * (3 - place))
    return IPv4Address(value)


def _number(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return None if part.startswith("0") and part != "0" else int(part)
    return None


def internal_name(host: str) -> bool:
    """A name that only ever means this machine or its own network."""
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith((".localhost", ".internal"))


def refusal(address: IPAddress) -> str | None:
    """Why a delivery may not connect to ``address`` (``None``: it may): anything but
    a globally routable unicast address."""
    if isinstance(address, IPv6Address):
        inner = _ipv4_inside(address)
        if inner is not None:
            # The packets go to the IPv4 address inside, so it is what is judged.
            why = refusal(inner)
            return None if why is None else f"{why} ({inner} inside an IPv6 address)"
    if address in CLOUD_METADATA:
        return "a cloud metadata address"
    if address == _BROADCAST:
        return "the broadcast address"
    for why, found in (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a shared (carrier-grade NAT) address", address in _SHARED),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
        ("an address not routed on the internet", not address.is_global),
    ):
        if found:
            return why
    return None


def _ipv4_inside(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped (``::ffff:a.b.c.d``), compatible
    (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) or 6to4 (``2002:aabb:ccdd::``)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    low = IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return low
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return low
    return None
