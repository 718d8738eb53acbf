"""The tus 1.0.0 wire format: header parsing and formatting. Pure functions, no Django.

https://tus.io/protocols/resumable-upload (core, creation, creation-with-upload, expiration,
checksum, termination).
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "expiration",
    "checksum",
    "termination",
)
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
HTTP_CHECKSUM_MISMATCH = 460

# A metadata key: non-empty, ASCII, no spaces or commas (tus 1.0.0, Upload-Metadata).
_KEY = re.compile(r"^[\x21-\x2b\x2d-\x7e]+$")
# ASCII digits only: str.isdigit() is true of "²" and "٣", which int() refuses or reads as 3.
_NON_NEGATIVE = re.compile(r"[0-9]{1,19}")


class ProtocolError(ValueError):
    """A header that does not follow the tus protocol; the message says which and why."""


def parse_non_negative(name: str, value: str | None) -> int:
    """An Upload-Offset / Upload-Length value: a non-negative decimal integer."""
    if value is None or value == "":
        raise ProtocolError(f"{name} header is required.")
    if not _NON_NEGATIVE.fullmatch(value):
        raise ProtocolError(f"{name} must be a non-negative integer, not {value[:40]!r}.")
    return int(value)


def parse_metadata(header: str | None, *, max_bytes: int) -> dict[str, str]:
    """Decode Upload-Metadata: ``key base64,key2 base64,key3`` into text values.

    Values must be base64 of UTF-8 text; a key without a value maps to "". Keys are unique.
    """
    if not header:
        return {}
    if len(header.encode()) > max_bytes:
        raise ProtocolError(f"Upload-Metadata is larger than {max_bytes} bytes.")
    metadata: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not parts[0]:
            raise ProtocolError(f"Malformed Upload-Metadata pair {pair.strip()[:60]!r}.")
        key = parts[0]
        if not _KEY.match(key):
            raise ProtocolError(f"Upload-Metadata key {key[:60]!r} is not valid.")
        if key in metadata:
            raise ProtocolError(f"Upload-Metadata key {key!r} appears twice.")
        encoded = parts[1] if len(parts) == 2 else ""
        try:
            metadata[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ProtocolError(
                f"Upload-Metadata value of {key!r} is not base64-encoded UTF-8."
            ) from error
        if "\x00" in metadata[key]:  # no database text column can store it
            raise ProtocolError(f"Upload-Metadata value of {key!r} contains a NUL character.")
    return metadata


@dataclass(frozen=True)
class Checksum:
    """A parsed Upload-Checksum header: the algorithm and the expected digest of the chunk."""

    algorithm: str
    digest: bytes

    def new_hasher(self):
        return hashlib.new(self.algorithm)


def parse_checksum(header: str | None) -> Checksum | None:
    """Upload-Checksum: ``<algorithm> <base64 digest>``; None when the header is absent."""
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ProtocolError(
            f"Checksum algorithm {algorithm[:20]!r} is not supported; "
            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}."
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as error:
        raise ProtocolError("Upload-Checksum digest is not valid base64.") from error
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise ProtocolError(f"Upload-Checksum digest has the wrong length for {algorithm}.")
    return Checksum(algorithm=algorithm, digest=digest)


def http_date(moment: datetime) -> str:
    """RFC 9110 IMF-fixdate, as Upload-Expires wants: ``Wed, 25 Jun 2014 16:00:00 GMT``."""
    return format_datetime(moment, usegmt=True)
