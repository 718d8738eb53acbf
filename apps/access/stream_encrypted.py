"""The manifests of encrypted media, per viewer: behind the stream token like every manifest,
completed with the viewer's key token and the public folder (apps/transcode/
encrypted_manifests.py). Segments are not served here: they are public files."""

import logging
import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from apps.access.stream_captions import manifest_with_captions
from apps.content.storage import StorageUnavailable
from apps.transcode.encrypted_manifests import ManifestError, master_encrypted, mpd_encrypted
from apps.transcode.encryption import DASH_FOLDER, HLS_FOLDER, TS_FOLDER, playlist_encrypted
from apps.transcode.keys import KeyUnavailable
from apps.transcode.models import DeliveryEncryption
from apps.transcode.packaging import MASTER, content_type_of
from apps.transcode.services.encrypting import content_keys

logger = logging.getLogger(__name__)

STORAGE_PUBLIC = "public/"
# Each viewer's own: their key token is in it.
PER_VIEWER = "private, no-cache"
# A media element's own request (native HLS) says so; script players fetch with "empty".
NATIVE_DESTINATIONS = ("video", "audio")


def hls_set(request: HttpRequest) -> str:
    """Which encrypted HLS set a request's player plays: MPEG-TS for a media element's own HLS
    (Chromium's decrypts AES-128 only over TS), fMP4 for script players."""
    native = request.headers.get("Sec-Fetch-Dest", "") in NATIVE_DESTINATIONS
    return TS_FOLDER if native else HLS_FOLDER


def _unavailable(detail: str, reason: str, retry: int) -> JsonResponse:
    return JsonResponse(
        {"detail": detail, "reason": reason}, status=503, headers={"Retry-After": str(retry)}
    )


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
        return _unavailable("Storage is not answering; try again shortly.", "storage", 5)
    try:
        if name == MASTER:
            key_url = request.build_absolute_uri(
                f"/keys/{content_id}/{row.hls_kid}.key?k={key_token}"
            )
            chosen = hls_set(request)
            # While a chunked job still publishes, its playlists grow: they come from here
            # (relative: under this stream URL), then from the public files once complete.
            base = public_url(row.public_prefix + chosen) if row.complete else chosen
            text = master_encrypted(
                body.decode("utf-8", "replace"),
                media_base=base,
                key_url=key_url,
                ts=chosen == TS_FOLDER,
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
        return _unavailable("This stream's manifest cannot be served.", "manifest", 30)
    return _answer(request, name, body)


def _answer(request: HttpRequest, name: str, body: bytes) -> HttpResponse:
    return HttpResponse(
        b"" if request.method == "HEAD" else body,
        headers={
            "Content-Type": content_type_of(name),
            "Cache-Control": PER_VIEWER,
            "Content-Length": str(len(body)),
            "Vary": "Sec-Fetch-Dest",
        },
    )


def is_encrypted_playlist(name: str) -> bool:
    return name.startswith((HLS_FOLDER, TS_FOLDER)) and name.endswith(".m3u8")


def encrypted_playlist(
    request: HttpRequest, *, job_prefix: str, name: str, row: DeliveryEncryption
) -> HttpResponse:
    """A growing (or just completed) media playlist of encrypted media, from the job's clear
    one: segments addressed in the public folder, each with its key line."""
    folder, playlist = name.split("/", 1)
    folder += "/"
    try:
        hls, _ = content_keys(row)
        with default_storage.open(job_prefix + playlist, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        raise Http404("No such playlist.") from None
    except KeyUnavailable as error:
        logger.error("content key unavailable", extra={"job": str(row.job_id), "error": str(error)})
        return _unavailable("The stream cannot be served now; try again shortly.", "key", 30)
    except OSError as error:
        logger.warning("storage refused a playlist read", extra={"error": str(error)})
        return _unavailable("Storage is not answering; try again shortly.", "storage", 5)
    body = playlist_encrypted(
        text, hls.key, folder=folder, base=public_url(row.public_prefix + folder)
    ).encode()
    return _answer(request, name, body)
