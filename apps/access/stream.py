"""The stream views: playlists, manifests, segments and images behind a signed token.

``/stream/<token>/<content_id>/<name>``: the token is checked with the HMAC keys alone (no
database query) and names the published job, hence the storage prefix. From disk the file is
sent with HTTP Range support; from S3, manifests (whose relative URIs must resolve against
this URL, not S3's) are relayed and everything else is a redirect to a short-lived presigned
URL; with STREAM_ACCEL_REDIRECT set, nginx sends the bytes.
"""

import asyncio
import logging
import os
import re
import time
import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)

from apps.access.http_range import RangeNotSatisfiable, byte_range
from apps.access.playback import playback_keys
from apps.access.playback_tokens import TokenRejected, token_verify
from apps.access.stream_captions import MPD, captioned_response, is_caption_aware
from apps.access.stream_encrypted import (
    encrypted_manifest,
    encrypted_playlist,
    is_encrypted_playlist,
)
from apps.content.storage import StorageUnavailable, is_s3
from apps.transcode.models import DeliveryEncryption
from apps.transcode.packaging import MASTER, cache_control_of, content_type_of

logger = logging.getLogger(__name__)

# A file of the job folder: one optional subfolder (storyboard/), no dot segments.
SAFE_NAME = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_-]{0,63}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RELAYED_SUFFIXES = (".m3u8", ".mpd", ".vtt")
CHUNK = 1024 * 1024


def _forbidden(reason: str) -> JsonResponse:
    response = JsonResponse(
        {"detail": "This stream link is invalid or has expired.", "reason": reason}, status=403
    )
    response["Cache-Control"] = "no-store"
    return response


def stream_file(request: HttpRequest, token: str, content_id: uuid.UUID, name: str):
    """Serve one file of the published job the token names."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if not SAFE_NAME.match(name) or ".." in name:
        raise Http404("No such file.")
    try:
        grant = token_verify(
            token, content_id=str(content_id), keys=playback_keys(), now=time.time()
        )
    except TokenRejected as rejected:
        logger.info(
            "stream token refused", extra={"content": str(content_id), "why": str(rejected)}
        )
        return _forbidden("bad_token")
    prefix = f"renditions/{content_id}/{uuid.UUID(hex=grant.job_id)}/"
    encrypted_list = is_encrypted_playlist(name)
    if encrypted_list or (name in (MASTER, MPD) and "k" in request.GET):  # encrypted media
        row = DeliveryEncryption.objects.filter(job_id=uuid.UUID(hex=grant.job_id)).first()
        if row is not None and encrypted_list:
            return encrypted_playlist(request, job_prefix=prefix, name=name, row=row)
        if row is not None:
            return encrypted_manifest(
                request, content_id=content_id, job_prefix=prefix, name=name, row=row
            )
    if is_caption_aware(name):
        try:
            answer = captioned_response(
                request, content_id=content_id, job_prefix=prefix, name=name
            )
        except StorageUnavailable as error:
            return _storage_unavailable(prefix + name, error)
        if answer is not None:
            return answer
    return storage_response(request, prefix + name, name)


def storage_response(request: HttpRequest, path: str, name: str) -> HttpResponse:
    """The response that delivers the stored file ``path`` (public only to checked callers)."""
    headers = {"Content-Type": content_type_of(name), "Cache-Control": cache_control_of(name)}
    if settings.STREAM_ACCEL_REDIRECT:
        response = HttpResponse(headers=headers)
        response["X-Accel-Redirect"] = settings.STREAM_ACCEL_REDIRECT + path
        return response
    if is_s3(default_storage):
        return _s3_response(request, path, name, headers)
    try:
        handle = open(default_storage.path(path), "rb")  # noqa: SIM115 - closed by the response
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise Http404("No such file.") from None
    except OSError as error:  # unreadable: a disk error, permissions, a link loop
        return _storage_unavailable(path, error)
    return file_response(request, handle, headers)


def file_response(request: HttpRequest, handle, headers: dict[str, str]) -> HttpResponse:
    """The file (or the byte range asked for) with Range support; HEAD gets headers only."""
    size = os.fstat(handle.fileno()).st_size
    try:
        span = byte_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        handle.close()
        response = HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
        return response
    start, end = span if span else (0, size - 1)
    length = max(0, end - start + 1)
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(length)}
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":
        handle.close()
        return HttpResponse(status=status, headers=headers)
    if length > settings.STREAM_MEMORY_LIMIT:
        return StreamingHttpResponse(_chunks(handle, start, length), status=status, headers=headers)
    # Segments are a few MB: one read and one send beat a streamed response, and Django's ASGI
    # handler would gather a synchronous iterator into a list anyway.
    with handle:
        handle.seek(start)
        body = handle.read(length)
    return HttpResponse(body, status=status, headers=headers)


async def _chunks(handle, start: int, length: int):
    """A large file in 1 MiB pieces, read off the event loop, for Django's ASGI handler."""
    try:
        await asyncio.to_thread(handle.seek, start)
        remaining = length
        while remaining > 0:
            data = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def _s3_response(request: HttpRequest, path: str, name: str, headers: dict[str, str]):
    if name.endswith(RELAYED_SUFFIXES):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with default_storage.open(path, "rb") as handle:
                body = handle.read()
        except FileNotFoundError:
            raise Http404("No such file.") from None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise Http404("No such file.") from None
            return _storage_unavailable(path, error)
        except BotoCoreError as error:
            return _storage_unavailable(path, error)
        return HttpResponse(
            b"" if request.method == "HEAD" else body,
            headers={**headers, "Content-Length": str(len(body))},
        )
    url = default_storage.url(path, expire=settings.STREAM_PRESIGN_SECONDS)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"
    return response


def _storage_unavailable(path: str, error: Exception) -> JsonResponse:
    logger.warning("storage refused a stream read", extra={"path": path, "error": repr(error)})
    return JsonResponse(
        {"detail": "Storage is not answering; try again shortly.", "reason": "storage"},
        status=503,
        headers={"Retry-After": "5"},
    )
