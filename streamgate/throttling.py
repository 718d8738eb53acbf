"""DRF's scoped rate limits, for a cache that may be away.

DRF's throttles count in the cache (Redis). When it does not answer, each endpoint decides
what a limit that cannot count does:

- ``LenientScopedRateThrottle`` lets the request through (fail open), for endpoints whose
  callers are bounded otherwise: upload creation (signed-in creators, within their quota) and
  playback (viewers; gate checks have their own timeouts). Watching and uploading go on.
- ``StrictScopedRateThrottle`` answers 503 with Retry-After (fail closed), for anonymous doors
  that each write a row or check a signature: wallet sign-in (nonces and verification).

Either way the event is logged and counted (streamgate/outages.py), never a 500.
"""

from rest_framework.throttling import ScopedRateThrottle

from streamgate.outages import CACHE, outage_of, outage_recorded, unavailable


class LenientScopedRateThrottle(ScopedRateThrottle):
    fail_open = True

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as error:
            if outage_of(error) != CACHE:
                raise
            action = "degraded" if self.fail_open else "refused"
            outage_recorded(CACHE, error, action=action, path=request.path, throttle=self.scope)
            if self.fail_open:
                return True
            raise unavailable(CACHE) from error


class StrictScopedRateThrottle(LenientScopedRateThrottle):
    fail_open = False
