"""Bearer token format and hashing: pure functions, no Django."""

import hashlib
import secrets

TOKEN_PREFIX = "sg_"  # noqa: S105 - a label, not a secret
PREFIX_LENGTH = 10


def token_generate() -> str:
    """A new random token: 'sg_' and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The sha256 hex digest we store. Tokens carry 256 random bits, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()
