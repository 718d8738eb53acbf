"""A poster the creator chooses: a frame of the video (taken from the source with FFmpeg at the
time picked on the storyboard), or an image they upload (JPEG, PNG or WebP, checked and
re-encoded by Pillow, never stored as sent). Either way the result is a JPEG of the published
poster's size, stored under the content's ``posters/`` folder and pointed at in one step
(content_poster_set), so the API and the versioned /posters/ URL show it at once."""

import io
import secrets
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from apps.content.models import Content, ContentStatus
from apps.content.services import content_poster_set
from apps.content.storage import posters_prefix, storage_put_file, storage_source_location
from apps.transcode import ffmpeg
from apps.transcode.probe import NotMedia, probe
from streamgate.exceptions import Conflict, DomainError

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # a 40 MP photo; larger is refused before it is decoded
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP"}
# Without renditions to copy (never, for a ready content) a poster fits in this box.
FALLBACK_SIZE = (1280, 720)
# Posters live at a new name each time: the file itself never changes, caches may keep it.
POSTER_CACHE = "public, max-age=31536000, immutable"


class PosterRefused(DomainError):
    """The image or the time cannot make a poster; the message says why."""


def poster_size(content: Content) -> tuple[int, int]:
    """The published poster's size: the tallest rendition's (the encoder's own poster size)."""
    top = content.renditions.order_by("-height").first()
    return (top.width, top.height) if top else FALLBACK_SIZE


def _require_ready(content: Content) -> None:
    if content.status != ContentStatus.READY:
        raise Conflict(
            f"A poster can be chosen once the video is ready; this one is {content.status}.",
            reason="not_ready",
        )


def poster_from_image(*, content: Content, image: io.IOBase, size: int) -> Content:
    """Make an uploaded image (``size`` bytes) the content's poster, re-encoded as a JPEG of the
    poster's size (cropped to its shape). PosterRefused for anything that is not a JPEG, PNG or
    WebP image of at most 5 MiB and 40 megapixels."""
    _require_ready(content)
    if size > MAX_IMAGE_BYTES:
        raise PosterRefused(
            f"The image is {size} bytes; the largest poster image allowed is 5 MiB.",
            reason="image_too_large",
        )
    try:
        with Image.open(image) as picture:
            if picture.format not in IMAGE_FORMATS:
                raise PosterRefused(
                    f"A poster must be a JPEG, PNG or WebP image, not {picture.format}.",
                    reason="image_type",
                )
            width, height = picture.size
            if width * height > MAX_IMAGE_PIXELS:
                raise PosterRefused(
                    f"The image is {width}x{height}; posters are limited to 40 megapixels.",
                    reason="image_too_large",
                )
            picture.load()
            upright = ImageOps.exif_transpose(picture).convert("RGB")
    except PosterRefused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise PosterRefused(
            "The file is not an image we can read; upload a JPEG, PNG or WebP image.",
            reason="image_invalid",
        ) from error
    fitted = ImageOps.fit(upright, poster_size(content), method=Image.Resampling.LANCZOS)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "poster.jpg"
        fitted.save(output, "JPEG", quality=85, optimize=True)
        return _store(content, output)


def poster_from_frame(*, content: Content, at: float) -> Content:
    """Make the frame at ``at`` seconds (from the source, at the poster's size) the content's
    poster. PosterRefused for a time outside the video or a frame FFmpeg cannot read."""
    _require_ready(content)
    duration = content.duration or 0
    if not 0 <= at < max(duration, 0.001):
        raise PosterRefused(
            f"The time must be between 0 and {duration:.1f} seconds (the video's length).",
            reason="time_out_of_range",
        )
    if not content.source_path:
        raise Conflict("This content has no original to take a frame from.", reason="no_source")
    width, height = poster_size(content)
    source = storage_source_location(content.source_path, expires=600)
    # Probed again (confined to video demuxers): the frame is read with that demuxer forced,
    # as the encode was, never with FFmpeg's guess (which could follow a playlist).
    try:
        demuxer = probe(source).demuxer
    except NotMedia as error:
        raise PosterRefused(str(error), reason="frame_failed") from error
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "poster.jpg"
        try:
            ffmpeg.grab_frame(
                source,
                output,
                at=at,
                width=width,
                height=height,
                binary=ffmpeg.ffmpeg_binary(settings.TRANSCODE_FFMPEG),
                input_format=demuxer,
            )
        except ffmpeg.FrameFailed as error:
            raise PosterRefused(str(error), reason="frame_failed") from error
        return _store(content, output)


def _store(content: Content, output: Path) -> Content:
    name = f"{posters_prefix(str(content.id))}{secrets.token_hex(8)}.jpg"
    storage_put_file(str(output), name, content_type="image/jpeg", cache_control=POSTER_CACHE)
    return content_poster_set(content=content, path=name)
