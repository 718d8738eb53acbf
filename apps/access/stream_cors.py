"""CORS for /stream/: every origin may read stream responses, none is told to send credentials.

The signed token in a stream URL is the capability (apps/access/stream.py); cookies never open
a stream. So, as hosted video platforms do, playlists, manifests, segments, images and their
errors answer ``Access-Control-Allow-Origin: *`` to players on any page, and a preflight for a
Range request is answered here without reaching the view. The JSON API keeps its allowlist
(django-cors-headers, ``CORS_URLS_REGEX`` names /api/ only).

Why not django-cors-headers for this path too: it echoes the request's Origin and adds
``Vary: Origin`` (one cache entry per origin) and would honour ``CORS_ALLOW_CREDENTIALS``; a
stream answer is the same for every origin, which ``*`` says and credentials would contradict.
The whole policy is the handful of headers below.
"""

from django.http import HttpRequest, HttpResponse

STREAM_PREFIX = "/stream/"
# The key URLs of encrypted media (apps/access/content_keys.py): the same policy, and POST for
# ClearKey license requests.
KEY_PREFIX = "/keys/"
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
# Range is what players send; "*" admits any other header of a non-credentialed request.
ALLOW_HEADERS = "Range, *"
EXPOSE_HEADERS = "Content-Length, Content-Range, Accept-Ranges, Retry-After"
PREFLIGHT_MAX_AGE = "86400"


def _is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


class StreamCorsMiddleware:
    """Opens every /stream/ response (any status) to every origin, without credentials."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith((STREAM_PREFIX, KEY_PREFIX)):
            return self.get_response(request)
        if _is_preflight(request):
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            response = self.get_response(request)
            response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Access-Control-Allow-Origin"] = "*"
        del response["Access-Control-Allow-Credentials"]
        return response
