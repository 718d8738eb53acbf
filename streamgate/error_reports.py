"""What Django's debug pages may show of the settings (DEFAULT_EXCEPTION_REPORTER_FILTER).

Django hides settings whose names look secret (API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE).
Ours also carry secrets inside URLs: a password in REDIS_URL, CELERY_BROKER_URL, the cache's
LOCATION or the channel layer's address, the key in SENTRY_DSN, API keys in the paths of
CHAIN_RPC_URLS. With DJANGO_DEBUG=1 a 500 page must not print them.
"""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute
# user:password@ (or a DSN's key@) in any URL.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/?#@\s]+@", re.IGNORECASE)
# ?token=…, &apikey=…, &password=… in a query string.
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:key|token|secret|pass|auth|sig)[^=&#\s]*=)[^&#\s]+", re.IGNORECASE
)


def credentials_masked(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced, the rest left readable."""
    text = str(text)  # lazy strings (reverse_lazy, DRF's lazy settings) pass isinstance(str)
    text = _USERINFO.sub(lambda match: f"{match['scheme']}{SUBSTITUTE}@", text)
    return _QUERY_SECRET.sub(lambda match: f"{match['name']}{SUBSTITUTE}", text)


class CredentialsMaskingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus names of settings that are URLs with keys in their paths, plus the
    credentials of any URL in any setting, request header or string variable on the page."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN|RPC_URL", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # Django recurses into dicts, lists and tuples through this method: strings end here.
        cleansed = super().cleanse_setting(key, value)
        return credentials_masked(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, credentials_masked(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
