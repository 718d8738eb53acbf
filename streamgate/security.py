"""Response headers every page carries (a Content-Security-Policy for the web UI, a
Permissions-Policy). Password sign-in is throttled by django-axes, configured in
apps/access/password_throttle.py.

The CSP allows scripts only from this origin (the web UI ships no inline script; its JSON
configuration travels in non-executable ``application/json`` blocks), media, images and XHR from
this origin and the storage's presigned URLs, hls.js's blob: worker and media (and its empty
data: subtitle tracks), and no framing except for the embeddable player. The admin and the
Swagger page (inline scripts of their own) get the other headers only."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

CSP_EXEMPT_PREFIXES = ("/admin/", "/api/docs/")
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def content_security_policy(*, frameable: bool) -> str:
    media = " ".join(settings.STREAM_MEDIA_ORIGINS)
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": f"'self' data: blob: {media}",
        # data: for hls.js's subtitle <track> elements (src "data:,WEBVTT": an empty track
        # it fills with cues itself); media as data can run nothing.
        "media-src": " ".join(["'self'", "blob:", *settings.STREAM_MEDIA_ORIGINS, "data:"]),
        "connect-src": f"'self' {media}",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": settings.EMBED_FRAME_ANCESTORS if frameable else "'none'",
    }
    return "; ".join(f"{name} {value}".strip() for name, value in directives.items())


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        is_html = response.get("Content-Type", "").startswith("text/html")
        if is_html and not request.path.startswith(CSP_EXEMPT_PREFIXES):
            frameable = getattr(response, "xframe_options_exempt", False)
            response.setdefault(
                "Content-Security-Policy", content_security_policy(frameable=frameable)
            )
        return response
