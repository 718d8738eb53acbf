"""The write lease: one request at a time may write an upload's bytes.

Taken with a conditional UPDATE that also checks the offset the client claims and that the upload
still receives, so of two racing PATCHes exactly one wins and a PATCH prepared against a stale
offset never writes. Renewed before any byte is written once a third of its lifetime has passed,
so a request that stalled past its lease (and may have been replaced) stops before touching the
bytes again. A writer that dies stops renewing; its lease runs out after TUS_LOCK_SECONDS.

The lease's token names its holder (holder.py): a process on this host, killed mid-PATCH, is
seen to be dead by the next request, which frees its lease at once instead of making the client
wait for it to run out. A holder on another host, or one this process cannot judge, is never
presumed dead.
"""

import logging
import math
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.uploads.exceptions import OffsetMismatch, UploadBusy
from apps.uploads.holder import holder_dead, holder_token
from apps.uploads.models import Upload, UploadState

logger = logging.getLogger(__name__)


def lease_free(now: datetime | None = None) -> Q:
    """Uploads nobody is writing to (no lease, or a lease that ran out)."""
    return Q(lock_token="") | Q(lock_expires_at__lt=now or timezone.now())


class WriteLease:
    def __init__(self, upload: Upload, token: str) -> None:
        self.upload = upload
        self.token = token
        self.renewed_at = time.monotonic()

    @staticmethod
    def _until() -> datetime:
        return timezone.now() + timedelta(seconds=settings.TUS_LOCK_SECONDS)

    @classmethod
    def acquire(cls, upload: Upload, *, offset: int | None = None) -> "WriteLease":
        """Take the lease of a receiving upload (at ``offset``, when given) and reload the
        upload as the lease found it. OffsetMismatch or UploadBusy when that is not possible."""
        token = holder_token()
        claim = Upload.objects.filter(pk=upload.pk, state=UploadState.RECEIVING)
        if offset is not None:
            claim = claim.filter(offset=offset)
        if not claim.filter(lease_free()).update(lock_token=token, lock_expires_at=cls._until()):
            upload.refresh_from_db()
            if offset is not None and upload.offset != offset:
                raise OffsetMismatch(
                    f"Upload-Offset {offset} does not match the {upload.offset} bytes received; "
                    "ask HEAD for the offset and resume from there.",
                    reason="offset",
                )
            raise lease_busy(upload)
        upload.refresh_from_db()
        return cls(upload, token)

    @classmethod
    def claim(
        cls, *, upload_id: str, owner_id: int, offset: int, content_length: int | None
    ) -> "WriteLease | None":
        """The lease of the upload ``owner_id`` owns, taken with one conditional UPDATE when
        nothing stands in the way: the upload receives, has not expired, still has a content,
        is at ``offset``, has room for ``content_length`` bytes (and at least one), and nobody
        holds its lease. None otherwise, having changed nothing: the caller then takes the
        path that waits for a lease, reconciles the offset and says what is wrong."""
        now = timezone.now()
        claim = Upload.objects.filter(
            pk=upload_id,
            owner_id=owner_id,
            state=UploadState.RECEIVING,
            offset=offset,
            content__isnull=False,
            expires_at__gt=now,
            length__gt=offset,
        ).filter(lease_free(now))
        if content_length is not None:
            if content_length == 0:
                return None
            claim = claim.filter(length__gte=offset + content_length)
        token = holder_token()
        if not claim.update(lock_token=token, lock_expires_at=cls._until()):
            return None
        return cls(Upload.objects.get(pk=upload_id), token)

    def owned(self) -> QuerySet[Upload]:
        return Upload.objects.filter(
            pk=self.upload.pk, lock_token=self.token, state=UploadState.RECEIVING
        )

    def renew(self, **fields: Any) -> None:
        """Extend the lease (and write ``fields`` in the same UPDATE); UploadBusy if it was lost."""
        if not self.owned().update(lock_expires_at=self._until(), **fields):
            raise UploadBusy(
                "This upload's write lease ran out or it was ended; resume from HEAD.",
                reason="locked",
            )
        self.renewed_at = time.monotonic()
        _release_pooled_connection()

    def finish(self, **fields: Any) -> None:
        """Write ``fields`` and give the lease up, in one UPDATE; UploadBusy if it was lost."""
        if not self.owned().update(lock_token="", lock_expires_at=None, **fields):
            raise UploadBusy(
                "This upload's write lease ran out or it was ended; resume from HEAD.",
                reason="locked",
            )
        self.token = ""  # released: release() has nothing left to do
        _release_pooled_connection()

    def check(self) -> None:
        """Renew when a third of the lease has passed, so the next write is covered."""
        if time.monotonic() - self.renewed_at >= settings.TUS_LOCK_SECONDS / 3:
            self.renew()

    def guard(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``blocks``, checking the lease before each one."""
        for block in blocks:
            self.check()
            yield block

    def release(self) -> None:
        if not self.token:
            return  # given up by finish()
        Upload.objects.filter(pk=self.upload.pk, lock_token=self.token).update(
            lock_token="", lock_expires_at=None
        )


def lease_wait(upload: Upload) -> bool:
    """Reload ``upload`` once no request holds its write lease, waiting at most
    TUS_LOCK_WAIT_SECONDS; False if it is still held then (a writer that is really writing).

    The lease's holder releases it only after committing the offset of the bytes it stored, so
    once it is free the reloaded offset is the true one.
    """
    deadline = time.monotonic() + settings.TUS_LOCK_WAIT_SECONDS
    pause = 0.005  # a dropped PATCH commits within milliseconds: poll fast, then back off
    while True:
        upload.refresh_from_db()
        if not _lease_held(upload) or _lease_of_dead_freed(upload):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


def _lease_of_dead_freed(upload: Upload) -> bool:
    """Free the lease if its holder is a process of this host that died (its offset is the one
    it committed; bytes it wrote past it are dropped by the next append). Conditional on the
    token, so a lease taken over meanwhile is left alone. True when freed, upload reloaded."""
    if not holder_dead(upload.lock_token):
        return False
    freed = Upload.objects.filter(pk=upload.pk, lock_token=upload.lock_token).update(
        lock_token="", lock_expires_at=None
    )
    if freed:
        logger.warning(
            "lease of a dead writer freed",
            extra={"upload_id": str(upload.id), "offset": upload.offset},
        )
    upload.refresh_from_db()
    return not _lease_held(upload)


def _lease_held(upload: Upload) -> bool:
    return bool(upload.lock_token) and (
        upload.lock_expires_at is None or upload.lock_expires_at >= timezone.now()
    )


def lease_busy(upload: Upload) -> UploadBusy:
    """The 409 for a request that found the lease held; Retry-After says when the lease runs
    out if its holder is gone (a live holder renews it, and the retry waits again)."""
    left = 1.0
    if upload.lock_expires_at is not None:
        left = (upload.lock_expires_at - timezone.now()).total_seconds()
    return UploadBusy(
        "Another request is writing to this upload; retry when it has finished.",
        reason="locked",
        retry_after=max(1, math.ceil(left)),
    )


def _release_pooled_connection() -> None:
    """Between writes a streaming PATCH waits on its client, maybe for long: give its pooled
    database connection back meanwhile, so slow clients cannot exhaust the pool. (SQLite has
    no pool and reconnecting costs more than it saves.)"""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()
