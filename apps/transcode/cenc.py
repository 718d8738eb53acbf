"""Common Encryption ('cenc' scheme: AES-128-CTR, ISO/IEC 23001-7) of our CMAF tracks, for DASH
players with EME's ClearKey: pure file work.

Input is what the packager leaves (apps/transcode/packaging.py): one track per file, an init
segment (``ftyp`` + ``moov``) and media segments (``styp`` + ``moof``/``mdat`` fragments with
``default-base-is-moof``), H.264 (``avc1``) or AAC (``mp4a``). The init segment's sample entry
becomes ``encv``/``enca`` with a ``sinf`` (``frma``, ``schm`` 'cenc', ``tenc`` with the key id
and 8-byte IVs) and ``moov`` gets a ClearKey ``pssh`` (version 1, listing the key id). Each
fragment's samples are encrypted in place: video per NAL unit (the length prefix and NAL header
clear, then whole 16-byte blocks protected), audio whole; each ``traf`` gets ``senc`` (the IVs
and subsamples), ``saiz`` and ``saio``; the ``trun`` data offset moves by what the ``moof``
grew.

By hand: PyPI has no maintained CENC packager (pymp4 parses boxes, it does not encrypt), and
Shaka Packager and Bento4 are native programs neither PyPI, npm nor Debian ship here. FFmpeg's
mov muxer can encrypt (``-encryption_scheme cenc-aes-ctr``) but only while muxing a whole file,
not our finished segments.
"""

import os
import struct
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CLEARKEY_SYSTEM_ID = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
IV_SIZE = 8
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"edts"}
VISUAL_ENTRY = 8 + 70  # SampleEntry (reserved, data reference) + VisualSampleEntry fields


class CencError(Exception):
    """A file that is not a clear track this module knows how to encrypt."""


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _parse(data: bytes) -> list[tuple[bytes, bytes]]:
    """Top-level (type, payload) pairs of ``data``."""
    out, offset = [], 0
    while offset < len(data):
        if len(data) - offset < 8:
            raise CencError(f"a truncated box at byte {offset}")
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise CencError(f"a box of {size} bytes at byte {offset}")
        out.append((kind, data[offset + header : offset + size]))
        offset += size
    return out


def _build(boxes: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_box(kind, payload) for kind, payload in boxes)


def pssh_box(kid: bytes) -> bytes:
    """The ClearKey ``pssh`` (version 1) naming ``kid``: what EME hands the ClearKey CDM."""
    return _full(
        b"pssh", 1, 0, uuid.UUID(CLEARKEY_SYSTEM_ID).bytes + struct.pack(">I", 1) + kid + b"\0" * 4
    )


def _sinf(original: bytes, kid: bytes) -> bytes:
    tenc = _full(b"tenc", 0, 0, b"\0\0" + bytes([1, IV_SIZE]) + kid)
    return _box(
        b"sinf",
        _box(b"frma", original)
        + _full(b"schm", 0, 0, b"cenc" + struct.pack(">I", 0x10000))
        + _box(b"schi", tenc),
    )


def _protect_entries(stsd: bytes, kid: bytes) -> bytes:
    header, entries = stsd[:8], _parse(stsd[8:])
    changed = []
    for kind, payload in entries:
        if kind == b"avc1":
            changed.append((b"encv", payload + _sinf(kind, kid)))
        elif kind == b"mp4a":
            changed.append((b"enca", payload + _sinf(kind, kid)))
        elif kind in (b"encv", b"enca"):
            raise CencError("the track is encrypted already")
        else:
            raise CencError(f"cannot encrypt a {kind.decode('latin-1')} track")
    return header + _build(changed)


def _rewrite(boxes: list[tuple[bytes, bytes]], kid: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for kind, payload in boxes:
        if kind == b"stsd":
            payload = _protect_entries(payload, kid)
        elif kind in CONTAINERS:
            payload = _build(_rewrite(_parse(payload), kid))
        out.append((kind, payload))
    return out


def _find(boxes: list[tuple[bytes, bytes]], *path: bytes) -> bytes | None:
    for kind, payload in boxes:
        if kind == path[0]:
            return payload if len(path) == 1 else _find(_parse(payload), *path[1:])
    return None


def encrypt_init(src: Path, dst: Path, *, kid: bytes) -> None:
    boxes = _parse(src.read_bytes())
    if not any(kind == b"moov" for kind, _ in boxes):
        raise CencError(f"{src.name} is not an init segment (no moov)")
    out = []
    for kind, payload in _rewrite(boxes, kid):
        if kind == b"moov":
            payload += pssh_box(kid)
        out.append((kind, payload))
    dst.write_bytes(_build(out))


def nal_length_size(init: Path) -> int | None:
    """The NAL length prefix size of an H.264 track (from ``avcC``); None for audio."""
    stsd = _find(_parse(init.read_bytes()), b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    if stsd is None:
        raise CencError(f"{init.name} has no sample description")
    for kind, payload in _parse(stsd[8:]):
        if kind == b"avc1":
            avcc = _find(_parse(payload[VISUAL_ENTRY:]), b"avcC")
            if avcc is None or len(avcc) < 5:
                raise CencError(f"{init.name}: an avc1 entry without avcC")
            return (avcc[4] & 0x3) + 1
        if kind == b"mp4a":
            return None
        raise CencError(f"cannot encrypt a {kind.decode('latin-1')} track")
    raise CencError(f"{init.name} describes no sample")


def _sample_sizes(traf: list[tuple[bytes, bytes]]) -> tuple[list[int], int]:
    """(sample sizes, trun data offset) of a traf."""
    tfhd = _find(traf, b"tfhd")
    trun = _find(traf, b"trun")
    if tfhd is None or trun is None:
        raise CencError("a fragment without tfhd or trun")
    tf_flags = struct.unpack(">I", tfhd[:4])[0] & 0xFFFFFF
    position = 8
    default_size = None
    for flag, width in ((0x1, 8), (0x2, 4), (0x8, 4)):
        if tf_flags & flag:
            position += width
    if tf_flags & 0x10:
        default_size = struct.unpack_from(">I", tfhd, position)[0]
    version_flags, count = struct.unpack_from(">II", trun, 0)
    flags = version_flags & 0xFFFFFF
    if not flags & 0x1:
        raise CencError("a trun without a data offset")
    data_offset = struct.unpack_from(">i", trun, 8)[0]
    position = 12 + (4 if flags & 0x4 else 0)
    per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    sizes = []
    for index in range(count):
        entry = position + index * per_sample
        if flags & 0x200:
            skip = 4 if flags & 0x100 else 0
            sizes.append(struct.unpack_from(">I", trun, entry + skip)[0])
        elif default_size is not None:
            sizes.append(default_size)
        else:
            raise CencError("sample sizes are neither in the trun nor defaulted")
    return sizes, data_offset


def _subsamples(sample: bytes, length_size: int) -> list[tuple[int, int]]:
    """(clear, protected) byte counts per NAL unit: the prefix and NAL header clear, whole
    16-byte blocks after them protected."""
    out, offset = [], 0
    while offset < len(sample):
        if offset + length_size > len(sample):
            raise CencError("a NAL length past the sample's end")
        size = int.from_bytes(sample[offset : offset + length_size], "big")
        total = length_size + size
        if offset + total > len(sample):
            raise CencError("a NAL unit past the sample's end")
        protected = max(0, (total - length_size - 1) // 16 * 16)
        clear = total - protected
        while clear > 0xFFFF:  # a clear run longer than a subsample can say
            out.append((0xFFFF, 0))
            clear -= 0xFFFF
        out.append((clear, protected))
        offset += total
    return out


def _ctr(key: bytes, iv: bytes):
    return Cipher(algorithms.AES(key), modes.CTR(iv + b"\0" * 8)).encryptor()


def encrypt_segment(
    src: Path, dst: Path, *, key: bytes, kid: bytes, nal_length_size: int | None
) -> None:
    data = bytearray(src.read_bytes())
    out = bytearray()
    offset = 0
    boxes = []
    while offset < len(data):  # keep offsets: a moof's samples are in the mdat after it
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8 or offset + size > len(data):
            raise CencError(f"{src.name}: a box of {size} bytes at byte {offset}")
        boxes.append((kind, offset, size))
        offset += size
    if not any(kind == b"moof" for kind, _, _ in boxes):
        raise CencError(f"{src.name} is not a media segment (no moof)")
    for kind, start, size in boxes:
        if kind != b"moof":
            out += data[start : start + size]
            continue
        moof = _parse(bytes(data[start + 8 : start + size]))
        new_children = []
        trafs = [payload for child, payload in moof if child == b"traf"]
        if len(trafs) != 1:
            raise CencError(f"{src.name}: a fragment with {len(trafs)} tracks")
        traf = _parse(trafs[0])
        if _find(traf, b"senc") is not None:
            raise CencError(f"{src.name} is encrypted already")
        sizes, data_offset = _sample_sizes(traf)
        cursor = start + data_offset
        if cursor + sum(sizes) > len(data):
            raise CencError(f"{src.name}: samples past the end of the file")
        entries = b""
        info_sizes = []
        for sample_size in sizes:
            sample = bytes(data[cursor : cursor + sample_size])
            iv = os.urandom(IV_SIZE)
            encryptor = _ctr(key, iv)
            if nal_length_size is None:
                data[cursor : cursor + sample_size] = encryptor.update(sample)
                entries += iv
                info_sizes.append(IV_SIZE)
            else:
                parts = _subsamples(sample, nal_length_size)
                position = cursor
                for clear, protected in parts:
                    position += clear
                    chunk = bytes(data[position : position + protected])
                    data[position : position + protected] = encryptor.update(chunk)
                    position += protected
                entries += iv + struct.pack(">H", len(parts))
                entries += b"".join(struct.pack(">HI", c, p) for c, p in parts)
                info_sizes.append(IV_SIZE + 2 + 6 * len(parts))
            cursor += sample_size
        flags = 0x2 if nal_length_size is not None else 0
        senc = _full(b"senc", 0, flags, struct.pack(">I", len(sizes)) + entries)
        if len(set(info_sizes)) == 1:
            saiz = _full(b"saiz", 0, 0, bytes([info_sizes[0]]) + struct.pack(">I", len(sizes)))
        else:
            saiz = _full(b"saiz", 0, 0, b"\0" + struct.pack(">I", len(sizes)) + bytes(info_sizes))
        saio_size = 8 + 4 + 4 + 4
        added = len(saiz) + saio_size + len(senc)
        # The traf's children, then the new boxes; the senc's sample data offset from the moof.
        before_traf = 8 + sum(8 + len(payload) for child, payload in moof[: _index(moof, b"traf")])
        traf_body = b"".join(_box(k, p) for k, p in traf)
        senc_data = before_traf + 8 + len(traf_body) + len(saiz) + saio_size + 8 + 4 + 4
        saio = _full(b"saio", 0, 0, struct.pack(">II", 1, senc_data))
        rebuilt = []
        for child, payload in traf:
            if child == b"trun":
                payload = payload[:8] + struct.pack(">i", data_offset + added) + payload[12:]
            rebuilt.append((child, payload))
        new_traf = _build(rebuilt) + saiz + saio + senc
        for child, payload in moof:
            new_children.append((child, new_traf if child == b"traf" else payload))
        out += _box(b"moof", _build_raw(new_children))
    dst.write_bytes(bytes(out))


def _index(boxes: list[tuple[bytes, bytes]], kind: bytes) -> int:
    return next(index for index, (child, _) in enumerate(boxes) if child == kind)


def _build_raw(children: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_box(kind, payload) for kind, payload in children)
