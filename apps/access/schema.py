"""Tells drf-spectacular how bearer tokens and our session authentication appear in the
OpenAPI schema, and which token scope each operation needs (apps/content/scopes.py)."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from apps.content.scopes import SCOPE_HELP, SCOPES, required_scope_of

SCOPE_EXTENSION = "x-required-scope"


def _scopes_text() -> str:
    lines = "\n".join(f"- `{name}`: {SCOPE_HELP[name]}" for name in SCOPES)
    return (
        "A token from `manage.py create_api_token`, the account page or `POST "
        "/api/v1/auth/tokens/`, or a wallet sign-in. A token holds scopes, chosen when it is "
        "created; each operation names the one it needs (its description and "
        f'`{SCOPE_EXTENSION}`). A token without it gets 403 `{{"reason": "missing_scope", '
        '"required_scope": ...}`. Tokens created without a choice, wallet sign-in tokens and '
        "tokens from before scopes hold all of them; browser sessions are not scoped.\n\n"
        f"{lines}"
    )


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.access.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": _scopes_text()}


class CsrfSessionScheme(SessionScheme):
    """DRF's session cookie scheme, for our subclass (which only names its CSRF failures)."""

    target_class = "apps.access.authentication.SessionAuthentication"


class ScopedAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus each operation's token scope: ``x-required-scope``
    (the scope, or null when none is needed) and a line in its description. (OpenAPI 3.0
    allows scopes in a security requirement for OAuth2 and OpenID Connect schemes only.)"""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None or not path.startswith("/api/v1/"):
            return operation
        scope = required_scope_of(self.view, method)
        operation[SCOPE_EXTENSION] = scope
        line = (
            f"Bearer token scope: `{scope}`."
            if scope
            else "Bearer token scope: none needed (any token, or none)."
        )
        described = operation.get("description", "")
        operation["description"] = f"{described}\n\n{line}" if described else line
        return operation
