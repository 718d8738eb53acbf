"""Tells drf-spectacular how bearer tokens and our session authentication appear in the
OpenAPI schema."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.access.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `manage.py create_api_token` or a wallet sign-in.",
        }


class CsrfSessionScheme(SessionScheme):
    """DRF's session cookie scheme, for our subclass (which only names its CSRF failures)."""

    target_class = "apps.access.authentication.SessionAuthentication"
