"""Identities and credentials: API bearer tokens (stored hashed), wallet accounts linked to
users, sign-in nonces, and the creators group."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.content.scopes import scopes_all


class TokenSource(models.TextChoices):
    COMMAND = "command", "create_api_token"
    SIWE = "siwe", "Sign-In with Ethereum"
    SOLANA = "solana", "Sign in with Solana"
    ACCOUNT = "account", "Created by its owner (account page or API)"


# Tokens a wallet sign-in issued: they stand for a signed-in device, like a browser session.
SIGN_IN_SOURCES = (TokenSource.SIWE, TokenSource.SOLANA)


class ApiToken(models.Model):
    """A bearer token. Only its sha256 is stored; the clear value is shown once, at creation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=12, help_text="The token's first characters, to tell tokens apart."
    )
    key_hash = models.CharField(max_length=64, unique=True)
    source = models.CharField(
        max_length=16, choices=TokenSource.choices, default=TokenSource.COMMAND
    )
    wallet = models.ForeignKey(
        "WalletAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tokens",
        help_text="The wallet whose sign-in issued this token, or behind the session or token "
        "that created it: unlinking the wallet revokes it.",
    )
    scopes = models.JSONField(
        default=scopes_all,
        help_text="What the token may do (apps/content/scopes.py), sorted; fixed at creation. "
        "Tokens from before scopes, wallet sign-ins and creation without a choice hold all.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class WalletKind(models.TextChoices):
    KEY = "key", "Key-held account (EOA / ed25519)"
    CONTRACT = "contract", "Contract wallet (ERC-1271)"


class WalletAccount(models.Model):
    """A wallet proven by a signed sign-in message, linked to one user.

    A key-held EVM address is the same account on every EVM chain, so it is stored once whatever
    chain the message named (``address_key`` is unique); a contract wallet speaks for its address
    only on the chain where ERC-1271 verified it, so it is keyed by chain as well.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallets"
    )
    namespace = models.CharField(max_length=16, help_text="CAIP-2 namespace: eip155 or solana.")
    chain = models.CharField(max_length=64, help_text="CAIP-2 chain the sign-in message named.")
    address = models.CharField(max_length=64, help_text="EIP-55 (eip155) or base58 (solana).")
    kind = models.CharField(max_length=16, choices=WalletKind.choices, default=WalletKind.KEY)
    address_key = models.CharField(
        max_length=140,
        unique=True,
        help_text="What makes the account unique: namespace and address (and chain for "
        "contract wallets).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "created_at"]

    def __str__(self) -> str:
        return self.caip10

    @property
    def caip10(self) -> str:
        return f"{self.chain}:{self.address}"


class SessionGeneration(models.Model):
    """How many times a user signed out everywhere. A browser session remembers the number it
    was opened under and ends once this one moved on (apps/access/middleware.py): sessions
    are not indexed by user, so they are outdated rather than found and deleted. No row: 0."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="session_generation",
    )
    generation = models.PositiveIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} sessions #{self.generation}"


class SignInNonce(models.Model):
    """A nonce we issued for one sign-in, bound to the client that asked for it."""

    value = models.CharField(max_length=64, unique=True)
    namespace = models.CharField(max_length=16)
    client_hash = models.CharField(
        max_length=64, help_text="sha256 of the sign-in cookie of the client that asked."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="signinnonce_expires")]
        constraints = [
            models.CheckConstraint(
                condition=Q(namespace__in=["eip155", "solana"]), name="signinnonce_namespace"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace} nonce {self.value[:6]}…"


# --- audience: views, watch time and QoE (apps/access/audience.py) -----------------------------


class PlaybackSession(models.Model):
    """What one playback grant's beacons reported, added up. Written by every beacon, so no
    cached answer shows it (unwatched); the rollup reads it."""

    session_id = models.CharField(max_length=16, primary_key=True)
    content = models.ForeignKey("content.Content", on_delete=models.CASCADE, related_name="+")
    viewer = models.CharField(max_length=40)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(db_index=True)
    ttff_ms = models.PositiveIntegerField(null=True, blank=True)
    watched_seconds = models.FloatField(default=0)
    rebuffer_seconds = models.FloatField(default=0)
    rebuffer_count = models.PositiveIntegerField(default=0)
    rendition_height = models.PositiveIntegerField(null=True, blank=True)
    beacons = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["content", "-started_at"], name="playsession_content")]

    def __str__(self) -> str:
        return f"session {self.session_id} of {self.content_id}"


class ViewerWindow(models.Model):
    """When a viewer's last view of a content was counted: the next one counts a window later.
    One row per (content, viewer), moved by one conditional upsert (no read-then-write race)."""

    content = models.ForeignKey("content.Content", on_delete=models.CASCADE, related_name="+")
    viewer = models.CharField(max_length=40)
    counted_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["content", "viewer"], name="viewerwindow_once")
        ]

    def __str__(self) -> str:
        return f"{self.viewer} on {self.content_id} at {self.counted_at}"


class ContentView(models.Model):
    """One counted view (unwatched: the rollup turns these into ContentViewStats)."""

    content = models.ForeignKey("content.Content", on_delete=models.CASCADE, related_name="+")
    viewer = models.CharField(max_length=40)
    anonymous = models.BooleanField()
    address = models.GenericIPAddressField(null=True, blank=True)
    counted_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["content", "counted_at"], name="contentview_content"),
            models.Index(fields=["address", "content", "counted_at"], name="contentview_address"),
        ]

    def __str__(self) -> str:
        return f"view of {self.content_id} at {self.counted_at}"


class ContentViewStats(models.Model):
    """A content's audience, rolled up from the raw rows every minute. Watched (``public``):
    its ``views`` is in the content's cached JSON; ``rolled_at`` alone moves nothing."""

    content = models.OneToOneField(
        "content.Content", on_delete=models.CASCADE, primary_key=True, related_name="view_stats"
    )
    views = models.PositiveBigIntegerField(default=0)
    unique_viewers = models.PositiveBigIntegerField(default=0)
    sessions = models.PositiveBigIntegerField(default=0)
    watch_seconds = models.FloatField(default=0)
    ttff_p50_ms = models.PositiveIntegerField(null=True, blank=True)
    ttff_p95_ms = models.PositiveIntegerField(null=True, blank=True)
    rebuffer_ratio = models.FloatField(null=True, blank=True)
    rolled_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "content view stats"

    def __str__(self) -> str:
        return f"{self.views} views of {self.content_id}"
