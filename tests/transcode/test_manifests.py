"""Manifest checks on every kind of clip we can cheaply encode, through the whole service.

Each clip is encoded once for the module (a two-rung ladder, tiny sizes); the tests then hold
the HLS playlists and the MPD to what players and validators expect, measuring the segments
themselves with PyAV (the manifests are never taken at their word): strict HLS parsing
(hls-parser, run with Node), CODECS from the streams' own configuration records, BANDWIDTH
from the bytes and durations of real media, every segment addressed with its real duration,
one set of boundaries for every track, a keyframe opening each segment, CMAF brands.
"""

import io
import json
import re
import struct
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from mpegdash.parser import MPEGDASHParser

from tests.support.media import make_rotated, make_video
from tests.support.processes import ROOT
from tests.transcode.conftest import encode, first_frames, output_dir

# The marker makes pytest-django set up the test database, which the module's encodes use.
pytestmark = pytest.mark.django_db

HLS_STRICT = ROOT / "tests" / "support" / "hls_strict.js"
AUDIO_FRAME = 1024 / 48_000  # one AAC frame at our 48 kHz
SLIVER = 0.5  # seconds: no segment but a track's only one may be shorter
TOLERANCE = 0.001  # seconds between what a manifest says and what the media holds

LADDER = [
    {"name": "240p", "height": 240, "maxrate": 430_000, "bufsize": 600_000},
    {"name": "144p", "height": 144, "maxrate": 160_000, "bufsize": 225_000},
]
CLIPS = {
    # Duration a multiple of the 4 s segment: the AAC priming used to leave a 21 ms audio tail.
    "multiple": {"seconds": 8, "size": "426x240", "rate": 25},
    # One video frame past a boundary: a 40 ms video tail, 61 ms of audio.
    "frame_past": {"seconds": 8.04, "size": "426x240", "rate": 25},
    "odd": {"seconds": 6.5, "size": "426x240", "rate": 30},
    "silent": {"seconds": 4, "size": "426x240", "rate": 25, "audio": False},
    "portrait": {"seconds": 5, "size": "426x240", "rate": 30, "rotate": 90},
}


@dataclass(frozen=True)
class Piece:
    """A segment as the media holds it: presentation start and end (seconds), bytes."""

    uri: str
    start: float
    end: float
    size: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@pytest.fixture(scope="module")
def outputs(django_db_setup, django_db_blocker, tmp_path_factory):
    """Clip kind -> the folder its encode published, all encoded once, in a transaction that
    is rolled back (as a TestCase's class-level data is)."""
    folder = tmp_path_factory.mktemp("manifest-clips")
    media = folder / "media"
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media), "base_url": "/media/"},
        },
    }
    published = {}
    with (
        django_db_blocker.unblock(),
        override_settings(
            STORAGES=storages,
            MEDIA_ENCRYPTION=False,  # the packaged CMAF itself (as tests/transcode/conftest.py)
            TRANSCODE_PRESET="ultrafast",
            TRANSCODE_LADDER=LADDER,
            TRANSCODE_STORYBOARD={"interval": 2, "width": 80, "columns": 5, "rows": 5},
            TRANSCODE_WORK_DIR=folder / "work",
        ),
        transaction.atomic(),
    ):
        for kind, spec in CLIPS.items():
            spec = dict(spec)
            rotate = spec.pop("rotate", None)
            path = make_video(folder / f"{kind}.mp4", **spec)
            if rotate:
                path = make_rotated(folder / f"{kind}-rotated.mp4", path, rotate)
            content, job = encode(path)
            assert job.state == "succeeded", (kind, content.error)
            published[kind] = output_dir(media, content)
        transaction.set_rollback(True)
    return published


KINDS = pytest.mark.parametrize("kind", list(CLIPS))


# --- reading what was written ----------------------------------------------------------------


@cache
def hls(folder: Path) -> dict[str, dict]:
    """Every playlist of the folder, parsed strictly by hls-parser; by file name."""
    files = sorted(str(path) for path in folder.glob("*.m3u8"))
    result = subprocess.run(
        ["node", str(HLS_STRICT), *files],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {Path(name).name: parsed for name, parsed in json.loads(result.stdout).items()}


@cache
def piece(folder: Path, init: str, uri: str) -> Piece:
    with av.open(io.BytesIO((folder / init).read_bytes() + (folder / uri).read_bytes())) as media:
        stream = media.streams[0]
        packets = [p for p in media.demux(stream) if p.size and p.pts is not None]
    start = min(p.pts for p in packets) * stream.time_base
    end = max(p.pts + p.duration for p in packets) * stream.time_base
    # Presentation starts at 0: the audio encoder's priming, before it, is cut by the edit list.
    return Piece(uri, max(0.0, float(start)), float(end), (folder / uri).stat().st_size)


@dataclass(frozen=True)
class Representation:
    id: str
    content_type: str
    codecs: str
    bandwidth: int
    init: str
    addressed: list[tuple[str, float, float]]  # (uri, start, duration) in seconds


def _seconds(iso: str) -> float:
    hours, minutes, seconds = re.fullmatch(
        r"PT(?:([\d.]+)H)?(?:([\d.]+)M)?(?:([\d.]+)S)?", iso
    ).groups()
    return float(hours or 0) * 3600 + float(minutes or 0) * 60 + float(seconds or 0)


def _uri(template: str, rep_id: str, number: int) -> str:
    name = template.replace("$RepresentationID$", rep_id)
    return re.sub(r"\$Number(?:%0(\d+)d)?\$", lambda m: f"{number:0{m.group(1) or 1}d}", name)


@cache
def dash(folder: Path) -> tuple[float, list[Representation]]:
    """(maxSegmentDuration, representations with every segment the MPD addresses)."""
    mpd = MPEGDASHParser.parse(str(folder / "manifest.mpd"))
    total = _seconds(mpd.media_presentation_duration)
    representations = []
    for adaptation in mpd.periods[0].adaptation_sets:
        for rep in adaptation.representations:
            template = (rep.segment_templates or adaptation.segment_templates)[0]
            scale, number = template.timescale or 1, template.start_number or 1
            addressed = []
            if template.segment_timelines:
                time = 0
                for entry in template.segment_timelines[0].Ss:
                    time = entry.t if entry.t is not None else time
                    for _ in range((entry.r or 0) + 1):
                        uri = _uri(template.media, rep.id, number)
                        addressed.append((uri, time / scale, entry.d / scale))
                        time, number = time + entry.d, number + 1
            else:  # a fixed @duration: segments up to the presentation's end
                step, start = template.duration / scale, 0.0
                while start < total - TOLERANCE:
                    uri = _uri(template.media, rep.id, number)
                    addressed.append((uri, start, min(step, total - start)))
                    start, number = start + step, number + 1
            representations.append(
                Representation(
                    id=rep.id,
                    content_type=adaptation.content_type,
                    codecs=rep.codecs,
                    bandwidth=rep.bandwidth,
                    init=template.initialization.replace("$RepresentationID$", rep.id),
                    addressed=addressed,
                )
            )
    return _seconds(mpd.max_segment_duration), representations


def pieces_on_disk(folder: Path, rep: Representation) -> list[Piece]:
    files = sorted(folder.glob(f"chunk-stream{rep.id}-*.m4s"))
    return [piece(folder, rep.init, path.name) for path in files]


def media_peak(pieces: list[Piece]) -> float:
    """The highest bit rate of the real media over any run of whole segments lasting at least
    SLIVER seconds (the whole track if it is shorter): a sliver's rate alone is no measure."""
    window = min(SLIVER, sum(p.duration for p in pieces))
    peak = 0.0
    for first in range(len(pieces)):
        for last in range(first, len(pieces)):
            run = pieces[first : last + 1]
            seconds = run[-1].end - run[0].start
            if seconds >= window - TOLERANCE:
                peak = max(peak, 8 * sum(p.size for p in run) / seconds)
                break
    return peak


def top_box(data: bytes, kind: bytes) -> list[bytes]:
    """Payloads of the top-level boxes of ``kind`` in an ISO BMFF file."""
    found, offset = [], 0
    while offset < len(data):
        size, box = struct.unpack(">I4s", data[offset : offset + 8])
        if box == kind:
            found.append(data[offset + 8 : offset + size])
        offset += size
    return found


def brands_of(payload: bytes) -> set[str]:
    names = [payload[:4]] + [payload[i : i + 4] for i in range(8, len(payload), 4)]
    return {name.decode("latin-1") for name in names}


def codecs_of(path: Path) -> str:
    """RFC 6381 codecs of an init segment's track, from its own configuration record."""
    with av.open(str(path)) as media:
        context = media.streams[0].codec_context
        extradata = context.extradata
        if context.name == "h264":  # avcC: version, profile, compatibility, level
            return f"avc1.{extradata[1]:02x}{extradata[2]:02x}{extradata[3]:02x}"
        if context.name == "aac":  # AudioSpecificConfig: the object type's five bits
            return f"mp4a.40.{extradata[0] >> 3}"
    raise AssertionError(f"{path.name}: unexpected codec {context.name}")


# --- the checks ------------------------------------------------------------------------------


@KINDS
def test_playlists_parse_strictly_as_complete_vod(outputs, kind):
    parsed = dict(hls(outputs[kind]))
    master = parsed.pop("master.m3u8")
    assert master["master"]
    assert {variant["uri"] for variant in master["variants"]} | {
        uri for variant in master["variants"] for uri in variant["audio"]
    } == set(parsed)
    for name, playlist in parsed.items():
        assert (playlist["playlistType"], playlist["endlist"]) == ("VOD", True), name
        assert all(segment["map"] for segment in playlist["segments"]), name


@KINDS
def test_codecs_match_the_streams(outputs, kind):
    folder = outputs[kind]
    parsed = hls(folder)
    _, representations = dash(folder)
    for rep in representations:
        assert rep.codecs == codecs_of(folder / rep.init), rep.id
    for variant in parsed["master.m3u8"]["variants"]:
        playlist = parsed[variant["uri"]]
        expected = [codecs_of(folder / playlist["segments"][0]["map"])]
        for audio in variant["audio"]:
            expected.append(codecs_of(folder / parsed[audio]["segments"][0]["map"]))
        assert variant["codecs"] == ",".join(expected)
    assert any(variant["audio"] for variant in parsed["master.m3u8"]["variants"]) == (
        kind != "silent"
    )


@KINDS
def test_bandwidth_is_the_peak_of_real_media(outputs, kind):
    folder = outputs[kind]
    parsed = hls(folder)
    _, representations = dash(folder)
    peaks = {rep.id: media_peak(pieces_on_disk(folder, rep)) for rep in representations}
    for rep in representations:
        assert peaks[rep.id] <= rep.bandwidth <= 1.1 * peaks[rep.id], (rep.id, peaks[rep.id])
    playlist_peaks = {f"media_{rep_id}.m3u8": peak for rep_id, peak in peaks.items()}
    for variant in parsed["master.m3u8"]["variants"]:
        peak = playlist_peaks[variant["uri"]] + sum(playlist_peaks[a] for a in variant["audio"])
        assert peak <= variant["bandwidth"] <= 1.1 * peak, (variant["uri"], peak)
        assert variant["averageBandwidth"] <= variant["bandwidth"]


@KINDS
def test_every_segment_is_addressed_with_its_real_duration(outputs, kind):
    folder = outputs[kind]
    parsed = hls(folder)
    longest, representations = dash(folder)
    for rep in representations:
        on_disk = pieces_on_disk(folder, rep)
        assert [uri for uri, _, _ in rep.addressed] == [p.uri for p in on_disk], rep.id
        for (uri, start, duration), real in zip(rep.addressed, on_disk, strict=True):
            assert abs(start - real.start) <= TOLERANCE, (uri, start, real)
            assert abs(duration - real.duration) <= TOLERANCE, (uri, duration, real)
            assert real.duration <= longest + TOLERANCE, (uri, real.duration, longest)
        playlist = parsed[f"media_{rep.id}.m3u8"]
        assert [s["uri"] for s in playlist["segments"]] == [p.uri for p in on_disk]
        for segment, real in zip(playlist["segments"], on_disk, strict=True):
            assert abs(segment["duration"] - real.duration) <= TOLERANCE, (segment, real)
            assert round(segment["duration"]) <= playlist["targetDuration"]
        # The target is the longest segment rounded, not more (players size buffers by it).
        assert playlist["targetDuration"] == max(round(p.duration) for p in on_disk)
    assert longest == pytest.approx(
        max(p.duration for rep in representations for p in pieces_on_disk(folder, rep)),
        abs=TOLERANCE,
    )


@KINDS
def test_every_track_has_the_same_boundaries_and_no_sliver(outputs, kind):
    folder = outputs[kind]
    _, representations = dash(folder)
    tracks = {rep.id: (rep, pieces_on_disk(folder, rep)) for rep in representations}
    videos = [pieces for rep, pieces in tracks.values() if rep.content_type == "video"]
    audios = [pieces for rep, pieces in tracks.values() if rep.content_type == "audio"]
    assert len(videos) == len(LADDER)
    assert len(audios) == (0 if kind == "silent" else 1)
    reference = [p.start for p in videos[0]]
    for pieces in videos:
        assert [p.start for p in pieces] == pytest.approx(reference, abs=TOLERANCE)
        assert pieces[-1].end == pytest.approx(videos[0][-1].end, abs=TOLERANCE)
    for pieces in audios:
        assert [p.start for p in pieces] == pytest.approx(reference, abs=AUDIO_FRAME)
        assert pieces[-1].end == pytest.approx(videos[0][-1].end, abs=AUDIO_FRAME)
    for pieces in [*videos, *audios]:
        if len(pieces) > 1:
            assert min(p.duration for p in pieces) >= SLIVER, [p.duration for p in pieces]


@KINDS
def test_each_segment_starts_with_a_keyframe(outputs, kind):
    folder = outputs[kind]
    for index in range(len(LADDER)):
        flags = first_frames(folder, f"media_{index}.m3u8")
        assert flags
        assert all(flags), (index, flags)


@KINDS
def test_cmaf_brands(outputs, kind):
    folder = outputs[kind]
    _, representations = dash(folder)
    for rep in representations:
        (ftyp,) = top_box((folder / rep.init).read_bytes(), b"ftyp")
        assert "cmfc" in brands_of(ftyp), rep.init
        for uri, _, _ in rep.addressed:
            data = (folder / uri).read_bytes()
            (styp,) = top_box(data, b"styp")
            assert {"cmfs", "msdh"} <= brands_of(styp), (uri, brands_of(styp))
            assert data[4:8] == b"styp"
            assert not top_box(data, b"sidx"), uri  # it would index only the first fragment
