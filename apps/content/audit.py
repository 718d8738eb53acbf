"""The audit trail: an append-only record of security-relevant events (sign-ins and failed
sign-ins, API tokens, wallets, gates, admin actions, key rotations, offers and payouts).

Here in the core so that every app can record (apps/content imports no other app; every other
app may import it). Each row has its time, a dotted event name (``auth.signin.succeeded``), the
actor, the client address (as streamgate/client_address.py decided it), the request id
(streamgate/observability.py), a target (type and id) and a small JSON of details, never a
secret. Rows name users and objects by id, without foreign keys: a deleted user or content keeps
its history, and no cascade can remove a row.

Transactions: a row is written in the transaction of the action it records (the services call
``audit_record`` inside their ``atomic`` block), so an action is never committed without its
record and a rolled-back action leaves none. A failed action (a refused sign-in) is recorded on
its own, after the refusal, and a record that cannot be written fails the request (503 when the
database is away): nothing is swallowed.

Append-only twice over: in Python (``save`` of an existing row, ``delete``, a queryset's
``update``/``delete`` raise ``AuditAppendOnly``) and in PostgreSQL (migration 0011's trigger
refuses UPDATE and DELETE), except for the retention purge (``audit_purge``), which alone sets
the transaction-local ``streamgate.audit_purge``. On SQLite only the Python guard stands.

Written by hand: django-auditlog and django-simple-history record model diffs through signals
(no request id, no failed sign-ins, rows they update and delete), django-easy-audit adds its own
middleware and tables for logins and CRUD with neither append-only storage nor our trusted-proxy
address; what we need (named events written by services in their transactions) is this module.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_task
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from streamgate.observability import current_request_id

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Detail keys that would hold a credential: refused, so that no caller logs one by mistake.
SECRET_KEYS = frozenset({"password", "secret", "signature", "token", "key", "clear", "private_key"})
PURGE_SETTING = "streamgate.audit_purge"


class AuditAppendOnly(Exception):
    """Audit rows are never changed or deleted (only the retention purge removes old ones)."""


class ActorKind(models.TextChoices):
    USER = "user", "User"
    ANONYMOUS = "anonymous", "Anonymous client"
    COMMAND = "command", "Management command"
    SYSTEM = "system", "System (task, indexer)"


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AuditAppendOnly("Audit rows cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnly("Audit rows cannot be deleted (the retention purge removes them).")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AuditAppendOnly("Audit rows cannot be updated.")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise AuditAppendOnly("Audit rows cannot be updated.")


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=64, help_text="Dotted name, e.g. auth.signin.succeeded.")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor = models.CharField(
        max_length=200, help_text="Username, command name, task name, or 'anonymous'."
    )
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    target_type = models.CharField(max_length=64, blank=True, help_text="app_label.model")
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditQuerySet.as_manager()

    class Meta:
        app_label = "content"
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["event", "at"], name="audit_event_at"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_user_id", "at"], name="audit_actor_user"),
            models.Index(fields=["request_id"], name="audit_request"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.event} by {self.actor}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditAppendOnly("Audit rows cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnly("Audit rows cannot be deleted (the retention purge removes them).")


# --- who and where: the request being handled, or the command running -------------------------

_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)
_command: ContextVar[str | None] = ContextVar("audit_command", default=None)


class AuditRequestMiddleware:
    """Makes the request being handled known to ``audit_record`` (its user, read when a row is
    written, so DRF's token authentication, which sets ``request.user`` later, counts)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


@contextmanager
def audit_command(name: str) -> Iterator[None]:
    """Rows recorded inside name ``name`` (a management command) as their actor."""
    token = _command.set(name)
    try:
        yield
    finally:
        _command.reset(token)


@dataclass(frozen=True)
class Actor:
    kind: str
    label: str
    user_id: int | None = None


ANONYMOUS = Actor(ActorKind.ANONYMOUS, "anonymous")


def actor_of(user: Any) -> Actor:
    """The actor a user is (anonymous for None or an anonymous user)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    return Actor(ActorKind.USER, user.get_username()[:200], user.pk)


def _current_actor() -> Actor:
    command = _command.get()
    if command:
        return Actor(ActorKind.COMMAND, command[:200])
    request = _request.get()
    if request is not None:
        return actor_of(getattr(request, "user", None))
    if current_task and getattr(current_task.request, "id", None):
        return Actor(ActorKind.SYSTEM, f"task:{current_task.name}"[:200])
    return Actor(ActorKind.SYSTEM, "system")


def _target(target: models.Model | tuple[str, Any] | None) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk)
    kind, ident = target
    return kind, str(ident)


def audit_record(
    *,
    event: str,
    target: models.Model | tuple[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    actor: Actor | Any = None,
) -> AuditEvent:
    """Append one row. ``actor``: an ``Actor``, a user, or None for whoever is acting now (the
    running command, the request's user, the Celery task, else "system"). The client address and
    request id are the current request's (a task carries the request id of the request that
    sent it). Call it inside the action's transaction. ValueError for a malformed event name or
    a detail key that would hold a secret (a bug in the caller, never user input)."""
    if not EVENT_NAME.match(event) or len(event) > 64:
        raise ValueError(f"Audit event names are dotted lowercase words, not {event!r}.")
    leaked = SECRET_KEYS.intersection(details or {})
    if leaked:
        raise ValueError(f"Audit details never hold secrets: {sorted(leaked)}.")
    if actor is None:
        who = _current_actor()
    elif isinstance(actor, Actor):
        who = actor
    else:
        who = actor_of(actor)
    request = _request.get()
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    target_type, target_id = _target(target)
    return AuditEvent.objects.create(
        event=event,
        actor_kind=who.kind,
        actor=who.label,
        actor_user_id=who.user_id,
        client_address=address or None,
        request_id=current_request_id() or "",
        target_type=target_type,
        target_id=target_id[:64],
        details=details or {},
    )


def audit_purge(*, now: datetime | None = None) -> int:
    """Delete rows older than ``AUDIT_RETENTION_DAYS`` (0: keep them forever); returns how many,
    and records that it did (``audit.purged``). The only door through PostgreSQL's append-only
    trigger: it sets ``streamgate.audit_purge`` for its own transaction only."""
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SELECT set_config(%s, 'on', true)", [PURGE_SETTING])
        cursor.execute(f"DELETE FROM {table} WHERE at < %s", [cutoff])  # noqa: S608 - our name
        deleted = cursor.rowcount
        if postgresql:  # off again at once: the caller's transaction may go on (a failure
            # rolls the setting back with the savepoint)
            cursor.execute("SELECT set_config(%s, 'off', true)", [PURGE_SETTING])
        if deleted:  # the purge itself is on the record
            audit_record(event="audit.purged", details={"rows": deleted, "before": cutoff})
    return deleted
