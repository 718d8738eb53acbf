"""After the last byte: assemble, checksum and check the source; and the reaper of uploads that
will never finish. Both are safe to run twice (Celery redelivers after a worker dies)."""

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.content.status import ErrorKind
from apps.content.storage import StorageUnavailable
from apps.content.webhooks.events import content_data
from apps.content.webhooks.services import webhook_event_emit
from apps.uploads import tasks
from apps.uploads.backends import IncomingMissing, store_of
from apps.uploads.lease import lease_free
from apps.uploads.models import DEAD_STATES, Upload, UploadState
from apps.uploads.services import ending, receiving
from apps.uploads.sources import source_attach, source_inspect
from streamgate.celery import enqueue_on_commit
from streamgate.metrics import UPLOAD_STORAGE_ERRORS

logger = logging.getLogger(__name__)

# A finalisation renews its claim every RENEW_EVERY seconds while it reads the file; a claim not
# renewed for FINALIZE_LEASE lost its worker (killed, or its task gave up retrying) and may be
# taken over: the reaper sends the task again. The task's own retry (same Celery task id, the
# claim's token) takes its claim back at once.
FINALIZE_LEASE = timedelta(minutes=2)
RENEW_EVERY = 20.0
# A complete upload nobody claimed after this long lost its task although the outbox sent it: a
# worker that received it and died before its body (a result-backend connection that Redis had
# reset), a message dropped. Sending it again costs nothing (one run claims it, a second finds it
# claimed), so the grace is short: an upload waits minutes, not hours.
UNCLAIMED_GRACE = timedelta(minutes=2)


class ClaimLost(Exception):
    """Another run took the finalisation over (this one was judged dead): stop here."""


@dataclass
class FinalizeClaim:
    upload_id: str
    token: str
    renewed_at: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        """Keep the claim while reading (call it often; it writes every RENEW_EVERY s).

        A database that is away is logged and tried again later: the read goes on, and the
        outcome is written (or the task retried) at the end. ClaimLost if another run has it."""
        if time.monotonic() - self.renewed_at < RENEW_EVERY:
            return
        self.renewed_at = time.monotonic()
        try:
            renewed = Upload.objects.filter(
                pk=self.upload_id, state=UploadState.FINALIZING, finalize_token=self.token
            ).update(finalize_renewed_at=timezone.now())
        except DatabaseError as error:
            logger.warning(
                "finalize claim not renewed, the database is unavailable",
                extra={"upload_id": self.upload_id, "error": repr(error)},
            )
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()  # the next query reconnects
            return
        if not renewed:
            raise ClaimLost(self.upload_id)


def _claim(upload_id: str, token: str) -> FinalizeClaim | None:
    """Take the finalisation of a complete upload; None if it is not ours to do now. A claim
    holding our token (an earlier attempt of this task) or not renewed for FINALIZE_LEASE is
    taken over."""
    now = timezone.now()
    claimable = Q(state=UploadState.COMPLETE) | Q(
        Q(finalize_token=token) | Q(finalize_renewed_at__lt=now - FINALIZE_LEASE),
        state=UploadState.FINALIZING,
    )
    claimed = (
        Upload.objects.filter(pk=upload_id)
        .filter(claimable)
        .update(state=UploadState.FINALIZING, finalize_token=token, finalize_renewed_at=now)
    )
    return FinalizeClaim(str(upload_id), token) if claimed else None


def upload_finalize(*, upload_id: str, token: str | None = None) -> Upload | None:
    """Turn a complete upload into the content's source, then queue the content for encoding
    or fail it with a message the creator understands. The source is kept either way.

    ``token`` names this attempt (the Celery task id: a retry of the task takes its own claim
    back); transient errors (database, storage) propagate for the task to retry."""
    claim = _claim(upload_id, token or secrets.token_hex(16))
    upload = Upload.objects.select_related("content").filter(pk=upload_id).first()
    if claim is None or upload is None:
        logger.info("nothing to finalize", extra={"upload_id": upload_id})
        return upload
    token = claim.token
    if upload.content is None:  # the content was deleted meanwhile
        Upload.objects.filter(pk=upload.pk, finalize_token=token).update(
            state=UploadState.TERMINATED
        )
        ending.upload_discard(upload_id=upload.id)
        return upload

    try:
        store_of(upload, default_storage).assemble(upload)
    except StorageUnavailable:
        UPLOAD_STORAGE_ERRORS.labels(stage="finalize").inc()
        raise  # the task retries it
    except IncomingMissing as error:
        return _fail(
            upload,
            token,
            f"The uploaded bytes were lost before they could be stored; upload the file again. "
            f"({error})",
        )
    try:
        report = source_inspect(upload.source_path, keep_alive=claim.renew)
    except ClaimLost:
        logger.warning("finalize claim lost", extra={"upload_id": str(upload.id)})
        return upload
    except StorageUnavailable:
        UPLOAD_STORAGE_ERRORS.labels(stage="finalize").inc()
        raise
    if report.size != upload.length:
        return _fail(
            upload,
            token,
            f"The stored file has {report.size} bytes instead of {upload.length}; upload it again.",
        )
    with transaction.atomic():
        if not _still_ours(upload, token):
            return upload
        Upload.objects.filter(pk=upload.pk).update(
            state=UploadState.FINALIZED,
            sha256=report.sha256,
            finalized_at=timezone.now(),
            error=report.problem or "",
        )
        # Announced first: a file that is no video fails its content right after (content.failed).
        content = upload.content
        webhook_event_emit(
            event_type="upload.completed",
            owner_id=content.owner_id,
            content_id=content.id,
            data={
                **content_data(content),
                "upload": {
                    "id": str(upload.id),
                    "filename": upload.filename,
                    "size": report.size,
                    "sha256": report.sha256,
                },
            },
        )
        source_attach(content=content, report=report)
    logger.info(
        "upload finalized",
        extra={"upload_id": upload_id, "sha256": report.sha256, "media": not report.problem},
    )
    upload.refresh_from_db()
    return upload


def _still_ours(upload: Upload, token: str) -> bool:
    """Lock the row; False when another run took the claim over (ours was judged stale)."""
    current = Upload.objects.select_for_update().filter(pk=upload.pk).first()
    if (
        current is None
        or current.state != UploadState.FINALIZING
        or current.finalize_token != token
    ):
        logger.warning("finalize claim lost", extra={"upload_id": str(upload.id)})
        return False
    return True


def _fail(upload: Upload, token: str, message: str) -> Upload:
    with transaction.atomic():
        if _still_ours(upload, token):
            Upload.objects.filter(pk=upload.pk).update(state=UploadState.FAILED, error=message)
            content = Content.objects.get(pk=upload.content_id)
            content_status_set(
                content=content,
                status=ContentStatus.FAILED,
                error=message,
                progress=0,
                error_kind=ErrorKind.SOURCE,
            )
            upload_id = upload.id
            transaction.on_commit(lambda: ending.upload_discard(upload_id=upload_id))
    logger.error("upload finalize failed", extra={"upload_id": str(upload.id), "error": message})
    upload.refresh_from_db()
    return upload


def uploads_reap(*, now: datetime | None = None) -> dict[str, int]:
    """End uploads that expired or lost their content, delete the bytes of ended uploads, and
    resend finalisations that were lost. Each upload is claimed before anything is deleted."""
    now = now or timezone.now()
    counts = {"expired": 0, "orphaned": 0, "discarded": 0, "refinalized": 0, "completed": 0}
    idle = Upload.objects.filter(state=UploadState.RECEIVING).filter(lease_free(now))
    # Every byte stored, but the PATCH that stored the last one died before completing it.
    for upload in idle.filter(offset=F("length"), content__isnull=False):
        counts["completed"] += receiving.upload_complete(upload=upload)
    for upload in idle.filter(expires_at__lte=now).select_related("content"):
        with transaction.atomic():
            # Claimed only if it still receives, is still expired and nobody writes to it now.
            if not (
                Upload.objects.filter(
                    pk=upload.pk, state=UploadState.RECEIVING, expires_at__lte=now
                )
                .filter(lease_free(now))
                .update(state=UploadState.EXPIRED)
            ):
                continue
            if upload.content and upload.content.status == ContentStatus.UPLOADING:
                content_status_set(
                    content=upload.content,
                    status=ContentStatus.DRAFT,
                    progress=0,
                    error=(
                        f"The upload of {upload.filename} expired with {upload.offset} of "
                        f"{upload.length} bytes received; upload the file again."
                    ),
                )
        counts["expired"] += 1
        logger.info("upload expired", extra={"upload_id": str(upload.id)})
    orphans = Upload.objects.filter(
        content__isnull=True, state__in=(UploadState.RECEIVING, UploadState.COMPLETE)
    ).filter(lease_free(now))
    counts["orphaned"] = orphans.update(state=UploadState.TERMINATED)
    for upload_id in Upload.objects.filter(
        state__in=DEAD_STATES, discarded_at__isnull=True
    ).values_list("id", flat=True):
        try:
            ending.upload_discard(upload_id=upload_id)
            counts["discarded"] += 1
        except StorageUnavailable:
            logger.warning("could not delete upload bytes yet", extra={"upload_id": str(upload_id)})
    stuck = Upload.objects.filter(content__isnull=False).filter(
        Q(state=UploadState.COMPLETE, completed_at__lte=now - UNCLAIMED_GRACE)
        | Q(state=UploadState.FINALIZING, finalize_renewed_at__lte=now - FINALIZE_LEASE)
    )
    for upload_id in stuck.values_list("id", flat=True):
        enqueue_on_commit(tasks.upload_finalize, str(upload_id))
        counts["refinalized"] += 1
    logger.info("uploads reaped", extra=counts)
    return counts
