"""Signed view sessions (pure: no Django, no database).

The playback API hands each grant a view session next to its stream URLs; the player's beacons
carry it back. It is the beacons' only credential: it proves that this server granted playback
of this content to this viewer (a gate passed, if there is one) not long ago, so a view cannot
be minted without asking for playback, and it names the viewer the view is counted for. It reads
``<kid>.<issued>.<viewer>.<session>.<mac>``:

- ``kid`` names the HMAC key (the playback keys, which rotate as playback tokens do);
- ``issued`` is the Unix time of the grant, in base 36;
- ``viewer`` is ``u`` + an opaque hash of a user id, or ``a`` + a first-party cookie id;
- ``session`` is 16 random hex digits, one per grant (the row the beacons add up in);
- ``mac`` is HMAC-SHA256 over all of that and the content id, truncated to 128 bits.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

from apps.access.playback_tokens import base36, signature

_SESSION = re.compile(
    r"^([a-z0-9]{1,8})\.([0-9a-z]{1,12})\.([ua][A-Za-z0-9_-]{8,32})\.([0-9a-f]{16})"
    r"\.([A-Za-z0-9_-]{22})$"
)


class SessionRejected(Exception):
    """Why a view session does not count for this content now."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ViewSession:
    content_id: str  # uuid hex, no dashes
    viewer: str
    session_id: str
    issued: int  # Unix time

    @property
    def anonymous(self) -> bool:
        return self.viewer.startswith("a")


def _mac(key: bytes, kid: str, issued: str, viewer: str, session_id: str, content_id: str) -> str:
    return signature(key, "vs1", kid, issued, viewer, session_id, content_id)


def session_sign(session: ViewSession, *, kid: str, key: bytes) -> str:
    """The signed form of ``session``."""
    issued = base36(session.issued)
    mac = _mac(key, kid, issued, session.viewer, session.session_id, session.content_id)
    return f"{kid}.{issued}.{session.viewer}.{session.session_id}.{mac}"


def session_verify(
    text: str, *, content_id: str, keys: dict[str, bytes], now: float, max_age: float
) -> ViewSession:
    """The session ``text`` carries for ``content_id`` (uuid hex), issued at most ``max_age``
    seconds ago; raises SessionRejected (reason ``session_invalid`` or ``session_expired``)."""
    match = _SESSION.match(text)
    if match is None:
        raise SessionRejected("The view session is malformed.", reason="session_invalid")
    kid, issued, viewer, session_id, mac = match.groups()
    key = keys.get(kid)
    if key is None or not hmac.compare_digest(
        _mac(key, kid, issued, viewer, session_id, content_id), mac
    ):
        raise SessionRejected(
            "The view session is not this server's for this content.", reason="session_invalid"
        )
    issued_at = int(issued, 36)
    if issued_at > now + 60:
        raise SessionRejected("The view session is from the future.", reason="session_invalid")
    if issued_at + max_age <= now:
        raise SessionRejected(
            "The view session has expired: ask for playback again.", reason="session_expired"
        )
    return ViewSession(
        content_id=content_id, viewer=viewer, session_id=session_id, issued=issued_at
    )


def viewer_of_user(user_id: int, *, key: bytes) -> str:
    """An opaque, stable label of a signed-in viewer."""
    return "u" + hmac.new(key, f"viewer|{user_id}".encode(), hashlib.sha256).hexdigest()[:20]
