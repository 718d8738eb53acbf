"""Who is the client: one decision for rate limits, the password throttle, logs and audit rows.

The socket peer is the client, unless it is one of ``TRUSTED_PROXIES`` (addresses or CIDRs of
the reverse proxies in front of us). Then ``X-Forwarded-For`` is read from the right: each proxy
appends the address it was connected from, so the right-most address that is not a trusted
proxy is the client, and whatever a client wrote further left is ignored. Empty (the default):
the header is never read, so a header can never choose the address a limit is counted against.

``ClientAddressMiddleware`` writes the decision into ``REMOTE_ADDR`` before anything reads it,
so DRF's throttles (``NUM_PROXIES = 0``: REMOTE_ADDR only), django-axes
(``AXES_CLIENT_IP_CALLABLE``), log records and anything else that reads ``REMOTE_ADDR`` agree.
uvicorn runs with ``--no-proxy-headers`` (Procfile, compose, Dockerfile) so it hands us the socket
peer rather than deciding on its own.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

# request.META key: whether the socket peer was one of TRUSTED_PROXIES (so that headers it
# sets, such as X-Request-ID, may be believed: streamgate/observability.py).
FROM_TRUSTED_PROXY = "streamgate.from_trusted_proxy"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``TRUSTED_PROXIES`` entries as networks; a bad entry is a configuration error."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network."
            ) from error
    return tuple(networks)


def parse_address(value: str) -> IPAddress | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``);
    IPv4-mapped IPv6 addresses read as IPv4. None when it is not an address."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_address(*, peer: str, forwarded_for: str, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address: ``peer`` itself unless it is a trusted proxy; then the right-most
    ``forwarded_for`` hop that is not a trusted proxy. A hop that is not an address stops the
    walk at the last trusted hop (never at a value a client could have written)."""
    current = parse_address(peer)
    if current is None or not _trusted(current, trusted):
        return str(current) if current is not None else peer
    for hop in reversed(forwarded_for.split(",") if forwarded_for else []):
        address = parse_address(hop)
        if address is None:
            break
        current = address
        if not _trusted(current, trusted):
            break
    return str(current)


def _trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


def request_client_address(request: HttpRequest) -> str | None:
    """The decided client address of a request (``AXES_CLIENT_IP_CALLABLE``)."""
    return request.META.get("REMOTE_ADDR") or None


class ClientAddressMiddleware:
    """Replaces ``REMOTE_ADDR`` with the client's address as decided above (first middleware)."""

    def __init__(self, get_response):
        self.get_response = get_response
        trusted_networks(tuple(settings.TRUSTED_PROXIES))  # a bad entry fails at startup

    def __call__(self, request: HttpRequest) -> HttpResponse:
        trusted = trusted_networks(tuple(settings.TRUSTED_PROXIES))
        peer = parse_address(request.META.get("REMOTE_ADDR", ""))
        request.META[FROM_TRUSTED_PROXY] = peer is not None and _trusted(peer, trusted)
        request.META["REMOTE_ADDR"] = client_address(
            peer=request.META.get("REMOTE_ADDR", ""),
            forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR", ""),
            trusted=trusted,
        )
        return self.get_response(request)
