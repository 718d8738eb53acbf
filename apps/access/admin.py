"""Admin for identities and credentials, and the "check access" page that explains a gate
decision for a user or a wallet address."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from apps.access.gates import GateInvalid, Wallet, caip10_normalize
from apps.access.models import ApiToken, SignInNonce, WalletAccount
from apps.access.playback import access_explain
from apps.access.services import api_token_revoke
from apps.content.audit_admin import AuditedAdmin
from apps.content.models import Content

# Users and groups: Django's admin for them, with their writes in the audit trail.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = [
        "prefix",
        "user",
        "name",
        "source",
        "scopes",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
    ]
    list_filter = ["source", "created_at", "expires_at", "revoked_at"]
    search_fields = ["user__username", "name", "prefix", "wallet__address"]
    readonly_fields = [
        "prefix",
        "key_hash",
        "source",
        "scopes",  # fixed at creation: widening one would grant what its holder never chose
        "wallet",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "user",  # a token moved to another user would sign in as that user
    ]
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at:
            return "revoked"
        if token.expires_at and token.expires_at <= timezone.now():
            return "expired"
        return "live"

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        # The clear token is shown only once; create tokens with `manage.py create_api_token`.
        return False


class CheckAccessForm(forms.Form):
    content = forms.UUIDField(help_text="The content's id.")
    username = forms.CharField(required=False, help_text="Check for this user's wallets…")
    account = forms.CharField(
        required=False, help_text="…or for one CAIP-10 account, e.g. eip155:1:0x…"
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("username")) == bool(data.get("account")):
            raise forms.ValidationError("Give a username or an account (one of them).")
        if data.get("account"):
            try:
                data["account"] = caip10_normalize(data["account"].strip())
            except GateInvalid as error:
                self.add_error("account", error.message)
        if data.get("username"):
            user = get_user_model().objects.filter(username=data["username"]).first()
            if user is None:
                self.add_error("username", "No such user.")
            data["user"] = user
        if data.get("content"):
            data["content_obj"] = Content.objects.filter(pk=data["content"]).first()
            if data["content_obj"] is None:
                self.add_error("content", "No such content.")
        return data


@admin.register(WalletAccount)
class WalletAccountAdmin(AuditedAdmin):
    list_display = [
        "address",
        "namespace",
        "chain",
        "kind",
        "user",
        "created_at",
        "last_sign_in_at",
    ]
    list_filter = ["namespace", "kind", "chain"]
    search_fields = ["address", "user__username"]
    readonly_fields = [
        "namespace",
        "chain",
        "address",
        "kind",
        "address_key",
        "created_at",
        "last_sign_in_at",
        "user",  # linked by a signed sign-in, never reassigned by hand
    ]
    actions = ["check_access"]

    def has_add_permission(self, request) -> bool:
        return False  # wallets are proven by signing in, never typed in

    def get_urls(self):
        return [
            path(
                "check-access/",
                self.admin_site.admin_view(self.check_access_view),
                name="access_check",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Check access to a content…")
    def check_access(self, request: HttpRequest, queryset: QuerySet[WalletAccount]):
        wallet = queryset.first()
        return redirect(f"{reverse('admin:access_check')}?account={wallet.caip10}")

    def check_access_view(self, request: HttpRequest) -> HttpResponse:
        form = CheckAccessForm(request.POST or None, initial=request.GET.dict())
        result = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            wallets = None
            if data.get("account"):
                namespace, reference, address = data["account"].split(":")
                wallets = [Wallet(namespace=namespace, address=address)]
            result = access_explain(
                content=data["content_obj"], user=data.get("user"), wallets=wallets
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Check access",
            "form": form,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/access/check_access.html", context)


@admin.register(SignInNonce)
class SignInNonceAdmin(admin.ModelAdmin):
    list_display = ["value", "namespace", "created_at", "expires_at", "used_at"]
    list_filter = ["namespace", "used_at"]
    readonly_fields = ["value", "namespace", "client_hash", "created_at", "expires_at", "used_at"]

    def has_add_permission(self, request) -> bool:
        return False
