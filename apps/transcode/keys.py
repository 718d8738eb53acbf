"""Content keys, kept wrapped by a master key; never in the media bucket, never logged.

Every published job gets its own random 128-bit keys (one for HLS's AES-128, one for DASH's
Common Encryption: two ciphers never share a key). The database stores each wrapped with
AES-256-GCM under the current master key, the job and the key id bound in as associated data, so
a wrapped key copied onto another row does not unwrap. Master keys come from settings
(``MEDIA_MASTER_KEYS`` or ``MEDIA_MASTER_KEYS_FILE``: ``{"id": "<base64 of 32 bytes>"}``, the
newest named by ``MEDIA_MASTER_KEY_ID``); without them one is derived from SECRET_KEY, as the
playback tokens' key is. Rotating the master key rewraps the rows (``manage.py
media_keys_rewrap``): the media is not touched.

By hand because it is two calls into ``cryptography`` (already a dependency): a key-management
service (Vault, KMS) would be the next step for operators who run one.
"""

import base64
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DERIVED_ID = "m0"
NONCE_BYTES = 12


class KeyUnavailable(Exception):
    """A wrapped key whose master key is not configured, or that does not unwrap."""


@dataclass(frozen=True)
class ContentKey:
    kid: uuid.UUID
    key: bytes = b""

    def __repr__(self) -> str:  # never in a log line or a traceback's locals
        return f"ContentKey(kid={self.kid})"


def content_key_new() -> ContentKey:
    return ContentKey(kid=uuid.uuid4(), key=os.urandom(16))


def master_keys() -> dict[str, bytes]:
    """Master keys by id: MEDIA_MASTER_KEYS, else one derived from SECRET_KEY."""
    configured = settings.MEDIA_MASTER_KEYS
    if not configured:
        derived = hmac.new(settings.SECRET_KEY.encode(), b"streamgate.media-master", hashlib.sha256)
        return {DERIVED_ID: derived.digest()}
    keys = {}
    for kid, text in configured.items():
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ImproperlyConfigured(f"MEDIA_MASTER_KEYS[{kid!r}] must be 32 bytes in base64.")
        keys[kid] = key
    return keys


def master_key_id() -> str:
    keys = master_keys()
    kid = settings.MEDIA_MASTER_KEY_ID or (next(iter(keys)) if len(keys) == 1 else "")
    if kid not in keys:
        raise ImproperlyConfigured("MEDIA_MASTER_KEY_ID must name one of MEDIA_MASTER_KEYS.")
    return kid


def _context(job_id: uuid.UUID | str, kid: uuid.UUID) -> bytes:
    return f"streamgate.content-key|{uuid.UUID(str(job_id)).hex}|{kid.hex}".encode()


def key_wrap(content_key: ContentKey, *, job_id: uuid.UUID | str) -> tuple[str, bytes]:
    """(master key id, nonce + ciphertext) of ``content_key`` for ``job_id``."""
    master_id = master_key_id()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(master_keys()[master_id]).encrypt(
        nonce, content_key.key, _context(job_id, content_key.kid)
    )
    return master_id, nonce + sealed


def key_unwrap(
    wrapped: bytes | memoryview, *, master_id: str, job_id: uuid.UUID | str, kid: uuid.UUID
) -> ContentKey:
    master = master_keys().get(master_id)
    if master is None:
        raise KeyUnavailable(f"master key {master_id!r} is not configured")
    try:
        key = AESGCM(master).decrypt(
            bytes(wrapped[:NONCE_BYTES]), bytes(wrapped[NONCE_BYTES:]), _context(job_id, kid)
        )
    except InvalidTag:
        raise KeyUnavailable(f"a key wrapped under {master_id!r} does not unwrap") from None
    return ContentKey(kid=kid, key=key)


def master_key_fingerprint(master_id: str) -> str | None:
    """A short HMAC of the master key ``master_id`` (None when it is not configured): tells two
    keys apart without revealing either, so a backup can name the keys it needs."""
    master = master_keys().get(master_id)
    if master is None:
        return None
    return hmac.new(master, b"streamgate.master-key-fingerprint", hashlib.sha256).hexdigest()[:16]
