"""Encrypting a packaged job folder for public, cacheable delivery: pure file work.

Measured in Chromium 156 before choosing (tests/web/test_players.py plays the result):
- HLS, AES-128 over whole fMP4 segments (RFC 8216 4.3.2.4): hls.js 1.7.4 and Shaka 5.2.12 play
  it with no configuration; so does Safari. Chromium's own HLS player fetches the key but fails
  every fMP4 variant tried (clear or encrypted init, explicit or sequence IVs: "DEMUXER_ERROR_
  COULD_NOT_PARSE"); it plays AES-128 only over MPEG-TS.
- DASH, Common Encryption ('cenc', apps/transcode/cenc.py) with the W3C ClearKey key system:
  dash.js 5.2.1 and Shaka play it through EME. hls.js plays CENC fMP4 only with a player-side
  EME configuration, and Chromium's own HLS not at all, so no single set of segments plays in
  every player: HLS gets AES-128 segments under ``hls/``, DASH CENC segments under ``dash/``,
  each cipher with its own key.

The init segments of ``hls/`` stay clear (codec configuration, no samples; ``EXT-X-MAP`` comes
before the first ``EXT-X-KEY``, so it applies to the media segments only). Each segment has its
own random IV. The media playlists are immutable public files; the key URL is not in them but
imported (``#EXT-X-DEFINE:IMPORT``, HLS version 8) from the master playlist each viewer gets,
which defines it with their key token: one set of playlists for every viewer and any cache.
"""

import os
import re
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apps.transcode import cenc
from apps.transcode.keys import ContentKey
from apps.transcode.mpd import read_tracks

KEY_VARIABLE = "sgkey"
HLS_FOLDER = "hls/"
DASH_FOLDER = "dash/"
_URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


class EncryptionError(Exception):
    """The folder is not a package this module can encrypt."""


def aes128_encrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-128-CBC with PKCS#7 padding, as HLS's METHOD=AES-128 asks."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes128_decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def media_playlists(master: str) -> list[str]:
    """The media playlists a master playlist names: variant URIs and EXT-X-MEDIA URIs (audio;
    caption renditions are added when served and are not in the stored master)."""
    names = []
    for line in master.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MEDIA:"):
            found = _URI_ATTRIBUTE.search(line)
            if found:
                names.append(found[1])
        elif line and not line.startswith("#"):
            names.append(line)
    return names


def playlist_encrypted(text: str, ivs: dict[str, bytes]) -> str:
    """The media playlist ``text`` with an AES-128 key line before each segment (its IV) and the
    key URL imported from the master playlist."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-VERSION:"):
            line = "#EXT-X-VERSION:8"  # EXT-X-DEFINE
        elif line.startswith("#EXT-X-MAP:"):
            out.append(f'#EXT-X-DEFINE:IMPORT="{KEY_VARIABLE}"')
        elif line and not line.startswith("#"):
            iv = ivs.get(line)
            if iv is None:
                raise EncryptionError(f"segment {line} was not encrypted")
            # Before the segment's EXTINF: find it (the line before) and put the key above it.
            extinf = out.pop() if out and out[-1].startswith("#EXTINF:") else None
            out.append(
                f'#EXT-X-KEY:METHOD=AES-128,URI="{{${KEY_VARIABLE}}}",IV=0x{iv.hex().upper()}'
            )
            if extinf:
                out.append(extinf)
        out.append(line)
    return "\n".join(out) + "\n"


def _read_playlist(path: Path) -> tuple[str, str, list[str]]:
    """(text, init segment, media segments) of a media playlist."""
    text = path.read_text()
    init, segments = "", []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            found = _URI_ATTRIBUTE.search(line)
            init = found[1] if found else ""
        elif line and not line.startswith("#"):
            segments.append(line)
    if not init or not segments:
        raise EncryptionError(f"{path.name}: no init segment or no media segments")
    return text, init, segments


def encrypt_hls(folder: Path, out: Path, key: ContentKey, *, master: str) -> list[str]:
    """AES-128 copies of the media playlists ``master`` names, with their segments, into
    ``out``; returns the files written (relative to ``out``), playlists last."""
    media: list[str] = []
    playlists: list[str] = []
    for name in media_playlists(master):
        text, init, segments = _read_playlist(folder / name)
        ivs = {}
        for segment in segments:
            iv = os.urandom(16)
            target = out / segment
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(aes128_encrypt((folder / segment).read_bytes(), key.key, iv))
            ivs[segment] = iv
            media.append(segment)
        (out / init).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / init, out / init)
        media.append(init)
        (out / name).write_text(playlist_encrypted(text, ivs))
        playlists.append(name)
    return media + playlists


def encrypt_dash(folder: Path, out: Path, key: ContentKey, *, manifest: str) -> list[str]:
    """Common Encryption copies of every track of the MPD ``manifest`` into ``out``; the MPD
    itself is completed for each viewer when served (key ids, license URL)."""
    written = []
    for track in read_tracks(folder / manifest):
        length_size = cenc.nal_length_size(folder / track.init)
        (out / track.init).parent.mkdir(parents=True, exist_ok=True)
        cenc.encrypt_init(folder / track.init, out / track.init, kid=key.kid.bytes)
        written.append(track.init)
        for segment in track.segments:
            cenc.encrypt_segment(
                folder / segment.uri,
                out / segment.uri,
                key=key.key,
                kid=key.kid.bytes,
                nal_length_size=length_size,
            )
            written.append(segment.uri)
    return written


def encrypt_package(
    folder: Path, out: Path, *, hls: ContentKey, dash: ContentKey, master: str, manifest: str
) -> list[str]:
    """Both encrypted sets of the package in ``folder`` into ``out``: the files to publish,
    relative to ``out``, every segment before the playlist that names it."""
    files = [
        HLS_FOLDER + name for name in encrypt_hls(folder, out / HLS_FOLDER, hls, master=master)
    ]
    files += [
        DASH_FOLDER + name
        for name in encrypt_dash(folder, out / DASH_FOLDER, dash, manifest=manifest)
    ]
    return files
