"""Who may watch a content, and the signed stream URLs that let them.

``gate_evaluate`` answers from the cache first and stops there when the cached answers decide
the gate; otherwise it asks the chains for the unknown conditions concurrently (each call with
its own timeout, the whole evaluation with a deadline) and stops as soon as the answers so far
decide. An answer that never came is unknown, and an undecided gate is a 503, never a yes.
"""

import hashlib
import hmac
import logging
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ImproperlyConfigured

from apps.access.exceptions import AccessDenied, ChainUnavailable, SignInRequired
from apps.access.gates import (
    MARKET,
    Condition,
    Explanation,
    GateInvalid,
    Wallet,
    gate_bind,
    gate_conditions,
    gate_decide,
    gate_explain,
    gate_validate,
)
from apps.access.ownership.answers import Answer
from apps.access.ownership.cache import answers_cached
from apps.access.ownership.fetch import answer_fetch
from apps.access.playback_tokens import (
    KeyGrant,
    PlaybackGrant,
    key_token_sign,
    subject_of,
    token_sign,
)
from apps.access.selectors import gate_chains, viewer_wallets
from apps.chain.offers import offer_condition_kind, offer_output, offers_live
from apps.chain.selectors import registry_addresses
from apps.content.models import Content
from apps.content.selectors import content_playable_seconds
from apps.transcode.models import DeliveryEncryption
from streamgate.exceptions import Conflict
from streamgate.metrics import GATE_CACHE, GATE_DECISIONS
from streamgate.tracing import in_current_trace, span

logger = logging.getLogger(__name__)

# Shared by all requests: RPC calls a decided gate no longer needs finish in the background
# (and fill the cache) instead of holding the viewer's response.
_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gate-rpc")


@dataclass
class GateEvaluation:
    result: bool | None
    explanation: Explanation
    answers: dict[Condition, Answer] = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    wallets: list[Wallet] = field(default_factory=list)

    @property
    def unavailable(self) -> list[str]:
        return sorted({a.note for a in self.answers.values() if a.source == "error" and a.note})


def gate_evaluate(
    *, gate: dict, wallets: list[Wallet], deadline: float | None = None
) -> GateEvaluation:
    """Decide ``gate`` (a normal form) for ``wallets``: cache first, then the chains."""
    conditions = gate_conditions(gate)
    answers = answers_cached(conditions, wallets) if conditions else {}
    evaluation = _explained(gate, answers, wallets)
    pending = [c for c in conditions if answers[c].held is None]
    hits = sum(
        1 for answer in answers.values() if answer.source == "cache" and answer.held is not None
    )
    if hits:
        GATE_CACHE.labels(outcome="hit").inc(hits)
    if evaluation.result is not None or not pending:
        return evaluation
    deadline = time.monotonic() + (deadline or settings.GATE_EVALUATION_TIMEOUT)
    GATE_CACHE.labels(outcome="miss").inc(len(pending))
    # The pool's threads ask the chains in this request's trace (their spans are its children).
    fetch = in_current_trace(answer_fetch)
    futures = {_pool.submit(fetch, c, wallets): c for c in pending}
    while futures and evaluation.result is None:
        done, _ = wait(
            futures, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
        )
        if not done:
            break
        for future in done:
            answers[futures.pop(future)] = future.result()
        evaluation = _explained(gate, answers, wallets)
    for condition in futures.values():
        answers[condition] = Answer(None, "error", f"{condition.chain} did not answer in time")
    return _explained(gate, answers, wallets)


def _explained(
    gate: dict, answers: dict[Condition, Answer], wallets: list[Wallet]
) -> GateEvaluation:
    held = {condition: answer.held for condition, answer in answers.items()}
    notes = {c: a.source if not a.note else f"{a.source}: {a.note}" for c, a in answers.items()}
    explanation = gate_explain(gate, held, wallets, notes)
    return GateEvaluation(explanation.result, explanation, dict(answers), gate, wallets)


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool | None  # None: a chain did not answer
    reason: str  # open | owner | staff | gate_met | gate_denied | no_wallet | sign_in_required
    #              | gate_invalid | chain_not_configured | chain_unavailable | purchase_required
    detail: str
    evaluation: GateEvaluation | None = None
    offers: tuple = ()  # purchase_required: the offers that would let the viewer in (API form)

    @property
    def tree(self) -> dict | None:
        """The rule-by-rule explanation, for the admin's "check access" page."""
        return self.evaluation.explanation.as_dict() if self.evaluation else None


def access_decide(*, user: AbstractBaseUser | AnonymousUser, content: Content) -> AccessDecision:
    """Whether ``user`` may watch ``content`` (whatever its status), and why."""
    if content.gate is None:
        return AccessDecision(True, "open", "Anyone may watch this content.")
    if user.is_authenticated and content.owner_id == user.pk:
        return AccessDecision(True, "owner", "You own this content.")
    if user.is_authenticated and user.is_staff:
        return AccessDecision(True, "staff", "Staff may watch any content.")
    if not user.is_authenticated:
        return AccessDecision(
            False, "sign_in_required", "This content is gated: sign in with a wallet first."
        )
    return gate_decision(gate=content.gate, wallets=viewer_wallets(user), content=content)


def gate_decision(*, gate: dict, wallets: list[Wallet], content: Content) -> AccessDecision:
    """The gate's answer for ``wallets``, with a reason a viewer can act on; a trace span
    (``gate.decide``) whose children are the chain calls it made."""
    with span("gate.decide", {"streamgate.content_id": str(content.id)}) as traced:
        decision = _gate_decision(gate=gate, wallets=wallets, content=content)
        if traced is not None:
            traced.set_attribute("streamgate.decision", decision.reason)
    result = {True: "allow", False: "deny", None: "error"}[decision.allowed]
    GATE_DECISIONS.labels(result=result).inc()
    return decision


def _gate_decision(*, gate: dict, wallets: list[Wallet], content: Content) -> AccessDecision:
    try:
        gate = gate_validate(gate)
    except GateInvalid as error:  # saved before validation existed; nobody gets in
        logger.error("content has an invalid gate", extra={"content": str(content.id)})
        return AccessDecision(False, "gate_invalid", f"The content's gate is invalid: {error}")
    # Market conditions are about this content, in the registry it is registered in on their
    # chain (read here: the chains are asked from a pool of threads that never touch the
    # database).
    bound = gate_bind(gate, str(content.id), registries=registry_addresses(content))
    evaluation = gate_evaluate(gate=bound, wallets=wallets)
    if evaluation.result is True:
        return AccessDecision(True, "gate_met", "Your wallets meet the gate.", evaluation)
    if evaluation.result is None:
        if missing := _chains_never_answering(evaluation):
            # Saved before such gates were refused: a retry would wait for ever. Say which
            # chain, once, as for a gate that is invalid; configuring it lets viewers in again.
            return AccessDecision(
                False,
                "chain_not_configured",
                f"This content's gate needs {', '.join(missing)}, which this server has no RPC "
                "for, so no one's tokens there can be checked; its creator must change the gate.",
                evaluation,
            )
        return AccessDecision(
            None,
            "chain_unavailable",
            "Could not check ownership right now: " + "; ".join(evaluation.unavailable),
            evaluation,
        )
    if not wallets:
        return AccessDecision(
            False, "no_wallet", "Link a wallet to your account to watch gated content.", evaluation
        )
    needs = evaluation.explanation.unmet()
    sellable = _offers_that_open(evaluation, content) if _buying_would_open(evaluation) else []
    if sellable:
        return AccessDecision(
            False,
            "purchase_required",
            "Buy or rent this video to watch it" + (f" ({'; '.join(needs)})." if needs else "."),
            evaluation,
            tuple(sellable),
        )
    detail = "Your wallets do not meet the gate" + (f": {'; '.join(needs)}" if needs else ".")
    return AccessDecision(False, "gate_denied", detail, evaluation)


def access_ends(evaluation: GateEvaluation) -> float | None:
    """When the viewer stops meeting the gate by time alone (the first rental or membership end
    after which the held answers no longer let them in); None: not by time."""
    timed = sorted(
        {answer.until for answer in evaluation.answers.values() if answer.held and answer.until}
    )
    for moment in timed:
        held = {
            condition: (
                False if answer.held and answer.until and answer.until <= moment else answer.held
            )
            for condition, answer in evaluation.answers.items()
        }
        if gate_decide(evaluation.gate, held, evaluation.wallets) is not True:
            return moment
    return None


def _offers_that_open(evaluation: GateEvaluation, content: Content) -> list[dict]:
    """The content's live offers that meet one of the gate's unmet market conditions: a
    rental or purchase where a purchase rule is unmet, a pass where a membership rule is."""
    unmet = {
        (condition.kind, condition.chain)
        for condition, answer in evaluation.answers.items()
        if condition.kind in MARKET and not answer.held
    }
    return [
        offer_output(offer)
        for offer in offers_live(content)
        if (offer_condition_kind(offer.kind), offer.offer_set.chain) in unmet
    ]


def _buying_would_open(evaluation: GateEvaluation) -> bool:
    """Whether the gate would let the viewer in if its unmet market conditions were met (a
    purchase is what stands between them and the video)."""
    market = [c for c, answer in evaluation.answers.items() if c.kind in MARKET and not answer.held]
    if not market:
        return False
    held = {c: (True if c in market else a.held) for c, a in evaluation.answers.items()}
    return gate_decide(evaluation.gate, held, evaluation.wallets) is True


def _chains_never_answering(evaluation: GateEvaluation) -> list[str]:
    """The chains without RPC that leave the gate undecided, when only they do (an unknown on
    a configured chain may be known on the next try)."""
    configured = set(gate_chains())
    unknown = {c.chain for c, answer in evaluation.answers.items() if answer.held is None}
    return sorted(unknown) if unknown and not unknown & configured else []


def access_explain(
    *,
    content: Content,
    user: AbstractBaseUser | None = None,
    wallets: list[Wallet] | None = None,
) -> AccessDecision:
    """For staff: the decision for ``user``, or for a wallet address nobody has linked yet."""
    if wallets is None:
        return access_decide(user=user, content=content)
    if content.gate is None:
        return AccessDecision(True, "open", "Anyone may watch this content.")
    return gate_decision(gate=content.gate, wallets=wallets, content=content)


# --- playback ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Playback:
    hls_path: str
    dash_path: str
    expires_at: datetime
    token: str
    key_token: str


DERIVED_KEY_ID = "k0"


def playback_keys() -> dict[str, bytes]:
    """The HMAC keys by id: PLAYBACK_KEYS from settings, else one derived from SECRET_KEY."""
    if settings.PLAYBACK_KEYS:
        return {kid: secret.encode() for kid, secret in settings.PLAYBACK_KEYS.items()}
    derived = hmac.new(settings.SECRET_KEY.encode(), b"streamgate.playback", hashlib.sha256)
    return {DERIVED_KEY_ID: derived.digest()}


def playback_key_id() -> str:
    """The key new tokens are signed with: PLAYBACK_KEY_ID, or the only key there is."""
    keys = playback_keys()
    kid = settings.PLAYBACK_KEY_ID or (DERIVED_KEY_ID if not settings.PLAYBACK_KEYS else "")
    if kid not in keys:
        raise ImproperlyConfigured("PLAYBACK_KEY_ID must name one of PLAYBACK_KEYS.")
    return kid


def content_encrypted(content: Content) -> bool:
    return DeliveryEncryption.objects.filter(job_id=content.published_job_id).exists()


def playback_grant(*, user: AbstractBaseUser | AnonymousUser, content: Content) -> Playback:
    """Signed stream URLs for ``content`` if ``user`` may watch it now; raises Conflict (not
    ready), SignInRequired, AccessDenied or ChainUnavailable."""
    if content_playable_seconds(content) is None:
        raise Conflict(f"The content is {content.status}, not ready to play.", reason="not_ready")
    decision = access_decide(user=user, content=content)
    if decision.reason == "sign_in_required":
        raise SignInRequired(decision.detail, reason=decision.reason)
    if decision.allowed is None:
        raise ChainUnavailable(decision.detail, reason=decision.reason, retry_after=10)
    if not decision.allowed:
        extra = None
        if decision.reason == "purchase_required":
            extra = {"offers": list(decision.offers)}
        raise AccessDenied(decision.detail, reason=decision.reason, extra=extra)
    now = time.time()
    lifetime = min(
        max(settings.PLAYBACK_TOKEN_TTL, (content.duration or 0) + settings.PLAYBACK_TOKEN_TTL),
        settings.PLAYBACK_TOKEN_MAX_TTL,
    )
    ends = access_ends(decision.evaluation) if decision.evaluation else None
    if ends is not None:  # a rental or membership lets them in: the URLs end with it
        lifetime = max(1, min(lifetime, int(ends - now)))
    keys = playback_keys()
    kid = playback_key_id()
    grant = PlaybackGrant(
        content_id=str(content.id),
        job_id=uuid.UUID(str(content.published_job_id)).hex,
        subject=subject_of(user.pk if content.gate is not None else None, key=keys[kid]),
        expires=int(now + lifetime),
    )
    token = token_sign(grant, kid=kid, key=keys[kid])
    # Encrypted media: the key token rides in the manifests' query, and the master playlist and
    # the MPD each viewer gets carry it into the key and license URLs (apps/access/content_keys.py).
    key_token = key_token_sign(
        KeyGrant(
            content_id=grant.content_id,
            viewer=user.pk if content.gate is not None else None,
            expires=grant.expires,
        ),
        kid=kid,
        key=keys[kid],
    )
    base = f"/stream/{token}/{content.id}/"
    query = f"?k={key_token}" if content_encrypted(content) else ""
    return Playback(
        hls_path=f"{base}master.m3u8{query}",
        dash_path=f"{base}manifest.mpd{query}",
        expires_at=datetime.fromtimestamp(grant.expires, tz=UTC),
        token=token,
        key_token=key_token,
    )
