"""Access API shapes. Input and output serializers are kept apart."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.access.audience import BEACON_MAX_EVENTS, EVENT_FIELDS
from apps.access.audience_stats import view_stats_of
from apps.access.models import ApiToken, WalletAccount
from apps.content.scopes import SCOPE_HELP, SCOPES


class NonceOutputSerializer(serializers.Serializer):
    nonce = serializers.CharField()
    expires_at = serializers.DateTimeField()
    domain = serializers.CharField(help_text="What the message's first line must name.")
    uri = serializers.CharField(help_text="The URI the message must carry (this site).")


class SiweVerifyInputSerializer(serializers.Serializer):
    message = serializers.CharField(
        max_length=settings.SIGNIN_MESSAGE_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The EIP-4361 message exactly as signed.",
    )
    signature = serializers.CharField(max_length=4200, help_text="0x-prefixed hex.")


class SolanaVerifyInputSerializer(serializers.Serializer):
    message = serializers.CharField(
        max_length=settings.SIGNIN_MESSAGE_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The Sign In With Solana message exactly as signed (UTF-8).",
    )
    signature = serializers.CharField(max_length=100, help_text="base58 ed25519 signature.")
    public_key = serializers.CharField(max_length=50, help_text="base58 public key.")


class SignInOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="A bearer token for Authorization: Bearer.")
    account = serializers.CharField(help_text="The wallet's CAIP-10 account id.")
    expires_at = serializers.DateTimeField()


class WalletLinkInputSerializer(serializers.Serializer):
    namespace = serializers.ChoiceField(
        choices=["eip155", "solana"],
        help_text="eip155: an EIP-4361 message (nonce from auth/siwe/nonce/); solana: a Sign In "
        "With Solana message (nonce from auth/solana/nonce/) and its public_key.",
    )
    message = serializers.CharField(
        max_length=settings.SIGNIN_MESSAGE_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The sign-in message exactly as signed.",
    )
    signature = serializers.CharField(max_length=4200, help_text="0x hex or base58 (Solana).")
    public_key = serializers.CharField(
        max_length=50, required=False, help_text="base58 public key (Solana only)."
    )

    def validate(self, data):
        if data["namespace"] == "solana" and not data.get("public_key"):
            raise serializers.ValidationError({"public_key": ["A Solana link needs public_key."]})
        return data


class WalletOutputSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="caip10")
    current = serializers.SerializerMethodField()

    class Meta:
        model = WalletAccount
        fields = [
            "id",
            "account",
            "namespace",
            "chain",
            "address",
            "kind",
            "created_at",
            "last_sign_in_at",
            "current",
        ]

    def get_current(self, wallet: WalletAccount) -> bool:
        """Whether this browser session was opened by signing in with this wallet."""
        return wallet.pk == self.context.get("session_wallet")


class ApiTokenOutputSerializer(serializers.ModelSerializer):
    wallet = serializers.CharField(source="wallet.caip10", allow_null=True, default=None)
    current = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "source",
            "scopes",
            "wallet",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "current",
        ]

    def get_current(self, token: ApiToken) -> bool:
        """Whether this request is authenticated by this token."""
        auth = self.context.get("auth")
        return isinstance(auth, ApiToken) and auth.pk == token.pk


class TokenCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100, help_text="What the token is for, to tell it apart (1-100 characters)."
    )
    expires_in_days = serializers.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        allow_null=True,
        help_text="Days until the token stops working; empty: it never expires.",
    )
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=20),
        max_length=20,
        required=False,
        allow_null=True,
        help_text="What the token may do: any of "
        + ", ".join(f"`{name}` ({SCOPE_HELP[name]})" for name in SCOPES)
        + ". Omitted: every scope the credential asking holds. A token may not create one with "
        "a scope it lacks (403 `scope_escalation`); an unknown name is 400 `unknown_scope`.",
    )


class TokenCreatedOutputSerializer(ApiTokenOutputSerializer):
    token = serializers.CharField(
        source="clear", help_text="The secret, for Authorization: Bearer. Shown this once only."
    )

    class Meta(ApiTokenOutputSerializer.Meta):
        fields = [*ApiTokenOutputSerializer.Meta.fields, "token"]


class SignOutEverywhereInputSerializer(serializers.Serializer):
    revoke_api_tokens = serializers.BooleanField(
        default=False, help_text="Also revoke every API token (wallet sign-in tokens always are)."
    )


class SignOutEverywhereOutputSerializer(serializers.Serializer):
    tokens_revoked = serializers.IntegerField()
    signed_out_at = serializers.DateTimeField()


class MeOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_creator = serializers.BooleanField()
    is_staff = serializers.BooleanField()
    wallets = WalletOutputSerializer(many=True)


class PlaybackOutputSerializer(serializers.Serializer):
    hls_url = serializers.URLField()
    dash_url = serializers.URLField()
    expires_at = serializers.DateTimeField()
    view_session = serializers.CharField(
        help_text="The credential of this playback's beacons (POST …/beacons/)."
    )


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()
    reason = serializers.CharField(required=False)


# --- audience: beacons in, views out (apps/access/audience.py) ---------------------------------


class BeaconEventInputSerializer(serializers.Serializer):
    """One event; for the schema (the body is checked by ``audience.beacon_parse``)."""

    type = serializers.ChoiceField(choices=sorted(EVENT_FIELDS))
    ttff_ms = serializers.IntegerField(
        min_value=0, max_value=120_000, required=False, help_text="start: play to first frame."
    )
    seconds = serializers.FloatField(
        min_value=0, max_value=600, required=False, help_text="watched or rebuffer: seconds."
    )
    height = serializers.IntegerField(
        min_value=1, max_value=8640, required=False, help_text="rendition: its height."
    )


class BeaconInputSerializer(serializers.Serializer):
    session = serializers.CharField(max_length=120, help_text="The playback's view_session.")
    events = serializers.ListField(
        child=BeaconEventInputSerializer(), max_length=BEACON_MAX_EVENTS, allow_empty=True
    )


@extend_schema_field(serializers.IntegerField(min_value=0))
class ViewsField(serializers.Field):
    """Views counted (rolled up every VIEW_ROLLUP_SECONDS)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, content) -> int:
        stats = view_stats_of(content)
        return stats.views if stats is not None else 0
