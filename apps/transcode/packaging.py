"""Finishing FFmpeg's output into what players get: pure file work in the job's folder.

FFmpeg's DASH muxer writes CMAF fMP4 segments and an MPD whose SegmentTimeline lists them.
Here we:
- merge a sliver at the end of a track (a tail shorter than ``MIN_TAIL_SECONDS``, e.g. the
  one AAC frame the encoder's priming pushes past the last boundary) into the segment before,
  in every track alike, so audio and video end together (hls.js stalls on such a sliver);
- give every segment CMAF segment brands (see cmaf.py);
- rewrite the MPD: every segment addressed with its real duration (mpd.py);
- write the HLS media playlists from the same timeline as VOD playlists (``#EXT-X-PLAYLIST-
  TYPE:VOD``), so players know the list is complete and can seek anywhere;
- write the HLS v7 master playlist, with BANDWIDTH (peak over whole segments) and
  AVERAGE-BANDWIDTH measured from the segments actually written, RESOLUTION, CODECS and
  FRAME-RATE; the MPD gets the same measured peaks;
- write the storyboard WebVTT track (``sprite-NNN.jpg#xywh=x,y,w,h`` cues).
"""

import math
import mimetypes
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from apps.transcode.cmaf import finish_segment
from apps.transcode.ffmpeg import MANIFEST, POSTER, Storyboard, sprite_count
from apps.transcode.ladder import PlannedRung
from apps.transcode.mpd import Track, read_tracks, settle_tails, write_mpd

# A last segment shorter than this is merged into the one before (in every track alike).
MIN_TAIL_SECONDS = 0.5
MASTER = "master.m3u8"
STORYBOARD_VTT = "storyboard.vtt"
AUDIO_GROUP = "audio"

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}
# Segments, init segments and images never change under their (job-unique) names. Manifests
# are small and fetched again each time: a long video's grow while its chunks are published
# (EVENT playlists, a dynamic MPD), and a player reloading one must see the new segments, not
# a cached copy. Text tracks are short-lived in caches. Private: content may be gated, and a
# shared cache must not hand it on once a viewer's token expired.
IMMUTABLE = "private, max-age=31536000, immutable"
SHORT = "private, max-age=60"
MANIFEST_CACHE = "private, no-cache"


class PackagingError(Exception):
    """FFmpeg's output is not what it should be; for staff, not for the creator."""


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    name: str
    init: str
    segments: list[Segment]


@dataclass(frozen=True)
class PackagedRendition:
    name: str
    width: int
    height: int
    peak_bitrate: int
    average_bitrate: int
    codecs: str
    playlist: str


@dataclass(frozen=True)
class Package:
    renditions: list[PackagedRendition]
    audio_codecs: str | None
    files: list[str]  # relative to the job folder, in upload order (manifests last)
    duration: float  # seconds of video actually encoded (the top rung's segments)


def content_type_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def cache_control_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".m3u8", ".mpd"):
        return MANIFEST_CACHE
    return SHORT if suffix == ".vtt" else IMMUTABLE


def read_media_playlist(path: Path) -> MediaPlaylist:
    init, duration, segments = "", None, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            init = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise PackagingError(f"{path.name}: segment {line} has no duration")
            segments.append(Segment(uri=line, duration=duration))
            duration = None
    if not init or not segments:
        raise PackagingError(f"{path.name}: no init segment or no media segments")
    return MediaPlaylist(name=path.name, init=init, segments=segments)


def write_vod_playlist(path: Path, playlist: MediaPlaylist) -> None:
    write_media_playlist(path, playlist)


def write_media_playlist(
    path: Path, playlist: MediaPlaylist, *, event: bool = False, target: int | None = None
) -> None:
    """A media playlist: VOD (complete, ``#EXT-X-ENDLIST``), or EVENT (segments are only ever
    added; players reload it until the end tag comes) for a job still publishing chunks."""
    # RFC 8216 4.3.3.1: each EXTINF, rounded to the nearest integer, <= the target duration,
    # which never changes while an EVENT playlist grows (the caller gives it).
    # At least 1: a clip shorter than half a second is no reason for a zero target.
    rounded = (math.floor(segment.duration + 0.5) for segment in playlist.segments)
    target = max(1, target or 0, *rounded)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if event else 'VOD'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{playlist.init}"',
    ]
    for segment in playlist.segments:
        lines += [f"#EXTINF:{segment.duration:.6f},", segment.uri]
    if not event:
        lines.append("#EXT-X-ENDLIST")
    path.write_text("\n".join(lines) + "\n")


def measure(folder: Path, playlist: MediaPlaylist) -> tuple[int, int]:
    """(peak, average) bits per second over the playlist's segments, init segment included in
    neither (it is fetched once)."""
    total_bits, total_seconds, peak = 0, 0.0, 0.0
    for segment in playlist.segments:
        bits = (folder / segment.uri).stat().st_size * 8
        total_bits += bits
        total_seconds += segment.duration
        if segment.duration > 0:
            peak = max(peak, bits / segment.duration)
    average = total_bits / total_seconds if total_seconds else 0
    return math.ceil(peak), math.ceil(average)


def track_playlist(track: Track) -> MediaPlaylist:
    """The HLS media playlist of a track, named as FFmpeg names them (``media_<id>.m3u8``)."""
    return MediaPlaylist(
        name=f"media_{track.id}.m3u8",
        init=track.init,
        segments=[Segment(uri=s.uri, duration=track.seconds(s.duration)) for s in track.segments],
    )


def write_master(
    folder: Path,
    *,
    renditions: list[PackagedRendition],
    frame_rate: Fraction,
    audio: tuple[str, int, int, int] | None,
) -> None:
    """HLS v7 master: one variant per rendition, the audio group when there is audio.

    ``audio`` is (playlist, peak, average, channels); BANDWIDTH includes the audio rendition,
    as the HLS spec asks of a variant with an AUDIO group.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio_peak = audio_average = 0
    if audio:
        playlist, audio_peak, audio_average, channels = audio
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="Audio",LANGUAGE="und",'
            f'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="{channels}",URI="{playlist}"'
        )
    for rendition in renditions:
        attributes = [
            f"BANDWIDTH={rendition.peak_bitrate + audio_peak}",
            f"AVERAGE-BANDWIDTH={rendition.average_bitrate + audio_average}",
            f"RESOLUTION={rendition.width}x{rendition.height}",
            f'CODECS="{rendition.codecs}"',
            f"FRAME-RATE={float(frame_rate):.3f}",
        ]
        if audio:
            attributes.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), rendition.playlist]
    (folder / MASTER).write_text("\n".join(lines) + "\n")


def write_storyboard_vtt(folder: Path, *, duration: float, storyboard: Storyboard) -> list[str]:
    """WebVTT cues pointing into the sprite sheets; returns the sheets' relative names."""
    sheets = sorted(path.name for path in (folder / "storyboard").glob("sprite-*.jpg"))
    if not sheets:
        raise PackagingError("the storyboard branch wrote no sprite sheet")
    names = [f"storyboard/{name}" for name in sheets]
    count = min(
        sprite_count(duration=duration, storyboard=storyboard), len(sheets) * storyboard.per_sheet
    )
    write_storyboard_cues(folder, [(0, count, names)], duration=duration, storyboard=storyboard)
    return names


def write_storyboard_cues(
    folder: Path,
    groups: list[tuple[int, int, list[str]]],
    *,
    duration: float,
    storyboard: Storyboard,
) -> None:
    """The storyboard track: for each group (first thumbnail's index in the video, how many,
    the sheets holding them from their first cell), a cue per thumbnail up to ``duration``."""
    lines = ["WEBVTT", ""]
    for first, count, sheets in groups:
        for local in range(count):
            start = (first + local) * storyboard.interval
            if start >= duration:
                break
            end = min(duration, start + storyboard.interval)
            sheet, cell = divmod(local, storyboard.per_sheet)
            row, column = divmod(cell, storyboard.columns)
            x, y = column * storyboard.width, row * storyboard.height
            lines += [
                f"{_timestamp(start)} --> {_timestamp(end)}",
                f"{sheets[sheet]}#xywh={x},{y},{storyboard.width},{storyboard.height}",
                "",
            ]
    (folder / STORYBOARD_VTT).write_text("\n".join(lines))


def _timestamp(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def finish_tracks(folder: Path) -> list[Track]:
    """Merge the slivers, brand every segment CMAF, and return the tracks as they now are."""
    tracks = read_tracks(folder / MANIFEST)
    videos = [track for track in tracks if track.content_type == "video"]
    if not videos or any(not track.segments for track in tracks):
        raise PackagingError("FFmpeg's manifest lists no video or a track without segments")
    settled = settle_tails(tracks, reference=videos[0], min_tail=MIN_TAIL_SECONDS)
    for track, merged in settled:
        for index, segment in enumerate(track.segments):
            last = index == len(track.segments) - 1
            tails = tuple(folder / uri for uri in merged) if last else ()
            finish_segment(folder / segment.uri, tails=tails)
    return [track for track, _ in settled]


def package(
    folder: Path,
    *,
    rungs: list[PlannedRung],
    frame_rate: Fraction,
    has_audio: bool,
    audio_channels: int,
    duration: float,
    storyboard: Storyboard,
) -> Package:
    """Finish the job folder; returns what to publish and which files to upload."""
    tracks = {track.id: track for track in finish_tracks(folder)}
    bandwidths: dict[str, int] = {}
    audio_id = str(len(rungs))
    audio_codecs = tracks[audio_id].codecs if has_audio else None
    audio = None
    media_files: list[str] = []
    playlists: list[str] = []
    if has_audio:
        audio_playlist = track_playlist(tracks[audio_id])
        write_vod_playlist(folder / audio_playlist.name, audio_playlist)
        peak, average = measure(folder, audio_playlist)
        bandwidths[audio_id] = peak
        audio = (audio_playlist.name, peak, average, audio_channels)
        media_files += [audio_playlist.init, *(s.uri for s in audio_playlist.segments)]
        playlists.append(audio_playlist.name)
    renditions = []
    for index, rung in enumerate(rungs):
        track = tracks[str(index)]
        playlist = track_playlist(track)
        write_vod_playlist(folder / playlist.name, playlist)
        peak, average = measure(folder, playlist)
        bandwidths[track.id] = peak
        video_codecs = track.codecs or "avc1.640028"
        renditions.append(
            PackagedRendition(
                name=rung.name,
                width=rung.width,
                height=rung.height,
                peak_bitrate=peak,
                average_bitrate=average,
                codecs=f"{video_codecs},{audio_codecs}" if audio_codecs else video_codecs,
                playlist=playlist.name,
            )
        )
        media_files += [playlist.init, *(s.uri for s in playlist.segments)]
        playlists.insert(index, playlist.name)
    write_master(folder, renditions=renditions, frame_rate=frame_rate, audio=audio)
    write_mpd(folder / MANIFEST, list(tracks.values()), bandwidths=bandwidths)
    sheets = write_storyboard_vtt(folder, duration=duration, storyboard=storyboard)
    if not (folder / POSTER).exists():
        raise PackagingError("the poster branch wrote no image")
    top = tracks["0"]
    encoded = sum(top.seconds(segment.duration) for segment in top.segments)
    # Media before manifests: a manifest never names a file that is not uploaded yet.
    files = [*media_files, POSTER, *sheets, STORYBOARD_VTT, *playlists, MANIFEST, MASTER]
    return Package(renditions=renditions, audio_codecs=audio_codecs, files=files, duration=encoded)
