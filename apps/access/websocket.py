"""Websocket authentication: the session (browsers) or ``Authorization: Bearer`` (apps)."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AbstractBaseUser

from apps.access.selectors import api_token_authenticate
from apps.access.services import api_token_touch


@database_sync_to_async
def _user_for_token(clear: str) -> AbstractBaseUser | None:
    token = api_token_authenticate(clear)
    if token is None:
        return None
    api_token_touch(token=token)
    return token.user


def _bearer(scope: dict[str, Any]) -> str | None:
    headers = dict(scope.get("headers", []))
    scheme, _, clear = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return clear.strip() if scheme.lower() == "bearer" and clear.strip() else None


class CookieOriginValidator:
    """Checks Origin against ALLOWED_HOSTS only for handshakes that rely on the session cookie.

    Cross-site websocket hijacking rides on cookies a browser attaches by itself; a handshake
    carrying ``Authorization: Bearer`` was built by a client holding the token (browsers cannot
    set that header on a websocket), and native apps send no Origin at all.
    """

    def __init__(self, application) -> None:
        self.application = application
        self.validated = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict[str, Any], receive, send):
        if _bearer(scope):
            return await self.application(scope, receive, send)
        return await self.validated(scope, receive, send)


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


def websocket_auth_stack(inner):
    """Origin check for cookie handshakes, then session auth, then bearer-token auth."""
    return CookieOriginValidator(AuthMiddlewareStack(BearerTokenAuthMiddleware(inner)))
