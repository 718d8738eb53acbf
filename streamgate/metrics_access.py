"""Who may read /metrics: callers from METRICS_ALLOWED_IPS, and scrapers sending
``Authorization: Bearer <METRICS_TOKEN>``. With neither configured (production's default),
nobody; `make run` allows the laptop itself (loopback).

The page names every queue, task and view and how busy each is: not for the public. An address
is the one uvicorn reports; behind a proxy that rewrites it (``--proxy-headers``) prefer the
token, which does not depend on who is trusted to say where a request came from.
"""

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from streamgate.settings.environment import Network, networks_parse


@lru_cache(maxsize=8)
def _allowed_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return networks_parse(values, name="METRICS_ALLOWED_IPS")


def _address_allowed(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:  # no address (a Unix socket) or not one
        return False
    networks = _allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    return any(client in network for network in networks)


def _refusal(status: int, detail: str, reason: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "reason": reason}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when ``request`` may read /metrics; else the 401 (no credentials, a token would do)
    or 403 (wrong token, or this address with no token configured) to answer."""
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    token = settings.METRICS_TOKEN
    if not token:
        return _refusal(
            403,
            "Metrics are not served to this address; set METRICS_TOKEN or METRICS_ALLOWED_IPS.",
            "metrics_forbidden",
        )
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not offered.strip():
        return _refusal(
            401, "Send Authorization: Bearer <METRICS_TOKEN>.", "metrics_token_required"
        )
    if not hmac.compare_digest(offered.strip().encode(), token.encode()):
        return _refusal(403, "Wrong metrics token.", "metrics_token_invalid")
    return None
