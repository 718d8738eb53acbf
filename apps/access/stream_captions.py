"""Captions in the stream: the manifests with the content's captions, and the captions' own
playlists and files, all behind the same playback token as the video.

A content's captions change after encoding, so the published master playlist and MPD are
completed here when served (apps/transcode/subtitles.py), from the caption rows of that moment:
one query per manifest request (once per playback start), none for segments. A content without
captions gets its stored manifests untouched, by the usual path. The caption files are served
from the content's captions folder, not the job's, so a re-encode keeps them.
"""

import logging
import re
import uuid

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse

from apps.content.selectors import caption_get, caption_list
from apps.content.storage import StorageUnavailable, is_s3
from apps.transcode.ffmpeg import TS_OFFSET
from apps.transcode.packaging import MASTER, cache_control_of, content_type_of
from apps.transcode.subtitles import (
    ManifestUnreadable,
    SubtitleTrack,
    master_with_subtitles,
    media_timeline,
    mpd_with_subtitles,
    subtitle_playlist,
    vtt_with_timestamp_map,
)

logger = logging.getLogger(__name__)

MPD = "manifest.mpd"
# "ts-": the captions of the MPEG-TS copies native players get for encrypted media, whose
# timestamps are shifted by ffmpeg.TS_OFFSET (apps/transcode/encryption.py).
SUBTITLE_NAME = re.compile(
    r"^subs/(?P<ts>ts-)?(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"\.(?P<kind>m3u8|vtt)$"
)


def is_caption_aware(name: str) -> bool:
    """Whether serving ``name`` depends on the content's captions (the fast path leaves these
    to Django)."""
    return name in (MASTER, MPD) or name.startswith("subs/")


def captioned_response(
    request: HttpRequest, *, content_id: uuid.UUID, job_prefix: str, name: str
) -> HttpResponse | None:
    """The answer for a caption-aware file, or None when the stored file is the answer (a
    manifest of a content without captions). Http404 for a caption that is not this
    content's; StorageUnavailable when storage does not answer."""
    if name in (MASTER, MPD):
        tracks = [_track(caption) for caption in caption_list(content_id)]
        if not tracks:
            return None
        return _answer(request, name, _captioned(job_prefix, name, tracks))
    found = SUBTITLE_NAME.match(name)
    caption = found and caption_get(content_id=content_id, caption_id=found["id"])
    if not caption:
        raise Http404("No such captions.")
    try:
        timeline = media_timeline(_stored(job_prefix + MPD))
    except ManifestUnreadable as error:
        logger.error(
            "no media timeline for captions", extra={"path": job_prefix, "error": str(error)}
        )
        raise Http404("No such captions.") from None
    track = _track(caption)
    shift = TS_OFFSET if found["ts"] else 0
    if found["kind"] == "m3u8":
        body = subtitle_playlist(track, duration=timeline.duration)
        if found["ts"]:
            body = body.replace(f"\n{track.id}.vtt\n", f"\nts-{track.id}.vtt\n")
        body = body.encode("utf-8")
    else:
        vtt = _stored(caption.path).decode("utf-8")
        body = vtt_with_timestamp_map(vtt, start=timeline.start + shift).encode("utf-8")
    return _answer(request, name, body)


def manifest_with_captions(*, content_id: uuid.UUID, job_prefix: str, name: str) -> bytes:
    """The stored master playlist or MPD with the content's captions of this moment."""
    tracks = [_track(caption) for caption in caption_list(content_id)]
    if not tracks:
        return _stored(job_prefix + name)
    return _captioned(job_prefix, name, tracks)


def _captioned(job_prefix: str, name: str, tracks: list[SubtitleTrack]) -> bytes:
    stored = _stored(job_prefix + name)
    if name == MASTER:
        return master_with_subtitles(stored.decode("utf-8", "replace"), tracks).encode("utf-8")
    try:
        return mpd_with_subtitles(stored, tracks)
    except ManifestUnreadable as error:  # not expected of our packager: say so, play on
        logger.error("MPD not captioned", extra={"path": job_prefix, "error": str(error)})
        return stored


def _track(caption) -> SubtitleTrack:
    return SubtitleTrack(id=str(caption.id), language=caption.language, label=caption.label)


def _stored(path: str) -> bytes:
    """The stored file's bytes (manifests and captions are small)."""
    try:
        with default_storage.open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise Http404("No such file.") from None
    except OSError as error:
        raise StorageUnavailable(f"reading {path!r}: {error}") from error
    except Exception as error:
        if is_s3(default_storage):
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchKey",
            ):
                raise Http404("No such file.") from None
            if isinstance(error, (BotoCoreError, ClientError)):
                raise StorageUnavailable(f"reading {path!r}: {error}") from error
        raise


def _answer(request: HttpRequest, name: str, body: bytes) -> HttpResponse:
    return HttpResponse(
        b"" if request.method == "HEAD" else body,
        headers={
            "Content-Type": content_type_of(name),
            "Cache-Control": cache_control_of(name),
            "Content-Length": str(len(body)),
        },
    )
