"""A browser session opened by a wallet sign-in lasts only while that wallet stays linked."""

from django.conf import settings
from django.contrib.auth import logout

from apps.access.models import WalletAccount
from apps.access.stream_cors import STREAM_PREFIX

SESSION_WALLET = "sg_wallet"


class WalletSessionMiddleware:
    """Ends a session whose sign-in wallet was unlinked (say, after it was compromised): the
    bearer tokens it issued are revoked by the unlink, and the session must not outlive them.

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
        wallet_id = request.session.get(SESSION_WALLET)
        if wallet_id is not None and request.user.is_authenticated:
            linked = WalletAccount.objects.filter(pk=wallet_id, user_id=request.user.pk).exists()
            if not linked:
                logout(request)
        return self.get_response(request)
