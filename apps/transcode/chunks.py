"""Chunked encoding, the file work: a long source cut into chunks on segment boundaries, each
encoded on its own (any worker, any host), then listed in order in one set of manifests. There
is no concat pass: the segments are the chunks' own.

- ``plan_chunks``: a job's chunks, on the output's frame grid. Every chunk but the last is a
  whole number of segments, so a chunk starts a segment (and a GOP) wherever it starts.
- ``collect_chunk``: FFmpeg's output for one chunk (video rungs; its thumbnails; the poster if
  it holds it) becomes that chunk's part of the job: segments branded CMAF, named by their
  number in the whole job, their decode times (``tfdt``) moved onto the job's clock, and a
  record (JSON, kept on the chunk) of every track's segments.
- ``collect_audio``: the same for the audio, which is encoded whole in one run: AAC frames
  overlap and the encoder primes each run, so audio cut into chunks would click at every join.
- ``write_manifests``: from the records of the chunks done so far, the HLS media playlists
  (EVENT until the last chunk, then VOD), the master, the MPD (dynamic until the last chunk,
  then static) and the storyboard track, as the whole-job packager writes them.

Every init segment must be interchangeable across chunks (same settings give the same
parameter sets; ``cmaf.init_signature`` checks it), since players fetch one per rung.
Written here rather than with a packager (Shaka Packager, Bento4, GPAC): none is on PyPI or in
Debian here, and each would re-mux segments that are already what we need.
"""

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

from apps.transcode.cmaf import finish_segment, init_signature, shift_decode_times
from apps.transcode.ffmpeg import MANIFEST, ChunkRange, Storyboard, sprite_count
from apps.transcode.ladder import PlannedRung
from apps.transcode.mpd import NS, Track, read_tracks, settle_tails
from apps.transcode.packaging import (
    MASTER,
    MIN_TAIL_SECONDS,
    STORYBOARD_VTT,
    MediaPlaylist,
    PackagedRendition,
    PackagingError,
    Segment,
    write_master,
    write_media_playlist,
    write_storyboard_cues,
)

SEGMENT_NAME = "chunk-stream{track}-{number:05d}.m4s"
INIT_NAME = "init-stream{track}.m4s"
AUDIO_CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"


def plan_chunks(
    *,
    duration: float,
    frame_rate: Fraction,
    chunk_seconds: int,
    segment_seconds: int,
    storyboard_interval: float,
) -> list[ChunkRange]:
    """The chunks of a ``duration``-second job: one every ``chunk_seconds`` (a multiple of
    ``segment_seconds``); a remainder shorter than a segment joins the last chunk, so no chunk
    is a sliver. Chunk k starts at the first output frame at or after k * chunk_seconds."""
    if chunk_seconds <= 0 or chunk_seconds % segment_seconds:
        raise ValueError("TRANSCODE_CHUNK_SECONDS must be a multiple of the segment length")
    starts = [0]
    while duration - (len(starts) * chunk_seconds) >= segment_seconds:
        starts.append(math.ceil(len(starts) * chunk_seconds * frame_rate))
    chunks = []
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        start_seconds = float(start / frame_rate)
        first_thumbnail = math.ceil(round(start_seconds / storyboard_interval, 6))
        following = (
            None
            if last
            else math.ceil(round(float(starts[index + 1] / frame_rate) / storyboard_interval, 6))
        )
        chunks.append(
            ChunkRange(
                index=index,
                start_frame=start,
                frames=None if last else starts[index + 1] - start,
                start_seconds=start_seconds,
                first_thumbnail=first_thumbnail,
                thumbnails=None if following is None else following - first_thumbnail,
                poster=index == 0,
            )
        )
    return chunks


def first_segment(chunk: ChunkRange, *, chunk_seconds: int, segment_seconds: int) -> int:
    """The 1-based number, in the whole job, of the chunk's first segment."""
    return chunk.index * (chunk_seconds // segment_seconds) + 1


# --- one chunk's output -----------------------------------------------------------------------


def collect_chunk(
    folder: Path,
    *,
    chunk: ChunkRange,
    last: bool,
    first_number: int,
    frame_rate: Fraction,
    duration: float,
    storyboard: Storyboard,
) -> tuple[dict, list[str]]:
    """Finish a chunk's folder; returns (its record, the files to upload, media first)."""
    tracks = read_tracks(folder / MANIFEST)
    if not tracks or any(not track.segments or track.content_type != "video" for track in tracks):
        raise PackagingError(f"chunk {chunk.index}: FFmpeg's manifest lists no video segments")
    settled = settle_tails(tracks, reference=tracks[0], min_tail=MIN_TAIL_SECONDS) if last else []
    merged = {track.id: tails for track, tails in settled}
    if last:
        tracks = [track for track, _ in settled]
    record_tracks, files = {}, []
    for track in tracks:
        ticks = chunk.start_frame * track.timescale / frame_rate
        if ticks.denominator != 1:
            raise PackagingError(f"chunk {chunk.index}: its start is not a whole number of ticks")
        segments = _renumber(
            folder, track, offset=int(ticks), first_number=first_number, tails=merged.get(track.id)
        )
        init = INIT_NAME.format(track=track.id)
        record_tracks[track.id] = {
            "content_type": "video",
            "codecs": track.codecs,
            "timescale": track.timescale,
            "init": init,
            "init_signature": init_signature(folder / track.init),
            "segments": segments,
        }
        files += [segment[0] for segment in segments]
        if chunk.index == 0:
            (folder / track.init).rename(folder / init)
            files.insert(0, init)
    sprites = sorted(
        f"storyboard/{path.name}" for path in (folder / "storyboard").glob("sprite-*.jpg")
    )
    if not sprites:
        raise PackagingError(f"chunk {chunk.index}: the storyboard branch wrote no sprite sheet")
    thumbnails = chunk.thumbnails
    if thumbnails is None:  # the last chunk: as many as the whole job would make from here on
        whole = sprite_count(duration=duration, storyboard=storyboard)
        thumbnails = max(1, whole - chunk.first_thumbnail)
    thumbnails = min(thumbnails, len(sprites) * storyboard.per_sheet)
    files += sprites
    if chunk.poster:
        if not (folder / "poster.jpg").exists():
            raise PackagingError("the poster branch wrote no image")
        files.append("poster.jpg")
    record = {
        "tracks": record_tracks,
        "sprites": sprites,
        "thumbnails": [chunk.first_thumbnail, thumbnails],
    }
    return record, files


def collect_audio(folder: Path, *, track_id: str) -> tuple[dict, list[str]]:
    """Finish the audio run's folder (its track renamed ``track_id``); (record, files)."""
    tracks = read_tracks(folder / MANIFEST)
    if len(tracks) != 1 or not tracks[0].segments:
        raise PackagingError("the audio run's manifest lists no audio segments")
    source = tracks[0]
    segments = []
    for number, segment in enumerate(source.segments, start=1):
        finish_segment(folder / segment.uri)
        name = SEGMENT_NAME.format(track=track_id, number=number)
        (folder / segment.uri).rename(folder / name)
        segments.append([name, segment.start, segment.duration, (folder / name).stat().st_size])
    init = INIT_NAME.format(track=track_id)
    (folder / source.init).rename(folder / init)
    record = {
        "content_type": "audio",
        "codecs": source.codecs,
        "timescale": source.timescale,
        "init": init,
        "init_signature": init_signature(folder / init),
        "segments": segments,
    }
    return record, [init, *(segment[0] for segment in segments)]


def _renumber(
    folder: Path, track: Track, *, offset: int, first_number: int, tails: tuple[str, ...] | None
) -> list[list]:
    """Brand, shift and rename a chunk track's segments; [[name, start, duration, bytes]].
    From the last: a segment's number in the job is never below its number in the chunk, so
    each rename lands on a name already processed or free."""
    segments = []
    last = len(track.segments) - 1
    for index in range(last, -1, -1):
        segment = track.segments[index]
        path = folder / segment.uri
        merged = tuple(folder / uri for uri in tails) if tails and index == last else ()
        finish_segment(path, tails=merged)
        shift_decode_times(path, offset)
        name = SEGMENT_NAME.format(track=track.id, number=first_number + index)
        path.rename(folder / name)
        size = (folder / name).stat().st_size
        segments.append([name, offset + segment.start, segment.duration, size])
    return segments[::-1]


def audio_tail(audio: dict, *, video_segments: int) -> tuple[int, list[str]]:
    """How the whole audio track ends with the video: (the index of its last segment, the
    names of the segments after it, to be merged into it). Cut to the video's segment count,
    as the whole-job packager cuts it (mpd.settle_tails), its own sliver rule otherwise."""
    segments = audio["segments"]
    keep = min(len(segments), video_segments)
    sliver = segments[-1][2] / audio["timescale"] < MIN_TAIL_SECONDS
    if keep == len(segments) and len(segments) > 1 and sliver:
        keep -= 1
    return keep - 1, [segment[0] for segment in segments[keep:]]


# --- manifests from the records ----------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What ``write_manifests`` wrote: the files (relative names) and what they hold."""

    files: list[str]
    renditions: list[PackagedRendition]
    seconds: float  # playable seconds: the top rung's listed segments


def joined_tracks(records: list[dict], audio: dict | None) -> dict[str, dict]:
    """The tracks of the chunks done so far, in order, their segments joined; the audio cut to
    the listed video (a segment that starts before the video's end), when given."""
    tracks: dict[str, dict] = {}
    for record in records:
        for track_id, track in record["tracks"].items():
            joined = tracks.setdefault(track_id, {**track, "segments": []})
            if track["init_signature"] != joined["init_signature"]:
                raise PackagingError(
                    f"track {track_id}: a chunk's init segment differs from the first chunk's"
                )
            if joined["segments"]:
                previous = joined["segments"][-1]
                if previous[1] + previous[2] != track["segments"][0][1]:
                    raise PackagingError(f"track {track_id}: a gap or overlap between chunks")
            joined["segments"] = joined["segments"] + track["segments"]
    if audio is not None and tracks:
        top = tracks["0"]
        end = (top["segments"][-1][1] + top["segments"][-1][2]) / top["timescale"]
        listed = [s for s in audio["segments"] if s[1] / audio["timescale"] < end]
        tracks[audio_id(tracks)] = {**audio, "segments": listed}
    return tracks


def audio_id(video_tracks: dict) -> str:
    return str(sum(1 for track in video_tracks.values() if track["content_type"] == "video"))


def write_manifests(
    folder: Path,
    *,
    records: list[dict],
    audio: dict | None,
    rungs: list[PlannedRung],
    frame_rate: Fraction,
    audio_channels: int,
    storyboard: Storyboard,
    segment_seconds: int,
    final: bool,
    available_since: datetime,
    now: datetime,
) -> Written:
    """Write the manifests of the chunks done so far (``records``, in order from the first)
    into ``folder``: EVENT playlists and a dynamic MPD, or, ``final``, VOD and static."""
    tracks = joined_tracks(records, audio)
    audio_track = tracks.get(str(len(rungs))) if audio is not None else None
    target = max(segment_seconds, *(_target(track) for track in tracks.values()))
    files, bandwidths, playlists = [], {}, []
    audio_master = None
    audio_codecs = None
    if audio_track is not None:
        playlist = _playlist(str(len(rungs)), audio_track)
        write_media_playlist(folder / playlist.name, playlist, event=not final, target=target)
        peak, average = _measure(audio_track)
        bandwidths[str(len(rungs))] = peak
        audio_master = (playlist.name, peak, average, audio_channels)
        audio_codecs = audio_track["codecs"]
        playlists.append(playlist.name)
    renditions = []
    for index, rung in enumerate(rungs):
        track = tracks[str(index)]
        playlist = _playlist(str(index), track)
        write_media_playlist(folder / playlist.name, playlist, event=not final, target=target)
        peak, average = _measure(track)
        bandwidths[str(index)] = peak
        codecs = track["codecs"] or "avc1.640028"
        renditions.append(
            PackagedRendition(
                name=rung.name,
                width=rung.width,
                height=rung.height,
                peak_bitrate=peak,
                average_bitrate=average,
                codecs=f"{codecs},{audio_codecs}" if audio_codecs else codecs,
                playlist=playlist.name,
            )
        )
        playlists.insert(index, playlist.name)
    write_master(folder, renditions=renditions, frame_rate=frame_rate, audio=audio_master)
    top = tracks["0"]
    seconds = sum(segment[2] for segment in top["segments"]) / top["timescale"]
    _write_mpd(
        folder / MANIFEST,
        tracks=tracks,
        rungs=rungs,
        bandwidths=bandwidths,
        frame_rate=frame_rate,
        audio_channels=audio_channels,
        seconds=seconds,
        segment_seconds=segment_seconds,
        final=final,
        available_since=available_since,
        now=now,
    )
    groups = [(*record["thumbnails"], record["sprites"]) for record in records]
    write_storyboard_cues(folder, groups, duration=seconds, storyboard=storyboard)
    files = [*playlists, STORYBOARD_VTT, MANIFEST, MASTER]
    return Written(files=files, renditions=renditions, seconds=seconds)


def _target(track: dict) -> int:
    scale = track["timescale"]
    return max(math.floor(segment[2] / scale + 0.5) for segment in track["segments"])


def _playlist(track_id: str, track: dict) -> MediaPlaylist:
    scale = track["timescale"]
    return MediaPlaylist(
        name=f"media_{track_id}.m3u8",
        init=track["init"],
        segments=[Segment(uri=s[0], duration=s[2] / scale) for s in track["segments"]],
    )


def _measure(track: dict) -> tuple[int, int]:
    """(peak, average) bits per second over the track's segments, as packaging.measure."""
    scale = track["timescale"]
    total_bits = sum(segment[3] * 8 for segment in track["segments"])
    total_seconds = sum(segment[2] for segment in track["segments"]) / scale
    peak = max((s[3] * 8 / (s[2] / scale) for s in track["segments"] if s[2] > 0), default=0)
    return math.ceil(peak), math.ceil(total_bits / total_seconds if total_seconds else 0)


def _iso(seconds: float) -> str:
    return f"PT{math.ceil(seconds * 1000) / 1000:.3f}S"


def _write_mpd(
    path: Path,
    *,
    tracks: dict[str, dict],
    rungs: list[PlannedRung],
    bandwidths: dict[str, int],
    frame_rate: Fraction,
    audio_channels: int,
    seconds: float,
    segment_seconds: int,
    final: bool,
    available_since: datetime,
    now: datetime,
) -> None:
    """An MPD like the one the whole-job packager rewrites from FFmpeg's (live profile,
    SegmentTemplate with a SegmentTimeline per Representation). Dynamic while chunks are to
    come: players reload it every segment and may seek anywhere from the start (no
    timeShiftBufferDepth); static, with its duration, once complete."""
    ET.register_namespace("", NS)
    longest = max(s[2] / t["timescale"] for t in tracks.values() for s in t["segments"])
    attributes = {
        "profiles": "urn:mpeg:dash:profile:isoff-live:2011",
        "minBufferTime": _iso(segment_seconds),
        "maxSegmentDuration": _iso(longest),
    }
    if final:
        attributes |= {"type": "static", "mediaPresentationDuration": _iso(seconds)}
    else:
        attributes |= {
            "type": "dynamic",
            "availabilityStartTime": _timestamp(available_since),
            "publishTime": _timestamp(now),
            "minimumUpdatePeriod": _iso(segment_seconds),
            "suggestedPresentationDelay": _iso(segment_seconds),
        }
    root = ET.Element(f"{{{NS}}}MPD", attributes)
    period = ET.SubElement(root, f"{{{NS}}}Period", {"id": "0", "start": "PT0.0S"})
    rate = f"{frame_rate.numerator}/{frame_rate.denominator}"
    top = rungs[0]
    video = ET.SubElement(
        period,
        f"{{{NS}}}AdaptationSet",
        {
            "id": "0",
            "contentType": "video",
            "startWithSAP": "1",
            "segmentAlignment": "true",
            "frameRate": rate,
            "maxWidth": str(top.width),
            "maxHeight": str(top.height),
            "par": _ratio(top.width, top.height),
        },
    )
    for index, rung in enumerate(rungs):
        rep = ET.SubElement(
            video,
            f"{{{NS}}}Representation",
            {
                "id": str(index),
                "mimeType": "video/mp4",
                "codecs": tracks[str(index)]["codecs"],
                "bandwidth": str(bandwidths[str(index)]),
                "width": str(rung.width),
                "height": str(rung.height),
                "sar": "1:1",
            },
        )
        _template(rep, tracks[str(index)])
    audio = tracks.get(str(len(rungs)))
    if audio is not None:
        adaptation = ET.SubElement(
            period,
            f"{{{NS}}}AdaptationSet",
            {
                "id": "1",
                "contentType": "audio",
                "startWithSAP": "1",
                "segmentAlignment": "true",
                "lang": "und",
            },
        )
        rep = ET.SubElement(
            adaptation,
            f"{{{NS}}}Representation",
            {
                "id": str(len(rungs)),
                "mimeType": "audio/mp4",
                "codecs": audio["codecs"],
                "bandwidth": str(bandwidths[str(len(rungs))]),
                "audioSamplingRate": str(audio["timescale"]),
            },
        )
        ET.SubElement(
            rep,
            f"{{{NS}}}AudioChannelConfiguration",
            {"schemeIdUri": AUDIO_CHANNELS_SCHEME, "value": str(audio_channels)},
        )
        _template(rep, audio)
    if not final:
        # A dynamic MPD's players need the server's clock: without UTCTiming dash.js asks a
        # time server on the internet (time.akamai.com), then the MPD's Date header, which a
        # page of another origin cannot read, and gives up ("Failed to synchronize client and
        # server time"). The time of writing is enough: every listed segment is available
        # from availabilityStartTime on, long before it.
        ET.SubElement(
            root,
            f"{{{NS}}}UTCTiming",
            {"schemeIdUri": "urn:mpeg:dash:utc:direct:2014", "value": _timestamp(now)},
        )
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _template(rep: ET.Element, track: dict) -> None:
    template = ET.SubElement(
        rep,
        f"{{{NS}}}SegmentTemplate",
        {
            "timescale": str(track["timescale"]),
            "initialization": "init-stream$RepresentationID$.m4s",
            "media": "chunk-stream$RepresentationID$-$Number%05d$.m4s",
            "startNumber": "1",
        },
    )
    timeline = ET.SubElement(template, f"{{{NS}}}SegmentTimeline")
    current, end = None, None
    for _, start, duration, _ in track["segments"]:
        if current is not None and start == end and int(current.get("d")) == duration:
            current.set("r", str(int(current.get("r", "0")) + 1))
        else:
            current = ET.SubElement(timeline, f"{{{NS}}}S", {"t": str(start), "d": str(duration)})
        end = start + duration


def _ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
