"""Websocket authentication: the session (browsers) or ``Authorization: Bearer`` (apps)."""

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from apps.access.middleware import session_stands
from apps.access.selectors import api_token_authenticate
from apps.access.services import api_token_touch
from apps.content.scopes import READ


@database_sync_to_async
def _user_for_token(clear: str) -> AbstractBaseUser | None:
    token = api_token_authenticate(clear)
    # The progress websocket shows what GET /api/v1/contents/<id>/ does: it needs ``read``.
    if token is None or READ not in token.scopes:
        return None
    api_token_touch(token=token)
    return token.user


def _bearer(scope: dict[str, Any]) -> str | None:
    headers = dict(scope.get("headers", []))
    scheme, _, clear = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return clear.strip() if scheme.lower() == "bearer" and clear.strip() else None


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, the port filled in; None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


@lru_cache(maxsize=8)
def _allowed(configured: tuple[str, ...]) -> frozenset[tuple[str, str, int]]:
    # A wildcard CSRF entry ("https://*.example.com") is not an origin: never matched here.
    return frozenset(
        origin for origin in map(_origin, configured) if origin and "*" not in origin[1]
    )


def allowed_websocket_origins() -> frozenset[tuple[str, str, int]]:
    """The origins whose pages may open a websocket on the session cookie: this site
    (STREAMGATE_PUBLIC_URL) and CSRF_TRUSTED_ORIGINS, each as exact scheme, host and port."""
    return _allowed((settings.STREAMGATE_PUBLIC_URL, *settings.CSRF_TRUSTED_ORIGINS))


class CookieOriginValidator:
    """Refuses a handshake that relies on the session cookie unless its Origin is exactly one of
    ``allowed_websocket_origins()`` (scheme, host and port; a missing or "null" Origin is refused).

    Cross-site websocket hijacking rides on cookies a browser attaches by itself, from any page
    on any port of any host: another app on http://127.0.0.1:9999 is another origin. A handshake
    carrying ``Authorization: Bearer`` was built by a client holding the token (browsers cannot
    set that header on a websocket), and native apps send no Origin at all: no check for those.
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive, send):
        if _bearer(scope):
            return await self.application(scope, receive, send)
        offered = dict(scope.get("headers", [])).get(b"origin", b"").decode("latin-1")
        origin = _origin(offered)
        if origin is None or origin not in allowed_websocket_origins():
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


class BearerTokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope["user"]`` from a bearer token when the handshake carries one.

    Runs inside AuthMiddlewareStack, so a handshake without the header keeps the session user.
    A bad token leaves the user anonymous rather than falling back to the session.
    """

    async def __call__(self, scope: dict[str, Any], receive, send):
        clear = _bearer(scope)
        if clear:
            from django.contrib.auth.models import AnonymousUser

            user = await _user_for_token(clear)
            scope = dict(scope, user=user or AnonymousUser())
        return await super().__call__(scope, receive, send)


class SessionStandsMiddleware(BaseMiddleware):
    """A session user whose session no longer stands (apps/access/middleware.py: a sign-out
    everywhere since, or its sign-in wallet unlinked) is anonymous here, as in a page."""

    async def __call__(self, scope: dict[str, Any], receive, send):
        user, session = scope.get("user"), scope.get("session")
        signed_in = user is not None and user.is_authenticated and session is not None
        if signed_in and not await database_sync_to_async(session_stands)(session, user):
            from django.contrib.auth.models import AnonymousUser

            scope = dict(scope, user=AnonymousUser())
        return await super().__call__(scope, receive, send)


def websocket_auth_stack(inner):
    """Origin check for cookie handshakes, then session auth (while the session stands), then
    bearer-token auth."""
    return CookieOriginValidator(
        AuthMiddlewareStack(SessionStandsMiddleware(BearerTokenAuthMiddleware(inner)))
    )
