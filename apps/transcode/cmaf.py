"""CMAF media segments from FFmpeg's DASH segments: the segment brands, and a tail merged away.

FFmpeg's DASH muxer starts every media segment with ``styp`` (brands ``msdh msix``) and a
``sidx``, then one ``moof``+``mdat`` fragment. CMAF wants segment brands (``cmfs``, and
``cmff`` for a segment that is one fragment), and the packager sometimes has to append one
segment's fragment to the one before it (a segment may hold several fragments). A ``sidx``
indexes the fragments of its own segment only, so it would lie after such a merge, and
neither HLS nor the DASH live profile (SegmentTemplate) needs it: it goes, and so does
``msix``.

Written by hand, deliberately: we only read top-level box headers (32-bit size, type; a
64-bit ``largesize`` when the size is 1) and write one ``styp``; the fragments themselves are
copied byte for byte (their data offsets are relative to their own ``moof``:
``default-base-is-moof``, which ``movflags=+cmaf`` sets). pymp4 (PyPI, construct-based, last
release 2023) parses whole box trees and would add a dependency for these few lines.
"""

import hashlib
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

SEGMENT_BRAND = b"cmfs"
FRAGMENT_BRAND = b"cmff"
DASH_SEGMENT_BRAND = b"msdh"
FRAGMENT_BOXES = (b"moof", b"mdat", b"prft", b"emsg")


class BoxError(Exception):
    """A file is not the ISO BMFF segment FFmpeg should have written."""


def boxes(path: Path) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level box of ``path``."""
    length = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset < length:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                raise BoxError(f"{path.name}: a truncated box at byte {offset}")
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = length - offset
            if size < 8 or offset + size > length:
                raise BoxError(f"{path.name}: a box of {size} bytes at byte {offset}")
            yield kind, offset, size
            offset += size


def brands(path: Path) -> list[str]:
    """Major and compatible brands of the ``ftyp`` or ``styp`` that opens ``path``."""
    kind, offset, size = next(boxes(path))
    if kind not in (b"ftyp", b"styp"):
        raise BoxError(f"{path.name} starts with {kind!r}, not ftyp/styp")
    with path.open("rb") as handle:
        handle.seek(offset + 8)
        payload = handle.read(size - 8)
    names = [payload[:4]] + [payload[i : i + 4] for i in range(8, len(payload), 4)]
    return [name.decode("latin-1") for name in names]


def segment_type_box(*, fragments: int) -> bytes:
    compatible = [SEGMENT_BRAND, DASH_SEGMENT_BRAND]
    if fragments == 1:
        compatible.append(FRAGMENT_BRAND)
    payload = SEGMENT_BRAND + struct.pack(">I", 0) + b"".join(compatible)
    return struct.pack(">I4s", 8 + len(payload), b"styp") + payload


def _fragments(path: Path) -> tuple[int, int]:
    """(offset of the first fragment box, number of moofs); every box from that offset on
    must belong to a fragment."""
    found = [(kind, offset) for kind, offset, _ in boxes(path)]
    starts = [index for index, (kind, _) in enumerate(found) if kind in FRAGMENT_BOXES]
    moofs = sum(1 for kind, _ in found if kind == b"moof")
    if not starts or not moofs:
        raise BoxError(f"{path.name} holds no movie fragment")
    stray = [kind for kind, _ in found[starts[0] :] if kind not in FRAGMENT_BOXES]
    if stray:
        raise BoxError(f"{path.name}: unexpected {stray[0]!r} among its fragments")
    return found[starts[0]][1], moofs


def finish_segment(path: Path, *, tails: tuple[Path, ...] = ()) -> None:
    """Rewrite ``path`` as a CMAF segment: a CMAF ``styp``, its fragments, then the fragments
    of ``tails`` (later segments of the same track, which are deleted)."""
    parts = [(part, *_fragments(part)) for part in (path, *tails)]
    temporary = path.with_name(path.name + ".cmaf")
    with temporary.open("wb") as out:
        out.write(segment_type_box(fragments=sum(moofs for *_, moofs in parts)))
        for part, start, _ in parts:
            with part.open("rb") as source:
                source.seek(start)
                shutil.copyfileobj(source, out)
    os.replace(temporary, path)
    for tail in tails:
        tail.unlink()


# --- chunked jobs: decode times moved onto the job's clock, init segments compared ----------

CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"moof", b"traf")


def box_header(data: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """(type, header size, box size) of the box at ``data[offset]``, which must end by ``end``
    (a size of 0: to ``end``); BoxError when it is truncated or does not fit."""
    if end - offset < 8:
        raise BoxError(f"a truncated box at byte {offset}")
    size, kind = struct.unpack(">I4s", data[offset : offset + 8])
    header = 8
    if size == 1:
        if end - offset < 16:
            raise BoxError(f"a truncated box at byte {offset}")
        size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
    elif size == 0:
        size = end - offset
    if size < header or offset + size > end:
        raise BoxError(f"a box of {size} bytes at byte {offset} does not fit")
    return kind, header, size


def _nested(data: bytes, start: int, end: int, path: tuple[bytes, ...] = ()):
    """(path of box types, offset, header size, size) of every box in ``data[start:end]``,
    descending into the containers a fragment or an init segment has."""
    offset = start
    while offset < end:
        kind, header, size = box_header(data, offset, end)
        here = (*path, kind)
        yield here, offset, header, size
        if kind in CONTAINERS:
            yield from _nested(data, offset + header, offset + size, here)
        offset += size


def shift_decode_times(path: Path, ticks: int) -> None:
    """Add ``ticks`` to the decode time (``tfdt``) of every fragment of the segment ``path``:
    a chunk encoded on its own clock (from 0) moves to where it plays in the whole job."""
    data = bytearray(path.read_bytes())
    found = 0
    for kinds, offset, header, _ in _nested(bytes(data), 0, len(data)):
        if kinds[-2:] != (b"traf", b"tfdt"):
            continue
        body = offset + header
        if data[body] == 1:
            (value,) = struct.unpack(">Q", data[body + 4 : body + 12])
            struct.pack_into(">Q", data, body + 4, value + ticks)
        else:
            (value,) = struct.unpack(">I", data[body + 4 : body + 8])
            if value + ticks >= 2**32:
                raise BoxError(f"{path.name}: a 32-bit decode time cannot hold {value + ticks}")
            struct.pack_into(">I", data, body + 4, value + ticks)
        found += 1
    if not found:
        raise BoxError(f"{path.name} has no decode time (tfdt) to shift")
    temporary = path.with_name(path.name + ".tfdt")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def decode_times(path: Path) -> list[int]:
    """The decode time (``tfdt``) of each fragment of the segment ``path``, in order."""
    data = path.read_bytes()
    times = []
    for kinds, offset, header, _ in _nested(data, 0, len(data)):
        if kinds[-2:] == (b"traf", b"tfdt"):
            body = offset + header
            if data[body] == 1:
                times.append(struct.unpack(">Q", data[body + 4 : body + 12])[0])
            else:
                times.append(struct.unpack(">I", data[body + 4 : body + 8])[0])
    return times


def init_signature(path: Path) -> str:
    """What must be equal for one init segment to serve segments of another encode: the
    sample descriptions (codec, parameter sets) and the edit lists (the composition delay of
    B-frames), as a SHA-256 hex digest."""
    data = path.read_bytes()
    digest = hashlib.sha256()
    for kinds, offset, _, size in _nested(data, 0, len(data)):
        if kinds[-1] in (b"stsd", b"elst", b"mdhd"):
            digest.update(data[offset : offset + size])
    return digest.hexdigest()
