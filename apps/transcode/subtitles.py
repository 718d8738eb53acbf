"""Captions in the manifests: the HLS subtitle renditions and DASH text adaptation sets that
offer a content's WebVTT files to players. Pure text work, no Django and no storage.

Captions change after encoding (a creator adds or removes a language), so the manifests are
not rewritten in storage: the stream view passes the published job's master playlist and MPD
through these functions, with the captions the content has at that moment, when it serves them
(apps/access/stream_captions.py). Each caption is served beside the video under the same
playback token: ``subs/<id>.m3u8`` (a VOD playlist whose one segment is the whole file) and
``subs/<id>.vtt``.

hls.js (and Apple's players) place WebVTT cues on the media timeline through the file's
``X-TIMESTAMP-MAP`` header: ``MPEGTS`` (90 kHz) is the media time at which cue time ``LOCAL``
falls. Our CMAF segments start at the first sample's presentation time (FFmpeg's timeline:
``<S t=...>`` of the video track, 0 for our encodes), so the header maps cue time 0 to that.
"""

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

SUBTITLE_GROUP = "subs"
SUBTITLE_FOLDER = "subs"
NS = "urn:mpeg:dash:schema:mpd:2011"
_MPD = {"mpd": NS}
_ISO_DURATION = re.compile(
    r"P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
MPEGTS_CLOCK = 90_000


class ManifestUnreadable(Exception):
    """The stored MPD cannot be read for its timeline (not ours, or damaged)."""


@dataclass(frozen=True)
class SubtitleTrack:
    id: str
    language: str  # BCP 47
    label: str

    @property
    def playlist(self) -> str:
        return f"{SUBTITLE_FOLDER}/{self.id}.m3u8"

    @property
    def vtt(self) -> str:
        return f"{SUBTITLE_FOLDER}/{self.id}.vtt"


@dataclass(frozen=True)
class MediaTimeline:
    start: float  # seconds: presentation time of the first video sample
    duration: float  # seconds


def _quoted(text: str) -> str:
    """An HLS quoted-string may hold neither double quotes nor line breaks (RFC 8216 4.2).
    Straight quotes become typographic ones: hls-parser also takes a single quote for the end
    of a string, so "Children's" would break it (and any player that reads lists alike)."""
    text = text.replace('"', "\u2019").replace("'", "\u2019")
    return text.replace("\r", " ").replace("\n", " ")


def _names(tracks: list[SubtitleTrack]) -> list[str]:
    """Each track's name, made unique (RFC 8216 4.4.6.1: names differ within a group)."""
    names: list[str] = []
    for track in tracks:
        name = _quoted(track.label) or track.language
        if name in names:
            name = f"{name} ({track.language})"
        base, number = name, 2
        while name in names:
            name = f"{base} {number}"
            number += 1
        names.append(name)
    return names


def master_with_subtitles(master: str, tracks: list[SubtitleTrack]) -> str:
    """The master playlist with a SUBTITLES group of ``tracks``, named by every variant."""
    if not tracks:
        return master
    media = [
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLE_GROUP}",NAME="{name}",'
        f'LANGUAGE="{_quoted(track.language)}",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        f'URI="{track.playlist}"'
        for track, name in zip(tracks, _names(tracks), strict=True)
    ]
    lines, placed = [], False
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if not placed:
                lines += media
                placed = True
            line += f',SUBTITLES="{SUBTITLE_GROUP}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def subtitle_playlist(track: SubtitleTrack, *, duration: float) -> str:
    """The media playlist of one caption: one segment, the whole WebVTT file, as long as the
    video (RFC 8216: the target duration is at least each segment's rounded duration)."""
    duration = max(duration, 0.001)
    return "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(duration))}",
            "#EXT-X-MEDIA-SEQUENCE:1",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXTINF:{duration:.3f},",
            track.vtt.removeprefix(f"{SUBTITLE_FOLDER}/"),  # relative to the playlist
            "#EXT-X-ENDLIST",
            "",
        ]
    )


def vtt_with_timestamp_map(vtt: str, *, start: float) -> str:
    """The WebVTT file with the header that puts its cue time 0 at the video's first frame."""
    header, _, rest = vtt.partition("\n")
    mapping = f"X-TIMESTAMP-MAP=MPEGTS:{round(start * MPEGTS_CLOCK)},LOCAL:00:00:00.000"
    return f"{header}\n{mapping}\n{rest}"


def _seconds(iso: str) -> float:
    found = _ISO_DURATION.fullmatch(iso or "")
    if not found or not iso.startswith("P"):
        raise ManifestUnreadable(f"not an ISO 8601 duration: {iso!r}")
    parts = {key: float(value) for key, value in found.groupdict().items() if value}
    return (
        parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )


def _root(mpd: bytes) -> ET.Element:
    try:
        return ET.fromstring(mpd)  # noqa: S314 - the packager's own output, not user input
    except ET.ParseError as error:
        raise ManifestUnreadable(f"the MPD is not XML: {error}") from None


def media_timeline(mpd: bytes) -> MediaTimeline:
    """Where the video starts and how long the presentation is, from the packaged MPD."""
    root = _root(mpd)
    duration = _seconds(root.get("mediaPresentationDuration", ""))
    for adaptation in root.iterfind(".//mpd:AdaptationSet", _MPD):
        kind = adaptation.get("contentType") or adaptation.get("mimeType", "")
        if not kind.startswith("video"):
            continue
        template = adaptation.find(".//mpd:SegmentTemplate", _MPD)
        first = None if template is None else template.find("mpd:SegmentTimeline/mpd:S", _MPD)
        if template is None or first is None:
            break
        timescale = int(template.get("timescale", "1"))
        offset = int(template.get("presentationTimeOffset", "0"))
        return MediaTimeline(
            start=(int(first.get("t", "0")) - offset) / timescale, duration=duration
        )
    raise ManifestUnreadable("the MPD has no video timeline")


def mpd_with_subtitles(mpd: bytes, tracks: list[SubtitleTrack]) -> bytes:
    """The MPD with one text AdaptationSet (WebVTT, ``lang``, a Label) per track in its
    Period, each file addressed by its BaseURL relative to the MPD."""
    if not tracks:
        return mpd
    for prefix, uri in (
        ("", NS),
        ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ("xlink", "http://www.w3.org/1999/xlink"),
    ):
        ET.register_namespace(prefix, uri)
    root = _root(mpd)
    period = root.find("mpd:Period", _MPD)
    if period is None:
        raise ManifestUnreadable("the MPD has no Period")
    ids = [
        int(a.get("id"))
        for a in period.iterfind("mpd:AdaptationSet", _MPD)
        if a.get("id", "").isdigit()
    ]
    next_id = max(ids, default=-1) + 1
    for number, track in enumerate(tracks):
        adaptation = ET.SubElement(
            period,
            f"{{{NS}}}AdaptationSet",
            {
                "id": str(next_id + number),
                "contentType": "text",
                "mimeType": "text/vtt",
                "lang": track.language,
            },
        )
        ET.SubElement(adaptation, f"{{{NS}}}Label").text = track.label or track.language
        ET.SubElement(
            adaptation,
            f"{{{NS}}}Role",
            {"schemeIdUri": "urn:mpeg:dash:role:2011", "value": "subtitle"},
        )
        representation = ET.SubElement(
            adaptation, f"{{{NS}}}Representation", {"id": f"caption-{track.id}", "bandwidth": "256"}
        )
        ET.SubElement(representation, f"{{{NS}}}BaseURL").text = track.vtt
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
