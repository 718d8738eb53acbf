"""Response headers every page carries (a Content-Security-Policy for the web UI, a
Permissions-Policy) and a throttle on the admin's login form.

The CSP allows scripts only from this origin (the web UI ships no inline script; its JSON
configuration travels in non-executable ``application/json`` blocks), media, images and XHR
from this origin and the storage's presigned URLs, hls.js's blob: worker and media, and no
framing except for the embeddable player. The admin and the Swagger page (inline scripts of
their own) get the other headers only."""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
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
        "media-src": f"'self' blob: {media}",
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


class AdminLoginThrottleMiddleware:
    """At most ADMIN_LOGIN_FAILURES failed admin logins per client address and username per
    ADMIN_LOGIN_WINDOW seconds; then 429 with Retry-After until the window ends. A successful
    login clears the count."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/admin/login/":
            return self.get_response(request)
        username = request.POST.get("username", "")
        client = request.META.get("REMOTE_ADDR", "")
        digest = hashlib.sha256(f"{client}|{username.lower()}".encode()).hexdigest()[:32]
        key = f"admin-login:{digest}"
        record = cache.get(key)
        now = time.time()
        if record and record["count"] >= settings.ADMIN_LOGIN_FAILURES and record["until"] > now:
            wait = math.ceil(record["until"] - now)
            response = HttpResponse(
                "Too many failed sign-ins. Try again later.",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(wait)
            return response
        response = self.get_response(request)
        if response.status_code == 302:  # signed in
            cache.delete(key)
        elif response.status_code == 200:  # the form again: a failed attempt
            if not record or record["until"] <= now:
                record = {"count": 0, "until": now + settings.ADMIN_LOGIN_WINDOW}
            record["count"] += 1
            cache.set(key, record, timeout=settings.ADMIN_LOGIN_WINDOW)
        return response
