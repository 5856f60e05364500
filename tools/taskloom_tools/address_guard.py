"""Which addresses outgoing HTTP may reach: public ones, plus what the operator allows.

A chain is written by a model and may run unattended, so a URL must not reach the machine's own
services, the local network or a cloud metadata endpoint. Names are resolved here and the caller
connects to the vetted addresses only, so a second DNS answer cannot swap in another address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from taskloom_tools.base import StepToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_IPS: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OCI, DigitalOcean
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CHECKS = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_unspecified", "an unspecified address"),
    ("is_site_local", "a site-local address"),  # fec0::/10: deprecated, still routed inside
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)
ALLOW_HINT = (
    "Only public addresses are reachable; an operator can allow a host or network with "
    "TASKLOOM_HTTP_ALLOW_HOSTS (comma-separated hostnames or CIDRs)."
)


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions: exact hostnames, and networks (a bare IP is a /32 or /128)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in text.split(","):
            entry = item.strip().lower().strip("[]").rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def covers_ip(self, ip: IPAddress) -> bool:
        # A metadata endpoint must be named exactly; a broad CIDR such as 169.254.0.0/16 that
        # happens to contain it does not open it.
        if ip in METADATA_IPS:
            return any(net.num_addresses == 1 and ip in net for net in self.networks)
        return any(ip in net for net in self.networks)


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be reached without the operator's leave, or None for a public address."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return refusal(embedded)
    if ip in METADATA_IPS:
        return "a cloud metadata address"
    for attribute, words in _CHECKS:
        if getattr(ip, attribute, False):  # is_site_local exists for IPv6 only
            return words
    return None if ip.is_global else "not a public address"


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is what it reaches."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


async def allowed_addresses(host: str, port: int, allow: AllowList) -> list[str]:
    """The addresses of `host` that may be reached, in resolver order; raises if there are none."""
    name = host.lower().strip("[]").rstrip(".")
    if name in allow.hosts:
        return [str(ip) for ip in await _addresses(name, port)]
    if name in METADATA_HOSTS:
        raise StepToolError(
            f"Refused to connect to {host}: it is a cloud metadata host. {ALLOW_HINT}"
        )
    ips = await _addresses(name, port)
    allowed = [str(ip) for ip in ips if refusal(ip) is None or allow.covers_ip(ip)]
    if not allowed:
        raise StepToolError(_refused_message(host, ips))
    return allowed


def _refused_message(host: str, ips: list[IPAddress]) -> str:
    reasons = ", ".join(f"{ip} is {refusal(ip)}" for ip in ips)
    if len(ips) == 1 and str(ips[0]) == host.strip("[]"):
        return f"Refused to connect to {host}: it is {refusal(ips[0])}. {ALLOW_HINT}"
    return f"Refused to connect to {host}: it resolves to {reasons}. {ALLOW_HINT}"


async def _addresses(name: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise StepToolError(f"Could not resolve host {name!r} ({why}). Check the URL.") from exc
    unique: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        unique[ipaddress.ip_address(sockaddr[0])] = None
    return list(unique)
