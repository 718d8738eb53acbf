"""Signed playback tokens (pure: no Django, no database).

A token rides in the stream URL's path (``/stream/<token>/<content>/master.m3u8``) so that every
relative URI in a playlist inherits it. It reads ``<kid>.<expiry>.<job>.<subject>.<mac>``:

- ``kid`` names the HMAC key, so keys rotate: sign with the newest, accept every listed key
  until the tokens it signed have expired;
- ``expiry`` is a Unix time in base 36;
- ``job`` is the published transcode job (hex), which names the storage prefix to serve from,
  so that serving needs no database query;
- ``subject`` is an opaque label of the viewer (``-`` when anyone may watch);
- ``mac`` is HMAC-SHA256 over all of that and the content id, truncated to 128 bits.

A token for another content, another job, or with any byte changed fails the MAC.
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

MAC_BYTES = 16
_TOKEN = re.compile(
    r"^([a-z0-9]{1,8})\.([0-9a-z]{1,12})\.([0-9a-f]{32})\.([0-9a-z-]{1,24})\.([A-Za-z0-9_-]{22})$"
)


class TokenRejected(Exception):
    """Why a token does not open this content now (for logs; clients just get 403)."""


@dataclass(frozen=True)
class PlaybackGrant:
    content_id: str  # uuid hex, no dashes
    job_id: str  # uuid hex, no dashes
    subject: str
    expires: int  # Unix time


def signature(key: bytes, *fields: str) -> str:
    """The HMAC-SHA256 of ``fields`` joined by "|", cut to MAC_BYTES, base64url without padding
    (the audience's view sessions are signed the same way, with their own first field)."""
    payload = "|".join(fields).encode()
    digest = hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _mac(key: bytes, kid: str, expiry: str, job: str, subject: str, content_id: str) -> str:
    return signature(key, "sg1", kid, expiry, job, subject, content_id)


def base36(number: int) -> str:
    """``number`` (not negative) in base 36, lower case: short timestamps in tokens."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def token_sign(grant: PlaybackGrant, *, kid: str, key: bytes) -> str:
    """The token for ``grant``, signed with key ``kid``."""
    expiry = base36(grant.expires)
    mac = _mac(key, kid, expiry, grant.job_id, grant.subject, grant.content_id)
    return f"{kid}.{expiry}.{grant.job_id}.{grant.subject}.{mac}"


def token_verify(
    token: str, *, content_id: str, keys: dict[str, bytes], now: float
) -> PlaybackGrant:
    """The grant ``token`` carries for ``content_id`` (uuid hex); raises TokenRejected."""
    match = _TOKEN.match(token)
    if match is None:
        raise TokenRejected("malformed token")
    kid, expiry, job, subject, mac = match.groups()
    key = keys.get(kid)
    if key is None:
        raise TokenRejected(f"unknown key id {kid!r}")
    if not hmac.compare_digest(_mac(key, kid, expiry, job, subject, content_id), mac):
        raise TokenRejected("bad signature (tampered, or for another content)")
    expires = int(expiry, 36)
    if expires <= now:
        raise TokenRejected("expired")
    return PlaybackGrant(content_id=content_id, job_id=job, subject=subject, expires=expires)


def subject_of(user_id: int | None, *, key: bytes) -> str:
    """An opaque, stable label of a viewer for tokens and logs; ``-`` for anyone."""
    if user_id is None:
        return "-"
    digest = hmac.new(key, f"subject|{user_id}".encode(), hashlib.sha256).hexdigest()
    return "u" + digest[:15]


# Key tokens: the playback grant of encrypted media, in the key URL of the master playlist and the
# MPD's license URL: ``<kid>.<expiry>.<viewer>.<mac>``. The viewer (a user id in base 36, or ``-``
# for anyone) is needed in clear: a key request checks the gate again, so revoking access stops
# the next key fetch. The MAC covers the content id and has its own domain ("sgk1"): neither a
# stream token nor another content's key token passes.
_KEY_TOKEN = re.compile(
    r"^([a-z0-9]{1,8})\.([0-9a-z]{1,12})\.([0-9a-z]{1,14}|-)\.([A-Za-z0-9_-]{22})$"
)


@dataclass(frozen=True)
class KeyGrant:
    content_id: str
    viewer: int | None  # user id; None: anyone may watch (the content had no gate)
    expires: int


def key_token_sign(grant: KeyGrant, *, kid: str, key: bytes) -> str:
    expiry = base36(grant.expires)
    viewer = "-" if grant.viewer is None else base36(grant.viewer)
    mac = signature(key, "sgk1", kid, expiry, viewer, grant.content_id)
    return f"{kid}.{expiry}.{viewer}.{mac}"


def key_token_verify(
    token: str, *, content_id: str, keys: dict[str, bytes], now: float
) -> KeyGrant:
    """The grant a key token carries for ``content_id`` (uuid hex); raises TokenRejected."""
    match = _KEY_TOKEN.match(token)
    if match is None:
        raise TokenRejected("malformed token")
    kid, expiry, viewer, mac = match.groups()
    key = keys.get(kid)
    if key is None:
        raise TokenRejected(f"unknown key id {kid!r}")
    if not hmac.compare_digest(signature(key, "sgk1", kid, expiry, viewer, content_id), mac):
        raise TokenRejected("bad signature (tampered, or for another content)")
    expires = int(expiry, 36)
    if expires <= now:
        raise TokenRejected("expired")
    return KeyGrant(
        content_id=content_id, viewer=None if viewer == "-" else int(viewer, 36), expires=expires
    )
