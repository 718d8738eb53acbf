"""The boundary to receivers: one POST, to an address checked by the guard, and nothing else.

The name is resolved once (guard.resolve), every address it has is checked, and the
connection goes to the checked address (urllib3 pools keyed by that address; TLS still checks
the certificate against the name, sent as SNI and Host). No second resolution can point the
request elsewhere (DNS rebinding). Redirects are not followed: a 3xx is recorded as a failed
attempt naming its Location, as Stripe and GitHub treat them; a receiver answers itself.
"""

import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from apps.content.webhooks.guard import AddressPolicy, ResolveFailed, resolve, url_parse

EXCERPT_BYTES = 1024
_POOLS: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_POOLS_LOCK = threading.Lock()
_MAX_POOLS = 256


@dataclass(frozen=True)
class Attempt:
    """What one POST saw. ``refused``: the guard stopped it before anything was sent."""

    status_code: int | None = None
    latency_ms: int | None = None
    excerpt: str = ""
    error: str = ""
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _pool(parts: SplitResult, address: str, port: int) -> urllib3.HTTPConnectionPool:
    host = parts.hostname or ""
    key = (parts.scheme, address, port, host)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            if len(_POOLS) >= _MAX_POOLS:
                _POOLS.pop(next(iter(_POOLS))).close()
            if parts.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    address,
                    port,
                    maxsize=4,
                    cert_reqs="CERT_REQUIRED",
                    ca_certs=certifi.where(),
                    server_hostname=host,
                    assert_hostname=host,
                )
            else:
                pool = urllib3.HTTPConnectionPool(address, port, maxsize=4)
            _POOLS[key] = pool
    return pool


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    policy: AddressPolicy,
    nameservers: list[str],
    connect_timeout: float,
    timeout: float,
) -> Attempt:
    """POST ``body`` to ``url``; never raises for what the network or receiver does."""
    parts = url_parse(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port=port, nameservers=nameservers, timeout=connect_timeout)
    except ResolveFailed as error:
        return Attempt(error=str(error))
    for address in addresses:
        kind = policy.refusal(address)
        if kind:
            shown = host if str(address) == host else f"{host} resolves to {address}, which"
            return Attempt(
                refused=True,
                error=(
                    f"Refused: {shown} is a {kind} address. Webhook endpoints must be public "
                    "(WEBHOOK_ALLOW_PRIVATE=1 allows private ones for local development)."
                ),
            )
    address = str(addresses[0])
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        response = _pool(parts, address, port).urlopen(
            "POST",
            target,
            body=body,
            # The name as written (credentials are refused when the URL is saved).
            headers={**headers, "Host": parts.netloc},
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout, total=timeout),
        )
        try:
            excerpt = response.read(EXCERPT_BYTES + 1)
            if len(excerpt) > EXCERPT_BYTES:
                response.close()  # a long answer is not read to its end
            else:
                response.drain_conn()
                response.release_conn()
        except BaseException:
            response.close()
            raise
    except Urllib3Timeout:
        return Attempt(
            latency_ms=_ms(started), error=f"No answer within {timeout:g} s (timed out)."
        )
    except NewConnectionError as error:
        return Attempt(
            latency_ms=_ms(started), error=f"Could not connect: {error.__cause__ or error}"
        )
    except SSLError as error:
        return Attempt(latency_ms=_ms(started), error=f"TLS failed: {error}")
    except HTTPError as error:
        return Attempt(latency_ms=_ms(started), error=f"The connection failed: {error}")
    text = excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    code = response.status
    error = ""
    if 300 <= code < 400:
        location = response.headers.get("Location", "")
        error = (
            f"Redirect ({code}) to {location[:500]!r} not followed: webhook endpoints must "
            "answer 2xx themselves; update the endpoint's URL."
        )
    elif not 200 <= code < 300:
        error = f"The endpoint answered {code}."
    return Attempt(status_code=code, latency_ms=_ms(started), excerpt=text, error=error)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
