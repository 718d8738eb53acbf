"""Which addresses a webhook may be sent to (SSRF guard), and resolving an endpoint's name.

Written here rather than taken from a library: the maintained SSRF helpers wrap ``requests``
and resolve a second time when they connect (DNS rebinding); we resolve once, check every
address, and connect to the checked address ourselves (apps/content/webhooks/http.py).
Names are resolved by dnspython when WEBHOOK_DNS_NAMESERVERS names servers, else by the
system resolver (``getaddrinfo``: /etc/hosts included).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import dns.exception
import dns.nameserver
import dns.resolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2000
_KINDS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class UrlRefused(Exception):
    """A URL no webhook may have; the message says why, for the creator."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class ResolveFailed(Exception):
    """The endpoint's name did not resolve (now): the attempt fails and is retried."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` may not receive webhooks ("loopback", "private"...), or None."""
        if self.allow_private or any(address in net for net in self.allowed_networks):
            return None
        return address_kind(address)


def address_kind(address: Address) -> str | None:
    """The kind of non-public address this is, or None for a public one. An IPv6 address
    that embeds an IPv4 one (mapped, 6to4, Teredo) is judged by that one as well."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour):
            if embedded is not None:
                kind = address_kind(embedded)
                if kind:
                    return kind
        if address.teredo is not None:
            return address_kind(address.teredo[1]) or "reserved"  # Teredo tunnels: refused
    for attribute, kind in _KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:  # shared address space (100.64.0.0/10) and the like
        return "non-public"
    return None


def url_parse(url: str) -> SplitResult:
    """The parts of an endpoint URL, or UrlRefused: http(s) only, a host, no credentials."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("Give the endpoint's URL.", reason="url_required")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.", reason="url")
    if any(ord(char) < 33 for char in url):
        raise UrlRefused("The URL may not contain spaces or control characters.", reason="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefused(f"The URL is not valid: {error}.", reason="url") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("The URL must start with https:// or http://.", reason="url_scheme")
    if not parts.hostname:
        raise UrlRefused("The URL has no host.", reason="url")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "The URL may not contain a user name or password: verify our signature instead.",
            reason="url_credentials",
        )
    if port == 0:
        raise UrlRefused("The URL's port must be 1-65535.", reason="url")
    return parts


def url_check(url: str, *, policy: AddressPolicy) -> str:
    """The URL as stored, or UrlRefused. A literal address (or ``localhost``) that is not
    public is refused now; names are resolved and checked at every attempt."""
    parts = url_parse(url)
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        literal: Address | None = ipaddress.ip_address("127.0.0.1")
    else:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
    if literal is not None:
        kind = policy.refusal(literal)
        if kind:
            raise UrlRefused(
                f"{host} is a {kind} address: webhook endpoints must be reachable on the "
                "public internet.",
                reason="url_private",
            )
    return url.strip()


def _nameserver(value: str) -> dns.nameserver.Do53Nameserver:
    """A server named "address", "address:port" or "[v6 address]:port"."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return dns.nameserver.Do53Nameserver(host, int(port or 53))


def resolve(host: str, *, port: int, nameservers: list[str], timeout: float) -> list[Address]:
    """Every address ``host`` resolves to (a literal address is itself); ResolveFailed when
    it resolves to none."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(value) for value in nameservers]
        found: list[Address] = []
        for record in ("A", "AAAA"):
            try:
                answer = resolver.resolve(host, record, lifetime=timeout, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as error:
                raise ResolveFailed(f"{host} did not resolve: {error}") from None
            found += [ipaddress.ip_address(item.address) for item in answer]
        if not found:
            raise ResolveFailed(f"{host} has no address (A or AAAA record)")
        return found
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ResolveFailed(f"{host} did not resolve: {error}") from None
    # The scope of a link-local IPv6 answer ("fe80::1%eth0") is dropped: it is refused anyway.
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )
