"""What a media file holds, read with PyAV (FFmpeg's libraries); no ffprobe binary needed.

The boundary to PyAV and nothing else: callers get a MediaInfo or a NotMedia error whose message
a creator can act on.

An upload is untrusted input for FFmpeg. Playlists, manifests, concat lists, SDP files and image
sequences are demuxers that open the files and URLs they name, so FFmpeg is only ever allowed the
demuxers of VIDEO_DEMUXERS (checked by FFmpeg before a demuxer reads its header) and the one
protocol its source needs. Every refusal reads the same (NOT_A_VIDEO): an error that told an open
port from a closed one, or an existing file from a missing one, would be an oracle.
"""

import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import av

from apps.transcode.ladder import standard_rate

logger = logging.getLogger(__name__)

# Frame timing is read from packet timestamps (no decoding) in a few windows spread over the
# file, so that a long file costs a few seeks, not a read to the end.
TIMING_WINDOWS = 4
TIMING_WINDOW_PACKETS = 120
VFR_TOLERANCE = 0.1
# A rate is measured over this many consecutive frames: millisecond timestamps (Matroska, FLV)
# put 16 or 17 ms between 60 fps frames, 6 % apart; over 10 frames the error is under 1 %.
RATE_RUN = 10
# The peak is this quantile of the measured runs, so that one glitch (two frames stamped alike)
# does not make a 20 fps video look like 1000 fps.
PEAK_QUANTILE = 0.9
# Containers a creator's video may come in: none of their demuxers opens another resource (mov
# would follow data references only with enable_drefs, which is off). Playlists (hls, dash),
# concat lists, SDP, image sequences and the like are refused: they make FFmpeg open other files
# or URLs, which would let an upload read the server's files (other contents' sources and
# segments) or reach its network.
VIDEO_DEMUXERS = frozenset(
    {
        "mov",
        "mp4",
        "m4a",
        "3gp",
        "3g2",
        "mj2",
        "matroska",
        "webm",
        "avi",
        "mpegts",
        "mpeg",
        "flv",
        "asf",
        "mxf",
        "ogg",
        "h264",
        "hevc",
        "m4v",
        "dv",
        "nut",
        "ivf",
        "yuv4mpegpipe",
    }
)
# Past this many pixels we do not decode a frame (to read the rotation): it would be refused.
MAX_PIXELS = 7680 * 4320
# FFmpeg's ``format_whitelist``: an input probed as anything else fails to open.
VIDEO_FORMAT_WHITELIST = ",".join(sorted(VIDEO_DEMUXERS))
# The protocols a source needs: a stored file, or our S3 object through a presigned URL. A file
# object needs none (PyAV reads it through its own I/O context); without a whitelist FFmpeg would
# let a demuxer open anything, so it gets a name no protocol has.
FILE_PROTOCOLS = "file"
URL_PROTOCOLS = "http,https,tcp,tls"
NO_PROTOCOLS = "none"
# The one message for every input we refuse to open or cannot read.
NOT_A_VIDEO = "This file is not a video we can read. Upload an MP4, MOV, MKV or WebM video."


class NotMedia(Exception):
    """The file cannot be used as a video; the message says why, for the creator."""


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration: float | None
    video_codec: str | None
    audio_codec: str | None
    video_duration: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    frame_rate: Fraction | None = None
    average_frame_rate: Fraction | None = None
    variable_frame_rate: bool = False
    peak_frame_rate: Fraction | None = None
    video_bitrate: int | None = None
    pixel_format: str | None = None
    bit_depth: int | None = None
    sample_aspect_ratio: Fraction | None = None
    audio_channels: int | None = None
    audio_sample_rate: int | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def demuxer(self) -> str:
        """FFmpeg's name for the container, as ``-f`` takes it ("mov,mp4,…" -> "mov")."""
        return self.container.split(",", 1)[0]

    @property
    def output_frame_rate_source(self) -> Fraction | None:
        """The rate a constant-rate output should follow so that no motion is lost: the peak
        measured from timestamps (a variable-rate source's fast stretches; a nominal rate that
        is really a timebase, such as 1000, is ignored), else the nominal rate."""
        return self.peak_frame_rate or self.frame_rate

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: rotation applied, non-square pixels made square."""
        width, height = self.width or 0, self.height or 0
        sar = self.sample_aspect_ratio or Fraction(1)
        if sar > 0 and sar != 1:
            width = round(width * sar)
        if abs(self.rotation) % 180 == 90:
            width, height = height, width
        return width, height

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict, for job records and the admin."""
        return {
            key: (str(value) if isinstance(value, Fraction) else value)
            for key, value in asdict(self).items()
        }


def input_options(source: str | BinaryIO) -> dict[str, str]:
    """FFmpeg input options that confine a probe or an encode to ``source`` itself: only the
    video demuxers, and only the protocol the source needs (none for a file object)."""
    if not isinstance(source, str):
        protocols = NO_PROTOCOLS
    elif source.startswith(("http://", "https://")):
        protocols = URL_PROTOCOLS
    else:
        protocols = FILE_PROTOCOLS
    return {"format_whitelist": VIDEO_FORMAT_WHITELIST, "protocol_whitelist": protocols}


def probe(source: str | BinaryIO) -> MediaInfo:
    """Open ``source`` (a local path, a presigned URL or a seekable binary file) and describe
    its streams; NotMedia(NOT_A_VIDEO) for anything that is not one of our video containers."""
    try:
        with av.open(source, mode="r", timeout=30, options=input_options(source)) as container:
            if not set(container.format.name.split(",")) & VIDEO_DEMUXERS:
                # FFmpeg already refuses these through format_whitelist; never trust one check.
                raise NotMedia(NOT_A_VIDEO)
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            duration = container.duration / av.time_base if container.duration else None
            video_fields = _video_fields(container, video, duration, audio) if video else {}
            return MediaInfo(
                container=container.format.name,
                duration=duration,
                video_codec=video.codec_context.name if video else None,
                audio_codec=audio.codec_context.name if audio else None,
                audio_channels=audio.codec_context.channels if audio else None,
                audio_sample_rate=audio.codec_context.sample_rate if audio else None,
                **video_fields,
            )
    except av.FFmpegError as error:
        # FFmpeg's own words stay in our log: shown to the creator they would differ with
        # whatever a hostile file made FFmpeg try.
        logger.info("probe refused the input", extra={"ffmpeg_error": error.strerror})
        raise NotMedia(NOT_A_VIDEO) from error


def _video_fields(container, video, duration: float | None, audio) -> dict[str, Any]:
    context = video.codec_context
    huge = (context.width or 0) * (context.height or 0) > MAX_PIXELS
    pixel_format = context.format.name if context.format else context.pix_fmt
    bit_depth = (
        max((c.bits for c in context.format.components), default=None) if context.format else None
    )
    nominal = video.base_rate or video.guessed_rate
    variable, peak = _frame_timing(container, video, duration, nominal)
    return {
        "width": context.width,
        "height": context.height,
        "pixel_format": pixel_format,
        "bit_depth": bit_depth,
        "frame_rate": nominal,
        "average_frame_rate": video.average_rate,
        "sample_aspect_ratio": video.sample_aspect_ratio or None,
        "rotation": 0 if huge else _rotation(container, video),
        "variable_frame_rate": variable,
        "peak_frame_rate": peak,
        "video_bitrate": _video_bitrate(container, video, audio),
        "video_duration": float(video.duration * video.time_base) if video.duration else None,
    }


def _rotation(container, video) -> int:
    """Degrees from the display matrix, which the decoder attaches to the first frame."""
    container.seek(0)
    try:
        frame = next(container.decode(video), None)
    except av.FFmpegError:
        return 0
    rotation = int(getattr(frame, "rotation", 0) or 0) if frame is not None else 0
    return rotation % 360


def _video_bitrate(container, video, audio) -> int | None:
    """Bits per second of the video stream: as the container states it (MP4 computes it from
    the sample sizes), else the whole file's rate less the audio's; None when unknown."""
    if video.bit_rate:
        return int(video.bit_rate)
    if container.bit_rate:
        return max(1, int(container.bit_rate) - int((audio.bit_rate or 0) if audio else 0))
    return None


def _frame_timing(
    container, video, duration: float | None, nominal: Fraction | None
) -> tuple[bool, Fraction | None]:
    """(whether frames are spaced unevenly, the peak rate) from packet timestamps read in
    TIMING_WINDOWS places; the peak snaps to the nominal or a standard rate when close."""
    variable = False
    rates: list[float] = []
    for window in range(TIMING_WINDOWS if duration else 1):
        stamps = _timestamps(container, video, duration, window)
        seconds = [float(stamp * video.time_base) for stamp in stamps]
        gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False) if b > a]
        if len(gaps) >= 2 and max(gaps) > min(gaps) * (1 + VFR_TOLERANCE):
            variable = True
        rates += [
            RATE_RUN / (seconds[i + RATE_RUN] - seconds[i])
            for i in range(len(seconds) - RATE_RUN)
            if seconds[i + RATE_RUN] > seconds[i]
        ]
    if not rates:
        return variable, None
    rates.sort()
    peak = rates[min(len(rates) - 1, int(len(rates) * PEAK_QUANTILE))]
    return variable, standard_rate(peak, nominal)


def _timestamps(container, video, duration: float | None, window: int) -> list[int]:
    """Sorted presentation timestamps of up to TIMING_WINDOW_PACKETS packets from the
    ``window``-th of TIMING_WINDOWS places in the file."""
    offset = int(duration * window / TIMING_WINDOWS / video.time_base) if duration else 0
    try:
        container.seek(offset + (video.start_time or 0), stream=video)
    except av.FFmpegError:
        return []
    timestamps: list[int] = []
    try:
        for packet in container.demux(video):
            if packet.pts is not None:
                timestamps.append(packet.pts)
            if len(timestamps) >= TIMING_WINDOW_PACKETS:
                break
    except av.FFmpegError:
        pass  # a damaged stretch: the timestamps before it still tell the rate
    return sorted(timestamps)


def require_video(info: MediaInfo) -> MediaInfo:
    """``info`` if it describes a usable video; NotMedia otherwise."""
    if not info.has_video:
        kind = "an audio file" if info.has_audio else "a file without any video"
        raise NotMedia(f"This is {kind}: StreamGate needs a video stream to publish.")
    return info
