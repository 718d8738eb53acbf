"""Sign-in and sign-out pages of the web UI. Wallet sign-in runs in the browser
(static/js/signin.js) against the JSON API, which also logs the session in."""

from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from apps.access.services import signin_policy


@method_decorator(ensure_csrf_cookie, name="dispatch")
class SignInView(LoginView):
    template_name = "signin.html"
    redirect_authenticated_user = False

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        policy = signin_policy()
        context["config"] = {
            "next": context.get("next") or "/",
            "evmChainIds": sorted(policy.evm_chain_ids),
            "solanaChains": sorted(policy.solana_chains),
        }
        context["nav"] = "signin"
        return context


@require_POST
def sign_out(request: HttpRequest) -> HttpResponseRedirect:
    logout(request)
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)
