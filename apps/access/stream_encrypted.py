"""The manifests of encrypted media, per viewer: behind the stream token like every manifest,
completed with the viewer's key token and the public folder (apps/transcode/
encrypted_manifests.py). Segments are not served here: they are public files."""

import logging
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.access.stream_captions import manifest_with_captions
from apps.content.storage import StorageUnavailable
from apps.transcode.encrypted_manifests import ManifestError, master_encrypted, mpd_encrypted
from apps.transcode.encryption import DASH_FOLDER, HLS_FOLDER
from apps.transcode.models import DeliveryEncryption
from apps.transcode.packaging import MASTER, content_type_of

logger = logging.getLogger(__name__)

STORAGE_PUBLIC = "public/"
# Each viewer's own: their key token is in it.
PER_VIEWER = "private, no-cache"


def public_url(storage_prefix: str) -> str:
    """Where players fetch the public file (or folder) stored at ``storage_prefix``."""
    return settings.PUBLIC_MEDIA_URL + storage_prefix.removeprefix(STORAGE_PUBLIC)


def encrypted_manifest(
    request: HttpRequest,
    *,
    content_id: uuid.UUID,
    job_prefix: str,
    name: str,
    row: DeliveryEncryption,
) -> HttpResponse:
    key_token = request.GET.get("k", "")
    try:
        body = manifest_with_captions(content_id=content_id, job_prefix=job_prefix, name=name)
    except StorageUnavailable as error:
        logger.warning("storage refused a manifest read", extra={"error": str(error)})
        return JsonResponse(
            {"detail": "Storage is not answering; try again shortly.", "reason": "storage"},
            status=503,
            headers={"Retry-After": "5"},
        )
    try:
        if name == MASTER:
            key_url = request.build_absolute_uri(
                f"/keys/{content_id}/{row.hls_kid}.key?k={key_token}"
            )
            text = master_encrypted(
                body.decode("utf-8", "replace"),
                media_base=public_url(row.public_prefix + HLS_FOLDER),
                key_url=key_url,
            )
            body = text.encode("utf-8")
        else:
            body = mpd_encrypted(
                body,
                media_base=public_url(row.public_prefix + DASH_FOLDER),
                kid=row.cenc_kid,
                license_url=request.build_absolute_uri(f"/keys/{content_id}/license?k={key_token}"),
            )
    except ManifestError as error:  # our packager's output: not expected; say so
        logger.error("encrypted manifest", extra={"job": str(row.job_id), "error": str(error)})
        return JsonResponse(
            {"detail": "This stream's manifest cannot be served.", "reason": "manifest"},
            status=503,
            headers={"Retry-After": "30"},
        )
    return HttpResponse(
        b"" if request.method == "HEAD" else body,
        headers={
            "Content-Type": content_type_of(name),
            "Cache-Control": PER_VIEWER,
            "Content-Length": str(len(body)),
        },
    )
