"""One version number for "who may use which bearer token".

Answers cached for a bearer token (the edge's API pages) are stored with this version and
served only while it is unchanged. It moves when a token is revoked, expires differently or is
deleted, and when a user changes (deactivated, made staff, renamed) or is deleted; creating a
token or a user, recording a token's use and a login's time do not move it, as they make no
cached answer wrong. A bulk ``User.objects.update(...)`` sends no signal: deactivate users with
``save()`` (the admin does), or their tokens' cached answers live out their TTL (60 s).
"""

from streamgate.versions import tracking_queryset, version_changed

AUTH_VERSION_KEY = "access:auth-version"


def auth_changed() -> None:
    version_changed(AUTH_VERSION_KEY)


ApiTokenQuerySet = tracking_queryset(auth_changed, quiet_fields={"last_used_at"})


def on_token_saved(*, created: bool, update_fields=None, **_) -> None:
    if not created and set(update_fields or ()) != {"last_used_at"}:
        auth_changed()


def on_user_saved(*, created: bool, update_fields=None, **_) -> None:
    if not created and set(update_fields or ()) != {"last_login"}:
        auth_changed()


def on_deleted(**_) -> None:
    auth_changed()
