"""tus header parsing and file names: pure functions."""

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from apps.uploads.filenames import sanitize_filename
from apps.uploads.protocol import (
    ProtocolError,
    http_date,
    parse_checksum,
    parse_metadata,
    parse_non_negative,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_round_trip():
    header = f"filename {b64('clip é.mp4')},title {b64('Launch')},is_confidential"
    assert parse_metadata(header, max_bytes=4096) == {
        "filename": "clip é.mp4",
        "title": "Launch",
        "is_confidential": "",
    }


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("filename not*base64", "not base64"),
        (f"filename {b64('a')},filename {b64('b')}", "appears twice"),
        (f"file name {b64('a')}", "Malformed"),
        (",", "Malformed"),
        ("k\u00e9y " + b64("a"), "not valid"),
        ("filename " + base64.b64encode(bytes([0xFF, 0xFE])).decode(), "UTF-8"),
        ("title " + b64("a\x00b"), "NUL"),
    ],
)
def test_malformed_metadata(header, message):
    with pytest.raises(ProtocolError, match=message):
        parse_metadata(header, max_bytes=4096)


def test_metadata_size_limit():
    with pytest.raises(ProtocolError, match="larger than 100 bytes"):
        parse_metadata("title " + b64("x" * 200), max_bytes=100)


@pytest.mark.parametrize(
    "value", [None, "", "-1", "1.5", "12a", "9" * 20, "\u00b2", "\u0663", "1\n", " 1"]
)
def test_offsets_must_be_non_negative_integers(value):
    with pytest.raises(ProtocolError):
        parse_non_negative("Upload-Offset", value)


def test_checksum_header():
    digest = hashlib.sha256(b"chunk").digest()
    parsed = parse_checksum("sha256 " + base64.b64encode(digest).decode())
    assert parsed.algorithm == "sha256"
    assert parsed.digest == digest
    assert parse_checksum(None) is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("crc32 AAAA", "not supported"),
        ("sha1 ***", "not valid base64"),
        ("sha1 " + base64.b64encode(b"short").decode(), "wrong length"),
    ],
)
def test_bad_checksum_headers(header, message):
    with pytest.raises(ProtocolError, match=message):
        parse_checksum(header)


def test_http_date():
    assert http_date(datetime(2014, 6, 25, 16, 0, tzinfo=UTC)) == "Wed, 25 Jun 2014 16:00:00 GMT"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("holiday.mp4", "holiday.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.mov", "clip.mov"),
        ("my clip (final).mp4", "my_clip_final.mp4"),
        ("..", "source"),
        ("", "source"),
        (None, "source"),
        (".hidden.mp4", "hidden.mp4"),
        ("a\x00b\x1f.mp4", "ab.mp4"),
        ("x" * 400 + ".mkv", "x" * 146 + ".mkv"),
    ],
)
def test_filenames_are_sanitised(raw, safe):
    assert sanitize_filename(raw) == safe
