"""Every write to identities and credentials: users, API tokens, wallets, sign-in nonces."""

import hashlib
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.access.exceptions import ChainUnavailable, SignInFailed, WalletTaken
from apps.access.models import (
    SIGN_IN_SOURCES,
    ApiToken,
    SignInNonce,
    TokenSource,
    WalletAccount,
    WalletKind,
)
from apps.access.selectors import api_token_used
from apps.access.signin import (
    SignatureCheckUnavailable,
    SignInClaim,
    SignInPolicy,
    SignInRejected,
    siwe_parse,
    siwe_verify,
    siws_parse,
    siws_verify,
)
from apps.access.tokens import PREFIX_LENGTH, token_generate, token_hash
from apps.chain.chains import (
    KNOWN_CHAINS,
    ChainNotConfigured,
    configured_evm_chains,
    rpc_url,
    web3_for,
)
from apps.content.audit import ANONYMOUS, audit_record
from apps.content.models import CREATORS_GROUP
from apps.content.scopes import scopes_all, scopes_parse
from streamgate.exceptions import Conflict

# Refresh last_used_at at most this often, so that authenticated reads do not all write.
LAST_USED_RESOLUTION_SECONDS = 60
NONCE_ALPHABET = string.ascii_letters + string.digits  # EIP-4361: nonces are alphanumeric
NONCE_LENGTH = 24  # 142 bits


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str = "",
    expires_at: datetime | None = None,
    source: str = TokenSource.COMMAND,
    wallet: WalletAccount | None = None,
    scopes: Iterable[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the record and the clear token, which is not kept.
    ``scopes``: what it may do (UnknownScope for a name that is none); None: every scope."""
    chosen = scopes_all() if scopes is None else scopes_parse(scopes)
    clear = token_generate()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=clear[:PREFIX_LENGTH],
        key_hash=token_hash(clear),
        expires_at=expires_at,
        source=source,
        wallet=wallet,
        scopes=chosen,
    )
    if source not in SIGN_IN_SOURCES:  # a sign-in's token is in its auth.signin.succeeded row
        audit_record(
            event="auth.token.created",
            target=token,
            details={
                "user_id": user.pk,
                "name": name,
                "source": source,
                "expires_at": expires_at,
                "scopes": chosen,
            },
        )
    return token, clear


def api_token_touch(*, token: ApiToken) -> None:
    """Record that ``token`` was used now (at most once a minute, to keep reads cheap)."""
    now = timezone.now()
    last = token.last_used_at
    if last is None or (now - last).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        api_token_used(token)


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Make ``token`` unusable from now on (kept, for the record)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        if ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(
            revoked_at=token.revoked_at
        ):
            audit_record(
                event="auth.token.revoked",
                target=token,
                details={"user_id": token.user_id, "name": token.name, "source": token.source},
            )
    return token


@transaction.atomic
def user_get_or_create(*, username: str, creator: bool = False) -> tuple[User, bool]:
    """The user named ``username``, created (without a usable password) if missing.

    With ``creator`` the user joins the creators group, whether new or not.
    """
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if creator:
        creator_grant(user=user)
    return user, created


def creator_grant(*, user: User) -> None:
    """Let ``user`` upload and manage content."""
    group, _ = Group.objects.get_or_create(name=CREATORS_GROUP)
    user.groups.add(group)


@transaction.atomic
def demo_account_ensure(*, username: str, password: str | None) -> tuple[User, str]:
    """The demo creator, an administrator of this install, with ``password`` (a new random one
    when None). Returns the user and the password to print."""
    user, _ = user_get_or_create(username=username, creator=True)
    password = password or secrets.token_urlsafe(12)
    user.set_password(password)
    user.is_staff = True
    user.is_superuser = True
    user.save(update_fields=["password", "is_staff", "is_superuser"])
    return user, password


# --- sign-in -----------------------------------------------------------------------------------


def signin_policy() -> SignInPolicy:
    """What sign-in messages must say, from settings (never from the request's headers)."""
    public = urlsplit(settings.STREAMGATE_PUBLIC_URL)
    return SignInPolicy(
        domain=public.netloc,
        scheme=public.scheme,
        origin=f"{public.scheme}://{public.netloc}",
        evm_chain_ids=frozenset(settings.SIGNIN_EVM_CHAIN_IDS or _default_evm_chain_ids()),
        solana_chains=frozenset(settings.SIGNIN_SOLANA_CHAINS),
        max_length=settings.SIGNIN_MESSAGE_MAX_LENGTH,
        clock_skew=timedelta(seconds=settings.SIGNIN_CLOCK_SKEW),
        max_age=timedelta(seconds=settings.SIGNIN_MESSAGE_MAX_AGE),
    )


def _default_evm_chain_ids() -> set[int]:
    """Public EVM chains StreamGate knows, and every EVM chain it has an RPC endpoint for."""
    public = {
        c.chain_id for c in KNOWN_CHAINS.values() if c.chain_id is not None and c.confirmations > 0
    }
    return public | {c.chain_id for c in configured_evm_chains() if c.chain_id is not None}


def _client_hash(client_secret: str) -> str:
    return hashlib.sha256(client_secret.encode()).hexdigest()


def signin_nonce_issue(*, namespace: str, client_secret: str) -> SignInNonce:
    """A fresh nonce for one sign-in by the client holding ``client_secret`` (its cookie)."""
    now = timezone.now()
    return SignInNonce.objects.create(
        value="".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH)),
        namespace=namespace,
        client_hash=_client_hash(client_secret),
        expires_at=now + timedelta(seconds=settings.SIGNIN_NONCE_TTL),
    )


def _nonce_check(*, value: str | None, namespace: str, client_secret: str, now: datetime) -> None:
    """Why the nonce cannot be used (a clear reason before the signature is checked); a
    message without one (None) names no nonce we issued."""
    nonce = SignInNonce.objects.filter(value=value, namespace=namespace).first() if value else None
    if nonce is None:
        raise SignInFailed("We did not issue this nonce.", reason="nonce_unknown")
    if nonce.used_at is not None:
        raise SignInFailed("This nonce was already used.", reason="nonce_used")
    if nonce.expires_at <= now:
        raise SignInFailed("This nonce has expired; ask for a new one.", reason="nonce_expired")
    if not secrets.compare_digest(nonce.client_hash, _client_hash(client_secret)):
        raise SignInFailed(
            "This nonce was issued to another client (keep the cookie the nonce call set).",
            reason="nonce_not_yours",
        )


def _nonce_consume(*, value: str, namespace: str, client_secret: str, now: datetime) -> None:
    """Use the nonce up in one conditional UPDATE: of two concurrent sign-ins, one wins."""
    used = SignInNonce.objects.filter(
        value=value,
        namespace=namespace,
        client_hash=_client_hash(client_secret),
        used_at=None,
        expires_at__gt=now,
    ).update(used_at=now)
    if used != 1:
        raise SignInFailed("This nonce was already used.", reason="nonce_used")


@dataclass(frozen=True)
class SignInResult:
    user: User
    wallet: WalletAccount
    token: ApiToken
    clear_token: str
    created_user: bool
    account: str  # CAIP-10 on the chain the message named


def signin_ethereum(*, message: str, signature: str, client_secret: str) -> SignInResult:
    """Sign in with an EIP-4361 message and its signature: as the wallet's account, or a new
    one. (Linking a wallet to the signed-in account is ``wallet_link``, never a side effect.)"""
    try:
        claim = signin_claim_ethereum(
            message=message, signature=signature, client_secret=client_secret
        )
        return _signed_in(claim, client_secret=client_secret, source=TokenSource.SIWE)
    except (SignInFailed, WalletTaken) as error:
        _signin_failed(error, method=TokenSource.SIWE, claimed=_siwe_claimed_address(message))
        raise


def signin_claim_ethereum(*, message: str, signature: str, client_secret: str) -> SignInClaim:
    """The account an EIP-4361 message and its signature prove (its nonce not yet spent)."""
    now = timezone.now()
    try:
        parsed = siwe_parse(message, signin_policy(), now=now)
        _nonce_check(value=parsed.nonce, namespace="eip155", client_secret=client_secret, now=now)
        return siwe_verify(
            parsed,
            message,
            signature,
            provider_for=lambda: _contract_wallet_provider(parsed.chain_id),
            now=now,
        )
    except SignInRejected as rejected:
        raise SignInFailed(rejected.message, reason=rejected.reason) from None
    except SignatureCheckUnavailable as error:
        raise ChainUnavailable(str(error), reason="chain_unavailable") from None


def signin_solana(
    *,
    message: str,
    signature: str,
    public_key: str,
    client_secret: str,
) -> SignInResult:
    """Sign in with a Sign In With Solana message and its ed25519 signature."""
    try:
        claim = signin_claim_solana(
            message=message, signature=signature, public_key=public_key, client_secret=client_secret
        )
        return _signed_in(claim, client_secret=client_secret, source=TokenSource.SOLANA)
    except (SignInFailed, WalletTaken) as error:
        _signin_failed(error, method=TokenSource.SOLANA, claimed=public_key[:64])
        raise


def _siwe_claimed_address(message: str) -> str:
    """The address an EIP-4361 message names on its second line (unverified), or ''."""
    lines = message.splitlines()
    found = re.fullmatch(r"0x[0-9a-fA-F]{40}", lines[1].strip()) if len(lines) > 1 else None
    return found.group(0) if found else ""


def _signin_failed(error: SignInFailed | WalletTaken, *, method: str, claimed: str) -> None:
    """An audit row for a refused wallet sign-in, written on its own (the refusal rolled back
    whatever the attempt had begun): who claimed which address, and why it was refused."""
    audit_record(
        event="auth.signin.failed",
        actor=ANONYMOUS,
        details={"method": method, "reason": error.reason, "claimed_address": claimed},
    )


def signin_claim_solana(
    *, message: str, signature: str, public_key: str, client_secret: str
) -> SignInClaim:
    """The account a Sign In With Solana message and its signature prove (nonce not yet spent)."""
    now = timezone.now()
    try:
        parsed = siws_parse(message, signin_policy(), now=now)
        _nonce_check(value=parsed.nonce, namespace="solana", client_secret=client_secret, now=now)
        return siws_verify(parsed, message, signature, public_key)
    except SignInRejected as rejected:
        raise SignInFailed(rejected.message, reason=rejected.reason) from None


def _contract_wallet_provider(chain_id: int):
    """The provider of the message's own chain, for ERC-1271; None where we have no RPC (then
    only key-held accounts can sign in on that chain)."""
    caip2 = f"eip155:{chain_id}"
    try:
        rpc_url(caip2)
        return web3_for(caip2, timeout=settings.GATE_RPC_TIMEOUT, retries=False).provider
    except ChainNotConfigured:
        return None
    except Exception as error:  # the node is down or serves another chain
        raise SignatureCheckUnavailable(f"Could not reach chain {caip2}.") from error


def _claim_spend(claim: SignInClaim, *, client_secret: str, now: datetime) -> None:
    # The nonce is spent in its own transaction: a sign-in refused after this point (the
    # wallet is someone else's, a concurrent first sign-in won) cannot be replayed.
    with transaction.atomic(durable=True):  # never a savepoint of some caller's transaction
        _nonce_consume(
            value=claim.nonce, namespace=claim.namespace, client_secret=client_secret, now=now
        )


def _signed_in(claim: SignInClaim, *, client_secret: str, source: str) -> SignInResult:
    now = timezone.now()
    _claim_spend(claim, client_secret=client_secret, now=now)
    with transaction.atomic():
        wallet, created_user = _wallet_for(claim, user=None, now=now)
        token, clear = api_token_create(
            user=wallet.user,
            name=f"sign-in {claim.caip10}"[:100],
            expires_at=now + timedelta(seconds=settings.SIGNIN_TOKEN_TTL),
            source=source,
            wallet=wallet,
        )
        audit_record(
            event="auth.signin.succeeded",
            actor=wallet.user,
            target=wallet.user,
            details={
                "method": source,
                "account": claim.caip10,
                "wallet_id": wallet.pk,
                "token_id": token.pk,
                "new_user": created_user,
            },
        )
    return SignInResult(
        user=wallet.user,
        wallet=wallet,
        token=token,
        clear_token=clear,
        created_user=created_user,
        account=claim.caip10,
    )


def wallet_link(
    *,
    user: User,
    namespace: str,
    message: str,
    signature: str,
    client_secret: str,
    public_key: str = "",
) -> tuple[WalletAccount, bool]:
    """Link the wallet that signed ``message`` (a sign-in message of ``namespace``, eip155 or
    solana, with a fresh nonce) to ``user``; True: newly linked, False: it already was. A
    wallet linked to another account stays there (WalletTaken), never moved. No token is issued
    and the caller's session keeps the wallet it signed in with."""
    try:
        if namespace == "solana":
            claim = signin_claim_solana(
                message=message,
                signature=signature,
                public_key=public_key,
                client_secret=client_secret,
            )
        else:
            claim = signin_claim_ethereum(
                message=message, signature=signature, client_secret=client_secret
            )
        now = timezone.now()
        _claim_spend(claim, client_secret=client_secret, now=now)
        with transaction.atomic():
            known = WalletAccount.objects.filter(
                address_key=_address_key(claim), user=user
            ).exists()
            wallet, _ = _wallet_for(claim, user=user, now=now)
            if not known:
                audit_record(
                    event="auth.wallet.linked",
                    target=wallet,
                    details={"user_id": user.pk, "account": claim.caip10, "kind": wallet.kind},
                )
    except (SignInFailed, WalletTaken) as error:
        claimed = public_key[:64] if namespace == "solana" else _siwe_claimed_address(message)
        audit_record(
            event="auth.wallet.link_failed",
            details={"namespace": namespace, "reason": error.reason, "claimed_address": claimed},
        )
        raise
    return wallet, not known


def _address_key(claim: SignInClaim) -> str:
    if claim.contract_wallet:
        return f"{claim.chain}:{claim.address}"
    return f"{claim.namespace}:{claim.address}"


def _wallet_for(
    claim: SignInClaim, *, user: User | None, now: datetime
) -> tuple[WalletAccount, bool]:
    key = _address_key(claim)
    wallet = (
        WalletAccount.objects.select_for_update()
        .select_related("user")
        .filter(address_key=key)
        .first()
    )
    if wallet is not None:
        if user is not None and wallet.user_id != user.pk:
            raise WalletTaken(
                "This wallet is linked to another StreamGate account. Sign in with it and "
                "unlink it there first.",
                reason="wallet_linked_elsewhere",
            )
        if not wallet.user.is_active:
            raise SignInFailed("This account is disabled.", reason="account_disabled")
        wallet.last_sign_in_at = now
        wallet.save(update_fields=["last_sign_in_at"])
        return wallet, False
    created_user = user is None
    if user is None:
        user = _viewer_create(claim)
    try:
        with transaction.atomic():
            wallet = WalletAccount.objects.create(
                user=user,
                namespace=claim.namespace,
                chain=claim.chain,
                address=claim.address,
                kind=WalletKind.CONTRACT if claim.contract_wallet else WalletKind.KEY,
                address_key=key,
                last_sign_in_at=now,
            )
    except IntegrityError:  # a concurrent first sign-in of the same wallet won
        raise WalletTaken("This wallet was just linked; sign in again.", reason="retry") from None
    return wallet, created_user


def _viewer_create(claim: SignInClaim) -> User:
    """A new viewer named after the wallet (no password: wallets are how it signs in)."""
    model = get_user_model()
    base = claim.address.lower() if claim.namespace == "eip155" else claim.address
    for suffix in range(1, 101):
        username = base if suffix == 1 else f"{base}-{suffix}"
        if model.objects.filter(username=username).exists():
            continue
        user = model(username=username)
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:  # taken since we looked: a concurrent first sign-in, say
            continue
        return user
    raise SignInFailed("Could not name the new account; try again.", reason="retry")


@transaction.atomic
def wallet_unlink(*, wallet: WalletAccount) -> None:
    """Remove a wallet from its user and revoke the tokens its sign-ins issued. A user who has
    no password keeps at least one wallet, or could never sign in again."""
    user = wallet.user
    # Lock the user's wallets: two concurrent unlinks must not both see "one left besides me".
    linked = list(WalletAccount.objects.select_for_update().filter(user=user).values_list("pk"))
    if not user.has_usable_password() and len(linked) <= 1:
        raise Conflict(
            "This is the account's only way to sign in; link another wallet first.",
            reason="last_wallet",
        )
    revoked = ApiToken.objects.filter(wallet=wallet, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    audit_record(
        event="auth.wallet.unlinked",
        target=wallet,
        details={"user_id": user.pk, "account": wallet.caip10, "tokens_revoked": revoked},
    )
    wallet.delete()


def signin_records_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete nonces past their expiry and tokens expired or revoked more than 30 days ago."""
    now = now or timezone.now()
    nonces, _ = SignInNonce.objects.filter(expires_at__lt=now).delete()
    cutoff = now - timedelta(days=30)
    expired, _ = ApiToken.objects.filter(expires_at__lt=cutoff).delete()
    revoked, _ = ApiToken.objects.filter(revoked_at__lt=cutoff).delete()
    return {"nonces": nonces, "tokens": expired + revoked}
