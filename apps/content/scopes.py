"""API token scopes: what a bearer token may do, and what each API view asks of one.

A token holds some of ``SCOPES`` (apps/access/models.py ``ApiToken.scopes``). Every view under
/api/v1/ declares the scope it needs as a class attribute, ``required_scope``: one scope for
every method, or a mapping from HTTP method to scope; ``None`` (``NO_SCOPE``) says the view does
not act for the token's user at all (sign-in, logging this token out). Access's bearer
authentication (apps/access/authentication.py) checks the declaration for every request it
authenticates, so a view gets the check by declaring its scope, whatever its permission
classes; sessions are not scoped. This module is in the core so that every app (uploads and
transcode may not import access) can name scopes; it reads a token's scopes duck-typed.

OPTIONS describes an endpoint (and is a CORS preflight, which carries no credentials): it needs
no scope. HEAD needs what GET needs. A view that declares nothing needs ``manage`` (fail closed;
tests/access/test_scopes.py fails for any such view under /api/v1/).
"""

from collections.abc import Iterable, Mapping

from rest_framework.exceptions import PermissionDenied

from streamgate.exceptions import DomainError

READ = "read"
UPLOAD = "upload"
MANAGE = "manage"
PLAYBACK = "playback"
# In the order people read them; stored and shown sorted.
SCOPES = (READ, UPLOAD, MANAGE, PLAYBACK)
SCOPE_HELP = {
    READ: "Read contents, the catalog, your sales, your account and wallets.",
    UPLOAD: "Create drafts and upload files (tus).",
    MANAGE: "Change or delete contents, gates, captions, posters, offers, registrations, "
    "retries, withdrawals, wallets, tokens and webhooks.",
    PLAYBACK: "Get playback grants (stream URLs and keys), send player beacons, buy access.",
}
NO_SCOPE = None
UNDECLARED_SCOPE = MANAGE


class UnknownScope(DomainError):
    """A scope that does not exist, or none at all (400, the message names it)."""


def scopes_all() -> list[str]:
    """Every scope, sorted: the scopes of a full-access token."""
    return sorted(SCOPES)


def scopes_parse(values: Iterable[str]) -> list[str]:
    """``values`` (names, or comma-separated names) as a sorted list without repeats, or
    UnknownScope naming the first unknown one (or saying none was given)."""
    found: set[str] = set()
    for value in values:
        for name in str(value).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in SCOPES:
                raise UnknownScope(
                    f"Unknown scope '{name}'; the scopes are {', '.join(SCOPES)}.",
                    reason="unknown_scope",
                    extra={"scope": name},
                )
            found.add(name)
    if not found:
        raise UnknownScope(f"Choose at least one scope of {', '.join(SCOPES)}.", reason="no_scope")
    return sorted(found)


def required_scope_of(view: object, method: str) -> str | None:
    """The scope ``view`` needs for ``method`` (None: no scope)."""
    method = method.upper()
    if method == "OPTIONS":
        return NO_SCOPE
    if not hasattr(view, "required_scope"):
        return UNDECLARED_SCOPE
    declared = view.required_scope
    if isinstance(declared, Mapping):
        if method == "HEAD" and "HEAD" not in declared:
            method = "GET"
        # A method the view does not serve answers 405 on its own; nothing to grant there.
        return declared.get(method, NO_SCOPE)
    return declared


class MissingScope(PermissionDenied):
    """403 ``missing_scope``: the bearer token lacks the scope the endpoint needs. (DRF's
    PermissionDenied, so that DRF treats the request as unauthenticated from then on.)"""

    default_code = "missing_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This token lacks the '{scope}' scope.", code="missing_scope")
        self.extra = {"required_scope": scope}


def scope_require(*, view: object, method: str, granted: Iterable[str]) -> None:
    """Raise MissingScope unless ``granted`` holds the scope ``view`` needs for ``method``."""
    needed = required_scope_of(view, method)
    if needed is not None and needed not in set(granted):
        raise MissingScope(needed)
