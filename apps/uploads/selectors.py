"""Reads about uploads."""

import uuid

from django.contrib.auth.models import User
from django.db.models import Sum

from apps.content.models import Content
from apps.uploads.models import LIVE_STATES, Upload


def upload_get_for_owner(*, user: User, upload_id: uuid.UUID | str) -> Upload | None:
    """The upload if it exists and belongs to ``user``; another user's looks like none."""
    return Upload.objects.filter(pk=upload_id, owner_id=user.pk).first()


def storage_used_by(*, user: User) -> int:
    """Bytes counted against ``user``'s quota: sources kept plus uploads still under way."""
    sources = Content.objects.filter(owner_id=user.pk).aggregate(total=Sum("source_size"))
    pending = Upload.objects.filter(owner_id=user.pk, state__in=LIVE_STATES).aggregate(
        total=Sum("length")
    )
    return (sources["total"] or 0) + (pending["total"] or 0)


def upload_active_for_content(*, content: Content) -> Upload | None:
    """The upload currently feeding ``content``, if one is under way."""
    return Upload.objects.filter(content=content, state__in=LIVE_STATES).first()
