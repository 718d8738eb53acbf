"""The boundary to an IPFS Pinning Service API (ipfs.github.io/pinning-services-api-spec):
``POST /pins`` and ``GET /pins/{requestid}`` with a bearer token. Nothing else lives here."""

from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT = 15
STATUSES = {"queued", "pinning", "pinned", "failed"}


class PinningError(Exception):
    """The service refused (permanent: bad request, bad token, unknown pin) or was unreachable."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class PinState:
    request_id: str
    status: str
    cid: str
    error: str | None = None


class PinningService:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def add(self, *, cid: str, name: str, meta: dict[str, str]) -> PinState:
        return self._call("POST", "/pins", json={"cid": cid, "name": name, "meta": meta})

    def status(self, request_id: str) -> PinState:
        return self._call("GET", f"/pins/{request_id}")

    def find(self, *, cid: str, name: str) -> PinState | None:
        """An existing pin request for ``cid`` under ``name`` (GET /pins?cid=…&name=…)."""
        try:
            response = requests.get(
                self.base_url + "/pins",
                headers=self.headers,
                timeout=TIMEOUT,
                params={"cid": cid, "name": name, "limit": 1},
            )
        except requests.RequestException as error:
            raise PinningError(f"pinning service unreachable: {error}", permanent=False) from error
        if response.status_code >= 400:
            return None  # listing is optional for our purposes: fall back to adding
        results = _json(response).get("results") or []
        return self._state(results[0]) if results else None

    def _call(self, method: str, path: str, **kwargs: Any) -> PinState:
        try:
            response = requests.request(
                method, self.base_url + path, headers=self.headers, timeout=TIMEOUT, **kwargs
            )
        except requests.RequestException as error:
            raise PinningError(f"pinning service unreachable: {error}", permanent=False) from error
        if response.status_code >= 500 or response.status_code == 429:
            raise PinningError(f"pinning service answered {response.status_code}", permanent=False)
        body = _json(response)
        if response.status_code >= 400:
            reason = (
                (body.get("error") or {}).get("details")
                or (body.get("error") or {}).get("reason")
                or response.reason
            )
            raise PinningError(
                f"pinning service refused ({response.status_code}): {reason}", permanent=True
            )
        return self._state(body)

    def _state(self, body: dict[str, Any]) -> PinState:
        status = body.get("status")
        if status not in STATUSES or not body.get("requestid"):
            raise PinningError(
                f"unexpected answer from the pinning service: {body!r}"[:300], permanent=False
            )
        info = body.get("info") or {}
        return PinState(
            request_id=body["requestid"],
            status=status,
            cid=(body.get("pin") or {}).get("cid", ""),
            error=info.get("status_details") if status == "failed" else None,
        )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
