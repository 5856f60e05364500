"""Which addresses outgoing HTTP may reach."""

import ipaddress

import pytest

from taskloom_tools.address_guard import AllowList, allowed_addresses, refusal
from taskloom_tools.base import StepToolError


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("feff:ffff::1", "a site-local address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("100.64.0.1", "not a public address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("64:ff9b::7f00:1", "a loopback address"),
        ("2002:a9fe:a9fe::", "a cloud metadata address"),
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    """Each kind of non-public address is refused and named."""
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_are_not_refused(address: str) -> None:
    """A public address has no refusal."""
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_reads_hosts_and_networks() -> None:
    """allow_hosts splits into lower-case host names and networks, a bare IP being one address."""
    allow = AllowList.parse(" Intranet.Example. , 10.0.0.0/8,192.168.1.5, [::1] ,")
    assert allow.hosts == frozenset({"intranet.example"})
    assert [str(net) for net in allow.networks] == ["10.0.0.0/8", "192.168.1.5/32", "::1/128"]


def test_a_network_does_not_open_a_metadata_address_inside_it() -> None:
    """A broad network that contains a metadata address does not allow it."""
    allow = AllowList.parse("169.254.0.0/16")
    assert allow.covers_ip(ipaddress.ip_address("169.254.1.1"))
    assert not allow.covers_ip(ipaddress.ip_address("169.254.169.254"))


def test_an_exact_entry_opens_a_metadata_address() -> None:
    """A metadata address named exactly in allow_hosts is allowed."""
    allow = AllowList.parse("169.254.169.254")
    assert allow.covers_ip(ipaddress.ip_address("169.254.169.254"))


async def test_an_ip_literal_is_checked_without_resolving() -> None:
    """A public IP literal is returned as the address to connect to."""
    assert await allowed_addresses("93.184.215.14", 443, AllowList()) == ["93.184.215.14"]


async def test_an_unresolvable_name_fails_with_the_name() -> None:
    """A host that does not resolve fails with a message naming it."""
    with pytest.raises(StepToolError, match=r"Could not resolve host 'exa..mple'"):
        await allowed_addresses("exa..mple", 80, AllowList())


async def test_a_site_local_ipv6_literal_is_refused_before_connecting() -> None:
    """A URL host in fec0::/10 is refused, naming it site-local."""
    with pytest.raises(StepToolError, match=r"fec0::1.*a site-local address"):
        await allowed_addresses("[fec0::1]", 80, AllowList())
