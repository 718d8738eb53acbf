"""Encrypted packaging (apps/transcode/encryption.py), content keys wrapped by the master key
(apps/transcode/keys.py), their rotation, and encrypting a content published in the clear."""

import base64
import io
import os
import uuid

import av
import pytest

from apps.transcode.encryption import (
    aes128_decrypt,
    aes128_encrypt,
    media_playlists,
    playlist_encrypted,
    segment_iv,
)
from apps.transcode.keys import KeyUnavailable, content_key_new, key_unwrap, key_wrap
from apps.transcode.models import DeliveryEncryption
from apps.transcode.services.encrypting import content_keys
from tests.support.media import make_video
from tests.transcode.conftest import encode, output_dir

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init-0.m4s"
#EXTINF:4.000000,
chunk-0-00001.m4s
#EXTINF:2.500000,
chunk-0-00002.m4s
#EXT-X-ENDLIST
"""


def test_aes128_is_cbc_with_pkcs7_padding_both_ways():
    key, iv = os.urandom(16), os.urandom(16)
    for size in (0, 1, 15, 16, 17, 1000):
        data = os.urandom(size)
        sealed = aes128_encrypt(data, key, iv)
        assert len(sealed) == (size // 16 + 1) * 16
        assert aes128_decrypt(sealed, key, iv) == data


def test_an_encrypted_playlist_imports_the_key_url_and_gives_each_segment_its_iv():
    key = os.urandom(16)
    lines = playlist_encrypted(PLAYLIST, key, folder="hls/").splitlines()
    assert lines[1:3] == ["#EXT-X-VERSION:8", '#EXT-X-DEFINE:IMPORT="sgkey"']
    init = lines.index('#EXT-X-MAP:URI="init-0.m4s"')
    assert not any(line.startswith("#EXT-X-KEY") for line in lines[:init])  # a clear init
    key_line = '#EXT-X-KEY:METHOD=AES-128,URI="{$sgkey}",IV=0x'
    first, second = (segment_iv(key, f"hls/chunk-0-0000{n}.m4s").hex().upper() for n in (1, 2))
    assert first != second
    assert lines[init + 1 : init + 4] == [
        key_line + first,
        "#EXTINF:4.000000,",
        "chunk-0-00001.m4s",
    ]
    assert lines[init + 4 : init + 7] == [
        key_line + second,
        "#EXTINF:2.500000,",
        "chunk-0-00002.m4s",
    ]
    assert lines[-1] == "#EXT-X-ENDLIST"


def test_the_ts_playlist_has_no_init_segment_and_lists_ts_copies_under_a_base():
    key = os.urandom(16)
    text = playlist_encrypted(PLAYLIST, key, folder="ts/", base="https://cdn.example/x/ts/")
    assert "#EXT-X-MAP" not in text
    iv = segment_iv(key, "ts/chunk-0-00002.ts").hex().upper()
    assert f"IV=0x{iv}\n#EXTINF:2.500000,\nhttps://cdn.example/x/ts/chunk-0-00002.ts\n" in text


def test_media_playlists_are_the_variants_and_the_audio_rendition():
    master = (
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",URI="media_2.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_0.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia_1.m3u8\n"
    )
    assert media_playlists(master) == ["media_2.m3u8", "media_0.m3u8", "media_1.m3u8"]


def test_a_wrapped_key_opens_only_for_its_job_and_key_id(settings):
    settings.MEDIA_MASTER_KEYS = {"m1": base64.b64encode(os.urandom(32)).decode()}
    job = uuid.uuid4()
    key = content_key_new()
    master_id, wrapped = key_wrap(key, job_id=job)
    assert master_id == "m1"
    assert key.key not in wrapped
    assert key_unwrap(wrapped, master_id="m1", job_id=job, kid=key.kid).key == key.key
    with pytest.raises(KeyUnavailable):
        key_unwrap(wrapped, master_id="m1", job_id=uuid.uuid4(), kid=key.kid)
    with pytest.raises(KeyUnavailable):
        key_unwrap(wrapped, master_id="m2", job_id=job, kid=key.kid)
    assert "key=" not in repr(key)
    assert key.key.hex() not in repr(key)


def test_a_master_key_that_is_not_32_bytes_stops_with_its_name(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.MEDIA_MASTER_KEYS = {"m1": base64.b64encode(b"short").decode()}
    with pytest.raises(ImproperlyConfigured, match=r"MEDIA_MASTER_KEYS\['m1'\]"):
        key_wrap(content_key_new(), job_id=uuid.uuid4())


def _decodes(data: bytes) -> int:
    """How many video frames PyAV decodes from ``data`` (an init segment and segments)."""
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "clip.mp4", seconds=5, size="640x360")


def _public(media_root, row) -> "os.PathLike":
    return media_root / row.public_prefix


@pytest.mark.django_db
def test_an_encrypted_encode_publishes_public_segments_nobody_decodes_without_the_key(
    settings, media_root, clip
):
    settings.MEDIA_ENCRYPTION = True
    content, job = encode(clip)
    row = DeliveryEncryption.objects.get(job=job)
    hls, _ = content_keys(row)
    folder = output_dir(media_root, content)
    assert not list(folder.glob("*.m4s"))  # the clear media were never uploaded
    assert (folder / "master.m3u8").exists()
    assert (folder / "manifest.mpd").exists()
    public = media_root / row.public_prefix / "hls"
    playlist = (public / "media_0.m3u8").read_text()
    init = (public / playlist.split('#EXT-X-MAP:URI="')[1].split('"')[0]).read_bytes()
    keys = [line for line in playlist.splitlines() if line.startswith("#EXT-X-KEY:")]
    segments = [line for line in playlist.splitlines() if line.endswith(".m4s")]
    assert len(keys) == len(segments) >= 2
    for key_line, name in zip(keys, segments, strict=True):
        sealed = (public / name).read_bytes()
        assert b"moof" not in sealed  # no box, no sample readable
        assert b"mdat" not in sealed
        with pytest.raises(av.error.FFmpegError):
            _decodes(sealed)  # PyAV cannot even open it
        assert _decodes(init + sealed) == 0  # nor find a frame after a clear init segment
        iv = bytes.fromhex(key_line.split("IV=0x")[1])
        clear = aes128_decrypt(sealed, hls.key, iv)
        assert clear[4:8] == b"styp"
        assert b"moof" in clear
        assert _decodes(init + clear) > 0


def _ffmpeg_frames(path, *, key: bytes | None) -> tuple[int, str]:
    """(video frames decoded, FFmpeg's complaints) of a single-track fMP4 file."""
    import subprocess

    from tests.support.media import ffmpeg_binary

    args = [ffmpeg_binary(), "-v", "error"]
    if key is not None:
        args += ["-decryption_key", key.hex()]
    result = subprocess.run(
        [*args, "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    return len(rows), result.stderr


@pytest.mark.django_db
def test_the_dash_set_is_common_encryption_that_opens_only_with_its_key(
    settings, media_root, clip, tmp_path
):
    from apps.transcode.mpd import read_tracks

    settings.MEDIA_ENCRYPTION = True
    content, job = encode(clip)
    row = DeliveryEncryption.objects.get(job=job)
    _, dash = content_keys(row)
    folder = output_dir(media_root, content)
    public = media_root / row.public_prefix / "dash"
    tracks = read_tracks(folder / "manifest.mpd")
    video = next(track for track in tracks if track.content_type == "video")
    whole = tmp_path / "video.mp4"
    whole.write_bytes(
        (public / video.init).read_bytes()
        + b"".join((public / segment.uri).read_bytes() for segment in video.segments)
    )
    frames, errors = _ffmpeg_frames(whole, key=dash.key)
    assert frames >= 100  # 5 s at 25 fps
    assert not errors  # every frame clean
    _, errors = _ffmpeg_frames(whole, key=None)
    assert errors  # without the key the decoder chokes on every protected slice


@pytest.mark.django_db
def test_the_command_encrypts_a_clear_content_by_repackaging_not_reencoding(
    settings, media_root, clip
):
    from django.core.management import call_command

    settings.MEDIA_ENCRYPTION = False
    content, job = encode(clip)
    folder = output_dir(media_root, content)
    clear = {path.name: path.read_bytes() for path in folder.glob("*.m4s")}
    assert clear
    call_command("encrypt_contents", stdout=io.StringIO())
    row = DeliveryEncryption.objects.get(job=job)
    hls, _ = content_keys(row)
    assert not list(folder.glob("*.m4s"))  # the token path no longer has clear media
    playlist = (media_root / row.public_prefix / "hls" / "media_0.m3u8").read_text().splitlines()
    for index, line in enumerate(playlist):
        if line.endswith(".m4s"):
            iv = bytes.fromhex(playlist[index - 2].split("IV=0x")[1])
            sealed = (media_root / row.public_prefix / "hls" / line).read_bytes()
            assert aes128_decrypt(sealed, hls.key, iv) == clear[line]  # the same CMAF bytes
    out = io.StringIO()
    call_command("encrypt_contents", stdout=out)
    assert "0 encrypted, 0 failed." in out.getvalue()


@pytest.mark.django_db
def test_rewrapping_under_a_new_master_key_keeps_every_content_key(settings, media_root):
    from django.core.management import CommandError, call_command

    from apps.transcode.services.encrypting import Encrypted, encryption_save
    from tests.access.conftest import published

    old, new = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    settings.MEDIA_MASTER_KEYS = {"m1": old}
    item = published(media_root)
    hls, dash = content_key_new(), content_key_new()
    row = encryption_save(item.job, Encrypted(prefix="public/x/", hls=hls, dash=dash))
    settings.MEDIA_MASTER_KEYS, settings.MEDIA_MASTER_KEY_ID = {"m2": new}, "m2"
    with pytest.raises(CommandError, match="keep the old master key"):
        call_command("media_keys_rewrap", stdout=io.StringIO())
    settings.MEDIA_MASTER_KEYS = {"m2": new, "m1": old}
    out = io.StringIO()
    call_command("media_keys_rewrap", stdout=out)
    assert "1 content keys now wrapped under 'm2'" in out.getvalue()
    settings.MEDIA_MASTER_KEYS = {"m2": new}  # the old master key is gone
    row.refresh_from_db()
    assert row.master_key_id == "m2"
    assert [key.key for key in content_keys(row)] == [hls.key, dash.key]


@pytest.mark.django_db
def test_the_command_refuses_an_id_that_is_not_a_uuid():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="Content ids are UUIDs"):
        call_command("encrypt_contents", "my-video", stdout=io.StringIO())
