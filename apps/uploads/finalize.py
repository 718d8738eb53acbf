"""After the last byte: assemble, checksum and check the source; and the reaper of uploads that
will never finish. Both are safe to run twice (Celery redelivers after a worker dies)."""

import logging
import secrets
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.content.models import Content, ContentStatus
from apps.content.services import content_status_set
from apps.content.storage import StorageUnavailable
from apps.uploads.backends import IncomingMissing, store_of
from apps.uploads.lease import lease_free
from apps.uploads.models import DEAD_STATES, Upload, UploadState
from apps.uploads.services import upload_discard
from apps.uploads.sources import source_attach, source_inspect
from streamgate.celery import enqueue_on_commit

logger = logging.getLogger(__name__)

# A complete upload nobody claimed after this long lost its task (the broker was down when it
# was sent); a claim older than the finalize task's hard time limit lost its worker. The reaper
# sends both again, and a stale claim may be taken over.
UNCLAIMED_GRACE = timedelta(minutes=15)
CLAIM_STALE_AFTER = timedelta(hours=3, minutes=10)


def _claim(upload_id: str) -> str | None:
    """Take the finalisation of a complete upload; None if it is not ours to do now."""
    token = secrets.token_hex(16)
    now = timezone.now()
    claimable = Q(state=UploadState.COMPLETE) | Q(
        state=UploadState.FINALIZING, finalize_started_at__lt=now - CLAIM_STALE_AFTER
    )
    claimed = (
        Upload.objects.filter(pk=upload_id)
        .filter(claimable)
        .update(state=UploadState.FINALIZING, finalize_token=token, finalize_started_at=now)
    )
    return token if claimed else None


def upload_finalize(*, upload_id: str) -> Upload | None:
    """Turn a complete upload into the content's source, then queue the content for encoding
    or fail it with a message the creator understands. The source is kept either way."""
    token = _claim(upload_id)
    upload = Upload.objects.select_related("content").filter(pk=upload_id).first()
    if token is None or upload is None:
        logger.info("nothing to finalize", extra={"upload_id": upload_id})
        return upload
    if upload.content is None:  # the content was deleted meanwhile
        Upload.objects.filter(pk=upload.pk, finalize_token=token).update(
            state=UploadState.TERMINATED
        )
        upload_discard(upload_id=upload.id)
        return upload

    try:
        store_of(upload, default_storage).assemble(upload)
    except IncomingMissing as error:
        return _fail(
            upload,
            token,
            f"The uploaded bytes were lost before they could be stored; upload the file again. "
            f"({error})",
        )
    report = source_inspect(upload.source_path)
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
        source_attach(content=upload.content, report=report)
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
                content=content, status=ContentStatus.FAILED, error=message, progress=0
            )
            upload_id = upload.id
            transaction.on_commit(lambda: upload_discard(upload_id=upload_id))
    logger.error("upload finalize failed", extra={"upload_id": str(upload.id), "error": message})
    upload.refresh_from_db()
    return upload


def uploads_reap(*, now: datetime | None = None) -> dict[str, int]:
    """End uploads that expired or lost their content, delete the bytes of ended uploads, and
    resend finalisations that were lost. Each upload is claimed before anything is deleted."""
    from apps.uploads.tasks import upload_finalize as finalize_task

    now = now or timezone.now()
    counts = {"expired": 0, "orphaned": 0, "discarded": 0, "refinalized": 0}
    idle = Upload.objects.filter(state=UploadState.RECEIVING).filter(lease_free(now))
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
            upload_discard(upload_id=upload_id)
            counts["discarded"] += 1
        except StorageUnavailable:
            logger.warning("could not delete upload bytes yet", extra={"upload_id": str(upload_id)})
    stuck = Upload.objects.filter(content__isnull=False).filter(
        Q(state=UploadState.COMPLETE, completed_at__lte=now - UNCLAIMED_GRACE)
        | Q(state=UploadState.FINALIZING, finalize_started_at__lte=now - CLAIM_STALE_AFTER)
    )
    for upload_id in stuck.values_list("id", flat=True):
        enqueue_on_commit(finalize_task, str(upload_id))
        counts["refinalized"] += 1
    logger.info("uploads reaped", extra=counts)
    return counts
