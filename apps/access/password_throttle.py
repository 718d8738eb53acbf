"""The throttle on password sign-in: django-axes, and the two hooks it needs from us.

django-axes (settings: ``AXES_*`` in streamgate/settings/base.py) sits first in
``AUTHENTICATION_BACKENDS``, so every door that calls ``django.contrib.auth.authenticate`` with
the request (the sign-in page, the admin's login, any future password API) shares one count:
``PASSWORD_SIGNIN_FAILURES`` failures for an account, or from a client address, lock that account
or that address out until ``PASSWORD_SIGNIN_WINDOW`` seconds have passed without another try.
Failures are rows in the database (axes' database handler): the same on SQLite and PostgreSQL,
atomic (``select_for_update``), visible and clearable in the admin and with ``axes_reset_*``.

The hooks: the account key is the username as Django authenticates it (stripped, NFKC), so
``" demo"`` or a full-width ``"ｄｅｍｏ"`` cannot open a fresh count for ``demo``; and a lockout
answers 429 with ``Retry-After`` (JSON under ``/api/``).
"""

import unicodedata
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

LOCKED_MESSAGE = "Too many failed sign-ins. Try again later."


def username_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """``AXES_USERNAME_CALLABLE``: the name the failures of an account are counted under.

    Django's login form strips the username and normalises it to NFKC before authenticating;
    the key does the same to whatever it is given (the form's cleaned value or the raw POST), and
    folds case on top, so every spelling that reaches one account shares its count.
    """
    raw = (credentials or {}).get("username")
    if raw is None:
        data = getattr(request, "data", None) or getattr(request, "POST", {})
        raw = data.get("username", "")
    return unicodedata.normalize("NFKC", str(raw).strip()).strip().casefold()


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``; JSON ``{"detail", "reason"}`` under
    /api/, plain text elsewhere.

    Every refused attempt is counted again, so the lock lasts the whole window from the latest
    attempt: ``Retry-After`` is the window (at most that long, never shorter).
    """
    wait = str(settings.PASSWORD_SIGNIN_WINDOW)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": LOCKED_MESSAGE, "reason": "too_many_failed_signins"}, status=429
        )
    else:
        response = HttpResponse(
            LOCKED_MESSAGE, status=429, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = wait
    return response
