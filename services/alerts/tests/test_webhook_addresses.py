"""Which addresses a webhook may reach, as pure rules: a host read the way the resolver
reads it, every internal range refused (IPv4, IPv6 and IPv4 inside IPv6), and a
subscription to an address spelt oddly refused like the plain one."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from services.alerts.notifications.domain import InvalidSubscription, check_target
from services.alerts.notifications.domain.addresses import host_address, refusal


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_a_host_is_the_address_the_resolver_would_read_in_it(host: str, address: str) -> None:
    assert host_address(host) == ip_address(address)


@pytest.mark.parametrize(
    "host", ["hooks.example", "1.2.3.08", "256.1.1.1", "1.2.3.4.5", "4294967296", "a.1", "1..2"]
)
def test_a_name_or_a_number_the_resolver_would_not_read_is_no_address(host: str) -> None:
    assert host_address(host) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("0.1.2.3", "address"),
        ("192.0.2.10", "address"),
        ("2001:db8::1", "address"),
        ("::ffff:127.0.0.1", "loopback address (127.0.0.1 inside"),
        ("::ffff:7f00:1", "loopback address (127.0.0.1 inside"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::127.0.0.1", "loopback address (127.0.0.1 inside"),
        ("64:ff9b::7f00:1", "loopback address (127.0.0.1 inside"),
        ("64:ff9b::a00:1", "private address (10.0.0.1 inside"),
        ("2002:7f00:1::", "loopback address (127.0.0.1 inside"),
        ("2002:a9fe:a9fe::1", "cloud metadata"),
        ("64:ff9b:1::1", "address"),
    ],
)
def test_every_internal_address_is_refused_with_what_it_is(address: str, reason: str) -> None:
    why = refusal(ip_address(address))
    assert why is not None and reason in why


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_a_public_unicast_address_may_be_reached(address: str) -> None:
    assert refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://127.1:8443/", "127.1 is 127.0.0.1, a loopback address"),
        ("https://2130706433:8443/", "2130706433 is 127.0.0.1, a loopback address"),
        ("https://0x7f000001:8443/", "0x7f000001 is 127.0.0.1, a loopback address"),
        ("https://017700000001:8443/", "is 127.0.0.1, a loopback address"),
        ("https://127.0.0.1.:8443/", "a loopback address"),
        ("https://[::ffff:127.0.0.1]/", "127.0.0.1 inside an IPv6 address"),
        ("https://[::ffff:7f00:1]/", "127.0.0.1 inside an IPv6 address"),
        ("https://[64:ff9b::7f00:1]/", "127.0.0.1 inside an IPv6 address"),
        ("https://[2002:7f00:1::]/", "127.0.0.1 inside an IPv6 address"),
        ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("https://[fd00:ec2::254]/", "a cloud metadata address"),
        ("https://100.100.100.200/", "a cloud metadata address"),
        ("https://100.64.0.7/", "carrier-grade NAT"),
        ("https://0/", "is 0.0.0.0, an unspecified address"),
        ("https://[::]/", "an unspecified address"),
        ("https://224.0.0.251/", "a multicast address"),
        ("https://255.255.255.255/", "the broadcast address"),
        ("https://[fe80::1%25eth0]/", "a link-local address"),
        ("https://localhost./", "names this machine"),
        ("https://metadata.google.internal/", "names this machine"),
    ],
)
def test_an_internal_address_however_spelt_is_refused_as_the_url(url: str, shown: str) -> None:
    with pytest.raises(InvalidSubscription) as refused:
        check_target(url, allow_insecure=False)
    assert refused.value.field == "url"
    assert shown in refused.value.reason


def test_a_name_is_accepted_when_subscribing_it_is_checked_at_each_delivery() -> None:
    target = check_target("https://hooks.example:8443/in", allow_insecure=False)
    assert target.url == "https://hooks.example:8443/in"
    assert check_target("https://8.8.8.8/in", allow_insecure=False).channel == "webhook"


def test_insecure_targets_let_loopback_receivers_in_for_development() -> None:
    for url in ("http://127.0.0.1:8443/", "https://127.1:8443/", "http://localhost:9/"):
        assert check_target(url, allow_insecure=True).url == url
