"""The DASH manifest: read the segments FFmpeg wrote from its SegmentTimeline, settle the
tail, and write the MPD back with every segment addressed by its real duration.

FFmpeg's timeline (``use_timeline=1``) is in each track's own timescale and in presentation
time (the audio encoder's priming, cut by the edit list, is not counted), the same clock the
players use; it is the one source for both manifests. The HLS media playlists are written
from it too, so DASH and HLS players see the same segments with the same durations.
"""

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

NS = "urn:mpeg:dash:schema:mpd:2011"
MPD_NS = {"mpd": NS}
_NUMBER = re.compile(r"\$Number(?:%0(\d+)d)?\$")


class ManifestError(Exception):
    """FFmpeg's MPD is not what the packager expects."""


@dataclass(frozen=True)
class TimedSegment:
    uri: str
    start: int  # in the track's timescale
    duration: int


@dataclass(frozen=True)
class Track:
    id: str
    content_type: str  # "video" or "audio"
    codecs: str
    timescale: int
    init: str
    segments: tuple[TimedSegment, ...]

    def seconds(self, ticks: int) -> float:
        return ticks / self.timescale


def _expand(name: str, *, rep_id: str, number: int | None = None) -> str:
    name = name.replace("$RepresentationID$", rep_id)
    if number is not None:
        name = _NUMBER.sub(lambda m: f"{number:0{int(m.group(1) or 1)}d}", name)
    return name


def read_tracks(path: Path) -> list[Track]:
    """Every Representation of the MPD, with its segments in order."""
    root = ET.parse(path).getroot()  # noqa: S314 - FFmpeg's own output, not user input
    tracks = []
    for adaptation in root.iterfind(".//mpd:AdaptationSet", MPD_NS):
        for rep in adaptation.iterfind("mpd:Representation", MPD_NS):
            template = rep.find("mpd:SegmentTemplate", MPD_NS)
            if template is None:
                template = adaptation.find("mpd:SegmentTemplate", MPD_NS)
            timeline = None if template is None else template.find("mpd:SegmentTimeline", MPD_NS)
            if timeline is None:
                raise ManifestError(f"representation {rep.get('id')} has no SegmentTimeline")
            rep_id = rep.get("id")
            kind = adaptation.get("contentType") or rep.get("mimeType", "")
            number = int(template.get("startNumber", "1"))
            segments, time = [], 0
            for entry in timeline.iterfind("mpd:S", MPD_NS):
                time = int(entry.get("t", time))
                duration = int(entry.get("d"))
                for _ in range(int(entry.get("r", "0")) + 1):
                    uri = _expand(template.get("media"), rep_id=rep_id, number=number)
                    segments.append(TimedSegment(uri=uri, start=time, duration=duration))
                    time, number = time + duration, number + 1
            tracks.append(
                Track(
                    id=rep_id,
                    content_type=kind.split("/")[0],
                    codecs=rep.get("codecs", ""),
                    timescale=int(template.get("timescale", "1")),
                    init=_expand(template.get("initialization"), rep_id=rep_id),
                    segments=tuple(segments),
                )
            )
    return tracks


def _merged(track: Track, keep: int) -> tuple[Track, tuple[str, ...]]:
    if keep >= len(track.segments):
        return track, ()
    last, tail = track.segments[keep - 1], track.segments[keep:]
    end = tail[-1].start + tail[-1].duration
    segments = (*track.segments[: keep - 1], replace(last, duration=end - last.start))
    return replace(track, segments=segments), tuple(segment.uri for segment in tail)


def settle_tails(
    tracks: list[Track], *, reference: Track, min_tail: float
) -> list[tuple[Track, tuple[str, ...]]]:
    """Each track with no sliver at its end: (the track, the segments merged into its last).

    The reference (top video rung) decides how many segments there are: its last segment is
    merged into the one before when shorter than ``min_tail`` seconds. Every track is cut to
    that count, its extra segments (the AAC priming makes audio run a frame into the next
    segment) merged into its last, so all tracks share their boundaries and end together. A
    track that ends earlier gets the same tail rule on its own.
    """

    def count(track: Track) -> int:
        short = track.seconds(track.segments[-1].duration) < min_tail
        return len(track.segments) - 1 if short and len(track.segments) > 1 else len(track.segments)

    limit = count(reference)
    settled = []
    for track in tracks:
        keep = min(len(track.segments), limit)
        if keep == len(track.segments):
            keep = count(track)
        settled.append(_merged(track, keep))
    return settled


def _iso_duration(seconds: float) -> str:
    return f"PT{math.ceil(seconds * 1000) / 1000:.3f}S"


def write_mpd(path: Path, tracks: list[Track], *, bandwidths: dict[str, int]) -> None:
    """Rewrite FFmpeg's MPD: each timeline from ``tracks``, ``maxSegmentDuration`` from the
    longest real segment, the measured peak bitrates (FFmpeg writes the configured targets,
    so DASH and HLS players would see different ladders), and no bitstreamSwitching, which
    does not hold across resolutions with out-of-band parameter sets (avc1)."""
    for prefix, uri in (
        ("", NS),
        ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ("xlink", "http://www.w3.org/1999/xlink"),
    ):
        ET.register_namespace(prefix, uri)
    tree = ET.parse(path)  # noqa: S314 - FFmpeg's own output, not user input
    root = tree.getroot()
    by_id = {track.id: track for track in tracks}
    longest = max(t.seconds(s.duration) for t in tracks for s in t.segments)
    root.set("maxSegmentDuration", _iso_duration(longest))
    for adaptation in root.iterfind(".//mpd:AdaptationSet", MPD_NS):
        adaptation.attrib.pop("bitstreamSwitching", None)
        for rep in adaptation.iterfind("mpd:Representation", MPD_NS):
            rep_id = rep.get("id")
            if rep_id in bandwidths:
                rep.set("bandwidth", str(bandwidths[rep_id]))
            timeline = rep.find("mpd:SegmentTemplate/mpd:SegmentTimeline", MPD_NS)
            if timeline is None or rep_id not in by_id:
                raise ManifestError(f"representation {rep_id}: no timeline to rewrite")
            _write_timeline(timeline, by_id[rep_id].segments)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _write_timeline(timeline: ET.Element, segments: tuple[TimedSegment, ...]) -> None:
    """S elements, runs of equal contiguous durations folded into ``r``."""
    for child in list(timeline):
        timeline.remove(child)
    previous_end, current = None, None
    for segment in segments:
        contiguous = segment.start == previous_end
        if current is not None and contiguous and int(current.get("d")) == segment.duration:
            current.set("r", str(int(current.get("r", "0")) + 1))
        else:
            current = ET.SubElement(timeline, f"{{{NS}}}S")
            if not contiguous:
                current.set("t", str(segment.start))
            current.set("d", str(segment.duration))
        previous_end = segment.start + segment.duration
