"""apps/transcode/cenc.py on FFmpeg's own DASH tracks (H.264 in two slices a frame, so samples
have several encrypted NAL units, and AAC): with the key FFmpeg decodes the very frames of the
clear tracks, without it not one; the protected bytes all changed and the clear ones (NAL
lengths and headers) did not; malformed or already encrypted input is refused; and dash.js and
Shaka Player in Chromium play the encrypted tracks to the end with ClearKey, the keys coming
from a license server that the MPD names."""

import base64
import functools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apps.transcode import cenc
from apps.transcode.cmaf import finish_segment
from tests.support.media import ffmpeg, ffmpeg_binary, make_video
from tests.support.processes import ROOT

# One key per track, as a packager gives each track its own.
KEYS = {
    "video": (
        bytes.fromhex("9eb4050de44b4802932e27d75083e266"),
        bytes.fromhex("166634c675823c235a4a9446fad52e4d"),
    ),
    "audio": (
        bytes.fromhex("6a44b8d3e3a64e6f9c1d5f2a7b8e0c11"),
        bytes.fromhex("fd2b0ce2f1f9462ba61cfbd5d3e6a7c8"),
    ),
}
STREAMS = {"video": "0", "audio": "1"}  # FFmpeg's representation ids
CLEARKEY_DASH_SCHEME = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
CHROMIUM = "/usr/bin/chromium"
PLAYER_FILES = {
    "dash.all.min.js": ROOT / "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
    "shaka-player.compiled.js": ROOT / "node_modules/shaka-player/dist/shaka-player.compiled.js",
}


@dataclass(frozen=True)
class Track:
    folder: Path
    init: str
    segments: list[str]

    def joined(self, path: Path) -> Path:
        """Init and segments end to end: one fragmented MP4 FFmpeg can read."""
        with path.open("wb") as out:
            for name in [self.init, *self.segments]:
                out.write((self.folder / name).read_bytes())
        return path


def _tracks(folder: Path) -> dict[str, Track]:
    return {
        kind: Track(
            folder,
            f"init-stream{stream}.m4s",
            sorted(path.name for path in folder.glob(f"chunk-stream{stream}-*.m4s")),
        )
        for kind, stream in STREAMS.items()
    }


def _encrypt(tracks: dict[str, Track], folder: Path) -> dict[str, Track]:
    folder.mkdir()
    for kind, track in tracks.items():
        kid, key = KEYS[kind]
        length = cenc.nal_length_size(track.folder / track.init)
        cenc.encrypt_init(track.folder / track.init, folder / track.init, kid=kid)
        for name in track.segments:
            cenc.encrypt_segment(
                track.folder / name, folder / name, key=key, kid=kid, nal_length_size=length
            )
    return _tracks(folder)


@pytest.fixture(scope="module")
def clear(tmp_path_factory) -> dict[str, dict[str, Track]]:
    """FFmpeg's DASH output of a 4 s clip as written ("ffmpeg": a sidx and one fragment per
    segment), and finished by cmaf.finish_segment ("cmaf": CMAF brands, no sidx, and each
    track's last segment merged into the one before, as packaging.py merges a sliver: a segment
    of two fragments)."""
    folder = tmp_path_factory.mktemp("cenc")
    source = make_video(folder / "source.mp4", seconds=4, size="320x240")
    written = folder / "ffmpeg"
    written.mkdir()
    ffmpeg(
        "-i", str(source), "-map", "0:v", "-map", "0:a",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-slices", "2",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-c:a", "aac",
        "-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1",
        "-format_options", "movflags=+cmaf", "-adaptation_sets", "id=0,streams=v id=1,streams=a",
        str(written / "manifest.mpd"),
    )  # fmt: skip
    finished = folder / "cmaf"
    shutil.copytree(written, finished)
    tracks = _tracks(finished)
    assert len(tracks["audio"].segments) == 3, tracks  # 2 s, 2 s and a sliver of AAC
    for track in tracks.values():
        *segments, last = track.segments
        for name in segments[:-1]:
            finish_segment(finished / name)
        finish_segment(finished / segments[-1], tails=(finished / last,))
    return {"ffmpeg": _tracks(written), "cmaf": _tracks(finished)}


@pytest.fixture(scope="module")
def encrypted(clear, tmp_path_factory) -> dict[str, dict[str, Track]]:
    folder = tmp_path_factory.mktemp("cenc-encrypted")
    return {layout: _encrypt(tracks, folder / layout) for layout, tracks in clear.items()}


def _frame_hashes(path: Path, *, key: bytes | None = None) -> list[str]:
    """The MD5 of each decoded frame (FFmpeg's framemd5); frames FFmpeg could not decode are
    missing."""
    decryption = ["-decryption_key", key.hex()] if key else []
    result = subprocess.run(
        [ffmpeg_binary(), "-v", "error", *decryption, "-i", str(path), "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [
        line.rsplit(",", 1)[1].strip() for line in result.stdout.splitlines() if line[:1] != "#"
    ]


# --- decryption -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["ffmpeg", "cmaf"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_with_the_key_ffmpeg_decodes_the_clear_frames(clear, encrypted, layout, kind, tmp_path):
    expected = _frame_hashes(clear[layout][kind].joined(tmp_path / "clear.mp4"))
    assert len(expected) > 50  # 100 frames of video, ~190 of audio
    locked = encrypted[layout][kind].joined(tmp_path / "encrypted.mp4")
    assert _frame_hashes(locked, key=KEYS[kind][1]) == expected


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_without_the_key_no_frame_decodes_as_before(clear, encrypted, kind, tmp_path):
    expected = set(_frame_hashes(clear["ffmpeg"][kind].joined(tmp_path / "clear.mp4")))
    locked = encrypted["ffmpeg"][kind].joined(tmp_path / "encrypted.mp4")
    assert not expected & set(_frame_hashes(locked))
    wrong_key = bytes(16)
    assert not expected & set(_frame_hashes(locked, key=wrong_key))


# --- what the boxes say -----------------------------------------------------------------------


def _children(data: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """type -> [(body offset, end)] of the boxes in data[start:end] (32-bit sizes only)."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    while start < end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        found.setdefault(kind, []).append((start + 8, start + size))
        start += size
    return found


def _samples(data: bytes):
    """(moof offset, [(sample offset, size)], senc body) of each fragment of a segment."""
    fragments = []
    for moof_body, moof_end in _children(data, 0, len(data))[b"moof"]:
        moof = moof_body - 8
        [(traf_body, traf_end)] = _children(data, moof_body, moof_end)[b"traf"]
        traf = _children(data, traf_body, traf_end)
        tfhd_body = traf[b"tfhd"][0][0]
        tfhd_flags = struct.unpack(">I", data[tfhd_body : tfhd_body + 4])[0] & 0xFFFFFF
        assert tfhd_flags == 0x2003A  # FFmpeg's: base-is-moof, default size at byte 16
        default_size = struct.unpack(">I", data[tfhd_body + 16 : tfhd_body + 20])[0]
        [(trun, _)] = traf[b"trun"]
        flags, count, data_offset = struct.unpack(">IIi", data[trun : trun + 12])
        fields = bin(flags & 0xF00).count("1")
        first = trun + 12 + (4 if flags & 0x4 else 0)
        sizes = (
            [
                struct.unpack(
                    ">I", data[first + 4 * fields * i + (4 if flags & 0x100 else 0) :][:4]
                )[0]
                for i in range(count)
            ]
            if flags & 0x200
            else [default_size] * count
        )
        position = moof + data_offset
        samples = []
        for size in sizes:
            samples.append((position, size))
            position += size
        senc = traf[b"senc"][0][0] if b"senc" in traf else None
        fragments.append((moof, samples, senc, traf))
    return fragments


def _senc_entries(data: bytes, senc: int, count: int, subsamples: bool):
    flags, stored = struct.unpack(">II", data[senc : senc + 8])
    assert (flags & 0xFFFFFF, stored) == (2 if subsamples else 0, count)
    position, entries = senc + 8, []
    for _ in range(count):
        iv = data[position : position + 8]
        position += 8
        ranges = []
        if subsamples:
            (number,) = struct.unpack(">H", data[position : position + 2])
            position += 2
            for _ in range(number):
                ranges.append(struct.unpack(">HI", data[position : position + 6]))
                position += 6
        entries.append((iv, ranges))
    return entries


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_every_protected_block_changed_and_every_nal_header_stayed(clear, encrypted, kind):
    """Sample by sample against the clear segment: the protected ranges (multiples of 16
    bytes in video) differ in every 16-byte block, the clear ones are the same bytes and hold
    each NAL unit's length and header; IVs are 8 bytes and never repeat."""
    video = kind == "video"
    plain, locked = clear["ffmpeg"][kind], encrypted["ffmpeg"][kind]
    ivs, protected_total, sample_total = [], 0, 0
    for name in plain.segments:
        before = (plain.folder / name).read_bytes()
        after = (locked.folder / name).read_bytes()
        for (_, old, _, _), (moof, new, senc, traf) in zip(
            _samples(before), _samples(after), strict=True
        ):
            assert [size for _, size in old] == [size for _, size in new]
            entries = _senc_entries(after, senc, len(new), subsamples=video)
            # saio points at the first IV, from the moof (default-base-is-moof)
            saio = traf[b"saio"][0][0]
            assert moof + struct.unpack(">I", after[saio + 8 : saio + 12])[0] == senc + 8
            for (old_at, size), (new_at, _), (iv, ranges) in zip(old, new, entries, strict=True):
                ivs.append(iv)
                sample_total += size
                clear_sample, locked_sample = (
                    before[old_at : old_at + size],
                    after[new_at : new_at + size],
                )
                ranges = ranges or [(0, size)]
                assert sum(a + b for a, b in ranges) == size
                clear_bytes, position = set(), 0
                for clear_count, protected in ranges:
                    assert (
                        clear_sample[position : position + clear_count]
                        == locked_sample[position : position + clear_count]
                    )
                    clear_bytes.update(range(position, position + clear_count))
                    position += clear_count
                    if video:
                        assert protected % 16 == 0
                    # whole blocks: a short last one (AAC) may match by chance (1 in 256 for a byte)
                    blocks = range(position, position + protected - 15, 16)
                    assert all(
                        clear_sample[at : at + 16] != locked_sample[at : at + 16] for at in blocks
                    )
                    assert (
                        protected < 16
                        or clear_sample[position : position + protected]
                        != locked_sample[position : position + protected]
                    )
                    protected_total += protected
                    position += protected
                at = 0
                while video and at < size:
                    nal_size = int.from_bytes(clear_sample[at : at + 4], "big")
                    nal = set(range(at, at + 4 + nal_size))
                    assert set(range(at, at + 5)) <= clear_bytes  # length and header
                    if clear_sample[at + 4] & 0x1F in range(1, 6):  # a slice: its payload
                        assert len(nal & clear_bytes) <= 4 + 1 + 15  # protected but < 16 bytes
                    at += 4 + nal_size
    assert len(set(ivs)) == len(ivs)
    assert {len(iv) for iv in ivs} == {8}
    # All of AAC; all of H.264 but the NAL lengths, headers and <16-byte tails (and the SEI)
    assert protected_total / sample_total > (0.999 if not video else 0.9), (
        protected_total / sample_total
    )


INIT_PATH = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]


def _init_boxes(data: bytes) -> tuple[list[int], tuple[int, int]]:
    """(sizes of moov, trak, mdia, minf, stbl, stsd; (offset, size) of the sample entry)."""
    sizes, start, end = [], 0, len(data)
    for kind in INIT_PATH:
        start, end = _children(data, start, end)[kind][0]
        sizes.append(end - start + 8)
    entry = start + 8  # after stsd's version+flags and entry_count
    return sizes, (entry, struct.unpack(">I", data[entry : entry + 4])[0])


def test_the_init_segment_names_the_scheme_and_the_key(clear, encrypted):
    """The sample entry becomes encv/enca, the same but for the sinf that now ends it; moov
    ends with the pssh; every box on the way down grew by as much."""
    for kind, protected, original in (("video", b"encv", b"avc1"), ("audio", b"enca", b"mp4a")):
        kid = KEYS[kind][0]
        data = (encrypted["ffmpeg"][kind].folder / encrypted["ffmpeg"][kind].init).read_bytes()
        before = (clear["ffmpeg"][kind].folder / clear["ffmpeg"][kind].init).read_bytes()
        sizes, (at, size) = _init_boxes(data)
        old_sizes, (old_at, old_size) = _init_boxes(before)
        assert [new - old for new, old in zip(sizes, old_sizes, strict=True)] == [132] + [80] * 5
        assert (at, size) == (old_at, old_size + 80)
        assert data[at + 4 : at + 8] == protected
        assert data[at + 8 : at + size - 80] == before[old_at + 8 : old_at + old_size]
        frma = struct.pack(">I4s", 12, b"frma") + original
        schm = struct.pack(">I4sI4sI", 20, b"schm", 0, b"cenc", 0x10000)
        tenc = struct.pack(">I4sIBBBB", 32, b"tenc", 0, 0, 0, 1, 8) + kid
        schi = struct.pack(">I4s", 40, b"schi") + tenc
        assert (
            data[at + size - 80 : at + size]
            == struct.pack(">I4s", 80, b"sinf") + frma + schm + schi
        )
        moov_end = _children(data, 0, len(data))[b"moov"][0][1]
        assert data[moov_end - 52 : moov_end] == cenc.pssh_box(kid)  # moov's last box
    assert cenc.nal_length_size(encrypted["ffmpeg"]["video"].folder / "init-stream0.m4s") == 4


def test_the_clearkey_pssh():
    kid = KEYS["video"][0]
    assert cenc.pssh_box(kid) == (
        struct.pack(">I4sI", 52, b"pssh", 0x01000000)
        + uuid.UUID(cenc.CLEARKEY_SYSTEM_ID).bytes
        + struct.pack(">I", 1)
        + kid
        + struct.pack(">I", 0)
    )


def test_the_sidx_counts_the_grown_fragments(encrypted):
    """FFmpeg's raw segments carry a sidx: its reference spans the moof and mdat as they are."""
    track = encrypted["ffmpeg"]["video"]
    for name in track.segments:
        data = (track.folder / name).read_bytes()
        top = _children(data, 0, len(data))
        [(sidx, _)] = top[b"sidx"]
        (moof, _), (_, mdat_end) = top[b"moof"][0], top[b"mdat"][0]
        assert data[sidx] == 1  # version 1: 64-bit times, then first_offset, count, references
        assert struct.unpack(">H", data[sidx + 30 : sidx + 32])[0] == 1
        assert struct.unpack(">I", data[sidx + 32 : sidx + 36])[0] == mdat_end - (moof - 8)


# --- refusals ---------------------------------------------------------------------------------


def test_nal_length_size_reads_the_avcc_and_says_none_for_audio(clear, tmp_path):
    video, audio = clear["ffmpeg"]["video"], clear["ffmpeg"]["audio"]
    assert cenc.nal_length_size(video.folder / video.init) == 4
    assert cenc.nal_length_size(audio.folder / audio.init) is None
    data = bytearray((video.folder / video.init).read_bytes())
    avcc = data.index(b"avcC") + 4
    data[avcc + 4] = 0xFC | 1  # lengthSizeMinusOne = 1
    (tmp_path / "init.m4s").write_bytes(data)
    assert cenc.nal_length_size(tmp_path / "init.m4s") == 2
    data[avcc + 4] = 0xFC | 2  # a reserved value
    (tmp_path / "init.m4s").write_bytes(data)
    with pytest.raises(cenc.CencError, match="3 bytes"):
        cenc.nal_length_size(tmp_path / "init.m4s")


def test_an_encrypted_init_or_segment_is_refused(encrypted, tmp_path):
    track = encrypted["ffmpeg"]["video"]
    with pytest.raises(cenc.CencError, match="already encrypted"):
        cenc.encrypt_init(track.folder / track.init, tmp_path / "twice.m4s", kid=KEYS["video"][0])
    with pytest.raises(cenc.CencError, match="already encrypted"):
        cenc.encrypt_segment(
            track.folder / track.segments[0], tmp_path / "twice.m4s",
            key=KEYS["video"][1], kid=KEYS["video"][0], nal_length_size=4,
        )  # fmt: skip
    assert not (tmp_path / "twice.m4s").exists()


def test_what_is_not_a_segment_or_an_init_is_refused(clear, tmp_path):
    video = clear["ffmpeg"]["video"]
    source = video.folder.parent / "source.mp4"  # a whole MP4: ftyp, moov, mdat
    kid, key = KEYS["video"]
    for not_a_segment, message in (
        (video.folder / video.init, "not a media segment"),
        (source, "not a media segment"),
        (video.folder / "manifest.mpd", "does not fit|truncated"),
    ):
        with pytest.raises(cenc.CencError, match=message):
            cenc.encrypt_segment(
                not_a_segment, tmp_path / "out.m4s", key=key, kid=kid, nal_length_size=4
            )
    with pytest.raises(cenc.CencError, match="not an init segment"):
        cenc.encrypt_init(video.folder / video.segments[0], tmp_path / "out.m4s", kid=kid)
    with pytest.raises(cenc.CencError, match="not a fragmented init segment"):
        cenc.encrypt_init(source, tmp_path / "out.m4s", kid=kid)
    with pytest.raises(cenc.CencError, match="16 bytes"):
        cenc.encrypt_init(video.folder / video.init, tmp_path / "out.m4s", kid=kid[:8])
    with pytest.raises(cenc.CencError, match="16 bytes"):
        cenc.encrypt_segment(
            video.folder / video.segments[0],
            tmp_path / "out.m4s",
            key=key + b"x",
            kid=kid,
            nal_length_size=4,
        )
    assert not (tmp_path / "out.m4s").exists()


def test_another_codec_is_refused(tmp_path):
    source = make_video(tmp_path / "source.mp4", seconds=1, audio=False)
    ffmpeg(
        "-i", str(source), "-c:v", "mpeg4", "-f", "dash", "-seg_duration", "1",
        "-format_options", "movflags=+cmaf", str(tmp_path / "manifest.mpd"),
    )  # fmt: skip
    with pytest.raises(cenc.CencError, match="'mp4v' is neither H.264 nor AAC"):
        cenc.nal_length_size(tmp_path / "init-stream0.m4s")
    with pytest.raises(cenc.CencError, match="'mp4v' is neither H.264 nor AAC"):
        cenc.encrypt_init(tmp_path / "init-stream0.m4s", tmp_path / "out.m4s", kid=KEYS["video"][0])


def _damaged(track: Track, tmp_path: Path, damage) -> Path:
    data = bytearray((track.folder / track.segments[0]).read_bytes())
    damage(data)
    path = tmp_path / "damaged.m4s"
    path.write_bytes(data)
    return path


def _trun(data: bytearray) -> int:
    return data.index(b"trun") + 4  # its body


def _longer_first_sample(data: bytearray) -> None:
    """The trun says its first sample is one byte longer than it is."""
    body = _trun(data)
    flags = struct.unpack(">I", data[body : body + 4])[0]
    at = body + 12 + (4 if flags & 0x4 else 0) + (4 if flags & 0x100 else 0)
    struct.pack_into(">I", data, at, struct.unpack(">I", data[at : at + 4])[0] + 1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda data: data.__setitem__(slice(_trun(data) - 4, _trun(data)), b"free"),
            "has no trun",
        ),
        (_longer_first_sample, "add up to"),
        (
            lambda data: data.__setitem__(slice(_trun(data) + 3, _trun(data) + 4), b"\x00"),
            "without a data offset",
        ),
        # the first NAL unit says it is longer than its sample
        (
            lambda data: struct.pack_into(">I", data, data.index(b"mdat") + 4, 0x7FFFFFF),
            "does not fit its sample",
        ),
    ],
    ids=["no-trun", "sizes-do-not-add-up", "no-data-offset", "nal-past-the-sample"],
)
def test_a_damaged_segment_is_refused(clear, tmp_path, damage, message):
    path = _damaged(clear["cmaf"]["video"], tmp_path, damage)
    kid, key = KEYS["video"]
    with pytest.raises(cenc.CencError, match=message):
        cenc.encrypt_segment(path, tmp_path / "out.m4s", key=key, kid=kid, nal_length_size=4)


def _rename(old: bytes, new: bytes, *, nth: int = 0):
    def damage(data: bytearray) -> None:
        at = -1
        for _ in range(nth + 1):
            at = data.index(old, at + 1)
        data[at : at + 4] = new

    return damage


def _renames(*pairs: tuple[bytes, bytes]):
    def damage(data: bytearray) -> None:
        for old, new in pairs:
            _rename(old, new)(data)

    return damage


def _flag(box: bytes, flag: int):
    def damage(data: bytearray) -> None:
        body = data.index(box) + 4
        struct.pack_into(">I", data, body, struct.unpack(">I", data[body : body + 4])[0] | flag)

    return damage


def _shift_data_offset(data: bytearray, by: int = 1) -> None:
    at = _trun(data) + 8
    struct.pack_into(">i", data, at, struct.unpack(">i", data[at : at + 4])[0] + by)


def _sidx_to_sidx(data: bytearray) -> None:
    data[data.index(b"sidx") + 4 + 32] |= 0x80  # reference_type 1: another sidx


def _two_sidx(data: bytearray) -> None:
    at = data.index(b"sidx") - 4
    size = struct.unpack(">I", data[at : at + 4])[0]
    data[at:at] = data[at : at + size]


def _seig_group(data: bytearray) -> None:
    """An sgpd of 'seig' (per-sample keys) in the traf: encryption already."""
    sgpd = struct.pack(">I4sI4sI", 20, b"sgpd", 0, b"seig", 0)
    traf = data.index(b"traf") - 4
    end = traf + struct.unpack(">I", data[traf : traf + 4])[0]
    data[end:end] = sgpd
    for box in (b"moof", b"traf"):
        at = data.index(box) - 4
        struct.pack_into(">I", data, at, struct.unpack(">I", data[at : at + 4])[0] + 20)
    _shift_data_offset(data, by=20)


@pytest.mark.parametrize(
    ("layout", "damage", "message"),
    [
        ("cmaf", _shift_data_offset, "samples start at byte"),
        ("cmaf", _flag(b"tfhd", 0x1), "absolute base data offset"),
        ("cmaf", _rename(b"mdat", b"free"), "not followed by mdat"),
        ("cmaf", _rename(b"moof", b"free"), "follows no moof"),  # of two fragments
        ("cmaf", _rename(b"traf", b"free"), "0 'traf'|has 0 traf"),
        ("cmaf", _seig_group, "already encrypted"),
        ("ffmpeg", _sidx_to_sidx, "refers to another sidx"),
        ("ffmpeg", _two_sidx, "2 sidx"),
    ],
    ids=[
        "data-offset-off",
        "absolute-offsets",
        "moof-without-mdat",
        "mdat-without-moof",
        "no-traf",
        "key-groups",
        "nested-sidx",
        "two-sidx",
    ],
)
def test_a_segment_not_as_ffmpeg_writes_them_is_refused(clear, tmp_path, layout, damage, message):
    path = _damaged(clear[layout]["video"], tmp_path, damage)
    kid, key = KEYS["video"]
    with pytest.raises(cenc.CencError, match=message):
        cenc.encrypt_segment(path, tmp_path / "out.m4s", key=key, kid=kid, nal_length_size=4)


def _init_damaged(track: Track, tmp_path: Path, damage) -> Path:
    data = bytearray((track.folder / track.init).read_bytes())
    damage(data)
    path = tmp_path / "damaged-init.m4s"
    path.write_bytes(data)
    return path


def _two_entries(data: bytearray) -> None:
    at = data.index(b"stsd") + 8
    struct.pack_into(">I", data, at, 2)


def _quicktime_sound(data: bytearray) -> None:
    at = data.index(b"mp4a") + 4 + 8  # SampleEntry's 8 bytes, then the QuickTime version
    struct.pack_into(">H", data, at, 1)


@pytest.mark.parametrize(
    ("state", "kind", "damage", "message"),
    [
        # encrypted by us, then the entry's name put back: the sinf or the pssh betrays it
        ("encrypted", "video", _rename(b"encv", b"avc1"), "protection scheme"),
        ("encrypted", "video", _renames((b"encv", b"avc1"), (b"sinf", b"free")), "has a pssh"),
        ("clear", "video", _rename(b"avcC", b"free"), "no valid avcC"),
        ("clear", "video", _two_entries, "2 sample descriptions"),
        ("clear", "video", _rename(b"trak", b"free"), "0 'trak'"),
        ("clear", "audio", _quicktime_sound, "QuickTime sound description"),
    ],
    ids=["sinf", "pssh", "no-avcc", "two-entries", "no-trak", "quicktime-sound"],
)
def test_an_init_not_as_ffmpeg_writes_them_is_refused(
    clear, encrypted, tmp_path, state, kind, damage, message
):
    tracks = clear if state == "clear" else encrypted
    path = _init_damaged(tracks["ffmpeg"][kind], tmp_path, damage)
    with pytest.raises(cenc.CencError, match=message):
        cenc.encrypt_init(path, tmp_path / "out.m4s", kid=KEYS[kind][0])


def test_a_frame_of_more_slices_than_saiz_can_describe_is_refused(tmp_path):
    """x264 cutting each frame into 60 slices: 60 encrypted NAL units, past saiz's 40."""
    source = make_video(tmp_path / "source.mp4", seconds=0.2, audio=False)
    ffmpeg(
        "-i", str(source), "-c:v", "libx264", "-preset", "ultrafast",
        "-x264-params", "slice-max-mbs=5", "-f", "dash", "-format_options", "movflags=+cmaf",
        str(tmp_path / "manifest.mpd"),
    )  # fmt: skip
    kid, key = KEYS["video"]
    with pytest.raises(cenc.CencError, match="60 encrypted NAL units"):
        cenc.encrypt_segment(
            tmp_path / "chunk-stream0-00001.m4s",
            tmp_path / "out.m4s",
            key=key,
            kid=kid,
            nal_length_size=4,
        )


def test_a_wrong_nal_length_size_is_refused(clear, tmp_path):
    track = clear["cmaf"]["video"]
    kid, key = KEYS["video"]
    with pytest.raises(cenc.CencError, match="NAL unit"):
        cenc.encrypt_segment(
            track.folder / track.segments[0],
            tmp_path / "out.m4s",
            key=key,
            kid=kid,
            nal_length_size=2,
        )


# --- in the browser ---------------------------------------------------------------------------

PAGE = Path(__file__).parent / "cenc_page" / "index.html"


def _protected_mpd(manifest: str, license_url: str) -> str:
    """FFmpeg's MPD with the ContentProtection each encrypted adaptation set needs: 'cenc' and
    its KID, and DASH-IF ClearKey naming the license server (dash.js reads dashif:Laurl by its
    prefix, Shaka by its namespace). No cenc:pssh: the init segments carry one. Put into this
    ClearKey element, a cenc:pssh made dash.js 5.2.1 fail ("unable to create session! --Error
    generating key request -- TypeError"); in an element of its own, of the W3C Common PSSH
    system (urn:uuid:1077efec-...), both players played it too."""
    manifest = manifest.replace(
        'xmlns="urn:mpeg:dash:schema:mpd:2011"',
        'xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013"'
        ' xmlns:dashif="https://dashif.org/CPS"',
    )

    def protect(match: re.Match) -> str:
        kind = "video" if 'contentType="video"' in match.group(0) else "audio"
        kid = uuid.UUID(bytes=KEYS[kind][0])
        return (
            f"{match.group(0)}\n"
            f'<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"'
            f' cenc:default_KID="{kid}"/>\n'
            f'<ContentProtection schemeIdUri="{CLEARKEY_DASH_SCHEME}" value="ClearKey1.0">'
            f"<dashif:Laurl>{license_url}</dashif:Laurl></ContentProtection>"
        )

    protected, count = re.subn(r"<AdaptationSet [^>]*>", protect, manifest)
    assert count == 2
    return protected


def _b64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


class _Site(SimpleHTTPRequestHandler):
    """The page, the players, the tracks; POST /license answers W3C ClearKey license
    requests ({"kids": [...]}) with the keys it knows."""

    licensed: list[str]

    def do_POST(self):
        if self.path != "/license":
            self.send_error(404)
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        keys = {_b64url(kid): key for kid, key in KEYS.values()}
        wanted = [kid for kid in request["kids"] if kid in keys]
        self.licensed.extend(wanted)
        body = json.dumps(
            {
                "keys": [{"kty": "oct", "kid": kid, "k": _b64url(keys[kid])} for kid in wanted],
                "type": "temporary",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A page that closes mid-download (the test's end) is no server error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def site(clear, encrypted, tmp_path_factory):
    """A local HTTP server (EME wants a secure context: http://127.0.0.1 is one) with the page,
    the players from node_modules and FFmpeg's tracks encrypted, under a protected MPD."""
    folder = tmp_path_factory.mktemp("cenc-site")
    shutil.copytree(encrypted["ffmpeg"]["video"].folder, folder, dirs_exist_ok=True)
    shutil.copy(PAGE, folder / "index.html")
    for name, source in PLAYER_FILES.items():
        if not source.exists():
            pytest.fail(f"{source} is missing: run `npm ci` (package.json pins the players)")
        shutil.copy(source, folder / name)
    licensed: list[str] = []
    handler = type("Site", (_Site,), {"licensed": licensed})
    server = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    manifest = (clear["ffmpeg"]["video"].folder / "manifest.mpd").read_text()
    (folder / "manifest.mpd").write_text(_protected_mpd(manifest, f"{base}/license"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, licensed
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (tests/browser.sh could not install it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.mark.parametrize("player", ["dashjs", "shaka"])
def test_the_player_plays_the_encrypted_tracks_with_clearkey(browser, site, player):
    """No player configuration: the license server comes from the MPD's dashif:Laurl."""
    base, licensed = site
    licensed.clear()
    context = browser.new_context()
    try:
        page = context.new_page()
        console: list[str] = []
        page.on(
            "console",
            lambda message: console.append(message.text) if message.type == "error" else None,
        )
        page.goto(f"{base}/index.html")
        page.evaluate(
            "([player, url]) => { window.play(player, url); }", [player, f"{base}/manifest.mpd"]
        )
        deadline = time.monotonic() + 30
        while not page.evaluate("() => report.ended || report.errors.length > 0"):
            assert time.monotonic() < deadline, page.evaluate("() => report")
            page.wait_for_timeout(100)
        report = page.evaluate("() => report")
    finally:
        context.close()
    assert not report["errors"], (report, console[:5])
    assert report["ended"], report
    where = report["endedAt"]
    assert where["currentTime"] >= where["duration"] - 0.25, report
    assert where["frames"] >= 90, report  # 100 frames in 4 s: decrypted and decoded
    assert sorted(set(licensed)) == sorted(_b64url(kid) for kid, _ in KEYS.values())
