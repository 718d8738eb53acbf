"""The key URLs of encrypted media: the only part of playback still gated once segments are
public files (apps/transcode/encryption.py).

``GET /keys/<content>/<kid>.key?k=<key token>`` answers HLS's 16-byte AES-128 key;
``POST /keys/<content>/license?k=<key token>`` answers a W3C ClearKey license request (EME's
``{"kids": [...]}``) with ``{"keys": [{"kty": "oct", "kid", "k"}], "type": "temporary"}``.
Each checks the key token (signed, for this content, not expired), then the content's gate
again for the viewer it names (cached ownership answers, as at playback), so revoking access
(a token sold, a wallet unlinked, a rental over, a gate tightened) fails the next key fetch.
Refusals are playback's: 401 ``sign_in_required`` (or no token), 403 with the gate's reason,
503 ``chain_unavailable``; every answer is ``Cache-Control: no-store``. Open to every origin,
without credentials, like /stream/ (apps/access/stream_cors.py). A yes is remembered for a
short while so that the next GET of the same key is answered before Django
(apps/access/key_decisions.py).
"""

import base64
import json
import logging
import time
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.access.key_decisions import KEYS, decision_remember, generations_read
from apps.access.playback import access_decide, access_ends, playback_keys
from apps.access.playback_tokens import TokenRejected, key_token_verify
from apps.content.models import Content
from apps.transcode.keys import ContentKey, KeyUnavailable
from apps.transcode.models import DeliveryEncryption
from apps.transcode.services.encrypting import content_keys

logger = logging.getLogger(__name__)

LICENSE_BODY_LIMIT = 16 * 1024


def _refuse(status: int, reason: str, detail: str) -> JsonResponse:
    return JsonResponse(
        {"detail": detail, "reason": reason},
        status=status,
        headers={"Cache-Control": "no-store", **({"Retry-After": "10"} if status == 503 else {})},
    )


def _authorized_keys(
    request: HttpRequest, content_id: uuid.UUID
) -> tuple[ContentKey, ContentKey] | JsonResponse:
    """The content's (HLS, DASH) keys if the request's key token and the gate let it in."""
    token = request.GET.get("k", "")
    if not token:
        return _refuse(401, "token_required", "This key URL needs its playback grant (?k=).")
    try:
        grant = key_token_verify(
            token, content_id=str(content_id), keys=playback_keys(), now=time.time()
        )
    except TokenRejected as rejected:
        logger.info("key token refused", extra={"content": str(content_id), "why": str(rejected)})
        reason = "token_expired" if str(rejected) == "expired" else "bad_token"
        return _refuse(403, reason, "This key link is invalid or has expired.")
    content = Content.objects.filter(pk=content_id).first()
    if content is None or content.published_job_id is None:
        return _refuse(404, "not_found", "No such content.")
    user = AnonymousUser()
    if grant.viewer is not None:
        user = get_user_model().objects.filter(pk=grant.viewer, is_active=True).first()
        if user is None:
            return _refuse(403, "bad_token", "This key link's viewer no longer exists.")
    # Read before deciding: a write while Django decides leaves a remembered yes stale from the
    # start (apps/access/key_decisions.py).
    generations = generations_read(str(content_id), grant.viewer)
    decision = access_decide(user=user, content=content)
    if decision.allowed is None:
        return _refuse(503, decision.reason, decision.detail)
    if not decision.allowed:
        status = 401 if decision.reason == "sign_in_required" else 403
        return _refuse(status, decision.reason, decision.detail)
    row = DeliveryEncryption.objects.filter(job_id=content.published_job_id).first()
    if row is None:
        return _refuse(404, "not_encrypted", "This content's media are not encrypted.")
    try:
        keys = content_keys(row)
    except KeyUnavailable as error:
        logger.error(
            "content key unavailable", extra={"job_id": str(row.job_id), "error": str(error)}
        )
        return _refuse(503, "key_unavailable", "The key cannot be read now; try again shortly.")
    if generations is not None:
        job_id = str(row.job_id)
        KEYS.put(job_id, keys[0].kid, keys[0].key)
        ends = access_ends(decision.evaluation) if decision.evaluation else None
        decision_remember(
            content_id=str(content_id),
            viewer=grant.viewer,
            generations=generations,
            job_id=job_id,
            until=min(grant.expires, ends) if ends is not None else grant.expires,
        )
    return keys


def hls_key(request: HttpRequest, content_id: uuid.UUID, kid: uuid.UUID) -> HttpResponse:
    """The AES-128 key of the content's HLS media."""
    if request.method not in ("GET", "HEAD"):
        return _refuse(405, "method_not_allowed", "GET the key.")
    keys = _authorized_keys(request, content_id)
    if isinstance(keys, JsonResponse):
        return keys
    hls, _ = keys
    if hls.kid != kid:
        return _refuse(404, "unknown_key", "No such key for this content (re-encoded since?).")
    body = b"" if request.method == "HEAD" else hls.key
    return HttpResponse(
        body,
        content_type="application/octet-stream",
        headers={"Cache-Control": "no-store", "Content-Length": "16"},
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@csrf_exempt
def clearkey_license(request: HttpRequest, content_id: uuid.UUID) -> HttpResponse:
    """A W3C ClearKey license for the content's DASH media."""
    if request.method != "POST":
        return _refuse(405, "method_not_allowed", "POST a ClearKey license request.")
    if len(request.body) > LICENSE_BODY_LIMIT:
        return _refuse(413, "too_large", "A license request is a few hundred bytes.")
    try:
        asked = json.loads(request.body)
        if not isinstance(asked["kids"], list) or not asked["kids"]:
            raise ValueError
        kids = [_b64url_decode(kid) for kid in asked["kids"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return _refuse(
            400, "bad_request", 'Send a ClearKey license request: {"kids": ["<base64url>"]}.'
        )
    keys = _authorized_keys(request, content_id)
    if isinstance(keys, JsonResponse):
        return keys
    _, dash = keys
    if dash.kid.bytes not in kids:
        return _refuse(404, "unknown_key", "No such key for this content (re-encoded since?).")
    license_ = {
        "keys": [{"kty": "oct", "kid": _b64url(dash.kid.bytes), "k": _b64url(dash.key)}],
        "type": "temporary",
    }
    return JsonResponse(license_, headers={"Cache-Control": "no-store"})
