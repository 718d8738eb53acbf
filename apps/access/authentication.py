"""DRF authentication by ``Authorization: Bearer <token>``, and the token's scope check."""

from django.contrib.auth.models import AbstractBaseUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.access.models import ApiToken
from apps.access.selectors import api_token_authenticate
from apps.access.services import api_token_touch
from apps.content.scopes import scope_require

KEYWORD = "Bearer"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates API tokens created by ``create_api_token`` (stored as sha256 hashes), then
    refuses (403 ``missing_scope``) a token without the scope the view declares for the
    request's method."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != KEYWORD.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'."
            )
        try:
            clear = header[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed(
                "The token contains invalid characters."
            ) from error
        token = api_token_authenticate(clear)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        api_token_touch(token=token)
        # The scope the view declares for this method (apps/content/scopes.py): checked here,
        # where every view that reads a bearer token passes, whatever its permission classes.
        view = (request.parser_context or {}).get("view")
        scope_require(view=view, method=request.method, granted=token.scopes)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication; a failed CSRF check answers 403 ``reason: csrf_failed``
    (DRF's says only ``permission_denied``), so a browser client can tell it apart."""

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            raise exceptions.PermissionDenied(str(error.detail), code="csrf_failed") from None
