"""Encrypting a packaged job folder for public, cacheable delivery: pure file work.

Measured in Chromium 156 before choosing (tests/web/test_players.py plays the result):
- HLS, AES-128 over whole fMP4 segments (RFC 8216 4.3.2.4): hls.js 1.7.4 and Shaka 5.2.12 play
  it with no configuration; so does Safari. Chromium's own HLS player fetches the key but fails
  every fMP4 variant tried (clear or encrypted init, explicit or sequence IVs: "DEMUXER_ERROR_
  COULD_NOT_PARSE"); it plays AES-128 over MPEG-TS, whose DTS must not start below 0.
- DASH, Common Encryption ('cenc', apps/transcode/cenc.py) with the W3C ClearKey key system:
  dash.js 5.2.1 and Shaka play it through EME. hls.js plays CENC fMP4 only with a player-side
  EME configuration, and Chromium's own HLS not at all.
- hls.js over AES-128 MPEG-TS copies of our segments played 4 of 4 times, but the same TS in the
  clear stalled once in 3 ("bufferSeekOverHole"): the fMP4 path it plays in the matrix stays.

So no single set plays everywhere. A job gets three, all from the same CMAF segments, none
re-encoded: ``hls/`` (AES-128 fMP4, for script players), ``ts/`` (AES-128 MPEG-TS copies, for
native players: the master playlist a media element asks for, ``Sec-Fetch-Dest: video``, lists
these) and ``dash/`` (CENC). HLS's sets share a key, DASH has its own: two ciphers never share
one.

The init segments of ``hls/`` stay clear (codec configuration, no samples; ``EXT-X-MAP`` comes
before the first ``EXT-X-KEY``, so it applies to the media segments only). Each segment's IV is
derived from the key and its name (HMAC), so a growing playlist can be written again at any time
without remembering IVs, and no two segments share one. The media playlists are public files; the
key URL is not in them but imported (``#EXT-X-DEFINE:IMPORT``, HLS version 8) from the master
playlist each viewer gets, which defines it with their key token: one set of playlists for every
viewer and any cache.
"""

import hashlib
import hmac
import re
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apps.transcode import cenc, ffmpeg
from apps.transcode.keys import ContentKey
from apps.transcode.mpd import read_tracks

KEY_VARIABLE = "sgkey"
HLS_FOLDER = "hls/"
TS_FOLDER = "ts/"
DASH_FOLDER = "dash/"
URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


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


def segment_iv(key: bytes, name: str) -> bytes:
    """The IV of the segment ``name`` (its name in its folder, e.g. ``ts/chunk-0-00001.ts``)."""
    return hmac.new(key, f"streamgate.iv|{name}".encode(), hashlib.sha256).digest()[:16]


def ts_name(name: str) -> str:
    return str(Path(name).with_suffix(".ts"))


def media_playlists(master: str) -> list[str]:
    """The media playlists a master playlist names: variant URIs and EXT-X-MEDIA URIs (audio;
    caption renditions are added when served and are not in the stored master)."""
    names = []
    for line in master.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MEDIA:"):
            found = URI_ATTRIBUTE.search(line)
            if found:
                names.append(found[1])
        elif line and not line.startswith("#"):
            names.append(line)
    return names


def playlist_encrypted(text: str, key: bytes, *, folder: str, base: str = "") -> str:
    """The clear media playlist ``text`` as ``folder`` (``hls/`` or ``ts/``) lists it: a key
    line with its IV before each segment, the key URL imported from the master playlist, and
    every URI under ``base`` ("" for the public playlist beside its segments)."""
    ts = folder == TS_FOLDER
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-VERSION:"):
            out.append("#EXT-X-VERSION:8")  # EXT-X-DEFINE
            out.append(f'#EXT-X-DEFINE:IMPORT="{KEY_VARIABLE}"')
            continue
        if line.startswith("#EXT-X-MAP:"):
            if not ts:  # MPEG-TS segments carry their own codec configuration
                out.append(URI_ATTRIBUTE.sub(lambda m: f'URI="{base}{m[1]}"', line))
            continue
        if line and not line.startswith("#"):
            name = ts_name(line) if ts else line
            iv = segment_iv(key, folder + name)
            # The key line goes above the segment's EXTINF (the line before).
            extinf = out.pop() if out and out[-1].startswith("#EXTINF:") else None
            out.append(
                f'#EXT-X-KEY:METHOD=AES-128,URI="{{${KEY_VARIABLE}}}",IV=0x{iv.hex().upper()}'
            )
            if extinf:
                out.append(extinf)
            line = base + name
        out.append(line)
    return "\n".join(out) + "\n"


def _read_playlist(path: Path) -> tuple[str, list[str]]:
    """(init segment, media segments) of a media playlist."""
    init, segments = "", []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            found = URI_ATTRIBUTE.search(line)
            init = found[1] if found else ""
        elif line and not line.startswith("#"):
            segments.append(line)
    if not init or not segments:
        raise EncryptionError(f"{path.name}: no init segment or no media segments")
    return init, segments


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def encrypt_media(
    folder: Path,
    out: Path,
    *,
    hls: ContentKey,
    dash: ContentKey,
    master: str,
    manifest: str,
    done: dict[str, int] | None = None,
    final: bool = True,
    binary: str,
) -> tuple[list[str], dict[str, int]]:
    """Encrypt into ``out`` the segments the package's manifests in ``folder`` list beyond
    ``done`` (how many of each playlist and track are encrypted already: a chunked job's
    earlier publications), in all three sets; with ``final``, also the public HLS media
    playlists. Returns the files to upload (relative to ``out``, every segment before a
    playlist naming it) and the new counts."""
    done = dict(done or {})
    files: list[str] = []
    playlists: list[str] = []
    for name in media_playlists(master):
        init, segments = _read_playlist(folder / name)
        count = done.get(HLS_FOLDER + name, 0)
        if count == 0:  # the init segment stays clear (no samples in it)
            _write(out / HLS_FOLDER / init, (folder / init).read_bytes())
            files.append(HLS_FOLDER + init)
        for segment in segments[count:]:
            clear = (folder / segment).read_bytes()
            iv = segment_iv(hls.key, HLS_FOLDER + segment)
            _write(out / HLS_FOLDER / segment, aes128_encrypt(clear, hls.key, iv))
            remuxed = out / TS_FOLDER / (ts_name(segment) + ".clear")
            remuxed.parent.mkdir(parents=True, exist_ok=True)
            ffmpeg.remux_to_ts(folder / init, folder / segment, remuxed, binary=binary)
            iv = segment_iv(hls.key, TS_FOLDER + ts_name(segment))
            _write(
                out / TS_FOLDER / ts_name(segment),
                aes128_encrypt(remuxed.read_bytes(), hls.key, iv),
            )
            remuxed.unlink()
            files += [HLS_FOLDER + segment, TS_FOLDER + ts_name(segment)]
        done[HLS_FOLDER + name] = len(segments)
        if final:
            text = (folder / name).read_text()
            for set_folder in (HLS_FOLDER, TS_FOLDER):
                _write(
                    out / set_folder / name,
                    playlist_encrypted(text, hls.key, folder=set_folder).encode(),
                )
                playlists.append(set_folder + name)
    for track in read_tracks(folder / manifest):
        count = done.get(f"{DASH_FOLDER}{track.id}", 0)
        length_size = cenc.nal_length_size(folder / track.init)
        if count == 0:
            (out / DASH_FOLDER / track.init).parent.mkdir(parents=True, exist_ok=True)
            cenc.encrypt_init(
                folder / track.init, out / DASH_FOLDER / track.init, kid=dash.kid.bytes
            )
            files.append(DASH_FOLDER + track.init)
        for segment in track.segments[count:]:
            (out / DASH_FOLDER / segment.uri).parent.mkdir(parents=True, exist_ok=True)
            cenc.encrypt_segment(
                folder / segment.uri,
                out / DASH_FOLDER / segment.uri,
                key=dash.key,
                kid=dash.kid.bytes,
                nal_length_size=length_size,
            )
            files.append(DASH_FOLDER + segment.uri)
        done[f"{DASH_FOLDER}{track.id}"] = len(track.segments)
    return files + playlists, done
