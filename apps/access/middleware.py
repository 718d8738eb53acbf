"""A browser session lasts only while the account still stands behind it: its sign-in wallet
is still linked, and its owner has not signed out everywhere since it was opened."""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, logout
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce

from apps.access.account import SESSION_GENERATION
from apps.access.models import SessionGeneration, WalletAccount
from apps.access.stream_cors import STREAM_PREFIX

SESSION_WALLET = "sg_wallet"


def session_stands(session, user) -> bool:
    """Whether the signed-in ``user``'s ``session`` may go on: opened in the user's current
    generation (sessions from before the first sign-out everywhere carry none: 0), and, if a
    wallet opened it, with that wallet still linked to the user. One query either way."""
    wallet_id = session.get(SESSION_WALLET)
    generation = SessionGeneration.objects.filter(user_id=OuterRef("pk")).values("generation")
    checks: dict[str, Any] = {"generation": Coalesce(Subquery(generation[:1]), 0)}
    if wallet_id is not None:
        checks["linked"] = Exists(
            WalletAccount.objects.filter(pk=wallet_id, user_id=OuterRef("pk"))
        )
    found = get_user_model().objects.filter(pk=user.pk).values(**checks).first()
    if found is None:
        return False
    return found["generation"] == session.get(SESSION_GENERATION, 0) and found.get("linked", True)


class WalletSessionMiddleware:
    """Ends a session its account no longer stands behind (``session_stands``): a sign-in
    wallet unlinked (say, after it was compromised: the bearer tokens it issued are revoked by
    the unlink, and the session must not outlive them), or a sign-out everywhere since.

    Only requests that carry a session cookie can have such a session, and stream URLs never
    use one (the token in the path is the capability): those skip the check, so their answers
    neither read the session nor say ``Vary: Cookie`` (a CDN keeps one copy for all viewers)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            not hasattr(request, "session")
            or settings.SESSION_COOKIE_NAME not in request.COOKIES
            or request.path.startswith(STREAM_PREFIX)
        ):
            return self.get_response(request)
        if request.user.is_authenticated and not session_stands(request.session, request.user):
            logout(request)
        return self.get_response(request)
