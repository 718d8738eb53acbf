"""A browser session opened by a wallet sign-in lasts only while that wallet stays linked."""

from django.contrib.auth import logout

from apps.access.models import WalletAccount

SESSION_WALLET = "sg_wallet"


class WalletSessionMiddleware:
    """Ends a session whose sign-in wallet was unlinked (say, after it was compromised): the
    bearer tokens it issued are revoked by the unlink, and the session must not outlive them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        wallet_id = request.session.get(SESSION_WALLET) if hasattr(request, "session") else None
        if wallet_id is not None and request.user.is_authenticated:
            linked = WalletAccount.objects.filter(pk=wallet_id, user_id=request.user.pk).exists()
            if not linked:
                logout(request)
        return self.get_response(request)
